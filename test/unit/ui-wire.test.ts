// The page's decoder (ui/src/wire.ts) against the hub's encoder (src/wire/codec.ts): the events of
// a real lab run survive the trip field by field; random bytes and random cuts give FrameError and
// nothing else; the page's Subscribe is what the hub reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeSubscribe, encodeEventBatch, type StreamEvent } from '../../src/wire/codec.js';
import { decodeFrame, FrameError, fullPath, int64, nsBetween, outcomeOf, roleOf, subscribeFrame, decodeNodeMap } from '../../ui/src/wire.js';
import { fixtureFindings, fixturePaths } from './ui-fixtures.js';
import { vxtrace } from '../../src/generated/vxtrace.js';

const healthy = fixturePaths('healthy.ndjson');
const nat = fixturePaths('nat-public-ip.ndjson');
const natFindings = fixtureFindings('nat-public-ip.ndjson');

const batch: StreamEvent[] = [
  { kind: 'subscribed', subscribed: { hubVersion: '0.2.0', nodes: ['node1', 'node2'], clusterFrom: 'lab t1', timeNs: 1n } },
  { kind: 'node', status: { node: 'node3', state: 'unwatched', reason: 'agent gone: killed', timeNs: 2n } },
  ...healthy.map((path): StreamEvent => ({ kind: 'path', path })),
  ...nat.map((path): StreamEvent => ({ kind: 'path', path })),
  ...natFindings.map((finding): StreamEvent => ({ kind: 'finding', finding })),
  { kind: 'lost', lost: { source: 'ring-buffer', node: 'node2', count: 17, timeNs: 3n } },
  { kind: 'lost', lost: { source: 'client-queue', node: '', count: 5, timeNs: 4n } },
];

test('every event the hub encodes reaches the page with its fields', () => {
  const events = decodeFrame(encodeEventBatch(batch));
  assert.deepEqual(events.map((e) => e.kind), batch.map((e) => e.kind));
  assert.deepEqual(events[0], { kind: 'subscribed', hubVersion: '0.2.0', nodes: ['node1', 'node2'], clusterFrom: 'lab t1' });
  assert.deepEqual(events[1], { kind: 'node', node: 'node3', state: 'unwatched', reason: 'agent gone: killed' });
  assert.deepEqual(events.at(-2), { kind: 'lost', source: 'ring-buffer', node: 'node2', count: 17 });
  assert.deepEqual(events.at(-1), { kind: 'lost', source: 'client-queue', node: '', count: 5 });

  const pathEvents = events.flatMap((e) => (e.kind === 'path' ? [e] : []));
  // Paths come without their hops (kept as bytes): the table needs none; fullPath decodes them.
  for (const e of pathEvents) assert.deepEqual(e.path.hops, []);
  const paths = pathEvents.map((e) => fullPath(e.raw));
  const sent = [...healthy, ...nat];
  assert.deepEqual(pathEvents.map((e) => e.hopCount), sent.map((p) => p.hops.length));
  // The whole path is exactly what the generated decoder makes of the frame, and the light one the
  // same less its hops (compared as the bytes the generated encoder makes of each).
  const bytes = (m: vxtrace.v1.IPath) => Buffer.from(vxtrace.v1.Path.encode(m).finish()).toString('hex');
  const whole = vxtrace.v1.EventBatch.decode(encodeEventBatch(batch)).events.flatMap((e) => (e.path ? [e.path] : []));
  assert.deepEqual(paths.map(bytes), whole.map(bytes));
  pathEvents.forEach((e, i) => assert.equal(bytes(e.path), bytes({ ...whole[i]!, hops: [] })));
  assert.equal(paths.length, sent.length);
  paths.forEach((m, i) => {
    const p = sent[i]!;
    assert.equal(m.fingerprint, p.fingerprint);
    assert.equal(outcomeOf(m), p.outcome);
    assert.equal(m.srcPod, p.srcPod);
    assert.equal(m.dstNode, p.dstNode);
    assert.equal(int64(m.firstSeenNs), Number(p.firstSeenNs));
    assert.equal(nsBetween(m.firstSeenNs, m.lastSeenNs), Number(p.lastSeenNs - p.firstSeenNs));
    assert.equal(m.hops?.length, p.hops.length);
    m.hops!.forEach((h, j) => {
      const e = p.hops[j]!;
      assert.equal(`${h.node}/${h.device}/${roleOf(h)}`, `${e.event.node}/${e.event.device}/${e.event.role}`);
      assert.equal(h.latencyNs == null ? undefined : int64(h.latencyNs), e.latencyNs === undefined ? undefined : Number(e.latencyNs));
      assert.equal(h.dropReason ?? undefined, e.event.dropReason);
    });
    assert.equal(m.drop?.reason ?? undefined, p.drop?.reason);
    assert.equal(m.outer?.dst ?? undefined, p.outer?.dst);
  });

  const findings = events.flatMap((e) => (e.kind === 'finding' ? [e.finding] : []));
  assert.deepEqual(
    findings.map((f) => [f.code, f.severity, f.nodes, f.fix, f.evidence?.observed, f.evidence?.expected, f.evidence?.packets?.values ?? null, f.packetCount, f.key]),
    natFindings.map((f) => [f.code, f.severity, f.nodes, f.fix, f.evidence.observed, f.evidence.expected, f.evidence.packets ?? null, f.packetCount, f.key]),
  );
});

test('64-bit times: exact differences between wall clocks, Longs or numbers', () => {
  const a = { low: -1, high: 0x17a2b3c4 };
  const b = { low: 1, high: 0x17a2b3c5 };
  assert.equal(nsBetween(a, b), 2);
  assert.equal(int64({ low: 5, high: 1 }), 2 ** 32 + 5);
  assert.equal(int64(null), 0);
  assert.equal(nsBetween(10, 25), 15);
});

test('random bytes, and any cut of a real frame, give FrameError or events, never anything else', () => {
  const frame = encodeEventBatch(batch);
  const tryDecode = (bytes: Uint8Array) => {
    try {
      for (const e of decodeFrame(bytes)) if (e.kind === 'path') fullPath(e.raw);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => tryDecode(bytes)), { numRuns: 2000 });
  fc.assert(fc.property(fc.integer({ min: 0, max: frame.length }), fc.integer({ min: 0, max: frame.length }), (a, b) => tryDecode(frame.subarray(Math.min(a, b), Math.max(a, b)))), { numRuns: 2000 });
  // A cut through an event is an error, not a shorter batch that looks whole.
  assert.throws(() => decodeFrame(frame.subarray(0, frame.length - 3)), FrameError);
});

test("the page's filter is the Subscribe the hub reads", () => {
  assert.deepEqual(decodeSubscribe(subscribeFrame({ from: 'pod-a', to: 'pod-b', bothWays: true, node: 'node1', outcomes: ['dropped'], codes: ['DUPLICATE_PUBLIC_IP'] })), {
    from: 'pod-a', to: 'pod-b', bothWays: true, node: 'node1', codes: ['DUPLICATE_PUBLIC_IP'], outcomes: ['dropped'], client: 'page',
  });
  // Both ways means nothing with one pod.
  assert.deepEqual(decodeSubscribe(subscribeFrame({ from: 'pod-a', bothWays: true })), { from: 'pod-a', client: 'page' });
  assert.deepEqual(decodeSubscribe(subscribeFrame({})), { client: 'page' });
});

test('the node map decodes; garbage does not pass for one', () => {
  const bytes = vxtrace.v1.NodeMap.encode({ nodes: [{ name: 'node1', publicIp: '10.0.2.15', publicIpSharedWith: ['node2'] }], clusterFrom: 'lab x' }).finish();
  const m = decodeNodeMap(bytes);
  assert.equal(m.nodes?.[0]?.name, 'node1');
  assert.deepEqual(m.nodes?.[0]?.publicIpSharedWith, ['node2']);
  assert.throws(() => decodeNodeMap(new Uint8Array([0x0a, 0xff, 0x01])), FrameError);
});
