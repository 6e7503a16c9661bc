// Which network namespace is an agent's node: a lab node's `vxtrace.io/netns` (entered from
// outside, as follow does), unless the agent already runs inside it (`ip netns exec ... vxtrace
// agent`); a real node (no annotation, or no cluster state at all) is the agent's own namespace.
// Started inside a lab node's namespace without a cluster source, it reads that lab.
import { statSync } from 'node:fs';
import { loadCluster, type ClusterSourceOptions } from '../cluster/source.js';
import { VXTRACE_NETNS } from '../cluster/k8s.js';
import { labOfNetns, listLabs, ownNetnsName, readLabRecord } from '../cluster/labs.js';
import { loadClusterFile } from '../cluster/list.js';
import { UsageError, VxtraceError } from '../errors.js';

export interface AgentNamespace {
  /** The namespace to enter; undefined: this process's own. */
  netns?: string;
  /** In words, for the start line. */
  why: string;
}

function inode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** The lab whose node's namespace this process runs in (by the lab's cluster file: a node's vxtrace.io/netns). */
function labOfOwnNamespace(): string | undefined {
  const own = ownNetnsName();
  const lab = own && labOfNetns(own);
  if (!lab || !listLabs().includes(lab)) return undefined;
  const record = readLabRecord(lab);
  if (!record) return undefined;
  try {
    return loadClusterFile(record.clusterFile).nodes.some((n) => n.metadata.annotations?.[VXTRACE_NETNS] === own) ? lab : undefined;
  } catch {
    return undefined;
  }
}

export async function agentNamespace(node: string, source: ClusterSourceOptions): Promise<AgentNamespace> {
  const explicit = source.cluster !== undefined || source.kubeconfig !== undefined || source.lab !== undefined;
  // In a pod (every container has KUBERNETES_SERVICE_HOST) and asked for no cluster state: the
  // DaemonSet's agent, on its node. It reads nothing from the API (it has no token for it).
  if (!explicit && process.env.KUBERNETES_SERVICE_HOST) return { why: 'this machine is the node (in a pod: no cluster state read)' };
  // Inside a lab node's namespace (`ip netns exec vxt-LAB-NODE vxtrace agent`): that lab, whatever
  // else is up (other labs, a kubeconfig).
  const lab = explicit ? undefined : labOfOwnNamespace();
  if (lab) source = { lab };
  let objects;
  try {
    objects = (await loadCluster(source)).objects;
  } catch (err) {
    // Without cluster state the agent is on a real node: its own namespace is the node's.
    if (!explicit && err instanceof VxtraceError && err.kind === 'environment') return { why: 'this machine is the node (no cluster state read)' };
    throw err;
  }
  const n = objects.nodes.find((x) => x.metadata.name === node);
  if (!n) throw new UsageError(`node ${node} is not in the cluster (nodes: ${objects.nodes.map((x) => x.metadata.name).join(', ')}): give --node NAME`);
  const netns = n.metadata.annotations?.[VXTRACE_NETNS];
  if (!netns) return { why: 'this machine is the node' };
  const self = inode('/proc/self/ns/net');
  if (self !== undefined && self === inode(`/run/netns/${netns}`)) return { why: `running inside its network namespace ${netns}` };
  return { netns, why: `network namespace ${netns}` };
}
