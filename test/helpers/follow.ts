// Running `vxtrace follow` as a user would, against a lab: start it, wait until it is attached,
// make traffic, collect its NDJSON.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cliPath = fileURLToPath(new URL('../../../bin/vxtrace.js', import.meta.url));

export interface FollowRun {
  status: number | null;
  stdout: string;
  stderr: string;
  records: { type: string; [k: string]: unknown }[];
}

/**
 * Start `vxtrace ARGS`, wait for its ready line on stderr ("following ..." / "capturing ...": every
 * hook attached), run `traffic`, and resolve when it exits (by --count/--duration) or after
 * `timeoutMs` (then SIGINT, as Ctrl-C).
 */
export async function runFollow(
  args: string[],
  traffic: () => Promise<unknown>,
  timeoutMs = 30_000,
  ready = /^(following|capturing) /m,
  /** How the CLI is started (e.g. under setpriv, from a copy of the checkout). */
  cli: readonly string[] = [process.execPath, cliPath],
): Promise<FollowRun> {
  const child = spawn(cli[0]!, [...cli.slice(1), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const attached = new Promise<boolean>((resolve) => {
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (ready.test(stderr)) resolve(true);
    });
    child.once('exit', () => resolve(false));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
  try {
    if (await attached) await traffic();
    const status = await exited;
    const records = stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l, i) => {
        try {
          return JSON.parse(l) as FollowRun['records'][number];
        } catch (err) {
          throw new Error(`vxtrace ${args.join(' ')} (exit ${status}): NDJSON line ${i + 1} does not parse (${(err as Error).message}): ${l.slice(0, 200)}...\nstderr: ${stderr.slice(-2000)}`);
        }
      });
    return { status, stdout, stderr, records };
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
