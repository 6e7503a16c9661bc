// vxtrace installed on a cluster, played on the lab (root, real kernel, real processes): the hub
// as its Deployment runs it, reading the cluster in-cluster from a stand-in API server (HTTPS,
// service account token; list + watch) that serves the lab's Nodes and Pods; agents as the
// DaemonSet runs them (NODE_NAME, no cluster file, inside their node's namespace); and
// `kubectl vxtrace` (the plugin, through real kubectl) reaching the hub through the API's
// port-forward, printing what `vxtrace follow` and `vxtrace diagnose` print.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execAsync } from '../src/util/exec.js';
import type { LabState } from '../src/lab/index.js';
import { withLab } from './helpers/lab.js';
import { records, start, type JsonRecord, type Proc } from './helpers/hub.js';
import { installOnStandIn, startDaemonSetAgent, startInClusterHub, type Installed } from './helpers/in-cluster.js';

const binDir = fileURLToPath(new URL('../../bin/', import.meta.url));
type Hop = { node: string; device: string; direction: string; kind: string };
type PathRecord = JsonRecord & { outcome: string; hops: Hop[]; inner: { icmp?: { type: number } } };
type FindingRecord = JsonRecord & { code: string; nodes: string[]; fix: string };
const pathsOf = (rs: JsonRecord[]) => rs.filter((r) => r.type === 'path') as PathRecord[];
const findingsOf = (rs: JsonRecord[]) => rs.filter((r) => r.type === 'finding') as FindingRecord[];
const hopKeys = (p: PathRecord) => p.hops.filter((h) => h.kind === 'tc').map((h) => `${h.node}/${h.device}/${h.direction}`);
const six = (a: string, b: string) => [`${a}/cni0/ingress`, `${a}/flannel.1/egress`, `${a}/eth1/egress`, `${b}/eth1/ingress`, `${b}/flannel.1/ingress`, `${b}/cni0/egress`];

function ping(lab: LabState, from: string, to: string, count = 2) {
  const a = lab.pods.find((p) => p.name === from)!;
  const b = lab.pods.find((p) => p.name === to)!;
  return execAsync(['ip', 'netns', 'exec', a.netns, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', b.ip], { allowFail: true });
}

/** `kubectl vxtrace ARGS` as an operator runs it: real kubectl finds the plugin on PATH; the kubeconfig points at the stand-in. */
function kubectlVxtrace(inst: Installed, args: string[]): Proc {
  const child = spawn('kubectl', ['vxtrace', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${binDir}:${process.env.PATH}`, KUBECONFIG: inst.api.kubeconfig } });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child, exited, stdout: () => out, stderr: () => err,
    kill: (signal = 'SIGTERM') => void (child.exitCode === null && child.kill(signal)),
    waitFor: (re, timeoutMs = 20_000) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`kubectl vxtrace ${args.join(' ')}: no ${re} within ${timeoutMs} ms:\n${err}`)), timeoutMs);
      const check = () => {
        const m = re.exec(err);
        if (m) {
          clearTimeout(t);
          resolve(m);
        }
      };
      child.stderr.on('data', check);
      child.once('exit', () => {
        clearTimeout(t);
        reject(new Error(`kubectl vxtrace ${args.join(' ')} exited before ${re}:\n${err}`));
      });
      check();
    }),
  };
}

/** Clients watching the same pings: start them, wait until all are subscribed, ping, wait for all. */
async function together(procs: Proc[], traffic: () => Promise<unknown>) {
  try {
    await Promise.all(procs.map((p) => p.waitFor(/^(following|observing) /m)));
    await traffic();
    return await Promise.all(procs.map((p) => p.exited));
  } finally {
    for (const p of procs) p.kill('SIGKILL');
  }
}

/** A text line of follow with what differs from run to run (times, ids, latencies) taken out. */
const normalized = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => l.replace(/\d\d:\d\d:\d\d\.\d{3}/g, 'T').replace(/id \d+ seq \d+/g, 'id I seq S').replace(/[~≈]?\+?\d+(\.\d+)?\s?(ns|µs|ms|s)\b/g, 'D'));

async function stopAll(procs: Proc[]) {
  for (const p of procs) p.kill();
  await Promise.all(procs.map((p) => p.exited));
}

describe('installed on a cluster (stand-in API server, lab nodes)', () => {
  test('in-cluster hub, DaemonSet agents: kubectl vxtrace follow prints what vxtrace follow prints; Nodes added and changed through the watch reach the hub', async () => {
    await withLab({ nodes: 3 }, async (lab) => {
      const inst = await installOnStandIn(lab, { withhold: ['node3'] });
      const procs: Proc[] = [];
      try {
        const hub = await startInClusterHub(inst);
        procs.push(hub);
        assert.match(hub.stderr(), new RegExp(`^cluster: Kubernetes API ${inst.api.server.replace(/\./g, '\\.')}`, 'm'), 'in-cluster: the API server from KUBERNETES_SERVICE_HOST, over HTTPS');
        for (const n of ['node1', 'node2']) {
          const agent = await startDaemonSetAgent(lab, inst, hub.url, n);
          procs.push(agent);
          assert.match(agent.stderr(), new RegExp(`agent for ${n} \\(this machine is the node \\(in a pod: no cluster state read\\)\\)`), 'the agent works in its own namespace, as on a real node');
        }

        // kubectl vxtrace follow --json next to single-process follow on the lab: the same paths.
        const viaPlugin = kubectlVxtrace(inst, ['follow', 'pod-a', 'pod-b', '--json', '--count', '4', '--duration', '15']);
        const local = start(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--count', '4', '--duration', '15']);
        const [ps, ls] = await together([viaPlugin, local], () => ping(lab, 'pod-a', 'pod-b'));
        assert.equal(ps, 0, viaPlugin.stderr());
        assert.equal(ls, 0, local.stderr());
        const remote = records(viaPlugin.stdout());
        const mine = records(local.stdout());
        const shape = (rs: JsonRecord[]) => pathsOf(rs).map((p) => `${p.inner.icmp?.type} ${p.outcome} ${hopKeys(p).join(' ')}`).sort();
        assert.deepEqual(shape(remote), shape(mine));
        assert.deepEqual(pathsOf(remote).filter((p) => p.inner.icmp?.type === 8).map(hopKeys), [six('node1', 'node2'), six('node1', 'node2')]);
        assert.deepEqual(pathsOf(remote).filter((p) => p.inner.icmp?.type === 0).map(hopKeys), [six('node2', 'node1'), six('node2', 'node1')]);
        assert.deepEqual(findingsOf(remote), []);
        const summary = (rs: JsonRecord[]) => ({ ...rs.at(-1), elapsed: undefined, durationMs: undefined });
        assert.equal(remote.at(-1)?.type, 'summary');
        assert.deepEqual(summary(remote), summary(mine));
        // and the same flow records (but for the times: two tracers on the same hooks, each reading the clock itself)
        const flowRecords = (rs: JsonRecord[]) => rs.filter((r) => r.type === 'flow').map((f) => JSON.stringify({ ...f, hops: (f.hops as JsonRecord[]).map((h) => ({ ...h, firstTime: null, lastTime: null })) })).sort();
        assert.equal(flowRecords(remote).length, 2, viaPlugin.stdout());
        assert.deepEqual(flowRecords(remote), flowRecords(mine));
        assert.match(viaPlugin.stderr(), new RegExp(`hub vxtrace/${inst.hubPod} \\(context local\\), port-forwarded to ws://127\\.0\\.0\\.1:\\d+`));
        assert.ok(inst.api.portForwards >= 1, 'through the API server\'s port-forward');
        assert.ok(inst.api.requests.includes(`/api/v1/namespaces/vxtrace/pods/${inst.hubPod}/portforward portforward`), inst.api.requests.join('\n'));

        // The text, line by line, is follow's: exactly what `vxtrace follow --hub` prints, and what
        // single-process follow prints but for the underlay leg's latency, which a hub never takes
        // from two machines' clocks.
        const textPlugin = kubectlVxtrace(inst, ['follow', 'pod-a', 'pod-b', '--count', '2', '--duration', '15']);
        const textHub = start(['follow', 'pod-a', 'pod-b', '--hub', hub.url, '--token-file', inst.tokenFile, '--count', '2', '--duration', '15']);
        const textLocal = start(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--count', '2', '--duration', '15']);
        await together([textPlugin, textHub, textLocal], () => ping(lab, 'pod-a', 'pod-b', 1));
        const shown = `kubectl vxtrace:\n${textPlugin.stdout()}\nvxtrace follow --hub:\n${textHub.stdout()}\nvxtrace follow:\n${textLocal.stdout()}`;
        assert.deepEqual(normalized(textPlugin.stdout()), normalized(textHub.stdout()), shown);
        const withoutUnderlayLeg = (lines: string[]) => lines.map((l) => l.replace(/(⇢ node\d+ eth1) D ▸/, '$1 ▸'));
        // The kernel's per-hop flow counters too: the hub streams them, the table is local follow's.
        assert.deepEqual(normalized(textPlugin.stdout()), withoutUnderlayLeg(normalized(textLocal.stdout())), shown);
        // two paths, the table (its heading, each direction's line and six hops), the summary
        assert.equal(normalized(textPlugin.stdout()).length, 2 + 1 + 2 * 7 + 1, shown);
        assert.match(textPlugin.stdout(), /^flows \(every packet counted in the kernel, per hop\):\n {2}default\/pod-a \(\S+\) → default\/pod-b \(\S+\) ICMP echo id \d+\n {4}node1 cni0 ingress +1 packets +98 B {2}sent\n/m);
        assert.match(textPlugin.stdout(), /default\/pod-a → default\/pod-b ICMP echo request .*node1 cni0 ▸ flannel\.1.* ⇢ 192\.168\.1\.122:8472 vni 1 ⇢ node2 eth1 .* delivered/);

        // kubectl vxtrace ui: the hub's address (for the page) through the port-forward, with the token a browser carries.
        const ui = kubectlVxtrace(inst, ['ui']);
        await ui.waitFor(/port-forwarded until Ctrl-C/);
        const page = new URL(ui.stdout().trim().split('\n')[0]!);
        assert.equal(page.hostname, '127.0.0.1');
        assert.equal(page.searchParams.get('token'), readFileSync(inst.tokenFile, 'utf8').trim());
        const health = await fetch(`http://127.0.0.1:${page.port}/healthz`);
        assert.equal(health.status, 200);
        assert.deepEqual((await health.json() as { nodes: string[] }).nodes, ['node1', 'node2']);
        assert.equal((await fetch(`http://127.0.0.1:${page.port}/metrics`)).status, 401, 'the token is needed');
        assert.match(await (await fetch(`http://127.0.0.1:${page.port}/metrics${page.search}`)).text(), /^vxtrace_agents_connected 2$/m);
        ui.kill('SIGINT');
        assert.equal(await ui.exited, 0, ui.stderr());

        // A Node added through the watch: node3 joins the hub's model, its agent is taken in, and its paths are joined.
        const probe = () => start(['observe', '--hub', hub.url, '--token-file', inst.tokenFile, '--node', 'node3', '--duration', '0.2']);
        const before = probe();
        assert.equal(await before.exited, 2, 'node3 is not in the model yet');
        assert.match(before.stderr(), /node node3 is not in the cluster/);
        inst.api.event('ADDED', inst.withheld[0] as never);
        let known = false;
        for (let i = 0; i < 20 && !known; i++) {
          const p = probe();
          known = (await p.exited) === 0;
          if (!known) await new Promise((r) => setTimeout(r, 200));
        }
        assert.ok(known, 'node3 reached the hub\'s model through the watch');
        procs.push(await startDaemonSetAgent(lab, inst, hub.url, 'node3'));
        const toC = kubectlVxtrace(inst, ['observe', '--from', 'pod-a', '--to', 'pod-c', '--json', '--count', '2', '--duration', '15']);
        await toC.waitFor(/^observing /m);
        await ping(lab, 'pod-a', 'pod-c');
        assert.equal(await toC.exited, 0, toC.stderr());
        assert.deepEqual(pathsOf(records(toC.stdout())).map(hopKeys), [six('node1', 'node3'), six('node1', 'node3')]);

        // A Node changed through the watch: node2 now registers node1's public-ip.
        const watching = kubectlVxtrace(inst, ['observe', '--code', 'DUPLICATE_PUBLIC_IP', '--json', '--duration', '6']);
        await watching.waitFor(/^observing /m);
        const node2 = structuredClone(inst.list.items.find((i) => i.kind === 'Node' && i.metadata.name === 'node2')!) as any;
        node2.metadata.annotations['flannel.alpha.coreos.com/public-ip'] = '192.168.1.121';
        inst.api.event('MODIFIED', node2);
        await watching.exited;
        const dup = findingsOf(records(watching.stdout()));
        assert.deepEqual(dup.map((f) => `${f.code}@${[...f.nodes].sort().join('+')}`), ['DUPLICATE_PUBLIC_IP@node1+node2'], watching.stdout());
        assert.ok(inst.api.requests.filter((r) => r === '/api/v1/nodes watch').length >= 1);
      } finally {
        await stopAll(procs);
        await inst.close();
      }
    });
  });

  test('a lab fault through the installed hub: kubectl vxtrace follow names the same finding and fix as vxtrace follow; kubectl vxtrace diagnose prints what vxtrace diagnose prints', async () => {
    await withLab({ nodes: 2, faults: ['stale-fdb'] }, async (lab) => {
      const inst = await installOnStandIn(lab);
      const procs: Proc[] = [];
      try {
        const hub = await startInClusterHub(inst);
        procs.push(hub);
        for (const n of ['node1', 'node2']) procs.push(await startDaemonSetAgent(lab, inst, hub.url, n));
        // Unfinished paths end by follow's --duration locally and by the hub's 4 s expiry: the plugin waits longer.
        const viaPlugin = kubectlVxtrace(inst, ['follow', 'pod-a', 'pod-b', '--json', '--duration', '8']);
        const local = start(['follow', 'pod-a', 'pod-b', '--cluster', lab.clusterFile, '--json', '--duration', '5']);
        const [ps, ls] = await together([viaPlugin, local], () => ping(lab, 'pod-a', 'pod-b'));
        const fixes = (rs: JsonRecord[]) => [...new Set(findingsOf(rs).map((f) => `${f.code} @${[...f.nodes].sort().join(',')}: ${f.fix}`))].sort();
        const remote = fixes(records(viaPlugin.stdout()));
        assert.equal(ps, 1, `findings give exit 1:\n${viaPlugin.stderr()}`);
        assert.equal(ls, 1, local.stderr());
        assert.deepEqual(remote, fixes(records(local.stdout())), `kubectl vxtrace:\n${viaPlugin.stdout()}\nvxtrace follow:\n${local.stdout()}`);
        assert.ok(remote.some((f) => f.startsWith('WRONG_UNDERLAY_DST @node1')), remote.join('\n'));
        assert.ok(pathsOf(records(viaPlugin.stdout())).some((p) => p.outcome !== 'delivered'));

        // kubectl vxtrace diagnose: the hub's diagnosis from state through the port-forward, as
        // `vxtrace diagnose` on the lab prints it (NDJSON whole; text but for the first line, which
        // names where each read the cluster, the API in-cluster or the lab's file, and counts the
        // hub's own pod among the API's).
        for (const json of [true, false]) {
          const flag = json ? ['--json'] : [];
          const viaHub = kubectlVxtrace(inst, ['diagnose', ...flag]);
          const here = start(['diagnose', '--cluster', lab.clusterFile, ...flag]);
          const [hs, ds] = await Promise.all([viaHub.exited, here.exited]);
          assert.equal(hs, 1, `the stale FDB entry is an error finding:\n${viaHub.stderr()}`);
          assert.equal(ds, 1, here.stderr());
          const shown = `kubectl vxtrace diagnose:\n${viaHub.stdout()}\nvxtrace diagnose:\n${here.stdout()}`;
          if (json) {
            assert.equal(viaHub.stdout(), here.stdout(), shown);
            assert.ok(fixes(records(viaHub.stdout())).some((f) => /^WRONG_UNDERLAY_DST @node1: on node1: bridge fdb replace/.test(f)), shown);
          } else {
            const [first, ...rest] = viaHub.stdout().split('\n');
            assert.match(first!, new RegExp(`^2 nodes, 3 pods from Kubernetes API ${inst.api.server.replace(/\./g, '\\.')}`));
            assert.deepEqual(rest, here.stdout().split('\n').slice(1), shown);
            assert.match(viaHub.stdout(), /^kernel state read for node1, node2$/m);
          }
          assert.match(viaHub.stderr(), /port-forwarded to ws:\/\/127\.0\.0\.1:\d+/);
        }
      } finally {
        await stopAll(procs);
        await inst.close();
      }
    });
  });
});
