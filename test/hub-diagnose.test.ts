// The hub's view of the state, and agents finding their place (root, real kernel, real processes):
// `diagnose --hub` prints what single-process `diagnose` prints of the same lab, also as it changes
// (--watch), while no agent traces anything; an agent whose node the hub does not know yet retries
// until the node is there, then its paths are joined; an agent started inside a lab node's
// namespace with other labs up reads its own lab.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execAsync } from '../src/util/exec.js';
import type { LabState } from '../src/lab/index.js';
import { withLab } from './helpers/lab.js';
import { hubGet, records, runClient, start, startAgents, startHub, waitAgentsConnected, type JsonRecord, type Proc } from './helpers/hub.js';

type FindingRecord = JsonRecord & { code: string; nodes: string[]; fix: string };
type Hop = { node: string; device: string; direction: string; kind: string };
const findingsOf = (rs: JsonRecord[]) => rs.filter((r) => r.type === 'finding') as FindingRecord[];
const fixes = (rs: JsonRecord[]) => findingsOf(rs).map((f) => `${f.code} @${[...f.nodes].sort().join(',')}: ${f.fix}`).sort();
const six = (a: string, b: string) => [`${a}/cni0/ingress`, `${a}/flannel.1/egress`, `${a}/eth1/egress`, `${b}/eth1/ingress`, `${b}/flannel.1/ingress`, `${b}/cni0/egress`];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'vxtrace-hubdiag-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function ping(lab: LabState, from: string, to: string, count = 2) {
  const a = lab.pods.find((p) => p.name === from)!;
  const b = lab.pods.find((p) => p.name === to)!;
  return execAsync(['ip', 'netns', 'exec', a.netns, 'ping', '-q', '-c', String(count), '-i', '0.2', '-W', '1', b.ip], { allowFail: true });
}

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number, detail: () => string = () => ''): Promise<void> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms\n${detail()}`);
    await sleep(100);
  }
}

const metric = (text: string, name: string) => {
  const m = new RegExp(`^${name.replace(/[{}]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

/** Hop records the hub took, over every node (0 when none: no series yet). */
async function hopRecordsAtHub(url: string): Promise<number> {
  const { body } = await hubGet(url, '/metrics');
  return [...body.matchAll(/^vxtrace_hop_records_total\{[^}]*\} (\S+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** The text after the last `--watch` change line (`<ISO time> why: N findings`), that line's count included. */
function lastRound(text: string): string {
  const lines = text.split('\n');
  let at = lines.length - 1;
  while (at >= 0 && !/^\d{4}-\d\d-\d\dT\S+Z .*: (\d+ findings?|no findings)$/.test(lines[at]!)) at--;
  return at < 0 ? '' : [lines[at]!.replace(/^.*: /, ''), ...lines.slice(at + 1)].join('\n');
}

async function stopAll(procs: Proc[]) {
  for (const p of procs) p.kill();
  await Promise.all(procs.map((p) => p.exited));
}

describe('diagnose --hub on the lab', () => {
  test('nat-public-ip and stale-fdb: diagnose --hub prints what diagnose prints (text, NDJSON, exit status; --watch through a heal), and no agent traces anything while pings run', async () => {
    await withLab({ nodes: 3, faults: ['nat-public-ip', 'stale-fdb'] }, async (lab) => {
      const hub = await startHub(lab, `unix:/run/vxtrace/hub-${lab.name}.sock`);
      const procs: Proc[] = [hub];
      try {
        procs.push(...(await startAgents(lab, hub.url, { inside: true })).values());
        await waitAgentsConnected(hub, ['node1', 'node2', 'node3']);
        await hub.waitFor(/hub: state \(.*node3's kernel state.*\): /);

        for (const json of [true, false]) {
          const flag = json ? ['--json'] : [];
          const remote = start(['diagnose', '--hub', hub.url, ...flag]);
          const local = start(['diagnose', '--cluster', lab.clusterFile, ...flag]);
          const [rs, ls] = await Promise.all([remote.exited, local.exited]);
          assert.equal(rs, 1, remote.stderr());
          assert.equal(ls, 1, local.stderr());
          assert.equal(remote.stderr(), '');
          // The hub's cluster is the same file: the header's first line names it the same way.
          assert.equal(remote.stdout(), local.stdout(), `diagnose --hub:\n${remote.stdout()}\ndiagnose:\n${local.stdout()}`);
          if (json) {
            const fs = fixes(records(remote.stdout()));
            assert.ok(fs.some((f) => /^DUPLICATE_PUBLIC_IP @node1,node2,node3: restart flanneld with --iface=eth1/.test(f)), fs.join('\n'));
            assert.ok(fs.some((f) => /^WRONG_UNDERLAY_DST @node1: on node1: bridge fdb replace \S+ dev flannel\.1 dst 192\.168\.1\.122/.test(f)), fs.join('\n'));
          } else assert.match(remote.stdout(), /^kernel state read for node1, node2, node3$/m);
        }

        // --watch on both sides, pings meanwhile: the agents' filters stay off (no hop record at the hub).
        const remoteWatch = start(['diagnose', '--hub', hub.url, '--watch']);
        const localWatch = start(['diagnose', '--cluster', lab.clusterFile, '--watch']);
        await until('both printed their first diagnosis', () => /\d+ findings?\n$/.test(remoteWatch.stdout()) && /\d+ findings?\n$/.test(localWatch.stdout()), 15_000);
        assert.equal(remoteWatch.stdout(), localWatch.stdout());
        await Promise.all([ping(lab, 'pod-a', 'pod-b', 5), ping(lab, 'pod-c', 'pod-a', 5)]);
        assert.equal(await hopRecordsAtHub(hub.url), 0, 'no hop record: no agent traced anything');
        assert.doesNotMatch(hub.stderr(), /in-kernel filter/);

        // The heal rewrites node1's FDB: both watches print the new diagnosis.
        const heal = start(['lab', 'heal', '--name', lab.name, 'stale-fdb']);
        assert.equal(await heal.exited, 0, heal.stderr());
        const healed = (t: string) => /^1 finding\n/.test(lastRound(t)) && !lastRound(t).includes('WRONG_UNDERLAY_DST');
        await until('both watches show the heal', () => healed(remoteWatch.stdout()) && healed(localWatch.stdout()), 20_000, () => `hub:\n${remoteWatch.stdout()}\nlocal:\n${localWatch.stdout()}`);
        assert.equal(lastRound(remoteWatch.stdout()), lastRound(localWatch.stdout()));
        assert.match(lastRound(remoteWatch.stdout()), /DUPLICATE_PUBLIC_IP \(error\) on node1, node2, node3/);
        remoteWatch.kill('SIGINT');
        localWatch.kill('SIGINT');
        assert.deepEqual(await Promise.all([remoteWatch.exited, localWatch.exited]), [1, 1], 'the seed is still there: exit 1 on both');

        // A client that asks for paths does turn the filters on (so the zero above can fail).
        const observed = await runClient(['observe', '--hub', hub.url, '--from', 'pod-c', '--to', 'pod-a', '--json', '--count', '1', '--duration', '10'], () => ping(lab, 'pod-c', 'pod-a', 1));
        assert.ok(await hopRecordsAtHub(hub.url) > 0, observed.stderr);
      } finally {
        await stopAll(procs.reverse());
      }
    });
  });

  test('an agent whose node the hub does not know yet retries, is counted once the cluster file brings the node, and its paths are joined', async () => {
    await withLab({ nodes: 3 }, async (lab) => {
      // The hub's cluster file has no node3 yet (as a hub whose watch has not caught up).
      const list = JSON.parse(readFileSync(lab.clusterFile, 'utf8')) as { items: { kind: string; metadata: { name: string } }[] };
      const file = join(dir, `${lab.name}-hub-cluster.json`);
      writeFileSync(file, JSON.stringify({ ...list, items: list.items.filter((i) => !(i.kind === 'Node' && i.metadata.name === 'node3')) }));
      const p = start(['hub', '--listen', `unix:/run/vxtrace/hub-${lab.name}.sock`, '--cluster', file]);
      const url = (await p.waitFor(/^hub listening on (\S+?): agents/m))[1]!;
      const procs: Proc[] = [p];
      try {
        procs.push(...(await startAgents({ ...lab, nodes: lab.nodes.filter((n) => n.name !== 'node3') }, url)).values());
        // node3's agent as the DaemonSet starts it on a new node: NODE_NAME, inside its namespace, no cluster flag.
        const node3 = start(['agent', '--hub', url], { netns: lab.nodes[2]!.netns, env: { NODE_NAME: 'node3' } });
        procs.push(node3);
        await node3.waitFor(/the hub at \S+ does not know node node3 yet \(node node3 is not in the hub's cluster yet: retry/);
        await p.waitFor(/closing \(4012\)/);
        await sleep(2000);
        assert.equal(node3.child.exitCode, null, `it keeps retrying:\n${node3.stderr()}`);
        assert.doesNotMatch(node3.stderr(), /connected to the hub/);
        assert.equal(metric((await hubGet(url, '/metrics')).body, 'vxtrace_agents_connected'), 2);

        writeFileSync(file, readFileSync(lab.clusterFile));
        await node3.waitFor(/connected to the hub/, 15_000);
        await p.waitFor(/agent node3 connected/);
        assert.equal(metric((await hubGet(url, '/metrics')).body, 'vxtrace_agents_connected'), 3);
        const toC = await runClient(['observe', '--hub', url, '--from', 'pod-a', '--to', 'pod-c', '--json', '--count', '2', '--duration', '15'], () => ping(lab, 'pod-a', 'pod-c'));
        assert.equal(toC.status, 0, toC.stderr);
        const paths = toC.records.filter((r) => r.type === 'path') as (JsonRecord & { hops: Hop[] })[];
        assert.deepEqual(paths.map((x) => x.hops.filter((h) => h.kind === 'tc').map((h) => `${h.node}/${h.device}/${h.direction}`)), [six('node1', 'node3'), six('node1', 'node3')]);
      } finally {
        await stopAll(procs.reverse());
      }
    });
  });

  test('two labs up: an agent started inside a lab node\'s namespace without --lab reads its own lab; outside, it says which flag to add', async () => {
    await withLab({ nodes: 2 }, async (first) => {
      await withLab({ nodes: 2 }, async (second) => {
        const hub = await startHub(second, `unix:/run/vxtrace/hub-${second.name}.sock`);
        const procs: Proc[] = [hub];
        try {
          const outside = start(['agent', '--hub', hub.url, '--node', 'node1']);
          assert.equal(await outside.exited, 2, outside.stderr());
          assert.match(outside.stderr(), /several labs are up \(.*\): choose one with --lab NAME, or give --cluster FILE/);
          assert.ok(outside.stderr().includes(first.name) && outside.stderr().includes(second.name), outside.stderr());

          for (const node of second.nodes) {
            const agent = start(['agent', '--hub', hub.url, '--node', node.name], { netns: node.netns });
            procs.push(agent);
            await agent.waitFor(/connected to the hub/);
            assert.match(agent.stderr(), new RegExp(`agent for ${node.name} \\(running inside its network namespace ${node.netns}\\)`));
          }
          await waitAgentsConnected(hub, ['node1', 'node2']);
          const r = await runClient(['observe', '--hub', hub.url, '--from', 'pod-a', '--to', 'pod-b', '--json', '--count', '1', '--duration', '15'], () => ping(second, 'pod-a', 'pod-b', 1));
          assert.equal(r.status, 0, r.stderr);
          const path = r.records.find((x) => x.type === 'path') as JsonRecord & { hops: Hop[] };
          assert.deepEqual(path.hops.filter((h) => h.kind === 'tc').map((h) => `${h.node}/${h.device}/${h.direction}`), six('node1', 'node2'));
        } finally {
          await stopAll(procs.reverse());
        }
      });
    });
  });
});
