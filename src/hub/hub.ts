// The hub's roles, one direction of data: agent endpoint (AgentLink: hop records, kernel state,
// counters) -> the model (cluster objects + every agent's kernel state) and the Pipeline that
// `follow` runs too (clocks per node: agents are separate machines), in shards by packet
// fingerprint, each on a worker thread (src/hub/shards.ts), their findings merged in one set here
// -> subscriber endpoint (ClientLink: each its own filter and bounded queue). The in-kernel filters
// follow the subscriptions. Metrics read the counters kept here; they are not in the data path.
import { ClusterModel } from '../cluster/model.js';
import type { ClusterObjects } from '../cluster/list.js';
import type { NodeKernelState } from '../cluster/kernel.js';
import type { FlowFilter, FlowRule, HopEvent } from '../datapath/index.js';
import type { Finding } from '../diagnose/finding.js';
import { VxtraceError } from '../errors.js';
import { encodeEventField, hopEventOf, PATH_OUTCOMES, WireError, type AgentHello, type HopRecords, type AgentReport, type LostSource, type StreamEvent, type Subscription } from '../wire/codec.js';
import { CloseCode } from '../wire/close.js';
import { VERSION } from '../version.js';
import type { AgentHost, AgentLink } from './agent-link.js';
import type { ClientHost, ClientLink } from './client-link.js';
import { SubscriptionFilter } from './subscription.js';
import { HubFindings } from './findings.js';
import { PipelineShards, type FinishedPath } from './shards.js';
import type { HubLog } from './connection.js';

/** The kernel filter holds at most this many rules (bpf/vxtrace.h VXT_MAX_RULES); past it, everything. */
const MAX_KERNEL_RULES = 16;
/** The websocket close code of a server going away. */
const GOING_AWAY = 1001;

export interface HubOptions {
  objects: ClusterObjects;
  /** Where the cluster objects come from, for clients ("cluster file ..."). */
  clusterFrom: string;
  log: HubLog;
  /** An agent not heard from (no frame, no pong) this long is cut off and its node unwatched. Default 3000. */
  silentMs?: number;
  /** How long a new subscription waits for the agents to apply its filter. Default 2000. */
  filterWaitMs?: number;
  /** Wall clock, ns (default Date.now()). */
  now?: () => bigint;
  /** Pipeline worker threads (one shard each); 0: the pipeline runs in the hub's own thread. Default 0. */
  workers?: number;
}

export interface HubCounters {
  agentsConnected: number;
  clientsConnected: number;
  hopRecords: Map<string, number>;
  paths: Map<string, number>;
  lostRecords: Map<string, number>;
  clientMessagesDropped: number;
  findings: Finding[];
  /** Every node of the cluster: whether its agent is connected. */
  nodes: Map<string, boolean>;
}

const wallNow = () => BigInt(Date.now()) * 1_000_000n;

export class Hub implements AgentHost, ClientHost {
  private objects: ClusterObjects;
  private readonly kernelStates = new Map<string, NodeKernelState>();
  private model: ClusterModel;
  private readonly shards: PipelineShards;
  private readonly findings = new HubFindings();
  /** The connected agent of each node. */
  private readonly agents = new Map<string, AgentLink>();
  /** Nodes that had an agent which is gone (unwatched), with why. */
  private readonly unwatched = new Map<string, string>();
  private readonly clients = new Set<ClientLink>();
  /** Subscribed clients by id (the shards say which clients want a path by id). */
  private readonly clientsById = new Map<number, ClientLink>();
  private filter: FlowFilter = 'none';
  private filterGeneration = 0;
  private readonly waiting: { link: ClientLink; generation: number; timer: NodeJS.Timeout }[] = [];
  /** The pipeline has a backlog: agents are not read until it is worked off. */
  private backlog = false;
  /** Findings handed to clients so far, by key: what they were told last. */
  private readonly published = new Map<string, string>();
  private statePending: NodeJS.Timeout | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly now: () => bigint;
  private readonly counters = {
    hopRecords: new Map<string, number>(),
    paths: new Map<string, number>(),
    lost: new Map<string, number>(),
    clientDropsOfGone: 0,
    wrongNode: 0,
    malformedRecords: 0,
  };

  constructor(private readonly opts: HubOptions) {
    this.now = opts.now ?? wallNow;
    this.objects = opts.objects;
    this.model = ClusterModel.build(this.objects, this.kernelStates);
    this.shards = new PipelineShards({ workers: opts.workers ?? 0, objects: this.objects, onPath: (p) => this.onPath(p), onBacklog: (full) => this.backlogged(full) });
    this.timers.push(setInterval(() => this.poll(), 100));
    this.timers.push(setInterval(() => this.heartbeat(), 1000));
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.statePending);
    for (const w of this.waiting) clearTimeout(w.timer);
    for (const c of this.clients) c.reject(GOING_AWAY, 'the hub is shutting down');
    for (const a of this.agents.values()) a.reject(GOING_AWAY, 'the hub is shutting down');
    this.shards.stop();
  }

  // -------------------------------------------------------------------------------------------
  // Cluster objects and kernel state

  /** New cluster objects (a rewritten file, an API watch). */
  setObjects(objects: ClusterObjects): void {
    this.objects = objects;
    this.rebuildModel('the cluster objects changed');
  }

  private rebuildModel(why: string): void {
    this.model = ClusterModel.build(this.objects, this.kernelStates);
    this.shards.setModel(this.objects, this.kernelStates);
    // State changes come in bursts (a flanneld restart): publish what state shows once it settles.
    clearTimeout(this.statePending);
    this.statePending = setTimeout(() => this.publishStateFindings(why), 200);
  }

  private publishStateFindings(why: string): void {
    this.statePending = undefined;
    const fs = this.findings.checkState(this.model);
    const fresh = fs.filter((f) => this.published.get(f.key) !== signature(f));
    if (fresh.length) this.opts.log(`state (${why}): ${fresh.map((f) => `${f.code}@${f.nodes.join('+')}`).join(', ')}`);
    for (const f of fresh) this.publishFinding(f, (c) => c.filter!.wantsFinding(f));
  }

  private publishFinding(f: Finding, to: (c: ClientLink) => boolean): void {
    this.published.set(f.key, signature(f));
    const bytes = encodeEventField({ kind: 'finding', finding: f });
    for (const c of this.clients) if (c.filter && to(c)) c.push(bytes);
  }

  // -------------------------------------------------------------------------------------------
  // Agents

  hello(link: AgentLink, hello: AgentHello): void {
    const node = hello.node;
    if (!this.model.node(node)) {
      link.reject(CloseCode.WRONG_NODE, `node ${node} is not in the hub's cluster (nodes: ${this.model.nodes.map((n) => n.name).join(', ')}): give the agent --node NAME`);
      return;
    }
    const old = this.agents.get(node);
    this.agents.set(node, link);
    if (this.backlog) link.pause();
    if (old) old.reject(CloseCode.REPLACED, `a new agent connected for ${node}`);
    this.unwatched.delete(node);
    this.shards.setWatched([...this.agents.keys()]);
    this.opts.log(`agent ${node} connected (${hello.hostname}, vxtrace ${hello.version}, ${hello.hooks.length} hooks)`);
    link.setFilter(this.filterGeneration, this.filter);
    this.broadcast({ kind: 'node', status: { node, state: 'connected', reason: `agent connected (${hello.hostname}, ${hello.hooks.length} hooks)`, timeNs: this.now() } }, (c) => c.filter!.wantsNode(node));
  }

  report(link: AgentLink, r: Exclude<AgentReport, { kind: 'hello' }>): void {
    const node = link.node!;
    if (this.agents.get(node) !== link) return; // replaced: its last frames are not its node's any more
    switch (r.kind) {
      case 'hops':
        return this.takeHops(link, r.hops);
      case 'kernel-state':
        this.kernelStates.set(node, r.state);
        return this.rebuildModel(`${node}'s kernel state`);
      case 'stats': {
        const ring = r.stats.ringLost - link.ringLost;
        const queue = r.stats.queueDropped - link.queueDropped;
        link.ringLost = r.stats.ringLost;
        link.queueDropped = r.stats.queueDropped;
        if (ring > 0) this.lost('ring-buffer', node, ring);
        if (queue > 0) this.lost('agent-queue', node, queue);
        return;
      }
      case 'filter-applied':
        link.appliedGeneration = r.generation;
        return this.releaseWaiting();
      case 'error':
        this.opts.log(`agent ${node}: ${r.message}`);
        return this.broadcast({ kind: 'node', status: { node, state: 'error', reason: r.message, timeNs: this.now() } }, (c) => c.filter!.wantsNode(node));
    }
  }

  private takeHops(link: AgentLink, hops: HopRecords): void {
    const node = link.node!;
    const correction = link.clockCorrectionNs;
    const records = hops.records;
    let offered = records.length;
    let taken = 0;
    if (records.length) {
      const events: HopEvent[] = [];
      for (const r of records) {
        let e: HopEvent;
        try {
          e = hopEventOf(r);
        } catch (err) {
          if (!(err instanceof WireError)) throw err;
          this.counters.malformedRecords++;
          continue;
        }
        // An agent speaks for its own node only: nothing is attributed to another.
        if (e.node !== node) {
          this.counters.wrongNode++;
          continue;
        }
        e.wallTimeNs += correction;
        events.push(e);
      }
      this.shards.addEvents(events);
      taken += events.length;
    }
    if (hops.kernel) {
      // The kernel's records (what agents send), each to its packet's shard, with the agent's clock
      // mapped onto the hub's; a record of a hook of another node (or one the batch does not name)
      // is not taken. A batch that does not parse closes the connection (WireError), as any
      // malformed frame does.
      const k = this.shards.addKernelRecords(node, hops.kernel, correction);
      offered += k.offered;
      taken += k.taken;
      this.counters.wrongNode += k.offered - k.taken;
    }
    if (taken < offered) this.opts.log(`agent ${node}: ${offered - taken} of ${offered} hop records dropped (malformed or not of ${node})`);
    link.records += taken;
    this.counters.hopRecords.set(node, (this.counters.hopRecords.get(node) ?? 0) + taken);
  }

  gone(link: AgentLink | ClientLink, why: string = 'closed'): void {
    if (this.clients.has(link as ClientLink)) {
      const c = link as ClientLink;
      this.clients.delete(c);
      if (this.clientsById.delete(c.id)) this.shards.setClients(this.subscriptions());
      this.counters.clientDropsOfGone += c.eventsDropped;
      this.opts.log(`${c.label} gone (${c.eventsSent} events sent, ${c.eventsDropped} dropped)`);
      this.updateFilter();
      return;
    }
    const a = link as AgentLink;
    if (!a.node || this.agents.get(a.node) !== a) return;
    this.agents.delete(a.node);
    this.shards.setWatched([...this.agents.keys()]);
    this.unwatched.set(a.node, why);
    this.opts.log(`agent ${a.node} gone: ${why}: ${a.node} is unwatched`);
    this.releaseWaiting();
    const node = a.node;
    this.broadcast({ kind: 'node', status: { node, state: 'unwatched', reason: `agent gone: ${why}`, timeNs: this.now() } }, (c) => c.filter!.wantsNode(node));
  }

  /**
   * The pipeline shards fell behind (or caught up): read the agents no more (again). Their sockets
   * fill, and they keep in their queues what the hub cannot take yet, counting what they drop
   * (AGENT_QUEUE): the hub's own memory stays bounded.
   */
  private backlogged(full: boolean): void {
    this.backlog = full;
    for (const a of this.agents.values()) {
      if (full) a.pause();
      else a.resume();
    }
  }

  private heartbeat(): void {
    for (const a of [...this.agents.values()]) a.heartbeat(this.opts.silentMs ?? 3000);
  }

  private lost(source: LostSource, node: string, count: number): void {
    const key = `${node}\t${source}`;
    this.counters.lost.set(key, (this.counters.lost.get(key) ?? 0) + count);
    this.shards.recordsLost();
    this.broadcast({ kind: 'lost', lost: { source, node, count, timeNs: this.now() } }, (c) => c.filter!.wantsNode(node));
  }

  // -------------------------------------------------------------------------------------------
  // Clients

  /** A client registered by the server (before its Subscribe). */
  addClient(link: ClientLink): void {
    this.clients.add(link);
  }

  subscribe(link: ClientLink, subscription: Subscription): void {
    let filter: SubscriptionFilter;
    try {
      filter = new SubscriptionFilter(subscription, this.model);
    } catch (err) {
      if (err instanceof VxtraceError) return link.reject(CloseCode.BAD_SUBSCRIPTION, err.message);
      throw err;
    }
    const first = !link.filter;
    link.filter = filter;
    this.clientsById.set(link.id, link);
    this.shards.setClients(this.subscriptions());
    if (subscription.client) link.label = `${subscription.client} ${link.label.replace(/^\S+ /, '')}`;
    this.opts.log(`${link.label} subscribed: ${describe(subscription)}`);
    const generation = this.updateFilter();
    if (!first) return;
    // The subscription is in force once every agent applied a filter that includes it.
    const timer = setTimeout(() => this.welcome(link), this.opts.filterWaitMs ?? 2000);
    this.waiting.push({ link, generation, timer });
    this.releaseWaiting();
  }

  private releaseWaiting(): void {
    for (const w of [...this.waiting]) {
      if ([...this.agents.values()].every((a) => a.appliedGeneration >= w.generation)) this.welcome(w.link);
    }
  }

  /** The first events of a subscription: in force, the nodes, the findings known now. */
  private welcome(link: ClientLink): void {
    const i = this.waiting.findIndex((w) => w.link === link);
    if (i < 0) return;
    clearTimeout(this.waiting[i]!.timer);
    this.waiting.splice(i, 1);
    if (link.closed) return;
    const now = this.now();
    link.push(encodeEventField({ kind: 'subscribed', subscribed: { hubVersion: VERSION, nodes: [...this.agents.keys()].sort(), clusterFrom: this.opts.clusterFrom, timeNs: now } }));
    for (const node of [...this.agents.keys()].sort()) {
      if (link.filter!.wantsNode(node)) link.push(encodeEventField({ kind: 'node', status: { node, state: 'connected', reason: 'agent connected', timeNs: now } }));
    }
    for (const [node, why] of this.unwatched) {
      if (link.filter!.wantsNode(node)) link.push(encodeEventField({ kind: 'node', status: { node, state: 'unwatched', reason: `agent gone: ${why}`, timeNs: now } }));
    }
    for (const f of this.findings.list()) if (link.filter!.wantsFinding(f)) link.push(encodeEventField({ kind: 'finding', finding: f }));
    link.flush();
  }

  /** The union of every subscription's needs, sent to every agent when it changes. Returns the generation in force. */
  private updateFilter(): number {
    const subs = [...this.clients].flatMap((c) => (c.filter ? [c.filter] : []));
    let next: FlowFilter;
    if (!subs.length) next = 'none';
    else {
      const rules: FlowRule[] = [];
      let everything = false;
      for (const s of subs) {
        const r = s.kernelRules();
        if (r === 'everything') everything = true;
        else rules.push(...r);
      }
      const unique = [...new Map(rules.map((r) => [JSON.stringify(r), r])).values()];
      next = everything || unique.length > MAX_KERNEL_RULES ? 'everything' : { rules: unique };
    }
    if (JSON.stringify(next) === JSON.stringify(this.filter)) return this.filterGeneration;
    this.filter = next;
    this.filterGeneration++;
    this.opts.log(`in-kernel filter: ${typeof next === 'string' ? next : next.rules.map((r) => `${r.between?.join('⇄') ?? 'any'}${r.protocol ? ` ${r.protocol}` : ''}${r.port ? ` port ${r.port}` : ''}`).join(', ')}`);
    for (const a of this.agents.values()) a.setFilter(this.filterGeneration, next);
    return this.filterGeneration;
  }

  private broadcast(e: StreamEvent, to: (c: ClientLink) => boolean): void {
    let bytes: Uint8Array | undefined;
    for (const c of this.clients) {
      if (!c.filter || this.waiting.some((w) => w.link === c) || !to(c)) continue;
      bytes ??= encodeEventField(e);
      c.push(bytes);
    }
  }

  /** The subscribed clients, as the shards match paths against them. */
  private subscriptions(): { id: number; subscription: Subscription }[] {
    return [...this.clientsById.values()].map((c) => ({ id: c.id, subscription: c.filter!.subscription }));
  }

  /** A finished path: counted, its findings merged, sent to the clients that want it (with the findings it made news). */
  private onPath(p: FinishedPath): void {
    const outcome = PATH_OUTCOMES[p.outcome]!;
    this.counters.paths.set(outcome, (this.counters.paths.get(outcome) ?? 0) + 1);
    const fresh = p.findings ? this.findings.observe(p.findings) : NONE;
    for (const f of fresh) this.published.set(f.key, signature(f));
    let findingBytes: Uint8Array[] | undefined;
    for (const id of p.wants) {
      const c = this.clientsById.get(id);
      if (!c?.filter) continue;
      c.push(p.bytes);
      for (let j = 0; j < fresh.length; j++) {
        if (!c.filter.wantsFinding(fresh[j]!, true)) continue;
        c.push(((findingBytes ??= [])[j] ??= encodeEventField({ kind: 'finding', finding: fresh[j]! })));
      }
    }
  }

  private poll(): void {
    this.shards.poll(this.now());
    for (const c of this.clients) c.tick();
  }

  // -------------------------------------------------------------------------------------------
  // Counters (for /metrics and /healthz)

  snapshot(): HubCounters {
    let dropped = this.counters.clientDropsOfGone;
    for (const c of this.clients) dropped += c.eventsDropped;
    return {
      agentsConnected: this.agents.size,
      clientsConnected: [...this.clients].filter((c) => c.filter).length,
      hopRecords: this.counters.hopRecords,
      paths: this.counters.paths,
      lostRecords: this.counters.lost,
      clientMessagesDropped: dropped,
      findings: this.findings.list(),
      nodes: new Map(this.model.nodes.map((n) => [n.name, this.agents.has(n.name)])),
    };
  }

  get watchedNodes(): string[] {
    return [...this.agents.keys()].sort();
  }
}

/** What a client was told of a finding: a new severity, the first packets, or a new cause or fix (more state known) make it news again. */
const NONE: Finding[] = [];

const signature = (f: Finding): string => `${f.severity}/${f.packetCount > 0}/${f.cause}/${f.fix}`;

function describe(s: Subscription): string {
  const parts = [
    s.from && s.to ? `${s.from} ${s.bothWays ? '⇄' : '→'} ${s.to}` : s.from ? `from ${s.from}` : s.to ? `to ${s.to}` : '',
    s.pod ? `pod ${s.pod}` : '',
    s.node ? `node ${s.node}` : '',
    s.codes?.length ? `codes ${s.codes.join(',')}` : '',
    s.outcomes?.length ? `outcomes ${s.outcomes.join(',')}` : '',
    s.protocol ?? '',
    s.port ? `port ${s.port}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'everything';
}
