// The one decoder of the kernel's hop record (struct vxt_hop, bpf/vxtrace.h) into HopEvent.
// Pure: no I/O. What the record cannot say by itself (which node and device a netns cookie and
// ifindex are, the drop reason's name, the freeing function, the wall clock) comes in through
// DecodeContext. test/unit/datapath-layout checks HOP_LAYOUT, L3_LAYOUT and FP_KEY_LAYOUT
// against the addon's sizeof/offsetof.
import { ipBytes, ipString } from '../net/address.js';
import type { DeviceRole, Direction, HopEvent, InnerPacket, OuterHeaders, PacketTuple } from './hop.js';

/** Field offsets and sizes of struct vxt_l3 (one IP header + L4 ports). */
export const L3_LAYOUT = {
  size: 40,
  saddr: { offset: 0, size: 16 },
  daddr: { offset: 16, size: 16 },
  sport: { offset: 32, size: 2 },
  dport: { offset: 34, size: 2 },
  family: { offset: 36, size: 1 },
  protocol: { offset: 37, size: 1 },
  ttl: { offset: 38, size: 1 },
} as const;

/** Field offsets and sizes of struct vxt_hop; frame bytes follow at `size`. */
export const HOP_LAYOUT = {
  size: 192,
  recordAlign: 8,
  fields: {
    ts_ns: { offset: 0, size: 8 },
    netns_cookie: { offset: 8, size: 8 },
    fingerprint: { offset: 16, size: 8 },
    drop_location: { offset: 24, size: 8 },
    ifindex: { offset: 32, size: 4 },
    skb_len: { offset: 36, size: 4 },
    cap_len: { offset: 40, size: 4 },
    drop_reason: { offset: 44, size: 4 },
    kind: { offset: 48, size: 1 },
    direction: { offset: 49, size: 1 },
    flags: { offset: 50, size: 2 },
    vxlan_vni: { offset: 52, size: 4 },
    outer: { offset: 56, size: 40 },
    inner: { offset: 96, size: 40 },
    outer_src_mac: { offset: 136, size: 6 },
    outer_dst_mac: { offset: 142, size: 6 },
    inner_src_mac: { offset: 148, size: 6 },
    inner_dst_mac: { offset: 154, size: 6 },
    outer_udp_csum: { offset: 160, size: 2 },
    ip_id: { offset: 162, size: 2 },
    ip_len: { offset: 164, size: 2 },
    icmp_type: { offset: 166, size: 1 },
    icmp_code: { offset: 167, size: 1 },
    icmp_id: { offset: 168, size: 2 },
    icmp_seq: { offset: 170, size: 2 },
    tcp_seq: { offset: 172, size: 4 },
    flow_label: { offset: 176, size: 4 },
    tcp_flags: { offset: 180, size: 1 },
    gso_size: { offset: 182, size: 2 },
    gso_segs: { offset: 184, size: 2 },
  },
} as const;

/** Field offsets and sizes of struct vxt_fp_key: what the kernel hashes into the fingerprint. */
export const FP_KEY_LAYOUT = {
  size: 56,
  fields: {
    saddr: { offset: 0, size: 16 },
    daddr: { offset: 16, size: 16 },
    sport: { offset: 32, size: 2 },
    dport: { offset: 34, size: 2 },
    ip_id: { offset: 36, size: 2 },
    ip_len: { offset: 38, size: 2 },
    tcp_seq: { offset: 40, size: 4 },
    flow_label: { offset: 44, size: 4 },
    icmp_id: { offset: 48, size: 2 },
    icmp_seq: { offset: 50, size: 2 },
    family: { offset: 52, size: 1 },
    protocol: { offset: 53, size: 1 },
    icmp_type: { offset: 54, size: 1 },
  },
} as const;

export const KIND_TC = 1;
export const KIND_DROP = 2;
export const DIR_EGRESS = 1;
export const F_ENCAP = 1 << 0;
export const F_DF = 1 << 1;
export const F_FRAGMENT = 1 << 2;
export const F_L3_START = 1 << 3;
export const F_HAS_L4 = 1 << 4;
export const F_SHEDDING = 1 << 5;
export const F_SAMPLED = 1 << 6;

/**
 * Whether the kernel kept this hop's record while it was sampling the packet's flow at that hook
 * (VXT_F_SAMPLED): the packet's other hops may have been shed by choice, so a path of it that ends
 * early says nothing about its fate. Read from the record itself; false for a hop without one
 * (read from a trace, or from the per-record wire form).
 */
export function keptWhileSampling(e: HopEvent): boolean {
  const r = e.record;
  return r !== undefined && r.byteLength >= F.flags.offset + 2 && ((r[F.flags.offset]! | (r[F.flags.offset + 1]! << 8)) & F_SAMPLED) !== 0;
}

const F = HOP_LAYOUT.fields;

/** Where a hook sits, as user space knows it from its attach table. */
export interface HookIdentity {
  node: string;
  device: string;
  role: DeviceRole;
  netnsInode: number;
}

export interface DecodeContext {
  /** The hook (or, for drops, the device) behind a network namespace cookie and ifindex. */
  hookOf(netnsCookie: bigint, ifindex: number): HookIdentity;
  /** Name of an enum skb_drop_reason value (from the kernel's BTF). */
  dropReasonName(code: number): string;
  /** Kernel symbol containing an address, when known. */
  symbolOf(address: bigint): string | undefined;
  /** Add to a CLOCK_MONOTONIC timestamp to get wall-clock nanoseconds since the epoch. */
  monotonicToWallNs: bigint;
}

export class RecordDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordDecodeError';
  }
}

/** Padded size of the record starting at offset (header + captured bytes, aligned). */
export function recordSize(view: DataView, offset: number): number {
  const cap = view.getUint32(offset + F.cap_len.offset, true);
  const raw = HOP_LAYOUT.size + cap;
  return Math.ceil(raw / HOP_LAYOUT.recordAlign) * HOP_LAYOUT.recordAlign;
}

/** Decode every record of one batch (records back to back, each padded to 8 bytes). */
export function decodeBatch(batch: Uint8Array, ctx: DecodeContext): HopEvent[] {
  const out: HopEvent[] = [];
  decodeBatchChunks(batch, ctx, Infinity, (events) => void out.push(...events));
  return out;
}

/**
 * Decode one batch in chunks of at most `chunk` records, handing each to `onChunk` before decoding
 * the next: a chunk's events can be done with (and collected young) before the next is made,
 * instead of a whole batch of them living at once.
 */
export function decodeBatchChunks(batch: Uint8Array, ctx: DecodeContext, chunk: number, onChunk: (events: HopEvent[]) => void): void {
  // Views into a plain Uint8Array (a Buffer's subarray is a Buffer: slower to make, and nothing
  // downstream needs one).
  const bytes = batch.constructor === Uint8Array ? batch : new Uint8Array(batch.buffer, batch.byteOffset, batch.byteLength);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let events: HopEvent[] = [];
  // The hooks of this batch, by netns cookie (low word) and ifindex: a handful, so that a record
  // costs no BigInt-keyed lookup in the context.
  const hooks: HookMemo = new Map();
  let offset = 0;
  while (offset < bytes.byteLength) {
    if (bytes.byteLength - offset < HOP_LAYOUT.size) {
      throw new RecordDecodeError(`truncated hop record at byte ${offset} of a ${bytes.byteLength}-byte batch`);
    }
    const cap = view.getUint32(offset + F.cap_len.offset, true);
    if (offset + HOP_LAYOUT.size + cap > bytes.byteLength) {
      throw new RecordDecodeError(`hop record at byte ${offset} claims more frame bytes than the batch holds`);
    }
    const frameAt = offset + HOP_LAYOUT.size;
    const event = decodeRecord(bytes, view, offset, ctx, bytes.subarray(frameAt, frameAt + cap), hooks);
    if (event) events.push(event);
    offset += (HOP_LAYOUT.size + cap + HOP_LAYOUT.recordAlign - 1) & ~(HOP_LAYOUT.recordAlign - 1);
    if (events.length >= chunk) {
      onChunk(events);
      events = [];
    }
  }
  if (events.length) onChunk(events);
}

/** (cookie low word, ifindex) -> the cookie's high word and its hook. */
type HookMemo = Map<number, { hi: number; hook: HookIdentity }[]>;

function hookAt(view: DataView, at: number, ctx: DecodeContext, memo: HookMemo | undefined): HookIdentity {
  const ifindex = view.getUint32(at + F.ifindex.offset, true);
  if (!memo) return ctx.hookOf(view.getBigUint64(at + F.netns_cookie.offset, true), ifindex);
  const lo = view.getUint32(at + F.netns_cookie.offset, true);
  const hi = view.getUint32(at + F.netns_cookie.offset + 4, true);
  const key = lo * 65536 + (ifindex & 0xffff);
  let list = memo.get(key);
  if (list) for (const m of list) if (m.hi === hi) return m.hook;
  const hook = ctx.hookOf(view.getBigUint64(at + F.netns_cookie.offset, true), ifindex);
  if (!list) memo.set(key, (list = []));
  list.push({ hi, hook });
  return hook;
}

// Decoding runs for every record (hundreds of thousands a second): no closures per record, the
// strings that repeat (addresses, MACs) come from small caches, frames are views, not copies.
const ipv4Cache = new Map<number, string>();
const macCache = new Map<number, string>();
const CACHE_LIMIT = 4096;

function ipv4At(view: DataView, at: number): string {
  const key = view.getUint32(at, false);
  let s = ipv4Cache.get(key);
  if (s === undefined) {
    s = `${key >>> 24}.${(key >>> 16) & 0xff}.${(key >>> 8) & 0xff}.${key & 0xff}`;
    if (ipv4Cache.size >= CACHE_LIMIT) ipv4Cache.clear();
    ipv4Cache.set(key, s);
  }
  return s;
}

function macAt(bytes: Uint8Array, view: DataView, at: number): string {
  const key = view.getUint16(at, false) * 0x100000000 + view.getUint32(at + 2, false);
  let s = macCache.get(key);
  if (s === undefined) {
    s = mac(bytes, at);
    if (macCache.size >= CACHE_LIMIT) macCache.clear();
    macCache.set(key, s);
  }
  return s;
}

// The two hex digits of each byte value, as character codes.
const HEX_HI = Uint16Array.from({ length: 256 }, (_, i) => '0123456789abcdef'.charCodeAt(i >> 4));
const HEX_LO = Uint16Array.from({ length: 256 }, (_, i) => '0123456789abcdef'.charCodeAt(i & 15));

/** The little-endian u64 at `at` as 16 hex digits, most significant first: one flat string, no pieces. */
function hexU64(bytes: Uint8Array, at: number): string {
  const hi = HEX_HI;
  const lo = HEX_LO;
  const b7 = bytes[at + 7]!, b6 = bytes[at + 6]!, b5 = bytes[at + 5]!, b4 = bytes[at + 4]!;
  const b3 = bytes[at + 3]!, b2 = bytes[at + 2]!, b1 = bytes[at + 1]!, b0 = bytes[at]!;
  return String.fromCharCode(
    hi[b7]!, lo[b7]!, hi[b6]!, lo[b6]!, hi[b5]!, lo[b5]!, hi[b4]!, lo[b4]!,
    hi[b3]!, lo[b3]!, hi[b2]!, lo[b2]!, hi[b1]!, lo[b1]!, hi[b0]!, lo[b0]!,
  );
}

function l3Address(bytes: Uint8Array, view: DataView, at: number, family: 4 | 6): string {
  return family === 4 ? ipv4At(view, at) : ipString(bytes, at, 6);
}

/**
 * Decodes one record header (HOP_LAYOUT.size bytes, e.g. as stored in a trace) with its frame held
 * separately. undefined: not an IP packet (the kernel emits only IP packets). RecordDecodeError: an
 * unknown kind or a short header.
 */
export function decodeHopHeader(header: Uint8Array, frame: Uint8Array, ctx: DecodeContext): HopEvent | undefined {
  if (header.length < HOP_LAYOUT.size) throw new RecordDecodeError(`a hop record header is ${HOP_LAYOUT.size} bytes, not ${header.length}`);
  return decodeRecord(header, new DataView(header.buffer, header.byteOffset, header.byteLength), 0, ctx, frame);
}

function decodeRecord(bytes: Uint8Array, view: DataView, at: number, ctx: DecodeContext, frame: Uint8Array, hooks?: HookMemo): HopEvent | undefined {
  const kindCode = view.getUint8(at + F.kind.offset);
  if (kindCode !== KIND_TC && kindCode !== KIND_DROP) {
    throw new RecordDecodeError(`hop record at byte ${at} has unknown kind ${kindCode}`);
  }
  const innerAt = at + F.inner.offset;
  const family = view.getUint8(innerAt + L3_LAYOUT.family.offset);
  if (family !== 4 && family !== 6) return undefined; // the kernel emits only IP packets
  const flags = view.getUint16(at + F.flags.offset, true);
  const timestampNs = view.getBigUint64(at + F.ts_ns.offset, true);
  const ifindex = view.getUint32(at + F.ifindex.offset, true);
  const hook = hookAt(view, at, ctx, hooks);
  const protocol = view.getUint8(innerAt + L3_LAYOUT.protocol.offset);
  const ipLenRaw = view.getUint16(at + F.ip_len.offset, false);

  const inner: InnerPacket = {
    family,
    src: l3Address(bytes, view, innerAt + L3_LAYOUT.saddr.offset, family),
    dst: l3Address(bytes, view, innerAt + L3_LAYOUT.daddr.offset, family),
    protocol,
    srcPort: view.getUint16(innerAt + L3_LAYOUT.sport.offset, false),
    dstPort: view.getUint16(innerAt + L3_LAYOUT.dport.offset, false),
    ipId: family === 4 ? view.getUint16(at + F.ip_id.offset, false) : 0,
    ipLength: family === 4 ? ipLenRaw : ipLenRaw + 40,
    ttl: view.getUint8(innerAt + L3_LAYOUT.ttl.offset),
    dontFragment: (flags & F_DF) !== 0,
  };
  if (protocol === 1 || protocol === 58) {
    inner.icmp = {
      type: view.getUint8(at + F.icmp_type.offset),
      code: view.getUint8(at + F.icmp_code.offset),
      id: view.getUint16(at + F.icmp_id.offset, false),
      seq: view.getUint16(at + F.icmp_seq.offset, false),
    };
  } else if (protocol === 6 && flags & F_HAS_L4) {
    inner.tcp = { seq: view.getUint32(at + F.tcp_seq.offset, false), flags: view.getUint8(at + F.tcp_flags.offset) };
  }

  const event: HopEvent = {
    timestampNs,
    wallTimeNs: timestampNs + ctx.monotonicToWallNs,
    kind: kindCode === KIND_TC ? 'tc' : 'drop',
    node: hook.node,
    device: hook.device,
    role: hook.role,
    direction: (view.getUint8(at + F.direction.offset) === DIR_EGRESS ? 'egress' : 'ingress') as Direction,
    ifindex,
    netnsInode: hook.netnsInode,
    skbLength: view.getUint32(at + F.skb_len.offset, true),
    // the u64 as the kernel computed it (little-endian in the record), 16 hex digits
    fingerprint: hexU64(bytes, at + F.fingerprint.offset),
    innerSrcMac: macAt(bytes, view, at + F.inner_src_mac.offset),
    innerDstMac: macAt(bytes, view, at + F.inner_dst_mac.offset),
    inner,
    // views into the batch: no copy per record
    frame,
    record: bytes.subarray(at, at + HOP_LAYOUT.size),
  };
  // a drop record whose skb had no MAC header yet (e.g. dropped on output before L2)
  if (flags & F_L3_START) event.frameStart = 'ip';
  const gsoSegs = view.getUint16(at + F.gso_segs.offset, true);
  if (gsoSegs > 1) event.gso = { size: view.getUint16(at + F.gso_size.offset, true), segments: gsoSegs };
  if (flags & F_ENCAP) {
    const outerAt = at + F.outer.offset;
    const of = view.getUint8(outerAt + L3_LAYOUT.family.offset);
    if (of === 4 || of === 6) {
      const outer: OuterHeaders = {
        family: of,
        src: l3Address(bytes, view, outerAt + L3_LAYOUT.saddr.offset, of),
        dst: l3Address(bytes, view, outerAt + L3_LAYOUT.daddr.offset, of),
        protocol: view.getUint8(outerAt + L3_LAYOUT.protocol.offset),
        srcPort: view.getUint16(outerAt + L3_LAYOUT.sport.offset, false),
        dstPort: view.getUint16(outerAt + L3_LAYOUT.dport.offset, false),
        vni: view.getUint32(at + F.vxlan_vni.offset, false) >>> 8,
        udpChecksum: view.getUint16(at + F.outer_udp_csum.offset, false),
        srcMac: macAt(bytes, view, at + F.outer_src_mac.offset),
        dstMac: macAt(bytes, view, at + F.outer_dst_mac.offset),
      };
      event.outer = outer;
    }
  }
  if (kindCode === KIND_DROP) {
    const code = view.getUint32(at + F.drop_reason.offset, true);
    event.dropReasonCode = code;
    event.dropReason = ctx.dropReasonName(code);
    const loc = view.getBigUint64(at + F.drop_location.offset, true);
    const sym = loc ? ctx.symbolOf(loc) : undefined;
    if (sym) event.dropLocation = sym;
  }
  return event;
}

export function mac(bytes: Uint8Array, at: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(bytes[at + i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

/**
 * The record header the kernel would have written for `e` (the inverse of decoding): for events
 * that did not come from the datapath (built by tests or tools), so that every hop has a header
 * to store. What HopEvent does not carry is zero: netns cookie, drop location address, IPv6 flow
 * label, the fragment flag. RangeError when a field cannot be encoded (e.g. a fingerprint that is
 * not 16 hex digits).
 */
export function encodeHopHeader(e: HopEvent): Uint8Array {
  const b = new Uint8Array(HOP_LAYOUT.size);
  const v = new DataView(b.buffer);
  if (!/^[0-9a-f]{16}$/.test(e.fingerprint)) throw new RangeError(`fingerprint '${e.fingerprint}' is not 16 hex digits`);
  v.setBigUint64(F.ts_ns.offset, BigInt.asUintN(64, e.timestampNs), true);
  v.setUint32(F.fingerprint.offset + 4, parseInt(e.fingerprint.slice(0, 8), 16), true);
  v.setUint32(F.fingerprint.offset, parseInt(e.fingerprint.slice(8), 16), true);
  v.setUint32(F.ifindex.offset, e.ifindex >>> 0, true);
  v.setUint32(F.skb_len.offset, e.skbLength >>> 0, true);
  v.setUint32(F.cap_len.offset, e.frame.length, true);
  v.setUint8(F.kind.offset, e.kind === 'drop' ? KIND_DROP : KIND_TC);
  v.setUint8(F.direction.offset, e.direction === 'egress' ? DIR_EGRESS : 0);
  let flags = 0;
  if (e.inner.dontFragment) flags |= F_DF;
  if (e.frameStart === 'ip') flags |= F_L3_START;
  if (e.inner.tcp) flags |= F_HAS_L4;
  const inner = e.inner;
  writeL3(b, F.inner.offset, inner);
  v.setUint16(F.ip_id.offset, inner.family === 4 ? inner.ipId : 0, false);
  v.setUint16(F.ip_len.offset, inner.family === 4 ? inner.ipLength : Math.max(0, inner.ipLength - 40), false);
  if (inner.icmp) {
    v.setUint8(F.icmp_type.offset, inner.icmp.type);
    v.setUint8(F.icmp_code.offset, inner.icmp.code);
    v.setUint16(F.icmp_id.offset, inner.icmp.id, false);
    v.setUint16(F.icmp_seq.offset, inner.icmp.seq, false);
  }
  if (inner.tcp) {
    v.setUint32(F.tcp_seq.offset, inner.tcp.seq >>> 0, false);
    v.setUint8(F.tcp_flags.offset, inner.tcp.flags);
  }
  writeMac(b, F.inner_src_mac.offset, e.innerSrcMac);
  writeMac(b, F.inner_dst_mac.offset, e.innerDstMac);
  if (e.outer) {
    flags |= F_ENCAP;
    writeL3(b, F.outer.offset, e.outer);
    v.setUint32(F.vxlan_vni.offset, (e.outer.vni & 0xffffff) << 8 >>> 0, false);
    v.setUint16(F.outer_udp_csum.offset, e.outer.udpChecksum, false);
    writeMac(b, F.outer_src_mac.offset, e.outer.srcMac);
    writeMac(b, F.outer_dst_mac.offset, e.outer.dstMac);
  }
  if (e.kind === 'drop') v.setUint32(F.drop_reason.offset, e.dropReasonCode ?? 0, true);
  if (e.gso) {
    v.setUint16(F.gso_size.offset, e.gso.size, true);
    v.setUint16(F.gso_segs.offset, e.gso.segments, true);
  }
  v.setUint16(F.flags.offset, flags, true);
  return b;
}

function writeL3(out: Uint8Array, at: number, t: PacketTuple & { ttl?: number }): void {
  writeIp(out, at + L3_LAYOUT.saddr.offset, t.src, t.family);
  writeIp(out, at + L3_LAYOUT.daddr.offset, t.dst, t.family);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint16(at + L3_LAYOUT.sport.offset, t.srcPort, false);
  v.setUint16(at + L3_LAYOUT.dport.offset, t.dstPort, false);
  out[at + L3_LAYOUT.family.offset] = t.family;
  out[at + L3_LAYOUT.protocol.offset] = t.protocol;
  out[at + L3_LAYOUT.ttl.offset] = t.ttl ?? 0;
}

function writeMac(out: Uint8Array, at: number, text: string): void {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) throw new RangeError(`'${text}' is not a MAC address`);
  for (let i = 0; i < 6; i++) out[at + i] = parseInt(parts[i]!, 16);
}

/** The inner packet's invariant fields, as the kernel hashes them (struct vxt_fp_key, bpf/vxtrace.h). */
export interface FingerprintFields {
  family: 4 | 6;
  protocol: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** IPv4 identification (0 for IPv6). */
  ipId: number;
  /** IP total length in bytes (IPv6: header + payload, as HopEvent.inner.ipLength). */
  ipLength: number;
  tcpSeq?: number;
  /** IPv6 flow label. */
  flowLabel?: number;
  icmpType?: number;
  icmpId?: number;
  icmpSeq?: number;
}

/**
 * The fingerprint the kernel computes (FNV-1a 64 over struct vxt_fp_key), for packets read back
 * from files. Only ports of TCP/UDP, only echo id/seq of ICMP/ICMPv6, and only TCP's sequence
 * number enter it, exactly as the kernel parser fills them.
 */
export function fingerprintOf(p: FingerprintFields): string {
  const K = FP_KEY_LAYOUT.fields;
  const key = new Uint8Array(FP_KEY_LAYOUT.size);
  const v = new DataView(key.buffer);
  writeIp(key, K.saddr.offset, p.src, p.family);
  writeIp(key, K.daddr.offset, p.dst, p.family);
  const hasPorts = p.protocol === 6 || p.protocol === 17;
  v.setUint16(K.sport.offset, hasPorts ? p.srcPort : 0, false);
  v.setUint16(K.dport.offset, hasPorts ? p.dstPort : 0, false);
  v.setUint16(K.ip_id.offset, p.family === 4 ? p.ipId : 0, false);
  v.setUint16(K.ip_len.offset, p.family === 4 ? p.ipLength : p.ipLength - 40, false);
  v.setUint32(K.tcp_seq.offset, p.protocol === 6 ? (p.tcpSeq ?? 0) >>> 0 : 0, false);
  v.setUint32(K.flow_label.offset, p.family === 6 ? (p.flowLabel ?? 0) & 0xfffff : 0, false);
  const icmp = p.protocol === 1 || p.protocol === 58;
  const echo = icmp && (p.protocol === 1 ? p.icmpType === 8 || p.icmpType === 0 : p.icmpType === 128 || p.icmpType === 129);
  v.setUint16(K.icmp_id.offset, echo ? (p.icmpId ?? 0) : 0, false);
  v.setUint16(K.icmp_seq.offset, echo ? (p.icmpSeq ?? 0) : 0, false);
  key[K.family.offset] = p.family;
  key[K.protocol.offset] = p.protocol;
  key[K.icmp_type.offset] = icmp ? (p.icmpType ?? 0) : 0;
  let h = 0xcbf29ce484222325n;
  const prime = 0x100000001b3n;
  const mask = (1n << 64n) - 1n;
  for (const b of key) {
    h ^= BigInt(b);
    h = (h * prime) & mask;
  }
  return h.toString(16).padStart(16, '0');
}

/** The fingerprint fields of a decoded event's inner packet (flow label is not in HopEvent: 0). */
export function fingerprintFieldsOf(e: HopEvent, flowLabel = 0): FingerprintFields {
  return {
    family: e.inner.family,
    protocol: e.inner.protocol,
    src: e.inner.src,
    dst: e.inner.dst,
    srcPort: e.inner.srcPort,
    dstPort: e.inner.dstPort,
    ipId: e.inner.ipId,
    ipLength: e.inner.ipLength,
    tcpSeq: e.inner.tcp?.seq,
    flowLabel,
    icmpType: e.inner.icmp?.type,
    icmpId: e.inner.icmp?.id,
    icmpSeq: e.inner.icmp?.seq,
  };
}

function writeIp(out: Uint8Array, at: number, text: string, family: 4 | 6): void {
  out.set(ipBytes(text, family), at);
}
