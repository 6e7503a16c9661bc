// The kernel's per-hop flow counters on the wire (proto/vxtrace.proto): an agent's read of them
// (AgentReport.flow_counters: FlowCounters) and the hub's merged summaries for a client
// (Event.flows: Flows) <-> the domain's FlowCount and FlowSummary (src/datapath/flow.ts,
// src/correlate/flows.ts). src/wire/codec.ts hooks these into its AgentReport and StreamEvent; a
// message that is not what it claims throws WireError.
import type { vxtrace } from '../generated/vxtrace.js';
import type { DeviceRole } from '../datapath/hop.js';
import type { FlowCount, FlowHopCount, FlowTuple } from '../datapath/flow.js';
import type { FlowSummary } from '../correlate/flows.js';

type Long = { low: number; high: number; unsigned?: boolean };

/** Entries of one FlowCounters frame at most (about 200 bytes each: a frame stays well under 1 MiB). */
export const MAX_FLOW_COUNTERS_PER_FRAME = 2048;

/** One read (or a part of one) of an agent's kernel flow counters, absolute since its tracer started. */
export interface FlowCounterReport {
  /** Its tracer: a new one counts from zero again. */
  tracerId: bigint;
  /** The agent's wall clock just before the read (ns since the epoch). */
  readTimeNs: bigint;
  /** Every entry the kernel holds, not only the changed ones. */
  full: boolean;
  /** More parts of this read follow. */
  more: boolean;
  /** The entries; `node` is the agent's own (empty on the wire: the hub names it). */
  counts: FlowCount[];
}

/** When a node's agent last read its counters (hub wall clock). */
export interface FlowRead {
  node: string;
  timeNs: bigint;
}

/** Event.flows: the summaries of flows that changed, and each node's last read. */
export interface FlowsEvent {
  flows: FlowSummary[];
  reads: FlowRead[];
}

/** Thrown by the decoders below; codec.ts turns it into its WireError. */
export class FlowWireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlowWireError';
  }
}

const ROLES: DeviceRole[] = ['pod-bridge', 'vtep', 'uplink', 'other'];

const u64 = (v: number): Long => {
  const n = BigInt(Math.max(0, Math.trunc(v)));
  return { low: Number(n & 0xffffffffn) | 0, high: Number(n >> 32n) | 0, unsigned: true };
};
const i64 = (v: bigint): Long => {
  const u = BigInt.asUintN(64, v);
  return { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0 };
};
function bigOf(v: number | Long | null | undefined, signed: boolean): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  const u = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return signed ? BigInt.asIntN(64, u) : u;
}
const numOf = (v: number | Long | null | undefined): number => Number(bigOf(v, false));

function tupleMsg(f: FlowTuple): vxtrace.v1.IFlowTuple {
  return { family: f.family, src: f.src, dst: f.dst, protocol: f.protocol, srcPort: f.srcPort, dstPort: f.dstPort };
}

function tupleOf(m: vxtrace.v1.IFlowTuple | null | undefined): FlowTuple {
  if (!m) throw new FlowWireError('a flow counter names no flow');
  if (m.family !== 4 && m.family !== 6) throw new FlowWireError(`a flow has address family ${m.family}, not 4 or 6`);
  return { family: m.family, src: m.src ?? '', dst: m.dst ?? '', protocol: m.protocol ?? 0, srcPort: m.srcPort ?? 0, dstPort: m.dstPort ?? 0 };
}

function hopMsg(h: FlowHopCount): vxtrace.v1.IFlowHop {
  const m: vxtrace.v1.IFlowHop = {
    node: h.node,
    device: h.device,
    role: ROLES.indexOf(h.role) + 1,
    direction: h.direction === 'egress' ? 2 : 1,
    kind: h.kind === 'drop' ? 2 : 1,
    packets: u64(h.packets) as never,
    bytes: u64(h.bytes) as never,
    firstNs: i64(h.firstNs) as never,
    lastNs: i64(h.lastNs) as never,
    records: u64(h.records) as never,
    sampled: u64(h.sampled) as never,
    lost: u64(h.lost) as never,
  };
  if (h.dropReason !== undefined) m.dropReason = h.dropReason;
  return m;
}

// Key order as src/datapath/flow.ts builds a FlowHopCount, so that NDJSON of either is the same.
function hopOf(m: vxtrace.v1.IFlowHop | null | undefined): FlowHopCount {
  if (!m) throw new FlowWireError('a flow counter has no hop');
  const role = ROLES[(m.role ?? 0) - 1];
  if (!role) throw new FlowWireError(`flow hop role ${m.role} is not one vxtrace.v1 defines`);
  if (m.direction !== 1 && m.direction !== 2) throw new FlowWireError(`flow hop direction ${m.direction} is not one vxtrace.v1 defines`);
  if (m.kind !== 1 && m.kind !== 2) throw new FlowWireError(`flow hop kind ${m.kind} is not one vxtrace.v1 defines`);
  const h: FlowHopCount = {
    node: m.node ?? '',
    device: m.device ?? '',
    role,
    direction: m.direction === 2 ? 'egress' : 'ingress',
    kind: m.kind === 2 ? 'drop' : 'tc',
    packets: numOf(m.packets),
    bytes: numOf(m.bytes),
    firstNs: bigOf(m.firstNs, true),
    lastNs: bigOf(m.lastNs, true),
    records: numOf(m.records),
    sampled: numOf(m.sampled),
    lost: numOf(m.lost),
  };
  if (m.dropReason != null && Object.prototype.hasOwnProperty.call(m, 'dropReason')) {
    // dropReason sits after kind in a decoded FlowCount: rebuild in that order.
    const { packets, bytes, firstNs, lastNs, records, sampled, lost, ...head } = h;
    return { ...head, dropReason: m.dropReason, packets, bytes, firstNs, lastNs, records, sampled, lost };
  }
  return h;
}

export function flowCountersMessage(r: FlowCounterReport): vxtrace.v1.IFlowCounters {
  return {
    tracerId: { ...i64(r.tracerId), unsigned: true } as never,
    readTimeNs: i64(r.readTimeNs) as never,
    full: r.full,
    more: r.more,
    counters: r.counts.map((c) => {
      const { flow, ...hop } = c;
      return { flow: tupleMsg(flow), hop: hopMsg({ ...hop, node: '' }) };
    }),
  };
}

export function flowCountersOf(m: vxtrace.v1.IFlowCounters): FlowCounterReport {
  return {
    tracerId: bigOf(m.tracerId, false),
    readTimeNs: bigOf(m.readTimeNs, true),
    full: !!m.full,
    more: !!m.more,
    counts: (m.counters ?? []).map((c) => ({ flow: tupleOf(c.flow), ...hopOf(c.hop) })),
  };
}

function summaryMsg(s: FlowSummary): vxtrace.v1.IFlowSummary {
  const m: vxtrace.v1.IFlowSummary = { flow: tupleMsg(s.flow), hops: s.hops.map(hopMsg), elsewhere: s.elsewhere.map(hopMsg), drops: s.drops.map(hopMsg) };
  if (s.srcPod !== undefined) m.srcPod = s.srcPod;
  if (s.dstPod !== undefined) m.dstPod = s.dstPod;
  return m;
}

function summaryOf(m: vxtrace.v1.IFlowSummary): FlowSummary {
  const s: FlowSummary = { flow: tupleOf(m.flow), hops: (m.hops ?? []).map(hopOf), elsewhere: (m.elsewhere ?? []).map(hopOf), drops: (m.drops ?? []).map(hopOf) };
  if (m.srcPod != null && Object.prototype.hasOwnProperty.call(m, 'srcPod')) s.srcPod = m.srcPod;
  if (m.dstPod != null && Object.prototype.hasOwnProperty.call(m, 'dstPod')) s.dstPod = m.dstPod;
  return s;
}

export function flowsMessage(e: FlowsEvent): vxtrace.v1.IFlows {
  return { flows: e.flows.map(summaryMsg), reads: e.reads.map((r) => ({ node: r.node, timeNs: i64(r.timeNs) as never })) };
}

export function flowsOf(m: vxtrace.v1.IFlows): FlowsEvent {
  return { flows: (m.flows ?? []).map(summaryOf), reads: (m.reads ?? []).map((r) => ({ node: r.node ?? '', timeNs: bigOf(r.timeNs, true) })) };
}

/** A flow's identity (one direction), as summarizeFlows keys it. */
export const flowKeyOf = (f: FlowTuple): string => `${f.family}|${f.src}|${f.dst}|${f.protocol}|${f.srcPort}|${f.dstPort}`;
