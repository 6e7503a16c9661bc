// Per-hop flow counters: the kernel counts every followed packet of every flow at every hook (map
// vxt_flows, bpf/vxtrace.h: struct vxt_flow_key and struct vxt_flow_stats), whatever happens to
// its record. This module is their one decoder (the addon hands them over summed across CPUs, as
// one buffer) and the type the rest of vxtrace uses. test/unit/datapath-layout checks the
// layouts against the addon's offsetof.
import { ipString } from '../net/address.js';
import type { DeviceRole, Direction, PacketTuple } from './hop.js';
import { KIND_DROP, type DecodeContext } from './decode.js';

/**
 * A flow as the kernel keys it: the inner packet's addresses, protocol and ports, one direction
 * (for ICMP echo, srcPort is the echo id and dstPort 0).
 */
export type FlowTuple = PacketTuple;

/** The counters of one flow at one hook (or of its drops on one device for one reason). */
export interface FlowHopCount {
  node: string;
  device: string;
  role: DeviceRole;
  direction: Direction;
  /** 'tc': packets that passed the hook; 'drop': packets the kernel dropped there, for `dropReason`. */
  kind: 'tc' | 'drop';
  dropReason?: string;
  /** Wire packets (a GSO skb counts its segments) and wire bytes (frames as seen at the hook). */
  packets: number;
  bytes: number;
  /** Wall-clock ns of the first and last packet. */
  firstNs: bigint;
  lastNs: bigint;
  /** Records written for these packets, shed by choice (sampled) and lost (ring buffer full), in skbs. */
  records: number;
  sampled: number;
  lost: number;
}

export interface FlowCount extends FlowHopCount {
  flow: FlowTuple;
}

/** struct vxt_flow_key (bpf/vxtrace.h). */
export const FLOW_KEY_LAYOUT = {
  size: 56,
  fields: {
    saddr: { offset: 0, size: 16 },
    daddr: { offset: 16, size: 16 },
    netns_cookie: { offset: 32, size: 8 },
    ifindex: { offset: 40, size: 4 },
    drop_reason: { offset: 44, size: 4 },
    sport: { offset: 48, size: 2 },
    dport: { offset: 50, size: 2 },
    family: { offset: 52, size: 1 },
    protocol: { offset: 53, size: 1 },
    kind: { offset: 54, size: 1 },
    direction: { offset: 55, size: 1 },
  },
} as const;

/** struct vxt_flow_stats (bpf/vxtrace.h), as the addon sums it. */
export const FLOW_STATS_LAYOUT = {
  size: 72,
  fields: {
    packets: { offset: 0, size: 8 },
    bytes: { offset: 8, size: 8 },
    first_ns: { offset: 16, size: 8 },
    last_ns: { offset: 24, size: 8 },
    records: { offset: 32, size: 8 },
    sampled: { offset: 40, size: 8 },
    lost: { offset: 48, size: 8 },
    window: { offset: 56, size: 8 },
    window_packets: { offset: 64, size: 8 },
  },
} as const;

const K = FLOW_KEY_LAYOUT.fields;
const S = FLOW_STATS_LAYOUT.fields;
const ENTRY = FLOW_KEY_LAYOUT.size + FLOW_STATS_LAYOUT.size;

/** The addon's flowCounters() buffer: entries of (key, summed stats), back to back. */
export function decodeFlowCounters(buf: Uint8Array, ctx: Pick<DecodeContext, 'hookOf' | 'dropReasonName' | 'monotonicToWallNs'>): FlowCount[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: FlowCount[] = [];
  for (let at = 0; at + ENTRY <= buf.byteLength; at += ENTRY) {
    const family = view.getUint8(at + K.family.offset);
    if (family !== 4 && family !== 6) continue;
    const kind = view.getUint8(at + K.kind.offset) === KIND_DROP ? 'drop' : 'tc';
    const hook = ctx.hookOf(view.getBigUint64(at + K.netns_cookie.offset, true), view.getUint32(at + K.ifindex.offset, true));
    const s = at + FLOW_KEY_LAYOUT.size;
    const u64 = (o: number) => Number(view.getBigUint64(s + o, true));
    const first = view.getBigUint64(s + S.first_ns.offset, true);
    const last = view.getBigUint64(s + S.last_ns.offset, true);
    const count: FlowCount = {
      flow: {
        family,
        src: ipString(buf, at + K.saddr.offset, family),
        dst: ipString(buf, at + K.daddr.offset, family),
        protocol: view.getUint8(at + K.protocol.offset),
        srcPort: view.getUint16(at + K.sport.offset, false),
        dstPort: view.getUint16(at + K.dport.offset, false),
      },
      node: hook.node,
      device: hook.device,
      role: hook.role,
      direction: view.getUint8(at + K.direction.offset) === 1 ? 'egress' : 'ingress',
      kind,
      packets: u64(S.packets.offset),
      bytes: u64(S.bytes.offset),
      firstNs: first ? first + ctx.monotonicToWallNs : 0n,
      lastNs: last ? last + ctx.monotonicToWallNs : 0n,
      records: u64(S.records.offset),
      sampled: u64(S.sampled.offset),
      lost: u64(S.lost.offset),
    };
    if (kind === 'drop') count.dropReason = ctx.dropReasonName(view.getUint32(at + K.drop_reason.offset, true));
    out.push(count);
  }
  return out;
}
