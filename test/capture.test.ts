// Traces on the lab (root, real kernel): `vxtrace capture` and `follow --write` write pcapng files
// that tshark reads with every hop visible, `vxtrace read` replays them to the same findings as the
// live run, and a capture killed with SIGKILL leaves a file tshark still opens.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { execAsync, execSync } from '../src/util/exec.js';
import type { FaultName, LabState } from '../src/lab/index.js';
import { vxtrace, withLab } from './helpers/lab.js';
import { runFollow } from './helpers/follow.js';
import { readTrace } from '../src/pcapng/reader.js';

const cli = fileURLToPath(new URL('../../bin/vxtrace.js', import.meta.url));
const ping = (lab: LabState, count = 2, from = 'pod-a', to = 'pod-b') =>
  execAsync(['ip', 'netns', 'exec', lab.pods.find((p) => p.name === from)!.netns, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', '-q', lab.pods.find((p) => p.name === to)!.ip], { allowFail: true });

function tshark(file: string, fields: string[], filter?: string): { lines: string[][]; warnings: string } {
  const r = execSync(['tshark', '-r', file, '-d', 'udp.port==8472,vxlan', ...(filter ? ['-Y', filter] : []), '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])]);
  // tshark warns about running as root; any other stderr is about the file.
  const warnings = r.stderr.replace(/^Running as user "root".*\n?/m, '').trim();
  return { lines: r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split('|')), warnings };
}

let dir: string;
const tmp = (name: string) => join(dir, name);

describe('traces', () => {
  dir = mkdtempSync(join(tmpdir(), 'vxt-capture-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

  test('capture of everything: tshark shows outer and inner addresses, interface names and comments; read rebuilds the paths', async () => {
    await withLab({ nodes: 2 }, async (lab) => {
      const file = tmp('all.pcapng');
      const r = await runFollow(['capture', '--cluster', lab.clusterFile, '--write', file, '--duration', '3'], () => ping(lab));
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /captured \d+ packets \(\d+ paths\) to /);
      const t = tshark(file, ['frame.interface_name', 'ip.src', 'ip.dst', 'vxlan.vni', 'frame.comment'], 'icmp');
      assert.equal(t.warnings, '');
      const uplink = t.lines.find(([ifname]) => ifname === 'node1/eth1');
      assert.ok(uplink, 'the uplink hop is in the file');
      assert.equal(uplink[1], '192.168.1.121,10.244.1.10', 'outer then inner source');
      assert.equal(uplink[2], '192.168.1.122,10.244.2.10', 'outer then inner destination');
      assert.equal(uplink[3], '1');
      assert.match(uplink[4]!, /^vxtrace hop node1\/eth1 egress fp=[0-9a-f]{16} .*outcome=delivered/);
      const names = new Set(t.lines.map(([n]) => n));
      for (const n of ['node1/cni0', 'node1/flannel.1', 'node1/eth1', 'node2/eth1', 'node2/flannel.1', 'node2/cni0']) assert.ok(names.has(n), `${n} in ${[...names].join(', ')}`);

      const read = vxtrace(['read', file, '--json']);
      const recs = read.stdout.trim().split('\n').map((l) => JSON.parse(l));
      assert.equal(read.status, 0, `${read.stderr}\n${JSON.stringify(recs.filter((x) => x.type === 'finding'))}`);
      const icmp = recs.filter((x) => x.type === 'path' && x.inner.protocol === 1);
      assert.equal(icmp.length, 4, 'two echo requests, two replies');
      assert.ok(icmp.every((p) => p.outcome === 'delivered' && p.hops.length === 6));
      assert.deepEqual(recs.filter((x) => x.type === 'finding'), []);
    });
  });

  test('capture --node and --pod select what is written', async () => {
    await withLab({ nodes: 3 }, async (lab) => {
      const file = tmp('node1.pcapng');
      const r = await runFollow(['capture', '--cluster', lab.clusterFile, '--write', file, '--duration', '2.5', '--node', 'node1', '--pod', 'pod-a'], async () => {
        await ping(lab, 2, 'pod-a', 'pod-b');
        await ping(lab, 2, 'pod-b', 'pod-c');
      });
      // pod-a's requests leave node1 for node2, which is not traced: not a loss, no finding.
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /\d+ left the traced nodes; 0 records lost; no findings/);
      assert.doesNotMatch(r.stderr, /lost in the underlay|NO_DECAP/);
      const read = vxtrace(['read', file]);
      assert.equal(read.status, 0, read.stderr);
      assert.match(read.stdout, /left the traced nodes \(after node1\/eth1 egress, for node2, not traced\)/);
      const t = tshark(file, ['frame.interface_name', 'ip.src', 'ip.dst'], 'eth');
      assert.ok(t.lines.length > 0);
      for (const [ifname, src, dst] of t.lines) {
        assert.match(ifname!, /^node1\//, 'only node1 hooks');
        assert.ok(`${src},${dst}`.includes('10.244.1.10'), `only pod-a's traffic: ${src} -> ${dst}`);
      }
    });
  });

  test('capture --between two pods on one node watches the bridge ports of that node: the bridged packets are in the file', async () => {
    await withLab({ nodes: 2, podsPerNode: 2 }, async (lab) => {
      const a = lab.pods.find((p) => p.name === 'pod-a')!;
      const same = lab.pods.find((p) => p.name !== 'pod-a' && p.node === a.node)!;
      const file = tmp('same-node.pcapng');
      const r = await runFollow(['capture', '--cluster', lab.clusterFile, '--write', file, '--duration', '2.5', '--between', `pod-a,${same.name}`], () => ping(lab, 2, 'pod-a', same.name));
      assert.equal(r.status, 0, r.stderr);
      const read = vxtrace(['read', file, '--json']);
      const icmp = read.stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((x) => x.type === 'path' && x.inner.protocol === 1);
      assert.equal(icmp.length, 4, `two requests and two replies:\n${read.stdout}`);
      assert.ok(icmp.every((p) => p.outcome === 'delivered'));
    });
  });

  test('capture on a broken cluster: the findings with cause and fix, and exit 1; interfaces carry the snaplen', async () => {
    await withLab({ nodes: 2, faults: ['udp-blocked', 'mtu'] }, async (lab) => {
      const file = tmp('blocked.pcapng');
      const r = await runFollow(['capture', '--cluster', lab.clusterFile, '--write', file, '--duration', '2.5', '--pod', 'pod-a'], () => ping(lab));
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /^✖ \w+ \(error\) on node2/m);
      assert.match(r.stderr, /^  fix: +on node2: accept UDP 8472/m);
      assert.match(r.stderr, /dropped; 0 records lost; findings: /);
      // The same findings as read gives for the file (state findings of the paths' nodes included).
      const captured = /findings: (.*)$/m.exec(r.stderr)![1]!.split(', ').sort();
      assert.ok(captured.includes('MTU_EXCEEDED'), captured.join(' '));
      const read = vxtrace(['read', file]);
      assert.deepEqual(/findings: (.*)$/m.exec(read.stdout)![1]!.split(', ').sort(), captured);
      assert.doesNotMatch(read.stderr, /the live run recorded findings/);
      const trace = await readTrace(file);
      assert.ok(trace.interfaces.length > 0);
      for (const i of trace.interfaces) assert.equal(i.snapLength, 256, `${i.name}: the tracer's default snaplen`);
    });
  });

  const FAULTS: FaultName[] = ['nat-public-ip', 'udp-blocked', 'stale-vtep-mac', 'bad-checksum'];
  for (const fault of FAULTS) {
    test(`read of a trace written during ${fault} reports the live run's finding codes`, async () => {
      await withLab({ nodes: 3, faults: [fault] }, async (lab) => {
        const file = tmp(`${fault}.pcapng`);
        const live = await runFollow(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--duration', '3', '--write', file], () => ping(lab));
        assert.equal(live.status, 1, live.stderr);
        const liveCodes = [...new Set(live.records.filter((x) => x.type === 'finding').map((x) => x.code as string))].sort();
        assert.ok(liveCodes.length > 0);
        // Offline: no capability needed, no lab needed.
        const read = vxtrace(['read', file, '--json'], { caps: 'none' });
        const recs = read.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
        const readCodes = [...new Set(recs.filter((x) => x.type === 'finding').map((x) => x.code as string))].sort();
        assert.deepEqual(readCodes, liveCodes, read.stderr);
        assert.equal(recs.filter((x) => x.type === 'path').length, live.records.filter((x) => x.type === 'path').length);
        assert.equal(read.status, 1, 'findings give exit 1 offline too');
      });
    });
  }

  test('a capture killed with SIGKILL leaves a file tshark opens, and read gives the packets before the end', async () => {
    await withLab({ nodes: 2 }, async (lab) => {
      const file = tmp('killed.pcapng');
      const child = spawn(process.execPath, [cli, 'capture', '--cluster', lab.clusterFile, '--write', file], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      for (let i = 0; i < 200 && !/capturing/.test(err); i++) await new Promise((r) => setTimeout(r, 25));
      await ping(lab, 5);
      await new Promise((r) => setTimeout(r, 500));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      assert.ok(statSync(file).size > 0);
      const t = tshark(file, ['frame.interface_name'], 'eth');
      assert.equal(t.warnings, '', 'tshark opens it without complaint');
      assert.ok(t.lines.length >= 6, `packets before the kill are there: ${t.lines.length}`);
      const read = vxtrace(['read', file]);
      assert.ok(read.status === 0 || read.status === 1, read.stderr);
      assert.match(read.stdout, /delivered/);
    });
  });

  test('a disk that fills up mid-capture stops it: one line, exit 3, and the packets written before read back', async () => {
    await withLab({ nodes: 2 }, async (lab) => {
      // A 128 KiB tmpfs, mounted in a mount namespace of its own (gone with it).
      const mnt = tmp('small-disk');
      mkdirSync(mnt);
      const file = join(mnt, 'full.pcapng');
      const script =
        `mount -t tmpfs -o size=128k vxtrace-test ${mnt} || exit 99; ` +
        `"${process.execPath}" "${cli}" capture --cluster "${lab.clusterFile}" --write ${file} --duration 30; echo "capture-exit=$?" >&2; ` +
        `"${process.execPath}" "${cli}" read ${file} --json`;
      const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      for (let i = 0; i < 400 && !/capturing/.test(err); i++) await new Promise((r) => setTimeout(r, 25));
      assert.match(err, /capturing/, err);
      // ~1,200 echo requests and replies at six hops each: megabytes of trace, far more than 128 KiB.
      const a = lab.pods.find((p) => p.name === 'pod-a')!;
      await execAsync(['ip', 'netns', 'exec', a.netns, 'ping', '-c', '600', '-i', '0.005', '-q', lab.pods.find((p) => p.name === 'pod-b')!.ip], { allowFail: true });
      assert.notEqual(await exited, 99, 'tmpfs mounted');
      assert.match(err, /capture-exit=3/, err);
      assert.match(err, /^vxtrace: writing the trace file .*full\.pcapng failed \(no space left on the device\): the \d+ packets written before are intact/m);
      assert.doesNotMatch(err, /DeprecationWarning|N-API|\n\s+at /, 'no stack trace, nothing swallowed');
      // The file holds whole blocks up to the failure: read finds the paths written before it.
      const paths = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string }).filter((r) => r.type === 'path');
      assert.ok(paths.length > 0, `paths read back from the full disk's file:\n${out.slice(0, 500)}\n${err}`);
    });
  });

  test('a capture that matched nothing says so, and how same-node traffic is seen', async () => {
    await withLab({ nodes: 2 }, async (lab) => {
      const file = tmp('nothing.pcapng');
      const r = await runFollow(['capture', '--cluster', lab.clusterFile, '--write', file, '--duration', '1', '--protocol', 'udp', '--port', '9'], async () => {});
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /captured nothing \(.*nothing\.pcapng holds the cluster snapshot only\): no packet matched .*--between POD,POD; or check --pod\/--between\/--protocol\/--port/);
      assert.match(r.stderr, /note: no packet from or to a pod is in the capture/);
      assert.doesNotMatch(r.stderr, /read it with/);
    });
  });

  test('bad input: one clear line and exit 2', async () => {
    await withLab({ nodes: 2 }, async (lab) => {
      const noWrite = vxtrace(['capture', '--cluster', lab.clusterFile]);
      assert.equal(noWrite.status, 2);
      assert.match(noWrite.stderr, /--write <file>/);
      const badNode = vxtrace(['capture', '--cluster', lab.clusterFile, '--write', tmp('x.pcapng'), '--node', 'node9']);
      assert.equal(badNode.status, 2);
      assert.match(badNode.stderr, /unknown node node9: the cluster's nodes are node1, node2/);
      const badPod = vxtrace(['capture', '--cluster', lab.clusterFile, '--write', tmp('x.pcapng'), '--pod', 'pod-q']);
      assert.equal(badPod.status, 2);
      assert.match(badPod.stderr, /unknown pod pod-q/);
      const badPair = vxtrace(['capture', '--cluster', lab.clusterFile, '--write', tmp('x.pcapng'), '--between', 'pod-a']);
      assert.equal(badPair.status, 2);
      assert.match(badPair.stderr, /--between takes two pods or addresses/);
      const dirRead = vxtrace(['read', dir]);
      assert.equal(dirRead.status, 2);
      assert.match(dirRead.stderr, /^vxtrace: cannot read the trace .*: it is a directory, not a trace file$/m);
      const notAFile = vxtrace(['read', lab.clusterFile]);
      assert.equal(notAFile.status, 2, notAFile.stderr);
      assert.equal(notAFile.stderr.trim().split('\n').length, 1, notAFile.stderr);
    });
  });
});

