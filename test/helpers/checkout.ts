// Copies of this checkout, built outputs included, for tests that must not depend on where the
// checkout is: a runnable tree another user can read, or the whole checkout in a private directory.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const checkoutRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** What `bin/vxtrace.js` needs to run: the entry point, the compiled TypeScript, the addon, the BPF object. */
const RUNTIME = ['package.json', 'bin', 'dist', join('native', 'build', 'Release'), join('bpf', '.output')];

function cp(flags: string, from: string, to: string): void {
  const r = spawnSync('cp', [flags, from, to], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp ${flags} ${from} ${to}: ${r.stderr.trim()}`);
}

/**
 * Copy the checkout into `dest` (created): everything but .git (`what: 'all'`), or only what the
 * CLI needs at run time (`'runtime'`). node_modules is hard-linked (it is 100 MB; cp -al takes
 * ~0.05 s where rebuilding the clone takes ~13 s), copied when linking across filesystems fails.
 */
export function copyCheckout(dest: string, what: 'all' | 'runtime'): void {
  mkdirSync(dest, { recursive: true });
  const entries = what === 'runtime' ? RUNTIME : readdirSync(checkoutRoot).filter((e) => e !== '.git' && e !== 'node_modules');
  for (const e of entries) {
    mkdirSync(dirname(join(dest, e)), { recursive: true });
    cp('-a', join(checkoutRoot, e), join(dest, e));
  }
  const link = spawnSync('cp', ['-al', join(checkoutRoot, 'node_modules'), join(dest, 'node_modules')], { encoding: 'utf8' });
  if (link.status !== 0) cp('-a', join(checkoutRoot, 'node_modules'), join(dest, 'node_modules'));
}

/**
 * A new directory that every user can enter and read (0755, under a temporary directory whose
 * every ancestor others may search), or a clear error saying which ancestor is private.
 */
export function publicTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  for (let d = dirname(dir); ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) throw new Error(`${d} is not searchable by other users: set TMPDIR to a directory they can reach (e.g. /tmp)`);
    if (d === dirname(d)) break;
  }
  return dir;
}
