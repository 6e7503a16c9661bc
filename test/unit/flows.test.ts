// The kernel's per-hop flow counters in user space, with plain values: one summary per flow with its
// hops in path order, the PACKET_LOSS rule (the underlay losing 0.8 % of a flow, drops that explain
// it, what is too little to say), the summary's table and NDJSON record, and the trace storing them
// so that `read` shows and finds the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlowCount, FlowTuple } from '../../src/datapath/flow.js';
import type { DeviceRole, Direction } from '../../src/datapath/hop.js';
import { summarizeFlows } from '../../src/correlate/flows.js';
import { flowLossFindings } from '../../src/diagnose/flow-loss.js';
import { formatFlowTable, formatSummary, summarize } from '../../src/output/text.js';
import { flowRecord, summaryRecord } from '../../src/output/ndjson.js';
import { PcapngWriter } from '../../src/pcapng/writer.js';
import { readTrace } from '../../src/pcapng/reader.js';
import { replayTrace } from '../../src/session/replay.js';
import { fixtureModel } from './fixtures/flannel.js';
import { POD_A, POD_B, echoPath, snapshot } from './pcapng-fixtures.js';
import { judgePaths } from '../../src/cli/verdict.js';

const T0 = 1_796_000_000_000_000_000n;
const SECOND = 1_000_000_000n;

function count(flow: FlowTuple, node: string, device: string, role: DeviceRole, direction: Direction, packets: number, extra: Partial<FlowCount> = {}): FlowCount {
  return {
    flow, node, device, role, direction, kind: 'tc', packets, bytes: packets * 100,
    firstNs: T0, lastNs: T0 + 10n * SECOND, records: packets, sampled: 0, lost: 0, ...extra,
  };
}

/** The six hops of a cross-node flow from node1 to node2, with these counts, shuffled. */
function crossNode(flow: FlowTuple, n: [number, number, number, number, number, number], extra: Partial<FlowCount> = {}): FlowCount[] {
  return [
    count(flow, 'node2', 'cni0', 'pod-bridge', 'egress', n[5], extra),
    count(flow, 'node1', 'eth1', 'uplink', 'egress', n[2], extra),
    count(flow, 'node1', 'cni0', 'pod-bridge', 'ingress', n[0], extra),
    count(flow, 'node2', 'flannel.1', 'vtep', 'ingress', n[4], extra),
    count(flow, 'node2', 'eth1', 'uplink', 'ingress', n[3], extra),
    count(flow, 'node1', 'flannel.1', 'vtep', 'egress', n[1], extra),
  ];
}

const { model } = fixtureModel({ nodes: 3 });
const podA = model.pods.find((p) => p.name === 'pod-a')!;
const podB = model.pods.find((p) => p.name === 'pod-b')!;
const udp: FlowTuple = { family: 4, src: podA.ips[0]!, dst: podB.ips[0]!, protocol: 17, srcPort: 40000, dstPort: 7777 };
const resolver = { podRef: (ip: string) => model.podByIp(ip)?.ref, nodeOfPodIp: (ip: string) => model.podCidrOwner(ip)?.node.name };
const hopNames = (s: { hops: { node: string; device: string; direction: string }[] }) => s.hops.map((h) => `${h.node} ${h.device} ${h.direction}`);

test('summarizeFlows: one summary per flow, hops in path order, a recreated device added up, drops and flooded copies apart', () => {
  const other: FlowTuple = { ...udp, srcPort: 40001 };
  const counts = [
    ...crossNode(udp, [1000, 1000, 1000, 990, 990, 990]),
    // flannel.1 recreated on node2 (new ifindex, same name): two counters, one hop
    count(udp, 'node2', 'flannel.1', 'vtep', 'ingress', 10, { firstNs: T0 + 11n * SECOND, lastNs: T0 + 12n * SECOND }),
    { ...count(udp, 'node2', 'eth1', 'uplink', 'ingress', 4), kind: 'drop' as const, dropReason: 'NETFILTER_DROP' },
    count(udp, 'node3', 'eth1', 'uplink', 'ingress', 7), // a flooded copy
    ...crossNode(other, [5, 5, 5, 5, 5, 5]),
  ];
  const flows = summarizeFlows(counts, resolver);
  assert.equal(flows.length, 2);
  const [big, small] = flows;
  assert.deepEqual(big!.flow, udp, 'the busiest first');
  assert.equal(small!.flow.srcPort, 40001);
  assert.deepEqual(hopNames(big!), ['node1 cni0 ingress', 'node1 flannel.1 egress', 'node1 eth1 egress', 'node2 eth1 ingress', 'node2 flannel.1 ingress', 'node2 cni0 egress']);
  assert.deepEqual(big!.hops.map((h) => h.packets), [1000, 1000, 1000, 990, 1000, 990]);
  const vtep = big!.hops[4]!;
  assert.equal(vtep.firstNs, T0);
  assert.equal(vtep.lastNs, T0 + 12n * SECOND, 'first and last over both counters');
  assert.deepEqual(big!.drops.map((d) => `${d.node} ${d.device} ${d.dropReason} ${d.packets}`), ['node2 eth1 NETFILTER_DROP 4']);
  assert.deepEqual(big!.elsewhere.map((h) => `${h.node} ${h.device}`), ['node3 eth1']);
  assert.equal(big!.srcPod, podA.ref);
  assert.equal(big!.dstPod, podB.ref);
  // without a model: the nodes come from the hops
  assert.deepEqual(hopNames(summarizeFlows(crossNode(udp, [3, 3, 3, 3, 3, 3]))[0]!), hopNames(big!));
});

test('PACKET_LOSS: the underlay losing 0.8 % of a flow is a finding with the two hops and the numbers', () => {
  const flows = summarizeFlows(crossNode(udp, [100000, 100000, 100000, 99200, 99200, 99200]), resolver);
  const findings = flowLossFindings(flows, model);
  assert.equal(findings.length, 1);
  const f = findings[0]!;
  assert.equal(f.code, 'PACKET_LOSS');
  assert.equal(f.severity, 'warning');
  assert.deepEqual(f.nodes, ['node1', 'node2']);
  assert.equal(f.packetCount, 800);
  assert.deepEqual(
    { from: f.evidence.facts!.from, to: f.evidence.facts!.to, passed: f.evidence.facts!.passed, arrived: f.evidence.facts!.arrived, missing: f.evidence.facts!.missing, rate: f.evidence.facts!.rate, drops: f.evidence.facts!.kernelDrops },
    { from: 'node1 eth1 egress', to: 'node2 eth1 ingress', passed: 100000, arrived: 99200, missing: 800, rate: 0.008, drops: 0 },
  );
  assert.match(f.evidence.observed, /100000 packets at node1 eth1 egress, 99200 at node2 eth1 ingress: 800 missing \(0\.80 %\)/);
  assert.match(f.cause, /the underlay between them loses them/);
  assert.match(f.fix, /ip -s link show eth1/);
  assert.equal(f.key, `PACKET_LOSS:4|${udp.src}|${udp.dst}|17|40000|7777:node1 eth1 egress>node2 eth1 ingress`);
  // from 1 %: an error
  const worse = flowLossFindings(summarizeFlows(crossNode(udp, [1000, 1000, 1000, 980, 980, 980]), resolver), model);
  assert.equal(worse[0]!.severity, 'error');
});

test('PACKET_LOSS: kernel drops on the leg are named; too few missing, or what was in flight at the stop, is nothing', () => {
  const counts = [
    ...crossNode(udp, [10000, 10000, 10000, 10000, 9000, 9000]),
    { ...count(udp, 'node2', 'eth1', 'uplink', 'ingress', 1000), kind: 'drop' as const, dropReason: 'UDP_CSUM' },
  ];
  const [f] = flowLossFindings(summarizeFlows(counts, resolver), model);
  assert.deepEqual(f!.nodes, ['node2'], 'inside node2: the fix goes there');
  assert.match(f!.cause, /the kernel dropped the 1000 packets missing between node2 eth1 ingress and node2 flannel\.1 ingress \(node2\/eth1 UDP_CSUM ×1000\)/);
  assert.equal(f!.severity, 'error');
  assert.equal(f!.evidence.facts!.kernelDrops, 1000);
  const none = (n: [number, number, number, number, number, number], extra: Partial<FlowCount> = {}) => flowLossFindings(summarizeFlows(crossNode(udp, n, extra), resolver), model);
  assert.deepEqual(none([20, 20, 20, 18, 18, 18]), [], '2 packets: too few to say');
  assert.deepEqual(none([100000, 100000, 100000, 99950, 99950, 99950]), [], '0.05 %: below the rate');
  // 10 Mpps for one second: 2 ms of it (20000 packets) may have been between two hooks at the stop
  assert.deepEqual(none([10_000_000, 10_000_000, 10_000_000, 9_990_000, 9_990_000, 9_990_000], { lastNs: T0 + SECOND }), [], 'in flight');
  assert.equal(none([10_000_000, 10_000_000, 10_000_000, 9_900_000, 9_900_000, 9_900_000], { lastNs: T0 + SECOND }).length, 1, '1 % is more than was in flight');
  assert.deepEqual(none([5, 5, 5, 5, 5, 5]), [], 'a healthy flow');
});

test('PACKET_LOSS: a burst that ended before the counters were read had nothing in flight: 0.8 % of 50k sent in 200 ms is found', () => {
  // 50k datagrams in 200 ms: 2 ms of the rate is 500 packets, more than the 400 missing
  const burst = { firstNs: T0, lastNs: T0 + 200_000_000n };
  const loss = (readNs?: bigint) => flowLossFindings(summarizeFlows(crossNode(udp, [50_000, 50_000, 50_000, 49_600, 49_600, 49_600], burst), resolver), model, readNs);
  assert.deepEqual(loss().map((f) => f.packetCount), [], 'read instant unknown: the rate over 2 ms may have been in flight');
  assert.deepEqual(loss(T0 + 200_000_000n + 1_000_000n).map((f) => f.packetCount), [], 'read 1 ms after the last packet: may have been in flight');
  assert.deepEqual(loss(T0 + 15n * SECOND).map((f) => f.packetCount), [400], 'read seconds after the burst: all 400 are missing');
  // 0.8 % is a warning, yet packets were not delivered: exit status 1, though every path kept was delivered
  const [warning] = loss(T0 + 15n * SECOND);
  assert.equal(warning!.severity, 'warning');
  const delivered = [echoPath({ seq: 1 }), echoPath({ seq: 2 })];
  assert.equal(judgePaths(delivered, []).status, 0);
  assert.equal(judgePaths(delivered, [warning!]).status, 1, 'PACKET_LOSS fails the run whatever its severity');
  assert.equal(judgePaths(delivered, [{ ...warning!, code: 'MTU_EXCEEDED' }]).status, 0, 'another warning does not');
});

test('the summary: a table per flow with its hops, what changed, drops and what became of the records; sampled apart from lost', () => {
  const counts = [
    ...crossNode(udp, [100000, 100000, 100000, 99200, 99200, 99200], { records: 640, sampled: 99360 }),
    { ...count(udp, 'node2', 'eth1', 'uplink', 'ingress', 3, { records: 3 }), kind: 'drop' as const, dropReason: 'NETFILTER_DROP' },
  ];
  const flows = summarizeFlows(counts, resolver);
  const text = formatFlowTable(flows, { color: false });
  const lines = text.trimEnd().split('\n');
  assert.equal(lines[0], 'flows (every packet counted in the kernel, per hop):');
  assert.equal(lines[1], `  ${podA.ref} (${udp.src}) → ${podB.ref} (${udp.dst}) UDP 40000 → 7777`);
  assert.match(lines[2]!, /^ {4}node1 cni0 ingress +100000 packets +10\.0 MB  sent$/);
  assert.match(lines[4]!, /node1 eth1 egress +100000 packets .* left node1$/);
  assert.match(lines[5]!, /node2 eth1 ingress +99200 packets +9\.9 MB −800 \(0\.80 %\)  arrived at node2$/);
  assert.match(lines[7]!, /node2 cni0 egress +99200 packets .* reached the pod$/);
  assert.equal(lines[8], '    dropped at node2 eth1: NETFILTER_DROP 3 packets');
  assert.equal(lines[9], '    records: 3840 written, 596160 sampled out, 0 lost');
  assert.equal(formatFlowTable([], { color: false }), '');
  const s = summarize([], 2, [], { sampledRecords: 596160 });
  assert.equal(formatSummary(s, { color: false }), '0 paths: 0 delivered; 2 records lost (ring buffer full); 596160 records sampled out (shed while behind; every packet counted below); no findings\n');
  assert.equal(summaryRecord(s).sampledRecords, 596160);
  assert.equal(summaryRecord(summarize([], 0, [])).sampledRecords, 0);
  // more flows than the text shows: said, not dropped silently
  const many = summarizeFlows(Array.from({ length: 10 }, (_, i) => crossNode({ ...udp, srcPort: 1000 + i }, [9, 9, 9, 9, 9, 9])).flat());
  assert.match(formatFlowTable(many, { color: false }), /and 2 more flows \(--json prints every one\)\n$/);
});

test('the NDJSON flow record carries each hop\'s packets and bytes, in path order', () => {
  const [f] = summarizeFlows(crossNode(udp, [7, 7, 7, 6, 6, 6]), resolver);
  const r = flowRecord(f!);
  assert.equal(r.type, 'flow');
  assert.deepEqual(r.flow, udp);
  assert.equal(r.srcPod, podA.ref);
  assert.deepEqual(r.hops.map((h) => [h.node, h.device, h.direction, h.packets, h.bytes]), [
    ['node1', 'cni0', 'ingress', 7, 700], ['node1', 'flannel.1', 'egress', 7, 700], ['node1', 'eth1', 'egress', 7, 700],
    ['node2', 'eth1', 'ingress', 6, 600], ['node2', 'flannel.1', 'ingress', 6, 600], ['node2', 'cni0', 'egress', 6, 600],
  ]);
  assert.equal(r.hops[0]!.firstTime, new Date(Number(T0 / 1_000_000n)).toISOString());
  assert.deepEqual(Object.keys(r.hops[0]!), ['node', 'device', 'role', 'direction', 'packets', 'bytes', 'firstTime', 'lastTime', 'records', 'sampled', 'lost']);
  assert.doesNotThrow(() => JSON.stringify(r), 'no bigints');
});

test('a trace stores the flow counters and the sampled count; read shows the same flows and draws the same PACKET_LOSS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-flows-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'trace.pcapng');
  const flow: FlowTuple = { family: 4, src: POD_A.ip, dst: POD_B.ip, protocol: 17, srcPort: 40000, dstPort: 7777 };
  const counts = [
    ...crossNode(flow, [100000, 100000, 100000, 99200, 99200, 99200], { records: 640, sampled: 99360 }),
    { ...count(flow, 'node2', 'eth1', 'uplink', 'ingress', 3), kind: 'drop' as const, dropReason: 'NETFILTER_DROP' },
  ];
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeFindings([], { lostRecords: 0, sampledRecords: 596160, flows: counts, flowsReadNs: T0 + 15n * SECOND });
  w.close();
  const trace = await readTrace(file);
  assert.deepEqual(trace.warnings, []);
  assert.equal(trace.sampledRecords, 596160);
  assert.deepEqual(trace.flows, counts, 'every counter comes back exactly (bigints too)');
  assert.equal(trace.flowsReadNs, T0 + 15n * SECOND, 'and the instant they were read');
  const replay = replayTrace(trace, file);
  assert.equal(replay.flows.length, 1);
  assert.deepEqual(hopNames(replay.flows[0]!), ['node1 cni0 ingress', 'node1 flannel.1 egress', 'node1 eth1 egress', 'node2 eth1 ingress', 'node2 flannel.1 ingress', 'node2 cni0 egress']);
  assert.equal(replay.flows[0]!.srcPod, 'default/pod-a', 'pods named from the snapshot');
  assert.deepEqual(replay.findings?.map((f) => `${f.code} ${f.nodes.join(',')} ${f.packetCount}`), ['PACKET_LOSS node1,node2 800']);
});

test('flow counters that do not parse are left out of a trace read back, with a warning', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-flows-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'trace.pcapng');
  const good = count(udp, 'node1', 'cni0', 'pod-bridge', 'ingress', 3);
  const bad = [
    { ...good, packets: -1 },
    { ...good, firstNs: 'yesterday' },
    { ...good, flow: { ...udp, family: 5 } },
    { ...good, role: 'router' },
    null,
  ];
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeFindings([], { flows: [good, ...(bad as unknown as FlowCount[])] });
  w.close();
  const trace = await readTrace(file);
  assert.deepEqual(trace.flows, [good]);
  assert.equal(trace.warnings.length, 1);
  assert.match(trace.warnings[0]!, /5 flow counters in the findings block at byte \d+ are malformed: left out/);
});
