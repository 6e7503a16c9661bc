// PacketPath: one inner packet's journey, joined from its HopEvents (same fingerprint) across nodes.
import type { HopEvent, InnerPacket, OuterHeaders } from '../datapath/hop.js';

export type PathOutcome =
  /** Reached the destination pod's cni0 egress (or the pod, for same-node paths). */
  | 'delivered'
  /** The kernel dropped it: see `drop`. */
  | 'dropped'
  /** Left one node's uplink and never reached another node's uplink/VTEP. */
  | 'lost-in-underlay'
  /** Stopped being seen before delivery with no drop and no underlay leg to blame (e.g. left by an unwatched device). */
  | 'vanished'
  /** Still within its expiry window: more hops may come. */
  | 'in-flight'
  /**
   * Left the nodes this trace watches: sent across the underlay to a node that is not traced
   * (`capture --node`, or vxtrace running on one node of a real cluster). Its fate is not known.
   */
  | 'untraced';

export interface PathHop {
  event: HopEvent;
  /** Nanoseconds since the previous hop on the same clock (same node/machine), else undefined. */
  latencyNs?: bigint;
}

export interface PacketPath {
  fingerprint: string;
  inner: InnerPacket;
  /** Pod names (namespace/name) when the addresses resolve in the cluster model. */
  srcPod?: string;
  dstPod?: string;
  srcNode?: string;
  dstNode?: string;
  /** Hops in path order (hook position, then time). */
  hops: PathHop[];
  /** Outer headers of the underlay leg, as seen on the sender's uplink egress (or receiver's ingress). */
  outer?: OuterHeaders;
  outcome: PathOutcome;
  drop?: { node: string; device: string; reason: string; location?: string };
  /** Wall-clock nanoseconds (HopEvent.wallTimeNs) of the first and last hop. */
  firstSeenNs: bigint;
  lastSeenNs: bigint;
  /** Why the path was handed out: it reached a terminal hop (delivered/dropped), timed out, was flushed at the end of input, or was evicted to bound memory. */
  finishedBy?: 'terminal' | 'timeout' | 'flush' | 'evicted';
  /** Hops not kept because the path reached its hop limit (a loop repeats hops until the TTL runs out). */
  hopsDiscarded?: number;
}

/** True when the packet was sent by or to a known pod (not a node's own traffic). */
export const involvesPod = (p: Pick<PacketPath, 'srcPod' | 'dstPod'>): boolean => p.srcPod !== undefined || p.dstPod !== undefined;
