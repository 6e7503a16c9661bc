// The unprivileged cases pass from a checkout in a private directory (root, real kernel): this
// checkout, built outputs included, is copied under a fresh mkdtemp (mode 0700, as `mktemp -d` or
// /root makes it) and those cases run there. They drop capabilities instead of switching to a
// user who could not enter that directory; one still run as another uid fails here with
// "Cannot find module .../bin/vxtrace.js".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyCheckout } from './helpers/checkout.js';
import { asUserWithCapabilities } from './helpers/privileges.js';

/** Every test that shows what a user without privileges sees, by file and name. */
const UNPRIVILEGED_CASES: { file: string; name: string }[] = [
  { file: 'lab.test.js', name: 'without the capabilities' },
  { file: 'lab.test.js', name: 'lab exec without the capabilities says so' },
  { file: 'follow.test.js', name: 'unknown pod, pod off the overlay, missing cluster file, no capabilities: one line each, distinct status' },
  { file: 'datapath.test.js', name: 'errors say what was attempted and why' },
  { file: 'capture.test.js', name: "read of a trace written during nat-public-ip reports the live run's finding codes" },
  { file: 'pcapng-lab.test.js', name: 'nat-public-ip (the seed)' },
];
/** Files run whole: every test in them is about privileges. */
const WHOLE_FILES = ['privileges.test.js'];

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Runs node --test in the copy; returns TAP output and the counts of its summary. */
function runTests(copy: string, files: string[], namePattern?: string) {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT; // a nested runner must report as a top-level one
  const args = ['--test', '--test-reporter=tap', '--test-concurrency=1', ...(namePattern ? [`--test-name-pattern=${namePattern}`] : []), ...files.map((f) => join(copy, 'dist', 'test', f))];
  const r = spawnSync(process.execPath, args, { cwd: copy, env, encoding: 'utf8', timeout: 300_000 });
  const count = (what: string) => Number(new RegExp(`^# ${what} (\\d+)$`, 'm').exec(r.stdout)?.[1] ?? NaN);
  return { status: r.status, out: `${r.stdout}\n${r.stderr}`, tests: count('tests'), pass: count('pass'), fail: count('fail') };
}

test('from a copy under a 0700 directory, the unprivileged cases pass', (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'vxt-private-'));
  try {
    assert.equal(statSync(parent).mode & 0o777, 0o700, 'mkdtemp makes it private');
    const copy = join(parent, 'vxtrace');
    const started = process.hrtime.bigint();
    copyCheckout(copy, 'all');
    t.diagnostic(`copied the checkout (node_modules hard-linked) in ${Number(process.hrtime.bigint() - started) / 1e6} ms`);

    // The directory really is out of reach of another user: switching uid would fail here.
    const [cmd, ...rest] = asUserWithCapabilities(65534, [], [process.execPath, join(copy, 'bin', 'vxtrace.js'), '--version']);
    const other = spawnSync(cmd!, rest, { encoding: 'utf8' });
    assert.notEqual(other.status, 0, other.stdout);
    assert.match(other.stderr, /Cannot find module|EACCES|permission denied/i);

    const whole = runTests(copy, WHOLE_FILES);
    assert.equal(whole.status, 0, whole.out);
    assert.ok(whole.tests > 0 && whole.pass === whole.tests && whole.fail === 0, whole.out);

    const files = [...new Set(UNPRIVILEGED_CASES.map((c) => c.file))];
    const picked = runTests(copy, files, UNPRIVILEGED_CASES.map((c) => `^${escape(c.name)}$`).join('|'));
    assert.equal(picked.status, 0, picked.out);
    assert.equal(picked.fail, 0, picked.out);
    assert.equal(picked.pass, UNPRIVILEGED_CASES.length, `every case ran and passed:\n${picked.out}`);
    for (const c of UNPRIVILEGED_CASES) assert.match(picked.out, new RegExp(`^\\s*ok \\d+ - ${escape(c.name)}$`, 'm'), c.name);
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});
