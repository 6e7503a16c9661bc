import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diagnoseState } from '../../src/diagnose/state.js';
import { FINDING_CODES, type Finding } from '../../src/diagnose/finding.js';
import { fixtureModel, mac } from './fixtures/flannel.js';
import { ClusterModel } from '../../src/cluster/model.js';
import { clusterObjectsFromJson } from '../../src/cluster/list.js';

const codes = (fs: Finding[]): string[] => fs.map((f) => `${f.code}@${f.nodes.join('+')}`);

test('healthy 3-node cluster: no finding', () => {
  const { model } = fixtureModel();
  assert.deepEqual(diagnoseState(model), []);
});

test('healthy cluster without kernel state (file only): no finding', () => {
  const { model } = fixtureModel({ withKernel: false });
  assert.deepEqual(diagnoseState(model), []);
});

test("the seed: four nodes, every public-ip 10.0.2.15 -> one DUPLICATE_PUBLIC_IP naming --iface=eth1 and each node's unique address", () => {
  const { model } = fixtureModel({ nodes: 4, natPublicIp: true, seedCidrs: true });
  const node2 = model.node('node2')!;
  assert.equal(node2.underlay.address, '192.168.1.122');
  assert.equal(node2.underlay.interface, 'eth1');
  assert.match(node2.underlay.explanation, /^InternalIP 192\.168\.1\.122 on eth1 .*10\.0\.2\.15 on eth0 is shared by node1, node2, node3, node4/);
  const fs = diagnoseState(model);
  assert.deepEqual(codes(fs), ['DUPLICATE_PUBLIC_IP@node1+node2+node3+node4']);
  const f = fs[0]!;
  assert.equal(f.severity, 'error');
  assert.equal(f.packetCount, 0);
  assert.match(f.cause, /every node registered public-ip 10\.0\.2\.15, the address of eth0 \(the NAT interface/);
  assert.match(f.cause, /carries the default route/);
  assert.match(f.fix, /restart flanneld with --iface=eth1 \(the interface holding this node's unique address: node1 192\.168\.1\.121, node2 192\.168\.1\.122, node3 192\.168\.1\.123, node4 192\.168\.1\.124\), or set --public-ip/);
  assert.match(f.evidence.observed, /12 FDB entries point at 10\.0\.2\.15/);
  assert.match(f.evidence.expected!, /node1 192\.168\.1\.121, node2 192\.168\.1\.122, node3 192\.168\.1\.123, node4 192\.168\.1\.124 \(node1: InternalIP 192\.168\.1\.121 on eth1 .*10\.0\.2\.15 on eth0 is shared by node1, node2, node3, node4\)/);
});

test('the seed without kernel state: still DUPLICATE_PUBLIC_IP, from annotations, saying the interface was not checked', () => {
  const { model } = fixtureModel({ nodes: 4, natPublicIp: true, withKernel: false });
  assert.equal(model.node('node3')!.underlay.source, 'internal-ip');
  assert.match(model.node('node3')!.underlay.explanation, /no kernel state for node3/);
  const fs = diagnoseState(model);
  assert.deepEqual(codes(fs), ['DUPLICATE_PUBLIC_IP@node1+node2+node3+node4']);
  assert.match(fs[0]!.fix, /--public-ip set to its unique address \(node1 192\.168\.1\.121/);
});

test('stale FDB on node1 for node2 -> WRONG_UNDERLAY_DST blames node1 with the replace command', () => {
  const { model } = fixtureModel({ entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: '192.168.1.200' } : undefined) });
  const fs = diagnoseState(model);
  assert.deepEqual(codes(fs), ['WRONG_UNDERLAY_DST@node1']);
  assert.match(fs[0]!.evidence.observed, /node1's FDB sends node2's VTEP MAC 0e:76:78:00:00:02 to 192\.168\.1\.200 \(192\.168\.1\.200 is not an address of any node\)/);
  assert.match(fs[0]!.evidence.expected!, /^192\.168\.1\.122, because 10\.244\.2\.0\/24 belongs to node2 whose underlay address is 192\.168\.1\.122/);
  assert.equal(fs[0]!.fix, 'on node1: bridge fdb replace 0e:76:78:00:00:02 dev flannel.1 dst 192.168.1.122 self permanent; or restart flanneld on node1, which reprograms every entry');
});

test('FDB entry pointing at an address of the node itself -> FDB_DST_LOCAL on that node', () => {
  const { model } = fixtureModel({ entries: (n, p) => (n.name === 'node3' && p.name === 'node1' ? { fdbDst: '192.168.1.123' } : undefined) });
  const fs = diagnoseState(model);
  assert.deepEqual(codes(fs), ['FDB_DST_LOCAL@node3']);
  assert.match(fs[0]!.cause, /an address of node3 itself \(on eth1\)/);
});

test('missing FDB entry -> FDB_MISSING on node1', () => {
  const { model } = fixtureModel({ entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { fdbDst: null } : undefined) });
  const fs = diagnoseState(model);
  assert.deepEqual(codes(fs), ['FDB_MISSING@node1']);
  assert.match(fs[0]!.fix, /bridge fdb replace 0e:76:78:00:00:02 dev flannel\.1 dst 192\.168\.1\.122 self permanent/);
});

test('missing neighbour -> NEIGH_MISSING on node2', () => {
  const { model } = fixtureModel({ entries: (n, p) => (n.name === 'node2' && p.name === 'node3' ? { neighMac: null } : undefined) });
  const fs = diagnoseState(model);
  assert.deepEqual(codes(fs), ['NEIGH_MISSING@node2']);
  assert.match(fs[0]!.fix, /ip neigh replace 10\.244\.3\.0 lladdr 0e:76:78:00:00:03 dev flannel\.1 nud permanent/);
});

test("stale VTEP MAC: node2's flannel.1 recreated, node1 holds the old MAC -> VTEP_MAC_MISMATCH on node1 only", () => {
  const { model } = fixtureModel({
    tweak: (n) => { if (n.name === 'node2') n.vtepMac = mac(2, 1); },
    entries: (n, p) => (n.name === 'node1' && p.name === 'node2' ? { neighMac: mac(2, 0), fdbMac: mac(2, 0) } : undefined),
  });
  const fs = diagnoseState(model);
  assert.deepEqual(codes(fs), ['VTEP_MAC_MISMATCH@node1']);
  assert.match(fs[0]!.fix, /ip neigh replace 10\.244\.2\.0 lladdr 0e:76:78:00:01:02 dev flannel\.1 nud permanent && bridge fdb replace 0e:76:78:00:01:02/);
});

test('VNI and port mismatch blame the odd node, not its peers', () => {
  let fs = diagnoseState(fixtureModel({ tweak: (n) => { if (n.name === 'node2') n.vni = 2; } }).model);
  assert.deepEqual(codes(fs), ['VNI_MISMATCH@node2']);
  assert.match(fs[0]!.fix, /Backend "VNI": 1/);
  fs = diagnoseState(fixtureModel({ tweak: (n) => { if (n.name === 'node2') n.port = 4789; } }).model);
  assert.deepEqual(codes(fs), ['PORT_MISMATCH@node2']);
  assert.match(fs[0]!.cause, /UDP port 4789 while node1 and node3 use 8472/);
  // Two nodes, a tie: flannel's default wins.
  fs = diagnoseState(fixtureModel({ nodes: 2, tweak: (n) => { if (n.name === 'node1') n.port = 4789; } }).model);
  assert.deepEqual(codes(fs), ['PORT_MISMATCH@node1']);
});

test('pods at MTU 1500 over flannel.1 1450 -> MTU_EXCEEDED warning on that node', () => {
  const fs = diagnoseState(fixtureModel({ tweak: (n) => { if (n.name === 'node1') n.bridgeMtu = 1500; } }).model);
  assert.deepEqual(codes(fs), ['MTU_EXCEEDED@node1']);
  assert.equal(fs[0]!.severity, 'warning');
  assert.match(fs[0]!.fix, /set the pod MTU on node1 to 1450/);
});

test('flannel.1 too big for its lower device -> MTU_EXCEEDED error', () => {
  const fs = diagnoseState(fixtureModel({ tweak: (n) => { if (n.name === 'node3') { n.vxlanMtu = 1500; n.bridgeMtu = 1500; } } }).model);
  assert.deepEqual(codes(fs), ['MTU_EXCEEDED@node3']);
  assert.equal(fs[0]!.severity, 'error');
});

test('one node registered an address that is not its underlay -> WRONG_UNDERLAY_SRC on that node, not on its peers', () => {
  const { model } = fixtureModel({ tweak: (n) => { if (n.name === 'node3') { n.publicIp = '10.0.2.15'; n.lowerDevice = 'eth0'; } } });
  const fs = diagnoseState(model);
  assert.deepEqual(codes(fs), ['WRONG_UNDERLAY_SRC@node3']);
  assert.match(fs[0]!.fix, /restart flanneld on node3 with --iface=eth1/);
});

test('every finding has a known code, a node, a cause and a fix', () => {
  const fs = diagnoseState(fixtureModel({ nodes: 4, natPublicIp: true }).model);
  for (const f of fs) {
    assert.ok((FINDING_CODES as readonly string[]).includes(f.code));
    assert.ok(f.nodes.length > 0 && f.cause.length > 0 && f.fix.length > 0 && f.key.startsWith(f.code));
  }
});

test('two of four nodes share a public-ip: DUPLICATE_PUBLIC_IP names only those two', () => {
  const { model } = fixtureModel({ nodes: 4, tweak: (n) => { if (n.index <= 2) { n.publicIp = '10.0.2.15'; n.lowerDevice = 'eth0'; } } });
  const fs = diagnoseState(model);
  assert.deepEqual(codes(fs), ['DUPLICATE_PUBLIC_IP@node1+node2']);
  assert.match(fs[0]!.cause, /^node1 and node2 registered public-ip 10\.0\.2\.15, the address of eth0 \(the NAT interface: each of them has it/);
  assert.match(fs[0]!.fix, /--iface=eth1 \(the interface holding this node's unique address: node1 192\.168\.1\.121, node2 192\.168\.1\.122\)/);
});

test('a node without a VXLAN device (flanneld not running) -> NO_DECAP on that node only', () => {
  const { nodes, list } = fixtureModel();
  const { model: full } = fixtureModel();
  const kernel = new Map(full.kernelStates);
  const k3 = structuredClone(kernel.get('node3')!);
  delete k3.vxlan;
  k3.links = k3.links.filter((l) => l.kind !== 'vxlan');
  k3.neighbours = [];
  k3.fdb = [];
  kernel.set('node3', k3);
  const fs = diagnoseState(ClusterModel.build(clusterObjectsFromJson(list, 't'), kernel));
  assert.equal(nodes.length, 3);
  assert.deepEqual(codes(fs), ['NO_DECAP@node3']);
  assert.match(fs[0]!.fix, /start \(or restart\) flanneld on node3/);
});
