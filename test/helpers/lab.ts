// Test helpers for the lab: unique lab names, a lab that is always taken down, pings, the CLI.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { labDown, labUp, listNetns, type LabOptions, type LabState } from '../../src/lab/index.js';
import { execAsync } from '../../src/util/exec.js';
import { withoutCapabilities, type CapabilityName } from './privileges.js';

let counter = 0;
/** A lab name no other test (or run) uses: t + pid + counter, base 36, at most 12 chars. */
export function uniqueLabName(): string {
  return `t${process.pid.toString(36)}${(counter++).toString(36)}${Math.floor(Math.random() * 36 * 36).toString(36)}`.slice(0, 12);
}

const upLabs = new Set<string>();
// Whatever happens in a test, every lab it brought up goes down when the file is done.
after(async () => {
  for (const name of upLabs) await labDown(name).catch(() => {});
});

/** Bring a lab up for the body; take it down afterwards even when the body throws. */
export async function withLab<T>(opts: Partial<LabOptions>, body: (lab: LabState) => Promise<T>): Promise<T> {
  const name = opts.name ?? uniqueLabName();
  upLabs.add(name);
  try {
    const lab = await labUp({ name, nodes: opts.nodes ?? 3, podsPerNode: opts.podsPerNode ?? 1, faults: opts.faults ?? [] });
    return await body(lab);
  } finally {
    await labDown(name);
    upLabs.delete(name);
  }
}

/** Ping from a pod's namespace; true when a reply came back. */
export async function ping(lab: LabState, from: string, toIp: string, extra: string[] = []): Promise<boolean> {
  const pod = lab.pods.find((p) => p.name === from)!;
  const r = await execAsync(['ip', 'netns', 'exec', pod.netns, 'ping', '-c', '1', '-W', '1', '-q', ...extra, toIp], { allowFail: true });
  return r.status === 0;
}

/** Ping every ordered pair of pods on different nodes, concurrently; returns 'a>b' -> reached. */
export async function pingAllCrossNode(lab: LabState): Promise<Map<string, boolean>> {
  const pairs = lab.pods.flatMap((a) => lab.pods.filter((b) => b.node !== a.node).map((b) => [a, b] as const));
  const results = await Promise.all(pairs.map(([a, b]) => ping(lab, a.name, b.ip)));
  return new Map(pairs.map(([a, b], i) => [`${a.name}>${b.name}`, results[i]!]));
}

export function namespacesOf(labName: string): string[] {
  return listNetns().filter((n) => n.startsWith(`vxt-${labName}-`));
}

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const cliPath = fileURLToPath(new URL('../../../bin/vxtrace.js', import.meta.url));

/**
 * Run the CLI as a user would; returns status and output. `caps: 'none'` runs it as root with every
 * capability dropped (what a user without privileges sees), a list keeps only those (setpriv names:
 * 'net_admin', ...), as a container that drops the others.
 */
export function vxtrace(args: string[], opts: { env?: NodeJS.ProcessEnv; caps?: 'all' | 'none' | readonly CapabilityName[]; timeoutMs?: number } = {}) {
  const caps = opts.caps ?? 'all';
  const argv = [process.execPath, cliPath, ...args];
  const [cmd, ...rest] = caps === 'all' ? argv : withoutCapabilities(argv, caps === 'none' ? [] : caps);
  const r = spawnSync(cmd!, rest, {
    encoding: 'utf8',
    env: opts.env ?? process.env,
    timeout: opts.timeoutMs ?? 60_000,
  });
  if (r.error) throw new Error(`cannot run ${cmd}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
