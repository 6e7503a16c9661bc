// `vxtrace check`'s pure parts: the probe mark and its recognition (also in ICMP errors, also inside
// VXLAN), the plan, the pipeline leaving probes out (or keeping only them), delivery to a node's own
// address, the judge's cells (both probes of a pair, coverage, reasons, findings once), the limiter's
// bounds and the matrix's text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { DeviceRole, Direction, HopEvent, InnerPacket } from '../../src/datapath/hop.js';
import type { PacketPath } from '../../src/correlate/path.js';
import type { Finding } from '../../src/diagnose/finding.js';
import { isProbe, markOfTag, probeMarkOf, PROBE_MARK_FIRST } from '../../src/probe/mark.js';
import { planCheck } from '../../src/probe/plan.js';
import { CheckJudge } from '../../src/probe/judge.js';
import { ProbeLimiter } from '../../src/probe/limiter.js';
import { Pipeline } from '../../src/session/pipeline.js';
import { formatMatrix } from '../../src/output/matrix.js';
import { fixtureModel } from './fixtures/flannel.js';

const noFrame = new Uint8Array(0);
const echo = (src: string, dst: string, type: 0 | 8, id: number, extra: Partial<InnerPacket> = {}): InnerPacket => ({
  family: 4, src, dst, protocol: 1, srcPort: 0, dstPort: 0, ipId: 0, ipLength: 84, ttl: 64, dontFragment: true, icmp: { type, code: 0, id, seq: 1 }, ...extra,
});

test('the mark: an ICMP echo id, or equal UDP/TCP ports, in 30208-30463', () => {
  assert.deepEqual(probeMarkOf({ inner: echo('10.244.1.1', '10.244.2.10', 8, PROBE_MARK_FIRST + 7), frame: noFrame }), { protocol: 'icmp', tag: 7 });
  assert.deepEqual(probeMarkOf({ inner: echo('10.244.2.10', '10.244.1.1', 0, PROBE_MARK_FIRST + 255), frame: noFrame }), { protocol: 'icmp', tag: 255 });
  assert.equal(probeMarkOf({ inner: echo('10.244.1.1', '10.244.2.10', 8, PROBE_MARK_FIRST + 256), frame: noFrame }), undefined);
  assert.equal(probeMarkOf({ inner: echo('10.244.1.1', '10.244.2.10', 8, PROBE_MARK_FIRST - 1), frame: noFrame }), undefined);
  const udp = (sport: number, dport: number, protocol = 17): InnerPacket => ({ ...echo('10.244.1.1', '10.244.2.10', 8, 0), protocol, srcPort: sport, dstPort: dport, icmp: undefined });
  assert.deepEqual(probeMarkOf({ inner: udp(30210, 30210), frame: noFrame }), { protocol: 'udp', tag: 2 });
  assert.deepEqual(probeMarkOf({ inner: udp(30210, 30210, 6), frame: noFrame }), { protocol: 'tcp', tag: 2 });
  assert.equal(probeMarkOf({ inner: udp(30210, 53), frame: noFrame }), undefined, 'one port in the range is not a mark');
  assert.equal(markOfTag(3), 30211);
});

/** Ethernet + IPv4 + ICMP port unreachable quoting IPv4 + UDP sport/dport; optionally inside VXLAN. */
function portUnreachableFrame(sport: number, dport: number, vxlan: boolean): Uint8Array {
  const eth = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00];
  const ip = (proto: number) => [0x45, 0, 0, 56, 0, 0, 0, 0, 64, proto, 0, 0, 10, 244, 2, 10, 10, 244, 1, 1];
  const icmp = [3, 3, 0, 0, 0, 0, 0, 0];
  const quoted = [...ip(17), sport >> 8, sport & 0xff, dport >> 8, dport & 0xff, 0, 8, 0, 0];
  const innerFrame = [...eth, ...ip(1), ...icmp, ...quoted];
  if (!vxlan) return Uint8Array.from(innerFrame);
  return Uint8Array.from([...eth, ...ip(17), 0x9c, 0x40, 0x21, 0x18, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 1, 0, ...innerFrame]);
}

test('the reply to a UDP probe, an ICMP error, is recognised by the datagram it quotes, on the wire and inside VXLAN', () => {
  const inner = { ...echo('10.244.2.10', '10.244.1.1', 0, 0), icmp: { type: 3, code: 3, id: 0, seq: 0 } };
  const outer = { family: 4 as const, src: '192.168.1.122', dst: '192.168.1.121', protocol: 17, srcPort: 40000, dstPort: 8472, vni: 1, udpChecksum: 0, srcMac: '', dstMac: '' };
  assert.deepEqual(probeMarkOf({ inner, frame: portUnreachableFrame(30300, 30300, false) }), { protocol: 'udp', tag: 92, error: true });
  assert.deepEqual(probeMarkOf({ inner, outer, frame: portUnreachableFrame(30300, 30300, true) }), { protocol: 'udp', tag: 92, error: true });
  assert.equal(probeMarkOf({ inner, frame: portUnreachableFrame(30300, 53, false) }), undefined);
  assert.equal(probeMarkOf({ inner, frame: portUnreachableFrame(30300, 30300, false).subarray(0, 50) }), undefined, 'cut short: not readable, not a probe');
});

test('any bytes as an ICMP error frame: the recogniser never throws', () => {
  const inner = { ...echo('10.244.2.10', '10.244.1.1', 0, 0), icmp: { type: 3, code: 3, id: 0, seq: 0 } };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), fc.boolean(), (bytes, encap, l3) => {
    const r = probeMarkOf({ inner, frame: bytes, ...(l3 ? { frameStart: 'ip' as const } : {}), ...(encap ? { outer: { family: 4, src: 'a', dst: 'b', protocol: 17, srcPort: 1, dstPort: 8472, vni: 1, udpChecksum: 0, srcMac: '', dstMac: '' } } : {}) });
    assert.ok(r === undefined || (r.tag >= 0 && r.tag < 256));
  }));
});

test('a marked packet between two pods is not a probe (probes come from a pod-bridge address)', () => {
  const pods = new Set(['10.244.1.10', '10.244.2.10']);
  const isPod = (ip: string) => pods.has(ip);
  assert.equal(isProbe({ inner: echo('10.244.1.10', '10.244.2.10', 8, PROBE_MARK_FIRST), frame: noFrame }, isPod), false);
  assert.equal(isProbe({ inner: echo('10.244.1.1', '10.244.2.10', 8, PROBE_MARK_FIRST), frame: noFrame }, isPod), true);
  assert.equal(isProbe({ inner: echo('10.244.1.1', '10.244.2.10', 8, 4242), frame: noFrame }, isPod), false);
});

test('the plan: every ordered pair, from the pod-bridge address to a pod (or the bridge), a DF probe of the VXLAN MTU', () => {
  const { model } = fixtureModel({ nodes: 3 });
  const plan = planCheck(model, { senders: new Set(['node1', 'node2', 'node3']), protocol: 'icmp' });
  assert.deepEqual(plan.pairs.map((p) => p.join('>')), ['node1>node2', 'node1>node3', 'node2>node1', 'node2>node3', 'node3>node1', 'node3>node2']);
  assert.equal(plan.probes.length, 12);
  const p = plan.probes.find((x) => x.id === 'node1>node2')!;
  assert.deepEqual([p.src.address, p.dst.address, p.dst.pod, p.bytes, p.df], ['10.244.1.1', '10.244.2.10', 'default/pod-b', 84, false]);
  const size = plan.probes.find((x) => x.id === 'node1>node2/size')!;
  assert.deepEqual([size.protocol, size.bytes, size.df], ['icmp', 1450, true]);
  // Without a running pod on node3, its bridge address; a node this machine cannot send from sends nothing.
  const some = planCheck(model, { senders: new Set(['node1']), protocol: 'udp', size: 1400, notRunning: new Set(['default/pod-c']) });
  assert.equal(some.probes.find((x) => x.id === 'node1>node3')!.dst.address, '10.244.3.1');
  assert.deepEqual(some.probes.map((x) => `${x.id}:${x.protocol}:${x.bytes}`), ['node1>node2:udp:84', 'node1>node2/size:icmp:1400', 'node1>node3:udp:84', 'node1>node3/size:icmp:1400']);
  assert.match(some.nodes.find((n) => n.name === 'node2')!.notSending!, /cannot send from it/);
});

// ---- legs of probes, through the real pipeline (correlate -> diagnose), on the fixture cluster ----

type HopSpec = [node: string, device: string, role: DeviceRole, direction: Direction];
let fp = 0;
function leg(inner: InnerPacket, hops: HopSpec[], drop?: { node: string; device: string; reason: string; location?: string }): HopEvent[] {
  const fingerprint = (++fp).toString(16).padStart(16, '0');
  // (the inner destination MAC: the VTEP of the node owning the destination)
  // the underlay leg: from the first node's underlay address to the other's (lab addresses)
  const [a, b] = [hops[0]![0], hops.find((h) => h[0] !== hops[0]![0])?.[0] ?? hops[0]![0]];
  const outer = { family: 4 as const, src: `192.168.1.12${a.slice(-1)}`, dst: `192.168.1.12${b.slice(-1)}`, protocol: 17, srcPort: 40000, dstPort: 8472, vni: 1, udpChecksum: 0, srcMac: '', dstMac: '' };
  const events: HopEvent[] = hops.map(([node, device, role, direction], i) => ({
    timestampNs: BigInt(1000 + i * 1000), wallTimeNs: 1_700_000_000_000_000_000n + BigInt(i * 1000), kind: 'tc', node, device, role, direction,
    ifindex: 1, netnsInode: 1, skbLength: inner.ipLength + 14, fingerprint, innerSrcMac: '0a:58:0a:f4:01:0a', innerDstMac: `0e:76:78:00:00:0${inner.dst.split('.')[2]}`, inner, frame: noFrame,
    ...(role === 'uplink' ? { outer } : {}),
  }));
  if (drop) {
    events.push({ ...events.at(-1)!, kind: 'drop', node: drop.node, device: drop.device, role: 'vtep', direction: 'ingress', dropReason: drop.reason, dropLocation: drop.location, outer: undefined, timestampNs: 99_000n, wallTimeNs: 1_700_000_000_000_099_000n });
  }
  return events;
}
const out = (a: string, b: string): HopSpec[] => [[a, 'flannel.1', 'vtep', 'egress'], [a, 'eth1', 'uplink', 'egress'], [b, 'eth1', 'uplink', 'ingress'], [b, 'flannel.1', 'vtep', 'ingress'], [b, 'cni0', 'pod-bridge', 'egress']];
const back = (b: string, a: string): HopSpec[] => [[b, 'cni0', 'pod-bridge', 'ingress'], [b, 'flannel.1', 'vtep', 'egress'], [b, 'eth1', 'uplink', 'egress'], [a, 'eth1', 'uplink', 'ingress'], [a, 'flannel.1', 'vtep', 'ingress']];
const gw = (n: string) => `10.244.${n.slice(-1)}.1`;
const pod = (n: string) => `10.244.${n.slice(-1)}.10`;

function pipelineFor(model: ReturnType<typeof fixtureModel>['model'], probes: 'only' | 'leave-out') {
  const paths: { path: PacketPath; touched: Finding[] }[] = [];
  const p = new Pipeline({ model, clocks: 'one', probes, onPath: (path, _fresh, touched) => paths.push({ path, touched }) });
  return { p, paths };
}

test("a reply to a node's own address is delivered by the ingress it came by; the socket layer's freed copies are not its fate, a firewall's drop is", () => {
  const { model } = fixtureModel({ nodes: 2 });
  const { p, paths } = pipelineFor(model, 'only');
  const reply = echo(pod('node2'), gw('node1'), 0, markOfTag(1));
  p.add(leg(reply, back('node2', 'node1'), { node: 'node1', device: 'flannel.1', reason: 'NO_SOCKET', location: 'ping_rcv+0xab' }));
  assert.equal(paths.length, 0, 'waits a moment for a drop on the way up the stack');
  p.poll(1_700_000_000_000_000_000n + 200_000_000n);
  assert.deepEqual(paths.map((x) => x.path.outcome), ['delivered']);
  p.add(leg(echo(pod('node2'), gw('node1'), 0, markOfTag(2)), back('node2', 'node1'), { node: 'node1', device: 'flannel.1', reason: 'NETFILTER_DROP', location: 'nf_hook_slow+0x90' }));
  assert.equal(paths.at(-1)!.path.outcome, 'dropped', 'an INPUT rule that drops it: handed out at the drop');
  assert.equal(paths.at(-1)!.path.drop?.reason, 'NETFILTER_DROP');
});

test("the pipeline leaves probes out of every other run, and keeps nothing else for the check", () => {
  const { model } = fixtureModel({ nodes: 2 });
  const user = leg(echo(pod('node1'), pod('node2'), 8, markOfTag(5)), [[`node1`, 'cni0', 'pod-bridge', 'ingress'], ...out('node1', 'node2')]);
  const probe = leg(echo(gw('node1'), pod('node2'), 8, markOfTag(5)), out('node1', 'node2'));
  const others = pipelineFor(model, 'leave-out');
  others.p.add([...user, ...probe]);
  assert.deepEqual(others.paths.map((x) => x.path.inner.src), [pod('node1')], 'a pod-to-pod packet with a marked id is user traffic');
  const check = pipelineFor(model, 'only');
  check.p.add([...user, ...probe]);
  assert.deepEqual(check.paths.map((x) => x.path.inner.src), [gw('node1')]);
});

/** Feed a pair's legs through a check pipeline into a judge. */
function judged(nodes: number, legsOf: (judge: CheckJudge) => HopEvent[][], fault?: Parameters<typeof fixtureModel>[0]) {
  const { model } = fixtureModel({ nodes, ...fault });
  const plan = planCheck(model, { senders: new Set(model.nodes.map((n) => n.name)), protocol: 'icmp', size: 1450 });
  plan.probes = plan.probes.filter((x) => x.kind === 'base');
  const judge = new CheckJudge(plan);
  const p = new Pipeline({ model, clocks: 'one', probes: 'only', onPath: (path, _f, touched) => void judge.addPath(path, touched) });
  for (const events of legsOf(judge)) p.add(events);
  p.flush();
  return { judge, verdict: judge.verdicts(p.findings()) };
}

test('a cell holds both probes of its pair: all six hooks each way; a FORWARD drop on node2 breaks both cells, the other one "back:"', () => {
  const healthy = judged(2, (judge) => {
    const [p12, p21] = [judge.plan.probes.find((x) => x.id === 'node1>node2')!, judge.plan.probes.find((x) => x.id === 'node2>node1')!];
    const a = judge.expect(p12, 1, 1);
    const b = judge.expect(p21, 2, 1);
    a.result = { replied: true };
    b.result = { replied: true };
    return [
      leg(echo(gw('node1'), pod('node2'), 8, markOfTag(1)), out('node1', 'node2')),
      leg(echo(pod('node2'), gw('node1'), 0, markOfTag(1)), back('node2', 'node1')),
      leg(echo(gw('node2'), pod('node1'), 8, markOfTag(2)), out('node2', 'node1')),
      leg(echo(pod('node1'), gw('node2'), 0, markOfTag(2)), back('node1', 'node2')),
    ];
  });
  const c12 = healthy.verdict.cells.find((c) => c.from === 'node1')!;
  assert.equal(c12.ok, true);
  assert.deepEqual(c12.coverage.out, ['node1 cni0 ingress', 'node1 flannel.1 egress', 'node1 eth1 egress', 'node2 eth1 ingress', 'node2 flannel.1 ingress', 'node2 cni0 egress']);
  assert.equal(c12.coverage.back.length, 6);
  assert.deepEqual(healthy.verdict.findings, []);

  // node2 forwards nothing: node1's probe is dropped on node2; node2's own probe and its reply pass (node2 sends and receives them itself).
  const fwd = judged(2, (judge) => {
    const [p12, p21] = [judge.plan.probes.find((x) => x.id === 'node1>node2')!, judge.plan.probes.find((x) => x.id === 'node2>node1')!];
    const a = judge.expect(p12, 1, 1);
    const b = judge.expect(p21, 2, 1);
    a.result = { replied: false };
    b.result = { replied: true };
    return [
      leg(echo(gw('node1'), pod('node2'), 8, markOfTag(1)), out('node1', 'node2').slice(0, 4), { node: 'node2', device: 'flannel.1', reason: 'NETFILTER_DROP' }),
      leg(echo(gw('node2'), pod('node1'), 8, markOfTag(2)), out('node2', 'node1')),
      leg(echo(pod('node1'), gw('node2'), 0, markOfTag(2)), back('node1', 'node2')),
    ];
  });
  const [a, b] = [fwd.verdict.cells.find((c) => c.from === 'node1')!, fwd.verdict.cells.find((c) => c.from === 'node2')!];
  assert.equal(a.ok, false);
  assert.equal(a.reason, 'dropped at node2 flannel.1: NETFILTER_DROP');
  assert.equal(b.ok, false, "node2's own probe worked, node1's did not: pods on node2 cannot reach node1's either");
  assert.equal(b.reason, 'back: dropped at node2 flannel.1: NETFILTER_DROP');
  const dropped = fwd.verdict.findings.find((f) => f.code === 'DROPPED')!;
  assert.deepEqual(a.findings, [dropped.key]);
  assert.deepEqual(fwd.verdict.explains.get(dropped.key), [['node1', 'node2'], ['node2', 'node1']]);
});

test("the seed's loop: every cell broken, explained by DUPLICATE_PUBLIC_IP alone (the looping FDB entries are its symptom)", () => {
  const seed = judged(2, (judge) => {
    const events: HopEvent[][] = [];
    for (const [a, b, tag] of [['node1', 'node2', 1], ['node2', 'node1', 2]] as const) {
      const x = judge.expect(judge.plan.probes.find((p) => p.id === `${a}>${b}`)!, tag, 1);
      x.result = { replied: false };
      events.push(leg(echo(gw(a), pod(b), 8, markOfTag(tag)), [[a, 'flannel.1', 'vtep', 'egress'], [a, 'flannel.1', 'vtep', 'ingress']], { node: a, device: 'flannel.1', reason: 'NOT_SPECIFIED', location: 'dst_discard+0xf' }));
    }
    return events;
  }, { natPublicIp: true });
  assert.deepEqual(seed.verdict.cells.map((c) => c.reason), ['loop on node1 flannel.1', 'loop on node2 flannel.1']);
  assert.deepEqual(seed.verdict.findings.map((f) => f.code), ['DUPLICATE_PUBLIC_IP']);
  for (const c of seed.verdict.cells) assert.deepEqual(c.findings, [seed.verdict.findings[0]!.key]);
});

test('the limiter: never more than its bounds at once, and a node starts one probe per interval', async () => {
  const limiter = new ProbeLimiter({ perNode: 2, perNodeIntervalMs: 20, total: 3 });
  let inFlight = 0;
  let most = 0;
  const perNode = new Map<string, number>();
  const starts = new Map<string, number[]>();
  const send = (node: string) => limiter.run(node, async () => {
    inFlight++;
    perNode.set(node, (perNode.get(node) ?? 0) + 1);
    most = Math.max(most, inFlight);
    assert.ok(perNode.get(node)! <= 2, `${node}: at most 2 at a time`);
    starts.set(node, [...(starts.get(node) ?? []), Date.now()]);
    await new Promise((r) => setTimeout(r, 8));
    perNode.set(node, perNode.get(node)! - 1);
    inFlight--;
  });
  await Promise.all(['a', 'b', 'c'].flatMap((n) => Array.from({ length: 4 }, () => send(n))));
  assert.equal(most, 3);
  // four starts 20 ms apart take at least 60 ms (less one interval of slack: the first may start late)
  for (const [node, times] of starts) assert.ok(times.at(-1)! - times[0]! >= 40, `${node}: ${times.join(',')}`);
});

test('the matrix: reasons in the cells when it fits, numbered under it when not', () => {
  const cell = (from: string, to: string, reason?: string) => ({
    from, to, ok: !reason, probed: true, ...(reason ? { reason } : {}), findings: [], legs: [],
    coverage: { out: Array.from({ length: 6 }, () => 'x'), back: Array.from({ length: 6 }, () => 'x'), missing: [] },
  });
  const cells = [cell('node1', 'node2', 'loop on node1 flannel.1'), cell('node2', 'node1')];
  const text = formatMatrix(['node1', 'node2'], cells, { color: false });
  assert.equal(text, 'from \\ to  node1  node2\nnode1      ·      ✖ loop on node1 flannel.1\nnode2      ✔      ·\n');
  const narrow = formatMatrix(['node1', 'node2'], cells, { color: false }, 30);
  assert.equal(narrow, 'from \\ to  node1  node2\nnode1      ·      ✖ 1\nnode2      ✔      ·\n\n  1  loop on node1 flannel.1\n');
});
