// Property tests of the reader on damaged input: a trace cut at any byte, with bytes flipped, or
// fed in chunks of any size, never makes it throw anything but TraceFormatError, never hangs,
// and gives the packets before the damage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { PcapngWriter } from '../../src/pcapng/writer.js';
import { parseTrace, TraceBuilder, type Trace } from '../../src/pcapng/reader.js';
import { PcapngParser, parseBlocks } from '../../src/pcapng/parser.js';
import { alignToPages, encodeBlock, encodeSectionHeader } from '../../src/pcapng/blocks.js';
import { PADDING_BLOCK_TYPE, PAGE_SIZE, TraceFormatError } from '../../src/pcapng/format.js';
import { echoPath, sampleFindings, snapshot } from './pcapng-fixtures.js';
import { encodeHopHeader, mac } from '../../src/datapath/decode.js';
import { ipString } from '../../src/net/address.js';
import type { HopEvent, InnerPacket, OuterHeaders } from '../../src/datapath/hop.js';

function sampleTrace(): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-pcapng-prop-'));
  try {
    const file = join(dir, 'trace.pcapng');
    const w = PcapngWriter.open(file, { snapshot: snapshot() });
    w.writeHops(echoPath({ seq: 1 }));
    w.writeHops(echoPath({ seq: 2, dropAtNode2: true, outerDst: '10.0.2.15' }));
    w.writeFindings(sampleFindings);
    w.writeHops(echoPath({ seq: 3 }));
    w.close();
    return readFileSync(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const whole = sampleTrace();
const full = parseTrace(whole);

/** Parses, allowing only TraceFormatError; returns undefined when it was thrown. */
function tolerantParse(bytes: Uint8Array): Trace | undefined {
  try {
    return parseTrace(bytes);
  } catch (err) {
    if (err instanceof TraceFormatError) return undefined;
    throw err;
  }
}

/** Parses with the incremental parser fed `sizes`-sized chunks (cycled). */
function chunkedParse(bytes: Uint8Array, sizes: number[]): Trace | undefined {
  const builder = new TraceBuilder();
  builder.beginFile(undefined);
  const parser = new PcapngParser();
  let p = 0;
  for (let i = 0; p < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    for (const b of parser.push(bytes.subarray(p, p + n))) builder.add(b);
    p += n;
  }
  const damage = parser.end();
  if (damage) {
    if (parser.offset === 0) return undefined;
    builder.damage(damage);
  }
  return builder.trace;
}

test('the sample trace itself is whole', () => {
  assert.equal(full.damaged, false);
  assert.equal(full.hops.length, 17);
  assert.deepEqual(full.warnings, []);
});

test('cut at every byte: the packets before the cut, a warning naming it, never another error', () => {
  const blockEnds = parseBlocks(whole).blocks.map((b) => b.offset + b.length);
  for (let cut = 0; cut < whole.length; cut++) {
    const t = tolerantParse(whole.subarray(0, cut));
    const firstEnd = blockEnds[0]!;
    if (cut < firstEnd) {
      assert.equal(t, undefined, `cut at ${cut} inside the section header is an error`);
      continue;
    }
    assert.ok(t, `cut at ${cut}`);
    const wholeBlocks = blockEnds.filter((e) => e <= cut).length;
    assert.equal(t.damaged, !blockEnds.includes(cut), `cut at ${cut}`);
    if (t.damaged) assert.match(t.warnings[0]!, new RegExp(`ends inside a block at byte ${blockEnds[wholeBlocks - 1]}`));
    // A prefix of the packets, exactly.
    assert.deepEqual(t.hops, full.hops.slice(0, t.hops.length));
    const packetsBefore = parseBlocks(whole).blocks.slice(0, wholeBlocks).filter((b) => b.type === 'packet').length;
    assert.equal(t.hops.length, packetsBefore, `cut at ${cut}`);
  }
});

test('random byte flips: never an error other than TraceFormatError, and whole packets before the first flip', { timeout: 120_000 }, () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ at: fc.nat({ max: whole.length - 1 }), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 8 }),
      (flips) => {
        const bytes = Buffer.from(whole);
        for (const f of flips) bytes[f.at]! ^= f.xor;
        const t = tolerantParse(bytes);
        if (!t) return;
        // Blocks that end before the first flipped byte are intact: their hops come back unchanged.
        const first = Math.min(...flips.map((f) => f.at));
        const intact = parseBlocks(whole).blocks.filter((b) => b.type === 'packet' && b.offset + b.length <= first).length;
        assert.ok(t.hops.length >= intact || t.packets.length >= intact, `flips ${JSON.stringify(flips)}`);
        assert.deepEqual(t.hops.slice(0, intact), full.hops.slice(0, intact));
      },
    ),
    { numRuns: 3000 },
  );
});

test('random bytes (with or without a section header in front) never throw anything but TraceFormatError', () => {
  const shb = encodeSectionHeader({ userApplication: 'x' });
  fc.assert(
    fc.property(fc.boolean(), fc.uint8Array({ maxLength: 4096 }), (withHeader, junk) => {
      tolerantParse(withHeader ? Buffer.concat([shb, junk]) : junk);
    }),
    { numRuns: 3000 },
  );
});

test('chunks of any size give the same trace as the whole buffer, also on damaged input', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 20 }),
      fc.option(fc.nat({ max: whole.length - 1 })),
      (sizes, cutAt) => {
        const bytes = cutAt === null ? whole : whole.subarray(0, cutAt);
        assert.deepEqual(chunkedParse(bytes, sizes), tolerantParse(bytes));
      },
    ),
    { numRuns: 500 },
  );
  // One byte at a time, too.
  assert.deepEqual(chunkedParse(whole, [1]), full);
});

test('a declared block length above the limit is damage at once, not a wait for 4 GiB', () => {
  const shb = encodeSectionHeader({});
  const huge = Buffer.alloc(12);
  huge.writeUInt32LE(6, 0);
  huge.writeUInt32LE(0xfffffff0, 4);
  const parser = new PcapngParser();
  const blocks = parser.push(Buffer.concat([shb, huge]));
  assert.equal(blocks.length, 1);
  assert.match(parser.damage!.message, /length 4294967280 is above the 67108864-byte limit/);
  // Further input is ignored after damage; nothing accumulates.
  assert.deepEqual(parser.push(Buffer.alloc(1 << 20)), []);
  const small = new PcapngParser({ maxBlockLength: 64 });
  small.push(Buffer.concat([shb, encodeBlock(6, [Buffer.alloc(100)])]));
  assert.match(small.damage!.message, /above the 64-byte limit/);
});

test('mismatched leading and trailing lengths, and odd lengths, are named as damage with the byte', () => {
  const shb = encodeSectionHeader({});
  const block = encodeBlock(0x12345678, [Buffer.alloc(8)]);
  block.writeUInt32LE(16, block.length - 4);
  let r = parseBlocks(Buffer.concat([shb, block]));
  assert.equal(r.blocks.length, 1);
  assert.match(r.damage!.message, new RegExp(`at byte ${shb.length}: its length is 20 at the start but 16 at the end`));
  const odd = Buffer.from(encodeBlock(1, [Buffer.alloc(8)]));
  odd.writeUInt32LE(18, 4);
  r = parseBlocks(Buffer.concat([shb, odd]));
  assert.match(r.damage!.message, /not a multiple of 4/);
});

test('page alignment: no block of at most a page straddles a page boundary, and the blocks read back in order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 1500 }), { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 0, max: 2000 }),
      (bodyWords, startWords) => {
        // A start the writer can be at: 0 or at least 12 bytes left in the page.
        let start = startWords * 4;
        if (PAGE_SIZE - (start % PAGE_SIZE) < 12) start += PAGE_SIZE - (start % PAGE_SIZE);
        const blocks = bodyWords.map((w, i) => encodeBlock(0x1000 + i, [Buffer.alloc(w * 4, i)]));
        const placed = alignToPages(blocks, start);
        let pos = start;
        const boundaries: number[] = [];
        for (const b of placed) {
          const crosses = Math.floor(pos / PAGE_SIZE) !== Math.floor((pos + b.length - 1) / PAGE_SIZE);
          if (b.length <= PAGE_SIZE) assert.ok(!crosses, `a ${b.length}-byte block at ${pos} crosses a page boundary`);
          pos += b.length;
          boundaries.push(pos);
        }
        // Every page boundary inside the range is a block boundary, unless a block larger than a page spans it.
        const big = blocks.some((b) => b.length > PAGE_SIZE - 12);
        if (!big) {
          for (let page = Math.ceil((start + 1) / PAGE_SIZE) * PAGE_SIZE; page < pos; page += PAGE_SIZE) {
            assert.ok(boundaries.includes(page), `page boundary ${page} falls inside a block`);
          }
        }
        const { blocks: parsed, damage } = parseBlocks(Buffer.concat([encodeSectionHeader({}), ...placed]));
        assert.equal(damage, undefined);
        const ours = parsed.filter((b) => b.type === 'other' && b.blockType !== PADDING_BLOCK_TYPE);
        assert.deepEqual(ours.map((b) => b.type === 'other' && b.blockType), blocks.map((_, i) => 0x1000 + i));
      },
    ),
    { numRuns: 2000 },
  );
});

test('any HopEvent round-trips exactly through the writer and the reader', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-pcapng-rt-'));
  try {
    // Valid events, as the datapath decodes them (the hop record carries the kernel's header).
    const u = (max: number) => fc.integer({ min: 0, max });
    const text = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' });
    const macText = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => mac(b, 0));
    const addresses = (family: 4 | 6) =>
      fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 16, maxLength: 16 })).map(([a, b]) => [ipString(a, 0, family), ipString(b, 0, family)] as const);
    const inner = fc.constantFrom(4 as const, 6 as const).chain((family) =>
      fc.record({
        family: fc.constant(family), addrs: addresses(family), protocol: fc.constantFrom(1, 6, 17, 58, 47), srcPort: u(65535), dstPort: u(65535),
        ipId: family === 4 ? u(65535) : fc.constant(0), ipLength: family === 4 ? u(65535) : fc.integer({ min: 40, max: 65535 + 40 }), ttl: u(255), dontFragment: fc.boolean(),
        icmp: fc.record({ type: u(255), code: u(255), id: u(65535), seq: u(65535) }, { noNullPrototype: true }),
        tcp: fc.option(fc.record({ seq: u(0xffffffff), flags: u(255) }, { noNullPrototype: true }), { nil: undefined }),
      }, { noNullPrototype: true }).map(({ addrs, icmp, tcp, ...rest }) => {
        const p: InnerPacket = { ...rest, src: addrs[0], dst: addrs[1] };
        if (p.protocol === 1 || p.protocol === 58) p.icmp = icmp;
        if (p.protocol === 6 && tcp) p.tcp = tcp;
        return p;
      }),
    );
    const outer = fc.constantFrom(4 as const, 6 as const).chain((family) =>
      fc.record({ family: fc.constant(family), addrs: addresses(family), protocol: u(255), srcPort: u(65535), dstPort: u(65535), vni: u(0xffffff), udpChecksum: u(65535), srcMac: macText, dstMac: macText }, { noNullPrototype: true })
        .map(({ addrs, ...rest }): OuterHeaders => ({ ...rest, src: addrs[0], dst: addrs[1] })),
    );
    const event = fc.record(
      {
        timestampNs: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        wallTimeNs: fc.bigInt({ min: -(1n << 62n), max: (1n << 63n) - 1n }),
        kind: fc.constantFrom('tc' as const, 'drop' as const),
        node: text, device: text,
        role: fc.constantFrom('pod-bridge' as const, 'vtep' as const, 'uplink' as const, 'other' as const),
        direction: fc.constantFrom('ingress' as const, 'egress' as const),
        ifindex: u(0xffffffff), netnsInode: u(0xffffffff), skbLength: u(0xffffffff),
        fingerprint: fc.stringMatching(/^[0-9a-f]{16}$/),
        innerSrcMac: macText, innerDstMac: macText,
        inner, outer: fc.option(outer, { nil: undefined }),
        dropReason: text, dropReasonCode: u(1000), dropLocation: fc.option(text, { nil: undefined }),
        frameStart: fc.option(fc.constant('ip' as const), { nil: undefined }),
        frame: fc.uint8Array({ maxLength: 2048 }),
      },
      { noNullPrototype: true },
    ).map(({ outer: o, dropReason, dropReasonCode, dropLocation, frameStart, ...rest }) => {
      const e: HopEvent = { ...rest };
      if (o) e.outer = o;
      if (e.kind === 'drop') Object.assign(e, { dropReason, dropReasonCode }, dropLocation === undefined ? {} : { dropLocation });
      if (frameStart) e.frameStart = frameStart;
      return e;
    });
    let run = 0;
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 12 }), (events) => {
        const file = join(dir, `rt-${run++}.pcapng`);
        const w = PcapngWriter.open(file, { snapshot: snapshot() });
        for (const e of events) w.writeHop(e);
        w.close();
        const t = parseTrace(readFileSync(file));
        assert.deepEqual(t.warnings, []);
        // Each comes back with the record header the writer encoded for it.
        assert.deepEqual(t.hops, events.map((e) => ({ ...e, record: encodeHopHeader(e) })));
        rmSync(file);
      }),
      { numRuns: 200 },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
