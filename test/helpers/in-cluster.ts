// vxtrace installed on a cluster, played on the lab: a stand-in API server (HTTPS, a service
// account token) serving the lab's Nodes and Pods plus what deploy/ installs (the hub's Service as
// rendered, a hub Pod from the Deployment's template, the token Secret); the hub started as its
// Deployment starts it (in-cluster: KUBERNETES_SERVICE_HOST/PORT and the service account files at
// /var/run/secrets/kubernetes.io/serviceaccount, which a private mount namespace lays over /run so
// that nothing on this machine changes); agents started as the DaemonSet starts them (NODE_NAME, no
// cluster file, no API access, inside their node's network namespace).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { V1List } from '../../src/cluster/k8s.js';
import type { LabState } from '../../src/lab/index.js';
import { fakeKubeApi, podAt, type FakeApi } from './kube-api.js';
import { findObject, renderKustomization } from './deploy.js';
import { start, type Proc } from './hub.js';

type Json = Record<string, any>;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

export interface Installed {
  api: FakeApi;
  /** The lab's objects as served (Nodes withheld by `withhold` are not in it). */
  list: V1List;
  /** The Node objects held back, to be added later through the watch. */
  withheld: Json[];
  hubPod: string;
  /** The hub's token (in the Secret; agents read it from their mounted copy). */
  tokenFile: string;
  /** The hub's socket: where the hub pod's port 4280 is. */
  socket: string;
  dir: string;
  close(): Promise<void>;
}

const SA_TOKEN = 'stand-in-service-account-token';

/** The stand-in API server for `lab`, with vxtrace installed as deploy/ renders it. */
export async function installOnStandIn(lab: LabState, opts: { withhold?: string[] } = {}): Promise<Installed> {
  const dir = mkdtempSync(join(tmpdir(), 'vxt-install-'));
  dirs.push(dir);
  const cluster = JSON.parse(readFileSync(lab.clusterFile, 'utf8')) as V1List;
  const withheld = cluster.items.filter((i) => i.kind === 'Node' && opts.withhold?.includes(i.metadata.name)) as Json[];
  const list = { ...cluster, items: cluster.items.filter((i) => !withheld.includes(i as Json)) };
  const deployed = renderKustomization('deploy');
  const svc = findObject<Json>(deployed, 'Service', 'vxtrace-hub');
  const dep = findObject<Json>(deployed, 'Deployment', 'vxtrace-hub');
  const hubPod = 'vxtrace-hub-5d9c7b8f6-x2x7q';
  const pod = {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: hubPod, namespace: 'vxtrace', labels: dep.spec.template.metadata.labels },
    spec: { ...dep.spec.template.spec, nodeName: lab.nodes[0]!.name },
    status: { phase: 'Running', podIP: '10.244.1.250', conditions: [{ type: 'Ready', status: 'True' }] },
  };
  const token = 'hub-token-0123456789abcdef';
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'vxtrace-hub-token', namespace: 'vxtrace' }, type: 'Opaque', data: { token: Buffer.from(token).toString('base64') } };
  const socket = join(dir, 'hub.sock');
  const api = await fakeKubeApi(list, { tls: true, token: SA_TOKEN, objects: [svc, pod, secret] as never[], podPorts: { [`vxtrace/${hubPod}`]: podAt({ path: socket }) } });
  return { api, list, withheld, hubPod, tokenFile, socket, dir, close: () => api.close() };
}

/**
 * `vxtrace hub` as the Deployment runs it, in-cluster: no kubeconfig, the API server from
 * KUBERNETES_SERVICE_HOST/PORT, its CA and token from the service account directory. It listens on
 * a unix socket (the lab's agents are in other network namespaces) with the token, as on 0.0.0.0:4280.
 */
export async function startInClusterHub(inst: Installed): Promise<Proc & { url: string }> {
  const sa = join(inst.dir, 'serviceaccount');
  mkdirSync(sa);
  writeFileSync(join(sa, 'token'), SA_TOKEN);
  writeFileSync(join(sa, 'namespace'), 'vxtrace');
  writeFileSync(join(sa, 'ca.crt'), readFileSync(inst.api.caFile!));
  mkdirSync(join(inst.dir, 'upper'));
  mkdirSync(join(inst.dir, 'work'));
  mkdirSync(join(inst.dir, 'home'));
  // Only this process sees /run/secrets: an overlay on /run in a mount namespace of its own.
  const script = [
    `mount -t overlay overlay -o lowerdir=/run,upperdir=${inst.dir}/upper,workdir=${inst.dir}/work /run`,
    'mkdir -p /run/secrets/kubernetes.io',
    `cp -r ${sa} /run/secrets/kubernetes.io/serviceaccount`,
    'exec "$@"',
  ].join(' && ');
  const port = new URL(inst.api.server).port;
  const p = start(['hub', '--listen', `unix:${inst.socket}`, '--token-file', inst.tokenFile], {
    wrap: ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh'],
    env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port, KUBECONFIG: '', HOME: join(inst.dir, 'home') },
  });
  const m = await p.waitFor(/^hub listening on (\S+?)(?: \(token required\))?: agents/m);
  return Object.assign(p, { url: m[1]! });
}

/**
 * `vxtrace agent` as the DaemonSet runs it on `node`: NODE_NAME from the downward API, --hub and
 * --token-file, the API server's address in its environment but no token to use it, inside the
 * node's network namespace (on a real node: the host's, hostNetwork).
 */
export async function startDaemonSetAgent(lab: LabState, inst: Installed, hub: string, node: string): Promise<Proc> {
  const netns = lab.nodes.find((n) => n.name === node)!.netns;
  const port = new URL(inst.api.server).port;
  const p = start(['agent', '--hub', hub, '--token-file', inst.tokenFile], {
    netns,
    env: { NODE_NAME: node, KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: port, KUBECONFIG: '', HOME: join(inst.dir, 'home') },
  });
  await p.waitFor(/connected to the hub/);
  return p;
}
