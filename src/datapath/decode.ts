// The one decoder of the kernel's hop record (struct vxt_hop, bpf/vxtrace.h) into HopEvent.
// Pure: no I/O. What the record cannot say by itself (which node and device a netns cookie and
// ifindex are, the drop reason's name, the freeing function, the wall clock) comes in through
// DecodeContext. test/unit/datapath-layout checks HOP_LAYOUT against the addon's sizeof/offsetof.
import type { DeviceRole, Direction, HopEvent, InnerPacket, OuterHeaders } from './hop.js';

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
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  const events: HopEvent[] = [];
  let offset = 0;
  while (offset < batch.byteLength) {
    if (batch.byteLength - offset < HOP_LAYOUT.size) {
      throw new RecordDecodeError(`truncated hop record at byte ${offset} of a ${batch.byteLength}-byte batch`);
    }
    const size = recordSize(view, offset);
    if (offset + HOP_LAYOUT.size + view.getUint32(offset + F.cap_len.offset, true) > batch.byteLength) {
      throw new RecordDecodeError(`hop record at byte ${offset} claims more frame bytes than the batch holds`);
    }
    const event = decodeRecord(batch, view, offset, ctx);
    if (event) events.push(event);
    offset += size;
  }
  return events;
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

const hex8 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

function l3Address(bytes: Uint8Array, view: DataView, at: number, family: 4 | 6): string {
  return family === 4 ? ipv4At(view, at) : ipString(bytes, at, 6);
}

function decodeRecord(bytes: Uint8Array, view: DataView, at: number, ctx: DecodeContext): HopEvent | undefined {
  const kindCode = view.getUint8(at + F.kind.offset);
  if (kindCode !== KIND_TC && kindCode !== KIND_DROP) {
    throw new RecordDecodeError(`hop record at byte ${at} has unknown kind ${kindCode}`);
  }
  const innerAt = at + F.inner.offset;
  const family = view.getUint8(innerAt + L3_LAYOUT.family.offset);
  if (family !== 4 && family !== 6) return undefined; // the kernel emits only IP packets
  const flags = view.getUint16(at + F.flags.offset, true);
  const timestampNs = view.getBigUint64(at + F.ts_ns.offset, true);
  const netnsCookie = view.getBigUint64(at + F.netns_cookie.offset, true);
  const ifindex = view.getUint32(at + F.ifindex.offset, true);
  const hook = ctx.hookOf(netnsCookie, ifindex);
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

  const capLen = view.getUint32(at + F.cap_len.offset, true);
  const frameStart = at + HOP_LAYOUT.size;
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
    fingerprint: hex8(view.getUint32(at + F.fingerprint.offset + 4, true)) + hex8(view.getUint32(at + F.fingerprint.offset, true)),
    innerSrcMac: macAt(bytes, view, at + F.inner_src_mac.offset),
    innerDstMac: macAt(bytes, view, at + F.inner_dst_mac.offset),
    inner,
    // a view into the batch: no copy per record
    frame: bytes.subarray(frameStart, frameStart + capLen),
  };
  // a drop record whose skb had no MAC header yet (e.g. dropped on output before L2)
  if (flags & F_L3_START) event.frameStart = 'ip';
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

/** IPv4 dotted quad or RFC 5952 IPv6 text of the address at `at`. */
export function ipString(bytes: Uint8Array, at: number, family: 4 | 6): string {
  if (family === 4) return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[at + 2 * i]! << 8) | bytes[at + 2 * i + 1]!);
  // the longest run (>= 2) of zero words becomes "::"
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** The inner packet's invariant fields, as struct vxt_fp_key in bpf/vxtrace.bpf.c hashes them. */
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
  const key = new Uint8Array(56);
  const v = new DataView(key.buffer);
  writeIp(key, 0, p.src, p.family);
  writeIp(key, 16, p.dst, p.family);
  const hasPorts = p.protocol === 6 || p.protocol === 17;
  v.setUint16(32, hasPorts ? p.srcPort : 0, false);
  v.setUint16(34, hasPorts ? p.dstPort : 0, false);
  v.setUint16(36, p.family === 4 ? p.ipId : 0, false);
  v.setUint16(38, p.family === 4 ? p.ipLength : p.ipLength - 40, false);
  v.setUint32(40, p.protocol === 6 ? (p.tcpSeq ?? 0) >>> 0 : 0, false);
  v.setUint32(44, p.family === 6 ? (p.flowLabel ?? 0) & 0xfffff : 0, false);
  const icmp = p.protocol === 1 || p.protocol === 58;
  const echo = icmp && (p.protocol === 1 ? p.icmpType === 8 || p.icmpType === 0 : p.icmpType === 128 || p.icmpType === 129);
  v.setUint16(48, echo ? (p.icmpId ?? 0) : 0, false);
  v.setUint16(50, echo ? (p.icmpSeq ?? 0) : 0, false);
  key[52] = p.family;
  key[53] = p.protocol;
  key[54] = icmp ? (p.icmpType ?? 0) : 0;
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
  if (family === 4) {
    const parts = text.split('.').map(Number);
    for (let i = 0; i < 4; i++) out[at + i] = parts[i]! & 0xff;
    return;
  }
  out.set(ipv6Bytes(text), at);
}

/** 16 bytes of an IPv6 address in text form (an embedded IPv4 tail is allowed); RangeError if invalid. */
export function ipv6Bytes(text: string): Uint8Array {
  let s = text;
  const m = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (m) {
    const [a, b, c, d] = m.slice(1).map(Number) as [number, number, number, number];
    s = s.slice(0, m.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16);
  }
  const halves = s.split('::');
  const parse = (x: string) => (x ? x.split(':').map((w) => (/^[0-9a-fA-F]{1,4}$/.test(w) ? parseInt(w, 16) : NaN)) : []);
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const words = halves.length === 2 ? [...head, ...new Array<number>(Math.max(0, 8 - head.length - rest.length)).fill(0), ...rest] : head;
  if (halves.length > 2 || words.length !== 8 || words.some((w) => Number.isNaN(w))) {
    throw new RangeError(`'${text}' is not an IPv6 address`);
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}
