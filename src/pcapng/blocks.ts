// pcapng block codecs: encode the blocks vxtrace writes, decode every block body a reader meets.
// Pure functions over bytes: no I/O. Encoders take the byte order so tests can build big-endian
// files; the writer always writes the host's (little-endian) order.
import {
  BlockType,
  BYTE_ORDER_MAGIC,
  EpbOpt,
  IdbOpt,
  MAX_OPTION_LENGTH,
  MIN_BLOCK_LENGTH,
  Opt,
  PADDING_BLOCK_TYPE,
  PAGE_SIZE,
  ShbOpt,
  TraceFormatError,
  padLength,
} from './format.js';

export interface RawOption {
  code: number;
  value: Uint8Array;
}

/** A custom option (codes 2988/2989/19372/19373): a Private Enterprise Number and its data. */
export interface CustomOption {
  code: number;
  pen: number;
  value: Uint8Array;
}

interface BlockPosition {
  /** Byte offset of the block in the stream. */
  offset: number;
  /** Block Total Length. */
  length: number;
}

export interface SectionHeaderBlock extends BlockPosition {
  type: 'section';
  littleEndian: boolean;
  majorVersion: number;
  minorVersion: number;
  comments: string[];
  hardware?: string;
  os?: string;
  userApplication?: string;
  customOptions: CustomOption[];
}

export interface InterfaceDescriptionBlock extends BlockPosition {
  type: 'interface';
  linkType: number;
  snapLength: number;
  name?: string;
  description?: string;
  /** if_tsresol as stored (default 6: microseconds). */
  tsresol: number;
  comments: string[];
  customOptions: CustomOption[];
}

export interface EnhancedPacketBlock extends BlockPosition {
  type: 'packet';
  interfaceId: number;
  /** Timestamp in units of the interface's if_tsresol. */
  timestamp: bigint;
  capturedLength: number;
  originalLength: number;
  data: Uint8Array;
  flags?: number;
  comments: string[];
  customOptions: CustomOption[];
}

export interface CustomBlock extends BlockPosition {
  type: 'custom';
  copyable: boolean;
  pen: number;
  /** Everything after the PEN (vxtrace writes no options in its custom blocks). */
  data: Uint8Array;
}

/** Any other block (name resolution, statistics, simple packet, unknown): skipped by vxtrace. */
export interface OtherBlock extends BlockPosition {
  type: 'other';
  blockType: number;
}

export type PcapngBlock = SectionHeaderBlock | InterfaceDescriptionBlock | EnhancedPacketBlock | CustomBlock | OtherBlock;

// ---------------------------------------------------------------------------------------------
// Encoding

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: false });

/** Encodes options (each padded to 32 bits) followed by opt_endofopt; nothing when there are none. */
export function encodeOptions(options: readonly RawOption[], littleEndian = true): Buffer {
  if (options.length === 0) return Buffer.alloc(0);
  let size = 4;
  for (const o of options) {
    if (o.value.length > MAX_OPTION_LENGTH) throw new RangeError(`pcapng option ${o.code} is ${o.value.length} bytes, more than 65535`);
    size += 4 + padLength(o.value.length);
  }
  const buf = Buffer.alloc(size);
  let p = 0;
  for (const o of options) {
    writeU16(buf, p, o.code, littleEndian);
    writeU16(buf, p + 2, o.value.length, littleEndian);
    buf.set(o.value, p + 4);
    p += 4 + padLength(o.value.length);
  }
  // opt_endofopt: code 0, length 0 (already zero).
  return buf;
}

export function stringOption(code: number, text: string): RawOption {
  return { code, value: truncateUtf8(text, MAX_OPTION_LENGTH) };
}

export function customStringOption(pen: number, text: string, littleEndian = true): RawOption {
  const body = utf8.encode(text);
  if (body.length + 4 > MAX_OPTION_LENGTH) throw new RangeError(`custom option text is ${body.length} bytes, more than ${MAX_OPTION_LENGTH - 4}`);
  const value = Buffer.alloc(4 + body.length);
  writeU32(value, 0, pen, littleEndian);
  value.set(body, 4);
  return { code: Opt.CUSTOM_STRING_COPYABLE, value };
}

/** UTF-8 bytes of `text`, cut at a character boundary to at most `max` bytes. */
export function truncateUtf8(text: string, max: number): Uint8Array {
  const bytes = utf8.encode(text);
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** Frames a block: type, total length, body (padded to 32 bits), total length. */
export function encodeBlock(type: number, body: readonly Uint8Array[], littleEndian = true): Buffer {
  let bodyLength = 0;
  for (const b of body) bodyLength += b.length;
  const total = 12 + padLength(bodyLength);
  const buf = Buffer.alloc(total);
  writeU32(buf, 0, type, littleEndian);
  writeU32(buf, 4, total, littleEndian);
  let p = 8;
  for (const b of body) {
    buf.set(b, p);
    p += b.length;
  }
  writeU32(buf, total - 4, total, littleEndian);
  return buf;
}

export interface SectionHeaderFields {
  comment?: string;
  hardware?: string;
  os?: string;
  userApplication?: string;
  customOptions?: RawOption[];
}

export function encodeSectionHeader(fields: SectionHeaderFields, littleEndian = true): Buffer {
  const head = Buffer.alloc(16);
  writeU32(head, 0, BYTE_ORDER_MAGIC, littleEndian);
  writeU16(head, 4, 1, littleEndian);
  writeU16(head, 6, 0, littleEndian);
  // Section Length -1: not specified (the section is written as a stream).
  head.writeBigInt64LE(-1n, 8);
  const options: RawOption[] = [];
  if (fields.comment !== undefined) options.push(stringOption(Opt.COMMENT, fields.comment));
  if (fields.hardware !== undefined) options.push(stringOption(ShbOpt.HARDWARE, fields.hardware));
  if (fields.os !== undefined) options.push(stringOption(ShbOpt.OS, fields.os));
  if (fields.userApplication !== undefined) options.push(stringOption(ShbOpt.USERAPPL, fields.userApplication));
  options.push(...(fields.customOptions ?? []));
  return encodeBlock(BlockType.SECTION_HEADER, [head, encodeOptions(options, littleEndian)], littleEndian);
}

export interface InterfaceFields {
  linkType: number;
  snapLength: number;
  name?: string;
  description?: string;
  tsresol?: number;
}

export function encodeInterfaceDescription(fields: InterfaceFields, littleEndian = true): Buffer {
  const head = Buffer.alloc(8);
  writeU16(head, 0, fields.linkType, littleEndian);
  writeU32(head, 4, fields.snapLength, littleEndian);
  const options: RawOption[] = [];
  if (fields.name !== undefined) options.push(stringOption(IdbOpt.NAME, fields.name));
  if (fields.description !== undefined) options.push(stringOption(IdbOpt.DESCRIPTION, fields.description));
  if (fields.tsresol !== undefined) options.push({ code: IdbOpt.TSRESOL, value: Uint8Array.of(fields.tsresol) });
  return encodeBlock(BlockType.INTERFACE_DESCRIPTION, [head, encodeOptions(options, littleEndian)], littleEndian);
}

export interface PacketFields {
  interfaceId: number;
  /** In units of the interface's if_tsresol. */
  timestamp: bigint;
  data: Uint8Array;
  originalLength: number;
  flags?: number;
  comment?: string;
  customOptions?: RawOption[];
  /** Custom string options (code 2988, copyable), encoded straight into the block. */
  customStrings?: { pen: number; text: string }[];
  /** Options that write their own value straight into the block (after customOptions). */
  optionWriters?: OptionWriter[];
}

/** An option whose value (`length` bytes, PEN included for custom options) is written in place. */
export interface OptionWriter {
  code: number;
  length: number;
  write(buf: Buffer, at: number): void;
}

/** What encoding a packet block needs to know first: its length, and its strings' encoded lengths. */
export interface PacketMeasure {
  total: number;
  comment: string | undefined;
  commentLength: number;
  stringLengths: number[];
  optionsLength: number;
}

export function measureEnhancedPacket(fields: PacketFields): PacketMeasure {
  let comment = fields.comment;
  let commentLength = comment !== undefined ? Buffer.byteLength(comment, 'utf8') : 0;
  if (comment !== undefined && commentLength > MAX_OPTION_LENGTH) {
    comment = Buffer.from(truncateUtf8(comment, MAX_OPTION_LENGTH)).toString('utf8');
    commentLength = Buffer.byteLength(comment, 'utf8');
  }
  const strings = fields.customStrings;
  const stringLengths = strings ? strings.map((c) => Buffer.byteLength(c.text, 'utf8')) : [];
  let optionsLength = 0;
  if (fields.flags !== undefined) optionsLength += 8;
  if (comment !== undefined) optionsLength += 4 + padLength(commentLength);
  if (fields.customOptions) {
    for (const o of fields.customOptions) {
      if (o.value.length > MAX_OPTION_LENGTH) throw new RangeError(`pcapng option ${o.code} is ${o.value.length} bytes, more than 65535`);
      optionsLength += 4 + padLength(o.value.length);
    }
  }
  for (const n of stringLengths) {
    if (n + 4 > MAX_OPTION_LENGTH) throw new RangeError(`custom option text is ${n} bytes, more than ${MAX_OPTION_LENGTH - 4}`);
    optionsLength += 8 + padLength(n);
  }
  if (fields.optionWriters) {
    for (const o of fields.optionWriters) {
      if (o.length > MAX_OPTION_LENGTH) throw new RangeError(`pcapng option ${o.code} is ${o.length} bytes, more than 65535`);
      optionsLength += 4 + padLength(o.length);
    }
  }
  if (optionsLength > 0) optionsLength += 4; // opt_endofopt
  return { total: 12 + 20 + padLength(fields.data.length) + optionsLength, comment, commentLength, stringLengths, optionsLength };
}

export function encodeEnhancedPacket(fields: PacketFields, littleEndian = true): Buffer {
  const m = measureEnhancedPacket(fields);
  const buf = Buffer.allocUnsafe(m.total);
  writeEnhancedPacket(buf, 0, fields, m, littleEndian);
  return buf;
}

/**
 * A DataView of `buf`, kept for the next call with the same buffer (the writer writes every
 * packet into one reused buffer): 64-bit values without BigInt arithmetic.
 */
let lastBuffer: Uint8Array | undefined;
let lastView: DataView | undefined;
export function viewOf(buf: Uint8Array): DataView {
  if (buf !== lastBuffer) {
    lastBuffer = buf;
    lastView = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  return lastView!;
}

/** Zero bytes from p up to the next 32-bit boundary (counted from at); the new p. */
function pad32(buf: Uint8Array, at: number, p: number): number {
  while ((p - at) & 3) buf[p++] = 0;
  return p;
}

/** Writes the packet block measured as `m` into `buf` at `at` (m.total bytes; the writer's hot path: no allocation). */
export function writeEnhancedPacket(buf: Buffer, at: number, fields: PacketFields, m: PacketMeasure, littleEndian = true): void {
  const { total, comment, commentLength, stringLengths, optionsLength } = m;
  const dataLength = fields.data.length;
  writeU32(buf, at, BlockType.ENHANCED_PACKET, littleEndian);
  writeU32(buf, at + 4, total, littleEndian);
  writeU32(buf, at + 8, fields.interfaceId, littleEndian);
  // The timestamp's high 32 bits, then its low 32 bits, each in the section's byte order
  // (setBigUint64 takes it modulo 2^64, as BigInt.asUintN(64) did).
  const view = viewOf(buf);
  view.setBigUint64(at + 12, fields.timestamp, littleEndian);
  if (littleEndian) {
    const low = view.getUint32(at + 12, true);
    view.setUint32(at + 12, view.getUint32(at + 16, true), true);
    view.setUint32(at + 16, low, true);
  }
  writeU32(buf, at + 20, dataLength, littleEndian);
  writeU32(buf, at + 24, Math.max(fields.originalLength, dataLength), littleEndian);
  buf.set(fields.data, at + 28);
  let p = pad32(buf, at, at + 28 + dataLength);
  if (fields.flags !== undefined) {
    writeU16(buf, p, EpbOpt.FLAGS, littleEndian);
    writeU16(buf, p + 2, 4, littleEndian);
    writeU32(buf, p + 4, fields.flags, littleEndian);
    p += 8;
  }
  if (comment !== undefined) {
    writeU16(buf, p, Opt.COMMENT, littleEndian);
    writeU16(buf, p + 2, commentLength, littleEndian);
    p += 4;
    p += buf.write(comment, p, 'utf8');
    p = pad32(buf, at, p);
  }
  if (fields.customOptions) {
    for (const o of fields.customOptions) {
      writeU16(buf, p, o.code, littleEndian);
      writeU16(buf, p + 2, o.value.length, littleEndian);
      buf.set(o.value, p + 4);
      p = pad32(buf, at, p + 4 + o.value.length);
    }
  }
  if (fields.customStrings) {
    const strings = fields.customStrings;
    for (let i = 0; i < strings.length; i++) {
      writeU16(buf, p, Opt.CUSTOM_STRING_COPYABLE, littleEndian);
      writeU16(buf, p + 2, 4 + stringLengths[i]!, littleEndian);
      writeU32(buf, p + 4, strings[i]!.pen, littleEndian);
      p += 8;
      p += buf.write(strings[i]!.text, p, 'utf8');
      p = pad32(buf, at, p);
    }
  }
  if (fields.optionWriters) {
    for (const o of fields.optionWriters) {
      writeU16(buf, p, o.code, littleEndian);
      writeU16(buf, p + 2, o.length, littleEndian);
      o.write(buf, p + 4);
      p = pad32(buf, at, p + 4 + o.length);
    }
  }
  if (optionsLength > 0) {
    writeU32(buf, p, 0, littleEndian); // opt_endofopt
    p += 4;
  }
  writeU32(buf, p, total, littleEndian);
}

/**
 * Places blocks written from `position` so that none of at most PAGE_SIZE bytes straddles a page
 * boundary, inserting padding blocks where needed, and no page is left with 4 or 8 bytes (too
 * few for a padding block). Why: the kernel may stop a write to a file at a page boundary when the
 * writer is killed (SIGKILL is checked between pages); with every page boundary on a block
 * boundary, a killed writer's file still ends with a whole block.
 */
export function alignToPages(blocks: readonly Buffer[], position: number, littleEndian = true): Buffer[] {
  const out: Buffer[] = [];
  let pos = position;
  for (const b of blocks) {
    const fill = paddingBefore(pos, b.length);
    if (fill) {
      out.push(encodeBlock(PADDING_BLOCK_TYPE, [Buffer.alloc(fill - 12)], littleEndian));
      pos += fill;
    }
    out.push(b);
    pos += b.length;
  }
  return out;
}

/**
 * Bytes of padding block alignToPages puts before a block of `size` bytes written at `position`
 * (0: it fits in what is left of the page, or starts one).
 */
export function paddingBefore(position: number, size: number): number {
  const space = PAGE_SIZE - (position % PAGE_SIZE);
  if (space === PAGE_SIZE || size === space || size + MIN_BLOCK_LENGTH <= space) return 0;
  // Fill to the boundary; if fewer than 12 bytes are left (only after a block larger than a page), a page more.
  return space >= MIN_BLOCK_LENGTH ? space : space + PAGE_SIZE;
}

/** Writes a padding block of `length` bytes (at least 12) into `buf` at `at`. */
export function writePaddingBlock(buf: Uint8Array, at: number, length: number, littleEndian = true): void {
  buf.fill(0, at, at + length);
  writeU32(buf, at, PADDING_BLOCK_TYPE, littleEndian);
  writeU32(buf, at + 4, length, littleEndian);
  writeU32(buf, at + length - 4, length, littleEndian);
}

export function encodeCustomBlock(pen: number, data: Uint8Array, copyable = true, littleEndian = true): Buffer {
  const head = Buffer.alloc(4);
  writeU32(head, 0, pen, littleEndian);
  return encodeBlock(copyable ? BlockType.CUSTOM_COPYABLE : BlockType.CUSTOM_NOT_COPYABLE, [head, data], littleEndian);
}

// ---------------------------------------------------------------------------------------------
// Decoding

/**
 * Decodes one whole block (`block` holds exactly Block Total Length bytes, framing already
 * checked by the parser). Throws TraceFormatError when its body is malformed.
 */
export function decodeBlock(block: Uint8Array, offset: number, littleEndian: boolean): PcapngBlock {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const type = view.getUint32(0, littleEndian);
  const length = block.length;
  const body = block.subarray(8, length - 4);
  const bodyView = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const fail = (what: string): never => {
    throw new TraceFormatError(`damaged ${blockName(type)} block at byte ${offset}: ${what}`, offset);
  };
  switch (type) {
    case BlockType.SECTION_HEADER: {
      if (body.length < 16) fail('too short for a section header');
      const options = decodeOptions(body.subarray(16), littleEndian, offset, fail);
      const s: SectionHeaderBlock = {
        type: 'section', offset, length, littleEndian,
        majorVersion: bodyView.getUint16(4, littleEndian),
        minorVersion: bodyView.getUint16(6, littleEndian),
        comments: [], customOptions: [],
      };
      for (const o of options) {
        if (o.code === Opt.COMMENT) s.comments.push(text(o.value));
        else if (o.code === ShbOpt.HARDWARE) s.hardware = text(o.value);
        else if (o.code === ShbOpt.OS) s.os = text(o.value);
        else if (o.code === ShbOpt.USERAPPL) s.userApplication = text(o.value);
        else pushCustom(s.customOptions, o, littleEndian);
      }
      return s;
    }
    case BlockType.INTERFACE_DESCRIPTION: {
      if (body.length < 8) fail('too short for an interface description');
      const options = decodeOptions(body.subarray(8), littleEndian, offset, fail);
      const i: InterfaceDescriptionBlock = {
        type: 'interface', offset, length,
        linkType: bodyView.getUint16(0, littleEndian),
        snapLength: bodyView.getUint32(4, littleEndian),
        tsresol: 6, comments: [], customOptions: [],
      };
      for (const o of options) {
        if (o.code === Opt.COMMENT) i.comments.push(text(o.value));
        else if (o.code === IdbOpt.NAME) i.name = text(o.value);
        else if (o.code === IdbOpt.DESCRIPTION) i.description = text(o.value);
        else if (o.code === IdbOpt.TSRESOL) {
          if (o.value.length !== 1) fail(`if_tsresol is ${o.value.length} bytes, not 1`);
          i.tsresol = o.value[0]!;
        } else pushCustom(i.customOptions, o, littleEndian);
      }
      return i;
    }
    case BlockType.ENHANCED_PACKET: {
      if (body.length < 20) fail('too short for an enhanced packet');
      const capturedLength = bodyView.getUint32(12, littleEndian);
      if (20 + padLength(capturedLength) > body.length) fail(`captured length ${capturedLength} runs past the end of the block`);
      const options = decodeOptions(body.subarray(20 + padLength(capturedLength)), littleEndian, offset, fail);
      const p: EnhancedPacketBlock = {
        type: 'packet', offset, length,
        interfaceId: bodyView.getUint32(0, littleEndian),
        timestamp: (BigInt(bodyView.getUint32(4, littleEndian)) << 32n) | BigInt(bodyView.getUint32(8, littleEndian)),
        capturedLength,
        originalLength: bodyView.getUint32(16, littleEndian),
        data: body.subarray(20, 20 + capturedLength),
        comments: [], customOptions: [],
      };
      for (const o of options) {
        if (o.code === Opt.COMMENT) p.comments.push(text(o.value));
        else if (o.code === EpbOpt.FLAGS) {
          if (o.value.length !== 4) fail(`epb_flags is ${o.value.length} bytes, not 4`);
          p.flags = new DataView(o.value.buffer, o.value.byteOffset, 4).getUint32(0, littleEndian);
        } else pushCustom(p.customOptions, o, littleEndian);
      }
      return p;
    }
    case BlockType.CUSTOM_COPYABLE:
    case BlockType.CUSTOM_NOT_COPYABLE: {
      if (body.length < 4) fail('too short for a custom block');
      return {
        type: 'custom', offset, length,
        copyable: type === BlockType.CUSTOM_COPYABLE,
        pen: bodyView.getUint32(0, littleEndian),
        data: body.subarray(4),
      };
    }
    default:
      return { type: 'other', offset, length, blockType: type };
  }
}

function decodeOptions(
  region: Uint8Array,
  littleEndian: boolean,
  _offset: number,
  fail: (what: string) => never,
): RawOption[] {
  const out: RawOption[] = [];
  const view = new DataView(region.buffer, region.byteOffset, region.byteLength);
  let p = 0;
  while (p + 4 <= region.length) {
    const code = view.getUint16(p, littleEndian);
    const len = view.getUint16(p + 2, littleEndian);
    if (code === Opt.END) break;
    if (p + 4 + len > region.length) fail(`option ${code} of ${len} bytes runs past the end of the block`);
    out.push({ code, value: region.subarray(p + 4, p + 4 + len) });
    p += 4 + padLength(len);
  }
  return out;
}

function pushCustom(into: CustomOption[], o: RawOption, littleEndian: boolean): void {
  if (
    (o.code === Opt.CUSTOM_STRING_COPYABLE || o.code === Opt.CUSTOM_BINARY_COPYABLE ||
      o.code === Opt.CUSTOM_STRING_NOT_COPYABLE || o.code === Opt.CUSTOM_BINARY_NOT_COPYABLE) &&
    o.value.length >= 4
  ) {
    const pen = new DataView(o.value.buffer, o.value.byteOffset, 4).getUint32(0, littleEndian);
    into.push({ code: o.code, pen, value: o.value.subarray(4) });
  }
  // Other options vxtrace does not use are skipped, as the format asks of readers.
}

function text(bytes: Uint8Array): string {
  // Some writers include a terminating NUL; pcapng strings are not NUL-terminated.
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return utf8Strict.decode(bytes.subarray(0, end));
}

export function blockName(type: number): string {
  switch (type) {
    case BlockType.SECTION_HEADER: return 'section header';
    case BlockType.INTERFACE_DESCRIPTION: return 'interface description';
    case BlockType.ENHANCED_PACKET: return 'enhanced packet';
    case BlockType.SIMPLE_PACKET: return 'simple packet';
    case BlockType.NAME_RESOLUTION: return 'name resolution';
    case BlockType.INTERFACE_STATISTICS: return 'interface statistics';
    case BlockType.CUSTOM_COPYABLE:
    case BlockType.CUSTOM_NOT_COPYABLE: return 'custom';
    case PADDING_BLOCK_TYPE: return 'vxtrace padding';
    default: return `type 0x${type.toString(16).padStart(8, '0')}`;
  }
}

function writeU16(buf: Uint8Array, at: number, v: number, le: boolean): void {
  if (le) { buf[at] = v & 0xff; buf[at + 1] = (v >>> 8) & 0xff; } else { buf[at] = (v >>> 8) & 0xff; buf[at + 1] = v & 0xff; }
}

function writeU32(buf: Uint8Array, at: number, v: number, le: boolean): void {
  if (le) {
    buf[at] = v & 0xff; buf[at + 1] = (v >>> 8) & 0xff; buf[at + 2] = (v >>> 16) & 0xff; buf[at + 3] = (v >>> 24) & 0xff;
  } else {
    buf[at] = (v >>> 24) & 0xff; buf[at + 1] = (v >>> 16) & 0xff; buf[at + 2] = (v >>> 8) & 0xff; buf[at + 3] = v & 0xff;
  }
}
