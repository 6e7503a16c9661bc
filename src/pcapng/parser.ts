// Incremental pcapng framing: feed bytes in chunks of any size, get whole decoded blocks back.
// It never throws on bad input: the first damage stops it and is reported as a TraceFormatError
// value (`damage`), with every block before it already returned. It never allocates more than
// the bytes it was given plus one block, and rejects declared lengths above a sanity limit.
import { BlockType, BYTE_ORDER_MAGIC, DEFAULT_MAX_BLOCK_LENGTH, MIN_BLOCK_LENGTH, TraceFormatError } from './format.js';
import { blockName, decodeBlock, type PcapngBlock } from './blocks.js';

export interface ParserOptions {
  /** Largest Block Total Length accepted (bytes); longer is treated as damage. */
  maxBlockLength?: number;
}

const LEGACY_PCAP_MAGICS = new Set([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1]);

export class PcapngParser {
  private readonly maxBlockLength: number;
  private pending: Buffer[] = [];
  private pendingLength = 0;
  /** Stream offset of the first pending byte. */
  private consumed = 0;
  private littleEndian: boolean | undefined;
  private stopped: TraceFormatError | undefined;
  private blocksSeen = 0;

  constructor(options: ParserOptions = {}) {
    this.maxBlockLength = options.maxBlockLength ?? DEFAULT_MAX_BLOCK_LENGTH;
  }

  /** The damage that stopped parsing, if any. Blocks before it were all returned. */
  get damage(): TraceFormatError | undefined {
    return this.stopped;
  }

  /** Bytes of the stream turned into whole blocks so far. */
  get offset(): number {
    return this.consumed;
  }

  /** Adds bytes; returns every block they complete. After damage, returns nothing. */
  push(chunk: Uint8Array): PcapngBlock[] {
    if (this.stopped || chunk.length === 0) return [];
    this.pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.pendingLength += chunk.length;
    const out: PcapngBlock[] = [];
    const needed = this.needed();
    if (needed === undefined || this.pendingLength < needed) return out;
    // Enough bytes for at least one block: join once, then take every whole block.
    const buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingLength);
    let p = 0;
    for (;;) {
      const r = this.frame(buf, p);
      if (r === undefined) break;
      if (r instanceof TraceFormatError) {
        this.stopped = r;
        break;
      }
      out.push(r.block);
      this.blocksSeen++;
      p = r.next;
    }
    this.consumed += p;
    // Copy the remainder so a consumer's large chunk is not kept alive by a few trailing bytes.
    const rest = this.stopped ? Buffer.alloc(0) : Buffer.from(buf.subarray(p));
    this.pending = rest.length ? [rest] : [];
    this.pendingLength = rest.length;
    return out;
  }

  /**
   * Ends the stream. Returns the damage (if any): bytes left over that do not make a whole block
   * mean the file was cut short, e.g. by a writer that was killed.
   */
  end(): TraceFormatError | undefined {
    if (this.stopped) return this.stopped;
    if (this.blocksSeen === 0 && this.pendingLength === 0) {
      this.stopped = new TraceFormatError('the file is empty: it holds no pcapng section', 0);
    } else if (this.pendingLength > 0) {
      this.stopped = new TraceFormatError(
        `the file ends inside a block at byte ${this.consumed} (${this.pendingLength} bytes of an unfinished block): it was cut short, probably while being written; everything before that byte was read`,
        this.consumed,
      );
    }
    return this.stopped;
  }

  /** Bytes needed before the next block can be framed (undefined: a header is not there yet). */
  private needed(): number | undefined {
    if (this.pendingLength < 12) return undefined;
    const head = this.pendingHead(12);
    const r = this.header(head, 0);
    if (r instanceof TraceFormatError) return 12; // frame() will report it
    return r.length;
  }

  private pendingHead(n: number): Buffer {
    if (this.pending[0]!.length >= n) return this.pending[0]!;
    return Buffer.concat(this.pending, this.pendingLength).subarray(0, n);
  }

  /** Reads and checks a block header at `p` (12 bytes available). */
  private header(buf: Buffer, p: number): { type: number; length: number; littleEndian: boolean } | TraceFormatError {
    const at = this.consumed + p;
    const typeLE = buf.readUInt32LE(p);
    let littleEndian = this.littleEndian;
    if (typeLE === BlockType.SECTION_HEADER) {
      const magicLE = buf.readUInt32LE(p + 8);
      if (magicLE === BYTE_ORDER_MAGIC) littleEndian = true;
      else if (buf.readUInt32BE(p + 8) === BYTE_ORDER_MAGIC) littleEndian = false;
      else return new TraceFormatError(`damaged section header at byte ${at}: the byte-order magic is 0x${magicLE.toString(16)}, not 0x1a2b3c4d`, at);
    } else if (littleEndian === undefined) {
      const first = buf.readUInt32LE(p);
      if (LEGACY_PCAP_MAGICS.has(first) || LEGACY_PCAP_MAGICS.has(buf.readUInt32BE(p))) {
        return new TraceFormatError('this is a legacy pcap file (e.g. from tcpdump -w), not a vxtrace trace: vxtrace read replays the pcapng traces vxtrace writes (vxtrace capture --write, follow --write), which hold every hop with its node and the cluster snapshot; open this one with Wireshark', at);
      }
      return new TraceFormatError('not a pcapng file: it does not start with a section header block (0x0a0d0d0a)', at);
    }
    const type = littleEndian ? typeLE : buf.readUInt32BE(p);
    const length = littleEndian ? buf.readUInt32LE(p + 4) : buf.readUInt32BE(p + 4);
    if (length < MIN_BLOCK_LENGTH || length % 4 !== 0) {
      return new TraceFormatError(`damaged ${blockName(type)} block at byte ${at}: its length ${length} is not a multiple of 4 of at least 12`, at);
    }
    if (length > this.maxBlockLength) {
      return new TraceFormatError(
        `damaged ${blockName(type)} block at byte ${at}: its length ${length} is above the ${this.maxBlockLength}-byte limit`,
        at,
      );
    }
    if (type === BlockType.SECTION_HEADER && length < 28) {
      return new TraceFormatError(`damaged section header at byte ${at}: its length ${length} is below 28`, at);
    }
    return { type, length, littleEndian: littleEndian! };
  }

  /** Frames and decodes one block at `p`, or undefined when it is not all there yet. */
  private frame(buf: Buffer, p: number): { block: PcapngBlock; next: number } | TraceFormatError | undefined {
    if (buf.length - p < 12) return undefined;
    const h = this.header(buf, p);
    if (h instanceof TraceFormatError) return h;
    if (buf.length - p < h.length) return undefined;
    const at = this.consumed + p;
    const trailer = h.littleEndian ? buf.readUInt32LE(p + h.length - 4) : buf.readUInt32BE(p + h.length - 4);
    if (trailer !== h.length) {
      return new TraceFormatError(
        `damaged ${blockName(h.type)} block at byte ${at}: its length is ${h.length} at the start but ${trailer} at the end`,
        at,
      );
    }
    if (h.type === BlockType.SECTION_HEADER) {
      const major = h.littleEndian ? buf.readUInt16LE(p + 12) : buf.readUInt16BE(p + 12);
      if (major !== 1) return new TraceFormatError(`section header at byte ${at} has pcapng version ${major}: only version 1 is known`, at);
    }
    try {
      const block = decodeBlock(buf.subarray(p, p + h.length), at, h.littleEndian);
      if (block.type === 'section') this.littleEndian = h.littleEndian;
      return { block, next: p + h.length };
    } catch (err) {
      if (err instanceof TraceFormatError) return err;
      throw err;
    }
  }
}

/** Parses a whole buffer: every block up to the first damage, and the damage. */
export function parseBlocks(bytes: Uint8Array, options?: ParserOptions): { blocks: PcapngBlock[]; damage?: TraceFormatError } {
  const parser = new PcapngParser(options);
  const blocks = parser.push(bytes);
  const damage = parser.end();
  return damage ? { blocks, damage } : { blocks };
}
