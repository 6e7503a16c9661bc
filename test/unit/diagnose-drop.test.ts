// Every kernel drop reason a VXLAN overlay meets, dropped at each of the six hops of a cross-node
// packet (and their devices): the diagnoser gives the code that names the cause, on the node where
// the fix goes, with a fix that names that node and the device (or chain) to change. Plus the
// state each reason is explained from: the nftables ruleset, rp_filter and routes, tc filters, the
// peer's links, and a loop's hops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Correlator, resolverFromModel } from '../../src/correlate/correlator.js';
import type { PacketPath } from '../../src/correlate/path.js';
import type { DeviceRole, HopEvent } from '../../src/datapath/hop.js';
import { ClusterModel } from '../../src/cluster/model.js';
import type { NftChain, NodeKernelState } from '../../src/cluster/kernel.js';
import { parseKernelState, parseNftRuleset, parseRpFilter, parseTcFilters, parseQdiscs, rpFilterOn } from '../../src/cluster/kernel.js';
import { Diagnoser } from '../../src/diagnose/diagnoser.js';
import { KNOWN_DROP_REASONS } from '../../src/diagnose/drop.js';
import { whatDrops } from '../../src/diagnose/firewall.js';
import { legacyDeleteCommand, parseIptablesSave } from '../../src/cluster/iptables.js';
import type { Finding } from '../../src/diagnose/finding.js';
import { fixtureModel } from './fixtures/flannel.js';
import { crossNodeHops, dropAt, hop, type PacketSpec } from './fixtures/hops.js';

const fixture = (name: string): string => readFileSync(new URL(`../../../test/unit/fixtures/iproute2/${name}`, import.meta.url), 'utf8');

let fp = 0;
const spec = (): PacketSpec => ({
  fingerprint: (++fp).toString(16).padStart(16, 'd'), src: '10.244.1.10', dst: '10.244.2.10', srcNode: 'node1', dstNode: 'node2',
  outer: { src: '192.168.1.121', dst: '192.168.1.122' },
});

function run(model: ClusterModel, events: HopEvent[]): { paths: PacketPath[]; findings: Finding[] } {
  const c = new Correlator({ resolver: resolverFromModel(model), clockOf: () => 'lab' });
  const paths = [...events.flatMap((e) => c.add(e)), ...c.flush()];
  const d = new Diagnoser(model);
  for (const p of paths) d.observePath(p);
  return { paths, findings: d.findings() };
}

/** The model of a healthy 3-node cluster with a firewall on every node: VXLAN dropped on input, FORWARD policy drop. */
function withState(model: ClusterModel, change: (node: string, k: NodeKernelState) => NodeKernelState): ClusterModel {
  return ClusterModel.build(model.objects, new Map([...model.kernelStates].map(([n, k]) => [n, change(n, k)])));
}
const FIREWALL: NftChain[] = [
  { family: 'inet', table: 'filter', name: 'input', hook: 'input', type: 'filter', priority: 0, policy: 'accept', rules: [
    { handle: 4, text: 'udp dport 8472 drop', matches: [{ key: 'udp dport', op: '==', values: ['8472'] }], opaque: false, verdict: 'drop' },
  ] },
  { family: 'inet', table: 'filter', name: 'forward', hook: 'forward', type: 'filter', priority: 0, policy: 'drop', rules: [] },
];

// The six hops of pod-a (node1) -> pod-b (node2), and where a drop there happens.
const HOPS: { kind: string; node: string; device: string; role: DeviceRole; upTo: number; outer?: true }[] = [
  { kind: "sender's pod bridge", node: 'node1', device: 'cni0', role: 'pod-bridge', upTo: 1 },
  { kind: "sender's VXLAN device", node: 'node1', device: 'flannel.1', role: 'vtep', upTo: 2 },
  { kind: "sender's uplink (outer)", node: 'node1', device: 'eth1', role: 'uplink', upTo: 3, outer: true },
  { kind: "receiver's uplink (outer)", node: 'node2', device: 'eth1', role: 'uplink', upTo: 4, outer: true },
  { kind: "receiver's VXLAN device (decapsulated)", node: 'node2', device: 'flannel.1', role: 'vtep', upTo: 5 },
  { kind: "receiver's pod bridge", node: 'node2', device: 'cni0', role: 'pod-bridge', upTo: 5 },
];
type Hop = (typeof HOPS)[number];

/** What an expert expects: the code, the node the fix goes to (and others it names), the device or chain it changes. */
interface Want { code: string; node: string; device: string; also?: string[] }
const here = (h: Hop, device = h.device): Want => ({ code: 'DROPPED', node: h.node, device });
const sender = (h: Hop) => h.node === 'node1';
const outer = (h: Hop) => h.outer === true;

const REASONS: Record<string, (h: Hop) => Want> = {
  // The outer UDP checksum is the sender's offload bug; anywhere else it is a packet corrupted on the way, seen here.
  UDP_CSUM: (h) => (outer(h) ? { code: 'BAD_OUTER_CHECKSUM', node: 'node1', device: 'flannel.1' } : here(h)),
  IP_CSUM: (h) => (outer(h) && !sender(h) ? { ...here(h), also: ['node1'] } : here(h)),
  // No device with that VNI: the VXLAN device of the node that dropped it is checked.
  VXLAN_VNI_NOT_FOUND: (h) => here(h, 'flannel.1'),
  // Not valid VXLAN: the sender's device options, when the datagram came from another node.
  VXLAN_INVALID_HDR: (h) => (outer(h) && !sender(h) ? { code: 'DROPPED', node: 'node1', device: 'flannel.1' } : here(h)),
  // No socket on the VXLAN port: the VXLAN device of the node that dropped it (inner packets: nothing specific).
  NO_SOCKET: (h) => (outer(h) ? here(h, 'flannel.1') : here(h)),
  // No FDB destination on the sender's VXLAN device.
  VXLAN_NO_REMOTE: (h) => (sender(h) ? { code: 'FDB_MISSING', node: 'node1', device: 'flannel.1' } : here(h)),
  NO_TX_TARGET: (h) => (h.node === 'node1' && h.device === 'flannel.1' ? { code: 'FDB_MISSING', node: 'node1', device: 'flannel.1' } : here(h)),
  // Neighbour resolution: the VTEP neighbour on the sender's VXLAN device; the underlay next hop on its uplink (both ends);
  // the pod on the receiver's bridge.
  NEIGH_FAILED: (h) => (sender(h) && !outer(h) ? { code: 'NEIGH_MISSING', node: 'node1', device: 'flannel.1' } : sender(h) ? { code: 'DROPPED', node: 'node1', device: 'eth1', also: ['node2'] } : here(h, 'cni0')),
  // A frame for another MAC (here: the MACs match, so nothing more specific than where).
  OTHERHOST: (h) => here(h),
  PKT_TOO_BIG: () => ({ code: 'MTU_EXCEEDED', node: 'node1', device: 'eth0 mtu 1450' }),
  IP_FRAG_TOO_BIG: () => ({ code: 'MTU_EXCEEDED', node: 'node1', device: 'eth0 mtu 1450' }),
  // The chain that drops: input for VXLAN arriving, forward for pod traffic; the sender's own VXLAN: output.
  NETFILTER_DROP: (h) => (outer(h) ? (sender(h) ? here(h, 'output') : here(h, 'nft delete rule inet filter input handle 4')) : here(h, 'inet filter forward')),
  // rp_filter: the sysctl of the device it arrived on.
  IP_RPFILTER: (h) => here(h, `net.ipv4.conf.${h.device}.rp_filter=2`),
  IP_INHDR: (h) => here(h),
  // No route: to the peer's pod CIDR via flannel.1 (sender, inner), to its underlay address by eth1 (sender, outer),
  // the local route of the receiver's own address, its pod bridge's route.
  IP_OUTNOROUTES: (h) => (h.device === 'cni0' && sender(h) ? here(h, 'dev flannel.1') : sender(h) ? here(h, 'dev eth1') : outer(h) ? here(h, 'dev eth1') : here(h, 'dev cni0')),
  IP_INNOROUTES: (h) => (sender(h) && !outer(h) ? here(h, 'dev flannel.1') : sender(h) ? here(h, 'dev eth1') : outer(h) ? here(h, 'dev eth1') : here(h, 'dev cni0')),
  TC_INGRESS: (h) => here(h),
  TC_EGRESS: (h) => here(h),
  QDISC_DROP: (h) => here(h),
  // A decapsulated frame's source MAC is the sending VTEP's.
  MAC_INVALID_SOURCE: (h) => (!sender(h) && !outer(h) ? { code: 'DROPPED', node: 'node1', device: 'flannel.1' } : here(h)),
  LOCAL_MAC: (h) => (sender(h) ? here(h, 'flannel.1') : { code: 'DROPPED', node: 'node1', device: 'flannel.1' }),
  TUNNEL_TXINFO: (h) => here(h),
  // A reason vxtrace has no specific knowledge of: where, and the honest sentence.
  SOMETHING_NEW: (h) => here(h),
};

test('the matrix covers every reason vxtrace knows', () => {
  for (const r of KNOWN_DROP_REASONS) if (!/^(NEIGH_|FRAG_|IPV6_FRAG|IP_FRAGMENTATION)/.test(r)) assert.ok(REASONS[r], `${r} is in the matrix`);
});

for (const [reason, want] of Object.entries(REASONS)) {
  test(`${reason} on each hop: the right code, node and device`, () => {
    const model = withState(fixtureModel().model, (_n, k) => ({ ...k, firewall: FIREWALL }));
    for (const h of HOPS) {
      const s = spec();
      const events = [...crossNodeHops(s, h.upTo), dropAt(s, h.node, h.device, h.role, reason, 1_000_000n + BigInt(h.upTo) * 10_000n + 5_000n, h.outer)];
      const { paths, findings } = run(model, events);
      const w = want(h);
      const where = `${reason} at ${h.kind}`;
      assert.equal(paths[0]!.outcome, 'dropped', where);
      assert.equal(findings.length, 1, `${where}: ${findings.map((f) => f.code).join(', ')}`);
      const f = findings[0]!;
      assert.equal(f.code, w.code, `${where}: ${f.code} (${f.cause})`);
      assert.ok(f.nodes.includes(w.node), `${where}: names ${w.node}: ${f.nodes.join(', ')}`);
      for (const n of w.also ?? []) assert.ok(f.nodes.includes(n) && f.fix.includes(n), `${where}: also names ${n}: ${f.nodes.join(', ')}; ${f.fix}`);
      assert.ok(!f.nodes.some((n) => n !== w.node && !(w.also ?? []).includes(n)), `${where}: names no other node: ${f.nodes.join(', ')}`);
      assert.match(f.fix, new RegExp(`(^|: |; )(on ${w.node}:|.*${w.node})`), `${where}: the fix says where: ${f.fix}`);
      assert.ok(f.fix.includes(w.device), `${where}: the fix names ${w.device}: ${f.fix}`);
      assert.ok(f.cause.length > 30, `${where}: a cause`);
      if (f.code === 'DROPPED') {
        assert.equal(f.evidence.facts?.reason, reason);
        assert.equal(f.evidence.facts?.device, h.device);
      }
      if (reason === 'SOMETHING_NEW') assert.match(f.cause, new RegExp(`dropped by the kernel on ${h.node}'s ${h.device.replace('.', '\\.')}.* for reason SOMETHING_NEW in kfree_skb_reason; vxtrace has no specific advice for this reason`));
    }
  });
}

// ---- the state each reason is explained from ----

test('nft -j list ruleset: chains, rules with their matches and verdicts, counters left out; the JSON of a real ruleset', () => {
  const chains = parseNftRuleset(fixture('node2-nft.json'));
  assert.deepEqual(chains.map((c) => `${c.family} ${c.table} ${c.name} ${c.hook ?? '-'} ${c.policy ?? '-'}`), [
    'inet vxtrace_lab_fault_udp input input accept', 'ip vxt_demo_fwd forward forward accept', 'ip vxt_demo_fwd pods - -',
  ]);
  assert.equal(chains[0]!.rules[0]!.text, 'udp dport 8472 drop comment "vxtrace lab fault udp-blocked"');
  assert.deepEqual(chains[1]!.rules.map((r) => r.text), ['ct state established,related accept', 'meta iifname flannel.1 jump pods']);
  assert.equal(chains[2]!.rules[0]!.text, 'ip daddr 10.244.2.0/24 meta l4proto { icmp, tcp } drop');
  assert.doesNotMatch(JSON.stringify(chains), /packets|bytes/);
  assert.deepEqual(parseNftRuleset(''), []);
});

test('whatDrops: the rule (through a jump) or the policy that drops a packet, certain only when every condition could be evaluated', () => {
  const chains = parseNftRuleset(fixture('node2-nft.json'));
  const vxlan = { family: 4 as const, src: '192.168.1.121', dst: '192.168.1.122', protocol: 17, srcPort: 40000, dstPort: 8472, iif: 'eth1' };
  const d = whatDrops(chains, vxlan, ['prerouting', 'input'])!;
  assert.deepEqual([d.chain.name, d.rule?.handle, d.hook, d.certain], ['input', 2, 'input', true]);
  assert.equal(whatDrops(chains, { ...vxlan, dstPort: 4789 }, ['prerouting', 'input']), undefined);
  // Forwarded ICMP to a pod of node2, in from flannel.1: the jump to `pods` drops it; ct state is not known, so not certain.
  const ping = { family: 4 as const, src: '10.244.1.10', dst: '10.244.2.10', protocol: 1, srcPort: 0, dstPort: 0, iif: 'flannel.1', oif: 'cni0' };
  const f = whatDrops(chains, ping, ['prerouting', 'forward', 'postrouting'])!;
  assert.deepEqual([f.base.name, f.chain.name, f.rule?.text, f.certain], ['forward', 'pods', 'ip daddr 10.244.2.0/24 meta l4proto { icmp, tcp } drop', false]);
  // UDP is not in the set; from cni0 the jump is not taken.
  assert.equal(whatDrops(chains, { ...ping, protocol: 17 }, ['forward']), undefined);
  assert.equal(whatDrops(chains, { ...ping, iif: 'cni0' }, ['forward']), undefined);
  // A base chain with policy drop and nothing accepting.
  const policy: NftChain[] = [{ family: 'ip', table: 'filter', name: 'FORWARD', hook: 'forward', type: 'filter', priority: 0, policy: 'drop', rules: [
    { handle: 9, text: 'ip saddr 172.16.0.0/12 accept', matches: [{ key: 'ip saddr', op: '==', values: ['172.16.0.0/12'] }], opaque: false, verdict: 'accept' },
  ] }];
  assert.deepEqual([whatDrops(policy, ping, ['forward'])?.rule, whatDrops(policy, ping, ['forward'])?.chain.name], [undefined, 'FORWARD']);
  assert.equal(whatDrops(policy, { ...ping, src: '172.20.0.9' }, ['forward']), undefined);
  // An IPv6 packet is not judged by an ip (IPv4) table.
  assert.equal(whatDrops(policy, { ...ping, family: 6, src: 'fd00::1', dst: 'fd00::2' }, ['forward']), undefined);
});

test('NETFILTER_DROP with the ruleset read: the rule by table, chain and handle, and the commands to remove it or accept VXLAN from every other node', () => {
  const chains = parseNftRuleset(fixture('node2-nft.json'));
  const model = withState(fixtureModel().model, (n, k) => (n === 'node2' ? { ...k, firewall: chains } : k));
  const s = spec();
  let r = run(model, [...crossNodeHops(s, 4), dropAt(s, 'node2', 'eth1', 'uplink', 'NETFILTER_DROP', 1_085_000n, true)]);
  let f = r.findings[0]!;
  assert.equal(f.cause, 'a firewall rule on node2 drops inbound VXLAN (UDP 8472) before flannel.1 can decapsulate it: chain input of table inet vxtrace_lab_fault_udp, rule handle 2: udp dport 8472 drop comment "vxtrace lab fault udp-blocked".');
  assert.equal(f.fix, 'on node2: accept UDP 8472 from the other nodes ahead of the rule that drops it: nft insert rule inet vxtrace_lab_fault_udp input ip saddr { 192.168.1.121, 192.168.1.123 } udp dport 8472 accept; or remove that rule: nft delete rule inet vxtrace_lab_fault_udp input handle 2');
  assert.deepEqual(f.evidence.facts?.handle, 2);
  const s2 = spec();
  r = run(model, [...crossNodeHops(s2, 5), dropAt(s2, 'node2', 'flannel.1', 'vtep', 'NETFILTER_DROP', 1_095_000n)]);
  f = r.findings[0]!;
  assert.match(f.cause, /^a firewall rule on node2 drops pod traffic 10\.244\.1\.10 -> 10\.244\.2\.10 in the FORWARD path after flannel\.1 decapsulated it: chain pods of table ip vxt_demo_fwd, rule handle \d+: ip daddr 10\.244\.2\.0\/24 meta l4proto \{ icmp, tcp \} drop \(as far as vxtrace can evaluate the ruleset/);
  assert.match(f.fix, /^on node2: remove it \(nft delete rule ip vxt_demo_fwd pods handle \d+\), or accept the pod network 10\.244\.0\.0\/16 ahead of it: nft insert rule ip vxt_demo_fwd pods ip saddr 10\.244\.0\.0\/16 accept && nft insert rule ip vxt_demo_fwd pods ip daddr 10\.244\.0\.0\/16 accept$/);
});

test('IP_RPFILTER with the state read: the sysctl in force, the route that makes the path asymmetric, and both ways out', () => {
  const rp = parseRpFilter(fixture('node2-netconf.json'));
  assert.deepEqual([rp.all, rp.eth1, rp.eth0, rp.default], [2, 1, 0, 0]);
  // node2 routes node1's pod CIDR by eth0 (a stray route): decapsulated packets from node1's pods arrive on flannel.1.
  const model = withState(fixtureModel().model, (n, k) => (n === 'node2' ? {
    ...k, rpFilter: { all: 1, default: 1, 'flannel.1': 1, eth1: 1 },
    routes: k.routes.map((r) => (r.dst === '10.244.1.0/24' ? { dst: '10.244.1.0/24', gateway: '10.0.2.2', device: 'eth0', onlink: false, type: 'unicast' } : r)),
  } : k));
  assert.deepEqual(rpFilterOn(model.node('node2')!.kernel!, 'flannel.1'), { value: 1, all: 1, device: 1 });
  const s = spec();
  const f = run(model, [...crossNodeHops(s, 5), dropAt(s, 'node2', 'flannel.1', 'vtep', 'IP_RPFILTER', 1_095_000n)]).findings[0]!;
  assert.equal(f.cause, "reverse-path filtering on node2 (rp_filter strict on flannel.1: net.ipv4.conf.all.rp_filter=1, net.ipv4.conf.flannel.1.rp_filter=1; the larger is in force) dropped the pod's packet from 10.244.1.10 arriving on flannel.1: the route back to 10.244.1.10 is 10.244.1.0/24 via 10.0.2.2 dev eth0, which leaves by eth0, not flannel.1.");
  assert.match(f.fix, /^on node2: make the path symmetric: ip route replace 10\.244\.1\.0\/24 via 10\.244\.1\.0 dev flannel\.1 onlink \(flanneld's route for node1's pods\); or loosen the filter: sysctl -w net\.ipv4\.conf\.flannel\.1\.rp_filter=2/);
  assert.equal(f.evidence.facts?.routeBack, '10.244.1.0/24 via 10.0.2.2 dev eth0');
});

test('TC_INGRESS with the tc filters read: the filter by device, direction and pref (vxtrace\'s own are not listed)', () => {
  const filters = parseTcFilters(fixture('node2-filter-eth1-ingress.json'), 'eth1', 'ingress');
  assert.deepEqual(filters, [{ device: 'eth1', direction: 'ingress', pref: 7, kind: 'bpf', text: 'bpf bytecode (1 insn) direct-action' }]);
  assert.deepEqual(parseTcFilters([{ pref: 1, kind: 'bpf', options: { handle: '0x7678', bpf_name: 'vxt_tc_ingress', 'direct-action': true } }], 'eth1', 'ingress'), []);
  assert.ok(parseQdiscs(fixture('node2-qdisc.json')).some((q) => q.device === 'eth1' && q.kind === 'clsact' && !q.root));
  const model = withState(fixtureModel().model, (n, k) => (n === 'node2' ? { ...k, tcFilters: filters } : k));
  const s = spec();
  const f = run(model, [...crossNodeHops(s, 4), dropAt(s, 'node2', 'eth1', 'uplink', 'TC_INGRESS', 1_085_000n, true)]).findings[0]!;
  assert.match(f.cause, /a tc filter on node2's eth1 ingress dropped the VXLAN datagram 192\.168\.1\.121 -> 192\.168\.1\.122 UDP 8472 \(it returned TC_ACT_SHOT\): pref 7 bpf bytecode \(1 insn\) direct-action/);
  assert.match(f.fix, /^on node2: tc filter del dev eth1 ingress pref 7/);
});

test('the kernel state with the optional reads parses, and without them nothing is invented', () => {
  const k = parseKernelState({
    link: fixture('node1-link.json'), addr: fixture('node1-addr.json'), route: fixture('node1-route.json'), neigh: fixture('node1-neigh.json'), fdb: fixture('node1-fdb.json'),
    netconf: fixture('node2-netconf.json'), nft: fixture('node2-nft.json'), qdisc: fixture('node2-qdisc.json'),
    filters: [{ device: 'eth1', direction: 'ingress', output: fixture('node2-filter-eth1-ingress.json') }],
  });
  assert.equal(k.firewall?.length, 3);
  assert.equal(k.tcFilters?.length, 1);
  assert.equal(k.rpFilter?.all, 2);
  const bare = parseKernelState({ link: '[]', addr: '', route: '[]', neigh: '', fdb: '' });
  assert.deepEqual([bare.firewall, bare.tcFilters, bare.rpFilter], [undefined, undefined, undefined]);
});

test("NEIGH_FAILED on the sender's uplink: the peer's address is right but does not answer; with the peer's uplink down, only the peer is named", () => {
  const s = spec();
  let model = fixtureModel().model;
  let f = run(model, [...crossNodeHops(s, 2), dropAt({ ...s }, 'node1', 'eth1', 'uplink', 'NEIGH_FAILED', 4_000_000_000n, true)]).findings[0]!;
  assert.deepEqual(f.nodes, ['node1', 'node2']);
  assert.match(f.cause, /^node2's underlay address 192\.168\.1\.122 does not answer ARP on node1's eth1 \(route 192\.168\.1\.0\/24 dev eth1\): node2 is not reachable on the underlay from node1/);
  model = withState(model, (n, k) => (n === 'node2' ? { ...k, links: k.links.map((l) => (l.name === 'eth1' ? { ...l, noCarrier: true as const } : l)) } : k));
  const s2 = spec();
  f = run(model, [...crossNodeHops(s2, 2), dropAt(s2, 'node1', 'eth1', 'uplink', 'NEIGH_FAILED', 4_000_000_000n, true)]).findings[0]!;
  assert.deepEqual(f.nodes, ['node2']);
  assert.match(f.fix, /^on node2: reconnect eth1/);
});

test('IP_INHDR after a loop between two nodes: the node whose route sends it back, with the route to set', () => {
  // node2 routes 10.244.2.0/24 (its own pods) over flannel.1 to node1, which sends it back.
  const model = withState(fixtureModel().model, (n, k) => (n === 'node2' ? {
    ...k, routes: k.routes.map((r) => (r.dst === '10.244.2.0/24' ? { dst: '10.244.2.0/24', gateway: '10.244.1.0', device: 'flannel.1', onlink: true, type: 'unicast' } : r)),
  } : k));
  const s = spec();
  const events: HopEvent[] = [];
  let t = 1_000_000n;
  events.push(hop(s, 'node1', 'cni0', 'pod-bridge', 'ingress', t));
  for (let i = 0; i < 4; i++) {
    for (const [node, dev, role, dir] of [['node1', 'flannel.1', 'vtep', 'egress'], ['node1', 'eth1', 'uplink', 'egress'], ['node2', 'eth1', 'uplink', 'ingress'], ['node2', 'flannel.1', 'vtep', 'ingress'], ['node2', 'flannel.1', 'vtep', 'egress'], ['node2', 'eth1', 'uplink', 'egress'], ['node1', 'eth1', 'uplink', 'ingress'], ['node1', 'flannel.1', 'vtep', 'ingress']] as const) {
      events.push(hop(s, node, dev, role, dir, (t += 1_000n), role === 'uplink' ? { outer: { family: 4, protocol: 17, srcPort: 1, dstPort: 8472, vni: 1, udpChecksum: 0, src: node === 'node1' ? '192.168.1.121' : '192.168.1.122', dst: node === 'node1' ? '192.168.1.122' : '192.168.1.121', srcMac: '', dstMac: '' } } : {}));
    }
  }
  events.push(dropAt(s, 'node1', 'flannel.1', 'vtep', 'IP_INHDR', (t += 1_000n)));
  const f = run(model, events).findings.find((x) => x.code === 'DROPPED')!;
  assert.deepEqual(f.nodes, ['node2']);
  assert.match(f.cause, /looped between node1 and node2 \(\d+ passes through .*\) until its TTL ran out: node2 owns 10\.244\.2\.0\/24 but routes 10\.244\.2\.10 back over flannel\.1/);
  assert.match(f.fix, /^on node2: route its own pod CIDR to its pod bridge: ip route replace 10\.244\.2\.0\/24 dev cni0/);
});

const legacySave = (): string => readFileSync(new URL('../../../test/unit/fixtures/iptables/node2-legacy-save.txt', import.meta.url), 'utf8');

test('iptables-legacy-save: tables, built-in chains with hook, priority and policy, user chains, rules with what can be evaluated', () => {
  const chains = parseIptablesSave(legacySave(), 4, 'iptables-legacy');
  const byName = (table: string, name: string) => chains.find((c) => c.table === table && c.name === name)!;
  assert.deepEqual(chains.map((c) => `${c.table}/${c.name}${c.hook ? `@${c.hook}:${c.priority}:${c.policy}` : ''}`), [
    'raw/PREROUTING@prerouting:-300:accept', 'raw/OUTPUT@output:-300:accept',
    'filter/INPUT@input:0:accept', 'filter/FORWARD@forward:0:drop', 'filter/OUTPUT@output:0:accept',
    'filter/DOCKER-ISOLATION-STAGE-1', 'filter/DOCKER-USER', 'filter/FLANNEL-FWD', 'filter/KUBE-FORWARD',
  ]);
  assert.ok(chains.every((c) => c.legacy === 'iptables-legacy' && c.family === 'ip'));
  const input = byName('filter', 'INPUT').rules;
  assert.deepEqual(input[0], {
    handle: 2, text: '-A INPUT -s 192.168.1.66/32 -p udp -m udp --dport 8472 -j DROP', opaque: false, verdict: 'drop',
    matches: [{ key: 'ip saddr', op: '==', values: ['192.168.1.66'] }, { key: 'meta l4proto', op: '==', values: ['udp'] }, { key: 'udp dport', op: '==', values: ['8472'] }],
  });
  assert.deepEqual(input[1]!.matches.at(-1), { key: 'tcp dport', op: '==', values: ['22', '6443'] }, 'multiport: any of them');
  assert.deepEqual([input[2]!.verdict, input[2]!.matches[0], input[2]!.matches.at(-1)], [undefined, { key: 'meta iifname', op: '==', values: ['eth*'] }, { key: 'udp dport', op: '==', values: ['4789-4790'] }], 'LOG decides nothing; eth+ is eth*; a port range');
  const fwd = byName('filter', 'FORWARD').rules;
  assert.deepEqual(fwd.map((r) => [r.verdict, r.target, r.opaque, r.comment]), [
    ['jump', 'KUBE-FORWARD', false, 'kubernetes forwarding rules'], ['jump', 'DOCKER-USER', false, undefined], ['jump', 'DOCKER-ISOLATION-STAGE-1', false, undefined],
    ['accept', undefined, true, undefined], ['accept', undefined, false, undefined], ['jump', 'FLANNEL-FWD', false, 'flanneld forward'],
  ]);
  assert.deepEqual(fwd[4]!.matches, [{ key: 'meta iifname', op: '==', values: ['docker0'] }, { key: 'meta oifname', op: '!=', values: ['docker0'] }]);
  assert.equal(legacyDeleteCommand(byName('filter', 'INPUT'), input[0]!), 'iptables-legacy -D INPUT -s 192.168.1.66/32 -p udp -m udp --dport 8472 -j DROP');
  assert.equal(legacyDeleteCommand(byName('raw', 'PREROUTING'), byName('raw', 'PREROUTING').rules[0]!), 'iptables-legacy -t raw -D PREROUTING -p udp -m udp --dport 9999 -j DROP');
  assert.deepEqual(parseIptablesSave('', 4, 'iptables-legacy'), [], 'no legacy tables loaded: nothing');
  assert.deepEqual(parseIptablesSave('*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -s "unterminated\n-A NOSUCH -j DROP\nCOMMIT\n', 4, 'iptables').map((c) => c.rules.length), [1], 'a rule of an undeclared chain is skipped');
});

test('Docker\'s FORWARD policy drop in iptables-legacy, behind kube-proxy\'s `ct state invalid` drop: the policy is named, with the legacy command to change it', () => {
  const chains = parseIptablesSave(legacySave(), 4, 'iptables-legacy');
  const ping = { family: 4 as const, src: '10.244.1.10', dst: '10.244.2.10', protocol: 1, srcPort: 0, dstPort: 0, iif: 'flannel.1', oif: 'cni0' };
  const d = whatDrops(chains, ping, ['prerouting', 'forward', 'postrouting'])!;
  assert.deepEqual([d.chain.name, d.rule, d.hook, d.certain], ['FORWARD', undefined, 'forward', false], 'the policy, not the INVALID rule the packet may have met (ct state unknown)');
  // From docker0 the accept decides (unless the packet was INVALID): the INVALID drop is all that may have taken it.
  const fromDocker = whatDrops(chains, { ...ping, iif: 'docker0' }, ['forward'])!;
  assert.deepEqual([fromDocker.chain.name, fromDocker.rule?.text, fromDocker.certain], ['KUBE-FORWARD', '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP', false]);
  // VXLAN from the address the INPUT rule names: that rule, certain (raw PREROUTING does not match port 8472).
  const vxlan = { family: 4 as const, src: '192.168.1.66', dst: '192.168.1.122', protocol: 17, srcPort: 40000, dstPort: 8472, iif: 'eth1' };
  const v = whatDrops(chains, vxlan, ['prerouting', 'input'])!;
  assert.deepEqual([v.chain.name, v.rule?.handle, v.certain], ['INPUT', 2, true]);
  assert.equal(whatDrops(chains, { ...vxlan, src: '192.168.1.121' }, ['prerouting', 'input']), undefined);
  assert.deepEqual(whatDrops(chains, { ...vxlan, dstPort: 9999 }, ['prerouting', 'input'])?.chain.table, 'raw');

  const model = withState(fixtureModel().model, (n, k) => (n === 'node2' ? { ...k, firewall: chains } : k));
  const s = spec();
  const f = run(model, [...crossNodeHops(s, 5), dropAt(s, 'node2', 'flannel.1', 'vtep', 'NETFILTER_DROP', 1_095_000n)]).findings[0]!;
  assert.match(f.cause, /^node2's FORWARD chain drops forwarded pod traffic by its policy: chain FORWARD of iptables-legacy table filter \(hook forward\) has policy drop and no rule in it accepts this packet \(a policy of drop, as Docker sets it\)/);
  assert.equal(f.fix, 'on node2: allow the pod network 10.244.0.0/16 through it, as flanneld does unless --iptables-forward-rules=false: iptables-legacy -I FORWARD -s 10.244.0.0/16 -j ACCEPT && iptables-legacy -I FORWARD -d 10.244.0.0/16 -j ACCEPT; or iptables-legacy -P FORWARD ACCEPT');
  assert.equal(f.evidence.facts?.table, 'iptables-legacy filter');
  // The same ruleset read through nft (iptables-nft): the nft tables' own commands, unchanged.
  const nftLike = chains.map(({ legacy: _l, ...c }) => c);
  const s3 = spec();
  const g = run(withState(fixtureModel().model, (n, k) => (n === 'node2' ? { ...k, firewall: nftLike } : k)), [...crossNodeHops(s3, 5), dropAt(s3, 'node2', 'flannel.1', 'vtep', 'NETFILTER_DROP', 1_095_000n)]).findings[0]!;
  assert.match(g.cause, /chain FORWARD of table ip filter \(hook forward\) has policy drop/);
  assert.match(g.fix, /: iptables -I FORWARD -s 10\.244\.0\.0\/16 -j ACCEPT && iptables -I FORWARD -d 10\.244\.0\.0\/16 -j ACCEPT; or iptables -P FORWARD ACCEPT$/);
});
