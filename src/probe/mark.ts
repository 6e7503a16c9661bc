// How vxtrace's own probes (`vxtrace check`) are marked, and recognised wherever packets are judged.
// A probe is an ICMP echo whose identifier, or a UDP datagram / TCP segment whose source and
// destination port are one number, in a range reserved for vxtrace (docs/check.md): 30208-30463
// (0x7600-0x76ff), below Linux's ephemeral ports (32768-60999), so no socket gets one by chance.
// A packet so marked counts as a probe only when one of its ends is not a pod (probes are sent from a
// node's pod-bridge address): pod-to-pod traffic is never taken for one. Replies are recognised too:
// the echo reply, the TCP reset, and the ICMP error (port unreachable) quoting a UDP probe. Pure.
import type { HopEvent, InnerPacket } from '../datapath/hop.js';

/** The first ICMP echo identifier / UDP and TCP port reserved for probes. */
export const PROBE_MARK_FIRST = 0x7600;
/** How many: tags 0..255. */
export const PROBE_MARK_COUNT = 256;

export type ProbeProtocol = 'icmp' | 'udp' | 'tcp';

export interface ProbeMark {
  protocol: ProbeProtocol;
  /** 0..255: the identifier or port minus PROBE_MARK_FIRST. */
  tag: number;
  /** An ICMP error quoting the probe (the reply to a UDP probe nothing listens for). */
  error?: boolean;
}

/** The identifier (ICMP) or port (UDP, TCP: source and destination) that carries `tag`. */
export const markOfTag = (tag: number): number => PROBE_MARK_FIRST + (tag % PROBE_MARK_COUNT);

const tagOf = (n: number): number | undefined => (n >= PROBE_MARK_FIRST && n < PROBE_MARK_FIRST + PROBE_MARK_COUNT ? n - PROBE_MARK_FIRST : undefined);

type Marked = Pick<HopEvent, 'inner' | 'frame' | 'frameStart' | 'outer'>;

/** The probe mark a hop's packet carries, or undefined (almost every packet: two comparisons). */
export function probeMarkOf(e: Marked): ProbeMark | undefined {
  const p = e.inner;
  if (p.family !== 4) return undefined;
  if (p.protocol === 1 && p.icmp) {
    const t = p.icmp.type;
    if (t === 8 || t === 0) {
      const tag = tagOf(p.icmp.id);
      return tag === undefined ? undefined : { protocol: 'icmp', tag };
    }
    // destination unreachable, time exceeded, parameter problem: they quote the packet they answer
    if (t === 3 || t === 11 || t === 12) return quotedMark(e);
    return undefined;
  }
  if ((p.protocol === 17 || p.protocol === 6) && p.srcPort === p.dstPort) {
    const tag = tagOf(p.srcPort);
    return tag === undefined ? undefined : { protocol: p.protocol === 17 ? 'udp' : 'tcp', tag };
  }
  return undefined;
}

/**
 * Whether a hop is of one of vxtrace's probes: marked, and not between two pods. `isPod` says
 * whether an address is a pod's (the cluster model); without it a marked packet counts as a probe.
 */
export function isProbe(e: Marked, isPod?: (ip: string) => boolean): boolean {
  if (!probeMarkOf(e)) return false;
  return !isPod || !(isPod(e.inner.src) && isPod(e.inner.dst));
}

/** The mark of the packet an ICMP error quotes, read from the captured frame. */
function quotedMark(e: Marked): ProbeMark | undefined {
  const f = e.frame;
  const ip = innerIpOffset(e);
  if (ip === undefined || f.length < ip + 20 || f[ip]! >> 4 !== 4 || f[ip + 9] !== 1) return undefined;
  const icmp = ip + (f[ip]! & 0x0f) * 4;
  const quoted = icmp + 8;
  if (f.length < quoted + 20 || f[quoted]! >> 4 !== 4) return undefined;
  const proto = f[quoted + 9]!;
  const l4 = quoted + (f[quoted]! & 0x0f) * 4;
  if (f.length < l4 + 8) return undefined;
  const u16 = (at: number) => (f[at]! << 8) | f[at + 1]!;
  if (proto === 17 || proto === 6) {
    const sport = u16(l4);
    const tag = sport === u16(l4 + 2) ? tagOf(sport) : undefined;
    return tag === undefined ? undefined : { protocol: proto === 17 ? 'udp' : 'tcp', tag, error: true };
  }
  if (proto === 1 && f[l4] === 8) {
    const tag = tagOf(u16(l4 + 4));
    return tag === undefined ? undefined : { protocol: 'icmp', tag, error: true };
  }
  return undefined;
}

/** Where the inner IPv4 header starts in a hop's frame (Ethernet, or IP for some drops; VXLAN-encapsulated on the uplinks). */
function innerIpOffset(e: Marked): number | undefined {
  const f = e.frame;
  let off = 0;
  const ether = (at: number): number | undefined => {
    if (f.length < at + 14) return undefined;
    let type = (f[at + 12]! << 8) | f[at + 13]!;
    let next = at + 14;
    if (type === 0x8100 && f.length >= at + 18) {
      type = (f[at + 16]! << 8) | f[at + 17]!;
      next = at + 18;
    }
    return type === 0x0800 ? next : undefined;
  };
  if (e.frameStart !== 'ip') {
    const next = ether(0);
    if (next === undefined) return undefined;
    off = next;
  }
  if (e.outer) {
    // outer IPv4, UDP (8), VXLAN (8), then the inner Ethernet frame
    if (f.length < off + 20) return undefined;
    const next = ether(off + (f[off]! & 0x0f) * 4 + 16);
    if (next === undefined) return undefined;
    off = next;
  }
  return off;
}

/** "ICMP echo", "UDP", "TCP" for messages. */
export const protocolName = (p: ProbeProtocol): string => (p === 'icmp' ? 'ICMP echo' : p.toUpperCase());
