// Running system tools (ip, tc, nft, ...) with errors that say what was attempted.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError } from '../errors.js';

export interface ExecResult {
  status: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: ExecResult,
  ) {
    super(`\`${argv.join(' ')}\` failed (exit ${result.status}): ${result.stderr.trim() || result.stdout.trim()}`);
    this.name = 'CommandError';
  }
}

const missingToolHint: Record<string, string> = {
  ip: 'iproute2', bridge: 'iproute2', tc: 'iproute2', nft: 'nftables', ping: 'iputils-ping',
  ethtool: 'ethtool', tshark: 'tshark', bpftool: 'bpftool', iperf3: 'iperf3', tcpdump: 'tcpdump', socat: 'socat', nsenter: 'util-linux',
};

function spawnFailure(cmd: string, err: NodeJS.ErrnoException): Error {
  if (err.code === 'ENOENT') {
    const pkg = missingToolHint[cmd];
    return new EnvironmentError(
      `${cmd} is not installed${pkg ? ` (Debian package ${pkg})` : ''}: run \`npm run setup\` as root, or apt-get install ${pkg ?? cmd}`,
    );
  }
  return new EnvironmentError(`cannot run ${cmd}: ${err.message}`);
}

/** Run a command synchronously; throws CommandError on non-zero exit unless `allowFail`. */
export function execSync(argv: readonly string[], opts: { allowFail?: boolean; input?: string; timeoutMs?: number } = {}): ExecResult {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd!, args, {
    encoding: 'utf8',
    input: opts.input,
    timeout: opts.timeoutMs ?? 30_000,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (r.error) throw spawnFailure(cmd!, r.error as NodeJS.ErrnoException);
  const result = { status: r.status ?? (r.signal ? 128 : 1), stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (result.status !== 0 && !opts.allowFail) throw new CommandError(argv, result);
  return result;
}

/** Run a command asynchronously; resolves with its result, rejects with CommandError on non-zero exit unless `allowFail`. */
export function execAsync(
  argv: readonly string[],
  opts: { allowFail?: boolean; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs, signal: opts.signal });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.name === 'AbortError') resolve({ status: 130, stdout, stderr });
      else reject(spawnFailure(cmd!, err));
    });
    child.on('close', (code, sig) => {
      const result = { status: code ?? (sig ? 128 : 1), stdout, stderr };
      if (result.status !== 0 && !opts.allowFail) reject(new CommandError(argv, result));
      else resolve(result);
    });
  });
}

/** argv prefix that runs a command inside a named network namespace (or as is for the current one). */
export function inNetns(netns: string | undefined, argv: readonly string[]): string[] {
  return netns ? ['ip', 'netns', 'exec', netns, ...argv] : [...argv];
}

/** True when an executable of that name is on PATH. */
export function onPath(tool: string, path = process.env.PATH ?? ''): boolean {
  return path.split(':').filter(Boolean).some((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
