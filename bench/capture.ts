// Does writing keep up with the datapath? Runs the capture pipeline exactly as `vxtrace capture
// --pod pod-a --write F` does (TraceSession: tracer -> correlator -> diagnoser -> PcapngWriter) on a
// lab while iperf3 loads the followed flow, and prints hop records/s the kernel produced, packets/s
// written, what was lost (ring buffer full), shed by choice (sampled) or not written, and the RSS.
// Three loads: iperf3 TCP (the throughput benchmark's load), iperf3 UDP with 64-byte payloads at full
// rate (the record-rate benchmark's flood), and the same at a sustained 5 Mbit/s. With
// `--baseline DIR` (another built checkout) its pipeline runs each load too, right after this
// tree's, so that the two are compared in one sitting. Last line (this tree, the UDP flood):
//   capture: N records/s end to end, lost L, sampled S
// Not a test. Run as root: npx tsc -p . && node dist/bench/capture.js [--seconds 5] [--no-write] [--profile FILE] [--baseline DIR]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { labDown, labUp, type LabState } from '../src/lab/index.js';
import { execAsync } from '../src/util/exec.js';
import { requirePrivileges } from '../src/util/privileges.js';
import { Session as InspectorSession } from 'node:inspector';
import { writeFileSync } from 'node:fs';

const arg = (flag: string, dflt: number) => {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const SECONDS = arg('--seconds', 5);
/** --no-write: the same pipeline without the writer, to see what the writer itself costs. */
const WRITE = !process.argv.includes('--no-write');
/** --profile FILE: a V8 CPU profile of the first load (started after the programs are loaded: SIGPROF would interrupt the verifier). */
const PROFILE = process.argv.includes('--profile') ? process.argv[process.argv.indexOf('--profile') + 1] : undefined;
const BASELINE = process.argv.includes('--baseline') ? process.argv[process.argv.indexOf('--baseline') + 1] : undefined;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;

/** The pieces of a tree's capture pipeline (this one's, or a baseline checkout's dist/). */
interface Impl {
  label: string;
  loadClusterFile: (file: string) => any;
  readKernelStates: (objects: any) => Promise<any>;
  ClusterModel: { build(objects: any, kernel?: any): any };
  TraceSession: { start(opts: any): { stop(): Promise<any> } };
  traceTargets: (objects: any) => { node: string }[];
  openTrace: (file: string, objects: any, model: any, nodes: string[], o: object) => any;
}

async function load(label: string, dist: string): Promise<Impl> {
  const m = async (p: string) => import(pathToFileURL(join(dist, p)).href);
  const [list, reader, model, session, file] = await Promise.all([
    m('src/cluster/list.js'), m('src/cluster/kernel-reader.js'), m('src/cluster/model.js'), m('src/session/trace-session.js'), m('src/session/trace-file.js'),
  ]);
  return {
    label, loadClusterFile: list.loadClusterFile, readKernelStates: reader.readKernelStates, ClusterModel: model.ClusterModel,
    TraceSession: session.TraceSession, traceTargets: session.traceTargets, openTrace: file.openTrace,
  };
}

interface Result {
  produced: number;
  delivered: number;
  lost: number;
  sampled: number;
  written: number;
  perSecond: number;
}

async function captureUnder(impl: Impl, lab: LabState, dir: string, label: string, iperfArgs: string[]): Promise<Result> {
  const objects = impl.loadClusterFile(lab.clusterFile);
  const model = impl.ClusterModel.build(objects, await impl.readKernelStates(objects));
  const a = lab.pods.find((p) => p.name === 'pod-a')!;
  const b = lab.pods.find((p) => p.name === 'pod-b')!;
  const writer = impl.openTrace(join(dir, `${impl.label.replace(/\W/g, '')}-${label.split(' ')[0]}.pcapng`), objects, model, impl.traceTargets(objects).map((t) => t.node), {});
  let paths = 0;
  const session = impl.TraceSession.start({
    model,
    targets: impl.traceTargets(objects),
    filter: { rules: [{ between: [a.ip, '0.0.0.0/0'] }] },
    ringBytes: 16 << 20,
    trace: WRITE ? writer : undefined,
    onPath() {
      paths++;
    },
  });
  const profiler = PROFILE && !profiled ? await startProfile() : undefined;
  profiled = true;
  const t0 = process.hrtime.bigint();
  // RSS and the Buffers' memory every 5 s of the load: bounded memory is a plateau here
  const samples: string[] = [];
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    samples.push(`${samples.length * 5 + 5}s ${(m.rss / 2 ** 20).toFixed(0)}/${(m.arrayBuffers / 2 ** 20).toFixed(0)}`);
  }, 5000);
  const r = await execAsync(['ip', 'netns', 'exec', a.netns, 'iperf3', '-c', b.ip, '-t', String(SECONDS), '-J', ...iperfArgs], { allowFail: true });
  const loadSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(sampler);
  const summary = await session.stop();
  const drainSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (profiler) await stopProfile(profiler, PROFILE!);
  writer.writeFindings(summary.findings, { lostRecords: summary.tracer.lostRecords });
  writer.close();
  if (r.status !== 0) throw new Error(`iperf3 failed: ${r.stderr || r.stdout.slice(0, 300)}`);
  const s = summary.tracer;
  const sampled = s.sampled ?? 0;
  const written = WRITE ? writer.stats.packets : s.delivered;
  const mem = process.memoryUsage();
  process.stdout.write(
    `\n${label}, ${SECONDS} s, ${impl.label}:\n` +
      `  hop records produced by the kernel   ${fmt(s.records + s.lostRecords + sampled).padStart(12)}  (${fmt((s.records + s.lostRecords + sampled) / loadSeconds)}/s)\n` +
      `  delivered to user space              ${fmt(s.records).padStart(12)}  (${fmt(s.records / loadSeconds)}/s)\n` +
      `  lost in the ring buffer (full)       ${fmt(s.lostRecords).padStart(12)}\n` +
      `  sampled out (shed while behind)      ${fmt(sampled).padStart(12)}\n` +
      `  packets written to the trace         ${fmt(written).padStart(12)}  (${fmt(written / drainSeconds)}/s incl. draining)\n` +
      `  delivered but not written            ${fmt(Math.max(0, s.delivered - written)).padStart(12)}\n` +
      `  paths ${fmt(paths)}, ${fmt(Math.floor(writer.stats.bytes / 2 ** 20))} MiB; drained ${(drainSeconds - loadSeconds).toFixed(2)} s after the load stopped; RSS ${mib(mem.rss)} (max ${mib(process.resourceUsage().maxRSS * 1024)}), heap used ${mib(mem.heapUsed)}, array buffers ${mib(mem.arrayBuffers)}\n` +
      `  RSS/array buffers (MiB) during the load: ${samples.join(', ')}\n` +
      `  => ${s.lostRecords === 0 && written >= s.delivered ? (sampled ? 'nothing lost; records shed by choice, every packet counted' : 'the writer kept up: nothing lost') : 'RECORDS LOST: the pipeline did not keep up at this rate'}\n`,
  );
  return { produced: s.records + s.lostRecords + sampled, delivered: s.records, lost: s.lostRecords, sampled, written, perSecond: written / drainSeconds };
}

let profiled = false;
function post(session: InspectorSession, method: string): Promise<unknown> {
  return new Promise((resolve, reject) => session.post(method, (err, result) => (err ? reject(err) : resolve(result))));
}
async function startProfile(): Promise<InspectorSession> {
  const session = new InspectorSession();
  session.connect();
  await post(session, 'Profiler.enable');
  await post(session, 'Profiler.start');
  return session;
}
async function stopProfile(session: InspectorSession, file: string): Promise<void> {
  const { profile } = (await post(session, 'Profiler.stop')) as { profile: unknown };
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
  process.stdout.write(`  (CPU profile of this load written to ${file})\n`);
}

async function main(): Promise<void> {
  requirePrivileges('the capture benchmark', ['trace', 'lab']);
  const impls = [await load('this tree', new URL('../', import.meta.url).pathname)];
  if (BASELINE) impls.push(await load('baseline', join(BASELINE, 'dist')));
  const name = `bc${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-bench-capture-'));
  const children: ChildProcess[] = [];
  try {
    const lab = await labUp({ name, nodes: 2, podsPerNode: 2, faults: [] });
    const b = lab.pods.find((p) => p.name === 'pod-b')!;
    children.push(spawn('ip', ['netns', 'exec', b.netns, 'iperf3', '-s'], { stdio: 'ignore' }));
    await sleep(500);
    process.stdout.write(`bench: capture --pod pod-a ${WRITE ? '--write' : '(writer off: --no-write)'} on lab ${name} (2 nodes), following pod-a's traffic at every hop\n`);
    const loads: [string, string[]][] = [
      ['iperf3 TCP pod-a -> pod-b (the throughput benchmark load)', []],
      ['iperf3 UDP 64-byte payloads, unlimited rate (the record-rate benchmark load)', ['-u', '-b', '0', '-l', '64']],
      // A sustained rate below what the pipeline handles: ~10k packets/s, ~60k hop records/s.
      ['iperf3 UDP 64-byte payloads at 5 Mbit/s (~10k packets/s)', ['-u', '-b', '5M', '-l', '64']],
    ];
    let flood: Result | undefined;
    for (const [label, iperfArgs] of loads) {
      for (const impl of impls) {
        const r = await captureUnder(impl, lab, dir, label, iperfArgs);
        if (impl.label === 'this tree' && iperfArgs.includes('0')) flood = r;
      }
    }
    const mem = process.memoryUsage();
    process.stdout.write(`\nRSS at the end ${mib(mem.rss)} (max ${mib(process.resourceUsage().maxRSS * 1024)})\n`);
    if (flood) process.stdout.write(`capture: ${fmt(flood.perSecond)} records/s end to end, lost ${flood.lost}, sampled ${flood.sampled}\n`);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await labDown(name).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
