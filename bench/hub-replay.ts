// One replaying agent of bench/hub.ts: speaks /v1/agent as NODE, sends that node's hop records from
// a recorded trace (the kernel's records kept in the trace, batched as a live agent batches them:
// src/wire/hop-batch.ts, frames of at most 1 MiB) at a set rate, over and over. Each pass is made new packets: the same xor on every node's fingerprints, so the
// hub joins the nodes' hops of one copy into one path; times are rewritten to the schedule, so a
// path's hops keep their order and a record's wall time is when it was sent.
//   node dist/bench/hub-replay.js HUB_URL NODE TRACE RATE_TOTAL SECONDS
// It prints `ready` once connected, then starts at the wall-clock ms read from its stdin (T0), so
// that every replayer follows one schedule.
import { WebSocket } from 'ws';
import { readTrace } from '../src/pcapng/reader.js';
import { decodeAgentCommand, encodeAgentReport, SUBPROTOCOL } from '../src/wire/codec.js';
import { KernelRecordBatch, kernelRecordSize } from '../src/wire/hop-batch.js';
import { hubAddress } from '../src/wire/endpoint.js';
import { HOP_LAYOUT } from '../src/datapath/decode.js';
import type { NodeKernelState } from '../src/cluster/kernel.js';

const [hub, node, file, rateText, secondsText] = process.argv.slice(2) as [string, string, string, string, string];
const rate = Number(rateText);
const seconds = Number(secondsText);

// Offsets in a kernel record (struct vxt_hop): its clock and its fingerprint.
const TS_AT = HOP_LAYOUT.fields.ts_ns.offset;
const FP_AT = HOP_LAYOUT.fields.fingerprint.offset;

const trace = await readTrace(file);
// Every node's hops in the order they happened: the schedule is the whole recording's, so that each
// replayer sends its records when the recording had them (the sender's before the receiver's).
const all = [...trace.hops].sort((a, b) => (a.wallTimeNs < b.wallTimeNs ? -1 : a.wallTimeNs > b.wallTimeNs ? 1 : 0));
// This node's records, as its agent batches them (src/wire/hop-batch.ts), once: each pass copies
// them and rewrites their clock (monotonic = wall: the batch's offset is 0) and fingerprint.
const recorded = new KernelRecordBatch(1 << 20);
const mine: { j: number; at: number; size: number }[] = [];
all.forEach((e, j) => {
  if (e.node !== node) return;
  mine.push({ j, at: recorded.byteLength, size: kernelRecordSize(e) });
  if (!recorded.add({ ...e, wallTimeNs: e.timestampNs })) throw new Error(`${file}: node ${node}'s hooks are named two ways`);
});
const tables = recorded.records();
const total = all.length;
const state = (trace.snapshot?.nodeState as Record<string, NodeKernelState> | undefined)?.[node];

const ws = new WebSocket(hubAddress(hub, '/v1/agent').url, SUBPROTOCOL);
await new Promise((resolve, reject) => {
  ws.once('open', resolve);
  ws.once('error', reject);
});
// No clock sample (wall time 0): the records' times are the schedule's, on this machine's clock, so
// the hub maps them onto its own unchanged (a sample would shift them by the delay it was taken
// with, tens of ms on a loaded machine, and bias the latencies measured).
ws.send(encodeAgentReport({ kind: 'hello', hello: { node, version: 'bench', hostname: 'bench', hooks: [], wallTimeNs: 0n } }));
if (state) ws.send(encodeAgentReport({ kind: 'kernel-state', state }));
// The hub's filter commands are answered (it waits for them before a subscription is in force).
ws.on('message', (data: Buffer) => {
  const c = decodeAgentCommand(data);
  if (c.kind === 'set-filter') ws.send(encodeAgentReport({ kind: 'filter-applied', generation: c.generation }));
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
const out = new Uint8Array(1 << 20);
const outView = new DataView(out.buffer);
const end = t0 + seconds * 1000;
const timer = setInterval(() => {
  const now = Date.now();
  if (now >= end) {
    clearInterval(timer);
    ws.send(encodeAgentReport({ kind: 'stats', stats: { ringLost: 0, queueDropped: dropped, records: sent, wallTimeNs: 0n } }));
    process.stdout.write(JSON.stringify({ node, sent, dropped }) + '\n');
    setTimeout(() => process.exit(0), 200);
    return;
  }
  // The records due by now, copied out of the recording and rewritten for this pass, in frames of
  // at most 1 MiB (as an agent sends them).
  for (;;) {
    let bytes = 0;
    let count = 0;
    for (;;) {
      const item = mine[next]!;
      const at = t0 + pass * periodMs + (item.j / rate) * 1000;
      if (at > now || bytes + item.size > out.length) break;
      out.set(tables.bytes.subarray(item.at, item.at + item.size), bytes);
      outView.setBigUint64(bytes + TS_AT, BigInt(Math.round(at * 1e6)), true);
      outView.setUint32(bytes + FP_AT + 4, outView.getUint32(bytes + FP_AT + 4, true) ^ (pass + 1), true);
      bytes += item.size;
      count++;
      if (++next === mine.length) {
        next = 0;
        pass++;
      }
    }
    if (!count) return;
    // A hub that cannot keep up: the socket fills; past 8 MiB records are dropped and counted, as an agent does.
    if (ws.bufferedAmount > 8 << 20) dropped += count;
    else {
      // (the frame is a copy: `out` is reused)
      ws.send(encodeAgentReport({ kind: 'hops', hops: { records: [], kernel: { ...tables, bytes: out.subarray(0, bytes) } } }));
      sent += count;
    }
    if (bytes + 4096 < out.length) return;
  }
}, 5);
