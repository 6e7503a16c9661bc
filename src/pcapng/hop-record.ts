// What vxtrace stores with each packet: a human comment (shown by Wireshark/tshark) and a
// machine-readable hop record (binary, in a custom option) from which `vxtrace read` rebuilds the
// exact HopEvent. The record carries the kernel's own record header (struct vxt_hop) as it was, and
// src/datapath/decode.ts decodes it on reading, so the trace and the live run share one decoder.
// docs/trace-format.md documents both.
import type { DeviceRole, HopEvent } from '../datapath/hop.js';
import { decodeHopHeader, encodeHopHeader, HOP_LAYOUT, RecordDecodeError, type DecodeContext, type HookIdentity } from '../datapath/decode.js';
import type { PacketPath, PathOutcome } from '../correlate/path.js';
import { HOP_RECORD_VERSION, MAX_OPTION_LENGTH, Opt, VXTRACE_PEN } from './format.js';
import { viewOf } from './blocks.js';

/** A hop's fate as far as the writer knew it: its path's outcome, or 'unknown' (written without a path). */
export type HopOutcome = PathOutcome | 'unknown';

export interface HopAnnotation {
  outcome: HopOutcome;
  /** For a dropped path: where and why (also on the hops before the drop). */
  pathDrop?: PacketPath['drop'];
}

const OUTCOMES: readonly HopOutcome[] = ['unknown', 'delivered', 'dropped', 'lost-in-underlay', 'vanished', 'in-flight', 'untraced'];
const ROLES: readonly DeviceRole[] = ['pod-bridge', 'vtep', 'uplink', 'other'];
const OUTCOME_CODE = new Map(OUTCOMES.map((o, i) => [o, i]));
const ROLE_CODE = new Map(ROLES.map((r, i) => [r, i]));

/** Byte offsets in the hop record (the option value after its 4-byte PEN). */
export const HOP_RECORD_LAYOUT = {
  version: 0,
  outcome: 1,
  role: 2,
  netnsInode: 4,
  wallTimeNs: 8,
  header: 16,
  /** Strings follow the header: each a u16 length (0xffff: absent) and UTF-8 bytes. */
  strings: 16 + HOP_LAYOUT.size,
} as const;
const ABSENT = 0xffff;
const STRING_FIELDS = 8;

// The strings repeat (node, device, drop reasons): their bytes come from a small cache.
const utf8 = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });
const stringBytes = new Map<string, Uint8Array>();
function bytesOf(text: string): Uint8Array {
  let b = stringBytes.get(text);
  if (b === undefined) {
    b = utf8.encode(text);
    if (b.length >= ABSENT) b = b.subarray(0, ABSENT - 1);
    if (stringBytes.size >= 4096) stringBytes.clear();
    stringBytes.set(text, b);
  }
  return b;
}

/**
 * The hop record of one packet: the value of its custom option 2989 (PEN first, in the section's
 * byte order; the rest is little-endian whatever the section's):
 *   u32 PEN 32473 | u8 version 2 | u8 outcome | u8 role | u8 0 | u32 netnsInode | i64 wallTimeNs
 *   | struct vxt_hop (192 bytes, as the kernel wrote it) | 8 strings: node, device, dropReason,
 *   dropLocation, pathDrop.node, pathDrop.device, pathDrop.reason, pathDrop.location
 * Written straight into the block being built (HopRecordOption): the writer's hot path.
 */
export class HopRecordOption {
  readonly code = Opt.CUSTOM_BINARY_COPYABLE;
  /** Bytes of the option value (PEN included). */
  readonly length: number;
  private readonly header: Uint8Array;
  /** The strings' bytes (undefined: absent), looked up once. */
  private readonly strings: (Uint8Array | undefined)[];

  constructor(
    private readonly event: HopEvent,
    private readonly annotation: HopAnnotation,
    private readonly littleEndian = true,
  ) {
    this.header = event.record && event.record.length === HOP_LAYOUT.size ? event.record : encodeHopHeader(event);
    const d = annotation.pathDrop;
    this.strings = [
      stringOf(event.node), stringOf(event.device), stringOf(event.dropReason), stringOf(event.dropLocation),
      stringOf(d?.node), stringOf(d?.device), stringOf(d?.reason), stringOf(d?.location),
    ];
    let length = 4 + HOP_RECORD_LAYOUT.strings + 2 * STRING_FIELDS;
    for (const b of this.strings) if (b) length += b.length;
    this.length = length;
  }

  write(buf: Buffer, at: number): void {
    const { event, annotation } = this;
    if (this.littleEndian) buf.writeUInt32LE(VXTRACE_PEN, at);
    else buf.writeUInt32BE(VXTRACE_PEN, at);
    const r = at + 4;
    buf[r + HOP_RECORD_LAYOUT.version] = HOP_RECORD_VERSION;
    buf[r + HOP_RECORD_LAYOUT.outcome] = OUTCOME_CODE.get(annotation.outcome) ?? 0;
    buf[r + HOP_RECORD_LAYOUT.role] = ROLE_CODE.get(event.role) ?? ROLES.length - 1;
    buf[r + 3] = 0;
    buf.writeUInt32LE(event.netnsInode >>> 0, r + HOP_RECORD_LAYOUT.netnsInode);
    // (setBigInt64 takes it modulo 2^64, as BigInt.asIntN(64) would)
    viewOf(buf).setBigInt64(r + HOP_RECORD_LAYOUT.wallTimeNs, event.wallTimeNs, true);
    buf.set(this.header, r + HOP_RECORD_LAYOUT.header);
    // Not the kernel address of the freeing function: it would give away the kernel's KASLR
    // offset to whoever the trace is shared with. Its symbol name is among the strings.
    const location = r + HOP_RECORD_LAYOUT.header + HOP_LAYOUT.fields.drop_location.offset;
    buf.fill(0, location, location + HOP_LAYOUT.fields.drop_location.size);
    let p = r + HOP_RECORD_LAYOUT.strings;
    for (const b of this.strings) {
      if (b) {
        buf.writeUInt16LE(b.length, p);
        buf.set(b, p + 2);
        p += 2 + b.length;
      } else {
        buf.writeUInt16LE(ABSENT, p);
        p += 2;
      }
    }
  }
}

const stringOf = (text: string | undefined): Uint8Array | undefined => (text === undefined ? undefined : bytesOf(text));

/** The hop record as bytes (the option value, PEN first): for tools and tests; the writer uses HopRecordOption. */
export function encodeHopRecord(event: HopEvent, annotation: HopAnnotation, littleEndian = true): Uint8Array {
  const o = new HopRecordOption(event, annotation, littleEndian);
  const buf = Buffer.alloc(o.length);
  o.write(buf, 0);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
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
  // Concatenation, not an array join: this runs for every packet written.
  const drop = event.kind === 'drop';
  const inner = event.inner;
  let c = `vxtrace ${drop ? 'drop' : 'hop'} ${event.node}/${event.device} ${event.direction} fp=${event.fingerprint} ${inner.src}>${inner.dst} ${protocolName(inner.protocol)}`;
  const outer = event.outer;
  if (outer) c += ` outer=${outer.src}>${outer.dst} vni=${outer.vni}`;
  c += ` outcome=${annotation.outcome}`;
  const reason = drop ? event.dropReason : annotation.pathDrop?.reason;
  if (reason) c += ` reason=${reason}`;
  if (drop && event.dropLocation) c += ` at=${event.dropLocation}`;
  if (!drop && annotation.pathDrop) c += ` dropped-at=${annotation.pathDrop.node}/${annotation.pathDrop.device}`;
  return c;
}

/**
 * The packet comment as its option (code 1), written as bytes straight into the block: the same
 * bytes as hopComment() in UTF-8, without making that string for every packet. Its pieces are
 * strings' bytes from a cache (nodes, devices, addresses, reasons repeat), the fingerprint's 16
 * digits are written one by one.
 */
export class HopCommentOption {
  readonly code = Opt.COMMENT;
  readonly length: number;
  /** Where the fingerprint's 16 digits start in the comment's bytes, when it is 16 ASCII characters; else -1. */
  readonly fingerprintAt: number;
  /** The comment's pieces in order: bytes, or a fingerprint to write digit by digit. */
  private readonly pieces: (Uint8Array | string)[] = [];

  constructor(event: HopEvent, annotation: HopAnnotation) {
    const drop = event.kind === 'drop';
    const inner = event.inner;
    const fp = event.fingerprint;
    const ascii16 = fp.length === 16 && /^[\x00-\x7f]*$/.test(fp);
    const pieces = this.pieces;
    pieces.push(drop ? DROP_PREFIX : HOP_PREFIX, bytesOf(event.node), SLASH, bytesOf(event.device), event.direction === 'egress' ? EGRESS : INGRESS, FP);
    let before = 0;
    for (const p of pieces) before += p.length;
    this.fingerprintAt = ascii16 ? before : -1;
    pieces.push(ascii16 ? fp : bytesOf(fp), SPACE, bytesOf(inner.src), GT, bytesOf(inner.dst), SPACE, protocolBytes(inner.protocol));
    const outer = event.outer;
    if (outer) pieces.push(OUTER, bytesOf(outer.src), GT, bytesOf(outer.dst), VNI, numberBytes(outer.vni));
    pieces.push(OUTCOME, bytesOf(annotation.outcome));
    const reason = drop ? event.dropReason : annotation.pathDrop?.reason;
    if (reason) pieces.push(REASON, bytesOf(reason));
    if (drop && event.dropLocation) pieces.push(AT, bytesOf(event.dropLocation));
    if (!drop && annotation.pathDrop) pieces.push(DROPPED_AT, bytesOf(annotation.pathDrop.node), SLASH, bytesOf(annotation.pathDrop.device));
    let length = 0;
    for (const p of pieces) length += p.length;
    this.length = length;
  }

  /** True when the comment fits an option (always, but for absurd names): else the writer cuts hopComment() to fit. */
  get fits(): boolean {
    return this.length <= MAX_OPTION_LENGTH;
  }

  write(buf: Uint8Array, at: number): void {
    let p = at;
    for (const piece of this.pieces) {
      if (typeof piece === 'string') {
        for (let i = 0; i < piece.length; i++) buf[p + i] = piece.charCodeAt(i);
      } else if (piece.length < 32) {
        // a few bytes: copied by hand, cheaper than a call into set()
        for (let i = 0; i < piece.length; i++) buf[p + i] = piece[i]!;
      } else {
        buf.set(piece, p);
      }
      p += piece.length;
    }
  }
}

const ascii = (text: string) => utf8.encode(text);
const HOP_PREFIX = ascii('vxtrace hop ');
const DROP_PREFIX = ascii('vxtrace drop ');
const SLASH = ascii('/');
const SPACE = ascii(' ');
const GT = ascii('>');
const EGRESS = ascii(' egress');
const INGRESS = ascii(' ingress');
const FP = ascii(' fp=');
const OUTER = ascii(' outer=');
const VNI = ascii(' vni=');
const OUTCOME = ascii(' outcome=');
const REASON = ascii(' reason=');
const AT = ascii(' at=');
const DROPPED_AT = ascii(' dropped-at=');
const numbers = new Map<number, Uint8Array>();
function numberBytes(n: number): Uint8Array {
  let b = numbers.get(n);
  if (b === undefined) {
    b = ascii(String(n));
    if (numbers.size >= 4096) numbers.clear();
    numbers.set(n, b);
  }
  return b;
}
const protocols = new Map<number, Uint8Array>();
function protocolBytes(p: number): Uint8Array {
  let b = protocols.get(p);
  if (b === undefined) protocols.set(p, (b = ascii(protocolName(p))));
  return b;
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

// The strings repeat (node, device, drop reason): decoded once, then found by their bytes (a hub
// decodes hundreds of thousands of records a second).
const textCache = new Map<number, { bytes: Uint8Array; text: string }>();
function textAt(b: Uint8Array, at: number, n: number): string {
  let h = n;
  for (let i = 0; i < n; i++) h = (Math.imul(h, 31) + b[at + i]!) | 0;
  const hit = textCache.get(h);
  if (hit && hit.bytes.length === n) {
    let same = true;
    for (let i = 0; i < n && same; i++) same = hit.bytes[i] === b[at + i];
    if (same) return hit.text;
  }
  let text: string;
  try {
    text = textDecoder.decode(b.subarray(at, at + n));
  } catch {
    throw new HopRecordError('a string of the hop record is not UTF-8');
  }
  if (textCache.size >= 4096) textCache.clear();
  textCache.set(h, { bytes: b.slice(at, at + n), text });
  return text;
}

/**
 * What decodeHopRecord hands the datapath's decoder: one object for every record (this runs for
 * every record a hub receives), filled in before each call. The decoder copies what it needs.
 */
const hook: HookIdentity = { node: '', device: '', role: 'other', netnsInode: 0 };
let dropReasonOfRecord: string | undefined;
let dropLocationOfRecord: string | undefined;
const recordContext: DecodeContext = {
  hookOf: () => hook,
  dropReasonName: (code) => dropReasonOfRecord ?? `REASON_${code}`,
  symbolOf: () => dropLocationOfRecord,
  monotonicToWallNs: 0n,
};
const texts: (string | undefined)[] = new Array(STRING_FIELDS);

/**
 * Parses a hop record (the option value after its PEN) and rebuilds its HopEvent with `frame`,
 * through the datapath's own decoder. Throws HopRecordError on anything malformed. The event's
 * `record` is a copy of the kernel's header, unless `copy` is false (the caller keeps `record`'s
 * bytes as they are: a hub's socket gives each frame its own buffer).
 */
export function decodeHopRecord(record: Uint8Array, frame: Uint8Array, opts: { copy?: boolean } = {}): { event: HopEvent; annotation: HopAnnotation } {
  const L = HOP_RECORD_LAYOUT;
  if (record.length < L.strings + 2 * STRING_FIELDS) throw new HopRecordError(`the hop record is ${record.length} bytes, too short`);
  const v = new DataView(record.buffer, record.byteOffset, record.byteLength);
  const version = record[L.version]!;
  if (version !== HOP_RECORD_VERSION) throw new HopRecordError(`hop record version ${version} is not ${HOP_RECORD_VERSION}`);
  const outcome = OUTCOMES[record[L.outcome]!];
  if (!outcome) throw new HopRecordError(`outcome code ${record[L.outcome]} is unknown`);
  const role = ROLES[record[L.role]!];
  if (!role) throw new HopRecordError(`role code ${record[L.role]} is unknown`);
  let p: number = L.strings;
  for (let i = 0; i < STRING_FIELDS; i++) {
    if (p + 2 > record.length) throw new HopRecordError('the hop record ends inside its strings');
    const n = v.getUint16(p, true);
    p += 2;
    if (n === ABSENT) {
      texts[i] = undefined;
      continue;
    }
    if (p + n > record.length) throw new HopRecordError('a string runs past the end of the hop record');
    texts[i] = textAt(record, p, n);
    p += n;
  }
  const node = texts[0];
  const device = texts[1];
  const dropReason = texts[2];
  const dropLocation = texts[3];
  const dropNode = texts[4];
  const dropDevice = texts[5];
  const dropWhy = texts[6];
  const dropAt = texts[7];
  if (node === undefined || device === undefined) throw new HopRecordError('the hop record names no node or device');
  let header = record.subarray(L.header, L.header + HOP_LAYOUT.size);
  // By default a copy, as a plain Uint8Array (the record may be a view into a parser's buffer).
  if (opts.copy !== false) header = new Uint8Array(header);
  const timestampNs = v.getBigUint64(L.header + HOP_LAYOUT.fields.ts_ns.offset, true);
  const wallTimeNs = v.getBigInt64(L.wallTimeNs, true);
  hook.node = node;
  hook.device = device;
  hook.role = role;
  hook.netnsInode = v.getUint32(L.netnsInode, true);
  dropReasonOfRecord = dropReason;
  dropLocationOfRecord = dropLocation;
  recordContext.monotonicToWallNs = wallTimeNs - timestampNs;
  let event: HopEvent | undefined;
  try {
    event = decodeHopHeader(header, frame, recordContext);
  } catch (err) {
    if (err instanceof RecordDecodeError) throw new HopRecordError(err.message);
    throw err;
  }
  if (!event) throw new HopRecordError('the hop record is not of an IP packet');
  if (dropLocation !== undefined) event.dropLocation = dropLocation;
  const annotation: HopAnnotation = { outcome };
  if (dropNode !== undefined || dropDevice !== undefined || dropWhy !== undefined) {
    if (dropNode === undefined || dropDevice === undefined || dropWhy === undefined) throw new HopRecordError('the path drop of the hop record is incomplete');
    annotation.pathDrop = { node: dropNode, device: dropDevice, reason: dropWhy };
    if (dropAt !== undefined) annotation.pathDrop.location = dropAt;
  }
  return { event, annotation };
}
