// The one pipeline (hops -> correlate -> diagnose -> sinks) on plain values: what it hands out,
// when a finding is handed out again, --count, unjudged paths and the trace sink.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pipeline, type TraceSink } from '../../src/session/pipeline.js';
import type { PacketPath } from '../../src/correlate/path.js';
import type { Finding } from '../../src/diagnose/finding.js';
import type { HopEvent } from '../../src/datapath/hop.js';
import { crossNodeHops, uniqueFp, type PacketSpec } from './fixtures/hops.js';
import { F_SAMPLED, HOP_LAYOUT } from '../../src/datapath/decode.js';
import { fixtureModel } from './fixtures/flannel.js';

const healthy: PacketSpec = { src: '10.244.1.10', dst: '10.244.2.10', srcNode: 'node1', dstNode: 'node2', outer: { src: '192.168.1.121', dst: '192.168.1.122' } };

function run(opts: Partial<ConstructorParameters<typeof Pipeline>[0]> = {}) {
  const handed: { path: PacketPath; fresh: Finding[] }[] = [];
  const pipeline = new Pipeline({ model: fixtureModel().model, clocks: 'one', onPath: (path, fresh) => void handed.push({ path, fresh }), ...opts });
  return { pipeline, handed };
}

test('a healthy six-hop packet is handed out once, delivered, with no finding', () => {
  const { pipeline, handed } = run();
  pipeline.add(crossNodeHops({ ...healthy, fingerprint: uniqueFp() }));
  pipeline.flush();
  assert.equal(handed.length, 1);
  assert.equal(handed[0]!.path.outcome, 'delivered');
  assert.equal(handed[0]!.path.hops.length, 6);
  assert.equal(handed[0]!.path.srcPod, 'default/pod-a');
  assert.deepEqual(handed[0]!.fresh, []);
  assert.deepEqual(pipeline.findings(), []);
});

test('a state finding is handed out again when packets first show it, and not a third time', () => {
  const { model } = fixtureModel({ natPublicIp: true });
  const { pipeline, handed } = run({ model });
  const state = pipeline.stateFindings();
  assert.ok(state.some((f) => f.code === 'DUPLICATE_PUBLIC_IP' && f.packetCount === 0), state.map((f) => f.code).join());
  // node1's packets for node2 leave eth0 towards 10.0.2.15 (the NAT address every node registered)
  const seed: PacketSpec = { ...healthy, uplink: 'eth0', outer: { src: '10.0.2.15', dst: '10.0.2.15' } };
  pipeline.add(crossNodeHops({ ...seed, fingerprint: uniqueFp() }, 3));
  pipeline.flush();
  pipeline.add(crossNodeHops({ ...seed, fingerprint: uniqueFp() }, 3));
  pipeline.flush();
  assert.equal(handed.length, 2);
  const first = handed[0]!.fresh.map((f) => f.code);
  assert.ok(first.includes('DUPLICATE_PUBLIC_IP'), `the first packet confirms the state finding: ${first.join()}`);
  assert.ok(handed[0]!.fresh.every((f) => f.packetCount > 0));
  assert.deepEqual(handed[1]!.fresh.filter((f) => f.code === 'DUPLICATE_PUBLIC_IP'), [], 'known and shown by packets already: not handed out again');
});

test('maxPaths hands out that many paths, calls onLimit once, and drops the rest', () => {
  let limits = 0;
  const { pipeline, handed } = run({ maxPaths: 2, onLimit: () => limits++ });
  for (let i = 0; i < 4; i++) pipeline.add(crossNodeHops({ ...healthy, fingerprint: uniqueFp() }));
  pipeline.flush();
  assert.equal(handed.length, 2);
  assert.equal(limits, 1);
});

test('a path judge() refuses is handed out but not diagnosed; without a model nothing is', () => {
  const seed: PacketSpec = { ...healthy, uplink: 'eth0', outer: { src: '10.0.2.15', dst: '10.0.2.15' } };
  const { model } = fixtureModel({ natPublicIp: true });
  const refused = run({ model, judge: () => false });
  refused.pipeline.add(crossNodeHops({ ...seed, fingerprint: uniqueFp() }, 3));
  refused.pipeline.flush();
  assert.equal(refused.handed.length, 1);
  assert.deepEqual(refused.handed[0]!.fresh, []);
  assert.ok(refused.pipeline.findings().every((f) => f.packetCount === 0));

  const handed: PacketPath[] = [];
  const bare = new Pipeline({ clocks: 'one', onPath: (p) => void handed.push(p) });
  bare.add(crossNodeHops({ ...healthy, fingerprint: uniqueFp() }));
  bare.flush();
  assert.equal(handed.length, 1);
  assert.equal(handed[0]!.srcPod, undefined);
  assert.deepEqual(bare.findings(), []);
});

test('the trace sink gets each step\'s paths in one call, and hops that joined no path', () => {
  const calls: PacketPath[][] = [];
  const loose: HopEvent[] = [];
  const sink: TraceSink = { writeHops: (ps) => void calls.push(ps), writeHop: (e) => void loose.push(e) };
  const { pipeline } = run({ trace: sink });
  const fp = uniqueFp();
  const hops = crossNodeHops({ ...healthy, fingerprint: fp });
  pipeline.add([...crossNodeHops({ ...healthy, fingerprint: uniqueFp() }), ...hops]);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.length, 2, 'both delivered paths of the batch in one write');
  pipeline.add([hops[5]!]); // a late copy of a hop whose path was handed out
  assert.equal(loose.length, 1);
  assert.equal(loose[0]!.fingerprint, fp);
});

test('per-node clocks join hops whose node clocks are seconds apart', () => {
  const { pipeline, handed } = run({ clocks: 'per-node' });
  pipeline.add(crossNodeHops({ ...healthy, fingerprint: uniqueFp(), clockOffset: { node2: 5_000_000_000n } }));
  pipeline.flush();
  assert.equal(handed.length, 1);
  assert.equal(handed[0]!.path.outcome, 'delivered');
  assert.deepEqual(handed[0]!.path.hops.map((h) => h.event.node), ['node1', 'node1', 'node1', 'node2', 'node2', 'node2']);
});

test('a path that ends early while the kernel sampled its flow (VXT_F_SAMPLED) is not judged: counted apart, no lost-in-underlay, no finding; without the flag the same hops are lost in the underlay', () => {
  /** The hop with a kernel record whose flags say it was kept while its flow was being sampled. */
  const sampled = (e: HopEvent): HopEvent => {
    const record = new Uint8Array(HOP_LAYOUT.size);
    const at = HOP_LAYOUT.fields.flags.offset;
    record[at] = F_SAMPLED & 0xff;
    record[at + 1] = F_SAMPLED >> 8;
    return { ...e, record };
  };
  const partial = crossNodeHops({ ...healthy, fingerprint: uniqueFp() }, 3);
  let r = run();
  r.pipeline.add(partial.map(sampled));
  r.pipeline.flush();
  assert.equal(r.handed.length, 0);
  assert.equal(r.pipeline.partlySampled, 1);
  assert.deepEqual(r.pipeline.findings(), []);
  // A sampled flow's packet that arrives whole is judged as any other.
  r.pipeline.add(crossNodeHops({ ...healthy, fingerprint: uniqueFp() }).map(sampled));
  r.pipeline.flush();
  assert.deepEqual(r.handed.map((h) => h.path.outcome), ['delivered']);
  // Not sampled: three hops and nothing on node2 is a loss in the underlay.
  r = run();
  r.pipeline.add(crossNodeHops({ ...healthy, fingerprint: uniqueFp() }, 3));
  r.pipeline.flush();
  assert.deepEqual(r.handed.map((h) => h.path.outcome), ['lost-in-underlay']);
  assert.equal(r.pipeline.partlySampled, 0);
});
