// Diagnosis from real packets (root, real kernel, BPF): trace pod-a -> pod-b on the lab with each
// fault, correlate the HopEvents into paths and diagnose them with the model read from the lab.
// Checks the packet rules on what the kernel really does (loops, drop reasons, outer headers).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { labDown, labUp, type FaultName, type LabState } from '../src/lab/index.js';
import { loadClusterFile } from '../src/cluster/list.js';
import { readKernelStates } from '../src/cluster/kernel-reader.js';
import { ClusterModel } from '../src/cluster/model.js';
import { Correlator, resolverFromModel } from '../src/correlate/correlator.js';
import type { PacketPath } from '../src/correlate/path.js';
import { Diagnoser } from '../src/diagnose/diagnoser.js';
import type { Finding } from '../src/diagnose/finding.js';
import { pingFromPod, traceLabEvents } from './helpers/diagnose-trace.js';
import { execSync } from '../src/util/exec.js';

const made: string[] = [];
after(async () => {
  for (const name of made) await labDown(name).catch(() => {});
});
let seq = 0;

async function traced(faults: FaultName[], pingArgs: string[], settleMs?: number): Promise<{ lab: LabState; paths: PacketPath[]; findings: Finding[]; stateCodes: string[] }> {
  const name = `dp${(process.pid % 10000).toString(36)}${(seq++).toString(36)}`;
  made.push(name);
  const lab = await labUp({ name, nodes: 3, podsPerNode: 1, faults });
  try {
    const objects = loadClusterFile(lab.clusterFile);
    const model = ClusterModel.build(objects, await readKernelStates(objects));
    const a = lab.pods.find((p) => p.name === 'pod-a')!;
    const b = lab.pods.find((p) => p.name === 'pod-b')!;
    const events = await traceLabEvents(lab, { rules: [{ between: [a.ip, b.ip] }] }, () => pingFromPod(lab, 'pod-a', b.ip, pingArgs), settleMs);
    // One process watched every lab node: one clock.
    const c = new Correlator({ resolver: resolverFromModel(model), clockOf: () => 'lab' });
    const paths = [...events.flatMap((e) => c.add(e)), ...c.flush()];
    const d = new Diagnoser(model);
    const stateCodes = d.checkState().map((f) => f.code);
    for (const p of paths) d.observePath(p);
    return { lab, paths, findings: d.findings(), stateCodes };
  } finally {
    await labDown(name);
  }
}

const codes = (fs: Finding[]) => fs.map((f) => `${f.code}@${f.nodes.join('+')}`);
const PING = ['-c', '2', '-i', '0.2', '-W', '1'];
const describePaths = (ps: PacketPath[]) => ps.map((p) => `${p.outcome} ${p.drop?.reason ?? ''} ${p.hops.map((h) => `${h.event.node}/${h.event.device}/${h.event.direction}/${h.event.kind}`).join(' ')}`).join('\n');

test('healthy: every path delivered through six hops, no finding', async () => {
  const r = await traced([], PING);
  assert.ok(r.paths.length >= 4, describePaths(r.paths));
  assert.ok(r.paths.every((p) => p.outcome === 'delivered'), describePaths(r.paths));
  assert.ok(r.paths.some((p) => p.hops.length === 6 && p.outer?.dst === '192.168.1.122'), describePaths(r.paths));
  assert.deepEqual(r.findings, []);
});

// settle: how long to wait after the ping for the last drop (a neighbour resolution gives up after 3 s).
const cases: { fault: FaultName; expect: string[]; args?: string[]; settle?: number }[] = [
  { fault: 'nat-public-ip', expect: ['DUPLICATE_PUBLIC_IP@node1+node2+node3', 'FDB_DST_LOCAL@node1'] },
  { fault: 'stale-fdb', expect: ['WRONG_UNDERLAY_DST@node1'] },
  { fault: 'stale-vtep-mac', expect: ['VTEP_MAC_MISMATCH@node1'] },
  { fault: 'missing-fdb', expect: ['FDB_MISSING@node1'] },
  { fault: 'vni-mismatch', expect: ['VNI_MISMATCH@node2'] },
  { fault: 'port-mismatch', expect: ['PORT_MISMATCH@node2'] },
  { fault: 'mtu', expect: ['MTU_EXCEEDED@node1'], args: ['-c', '2', '-i', '0.2', '-W', '1', '-M', 'do', '-s', '1472'] },
  { fault: 'udp-blocked', expect: ['DROPPED@node2'] },
  { fault: 'bad-checksum', expect: ['BAD_OUTER_CHECKSUM@node1'] },
  { fault: 'forward-drop', expect: ['DROPPED@node2'] },
  { fault: 'forward-rule', expect: ['DROPPED@node2'] },
  { fault: 'vxlan-closed', expect: ['NO_DECAP@node2'] },
  { fault: 'underlay-unreachable', expect: ['DROPPED@node1+node2'], settle: 3500 },
];

for (const c of cases) {
  test(`fault ${c.fault} from packets: ${c.expect.join(', ')}`, async () => {
    const r = await traced([c.fault], c.args ?? PING, c.settle);
    assert.ok(r.paths.length > 0, 'packets were seen');
    assert.ok(r.paths.every((p) => p.outcome !== 'delivered'), describePaths(r.paths));
    if (process.env.VXTRACE_TEST_VERBOSE) console.log(`${c.fault}:\n${describePaths(r.paths)}`);
    const errors = r.findings.filter((f) => f.severity === 'error');
    assert.deepEqual(codes(errors), c.expect, `${describePaths(r.paths)}\n${JSON.stringify(r.findings, null, 1)}`);
    for (const f of errors) assert.ok(f.packetCount >= 1 && f.evidence.packets?.length, `${f.code} is shown by packets`);
    if (c.fault === 'udp-blocked') assert.match(errors[0]!.cause, /drops inbound VXLAN \(UDP 8472\)/);
    if (c.fault === 'forward-drop') assert.match(errors[0]!.cause, /FORWARD chain drops/);
    // The kernel's drop, explained by the state where it happened.
    if (c.fault === 'udp-blocked') assert.match(errors[0]!.fix, /^on node2: accept UDP 8472 from the other nodes ahead of the rule that drops it: nft insert rule inet vxtrace_lab_fault_udp input ip saddr \{ 192\.168\.1\.121, 192\.168\.1\.123 \} udp dport 8472 accept; or remove that rule: nft delete rule inet vxtrace_lab_fault_udp input handle \d+$/);
    if (c.fault === 'forward-drop') assert.match(errors[0]!.cause, /chain forward of table ip vxtrace_lab_fault_fwd \(hook forward\) has policy drop/);
    if (c.fault === 'forward-rule') {
      assert.match(errors[0]!.cause, /^a firewall rule on node2 drops pod traffic 10\.244\.1\.10 -> 10\.244\.2\.10 in the FORWARD path after flannel\.1 decapsulated it: chain forward of table ip vxtrace_lab_fault_fwdrule, rule handle \d+: ip daddr 10\.244\.2\.0\/24 drop comment "vxtrace lab fault forward-rule"\.$/);
      assert.match(errors[0]!.fix, /^on node2: remove it \(nft delete rule ip vxtrace_lab_fault_fwdrule forward handle \d+\)/);
    }
    if (c.fault === 'vxlan-closed') {
      assert.ok(r.paths.some((p) => p.drop?.reason === 'NO_SOCKET' && p.drop.node === 'node2'), describePaths(r.paths));
      assert.match(errors[0]!.fix, /^on node2: ip link set flannel\.1 up/);
    }
    if (c.fault === 'underlay-unreachable') {
      assert.ok(r.paths.some((p) => p.drop?.reason === 'NEIGH_FAILED' && p.drop.node === 'node1' && p.drop.device === 'eth1'), describePaths(r.paths));
      assert.match(errors[0]!.cause, /^node2's underlay address 192\.168\.1\.122 does not answer ARP on node1's eth1 \(route 192\.168\.1\.0\/24 dev eth1\)/);
      assert.match(errors[0]!.fix, /arping -I eth1 192\.168\.1\.122/);
    }
  });
}

test('Docker\'s FORWARD policy drop in iptables-legacy (not in nftables): DROPPED@node2 names the legacy chain, and its fix applied verbatim heals the path', async () => {
  const name = `dp${(process.pid % 10000).toString(36)}${(seq++).toString(36)}`;
  made.push(name);
  const lab = await labUp({ name, nodes: 3, podsPerNode: 1, faults: [] });
  try {
    const node2 = lab.nodes.find((n) => n.name === 'node2')!;
    execSync(['ip', 'netns', 'exec', node2.netns, 'iptables-legacy', '-P', 'FORWARD', 'DROP']);
    const a = lab.pods.find((p) => p.name === 'pod-a')!;
    const b = lab.pods.find((p) => p.name === 'pod-b')!;
    const diagnosed = async () => {
      const objects = loadClusterFile(lab.clusterFile);
      const model = ClusterModel.build(objects, await readKernelStates(objects));
      const events = await traceLabEvents(lab, { rules: [{ between: [a.ip, b.ip] }] }, () => pingFromPod(lab, 'pod-a', b.ip, PING));
      const c = new Correlator({ resolver: resolverFromModel(model), clockOf: () => 'lab' });
      const paths = [...events.flatMap((e) => c.add(e)), ...c.flush()];
      const d = new Diagnoser(model);
      for (const p of paths) d.observePath(p);
      return { paths, findings: d.findings(), firewall: model.kernelStates.get('node2')?.firewall ?? [] };
    };
    const r = await diagnosed();
    assert.ok(r.firewall.some((c) => c.legacy === 'iptables-legacy' && c.name === 'FORWARD' && c.policy === 'drop'), 'the legacy chain was read');
    assert.ok(r.paths.length > 0 && r.paths.every((p) => p.outcome === 'dropped' && p.drop?.node === 'node2' && p.drop.reason === 'NETFILTER_DROP'), describePaths(r.paths));
    const errors = r.findings.filter((f) => f.severity === 'error');
    assert.deepEqual(codes(errors), ['DROPPED@node2'], JSON.stringify(r.findings, null, 1));
    assert.match(errors[0]!.cause, /chain FORWARD of iptables-legacy table filter \(hook forward\) has policy drop/);
    const fix = /: (iptables-legacy -I FORWARD -s 10\.244\.0\.0\/16 -j ACCEPT && iptables-legacy -I FORWARD -d 10\.244\.0\.0\/16 -j ACCEPT); or iptables-legacy -P FORWARD ACCEPT$/.exec(errors[0]!.fix);
    assert.ok(fix, errors[0]!.fix);
    for (const cmd of fix[1]!.split(' && ')) execSync(['ip', 'netns', 'exec', node2.netns, ...cmd.split(' ')]);
    const healed = await diagnosed();
    assert.ok(healed.paths.length >= 4 && healed.paths.every((p) => p.outcome === 'delivered'), describePaths(healed.paths));
    assert.deepEqual(healed.findings, []);
  } finally {
    await labDown(name);
  }
});
