// IPv6 and dual stack (flannel with EnableIPv6: flannel.1 and flannel-v6.1, public-ipv6 and
// backend-v6-data, spec.podCIDRs of both families): the model's IPv6 view, state findings on the
// IPv6 VTEPs with the same codes as on IPv4 (keys ending in :v6), IPv6 packets over an IPv6
// underlay correlated and judged, and fixes that hold for every pair there too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Correlator, resolverFromModel } from '../../src/correlate/correlator.js';
import type { HopEvent } from '../../src/datapath/hop.js';
import { ClusterModel } from '../../src/cluster/model.js';
import { lookupRoute, parseKernelState, type NodeKernelState } from '../../src/cluster/kernel.js';
import { cidrContains, networkAddress, parseCidr, prefixText } from '../../src/net/address.js';
import { Diagnoser } from '../../src/diagnose/diagnoser.js';
import { diagnoseState } from '../../src/diagnose/state.js';
import { podNetwork } from '../../src/diagnose/context.js';
import type { Finding } from '../../src/diagnose/finding.js';
import { fixtureModel, type FixtureOptions } from './fixtures/flannel.js';
import { crossNodeHops, dropAt, hop, type PacketSpec } from './fixtures/hops.js';
import { fixProblems } from './fixtures/fix-check.js';

const codes = (fs: Finding[]): string[] => fs.filter((f) => f.severity === 'error').map((f) => `${f.code}@${f.nodes.join('+')}`);
let fp = 0;
const spec6 = (extra: Partial<PacketSpec> = {}): PacketSpec => ({
  fingerprint: (++fp).toString(16).padStart(16, '6'), src: 'fd00:10:244:1::10', dst: 'fd00:10:244:2::10', srcNode: 'node1', dstNode: 'node2',
  outer: { src: 'fd00:192:168:1::121', dst: 'fd00:192:168:1::122' }, innerDstMac: '0e:76:78:06:00:02', ...extra,
});
function run(m: ClusterModel, events: HopEvent[], state = true): Finding[] {
  const c = new Correlator({ resolver: resolverFromModel(m), clockOf: () => 'lab' });
  const d = new Diagnoser(m);
  if (state) d.checkState();
  for (const p of [...events.flatMap((e) => c.add(e)), ...c.flush()]) d.observePath(p);
  return d.findings();
}
const model = (opts: FixtureOptions, state?: (n: string, k: NodeKernelState) => NodeKernelState): ClusterModel => {
  const m = fixtureModel(opts).model;
  return state ? ClusterModel.build(m.objects, new Map([...m.kernelStates].map(([n, k]) => [n, state(n, k)]))) : m;
};

test('IPv6 prefixes: parsed, contained, their network address and common prefix; `default` of either family', () => {
  const c = parseCidr('fd00:10:244:2::/64')!;
  assert.deepEqual([c.family, c.prefixLength, networkAddress(c)], [6, 64, 'fd00:10:244:2::']);
  assert.ok(cidrContains(c, 'fd00:10:244:2::10'));
  assert.ok(!cidrContains(c, 'fd00:10:244:3::10'));
  assert.ok(!cidrContains(c, '10.244.2.10'));
  assert.ok(!cidrContains(parseCidr('10.244.2.0/24')!, 'fd00:10:244:2::10'));
  assert.equal(parseCidr('fd00::/129'), undefined);
  assert.equal(parseCidr('fd00::1')!.prefixLength, 128);
  assert.equal(parseCidr('default', 6)!.text, '::/0');
  assert.equal(prefixText(parseCidr('fd00:10:244:2:ab::/80')!.bytes, 48), 'fd00:10:244::/48');
  // IPv6 routes are looked up among IPv6 routes, `default` included.
  const routes = [{ dst: 'default', gateway: '10.0.2.2', device: 'eth0', onlink: false, type: 'unicast' }, { dst: 'default', family: 6 as const, gateway: 'fd00::2', device: 'eth9', onlink: false, type: 'unicast' }];
  assert.equal(lookupRoute(routes, 'fd00:1::1')?.device, 'eth9');
  assert.equal(lookupRoute(routes, '8.8.8.8')?.device, 'eth0');
});

test('iproute2 JSON of a dual-stack node: flannel.1 and flannel-v6.1 (local6), IPv6 routes, each device with its neighbours and FDB', () => {
  const link = JSON.stringify([
    { ifindex: 5, ifname: 'flannel.1', flags: ['UP'], mtu: 1450, address: '0e:76:78:00:00:01', linkinfo: { info_kind: 'vxlan', info_data: { id: 1, local: '192.168.1.121', link: 'eth1', port: 8472 } } },
    { ifindex: 6, ifname: 'flannel-v6.1', flags: ['UP'], mtu: 1430, address: '0e:76:78:06:00:01', linkinfo: { info_kind: 'vxlan', info_data: { id: 1, local6: 'fd00:192:168:1::121', link: 'eth1', port: 8472 } } },
  ]);
  const k = parseKernelState({
    link, addr: '[]', route: '[]', route6: JSON.stringify([{ dst: 'fd00:10:244:2::/64', gateway: 'fd00:10:244:2::', dev: 'flannel-v6.1', flags: ['onlink'] }]),
    neigh: JSON.stringify([{ dst: '10.244.2.0', lladdr: '0e:76:78:00:00:02', state: ['PERMANENT'] }]), fdb: '[]',
    neigh6: JSON.stringify([{ dst: 'fd00:10:244:2::', lladdr: '0e:76:78:06:00:02', state: ['PERMANENT'] }]),
    fdb6: JSON.stringify([{ mac: '0e:76:78:06:00:02', dst: 'fd00:192:168:1::122', flags: ['self'], state: 'permanent' }]),
  });
  assert.equal(k.vxlan?.name, 'flannel.1');
  assert.deepEqual([k.vxlan6?.name, k.vxlan6?.local, k.vxlan6?.mtu], ['flannel-v6.1', 'fd00:192:168:1::121', 1430]);
  assert.deepEqual(k.routes, [{ dst: 'fd00:10:244:2::/64', family: 6, gateway: 'fd00:10:244:2::', device: 'flannel-v6.1', onlink: true, prefsrc: undefined, type: 'unicast' }]);
  assert.deepEqual(k.neighbours6?.map((n) => n.ip), ['fd00:10:244:2::']);
  assert.deepEqual(k.fdb6?.map((e) => e.dst), ['fd00:192:168:1::122']);
  // An IPv6-only node: its one VXLAN device is the IPv6 VTEP, there is no IPv4 one.
  const only6 = parseKernelState({ link: JSON.stringify([JSON.parse(link)[1]]), addr: '[]', route: '[]', neigh: '', fdb: '' });
  assert.deepEqual([only6.vxlan, only6.vxlan6?.name], [undefined, 'flannel-v6.1']);
});

test('dual-stack model: the IPv4 VTEPs and the IPv6 view (podCIDRs, public-ipv6, backend-v6-data, flannel-v6.1, IPv6 underlay by the route to the peers)', () => {
  const m = model({ stack: 'dual' });
  const n2 = m.node('node2')!;
  assert.deepEqual([n2.vtepIp, n2.underlay.address, n2.kernel?.vxlan?.name], ['10.244.2.0', '192.168.1.122', 'flannel.1']);
  assert.equal(m.podCidrOwner('fd00:10:244:2::10')?.node.name, 'node2', 'IPv6 pods resolve in the model itself');
  assert.equal(m.podByIp('fd00:10:244:2::10')?.ref, 'default/pod-b');
  const v6 = m.v6!;
  assert.equal(v6.family, 6);
  const n2v6 = v6.node('node2')!;
  assert.deepEqual(n2v6.podCidrs, ['fd00:10:244:2::/64']);
  assert.deepEqual([n2v6.vtepIp, n2v6.publicIp, n2v6.backend.vtepMac, n2v6.kernel?.vxlan?.name], ['fd00:10:244:2::', 'fd00:192:168:1::122', '0e:76:78:06:00:02', 'flannel-v6.1']);
  assert.deepEqual([n2v6.underlay.address, n2v6.underlay.interface, n2v6.underlay.source], ['fd00:192:168:1::122', 'eth1', 'kernel']);
  assert.match(n2v6.underlay.explanation, /^InternalIP fd00:192:168:1::122 on eth1 \(eth1 carries the route to node1, node3\); fd00:10:0:2::15 on eth0 is shared by node1, node2, node3/);
  assert.equal(v6.nodeByUnderlay('fd00:192:168:1::121')?.name, 'node1');
  assert.equal(model({}).v6, undefined, 'an IPv4 cluster has no IPv6 view');
  assert.equal(podNetwork(v6, 6), 'fd00:10:244::/48');
});

test('healthy dual-stack and IPv6-only clusters: no finding (no IPv4 VTEP is missed on an IPv6-only node)', () => {
  assert.deepEqual(diagnoseState(model({ stack: 'dual' })), []);
  assert.deepEqual(diagnoseState(model({ stack: 'ipv6' })), []);
  // The IPv4 checks still run on a dual-stack cluster.
  assert.deepEqual(codes(diagnoseState(model({ stack: 'dual', natPublicIp: true }))), ['DUPLICATE_PUBLIC_IP@node1+node2+node3']);
});

test('the seed over IPv6: every node registered public-ipv6 fd00:10:0:2::15 -> DUPLICATE_PUBLIC_IP with --iface=eth1, keyed :v6; the IPv4 VTEPs are fine', () => {
  const m = model({ stack: 'dual', natPublicIp6: true });
  const fs = diagnoseState(m);
  assert.deepEqual(codes(fs), ['DUPLICATE_PUBLIC_IP@node1+node2+node3']);
  const f = fs[0]!;
  assert.equal(f.key, 'DUPLICATE_PUBLIC_IP:fd00:10:0:2::15:v6');
  assert.match(f.cause, /^every node registered public-ipv6 fd00:10:0:2::15, the address of eth0 \(the NAT interface: every node has it, and it carries the default route\)/);
  assert.match(f.fix, /restart flanneld with --iface=eth1 \(the interface holding this node's unique address: node1 fd00:192:168:1::121, node2 fd00:192:168:1::122, node3 fd00:192:168:1::123\)/);
  assert.deepEqual(fixProblems(m.v6!, f), []);
  // From the looping packets too, the same finding (one key), and where it looped.
  const s = spec6({ outer: undefined });
  const loop = [hop(s, 'node1', 'cni0', 'pod-bridge', 'ingress', 0n)];
  for (let i = 1; i < 12; i++) loop.push(hop(s, 'node1', 'flannel-v6.1', 'vtep', i % 2 ? 'egress' : 'ingress', BigInt(i) * 100n));
  loop.push(dropAt(s, 'node1', 'flannel-v6.1', 'vtep', 'IP_INHDR', 2_000n));
  const all = run(m, loop);
  assert.deepEqual(codes(all), ['DUPLICATE_PUBLIC_IP@node1+node2+node3', 'FDB_DST_LOCAL@node1']);
  assert.equal(all[0]!.packetCount, 1, 'packets confirm the state finding');
  assert.match(all[1]!.cause, /node1's FDB sends node2's VXLAN traffic to fd00:10:0:2::15, an address of node1 itself \(on eth0\)/);
  assert.equal(all[1]!.key, 'FDB_DST_LOCAL:node1:node2:v6');
});

test('IPv6 VTEP faults give the same codes as IPv4, with flannel-v6.1 and the IPv6 addresses in the fix', () => {
  let m = model({ stack: 'dual', entries6: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: 'fd00:192:168:1::200' } : undefined) });
  let fs = diagnoseState(m);
  assert.deepEqual(codes(fs), ['WRONG_UNDERLAY_DST@node1']);
  assert.equal(fs[0]!.fix, 'on node1: bridge fdb replace 0e:76:78:06:00:02 dev flannel-v6.1 dst fd00:192:168:1::122 self permanent; or restart flanneld on node1, which reprograms every entry');
  assert.deepEqual(fixProblems(m.v6!, fs[0]!), []);
  m = model({ stack: 'dual', entries6: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { neighMac: null } : undefined) });
  fs = diagnoseState(m);
  assert.deepEqual(codes(fs), ['NEIGH_MISSING@node1']);
  assert.match(fs[0]!.fix, /^on node1: ip neigh replace fd00:10:244:2:: lladdr 0e:76:78:06:00:02 dev flannel-v6\.1 nud permanent/);
  // Both families broken the same way: two findings, one per VTEP.
  m = model({ stack: 'dual', entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: null } : undefined), entries6: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: null } : undefined) });
  fs = diagnoseState(m);
  assert.deepEqual(fs.map((f) => f.key), ['FDB_MISSING:node1:node2', 'FDB_MISSING:node1:node2:v6']);
  // flannel-v6.1 down on node2.
  m = model({ stack: 'dual' }, (n, k) => (n === 'node2' ? { ...k, vxlan6: { ...k.vxlan6!, up: false } } : k));
  assert.deepEqual(codes(diagnoseState(m)), ['NO_DECAP@node2']);
  assert.match(diagnoseState(m)[0]!.fix, /^on node2: ip link set flannel-v6\.1 up/);
});

test('an IPv6 ping over an IPv6 underlay: six hops delivered, nothing to say; dropped by the receiver\'s firewall -> the rule, and an accept from every other node\'s IPv6 underlay address', () => {
  let m = model({ stack: 'dual' });
  const s = spec6();
  const six = crossNodeHops(s).map((e) => (e.device === 'flannel.1' ? { ...e, device: 'flannel-v6.1' } : e));
  assert.deepEqual(run(m, six), []);
  m = model({ stack: 'dual' }, (n, k) => (n === 'node2' ? {
    ...k,
    firewall: [{ family: 'inet', table: 'f', name: 'input', hook: 'input', type: 'filter', priority: 0, policy: 'accept', rules: [
      { handle: 3, text: 'ip6 saddr fd00:192:168:1::/64 udp dport 8472 drop', matches: [{ key: 'ip6 saddr', op: '==', values: ['fd00:192:168:1::/64'] }, { key: 'udp dport', op: '==', values: ['8472'] }], opaque: false, verdict: 'drop' }] }],
  } : k));
  const s2 = spec6();
  const hops = crossNodeHops(s2, 4).map((e) => (e.device === 'flannel.1' ? { ...e, device: 'flannel-v6.1' } : e));
  const fs = run(m, [...hops, dropAt(s2, 'node2', 'eth1', 'uplink', 'NETFILTER_DROP', 1_085_000n, true)]);
  assert.deepEqual(codes(fs), ['DROPPED@node2']);
  assert.match(fs[0]!.cause, /^a firewall rule on node2 drops inbound VXLAN \(UDP 8472\) before flannel-v6\.1 can decapsulate it: chain input of table inet f, rule handle 3: ip6 saddr fd00:192:168:1::\/64 udp dport 8472 drop\.$/);
  assert.match(fs[0]!.fix, /^on node2: accept UDP 8472 from the other nodes ahead of the rule that drops it: nft insert rule inet f input ip6 saddr \{ fd00:192:168:1::121, fd00:192:168:1::123 \} udp dport 8472 accept; or remove that rule: nft delete rule inet f input handle 3$/);
  assert.deepEqual(fixProblems(m.v6!, fs[0]!), []);
  assert.match(fs[0]!.key, /:v6$/);
});

test('IPv6 too big for flannel-v6.1 (1430): MTU_EXCEEDED on the sender, IPv6 being never fragmented on the way', () => {
  const m = model({ stack: 'dual' });
  const s = spec6({ ipLength: 1500 });
  const hops = crossNodeHops(s, 2).map((e) => (e.device === 'flannel.1' ? { ...e, device: 'flannel-v6.1' } : e));
  const fs = run(m, [...hops, dropAt(s, 'node1', 'flannel-v6.1', 'vtep', 'PKT_TOO_BIG', 1_015_000n)], false);
  assert.deepEqual(codes(fs), ['MTU_EXCEEDED@node1']);
  assert.match(fs[0]!.cause, /is 1500 bytes with DF set, larger than flannel-v6\.1's MTU 1430 on node1/);
});

test("an IPv6 neighbour that never answers: ndisc frees the queued datagram in neigh_invalidate with no reason (NOT_SPECIFIED): still the unreachable peer, both ends named", () => {
  const m = model({ stack: 'ipv6' });
  const s = spec6({ outer: undefined });
  const hops = crossNodeHops(s, 2).map((e) => (e.device === 'flannel.1' ? { ...e, device: 'flannel-v6.1' } : e));
  const drop = { ...dropAt(s, 'node1', 'eth1', 'uplink', 'NOT_SPECIFIED', 3_000_000_000n), dropLocation: 'neigh_invalidate+0x7e' };
  const fs = run(m, [...hops, drop]);
  assert.deepEqual(codes(fs), ['DROPPED@node1+node2']);
  assert.match(fs[0]!.cause, /^node2's underlay address fd00:192:168:1::122 does not answer neighbour solicitations on node1's eth1 \(route fd00:192:168:1::\/64 dev eth1\)/);
  assert.match(fs[0]!.fix, /ping -c 1 -I eth1 fd00:192:168:1::122/);
});
