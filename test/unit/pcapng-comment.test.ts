// The packet comment written as bytes (HopCommentOption, the writer's hot path) is hopComment()'s
// text in UTF-8, byte for byte, for every kind of hop.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HopCommentOption, encodeHopRecord, hopComment, type HopAnnotation } from '../../src/pcapng/hop-record.js';
import { parseBlocks } from '../../src/pcapng/parser.js';
import { encodeEnhancedPacket } from '../../src/pcapng/blocks.js';
import { EpbDirection, Opt } from '../../src/pcapng/format.js';
import { PcapngWriter } from '../../src/pcapng/writer.js';
import { encodeHopHeader } from '../../src/datapath/decode.js';
import { echoPath, snapshot } from './pcapng-fixtures.js';
import type { HopEvent } from '../../src/datapath/hop.js';
import type { PacketPath } from '../../src/correlate/path.js';

function bytesOf(event: HopEvent, annotation: HopAnnotation): Buffer {
  const o = new HopCommentOption(event, annotation);
  const buf = Buffer.alloc(o.length + 8, 0xee);
  o.write(buf, 4);
  assert.equal(buf[3], 0xee, 'nothing written before');
  assert.equal(buf[4 + o.length], 0xee, 'nothing written past its length');
  return buf.subarray(4, 4 + o.length);
}

test('HopCommentOption writes hopComment() in UTF-8, for hops, drops, dropped paths, outer headers, IPv6 and names that are not ASCII', () => {
  const delivered = echoPath({ seq: 3 });
  const dropped = echoPath({ seq: 4, dropAtNode2: true });
  const cases: [HopEvent, HopAnnotation][] = [
    ...delivered.hops.map((h) => [h.event, { outcome: 'delivered' }] as [HopEvent, HopAnnotation]),
    ...dropped.hops.map((h) => [h.event, { outcome: 'dropped', pathDrop: dropped.drop }] as [HopEvent, HopAnnotation]),
    [{ ...delivered.hops[0]!.event, node: 'nœud-1', device: 'vethé' }, { outcome: 'unknown' }],
    [{ ...delivered.hops[0]!.event, inner: { ...delivered.hops[0]!.event.inner, family: 6, src: 'fd00::1', dst: 'fd00::2', protocol: 58 } }, { outcome: 'in-flight' }],
    [{ ...delivered.hops[0]!.event, inner: { ...delivered.hops[0]!.event.inner, protocol: 47 } }, { outcome: 'vanished' }],
    [{ ...dropped.hops.at(-1)!.event, dropLocation: undefined }, { outcome: 'dropped' }],
    [{ ...delivered.hops[2]!.event, fingerprint: 'fingerprint-ü' }, { outcome: 'untraced' }],
  ];
  for (const [event, annotation] of cases) {
    assert.equal(bytesOf(event, annotation).toString('utf8'), hopComment(event, annotation));
    assert.deepEqual(bytesOf(event, annotation), Buffer.from(hopComment(event, annotation), 'utf8'));
  }
});

/** Every packet block of the trace `file` is byte for byte the generic encoder's for its hop of `paths`, frames cut at `snaplen`. */
async function assertGenericBlocks(file: string, paths: readonly PacketPath[], snaplen: number): Promise<void> {
  const bytes = readFileSync(file);
  const blocks = parseBlocks(bytes).blocks.filter((b) => b.type === 'packet') as { offset: number; length: number; interfaceId: number }[];
  const events = paths.flatMap((p) => p.hops.map((h) => ({ event: h.event, annotation: { outcome: p.outcome, ...(p.drop ? { pathDrop: p.drop } : {}) } as HopAnnotation })));
  assert.equal(blocks.length, events.length);
  blocks.forEach((b, i) => {
    const { event, annotation } = events[i]!;
    const expected = encodeEnhancedPacket({
      interfaceId: b.interfaceId,
      timestamp: event.wallTimeNs,
      data: event.frame.subarray(0, snaplen),
      originalLength: event.skbLength,
      flags: event.kind === 'drop' ? EpbDirection.UNKNOWN : event.direction === 'ingress' ? EpbDirection.INBOUND : EpbDirection.OUTBOUND,
      comment: hopComment(event, annotation),
      customOptions: [{ code: Opt.CUSTOM_BINARY_COPYABLE, value: encodeHopRecord(event, annotation) }],
    });
    assert.deepEqual(bytes.subarray(b.offset, b.offset + b.length), expected, `packet ${i}`);
  });
}

/** A file in a directory of the test's own, removed after it. */
function traceFile(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-epb-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 't.pcapng');
}

test("the writer's packet blocks are byte for byte those of the generic encoder (comment string, hop record option)", async (t) => {
  const paths = [echoPath({ seq: 1 }), echoPath({ seq: 2, dropAtNode2: true }), echoPath({ seq: 3, dropAtNode2: true, dropFrame: 'ip' })];
  const file = traceFile(t);
  const w = PcapngWriter.open(file, { snapshot: snapshot(), snaplen: 100 });
  w.writeHops(paths);
  w.close();
  await assertGenericBlocks(file, paths, 100);
});

test("the writer's per-flow packet templates: many flows, fates and hooks interleaved, more than a hook keeps, give the generic encoder's blocks", async (t) => {
  // 60 paths: 20 inner destinations (more than the 16 templates a hook keeps), two fates, outer
  // destinations and drop locations that differ, each flow seen again after others evicted it.
  const paths = Array.from({ length: 60 }, (_, i) => {
    const p = echoPath({ seq: i + 1, dropAtNode2: i % 3 === 0, outerDst: i % 5 === 0 ? '192.168.50.99' : undefined });
    const dst = `10.244.2.${10 + (i % 20)}`;
    for (const h of p.hops) {
      h.event = { ...h.event, inner: { ...h.event.inner, dst } };
      if (i % 7 === 0 && h.event.kind === 'drop') h.event.dropLocation = 'ip_rcv_finish';
    }
    p.inner = p.hops[0]!.event.inner;
    return p;
  });
  // Some events carry the kernel's record header, as decoded events do; the others are encoded.
  for (const p of paths.filter((_, i) => i % 2)) for (const h of p.hops) h.event.record = encodeHopHeader(h.event);
  const file = traceFile(t);
  const w = PcapngWriter.open(file, { snapshot: snapshot(), snaplen: 256 });
  for (let i = 0; i < paths.length; i += 4) w.writeHops(paths.slice(i, i + 4));
  w.close();
  await assertGenericBlocks(file, paths, 256);
});
