// IPv6 on the lab (root, real kernel, BPF): `lab up --ipv6` builds flannel-v6.1 over an IPv6
// underlay as flanneld with EnableIPv6 does; a ping -6 between pods on two nodes is followed in six
// hops, written to pcapng (tshark decodes the inner IPv6 inside VXLAN over IPv6) and read back with
// the same paths and findings; every fault gives, from state and from packets, the codes it gives
// on the IPv4 lab (the seed over IPv6: every node registers the same public-ipv6). The dual-stack
// lab carries both families, each VTEP judged on its own.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execAsync } from '../src/util/exec.js';
import { labHeal, type FaultName, type LabState } from '../src/lab/index.js';
import { pingAllCrossNode, vxtrace, withLab } from './helpers/lab.js';
import { runFollow } from './helpers/follow.js';

type Rec = { type: string; [k: string]: unknown };
type PathRec = { type: 'path'; outcome: string; inner: { family: number; src: string; dst: string; protocol: number }; hops: { node: string; device: string; direction: string; kind: string; outer?: { family: number; src: string; dst: string } }[]; drop?: { node: string; reason: string } | null };
const pathsOf = (rs: Rec[]) => rs.filter((r) => r.type === 'path') as unknown as PathRec[];
const codesOf = (rs: Rec[], severity = 'error') => [...new Set(rs.filter((r) => r.type === 'finding' && r.severity === severity).map((r) => `${r.code}@${(r.nodes as string[]).join('+')}`))].sort();
const hopKeys = (p: PathRec) => p.hops.filter((h) => h.kind === 'tc').map((h) => `${h.node}/${h.device}/${h.direction}`);

function ping6(lab: LabState, from: string, to: string, extra: string[] = [], count = 2) {
  const pod = lab.pods.find((p) => p.name === from)!;
  const dst = lab.pods.find((p) => p.name === to)!;
  return execAsync(['ip', 'netns', 'exec', pod.netns, 'ping', '-6', '-c', String(count), '-i', '0.2', '-W', '1', ...extra, dst.ip6 ?? dst.ip], { allowFail: true });
}

describe('an IPv6 lab (flannel-v6.1 over an IPv6 underlay)', () => {
  test('ping -6 pod-a -> pod-b: six hops each way, outer and inner IPv6; written, read back the same; tshark decodes the inner IPv6 in VXLAN over IPv6', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vxt-ipv6-'));
    try {
      await withLab({ nodes: 3, stack: 'ipv6' }, async (lab) => {
        assert.equal(lab.pods.find((p) => p.name === 'pod-b')!.ip, 'fd00:10:244:2::10');
        const status = vxtrace(['lab', 'status', '--name', lab.name]).stdout;
        assert.match(status, /node2 +eth1 fd00:192:168:1::122 eth0 fd00:10:0:2::15 \(NAT\)  public-ipv6 fd00:192:168:1::122 podCIDR fd00:10:244:2::\/64 flannel-v6\.1 fd00:10:244:2:: 0e:76:78:06:00:02/);
        const file = join(dir, 'v6.pcapng');
        const r = await runFollow(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--count', '4', '--duration', '20', '--write', file], () => ping6(lab, 'pod-a', 'pod-b'));
        assert.equal(r.status, 0, r.stderr);
        const ps = pathsOf(r.records);
        assert.equal(ps.length, 4, r.stdout);
        const requests = ps.filter((p) => p.hops[0]!.node === 'node1');
        assert.equal(requests.length, 2);
        for (const p of ps) {
          assert.equal(p.outcome, 'delivered');
          assert.deepEqual([p.inner.family, p.inner.protocol], [6, 58]);
        }
        for (const p of requests) {
          assert.deepEqual(hopKeys(p), ['node1/cni0/ingress', 'node1/flannel-v6.1/egress', 'node1/eth1/egress', 'node2/eth1/ingress', 'node2/flannel-v6.1/ingress', 'node2/cni0/egress']);
          const up = p.hops.find((h) => h.node === 'node1' && h.device === 'eth1')!;
          assert.deepEqual([up.outer!.family, up.outer!.src, up.outer!.dst], [6, 'fd00:192:168:1::121', 'fd00:192:168:1::122']);
          assert.deepEqual([p.inner.src, p.inner.dst], ['fd00:10:244:1::10', 'fd00:10:244:2::10']);
        }
        assert.deepEqual(codesOf(r.records), []);
        // read needs no capability
        const read = vxtrace(['read', file, '--json'], { caps: 'none' });
        assert.equal(read.status, 0, read.stderr);
        const back = read.stdout.trim().split('\n').map((l) => JSON.parse(l) as Rec);
        assert.deepEqual(pathsOf(back).map((p) => [p.outcome, hopKeys(p).join(' '), p.inner.src, p.inner.dst]), ps.map((p) => [p.outcome, hopKeys(p).join(' '), p.inner.src, p.inner.dst]));
        assert.deepEqual(codesOf(back), codesOf(r.records));
        // Human output: an IPv6 underlay address with its port in brackets.
        assert.match(vxtrace(['read', file]).stdout, /⇢ \[fd00:192:168:1::122\]:8472 vni 1 ⇢ node2 eth1/);
        const t = spawnSync('tshark', ['-r', file, '-d', 'udp.port==8472,vxlan', '-Y', 'vxlan && icmpv6.type == 128', '-T', 'fields', '-E', 'occurrence=a', '-e', 'frame.interface_name', '-e', 'ipv6.src', '-e', 'ipv6.dst', '-e', 'vxlan.vni'], { encoding: 'utf8' });
        assert.equal(t.status, 0, t.stderr);
        const lines = t.stdout.trim().split('\n');
        assert.ok(lines.includes('node1/eth1\tfd00:192:168:1::121,fd00:10:244:1::10\tfd00:192:168:1::122,fd00:10:244:2::10\t1'), t.stdout);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // The codes of the IPv4 lab's tables (test/diagnose.test.ts, test/diagnose-packets.test.ts), on flannel-v6.1.
  const CASES: { fault: FaultName; state: string[]; packets: string[]; ping?: string[]; duration?: number }[] = [
    { fault: 'nat-public-ip', state: ['DUPLICATE_PUBLIC_IP@node1+node2+node3'], packets: ['DUPLICATE_PUBLIC_IP@node1+node2+node3', 'FDB_DST_LOCAL@node1'] },
    { fault: 'stale-fdb', state: ['WRONG_UNDERLAY_DST@node1'], packets: ['WRONG_UNDERLAY_DST@node1'], duration: 7 },
    { fault: 'stale-vtep-mac', state: ['VTEP_MAC_MISMATCH@node1'], packets: ['VTEP_MAC_MISMATCH@node1'] },
    { fault: 'missing-fdb', state: ['FDB_MISSING@node1'], packets: ['FDB_MISSING@node1'] },
    { fault: 'vni-mismatch', state: ['VNI_MISMATCH@node2'], packets: ['VNI_MISMATCH@node2'] },
    { fault: 'port-mismatch', state: ['PORT_MISMATCH@node2'], packets: ['PORT_MISMATCH@node2'] },
    // 1452 bytes of ICMPv6 payload: a 1500-byte IPv6 packet, over flannel-v6.1's 1430. The first is
    // dropped (PKT_TOO_BIG, the node answers Packet Too Big); the pod then knows the path MTU and,
    // with -M do, sends no more (without it, it would fragment the next ones itself, and they cross).
    { fault: 'mtu', state: [], packets: ['MTU_EXCEEDED@node1'], ping: ['-M', 'do', '-s', '1452'] },
    { fault: 'udp-blocked', state: [], packets: ['DROPPED@node2'] },
    { fault: 'bad-checksum', state: [], packets: ['BAD_OUTER_CHECKSUM@node1'] },
    { fault: 'forward-drop', state: [], packets: ['DROPPED@node2'] },
    { fault: 'forward-rule', state: [], packets: ['DROPPED@node2'] },
    { fault: 'vxlan-closed', state: ['NO_DECAP@node2'], packets: ['NO_DECAP@node2'] },
    { fault: 'underlay-unreachable', state: [], packets: ['DROPPED@node1+node2'], duration: 7 },
  ];
  for (const c of CASES) {
    test(`${c.fault} over IPv6: ${[...new Set([...c.state, ...c.packets])].join(', ')}, as over IPv4`, async () => {
      await withLab({ nodes: 3, stack: 'ipv6', faults: [c.fault] }, async (lab) => {
        const d = vxtrace(['diagnose', '--cluster', lab.clusterFile, '--json']);
        const state = d.stdout.trim().split('\n').map((l) => JSON.parse(l) as Rec);
        assert.deepEqual(codesOf(state), c.state, d.stdout);
        assert.ok(state.filter((x) => x.type === 'finding').every((x) => (x.key as string).endsWith(':v6')), 'keyed as the IPv6 VTEPs\' findings');
        const r = await runFollow(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--duration', String(c.duration ?? 4)], () => ping6(lab, 'pod-a', 'pod-b', c.ping ?? []));
        assert.equal(r.status, 1, r.stderr);
        const ps = pathsOf(r.records);
        assert.ok(ps.length > 0 && ps.every((p) => p.outcome !== 'delivered' && p.inner.family === 6), ps.map((p) => `${p.outcome} ${p.drop?.reason ?? ''} ${hopKeys(p).join(' ')}`).join('\n'));
        assert.deepEqual(codesOf(r.records), c.packets, JSON.stringify(r.records.filter((x) => x.type === 'finding'), null, 1));
        if (c.fault === 'nat-public-ip') {
          const f = r.records.find((x) => x.code === 'DUPLICATE_PUBLIC_IP')!;
          assert.match(f.cause as string, /every node registered public-ipv6 fd00:10:0:2::15/);
          assert.match(f.fix as string, /--iface=eth1/);
        }
        if (c.fault === 'underlay-unreachable') {
          const f = r.records.find((x) => x.code === 'DROPPED')!;
          assert.match(f.cause as string, /^node2's underlay address fd00:192:168:1::122 does not answer neighbour solicitations on node1's eth1/);
        }
      });
    });
  }

  test('the seed over IPv6 healed as the finding says (flanneld --iface=eth1): every pair works, diagnose is clean', async () => {
    await withLab({ nodes: 3, stack: 'ipv6', faults: ['nat-public-ip'] }, async (lab) => {
      assert.ok([...(await pingAllCrossNode(lab)).values()].every((ok) => !ok), 'nothing crosses');
      await labHeal(lab.name, 'nat-public-ip');
      const after = await pingAllCrossNode(lab);
      assert.deepEqual([...after].filter(([, ok]) => !ok).map(([k]) => k), []);
      const d = vxtrace(['diagnose', '--cluster', lab.clusterFile, '--json']);
      assert.equal(d.status, 0, d.stdout);
      assert.deepEqual(d.stdout.trim().split('\n').map((l) => (JSON.parse(l) as Rec).type), ['summary']);
    });
  });
});

describe('a dual-stack lab (flannel.1 and flannel-v6.1)', () => {
  test('both families cross; diagnose checks both VTEPs; the seed registers both NAT addresses and is found on each, healed by one --iface=eth1', async () => {
    await withLab({ nodes: 3, stack: 'dual', faults: ['nat-public-ip'] }, async (lab) => {
      const podB = lab.pods.find((p) => p.name === 'pod-b')!;
      assert.deepEqual([podB.ip, podB.ip6], ['10.244.2.10', 'fd00:10:244:2::10']);
      const d = vxtrace(['diagnose', '--cluster', lab.clusterFile, '--json']);
      const fs = d.stdout.trim().split('\n').map((l) => JSON.parse(l) as Rec).filter((x) => x.type === 'finding');
      assert.deepEqual(fs.map((f) => f.key), ['DUPLICATE_PUBLIC_IP:10.0.2.15', 'DUPLICATE_PUBLIC_IP:fd00:10:0:2::15:v6']);
      for (const f of fs) assert.match(f.fix as string, /--iface=eth1/);
      await labHeal(lab.name, 'nat-public-ip');
      const healed = vxtrace(['diagnose', '--cluster', lab.clusterFile]);
      assert.equal(healed.status, 0, healed.stdout);
      assert.match(healed.stdout, /node2 underlay 192\.168\.1\.122: InternalIP 192\.168\.1\.122 on eth1/);
      assert.match(healed.stdout, /node2 underlay \(IPv6\) fd00:192:168:1::122: InternalIP fd00:192:168:1::122 on eth1/);
      const a = lab.pods.find((p) => p.name === 'pod-a')!;
      for (const dst of [podB.ip, podB.ip6!]) {
        const r = await execAsync(['ip', 'netns', 'exec', a.netns, 'ping', '-c', '1', '-W', '1', dst], { allowFail: true });
        assert.equal(r.status, 0, `pod-a reaches ${dst}`);
      }
      // follow traces both of the pods' families: a healthy IPv4 ping, six hops over flannel.1 ...
      const r = await runFollow(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--count', '2', '--duration', '15'], () => execAsync(['ip', 'netns', 'exec', a.netns, 'ping', '-c', '1', '-W', '1', podB.ip], { allowFail: true }));
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(pathsOf(r.records).map((p) => p.outcome), ['delivered', 'delivered']);
      // ... and a ping -6 of the same pods, six hops over flannel-v6.1
      const r6 = await runFollow(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--count', '2', '--duration', '15'], () => ping6(lab, 'pod-a', 'pod-b', [], 1));
      assert.equal(r6.status, 0, r6.stderr);
      assert.match(r6.stderr, /following default\/pod-a \(10\.244\.1\.10, fd00:10:244:1::10 on node1\)/);
      const v6 = pathsOf(r6.records);
      assert.deepEqual(v6.map((p) => [p.outcome, p.inner.family]), [['delivered', 6], ['delivered', 6]]);
      assert.deepEqual(hopKeys(v6[0]!), ['node1/cni0/ingress', 'node1/flannel-v6.1/egress', 'node1/eth1/egress', 'node2/eth1/ingress', 'node2/flannel-v6.1/ingress', 'node2/cni0/egress']);
    });
  });
});
