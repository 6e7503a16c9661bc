// Wireshark reads what vxtrace writes: tshark (not only our reader) opens every file with no
// warning, dissects outer and inner headers of the VXLAN leg, shows the per-packet comments and
// the node/device interface names, and opens the file a SIGKILLed writer leaves behind.
// Needs tshark (Debian package tshark); no root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PcapngWriter, rotatedFileName } from '../src/pcapng/writer.js';
import { readTrace, rotatedTraceFiles } from '../src/pcapng/reader.js';
import {
  encodeCustomBlock,
  encodeEnhancedPacket,
  encodeInterfaceDescription,
  encodeSectionHeader,
} from '../src/pcapng/blocks.js';
import { Opt, TRACE_FORMAT_VERSION, VXTRACE_PEN } from '../src/pcapng/format.js';
import { encodeHopHeader } from '../src/datapath/decode.js';
import { encodeHopRecord, hopComment } from '../src/pcapng/hop-record.js';
import fc from 'fast-check';
import { echoPath, sampleFindings, snapshot } from './unit/pcapng-fixtures.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-tshark-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** tshark's own notice when run as root; it is about the user, not the file. */
const ROOT_NOTICE = /^Running as user "root" and group "root"\. This could be dangerous\.$/;

function tshark(args: string[]): { stdout: string; stderr: string } {
  const r = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw new Error(`cannot run tshark (apt-get install tshark): ${r.error.message}`);
  const stderr = r.stderr.split('\n').filter((l) => l.trim() !== '' && !ROOT_NOTICE.test(l.trim())).join('\n');
  assert.equal(r.status, 0, `tshark ${args.join(' ')} exited ${r.status}: ${stderr}`);
  assert.equal(stderr, '', `tshark ${args.join(' ')} warned`);
  return { stdout: r.stdout, stderr };
}

const VXLAN = ['-d', 'udp.port==8472,vxlan'];
const CHECKSUMS = ['-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'];

function writeSample(file: string): void {
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeHops(echoPath({ seq: 1 }));
  w.writeHops(echoPath({ seq: 2, dropAtNode2: true, outerDst: '10.0.2.15' }));
  w.writeFindings(sampleFindings);
  w.close();
}

test('tshark reads the trace with no warning and dissects outer and inner addresses of the uplink packets', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  writeSample(file);
  tshark(['-r', file, ...VXLAN]);
  const { stdout } = tshark(['-r', file, ...VXLAN, '-Y', 'vxlan', '-T', 'fields', '-E', 'occurrence=a', '-e', 'frame.interface_name', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'vxlan.vni']);
  assert.deepEqual(stdout.trim().split('\n'), [
    'node1/eth1\t192.168.56.11,10.244.1.2\t192.168.56.12,10.244.2.3\t1',
    'node2/eth1\t192.168.56.11,10.244.1.2\t192.168.56.12,10.244.2.3\t1',
    'node1/eth1\t192.168.56.11,10.244.1.2\t10.0.2.15,10.244.2.3\t1',
    'node2/eth1\t192.168.56.11,10.244.1.2\t10.0.2.15,10.244.2.3\t1',
    'node2/kfree_skb\t192.168.56.11,10.244.1.2\t10.0.2.15,10.244.2.3\t1',
  ]);
  // The frames are real: every checksum tshark can check is good, and no expert warning is raised.
  const bad = tshark(['-r', file, ...VXLAN, ...CHECKSUMS, '-Y', '_ws.expert.severity >= warning || ip.checksum.status == 0 || udp.checksum.status == 0 || icmp.checksum.status == 0']);
  assert.equal(bad.stdout, '');
  const good = tshark(['-r', file, ...VXLAN, ...CHECKSUMS, '-Y', 'icmp.checksum.status == 1 && ip.checksum.status == 1']);
  assert.equal(good.stdout.trim().split('\n').length, 11);
});

test('tshark shows each packet comment and node/device interface name; custom blocks carry our PEN', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  writeSample(file);
  const { stdout } = tshark(['-r', file, '-T', 'fields', '-e', 'frame.interface_name', '-e', 'frame.comment', '-e', 'frame.cb_pen']);
  const rows = stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
  const packets = rows.filter((r) => r[0] !== '');
  assert.equal(packets.length, 11);
  assert.deepEqual(packets.map((r) => r[0]), [
    'node1/cni0', 'node1/flannel.1', 'node1/eth1', 'node2/eth1', 'node2/flannel.1', 'node2/cni0',
    'node1/cni0', 'node1/flannel.1', 'node1/eth1', 'node2/eth1', 'node2/kfree_skb',
  ]);
  assert.equal(packets[1]![1], 'vxtrace hop node1/flannel.1 egress fp=1a2b3c4d00000001 10.244.1.2>10.244.2.3 icmp outcome=delivered');
  assert.match(packets[10]![1]!, /^vxtrace drop node2\/eth1 ingress fp=1a2b3c4d00000002 .* outcome=dropped reason=OTHERHOST at=ip_rcv_core$/);
  // The snapshot and findings blocks: Wireshark lists them as "Custom Block" records with PEN 32473.
  const custom = rows.filter((r) => r[0] === '');
  assert.equal(custom.length, 2);
  for (const r of custom) assert.equal(r[2], String(VXTRACE_PEN));
});

test('capinfos shows vxtrace as the application and the findings summary as the capture comment', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  writeSample(file);
  const r = spawnSync('capinfos', [file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Capture application:\s+vxtrace \d+\.\d+\.\d+/);
  assert.match(r.stdout, /Capture comment:\s+vxtrace .* Findings: 2 \(2 error/);
  assert.match(r.stdout, /Name = node1\/flannel\.1\n\s+Description = node1 flannel\.1 \(VXLAN VTEP, VNI 1\)/);
  assert.match(r.stdout, /Time precision = nanoseconds \(9\)/);
});

test('tshark reads every file of a rotated trace', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snapshot(), rotateSize: 8 * 1024 });
  for (let i = 0; i < 12; i++) w.writeHops(echoPath({ seq: i + 1 }));
  w.close();
  assert.ok(w.stats.files.length >= 3);
  let packets = 0;
  for (const f of w.stats.files) {
    const { stdout } = tshark(['-r', f, ...VXLAN, '-Y', 'frame.interface_name', '-T', 'fields', '-e', 'frame.interface_name']);
    packets += stdout.trim().split('\n').length;
  }
  assert.equal(packets, 72);
});

test('a big-endian file (as another writer may produce) reads the same in tshark and in our reader', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'be.pcapng');
  const path = echoPath({ seq: 7 });
  const e = path.hops[2]!.event;
  const annotation = { outcome: path.outcome };
  const record = JSON.stringify({ vxtrace: 'snapshot', v: TRACE_FORMAT_VERSION, traceId: '00', fileIndex: 0, writer: 'test', snapshot: snapshot() });
  const data = Buffer.alloc((record.length + 3) & ~3);
  data.write(record);
  writeFileSync(file, Buffer.concat([
    encodeSectionHeader({ userApplication: 'test', comment: 'big-endian' }, false),
    encodeCustomBlock(VXTRACE_PEN, data, true, false),
    encodeInterfaceDescription({ linkType: 1, snapLength: 65535, name: 'node1/eth1', tsresol: 9 }, false),
    encodeEnhancedPacket({
      interfaceId: 0, timestamp: e.wallTimeNs, data: e.frame, originalLength: e.skbLength, flags: 2,
      comment: hopComment(e, annotation), customOptions: [{ code: Opt.CUSTOM_BINARY_COPYABLE, value: encodeHopRecord(e, annotation, false) }],
    }, false),
  ]));
  const { stdout } = tshark(['-r', file, ...VXLAN, '-Y', 'vxlan', '-T', 'fields', '-e', 'frame.interface_name', '-e', 'ip.dst', '-e', 'frame.time_epoch']);
  assert.equal(stdout.trim(), `node1/eth1\t192.168.56.12,10.244.2.3\t${e.wallTimeNs / 1_000_000_000n}.${(e.wallTimeNs % 1_000_000_000n).toString().padStart(9, '0')}`);
  const trace = await readTrace(file);
  assert.equal(trace.sections[0]!.littleEndian, false);
  // the same event, now with the record header it was stored with
  assert.deepEqual(trace.hops, [{ ...e, record: trace.hops[0]!.record }]);
  assert.deepEqual(trace.hops[0]!.record, encodeHopHeader(e));
  assert.deepEqual(trace.snapshot, snapshot());
});

test('a writer killed with SIGKILL mid-capture leaves a file tshark opens and we read to the last block', async (t) => {
  const dir = tempDir(t);
  const distRoot = new URL('../', import.meta.url); // dist/
  const script = join(dir, 'writer.mjs');
  writeFileSync(
    script,
    `import { PcapngWriter } from ${JSON.stringify(new URL('src/pcapng/writer.js', distRoot).href)};
import { echoPath, snapshot } from ${JSON.stringify(new URL('test/unit/pcapng-fixtures.js', distRoot).href)};
const rotate = Number(process.argv[3]) ? { rotateSize: Number(process.argv[3]), rotateCount: 3 } : {};
const w = PcapngWriter.open(process.argv[2], { snapshot: snapshot(), ...rotate });
const paths = [echoPath({ seq: 1 }), echoPath({ seq: 2, dropAtNode2: true }), echoPath({ seq: 3, payloadLength: 1400 })];
process.stdout.write('ready\\n');
for (let i = 0; ; i++) w.writeHops(paths[i % 3]);
`,
  );
  for (const [run, rotate] of [0, 0, 0, 0, 64 * 1024].entries()) {
    const file = join(dir, `killed-${run}.pcapng`);
    const child = spawn(process.execPath, [script, file, String(rotate)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    });
    // Let it write a good amount (or rotate a few times), then kill it in the middle of its loop.
    const watch = rotate ? rotatedFileName(file, 5) : file;
    for (let waited = 0; waited < 5000; waited += 10) {
      await sleep(10);
      try {
        if (statSync(watch).size > (rotate ? 0 : 512 * 1024)) break;
      } catch {
        // not created yet
      }
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const files = rotate ? await rotatedTraceFiles(file) : [file];
    assert.ok(files.length <= 3, `--rotate-count 3 kept ${files.length} files`);
    let hops = 0;
    for (const f of files) {
      const { stdout } = tshark(['-r', f, ...VXLAN, '-T', 'fields', '-e', 'frame.interface_name']);
      const packets = stdout.split('\n').filter((l) => l !== '').length;
      const trace = await readTrace(f);
      hops += trace.hops.length;
      assert.ok(trace.snapshot, `${f} has its snapshot`);
      assert.equal(packets, trace.hops.length, `tshark and our reader see the same packets in ${f}`);
      // Page alignment (alignToPages) makes a kill land on a block boundary: nothing is cut short.
      assert.equal(trace.damaged, false, trace.warnings.join('\n'));
      assert.ok(readFileSync(f).length > 0);
    }
    // (The newest file of a rotated trace may hold only its header if the kill came just after rotating.)
    assert.ok(hops > 0, `the killed writer left packets in ${files.join(', ')}`);
  }
});

test('tshark dissects a drop recorded from the IP header (raw-IP interface) with outer and inner addresses', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'trace.pcapng');
  const w = PcapngWriter.open(file, { snapshot: snapshot() });
  w.writeHops(echoPath({ seq: 1, dropAtNode2: true, dropFrame: 'ip', outerDst: '10.0.2.15' }));
  w.writeHops(echoPath({ seq: 2, dropAtNode2: true, dropFrame: 'ip-unmarked', outerDst: '10.0.2.15' }));
  w.close();
  const { stdout } = tshark(['-r', file, ...VXLAN, ...CHECKSUMS, '-Y', 'frame.interface_name == "node2/kfree_skb"', '-T', 'fields', '-E', 'occurrence=a', '-e', 'frame.protocols', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'ip.checksum.status']);
  const rows = stdout.trim().split('\n');
  assert.equal(rows.length, 2);
  for (const r of rows) assert.equal(r, 'raw:ip:udp:vxlan:eth:ethertype:ip:icmp:data\t192.168.56.11,10.244.1.2\t10.0.2.15,10.244.2.3\t1,1');
});

test('tshark reads files of random paths, names, drops, findings and rotation with no warning', { timeout: 120_000 }, (t) => {
  const dir = tempDir(t);
  let run = 0;
  fc.assert(
    fc.property(
      fc.array(fc.record({ seq: fc.integer({ min: 1, max: 60000 }), drop: fc.boolean(), ip: fc.boolean(), size: fc.integer({ min: 0, max: 1400 }) }), { minLength: 1, maxLength: 30 }),
      fc.string({ maxLength: 30, unit: 'grapheme' }),
      fc.option(fc.integer({ min: 16 * 1024, max: 64 * 1024 })),
      (specs, node, rotateSize) => {
        const file = join(dir, `r${run++}.pcapng`);
        const w = PcapngWriter.open(file, { snapshot: snapshot(), ...(rotateSize === null ? {} : { rotateSize }) });
        for (const s of specs) {
          const p = echoPath({ seq: s.seq, payloadLength: s.size, dropAtNode2: s.drop, dropFrame: s.ip ? 'ip' : 'ethernet' });
          for (const h of p.hops) if (h.event.node === 'node1') h.event.node = `node1${node}`;
          w.writeHops(p);
        }
        w.writeFindings([{ ...sampleFindings[0]!, cause: `${node} ${'x'.repeat(specs.length * 100)}` }]);
        w.close();
        let packets = 0;
        for (const f of w.stats.files) {
          const { stdout } = tshark(['-r', f, ...VXLAN, '-Y', 'frame.interface_name', '-T', 'fields', '-e', 'frame.interface_name']);
          packets += stdout.split('\n').filter((l) => l !== '').length;
        }
        assert.equal(packets, w.stats.packets);
      },
    ),
    { numRuns: 8 },
  );
});
