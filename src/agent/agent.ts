// The node agent: attaches the datapath to its own node's hooks (a Tracer), reads and watches its
// node's kernel state, and sends both to the hub over /v1/agent, with its loss counters. The hub
// sets its in-kernel filter (nothing is emitted until someone subscribes). While the hub is away
// it reconnects with backoff and keeps hop records in a bounded queue, counting what it drops.
import { hostname } from 'node:os';
import { WebSocket } from 'ws';
import { KernelWatcher } from '../cluster/kernel-reader.js';
import type { NodeKernelState } from '../cluster/kernel.js';
import { Tracer, defaultVxlanPorts, type HopEvent } from '../datapath/index.js';
import { attachNewDevices, SESSION_RING_BYTES } from '../session/trace-session.js';
import { decodeAgentCommand, encodeAgentReport, SUBPROTOCOL, WireError, type AgentReport } from '../wire/codec.js';
import { KernelRecordBatch, kernelRecordSize } from '../wire/hop-batch.js';
import { CloseCode } from '../wire/close.js';
import type { HubAddress } from '../wire/endpoint.js';
import { UsageError, VxtraceError } from '../errors.js';
import { VERSION } from '../version.js';
import { AgentProber } from './prober.js';
import { FlowReporter } from './flow-reporter.js';

export interface AgentOptions {
  hub: HubAddress;
  token?: string;
  node: string;
  /** The node's network namespace on this machine (a lab node entered from outside); undefined: this one. */
  netns?: string;
  log(line: string): void;
  /** The agent failed for good (a refused token, a node the hub does not know): the command ends with it. */
  onFatal(err: VxtraceError): void;
  /** Bytes of hop records kept while the hub is away or slow. Default 32 MiB. */
  queueBytes?: number;
  /**
   * Added to every wall-clock time the agent derives (its hop records and the clock it reports):
   * FOR TESTS ONLY, to run agents on one machine as if their clocks differed
   * (VXTRACE_TEST_CLOCK_OFFSET_NS).
   */
  clockOffsetNs?: bigint;
  /**
   * When the kernel sheds records (docs/datapath.md, "Who sheds when"): 'always' (default), as
   * `follow` does: records for the first packets of each flow and hook per window, every drop,
   * SYN/FIN/RST and ICMP, every packet counted in the flow counters, so a followed flow at line rate
   * costs its node no more than a few records; 'auto': a record for every packet while the ring
   * buffer has room, as `capture` does (for the page's downloads of whole flows).
   */
  shed?: 'always' | 'auto';
  snaplen?: number;
}

/** A HopBatch frame holds at most this many bytes of kernel records. */
const MAX_BATCH_BYTES = 1 << 20;
/** Sending pauses while the socket holds this much unsent (the hub is slow): records queue meanwhile. */
const MAX_BUFFERED = 4 << 20;

export class NodeAgent {
  private ws: WebSocket | undefined;
  private connected = false;
  /** The hub took this connection's hello (it sent its first command): hop records may go. */
  private accepted = false;
  private stopped = false;
  private backoffMs = 250;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Why the last connection attempt failed, and when a retry was last logged (at most every 10 s). */
  private lastError: string | undefined;
  private lastRetryLog = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Hop records waiting for the hub: batches of the kernel's records, each one frame, the last one filling. */
  private queue: KernelRecordBatch[] = [];
  private queuedBytes = 0;
  /** Counters: records queued, dropped from the full queue, sent. */
  queueDropped = 0;
  sent = 0;
  private state: NodeKernelState;
  /** The probes the hub asks this node to send (`vxtrace check --hub`). */
  private readonly probes: AgentProber;
  /** The kernel's per-hop flow counters, read and sent once a second (src/agent/flow-reporter.ts). */
  private readonly flows: FlowReporter;

  private constructor(
    private readonly opts: AgentOptions,
    private readonly tracer: Tracer,
    private readonly watcher: KernelWatcher,
    state: NodeKernelState,
  ) {
    this.state = state;
    this.probes = new AgentProber(opts.netns, (results) => this.send({ kind: 'probe-results', results }));
    this.flows = new FlowReporter({
      read: () => this.tracer.flowCounters(),
      wallNow: () => this.wallNow(),
      ...(opts.clockOffsetNs ? { offsetNs: opts.clockOffsetNs } : {}),
      send: (counters) => this.accepted && this.connected && !!this.send({ kind: 'flow-counters', counters }),
    });
  }

  /** Attach, read the kernel state, start watching it, and connect to the hub (reconnecting as needed). */
  static async start(opts: AgentOptions): Promise<NodeAgent> {
    const watcher = new KernelWatcher({ netns: opts.netns });
    const state = await watcher.start();
    const ports = [...new Set([...(state.vxlan?.port ? [state.vxlan.port] : []), ...defaultVxlanPorts()])].slice(0, 4);
    let tracer: Tracer;
    try {
      // Nothing is emitted until the hub sets a filter: a hub with no subscriber costs nothing.
      tracer = Tracer.open({ filter: 'none', ringBytes: SESSION_RING_BYTES, vxlanPorts: ports, shed: opts.shed ?? 'always', ...(opts.snaplen ? { snaplen: opts.snaplen } : {}) });
    } catch (err) {
      watcher.stop();
      throw err;
    }
    try {
      tracer.attachNode(opts.node, opts.netns);
    } catch (err) {
      tracer.close();
      watcher.stop();
      throw err;
    }
    const agent = new NodeAgent(opts, tracer, watcher, state);
    watcher.on('change', (s) => agent.kernelChanged(s));
    watcher.on('error', (err: Error) => agent.reportError(`kernel state: ${err.message}`));
    tracer.start(
      (events) => agent.take(events),
      (err) => agent.reportError(`datapath: ${err.message}`),
    );
    agent.timers.push(setInterval(() => agent.pump(), 10));
    agent.timers.push(setInterval(() => agent.sendStats(), 1000));
    agent.timers.push(setInterval(() => agent.reportFlows(), 1000));
    agent.connect();
    return agent;
  }

  get hooks(): string[] {
    return this.tracer.hooksAttached().map((h) => `${h.device}/${h.direction}`);
  }

  private wallNow(): bigint {
    return BigInt(Date.now()) * 1_000_000n + (this.opts.clockOffsetNs ?? 0n);
  }

  /** The datapath's events: each record copied once, as the kernel wrote it, into the batch filling. */
  private take(events: HopEvent[]): void {
    const max = this.opts.queueBytes ?? 32 << 20;
    const offset = this.opts.clockOffsetNs ?? 0n;
    let batch = this.queue[this.queue.length - 1];
    for (const e of events) {
      if (offset) e.wallTimeNs += offset;
      const size = kernelRecordSize(e);
      if (this.queuedBytes + size > max) {
        this.queueDropped++;
        continue;
      }
      if (!batch || batch.byteLength + size > MAX_BATCH_BYTES || !batch.add(e)) {
        batch = new KernelRecordBatch();
        this.queue.push(batch);
        batch.add(e);
      }
      this.queuedBytes += size;
    }
    if (this.queuedBytes >= MAX_BATCH_BYTES) this.pump();
  }

  /** Send queued batches as HopBatch frames while the socket has room. */
  private pump(): void {
    if (!this.connected || !this.accepted || !this.ws) return;
    while (this.queue.length && this.ws.bufferedAmount < MAX_BUFFERED) {
      const batch = this.queue.shift()!;
      this.queuedBytes -= batch.byteLength;
      this.send({ kind: 'hops', hops: { records: [], kernel: batch.records() } });
      this.sent += batch.count;
    }
  }

  private send(r: AgentReport): true | undefined {
    if (!this.connected || !this.ws) return undefined;
    this.ws.send(encodeAgentReport(r), { binary: true });
    return true;
  }

  private reportFlows(): void {
    if (!this.accepted) return;
    try {
      this.flows.report();
    } catch (err) {
      this.reportError(`reading the flow counters: ${(err as Error).message}`);
    }
  }

  private sendStats(): void {
    const s = this.tracer.stats();
    this.send({ kind: 'stats', stats: { ringLost: s.lostRecords, queueDropped: this.queueDropped, records: s.records, wallTimeNs: this.wallNow() } });
  }

  private kernelChanged(state: NodeKernelState): void {
    this.state = state;
    this.send({ kind: 'kernel-state', state });
    try {
      const added = attachNewDevices(this.tracer, [{ node: this.opts.node, ...(this.opts.netns ? { netns: this.opts.netns } : {}) }]);
      if (added.length) this.opts.log(`attached to ${[...new Set(added.map((h) => h.device))].join(', ')} (new or recreated)`);
    } catch (err) {
      this.reportError(`attaching to new devices: ${(err as Error).message}`);
    }
  }

  private reportError(message: string): void {
    this.opts.log(message);
    this.send({ kind: 'error', message });
  }

  private connect(): void {
    if (this.stopped) return;
    const headers: Record<string, string> = this.opts.token ? { Authorization: `Bearer ${this.opts.token}` } : {};
    const ws = new WebSocket(this.opts.hub.url, SUBPROTOCOL, { headers, handshakeTimeout: 5000, maxPayload: 1 << 20 });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('open', () => {
      this.connected = true;
      this.accepted = false;
      this.send({ kind: 'hello', hello: { node: this.opts.node, version: VERSION, hostname: hostname(), hooks: this.hooks, wallTimeNs: this.wallNow() } });
      this.send({ kind: 'kernel-state', state: this.state });
      this.sendStats();
    });
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) return;
      if (!this.accepted) {
        // The hub's first command (it sets the filter at once) says it took the hello: records go
        // only now, so that none is lost to a hello it refuses (an unknown node).
        this.accepted = true;
        this.backoffMs = 250;
        this.flows.reconnected();
        this.opts.log(`connected to the hub at ${this.opts.hub.shown}`);
        setImmediate(() => this.pump());
      }
      try {
        const c = decodeAgentCommand(data);
        if (c.kind === 'send-probes') return this.probes.take(c.probes);
        this.tracer.setFilter(c.filter);
        this.send({ kind: 'filter-applied', generation: c.generation });
      } catch (err) {
        if (err instanceof WireError) this.opts.log(`a frame from the hub is not an AgentCommand: ${err.message}`);
        else this.reportError(`setting the filter: ${(err as Error).message}`);
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => {
        const why = body.trim() || res.statusMessage || '';
        if (res.statusCode === 401 || res.statusCode === 403 || res.statusCode === 404) {
          this.fatal(new UsageError(`the hub at ${this.opts.hub.shown} refused the agent (${res.statusCode}${why ? `: ${why}` : ''})${res.statusCode === 401 ? ': give --token-file with the hub\'s token' : ''}`));
        } else this.retry(`the hub answered ${res.statusCode} ${why}`);
      });
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // 'close' follows; say why once per attempt
      if (!this.connected && !this.stopped) this.lastError = err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'nothing listens there' : err.message;
    });
    ws.on('close', (code, reason) => {
      const was = this.connected;
      this.connected = false;
      if (this.stopped) return;
      const why = reason.toString() || this.lastError || `closed (${code})`;
      const accepted = this.accepted;
      this.accepted = false;
      this.lastError = undefined;
      if (code === CloseCode.REPLACED) return this.fatal(new UsageError(`the hub closed the connection: ${why}`));
      // Not in the hub's cluster yet (a new node, before the hub's watch brings its Node): retry.
      if (code === CloseCode.UNKNOWN_NODE) return this.retry(why, `the hub at ${this.opts.hub.shown} does not know node ${this.opts.node} yet (${why}): retrying`);
      if (was && accepted) this.opts.log(`lost the hub (${why}): keeping records (at most ${((this.opts.queueBytes ?? 32 << 20) / (1 << 20)).toFixed(0)} MiB) and reconnecting`);
      this.retry(why);
    });
  }

  /** Connect again after the backoff (250 ms doubling to 5 s, with jitter); `line` is logged at most every 10 s. */
  private retry(why: string, line = `cannot reach the hub at ${this.opts.hub.shown} (${why}): retrying`): void {
    if (this.stopped || this.reconnectTimer) return;
    if (Date.now() - this.lastRetryLog > 10_000) {
      this.opts.log(line);
      this.lastRetryLog = Date.now();
    }
    const delay = this.backoffMs * (0.8 + Math.random() * 0.4);
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  private fatal(err: VxtraceError): void {
    if (this.stopped) return;
    this.opts.onFatal(err);
  }

  /** Detach everything, stop watching, say goodbye to the hub. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.reconnectTimer);
    this.watcher.stop();
    this.probes.close();
    // Every hook stops counting at one instant, and the hub gets the last counts of this tracer.
    try {
      this.tracer.setFilter('none');
      this.reportFlows();
    } catch {
      // the tracer failed already: its counters go with it
    }
    await this.tracer.stop();
    this.tracer.close();
    this.ws?.close(1000, 'agent stopping');
  }
}
