// A hub and one agent process per lab node (root, real kernel, real sockets): cross-node pings are
// joined into six-hop paths at the hub and reach `observe` and `follow --hub`; for every lab fault
// the hub's clients report what single-process `follow` reports from the same packets.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execAsync } from '../src/util/exec.js';
import type { FaultName, LabState } from '../src/lab/index.js';
import { withLab } from './helpers/lab.js';
import { records, runClient, start, startAgents, startHub, type JsonRecord } from './helpers/hub.js';

const SIX_HOPS = ['node1/cni0/ingress', 'node1/flannel.1/egress', 'node1/eth1/egress', 'node2/eth1/ingress', 'node2/flannel.1/ingress', 'node2/cni0/egress'];
const BACK = ['node2/cni0/ingress', 'node2/flannel.1/egress', 'node2/eth1/egress', 'node1/eth1/ingress', 'node1/flannel.1/ingress', 'node1/cni0/egress'];
type Hop = { node: string; device: string; direction: string; kind: string; latencyNs: string | null };
type PathRecord = JsonRecord & { outcome: string; hops: Hop[]; inner: { icmp?: { type: number } }; durationNs: string };
type FindingRecord = JsonRecord & { code: string; nodes: string[]; fix: string; cause: string };

const hopKeys = (p: PathRecord) => p.hops.filter((h) => h.kind === 'tc').map((h) => `${h.node}/${h.device}/${h.direction}`);
const pathsOf = (rs: JsonRecord[]) => rs.filter((r) => r.type === 'path') as PathRecord[];
const findingsOf = (rs: JsonRecord[]) => rs.filter((r) => r.type === 'finding') as FindingRecord[];

function ping(lab: LabState, from: string, to: string, extra: string[] = [], count = 2) {
  const a = lab.pods.find((p) => p.name === from)!;
  const b = lab.pods.find((p) => p.name === to)!;
  return execAsync(['ip', 'netns', 'exec', a.netns, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', ...extra, b.ip], { allowFail: true });
}

describe('hub and agents on the lab', () => {
  test('agents inside their nodes\' namespaces, over a unix socket: six-hop paths at the hub reach observe and follow --hub', async () => {
    await withLab({ nodes: 3 }, async (lab) => {
      const hub = await startHub(lab, `unix:/run/vxtrace/hub-${lab.name}.sock`);
      const agents = await startAgents(lab, hub.url, { inside: true });
      for (const a of agents.values()) assert.match(a.stderr(), /running inside its network namespace vxt-/);
      try {
        const observed = await runClient(['observe', '--hub', hub.url, '--from', 'pod-a', '--to', 'pod-b', '--json', '--count', '2', '--duration', '15'], () => ping(lab, 'pod-a', 'pod-b'));
        assert.equal(observed.status, 0, observed.stderr);
        const ps = pathsOf(observed.records);
        assert.equal(ps.length, 2, observed.stdout);
        for (const p of ps) {
          assert.equal(p.outcome, 'delivered');
          assert.deepEqual(hopKeys(p), SIX_HOPS);
          // Latency within a node; none across nodes (two machines' clocks are not compared).
          assert.equal(p.hops[3]!.latencyNs, null);
          assert.ok(p.hops[1]!.latencyNs !== null && p.hops[4]!.latencyNs !== null);
        }
        assert.deepEqual(findingsOf(observed.records), []);
        assert.equal(observed.records.at(-1)?.type, 'summary');

        // follow --hub: both directions, as follow prints them.
        const followed = await runClient(['follow', 'pod-a', 'pod-b', '--hub', hub.url, '--json', '--count', '4', '--duration', '15'], () => ping(lab, 'pod-a', 'pod-b'));
        assert.equal(followed.status, 0, followed.stderr);
        const fs = pathsOf(followed.records);
        assert.equal(fs.length, 4, followed.stdout);
        assert.deepEqual(fs.filter((p) => p.inner.icmp?.type === 8).map(hopKeys), [SIX_HOPS, SIX_HOPS]);
        assert.deepEqual(fs.filter((p) => p.inner.icmp?.type === 0).map(hopKeys), [BACK, BACK]);
        const summary = followed.records.at(-1) as JsonRecord & { delivered: number };
        assert.equal(summary.type, 'summary');
        assert.equal(summary.delivered, 4);
        // Text output: follow's line format.
        const text = await runClient(['observe', '--hub', hub.url, '--pod', 'pod-b', '--count', '1', '--duration', '15'], () => ping(lab, 'pod-a', 'pod-b', [], 1));
        assert.match(text.stdout, /default\/pod-a → default\/pod-b ICMP echo request .*node1 cni0 ▸ flannel\.1.* ⇢ 192\.168\.1\.122:8472 vni 1 ⇢ node2 eth1 .* delivered/);
        assert.match(text.stdout, /1 path: 1 delivered; 0 records lost; no findings/);
      } finally {
        for (const a of agents.values()) a.kill();
        await Promise.all([...agents.values()].map((a) => a.exited));
        hub.kill();
        await hub.exited;
      }
      for (const a of agents.values()) assert.match(a.stderr(), /stopped: everything detached/);
    });
  });

  test('agents entering their nodes by vxtrace.io/netns, over TCP loopback: a state finding before any packet', async () => {
    await withLab({ nodes: 3, faults: ['nat-public-ip'] }, async (lab) => {
      const hub = await startHub(lab, '127.0.0.1:0');
      const agents = await startAgents(lab, hub.url);
      for (const a of agents.values()) assert.match(a.stderr(), /\(network namespace vxt-/);
      try {
        await new Promise((r) => setTimeout(r, 800));
        // No traffic at all: the seed's case is known from the agents' kernel state.
        const r = await runClient(['observe', '--hub', hub.url, '--json', '--duration', '1'], async () => {});
        // As `diagnose` finds it: every node registered the NAT address.
        assert.deepEqual(findingsOf(r.records).map((f) => `${f.code}@${f.nodes.join('+')}`), ['DUPLICATE_PUBLIC_IP@node1+node2+node3']);
        assert.deepEqual(pathsOf(r.records), []);
        assert.equal(r.status, 1, 'error findings give exit 1');
      } finally {
        for (const a of agents.values()) a.kill();
        hub.kill();
        await Promise.all([hub.exited, ...[...agents.values()].map((a) => a.exited)]);
      }
    });
  });
});

// Each fault: the same packets go to single-process follow and, through the agents, to the hub's
// observe; both must name the same codes, nodes and fixes.
const FAULTS: { fault: FaultName; big?: boolean }[] = [
  { fault: 'nat-public-ip' }, { fault: 'stale-fdb' }, { fault: 'stale-vtep-mac' }, { fault: 'missing-fdb' }, { fault: 'vni-mismatch' },
  { fault: 'port-mismatch' }, { fault: 'mtu', big: true }, { fault: 'udp-blocked' }, { fault: 'bad-checksum' }, { fault: 'forward-drop' },
];

const summaryOf = (fs: FindingRecord[]) => [...new Set(fs.map((f) => `${f.code} @${[...f.nodes].sort().join(',')}: ${f.fix}`))].sort();

describe('every lab fault: observe reports the same finding codes, nodes and fixes as follow', () => {
  for (const c of FAULTS) {
    test(c.fault, async () => {
      await withLab({ nodes: 3, faults: [c.fault] }, async (lab) => {
        const hub = await startHub(lab, '127.0.0.1:0');
        const agents = await startAgents(lab, hub.url);
        try {
          // Both watch the same packets: follow traces the lab itself, observe gets the agents' hops
          // from the hub. Unfinished paths end by follow's --duration (flushed) and by the hub's
          // 4 s expiry, so observe waits longer.
          const follow = start(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--duration', '5']);
          const observe = start(['observe', '--hub', hub.url, '--from', 'pod-a', '--to', 'pod-b', '--json', '--duration', '8']);
          await Promise.all([follow.waitFor(/^following /m), observe.waitFor(/^observing /m)]);
          await ping(lab, 'pod-a', 'pod-b', c.big ? ['-M', 'do', '-s', '1472'] : []);
          const [fs, os] = await Promise.all([follow.exited, observe.exited]);
          const local = findingsOf(records(follow.stdout()));
          const remote = findingsOf(records(observe.stdout()));
          assert.equal(fs, 1, follow.stderr());
          assert.equal(os, 1, observe.stderr());
          assert.ok(local.length > 0, follow.stdout());
          assert.deepEqual(summaryOf(remote), summaryOf(local), `follow:\n${follow.stdout()}\nobserve:\n${observe.stdout()}\n${observe.stderr()}`);
          // The same packets give the same path records, field by field, but for the times: follow's
          // programs and the agents' are two tracers on the same hooks, each reading the clock itself.
          const timeless = (p: PathRecord) => JSON.stringify({ ...p, time: null, durationNs: null, hops: p.hops.map((h) => ({ ...h, timestampNs: null, wallTime: null, latencyNs: null })) });
          const localPaths = new Map(pathsOf(records(follow.stdout())).map((p) => [p.fingerprint, p]));
          const remotePaths = pathsOf(records(observe.stdout()));
          assert.ok(remotePaths.length > 0, 'the hub joined paths');
          const both = remotePaths.filter((p) => localPaths.has(p.fingerprint as string));
          assert.ok(both.length > 0, 'follow and observe saw the same packets');
          for (const p of both) assert.equal(timeless(p), timeless(localPaths.get(p.fingerprint as string)!));
        } finally {
          for (const a of agents.values()) a.kill();
          hub.kill();
          await Promise.all([hub.exited, ...[...agents.values()].map((a) => a.exited)]);
        }
      });
    });
  }
});
