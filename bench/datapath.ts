// Datapath benchmark (not a test): run as root with
//   node dist/bench/datapath.js [--seconds S] [--rounds R] [--baseline DIR]
// Brings up its own two-node lab, measures, takes the lab down, and prints:
//   0. what one hook costs per packet, in the kernel (BPF_PROG_TEST_RUN, bench/hook-cost.c): a
//      packet not followed (a pod's TCP packet; the same in VXLAN) and one followed;
//   1. hop records per second delivered into JavaScript (Tracer.start, decoded HopEvents) vs. a plain C
//      consumer of the same ring buffer (bench/ringbuf-consumer.c), under the same load: iperf3 UDP
//      with 64-byte payloads pod-a -> pod-b at full speed, every hook of both nodes, filter everything;
//   2. iperf3 TCP throughput pod-a -> pod-b across nodes with no tracer / a tracer following that flow
//      (six hops; as `follow` without --write: headers only, shedding when behind) / a tracer following
//      another flow (pod-c <-> pod-d) / `tcpdump -w` on node1's eth1,
//      as ratios to the no-tracer run (median of R interleaved rounds), and what the hooks cost per
//      packet on that traffic while following another flow (the kernel's run-time statistics);
//   3. the RSS of this process.
// With --baseline DIR (another built checkout, e.g. the commit before a change), its tracer runs the
// same configurations in the same rounds, side by side. Last line:
//   datapath: follow/base R, other/base R, tcpdump/base R, js/c R
// Targets (issue 15): other/base >= 0.99; follow/base >= 0.95; a hook <= 20 ns for a packet not followed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { labDown, labUp, type LabState } from '../src/lab/index.js';
import * as thisDatapath from '../src/datapath/index.js';
import type { FlowFilter } from '../src/datapath/index.js';
import { BPF_OBJECT_PATH } from '../src/datapath/native.js';
import { requirePrivileges } from '../src/util/privileges.js';
import { followTracerOptions } from '../src/cli/follow-run.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  const v = i >= 0 ? Number(args[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) {
    process.stderr.write(`bench: ${name} needs a positive number\n`);
    process.exit(2);
  }
  return v;
};
const SECONDS = opt('--seconds', 5);
const ROUNDS = opt('--rounds', 3);
const BASELINE = args.includes('--baseline') ? args[args.indexOf('--baseline') + 1] : undefined;
// --hooks-only: only the hooks' cost (test runs, and the statistics rounds on iperf3 traffic), for trying a change quickly.
const HOOKS_ONLY = args.includes('--hooks-only');
const RING_BYTES = 16 << 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

type Datapath = Pick<typeof thisDatapath, 'Tracer' | 'discoverAttachPoints'>;

function buildTool(name: string): string {
  const src = join(root, 'bench', `${name}.c`);
  const out = join(root, 'bench', 'build', name);
  if (!existsSync(out) || statSync(out).mtimeMs < Math.max(statSync(src).mtimeMs, statSync(join(root, 'bpf', 'vxtrace.h')).mtimeMs)) {
    mkdirSync(join(root, 'bench', 'build'), { recursive: true });
    const r = spawnSync('cc', ['-O2', '-Wall', '-I', join(root, 'bpf'), src, '-lbpf', '-o', out], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`bench: cannot build bench/${name}.c (needs cc and libbpf-dev)`);
  }
  return out;
}

/** Runs a command without blocking the event loop (batches keep arriving meanwhile). */
function run(argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], timeout: (SECONDS + 30) * 1000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ status: code ?? 1, stdout, stderr }));
  });
}

const podOf = (lab: LabState, name: string) => lab.pods.find((p) => p.name === name)!;

/** iperf3 client in pod-a to pod-b; returns bits/s received. */
async function iperf(lab: LabState, extra: string[]): Promise<number> {
  const a = podOf(lab, 'pod-a');
  const b = podOf(lab, 'pod-b');
  const r = await run(['ip', 'netns', 'exec', a.netns, 'iperf3', '-c', b.ip, '-t', String(SECONDS), '-J', ...extra]);
  if (r.status !== 0) throw new Error(`iperf3 failed: ${r.stderr || r.stdout.slice(0, 500)}`);
  const j = JSON.parse(r.stdout);
  return j.end.sum_received?.bits_per_second ?? j.end.sum?.bits_per_second;
}

function allPoints(dp: Datapath, lab: LabState) {
  return lab.nodes.flatMap((n) => dp.discoverAttachPoints(n.name, n.netns).points);
}

/** Hop records per second into JavaScript under `load`. */
async function jsRate(dp: Datapath, lab: LabState, load: () => Promise<number>): Promise<{ rate: number; lost: number }> {
  // Never shedding: what JavaScript takes from a ring buffer that is always full, as the C consumer's
  // (an older tree knows no `shed` and ignores it).
  const tracer = dp.Tracer.open({ filter: 'everything', ringBytes: RING_BYTES, shed: 'never' });
  try {
    tracer.attach(allPoints(dp, lab));
    let count = 0;
    tracer.start((events) => (count += events.length));
    const t0 = process.hrtime.bigint();
    await load();
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    await sleep(500);
    await tracer.stop();
    return { rate: count / elapsed, lost: tracer.stats().lostRecords };
  } finally {
    tracer.close();
  }
}

/** Runs and ns of some programs over a time (the kernel's BPF run-time statistics). */
interface ProgramRuns {
  runs: number;
  ns: number;
}
const nsPerRun = (r: ProgramRuns) => (r.runs ? r.ns / r.runs : 0);

/**
 * What each of the given programs took while `during` ran (the kernel's BPF run-time statistics,
 * on only for that time: they add two sched_clock() reads to every run, counted in the run's time).
 */
async function programCost(tool: string, programIds: number[], during: () => Promise<number>): Promise<{ bps: number; seconds: number; byId: Map<number, ProgramRuns> }> {
  const child = spawn(tool, ['stats', ...programIds.map(String)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const out: string[] = [];
  await new Promise<void>((resolve, reject) => {
    lines.on('line', (l) => (l === 'ready' ? resolve() : out.push(l)));
    child.once('exit', (code) => reject(new Error(`hook-cost stats exited (${code})`)));
  });
  const t0 = process.hrtime.bigint();
  const bps = await during();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  child.stdin!.end();
  await new Promise((r) => child.once('exit', r));
  const byId = new Map<number, ProgramRuns>();
  for (const l of out) {
    const j = JSON.parse(l) as { id: number; runs: number; ns: number };
    byId.set(j.id, { runs: j.runs, ns: j.ns });
  }
  return { bps, seconds, byId };
}

const sumRuns = (rs: (ProgramRuns | undefined)[]): ProgramRuns => ({
  runs: rs.reduce((n, r) => n + (r?.runs ?? 0), 0),
  ns: rs.reduce((n, r) => n + (r?.ns ?? 0), 0),
});

/** The id of the program called `name` in the same BPF object as program `id` (0: none). */
function siblingProgram(tool: string, id: number, name: string): number {
  const r = spawnSync(tool, ['sibling', String(id), name], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) || 0 : 0;
}

/**
 * An empty tc program (TC_ACT_UNSPEC, nothing else) attached with tcx at both directions of
 * `points` (NETNS:DEVICE), as the tracer attaches its own, for the time of `during`.
 */
async function withEmptyProgram<T>(tool: string, points: string[], during: (programId: number) => Promise<T>): Promise<T> {
  const child = spawn(tool, ['empty', ...points], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  let id = 0;
  await new Promise<void>((resolve, reject) => {
    lines.on('line', (l) => (l === 'ready' ? resolve() : (id = (JSON.parse(l) as { id: number }).id)));
    child.once('exit', (code) => reject(new Error(`hook-cost empty exited (${code})`)));
  });
  try {
    return await during(id);
  } finally {
    child.stdin!.end();
    await new Promise((r) => child.once('exit', r));
  }
}

/** Per case: ns net of the harness (an empty program run the same way), and the harness's own ns. */
type HookCosts = Record<string, { ns: number; harness: number }>;

function hookCost(tool: string, object: string): HookCosts {
  const r = spawnSync(tool, [object], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench: hook-cost ${object}: ${r.stderr}`);
  const out: HookCosts = {};
  for (const l of r.stdout.trim().split('\n')) {
    const j = JSON.parse(l) as { case: string; ns: number; harness: number };
    out[j.case] = { ns: j.ns, harness: j.harness };
  }
  return out;
}

/**
 * hookCost of each object, ROUNDS times in turn, the least per case: this VM runs a whole
 * invocation either fast or ~2x slower (the harness's own ns says which), so one invocation per
 * tree compares two moods of the machine, not two trees.
 */
function hookCosts(tool: string, objects: string[]): HookCosts[] {
  const best: HookCosts[] = objects.map(() => ({}));
  for (let r = 0; r < Math.max(ROUNDS, 3); r++) {
    objects.forEach((o, i) => {
      for (const [k, v] of Object.entries(hookCost(tool, o))) {
        const b = best[i]![k];
        if (!b || v.ns + v.harness < b.ns + b.harness) best[i]![k] = v;
      }
    });
  }
  return best;
}

async function main(): Promise<void> {
  requirePrivileges('the datapath benchmark', ['trace', 'lab']);
  const consumer = buildTool('ringbuf-consumer');
  const hookTool = buildTool('hook-cost');
  const base: Datapath | undefined = BASELINE ? await import(pathToFileURL(join(BASELINE, 'dist', 'src', 'datapath', 'index.js')).href) : undefined;
  const baseObject = BASELINE ? join(BASELINE, 'bpf', '.output', 'vxtrace.bpf.o') : undefined;
  const name = `bn${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
  let lab: LabState | undefined;
  const children: ChildProcess[] = [];
  const cleanup = async () => {
    for (const c of children) c.kill('SIGKILL');
    await labDown(name).catch(() => {});
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    process.stdout.write(`bench: lab ${name} (2 nodes, 2 pods each), ${SECONDS} s per run, ${ROUNDS} rounds${BASELINE ? `, baseline ${BASELINE}` : ''}\n`);

    // 0. one hook, per packet, in the kernel
    const measured = hookCosts(hookTool, [BPF_OBJECT_PATH, ...(baseObject ? [baseObject] : [])]);
    const costs = [{ label: 'this tree', c: measured[0]! }, ...(baseObject ? [{ label: 'baseline', c: measured[1]! }] : [])];
    process.stdout.write(
      `\nns per packet for one hook (BPF_PROG_TEST_RUN, 1454-byte frames, least of 25 runs, least of ${Math.max(ROUNDS, 3)} invocations in turn;\n` +
        `net of the empty program run the same way, raw and empty in brackets):\n`,
    );
    for (const k of Object.keys(costs[0]!.c)) {
      process.stdout.write(
        `  ${k.padEnd(40)} ${costs.map((x) => { const v = x.c[k]; return v ? `${x.label} ${v.ns.toFixed(0).padStart(4)} ns (${(v.ns + v.harness).toFixed(0)}, ${v.harness.toFixed(0)})` : `${x.label}    -`; }).join('   ')}\n`,
      );
    }

    lab = await labUp({ name, nodes: 2, podsPerNode: 2, faults: [] });
    const b = podOf(lab, 'pod-b');
    const server = spawn('ip', ['netns', 'exec', b.netns, 'iperf3', '-s'], { stdio: 'ignore' });
    children.push(server);
    await sleep(500);

    // 1. record rate: JavaScript vs. plain C, same load
    let jsOverC = NaN;
    if (!HOOKS_ONLY) {
    const udpLoad = ['-u', '-b', '0', '-l', '64'];
    const points = allPoints(thisDatapath, lab).map((p) => `${p.netns}:${p.device}`);
    const c = spawn(consumer, [BPF_OBJECT_PATH, String(SECONDS + 1), String(RING_BYTES), ...points], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(c);
    const lines = createInterface({ input: c.stdout! });
    const cLines: string[] = [];
    const ready = new Promise<void>((resolve) => lines.on('line', (l) => (l === 'ready' ? resolve() : cLines.push(l))));
    const cDone = new Promise<void>((resolve) => c.on('exit', () => resolve()));
    await ready;
    const tc0 = process.hrtime.bigint();
    await iperf(lab, udpLoad);
    const cLoadSeconds = Number(process.hrtime.bigint() - tc0) / 1e9;
    await cDone;
    const cResult = JSON.parse(cLines.pop() ?? '{}') as { records: number; lost: number };
    const cRate = cResult.records / cLoadSeconds;
    const js = await jsRate(thisDatapath, lab, () => iperf(lab!, udpLoad));
    const jsBase = base ? await jsRate(base, lab, () => iperf(lab!, udpLoad)) : undefined;
    process.stdout.write(
      `\nhop records/s (iperf3 UDP 64-byte payloads, all hooks of 2 nodes, filter everything, ring ${RING_BYTES >> 20} MiB):\n` +
        `  plain C consumer        ${fmt(cRate).padStart(12)}   lost ${cResult.lost}\n` +
        `  into JavaScript         ${fmt(js.rate).padStart(12)}   lost ${js.lost}\n` +
        (jsBase ? `  into JavaScript, baseline ${fmt(jsBase.rate).padStart(10)}   lost ${jsBase.lost}\n` : '') +
        `  JavaScript / C          ${(js.rate / cRate).toFixed(3).padStart(12)}   (target >= 0.50)\n`,
    );
    jsOverC = js.rate / cRate;
    }

    // 2. throughput, and the hooks' cost per packet on it
    const pair = (x: string, y: string): FlowFilter => ({ rules: [{ between: [podOf(lab!, x).ip, podOf(lab!, y).ip] }] });
    // The tracer as `follow` (no --write) opens it: this tree's own defaults; the baseline's follow used headers only, shedding when behind.
    const followOpts = (dp: Datapath) => (dp === thisDatapath ? followTracerOptions({}) : { snaplen: 'headers' as const, ringBytes: 32 << 20 });
    /** One stats round of a tracer: its tc programs and its kfree_skb program, the pulls and packets it counted. */
    interface HookRound {
      tc: ProgramRuns;
      drop: ProgramRuns;
      seconds: number;
      bps: number;
      pulled?: number;
      seen: number;
    }
    const hookRounds: Record<string, HookRound[]> = {};
    async function traced(dp: Datapath, label: string, filter: FlowFilter, measureHooks: boolean): Promise<number> {
      const tracer = dp.Tracer.open({ filter, ...followOpts(dp) });
      try {
        tracer.attach(allPoints(dp, lab!));
        let n = 0;
        tracer.start((e) => (n += e.length));
        let bps: number;
        if (measureHooks) {
          const ids = [...new Set(tracer.hooksAttached().map((h) => h.programId))];
          const dropId = siblingProgram(hookTool, ids[0]!, 'vxt_kfree_skb') || siblingProgram(hookTool, ids[0]!, 'vxt_kfree_skb_r');
          const before = tracer.stats() as thisDatapath.TracerStats;
          const r = await programCost(hookTool, dropId ? [...ids, dropId] : ids, () => iperf(lab!, []));
          const after = tracer.stats() as thisDatapath.TracerStats;
          (hookRounds[label] ??= []).push({
            tc: sumRuns(ids.map((id) => r.byId.get(id))),
            drop: sumRuns([r.byId.get(dropId)]),
            seconds: r.seconds,
            bps: r.bps,
            ...(after.pulled !== undefined ? { pulled: after.pulled - before.pulled } : {}),
            seen: after.seen - before.seen,
          });
          bps = r.bps;
        } else {
          bps = await iperf(lab!, []);
        }
        await tracer.stop();
        return bps;
      } finally {
        tracer.close();
      }
    }
    const emptyPoints = allPoints(thisDatapath, lab).map((p) => `${p.netns}:${p.device}`);
    async function empty(measureHooks: boolean): Promise<number> {
      return withEmptyProgram(hookTool, emptyPoints, async (id) => {
        if (!measureHooks) return iperf(lab!, []);
        const r = await programCost(hookTool, [id], () => iperf(lab!, []));
        const tc = r.byId.get(id) ?? { runs: 0, ns: 0 };
        (hookRounds['empty program'] ??= []).push({ tc, drop: { runs: 0, ns: 0 }, seconds: r.seconds, bps: r.bps, seen: tc.runs });
        return r.bps;
      });
    }
    const configs: { label: string; run: () => Promise<number> }[] = [
      { label: 'no tracer', run: async () => iperf(lab!, []) },
      { label: 'empty tc program at the same hooks', run: () => empty(false) },
      { label: 'tracer following this flow', run: () => traced(thisDatapath, 'this tree', pair('pod-a', 'pod-b'), false) },
      { label: 'tracer following another flow', run: () => traced(thisDatapath, 'this tree', pair('pod-c', 'pod-d'), false) },
      ...(base
        ? [
            { label: 'baseline following this flow', run: () => traced(base, 'baseline', pair('pod-a', 'pod-b'), false) },
            { label: 'baseline following another flow', run: () => traced(base, 'baseline', pair('pod-c', 'pod-d'), false) },
          ]
        : []),
      {
        label: 'tcpdump -w on node1 eth1',
        run: async () => {
          const file = `/tmp/vxtrace-bench-${name}.pcap`;
          const td = spawn('ip', ['netns', 'exec', lab!.nodes[0]!.netns, 'tcpdump', '-i', 'eth1', '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
          children.push(td);
          await new Promise<void>((resolve) => createInterface({ input: td.stderr! }).on('line', (l) => /listening on/.test(l) && resolve()));
          try {
            return await iperf(lab!, []);
          } finally {
            td.kill('SIGINT');
            await new Promise((r) => td.on('exit', r));
            rmSync(file, { force: true });
          }
        },
      },
    ];
    const results = configs.map(() => [] as number[]);
    for (let r = 0; r < (HOOKS_ONLY ? 0 : ROUNDS); r++) {
      for (let i = 0; i < configs.length; i++) results[i]!.push(await configs[i]!.run());
    }
    // The hooks' cost on real traffic, following another flow, and the empty program's, interleaved
    // (rounds of their own: the statistics cost a little themselves, and their throughput says how much).
    for (let r = 0; r < ROUNDS; r++) {
      await empty(true);
      await traced(thisDatapath, 'this tree', pair('pod-c', 'pod-d'), true);
      if (base) await traced(base, 'baseline', pair('pod-c', 'pod-d'), true);
    }
    const median = (xs: number[]) => (xs.length ? [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]! : NaN);
    const baseBps = median(results[0]!);
    const ratio = (label: string) => median(results[configs.findIndex((c) => c.label === label)]!) / baseBps;
    process.stdout.write(`\niperf3 TCP pod-a -> pod-b across nodes (median of ${ROUNDS}, configurations interleaved):\n`);
    configs.forEach((cfg, i) => {
      const m = median(results[i]!);
      process.stdout.write(`  ${cfg.label.padEnd(36)} ${(m / 1e9).toFixed(2).padStart(7)} Gbit/s   ratio ${(m / baseBps).toFixed(3)}   (runs: ${results[i]!.map((x) => (x / 1e9).toFixed(2)).join(', ')})\n`);
    });
    process.stdout.write(`  targets: another flow >= 0.990; this flow (six hops) >= 0.950\n`);
    process.stdout.write(`  ("following this flow": follow's own defaults, ${JSON.stringify(followTracerOptions({}))})\n`);

    // per run: raw ns of one hook, net of the empty program measured the same way in the same rounds
    const emptyNs = median((hookRounds['empty program'] ?? []).map((h) => nsPerRun(h.tc)));
    process.stdout.write(
      `\nns per packet for one hook on that traffic while following another flow (kernel BPF statistics, on only in these rounds; median of ${ROUNDS}):\n` +
        `  ${''.padEnd(14)} ${'raw'.padStart(6)} ${'net'.padStart(6)}   ${'hook runs/s'.padStart(11)} ${'pulled/s'.padStart(9)}   ${'kfree_skb runs/s'.padStart(16)} ${'ns/run'.padStart(6)} ${'% CPU'.padStart(6)}   Gbit/s (stats on)\n`,
    );
    for (const [label, hs] of Object.entries(hookRounds)) {
      const raw = median(hs.map((h) => nsPerRun(h.tc)));
      const rate = median(hs.map((h) => h.tc.runs / h.seconds));
      const pulled = hs[0]!.pulled !== undefined ? fmt(median(hs.map((h) => h.pulled! / h.seconds))) : '-';
      const dropRate = median(hs.map((h) => h.drop.runs / h.seconds));
      const dropNs = median(hs.map((h) => nsPerRun(h.drop)));
      const cpu = median(hs.map((h) => (h.tc.ns + h.drop.ns) / h.seconds / 1e7));
      process.stdout.write(
        `  ${label.padEnd(14)} ${raw.toFixed(0).padStart(6)} ${(label === 'empty program' ? '-' : (raw - emptyNs).toFixed(0)).padStart(6)}   ${fmt(rate).padStart(11)} ${pulled.padStart(9)}   ` +
          `${(label === 'empty program' ? '-' : fmt(dropRate)).padStart(16)} ${(label === 'empty program' ? '-' : dropNs.toFixed(0)).padStart(6)} ${cpu.toFixed(1).padStart(6)}   ${hs.map((h) => (h.bps / 1e9).toFixed(2)).join(', ')}\n`,
      );
    }
    process.stdout.write(`  raw: run_time_ns / run_cnt (two sched_clock() reads per run included); net: raw minus the empty program's raw; % CPU: of one CPU, tc and kfree_skb programs; target <= 20 ns net\n`);
    const mem = process.memoryUsage();
    process.stdout.write(`\nRSS at the end ${(mem.rss / 2 ** 20).toFixed(0)} MiB (max ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB)\n`);
    process.stdout.write(
      `datapath: follow/base ${ratio('tracer following this flow').toFixed(3)}, other/base ${ratio('tracer following another flow').toFixed(3)}, ` +
        `tcpdump/base ${ratio('tcpdump -w on node1 eth1').toFixed(3)}, js/c ${jsOverC.toFixed(3)}\n`,
    );
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
