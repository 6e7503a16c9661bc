// One replaying agent of bench/hub.ts: speaks /v1/agent as NODE, sends that node's hop records from
// a recorded trace (the trace file's own hop records, as a live agent sends them) at a set rate,
// over and over. Each pass is made new packets: the same xor on every node's fingerprints, so the
// hub joins the nodes' hops of one copy into one path; times are rewritten to the schedule, so a
// path's hops keep their order and a record's wall time is when it was sent.
//   node dist/bench/hub-replay.js HUB_URL NODE TRACE RATE_TOTAL SECONDS
// It prints `ready` once connected, then starts at the wall-clock ms read from its stdin (T0), so
// that every replayer follows one schedule.
import { WebSocket } from 'ws';
import { readTrace } from '../src/pcapng/reader.js';
import { decodeAgentCommand, encodeAgentReport, hopRecordOf, SUBPROTOCOL } from '../src/wire/codec.js';
import { hubAddress } from '../src/wire/endpoint.js';
import type { NodeKernelState } from '../src/cluster/kernel.js';

const [hub, node, file, rateText, secondsText] = process.argv.slice(2) as [string, string, string, string, string];
const rate = Number(rateText);
const seconds = Number(secondsText);

// Offsets in a hop record (as sent: PEN first; src/pcapng/hop-record.ts HOP_RECORD_LAYOUT).
const WALL_AT = 4 + 8;
const TS_AT = 4 + 16 + 0;
const FP_AT = 4 + 16 + 16;

const trace = await readTrace(file);
// Every node's hops in the order they happened: the schedule is the whole recording's, so that each
// replayer sends its records when the recording had them (the sender's before the receiver's).
const all = [...trace.hops].sort((a, b) => (a.wallTimeNs < b.wallTimeNs ? -1 : a.wallTimeNs > b.wallTimeNs ? 1 : 0));
const mine = all.flatMap((e, j) => (e.node === node ? [{ j, r: hopRecordOf(e) }] : []));
const total = all.length;
const state = (trace.snapshot?.nodeState as Record<string, NodeKernelState> | undefined)?.[node];

const ws = new WebSocket(hubAddress(hub, '/v1/agent').url, SUBPROTOCOL);
await new Promise((resolve, reject) => {
  ws.once('open', resolve);
  ws.once('error', reject);
});
const wallNow = () => BigInt(Date.now()) * 1_000_000n;
ws.send(encodeAgentReport({ kind: 'hello', hello: { node, version: 'bench', hostname: 'bench', hooks: [], wallTimeNs: wallNow() } }));
if (state) ws.send(encodeAgentReport({ kind: 'kernel-state', state }));
// The hub's filter commands are answered (it waits for them before a subscription is in force).
ws.on('message', (data: Buffer) => {
  const c = decodeAgentCommand(data);
  ws.send(encodeAgentReport({ kind: 'filter-applied', generation: c.generation }));
});

process.stdout.write('ready\n');
const t0 = await new Promise<number>((resolve) => {
  let text = '';
  process.stdin.setEncoding('utf8').on('data', (d: string) => {
    text += d;
    if (text.includes('\n')) resolve(Number(text.trim()));
  });
});

let sent = 0;
let dropped = 0;
let pass = 0;
let next = 0;
const periodMs = (total / rate) * 1000;
const end = t0 + seconds * 1000;
const timer = setInterval(() => {
  const now = Date.now();
  if (now >= end) {
    clearInterval(timer);
    ws.send(encodeAgentReport({ kind: 'stats', stats: { ringLost: 0, queueDropped: dropped, records: sent, wallTimeNs: wallNow() } }));
    process.stdout.write(JSON.stringify({ node, sent, dropped }) + '\n');
    setTimeout(() => process.exit(0), 200);
    return;
  }
  const batch: { record: Uint8Array; frame: Uint8Array }[] = [];
  for (;;) {
    const item = mine[next]!;
    const at = t0 + pass * periodMs + (item.j / rate) * 1000;
    if (at > now) break;
    const record = Uint8Array.prototype.slice.call(item.r.record);
    const v = new DataView(record.buffer, record.byteOffset, record.byteLength);
    const wall = BigInt(Math.round(at * 1e6));
    v.setBigInt64(WALL_AT, wall, true);
    v.setBigUint64(TS_AT, wall, true);
    v.setUint32(FP_AT + 4, v.getUint32(FP_AT + 4, true) ^ (pass + 1), true);
    batch.push({ record, frame: item.r.frame });
    if (++next === mine.length) {
      next = 0;
      pass++;
    }
    if (batch.length >= 4096) break;
  }
  if (!batch.length) return;
  // A hub that cannot keep up: the socket fills; past 8 MiB records are dropped and counted, as an agent does.
  if (ws.bufferedAmount > 8 << 20) {
    dropped += batch.length;
    return;
  }
  ws.send(encodeAgentReport({ kind: 'hops', hops: { records: batch } }));
  sent += batch.length;
}, 5);
