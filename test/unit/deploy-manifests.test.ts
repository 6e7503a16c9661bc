// deploy/ rendered with `kubectl kustomize` (offline) is what the API server would accept: every
// object validates against the Kubernetes API schemas (kubernetes-models: types, required fields,
// formats) and has no field the API does not know (client-node's generated API types), and the parts
// that decide what vxtrace may do on a cluster are exactly as docs/install.md says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { findObject, renderKustomization, type KubeObject } from '../helpers/deploy.js';

type Json = Record<string, any>;

// kind -> the schema validator of kubernetes-models, and the client-node type that lists its fields.
const SCHEMAS: Record<string, { model: new (o: any) => { validate(): void }; apiType?: string }> = {
  'v1/Namespace': { model: Namespace, apiType: 'V1Namespace' },
  'v1/ServiceAccount': { model: ServiceAccount, apiType: 'V1ServiceAccount' },
  'v1/Service': { model: Service, apiType: 'V1Service' },
  'apps/v1/Deployment': { model: Deployment, apiType: 'V1Deployment' },
  'apps/v1/DaemonSet': { model: DaemonSet, apiType: 'V1DaemonSet' },
  'rbac.authorization.k8s.io/v1/ClusterRole': { model: ClusterRole, apiType: 'V1ClusterRole' },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { model: ClusterRoleBinding, apiType: 'V1ClusterRoleBinding' },
  'monitoring.coreos.com/v1/ServiceMonitor': { model: ServiceMonitor },
};

interface Attribute { baseName: string; type: string }
const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attribute[] }>;

/** Paths of fields the API type `type` does not have (a typo the schema validators let through). */
function unknownFields(value: unknown, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`)) : [`${path} (not a list)`];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return Object.entries(value as Json).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`));
  const attrs = models[type]?.getAttributeTypeMap?.();
  if (!attrs) return []; // string, number, boolean, IntOrString, Date, any
  return Object.entries(value as Json).flatMap(([k, v]) => {
    const a = attrs.find((x) => x.baseName === k);
    return a ? unknownFields(v, a.type, `${path}.${k}`) : [`${path}.${k}`];
  });
}

function validate(o: KubeObject): void {
  const id = `${o.kind} ${o.metadata?.name}`;
  const schema = SCHEMAS[`${o.apiVersion}/${o.kind}`];
  assert.ok(schema, `${id}: no schema known for ${o.apiVersion} ${o.kind} (add it to SCHEMAS)`);
  assert.doesNotThrow(() => new schema.model(o).validate(), `${id} does not validate`);
  if (schema.apiType) assert.deepEqual(unknownFields(o, schema.apiType, o.kind), [], `${id} has fields the API does not know`);
}

const objects = renderKustomization('deploy');
const addOn = renderKustomization('deploy/servicemonitor');
const ds = findObject<Json>(objects, 'DaemonSet', 'vxtrace-agent');
const dep = findObject<Json>(objects, 'Deployment', 'vxtrace-hub');
const agentPod = ds.spec.template.spec;
const hubPod = dep.spec.template.spec;
const agent = agentPod.containers[0];
const hub = hubPod.containers[0];

/** The volume a container reads `file` from, and the mount's path. */
function volumeOf(pod: Json, container: Json, file: string): Json | undefined {
  const m = (container.volumeMounts ?? []).find((v: Json) => file.startsWith(`${v.mountPath}/`));
  return m && pod.volumes.find((v: Json) => v.name === m.name);
}
const argAfter = (c: Json, flag: string): string | undefined => c.args[c.args.indexOf(flag) + 1];

test('every object deploy/ and deploy/servicemonitor render validates against the Kubernetes API schemas', () => {
  assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
    'ClusterRole/vxtrace-hub', 'ClusterRoleBinding/vxtrace-hub', 'DaemonSet/vxtrace-agent', 'Deployment/vxtrace-hub',
    'Namespace/vxtrace', 'Service/vxtrace-hub', 'ServiceAccount/vxtrace-agent', 'ServiceAccount/vxtrace-hub',
  ]);
  assert.deepEqual(addOn.map((o) => `${o.kind}/${o.metadata.name}`), ['ServiceMonitor/vxtrace-hub']);
  for (const o of [...objects, ...addOn]) validate(o);
  for (const o of [...objects, ...addOn]) if (!['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind)) assert.equal(o.metadata.namespace, 'vxtrace', `${o.kind} ${o.metadata.name}`);
});

test('the strict-field check finds a misspelt field (so the test above can fail)', () => {
  const typo = structuredClone(ds);
  typo.spec.template.spec.tolerashuns = typo.spec.template.spec.tolerations;
  assert.deepEqual(unknownFields(typo, 'V1DaemonSet', 'DaemonSet'), ['DaemonSet.spec.template.spec.tolerashuns']);
  const bad = structuredClone(ds);
  bad.spec.template.spec.containers[0].securityContext.capabilities.add = 'BPF';
  assert.throws(() => new DaemonSet(bad as any).validate(), /capabilities\/add must be array/);
});

test('agents: host network, exactly BPF, PERFMON and NET_ADMIN, no API access, every node', () => {
  assert.equal(agentPod.hostNetwork, true);
  assert.equal(agentPod.dnsPolicy, 'ClusterFirstWithHostNet');
  assert.ok(!agentPod.hostPID && !agentPod.hostIPC, 'no host PID or IPC namespace');
  const sc = agent.securityContext;
  assert.deepEqual(sc.capabilities, { drop: ['ALL'], add: ['BPF', 'PERFMON', 'NET_ADMIN'] });
  assert.equal(sc.privileged, false);
  assert.equal(sc.allowPrivilegeEscalation, false);
  assert.equal(sc.readOnlyRootFilesystem, true);
  assert.equal(sc.runAsUser, 0);
  assert.deepEqual(sc.seccompProfile, { type: 'Unconfined' }, 'see agent.yaml: default profiles deny bpf() without SYS_ADMIN');
  assert.equal(agentPod.containers.length, 1);
  assert.ok(!agentPod.initContainers, 'no init containers with other rights');
  // No API access: no token mounted, and nothing grants its service account anything.
  assert.equal(agentPod.serviceAccountName, 'vxtrace-agent');
  assert.equal(agentPod.automountServiceAccountToken, false);
  assert.equal(findObject<Json>(objects, 'ServiceAccount', 'vxtrace-agent').automountServiceAccountToken, false);
  const bound = objects.filter((o) => /RoleBinding$/.test(o.kind)).flatMap((b: Json) => b.subjects.map((s: Json) => `${s.namespace}/${s.name}`));
  assert.ok(!bound.includes('vxtrace/vxtrace-agent'), 'no role is bound to the agents');
  // Only the hub's token from a Secret: no host paths (no BTF or bpffs mounts: /sys/kernel/btf comes with the container's /sys, nothing is pinned).
  assert.deepEqual(agentPod.volumes.map((v: Json) => Object.keys(v).filter((k) => k !== 'name')).flat(), ['secret']);
  assert.equal(volumeOf(agentPod, agent, argAfter(agent, '--token-file')!)?.secret?.secretName, 'vxtrace-hub-token');
  assert.deepEqual(agent.env, [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }]);
  assert.equal(argAfter(agent, '--hub'), 'ws://vxtrace-hub:4280');
  assert.deepEqual(agentPod.tolerations, [{ operator: 'Exists' }], 'tolerates every taint (control plane too)');
  assert.deepEqual(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } });
  assert.ok(agent.resources.requests.cpu && agent.resources.requests.memory && agent.resources.limits.memory, 'requests and a memory limit');
  assert.match(agent.livenessProbe.exec.command.join(' '), /\/proc\/1\/fd .*bpf_link/, 'alive = holds its BPF links');
});

test('the hub: unprivileged, its token from the Secret, ready on /healthz, one replica, behind a ClusterIP Service on 4280', () => {
  assert.ok(!hubPod.hostNetwork);
  assert.equal(hubPod.serviceAccountName, 'vxtrace-hub');
  assert.equal(hubPod.securityContext.runAsNonRoot, true);
  assert.deepEqual(hubPod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
  assert.deepEqual(hub.securityContext.capabilities, { drop: ['ALL'] });
  assert.equal(hub.securityContext.allowPrivilegeEscalation, false);
  assert.equal(hub.securityContext.readOnlyRootFilesystem, true);
  assert.equal(dep.spec.replicas, 1);
  assert.equal(dep.spec.strategy.type, 'Recreate');
  assert.equal(argAfter(hub, '--listen'), '0.0.0.0:4280');
  const tokenVolume = volumeOf(hubPod, hub, argAfter(hub, '--token-file')!);
  assert.equal(tokenVolume?.secret?.secretName, 'vxtrace-hub-token', 'the token file is a key of the Secret');
  assert.ok(!(hub.env ?? []).some((e: Json) => 'value' in e && /token/i.test(e.name)), 'no token in the pod spec');
  assert.ok(!objects.some((o) => o.kind === 'Secret'), 'no Secret (and so no token) in deploy/');
  assert.deepEqual(hub.ports, [{ name: 'hub', containerPort: 4280, protocol: 'TCP' }]);
  assert.deepEqual(hub.readinessProbe.httpGet, { path: '/healthz', port: 'hub' });
  const svc = findObject<Json>(objects, 'Service', 'vxtrace-hub');
  assert.equal(svc.spec.type, 'ClusterIP');
  assert.deepEqual(svc.spec.ports, [{ name: 'hub', port: 4280, targetPort: 'hub', protocol: 'TCP' }]);
  for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(dep.spec.template.metadata.labels[k], v, `the Service selects the hub's pods (${k})`);
  assert.notEqual(svc.spec.selector['app.kubernetes.io/component'], ds.spec.template.metadata.labels['app.kubernetes.io/component'], 'and not the agents');
  const ann = dep.spec.template.metadata.annotations;
  assert.deepEqual([ann['prometheus.io/scrape'], ann['prometheus.io/port'], ann['prometheus.io/path']], ['true', '4280', '/metrics']);
  const sm = findObject<Json>(addOn, 'ServiceMonitor', 'vxtrace-hub');
  assert.deepEqual(sm.spec.selector.matchLabels, svc.metadata.labels);
  assert.deepEqual(sm.spec.endpoints.map((e: Json) => [e.port, e.path]), [['hub', '/metrics']]);
  assert.deepEqual(sm.spec.endpoints[0].authorization, { type: 'Bearer', credentials: { name: 'vxtrace-hub-token', key: 'token' } }, '/metrics needs the token');
});

test("RBAC: the hub's service account may get, list and watch nodes and pods, nothing else", () => {
  const roles = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
  assert.equal(roles.length, 1);
  assert.deepEqual((roles[0] as Json).rules, [{ apiGroups: [''], resources: ['nodes', 'pods'], verbs: ['get', 'list', 'watch'] }]);
  assert.ok(!(roles[0] as Json).aggregationRule);
  const bindings = objects.filter((o) => /RoleBinding$/.test(o.kind)) as Json[];
  assert.equal(bindings.length, 1);
  assert.deepEqual(bindings[0]!.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'vxtrace-hub' });
  assert.deepEqual(bindings[0]!.subjects, [{ kind: 'ServiceAccount', name: 'vxtrace-hub', namespace: 'vxtrace' }]);
  assert.equal(findObject<Json>(objects, 'Namespace', 'vxtrace').metadata.labels['pod-security.kubernetes.io/enforce'], 'privileged');
});
