import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Correlator, hopPosition, resolverFromModel } from '../../src/correlate/correlator.js';
import type { HopEvent } from '../../src/datapath/hop.js';
import { crossNodeHops, dropAt, hop, type PacketSpec } from './fixtures/hops.js';
import { fixtureModel } from './fixtures/flannel.js';
import { Diagnoser } from '../../src/diagnose/diagnoser.js';

const { model } = fixtureModel();
const resolver = resolverFromModel(model);
const spec: PacketSpec = {
  fingerprint: 'aaaa000000000001', src: '10.244.1.10', dst: '10.244.2.10', srcNode: 'node1', dstNode: 'node2',
  outer: { src: '192.168.1.121', dst: '192.168.1.122' },
};
const devices = (hops: { event: HopEvent }[]): string[] => hops.map((h) => `${h.event.node}/${h.event.device}/${h.event.direction}`);

test('six hops in order -> one delivered path with pods, nodes, outer headers, and latency on one clock', () => {
  const c = new Correlator({ resolver, clockOf: () => 'lab' });
  const done = crossNodeHops(spec).flatMap((e) => c.add(e));
  assert.equal(done.length, 1);
  const p = done[0]!;
  assert.equal(p.outcome, 'delivered');
  assert.equal(p.srcPod, 'default/pod-a');
  assert.equal(p.dstPod, 'default/pod-b');
  assert.equal(p.srcNode, 'node1');
  assert.equal(p.dstNode, 'node2');
  assert.equal(p.outer?.dst, '192.168.1.122');
  assert.deepEqual(devices(p.hops), [
    'node1/cni0/ingress', 'node1/flannel.1/egress', 'node1/eth1/egress', 'node2/eth1/ingress', 'node2/flannel.1/ingress', 'node2/cni0/egress',
  ]);
  assert.deepEqual(p.hops.map((h) => h.latencyNs), [undefined, 10_000n, 10_000n, 60_000n, 10_000n, 10_000n]);
  assert.equal(c.stats().delivered, 1);
  assert.equal(c.stats().inFlight, 0);
});

test('records merged from agents whose clocks differ, arriving out of order: ordered by hop position, latency only within a node', () => {
  const skewed: PacketSpec = { ...spec, clockOffset: { node1: 5_000_000_000n, node2: -3_000_000_000n } };
  const hops = crossNodeHops(skewed);
  const c = new Correlator({ resolver, settleNs: 500_000_000n });
  for (const e of [hops[4]!, hops[5]!, hops[3]!, hops[1]!, hops[0]!, hops[2]!]) assert.deepEqual(c.add(e), []);
  const done = c.poll(hops[5]!.wallTimeNs + 500_000_000n);
  assert.equal(done.length, 1);
  const p = done[0]!;
  assert.equal(p.outcome, 'delivered');
  assert.deepEqual(devices(p.hops), [
    'node1/cni0/ingress', 'node1/flannel.1/egress', 'node1/eth1/egress', 'node2/eth1/ingress', 'node2/flannel.1/ingress', 'node2/cni0/egress',
  ]);
  assert.deepEqual(p.hops.map((h) => h.latencyNs), [undefined, 10_000n, 10_000n, undefined, 10_000n, 10_000n]);
});

test('same-node packet: cni0 ingress then cni0 egress', () => {
  // Arriving out of order: the settle time lets the late ingress hop join before the path is handed out.
  const c = new Correlator({ resolver, settleNs: 1000n });
  const s: PacketSpec = { fingerprint: 'bb', src: '10.244.1.10', dst: '10.244.1.11', srcNode: 'node1', dstNode: 'node1' };
  const evs = [hop(s, 'node1', 'cni0', 'pod-bridge', 'egress', 200n), hop(s, 'node1', 'cni0', 'pod-bridge', 'ingress', 100n)];
  assert.deepEqual(evs.flatMap((e) => c.add(e)), []);
  const out = c.poll(evs[0]!.wallTimeNs + 1000n);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.outcome, 'delivered');
  assert.deepEqual(devices(out[0]!.hops), ['node1/cni0/ingress', 'node1/cni0/egress']);
});

test('echo request and reply are different packets (different fingerprints)', () => {
  const c = new Correlator({ resolver });
  const req = crossNodeHops({ ...spec, fingerprint: 'req' });
  const rep = crossNodeHops({ ...spec, fingerprint: 'rep', src: spec.dst, dst: spec.src, srcNode: 'node2', dstNode: 'node1', outer: { src: '192.168.1.122', dst: '192.168.1.121' } });
  const out = [...req, ...rep].flatMap((e) => c.add(e));
  assert.deepEqual(out.map((p) => [p.fingerprint, p.outcome, p.srcNode]), [['req', 'delivered', 'node1'], ['rep', 'delivered', 'node2']]);
});

test('drop -> dropped with where and reason', () => {
  const c = new Correlator({ resolver });
  const hops = [...crossNodeHops(spec, 4), dropAt(spec, 'node2', 'eth1', 'uplink', 'NETFILTER_DROP', 1_090_000n, true)];
  const out = hops.flatMap((e) => c.add(e));
  assert.equal(out.length, 1);
  assert.equal(out[0]!.outcome, 'dropped');
  assert.deepEqual(out[0]!.drop, { node: 'node2', device: 'eth1', reason: 'NETFILTER_DROP', location: 'kfree_skb_reason' });
});

test('left the sender uplink, never seen again -> lost-in-underlay after the timeout; stopped earlier -> vanished', () => {
  const c = new Correlator({ resolver, timeoutNs: 1_000_000_000n });
  for (const e of crossNodeHops(spec, 3)) c.add(e);
  for (const e of crossNodeHops({ ...spec, fingerprint: 'cc' }, 2)) c.add(e);
  const t = crossNodeHops(spec)[2]!.wallTimeNs;
  assert.deepEqual(c.poll(t + 999_000_000n), []);
  assert.equal(c.inFlight()[0]!.outcome, 'in-flight');
  const out = c.poll(t + 2_000_000_000n);
  assert.deepEqual(out.map((p) => [p.fingerprint, p.outcome, p.finishedBy]), [['aaaa000000000001', 'lost-in-underlay', 'timeout'], ['cc', 'vanished', 'timeout']]);
  assert.equal(c.stats().expired, 2);
});

test('a packet looped back locally (the same hook seen repeatedly) keeps its order and a bounded hop list', () => {
  const c = new Correlator({ resolver, maxHopsPerPath: 8, clockOf: () => 'lab' });
  const s: PacketSpec = { ...spec, fingerprint: 'loop', outer: undefined };
  const events: HopEvent[] = [hop(s, 'node1', 'cni0', 'pod-bridge', 'ingress', 0n)];
  for (let i = 1; i <= 20; i++) {
    events.push(hop(s, 'node1', 'flannel.1', 'vtep', 'egress', BigInt(i * 100)));
    events.push(hop(s, 'node1', 'flannel.1', 'vtep', 'ingress', BigInt(i * 100 + 50)));
  }
  for (const e of events) assert.deepEqual(c.add(e), []);
  const [p] = c.flush();
  assert.equal(p!.outcome, 'vanished');
  assert.equal(p!.hops.length, 8);
  assert.equal(p!.hopsDiscarded, 33);
  assert.deepEqual(p!.hops.map((h) => h.event.direction), ['ingress', 'egress', 'ingress', 'egress', 'ingress', 'egress', 'ingress', 'egress']);
  assert.equal(c.stats().unfinished, 1);
  // The loop ends when the TTL runs out: the drop is kept even past the hop limit, and ends the path.
  const c2 = new Correlator({ resolver, maxHopsPerPath: 8, clockOf: () => 'lab' });
  for (const e of events) c2.add(e);
  const [dropped] = c2.add(dropAt(s, 'node1', 'flannel.1', 'vtep', 'IP_INHDR', 5000n));
  assert.equal(dropped!.outcome, 'dropped');
  assert.equal(dropped!.drop!.reason, 'IP_INHDR');
  assert.equal(dropped!.hops.length, 9);
});

test('memory is bounded: the oldest open path is evicted and counted', () => {
  const c = new Correlator({ resolver, maxPaths: 3 });
  const evicted = [];
  for (let i = 0; i < 5; i++) evicted.push(...c.add(crossNodeHops({ ...spec, fingerprint: `p${i}` }, 2)[0]!));
  assert.deepEqual(evicted.map((p) => [p.fingerprint, p.finishedBy]), [['p0', 'evicted'], ['p1', 'evicted']]);
  assert.equal(c.stats().evicted, 2);
  assert.equal(c.stats().inFlight, 3);
});

test('a late hop for a path already handed out is counted, not re-opened', () => {
  const c = new Correlator({ resolver });
  const hops = crossNodeHops(spec);
  for (const e of hops.slice(0, 6)) c.add(e);
  assert.deepEqual(c.add(hops[2]!), []);
  assert.equal(c.stats().lateHops, 1);
  assert.equal(c.stats().inFlight, 0);
});

test('hook positions follow the path', () => {
  const order = [['pod-bridge', 'ingress'], ['vtep', 'egress'], ['uplink', 'egress'], ['uplink', 'ingress'], ['vtep', 'ingress'], ['pod-bridge', 'egress']] as const;
  assert.deepEqual(order.map(([role, direction]) => hopPosition({ role, direction, kind: 'tc' })), [0, 1, 2, 3, 4, 5]);
});

test('property: random and truncated hop records never throw in correlation or diagnosis; malformed ones are counted', () => {
  const anyHop = fc.record(
    {
      timestampNs: fc.oneof(fc.bigInt({ min: 0n, max: 1n << 40n }), fc.constant(undefined)),
      wallTimeNs: fc.oneof(fc.bigInt({ min: 0n, max: 1n << 62n }), fc.constant(undefined)),
      kind: fc.constantFrom('tc', 'drop', 'x'),
      node: fc.constantFrom('node1', 'node2', 'node3', ''),
      device: fc.constantFrom('cni0', 'flannel.1', 'eth1', 'eth0'),
      role: fc.constantFrom('pod-bridge', 'vtep', 'uplink', 'other'),
      direction: fc.constantFrom('ingress', 'egress', 'sideways'),
      fingerprint: fc.constantFrom('a', 'b', 'c', ''),
      innerDstMac: fc.constantFrom('0e:76:78:00:00:02', ''),
      inner: fc.oneof(fc.constant(undefined), fc.record({ src: fc.constantFrom('10.244.1.10', '10.244.2.10', 'x'), dst: fc.constantFrom('10.244.2.10', '10.244.9.9', ''), protocol: fc.nat(255), ipLength: fc.nat(70000), dontFragment: fc.boolean() })),
      dropReason: fc.constantFrom(undefined, 'NETFILTER_DROP', 'UDP_CSUM', 'OTHERHOST', 'WHATEVER'),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(fc.array(anyHop, { maxLength: 40 }), fc.bigInt({ min: 0n, max: 1n << 62n }), (events, now) => {
      const c = new Correlator({ resolver, maxPaths: 4, maxHopsPerPath: 5 });
      const paths = events.flatMap((e) => c.add(e as unknown as HopEvent));
      paths.push(...c.poll(now), ...c.flush());
      const handed = paths.length;
      // Diagnosis of whatever came out never throws either: findings only.
      const d = new Diagnoser(model);
      for (const p of paths) for (const f of d.observePath(p)) assert.ok(f.code && f.nodes.length > 0);
      const s = c.stats();
      assert.equal(s.events, events.length);
      assert.equal(handed, s.paths);
      assert.equal(s.inFlight, 0);
    }),
    { numRuns: 300 },
  );
});

test('throughput and bounded memory: 200k hops of 50k packets, most never finished, with 1000 paths held at most', () => {
  const c = new Correlator({ resolver, maxPaths: 1000, timeoutNs: 1_000_000n });
  const t0 = process.hrtime.bigint();
  let handed = 0;
  for (let i = 0; i < 50_000; i++) {
    const hops = crossNodeHops({ ...spec, fingerprint: `x${i}`, t0: BigInt(i) * 10_000n }, i % 3 === 0 ? 6 : 3);
    for (const e of hops) handed += c.add(e).length;
    if (i % 1000 === 0) handed += c.poll(1_700_000_000_000_000_000n + BigInt(i) * 10_000n).length;
    assert.ok(c.stats().inFlight <= 1000);
  }
  handed += c.flush().length;
  const s = c.stats();
  assert.equal(handed, s.paths);
  assert.equal(s.delivered, Math.ceil(50_000 / 3));
  assert.equal(s.delivered + s.lostInUnderlay, 50_000);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  assert.ok(ms < 10_000, `took ${ms} ms`);
});

test('hops kept out of every path are handed to onUnpathed: late ones and those past the loop cap', () => {
  const unpathed: [string, string][] = [];
  const c = new Correlator({ resolver: resolverFromModel(model), clockOf: () => 'lab', maxHopsPerPath: 6, onUnpathed: (e, why) => unpathed.push([`${e.node}/${e.device}/${e.direction}`, why]) });
  const spec: PacketSpec = { fingerprint: '00000000000000b1', src: '10.244.1.10', dst: '10.244.2.10', srcNode: 'node1', dstNode: 'node2', outer: { src: '192.168.1.121', dst: '192.168.1.122' } };
  const hops = crossNodeHops(spec);
  const done = hops.flatMap((e) => c.add(e));
  assert.equal(done.length, 1, 'delivered at the sixth hop');
  // A copy of a hop arriving after the path was handed out.
  assert.deepEqual(c.add({ ...hops[2]!, wallTimeNs: hops[2]!.wallTimeNs + 1000n }), []);
  assert.deepEqual(unpathed, [['node1/eth1/egress', 'late']]);
  assert.equal(c.stats().lateHops, 1);
  // A loop: the same device again and again, past the cap of 6 hops.
  const loop: PacketSpec = { ...spec, fingerprint: '00000000000000b2' };
  for (let i = 0; i < 9; i++) c.add(hop(loop, 'node1', 'flannel.1', 'vtep', i % 2 ? 'ingress' : 'egress', 1_000n + BigInt(i)));
  assert.equal(unpathed.filter(([, why]) => why === 'discarded').length, 3);
});

test('a path that left for a node nobody traces is untraced, not lost in the underlay, and shows no finding', () => {
  const onlyNode1 = new Correlator({ resolver, clockOf: () => 'lab', traced: (n) => n === 'node1' });
  for (const e of crossNodeHops(spec, 3)) onlyNode1.add(e);
  const [p] = onlyNode1.flush();
  assert.equal(p!.outcome, 'untraced');
  const d = new Diagnoser(model);
  assert.deepEqual(d.observePath(p!), []);
  // With node2 traced the same hops are a loss.
  const both = new Correlator({ resolver, clockOf: () => 'lab', traced: () => true });
  for (const e of crossNodeHops(spec, 3)) both.add(e);
  assert.equal(both.flush()[0]!.outcome, 'lost-in-underlay');
});

test('a copy the underlay flooded to a third node (OTHERHOST there) is not the packet\'s fate: delivered, without the copy', () => {
  const three = fixtureModel({ nodes: 3 }).model;
  const unpathed: [string, string][] = [];
  const c = new Correlator({ resolver: resolverFromModel(three), clockOf: () => 'lab', onUnpathed: (e, why) => unpathed.push([`${e.node}/${e.kind}`, why]) });
  const s: PacketSpec = { ...spec, fingerprint: 'f100d00000000001' };
  const [a, b, up, ...rest] = crossNodeHops(s);
  const copy = [hop(s, 'node3', 'eth1', 'uplink', 'ingress', 1_079_000n), dropAt(s, 'node3', 'eth1', 'uplink', 'OTHERHOST', 1_079_500n)];
  const done = [a!, b!, up!, ...copy, ...rest].flatMap((e) => c.add(e));
  assert.equal(done.length, 1);
  assert.equal(done[0]!.outcome, 'delivered');
  assert.deepEqual(devices(done[0]!.hops), ['node1/cni0/ingress', 'node1/flannel.1/egress', 'node1/eth1/egress', 'node2/eth1/ingress', 'node2/flannel.1/ingress', 'node2/cni0/egress']);
  assert.deepEqual(unpathed, [['node3/tc', 'flooded'], ['node3/drop', 'flooded']]);
  // The same drop on the destination node is the packet's fate.
  const d = new Correlator({ resolver: resolverFromModel(three), clockOf: () => 'lab' });
  const s2: PacketSpec = { ...spec, fingerprint: 'f100d00000000002' };
  const out = [...crossNodeHops(s2, 4), dropAt(s2, 'node2', 'eth1', 'uplink', 'OTHERHOST', 1_085_000n)].flatMap((e) => d.add(e));
  assert.equal(out[0]!.outcome, 'dropped');
});

test('paths whose fingerprints share a lookup number (fingerprintKey) stay apart: interleaved, each whole, in either finishing order', async () => {
  const { fingerprintKey } = await import('../../src/correlate/correlator.js');
  // Two, then three, 16-digit fingerprints with one key: found by trying (a 32-bit key collides within ~10^5 tries).
  const byKey = new Map<number, string[]>();
  let same: string[] | undefined;
  for (let i = 0; !same || same.length < 3; i++) {
    const fp = i.toString(16).padStart(16, '0');
    const k = fingerprintKey(fp);
    const list = byKey.get(k) ?? [];
    list.push(fp);
    byKey.set(k, list);
    if (list.length >= 3) same = list;
  }
  const fps: string[] = same;
  assert.equal(new Set(fps.map(fingerprintKey)).size, 1);
  for (const order of [[0, 1, 2], [2, 1, 0], [1, 0, 2]]) {
    const c = new Correlator({ resolver, clockOf: () => 'lab' });
    const hops: HopEvent[][] = order.map((i): HopEvent[] => crossNodeHops({ ...spec, fingerprint: fps[i]!, t0: 1_000_000n * BigInt(i) }));
    const done: ReturnType<Correlator['add']> = [];
    // hop by hop, the three packets interleaved; the first path finishes while the others are open
    for (let h = 0; h < 6; h++) for (const list of hops) done.push(...c.add(list[h]!));
    assert.deepEqual(done.map((p) => p.fingerprint), order.map((i) => fps[i]), `order ${order}`);
    for (const p of done) {
      assert.equal(p.outcome, 'delivered');
      assert.equal(p.hops.length, 6);
      assert.ok(p.hops.every((x) => x.event.fingerprint === p.fingerprint));
    }
    assert.equal(c.stats().inFlight, 0);
    // late hops of each still count as late (not a new path)
    for (const list of hops) assert.deepEqual(c.add(list[5]!), []);
    assert.equal(c.stats().lateHops, 3);
  }
});

test('detachHops: a path still open after its batch copies its hops out of the batch (frame and record); a finished one is left as it is', () => {
  // one "batch": every hop's record header and frame are views into this buffer
  const batch = new Uint8Array(64 * 1024);
  let at = 0;
  const inBatch = (e: HopEvent): HopEvent => {
    const frame = batch.subarray(at + 192, at + 192 + e.frame.length);
    frame.set(e.frame);
    const record = batch.subarray(at, at + 192).fill(0x5a);
    at += 192 + e.frame.length + 8;
    return { ...e, frame, record };
  };
  const whole = crossNodeHops(spec).map(inBatch);
  const partial = crossNodeHops({ ...spec, fingerprint: 'aaaa000000000002' }).slice(0, 3).map(inBatch);
  const frames = partial.map((e) => Array.from(e.frame));
  const c = new Correlator({ resolver, clockOf: () => 'lab', detachesHops: true });
  const done = [...whole, ...partial].flatMap((e) => c.add(e));
  assert.equal(done.length, 1, 'the whole path finished within the batch');
  c.detachHops();
  for (const e of whole) assert.equal(e.frame.buffer, batch.buffer, 'a finished path keeps its views (it is the consumer\'s now)');
  for (const [i, e] of partial.entries()) {
    assert.notEqual(e.frame.buffer, batch.buffer, 'an open path no longer holds the batch');
    assert.notEqual(e.record!.buffer, batch.buffer);
    assert.equal(e.frame.buffer, e.record!.buffer, 'side by side in one slab');
    assert.equal(e.frame.byteOffset, e.record!.byteOffset + 192);
    assert.deepEqual(Array.from(e.frame), frames[i], 'the same bytes');
    assert.ok(e.record!.every((b) => b === 0x5a));
  }
  // the rest of the path arrives in the next batch, and finishes it with every hop
  const rest = crossNodeHops({ ...spec, fingerprint: 'aaaa000000000002' }).slice(3).map(inBatch);
  const later = rest.flatMap((e) => c.add(e));
  assert.equal(later.length, 1);
  assert.equal(later[0]!.outcome, 'delivered');
  assert.equal(later[0]!.hops.length, 6);
  c.detachHops();
  assert.equal(rest[0]!.frame.buffer, batch.buffer, 'finished in its batch: not copied');
});
