// How many hop records a second can one hub join, and how fast do its paths reach a client? Records
// a lab's real traffic once (`vxtrace capture` of ping floods between three pairs of pods), then for
// each rate: a hub (`vxtrace hub`, its own process), three replaying agents (bench/hub-replay.ts,
// one per node, the recorded hop records at the set rate) and one subscriber (this process, every
// path). Prints records/s joined, record -> client latency p50/p99, the hub's RSS and what was
// lost, and ends with one line: `hub: N records/s joined, p99 X ms, lost L, rss M MiB`.
// Not a test. Run as root: npm run build && node dist/bench/hub.js [--seconds 8] [--rates 25000,50000,100000,200000]
//   [--trace F.pcapng]  replay this recording (made there first when the file does not exist: no lab otherwise)
//   [--profile DIR]     each hub writes V8 CPU profiles into DIR/hub-RATE/ (one per thread)
//   [--hub-node-flags "F ..."]  node flags for the hub process (e.g. --max-semi-space-size=64)
//   [--hub-args "A ..."]        more arguments for `vxtrace hub` (e.g. --workers 0)
//   [--hub-root DIR]    the hub and its agents from another build of vxtrace (a worktree of another commit,
//                       built): before and after side by side, with the same subscriber (the stage costs are this build's)
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import protobuf from 'protobufjs/minimal.js';
import { labDown, labUp } from '../src/lab/index.js';
import { readTrace } from '../src/pcapng/reader.js';
import { decodeAgentReport, encodeAgentReport, encodeEventField, encodeSubscribe, hopEventsOfKernel, kernelHopRecordsOf, SUBPROTOCOL } from '../src/wire/codec.js';
import { Pipeline } from '../src/session/pipeline.js';
import { ClusterModel } from '../src/cluster/model.js';
import { clusterObjectsFromJson } from '../src/cluster/list.js';
import type { NodeKernelState } from '../src/cluster/kernel.js';
import type { Trace } from '../src/pcapng/reader.js';
import type { PacketPath } from '../src/correlate/path.js';
import { hubAddress } from '../src/wire/endpoint.js';
import { PipelineShards } from '../src/hub/shards.js';
import type { KernelHopRecords } from '../src/wire/hop-batch.js';
import { HOP_LAYOUT } from '../src/datapath/decode.js';
import { execAsync } from '../src/util/exec.js';
import { requirePrivileges } from '../src/util/privileges.js';

const arg = (flag: string, dflt: string) => {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const SECONDS = Number(arg('--seconds', '8'));
const RATES = arg('--rates', '25000,50000,100000,200000').split(',').map(Number);
const TRACE = arg('--trace', '');
const PROFILE = arg('--profile', '');
const HUB_ROOT = arg('--hub-root', '');
const HUB_NODE_FLAGS = arg('--hub-node-flags', '').split(' ').filter(Boolean);
const HUB_ARGS = arg('--hub-args', '').split(' ').filter(Boolean);
const cli = HUB_ROOT ? join(HUB_ROOT, 'bin/vxtrace.js') : fileURLToPath(new URL('../../bin/vxtrace.js', import.meta.url));
const replayer = HUB_ROOT ? join(HUB_ROOT, 'dist/bench/hub-replay.js') : fileURLToPath(new URL('./hub-replay.js', import.meta.url));
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function waitLine(child: ReturnType<typeof spawn>, re: RegExp): Promise<RegExpExecArray> {
  let text = '';
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      text += d;
      const m = re.exec(text);
      if (m) resolve(m);
    });
    child.once('exit', () => reject(new Error(`exited before ${re}: ${text}`)));
  });
}

async function record(file: string): Promise<string> {
  const name = `bh${(process.pid % 1000).toString(36)}`;
  const lab = await labUp({ name, nodes: 3, podsPerNode: 1, faults: [] });
  try {
    const capture = spawn(process.execPath, [cli, 'capture', '--write', file, '--cluster', lab.clusterFile, '--duration', '4'], { stdio: ['ignore', 'ignore', 'pipe'] });
    await waitLine(capture, /^capturing /m);
    const pod = (n: string) => lab.pods.find((p) => p.name === n)!;
    await Promise.all([['pod-a', 'pod-b'], ['pod-b', 'pod-c'], ['pod-c', 'pod-a']].map(([a, b]) => execAsync(['ip', 'netns', 'exec', pod(a!).netns, 'ping', '-q', '-f', '-c', '3000', pod(b!).ip], { allowFail: true })));
    await new Promise((r) => capture.once('exit', r));
    return file;
  } finally {
    await labDown(name);
  }
}

interface Run {
  rate: number;
  joined: number;
  perSecond: number;
  p50: number;
  p99: number;
  lost: number;
  rssMiB: number;
  paths: number;
  sent: number;
  /** Sent but in no path the subscriber got (still open at the end, or joined no path). */
  unjoined: number;
  /** CPU seconds the hub process used (all its threads) from the first record to the end of the run. */
  cpu: number;
}

/** CPU seconds (user + system, every thread) a process has used: /proc/PID/stat, in clock ticks (100 a second). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * What the subscriber counts in one EventBatch frame: read with protobufjs' Reader field by field
 * (paths' hops and their wall times, lost counts), without building a message object per hop, so
 * that the bench's own client takes little of the two cores the hub runs on. (Real clients decode
 * whole paths: test/hub*.test.ts.)
 */
interface Tally {
  subscribed: boolean;
  paths: number;
  hops: number;
  lost: number;
  /** Per path: the latest hop wall time, ms since the epoch. */
  lastWallMs: number[];
}

function tallyFrame(bytes: Uint8Array, t: Tally): void {
  const r = protobuf.Reader.create(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 !== 1 || (tag & 7) !== 2) {
      r.skipType(tag & 7);
      continue;
    }
    const eventEnd = r.uint32() + r.pos;
    while (r.pos < eventEnd) {
      const et = r.uint32();
      const field = et >>> 3;
      if (field === 1) {
        const pathEnd = r.uint32() + r.pos;
        let last = 0;
        t.paths++;
        while (r.pos < pathEnd) {
          const pt = r.uint32();
          if (pt >>> 3 !== 12) {
            r.skipType(pt & 7);
            continue;
          }
          t.hops++;
          const hopEnd = r.uint32() + r.pos;
          while (r.pos < hopEnd) {
            const ht = r.uint32();
            if (ht >>> 3 === 7) {
              const wall = Number(r.int64()) / 1e6;
              if (wall > last) last = wall;
            } else r.skipType(ht & 7);
          }
        }
        t.lastWallMs.push(last);
      } else if (field === 4) {
        const lostEnd = r.uint32() + r.pos;
        while (r.pos < lostEnd) {
          const lt = r.uint32();
          if (lt >>> 3 === 3) t.lost += Number(r.uint64());
          else r.skipType(lt & 7);
        }
      } else if (field === 5) {
        t.subscribed = true;
        r.skipType(et & 7);
      } else r.skipType(et & 7);
    }
  }
}

async function runAt(rate: number, trace: string, cluster: string): Promise<Run> {
  const profile = PROFILE ? ['--cpu-prof', '--cpu-prof-dir', join(PROFILE, `hub-${rate}`)] : [];
  const hub = spawn(process.execPath, [...HUB_NODE_FLAGS, ...profile, cli, 'hub', '--listen', '127.0.0.1:0', '--cluster', cluster, ...HUB_ARGS], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const url = (await waitLine(hub, /^hub listening on (\S+?): agents/m))[1]!;
    // One subscriber: everything.
    const ws = new WebSocket(hubAddress(url, '/v1/stream').url, SUBPROTOCOL, { maxPayload: 256 << 20 });
    const tally: Tally = { subscribed: false, paths: 0, hops: 0, lost: 0, lastWallMs: [] };
    const latencies: number[] = [];
    let subscribed!: () => void;
    const ready = new Promise<void>((r) => (subscribed = r));
    ws.on('open', () => ws.send(encodeSubscribe({ client: 'bench' })));
    ws.on('message', (data: Buffer) => {
      const now = Date.now();
      tallyFrame(data, tally);
      for (const last of tally.lastWallMs) latencies.push(now - last);
      tally.lastWallMs.length = 0;
      if (tally.subscribed) subscribed();
    });
    await ready;
    const nodes = ['node1', 'node2', 'node3'];
    const replays = nodes.map((n) => spawn(process.execPath, [replayer, url, n, trace, String(rate), String(SECONDS)], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const lines = replays.map((r) => {
      let out = '';
      let ready!: () => void;
      const isReady = new Promise<void>((res) => (ready = res));
      r.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('ready\n')) ready();
      });
      const done = new Promise<{ sent: number; dropped: number }>((resolve) => r.once('exit', () => {
        const last = out.split('\n').find((l) => l.startsWith('{'));
        resolve(last ? JSON.parse(last) : { sent: 0, dropped: 0 });
      }));
      return { isReady, done };
    });
    await Promise.all(lines.map((l) => l.isReady));
    const cpu0 = cpuSeconds(hub.pid!);
    const t0 = Date.now() + 200;
    for (const r of replays) r.stdin!.end(`${t0}\n`);
    const outputs = lines.map((l) => l.done);
    let rss = 0;
    const sampler = setInterval(() => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${hub.pid}/status`, 'utf8'));
        if (m) rss = Math.max(rss, Number(m[1]) / 1024);
      } catch {
        /* exited */
      }
    }, 250);
    const results = await Promise.all(outputs);
    // Paths whose last hops were in flight end within the hub's settle time.
    await sleep(1500);
    const cpu = cpuSeconds(hub.pid!) - cpu0;
    clearInterval(sampler);
    ws.close();
    latencies.sort((a, b) => a - b);
    const q = (f: number) => latencies[Math.min(latencies.length - 1, Math.floor(f * latencies.length))] ?? NaN;
    const sent = results.reduce((s, r) => s + r.sent, 0);
    const dropped = results.reduce((s, r) => s + r.dropped, 0);
    const joined = tally.hops;
    return { rate, joined, perSecond: joined / SECONDS, p50: q(0.5), p99: q(0.99), lost: tally.lost + dropped, unjoined: Math.max(0, sent - joined), rssMiB: rss, paths: tally.paths, sent, cpu };
  } finally {
    const exited = new Promise((r) => hub.once('exit', r));
    hub.kill('SIGTERM');
    // (its CPU profile is written as it exits)
    await exited;
  }
}

/** CPU time of this process, ms (as a measure it does not count the time other processes take the cores). */
function cpuMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

/** Where the hub's time goes, in this one process: each stage of a record's way, in µs of CPU per record. */
function stageCosts(t: Trace): string {
  const objects = clusterObjectsFromJson(t.snapshot!.cluster, 'the recording');
  const model = ClusterModel.build(objects, new Map(Object.entries((t.snapshot!.nodeState ?? {}) as Record<string, NodeKernelState>)));
  const sorted = [...t.hops].sort((a, b) => (a.wallTimeNs < b.wallTimeNs ? -1 : a.wallTimeNs > b.wallTimeNs ? 1 : 0));
  // As an agent sends them: the kernel's records, batched (one clock offset per batch).
  const frames: Buffer[] = [];
  for (let i = 0; i < sorted.length; i += 4096) {
    const batch = sorted.slice(i, i + 4096).map((e) => ({ ...e, wallTimeNs: e.timestampNs }));
    frames.push(Buffer.from(encodeAgentReport({ kind: 'hops', hops: kernelHopRecordsOf(batch) })));
  }
  let decode = 0;
  let events = 0;
  let pipe = 0;
  let encode = 0;
  const finished: PacketPath[] = [];
  const p = new Pipeline({ model, clocks: 'per-node', settleNs: 300_000_000n, wholeNeedsNoSettle: true, onPath: (path) => void finished.push(path) });
  // The first round warms up the JIT; the others are measured (each made new packets).
  const rounds = 4;
  for (let round = 0; round < rounds; round++) {
    const measured = round > 0;
    for (const f of frames) {
      let a = cpuMs();
      const r = decodeAgentReport(f);
      if (measured) decode += cpuMs() - a;
      a = cpuMs();
      const evs = r.kind === 'hops' && r.hops.kernel ? hopEventsOfKernel(r.hops.kernel) : [];
      if (measured) events += cpuMs() - a;
      for (const e of evs) e.fingerprint += String(round);
      a = cpuMs();
      p.add(evs);
      if (measured) pipe += cpuMs() - a;
      a = cpuMs();
      for (const path of finished) encodeEventField({ kind: 'path', path });
      if (measured) encode += cpuMs() - a;
      finished.length = 0;
    }
  }
  p.flush();
  const n = sorted.length * (rounds - 1);
  const us = (ms: number) => ((1000 * ms) / n).toFixed(2);
  return `in one process, CPU per record: protobuf decode ${us(decode)} µs, hop record -> HopEvent ${us(events)} µs, pipeline (correlate, diagnose) ${us(pipe)} µs, path -> protobuf ${us(encode)} µs: ${fmt(n / ((decode + events + pipe + encode) / 1000))} records/s on one core`;
}

/** Packets (fingerprints) in the recording: each round of it makes that many paths. */
const pathsPerRound = (hops: readonly { fingerprint: string }[]): number => new Set(hops.map((e) => e.fingerprint)).size;

/**
 * The hub's join stage alone, in this process, as fast as it goes: the recording's records, batched
 * per node as agents send them (each round made new packets), into the hub's pipeline shards
 * (src/hub/shards.ts) with `workers` worker threads (0: in this thread), one client wanting
 * everything; records/s joined (wall clock) and CPU per record (every thread of this process).
 */
async function shardThroughput(t: Trace, workers: number, rounds = 5): Promise<string> {
  const objects = clusterObjectsFromJson(t.snapshot!.cluster, 'the recording');
  const kernel = new Map(Object.entries((t.snapshot!.nodeState ?? {}) as Record<string, NodeKernelState>));
  const sorted = [...t.hops].sort((a, b) => (a.wallTimeNs < b.wallTimeNs ? -1 : a.wallTimeNs > b.wallTimeNs ? 1 : 0));
  const nodes = [...new Set(sorted.map((e) => e.node))];
  const batches: { node: string; k: KernelHopRecords }[] = [];
  for (let i = 0; i < sorted.length; i += 4096) {
    const chunk = sorted.slice(i, i + 4096).map((e) => ({ ...e, wallTimeNs: e.timestampNs }));
    for (const node of nodes) batches.push({ node, k: kernelHopRecordsOf(chunk.filter((e) => e.node === node)).kernel! });
  }
  let paths = 0;
  let resume: (() => void) | undefined;
  let backlog = false;
  const shards = new PipelineShards({
    workers, objects, onPath: () => void paths++,
    onBacklog: (full) => {
      backlog = full;
      if (!full) resume?.();
    },
  });
  shards.setModel(objects, kernel);
  shards.setWatched(nodes);
  shards.setClients([{ id: 1, subscription: {} }]);
  const fpHigh = HOP_LAYOUT.fields.fingerprint.offset + 4;
  // (the shards' worker threads do not keep the process alive: the hub's server does)
  const alive = setInterval(() => {}, 1000);
  const wall0 = performance.now();
  const cpu0 = cpuMs();
  for (let round = 0; round < rounds; round++) {
    for (const { node, k } of batches) {
      // New packets each round: the same xor on every node's fingerprints.
      const bytes = k.bytes.slice();
      const v = new DataView(bytes.buffer);
      for (let at = 0; at < bytes.length; ) {
        v.setUint32(at + fpHigh, v.getUint32(at + fpHigh, true) ^ (round + 1), true);
        at += Math.ceil((HOP_LAYOUT.size + v.getUint32(at + HOP_LAYOUT.fields.cap_len.offset, true)) / 8) * 8;
      }
      shards.addKernelRecords(node, { ...k, bytes }, 0n);
      if (backlog) await new Promise<void>((r) => (resume = r));
    }
  }
  // The paths still open (none but those a timeout finishes) end with a poll far ahead.
  shards.poll(1n << 62n);
  const records = sorted.length * rounds;
  const expected = (pathsPerRound(sorted) * rounds);
  for (let waited = 0; paths < expected && waited < 60_000; waited += 5) await sleep(5);
  const wall = (performance.now() - wall0) / 1000;
  const cpu = cpuMs() - cpu0;
  shards.stop();
  clearInterval(alive);
  return `${workers} worker${workers === 1 ? '' : 's'}: ${fmt(records / wall)} records/s, ${((1000 * cpu) / records).toFixed(2)} µs CPU per record (${fmt(paths)} paths)`;
}

const dir = mkdtempSync(join(tmpdir(), 'vxt-bench-hub-'));
try {
  const trace = TRACE || join(dir, 'recorded.pcapng');
  if (!existsSync(trace)) {
    requirePrivileges('bench/hub', ['trace', 'lab']);
    await record(trace);
  }
  if (PROFILE) mkdirSync(PROFILE, { recursive: true });
  const t = await readTrace(trace);
  const cluster = join(dir, 'cluster.json');
  writeFileSync(cluster, JSON.stringify(t.snapshot?.cluster));
  process.stdout.write(`${stageCosts(t)}\n`);
  if (!HUB_ROOT) {
    const joins: string[] = [];
    for (const w of [0, 1, 2]) joins.push(await shardThroughput(t, w));
    process.stdout.write(`the join stage alone (pipeline shards, in one process, as fast as they go): ${joins.join('; ')}\n`);
  }
  if (HUB_ROOT) process.stdout.write(`the hub and its agents: the build in ${HUB_ROOT}\n`);
  process.stdout.write(`${TRACE ? `${trace}: ` : 'recorded '}${fmt(t.hops.length)} hop records of ping floods (3 pairs, 3 nodes) on a lab; replaying them for ${SECONDS} s per rate, 3 agents, 1 subscriber\n`);
  const runs: Run[] = [];
  for (const rate of RATES) {
    const r = await runAt(rate, trace, cluster);
    runs.push(r);
    process.stdout.write(
      `at ${fmt(rate)} records/s offered: ${fmt(r.sent)} sent, ${fmt(r.joined)} joined into ${fmt(r.paths)} paths (${fmt(r.perSecond)} records/s), ` +
        `record -> client p50 ${Math.round(r.p50)} ms p99 ${Math.round(r.p99)} ms, lost ${fmt(r.lost)}, not in a path yet ${fmt(r.unjoined)}, hub rss ${r.rssMiB.toFixed(0)} MiB, ` +
        `hub cpu ${r.cpu.toFixed(1)} s (${r.joined ? ((r.cpu * 1e6) / r.joined).toFixed(1) : '-'} µs per record joined)\n`,
    );
  }
  const best = runs.filter((r) => r.lost === 0).sort((a, b) => b.perSecond - a.perSecond)[0] ?? runs.sort((a, b) => b.perSecond - a.perSecond)[0]!;
  const at100k = runs.find((r) => r.rate === 100_000) ?? runs[0]!;
  process.stdout.write(`hub: ${fmt(best.perSecond)} records/s joined, p99 ${Math.round(at100k.p99)} ms, lost ${fmt(best.lost)}, rss ${Math.max(...runs.map((r) => r.rssMiB)).toFixed(0)} MiB\n`);
} finally {
  if (!process.env.VXTRACE_BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
  else process.stdout.write(`kept ${dir}\n`);
}
