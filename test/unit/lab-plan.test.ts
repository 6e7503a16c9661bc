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
