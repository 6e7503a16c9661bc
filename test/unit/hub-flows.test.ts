// The hub's per-hop flow counters with plain values: the new wire messages round-trip (an agent's
// read, the hub's Flows event) and random bytes throw only WireError; the hub merges agents' reads
// into one summary per flow, adds a restarted agent's new tracer to what the old one counted (never
// backwards, never twice), sends each subscriber only what changed and only what it counted since it
// subscribed, and finds PACKET_LOSS only once a flow is quiet at every hop: two agents read a second
// apart give no finding while the flow lives, and the real one with its numbers once it stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { FlowCount, FlowTuple } from '../../src/datapath/flow.js';
import type { DeviceRole, Direction } from '../../src/datapath/hop.js';
import { decodeAgentReport, decodeEventBatch, encodeAgentReport, encodeEventBatch, WireError } from '../../src/wire/codec.js';
import { HubFlows } from '../../src/hub/flows.js';
import { flowRecord, ndjsonLine } from '../../src/output/ndjson.js';
import { summarizeFlows, type FlowSummary } from '../../src/correlate/flows.js';
import { FlowReporter } from '../../src/agent/flow-reporter.js';
import type { FlowCounterReport } from '../../src/wire/flows.js';
import { fixtureModel } from './fixtures/flannel.js';

const T0 = 1_796_000_000_000_000_000n;
const MS = 1_000_000n;
const SECOND = 1_000_000_000n;

const { model } = fixtureModel({ nodes: 3 });
const podA = model.pods.find((p) => p.name === 'pod-a')!;
const podB = model.pods.find((p) => p.name === 'pod-b')!;
const udp: FlowTuple = { family: 4, src: podA.ips[0]!, dst: podB.ips[0]!, protocol: 17, srcPort: 40000, dstPort: 7777 };

const HOPS: [string, string, DeviceRole, Direction][] = [
  ['node1', 'cni0', 'pod-bridge', 'ingress'], ['node1', 'flannel.1', 'vtep', 'egress'], ['node1', 'eth1', 'uplink', 'egress'],
  ['node2', 'eth1', 'uplink', 'ingress'], ['node2', 'flannel.1', 'vtep', 'ingress'], ['node2', 'cni0', 'pod-bridge', 'egress'],
];

function count(flow: FlowTuple, hop: number, packets: number, lastNs = T0 + BigInt(packets) * MS): FlowCount {
  const [node, device, role, direction] = HOPS[hop]!;
  return { flow, node, device, role, direction, kind: 'tc', packets, bytes: packets * 100, firstNs: T0, lastNs, records: packets, sampled: 0, lost: 0 };
}

/** One node's read: its hops of `udp` counting these packets. */
const read = (node: 'node1' | 'node2', packets: [number, number, number], tracerId = 1n, at = T0): FlowCounterReport => ({
  tracerId, readTimeNs: at, full: false, more: false,
  counts: packets.map((p, i) => count(udp, (node === 'node1' ? 0 : 3) + i, p)),
});

test('FlowCounters and Flows round-trip through AgentReport and EventBatch; a hub summary prints the NDJSON a local summary does', () => {
  const counts = [count(udp, 0, 10), count(udp, 1, 10), { ...count(udp, 2, 3), kind: 'drop' as const, dropReason: 'NETFILTER_DROP' }];
  const r: FlowCounterReport = { tracerId: 0x7fffffffffffff01n, readTimeNs: T0 + 5n, full: true, more: true, counts };
  const back = decodeAgentReport(encodeAgentReport({ kind: 'flow-counters', counters: r }));
  assert.equal(back.kind, 'flow-counters');
  // the node is the link's: it does not cross the wire
  assert.deepEqual(back.kind === 'flow-counters' && back.counters, { ...r, counts: counts.map((c) => ({ ...c, node: '' })) });

  const summaries = summarizeFlows(HOPS.map((_, i) => count(udp, i, 1000 - (i >= 3 ? 8 : 0))), { podRef: (ip) => model.podByIp(ip)?.ref, nodeOfPodIp: (ip) => model.podCidrOwner(ip)?.node.name });
  const reads = [{ node: 'node1', timeNs: T0 }, { node: 'node2', timeNs: T0 + SECOND }];
  const [e] = decodeEventBatch(encodeEventBatch([{ kind: 'flows', flows: { flows: summaries, reads } }]));
  assert.equal(e!.kind, 'flows');
  const got = e!.kind === 'flows' ? e!.flows : undefined;
  assert.deepEqual(got, { flows: summaries, reads });
  assert.equal(got!.flows.map((f) => ndjsonLine(flowRecord(f))).join(''), summaries.map((f) => ndjsonLine(flowRecord(f))).join(''), 'the same NDJSON, byte for byte');
});

test('a FlowCounters or Flows cut anywhere or made of random bytes throws WireError only', () => {
  const frame = encodeAgentReport({ kind: 'flow-counters', counters: read('node1', [5, 5, 5]) });
  const events = encodeEventBatch([{ kind: 'flows', flows: { flows: summarizeFlows(read('node1', [5, 5, 5]).counts.map((c) => ({ ...c, node: 'node1' }))), reads: [] } }]);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: frame.length - 1 }), fc.integer({ min: 0, max: events.length - 1 }), fc.uint8Array({ maxLength: 300 }), (a, b, junk) => {
      for (const f of [() => decodeAgentReport(frame.subarray(0, a)), () => decodeEventBatch(events.subarray(0, b)), () => decodeAgentReport(junk), () => decodeEventBatch(junk)]) {
        try {
          f();
        } catch (err) {
          assert.ok(err instanceof WireError, String(err));
        }
      }
    }),
    { numRuns: 300 },
  );
});

const everything = (_: FlowSummary) => true;

test('the hub merges both nodes into one summary per flow; a subscriber gets what changed, counted since it subscribed', () => {
  const hub = new HubFlows<object>({ model: () => model });
  const early = {};
  const late = {};
  hub.subscribe(early);
  hub.report('node1', read('node1', [100, 100, 100]), 0n, T0);
  hub.report('node2', read('node2', [100, 100, 100]), 0n, T0);
  let t = hub.tick(T0, [[early, everything]]);
  assert.deepEqual(t.events.get(early)!.flows[0]!.hops.map((h) => h.packets), [100, 100, 100, 100, 100, 100]);
  assert.deepEqual(t.events.get(early)!.flows[0]!.hops.map((h) => h.node), ['node1', 'node1', 'node1', 'node2', 'node2', 'node2']);
  assert.equal(t.events.get(early)!.flows[0]!.srcPod, podA.ref);
  hub.subscribe(late);
  // the same read again (a resend): nothing changed, only the reads are news
  hub.report('node1', read('node1', [100, 100, 100]), 0n, T0 + SECOND);
  t = hub.tick(T0 + SECOND, [[early, everything], [late, everything]]);
  assert.deepEqual(t.events.get(early)!.flows, []);
  assert.deepEqual(t.events.get(early)!.reads.map((r) => r.node), ['node1', 'node2']);
  hub.report('node1', read('node1', [130, 130, 130]), 0n, T0 + 2n * SECOND);
  hub.report('node2', read('node2', [130, 130, 130]), 0n, T0 + 2n * SECOND);
  t = hub.tick(T0 + 2n * SECOND, [[early, everything], [late, (s) => s.flow.dstPort === 1]]);
  assert.deepEqual(t.events.get(early)!.flows[0]!.hops.map((h) => h.packets), [130, 130, 130, 130, 130, 130]);
  assert.deepEqual(t.events.get(late)!.flows, [], 'a flow its filter does not want is not sent');
  t = hub.tick(T0 + 2n * SECOND, []);
  hub.report('node1', read('node1', [150, 150, 150]), 0n, T0 + 3n * SECOND);
  hub.report('node2', read('node2', [150, 150, 150]), 0n, T0 + 3n * SECOND);
  t = hub.tick(T0 + 3n * SECOND, [[late, everything]]);
  assert.deepEqual(t.events.get(late)!.flows[0]!.hops.map((h) => h.packets), [50, 50, 50, 50, 50, 50], 'counted since it subscribed');
});

test('an agent restart: the new tracer counts from zero and is added to the old one\'s counts, never backwards, never twice', () => {
  const hub = new HubFlows<object>({ model: () => model });
  const c = {};
  hub.subscribe(c);
  const seen: number[][] = [];
  const step = (at: bigint) => {
    const e = hub.tick(at, [[c, everything]]).events.get(c);
    if (e?.flows.length) seen.push(e.flows[0]!.hops.map((h) => h.packets));
  };
  hub.report('node1', read('node1', [40, 40, 40], 1n), 0n, T0);
  hub.report('node2', read('node2', [40, 40, 40], 7n), 0n, T0);
  step(T0);
  // node1's agent restarts: its new tracer has counted 45 packets by its first read (more than
  // before: a hub that took it for the same tracer would show 45, one that added it twice 85+)
  hub.report('node1', read('node1', [45, 45, 45], 2n), 0n, T0 + SECOND);
  hub.report('node2', read('node2', [90, 90, 90], 7n), 0n, T0 + SECOND);
  step(T0 + SECOND);
  // a resend of the same read, then the kernel letting an entry go and starting it again (LRU)
  hub.report('node1', read('node1', [45, 45, 45], 2n), 0n, T0 + 2n * SECOND);
  hub.report('node1', read('node1', [50, 50, 3], 2n), 0n, T0 + 3n * SECOND);
  hub.report('node2', read('node2', [98, 98, 98], 7n), 0n, T0 + 3n * SECOND);
  step(T0 + 3n * SECOND);
  assert.deepEqual(seen, [
    [40, 40, 40, 40, 40, 40],
    [85, 85, 85, 90, 90, 90],
    [90, 90, 88, 98, 98, 98],
  ]);
  for (let i = 1; i < seen.length; i++) seen[i]!.forEach((n, h) => assert.ok(n >= seen[i - 1]![h]!, `hop ${h} went backwards`));
});

test('PACKET_LOSS: no finding from two agents read a second apart while the flow lives; the real loss with its numbers once it is quiet at both nodes', () => {
  const hub = new HubFlows<object>({ model: () => model });
  const found: string[] = [];
  let now = T0;
  const tick = () => found.push(...hub.tick(now, []).findings.map((f) => `${f.code} ${f.evidence.facts?.from} > ${f.evidence.facts?.to}: ${f.evidence.facts?.passed} ${f.evidence.facts?.arrived}`));
  // A healthy flow at 10,000 packets/s: node2 is always read 0.9 s before node1, so node1's eth1
  // has ~9,000 packets more than node2's eth1 at every read.
  for (let s = 1n; s <= 5n; s++) {
    now = T0 + s * SECOND;
    const sent = Number(s) * 10_000;
    hub.report('node2', read('node2', [sent - 9000, sent - 9000, sent - 9000], 1n, now - 900n * MS), 0n, now - 900n * MS);
    hub.report('node1', read('node1', [sent, sent, sent], 1n, now), 0n, now);
    tick();
  }
  assert.deepEqual(found, [], 'a live flow is never judged');
  // It stops at 50,000; node2 read last at 41,000, next it reads the rest: no packet was lost.
  now += SECOND;
  hub.report('node2', read('node2', [50_000, 50_000, 50_000], 1n, now - 900n * MS), 0n, now - 900n * MS);
  hub.report('node1', read('node1', [50_000, 50_000, 50_000], 1n, now), 0n, now);
  tick();
  now += SECOND;
  hub.report('node2', read('node2', [50_000, 50_000, 50_000], 1n, now - 900n * MS), 0n, now - 900n * MS);
  hub.report('node1', read('node1', [50_000, 50_000, 50_000], 1n, now), 0n, now);
  tick();
  now += SECOND;
  hub.report('node2', read('node2', [50_000, 50_000, 50_000], 1n, now - 900n * MS), 0n, now - 900n * MS);
  tick();
  assert.deepEqual(found, [], 'quiet and whole: nothing missing');

  // The same, with the underlay losing 0.8 %: the finding comes once, when the flow is quiet, with the final numbers.
  const lossy = new HubFlows<object>({ model: () => model });
  const lost: string[] = [];
  now = T0;
  const lossyTick = () => lost.push(...lossy.tick(now, []).findings.map((f) => `${f.code} ${f.evidence.facts?.from} > ${f.evidence.facts?.to}: ${f.evidence.facts?.passed} ${f.evidence.facts?.arrived} ${f.packetCount}`));
  for (let s = 1n; s <= 5n; s++) {
    now = T0 + s * SECOND;
    const arrived = Math.round((Number(s) * 10_000 - 9000) * 0.992);
    lossy.report('node2', read('node2', [arrived, arrived, arrived], 1n, now - 900n * MS), 0n, now - 900n * MS);
    lossy.report('node1', read('node1', [Number(s) * 10_000, Number(s) * 10_000, Number(s) * 10_000], 1n, now), 0n, now);
    lossyTick();
  }
  for (let i = 0; i < 3; i++) {
    now += SECOND;
    lossy.report('node2', read('node2', [49_600, 49_600, 49_600], 1n, now - 900n * MS), 0n, now - 900n * MS);
    lossy.report('node1', read('node1', [50_000, 50_000, 50_000], 1n, now), 0n, now);
    lossyTick();
  }
  assert.deepEqual(lost, ['PACKET_LOSS node1 eth1 egress > node2 eth1 ingress: 50000 49600 400'], 'once, with the final numbers');
  assert.equal(lossy.findings().length, 1);
});

test('the agent sends only what changed (all of it after a reconnect), an empty read to say it is current, and big reads in parts', () => {
  const sent: FlowCounterReport[] = [];
  let counts = [count(udp, 0, 5), count(udp, 1, 5)];
  let up = true;
  let clock = T0;
  const r = new FlowReporter({ read: () => counts.map((c) => ({ ...c })), wallNow: () => (clock += SECOND), send: (x) => (up ? (sent.push(x), true) : false) });
  r.report();
  assert.deepEqual(sent.map((s) => [s.full, s.counts.length]), [[true, 2]]);
  r.report();
  assert.deepEqual(sent.map((s) => [s.full, s.counts.length]), [[true, 2], [false, 0]], 'nothing changed: an empty read');
  counts = [count(udp, 0, 6), count(udp, 1, 5)];
  r.report();
  assert.deepEqual(sent.at(-1)!.counts.map((c) => c.packets), [6]);
  up = false;
  r.report();
  up = true;
  r.report();
  assert.deepEqual([sent.at(-1)!.full, sent.at(-1)!.counts.length], [true, 2], 'after a send that could not go, everything');
  r.reconnected();
  r.report();
  assert.equal(sent.at(-1)!.full, true);
  assert.ok(sent.every((s) => s.tracerId === r.tracerId));
  counts = Array.from({ length: 5000 }, (_, i) => count({ ...udp, srcPort: i }, 0, 1));
  sent.length = 0;
  r.report();
  assert.deepEqual(sent.map((s) => [s.counts.length, s.more]), [[2048, true], [2048, true], [904, false]]);
  assert.ok(sent.every((s) => s.readTimeNs === sent[0]!.readTimeNs), 'one read, one time');
});

test('PACKET_LOSS is not drawn from a window in which some hook may not have counted (an agent restarted, a filter on its way), and is from a later clean one', () => {
  const hub = new HubFlows<object>({ model: () => model });
  const found: string[] = [];
  let now = T0;
  const last = { a: -1, b: -1, aNs: 0n, bNs: 0n };
  const both = (a: number, b: number, bTracer = 1n) => {
    now += SECOND;
    // a counter that moved had its last packet 10 ms before the read
    if (a !== last.a) [last.a, last.aNs] = [a, now - 10n * MS];
    if (b !== last.b) [last.b, last.bNs] = [b, now - 10n * MS];
    hub.report('node1', { ...read('node1', [a, a, a], 1n, now), counts: read('node1', [a, a, a]).counts.map((c) => ({ ...c, lastNs: last.aNs })) }, 0n, now);
    hub.report('node2', { ...read('node2', [b, b, b], bTracer, now), counts: read('node2', [b, b, b], bTracer).counts.map((c) => ({ ...c, lastNs: last.bNs })) }, 0n, now);
    const t = hub.tick(now, []);
    found.push(...t.findings.map((f) => `${f.evidence.facts?.passed} ${f.evidence.facts?.arrived} ${f.packetCount}`));
  };

  // node2's agent restarts mid-flow: its new tracer (counting from zero) missed 5 packets node1 counted
  both(40, 40);
  both(90, 45, 2n);
  both(90, 45, 2n);
  both(90, 45, 2n);
  assert.deepEqual(found, [], 'the packets no tracer of node2 counted are not called lost');
  // a filter change while the flow runs: node1 applied it first and counted 10 more
  hub.filterChanged(now + 100n * MS);
  both(120, 45 + 20, 2n);
  hub.filterSettled(now + 50n * MS);
  both(120, 65, 2n);
  both(120, 65, 2n);
  assert.deepEqual(found, []);
  // a clean window after it: the underlay loses 10 of 1000; judged on that window alone
  both(1120, 1055, 2n);
  both(1120, 1055, 2n);
  both(1120, 1055, 2n);
  assert.deepEqual(found, ['1000 990 10']);
});

test("a trace of the hub's counters holds a flow only as one snapshot: quiet, and counted by every hook throughout", () => {
  const hub = new HubFlows<object>({ model: () => model });
  const other: FlowTuple = { ...udp, srcPort: 40001 };
  const on = (node: 'node1' | 'node2', flow: FlowTuple, n: number, tracerId: bigint, at: bigint, lastNs: bigint): FlowCounterReport => ({
    tracerId, readTimeNs: at, full: false, more: false, counts: [0, 1, 2].map((i) => ({ ...count(flow, (node === 'node1' ? 0 : 3) + i, n, lastNs) })),
  });
  const all = () => true;
  let now = T0 + SECOND;
  // udp: both nodes counted it whole; other: node2's agent restarted while it ran
  hub.report('node1', { ...on('node1', udp, 10, 1n, now, now - 100n * MS), counts: [...on('node1', udp, 10, 1n, now, now - 100n * MS).counts, ...on('node1', other, 10, 1n, now, now - 100n * MS).counts] }, 0n, now);
  hub.report('node2', { ...on('node2', udp, 10, 1n, now, now - 100n * MS), counts: [...on('node2', udp, 10, 1n, now, now - 100n * MS).counts, ...on('node2', other, 4, 1n, now, now - 100n * MS).counts] }, 0n, now);
  assert.deepEqual(hub.counts(all, now).leftOut, 2, 'both live');
  hub.tick(now, []);
  now += SECOND;
  hub.report('node1', { tracerId: 1n, readTimeNs: now, full: false, more: false, counts: [] }, 0n, now);
  hub.report('node2', { ...on('node2', other, 5, 2n, now, now - 600n * MS) }, 0n, now);
  hub.tick(now, []);
  now += SECOND;
  hub.report('node1', { tracerId: 1n, readTimeNs: now, full: false, more: false, counts: [] }, 0n, now);
  hub.report('node2', { tracerId: 2n, readTimeNs: now, full: false, more: false, counts: [] }, 0n, now);
  hub.tick(now, []);
  const { counts, leftOut } = hub.counts(all, now);
  assert.equal(leftOut, 1, 'the flow node2 missed packets of is left out');
  assert.deepEqual(counts.map((c) => `${c.flow.srcPort} ${c.node} ${c.device} ${c.packets}`), [
    '40000 node1 cni0 10', '40000 node1 flannel.1 10', '40000 node1 eth1 10', '40000 node2 eth1 10', '40000 node2 flannel.1 10', '40000 node2 cni0 10',
  ]);
  assert.deepEqual(hub.findings(), [], 'and no finding from it');
});
