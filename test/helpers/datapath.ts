// Test helpers for the datapath: trace a lab while something runs, hold a tracer in another
// process (to kill it), and inspect what the kernel has attached (bpftool, tc) independently of
// the tracer.
import { withoutCapabilities } from './privileges.js';
import { after, afterEach, before } from 'node:test';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Tracer, type FlowFilter, type HopEvent, type TracerOptions, type TracerStats, type AttachedHook } from '../../src/datapath/index.js';
import { execAsync, execSync } from '../../src/util/exec.js';
import type { LabState } from '../../src/lab/index.js';

export interface TraceResult {
  events: HopEvent[];
  stats: TracerStats;
  hooks: AttachedHook[];
  /** The kfree_skb program that reported drops (tp_btf/kfree_skb or raw_tp/kfree_skb). */
  dropHook: string | null;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two namespaces of the test file's own (`vxt-<short>…-a`, `-b`, unique names) joined by a veth
 * pair, v0 in a and v1 in b, addressed `<v4>.1` and `<v4>.2` (/24) and, with `v6`, `<v6>1` and
 * `<v6>2` (/64): made before the file's tests, removed after them, whatever they did.
 */
export function vethPair(short: string, v4: string, opts: { v6?: string; mtu?: number } = {}): { nsA: string; nsB: string } {
  const tag = `${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const nsA = `vxt-${short}${tag}-a`;
  const nsB = `vxt-${short}${tag}-b`;
  before(() => {
    execSync(['ip', 'netns', 'add', nsA]);
    execSync(['ip', 'netns', 'add', nsB]);
    const ip = (ns: string, ...args: string[]) => execSync(['ip', '-n', ns, ...args]);
    const mtu = opts.mtu ? ['mtu', String(opts.mtu)] : [];
    ip(nsA, 'link', 'add', 'v0', ...mtu, 'type', 'veth', 'peer', 'name', 'v1', ...mtu, 'netns', nsB);
    for (const [ns, dev, n] of [[nsA, 'v0', 1], [nsB, 'v1', 2]] as const) {
      ip(ns, 'addr', 'add', `${v4}.${n}/24`, 'dev', dev);
      if (opts.v6) ip(ns, 'addr', 'add', `${opts.v6}${n}/64`, 'dev', dev, 'nodad');
      ip(ns, 'link', 'set', dev, 'up');
    }
  });
  after(() => {
    for (const ns of [nsA, nsB]) execSync(['ip', 'netns', 'del', ns], { allowFail: true });
  });
  return { nsA, nsB };
}

/** Attach to every node of the lab (discovered from its kernel), run `action`, return what came. */
export async function traceLab(
  lab: LabState,
  filter: FlowFilter,
  action: () => Promise<unknown>,
  opts: TracerOptions & { settleMs?: number; onEvents?: (e: HopEvent[]) => void } = {},
): Promise<TraceResult> {
  const tracer = Tracer.open({ ...opts, filter });
  try {
    for (const node of lab.nodes) tracer.attachNode(node.name, node.netns);
    const events: HopEvent[] = [];
    tracer.start((batch) => {
      events.push(...batch);
      opts.onEvents?.(batch);
    });
    await action();
    await sleep(opts.settleMs ?? 300);
    await tracer.stop();
    return { events, stats: tracer.stats(), hooks: tracer.hooksAttached(), dropHook: tracer.dropHook };
  } finally {
    tracer.close();
  }
}

export function pod(lab: LabState, name: string) {
  const p = lab.pods.find((x) => x.name === name);
  if (!p) throw new Error(`no pod ${name} in lab ${lab.name}`);
  return p;
}

export function node(lab: LabState, name: string) {
  const n = lab.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`no node ${name} in lab ${lab.name}`);
  return n;
}

/** Ping from a pod; resolves with the exit status. */
export async function podPing(lab: LabState, from: string, toIp: string, args: string[] = ['-c', '1', '-W', '1']): Promise<number> {
  const r = await execAsync(['ip', 'netns', 'exec', pod(lab, from).netns, 'ping', '-q', ...args, toIp], { allowFail: true });
  return r.status;
}

/** Kernel program ids and link ids that exist right now (bpftool). */
export function kernelBpfIds(): { programs: Set<number>; links: Set<number> } {
  const progs = JSON.parse(execSync(['bpftool', 'prog', 'show', '-j']).stdout || '[]') as { id: number }[];
  const links = JSON.parse(execSync(['bpftool', 'link', 'show', '-j']).stdout || '[]') as { id: number }[];
  return { programs: new Set(progs.map((p) => p.id)), links: new Set(links.map((l) => l.id)) };
}

/** `tc filter show` output for both directions of a device in a namespace ('' when none). */
export function tcFilters(netns: string, device: string): string {
  let out = '';
  for (const dir of ['ingress', 'egress']) {
    const r = execSync(['ip', 'netns', 'exec', netns, 'tc', 'filter', 'show', 'dev', device, dir], { allowFail: true });
    out += r.stdout.trim();
  }
  return out;
}

/** The devices of a namespace. */
export function devicesOf(netns: string): string[] {
  const links = JSON.parse(execSync(['ip', '-n', netns, '-j', 'link', 'show']).stdout) as { ifname: string }[];
  return links.map((l) => l.ifname);
}

/** One filter of `tc -j filter show` on a clsact hook. */
export interface TcFilter {
  pref: number;
  /** e.g. '0x7678' (u32: its 'fh', e.g. '800::800') */
  handle: string;
  kind: string;
  /** eBPF filters: the kernel's program id and name. */
  programId?: number;
  programName?: string;
  /** Classic BPF filters (`bpf bytecode ...`). */
  bytecode?: boolean;
}

/** The filters (not the chain headers) on one direction of a device in a namespace. */
export function tcFiltersOf(netns: string, device: string, direction: 'ingress' | 'egress'): TcFilter[] {
  const r = execSync(['ip', 'netns', 'exec', netns, 'tc', '-j', 'filter', 'show', 'dev', device, direction], { allowFail: true });
  const rows = JSON.parse(r.stdout.trim() || '[]') as { pref: number; kind: string; options?: { handle?: string; fh?: string; prog?: { id: number; name: string }; bytecode?: unknown } }[];
  return rows
    .filter((f) => f.options)
    .map((f) => ({
      pref: f.pref,
      handle: f.options!.handle ?? f.options!.fh ?? '',
      kind: f.kind,
      ...(f.options!.prog ? { programId: f.options!.prog.id, programName: f.options!.prog.name } : {}),
      ...(f.options!.bytecode ? { bytecode: true } : {}),
    }));
}

const childPath = fileURLToPath(new URL('./datapath-child.js', import.meta.url));

export interface HeldHook {
  node: string;
  device: string;
  direction: string;
  mode: string;
  programId: number;
  linkId: number;
}

const heldChildren = new Set<ReturnType<typeof spawn>>();
// A tracer process must never outlive its test, whatever assertion failed before the kill.
const killHeld = () => {
  for (const c of heldChildren) c.kill('SIGKILL');
};
afterEach(killHeld);
after(killHeld);

/** Starts a tracer in another process; `exited()` kills it with SIGKILL and waits for it. */
export async function holdTracer(labName: string, mode: string): Promise<{ hooks: HeldHook[]; exited: () => Promise<void> }> {
  const child = spawn(process.execPath, [childPath, 'hold', labName, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  heldChildren.add(child);
  child.on('exit', () => heldChildren.delete(child));
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const gone = new Promise<void>((r) => child.on('exit', () => r()));
  try {
    const line = await Promise.race([
      new Promise<string>((resolve) => createInterface({ input: child.stdout }).once('line', resolve)),
      gone.then(() => Promise.reject(new Error(`tracer process exited: ${stderr}`))),
      sleep(20_000).then(() => Promise.reject(new Error('tracer process did not report in 20 s'))),
    ]);
    const { hooks } = JSON.parse(line) as { hooks: HeldHook[] };
    return {
      hooks,
      exited: async () => {
        child.kill('SIGKILL');
        await gone;
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

/** Runs datapath-child with `args` (as `uid` when given); its last JSON line. */
/** Runs the child helper; `caps: 'none'` as root with every capability dropped. */
export async function runChild(args: string[], opts: { caps?: 'all' | 'none' } = {}): Promise<{ ok?: boolean; error?: string; name?: string }> {
  const argv = [process.execPath, childPath, ...args];
  const [cmd, ...rest] = opts.caps === 'none' ? withoutCapabilities(argv) : argv;
  const child = spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  await new Promise((r) => child.on('exit', r));
  if (!out.trim()) throw new Error(`child printed nothing: ${err}`);
  return JSON.parse(out.trim().split('\n').pop()!);
}

export async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (cond()) return true;
    await sleep(100);
  }
  return cond();
}
