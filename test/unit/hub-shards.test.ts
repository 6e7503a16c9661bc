// The hub's pipeline in shards (src/hub/shards.ts): the same packets give the same paths and the
// same findings whether one Pipeline joins them all (as `follow` does) or shards in worker threads
// each join their share of fingerprints; records of another node's hooks are not taken; a batch
// that does not parse is a WireError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKLOG_RECORDS, PipelineShards } from '../../src/hub/shards.js';
import { HubFindings } from '../../src/hub/findings.js';
import type { FinishedPath } from '../../src/hub/shards.js';
import { Pipeline } from '../../src/session/pipeline.js';
import { ClusterModel } from '../../src/cluster/model.js';
import { clusterObjectsFromJson } from '../../src/cluster/list.js';
import type { NodeKernelState } from '../../src/cluster/kernel.js';
import type { PacketPath } from '../../src/correlate/path.js';
import type { HopEvent } from '../../src/datapath/hop.js';
import { decodeEventBatch, kernelHopRecordsOf, WireError } from '../../src/wire/codec.js';
import { HOP_LAYOUT } from '../../src/datapath/decode.js';
import { ndjsonLine, pathRecord } from '../../src/output/ndjson.js';
import { fixtureKernel, fixtureList, fixtureNodes } from './fixtures/flannel.js';
import { crossNodeHops, dropAt, type PacketSpec } from './fixtures/hops.js';

const nodes = fixtureNodes({ natPublicIp: true });
const objects = clusterObjectsFromJson(fixtureList(nodes), 'fixture');
const kernel = new Map<string, NodeKernelState>(nodes.map((n) => [n.name, fixtureKernel(n, nodes, { natPublicIp: true })]));
const IFINDEX: Record<string, number> = { cni0: 4, 'flannel.1': 5, eth1: 3 };

/** Packets between every pair of nodes: delivered, dropped on the way, cut short; each hop with its device's own ifindex (as the kernel names them). */
function traffic(): HopEvent[] {
  const events: HopEvent[] = [];
  const pairs: [number, number][] = [[1, 2], [2, 3], [3, 1], [2, 1]];
  for (let i = 0; i < 3200; i++) {
    const [a, b] = pairs[i % pairs.length]!;
    const spec: PacketSpec = {
      fingerprint: (0x5a5a000000000000n + BigInt(i) * 0x9e3779b1n).toString(16).padStart(16, '0').slice(-16),
      src: `10.244.${a}.10`, dst: `10.244.${b}.10`, srcNode: `node${a}`, dstNode: `node${b}`,
      outer: { src: `192.168.1.${120 + a}`, dst: i % 7 === 0 ? '10.0.2.15' : `192.168.1.${120 + b}` },
      icmpSeq: i, t0: 1_000_000n + BigInt(i) * 50_000n,
    };
    const hops = i % 5 === 0 ? [...crossNodeHops(spec, 3), dropAt(spec, spec.dstNode, 'eth1', 'uplink', 'OTHERHOST', spec.t0! + 80_000n, true)] : i % 11 === 0 ? crossNodeHops(spec, 4) : crossNodeHops(spec);
    events.push(...hops.map((e) => ({ ...e, ifindex: IFINDEX[e.device] ?? 9, netnsInode: 4026532000 + Number(e.node.slice(4)) })));
  }
  return events;
}

/** What one Pipeline makes of the packets, configured as the hub's shards are. */
function onePipeline(events: HopEvent[], nowNs: bigint): { paths: PacketPath[]; findings: ReturnType<Pipeline['findings']> } {
  const paths: PacketPath[] = [];
  const p = new Pipeline({ model: ClusterModel.build(objects, kernel), clocks: 'per-node', settleNs: 300_000_000n, wholeNeedsNoSettle: true, traced: () => true, onPath: (path) => void paths.push(path) });
  // The state findings first, as the hub has them once its agents reported their kernel state.
  p.stateFindings();
  for (const node of ['node1', 'node2', 'node3']) p.add(events.filter((e) => e.node === node));
  p.poll(nowNs);
  return { paths, findings: p.findings() };
}

async function sharded(workers: number, events: HopEvent[], nowNs: bigint, expected: number) {
  const got: FinishedPath[] = [];
  const backlog: boolean[] = [];
  const shards = new PipelineShards({ workers, objects, onPath: (p) => void got.push(p), onBacklog: (full) => void backlog.push(full) });
  try {
    shards.setModel(objects, kernel);
    shards.setWatched(['node1', 'node2', 'node3']);
    shards.setClients([{ id: 7, subscription: {} }]);
    // As the agents send them: each node's records in one batch of the kernel's records.
    for (const node of ['node1', 'node2', 'node3']) {
      const mine = events.filter((e) => e.node === node);
      assert.deepEqual(shards.addKernelRecords(node, kernelHopRecordsOf(mine).kernel!, 0n), { offered: mine.length, taken: mine.length });
    }
    shards.poll(nowNs);
    for (let waited = 0; got.length < expected && waited < 20_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  } finally {
    shards.stop();
  }
  const findings = new HubFindings();
  findings.checkState(ClusterModel.build(objects, kernel));
  const out: PacketPath[] = [];
  for (const p of got) {
    assert.deepEqual([...p.wants], [7], 'the one client wants every path');
    const [e] = decodeEventBatch(p.bytes);
    assert.equal(e?.kind, 'path');
    out.push((e as { path: PacketPath }).path);
    if (p.findings) findings.observe(p.findings);
  }
  return { shards: shards.count, paths: out, findings: findings.list(), backlog };
}

// Field by field (the fixtures' hand-made objects order some keys unlike the datapath's decoder).
const lines = (paths: PacketPath[]) => [...paths].sort((a, b) => a.fingerprint.localeCompare(b.fingerprint)).map((p) => JSON.parse(ndjsonLine(pathRecord(p))) as unknown);
const gist = (fs: ReturnType<Pipeline['findings']>) => fs.map((f) => ({ code: f.code, key: f.key, severity: f.severity, nodes: f.nodes, packetCount: f.packetCount, cause: f.cause, fix: f.fix }));

test('shards, in this thread or in two worker threads, give the paths and findings one Pipeline gives, in its order', async () => {
  const events = traffic();
  const nowNs = 1_800_000_000_000_000_000n;
  const single = onePipeline(events, nowNs);
  assert.ok(events.length > BACKLOG_RECORDS && single.paths.length >= 3200 && single.paths.some((p) => p.outcome === 'dropped') && single.paths.some((p) => p.outcome !== 'delivered' && p.outcome !== 'dropped'));
  assert.ok(single.findings.some((f) => f.packetCount > 0), 'packets show findings');
  for (const workers of [0, 2]) {
    const s = await sharded(workers, events, nowNs, single.paths.length);
    assert.equal(s.shards, Math.max(1, workers));
    assert.equal(s.paths.length, single.paths.length, `${workers} workers: every path`);
    assert.deepEqual(lines(s.paths), lines(single.paths), `${workers} workers: the same paths`);
    // In the same order, but for those a poll finished (cut short: timed out), which come last.
    const byRecords = (ps: PacketPath[]) => ps.filter((p) => p.outcome === 'delivered' || p.outcome === 'dropped').map((p) => p.fingerprint);
    assert.deepEqual(byRecords(s.paths), byRecords(single.paths), `${workers} workers: in the order one Pipeline finishes them`);
    // More records than BACKLOG_RECORDS sent at once to worker threads: a backlog (the hub stops reading its agents), then none.
    assert.deepEqual(s.backlog, workers && events.length > BACKLOG_RECORDS ? [true, false] : [], `${workers} workers: backlog`);
    assert.deepEqual(gist(s.findings), gist(single.findings), `${workers} workers: the same findings`);
  }
});

test('shards: records of a hook of another node are not taken; a batch cut inside a record is a WireError', () => {
  const shards = new PipelineShards({ workers: 0, objects, onPath: () => {}, onBacklog: () => {} });
  const events = traffic().slice(0, 60);
  const node2 = kernelHopRecordsOf(events.filter((e) => e.node === 'node2')).kernel!;
  const n = events.filter((e) => e.node === 'node2').length;
  assert.deepEqual(shards.addKernelRecords('node1', node2, 0n), { offered: n, taken: 0 });
  assert.deepEqual(shards.addKernelRecords('node2', { ...node2, hooks: [] }, 0n), { offered: n, taken: 0 }, 'hooks the batch does not name');
  assert.throws(() => shards.addKernelRecords('node2', { ...node2, bytes: node2.bytes.subarray(0, 100) }, 0n), WireError);
  const kind = node2.bytes.slice();
  kind[HOP_LAYOUT.fields.kind.offset] = 9;
  assert.throws(() => shards.addKernelRecords('node2', { ...node2, bytes: kind }, 0n), (err: Error) => err instanceof WireError && /unknown kind 9/.test(err.message));
  shards.stop();
});

test("shards keep the recent paths for the page's pcapng download: asked by fingerprint, in this thread or from two workers, each hop's frame whole", async () => {
  const events = traffic().slice(0, 1200);
  const nowNs = 1_800_000_000_000_000_000n;
  const single = onePipeline(events, nowNs);
  // A few packets of every outcome, and one fingerprint the hub never saw.
  const wanted = [...new Set(single.paths.filter((_, i) => i % 13 === 0).map((p) => p.fingerprint))];
  const expected = single.paths.filter((p) => wanted.includes(p.fingerprint));
  assert.ok(expected.length >= 10 && new Set(expected.map((p) => p.outcome)).size >= 2);
  const frames = (ps: PacketPath[]) => [...ps].sort((a, b) => a.fingerprint.localeCompare(b.fingerprint)).map((p) => p.hops.map((h) => Buffer.from(h.event.frame).toString('hex')));
  for (const workers of [0, 2]) {
    let finished = 0;
    const shards = new PipelineShards({ workers, objects, onPath: () => void finished++, onBacklog: () => {} });
    try {
      shards.setModel(objects, kernel);
      shards.setWatched(['node1', 'node2', 'node3']);
      for (const node of ['node1', 'node2', 'node3']) shards.addKernelRecords(node, kernelHopRecordsOf(events.filter((e) => e.node === node)).kernel!, 0n);
      shards.poll(nowNs);
      for (let waited = 0; finished < single.paths.length && waited < 20_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
      const got = await shards.recentPaths([...wanted, 'ffffffffffffffff']);
      assert.equal(got.length, expected.length, `${workers} workers: every path of those fingerprints`);
      assert.deepEqual(lines(got), lines(expected), `${workers} workers: the same paths`);
      assert.deepEqual(frames(got), frames(expected), `${workers} workers: every hop's frame`);
      assert.deepEqual(got.map((p) => p.firstSeenNs), [...got.map((p) => p.firstSeenNs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), `${workers} workers: oldest first`);
      assert.deepEqual(await shards.recentPaths(['ffffffffffffffff']), [], `${workers} workers: none held`);
    } finally {
      shards.stop();
    }
  }
});
