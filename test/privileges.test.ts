// Capabilities, not uid (root, real kernel): the way the tests drop them really leaves none; root
// lacking some is refused with the line naming them; a user granted them through an ambient set is
// let through the check and really traces; SYS_ADMIN stands in for BPF and PERFMON as the kernel
// says. Nothing here depends on where the checkout is: what another user runs is copied for it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkoutRoot, copyCheckout, publicTempDir } from './helpers/checkout.js';
import { asUserWithCapabilities, capabilitySets, withoutCapabilities } from './helpers/privileges.js';
import { namespacesOf, ping, uniqueLabName, vxtrace, withLab } from './helpers/lab.js';
import { runFollow } from './helpers/follow.js';

const NOBODY = 65534;
const TRACE_CAPS = ['bpf', 'perfmon', 'net_admin', 'sys_admin'];
const privilegesModule = join(checkoutRoot, 'dist', 'src', 'util', 'privileges.js');

function runJson(argv: string[]): Record<string, string> {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, string>;
}

test("setpriv as the tests use it: root with no capability in any set, and nothing it starts gets one back", () => {
  const script = `
    import { readFileSync } from 'node:fs';
    import { execFileSync } from 'node:child_process';
    import { effectiveCapabilities } from ${JSON.stringify(pathToFileURL(privilegesModule).href)};
    process.stdout.write(JSON.stringify({
      uid: String(process.getuid()), mask: String(effectiveCapabilities()),
      self: readFileSync('/proc/self/status', 'utf8'), child: execFileSync('cat', ['/proc/self/status'], { encoding: 'utf8' }),
    }));`;
  const none = runJson(withoutCapabilities([process.execPath, '--input-type=module', '-e', script]));
  assert.equal(none.uid, '0', 'still root: it owns the checkout wherever it is');
  assert.equal(none.mask, '0', 'the module reads CapEff 0');
  for (const which of ['self', 'child'] as const) {
    const sets = capabilitySets(none[which]!);
    assert.deepEqual(Object.keys(sets).sort(), ['CapAmb', 'CapBnd', 'CapEff', 'CapInh', 'CapPrm']);
    for (const [set, hex] of Object.entries(sets)) assert.equal(BigInt(`0x${hex}`), 0n, `${which} ${set} = ${hex}`);
  }
  // Keeping some: exactly those stay (here CAP_NET_ADMIN, bit 12), in the process and its children.
  const some = runJson(withoutCapabilities([process.execPath, '--input-type=module', '-e', script], ['net_admin']));
  assert.equal(some.mask, String(1n << 12n));
  assert.equal(capabilitySets(some.child!).CapEff, '0000000000001000');
});

test('root that keeps only some capabilities is refused, with one line naming the missing ones; nothing is made', () => {
  const name = uniqueLabName();
  const r = vxtrace(['lab', 'up', '--name', name], { caps: ['net_admin'] });
  assert.equal(r.status, 3, r.stderr);
  assert.equal(
    r.stderr,
    "vxtrace: vxtrace lab up needs CAP_SYS_ADMIN (missing; it has CAP_NET_ADMIN): root here lacks them (a container or service that drops capabilities): grant them (the container's securityContext capabilities, or the service's CapabilityBoundingSet)\n",
  );
  assert.deepEqual(namespacesOf(name), []);
});

test('a user granted the capabilities in an ambient set is let through the check; without them told what to do', () => {
  // The module and what it imports, copied where that user can read them (not the checkout).
  const dir = publicTempDir('vxt-privs-');
  try {
    mkdirSync(join(dir, 'src', 'util'), { recursive: true });
    copyFileSync(privilegesModule, join(dir, 'src', 'util', 'privileges.js'));
    copyFileSync(join(checkoutRoot, 'dist', 'src', 'errors.js'), join(dir, 'src', 'errors.js'));
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    writeFileSync(
      join(dir, 'check.js'),
      `import { requirePrivileges } from './src/util/privileges.js';
      const [what, ...work] = process.argv.slice(2);
      const euid = process.geteuid();
      try { requirePrivileges(what, work); process.stdout.write(JSON.stringify({ euid, ok: true })); }
      catch (e) { process.stdout.write(JSON.stringify({ euid, name: e.name, error: e.message })); }`,
    );
    const check = (caps: string[], what: string, ...work: string[]) => runJson(asUserWithCapabilities(NOBODY, caps, [process.execPath, join(dir, 'check.js'), what, ...work]));

    assert.deepEqual(check(TRACE_CAPS, 'vxtrace follow', 'trace'), { euid: NOBODY, ok: true });
    assert.deepEqual(check(['net_admin', 'sys_admin', 'dac_override'], 'vxtrace lab up', 'lab'), { euid: NOBODY, ok: true });

    const without = check([], 'vxtrace follow', 'trace');
    assert.equal(without.name, 'EnvironmentError');
    assert.equal(
      without.error,
      "vxtrace follow needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN (missing; it has none of them): run it as root (sudo), or grant them (setcap, an ambient set, or the container's securityContext)",
    );
    // /run/netns belongs to root: another user also needs CAP_DAC_OVERRIDE to build the lab.
    assert.match(check(['net_admin', 'sys_admin'], 'vxtrace lab up', 'lab').error!, /^vxtrace lab up needs CAP_DAC_OVERRIDE \(missing; it has CAP_NET_ADMIN, CAP_SYS_ADMIN\): run it as root/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('let through means it traces: uid 65534 with the capabilities, and root with only NET_ADMIN and SYS_ADMIN, see the ping delivered', async () => {
  // A runnable copy of the built tree that uid 65534 can read.
  const dir = publicTempDir('vxt-privs-tree-');
  try {
    copyCheckout(dir, 'runtime');
    const cli = [process.execPath, join(dir, 'bin', 'vxtrace.js')];
    await withLab({ nodes: 2 }, async (lab) => {
      const podB = lab.pods.find((p) => p.name === 'pod-b')!;
      const args = ['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--count', '2', '--duration', '8'];
      const runs = {
        'uid 65534 with an ambient set': asUserWithCapabilities(NOBODY, TRACE_CAPS, cli),
        'root with CAP_NET_ADMIN and CAP_SYS_ADMIN only': withoutCapabilities(cli, ['net_admin', 'sys_admin']),
      };
      for (const [who, argv] of Object.entries(runs)) {
        const r = await runFollow(args, () => ping(lab, 'pod-a', podB.ip), 20_000, undefined, argv);
        assert.equal(r.status, 0, `${who}: ${r.stderr}`);
        const paths = r.records.filter((x) => x.type === 'path');
        assert.equal(paths.length, 2, `${who}: echo request and reply: ${r.stdout}`);
        for (const p of paths) assert.equal(p.outcome, 'delivered', `${who}: ${JSON.stringify(p)}`);
      }

      const noSysAdmin = vxtrace(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--duration', '1'], { caps: ['bpf', 'perfmon', 'net_admin'] });
      assert.equal(noSysAdmin.status, 3, noSysAdmin.stderr);
      assert.match(noSysAdmin.stderr, /^vxtrace: vxtrace follow needs CAP_SYS_ADMIN \(missing; it has CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN\): root here lacks them/);
      assert.equal(noSysAdmin.stderr.trim().split('\n').length, 1, noSysAdmin.stderr);

      const [cmd, ...rest] = asUserWithCapabilities(NOBODY, [], [...cli, ...args]);
      const nobody = spawnSync(cmd!, rest, { encoding: 'utf8', timeout: 30_000 });
      assert.equal(nobody.status, 3, nobody.stderr);
      assert.match(nobody.stderr, /^vxtrace: vxtrace follow needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN \(missing; it has none of them\): run it as root \(sudo\), or grant them/);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
