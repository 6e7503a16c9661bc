// The kernel's per-hop flow counters against the real kernel, on the lab (root): they equal the
// packets sent at every hop (ping -c N; a 100k-packet UDP burst while records are shed), shed
// records are counted as sampled and never as lost, and a packet not followed leaves neither a
// record nor a counter.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Tracer, type FlowCount, type HopEvent, type TracerOptions, type FlowFilter } from '../src/datapath/index.js';
import type { LabState } from '../src/lab/index.js';
import { withLab } from './helpers/lab.js';
import { pod, podPing, sleep } from './helpers/datapath.js';
import { udpBurst } from './helpers/traffic.js';

/** The six hops of a cross-node packet from node `from` to node `to`, in path order. */
const sixHops = (from: string, to: string) => [
  `${from} cni0 ingress`, `${from} flannel.1 egress`, `${from} eth1 egress`, `${to} eth1 ingress`, `${to} flannel.1 ingress`, `${to} cni0 egress`,
];
const hookName = (c: FlowCount) => `${c.node} ${c.device} ${c.direction}`;

/** The tc counters of the flow src -> dst (protocol), by hook. */
function countsOf(counts: FlowCount[], src: string, dst: string, protocol: number): Map<string, FlowCount> {
  const m = new Map<string, FlowCount>();
  for (const c of counts) {
    if (c.kind !== 'tc' || c.flow.src !== src || c.flow.dst !== dst || c.flow.protocol !== protocol) continue;
    assert.ok(!m.has(hookName(c)), `one counter per hook and flow: ${hookName(c)} twice`);
    m.set(hookName(c), c);
  }
  return m;
}

interface Traced {
  events: HopEvent[];
  counts: FlowCount[];
  stats: ReturnType<Tracer['stats']>;
}

async function trace(lab: LabState, filter: FlowFilter, action: () => Promise<unknown>, opts: TracerOptions & { onBatch?: () => void } = {}): Promise<Traced> {
  const tracer = Tracer.open({ ...opts, filter });
  try {
    for (const n of lab.nodes) tracer.attachNode(n.name, n.netns);
    const events: HopEvent[] = [];
    tracer.start((batch) => {
      events.push(...batch);
      opts.onBatch?.();
    });
    await action();
    await sleep(300);
    await tracer.stop();
    return { events, counts: tracer.flowCounters(), stats: tracer.stats() };
  } finally {
    tracer.close();
  }
}

/** The flow's drops the kernel reported (kind 'drop' counters), as text for a message. */
const dropsOf = (counts: FlowCount[], src: string, dst: string) =>
  counts.filter((c) => c.kind === 'drop' && c.flow.src === src && c.flow.dst === dst).map((c) => `${c.node}/${c.device} ${c.dropReason} x${c.packets}`);

describe('per-hop flow counters', () => {
  test('ping -c 20: every hop counts 20 requests and 20 replies, with their bytes; traffic not followed has no record and no counter', async () => {
    await withLab({ nodes: 2, podsPerNode: 2 }, async (lab) => {
      const [a, b, c, d] = ['pod-a', 'pod-b', 'pod-c', 'pod-d'].map((n) => pod(lab, n)) as [ReturnType<typeof pod>, ReturnType<typeof pod>, ReturnType<typeof pod>, ReturnType<typeof pod>];
      const { events, counts, stats } = await trace(lab, { rules: [{ between: [a.ip, b.ip] }] }, async () => {
        const [followed] = await Promise.all([
          podPing(lab, 'pod-a', b.ip, ['-c', '20', '-i', '0.05', '-W', '1']),
          podPing(lab, 'pod-c', d.ip, ['-c', '50', '-i', '0.01', '-W', '1']), // another pair
          podPing(lab, 'pod-a', d.ip, ['-c', '30', '-i', '0.01', '-W', '1']), // pod-a, not the pair
        ]);
        assert.equal(followed, 0, 'pod-a reaches pod-b');
      });
      for (const [src, dst, from, to] of [[a.ip, b.ip, 'node1', 'node2'], [b.ip, a.ip, 'node2', 'node1']] as const) {
        const byHop = countsOf(counts, src, dst, 1);
        assert.deepEqual([...byHop.keys()].sort(), sixHops(from, to).sort(), `${src} > ${dst}: a counter at each of the six hops, no other`);
        for (const hop of sixHops(from, to)) {
          const n = byHop.get(hop)!;
          assert.equal(n.packets, 20, `${src} > ${dst} at ${hop}: 20 packets`);
          // ICMP echo of 84 IP bytes in an Ethernet frame; on the uplink inside VXLAN (50 bytes more)
          assert.equal(n.bytes, 20 * (n.device === 'eth1' ? 98 + 50 : 98), `${hop}: wire bytes`);
          assert.deepEqual([n.records, n.sampled, n.lost], [20, 0, 0], `${hop}: a record per packet`);
          assert.ok(n.firstNs > 0n && n.lastNs >= n.firstNs);
          assert.ok(n.lastNs - n.firstNs >= 19n * 40_000_000n, 'first and last are the first and last ping (0.05 s apart)');
          assert.notEqual(n.flow.srcPort, 0, 'an ICMP echo flow carries its echo id');
          assert.equal(events.filter((e) => e.inner.src === src && e.inner.dst === dst && `${e.node} ${e.device} ${e.direction}` === hop).length, 20, `${hop}: 20 records reached JavaScript`);
        }
      }
      const pair = new Set([a.ip, b.ip]);
      const foreign = counts.filter((x) => !(pair.has(x.flow.src) && pair.has(x.flow.dst)));
      assert.deepEqual(foreign.map((x) => `${x.flow.src}>${x.flow.dst} ${hookName(x)}`), [], 'no counter for packets not followed');
      assert.deepEqual(events.filter((e) => !(pair.has(e.inner.src) && pair.has(e.inner.dst))).length, 0, 'no record for packets not followed');
      assert.equal(stats.followed, 2 * 6 * 20, 'the kernel followed the pair only');
      assert.ok(stats.seen > stats.followed + 6 * 2 * (50 + 30), 'the hooks saw the other pings');
      assert.equal(stats.sampled, 0);
    });
  });

  test('a 100k-packet UDP burst, every record shed but the first per window: counters exact at every hop, the rest sampled, none lost', async () => {
    await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
      const a = pod(lab, 'pod-a');
      const b = pod(lab, 'pod-b');
      let burst = { sent: 0 };
      const { events, counts, stats } = await trace(lab, { rules: [{ between: [a.ip, b.ip], protocol: 'udp' }] }, async () => {
        burst = await udpBurst(lab, 'pod-a', 'pod-b', 100_000);
      }, { shed: 'always', ringBytes: 16 << 20 });
      assert.equal(burst.sent, 100_000);
      const byHop = countsOf(counts, a.ip, b.ip, 17);
      const drops = dropsOf(counts, a.ip, b.ip);
      assert.deepEqual([...byHop.keys()].sort(), sixHops('node1', 'node2').sort());
      for (const hop of sixHops('node1', 'node2')) {
        const n = byHop.get(hop)!;
        assert.equal(n.packets, 100_000, `${hop}: every packet counted (the kernel's drops of this flow: ${drops.join(', ') || 'none'})`);
        assert.equal(n.records + n.sampled, n.packets, `${hop}: each packet has a record or is sampled`);
        assert.equal(n.lost, 0, `${hop}: nothing lost`);
        assert.ok(n.sampled > 90_000, `${hop}: shed (${n.sampled} sampled)`);
        assert.ok(n.records >= 32, `${hop}: the first packets of the window kept (${n.records})`);
      }
      const sum = (f: (c: FlowCount) => number) => counts.reduce((s, c) => s + f(c), 0);
      assert.equal(stats.sampled, sum((c) => c.sampled), 'the kernel-wide sampled count is the flows\'');
      assert.equal(stats.lostRecords, 0, 'shed records are not lost records');
      assert.equal(stats.records, sum((c) => c.records));
      assert.equal(events.length, stats.records, 'every record written reached JavaScript');
      assert.ok(events.every((e) => e.record && (new DataView(e.record.buffer, e.record.byteOffset).getUint16(50, true) & 0x20) !== 0), 'records written while shedding say so (VXT_F_SHEDDING)');
    });
  });

  test('user space falls behind (small ring, slow consumer): the kernel sheds instead of losing, and the counters stay exact', async () => {
    await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
      const a = pod(lab, 'pod-a');
      const b = pod(lab, 'pod-b');
      let burst = { sent: 0 };
      const { events, counts, stats } = await trace(lab, { rules: [{ between: [a.ip, b.ip], protocol: 'udp' }] }, async () => {
        burst = await udpBurst(lab, 'pod-a', 'pod-b', 100_000);
      }, {
        ringBytes: 256 << 10,
        onBatch: () => {
          const until = Date.now() + 20; // a slow consumer
          while (Date.now() < until);
        },
      });
      assert.equal(burst.sent, 100_000);
      const byHop = countsOf(counts, a.ip, b.ip, 17);
      const drops = dropsOf(counts, a.ip, b.ip);
      for (const hop of sixHops('node1', 'node2')) {
        const n = byHop.get(hop)!;
        assert.equal(n.packets, 100_000, `${hop}: every packet counted (the kernel's drops of this flow: ${drops.join(', ') || 'none'})`);
        assert.equal(n.records + n.sampled + n.lost, n.packets, `${hop}: each packet's record was written, shed or lost`);
      }
      const sum = (f: (c: FlowCount) => number) => counts.reduce((s, c) => s + f(c), 0);
      assert.ok(stats.sampled > 0, `the kernel shed records (${JSON.stringify(stats)})`);
      assert.equal(stats.sampled, sum((c) => c.sampled));
      assert.equal(stats.lostRecords, sum((c) => c.lost), 'lost records are the ring buffer\'s, counted apart');
      assert.ok(stats.lostRecords < stats.sampled, `shedding kept the ring buffer from overflowing (lost ${stats.lostRecords}, sampled ${stats.sampled})`);
      assert.equal(events.length, stats.records);
    });
  });
});
