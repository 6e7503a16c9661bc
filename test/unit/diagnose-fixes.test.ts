// Every lab fault, old and new, as plain values (the kernel state and cluster objects the lab
// leaves, and the hops the kernel shows for it: docs/findings.md "What the kernel really does"):
// the right code on the right node from state and from packets, and a fix that holds for every
// pair of nodes, checked against each node's routes to every other node's underlay address
// (fixtures/fix-check.ts). Also: routes to different peers that leave by different interfaces
// (UNDERLAY_ROUTE_SPLIT), and the fixes that must change a route first because of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Correlator, resolverFromModel } from '../../src/correlate/correlator.js';
import type { HopEvent } from '../../src/datapath/hop.js';
import { ClusterModel } from '../../src/cluster/model.js';
import type { KernelRoute, NftChain, NodeKernelState } from '../../src/cluster/kernel.js';
import { Diagnoser } from '../../src/diagnose/diagnoser.js';
import { diagnoseState } from '../../src/diagnose/state.js';
import type { Finding } from '../../src/diagnose/finding.js';
import { fixtureModel, mac, type FixtureOptions } from './fixtures/flannel.js';
import { crossNodeHops, dropAt, hop, type PacketSpec } from './fixtures/hops.js';
import { fixProblems } from './fixtures/fix-check.js';

const codes = (fs: Finding[]): string[] => fs.filter((f) => f.severity === 'error').map((f) => `${f.code}@${f.nodes.join('+')}`);
let fp = 0;
const spec = (extra: Partial<PacketSpec> = {}): PacketSpec => ({
  fingerprint: (++fp).toString(16).padStart(16, 'e'), src: '10.244.1.10', dst: '10.244.2.10', srcNode: 'node1', dstNode: 'node2',
  outer: { src: '192.168.1.121', dst: '192.168.1.122' }, ...extra,
});

function model(opts: FixtureOptions, state?: (node: string, k: NodeKernelState) => NodeKernelState): ClusterModel {
  const m = fixtureModel(opts).model;
  return state ? ClusterModel.build(m.objects, new Map([...m.kernelStates].map(([n, k]) => [n, state(n, k)]))) : m;
}
function fromPackets(m: ClusterModel, events: HopEvent[]): Finding[] {
  const c = new Correlator({ resolver: resolverFromModel(m), clockOf: () => 'lab' });
  const d = new Diagnoser(m);
  d.checkState();
  for (const p of [...events.flatMap((e) => c.add(e)), ...c.flush()]) d.observePath(p);
  return d.findings();
}
const chain = (c: Partial<NftChain> & Pick<NftChain, 'name' | 'table'>): NftChain => ({ family: 'ip', rules: [], ...c });
const onNode2 = (f: (k: NodeKernelState) => NodeKernelState) => (n: string, k: NodeKernelState) => (n === 'node2' ? f(k) : k);

/** The seed's loop: node1's flannel.1 delivers to itself again and again until the TTL runs out. */
function loopHops(s: PacketSpec): HopEvent[] {
  const out = [hop(s, 'node1', 'cni0', 'pod-bridge', 'ingress', 0n)];
  for (let i = 1; i < 20; i++) out.push(hop(s, 'node1', 'flannel.1', 'vtep', i % 2 ? 'egress' : 'ingress', BigInt(i) * 100n));
  out.push(dropAt(s, 'node1', 'flannel.1', 'vtep', 'IP_INHDR', 3_000n));
  return out;
}

interface Case {
  fault: string;
  m: () => ClusterModel;
  state: string[];
  packets: () => HopEvent[];
  fromPackets: string[];
  check?: (fs: Finding[]) => void;
}

const CASES: Case[] = [
  {
    fault: 'nat-public-ip', m: () => model({ natPublicIp: true }), state: ['DUPLICATE_PUBLIC_IP@node1+node2+node3'],
    packets: () => loopHops(spec({ outer: undefined })), fromPackets: ['DUPLICATE_PUBLIC_IP@node1+node2+node3', 'FDB_DST_LOCAL@node1'],
  },
  {
    fault: 'stale-fdb', m: () => model({ entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: '192.168.1.200' } : undefined) }),
    state: ['WRONG_UNDERLAY_DST@node1'],
    packets: () => { const s = spec({ outer: undefined }); return [...crossNodeHops(s, 2), dropAt(s, 'node1', 'eth1', 'uplink', 'NEIGH_FAILED', 3_000_000_000n)]; },
    fromPackets: ['WRONG_UNDERLAY_DST@node1'],
  },
  {
    fault: 'stale-vtep-mac',
    m: () => model({ tweak: (n) => { if (n.name === 'node2') n.vtepMac = mac(2, 1); }, entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { neighMac: mac(2, 0), fdbMac: mac(2, 0) } : undefined) }),
    state: ['VTEP_MAC_MISMATCH@node1'],
    packets: () => { const s = spec({ innerDstMac: mac(2, 0) }); return [...crossNodeHops(s, 5), dropAt(s, 'node2', 'flannel.1', 'vtep', 'OTHERHOST', 1_095_000n)]; },
    fromPackets: ['VTEP_MAC_MISMATCH@node1'],
  },
  {
    fault: 'missing-fdb', m: () => model({ entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: null } : undefined) }),
    state: ['FDB_MISSING@node1'],
    packets: () => { const s = spec({ outer: undefined }); return [...crossNodeHops(s, 2), dropAt(s, 'node1', 'flannel.1', 'vtep', 'NO_TX_TARGET', 1_015_000n)]; },
    fromPackets: ['FDB_MISSING@node1'],
  },
  {
    fault: 'vni-mismatch', m: () => model({ tweak: (n) => { if (n.name === 'node2') n.vni = 2; } }), state: ['VNI_MISMATCH@node2'],
    packets: () => { const s = spec(); return [...crossNodeHops(s, 4), dropAt(s, 'node2', 'eth1', 'uplink', 'VXLAN_VNI_NOT_FOUND', 1_085_000n, true)]; },
    fromPackets: ['VNI_MISMATCH@node2'],
  },
  {
    fault: 'port-mismatch', m: () => model({ tweak: (n) => { if (n.name === 'node2') n.port = 4789; } }), state: ['PORT_MISMATCH@node2'],
    packets: () => { const s = spec(); return [...crossNodeHops(s, 4), dropAt(s, 'node2', 'eth1', 'uplink', 'NO_SOCKET', 1_085_000n, true)]; },
    fromPackets: ['PORT_MISMATCH@node2'],
  },
  {
    fault: 'mtu', m: () => model({ tweak: (n) => { if (n.name === 'node1') n.bridgeMtu = 1500; } }), state: [], // a warning from state
    packets: () => { const s = spec({ ipLength: 1500 }); return [...crossNodeHops(s, 1), dropAt(s, 'node1', 'cni0', 'pod-bridge', 'PKT_TOO_BIG', 1_005_000n)]; },
    fromPackets: ['MTU_EXCEEDED@node1'],
  },
  {
    fault: 'udp-blocked',
    m: () => model({}, onNode2((k) => ({ ...k, firewall: [chain({ family: 'inet', table: 'vxtrace_lab_fault_udp', name: 'input', hook: 'input', type: 'filter', priority: 0, policy: 'accept', rules: [
      { handle: 2, text: 'udp dport 8472 drop', matches: [{ key: 'udp dport', op: '==', values: ['8472'] }], opaque: false, verdict: 'drop' }] })] }))),
    state: [],
    packets: () => { const s = spec(); return [...crossNodeHops(s, 4), dropAt(s, 'node2', 'eth1', 'uplink', 'NETFILTER_DROP', 1_085_000n, true)]; },
    fromPackets: ['DROPPED@node2'],
    check: (fs) => assert.match(fs[0]!.fix, /nft delete rule inet vxtrace_lab_fault_udp input handle 2/),
  },
  {
    fault: 'bad-checksum', m: () => model({}), state: [],
    packets: () => { const s = spec(); return [...crossNodeHops(s, 4), dropAt(s, 'node2', 'eth1', 'uplink', 'UDP_CSUM', 1_085_000n, true)]; },
    fromPackets: ['BAD_OUTER_CHECKSUM@node1'],
  },
  {
    fault: 'forward-drop', m: () => model({}, onNode2((k) => ({ ...k, firewall: [chain({ table: 'vxtrace_lab_fault_fwd', name: 'forward', hook: 'forward', type: 'filter', priority: 0, policy: 'drop' })] }))),
    state: [],
    packets: () => { const s = spec(); return [...crossNodeHops(s, 5), dropAt(s, 'node2', 'flannel.1', 'vtep', 'NETFILTER_DROP', 1_095_000n)]; },
    fromPackets: ['DROPPED@node2'],
    check: (fs) => assert.match(fs[0]!.fix, /nft add rule ip vxtrace_lab_fault_fwd forward ip saddr 10\.244\.0\.0\/16 accept && nft add rule ip vxtrace_lab_fault_fwd forward ip daddr 10\.244\.0\.0\/16 accept; or nft chain ip vxtrace_lab_fault_fwd forward '\{ policy accept; \}'/),
  },
  {
    fault: 'forward-rule',
    m: () => model({}, onNode2((k) => ({ ...k, firewall: [chain({ table: 'vxtrace_lab_fault_fwdrule', name: 'forward', hook: 'forward', type: 'filter', priority: 0, policy: 'accept', rules: [
      { handle: 2, text: 'ip daddr 10.244.2.0/24 drop', matches: [{ key: 'ip daddr', op: '==', values: ['10.244.2.0/24'] }], opaque: false, verdict: 'drop' }] })] }))),
    state: [],
    packets: () => { const s = spec(); return [...crossNodeHops(s, 5), dropAt(s, 'node2', 'flannel.1', 'vtep', 'NETFILTER_DROP', 1_095_000n)]; },
    fromPackets: ['DROPPED@node2'],
    check: (fs) => assert.match(fs[0]!.fix, /^on node2: remove it \(nft delete rule ip vxtrace_lab_fault_fwdrule forward handle 2\)/),
  },
  {
    fault: 'vxlan-closed',
    // node2's flannel.1 down: its neighbours and its routes via flannel.1 went with it.
    m: () => model({}, onNode2((k) => ({ ...k, vxlan: { ...k.vxlan!, up: false }, neighbours: [], routes: k.routes.filter((r) => r.device !== 'flannel.1') }))),
    state: ['NO_DECAP@node2'],
    packets: () => { const s = spec(); return [...crossNodeHops(s, 4), dropAt(s, 'node2', 'eth1', 'uplink', 'NO_SOCKET', 1_085_000n, true)]; },
    fromPackets: ['NO_DECAP@node2'],
    check: (fs) => assert.equal(fs[0]!.packetCount, 1, 'the packets confirm the state finding'),
  },
  {
    fault: 'underlay-unreachable', m: () => model({}), state: [],
    packets: () => { const s = spec({ outer: undefined }); return [...crossNodeHops(s, 2), dropAt(s, 'node1', 'eth1', 'uplink', 'NEIGH_FAILED', 3_000_000_000n)]; },
    fromPackets: ['DROPPED@node1+node2'],
  },
];

for (const c of CASES) {
  test(`${c.fault}: ${[...new Set([...c.state, ...c.fromPackets])].join(', ')}, with fixes that hold for every pair of nodes`, () => {
    const m = c.m();
    const state = diagnoseState(m);
    assert.deepEqual(codes(state), c.state, 'from state');
    const packets = fromPackets(m, c.packets());
    assert.deepEqual(codes(packets), c.fromPackets, 'from packets');
    for (const f of [...state, ...packets]) {
      assert.deepEqual(fixProblems(m, f), [], `${f.code}: ${f.fix}`);
      assert.ok(f.nodes.length && f.fix.length > 20);
    }
    c.check?.(packets.filter((f) => f.severity === 'error'));
  });
}

// ---- routes that disagree ----

/** node `who` reaches node `peer`'s underlay address through the NAT gateway on eth0 (a stray host route). */
const strayRoute = (who: string, peerIp: string) => (n: string, k: NodeKernelState): NodeKernelState =>
  (n === who ? { ...k, routes: [...k.routes, { dst: peerIp, gateway: '10.0.2.2', device: 'eth0', onlink: false, type: 'unicast' } satisfies KernelRoute] } : k);

test('UNDERLAY_ROUTE_SPLIT: one peer routed by eth0, two by eth1 -> the underlay stays the InternalIP on eth1, the split is reported with the route to delete', () => {
  const m = model({ nodes: 4 }, strayRoute('node1', '192.168.1.124'));
  const u = m.node('node1')!.underlay;
  assert.deepEqual([u.address, u.interface], ['192.168.1.121', 'eth1']);
  assert.equal(u.explanation, 'InternalIP 192.168.1.121 on eth1 (eth1 carries the route to node2, node3; the route to node4 leaves by eth0: the routes disagree); 10.0.2.15 on eth0 is shared by node1, node2, node3, node4');
  const fs = diagnoseState(m);
  assert.deepEqual(codes(fs), ['UNDERLAY_ROUTE_SPLIT@node1']);
  const f = fs[0]!;
  assert.equal(f.cause, "node1's routes to its peers' underlay addresses leave by different interfaces: VXLAN to node4 leaves by eth0, not by eth1, which holds node1's underlay address 192.168.1.121, so it goes out with the wrong source (or nowhere).");
  assert.equal(f.fix, 'on node1: ip route del 192.168.1.124 via 10.0.2.2 dev eth0 (then 192.168.1.0/24 dev eth1 carries it, as for node2, node3)');
  assert.equal(f.evidence.observed, "node1's routes: to node4 (192.168.1.124: 192.168.1.124 via 10.0.2.2 dev eth0); to node2 and node3 by eth1");
  assert.deepEqual(fixProblems(m, f), []);
});

test('UNDERLAY_ROUTE_SPLIT when deleting the route would not help (the peer is off eth1\'s network): a host route by the gateway the other peers use on eth1', () => {
  // node3 lives in 192.168.2.0/24, reached by node1 via a router on eth1 (192.168.1.1), except that a stray route sends it by eth0.
  const m = model({ tweak: (n) => { if (n.name === 'node3') n.underlayIp = '192.168.2.123'; } }, (n, k) => {
    if (n === 'node1') return { ...k, routes: [...k.routes, { dst: '192.168.2.0/24', gateway: '10.0.2.2', device: 'eth0', onlink: false, type: 'unicast' }] };
    return k;
  });
  // node2 reaches node3 through the router, as node1 should.
  const m2 = ClusterModel.build(m.objects, new Map([...m.kernelStates].map(([n, k]) => [n, n === 'node2' ? { ...k, routes: [...k.routes, { dst: '192.168.2.0/24', gateway: '192.168.1.1', device: 'eth1', onlink: false, type: 'unicast' }] } : k])));
  const f = diagnoseState(m2).find((x) => x.code === 'UNDERLAY_ROUTE_SPLIT' && x.nodes[0] === 'node1')!;
  // Deleting 192.168.2.0/24 via eth0 would leave node3 on the default route (eth0 too): not proposed.
  assert.doesNotMatch(f.fix, /ip route del/);
  assert.match(f.fix, /^on node1: a route to 192\.168\.2\.123 by eth1 \(nothing on node1 says which gateway on eth1 reaches it\)$/);
});

test('the seed with a stray route on node3: DUPLICATE_PUBLIC_IP does not propose --iface=eth1 alone, which would not reach node1 from node3; the route comes first', () => {
  const m = model({ natPublicIp: true }, strayRoute('node3', '192.168.1.121'));
  const fs = diagnoseState(m);
  assert.deepEqual(codes(fs), ['DUPLICATE_PUBLIC_IP@node1+node2+node3', 'UNDERLAY_ROUTE_SPLIT@node3']);
  const dup = fs[0]!;
  assert.match(dup.fix, /restart flanneld with --iface=eth1 .*; but eth1 alone does not reach node1 from node3: first, on node3: ip route replace 192\.168\.1\.121\/32 dev eth1 \(now 192\.168\.1\.121 via 10\.0\.2\.2 dev eth0\) \(UNDERLAY_ROUTE_SPLIT\)$/);
  for (const f of fs) assert.deepEqual(fixProblems(m, f), [], `${f.code}: ${f.fix}`);
  // The packets of the seed say the same on the node they loop on.
  const packets = fromPackets(m, loopHops(spec({ outer: undefined })));
  for (const f of packets) assert.deepEqual(fixProblems(m, f), [], `${f.code}: ${f.fix}`);
});

test('a stale FDB entry on a node whose route to the peer leaves by eth0: the FDB fix says the route must change too', () => {
  const m = model({ entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: '192.168.1.200' } : undefined) }, strayRoute('node1', '192.168.1.122'));
  const fs = diagnoseState(m);
  assert.deepEqual(codes(fs), ['UNDERLAY_ROUTE_SPLIT@node1', 'WRONG_UNDERLAY_DST@node1']);
  const f = fs.find((x) => x.code === 'WRONG_UNDERLAY_DST')!;
  assert.match(f.fix, /bridge fdb replace 0e:76:78:00:00:02 dev flannel\.1 dst 192\.168\.1\.122 self permanent.*; but node1's route to 192\.168\.1\.122 is 192\.168\.1\.122 via 10\.0\.2\.2 dev eth0, not by eth1: also on node1: ip route replace 192\.168\.1\.122\/32 dev eth1 \(UNDERLAY_ROUTE_SPLIT\)$/);
  for (const x of fs) assert.deepEqual(fixProblems(m, x), [], `${x.code}: ${x.fix}`);
});

test('the fix check itself fails fixes that break a pair (it is not a test that cannot fail)', () => {
  const m = model({ natPublicIp: true }, strayRoute('node3', '192.168.1.121'));
  const dup = diagnoseState(m)[0]!;
  const bare = { ...dup, fix: 'restart flanneld with --iface=eth1 on every node' };
  assert.deepEqual(fixProblems(m, bare), ['node3: --iface=eth1 does not reach node1 (192.168.1.121 by eth0)']);
  assert.match(fixProblems(m, { ...dup, fix: 'restart flanneld with --iface=eth0' }).join('\n'), /node1: --iface=eth0 does not hold its underlay address 192\.168\.1\.121/);
  const healthy = model({});
  const fdb = { ...dup, nodes: ['node1'], fix: 'on node1: bridge fdb replace 0e:76:78:00:00:02 dev flannel.1 dst 192.168.1.200 self permanent' };
  assert.deepEqual(fixProblems(healthy, fdb), ["node1: FDB dst 192.168.1.200 is not node2's underlay address 192.168.1.122"]);
  const route = { ...dup, nodes: ['node1'], fix: 'on node1: ip route replace 192.168.1.0/24 dev eth0' };
  assert.deepEqual(fixProblems(healthy, route), ['node1: the route change takes node2 (192.168.1.122) off eth1', 'node1: the route change takes node3 (192.168.1.123) off eth1']);
  const accept = { ...dup, nodes: ['node2'], fix: 'on node2: nft insert rule inet f input ip saddr 192.168.1.121 udp dport 8472 accept' };
  assert.deepEqual(fixProblems(healthy, accept), ['node2: the accept leaves out node3 (192.168.1.123)']);
});
