// `vxtrace check --hub URL` on the lab (root, real kernel, real sockets): a hub and one agent process
// per node; the hub plans the check on its agents' kernel state, each agent sends its own node's
// probes, the hub follows and judges them: the same matrix as the local check, for healthy and
// faulted labs; an observe client of the same hub meanwhile sees no probe.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FaultName } from '../src/lab/index.js';
import { vxtrace, withLab } from './helpers/lab.js';
import { records, start, startAgents, startHub, type JsonRecord } from './helpers/hub.js';

type Pair = JsonRecord & { from: string; to: string; ok: boolean; reason: string | null; findings: string[]; coverage: { missing: string[] }; legs: { probe: string; outcome: string | null }[] };
type FindingRecord = JsonRecord & { code: string; key: string; nodes: string[]; fix: string };

const cells = (rs: JsonRecord[]) => (rs.filter((r) => r.type === 'pair') as Pair[]).map((p) => `${p.from}>${p.to} ${p.ok ? '✔' : `✖ ${p.reason}`} [${p.findings.join(' ')}]`);
const codes = (rs: JsonRecord[]) => (rs.filter((r) => r.type === 'finding') as FindingRecord[]).map((f) => `${f.code}@${f.nodes.join('+')}: ${f.fix}`).sort();

describe('check --hub: the agents send their nodes\' probes, the hub judges them: the same matrix as a local check', () => {
  for (const c of [{ faults: [] as FaultName[], nodes: 3 }, { faults: ['forward-drop'] as FaultName[], nodes: 3 }, { faults: ['nat-public-ip'] as FaultName[], nodes: 4 }]) {
    test(c.faults.length ? c.faults.join(',') : 'healthy', async () => {
      await withLab({ nodes: c.nodes, faults: c.faults }, async (lab) => {
        const local = vxtrace(['check', '--cluster', lab.clusterFile, '--json']);
        const hub = await startHub(lab, `unix:/run/vxtrace/hub-${lab.name}.sock`);
        const agents = await startAgents(lab, hub.url);
        try {
          for (const n of lab.nodes) await hub.waitFor(new RegExp(`agent ${n.name} connected`));
          // A client of the same hub that sees everything: not one probe reaches it.
          const observe = start(['observe', '--hub', hub.url, '--json', '--duration', '12']);
          await observe.waitFor(/^observing /m);
          const remote = vxtrace(['check', '--hub', hub.url, '--json'], { timeoutMs: 90_000 });
          const [rl, rr] = [records(local.stdout), records(remote.stdout)];
          assert.equal(remote.status, local.status, remote.stderr);
          assert.equal(remote.status, c.faults.length ? 1 : 0, remote.stderr);
          assert.match(remote.stderr, new RegExp(`probes sent by the agents of ${lab.nodes.map((n) => n.name).join(', ')}`));
          assert.deepEqual(cells(rr), cells(rl));
          assert.deepEqual(codes(rr), codes(rl));
          const done = rr.at(-1) as JsonRecord & { pairs: number; probes: number };
          assert.equal(done.type, 'check');
          assert.equal(done.pairs, c.nodes * (c.nodes - 1));
          // every cell's legs are there, with their hops: the JSON is a local check's
          for (const p of rr.filter((r) => r.type === 'pair') as Pair[]) assert.ok(p.legs.length >= 8 && p.legs.some((l) => l.outcome !== null), JSON.stringify(p.legs));
          const text = vxtrace(['check', '--hub', hub.url], { timeoutMs: 90_000 });
          assert.match(text.stdout, new RegExp(`^from \\\\ to +${lab.nodes.map((n) => n.name).join(' +')}$`, 'm'));
          await observe.exited;
          assert.deepEqual(records(observe.stdout()).filter((r) => r.type === 'path'), [], 'no path: the probes are left out of the stream');
          assert.match(hub.stderr(), /check .*: checking \d+ pairs of \d+ nodes, probes sent by node1/);
        } finally {
          for (const a of agents.values()) a.kill();
          hub.kill();
          await Promise.all([hub.exited, ...[...agents.values()].map((a) => a.exited)]);
        }
      });
    });
  }

  test('--hub with --cluster, or a hub that is not there: one line each', async () => {
    const both = vxtrace(['check', '--hub', 'unix:/nonexistent.sock', '--cluster', 'x.json']);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /give --hub or --cluster/);
    const none = vxtrace(['check', '--hub', 'unix:/run/vxtrace/no-such-hub.sock']);
    assert.equal(none.status, 3);
    assert.match(none.stderr, /cannot reach the hub at .*no-such-hub\.sock/);
    assert.equal(none.stderr.trim().split('\n').length, 1, none.stderr);
  });
});
