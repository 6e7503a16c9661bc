// The eBPF datapath against the real kernel, on the lab (root): the six hops of a cross-node
// packet, drops with the kernel's reasons, filter isolation, nothing left after kill -9, and
// counted loss with a tiny ring buffer.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { defaultSnaplen, defaultVxlanPorts, fingerprintFieldsOf, fingerprintOf, Tracer, type HopEvent } from '../src/datapath/index.js';
import { loadNative } from '../src/datapath/native.js';
import { EnvironmentError } from '../src/errors.js';
import { execAsync, execSync } from '../src/util/exec.js';
import { namespacesOf, uniqueLabName, withLab } from './helpers/lab.js';
import { devicesOf, holdTracer, kernelBpfIds, node, pod, podPing, runChild, sleep, tcFilters, tcFiltersOf, traceLab, waitFor } from './helpers/datapath.js';

const hopName = (e: HopEvent) => `${e.kind === 'drop' ? 'drop ' : ''}${e.device} ${e.direction}@${e.node}`;
const byTime = (a: HopEvent, b: HopEvent) => (a.timestampNs < b.timestampNs ? -1 : a.timestampNs > b.timestampNs ? 1 : 0);
const icmpEcho = (events: HopEvent[], type: number, seq: number, ipLength = 84) =>
  events
    .filter((e) => e.inner.protocol === 1 && e.inner.icmp?.type === type && e.inner.icmp.seq === seq && e.inner.ipLength === ipLength)
    .sort(byTime);

/** The kernel's BTF as bpftool prints it (independently of the addon's libbpf). */
function vmlinuxBtfText(): string {
  const r = spawnSync('bpftool', ['btf', 'dump', 'file', '/sys/kernel/btf/vmlinux'], { encoding: 'utf8', maxBuffer: 512 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe('load-time configuration', () => {
  test("the programs get the running kernel's values of the reasons that are not drops, and auto picks tp_btf where its BTF has the tracepoint", () => {
    const btf = vmlinuxBtfText();
    const start = btf.search(/^\[\d+\] ENUM(64)? 'skb_drop_reason' /m);
    assert.ok(start >= 0, 'the kernel has enum skb_drop_reason');
    const members = btf.slice(start).split('\n').slice(1);
    const enumBlock = members.slice(0, members.findIndex((l) => l.startsWith('['))).join('\n');
    const value = (name: string) => Number(new RegExp(`^\\s+'SKB_${name}' val=(\\d+)$`, 'm').exec(enumBlock)?.[1]);
    const tracer = Tracer.open();
    try {
      const config = tracer.loadedConfig();
      assert.equal(config.reasonNotDroppedYet, value('NOT_DROPPED_YET'));
      assert.equal(config.reasonConsumed, value('CONSUMED'));
      assert.ok(Number.isInteger(config.reasonConsumed));
      const names = loadNative().dropReasons();
      assert.equal(names[String(config.reasonNotDroppedYet)], 'NOT_DROPPED_YET');
      assert.equal(names[String(config.reasonConsumed)], 'CONSUMED');
      assert.equal(config.trackDrops, true);
      assert.equal(config.snaplen, defaultSnaplen());
      assert.deepEqual(config.vxlanPorts, defaultVxlanPorts());
      const hasTracepoint = /^\[\d+\] TYPEDEF 'btf_trace_kfree_skb' /m.test(btf);
      assert.equal(tracer.dropHook, hasTracepoint ? 'tp_btf/kfree_skb' : 'raw_tp/kfree_skb');
    } finally {
      tracer.close();
    }
    const quiet = Tracer.open({ trackDrops: false, snaplen: 100, vxlanPorts: [4789, 9999] });
    try {
      const config = quiet.loadedConfig();
      assert.deepEqual([config.trackDrops, config.snaplen, config.vxlanPorts], [false, 100, [4789, 9999]]);
      assert.equal(quiet.dropHook, null);
    } finally {
      quiet.close();
    }
  });
});

describe('limits', () => {
  test('a tracer watches at most 256 network namespaces: the next attach says so and leaves nothing attached there', () => {
    const prefix = `${uniqueLabName()}w`;
    const names = Array.from({ length: 257 }, (_, i) => `${prefix}${i}`);
    const batch = (verb: string) => names.map((n) => `netns ${verb} ${n}`).join('\n') + '\n';
    let tracer: Tracer | undefined;
    try {
      execSync(['ip', '-batch', '-'], { input: batch('add') });
      tracer = Tracer.open({ attachMode: 'clsact' });
      for (const n of names.slice(0, 256)) tracer.attach([{ node: n, netns: n, device: 'lo', role: 'other', directions: ['ingress'] }]);
      const last = names[256]!;
      assert.throws(() => tracer!.attach([{ node: last, netns: last, device: 'lo', role: 'other', directions: ['ingress'] }]), (err: Error) => {
        assert.ok(err instanceof EnvironmentError);
        assert.match(err.message, new RegExp(`^attach ingress on lo in netns ${last}: add the namespace \\(cookie \\d+\\) to map vxt_netns, which says where drops are reported: Argument list too long \\(a tracer watches at most 256 network namespaces\\)$`));
        return true;
      });
      assert.deepEqual(tcFiltersOf(last, 'lo', 'ingress'), [], 'the filter attached before the failure is gone');
      assert.equal(tracer.hooksAttached().length, 256);
      assert.equal(tcFiltersOf(names[0]!, 'lo', 'ingress').filter((f) => f.programName === 'vxt_tc_ingress').length, 1, 'the others stay');
    } finally {
      tracer?.close();
      execSync(['ip', '-force', '-batch', '-'], { input: batch('del'), allowFail: true });
    }
  });
});

describe('datapath on the lab', () => {
  test('a ping pod-a -> pod-b shows six hops per echo request and reply, one fingerprint, increasing time', async () => {
    await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
      const a = pod(lab, 'pod-a');
      const b = pod(lab, 'pod-b');
      const n1 = node(lab, 'node1');
      const n2 = node(lab, 'node2');
      const before = BigInt(Date.now()) * 1_000_000n;
      const { events, stats } = await traceLab(
        lab,
        { rules: [{ between: [a.ip, b.ip] }] },
        async () => {
          assert.equal(await podPing(lab, 'pod-a', b.ip, ['-c', '3', '-i', '0.2', '-W', '1']), 0, 'pod-a reaches pod-b');
          // a full-size frame: 1400-byte inner IP packet, captured whole at the uplink
          assert.equal(await podPing(lab, 'pod-a', b.ip, ['-c', '1', '-s', '1372', '-M', 'do', '-W', '1']), 0);
        },
        { snaplen: 2048 },
      );
      const after = BigInt(Date.now()) * 1_000_000n;
      assert.equal(stats.lostRecords, 0);
      const requestPath = ['cni0 ingress@node1', 'flannel.1 egress@node1', 'eth1 egress@node1', 'eth1 ingress@node2', 'flannel.1 ingress@node2', 'cni0 egress@node2'];
      const replyPath = ['cni0 ingress@node2', 'flannel.1 egress@node2', 'eth1 egress@node2', 'eth1 ingress@node1', 'flannel.1 ingress@node1', 'cni0 egress@node1'];
      for (const seq of [1, 2, 3]) {
        for (const [type, path, from, to] of [[8, requestPath, n1, n2], [0, replyPath, n2, n1]] as const) {
          const hops = icmpEcho(events, type, seq);
          assert.deepEqual(hops.map(hopName), path, `echo ${type === 8 ? 'request' : 'reply'} seq ${seq}`);
          assert.equal(new Set(hops.map((h) => h.fingerprint)).size, 1, 'one fingerprint at every hop');
          assert.equal(fingerprintOf(fingerprintFieldsOf(hops[0]!)), hops[0]!.fingerprint, 'the TypeScript fingerprint agrees with the kernel');
          for (let i = 1; i < hops.length; i++) assert.ok(hops[i]!.timestampNs > hops[i - 1]!.timestampNs, 'timestamps increase');
          for (const h of hops) {
            assert.ok(h.wallTimeNs >= before - 1_000_000_000n && h.wallTimeNs <= after, 'wall time is now');
            assert.equal(h.inner.src, type === 8 ? a.ip : b.ip);
            assert.equal(h.inner.dst, type === 8 ? b.ip : a.ip);
            assert.equal(h.netnsInode > 0, true);
            if (h.device === 'eth1') {
              assert.equal(h.role, 'uplink');
              assert.ok(h.outer, 'uplink hops carry the outer headers');
              assert.equal(h.outer.src, from.underlayIp);
              assert.equal(h.outer.dst, to.underlayIp);
              assert.equal(h.outer.dstPort, 8472);
              assert.equal(h.outer.protocol, 17);
              assert.equal(h.outer.vni, 1);
            } else {
              assert.equal(h.outer, undefined);
            }
          }
          assert.deepEqual([...new Set(hops.map((h) => h.role))], ['pod-bridge', 'vtep', 'uplink', 'vtep', 'pod-bridge'].filter((r, i, all) => all.indexOf(r) === i));
        }
      }
      assert.equal(icmpEcho(events, 8, 1, 1400).length, 6, 'the full-size request has six hops too');
      const bigUplink = events.filter((e) => e.device === 'eth1' && e.inner.ipLength === 1400 && e.direction === 'egress' && e.node === 'node1');
      assert.equal(bigUplink.length, 1, 'the 1400-byte packet left node1 by eth1 once');
      const frame = bigUplink[0]!.frame;
      assert.equal(frame.length, bigUplink[0]!.skbLength, 'the whole encapsulated frame is captured');
      assert.equal(frame.length, 14 + 20 + 8 + 8 + 14 + 1400);
      assert.equal((frame[36]! << 8) | frame[37]!, 8472, 'outer UDP destination port in the captured frame');
      assert.equal(events.filter((e) => e.kind === 'drop').length, 0, 'a healthy lab drops nothing of this flow');
    });
  });

  test('nat-public-ip: the packet leaves flannel.1 and dies on node1 with a named drop reason, never reaching node2', async () => {
    await withLab({ nodes: 2, podsPerNode: 1, faults: ['nat-public-ip'] }, async (lab) => {
      const a = pod(lab, 'pod-a');
      const b = pod(lab, 'pod-b');
      const reasons = new Set(Object.values(loadNative().dropReasons()));
      const { events } = await traceLab(lab, { rules: [{ between: [a.ip, b.ip] }] }, async () => {
        assert.notEqual(await podPing(lab, 'pod-a', b.ip, ['-c', '1', '-W', '2']), 0, 'the faulted pair fails');
      });
      const request = icmpEcho(events, 8, 1);
      assert.ok(request.length > 0, 'the echo request was seen');
      assert.deepEqual(request.slice(0, 2).map(hopName), ['cni0 ingress@node1', 'flannel.1 egress@node1']);
      assert.equal(new Set(request.map((e) => e.fingerprint)).size, 1);
      assert.equal(request.filter((e) => e.node === 'node2').length, 0, 'nothing reached node2');
      const underlay = request.filter((e) => e.outer);
      for (const e of underlay) assert.equal(e.outer!.dst, '10.0.2.15', 'where it went instead: the shared NAT address');
      assert.equal(underlay.filter((e) => e.outer!.dst === node(lab, 'node2').underlayIp).length, 0);
      const drops = request.filter((e) => e.kind === 'drop');
      assert.ok(drops.length >= 1, `a kernel drop record; hops seen: ${request.map(hopName).join(', ')}`);
      const drop = drops[0]!;
      assert.equal(drop.node, 'node1');
      assert.ok(drop.dropReason && reasons.has(drop.dropReason), `reason ${drop.dropReason} is named from the kernel's BTF`);
      assert.doesNotMatch(drop.dropReason!, /^UNKNOWN_/);
      assert.ok(drop.dropLocation, 'the freeing function is named from /proc/kallsyms');
    });
  });

  test('udp-blocked: a drop record on the receiving node carries the netfilter reason', async () => {
    await withLab({ nodes: 2, podsPerNode: 1, faults: ['udp-blocked'] }, async (lab) => {
      const a = pod(lab, 'pod-a');
      const b = pod(lab, 'pod-b');
      const blocked = lab.faults.find((f) => f.fault === 'udp-blocked')!.node;
      const sender = blocked === 'node2' ? 'pod-a' : 'pod-b';
      const target = sender === 'pod-a' ? b : a;
      // both drop programs: the BTF-typed tracepoint and its raw fallback
      for (const dropHook of ['tp_btf', 'raw_tp'] as const) {
        const { events, dropHook: used } = await traceLab(lab, { rules: [{ between: [a.ip, b.ip] }] }, async () => {
          assert.notEqual(await podPing(lab, sender, target.ip, ['-c', '1', '-W', '1']), 0);
        }, { dropHook });
        assert.equal(used, `${dropHook}/kfree_skb`);
        const request = icmpEcho(events, 8, 1);
        const drops = request.filter((e) => e.kind === 'drop');
        assert.equal(drops.length, 1, `hops: ${request.map(hopName).join(', ')}`);
        const drop = drops[0]!;
        assert.equal(drop.node, blocked);
        assert.equal(drop.dropReason, 'NETFILTER_DROP');
        assert.equal(loadNative().dropReasons()[String(drop.dropReasonCode)], 'NETFILTER_DROP');
        assert.equal(drop.device, 'eth1');
        assert.equal(drop.outer?.dstPort, 8472, 'dropped while still encapsulated');
        assert.equal(drop.fingerprint, request[0]!.fingerprint);
        assert.ok(request.some((e) => e.node === blocked && e.device === 'eth1' && e.direction === 'ingress' && e.kind === 'tc'));
        assert.equal(request.filter((e) => e.node === blocked && e.device === 'flannel.1').length, 0, 'never decapsulated');
      }
    });
  });

  test('a filter for one pod pair emits nothing for concurrent traffic between other pods', async () => {
    await withLab({ nodes: 2, podsPerNode: 2 }, async (lab) => {
      const [a, b, c, d] = ['pod-a', 'pod-b', 'pod-c', 'pod-d'].map((n) => pod(lab, n)) as [ReturnType<typeof pod>, ReturnType<typeof pod>, ReturnType<typeof pod>, ReturnType<typeof pod>];
      const { events, stats } = await traceLab(lab, { rules: [{ between: [a.ip, b.ip] }] }, async () => {
        await Promise.all([
          podPing(lab, 'pod-a', b.ip, ['-c', '5', '-i', '0.1', '-W', '1']),
          podPing(lab, 'pod-c', d.ip, ['-c', '200', '-i', '0.005', '-W', '1']),
          podPing(lab, 'pod-d', c.ip, ['-c', '200', '-i', '0.005', '-W', '1']),
          podPing(lab, 'pod-a', d.ip, ['-c', '50', '-i', '0.01', '-W', '1']), // pod-a, but not the pair
          podPing(lab, 'pod-c', a.ip, ['-c', '50', '-i', '0.01', '-W', '1']), // same node as pod-a
          execAsync(['ip', 'netns', 'exec', c.netns, 'ping', '-q', '-c', '20', '-i', '0.01', '-s', '1000', d.ip], { allowFail: true }),
        ]);
      });
      const pair = new Set([a.ip, b.ip]);
      const foreign = events.filter((e) => !(pair.has(e.inner.src) && pair.has(e.inner.dst)));
      assert.deepEqual(foreign.map((e) => `${e.inner.src}>${e.inner.dst} ${hopName(e)}`), []);
      const paths = new Map<string, HopEvent[]>();
      for (const e of events.filter((x) => x.kind === 'tc')) paths.set(e.fingerprint, [...(paths.get(e.fingerprint) ?? []), e]);
      assert.ok(paths.size >= 8, `the pair's echo requests and replies were followed (${paths.size} packets)`);
      for (const hops of paths.values()) assert.equal(hops.length, 6, 'every hop of each followed packet');
      assert.ok(stats.seen > 10 * stats.records, `the hooks saw the other traffic (${stats.seen} packets, ${stats.records} records)`);
    });
  });

  test('records lost to a full ring buffer are counted per CPU and reported; none go missing silently', async () => {
    await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
      const b = pod(lab, 'pod-b');
      let received = 0;
      const { stats } = await traceLab(
        lab,
        'everything',
        async () => {
          await podPing(lab, 'pod-a', b.ip, ['-f', '-c', '3000', '-s', '1000', '-W', '1']);
        },
        {
          ringBytes: 4096,
          snaplen: 2048,
          onEvents: (batch) => {
            received += batch.length;
            const until = Date.now() + 20; // a slow consumer
            while (Date.now() < until);
          },
          settleMs: 500,
        },
      );
      assert.ok(stats.lostRecords > 0, `a 4 KiB ring buffer under a ping flood loses records (stats: ${JSON.stringify(stats)})`);
      assert.equal(stats.lostRecords, stats.lostPerCpu.reduce((x, y) => x + y, 0));
      assert.equal(received, stats.records, 'every record the kernel wrote reached JavaScript');
      assert.equal(stats.delivered, stats.records);
    });
  });

  test('only the configured VXLAN ports are parsed as VXLAN; rules match protocol and port', async () => {
    await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
      const n1 = node(lab, 'node1');
      const n2 = node(lab, 'node2');
      // 8472 is not a VXLAN port for this tracer: the underlay UDP packet is the packet
      const { events } = await traceLab(
        lab,
        { rules: [{ between: [n1.underlayIp, n2.underlayIp], protocol: 'udp', port: 8472 }] },
        async () => {
          assert.equal(await podPing(lab, 'pod-a', pod(lab, 'pod-b').ip, ['-c', '2', '-i', '0.2', '-W', '1']), 0);
        },
        { vxlanPorts: [4789] },
      );
      assert.equal(events.length, 8, `request and reply, uplink egress and ingress, twice: ${events.map(hopName).join(', ')}`);
      for (const e of events) {
        assert.equal(e.device, 'eth1');
        assert.equal(e.outer, undefined, 'not parsed as VXLAN');
        assert.equal(e.inner.protocol, 17);
        assert.equal(e.inner.dstPort, 8472);
        assert.ok([n1.underlayIp, n2.underlayIp].includes(e.inner.src));
      }
    });
  });

  test('kill -9 of a tracing process leaves no program attached (tcx)', async () => {
    await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
      const { hooks, exited } = await holdTracer(lab.name, 'tcx');
      assert.ok(hooks.length >= 2 * 4 * 2, `attached on every device of every node (${hooks.length})`);
      const live = kernelBpfIds();
      for (const h of hooks) {
        assert.equal(h.mode, 'tcx');
        assert.ok(live.links.has(h.linkId), `link ${h.linkId} exists while the tracer runs`);
        assert.ok(live.programs.has(h.programId));
      }
      await exited();
      const ok = await waitFor(() => {
        const now = kernelBpfIds();
        return hooks.every((h) => !now.links.has(h.linkId) && !now.programs.has(h.programId));
      });
      const now = kernelBpfIds();
      assert.ok(ok, `left behind: links ${hooks.filter((h) => now.links.has(h.linkId)).map((h) => h.linkId)}, programs ${[...new Set(hooks.filter((h) => now.programs.has(h.programId)).map((h) => h.programId))]}`);
      const namespaces = namespacesOf(lab.name);
      assert.ok(namespaces.length >= 7, `the lab's namespaces: ${namespaces.join(', ')}`);
      for (const ns of namespaces) for (const dev of devicesOf(ns)) assert.equal(tcFilters(ns, dev), '', `no tc filter on ${dev} in ${ns}`);
      assert.equal(await podPing(lab, 'pod-a', pod(lab, 'pod-b').ip), 0, 'traffic unaffected');
    });
  });

  test('clsact fallback: a killed tracer leaves its filters, the next one reclaims them, close removes only ours', async () => {
    await withLab({ nodes: 2, podsPerNode: 1 }, async (lab) => {
      const n1 = node(lab, 'node1');
      // someone else's filter on eth1 egress, which must survive
      execSync(['ip', 'netns', 'exec', n1.netns, 'tc', 'qdisc', 'add', 'dev', 'eth1', 'clsact']);
      execSync(['ip', 'netns', 'exec', n1.netns, 'tc', 'filter', 'add', 'dev', 'eth1', 'egress', 'pref', '7', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0', 'flowid', '1:1']);
      const { hooks, exited } = await holdTracer(lab.name, 'clsact');
      assert.ok(hooks.every((h) => h.mode === 'clsact'));
      await exited();
      assert.match(tcFilters(n1.netns, 'cni0'), /vxt_tc_ingress/, 'clsact filters outlive a killed process (why tcx is preferred)');

      const tracer = Tracer.open({ attachMode: 'clsact', filter: { rules: [{ between: [pod(lab, 'pod-a').ip, pod(lab, 'pod-b').ip] }] } });
      const events: HopEvent[] = [];
      try {
        for (const n of lab.nodes) tracer.attachNode(n.name, n.netns);
        tracer.start((e) => events.push(...e));
        assert.equal(await podPing(lab, 'pod-a', pod(lab, 'pod-b').ip), 0);
        await sleep(200);
        await tracer.stop();
        const filters = tcFilters(n1.netns, 'cni0');
        assert.equal(filters.match(/handle 0x7678 /g)?.length, 2, `one filter per direction: the stale ones were replaced, not duplicated:\n${filters}`);
      } finally {
        tracer.close();
      }
      assert.equal(icmpEcho(events, 8, 1).length, 6, 'six hops through clsact filters too');
      for (const n of lab.nodes) for (const dev of devicesOf(n.netns)) assert.doesNotMatch(tcFilters(n.netns, dev), /vxt_/, `no vxtrace filter left on ${dev}@${n.name}`);
      assert.match(tcFilters(n1.netns, 'eth1'), /pref 7 u32/, "the other filter on eth1 is untouched");
    });
  });

  test('errors say what was attempted and why', async () => {
    await withLab({ nodes: 1, podsPerNode: 1 }, async (lab) => {
      const tracer = Tracer.open();
      try {
        assert.throws(() => tracer.attach([{ node: 'node1', netns: lab.nodes[0]!.netns, device: 'nosuch0', role: 'uplink' }]), (err: Error) => {
          assert.ok(err instanceof EnvironmentError);
          assert.match(err.message, new RegExp(`attach ingress on nosuch0 in netns ${lab.nodes[0]!.netns}: interface nosuch0 not found`));
          return true;
        });
        assert.throws(() => tracer.attach([{ node: 'x', netns: `vxt-${lab.name}-nosuch`, device: 'eth0', role: 'uplink' }]), /network namespace vxt-\w+-nosuch not found/);
        assert.throws(() => tracer.attach([{ node: 'node1', netns: lab.nodes[0]!.netns, device: 'cni0', role: 'pod-bridge', directions: ['ingress', 'ingress'] }]), /already attached/);
      } finally {
        tracer.close();
      }
      assert.throws(() => Tracer.open({ snaplen: 5000 }), /snaplen 5000 is out of range/);
      assert.throws(() => Tracer.open({ ringBytes: 5000 }), /ringBytes 5000 must be a power of two/);
      assert.throws(() => tracer.setFilter('everything'), /closed/);
      // without capabilities: the kernel refuses, and the message says what is needed
      const r = await runChild(['open'], { caps: 'none' });
      assert.equal(r.name, 'EnvironmentError');
      assert.match(r.error!, /Operation not permitted \(need CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN: run as root\)/);
    });
  });
});
