// Several tracers on one device in clsact mode (two operators, or `follow` next to an agent): each
// gets a filter of its own, none replaces or removes another's, a killed tracer's filter is taken
// over, and filters of other programs at vxtrace's priority and handles are never touched.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tracer, type AttachedHook, type HopEvent } from '../src/datapath/index.js';
import type { LabState } from '../src/lab/index.js';
import { execSync } from '../src/util/exec.js';
import { withLab } from './helpers/lab.js';
import { devicesOf, holdTracer, node, pod, podPing, sleep, tcFiltersOf, type TcFilter } from './helpers/datapath.js';

const hopName = (e: HopEvent) => `${e.device} ${e.direction}@${e.node}`;
const requestPath = ['cni0 ingress@node1', 'flannel.1 egress@node1', 'eth1 egress@node1', 'eth1 ingress@node2', 'flannel.1 ingress@node2', 'cni0 egress@node2'];

/** The hops of the echo request with this ICMP id and seq 1, in time order. */
function echoRequest(events: HopEvent[], id: number): string[] {
  return events
    .filter((e) => e.kind === 'tc' && e.inner.icmp?.type === 8 && e.inner.icmp.id === id && e.inner.icmp.seq === 1)
    .sort((a, b) => (a.timestampNs < b.timestampNs ? -1 : 1))
    .map(hopName);
}

/** A tracer in clsact mode on every node of the lab, following pod-a <-> pod-b, recording. */
function clsactTracer(lab: LabState): { tracer: Tracer; events: HopEvent[] } {
  const tracer = Tracer.open({ attachMode: 'clsact', filter: { rules: [{ between: [pod(lab, 'pod-a').ip, pod(lab, 'pod-b').ip] }] } });
  const events: HopEvent[] = [];
  try {
    for (const n of lab.nodes) tracer.attachNode(n.name, n.netns);
    tracer.start((batch) => events.push(...batch));
  } catch (err) {
    tracer.close();
    throw err;
  }
  return { tracer, events };
}

/** One ping pod-a -> pod-b; the ICMP id of its echo request as the tracers saw it. */
async function pingOnce(lab: LabState, seen: HopEvent[]): Promise<number> {
  const before = new Set(seen.map((e) => e.inner.icmp?.id));
  assert.equal(await podPing(lab, 'pod-a', pod(lab, 'pod-b').ip), 0, 'pod-a reaches pod-b');
  await sleep(300);
  const ids = [...new Set(seen.filter((e) => e.inner.icmp?.type === 8 && !before.has(e.inner.icmp.id)).map((e) => e.inner.icmp!.id))];
  assert.equal(ids.length, 1, `one new echo request seen (ids ${ids.join(', ')})`);
  return ids[0]!;
}

/** The tc filter each hook of a tracer should have in the kernel right now. */
function filterOf(lab: LabState, h: AttachedHook): TcFilter | undefined {
  return tcFiltersOf(node(lab, h.node).netns, h.device, h.direction).find((f) => f.programId === h.programId);
}

/** Every vxtrace filter on every device of every node. */
function vxtraceFilters(lab: LabState): string[] {
  const found: string[] = [];
  for (const n of lab.nodes) {
    for (const dev of devicesOf(n.netns)) {
      for (const dir of ['ingress', 'egress'] as const) {
        for (const f of tcFiltersOf(n.netns, dev, dir)) if (f.programName?.startsWith('vxt_')) found.push(`${n.name} ${dev} ${dir} ${f.handle} ${f.programName} id ${f.programId}`);
      }
    }
  }
  return found;
}

describe('clsact: several tracers on one device', () => {
  test('two tracers on the same devices each get their own filter; closing one leaves the other attached and recording', async () => {
    await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
      const first = clsactTracer(lab);
      let second: ReturnType<typeof clsactTracer> | undefined;
      try {
        second = clsactTracer(lab);
        const firstHooks = first.tracer.hooksAttached();
        const secondHooks = second.tracer.hooksAttached();
        assert.equal(firstHooks.length, secondHooks.length, 'both on every hook');
        assert.ok(firstHooks.every((h) => h.mode === 'clsact') && secondHooks.every((h) => h.mode === 'clsact'));
        for (const [h1, h2] of firstHooks.map((h, i) => [h, secondHooks[i]!] as const)) {
          assert.equal(`${h1.node} ${h1.device} ${h1.direction}`, `${h2.node} ${h2.device} ${h2.direction}`);
          assert.notEqual(h1.programId, h2.programId);
          const f1 = filterOf(lab, h1);
          const f2 = filterOf(lab, h2);
          assert.ok(f1, `the first tracer's filter on ${h1.device} ${h1.direction}@${h1.node}`);
          assert.ok(f2, `the second tracer's filter on ${h2.device} ${h2.direction}@${h2.node}`);
          assert.notEqual(f1.handle, f2.handle, 'a filter each, not one replacing the other');
          assert.equal(f1.pref, 1);
          assert.equal(f2.pref, 1);
        }
        const cni0 = tcFiltersOf(node(lab, 'node1').netns, 'cni0', 'ingress');
        assert.deepEqual(cni0.map((f) => f.handle).sort(), ['0x7678', '0x7679']);

        const id = await pingOnce(lab, first.events);
        assert.deepEqual(echoRequest(first.events, id), requestPath, 'the first tracer sees every hop');
        assert.deepEqual(echoRequest(second.events, id), requestPath, 'the second tracer sees every hop');

        await first.tracer.stop();
        first.tracer.close();
        for (const h of firstHooks) assert.equal(filterOf(lab, h), undefined, `the first tracer's filter on ${h.device} ${h.direction}@${h.node} is gone`);
        for (const h of secondHooks) assert.ok(filterOf(lab, h), `the second tracer's filter on ${h.device} ${h.direction}@${h.node} is still there`);
        const later = await pingOnce(lab, second.events);
        assert.deepEqual(echoRequest(second.events, later), requestPath, 'the second tracer still records every hop');
        assert.equal(second.tracer.stats().lostRecords, 0);
      } finally {
        first.tracer.close();
        second?.tracer.close();
      }
      assert.deepEqual(vxtraceFilters(lab), [], 'nothing of vxtrace is left on any device');
    });
  });

  test('a killed tracer’s filters are taken over in place; a live tracer’s are not', async () => {
    await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
      const live = clsactTracer(lab);
      let next: ReturnType<typeof clsactTracer> | undefined;
      try {
        const held = await holdTracer(lab.name, 'clsact');
        const n1 = node(lab, 'node1');
        const killedIngress = held.hooks.find((h) => h.node === 'node1' && h.device === 'cni0' && h.direction === 'ingress')!;
        assert.ok(tcFiltersOf(n1.netns, 'cni0', 'ingress').some((f) => f.programId === killedIngress.programId && f.handle === '0x7679'));
        await held.exited();
        assert.ok(tcFiltersOf(n1.netns, 'cni0', 'ingress').some((f) => f.programId === killedIngress.programId), 'clsact filters outlive a killed process');

        next = clsactTracer(lab);
        for (const h of next.tracer.hooksAttached()) {
          const filters = tcFiltersOf(node(lab, h.node).netns, h.device, h.direction);
          const liveHook = live.tracer.hooksAttached().find((l) => l.node === h.node && l.device === h.device && l.direction === h.direction)!;
          const where = `${h.device} ${h.direction}@${h.node}`;
          assert.equal(filters.find((f) => f.programId === liveHook.programId)?.handle, '0x7678', `the live tracer keeps its filter on ${where}`);
          assert.equal(filters.find((f) => f.programId === h.programId)?.handle, '0x7679', `the new tracer took the killed one's slot on ${where}`);
          assert.equal(filters.length, 2, `no stale filter left beside them on ${where}: ${JSON.stringify(filters)}`);
        }
        const id = await pingOnce(lab, next.events);
        assert.deepEqual(echoRequest(next.events, id), requestPath);
        assert.deepEqual(echoRequest(live.events, id), requestPath, 'the live tracer never stopped recording');
      } finally {
        live.tracer.close();
        next?.tracer.close();
      }
      assert.deepEqual(vxtraceFilters(lab), []);
    });
  });

  test('filters of other programs at vxtrace’s priority and handles are neither replaced nor removed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vxt-clsact-'));
    try {
      // somebody else's eBPF observer, compiled here: it returns TC_ACT_UNSPEC, like ours
      writeFileSync(
        join(dir, 'other.bpf.c'),
        [
          '#include <linux/bpf.h>',
          '#include <linux/pkt_cls.h>',
          '__attribute__((section("tc"), used)) int other_observer(struct __sk_buff *skb) { return TC_ACT_UNSPEC; }',
          '__attribute__((section("license"), used)) char LICENSE[] = "GPL";',
          '',
        ].join('\n'),
      );
      const multiarch = execSync(['gcc', '-print-multiarch'], { allowFail: true }).stdout.trim() || `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
      execSync(['clang', '-O2', '-g', '-target', 'bpf', `-I/usr/include/${multiarch}`, '-c', join(dir, 'other.bpf.c'), '-o', join(dir, 'other.bpf.o')]);
      await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
        const n1 = node(lab, 'node1');
        const tc = (...args: string[]) => execSync(['ip', 'netns', 'exec', n1.netns, 'tc', ...args]);
        tc('qdisc', 'add', 'dev', 'cni0', 'clsact');
        // the very slot vxtrace's first filter uses, an eBPF program of somebody else's...
        tc('filter', 'add', 'dev', 'cni0', 'ingress', 'pref', '1', 'handle', '0x7678', 'bpf', 'da', 'obj', join(dir, 'other.bpf.o'), 'sec', 'tc');
        // ...the next one, a classic BPF filter vxtrace cannot read (returns 0: no match, the chain goes on)...
        tc('filter', 'add', 'dev', 'cni0', 'ingress', 'pref', '1', 'handle', '0x7679', 'bpf', 'bytecode', '1,6 0 0 0,');
        // ...and another kind at another priority
        tc('filter', 'add', 'dev', 'cni0', 'egress', 'pref', '7', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0', 'flowid', '1:1');
        const others = tcFiltersOf(n1.netns, 'cni0', 'ingress');
        const observer = others.find((f) => f.programName === 'other_observer')!;
        assert.equal(observer.handle, '0x7678');
        assert.ok(others.some((f) => f.bytecode && f.handle === '0x7679'));

        const { tracer, events } = clsactTracer(lab);
        try {
          const ours = tracer.hooksAttached().find((h) => h.node === 'node1' && h.device === 'cni0' && h.direction === 'ingress')!;
          assert.equal(filterOf(lab, ours)?.handle, '0x767a', 'the first slot nobody holds');
          assert.equal(tcFiltersOf(n1.netns, 'cni0', 'ingress').find((f) => f.handle === '0x7678')?.programId, observer.programId, 'not replaced');
          const id = await pingOnce(lab, events);
          assert.deepEqual(echoRequest(events, id), requestPath, 'every hop, the other filters in the chain notwithstanding');
        } finally {
          tracer.close();
        }
        const after = tcFiltersOf(n1.netns, 'cni0', 'ingress');
        assert.deepEqual(
          after.map((f) => `${f.handle} ${f.programName ?? (f.bytecode ? 'bytecode' : '?')} ${f.programId ?? ''}`).sort(),
          [`0x7678 other_observer ${observer.programId}`, '0x7679 bytecode '],
          'the other filters are exactly as they were',
        );
        assert.ok(tcFiltersOf(n1.netns, 'cni0', 'egress').some((f) => f.pref === 7 && f.kind === 'u32'), 'the u32 filter on cni0 egress is untouched');
        assert.deepEqual(vxtraceFilters(lab), []);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
