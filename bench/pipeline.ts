// The user-space pipeline alone, without the kernel or a lab: hop records in the kernel's own
// format (struct vxt_hop and the frame, in batches as the addon hands them over) -> decode ->
// correlate -> diagnose -> pcapng, as `capture --write` runs them. Prints hop records/s for decode
// alone, the pipeline without the writer, and the whole pipeline, and the RSS at the end. With
// `--baseline DIR` (another built checkout; repeatable) its modules run the same records, in
// turn with this tree's, so that they are compared in one sitting (ratios to the first given). Rates are records per second of CPU
// time the process used (all its threads), which other load on the machine disturbs far less than
// wall time. Not a test. As any user:
//   node dist/bench/pipeline.js [--records N] [--rounds R] [--chunk N] [--mode decode,no-writer,pipeline] [--baseline DIR]...
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { echoPath, snapshot } from '../test/unit/pcapng-fixtures.js';
import type { HopEvent } from '../src/datapath/hop.js';

const arg = (flag: string, dflt: string | undefined) => {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const RECORDS = Number(arg('--records', '600000'));
const ROUNDS = Number(arg('--rounds', '3'));
/** --baseline DIR, once or more: other built trees, run side by side with this one (labelled by DIR's last part). */
const BASELINES = process.argv.flatMap((a, i) => (a === '--baseline' && process.argv[i + 1] ? [process.argv[i + 1]!] : []));
/** Records per chunk handed to the pipeline (0: whole batches), where the tree decodes in chunks. */
const CHUNK = Number(arg('--chunk', '256'));
/** --mode decode|no-writer|pipeline: run only that one (e.g. under --cpu-prof). */
const MODES = (arg('--mode', undefined)?.split(',') ?? ['decode', 'no-writer', 'pipeline']) as Mode[];
for (const m of MODES) {
  if (m !== 'decode' && m !== 'no-writer' && m !== 'pipeline') {
    process.stderr.write(`bench: --mode ${m} is not one of decode, no-writer, pipeline (a comma-separated list of them)\n`);
    process.exit(2);
  }
}
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** The modules a tree's pipeline is made of (this one's, or a baseline checkout's dist/). */
interface Impl {
  label: string;
  decodeBatch: (batch: Uint8Array, ctx: unknown) => HopEvent[];
  /** Chunked decoding, where the tree has it (as its Tracer delivers batches). */
  decodeBatchChunks?: (batch: Uint8Array, ctx: unknown, chunk: number, onChunk: (events: HopEvent[]) => void) => void;
  Pipeline: new (opts: Record<string, unknown>) => { add(e: readonly HopEvent[]): void; poll(now: bigint): void; flush(): number };
  PcapngWriter: { open(path: string, o: Record<string, unknown>): { writeHops(p: unknown): void; writeHop(e: HopEvent): void; close(): void; stats: { packets: number } } };
  ClusterModel: { build(objects: unknown, kernel: Map<string, unknown>): unknown };
  clusterObjectsFromJson: (list: unknown, source: string) => unknown;
}

async function load(label: string, dist: string): Promise<Impl> {
  const m = async (p: string) => import(pathToFileURL(join(dist, p)).href);
  const [decode, pipeline, writer, model, list] = await Promise.all([
    m('src/datapath/decode.js'), m('src/session/pipeline.js'), m('src/pcapng/writer.js'), m('src/cluster/model.js'), m('src/cluster/list.js'),
  ]);
  return { label, decodeBatch: decode.decodeBatch, decodeBatchChunks: decode.decodeBatchChunks, Pipeline: pipeline.Pipeline, PcapngWriter: writer.PcapngWriter, ClusterModel: model.ClusterModel, clusterObjectsFromJson: list.clusterObjectsFromJson };
}

// The records: echo requests pod-a -> pod-b, six hops each, in ring-buffer batches of ~1 MiB.
const COOKIE: Record<string, bigint> = { node1: 1n, node2: 2n };
const sample = Array.from({ length: 4096 }, (_, i) => echoPath({ seq: i + 1 }));
const events = sample.flatMap((p) => p.hops.map((h) => h.event));
const recordBytes = (e: HopEvent) => Math.ceil((192 + e.frame.length) / 8) * 8;
function batches(): Buffer[] {
  const out: Buffer[] = [];
  let cur: Buffer[] = [];
  let size = 0;
  for (const e of events) {
    const r = Buffer.alloc(recordBytes(e));
    r.set(e.record!, 0);
    r.writeBigUInt64LE(COOKIE[e.node]!, 8);
    r.writeUInt32LE(e.frame.length, 40);
    r.set(e.frame, 192);
    cur.push(r);
    size += r.length;
    if (size >= 1 << 20) {
      out.push(Buffer.concat(cur));
      cur = [];
      size = 0;
    }
  }
  if (cur.length) out.push(Buffer.concat(cur));
  return out;
}
const BATCHES = batches();
const PER_ROUND = events.length;
const SPAN_NS = 10_000_000_000n; // each pass over the sample is 10 s later: new packets, not late hops

/** Every record gets a fresh fingerprint and time for pass `pass` (as new traffic would). */
function stamp(pass: number): void {
  for (const b of BATCHES) {
    for (let at = 0; at < b.length; at += Math.ceil((192 + b.readUInt32LE(at + 40)) / 8) * 8) {
      b.writeUInt16LE(pass & 0xffff, at + 16 + 6); // fingerprint bytes 6-7
      const ts = b.readBigUInt64LE(at);
      b.writeBigUInt64LE((ts % SPAN_NS) + BigInt(pass) * SPAN_NS, at);
    }
  }
}

function context() {
  // as the Tracer's: netns cookie -> ifindex -> hook
  const hooks = new Map<bigint, Map<number, { node: string; device: string; role: string; netnsInode: number }>>();
  for (const e of events) {
    const c = COOKIE[e.node]!;
    if (!hooks.has(c)) hooks.set(c, new Map());
    hooks.get(c)!.set(e.ifindex, { node: e.node, device: e.device, role: e.role, netnsInode: e.netnsInode });
  }
  const unknown = { node: '?', device: '?', role: 'other', netnsInode: 0 };
  return {
    monotonicToWallNs: 1_764_104_400_000_000_000n,
    hookOf: (cookie: bigint, ifindex: number) => hooks.get(cookie)?.get(ifindex) ?? unknown,
    dropReasonName: (c: number) => `R${c}`,
    symbolOf: () => undefined,
  };
}

type Mode = 'decode' | 'no-writer' | 'pipeline';

function runOnce(impl: Impl, mode: Mode, dir: string, passBase: number): number {
  const ctx = context();
  const snap = snapshot();
  const model = impl.ClusterModel.build(impl.clusterObjectsFromJson(snap.cluster, 'bench'), new Map(Object.entries(snap.nodeState)));
  const writer = mode === 'pipeline' ? impl.PcapngWriter.open(join(dir, `${impl.label}-${passBase}.pcapng`), { snapshot: snap, snaplen: 256 }) : undefined;
  const pipeline = mode === 'decode' ? undefined : new impl.Pipeline({ model, clocks: 'one', onPath: () => {}, ...(writer ? { trace: writer } : {}) });
  let records = 0;
  let pass = passBase;
  let us = 0;
  while (records < RECORDS) {
    stamp(pass);
    const t0 = cpuMicros();
    for (const b of BATCHES) {
      const take = (hops: HopEvent[]) => {
        records += hops.length;
        pipeline?.add(hops);
      };
      if (impl.decodeBatchChunks && CHUNK) impl.decodeBatchChunks(b, ctx, CHUNK, take);
      else take(impl.decodeBatch(b, ctx));
      pipeline?.poll(BigInt(pass) * SPAN_NS + 1_764_104_400_000_000_000n);
    }
    us += cpuMicros() - t0;
    pass++;
  }
  const t0 = cpuMicros();
  pipeline?.flush();
  writer?.close();
  us += cpuMicros() - t0;
  return records / (us / 1e6);
}

/**
 * CPU time this process used (every thread: V8's GC helpers too), µs: on a machine others share,
 * wall time measures them as much as us; CPU time much less so.
 */
function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function main(): Promise<void> {
  const here = new URL('../', import.meta.url).pathname;
  const impls: Impl[] = [];
  for (const dir of BASELINES) impls.push(await load(dir.replace(/\/+$/, '').split('/').pop()!, join(dir, 'dist')));
  impls.push(await load('this tree', here));
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-bench-pipeline-'));
  const results = new Map<string, number[]>();
  try {
    process.stdout.write(`bench: ${fmt(RECORDS)} hop records per run (ICMP echo pod-a -> pod-b, six hops, ${fmt(PER_ROUND)} records per pass), ${ROUNDS} rounds, median; records per CPU second\n`);
    let pass = 1;
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of MODES) {
        for (const impl of r % 2 ? [...impls].reverse() : impls) {
          // (the order turns each round: a tree run first or last is not favoured)
          const rate = runOnce(impl, mode, dir, pass);
          pass += Math.ceil(RECORDS / PER_ROUND) + 1;
          const key = `${impl.label}|${mode}`;
          results.set(key, [...(results.get(key) ?? []), rate]);
        }
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    for (const mode of MODES) {
      const label = { decode: 'decode only', 'no-writer': 'decode, correlate, diagnose', pipeline: 'decode, correlate, diagnose, pcapng' }[mode];
      const first = median(results.get(`${impls[0]!.label}|${mode}`)!);
      const cells = impls.map((i) => {
        const m = median(results.get(`${i.label}|${mode}`)!);
        return `${i.label} ${fmt(m).padStart(10)}/s${impls.length > 1 ? ` x${(m / first).toFixed(2)}` : ''}`;
      });
      process.stdout.write(`  ${label}:\n    ${cells.join('\n    ')}\n`);
    }
    const mem = process.memoryUsage();
    process.stdout.write(`  RSS at the end ${(mem.rss / 2 ** 20).toFixed(0)} MiB (max ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB), heap used ${(mem.heapUsed / 2 ** 20).toFixed(0)} MiB\n`);
    const last = MODES[MODES.length - 1]!;
    const best = median(results.get(`this tree|${last}`)!);
    if (last === 'pipeline') process.stdout.write(`pipeline: ${fmt(best)} records/s end to end (decode -> correlate -> diagnose -> pcapng), target >= 500,000\n`);
    else process.stdout.write(`pipeline: ${fmt(best)} records/s, --mode ${last} only (not end to end)\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).stack}\n`);
  process.exit(1);
});
