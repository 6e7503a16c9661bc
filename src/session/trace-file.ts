// The pcapng trace of a tracing run (`follow --write`, `capture`): self-contained, so the cluster
// objects and every node's kernel state go in first, and `vxtrace read` needs nothing else.
import type { ClusterObjects } from '../cluster/list.js';
import type { V1List } from '../cluster/k8s.js';
import type { NodeKernelState } from '../cluster/kernel.js';
import type { ClusterModel } from '../cluster/model.js';
import { defaultSnaplen } from '../datapath/index.js';
import { PcapngWriter } from '../pcapng/index.js';

export interface TraceFileOptions {
  rotateSize?: number;
  rotateCount?: number;
  /** What the tracer keeps of each frame (default: the datapath's). */
  snaplen?: number;
}

/** The kernel state map for a snapshot (pcapng): by node name. */
export function kernelSnapshot(model: ClusterModel): Record<string, NodeKernelState> {
  const out: Record<string, NodeKernelState> = {};
  for (const n of model.nodes) if (n.kernel) out[n.name] = n.kernel;
  return out;
}

function toList(objects: ClusterObjects): V1List {
  return { apiVersion: 'v1', kind: 'List', items: [...objects.nodes, ...objects.pods] };
}

/** Opens a trace holding the cluster snapshot, for a run that traces `tracedNodes`. */
export function openTrace(file: string, objects: ClusterObjects, model: ClusterModel, tracedNodes: readonly string[], o: TraceFileOptions): PcapngWriter {
  return PcapngWriter.open(file, {
    snapshot: { cluster: toList(objects), nodeState: kernelSnapshot(model), takenAt: new Date().toISOString(), tracedNodes: [...tracedNodes] },
    rotateSize: o.rotateSize,
    rotateCount: o.rotateCount,
    // The interfaces' snaplen is what the tracer keeps of each frame.
    snaplen: o.snaplen ?? defaultSnaplen(),
  });
}
