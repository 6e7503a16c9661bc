// What vxtrace stores with each packet: a human comment (shown by Wireshark/tshark) and a
// machine-readable record (JSON in a custom option) from which `vxtrace read` rebuilds the exact
// HopEvent. docs/trace-format.md documents both.
import type { DeviceRole, Direction, HopEvent } from '../datapath/hop.js';
import type { PacketPath, PathOutcome } from '../correlate/path.js';
import { TRACE_FORMAT_VERSION } from './format.js';

/** A hop's fate as far as the writer knew it: its path's outcome, or 'unknown' (written without a path). */
export type HopOutcome = PathOutcome | 'unknown';

export interface HopAnnotation {
  outcome: HopOutcome;
  /** For a dropped path: where and why (also on the hops before the drop). */
  pathDrop?: PacketPath['drop'];
}

/** The JSON in each packet's vxtrace custom option. */
export interface HopRecordJson {
  v: number;
  outcome: HopOutcome;
  pathDrop?: PacketPath['drop'];
  /** The HopEvent without `frame` (that is the packet data), bigints as decimal strings. */
  hop: Record<string, unknown>;
}

const bigintAsString = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value);

export function encodeHopRecord(event: HopEvent, annotation: HopAnnotation): string {
  const { frame: _frame, ...hop } = event;
  // The two known bigints by hand: JSON.stringify with a replacer is several times slower.
  const fields: Record<string, unknown> = hop;
  fields.timestampNs = String(event.timestampNs);
  fields.wallTimeNs = String(event.wallTimeNs);
  const record: HopRecordJson = { v: TRACE_FORMAT_VERSION, outcome: annotation.outcome, hop: fields };
  if (annotation.pathDrop) record.pathDrop = annotation.pathDrop;
  try {
    return JSON.stringify(record);
  } catch (err) {
    // A bigint field added to HopEvent later: still written, as a decimal string.
    if (err instanceof TypeError) return JSON.stringify(record, bigintAsString);
    throw err;
  }
}

/** The interface a hop is recorded on: `node/device`, or `node/kfree_skb` for kernel drops. */
export function interfaceNameOf(event: Pick<HopEvent, 'kind' | 'node' | 'device'>): string {
  return event.kind === 'drop' ? `${event.node}/${DROP_INTERFACE}` : `${event.node}/${event.device}`;
}

/** The pseudo-device name of each node's drop interface (the tracepoint the drops come from). */
export const DROP_INTERFACE = 'kfree_skb';

/**
 * The packet comment: one line a person reads in Wireshark, stable enough to grep.
 *   vxtrace hop node1/flannel.1 egress fp=1a2b3c4d5e6f7081 10.244.1.2>10.244.2.3 icmp outcome=dropped reason=OTHERHOST
 *   vxtrace drop node2/eth1 ingress fp=... 10.244.1.2>10.244.2.3 icmp outcome=dropped reason=OTHERHOST at=ip_rcv_core
 */
export function hopComment(event: HopEvent, annotation: HopAnnotation): string {
  const parts = [
    'vxtrace',
    event.kind === 'drop' ? 'drop' : 'hop',
    `${event.node}/${event.device}`,
    event.direction,
    `fp=${event.fingerprint}`,
    `${event.inner.src}>${event.inner.dst}`,
    protocolName(event.inner.protocol),
  ];
  if (event.outer) parts.push(`outer=${event.outer.src}>${event.outer.dst}`, `vni=${event.outer.vni}`);
  parts.push(`outcome=${annotation.outcome}`);
  const reason = event.kind === 'drop' ? event.dropReason : annotation.pathDrop?.reason;
  if (reason) parts.push(`reason=${reason}`);
  const location = event.kind === 'drop' ? event.dropLocation : undefined;
  if (location) parts.push(`at=${location}`);
  if (event.kind !== 'drop' && annotation.pathDrop) parts.push(`dropped-at=${annotation.pathDrop.node}/${annotation.pathDrop.device}`);
  return parts.join(' ');
}

/**
 * Whether a hop's frame starts at the IP header rather than Ethernet: said by `frameStart`, or, for
 * a drop record from a decoder that does not set it, seen from the frame itself: an IPv4 header
 * whose addresses are the hop's own (outer or inner) addresses.
 */
export function frameStartsAtIp(event: HopEvent): boolean {
  if (event.frameStart === 'ip') return true;
  if (event.kind !== 'drop') return false;
  const f = event.frame;
  if (f.length < 20 || f[0]! >> 4 !== 4 || (f[0]! & 0x0f) < 5) return false;
  const src = `${f[12]}.${f[13]}.${f[14]}.${f[15]}`;
  const dst = `${f[16]}.${f[17]}.${f[18]}.${f[19]}`;
  const t = event.outer ?? event.inner;
  return (src === t.src && dst === t.dst) || (src === event.inner.src && dst === event.inner.dst);
}

function protocolName(p: number): string {
  return p === 1 ? 'icmp' : p === 6 ? 'tcp' : p === 17 ? 'udp' : p === 58 ? 'icmpv6' : `proto-${p}`;
}

// ---------------------------------------------------------------------------------------------
// Decoding, with validation: a damaged record is reported, never trusted.

export class HopRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HopRecordError';
  }
}

const ROLES: readonly DeviceRole[] = ['pod-bridge', 'vtep', 'uplink', 'other'];
const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];
const OUTCOMES: readonly HopOutcome[] = ['delivered', 'dropped', 'lost-in-underlay', 'vanished', 'in-flight', 'unknown'];

/** Parses a hop record and rebuilds its HopEvent with `frame`. Throws HopRecordError on anything malformed. */
export function decodeHopRecord(json: string, frame: Uint8Array): { event: HopEvent; annotation: HopAnnotation } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (err) {
    throw new HopRecordError(`the hop record is not JSON (${(err as Error).message})`);
  }
  const r = object(parsed, 'record');
  if (r.v !== TRACE_FORMAT_VERSION) throw new HopRecordError(`hop record version ${String(r.v)} is not ${TRACE_FORMAT_VERSION}`);
  const outcome = oneOf(r.outcome, OUTCOMES, 'outcome');
  const h = object(r.hop, 'hop');
  const event = { ...h } as Record<string, unknown>;
  event.timestampNs = bigintString(h.timestampNs, 'timestampNs');
  event.wallTimeNs = bigintString(h.wallTimeNs, 'wallTimeNs');
  oneOf(h.kind, ['tc', 'drop'] as const, 'kind');
  for (const k of ['node', 'device', 'fingerprint', 'innerSrcMac', 'innerDstMac']) str(h[k], k);
  oneOf(h.role, ROLES, 'role');
  oneOf(h.direction, DIRECTIONS, 'direction');
  for (const k of ['ifindex', 'netnsInode', 'skbLength']) int(h[k], k);
  const inner = object(h.inner, 'inner');
  tuple(inner, 'inner');
  for (const k of ['ipId', 'ipLength', 'ttl']) int(inner[k], `inner.${k}`);
  if (typeof inner.dontFragment !== 'boolean') throw new HopRecordError('inner.dontFragment is not a boolean');
  if (inner.icmp !== undefined) {
    const icmp = object(inner.icmp, 'inner.icmp');
    for (const k of ['type', 'code', 'id', 'seq']) int(icmp[k], `inner.icmp.${k}`);
  }
  if (inner.tcp !== undefined) {
    const tcp = object(inner.tcp, 'inner.tcp');
    for (const k of ['seq', 'flags']) int(tcp[k], `inner.tcp.${k}`);
  }
  if (h.outer !== undefined) {
    const outer = object(h.outer, 'outer');
    tuple(outer, 'outer');
    for (const k of ['vni', 'udpChecksum']) int(outer[k], `outer.${k}`);
    for (const k of ['srcMac', 'dstMac']) str(outer[k], `outer.${k}`);
  }
  if (h.dropReason !== undefined) str(h.dropReason, 'dropReason');
  if (h.dropReasonCode !== undefined) int(h.dropReasonCode, 'dropReasonCode');
  if (h.dropLocation !== undefined) str(h.dropLocation, 'dropLocation');
  if (h.frameStart !== undefined) oneOf(h.frameStart, ['ip'] as const, 'frameStart');
  event.frame = frame;
  const annotation: HopAnnotation = { outcome };
  if (r.pathDrop !== undefined) {
    const d = object(r.pathDrop, 'pathDrop');
    for (const k of ['node', 'device', 'reason']) str(d[k], `pathDrop.${k}`);
    if (d.location !== undefined) str(d.location, 'pathDrop.location');
    annotation.pathDrop = d as unknown as PacketPath['drop'];
  }
  return { event: event as unknown as HopEvent, annotation };
}

function object(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HopRecordError(`${what} is not an object`);
  return v as Record<string, unknown>;
}
function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new HopRecordError(`${what} is not a string`);
  return v;
}
function int(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new HopRecordError(`${what} is not an integer`);
  return v;
}
function oneOf<T extends string>(v: unknown, allowed: readonly T[], what: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw new HopRecordError(`${what} is not one of ${allowed.join(', ')}`);
  return v as T;
}
function bigintString(v: unknown, what: string): bigint {
  if (typeof v !== 'string' || !/^-?\d{1,20}$/.test(v)) throw new HopRecordError(`${what} is not a decimal integer string`);
  return BigInt(v);
}
function tuple(t: Record<string, unknown>, what: string): void {
  if (t.family !== 4 && t.family !== 6) throw new HopRecordError(`${what}.family is not 4 or 6`);
  for (const k of ['src', 'dst']) str(t[k], `${what}.${k}`);
  for (const k of ['protocol', 'srcPort', 'dstPort']) int(t[k], `${what}.${k}`);
}
