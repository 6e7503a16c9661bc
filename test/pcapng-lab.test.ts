// Traces of real runs on the lab (root, real kernel): `vxtrace follow --write` during each fault,
// then `vxtrace read` of the file, without any capability, reports the same paths and the same
// finding codes as the live run; tshark reads the file with no warning and dissects the VXLAN leg.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { execAsync } from '../src/util/exec.js';
import type { FaultName, LabState } from '../src/lab/index.js';
import { vxtrace, withLab } from './helpers/lab.js';
import { runFollow } from './helpers/follow.js';

type Record = { type: string; code?: string; fingerprint?: string; outcome?: string; findingCodes?: string[] };

function pingFrom(lab: LabState, from: string, to: string, extra: string[] = [], count = 2) {
  const pod = lab.pods.find((p) => p.name === from)!;
  const ip = lab.pods.find((p) => p.name === to)!.ip;
  return execAsync(['ip', 'netns', 'exec', pod.netns, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', ...extra, ip], { allowFail: true });
}

const codesOf = (records: Record[]) => [...new Set(records.filter((r) => r.type === 'finding').map((r) => r.code!))].sort();
const pathsOf = (records: Record[]) => records.filter((r) => r.type === 'path').map((r) => `${r.fingerprint} ${r.outcome}`).sort();
const parse = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record);

// `uplink`: the faulted packets still leave node1 by eth1 encapsulated (to be dissected by tshark).
const CASES: { name: string; faults: FaultName[]; big?: boolean; uplink?: boolean }[] = [
  { name: 'healthy', faults: [], uplink: true },
  { name: 'nat-public-ip (the seed)', faults: ['nat-public-ip'] },
  { name: 'stale-fdb', faults: ['stale-fdb'] }, // dropped at node1's uplink: no neighbour for the stale address
  { name: 'stale-vtep-mac', faults: ['stale-vtep-mac'], uplink: true },
  { name: 'missing-fdb', faults: ['missing-fdb'] },
  { name: 'vni-mismatch', faults: ['vni-mismatch'], uplink: true },
  { name: 'port-mismatch', faults: ['port-mismatch'] },
  { name: 'mtu', faults: ['mtu'], big: true },
  { name: 'udp-blocked', faults: ['udp-blocked'], uplink: true },
  { name: 'bad-checksum', faults: ['bad-checksum'], uplink: true },
  { name: 'forward-drop', faults: ['forward-drop'], uplink: true },
];

describe('vxtrace read of a trace written during a run reports what the run reported', () => {
  for (const c of CASES) {
    test(c.name, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'vxt-trace-'));
      try {
        await withLab({ nodes: 3, faults: c.faults }, async (lab) => {
          const file = join(dir, 'trace.pcapng');
          const live = await runFollow(
            ['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--duration', '4', '--write', file],
            () => pingFrom(lab, 'pod-a', 'pod-b', c.big ? ['-M', 'do', '-s', '1472'] : [], 2),
          );
          assert.ok(live.status === 0 || live.status === 1, live.stderr);
          const liveRecords = live.records as Record[];
          assert.ok(pathsOf(liveRecords).length > 0, 'the live run saw packets');

          // read back with every capability dropped: no privilege needed
          const replay = vxtrace(['read', file, '--json'], { caps: 'none' });
          assert.equal(replay.status, live.status, replay.stderr);
          const replayRecords = parse(replay.stdout);
          assert.deepEqual(codesOf(replayRecords), codesOf(liveRecords), `finding codes: ${replay.stderr}`);
          assert.deepEqual(pathsOf(replayRecords), pathsOf(liveRecords), `${live.stdout}\n----\n${replay.stdout}`);
          assert.doesNotMatch(replay.stderr, /warning:/);
          if (c.faults.length) assert.ok(codesOf(replayRecords).length > 0);

          const t = spawnSync('tshark', ['-r', file, '-d', 'udp.port==8472,vxlan', '-Y', 'vxlan', '-T', 'fields', '-E', 'occurrence=a', '-e', 'frame.interface_name', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'frame.comment'], { encoding: 'utf8' });
          assert.equal(t.status, 0);
          assert.equal(t.stderr.replace(/^Running as user "root".*\n?/m, '').trim(), '', 'tshark has no warning about the file');
          const uplink = t.stdout.trim().split('\n').filter((l) => l.startsWith('node1/eth1\t') && l.includes(' node1/eth1 egress '));
          if (c.uplink) {
            assert.ok(uplink.length > 0, `VXLAN packets on node1/eth1:\n${t.stdout}`);
            for (const l of uplink) {
              const [, src, dst, comment] = l.split('\t');
              assert.match(src!, /^[\d.]+,10\.244\.1\.\d+$/, 'outer and inner source');
              assert.match(dst!, /^[\d.]+,10\.244\.2\.\d+$/, 'outer and inner destination');
              assert.match(comment!, /^vxtrace hop node1\/eth1 egress fp=[0-9a-f]{16} .* outcome=/);
            }
          }
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
