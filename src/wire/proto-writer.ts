// A small protobuf writer for the hub's hot path (a path event per finished packet, hundreds of
// thousands of hops a second): fields go straight into one reused buffer, nested messages get their
// length written after their content (moved when it needs more than the byte kept for it), 64-bit
// integers go through a typed array instead of BigInt arithmetic. It knows no schema: src/wire/codec.ts
// writes the fields of proto/vxtrace.proto with it, and test/unit/wire-codec.test.ts checks that the
// result is, byte for byte, what protobufjs' generated encoder writes for the same message (so a
// field changed in the .proto and not in codec.ts fails there).

const WIRE_VARINT = 0;
const WIRE_LENGTH = 2;

const u64 = new BigUint64Array(1);
const u32 = new Uint32Array(u64.buffer);

export class ProtoWriter {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initialBytes = 64 << 10) {
    this.buf = new Uint8Array(initialBytes);
  }

  /** Start over (the bytes written so far are dropped). */
  reset(): void {
    this.pos = 0;
  }

  get length(): number {
    return this.pos;
  }

  /** A copy of what was written (the writer's buffer is reused). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buf.subarray(0, this.pos));
    this.buf = bigger;
  }

  private varint32(v: number): void {
    this.room(5);
    const b = this.buf;
    let p = this.pos;
    v >>>= 0;
    while (v > 127) {
      b[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    b[p++] = v;
    this.pos = p;
  }

  private tag(field: number, wire: number): void {
    const t = (field << 3) | wire;
    if (t < 128) {
      this.room(1);
      this.buf[this.pos++] = t;
    } else this.varint32(t);
  }

  /** uint32 / enum / bool field (0 skipped unless `always`: proto3 `optional`). */
  uint32(field: number, v: number, always = false): void {
    if (v === 0 && !always) return;
    this.tag(field, WIRE_VARINT);
    this.varint32(v);
  }

  bool(field: number, v: boolean): void {
    if (!v) return;
    this.tag(field, WIRE_VARINT);
    this.room(1);
    this.buf[this.pos++] = 1;
  }

  /** int64 field from a bigint (two's complement, as protobufjs writes a negative one: 10 bytes); 0 skipped unless `always`. */
  int64(field: number, v: bigint, always = false): void {
    if (v === 0n && !always) return;
    u64[0] = v;
    let lo = u32[0]!;
    let hi = u32[1]!;
    this.tag(field, WIRE_VARINT);
    this.room(10);
    const b = this.buf;
    let p = this.pos;
    while (hi) {
      b[p++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo > 127) {
      b[p++] = (lo & 127) | 128;
      lo >>>= 7;
    }
    b[p++] = lo;
    this.pos = p;
  }

  /** string field ('' skipped unless `always`: proto3 `optional`). */
  string(field: number, s: string, always = false): void {
    const n = s.length;
    if (n === 0 && !always) return;
    this.tag(field, WIRE_LENGTH);
    // Most strings here are short ASCII (names, addresses, MACs): copied char by char after one
    // length byte; anything else is encoded as UTF-8 and its length written in front.
    if (n < 128) {
      this.room(1 + n);
      const b = this.buf;
      const at = this.pos;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 128) break;
        b[at + 1 + i] = c;
      }
      if (i === n) {
        b[at] = n;
        this.pos = at + 1 + n;
        return;
      }
    }
    const bytes = utf8.encode(s);
    this.varint32(bytes.length);
    this.room(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Start a length-delimited (message) field; end it with end(returned value). */
  begin(field: number): number {
    this.tag(field, WIRE_LENGTH);
    this.room(1);
    return this.pos++;
  }

  /** End the message begun at `at`: its length goes in front, moving the content if it needs more than one byte. */
  end(at: number): void {
    const len = this.pos - at - 1;
    if (len < 128) {
      this.buf[at] = len;
      return;
    }
    const extra = len < 1 << 14 ? 1 : len < 1 << 21 ? 2 : len < 1 << 28 ? 3 : 4;
    this.room(extra);
    const b = this.buf;
    b.copyWithin(at + 1 + extra, at + 1, this.pos);
    let v = len;
    let p = at;
    while (v > 127) {
      b[p++] = (v & 127) | 128;
      v >>>= 7;
    }
    b[p] = v;
    this.pos += extra;
  }
}

const utf8 = new TextEncoder();
