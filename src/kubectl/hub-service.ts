// Where the installed hub is, as the API describes it (deploy/): the Service `vxtrace-hub` in the
// install namespace, a ready Pod behind it and the container port its service port targets, and
// the hub's token from the Secret `vxtrace-hub-token`.
import { CoreV1Api, type KubeConfig, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { EnvironmentError, UsageError } from '../errors.js';

export const HUB_SERVICE = 'vxtrace-hub';
export const HUB_TOKEN_SECRET = 'vxtrace-hub-token';
export const HUB_PORT = 4280;

export interface HubPod {
  namespace: string;
  pod: string;
  /** The container port the Service's port 4280 leads to. */
  port: number;
}

/** What the API answered, in one line: a status code with what it means for this user, or the transport error. */
function apiFailure(err: unknown, what: string, server: string, namespace: string): Error {
  const e = err as { code?: number; message?: string };
  if (e.code === 404) return new EnvironmentError(`${what}: not found in namespace ${namespace} at ${server}: is vxtrace installed there? (kubectl apply -k deploy/, docs/install.md), or give --vxtrace-namespace NS`);
  if (e.code === 401) return new EnvironmentError(`${what}: the API server at ${server} did not accept your credentials (HTTP 401): log in again, or choose another --context`);
  if (e.code === 403) return new EnvironmentError(`${what}: your user may not do this in namespace ${namespace} (HTTP 403): kubectl vxtrace needs get services and secrets, list pods and create pods/portforward there (docs/install.md)`);
  if (typeof e.code === 'number') return new EnvironmentError(`${what}: the API server at ${server} answered HTTP ${e.code}`);
  return new EnvironmentError(`${what}: cannot reach the API server at ${server}: ${(e.message ?? String(err)).split('\n')[0]}`);
}

const isReady = (p: V1Pod) =>
  p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** The container port a Service port leads to in `pod` (a number, or a port name the pod declares). */
function targetPort(svc: V1Service, pod: V1Pod): number {
  const ports = svc.spec?.ports ?? [];
  const sp = ports.find((p) => p.port === HUB_PORT) ?? ports[0];
  if (!sp) throw new EnvironmentError(`Service ${svc.metadata?.namespace}/${HUB_SERVICE} has no port: reinstall deploy/`);
  const t = sp.targetPort ?? sp.port;
  if (typeof t === 'number') return t;
  if (/^\d+$/.test(t)) return Number(t);
  for (const c of pod.spec?.containers ?? []) for (const p of c.ports ?? []) if (p.name === t) return p.containerPort;
  throw new EnvironmentError(`pod ${pod.metadata?.name} declares no port named ${t} (the target of Service ${HUB_SERVICE}): reinstall deploy/`);
}

export async function findHubPod(kc: KubeConfig, namespace: string): Promise<HubPod> {
  const api = kc.makeApiClient(CoreV1Api);
  const server = kc.getCurrentCluster()?.server ?? '(no server)';
  let svc: V1Service;
  try {
    svc = await api.readNamespacedService({ name: HUB_SERVICE, namespace });
  } catch (err) {
    throw apiFailure(err, `Service ${HUB_SERVICE}`, server, namespace);
  }
  const selector = Object.entries(svc.spec?.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  if (!selector) throw new EnvironmentError(`Service ${namespace}/${HUB_SERVICE} selects no pods: reinstall deploy/`);
  let pods: V1Pod[];
  try {
    pods = (await api.listNamespacedPod({ namespace, labelSelector: selector })).items;
  } catch (err) {
    throw apiFailure(err, `the hub's pods (${selector})`, server, namespace);
  }
  const ready = pods.filter(isReady).sort((a, b) => String(a.metadata?.name).localeCompare(String(b.metadata?.name)));
  if (!ready.length) {
    const states = pods.map((p) => `${p.metadata?.name} ${p.status?.phase ?? 'Unknown'}${p.status?.phase === 'Running' ? ' (not ready)' : ''}`);
    throw new EnvironmentError(`no ready hub pod behind Service ${namespace}/${HUB_SERVICE}${states.length ? ` (${states.join(', ')})` : ' (no pods)'}: see \`kubectl -n ${namespace} describe deploy/${HUB_SERVICE}\``);
  }
  const pod = ready[0]!;
  return { namespace, pod: pod.metadata!.name!, port: targetPort(svc, pod) };
}

/** The token agents and clients present to the hub: key `token` of the Secret. */
export async function readHubToken(kc: KubeConfig, namespace: string): Promise<string> {
  const api = kc.makeApiClient(CoreV1Api);
  const server = kc.getCurrentCluster()?.server ?? '(no server)';
  let data: Record<string, string> | undefined;
  try {
    data = (await api.readNamespacedSecret({ name: HUB_TOKEN_SECRET, namespace })).data;
  } catch (err) {
    throw apiFailure(err, `Secret ${HUB_TOKEN_SECRET} (the hub's token)`, server, namespace);
  }
  const token = data?.token ? Buffer.from(data.token, 'base64').toString('utf8').split('\n')[0]!.trim() : '';
  if (!token) throw new UsageError(`Secret ${namespace}/${HUB_TOKEN_SECRET} has no key "token": create it as docs/install.md says`);
  return token;
}
