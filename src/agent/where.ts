// Which network namespace is an agent's node: a lab node's `vxtrace.io/netns` (entered from
// outside, as follow does), unless the agent already runs inside it (`ip netns exec ... vxtrace
// agent`); a real node (no annotation, or no cluster state at all) is the agent's own namespace.
import { statSync } from 'node:fs';
import { loadCluster, type ClusterSourceOptions } from '../cluster/source.js';
import { VXTRACE_NETNS } from '../cluster/k8s.js';
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

export async function agentNamespace(node: string, source: ClusterSourceOptions): Promise<AgentNamespace> {
  const explicit = source.cluster !== undefined || source.kubeconfig !== undefined || source.lab !== undefined;
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
