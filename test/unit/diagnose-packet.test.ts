import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Correlator, resolverFromModel } from '../../src/correlate/correlator.js';
import type { PacketPath } from '../../src/correlate/path.js';
import type { HopEvent } from '../../src/datapath/hop.js';
import type { ClusterModel } from '../../src/cluster/model.js';
import { Diagnoser, diagnosePath } from '../../src/diagnose/diagnoser.js';
import { verifyOuterUdpChecksum } from '../../src/diagnose/checksum.js';
import type { Finding } from '../../src/diagnose/finding.js';
import { fixtureModel, mac } from './fixtures/flannel.js';
import { crossNodeHops, dropAt, hop, uniqueFp, type PacketSpec } from './fixtures/hops.js';

const base: PacketSpec = {
  fingerprint: '00000000000000a1', src: '10.244.1.10', dst: '10.244.2.10', srcNode: 'node1', dstNode: 'node2',
  outer: { src: '192.168.1.121', dst: '192.168.1.122' },
};

/** Correlate events with the model, flush, and diagnose every path. */
function run(model: ClusterModel, events: HopEvent[]): { paths: PacketPath[]; findings: Finding[] } {
  const c = new Correlator({ resolver: resolverFromModel(model), clockOf: () => 'lab' });
  const paths = [...events.flatMap((e) => c.add(e)), ...c.flush()];
  const d = new Diagnoser(model);
  for (const p of paths) d.observePath(p);
  return { paths, findings: d.findings() };
}
const codes = (fs: Finding[]): string[] => fs.map((f) => `${f.code}@${f.nodes.join('+')}`);

test('healthy: a delivered packet gives no finding', () => {
  const { model } = fixtureModel();
  const { paths, findings } = run(model, crossNodeHops(base));
  assert.equal(paths[0]!.outcome, 'delivered');
  assert.deepEqual(findings, []);
});

test('WRONG_UNDERLAY_DST: outer dst 192.168.1.200, expected 192.168.1.122 because 10.244.2.0/24 belongs to node2; blames node1', () => {
  const { model } = fixtureModel({ entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: '192.168.1.200' } : undefined) });
  const { paths, findings } = run(model, crossNodeHops({ ...base, outer: { src: '192.168.1.121', dst: '192.168.1.200' } }, 3));
  assert.equal(paths[0]!.outcome, 'lost-in-underlay');
  assert.deepEqual(codes(findings), ['WRONG_UNDERLAY_DST@node1']);
  const f = findings[0]!;
  assert.match(f.evidence.observed, /default\/pod-a \(10\.244\.1\.10\) -> default\/pod-b \(10\.244\.2\.10\) ICMP echo request id 77 seq 1: outer dst 192\.168\.1\.200 on node1's eth1/);
  assert.match(f.evidence.expected!, /^192\.168\.1\.122, because 10\.244\.2\.0\/24 belongs to node2 whose underlay address is 192\.168\.1\.122/);
  assert.deepEqual(f.evidence.packets, ['00000000000000a1']);
  assert.equal(f.packetCount, 1);
});

test('the seed from packets: looped back to the NAT address -> DUPLICATE_PUBLIC_IP, same key as the state finding', () => {
  const { model } = fixtureModel({ nodes: 4, natPublicIp: true });
  const s: PacketSpec = { ...base, outer: undefined };
  const events = [hop(s, 'node1', 'cni0', 'pod-bridge', 'ingress', 0n), hop(s, 'node1', 'flannel.1', 'vtep', 'egress', 10n), hop(s, 'node1', 'flannel.1', 'vtep', 'ingress', 20n), hop(s, 'node1', 'flannel.1', 'vtep', 'egress', 30n)];
  const d = new Diagnoser(model);
  const state = d.checkState();
  assert.deepEqual(codes(state), ['DUPLICATE_PUBLIC_IP@node1+node2+node3+node4']);
  const { paths } = run(model, events);
  for (const p of paths) d.observePath(p);
  const all = d.findings();
  // The cause once, for every node; and where the packet looped (node1's FDB points at node1's own eth0 address).
  assert.deepEqual(codes(all), ['DUPLICATE_PUBLIC_IP@node1+node2+node3+node4', 'FDB_DST_LOCAL@node1']);
  assert.equal(all[0]!.packetCount, 1);
  assert.match(all[1]!.cause, /node1's FDB sends node2's VXLAN traffic to 10\.0\.2\.15, an address of node1 itself \(on eth0\)/);
  assert.match(all[1]!.fix, /restart flanneld on node1 with --iface=eth1/);
  assert.match(all[0]!.evidence.observed, /never left by an uplink; node1's FDB sends 0e:76:78:00:00:02 to 10\.0\.2\.15 \(10\.0\.2\.15 is an address of node1, node2, node3 and node4\)/);
  assert.match(all[0]!.fix, /--iface=eth1/);
});

test('FDB_DST_LOCAL: the outer dst is an address of the sender itself', () => {
  const { model } = fixtureModel({ entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: '192.168.1.121' } : undefined) });
  const { findings } = run(model, crossNodeHops({ ...base, outer: { src: '192.168.1.121', dst: '192.168.1.121' } }, 3));
  assert.deepEqual(codes(findings), ['FDB_DST_LOCAL@node1']);
});

test('WRONG_UNDERLAY_SRC: outer src and uplink are not the sender underlay', () => {
  const { model } = fixtureModel({ tweak: (n) => { if (n.name === 'node1') { n.publicIp = '10.0.2.15'; n.lowerDevice = 'eth0'; } } });
  const { findings } = run(model, crossNodeHops({ ...base, uplink: 'eth0', outer: { src: '10.0.2.15', dst: '192.168.1.122' } }, 3));
  assert.deepEqual(codes(findings), ['WRONG_UNDERLAY_SRC@node1']);
  assert.match(findings[0]!.evidence.observed, /outer src 10\.0\.2\.15 left by eth0/);
});

test('VTEP_MAC_MISMATCH: inner dst MAC is node2 old VTEP MAC; node2 drops it as OTHERHOST; node1 is blamed', () => {
  const { model } = fixtureModel({
    tweak: (n) => { if (n.name === 'node2') n.vtepMac = mac(2, 1); },
    entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { neighMac: mac(2, 0), fdbMac: mac(2, 0) } : undefined),
  });
  const s = { ...base, innerDstMac: mac(2, 0) };
  const { findings } = run(model, [...crossNodeHops(s, 5), dropAt(s, 'node2', 'flannel.1', 'vtep', 'OTHERHOST', 1_095_000n)]);
  assert.deepEqual(codes(findings), ['VTEP_MAC_MISMATCH@node1']);
});

test('VNI_MISMATCH and PORT_MISMATCH from packets blame node2, the odd one out', () => {
  let m = fixtureModel({ tweak: (n) => { if (n.name === 'node2') n.vni = 2; } }).model;
  let r = run(m, [...crossNodeHops(base, 4), dropAt(base, 'node2', 'eth1', 'uplink', 'VXLAN_VNI_NOT_FOUND', 1_085_000n, true)]);
  assert.deepEqual(codes(r.findings), ['VNI_MISMATCH@node2']);
  // Seen twice in one packet (outer VNI and the drop reason): one cause, one packet.
  assert.equal(r.findings[0]!.packetCount, 1);
  m = fixtureModel({ tweak: (n) => { if (n.name === 'node2') n.port = 4789; } }).model;
  r = run(m, [...crossNodeHops(base, 4), dropAt(base, 'node2', 'eth1', 'uplink', 'NO_SOCKET', 1_085_000n, true)]);
  assert.deepEqual(codes(r.findings), ['PORT_MISMATCH@node2']);
});

test('FDB_MISSING (VXLAN_NO_REMOTE) and NEIGH_MISSING (NEIGH_FAILED) blame the sender', () => {
  const m = fixtureModel().model;
  let r = run(m, [...crossNodeHops(base, 2), dropAt(base, 'node1', 'flannel.1', 'vtep', 'VXLAN_NO_REMOTE', 1_015_000n)]);
  assert.deepEqual(codes(r.findings), ['FDB_MISSING@node1']);
  // As this kernel (6.18) names it, from vxlan_xmit.
  r = run(m, [...crossNodeHops(base, 2), { ...dropAt(base, 'node1', 'flannel.1', 'vtep', 'NO_TX_TARGET', 1_015_000n), dropLocation: 'vxlan_xmit+0xdab' }]);
  assert.deepEqual(codes(r.findings), ['FDB_MISSING@node1']);
  r = run(m, [...crossNodeHops(base, 2), dropAt(base, 'node1', 'flannel.1', 'vtep', 'NEIGH_FAILED', 1_015_000n)]);
  assert.deepEqual(codes(r.findings), ['NEIGH_MISSING@node1']);
});

test('stale FDB whose outer dst never answers ARP: the uplink NEIGH_FAILED drop is explained by WRONG_UNDERLAY_DST, not blamed as NEIGH_MISSING', () => {
  const { model } = fixtureModel({ entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: '192.168.1.200' } : undefined) });
  const s: PacketSpec = { ...base, outer: undefined };
  const r = run(model, [...crossNodeHops(s, 2), dropAt(s, 'node1', 'eth1', 'uplink', 'NEIGH_FAILED', 4_000_000_000n)]);
  assert.deepEqual(codes(r.findings), ['WRONG_UNDERLAY_DST@node1']);
  assert.match(r.findings[0]!.evidence.observed, /never left by an uplink; node1's FDB sends 0e:76:78:00:00:02 to 192\.168\.1\.200/);
});

test('MTU_EXCEEDED: 1500-byte inner packet with DF over flannel.1 1450', () => {
  const m = fixtureModel({ tweak: (n) => { if (n.name === 'node1') n.bridgeMtu = 1500; } }).model;
  const s = { ...base, ipLength: 1500 };
  const r = run(m, [...crossNodeHops(s, 1), dropAt(s, 'node1', 'cni0', 'pod-bridge', 'PKT_TOO_BIG', 1_005_000n)]);
  assert.deepEqual(codes(r.findings), ['MTU_EXCEEDED@node1']);
  assert.equal(r.findings[0]!.severity, 'error');
});

test('GSO: a 7042-byte TCP skb of 1398-byte segments is not too big (delivered, or vanished on the way), but its segments would be if larger than the MTU', () => {
  const m = fixtureModel().model;
  // An IPv4/TCP frame header: 20-byte IP header, 32-byte TCP header (data offset 8).
  const frame = new Uint8Array(14 + 20 + 32);
  frame[12] = 0x08;
  frame[14] = 0x45;
  frame[14 + 9] = 6;
  frame[14 + 20 + 12] = 8 << 4;
  const gsoHops = (s: PacketSpec, upTo: number, size: number) => crossNodeHops(s, upTo).map((e) => ({ ...e, gso: { size, segments: 5 }, frame }));
  const big = { ...base, ipLength: 7042 };
  assert.deepEqual(codes(run(m, gsoHops(big, 6, 1398)).findings), [], 'delivered');
  assert.deepEqual(codes(run(m, gsoHops({ ...big, fingerprint: uniqueFp() }, 3, 1398)).findings), [], 'left node1 as GSO and was not seen again: segmented after the last hook, not lost');
  // Segments of 1448 bytes of payload make 1500-byte packets: too big for flannel.1's 1450.
  const r = run(m, gsoHops({ ...big, fingerprint: uniqueFp() }, 2, 1448));
  assert.deepEqual(codes(r.findings), ['MTU_EXCEEDED@node1']);
  assert.match(r.findings[0]!.cause, /is 1500 bytes with DF set, larger than flannel\.1's MTU 1450/);
});

test('NO_DECAP needs the packet seen leaving the sender: pieces that only show up at the receiver prove nothing', () => {
  const m = fixtureModel().model;
  const onlyArrived = crossNodeHops({ ...base, fingerprint: uniqueFp() }).slice(3, 4);
  assert.deepEqual(codes(run(m, onlyArrived).findings), []);
  const left = crossNodeHops({ ...base, fingerprint: uniqueFp() }, 4);
  assert.deepEqual(codes(run(m, left).findings), ['NO_DECAP@node2']);
  // ... and not when the tracer lost records meanwhile: the missing hops may be its own loss.
  const [path] = run(m, left).paths;
  assert.deepEqual(diagnosePath(path!, m, { recordsLost: true }), []);
});

test('BAD_OUTER_CHECKSUM: the receiver drops with UDP_CSUM; the sender is blamed, with the ethtool fix', () => {
  const m = fixtureModel().model;
  const r = run(m, [...crossNodeHops(base, 4), dropAt(base, 'node2', 'eth1', 'uplink', 'UDP_CSUM', 1_085_000n, true)]);
  assert.deepEqual(codes(r.findings), ['BAD_OUTER_CHECKSUM@node1']);
  assert.match(r.findings[0]!.fix, /^on node1: ethtool -K flannel\.1 tx-checksum-ip-generic off/);
});

test('outer UDP checksum verification on a captured frame', () => {
  // Ethernet + IPv4 (192.168.1.121 -> 192.168.1.122) + UDP 40000 -> 8472 with 8 bytes payload.
  const f = new Uint8Array(14 + 20 + 16);
  f[12] = 0x08; f[13] = 0x00;
  f.set([0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0, 192, 168, 1, 121, 192, 168, 1, 122], 14);
  f.set([0x9c, 0x40, 0x21, 0x18, 0, 16, 0, 0, 8, 0, 0, 0, 0, 0, 1, 0], 34);
  let sum = 0;
  const words = [0xc0a8, 0x0179, 0xc0a8, 0x017a, 17, 16, 0x9c40, 0x2118, 16, 0, 0x0800, 0, 0, 0x0100];
  for (const w of words) sum += w;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const good = ~sum & 0xffff;
  f[40] = good >> 8; f[41] = good & 0xff;
  assert.equal(verifyOuterUdpChecksum(f), true);
  f[40] = 0xba; f[41] = 0xd0;
  assert.equal(verifyOuterUdpChecksum(f), false);
  assert.equal(verifyOuterUdpChecksum(f.subarray(0, 40)), undefined);
  // Offload pending (CHECKSUM_PARTIAL): the field holds the pseudo-header sum; not a wrong checksum.
  let pseudo = 0xc0a8 + 0x0179 + 0xc0a8 + 0x017a + 17 + 16;
  while (pseudo > 0xffff) pseudo = (pseudo & 0xffff) + (pseudo >>> 16);
  const partial = Uint8Array.from(f);
  partial[40] = pseudo >> 8; partial[41] = pseudo & 0xff;
  assert.equal(verifyOuterUdpChecksum(partial), undefined);
  // A packet whose frame carries the bad checksum -> BAD_OUTER_CHECKSUM even before any drop.
  const m = fixtureModel().model;
  const hops = crossNodeHops(base, 3);
  hops[2] = { ...hops[2]!, frame: f };
  const r = run(m, hops);
  assert.deepEqual(codes(r.findings), ['BAD_OUTER_CHECKSUM@node1']);
});

test('DROPPED NETFILTER_DROP: on the outer packet at node2 eth1 -> UDP blocked; after decap -> FORWARD policy; both name node2', () => {
  const m = fixtureModel().model;
  let r = run(m, [...crossNodeHops(base, 4), dropAt(base, 'node2', 'eth1', 'uplink', 'NETFILTER_DROP', 1_085_000n, true)]);
  assert.deepEqual(codes(r.findings), ['DROPPED@node2']);
  assert.match(r.findings[0]!.cause, /firewall rule on node2 drops inbound VXLAN \(UDP 8472\)/);
  assert.match(r.findings[0]!.fix, /udp dport 8472 accept/);
  r = run(m, [...crossNodeHops(base, 5), dropAt(base, 'node2', 'flannel.1', 'vtep', 'NETFILTER_DROP', 1_095_000n)]);
  assert.deepEqual(codes(r.findings), ['DROPPED@node2']);
  assert.match(r.findings[0]!.cause, /FORWARD chain drops forwarded pod traffic/);
  assert.match(r.findings[0]!.fix, /iptables -A FORWARD -s 10\.244\.0\.0\/16 -j ACCEPT/);
  assert.match(r.findings[0]!.evidence.observed, /dropped on node2's flannel\.1 \(kfree_skb_reason\), reason NETFILTER_DROP/);
});

test('DROPPED with rp_filter and with an unknown reason', () => {
  const m = fixtureModel().model;
  let r = run(m, [...crossNodeHops(base, 5), dropAt(base, 'node2', 'flannel.1', 'vtep', 'IP_RPFILTER', 1_095_000n)]);
  assert.match(r.findings[0]!.fix, /rp_filter=2/);
  r = run(m, [...crossNodeHops(base, 5), dropAt(base, 'node2', 'flannel.1', 'vtep', 'SOMETHING_NEW', 1_095_000n)]);
  assert.deepEqual(codes(r.findings), ['DROPPED@node2']);
  assert.match(r.findings[0]!.cause, /reason SOMETHING_NEW/);
});

test('NO_DECAP: correct outer dst, reached node2 eth1 and went no further / never reached node2', () => {
  const m = fixtureModel().model;
  let r = run(m, crossNodeHops(base, 4));
  assert.deepEqual(codes(r.findings), ['NO_DECAP@node2']);
  r = run(m, crossNodeHops(base, 3));
  assert.deepEqual(codes(r.findings), ['NO_DECAP@node1+node2']);
});

test('dedup: many packets of one cause -> one finding with their count and a bounded sample', () => {
  const { model } = fixtureModel({ entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: '192.168.1.200' } : undefined) });
  const d = new Diagnoser(model, { maxSamplePackets: 3 });
  assert.deepEqual(codes(d.checkState()), ['WRONG_UNDERLAY_DST@node1']);
  const c = new Correlator({ resolver: resolverFromModel(model) });
  for (let i = 0; i < 7; i++) for (const e of crossNodeHops({ ...base, fingerprint: `fp${i}`, icmpSeq: i, outer: { src: '192.168.1.121', dst: '192.168.1.200' } }, 3)) c.add(e);
  for (const p of c.flush()) d.observePath(p);
  const fs = d.findings();
  assert.equal(fs.length, 1);
  assert.equal(fs[0]!.packetCount, 7);
  assert.deepEqual(fs[0]!.evidence.packets, ['fp0', 'fp1', 'fp2']);
});

test('same-node drop still names where and why', () => {
  const m = fixtureModel().model;
  const s: PacketSpec = { fingerprint: 'sn', src: '10.244.1.10', dst: '10.244.1.11', srcNode: 'node1', dstNode: 'node1' };
  const r = run(m, [hop(s, 'node1', 'cni0', 'pod-bridge', 'ingress', 0n), dropAt(s, 'node1', 'cni0', 'pod-bridge', 'NETFILTER_DROP', 10n)]);
  assert.deepEqual(codes(r.findings), ['DROPPED@node1']);
});

test('diagnosePath on a path whose addresses are outside the cluster gives no crash and no blame', () => {
  const m = fixtureModel().model;
  const s: PacketSpec = { ...base, src: '8.8.8.8', dst: '1.1.1.1' };
  const r = run(m, crossNodeHops(s, 6));
  assert.deepEqual(r.findings, []);
  assert.deepEqual(diagnosePath(r.paths[0]!, m), []);
});

test('Diagnoser.checkState after the model changed drops state findings that no longer hold, keeps what packets showed', () => {
  const broken = fixtureModel({ entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: '192.168.1.200' } : undefined) }).model;
  const healthy = fixtureModel().model;
  const d = new Diagnoser(broken);
  assert.deepEqual(codes(d.checkState()), ['WRONG_UNDERLAY_DST@node1']);
  d.setModel(healthy);
  assert.deepEqual(d.checkState(), []);
  assert.deepEqual(d.findings(), []);
  // Seen in packets: it stays (those packets were lost), with their count.
  const d2 = new Diagnoser(broken);
  d2.checkState();
  const c = new Correlator({ resolver: resolverFromModel(broken) });
  for (const e of crossNodeHops({ ...base, outer: { src: '192.168.1.121', dst: '192.168.1.200' } }, 3)) c.add(e);
  for (const p of c.flush()) d2.observePath(p);
  d2.setModel(healthy);
  d2.checkState();
  assert.deepEqual(d2.findings().map((f) => [f.code, f.packetCount]), [['WRONG_UNDERLAY_DST', 1]]);
});

test("a node's own traffic (not from or to a pod CIDR) is not judged: an IGMP report dropped on eth1 is no finding", () => {
  const m = fixtureModel().model;
  const igmp: PacketSpec = { fingerprint: '00000000000000f1', src: '0.0.0.0', dst: '224.0.0.22', srcNode: 'node2', dstNode: 'node2' };
  const r = run(m, [hop(igmp, 'node2', 'eth1', 'uplink', 'ingress', 1_000n), dropAt(igmp, 'node2', 'eth1', 'uplink', 'NOT_SPECIFIED', 2_000n)]);
  assert.equal(r.paths[0]!.outcome, 'dropped');
  assert.deepEqual(r.findings, []);
  // From cni0's gateway address, which lies in the pod CIDR: still not pod-to-pod traffic.
  const fromGateway: PacketSpec = { ...igmp, fingerprint: '00000000000000f2', src: '10.244.2.1' };
  assert.deepEqual(run(m, [hop(fromGateway, 'node2', 'cni0', 'pod-bridge', 'egress', 1_000n), dropAt(fromGateway, 'node2', 'cni0', 'pod-bridge', 'NOT_SPECIFIED', 2_000n)]).findings, []);
  // The same drop of pod traffic is a finding.
  const r2 = run(m, [...crossNodeHops(base, 4), dropAt(base, 'node2', 'eth1', 'uplink', 'NOT_SPECIFIED', 1_085_000n, true)]);
  assert.deepEqual(codes(r2.findings), ['DROPPED@node2']);
});
