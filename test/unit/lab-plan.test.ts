import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planLab, podName, validateOptions } from '../../src/lab/plan.js';
import { applyPlanFaults, describeFaults, nftFaults, peerEntries } from '../../src/lab/faults.js';
import { labClusterList } from '../../src/lab/cluster.js';
import { UsageError } from '../../src/errors.js';

test('pod names run a..z then aa', () => {
  assert.equal(podName(0), 'pod-a');
  assert.equal(podName(25), 'pod-z');
  assert.equal(podName(26), 'pod-aa');
  assert.equal(podName(27), 'pod-ab');
});

test('plan: seed-style addresses, pods round-robin across nodes', () => {
  const plan = planLab({ name: 'x', nodes: 3, podsPerNode: 2, faults: [] });
  assert.deepEqual(plan.nodes.map((n) => n.underlayIp), ['192.168.1.121', '192.168.1.122', '192.168.1.123']);
  assert.deepEqual(plan.nodes.map((n) => n.podCidr), ['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
  assert.ok(plan.nodes.every((n) => n.natIp === '10.0.2.15' && n.publicIp === n.underlayIp));
  assert.deepEqual(plan.pods.map((p) => `${p.name}@${p.node}=${p.ip}`), [
    'pod-a@node1=10.244.1.10', 'pod-b@node2=10.244.2.10', 'pod-c@node3=10.244.3.10',
    'pod-d@node1=10.244.1.11', 'pod-e@node2=10.244.2.11', 'pod-f@node3=10.244.3.11',
  ]);
  assert.equal(new Set(plan.nodes.map((n) => n.vtepMac)).size, 3);
});

test('validation names the problem', () => {
  assert.throws(() => validateOptions({ name: 'x', nodes: 0, podsPerNode: 1, faults: [] }), (e: unknown) => e instanceof UsageError && /--nodes 0/.test(e.message));
  assert.throws(() => validateOptions({ name: 'x', nodes: 2, podsPerNode: 0, faults: [] }), UsageError);
  assert.throws(() => validateOptions({ name: 'a-b', nodes: 2, podsPerNode: 1, faults: [] }), UsageError);
  assert.throws(() => validateOptions({ name: 'x', nodes: 2, podsPerNode: 1, faults: ['nope' as never] }), /unknown fault 'nope'/);
});

test('nat-public-ip: every node registers the NAT address, in the List too', () => {
  const plan = planLab({ name: 'x', nodes: 3, podsPerNode: 1, faults: ['nat-public-ip'] });
  applyPlanFaults(plan, ['nat-public-ip']);
  assert.ok(plan.nodes.every((n) => n.publicIp === '10.0.2.15'));
  const e = peerEntries(plan.nodes[0]!, plan.nodes[1]!, ['nat-public-ip']);
  assert.equal(e.fdbDst, '10.0.2.15');
  const list = labClusterList('x', plan.nodes, [], 'now');
  for (const item of list.items) assert.equal(item.metadata.annotations?.['flannel.alpha.coreos.com/public-ip'], '10.0.2.15');
  const [f] = describeFaults(plan, ['nat-public-ip']);
  assert.equal(f!.breaks.length, 6);
});

test('peer faults touch only node1 -> node2', () => {
  const plan = planLab({ name: 'x', nodes: 3, podsPerNode: 1, faults: [] });
  const faults = ['stale-vtep-mac', 'stale-fdb'] as const;
  applyPlanFaults(plan, faults);
  const [n1, n2, n3] = plan.nodes as [typeof plan.nodes[0], typeof plan.nodes[0], typeof plan.nodes[0]];
  const stale = peerEntries(n1, n2, faults);
  assert.notEqual(stale.neighMac, n2.vtepMac, 'node1 holds the old MAC');
  assert.equal(stale.fdbDst, '192.168.1.200');
  assert.deepEqual(peerEntries(n3, n2, faults), { neighMac: n2.vtepMac, fdbMac: n2.vtepMac, fdbDst: n2.underlayIp });
  assert.equal(peerEntries(n1, n2, ['missing-fdb']).fdbDst, undefined);
});

test('the faults of issue 14 break every pair with node2, and lab status says so', () => {
  const plan = planLab({ name: 'x', nodes: 3, podsPerNode: 1, faults: [] });
  for (const fault of ['forward-rule', 'vxlan-closed', 'underlay-unreachable'] as const) {
    const [f] = describeFaults(plan, [fault]);
    assert.equal(f!.node, 'node2');
    assert.deepEqual(f!.breaks.map(([a, b]) => `${a}>${b}`).sort(), ['pod-a>pod-b', 'pod-b>pod-a', 'pod-b>pod-c', 'pod-c>pod-b'], fault);
  }
  // forward-rule is one rule in a FORWARD chain that accepts by default, not a policy.
  const [rule] = nftFaults(plan, ['forward-rule']);
  assert.equal(rule!.node, 'node2');
  assert.match(rule!.ruleset, /hook forward priority filter; policy accept;\n\s+ip daddr 10\.244\.2\.0\/24 counter drop/);
});

test('the IPv6 plan: ULA addresses as the IPv4 ones, pods at flannel-v6.1\'s MTU; the List as flanneld with EnableIPv6 annotates it', () => {
  const dual = planLab({ name: 'x', nodes: 2, podsPerNode: 1, faults: [], stack: 'dual' });
  assert.deepEqual(dual.nodes[1]!.v6, {
    underlayIp: 'fd00:192:168:1::122', natIp: 'fd00:10:0:2::15', podCidr: 'fd00:10:244:2::/64', vtepIp: 'fd00:10:244:2::',
    vtepMac: '0e:76:78:06:00:02', publicIp: 'fd00:192:168:1::122', vxlanDevice: 'flannel-v6.1',
  });
  assert.deepEqual(dual.pods.map((p) => [p.ip, p.ip6, p.podMtu]), [['10.244.1.10', 'fd00:10:244:1::10', 1430], ['10.244.2.10', 'fd00:10:244:2::10', 1430]]);
  const list = labClusterList('x', dual.nodes, dual.pods.map((p) => ({ ...p, mac: '' })), 'now', 'dual');
  const node = list.items[1]!;
  assert.deepEqual((node as { spec: { podCIDRs: string[] } }).spec.podCIDRs, ['10.244.2.0/24', 'fd00:10:244:2::/64']);
  assert.equal(node.metadata.annotations?.['flannel.alpha.coreos.com/public-ipv6'], 'fd00:192:168:1::122');
  const v6 = planLab({ name: 'x', nodes: 2, podsPerNode: 1, faults: ['nat-public-ip'], stack: 'ipv6' });
  applyPlanFaults(v6, ['nat-public-ip']);
  assert.deepEqual(v6.nodes.map((n) => n.v6!.publicIp), ['fd00:10:0:2::15', 'fd00:10:0:2::15']);
  assert.deepEqual(v6.pods.map((p) => [p.ip, p.ip6]), [['fd00:10:244:1::10', undefined], ['fd00:10:244:2::10', undefined]]);
  assert.match(describeFaults(v6, ['nat-public-ip'])[0]!.detail, /every node registered public-ipv6 fd00:10:0:2::15/);
  assert.equal(peerEntries(v6.nodes[0]!, v6.nodes[1]!, ['stale-fdb'], 6).fdbDst, 'fd00:192:168:1::200');
  assert.throws(() => planLab({ name: 'x', nodes: 2, podsPerNode: 1, faults: [], stack: 'ipx' as never }), /stack 'ipx' is not one of ipv4, dual, ipv6/);
});
