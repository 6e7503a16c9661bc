// Datapath benchmark (not a test): run as root with `node dist/bench/datapath.js [--seconds S] [--rounds R]`.
// Brings up its own two-node lab, measures, takes the lab down, and prints ratios:
//   1. hop records per second delivered into JavaScript (Tracer.start, decoded HopEvents) vs. a plain C
//      consumer of the same ring buffer (bench/ringbuf-consumer.c), under the same load: iperf3 UDP
//      with 64-byte payloads pod-a -> pod-b at full speed, every hook of both nodes, filter everything;
//   2. iperf3 TCP throughput pod-a -> pod-b across nodes with no tracer / a tracer following that flow
//      (six hops) / a tracer following another flow (pod-c <-> pod-d) / `tcpdump -w` on node1's eth1,
//      as ratios to the no-tracer run (median of R interleaved rounds).
// Targets (issue 3): another flow costs <= 2 %; following this flow costs less than tcpdump;
// JavaScript receives >= 50 % of the C consumer's record rate.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { labDown, labUp, type LabState } from '../src/lab/index.js';
import { Tracer, discoverAttachPoints, type FlowFilter } from '../src/datapath/index.js';
import { BPF_OBJECT_PATH } from '../src/datapath/native.js';
import { requirePrivileges } from '../src/util/privileges.js';

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
const RING_BYTES = 16 << 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function buildConsumer(): string {
  const src = join(root, 'bench', 'ringbuf-consumer.c');
  const out = join(root, 'bench', 'build', 'ringbuf-consumer');
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(join(root, 'bench', 'build'), { recursive: true });
    const r = spawnSync('cc', ['-O2', '-Wall', '-I', join(root, 'bpf'), src, '-lbpf', '-o', out], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('bench: cannot build bench/ringbuf-consumer.c (needs cc and libbpf-dev)');
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

function allPoints(lab: LabState) {
  return lab.nodes.flatMap((n) => discoverAttachPoints(n.name, n.netns).points);
}

/** Hop records per second into JavaScript under `load`. */
async function jsRate(lab: LabState, load: () => Promise<number>): Promise<{ rate: number; lost: number }> {
  const tracer = Tracer.open({ filter: 'everything', ringBytes: RING_BYTES });
  try {
    tracer.attach(allPoints(lab));
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

async function main(): Promise<void> {
  requirePrivileges('the datapath benchmark', ['trace', 'lab']);
  const consumer = buildConsumer();
  const name = `bn${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
  let lab: LabState | undefined;
  const children: ChildProcess[] = [];
  const cleanup = async () => {
    for (const c of children) c.kill('SIGKILL');
    await labDown(name).catch(() => {});
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    process.stdout.write(`bench: lab ${name} (2 nodes, 2 pods each), ${SECONDS} s per run, ${ROUNDS} rounds\n`);
    lab = await labUp({ name, nodes: 2, podsPerNode: 2, faults: [] });
    const b = podOf(lab, 'pod-b');
    const server = spawn('ip', ['netns', 'exec', b.netns, 'iperf3', '-s'], { stdio: 'ignore' });
    children.push(server);
    await sleep(500);

    // 1. record rate: JavaScript vs. plain C, same load
    const udpLoad = ['-u', '-b', '0', '-l', '64'];
    const points = allPoints(lab).map((p) => `${p.netns}:${p.device}`);
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
    const js = await jsRate(lab, () => iperf(lab!, udpLoad));
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    process.stdout.write(
      `\nhop records/s (iperf3 UDP 64-byte payloads, all hooks of 2 nodes, filter everything, ring ${RING_BYTES >> 20} MiB):\n` +
        `  plain C consumer        ${fmt(cRate).padStart(12)}   lost ${cResult.lost}\n` +
        `  into JavaScript         ${fmt(js.rate).padStart(12)}   lost ${js.lost}\n` +
        `  JavaScript / C          ${(js.rate / cRate).toFixed(3).padStart(12)}   (target >= 0.50)\n`,
    );

    // 2. throughput
    const pair = (x: string, y: string): FlowFilter => ({ rules: [{ between: [podOf(lab!, x).ip, podOf(lab!, y).ip] }] });
    const configs: { label: string; run: () => Promise<number> }[] = [
      { label: 'no tracer', run: async () => iperf(lab!, []) },
      { label: 'tracer following this flow', run: () => traced(pair('pod-a', 'pod-b')) },
      { label: 'tracer following another flow', run: () => traced(pair('pod-c', 'pod-d')) },
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
    async function traced(filter: FlowFilter): Promise<number> {
      const tracer = Tracer.open({ filter, ringBytes: RING_BYTES });
      try {
        tracer.attach(allPoints(lab!));
        let n = 0;
        tracer.start((e) => (n += e.length));
        const bps = await iperf(lab!, []);
        await tracer.stop();
        return bps;
      } finally {
        tracer.close();
      }
    }
    const results = configs.map(() => [] as number[]);
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < configs.length; i++) results[i]!.push(await configs[i]!.run());
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const base = median(results[0]!);
    process.stdout.write(`\niperf3 TCP pod-a -> pod-b across nodes (median of ${ROUNDS}):\n`);
    configs.forEach((cfg, i) => {
      const m = median(results[i]!);
      process.stdout.write(`  ${cfg.label.padEnd(32)} ${(m / 1e9).toFixed(2).padStart(7)} Gbit/s   ratio ${(m / base).toFixed(3)}\n`);
    });
    process.stdout.write('  targets: another flow >= 0.980; this flow (six hops) above tcpdump on one interface\n');
  } finally {
    await cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
