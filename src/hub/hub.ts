// The hub's roles, one direction of data: agent endpoint (AgentLink: hop records, kernel state,
// counters) -> the model (cluster objects + every agent's kernel state) and the Pipeline that
// `follow` runs too (clocks per node: agents are separate machines), in shards by packet
// fingerprint, each on a worker thread (src/hub/shards.ts), their findings merged in one set here
// -> subscriber endpoint (ClientLink: each its own filter and bounded queue). The in-kernel filters
// follow the subscriptions. Metrics read the counters kept here; they are not in the data path.
import { ClusterModel } from '../cluster/model.js';
import type { ClusterObjects } from '../cluster/list.js';
import type { NodeKernelState } from '../cluster/kernel.js';
import type { PacketPath } from '../correlate/path.js';
import type { FlowFilter, FlowRule, HopEvent } from '../datapath/index.js';
import type { Finding } from '../diagnose/finding.js';
import { diagnoseModel, signatureOf, type Diagnosis } from '../diagnose/diagnosis.js';
import { VxtraceError } from '../errors.js';
import { encodeEventField, hopEventOf, hopEventsOfKernel, PATH_OUTCOMES, WireError, type AgentHello, type HopRecords, type AgentReport, type CheckRequest, type LostSource, type StreamEvent, type Subscription } from '../wire/codec.js';
import { CloseCode } from '../wire/close.js';
import { VERSION } from '../version.js';
import type { AgentHost, AgentLink } from './agent-link.js';
import type { ClientHost, ClientLink } from './client-link.js';
import { SubscriptionFilter } from './subscription.js';
import { HubCheck } from './check.js';
import { checkRecord } from '../output/ndjson.js';
import { HubFindings } from './findings.js';
import { PipelineShards, type FinishedPath } from './shards.js';
import { SETTLE_NS } from './shard.js';
import type { HubLog } from './connection.js';
import { HubFlows } from './flows.js';
import type { FlowSummary } from '../correlate/flows.js';
import type { FlowCount } from '../datapath/flow.js';

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
  /** Every finding of the hub, from state and from every shard's paths, in one set (src/hub/findings.ts). */
  private readonly findingSet = new HubFindings();
  /** The connected agent of each node. */
  private readonly agents = new Map<string, AgentLink>();
  /** Nodes that had an agent which is gone (unwatched), with why. */
  private readonly unwatched = new Map<string, string>();
  private readonly clients = new Set<ClientLink>();
  /** Checks running (`vxtrace check --hub`), one per client that asked. */
  private readonly checks = new Map<ClientLink, HubCheck>();
  private probeIds = 0;
  /** Clients subscribed to paths, by id (the shards say which clients want a path by id). */
  private readonly clientsById = new Map<number, ClientLink>();
  private filter: FlowFilter = 'none';
  private filterGeneration = 0;
  private readonly waiting: { link: ClientLink; generation: number; timer: NodeJS.Timeout }[] = [];
  /** The pipeline has a backlog: agents are not read until it is worked off. */
  private backlog = false;
  /** Findings handed to clients so far, by key: what they were told last. */
  private readonly published = new Map<string, string>();
  /** State-only clients: the diagnosis each was sent last (its signature). */
  private readonly diagnosed = new Map<ClientLink, string>();
  private statePending: NodeJS.Timeout | undefined;
  /** What changed since state findings and diagnoses were last published. */
  private readonly stateChanges = new Set<string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly now: () => bigint;
  /** The agents' per-hop flow counters, merged, streamed and judged (src/hub/flows.ts). */
  private readonly flows = new HubFlows<ClientLink>({ model: () => this.model });
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
    this.timers.push(setInterval(() => this.flowTick(), 1000));
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
    for (const c of this.checks.values()) c.setModel(this.model);
    this.stateChanged(why);
  }

  /** State changes come in bursts (a flanneld restart): publish what state shows once it settles. */
  private stateChanged(why: string): void {
    this.stateChanges.add(why);
    clearTimeout(this.statePending);
    this.statePending = setTimeout(() => this.publishStateFindings(), 200);
  }

  private publishStateFindings(): void {
    this.statePending = undefined;
    const why = [...this.stateChanges].join('; ');
    this.stateChanges.clear();
    const fs = this.findingSet.checkState(this.model);
    const fresh = fs.filter((f) => this.published.get(f.key) !== signature(f));
    if (fresh.length) this.opts.log(`state (${why}): ${fresh.map((f) => `${f.code}@${f.nodes.join('+')}`).join(', ')}`);
    for (const f of fresh) this.publishFinding(f, (c) => c.filter!.wantsFinding(f));
    this.publishDiagnoses(why);
  }

  /**
   * The diagnosis from state alone that `vxtrace diagnose` would make of the cluster: the cluster
   * objects and the kernel state of the nodes whose agents are connected now (a gone agent's last
   * report may no longer be true).
   */
  private diagnosis(): Diagnosis {
    const states = new Map([...this.kernelStates].filter(([node]) => this.agents.has(node)));
    const model = ClusterModel.build(this.objects, states);
    return diagnoseModel(model, this.opts.clusterFrom, (node) => (this.agents.has(node) ? 'its agent has not reported it yet' : this.unwatched.has(node) ? 'its agent is gone' : 'no agent connected'));
  }

  /**
   * Send each state-only client (or only `to`) the diagnosis when it differs from the last one it
   * got: its findings, then a Diagnosis (a client's first one says no `why`).
   */
  private publishDiagnoses(why: string, to?: ClientLink): void {
    const targets = [...this.diagnosed].filter(([c]) => (!to || c === to) && !c.closed);
    if (!targets.length) return;
    const d = this.diagnosis();
    const sig = signatureOf(d);
    let findings: Uint8Array[] | undefined;
    const ends = new Map<string, Uint8Array>();
    for (const [c, last] of targets) {
      if (last === sig) continue;
      this.diagnosed.set(c, sig);
      const said = last === '' ? '' : why;
      findings ??= d.findings.map((f) => encodeEventField({ kind: 'finding', finding: f }));
      if (!ends.has(said)) ends.set(said, encodeEventField({ kind: 'diagnosis', diagnosis: { clusterFrom: d.clusterFrom, pods: d.pods, nodes: d.nodes, findingKeys: d.findings.map((f) => f.key), why: said, timeNs: this.now() } }));
      for (const b of findings) c.push(b);
      c.push(ends.get(said)!);
      c.flush();
    }
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
      // A new node's agent may start before the hub's watch brings its Node object: it retries.
      link.reject(CloseCode.UNKNOWN_NODE, `node ${node} is not in the hub's cluster yet: retry (or give the agent --node NAME); nodes: ${this.model.nodes.map((n) => n.name).join(', ')}`);
      return;
    }
    const old = this.agents.get(node);
    this.agents.set(node, link);
    if (this.backlog) link.pause();
    if (old) old.reject(CloseCode.REPLACED, `a new agent connected for ${node}`);
    this.unwatched.delete(node);
    this.shards.setWatched([...this.agents.keys()]);
    this.flows.filterChanged(this.now());
    this.opts.log(`agent ${node} connected (${hello.hostname}, vxtrace ${hello.version}, ${hello.hooks.length} hooks)`);
    link.setFilter(this.filterGeneration, this.filter);
    this.broadcast({ kind: 'node', status: { node, state: 'connected', reason: `agent connected (${hello.hostname}, ${hello.hooks.length} hooks)`, timeNs: this.now() } }, (c) => c.filter!.wantsNode(node));
    this.stateChanged(`agent ${node} connected`);
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
      case 'probe-results':
        for (const result of r.results) for (const c of this.checks.values()) if (c.result(node, result)) break;
        return;
      case 'flow-counters':
        return this.flows.report(node, r.counters, link.clockCorrectionNs, this.now());
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
      for (const c of this.checks.values()) c.add(events);
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
      // A check follows its probes in a pipeline of its own, in this thread: only while one runs are
      // the kernel's records decoded here too (the batch parsed above, so this does not throw).
      if (this.checks.size) {
        const events = hopEventsOfKernel(hops.kernel, correction).filter((e) => e.node === node);
        for (const c of this.checks.values()) c.add(events);
      }
    }
    if (taken < offered) this.opts.log(`agent ${node}: ${offered - taken} of ${offered} hop records dropped (malformed or not of ${node})`);
    link.records += taken;
    this.counters.hopRecords.set(node, (this.counters.hopRecords.get(node) ?? 0) + taken);
  }

  gone(link: AgentLink | ClientLink, why: string = 'closed'): void {
    if (this.clients.has(link as ClientLink)) {
      const c = link as ClientLink;
      this.clients.delete(c);
      this.checks.get(c)?.abort();
      this.checks.delete(c);
      this.diagnosed.delete(c);
      if (this.clientsById.delete(c.id)) this.shards.setClients(this.subscriptions());
      this.flows.unsubscribe(c);
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
    for (const c of this.checks.values()) c.nodeGone(a.node);
    this.opts.log(`agent ${a.node} gone: ${why}: ${a.node} is unwatched`);
    this.releaseWaiting();
    const node = a.node;
    this.broadcast({ kind: 'node', status: { node, state: 'unwatched', reason: `agent gone: ${why}`, timeNs: this.now() } }, (c) => c.filter!.wantsNode(node));
    this.stateChanged(`agent ${node} gone`);
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
    this.broadcast({ kind: 'lost', lost: { source, node, count, timeNs: this.now() } }, (c) => c.filter!.wantsLost(node));
  }

  // -------------------------------------------------------------------------------------------
  // Clients

  /** A client registered by the server (before its Subscribe). */
  addClient(link: ClientLink): void {
    this.clients.add(link);
  }

  subscribe(link: ClientLink, subscription: Subscription): void {
    if (subscription.check) return void this.runCheck(link, subscription.check);
    if (this.checks.has(link)) return link.reject(CloseCode.BAD_SUBSCRIPTION, 'a check runs once on its connection: open another to subscribe');
    let filter: SubscriptionFilter;
    try {
      filter = new SubscriptionFilter(subscription, this.model);
    } catch (err) {
      if (err instanceof VxtraceError) return link.reject(CloseCode.BAD_SUBSCRIPTION, err.message);
      throw err;
    }
    const first = !link.filter;
    link.filter = filter;
    // The shards match paths for the clients that want paths (a state-only one wants none).
    if (filter.stateOnly) this.clientsById.delete(link.id);
    else this.clientsById.set(link.id, link);
    this.shards.setClients(this.subscriptions());
    if (subscription.client) link.label = `${subscription.client} ${link.label.replace(/^\S+ /, '')}`;
    this.opts.log(`${link.label} subscribed: ${describe(subscription)}`);
    const generation = this.updateFilter();
    if (filter.stateOnly) return this.welcomeStateOnly(link, first);
    this.diagnosed.delete(link);
    if (!first) return;
    // The subscription is in force once every agent applied a filter that includes it.
    const timer = setTimeout(() => this.welcome(link), this.opts.filterWaitMs ?? 2000);
    this.waiting.push({ link, generation, timer });
    this.releaseWaiting();
  }

  /**
   * `vxtrace check --hub`: plan on the model as it is, let the probes through every agent's filter,
   * have the agents send them, and answer with a Pair per cell, the findings and CheckDone.
   */
  private async runCheck(link: ClientLink, request: CheckRequest): Promise<void> {
    if (this.checks.has(link) || link.filter) return link.reject(CloseCode.BAD_SUBSCRIPTION, 'a check runs once on its own connection');
    link.label = `check ${link.label.replace(/^\S+ /, '')}`;
    const check = new HubCheck({
      request,
      model: this.model,
      agents: new Set(this.agents.keys()),
      nextId: () => ++this.probeIds,
      sendProbes: (node, probes) => {
        const agent = this.agents.get(node);
        agent?.sendProbes(probes);
        return agent !== undefined;
      },
      traced: (node) => this.agents.has(node),
      settleNs: SETTLE_NS,
    });
    this.checks.set(link, check);
    const senders = check.plan.nodes.filter((n) => n.source).map((n) => n.name);
    this.opts.log(`${link.label}: checking ${check.plan.pairs.length} pairs of ${check.plan.nodes.length} nodes, probes sent by ${senders.join(', ') || 'no agent'}`);
    try {
      const generation = this.updateFilter();
      // The probes are followed once every agent's filter lets them through.
      const until = Date.now() + (this.opts.filterWaitMs ?? 2000);
      while (Date.now() < until && ![...this.agents.values()].every((a) => a.appliedGeneration >= generation)) await new Promise((r) => setTimeout(r, 20));
      if (link.closed) return;
      link.push(encodeEventField({ kind: 'subscribed', subscribed: { hubVersion: VERSION, nodes: senders, clusterFrom: this.opts.clusterFrom, timeNs: this.now() } }));
      link.flush();
      const verdict = await check.execute();
      if (link.closed) return;
      for (const cell of verdict.cells) link.push(encodeEventField({ kind: 'pair', cell }));
      for (const finding of verdict.findings) link.push(encodeEventField({ kind: 'finding', finding }));
      const done = checkRecord(verdict, check.plan.nodes.map((n) => n.name), Date.now() - check.startedAt);
      link.push(encodeEventField({ kind: 'check-done', done: { nodes: done.nodes, pairs: done.pairs, working: done.working, broken: done.broken, notProbed: done.notProbed, probes: done.probes, durationMs: done.durationMs } }));
      link.flush();
      this.opts.log(`${link.label}: ${done.working} of ${done.pairs} pairs work (${done.probes} probes in ${(done.durationMs / 1000).toFixed(1)} s)`);
      link.reject(1000, 'check done');
    } catch (err) {
      link.reject(1011, `the check failed: ${(err as Error).message}`);
    } finally {
      this.checks.delete(link);
      this.updateFilter();
    }
  }

  private releaseWaiting(): void {
    if ([...this.agents.values()].every((a) => a.appliedGeneration >= this.filterGeneration)) this.flows.filterSettled(this.now());
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
    for (const f of this.findings()) if (link.filter!.wantsFinding(f)) link.push(encodeEventField({ kind: 'finding', finding: f }));
    this.flows.subscribe(link);
    link.flush();
  }

  /**
   * A state-only subscription needs no filter: it is in force at once. Its first diagnosis follows
   * the node statuses of every node of the cluster, once the state settled (if it is settling).
   */
  private welcomeStateOnly(link: ClientLink, first: boolean): void {
    this.diagnosed.set(link, '');
    if (first) {
      const now = this.now();
      link.push(encodeEventField({ kind: 'subscribed', subscribed: { hubVersion: VERSION, nodes: [...this.agents.keys()].sort(), clusterFrom: this.opts.clusterFrom, timeNs: now } }));
      for (const n of this.model.nodes) {
        const why = this.unwatched.get(n.name);
        const status = this.agents.has(n.name) ? { state: 'connected' as const, reason: 'agent connected' } : { state: 'unwatched' as const, reason: why !== undefined ? `agent gone: ${why}` : 'no agent has connected' };
        link.push(encodeEventField({ kind: 'node', status: { node: n.name, ...status, timeNs: now } }));
      }
      link.flush();
    }
    if (!this.statePending) this.publishDiagnoses('', link);
  }

  /** The union of every subscription's needs, sent to every agent when it changes. Returns the generation in force. */
  private updateFilter(): number {
    // State-only subscriptions need nothing traced.
    const subs = [...this.clients].flatMap((c) => (c.filter && !c.filter.stateOnly ? [c.filter] : []));
    const checkRules = [...this.checks.values()].flatMap((c) => c.kernelRules());
    let next: FlowFilter;
    if (!subs.length && !checkRules.length) next = 'none';
    else {
      const rules: FlowRule[] = [...checkRules];
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
    this.flows.filterChanged(this.now());
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

  /** The clients subscribed to paths, as the shards match paths against them. */
  private subscriptions(): { id: number; subscription: Subscription }[] {
    return [...this.clientsById.values()].map((c) => ({ id: c.id, subscription: c.filter!.subscription }));
  }

  /** A finished path: counted, its findings merged, sent to the clients that want it (with the findings it made news). */
  private onPath(p: FinishedPath): void {
    const outcome = PATH_OUTCOMES[p.outcome]!;
    this.counters.paths.set(outcome, (this.counters.paths.get(outcome) ?? 0) + 1);
    const fresh = p.findings ? this.findingSet.observe(p.findings) : NONE;
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
    for (const c of this.checks.values()) c.poll(this.now());
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
      findings: this.findings(),
      nodes: new Map(this.model.nodes.map((n) => [n.name, this.agents.has(n.name)])),
    };
  }

  get watchedNodes(): string[] {
    return [...this.agents.keys()].sort();
  }

  // -------------------------------------------------------------------------------------------
  // What the page asks besides the stream (src/hub/page-routes.ts): the node map, and a pcapng of
  // the paths it shows, written from the last paths joined here.

  /** The last paths joined with one of these fingerprints, oldest first: each shard keeps its share (src/hub/shard.ts). */
  recentPaths(fingerprints: readonly string[]): Promise<PacketPath[]> {
    return this.shards.recentPaths(fingerprints);
  }

  get clusterModel(): ClusterModel {
    return this.model;
  }

  get clusterFrom(): string {
    return this.opts.clusterFrom;
  }

  findings(): Finding[] {
    return [...this.findingSet.list(), ...this.flows.findings()];
  }

  /** The flow counters of these paths' flows that are one snapshot (src/hub/flows.ts counts). */
  flowCounts(paths: readonly PacketPath[]): { counts: FlowCount[]; leftOut: number; readNs: bigint } {
    // The kernel keys an ICMP echo's flow by its id (bpf/vxtrace.bpf.c): as srcPort.
    const srcPort = (p: PacketPath) => (p.inner.icmp && (p.inner.icmp.id || p.inner.icmp.seq) ? p.inner.icmp.id : p.inner.srcPort);
    const keys = new Set(paths.map((p) => `${p.inner.family}|${p.inner.src}|${p.inner.dst}|${p.inner.protocol}|${srcPort(p)}|${p.inner.dstPort}`));
    return this.flows.counts((f) => keys.has(`${f.family}|${f.src}|${f.dst}|${f.protocol}|${f.srcPort}|${f.dstPort}`), this.now());
  }

  /** Once a second: each subscriber's changed flows, and PACKET_LOSS from flows that went quiet. */
  private flowTick(): void {
    const subscribers: [ClientLink, (s: FlowSummary) => boolean][] = [];
    for (const c of this.clients) if (c.filter && !c.filter.stateOnly && !this.waiting.some((w) => w.link === c)) subscribers.push([c, (s) => c.filter!.wantsFlow(s)]);
    const { events, findings } = this.flows.tick(this.now(), subscribers);
    for (const [c, flows] of events) c.push(encodeEventField({ kind: 'flows', flows }));
    for (const f of findings) {
      if (this.published.get(f.key) === signature(f)) continue;
      this.opts.log(`flow counters: ${f.code}@${f.nodes.join('+')}: ${f.evidence.observed}`);
      this.publishFinding(f, (c) => c.filter!.wantsFinding(f));
    }
  }
}

const NONE: Finding[] = [];

/** What a client was told of a finding: a new severity, the first packets, or a new cause or fix (more state known) make it news again. */
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
    s.stateOnly ? 'findings from state only' : '',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'everything';
}
