// The hub in one process over a real unix socket (no root): agents played by websocket clients
// speaking /v1/agent (hello, kernel state), clients the real ones. A state-only subscription
// (`diagnose --hub`) gets the diagnosis `diagnose` makes of the same state and changes no agent's
// filter; an agent for a node the hub does not know yet is told to retry (4012) and is taken in
// once the node is there.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { WebSocket } from 'ws';
import { run } from '../../src/cli/main.js';
import { clusterObjectsFromJson } from '../../src/cluster/list.js';
import { ClusterModel } from '../../src/cluster/model.js';
import type { NodeKernelState } from '../../src/cluster/kernel.js';
import type { FlowFilter } from '../../src/datapath/index.js';
import { diagnoseModel } from '../../src/diagnose/diagnosis.js';
import { formatDiagnosis } from '../../src/output/diagnosis.js';
import { HubServer } from '../../src/hub/server.js';
import { HubClient } from '../../src/session/hub-client.js';
import { decodeAgentCommand, encodeAgentReport, SUBPROTOCOL, type DiagnosisEvent, type StreamEvent } from '../../src/wire/codec.js';
import { hubAddress } from '../../src/wire/endpoint.js';
import { fixtureKernel, fixtureList, fixtureNodes, type FixtureOptions } from './fixtures/flannel.js';

const dir = mkdtempSync(join(tmpdir(), 'vxtrace-hubdiag-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let sockets = 0;

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _e: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function cli(argv: string[]): Promise<{ status: number; out: string; err: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const status = await run(['node', 'vxtrace', ...argv], { stdout, stderr });
  return { status, out: stdout.text, err: stderr.text };
}

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function startHub(list: unknown) {
  const log: string[] = [];
  const { server, url } = await HubServer.start({
    listen: { kind: 'unix', path: join(dir, `hub${sockets++}.sock`) }, objects: clusterObjectsFromJson(list, 'fixture'), clusterFrom: 'cluster file fixture.json', log: (l) => log.push(l),
  });
  return { server, url, log };
}

/** An agent as the hub sees one: a hello, its kernel state, and every filter the hub sets. */
async function fakeAgent(url: string, node: string, state: NodeKernelState) {
  const ws = new WebSocket(hubAddress(url, '/v1/agent').url, SUBPROTOCOL);
  const filters: FlowFilter[] = [];
  ws.on('message', (data: Buffer) => {
    const c = decodeAgentCommand(data);
    if (c.kind === 'set-filter') filters.push(c.filter);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  ws.send(encodeAgentReport({ kind: 'hello', hello: { node, version: 'test', hostname: node, hooks: [], wallTimeNs: BigInt(Date.now()) * 1_000_000n } }));
  ws.send(encodeAgentReport({ kind: 'kernel-state', state }));
  return { ws, filters, closed };
}

test('diagnose --hub: the diagnosis diagnose makes of the same state (text and NDJSON, exit status), and no agent filter changes for it', async () => {
  const opts: FixtureOptions = { nodes: 3, natPublicIp: true };
  const nodes = fixtureNodes(opts);
  const list = fixtureList(nodes);
  const { server, url, log } = await startHub(list);
  try {
    // No agent yet: what `diagnose --cluster FILE` prints of the same objects (no kernel state here either).
    const file = join(dir, 'fixture.json');
    writeFileSync(file, JSON.stringify(list));
    const [hubJson, localJson] = [await cli(['diagnose', '--hub', url, '--json']), await cli(['diagnose', '--cluster', file, '--json'])];
    assert.equal(hubJson.status, 1, hubJson.err);
    assert.equal(localJson.status, 1);
    assert.equal(hubJson.out, localJson.out);
    assert.match(hubJson.out, /"code":"DUPLICATE_PUBLIC_IP"/);
    const [hubText, localText] = [await cli(['diagnose', '--hub', url]), await cli(['diagnose', '--cluster', file])];
    assert.equal(hubText.out, localText.out.replace('no kernel state readable here', 'no kernel state from any agent').replace(`from cluster file ${file}`, 'from cluster file fixture.json'));

    // Agents for node1 and node2: their kernel state is in the diagnosis; node3 has none.
    const agents = await Promise.all(['node1', 'node2'].map((n) => fakeAgent(url, n, fixtureKernel(nodes.find((x) => x.name === n)!, nodes, opts))));
    await until('both agents in', () => server.hub.snapshot().agentsConnected === 2 && agents.every((a) => a.filters.length > 0));
    const kernel = new Map(['node1', 'node2'].map((n) => [n, fixtureKernel(nodes.find((x) => x.name === n)!, nodes, opts)]));
    const expected = diagnoseModel(ClusterModel.build(clusterObjectsFromJson(list, 'fixture'), kernel), 'cluster file fixture.json', () => 'no agent connected');
    await new Promise((r) => setTimeout(r, 300)); // the state settles at the hub
    const text = await cli(['diagnose', '--hub', url]);
    assert.equal(text.status, 1, text.err);
    assert.equal(text.out, formatDiagnosis(expected, { json: false, style: { color: false }, nowhere: '' }));
    assert.match(text.out, /^kernel state read for node1, node2\nno kernel state for node3 \(no agent connected\)$/m);
    assert.ok(expected.findings.length >= 1 && expected.findings.every((f) => text.out.includes(f.fix)));

    // --watch's stream: node3's agent comes, and a new diagnosis says so.
    const events: StreamEvent[] = [];
    const { client } = await HubClient.connect({ hub: url, subscription: { client: 'test', stateOnly: true }, onEvent: (e) => events.push(e), onEnd: () => {} });
    const diagnoses = () => events.filter((e): e is { kind: 'diagnosis'; diagnosis: DiagnosisEvent } => e.kind === 'diagnosis').map((e) => e.diagnosis);
    await until('the first diagnosis', () => diagnoses().length === 1);
    assert.deepEqual(events.filter((e) => e.kind === 'node').map((e) => e.kind === 'node' && `${e.status.node} ${e.status.state} ${e.status.reason}`), ['node1 connected agent connected', 'node2 connected agent connected', 'node3 unwatched no agent has connected']);
    assert.deepEqual(diagnoses()[0]!.findingKeys, expected.findings.map((f) => f.key));
    assert.equal(diagnoses()[0]!.why, '');
    const node3 = await fakeAgent(url, 'node3', fixtureKernel(nodes[2]!, nodes, opts));
    await until('a diagnosis with node3', () => diagnoses().length === 2);
    assert.match(diagnoses()[1]!.why, /agent node3 connected/);
    assert.ok(diagnoses()[1]!.nodes.every((n) => n.kernelState), JSON.stringify(diagnoses()[1]!.nodes));
    // Findings come before the Diagnosis that closes their set.
    const second = events.slice(events.findIndex((e) => e.kind === 'diagnosis') + 1);
    assert.deepEqual(second.filter((e) => e.kind === 'finding').map((e) => e.kind === 'finding' && e.finding.key), diagnoses()[1]!.findingKeys);

    // No agent was asked to trace anything for the state-only clients.
    for (const a of [...agents, node3]) assert.deepEqual(a.filters, ['none']);
    assert.ok(!log.some((l) => l.startsWith('in-kernel filter')), log.join('\n'));
    // A client that asks for paths does change them (so the check above can fail).
    const { client: paths } = await HubClient.connect({ hub: url, subscription: { client: 'paths' }, onEvent: () => {}, onEnd: () => {} });
    await until('the filter for everything', () => agents.every((a) => a.filters.at(-1) === 'everything'));
    paths.close();
    await until('the filter back to none', () => agents.every((a) => a.filters.at(-1) === 'none'));
    client.close();

    // state_only with a path filter is refused with why.
    await assert.rejects(HubClient.connect({ hub: url, subscription: { stateOnly: true, from: 'pod-a' }, onEvent: () => {}, onEnd: () => {} }), /state-only subscription takes no other filter \(it has from\)/);
    for (const a of [...agents, node3]) a.ws.close();
  } finally {
    await server.close();
  }
});

test('an agent for a node the hub does not know yet is told to retry (4012), and is taken in once the node is there', async () => {
  const nodes = fixtureNodes({ nodes: 3 });
  const full = fixtureList(nodes);
  const withoutNode3 = { ...full, items: full.items.filter((i) => !(i.kind === 'Node' && i.metadata.name === 'node3')) };
  const { server, url, log } = await startHub(withoutNode3);
  try {
    const early = await fakeAgent(url, 'node3', fixtureKernel(nodes[2]!, nodes));
    const { code, reason } = await early.closed;
    assert.equal(code, 4012);
    assert.match(reason, /^node node3 is not in the hub's cluster yet: retry/);
    assert.deepEqual(early.filters, [], 'no command to an agent not taken');
    assert.match(log.join('\n'), /closing \(4012\)/);
    server.hub.setObjects(clusterObjectsFromJson(full, 'fixture'));
    const again = await fakeAgent(url, 'node3', fixtureKernel(nodes[2]!, nodes));
    await until('node3 taken in', () => server.hub.snapshot().agentsConnected === 1 && again.filters.length === 1);
    assert.deepEqual(server.hub.watchedNodes, ['node3']);
    again.ws.close();
  } finally {
    await server.close();
  }
});

test('diagnose --hub: bad input and an unreachable hub are one line each, with their exit status', async () => {
  for (const [argv, status, re] of [
    [['--hub', `unix:${join(dir, 'nothing.sock')}`], 3, /cannot reach the hub at unix:\S+nothing\.sock: nothing listens there/],
    [['--hub', 'unix:/x.sock', '--cluster', 'f.json'], 2, /--cluster does not go with --hub: the hub reads the cluster/],
    [['--token-file', join(dir, 'token')], 2, /--token-file is the token of a hub: it goes with --hub URL/],
    [['--hub', 'ftp://x:1'], 2, /the scheme ftp: is not one a hub speaks/],
  ] as const) {
    const r = await cli(['diagnose', ...argv]);
    assert.equal(r.status, status, r.err);
    assert.match(r.err, re);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
    assert.equal(r.out, '');
  }
});
