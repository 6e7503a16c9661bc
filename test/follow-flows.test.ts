// `vxtrace follow` and `capture`/`read` with the kernel's per-hop flow counters, on the lab (root):
// the summary's counts are the packets sent at every hop, a trace keeps them for `read`, and the
// underlay losing a share of a flow (nftables in the underlay's namespace drops 1 in 125 VXLAN
// packets, out of vxtrace's sight) is a PACKET_LOSS finding naming the two hops and the numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execSync } from '../src/util/exec.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { withLab } from './helpers/lab.js';
import { runFollow } from './helpers/follow.js';
import { pod, podPing } from './helpers/datapath.js';
import { udpBurst } from './helpers/traffic.js';

interface FlowJson {
  type: 'flow';
  flow: { src: string; dst: string; protocol: number; srcPort: number; dstPort: number };
  hops: { node: string; device: string; direction: string; packets: number; bytes: number; records: number; sampled: number; lost: number }[];
  drops: { node: string; device: string; reason: string; packets: number }[];
}
const cliPath = fileURLToPath(new URL('../../bin/vxtrace.js', import.meta.url));
const where = (h: { node: string; device: string; direction: string }) => `${h.node} ${h.device} ${h.direction}`;

test('follow --json: a flow record per direction, each of its six hops counting every ping; the text summary shows the table', async () => {
  await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
    const b = pod(lab, 'pod-b');
    const run = await runFollow(['follow', 'pod-a', 'pod-b', '--lab', lab.name, '--json', '--duration', '4s'], async () => {
      assert.equal(await podPing(lab, 'pod-a', b.ip, ['-c', '10', '-i', '0.05', '-W', '1']), 0);
    });
    assert.equal(run.status, 0, run.stderr);
    const flows = run.records.filter((r) => r.type === 'flow') as unknown as FlowJson[];
    assert.equal(flows.length, 2, 'requests and replies');
    for (const f of flows) {
      assert.equal(f.flow.protocol, 1);
      assert.deepEqual(f.hops.map((h) => h.packets), [10, 10, 10, 10, 10, 10], `${f.flow.src} > ${f.flow.dst}: ${f.hops.map(where).join(', ')}`);
      assert.deepEqual(f.hops.map((h) => h.device), ['cni0', 'flannel.1', 'eth1', 'eth1', 'flannel.1', 'cni0']);
      assert.deepEqual(f.drops, []);
    }
    const summary = run.records.at(-1)!;
    assert.equal(summary.type, 'summary', 'the summary comes last, after the flows');
    assert.equal(summary.sampledRecords, 0);

    const text = await runFollow(['follow', 'pod-a', 'pod-b', '--lab', lab.name, '--duration', '3s'], async () => {
      assert.equal(await podPing(lab, 'pod-a', b.ip, ['-c', '3', '-i', '0.05', '-W', '1']), 0);
    });
    assert.match(text.stdout, /flows \(every packet counted in the kernel, per hop\):\n {2}default\/pod-a \(\S+\) → default\/pod-b \(\S+\) ICMP echo id \d+\n {4}node1 cni0 ingress +3 packets +294 B {2}sent\n/);
    assert.match(text.stdout, /node2 cni0 egress +3 packets +294 B {2}reached the pod\n/);
  });
});

test('the underlay losing 0.8 % of a flow: PACKET_LOSS between node1 eth1 and node2 eth1, with the numbers; capture keeps the counters for read', async () => {
  await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
    const dir = mkdtempSync(join(tmpdir(), 'vxtrace-flows-'));
    try {
      // the underlay "switch" loses 1 in 125 VXLAN packets at random (nftables in its namespace: vxtrace does not watch it)
      execSync(['ip', 'netns', 'exec', lab.underlayNetns, 'nft', '-f', '-'], {
        input: 'table bridge vxtloss { chain lossy { type filter hook forward priority 0; udp dport 8472 numgen random mod 1000 < 8 drop; }; }\n',
      });
      const sent = 50_000;
      const run = await runFollow(['follow', 'pod-a', 'pod-b', '--lab', lab.name, '--protocol', 'udp', '--json', '--duration', '15s'], async () => {
        assert.equal((await udpBurst(lab, 'pod-a', 'pod-b', sent)).sent, sent);
      }, 60_000);
      assert.equal(run.status, 1, `a loss finding makes follow exit 1: ${run.stderr}\n${run.records.filter((r) => r.type !== 'path').map((r) => JSON.stringify(r)).join('\n').slice(-4000)}`);
      const flow = run.records.find((r) => r.type === 'flow') as unknown as FlowJson;
      assert.ok(flow, run.stdout.slice(-2000));
      const [sentAt, , leftAt, arrivedAt, , deliveredAt] = flow.hops;
      assert.deepEqual(flow.hops.map(where), ['node1 cni0 ingress', 'node1 flannel.1 egress', 'node1 eth1 egress', 'node2 eth1 ingress', 'node2 flannel.1 ingress', 'node2 cni0 egress']);
      assert.equal(sentAt!.packets, sent, 'every datagram sent counted at the first hop');
      assert.equal(leftAt!.packets, sent, 'and leaving node1');
      const missing = leftAt!.packets - arrivedAt!.packets;
      assert.ok(missing > 0.004 * sent && missing < 0.012 * sent, `about 0.8 % missing in the underlay (${missing})`);
      assert.equal(deliveredAt!.packets, arrivedAt!.packets, 'nothing more lost after the underlay');
      const loss = run.records.filter((r) => r.type === 'finding' && r.code === 'PACKET_LOSS') as unknown as { nodes: string[]; severity: string; packetCount: number; evidence: { facts: Record<string, unknown> } }[];
      assert.equal(loss.length, 1, JSON.stringify(run.records.filter((r) => r.type === 'finding')));
      assert.deepEqual(loss[0]!.nodes, ['node1', 'node2']);
      assert.equal(loss[0]!.packetCount, missing);
      assert.deepEqual([loss[0]!.evidence.facts.from, loss[0]!.evidence.facts.to, loss[0]!.evidence.facts.passed, loss[0]!.evidence.facts.arrived, loss[0]!.evidence.facts.kernelDrops], ['node1 eth1 egress', 'node2 eth1 ingress', sent, sent - missing, 0]);
      const summary = run.records.at(-1)!;
      assert.ok((summary.findingCodes as string[]).includes('PACKET_LOSS'));
      assert.equal(flow.hops.reduce((n, h) => n + h.records + h.sampled + h.lost, 0), flow.hops.reduce((n, h) => n + h.packets, 0), 'each packet at each hop: a record, sampled or lost');

      // capture writes the counters into the trace; read shows them and finds the same
      const file = join(dir, 'loss.pcapng');
      const cap = await runFollow(['capture', '--lab', lab.name, '--between', 'pod-a,pod-b', '--protocol', 'udp', '--write', file, '--duration', '15s'], async () => {
        await udpBurst(lab, 'pod-a', 'pod-b', sent);
      }, 60_000);
      assert.match(cap.stderr, /flows \(every packet counted in the kernel, per hop\):/);
      assert.match(cap.stderr, /PACKET_LOSS/);
      // (50k paths of NDJSON: more than spawnSync keeps by default)
      const read = spawnSync(process.execPath, [cliPath, 'read', file, '--json'], { encoding: 'utf8', maxBuffer: 1 << 30 });
      const readFlow = read.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((r) => r.type === 'flow') as FlowJson;
      assert.equal(readFlow.hops[0]!.packets, sent);
      assert.ok(readFlow.hops[3]!.packets < sent);
      assert.match(read.stdout, /"code":"PACKET_LOSS"/);
      assert.equal(read.status, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('follow without --write at line rate: a few records per flow and hop (sampled, said so), every packet counted at every hop, none lost', async () => {
  await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
    const sent = 20_000;
    const run = await runFollow(['follow', 'pod-a', 'pod-b', '--lab', lab.name, '--protocol', 'udp', '--json', '--duration', '8s'], async () => {
      assert.equal((await udpBurst(lab, 'pod-a', 'pod-b', sent)).sent, sent);
    }, 60_000);
    const flow = run.records.find((r) => r.type === 'flow') as unknown as FlowJson;
    assert.ok(flow, run.stdout.slice(-2000));
    assert.deepEqual(flow.hops.map((h) => h.packets), [sent, sent, sent, sent, sent, sent], `every datagram at every hop: ${flow.hops.map(where).join(', ')}`);
    for (const h of flow.hops) {
      assert.equal(h.records + h.sampled, h.packets, `${where(h)}: each packet has a record or is sampled`);
      assert.equal(h.lost, 0, `${where(h)}: nothing lost`);
      // 32 per 100 ms window (per CPU): a 20k burst keeps a few hundred at most
      assert.ok(h.records > 0 && h.records < sent / 10, `${where(h)}: a few records kept (${h.records})`);
    }
    const summary = run.records.at(-1)!;
    assert.equal(summary.type, 'summary');
    assert.equal(summary.sampledRecords, flow.hops.reduce((n, h) => n + h.sampled, 0), 'the summary\'s sampled records are the flow\'s');
    assert.equal(summary.lostRecords, 0);

    const text = await runFollow(['follow', 'pod-a', 'pod-b', '--lab', lab.name, '--protocol', 'udp', '--duration', '5s'], async () => {
      assert.equal((await udpBurst(lab, 'pod-a', 'pod-b', 5_000)).sent, 5_000);
    }, 60_000);
    assert.match(text.stdout, /node1 cni0 ingress +5000 packets/);
    assert.match(text.stdout, /\d+ records sampled out \(a few kept per flow and hop, every drop, SYN\/FIN\/RST and ICMP; every packet counted below\)/);
  });
});
