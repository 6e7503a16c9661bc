#!/usr/bin/env node
// Runs every test with node:test: unit tests (test/unit, pure, no privileges) and the privileged
// integration tests (test/*.test.js: real kernel, network namespaces, BPF; need root: they drop
// capabilities and switch users with setpriv to show what others see).
//   node scripts/run-tests.mjs            all tests
//   node scripts/run-tests.mjs --unit     unit tests only
//   node scripts/run-tests.mjs PATTERN    only compiled test files whose path contains PATTERN
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const testDir = join(root, 'dist', 'test');
if (!existsSync(testDir)) {
  process.stderr.write('run-tests: dist/test is missing: run `npm run build` first\n');
  process.exit(1);
}
const files = [];
const walk = (d) => {
  for (const e of readdirSync(d).sort()) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.test.js')) files.push(p);
  }
};
walk(testDir);

const args = process.argv.slice(2);
let selected = files;
if (args.includes('--unit')) selected = selected.filter((f) => f.includes(`${join('test', 'unit')}/`));
const patterns = args.filter((a) => !a.startsWith('--'));
if (patterns.length) selected = selected.filter((f) => patterns.some((p) => f.includes(p)));
if (!selected.length) {
  process.stderr.write('run-tests: no test file matched\n');
  process.exit(1);
}
if (!args.includes('--unit')) {
  // The same check, from effective capabilities, as vxtrace makes before it traces or builds the lab.
  const { privilegeProblem, effectiveCapabilities } = await import(pathToFileURL(join(root, 'dist', 'src', 'util', 'privileges.js')).href);
  const problem = privilegeProblem('the integration test run', ['trace', 'lab'], effectiveCapabilities(), process.geteuid());
  if (problem) process.stderr.write(`run-tests: ${problem}; or use --unit\n`);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...selected], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
