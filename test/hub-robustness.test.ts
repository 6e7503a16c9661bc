// The hub under trouble (root, lab, real processes and sockets): an agent killed with -9 and
// restarted; bad frames, wrong tokens and a client that never reads, each while another client
// keeps receiving every path; agents whose clocks are seconds apart.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { WebSocket } from 'ws';
import { execAsync, execSync } from '../src/util/exec.js';
import type { LabState } from '../src/lab/index.js';
import { decodeEventBatch, encodeAgentReport, encodeSubscribe, hopRecordsOf, kernelHopRecordsOf, type StreamEvent, type Subscription } from '../src/wire/codec.js';
import { echoPath } from './unit/pcapng-fixtures.js';
import { hubAddress } from '../src/wire/endpoint.js';
import type { PacketPath } from '../src/correlate/path.js';
import { vxtrace, withLab } from './helpers/lab.js';
import { hubGet, linksHeldBy, records, runClient, start, startAgent, startAgents, startHub } from './helpers/hub.js';

const SIX_HOPS = ['node1/cni0/ingress', 'node1/flannel.1/egress', 'node1/eth1/egress', 'node2/eth1/ingress', 'node2/flannel.1/ingress', 'node2/cni0/egress'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hopKeys = (p: PacketPath) => p.hops.filter((h) => h.event.kind === 'tc').map((h) => `${h.event.node}/${h.event.device}/${h.event.direction}`);

function ping(lab: LabState, from: string, to: string, args: string[] = ['-c', '2', '-i', '0.2', '-W', '1']) {
  const a = lab.pods.find((p) => p.name === from)!;
  const b = lab.pods.find((p) => p.name === to)!;
  return execAsync(['ip', 'netns', 'exec', a.netns, 'ping', '-q', ...args, b.ip], { allowFail: true });
}

/** A stream client in this process: every event it gets, decoded. */
async function subscribe(url: string, subscription: Subscription, token?: string) {
  const events: StreamEvent[] = [];
  const ws = new WebSocket(hubAddress(url, '/v1/stream').url, 'vxtrace.v1', token ? { headers: { Authorization: `Bearer ${token}` } } : {});
  let subscribed!: () => void;
  const ready = new Promise<void>((r) => (subscribed = r));
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  ws.on('open', () => ws.send(encodeSubscribe(subscription)));
  ws.on('message', (data: Buffer) => {
    for (const e of decodeEventBatch(data)) {
      if (e.kind === 'subscribed') subscribed();
      else events.push(e);
    }
  });
  await ready;
  const paths = () => events.flatMap((e) => (e.kind === 'path' ? [e.path] : []));
  return { ws, events, paths, closed, close: () => ws.close() };
}

async function waitUntil(what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
  return Date.now() - t0;
}

const metric = (text: string, name: string) => {
  const m = new RegExp(`^${name.replace(/[{}]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

describe('hub robustness on the lab', () => {
  test('kill -9 of an agent: unwatched within 5 s (stream and metrics), paths toward it untraced, restarted agent counted again and paths resume, nothing left attached', async () => {
    await withLab({ nodes: 3 }, async (lab) => {
      const hub = await startHub(lab, '127.0.0.1:0');
      const agents = await startAgents(lab, hub.url);
      try {
        const client = await subscribe(hub.url, { from: 'pod-a', to: 'pod-b', client: 'test' });
        await ping(lab, 'pod-a', 'pod-b');
        await waitUntil('two delivered paths', () => client.paths().length >= 2, 10_000);
        assert.deepEqual(client.paths().map(hopKeys), [SIX_HOPS, SIX_HOPS]);

        const node2 = agents.get('node2')!;
        const links = linksHeldBy(node2.child.pid!);
        assert.ok(links.length >= 6, `the agent holds its tcx links (${links.length})`);
        const killedAt = Date.now();
        node2.kill('SIGKILL');
        await node2.exited;
        const unwatched = () => client.events.some((e) => e.kind === 'node' && e.status.node === 'node2' && e.status.state === 'unwatched');
        await waitUntil('node2 unwatched on the stream', unwatched, 5000);
        const m = (await hubGet(hub.url, '/metrics')).body;
        assert.equal(metric(m, 'vxtrace_agents_connected'), 2, m);
        assert.equal(metric(m, 'vxtrace_node_watched{node="node2"}'), 0);
        assert.ok(Date.now() - killedAt < 5000, `unwatched after ${Date.now() - killedAt} ms`);
        // The killed agent's links died with it (tcx links belong to the process that made them).
        const live = new Set((JSON.parse(execSync(['bpftool', 'link', 'show', '-j']).stdout || '[]') as { id: number }[]).map((l) => l.id));
        assert.deepEqual(links.filter((id) => live.has(id)), [], 'no link of the killed agent is left');

        // Meanwhile a packet toward node2 is not judged lost: nobody watches it arrive.
        await ping(lab, 'pod-a', 'pod-b', ['-c', '1', '-W', '1']);
        await waitUntil('the path toward unwatched node2', () => client.paths().length >= 3, 8000);
        const toward = client.paths()[2]!;
        assert.equal(toward.outcome, 'untraced', hopKeys(toward).join(' '));
        assert.ok(toward.hops.every((h) => h.event.node === 'node1'), 'only node1 hops');
        assert.ok(!client.events.some((e) => e.kind === 'finding'), 'no finding from an unwatched node\'s silence');

        // Restarted: counted again, paths through it resume.
        const again = await startAgent(lab, 'node2', hub.url);
        agents.set('node2', again);
        const gone = client.events.findIndex((e) => e.kind === 'node' && e.status.node === 'node2' && e.status.state === 'unwatched');
        await waitUntil('node2 connected again', () => client.events.some((e, i) => i > gone && e.kind === 'node' && e.status.node === 'node2' && e.status.state === 'connected'), 10_000);
        await waitUntil('3 agents in metrics', async () => metric((await hubGet(hub.url, '/metrics')).body, 'vxtrace_agents_connected') === 3, 5000);
        await sleep(300);
        const before = client.paths().length;
        await ping(lab, 'pod-a', 'pod-b');
        await waitUntil('paths through node2 again', () => client.paths().length >= before + 2, 10_000);
        for (const p of client.paths().slice(before)) {
          assert.equal(p.outcome, 'delivered');
          assert.deepEqual(hopKeys(p), SIX_HOPS);
        }
        const mm = (await hubGet(hub.url, '/metrics')).body;
        assert.equal(metric(mm, 'vxtrace_node_watched{node="node2"}'), 1);
        assert.ok((metric(mm, 'vxtrace_hop_records_total{node="node2"}') ?? 0) >= 6, mm);
        assert.equal(metric(mm, 'vxtrace_hop_records_total{node="node3"}') ?? 0, 0, 'node3 saw nothing of pod-a -> pod-b');
        assert.ok((metric(mm, 'vxtrace_paths_total{outcome="delivered"}') ?? 0) >= 4, mm);
        assert.ok((metric(mm, 'vxtrace_paths_total{outcome="untraced"}') ?? 0) >= 1, mm);
        // The text is valid Prometheus exposition format (promtool from Debian's prometheus package).
        const lint = spawnSync('promtool', ['check', 'metrics'], { input: mm, encoding: 'utf8' });
        assert.equal(lint.status, 0, `${lint.stdout}${lint.stderr}`);
        client.close();
      } finally {
        for (const a of agents.values()) a.kill();
        hub.kill();
        await Promise.all([hub.exited, ...[...agents.values()].map((a) => a.exited)]);
      }
    });
  });

  test('bad frames, a wrong token and a client that never reads: each closed alone while another client gets every path', async () => {
    await withLab({ nodes: 3 }, async (lab) => {
      const dir = mkdtempSync(join(tmpdir(), 'vxt-hub-'));
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, 's3cret-token\n');
      const sock = `unix:/run/vxtrace/hub-${lab.name}.sock`;
      const hub = await startHub(lab, sock, ['--token-file', tokenFile], { VXTRACE_TEST_CLIENT_BUFFER_BYTES: '65536', VXTRACE_TEST_CLIENT_BEHIND_MS: '1500' });
      const agents = await startAgents(lab, hub.url, { extra: ['--token-file', tokenFile] });
      try {
        const good = await subscribe(hub.url, { from: 'pod-a', to: 'pod-b', client: 'good' }, 's3cret-token');
        const url = hubAddress(hub.url, '/v1/stream').url;
        const closeOf = async (send: (ws: WebSocket) => void, token = 's3cret-token') => {
          const ws = new WebSocket(url, 'vxtrace.v1', { headers: { Authorization: `Bearer ${token}` }, maxPayload: 1 << 30 });
          ws.on('error', () => {});
          await new Promise((r) => ws.once('open', r));
          const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
          send(ws);
          return closed;
        };
        const valid = encodeSubscribe({ from: 'pod-a', to: 'pod-b' });
        const pinging = ping(lab, 'pod-a', 'pod-b', ['-c', '10', '-i', '0.2', '-W', '1']);
        assert.equal(await closeOf((ws) => ws.send('{"subscribe":true}')), 4001, 'text frame');
        assert.equal(await closeOf((ws) => ws.send(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]))), 4000, 'malformed protobuf');
        assert.equal(await closeOf((ws) => ws.send(valid.subarray(0, valid.length - 2))), 4000, 'truncated Subscribe');
        assert.equal(await closeOf((ws) => ws.send(Buffer.alloc(200_000, 0x41))), 4002, 'oversized frame');
        assert.equal(await closeOf((ws) => ws.send(encodeSubscribe({ from: 'pod-zz' }))), 4004, 'unknown pod');
        // Wrong and missing tokens: 401 before any upgrade.
        for (const headers of [{ Authorization: 'Bearer wrong' }, {}] as Record<string, string>[]) {
          const status = await new Promise<number>((resolve) => {
            const ws = new WebSocket(url, 'vxtrace.v1', { headers });
            ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
            ws.on('open', () => resolve(101));
            ws.on('error', () => {});
          });
          assert.equal(status, 401);
        }
        const wrong = vxtrace(['observe', '--hub', hub.url, '--duration', '1', '--token-file', join(dir, 'missing')]);
        assert.equal(wrong.status, 2);
        writeFileSync(join(dir, 'bad'), 'nope\n');
        const refused = vxtrace(['observe', '--hub', hub.url, '--duration', '1', '--token-file', join(dir, 'bad')]);
        assert.equal(refused.status, 2, refused.stderr);
        assert.match(refused.stderr, /refused the connection \(401: wrong token\)/);
        assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);

        // A client that subscribes to everything and never reads, while a flood runs elsewhere.
        const slow = new WebSocket(url, 'vxtrace.v1', { headers: { Authorization: 'Bearer s3cret-token' } });
        await new Promise((r) => slow.once('open', r));
        const slowClosed = new Promise<void>((r) => slow.once('close', () => r()));
        slow.send(encodeSubscribe({ client: 'slow' }));
        await sleep(300);
        (slow as unknown as { _socket: { pause(): void } })._socket.pause();
        await ping(lab, 'pod-c', 'pod-b', ['-f', '-c', '5000', '-W', '1']);
        await pinging;
        await waitUntil('the slow client cut off (4008)', () => /slow .*closing \(4008\)/.test(hub.stderr()), 15_000);
        slow.terminate();
        await slowClosed;
        await waitUntil('every ping path at the good client', () => good.paths().length >= 10, 10_000);
        assert.equal(good.paths().length, 10, 'each of the 10 requests once');
        assert.deepEqual(good.paths().map((p) => p.inner.icmp?.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        for (const p of good.paths()) assert.deepEqual(hopKeys(p), SIX_HOPS);
        assert.ok(!good.events.some((e) => e.kind === 'lost'), 'the good client lost nothing');
        // An agent that claims node3 and sends node1's hop records: none is taken for node1 or node3.
        const before = (await hubGet(hub.url, '/metrics', { Authorization: 'Bearer s3cret-token' })).body;
        const impostor = new WebSocket(hubAddress(hub.url, '/v1/agent').url, 'vxtrace.v1', { headers: { Authorization: 'Bearer s3cret-token' } });
        impostor.on('error', () => {});
        await new Promise((r) => impostor.once('open', r));
        const impostorClosed = new Promise<number>((r) => impostor.once('close', (code) => r(code)));
        impostor.send(encodeAgentReport({ kind: 'hello', hello: { node: 'node3', version: 'test', hostname: 'elsewhere', hooks: [], wallTimeNs: BigInt(Date.now()) * 1_000_000n } }));
        impostor.send(encodeAgentReport({ kind: 'hops', hops: hopRecordsOf(echoPath().hops.map((h) => h.event)) }));
        await waitUntil('the hub drops them', () => /agent node3: 6 of 6 hop records dropped \(malformed or not of node3\)/.test(hub.stderr()), 5000);
        // The same records as agents send them (the kernel's, with a hook table naming node1 and node2): none taken either.
        const echo = echoPath({ seq: 2 }).hops.map((h) => h.event);
        for (const n of ['node1', 'node2']) impostor.send(encodeAgentReport({ kind: 'hops', hops: kernelHopRecordsOf(echo.filter((e) => e.node === n)) }));
        await waitUntil('the hub drops those', () => (hub.stderr().match(/agent node3: 3 of 3 hop records dropped \(malformed or not of node3\)/g) ?? []).length >= 2, 5000);
        // It replaced the real node3 agent (4009 to that one), which ends; the impostor is sent away.
        impostor.close();
        await impostorClosed;
        const counts = await hubGet(hub.url, '/metrics', { Authorization: 'Bearer s3cret-token' });
        for (const n of ['node1', 'node3']) {
          const name = `vxtrace_hop_records_total{node="${n}"}`;
          assert.equal(metric(counts.body, name) ?? 0, metric(before, name) ?? 0, `${n}: nothing taken from the impostor`);
        }

        const m = await hubGet(hub.url, '/metrics', { Authorization: 'Bearer s3cret-token' });
        assert.ok((metric(m.body, 'vxtrace_client_messages_dropped_total') ?? 0) > 0, m.body);
        assert.equal((await hubGet(hub.url, '/metrics')).status, 401);
        // Each bad connection left one log line with its close code.
        for (const code of [4000, 4001, 4002, 4004, 4008]) assert.match(hub.stderr(), new RegExp(`closing \\(${code}\\)`));
        assert.match(hub.stderr(), /refused \/v1\/stream from .*: 401 wrong token/);
        good.close();
      } finally {
        for (const a of agents.values()) a.kill();
        hub.kill();
        await Promise.all([hub.exited, ...[...agents.values()].map((a) => a.exited)]);
      }
    });
  });

  test('agents whose clocks are seconds apart give the same six-hop paths', async () => {
    await withLab({ nodes: 3 }, async (lab) => {
      const hub = await startHub(lab, '127.0.0.1:0');
      // Injected for tests: each agent's wall clock is shifted (VXTRACE_TEST_CLOCK_OFFSET_NS).
      const offsets: Record<string, string> = { node1: '5000000000', node2: '-3000000000', node3: '1500000000' };
      const agents = await startAgents(lab, hub.url, { env: (n) => ({ VXTRACE_TEST_CLOCK_OFFSET_NS: offsets[n]! }) });
      try {
        for (const [n, a] of agents) assert.match(a.stderr(), new RegExp(`TEST clock offset ${offsets[n]} ns`));
        const r = await runClient(['follow', 'pod-a', 'pod-b', '--hub', hub.url, '--json', '--count', '4', '--duration', '15'], () => ping(lab, 'pod-a', 'pod-b'));
        assert.equal(r.status, 0, r.stderr);
        const ps = records(r.stdout).filter((x) => x.type === 'path') as unknown as { outcome: string; durationNs: string; hops: { node: string; device: string; direction: string; kind: string; latencyNs: string | null }[]; inner: { icmp: { type: number } } }[];
        assert.equal(ps.length, 4);
        for (const p of ps) {
          assert.equal(p.outcome, 'delivered');
          const keys = p.hops.map((h) => `${h.node}/${h.device}/${h.direction}`);
          assert.deepEqual(keys, p.inner.icmp.type === 8 ? SIX_HOPS : [...SIX_HOPS].reverse().map((k) => k.replace('ingress', 'X').replace('egress', 'ingress').replace('X', 'egress')));
          // The hub maps each agent's clock onto its own: the wall-clock span is that of a packet, not of the skew.
          assert.ok(BigInt(p.durationNs) >= 0n && BigInt(p.durationNs) < 500_000_000n, `duration ${p.durationNs} ns`);
          assert.equal(p.hops[3]!.latencyNs, null, 'no latency across two clocks');
        }
      } finally {
        for (const a of agents.values()) a.kill();
        hub.kill();
        await Promise.all([hub.exited, ...[...agents.values()].map((a) => a.exited)]);
      }
    });
  });

  test('a silent agent (stopped, its connection open: as after a network cut) is cut off and its node unwatched; the hub restarted, agents reconnect and send what they kept', async () => {
    await withLab({ nodes: 3 }, async (lab) => {
      const sock = `unix:/run/vxtrace/hub-${lab.name}.sock`;
      let hub = await startHub(lab, sock);
      const agents = await startAgents(lab, hub.url);
      try {
        const client = await subscribe(hub.url, { from: 'pod-a', to: 'pod-b', client: 'test' });
        const node3 = agents.get('node3')!;
        node3.kill('SIGSTOP');
        const stoppedAt = Date.now();
        await waitUntil('node3 unwatched', () => client.events.some((e) => e.kind === 'node' && e.status.node === 'node3' && e.status.state === 'unwatched'), 6000);
        const took = Date.now() - stoppedAt;
        assert.ok(took < 5000, `unwatched after ${took} ms`);
        assert.match(hub.stderr(), /agent node3: closing \(4010\): no word from the agent for 3 s/);
        node3.kill('SIGCONT');
        await waitUntil('node3 back', () => (hub.stderr().match(/agent node3 connected/g) ?? []).length >= 2, 15_000);

        // The hub goes away (its client with it); the agents keep their filter and their records,
        // and reconnect to the next hub.
        hub.kill('SIGKILL');
        await hub.exited;
        await sleep(300);
        await ping(lab, 'pod-a', 'pod-b');
        hub = await startHub(lab, sock);
        for (const n of ['node1', 'node2', 'node3']) await hub.waitFor(new RegExp(`agent ${n} connected`), 15_000);
        await waitUntil('the kept records joined', async () => (metric((await hubGet(hub.url, '/metrics')).body, 'vxtrace_paths_total{outcome="delivered"}') ?? 0) >= 4, 10_000);
        for (const a of agents.values()) assert.match(a.stderr(), /lost the hub .*keeping records/);
      } finally {
        for (const a of agents.values()) {
          a.kill('SIGCONT');
          a.kill();
        }
        hub.kill();
        await Promise.all([hub.exited, ...[...agents.values()].map((a) => a.exited)]);
      }
    });
  });

  test('a hub on an address others can reach needs a token: exit 2 with why', () => {
    const r = vxtrace(['hub', '--listen', '0.0.0.0:4299', '--cluster', '/nonexistent']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^vxtrace: listening on 0\.0\.0\.0:4299 \(not loopback\) needs --token-file FILE/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  test("an agent's --shed takes 'always' or 'auto' only: anything else is one line naming both, exit 2", () => {
    const r = vxtrace(['agent', '--hub', 'unix:/nonexistent.sock', '--shed', 'sometimes']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--shed sometimes: give 'always' .* or 'auto' /);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });
});
