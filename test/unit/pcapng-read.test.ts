// `vxtrace read`: a trace of a faulted run, read back offline, gives the same paths and the same
// finding codes as the live run (the Correlator and Diagnoser fed the same hops), without root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { run } from '../../src/cli/main.js';
import { PcapngWriter } from '../../src/pcapng/writer.js';
import { readTrace } from '../../src/pcapng/reader.js';
import { encodeCustomBlock, encodeSectionHeader } from '../../src/pcapng/blocks.js';
import { VXTRACE_PEN } from '../../src/pcapng/format.js';
import { parseBlocks } from '../../src/pcapng/parser.js';
import { oneClock, replayTrace } from '../../src/session/replay.js';
import { Correlator, resolverFromModel } from '../../src/correlate/correlator.js';
import { Diagnoser } from '../../src/diagnose/diagnoser.js';
import { ClusterModel } from '../../src/cluster/model.js';
import { clusterObjectsFromJson } from '../../src/cluster/list.js';
import type { PacketPath } from '../../src/correlate/path.js';
import type { Finding } from '../../src/diagnose/finding.js';
import type { HopEvent } from '../../src/datapath/hop.js';
import { echoPath, snapshot } from './pcapng-fixtures.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-read-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The snapshot the fixtures' cluster gives, with no kernel state (diagnosis from objects and packets). */
const snap = () => ({ ...snapshot(), nodeState: {} });

/** What a live `follow` does with these hops: correlate as they arrive, diagnose each finished path. */
function liveRun(events: HopEvent[]): { paths: PacketPath[]; findings: Finding[] } {
  const model = ClusterModel.build(clusterObjectsFromJson(snap().cluster, 'test'));
  const correlator = new Correlator({ resolver: resolverFromModel(model), clockOf: () => 'local' });
  const diagnoser = new Diagnoser(model);
  const paths: PacketPath[] = [];
  for (const e of events) for (const p of correlator.add(e)) paths.push(p);
  paths.push(...correlator.flush());
  for (const p of paths) diagnoser.observePath(p);
  diagnoser.checkState();
  const nodes = new Set(paths.flatMap((p) => [p.srcNode, p.dstNode]));
  return { paths, findings: diagnoser.findings().filter((f) => f.packetCount > 0 || f.nodes.some((n) => nodes.has(n))) };
}

/** Hops of several packets interleaved in time, as the datapath hands them over. */
function faultedRunEvents(): HopEvent[] {
  const paths = [
    echoPath({ seq: 1 }),
    echoPath({ seq: 2, dropAtNode2: true, outerDst: '10.0.2.15' }),
    echoPath({ seq: 3, dropAtNode2: true, outerDst: '10.0.2.15', baseWallNs: 1_764_104_400_002_000_500n }),
  ];
  return paths.flatMap((p) => p.hops.map((h) => h.event)).sort((a, b) => (a.wallTimeNs < b.wallTimeNs ? -1 : a.wallTimeNs > b.wallTimeNs ? 1 : 0));
}

async function cli(argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d: Buffer) => (stdout += d.toString()));
  err.on('data', (d: Buffer) => (stderr += d.toString()));
  const status = await run(['node', 'vxtrace', ...argv], { stdout: out, stderr: err });
  return { status, stdout, stderr };
}

function writeLiveTrace(file: string): { paths: PacketPath[]; findings: Finding[] } {
  const live = liveRun(faultedRunEvents());
  const w = PcapngWriter.open(file, { snapshot: snap() });
  for (const p of live.paths) w.writeHops(p);
  w.writeFindings(live.findings, { lostRecords: 0 });
  w.close();
  return live;
}

test('vxtrace read --json: the same paths and the same finding codes as the live run', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'fault.pcapng');
  const live = writeLiveTrace(file);
  assert.ok(live.findings.length > 0, 'the fault shows findings live');
  assert.ok(live.findings.some((f) => f.code === 'WRONG_UNDERLAY_DST'));
  const r = await cli(['read', file, '--json']);
  assert.equal(r.status, 1, r.stderr);
  const records = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; code?: string; fingerprint?: string; outcome?: string; findingCodes?: string[] });
  const paths = records.filter((x) => x.type === 'path');
  assert.deepEqual(paths.map((p) => [p.fingerprint, p.outcome]), live.paths.map((p) => [p.fingerprint, p.outcome]));
  const codes = records.filter((x) => x.type === 'finding').map((f) => f.code).sort();
  assert.deepEqual(codes, live.findings.map((f) => f.code).sort());
  const summary = records.at(-1)!;
  assert.equal(summary.type, 'summary');
  assert.deepEqual(summary.findingCodes!.sort(), [...new Set(live.findings.map((f) => f.code))].sort());
  assert.doesNotMatch(r.stderr, /note: the live run recorded/);
  assert.match(r.stderr, /^trace: .*fault\.pcapng, written by vxtrace \d/);
});

test('replaying gives the live paths exactly (hops, order, outcome, pods)', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'fault.pcapng');
  const live = writeLiveTrace(file);
  const replay = replayTrace(await readTrace(file), file);
  assert.equal(replay.clocks, 'one');
  assert.deepEqual(replay.warnings, []);
  assert.deepEqual(replay.paths, live.paths);
  assert.deepEqual(replay.findings, live.findings);
});

test('vxtrace read in text: path lines, findings with their fix, and the summary', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'fault.pcapng');
  writeLiveTrace(file);
  const r = await cli(['read', file]);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /default\/pod-a → default\/pod-b/);
  assert.match(r.stdout, /WRONG_UNDERLAY_DST/);
  assert.match(r.stdout, /fix:/);
  assert.match(r.stdout, /3 paths: 1 delivered, 2 dropped; 0 records lost; findings: /);
});

test('vxtrace read of a healthy trace exits 0', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'ok.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snap() });
  w.writeHops(echoPath({ seq: 1 }));
  w.writeFindings([], { lostRecords: 0 });
  w.close();
  const r = await cli(['read', file]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /1 path: 1 delivered; 0 records lost; no findings/);
});

test('vxtrace read of a cut-short file: the paths before the cut, a warning, exit 1', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'fault.pcapng');
  writeLiveTrace(file);
  const bytes = readFileSync(file);
  const cut = join(dir, 'cut.pcapng');
  writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
  const r = await cli(['read', cut, '--json']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /warning: .*cut\.pcapng: the file ends inside a block at byte \d+/);
  assert.ok(r.stdout.split('\n').some((l) => l.includes('"type":"path"')));
});

test('vxtrace read of what is not a trace: exit 2 and one line saying why, no stack', async (t) => {
  const dir = tempDir(t);
  let r = await cli(['read', join(dir, 'missing.pcapng')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^vxtrace: cannot read the trace .*missing\.pcapng: no such file\n$/);
  const pcap = join(dir, 'old.pcap');
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0);
  writeFileSync(pcap, hdr);
  r = await cli(['read', pcap]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /legacy pcap file \(e\.g\. from tcpdump -w\), not a vxtrace trace: .*open this one with Wireshark/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
});

test('one clock or one per node: judged from wall minus monotonic time per node', () => {
  const events = echoPath({ seq: 1 }).hops.map((h) => h.event);
  assert.equal(oneClock(events), true);
  const skewed = events.map((e) => (e.node === 'node2' ? { ...e, timestampNs: e.timestampNs + 3_600_000_000_000n } : e));
  assert.equal(oneClock(skewed), false);
});

test('a trace of an older format (JSON hop records, vxtrace 0.1) is one clear error, not packets without hops', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'old.pcapng');
  const json = Buffer.from(JSON.stringify({ vxtrace: 'snapshot', v: 1, traceId: '0011223344556677', fileIndex: 0, writer: 'vxtrace 0.1.0', snapshot: snapshot() }));
  const data = Buffer.alloc((json.length + 3) & ~3);
  json.copy(data);
  writeFileSync(file, Buffer.concat([encodeSectionHeader({ userApplication: 'vxtrace 0.1.0' }), encodeCustomBlock(VXTRACE_PEN, data)]));
  const r = await cli(['read', file]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^vxtrace: .*old\.pcapng: this trace was written by an older vxtrace \(trace format 1; this version reads format 2\): open it with Wireshark, or read it with the vxtrace that wrote it \(vxtrace 0\.1\.0\)\n$/);
});

test('a file cut inside its last path: that path is unfinished, not vanished, and not judged', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'cut.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snap() });
  w.writeHops(echoPath({ seq: 1 }));
  w.writeHops(echoPath({ seq: 2, dropAtNode2: true }));
  w.close();
  const whole = readFileSync(file);
  // Cut in the middle of the dropped path's third packet block.
  const packets = parseBlocks(whole).blocks.filter((b) => b.type === 'packet');
  const third = packets[packets.length - 3]!;
  const cut = join(dir, 'cut-short.pcapng');
  writeFileSync(cut, whole.subarray(0, third.offset + 20));
  const trace = await readTrace(cut);
  assert.equal(trace.damaged, true);
  const replay = replayTrace(trace, cut);
  assert.deepEqual(replay.paths.map((p) => p.outcome), ['delivered', 'in-flight']);
  assert.match(replay.warnings.join('\n'), /the last path in .*cut-short\.pcapng is cut short by the damage: shown as unfinished, not judged/);
  assert.deepEqual(replay.findings!.filter((f) => f.packetCount > 0), []);
});
