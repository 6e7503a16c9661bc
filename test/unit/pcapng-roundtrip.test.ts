// Writer → reader: every HopEvent comes back exactly; interfaces, flags, comments, snapshot,
// findings, rotation and bad options behave as docs/trace-format.md says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, readdirSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapngWriter, parseSize, rotatedFileName } from '../../src/pcapng/writer.js';
import { readTrace, parseTrace, rotatedTraceFiles } from '../../src/pcapng/reader.js';
import { parseBlocks } from '../../src/pcapng/parser.js';
import { SHB_RESERVED_LENGTH, TRACE_FORMAT_VERSION, TraceFormatError, VXTRACE_PEN } from '../../src/pcapng/format.js';
import { HOP_LAYOUT } from '../../src/datapath/decode.js';
import { UsageError } from '../../src/errors.js';
import type { Finding } from '../../src/diagnose/finding.js';
import { echoPath, sampleFindings, snapshot } from './pcapng-fixtures.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-pcapng-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}


test('every HopEvent written comes back exactly, with its outcome, in file order', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const paths = [echoPath({ seq: 1 }), echoPath({ seq: 2, dropAtNode2: true, outerDst: '10.0.2.15' }), echoPath({ seq: 3 })];
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  for (const p of paths) w.writeHops(p);
  w.writeFindings(sampleFindings);
  w.close();
  const trace = await readTrace(file);
  const written = paths.flatMap((p) => p.hops.map((h) => h.event));
  assert.equal(trace.hops.length, written.length);
  assert.deepEqual(trace.hops, written);
  assert.deepEqual(trace.warnings, []);
  assert.equal(trace.damaged, false);
  assert.deepEqual(trace.snapshot, snapshot());
  assert.deepEqual(trace.findings, sampleFindings);
  assert.equal(trace.packets[0]!.annotation?.outcome, 'delivered');
  const dropped = trace.packets.filter((p) => p.annotation?.outcome === 'dropped');
  assert.equal(dropped.length, 5);
  assert.deepEqual(dropped[0]!.annotation?.pathDrop, { node: 'node2', device: 'eth1', reason: 'OTHERHOST', location: 'ip_rcv_core' });
  // Wall-clock timestamps in nanoseconds, from the EPB itself.
  assert.deepEqual(trace.packets.map((p) => p.timestampNs), written.map((e) => e.wallTimeNs));
});

test('one interface per node/device, named node/device, with a description, Ethernet and ns resolution', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snapshot(), snaplen: 1500 });
  w.writeHops(echoPath({ seq: 1 }));
  w.writeHops(echoPath({ seq: 2, dropAtNode2: true }));
  w.close();
  const trace = await readTrace(file);
  assert.deepEqual(
    trace.interfaces.map((i) => i.name),
    ['node1/cni0', 'node1/flannel.1', 'node1/eth1', 'node2/eth1', 'node2/flannel.1', 'node2/cni0', 'node2/kfree_skb'],
  );
  for (const i of trace.interfaces) {
    assert.equal(i.linkType, 1);
    assert.equal(i.tsresol, 9);
    assert.equal(i.snapLength, 1500);
  }
  assert.equal(trace.interfaces[1]!.description, 'node1 flannel.1 (VXLAN VTEP, VNI 1)');
  assert.match(trace.interfaces[6]!.description!, /^node2 kernel drops \(tracepoint skb:kfree_skb\)/);
  // Direction bits: ingress → inbound (1), egress → outbound (2), drops → not given (0).
  assert.deepEqual(trace.packets.slice(0, 6).map((p) => p.flags), [1, 2, 2, 1, 1, 2]);
  assert.equal(trace.packets.at(-1)!.flags, 0);
});

test('the packet comment carries hop, direction, fingerprint, outcome and the drop reason', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeHops(echoPath({ seq: 2, dropAtNode2: true, outerDst: '10.0.2.15' }));
  w.close();
  const trace = await readTrace(file);
  assert.deepEqual(trace.packets[1]!.comments, [
    'vxtrace hop node1/flannel.1 egress fp=1a2b3c4d00000002 10.244.1.2>10.244.2.3 icmp outcome=dropped reason=OTHERHOST dropped-at=node2/eth1',
  ]);
  assert.deepEqual(trace.packets[2]!.comments, [
    'vxtrace hop node1/eth1 egress fp=1a2b3c4d00000002 10.244.1.2>10.244.2.3 icmp outer=192.168.56.11>10.0.2.15 vni=1 outcome=dropped reason=OTHERHOST dropped-at=node2/eth1',
  ]);
  assert.deepEqual(trace.packets[4]!.comments, [
    'vxtrace drop node2/eth1 ingress fp=1a2b3c4d00000002 10.244.1.2>10.244.2.3 icmp outer=192.168.56.11>10.0.2.15 vni=1 outcome=dropped reason=OTHERHOST at=ip_rcv_core',
  ]);
});

test('writeHop without a path records outcome unknown', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  const e = echoPath({ seq: 9 }).hops[0]!.event;
  w.writeHop(e);
  w.close();
  const trace = await readTrace(file);
  assert.deepEqual(trace.hops, [e]);
  assert.equal(trace.packets[0]!.annotation?.outcome, 'unknown');
  assert.match(trace.packets[0]!.comments[0]!, / outcome=unknown$/);
});

test('the section names vxtrace and its version, and its comment summarises the findings in place', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeHops(echoPath({ seq: 1 }));
  let trace = parseTrace(readFileSync(file));
  assert.match(trace.sections[0]!.userApplication!, /^vxtrace \d+\.\d+\.\d+/);
  assert.match(trace.sections[0]!.comments[0]!, /Findings: not written yet/);
  w.writeFindings(sampleFindings);
  w.close();
  const bytes = readFileSync(file);
  trace = parseTrace(bytes);
  assert.equal(trace.sections.length, 1);
  assert.match(trace.sections[0]!.comments[0]!, /Findings: 2 \(2 error, 0 warning, 0 info\)/);
  assert.match(trace.sections[0]!.comments[0]!, /\[error\] WRONG_UNDERLAY_DST on node1: .* Fix: restart flanneld on every node with --iface=eth1/);
  assert.equal(bytes.readUInt32LE(4), SHB_RESERVED_LENGTH);
  assert.equal(trace.hops.length, 6);
});

test('a long findings list is cut to fit the section comment, and all of it stays in the findings block', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const many: Finding[] = Array.from({ length: 200 }, (_, i) => ({ ...sampleFindings[0]!, key: `k${i}`, cause: `cause number ${i} ${'é'.repeat(30)}` }));
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeFindings(many);
  w.close();
  const trace = await readTrace(file);
  assert.equal(trace.findings!.length, 200);
  assert.match(trace.sections[0]!.comments[0]!, /\.\.\. and \d+ more \(see the findings block\)$/);
  assert.deepEqual(trace.warnings, []);
});

test('the snapshot and findings are Custom Blocks 0x00000BAD with PEN 32473 carrying JSON', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeFindings(sampleFindings);
  w.close();
  const { blocks } = parseBlocks(readFileSync(file));
  const custom = blocks.filter((b) => b.type === 'custom');
  assert.equal(custom.length, 2);
  for (const b of custom) {
    assert.ok(b.type === 'custom' && b.copyable && b.pen === VXTRACE_PEN);
    const json = JSON.parse(Buffer.from(b.data).toString('utf8').replace(/\0+$/, '')) as { vxtrace: string; v: number; traceId: string };
    assert.equal(json.v, TRACE_FORMAT_VERSION);
    assert.equal(json.traceId, w.traceId);
  }
  assert.deepEqual(custom.map((b) => b.type === 'custom' && JSON.parse(Buffer.from(b.data).toString().replace(/\0+$/, '')).vxtrace), ['snapshot', 'findings']);
});

test('rotation: complete files trace.pcapng, trace.1.pcapng, ... each with section, interfaces and snapshot', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snapshot(), rotateSize: 16 * 1024 });
  const paths = Array.from({ length: 40 }, (_, i) => echoPath({ seq: i + 1 }));
  for (const p of paths.slice(0, 20)) w.writeHops(p);
  w.writeFindings(sampleFindings);
  for (const p of paths.slice(20)) w.writeHops(p);
  w.close();
  const files = w.stats.files;
  assert.ok(files.length >= 3, `expected several files, got ${files.length}`);
  assert.deepEqual(files, files.map((_, i) => rotatedFileName(file, i)));
  assert.equal(rotatedFileName(file, 2), join(dir, 'trace.2.pcapng'));
  assert.deepEqual(await rotatedTraceFiles(file), files);
  // Given a numbered file: that one and the later ones.
  assert.deepEqual(await rotatedTraceFiles(files[1]!), files.slice(1));
  // A numbered file that does not exist is read as given (and reading says no such file).
  assert.deepEqual(await rotatedTraceFiles(rotatedFileName(file, 99)), [rotatedFileName(file, 99)]);
  let total = 0;
  let findingsSeen = false;
  for (const [i, f] of files.entries()) {
    const bytes = readFileSync(f);
    assert.ok(i === files.length - 1 || bytes.length <= 16 * 1024, `${f} is ${bytes.length} bytes`);
    const trace = parseTrace(bytes);
    assert.deepEqual(trace.warnings, []);
    assert.equal(trace.sections.length, 1);
    assert.deepEqual(trace.snapshot, snapshot());
    assert.ok(trace.interfaces.length > 0);
    assert.equal(trace.traceId, w.traceId);
    // Once written, the findings are in every later file too.
    if (findingsSeen) assert.deepEqual(trace.findings, sampleFindings, `${f} repeats the findings`);
    findingsSeen ||= trace.findings !== undefined;
    total += trace.hops.length;
  }
  assert.ok(findingsSeen);
  assert.ok(parseTrace(readFileSync(files.at(-1)!)).findings, 'the last file has the findings');
  assert.equal(total, 240);
  const all = await readTrace(files);
  assert.deepEqual(all.hops, paths.flatMap((p) => p.hops.map((h) => h.event)));
  assert.equal(all.sections.length, files.length);
});

test('rotation with rotateCount keeps the newest N files and the reader finds them', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'cap.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snapshot(), rotateSize: 12 * 1024, rotateCount: 2 });
  for (let i = 0; i < 60; i++) w.writeHops(echoPath({ seq: i + 1 }));
  w.close();
  const left = readdirSync(dir).sort();
  assert.equal(left.length, 2);
  assert.deepEqual(w.stats.files.map((f) => f.slice(dir.length + 1)).sort(), left);
  assert.ok(!existsSync(file));
  const found = await rotatedTraceFiles(file);
  assert.deepEqual(found, w.stats.files);
  const trace = await readTrace(found);
  assert.equal(trace.hops.at(-1)!.fingerprint, echoPath({ seq: 60 }).fingerprint);
  // The writer knows how many of its packets are still on disk.
  assert.equal(w.stats.packets, 360);
  assert.equal(w.stats.packetsKept, trace.hops.length);
  assert.ok(w.stats.packetsKept < 360);
});

test('a stale rotated file from another run is skipped with a warning', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const old = PcapngWriter.open(file, { snapshot: snapshot(), rotateSize: 8 * 1024 });
  for (let i = 0; i < 20; i++) old.writeHops(echoPath({ seq: i + 1 }));
  old.close();
  assert.ok(old.stats.files.length >= 3);
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeHops(echoPath({ seq: 100 }));
  w.close();
  const trace = await readTrace(await rotatedTraceFiles(file));
  assert.equal(trace.hops.length, 6);
  assert.equal(trace.files.length, 1);
  assert.ok(trace.warnings.length >= 2 && trace.warnings.every((m) => /belongs to another trace/.test(m)), trace.warnings.join('\n'));
});

test('bad options and paths are usage errors that say what to do', (t) => {
  const dir = tempDir(t);
  const s = snapshot();
  assert.throws(() => PcapngWriter.open(join(dir, 'x.pcapng'), { snapshot: s, rotateCount: 3 }), (e: unknown) => e instanceof UsageError && /--rotate-count needs --rotate-size/.test(e.message));
  assert.throws(() => PcapngWriter.open(join(dir, 'x.pcapng'), { snapshot: s, rotateSize: 0 }), UsageError);
  assert.throws(() => PcapngWriter.open(join(dir, 'x.pcapng'), { snapshot: s, snaplen: 300000 }), UsageError);
  assert.throws(() => PcapngWriter.open(join(dir, 'nope', 'x.pcapng'), { snapshot: s }), (e: unknown) => e instanceof UsageError && /directory .* does not exist/.test(e.message));
  mkdirSync(join(dir, 'd'));
  assert.throws(() => PcapngWriter.open(join(dir, 'd'), { snapshot: s }), (e: unknown) => e instanceof UsageError && /is a directory/.test(e.message));
  assert.equal(parseSize('100M'), 100 * 1024 * 1024);
  assert.equal(parseSize('4096'), 4096);
  assert.equal(parseSize('1g'), 1024 ** 3);
  assert.equal(parseSize('512KiB'), 512 * 1024);
  assert.throws(() => parseSize('lots'), UsageError);
  assert.throws(() => parseSize('0'), UsageError);
});

test('reading what is not a trace: typed errors with the file name', async (t) => {
  const dir = tempDir(t);
  await assert.rejects(readTrace(join(dir, 'missing.pcapng')), (e: unknown) => e instanceof UsageError && /no such file/.test(e.message));
  const empty = join(dir, 'empty.pcapng');
  writeFileSync(empty, '');
  await assert.rejects(readTrace(empty), (e: unknown) => e instanceof TraceFormatError && /empty/.test(e.message) && e.message.includes(empty));
  const pcap = join(dir, 'legacy.pcap');
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0);
  writeFileSync(pcap, hdr);
  await assert.rejects(readTrace(pcap), (e: unknown) => e instanceof TraceFormatError && /legacy pcap/.test(e.message) && /open this one with Wireshark/.test(e.message));
  const text = join(dir, 'notes.txt');
  writeFileSync(text, 'hello, this is not a capture at all\n');
  await assert.rejects(readTrace(text), (e: unknown) => e instanceof TraceFormatError && /not a pcapng file/.test(e.message));
});

test('a file cut short is read up to the last whole block, with a warning naming the byte', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeHops(echoPath({ seq: 1 }));
  w.writeHops(echoPath({ seq: 2 }));
  w.close();
  const bytes = readFileSync(file);
  const cut = join(dir, 'cut.pcapng');
  writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
  const trace = await readTrace(cut, { chunkSize: 100 });
  assert.equal(trace.damaged, true);
  assert.equal(trace.hops.length, 11);
  assert.match(trace.warnings[0]!, /ends inside a block at byte \d+ .* cut short/);
  assert.ok(trace.warnings[0]!.startsWith(cut));
});

test('a drop whose frame starts at the IP header goes on a raw-IP interface of the same name, and round-trips', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const marked = echoPath({ seq: 1, dropAtNode2: true, dropFrame: 'ip' });
  const unmarked = echoPath({ seq: 2, dropAtNode2: true, dropFrame: 'ip-unmarked' });
  const ether = echoPath({ seq: 3, dropAtNode2: true });
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  for (const p of [marked, unmarked, ether]) w.writeHops(p);
  w.close();
  const trace = await readTrace(file);
  assert.deepEqual(trace.hops, [marked, unmarked, ether].flatMap((p) => p.hops.map((h) => h.event)));
  const drops = trace.interfaces.filter((i) => i.name === 'node2/kfree_skb');
  assert.deepEqual(drops.map((i) => i.linkType), [101, 1]);
  assert.match(drops[0]!.description!, /frames start at the IP header/);
  const dropPackets = trace.packets.filter((p) => p.interfaceName === 'node2/kfree_skb');
  assert.equal(dropPackets.length, 3);
  assert.equal(trace.packets[4]!.frame[0]! >> 4, 4, 'the raw-IP frame is stored as given');
});

test('an earlier trace is overwritten, any other file is not', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  for (const seq of [1, 2]) {
    const w = PcapngWriter.open(file, { snapshot: snapshot() });
    w.writeHops(echoPath({ seq }));
    w.close();
  }
  assert.equal((await readTrace(file)).hops[0]!.fingerprint, echoPath({ seq: 2 }).fingerprint);
  const precious = join(dir, 'hosts');
  writeFileSync(precious, '127.0.0.1 localhost\n');
  assert.throws(() => PcapngWriter.open(precious, { snapshot: snapshot() }), (e: unknown) => e instanceof UsageError && /exists and is not a pcapng trace: vxtrace does not overwrite it/.test(e.message));
  assert.equal(readFileSync(precious, 'utf8'), '127.0.0.1 localhost\n');
  const empty = join(dir, 'empty.pcapng');
  writeFileSync(empty, '');
  PcapngWriter.open(empty, { snapshot: snapshot() }).close();
});

test('a rotation that cannot create its next file stops the writer with a typed error; earlier files stay whole', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  writeFileSync(join(dir, 'trace.1.pcapng'), 'not a trace\n');
  const w = PcapngWriter.open(file, { snapshot: snapshot(), rotateSize: 8 * 1024 });
  let error: unknown;
  try {
    for (let i = 0; i < 20; i++) w.writeHops(echoPath({ seq: i + 1 }));
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof UsageError && /trace\.1\.pcapng exists and is not a pcapng trace/.test(error.message), String(error));
  assert.throws(() => w.writeHops(echoPath({ seq: 99 })), (e: unknown) => e === error);
  w.close();
  const trace = await readTrace(file);
  assert.equal(trace.damaged, false);
  assert.ok(trace.hops.length > 0);
});

test('one call larger than the batch buffer (1 MiB) and than one write (4 MiB) comes back whole, in order', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'big.pcapng');
  const paths = Array.from({ length: 1700 }, (_, i) => echoPath({ seq: i + 1 }));
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeHops(paths);
  w.close();
  assert.ok(w.stats.bytes > 5 * 1024 * 1024, `${w.stats.bytes} bytes`);
  const trace = await readTrace(file);
  assert.deepEqual(trace.warnings, []);
  assert.deepEqual(trace.hops, paths.flatMap((p) => p.hops.map((h) => h.event)));
});

test('the kernel address of the freeing function is not stored (KASLR); its symbol name is', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'kaslr.pcapng');
  const drop = echoPath({ seq: 5, dropAtNode2: true }).hops.at(-1)!.event;
  assert.equal(drop.kind, 'drop');
  const record = new Uint8Array(drop.record!);
  new DataView(record.buffer).setBigUint64(HOP_LAYOUT.fields.drop_location.offset, 0xffffffff81234567n, true);
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeHop({ ...drop, record });
  w.close();
  const bytes = readFileSync(file);
  assert.equal(Buffer.from(bytes).indexOf(Buffer.from('67452381ffffffff', 'hex')), -1, 'the address is nowhere in the file');
  const [back] = (await readTrace(file)).hops;
  assert.equal(back!.dropLocation, 'ip_rcv_core');
  assert.equal(new DataView(back!.record!.buffer, back!.record!.byteOffset).getBigUint64(HOP_LAYOUT.fields.drop_location.offset, true), 0n);
});
