// Test helpers for the datapath: trace a lab while something runs, and inspect what the kernel
// has attached (bpftool, tc) independently of the tracer.
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
