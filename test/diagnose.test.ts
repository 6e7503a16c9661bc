// `vxtrace diagnose` on the lab, as root against the real kernel: the right code, node and fix for
// every fault visible from state, nothing for a healthy lab, nothing wrong for faults only packets
// show; and a hand-made FDB change picked up by a running watch. Every lab is removed in `after`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { labDown, labHeal, labUp } from '../src/lab/index.js';
import type { FaultName, LabState } from '../src/lab/types.js';
import { run } from '../src/cli/main.js';
import { loadClusterFile } from '../src/cluster/list.js';
import { KernelWatcher, readKernelStates } from '../src/cluster/kernel-reader.js';
import { ClusterModel } from '../src/cluster/model.js';
import { diagnoseState } from '../src/diagnose/state.js';
import { execSync } from '../src/util/exec.js';

const cliPath = fileURLToPath(new URL('../../bin/vxtrace.js', import.meta.url));
const made: string[] = [];
const tag = (process.pid % 10000).toString(36);
let seq = 0;

after(async () => {
  for (const name of made) await labDown(name).catch(() => {}); // idempotent: a no-op for labs already down
});

/** p, with its rejection handled should nobody await it (a step before it failed): awaiting p still throws. */
function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/** A lab for the body, taken down afterwards even when the body throws (and again in `after`, should that fail). */
async function withLab(faults: FaultName[], body: (s: LabState) => Promise<void>): Promise<void> {
  const name = `dg${tag}${(seq++).toString(36)}`;
  made.push(name);
  try {
    await body(await labUp({ name, nodes: 3, podsPerNode: 1, faults }));
  } finally {
    await labDown(name);
  }
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function diagnose(args: string[]): Promise<{ status: number; out: string; err: string; findings: Record<string, unknown>[]; summary?: Record<string, unknown> }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const status = await run(['node', 'vxtrace', 'diagnose', ...args], { stdout, stderr });
  const records = args.includes('--json') ? stdout.text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
  // The last record is the summary (docs/ndjson.md); the findings come before it.
  const findings = records.filter((x) => x.type !== 'summary');
  return { status, out: stdout.text, err: stderr.text, findings, summary: records.at(-1) };
}

const summary = (fs: Record<string, unknown>[]) => fs.map((f) => `${f.code}@${(f.nodes as string[]).join('+')}`);

test('diagnose --json on the lab ends with a summary: every node checked with its kernel state, the routes compared, the codes', () => withLab(['stale-fdb'], async (s) => {
  const r = await diagnose(['--cluster', s.clusterFile, '--json']);
  assert.deepEqual(r.summary, {
    type: 'summary', command: 'diagnose', nodes: 3, kernelState: ['node1', 'node2', 'node3'], noKernelState: [],
    compared: [
      "flannel annotations (public-ip, backend-data) against each node's addresses", 'pod CIDRs and VTEP addresses',
      'VXLAN devices (VNI, port, local, lower device, MTU, up)', 'neighbours and FDB entries for every peer', "routes to every other node's underlay address", 'pod bridge MTU',
    ],
    findings: 1, errors: 1, findingCodes: ['WRONG_UNDERLAY_DST'],
  });
}));

test('healthy lab: no finding, exit 0; text output says so', () => withLab([], async (s) => {
  const r = await diagnose(['--cluster', s.clusterFile, '--json']);
  assert.deepEqual(r.findings, []);
  assert.equal(r.status, 0);
  const t = await diagnose(['--lab', s.name]);
  assert.equal(t.status, 0);
  assert.match(t.out, /kernel state read for node1, node2, node3/);
  assert.match(t.out, /node2 underlay 192\.168\.1\.122: InternalIP 192\.168\.1\.122 on eth1/);
  assert.match(t.out, /no findings/);
}));

const cases: { fault: FaultName; expect: string[]; status: number; check: (f: Record<string, unknown>) => void }[] = [
  {
    fault: 'nat-public-ip', expect: ['DUPLICATE_PUBLIC_IP@node1+node2+node3'], status: 1,
    check: (f) => {
      assert.match(f.cause as string, /every node registered public-ip 10\.0\.2\.15, the address of eth0 \(the NAT interface/);
      assert.match(f.fix as string, /restart flanneld with --iface=eth1 \(the interface holding this node's unique address: node1 192\.168\.1\.121, node2 192\.168\.1\.122, node3 192\.168\.1\.123\), or set --public-ip/);
    },
  },
  {
    fault: 'stale-fdb', expect: ['WRONG_UNDERLAY_DST@node1'], status: 1,
    check: (f) => {
      assert.match((f.evidence as { observed: string }).observed, /node1's FDB sends node2's VTEP MAC 0e:76:78:00:00:02 to 192\.168\.1\.200/);
      assert.match(f.fix as string, /on node1: bridge fdb replace 0e:76:78:00:00:02 dev flannel\.1 dst 192\.168\.1\.122 self permanent/);
    },
  },
  {
    fault: 'stale-vtep-mac', expect: ['VTEP_MAC_MISMATCH@node1'], status: 1,
    check: (f) => assert.match(f.fix as string, /on node1: ip neigh replace 10\.244\.2\.0 lladdr 0e:76:78:00:01:02 dev flannel\.1 nud permanent/),
  },
  {
    fault: 'missing-fdb', expect: ['FDB_MISSING@node1'], status: 1,
    check: (f) => assert.match(f.fix as string, /on node1: bridge fdb replace 0e:76:78:00:00:02 dev flannel\.1 dst 192\.168\.1\.122 self permanent/),
  },
  { fault: 'vni-mismatch', expect: ['VNI_MISMATCH@node2'], status: 1, check: (f) => assert.match(f.fix as string, /flanneld on node2 .*"VNI": 1/) },
  { fault: 'port-mismatch', expect: ['PORT_MISMATCH@node2'], status: 1, check: (f) => assert.match(f.cause as string, /node2's flannel\.1 uses UDP port 4789 while node1 and node3 use 8472/) },
  { fault: 'mtu', expect: ['MTU_EXCEEDED@node1'], status: 0, check: (f) => assert.match(f.fix as string, /set the pod MTU on node1 to 1450/) },
  {
    fault: 'vxlan-closed', expect: ['NO_DECAP@node2'], status: 1,
    check: (f) => {
      assert.match(f.cause as string, /^node2's flannel\.1 is down: a VXLAN device listens on its UDP port \(8472\) only while up/);
      assert.match(f.fix as string, /^on node2: ip link set flannel\.1 up, then restart flanneld there/);
    },
  },
];

for (const c of cases) {
  test(`fault ${c.fault}: ${c.expect.join(', ')}, with the fix`, () => withLab([c.fault], async (s) => {
    const r = await diagnose(['--cluster', s.clusterFile, '--json']);
    assert.equal(r.err, '');
    assert.deepEqual(summary(r.findings), c.expect);
    c.check(r.findings[0]!);
    assert.equal(r.status, c.status);
    assert.ok(r.findings.every((f) => f.type === 'finding' && typeof f.code === 'string'));
  }));
}

test('faults only packets show (udp-blocked, bad-checksum, forward-drop): state blames nobody', () => withLab(['udp-blocked', 'forward-drop', 'bad-checksum'], async (s) => {
  const r = await diagnose(['--cluster', s.clusterFile, '--json']);
  assert.deepEqual(r.findings, []);
}));

test('new faults only packets show (forward-rule, underlay-unreachable): state blames nobody', () => withLab(['forward-rule', 'underlay-unreachable'], async (s) => {
  const r = await diagnose(['--cluster', s.clusterFile, '--json']);
  assert.deepEqual(r.findings, []);
}));

test('the seed healed the way the finding says (flanneld --iface=eth1 on every node): diagnose is clean', () => withLab(['nat-public-ip'], async (s) => {
  assert.deepEqual(summary((await diagnose(['--cluster', s.clusterFile, '--json'])).findings), ['DUPLICATE_PUBLIC_IP@node1+node2+node3']);
  await labHeal(s.name, 'nat-public-ip');
  const r = await diagnose(['--cluster', s.clusterFile, '--json']);
  assert.deepEqual(r.findings, []);
  assert.equal(r.status, 0);
}));

test('diagnose --watch prints the finding when an FDB entry is changed by hand, and stops on SIGINT', () => withLab([], async (s) => {
  const child = spawn(process.execPath, [cliPath, 'diagnose', '--cluster', s.clusterFile, '--watch'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const seen = (re: RegExp, what: string) => new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}; stdout: ${out}; stderr: ${err}`)), 15_000);
    const check = () => { if (re.test(out)) { clearTimeout(t); resolve(); } };
    child.stdout.on('data', check);
    check();
  });
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  try {
    await seen(/no findings/, 'the first diagnosis');
    await new Promise((r) => setTimeout(r, 300)); // the monitors are up
    const node1 = s.nodes[0]!;
    execSync(['bridge', '-n', node1.netns, 'fdb', 'replace', s.nodes[2]!.vtepMac, 'dev', 'flannel.1', 'dst', '192.168.1.199', 'self', 'permanent']);
    await seen(/node1's kernel state changed: 1 finding\n.*WRONG_UNDERLAY_DST \(error\) on node1/, 'the finding after the change');
    assert.match(out, /node1's FDB sends node3's VTEP MAC 0e:76:78:00:00:03 to 192\.168\.1\.199/);
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 1, err);
  assert.equal(err, '');
}));

test('diagnose --watch follows the seed being healed (flannel.1 recreated, FDB rewritten, cluster file re-registered) to no findings', () => withLab(['nat-public-ip'], async (s) => {
  const child = spawn(process.execPath, [cliPath, 'diagnose', '--cluster', s.clusterFile, '--watch'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const until = async (pred: () => boolean, what: string) => {
    for (let i = 0; i < 150 && !pred(); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(pred(), `timed out waiting for ${what}; stdout: ${out}; stderr: ${err}`);
  };
  try {
    await until(() => /DUPLICATE_PUBLIC_IP \(error\) on node1, node2, node3/.test(out), 'the seed finding');
    await new Promise((r) => setTimeout(r, 300)); // the monitors are up
    await labHeal(s.name, 'nat-public-ip');
    await until(() => /: no findings\n$/.test(out), 'no findings after the heal');
    await new Promise((r) => setTimeout(r, 1000));
    assert.match(out, /: no findings\n$/, 'and it stays clean');
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, err);
}));

test('an FDB entry changed by hand while a watch runs is picked up, and the fix undoes it', () => withLab([], async (s) => {
  const objects = loadClusterFile(s.clusterFile);
  let model = ClusterModel.build(objects, await readKernelStates(objects));
  assert.deepEqual(diagnoseState(model), []);
  const node1 = s.nodes[0]!;
  const node2 = s.nodes[1]!;
  const w = new KernelWatcher({ netns: node1.netns, debounceMs: 50 });
  try {
    await w.start();
    const changed = new Promise<void>((resolve) => w.once('change', (st) => {
      model = model.withKernelState('node1', st);
      resolve();
    }));
    execSync(['bridge', '-n', node1.netns, 'fdb', 'replace', node2.vtepMac, 'dev', 'flannel.1', 'dst', '192.168.1.201', 'self', 'permanent']);
    await changed;
    const fs = diagnoseState(model);
    assert.deepEqual(fs.map((f) => `${f.code}@${f.nodes.join('+')}`), ['WRONG_UNDERLAY_DST@node1']);
    // Apply the fix the finding gives, verbatim; the watch sees the kernel healed.
    const cmd = fs[0]!.fix.replace(/^on node1: /, '').split(';')[0]!.trim().split(/\s+/);
    const healed = new Promise<void>((resolve) => w.once('change', (st) => {
      model = model.withKernelState('node1', st);
      resolve();
    }));
    execSync([cmd[0]!, '-n', node1.netns, ...cmd.slice(1)]);
    await healed;
    assert.deepEqual(diagnoseState(model), []);
  } finally {
    w.stop();
  }
}));

test('a watch sees what explains drops change too: rp_filter, the nftables ruleset, tc qdiscs (each re-read without other traffic)', () => withLab([], async (s) => {
  const node1 = s.nodes[0]!;
  const w = new KernelWatcher({ netns: node1.netns, debounceMs: 50 });
  /** Resolves with the first state the watch emits that satisfies `ok`, or rejects after 5 s naming what it waited for. */
  const until = (what: string, ok: (st: NonNullable<typeof w.state>) => boolean) => quiet(new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { w.off('change', on); reject(new Error(`the watch did not see ${what} within 5 s`)); }, 5000);
    const on = (st: NonNullable<typeof w.state>) => {
      if (!ok(st)) return;
      clearTimeout(timer);
      w.off('change', on);
      resolve();
    };
    w.on('change', on);
  }));
  try {
    const first = await w.start();
    assert.notEqual(first.rpFilter?.eth1, 1, 'the lab starts without strict rp_filter on eth1');
    assert.ok(!(first.firewall ?? []).some((c) => c.table === `vxtwatch${tag}`));
    assert.ok(!(first.qdiscs ?? []).some((q) => q.device === 'eth1' && q.kind === 'pfifo'));

    let seen = until('rp_filter 1 on eth1', (st) => st.rpFilter?.eth1 === 1);
    execSync(['ip', 'netns', 'exec', node1.netns, 'sysctl', '-qw', 'net.ipv4.conf.eth1.rp_filter=1']);
    await seen;

    seen = until('the new nftables chain', (st) => (st.firewall ?? []).some((c) => c.table === `vxtwatch${tag}` && c.hook === 'forward'));
    execSync(['ip', 'netns', 'exec', node1.netns, 'nft', '-f', '-'], {
      input: `table inet vxtwatch${tag} { chain vxforward { type filter hook forward priority 0; udp dport 8472 drop; }; }\n`,
    });
    await seen;

    seen = until('the pfifo qdisc on eth1', (st) => (st.qdiscs ?? []).some((q) => q.device === 'eth1' && q.kind === 'pfifo'));
    execSync(['tc', '-n', node1.netns, 'qdisc', 'add', 'dev', 'eth1', 'root', 'pfifo', 'limit', '100']);
    await seen;
  } finally {
    w.stop();
  }
  // Stopped monitors exit on SIGTERM: give them a moment.
  const running = new RegExp(`monitor.*${node1.netns}\\b|${node1.netns}\\b.*monitor`);
  let ps = '';
  for (let i = 0; i < 20; i++) {
    ps = execSync(['ps', '-eo', 'args'], { allowFail: true }).stdout;
    if (!running.test(ps)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.doesNotMatch(ps, running, 'every monitor stopped');
}));

test('a watch on a namespace that does not exist fails with a clear EnvironmentError and leaves no monitor running', async () => {
  const w = new KernelWatcher({ netns: `vxt-nosuch${tag}` });
  await assert.rejects(w.start(), (e: Error) => e.name === 'EnvironmentError' && /network namespace vxt-nosuch\w+ does not exist: is the lab up\?/.test(e.message));
  const ps = execSync(['ps', '-eo', 'args'], { allowFail: true }).stdout;
  assert.doesNotMatch(ps, new RegExp(`monitor.*vxt-nosuch${tag}|vxt-nosuch${tag}.*monitor`));
});

test('bad input: missing and malformed cluster files are one-line usage errors (exit 2)', async () => {
  let r = await diagnose(['--cluster', '/nonexistent/vxtrace-cluster.json']);
  assert.equal(r.status, 2);
  assert.equal(r.err.trim().split('\n').length, 1);
  r = await diagnose(['--lab', 'nosuchlab9']);
  assert.equal(r.status, 3);
  assert.match(r.err, /no lab named 'nosuchlab9' is up/);
});
