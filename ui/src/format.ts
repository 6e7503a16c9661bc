// Words and numbers as the page shows them: the CLI's own describers (src/datapath/describe.ts,
// src/output/text.ts) where they exist, so that a packet is named the same in the terminal and here.
import { formatProtocol } from '../../src/datapath/describe.js';
import { formatDuration } from '../../src/output/text.js';
import type { InnerPacket } from '../../src/datapath/hop.js';
import { has, type Outcome, type PathMessage } from './wire.js';

/** 12µs, 1.3ms, 2.0s. */
export const duration = (ns: number): string => formatDuration(BigInt(Math.max(0, Math.round(ns))));

/** HH:MM:SS.mmm, UTC (as the CLI prints it). */
export function clock(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '--:--:--.---';
  return new Date(ms).toISOString().slice(11, 23);
}

/** "ICMP echo request id 7 seq 3", "TCP 40000 → 8080 [S]". */
export function protocolSummary(p: PathMessage): string {
  const m = p.inner ?? {};
  const inner: InnerPacket = {
    family: m.family === 6 ? 6 : 4,
    src: m.src ?? '',
    dst: m.dst ?? '',
    protocol: m.protocol ?? 0,
    srcPort: m.srcPort ?? 0,
    dstPort: m.dstPort ?? 0,
    ipId: m.ipId ?? 0,
    ipLength: m.ipLength ?? 0,
    ttl: m.ttl ?? 0,
    dontFragment: m.dontFragment ?? false,
  };
  if (m.icmp) inner.icmp = { type: m.icmp.type ?? 0, code: m.icmp.code ?? 0, id: m.icmp.id ?? 0, seq: m.icmp.seq ?? 0 };
  if (m.tcp) inner.tcp = { seq: m.tcp.seq ?? 0, flags: m.tcp.flags ?? 0 };
  return formatProtocol(inner);
}

export const OUTCOME_LABEL: Record<Outcome, string> = {
  delivered: 'delivered',
  dropped: 'dropped',
  'lost-in-underlay': 'lost in underlay',
  vanished: 'vanished',
  'in-flight': 'in flight',
  untraced: 'left traced nodes',
};

/** Where the packet died, in a few words: `node1/flannel.1 IP_INHDR`; empty when it was delivered. */
export function whereDied(p: PathMessage, outcome: Outcome): string {
  switch (outcome) {
    case 'delivered':
    case 'in-flight':
      return '';
    case 'dropped':
      return p.drop ? `${p.drop.node}/${p.drop.device} ${p.drop.reason}` : 'dropped';
    case 'lost-in-underlay':
      return `underlay after ${lastHop(p)}`;
    case 'vanished':
      return `after ${lastHop(p)}`;
    case 'untraced':
      return `after ${lastHop(p)}${has(p, 'dstNode') ? ` for ${p.dstNode}` : ''}`;
  }
}

function lastHop(p: PathMessage): string {
  const hops = p.hops ?? [];
  for (let i = hops.length - 1; i >= 0; i--) {
    const h = hops[i]!;
    if (h.kind !== 2) return `${h.node}/${h.device}`;
  }
  return 'the first hop';
}

/** A pod as the table shows it: without the default namespace. */
export const podLabel = (pod: string | null | undefined, ip: string | null | undefined): string => (pod ? pod.replace(/^default\//, '') : ip ?? '?');
