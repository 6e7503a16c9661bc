// The page's store (ui/src/store.ts) on plain values: bounded memory with the count let go, newest
// first, pause, filters applied to what is held, findings and their proving paths, loss counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeEventBatch, type StreamEvent } from '../../src/wire/codec.js';
import type { PacketPath } from '../../src/correlate/path.js';
import { decodeFrame, type PageEvent } from '../../ui/src/wire.js';
import { PathRing, Store, fullOf, pathMatches, podMatches, rowOf } from '../../ui/src/store.js';
import { fixtureFindings, fixturePaths } from './ui-fixtures.js';

const [request, reply] = fixturePaths('healthy.ndjson');
const [loop] = fixturePaths('nat-public-ip.ndjson');
const natFindings = fixtureFindings('nat-public-ip.ndjson');

const wire = (events: StreamEvent[]): PageEvent[] => decodeFrame(encodeEventBatch(events));
const pathEvent = (p: PacketPath, fingerprint = p.fingerprint): StreamEvent => ({ kind: 'path', path: { ...p, fingerprint } });
type PathEvent = Extract<PageEvent, { kind: 'path' }>;
const event = (p: PacketPath): PathEvent => wire([pathEvent(p)])[0] as PathEvent;

test('the ring keeps the newest `cap` rows, newest first, and counts what it let go', () => {
  const ring = new PathRing(4);
  const e = event(request!);
  const rows = Array.from({ length: 10 }, (_, i) => rowOf(e, i + 1));
  const gone = rows.map((r) => ring.push(r)).filter(Boolean);
  assert.equal(gone.length, 6);
  assert.equal(ring.count, 4);
  assert.deepEqual([0, 1, 2, 3].map((i) => ring.rowAt(i).seq), [10, 9, 8, 7]);
  assert.equal(ring.indexOf(rows[8]!), 1);
  assert.equal(ring.indexOf(rows[2]!), -1);
  assert.equal(ring.retain((r) => r.seq % 2 === 0), 2);
  assert.deepEqual([0, 1].map((i) => ring.rowAt(i).seq), [10, 8]);
  assert.equal(ring.indexOf(rows[7]!), 1);
  assert.throws(() => ring.rowAt(2), RangeError);
});

test('a stream of any length stays within the cap', () => {
  const store = new Store(100);
  const batch = wire(Array.from({ length: 50 }, (_, i) => pathEvent(request!, `f${i}`)));
  for (let i = 0; i < 200; i++) store.ingest(batch);
  assert.equal(store.received, 10_000);
  assert.equal(store.rows.count, 100);
  assert.equal(store.letGo, 9_900);
  assert.equal(store.outcomes.get('delivered'), 10_000);
  assert.equal(store.view.count, 100);
  // Held without their hops until one is looked at.
  const row = store.view.rowAt(0);
  assert.equal(row.full, undefined);
  assert.equal(row.hopCount, 6);
  assert.equal(fullOf(row).hops?.length, 6);
  assert.equal(fullOf(row), row.full);
});

test('pause freezes the table while paths keep coming; resume shows them', () => {
  const store = new Store(10);
  store.ingest(wire([pathEvent(request!, 'a'), pathEvent(reply!, 'b')]));
  store.pause();
  store.ingest(wire([pathEvent(loop!, 'c')]));
  assert.equal(store.view.count, 2);
  assert.equal(store.view.rowAt(0).path.fingerprint, 'b');
  assert.equal(store.newSincePause, 1);
  store.resume();
  assert.equal(store.view.count, 3);
  assert.equal(store.view.rowAt(0).path.fingerprint, 'c');
});

test('a new filter drops what is held and does not match: pod pair, both ways, node, outcome', () => {
  const mReq = event(request!).path;
  const mRep = event(reply!).path;
  const mLoop = event(loop!).path;
  assert.equal(podMatches('pod-a', 'default/pod-a'), true);
  assert.equal(podMatches('default/pod-a', 'default/pod-a'), true);
  assert.equal(podMatches('pod-a', 'default/pod-ab'), false);
  assert.equal(pathMatches({ from: 'pod-a', to: 'pod-b' }, mReq), true);
  assert.equal(pathMatches({ from: 'pod-a', to: 'pod-b' }, mRep), false);
  assert.equal(pathMatches({ from: 'pod-a', to: 'pod-b', bothWays: true }, mRep), true);
  assert.equal(pathMatches({ outcomes: ['dropped'] }, mLoop), true);
  assert.equal(pathMatches({ outcomes: ['dropped'] }, mReq), false);
  assert.equal(pathMatches({ node: 'node2' }, mLoop), true); // its destination is on node2
  assert.equal(pathMatches({ node: 'node3' }, mReq), false);

  const store = new Store(10);
  store.ingest(wire([pathEvent(request!, 'a'), pathEvent(reply!, 'b'), pathEvent(loop!, 'c'), ...natFindings.map((finding): StreamEvent => ({ kind: 'finding', finding }))]));
  store.select(store.view.rowAt(1));
  store.setFilter({ outcomes: ['delivered'] });
  assert.deepEqual([0, 1].map((i) => store.view.rowAt(i).path.fingerprint), ['b', 'a']);
  assert.equal(store.view.count, 2);
  assert.equal(store.selected?.path.fingerprint, 'b');
  store.setFilter({ codes: ['FDB_DST_LOCAL'] });
  assert.deepEqual(store.findings.map((f) => f.code), ['FDB_DST_LOCAL']);
});

test('findings: one per key, errors first; a finding shows the paths that prove it, also those that come later', () => {
  const store = new Store(10);
  store.ingest(wire([pathEvent(request!, 'x'), ...natFindings.map((finding): StreamEvent => ({ kind: 'finding', finding }))]));
  // DUPLICATE_PUBLIC_IP came twice (from state, then with its packet): the later one holds.
  assert.deepEqual(store.findings.map((f) => [f.code, f.packetCount]), [['DUPLICATE_PUBLIC_IP', 1], ['FDB_DST_LOCAL', 1]]);
  const dup = store.findings[0]!;
  store.focusOn(dup);
  assert.equal(store.view.count, 0);
  store.ingest(wire([pathEvent(loop!)]));
  assert.equal(store.view.count, 1);
  assert.equal(store.view.rowAt(0).path.fingerprint, loop!.fingerprint);
  assert.deepEqual(store.fingerprintsInView(), [loop!.fingerprint]);
  store.focusOn(undefined);
  assert.equal(store.view.count, 2);
  assert.deepEqual(store.fingerprintsInView(), [loop!.fingerprint, 'x']);
});

test('subscribed: the hub sends its findings and nodes anew; losses are counted per node and for this page', () => {
  const store = new Store(10);
  store.ingest(wire([
    ...natFindings.map((finding): StreamEvent => ({ kind: 'finding', finding })),
    { kind: 'node', status: { node: 'node3', state: 'unwatched', reason: 'agent gone', timeNs: 1n } },
    { kind: 'lost', lost: { source: 'ring-buffer', node: 'node1', count: 3, timeNs: 1n } },
    { kind: 'lost', lost: { source: 'agent-queue', node: 'node1', count: 4, timeNs: 1n } },
    { kind: 'lost', lost: { source: 'hub-queue', node: 'node2', count: 1, timeNs: 1n } },
    { kind: 'lost', lost: { source: 'client-queue', node: '', count: 9, timeNs: 1n } },
  ]));
  assert.equal(store.findings.length, 2);
  assert.deepEqual(store.lostUpstream.get('node1'), { ringBuffer: 3, agentQueue: 4, hubQueue: 0 });
  assert.equal(store.lostUpstreamTotal, 8);
  assert.equal(store.missed, 9);
  assert.equal(store.connection.state, 'connecting');
  store.ingest(wire([{ kind: 'subscribed', subscribed: { hubVersion: '0.2.0', nodes: ['node1', 'node2'], clusterFrom: 'lab t', timeNs: 1n } }]));
  assert.equal(store.connection.state, 'live');
  assert.equal(store.findings.length, 0);
  assert.deepEqual(store.nodeViews().map((n) => [n.name, n.state]), [['node1', 'connected'], ['node2', 'connected']]);
  // Counters are the page's own: they survive a reconnect.
  assert.equal(store.missed, 9);
});

test('every change is announced, so that the page renders (once per frame)', () => {
  const store = new Store(10);
  let calls = 0;
  store.onChange(() => calls++);
  store.ingest(wire([pathEvent(request!)]));
  store.pause();
  store.resume();
  store.ingest([]);
  assert.equal(calls, 3);
  assert.equal(store.pathsVersion, 3);
});

test("a path's flow: the hub's per-hop counters of the flow a path belongs to (an ICMP echo by its id), the latest replacing the one before, bounded", async () => {
  const { summarizeFlows } = await import('../../src/correlate/flows.js');
  const { FLOW_CAP } = await import('../../ui/src/store.js');
  const store = new Store(100);
  store.ingest(wire([pathEvent(request!)]));
  const row = store.rows.rowAt(0);
  const inner = request!.inner;
  const flow = { family: inner.family, src: inner.src, dst: inner.dst, protocol: inner.protocol, srcPort: inner.icmp!.id, dstPort: 0 };
  const hop = (node: string, device: string, role: 'pod-bridge' | 'vtep' | 'uplink', direction: 'ingress' | 'egress', packets: number) => ({
    flow, node, device, role, direction, kind: 'tc' as const, packets, bytes: packets * 98, firstNs: 1n, lastNs: 2n, records: packets, sampled: 0, lost: 0,
  });
  const counts = (n: number) => summarizeFlows([hop('node1', 'cni0', 'pod-bridge', 'ingress', n), hop('node1', 'eth1', 'uplink', 'egress', n), hop('node2', 'eth1', 'uplink', 'ingress', n - 1)]);
  assert.equal(store.flowOf(row), undefined);
  const before = store.version;
  store.ingest(wire([{ kind: 'flows', flows: { flows: counts(5), reads: [] } }]));
  assert.ok(store.version > before);
  assert.deepEqual(store.flowOf(row)!.hops!.map((h) => Number(h.packets)), [5, 5, 4]);
  store.ingest(wire([{ kind: 'flows', flows: { flows: counts(9), reads: [] } }]));
  assert.deepEqual(store.flowOf(row)!.hops!.map((h) => Number(h.packets)), [9, 9, 8], 'the latest counts');
  const many = Array.from({ length: FLOW_CAP + 10 }, (_, i) => summarizeFlows([{ ...hop('node1', 'cni0', 'pod-bridge', 'ingress', 1), flow: { ...flow, srcPort: 60000 + (i % 5000), dst: `10.9.${i >> 8}.${i & 255}` } }])[0]!);
  store.ingest(wire([{ kind: 'flows', flows: { flows: many, reads: [] } }]));
  assert.equal(store.flows.size, FLOW_CAP);
  assert.equal(store.flowOf(row), undefined, 'the least recently updated went first');
});
