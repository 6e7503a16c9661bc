// `vxtrace check` end to end on the lab (root, real kernel): every pair probed over the overlay and
// judged; for every fault the matrix marks exactly the pairs `lab status` says it breaks, and names
// the fault's finding with its fix; the seed's case on 4 nodes; probes never shown by a follow or
// capture running at the same time, and user traffic undisturbed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FaultName, LabState } from '../src/lab/index.js';
import { execAsync, execSync } from '../src/util/exec.js';
import { vxtrace, withLab } from './helpers/lab.js';
import { runFollow } from './helpers/follow.js';

type Pair = { type: 'pair'; from: string; to: string; ok: boolean; reason: string | null; findings: string[]; coverage: { out: string[]; back: string[]; missing: string[] }; legs: { leg: string; outcome: string | null; hops: string[]; kind: string }[] };
type FindingRecord = { type: 'finding'; code: string; key: string; nodes: string[]; fix: string; cause: string; severity: string };

const cliPath = fileURLToPath(new URL('../../bin/vxtrace.js', import.meta.url));

/** Run `vxtrace check ARGS` (async: the test keeps running its own traffic meanwhile). */
async function check(args: string[], netns?: string): Promise<{ status: number | null; stdout: string; stderr: string; pairs: Pair[]; findings: FindingRecord[]; summary: Record<string, unknown> | undefined }> {
  const argv = [process.execPath, cliPath, 'check', ...args];
  // netns: run it as on a real node, in that node's namespace
  const child = spawn(netns ? 'ip' : argv[0]!, netns ? ['netns', 'exec', netns, ...argv] : argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const status = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  const records = args.includes('--json') ? stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { type: string }) : [];
  return {
    status, stdout, stderr,
    pairs: records.filter((r) => r.type === 'pair') as Pair[],
    findings: records.filter((r) => r.type === 'finding') as FindingRecord[],
    summary: records.find((r) => r.type === 'check') as Record<string, unknown> | undefined,
  };
}

/** The node pairs a fault breaks, from `lab status`'s pod pairs. */
function brokenNodePairs(lab: LabState): string[] {
  const nodeOf = new Map(lab.pods.map((p) => [p.name, p.node]));
  return [...new Set(lab.faults.flatMap((f) => f.breaks.map(([a, b]) => `${nodeOf.get(a)}>${nodeOf.get(b)}`)))].sort();
}
const broken = (pairs: Pair[]) => pairs.filter((p) => !p.ok).map((p) => `${p.from}>${p.to}`).sort();

describe('healthy lab', () => {
  test('every pair works, every cell passed all six hooks each way, no finding, exit 0; text: a matrix of ✔', async () => {
    await withLab({ nodes: 3 }, async (lab) => {
      const r = await check(['--cluster', lab.clusterFile, '--json']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.pairs.length, 6);
      assert.deepEqual(broken(r.pairs), []);
      assert.deepEqual(r.findings, []);
      for (const p of r.pairs) {
        // Together the two probes pass cni0 ▸ flannel.1 ▸ eth1 ⇢ eth1 ▸ flannel.1 ▸ cni0 each way...
        assert.deepEqual(p.coverage.out, [`${p.from} cni0 ingress`, `${p.from} flannel.1 egress`, `${p.from} eth1 egress`, `${p.to} eth1 ingress`, `${p.to} flannel.1 ingress`, `${p.to} cni0 egress`]);
        assert.equal(p.coverage.back.length, 6);
        assert.deepEqual(p.coverage.missing, []);
        // ...while a node's own probe skips its cni0 ingress, and the reply it gets skips its cni0 egress.
        const own = p.legs.filter((l) => l.kind === 'base' && l.outcome === 'delivered');
        const request = own.find((l) => l.leg === 'request' && l.hops[0]?.startsWith(`${p.from}/`))!;
        assert.deepEqual(request.hops, [`${p.from}/flannel.1/egress`, `${p.from}/eth1/egress`, `${p.to}/eth1/ingress`, `${p.to}/flannel.1/ingress`, `${p.to}/cni0/egress`]);
        const reply = own.find((l) => l.leg === 'reply' && l.hops[0]?.startsWith(`${p.to}/`))!;
        assert.deepEqual(reply.hops, [`${p.to}/cni0/ingress`, `${p.to}/flannel.1/egress`, `${p.to}/eth1/egress`, `${p.from}/eth1/ingress`, `${p.from}/flannel.1/ingress`]);
      }
      assert.equal(r.summary?.working, 6);
      assert.equal(r.summary?.broken, 0);
      // one probe and one of the VXLAN MTU (1450 bytes, DF) per ordered pair; nothing needed a retry
      assert.equal(r.summary?.probes, 12);
      const t = await check(['--lab', lab.name]);
      assert.equal(t.status, 0, t.stderr);
      assert.match(t.stdout, /^from \\ to +node1 +node2 +node3\nnode1 +· +✔ +✔\nnode2 +✔ +· +✔\nnode3 +✔ +✔ +·$/m);
      assert.match(t.stdout, /6 pairs: 6 work; no findings; 12 probes in/);
      assert.match(t.stderr, /1450 bytes with DF set/);

      // Bad input: one line naming the problem, its own status, no stack trace.
      for (const [args, status, what] of [
        [['--size', '10'], 2, /--size 10 is out of range/],
        [['--protocol', 'sctp'], 2, /sctp/],
        [['--timeout', 'soon'], 2, /--timeout takes a duration/],
        [['--cluster', '/nonexistent.json'], 2, /\/nonexistent\.json/],
      ] as const) {
        const bad = vxtrace(['check', '--cluster', lab.clusterFile, ...args]);
        assert.equal(bad.status, status, `${args.join(' ')}: ${bad.stderr}`);
        assert.match(bad.stderr, what);
        assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
      }
      const unprivileged = vxtrace(['check', '--cluster', lab.clusterFile], { caps: 'none' });
      assert.equal(unprivileged.status, 3);
      assert.match(unprivileged.stderr, /vxtrace check needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN \(missing/);
      assert.equal(unprivileged.stderr.trim().split('\n').length, 1, unprivileged.stderr);
    });
  });

  test('--protocol udp and tcp: the same matrix from datagrams (answered by port unreachable) and SYNs (answered by a reset)', async () => {
    await withLab({ nodes: 2 }, async (lab) => {
      for (const protocol of ['udp', 'tcp']) {
        const r = await check(['--cluster', lab.clusterFile, '--json', '--protocol', protocol]);
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(broken(r.pairs), []);
        for (const p of r.pairs) {
          const base = p.legs.filter((l) => l.kind === 'base');
          assert.ok(base.length >= 4 && base.every((l) => l.outcome === 'delivered'), JSON.stringify(base));
          assert.deepEqual(p.coverage.missing, []);
        }
        assert.match(r.stderr, new RegExp(`probing 2 pairs of 2 nodes: ${protocol.toUpperCase()} from`));
      }
    });
  });

  test('--size beyond the VXLAN MTU: every cell broken, saying the packet cannot be sent', async () => {
    await withLab({ nodes: 2 }, async (lab) => {
      const r = await check(['--cluster', lab.clusterFile, '--json', '--size', '1500']);
      assert.equal(r.status, 1);
      for (const p of r.pairs) assert.match(p.reason ?? '', /^1500 B: (back: )?not sent: local error: message too long, mtu=1450$/);
    });
  });

  test("on a real node (vxtrace in node1's namespace, a cluster without lab annotations): node1's pairs, from node1's hooks alone", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vxt-check-'));
    try {
      await withLab({ nodes: 3 }, async (lab) => {
        const list = JSON.parse(readFileSync(lab.clusterFile, 'utf8')) as { items: { metadata: { annotations?: Record<string, string> } }[] };
        for (const item of list.items) delete item.metadata.annotations?.['vxtrace.io/netns'];
        const file = join(dir, 'cluster.json');
        writeFileSync(file, JSON.stringify(list));
        const r = await check(['--cluster', file, '--json'], lab.nodes[0]!.netns);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /node2 sends no probes: this machine cannot send from it/);
        assert.match(r.stderr, /note: 2 pairs not probed/);
        const cell = (a: string, b: string) => r.pairs.find((p) => p.from === a && p.to === b)!;
        for (const [a, b] of [['node1', 'node2'], ['node1', 'node3'], ['node2', 'node1'], ['node3', 'node1']]) {
          const c = cell(a!, b!);
          assert.equal(c.ok, true, `${a}>${b}: ${c.reason}`);
          // node1's probe leaves for a node nobody traces; its reply comes back through node1's hooks
          for (const l of c.legs) assert.ok(l.hops.every((h) => h.startsWith('node1/')), l.hops.join(' '));
          assert.ok(c.coverage.missing.length > 0);
        }
        for (const [a, b] of [['node2', 'node3'], ['node3', 'node2']]) assert.equal(cell(a!, b!).ok, false);
        assert.equal(r.summary?.notProbed, 2);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('one node: no pair to probe, exit 0', async () => {
    await withLab({ nodes: 1 }, async (lab) => {
      const r = await check(['--cluster', lab.clusterFile, '--json']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /1 node on the overlay: no pair of nodes to probe/);
      assert.equal(r.summary?.pairs, 0);
    });
  });
});

// Each fault: the finding that must explain its broken cells, and the node it names.
const FAULT_CASES: { fault: FaultName; code: string; node: string }[] = [
  { fault: 'nat-public-ip', code: 'DUPLICATE_PUBLIC_IP', node: 'node1' },
  { fault: 'stale-fdb', code: 'WRONG_UNDERLAY_DST', node: 'node1' },
  { fault: 'stale-vtep-mac', code: 'VTEP_MAC_MISMATCH', node: 'node1' },
  { fault: 'missing-fdb', code: 'FDB_MISSING', node: 'node1' },
  { fault: 'vni-mismatch', code: 'VNI_MISMATCH', node: 'node2' },
  { fault: 'port-mismatch', code: 'PORT_MISMATCH', node: 'node2' },
  { fault: 'mtu', code: 'MTU_EXCEEDED', node: 'node1' },
  { fault: 'udp-blocked', code: 'DROPPED', node: 'node2' },
  { fault: 'bad-checksum', code: 'BAD_OUTER_CHECKSUM', node: 'node1' },
  { fault: 'forward-drop', code: 'DROPPED', node: 'node2' },
];

describe('every lab fault: the matrix marks exactly the pairs it breaks, explained by its finding with the fix', () => {
  for (const c of FAULT_CASES) {
    test(c.fault, async () => {
      await withLab({ nodes: 3, faults: [c.fault] }, async (lab) => {
        const r = await check(['--cluster', lab.clusterFile, '--json']);
        const expected = brokenNodePairs(lab);
        assert.deepEqual(broken(r.pairs), expected, r.pairs.map((p) => `${p.from}>${p.to} ${p.ok ? 'ok' : p.reason}`).join('\n'));
        const f = r.findings.find((x) => x.code === c.code && x.nodes.includes(c.node));
        assert.ok(f, `${c.code} on ${c.node} among ${r.findings.map((x) => `${x.code}@${x.nodes.join('+')}`).join(', ')}`);
        assert.ok(f.fix.length > 10 && f.cause.length > 10, 'with its cause and fix');
        for (const p of r.pairs.filter((x) => !x.ok)) {
          assert.ok(p.findings.includes(f.key), `${p.from}>${p.to} (${p.reason}) is explained by ${f.key}: ${p.findings.join(', ')}`);
          assert.ok(p.reason && p.reason.length > 5, 'a broken cell says why');
        }
        if (c.fault === 'mtu') {
          // pods' big packets do not cross, small ones and the VXLAN MTU's do: no pair is broken, the warning says why pods' do not
          assert.equal(expected.length, 0);
          assert.equal(r.status, 0, r.stderr);
          assert.equal(f.severity, 'warning');
        } else {
          assert.ok(expected.length > 0);
          assert.equal(r.status, 1, r.stderr);
        }
      });
    });
  }
});

test("the seed's case on 4 nodes: every off-diagonal cell ✖ with DUPLICATE_PUBLIC_IP, one finding, the --iface fix", async () => {
  await withLab({ nodes: 4, faults: ['nat-public-ip'] }, async (lab) => {
    const r = await check(['--cluster', lab.clusterFile, '--json']);
    assert.equal(r.status, 1);
    assert.equal(r.pairs.length, 12);
    assert.ok(r.pairs.every((p) => !p.ok), 'every pair is broken');
    assert.equal(r.findings.length, 1, r.findings.map((f) => f.key).join(', '));
    const f = r.findings[0]!;
    assert.equal(f.code, 'DUPLICATE_PUBLIC_IP');
    assert.match(f.fix, /--iface=eth1/);
    for (const p of r.pairs) {
      assert.deepEqual(p.findings, [f.key]);
      assert.equal(p.reason, `loop on ${p.from} flannel.1`);
    }
    const t = await check(['--lab', lab.name]);
    assert.equal(t.status, 1);
    assert.match(t.stdout, /^node1 +· +✖ loop on node1 flannel\.1 +✖ loop on node1 flannel\.1 +✖ loop on node1 flannel\.1$/m);
    assert.equal(t.stdout.match(/^✖ [A-Z_]+ \(error\)/gm)?.length, 1, t.stdout);
    assert.match(t.stdout, /✖ DUPLICATE_PUBLIC_IP \(error\)[^]*fix: +restart flanneld with --iface=eth1[^]*explains: all 12 broken pairs/);
  });
});

test('probes do not disturb user traffic and are never shown by a follow or a capture running at the same time', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vxt-check-'));
  try {
    await withLab({ nodes: 3 }, async (lab) => {
      const file = join(dir, 'all.pcapng');
      const podA = lab.pods.find((p) => p.name === 'pod-a')!;
      const podB = lab.pods.find((p) => p.name === 'pod-b')!;
      const gateways = lab.nodes.map((n) => n.vtepIp.replace(/\.0$/, '.1'));
      let checked: Awaited<ReturnType<typeof check>> | undefined;
      let userPing: { status: number; stdout: string } | undefined;
      let followed: Awaited<ReturnType<typeof runFollow>> | undefined;
      // A capture of everything and a follow of pod-a ⇄ pod-b (whose pod is a probe target), both
      // running while pod-a pings pod-b and the check probes every pair, twice.
      const captured = await runFollow(['capture', '--cluster', lab.clusterFile, '--write', file, '--duration', '16'], async () => {
        followed = await runFollow(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--duration', '12'], async () => {
          const ping = execAsync(['ip', 'netns', 'exec', podA.netns, 'ping', '-c', '60', '-i', '0.1', '-W', '1', '-q', podB.ip], { allowFail: true });
          checked = await check(['--cluster', lab.clusterFile, '--json']);
          const again = await check(['--cluster', lab.clusterFile, '--json']);
          assert.equal(again.status, 0, again.stderr);
          userPing = await ping;
        }, 40_000);
      }, 60_000);
      assert.equal(checked?.status, 0, checked?.stderr);
      assert.ok(Number(checked?.summary?.probes) >= 12, 'the check sent its probes while both ran');
      // Undisturbed: every one of the user's pings was answered.
      assert.equal(userPing?.status, 0, userPing?.stdout);
      assert.match(userPing!.stdout, /60 packets transmitted, 60 received, 0% packet loss/);
      // follow: the user's pings, and nothing else.
      const paths = followed!.records.filter((r) => r.type === 'path') as unknown as { srcPod: string | null; dstPod: string | null; outcome: string; inner: { src: string; dst: string } }[];
      assert.equal(paths.length, 120, `${paths.length} paths: 60 requests and 60 replies`);
      for (const p of paths) {
        assert.deepEqual([p.srcPod, p.dstPod].sort(), ['default/pod-a', 'default/pod-b']);
        assert.equal(p.outcome, 'delivered');
      }
      assert.deepEqual(followed!.records.filter((r) => r.type === 'finding'), []);
      assert.equal(followed!.status, 0, followed!.stderr);
      // capture: the user's pings are in the file and in its paths; not one probe packet is.
      assert.equal(captured.status, 0, captured.stderr);
      const gw = gateways.map((g) => `ip.addr == ${g}`).join(' || ');
      const tshark = (filter: string) => execSync(['tshark', '-r', file, '-d', 'udp.port==8472,vxlan', '-Y', filter, '-T', 'fields', '-e', 'frame.number']).stdout.trim().split('\n').filter(Boolean);
      assert.ok(tshark(`icmp.type == 8 && ip.src == ${podA.ip} && ip.dst == ${podB.ip}`).length >= 60 * 6, 'every hop of every user ping request is in the file');
      assert.deepEqual(tshark(`icmp && (${gw})`), [], 'no ICMP from or to a pod-bridge address: no probe');
      const read = vxtrace(['read', file, '--json']);
      const recs = read.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; inner?: { src: string; dst: string; protocol: number } });
      const icmp = recs.filter((r) => r.type === 'path' && r.inner!.protocol === 1);
      assert.equal(icmp.length, 120);
      assert.ok(icmp.every((r) => !gateways.includes(r.inner!.src) && !gateways.includes(r.inner!.dst)));
      assert.deepEqual(recs.filter((r) => r.type === 'finding'), []);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
