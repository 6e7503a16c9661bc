// The hub's per-hop flow counters: the latest counters of every (node, flow, hook) its agents read
// from their kernels (absolute since each agent's tracer started: a resend changes nothing, a new
// tracer starts from zero and is added to what the old one counted), merged across nodes into one
// FlowSummary per flow (summarizeFlows, the model's resolver), streamed to each subscriber whose
// filter matches the flow (what changed, counted since it subscribed, at most once a tick), and
// judged for packets vanishing between two hops (flowLossFindings) once the flow is quiet at
// every hop: agents read their counters up to a second apart, so a live flow's counts at node1
// eth1 and node2 eth1 are never compared. Bounded: at most MAX_FLOW_ENTRIES entries, idle flows
// expire. Pure but for the clock the caller hands in.
import type { ClusterModel } from '../cluster/model.js';
import { resolverFromModel } from '../correlate/correlator.js';
import { summarizeFlows, type FlowSummary } from '../correlate/flows.js';
import type { FlowCount, FlowTuple } from '../datapath/flow.js';
import { flowLossFindings } from '../diagnose/flow-loss.js';
import type { Finding } from '../diagnose/finding.js';
import { flowKeyOf, type FlowCounterReport, type FlowRead, type FlowsEvent } from '../wire/flows.js';

/** Entries (node x flow x hook) the hub keeps at most; past it, the flows idle longest go first. */
export const MAX_FLOW_ENTRIES = 65_536;
/** A flow none of whose counters changed for this long is let go (hub clock). */
export const FLOW_IDLE_NS = 600_000_000_000n;
/**
 * A flow is judged once every node it passes read its counters at least this long after the
 * read that last changed any of them (hub clock, as the reports arrived): the reads then follow
 * the flow's last packet by more than the time a packet takes between two hops plus the delay of
 * a report on its way to the hub.
 */
export const QUIET_MARGIN_NS = 250_000_000n;
/** PACKET_LOSS findings kept (and re-published as they change) at most. */
const MAX_FINDINGS = 1000;
/** Times when some hook may not have counted (a filter change on its way, an agent restarted), kept at most. */
const MAX_BLIND = 64;
/** How far a packet's time (an agent's clock mapped onto the hub's) may be off the hub's own. */
const CLOCK_TOLERANCE_NS = 20_000_000n;

interface Counts {
  packets: number;
  bytes: number;
  records: number;
  sampled: number;
  lost: number;
  firstNs: bigint;
  lastNs: bigint;
}

const ZERO: Counts = { packets: 0, bytes: 0, records: 0, sampled: 0, lost: 0, firstNs: 0n, lastNs: 0n };

interface Entry {
  node: string;
  /** What earlier tracers of the node (or the kernel's entry before it was evicted) counted. */
  base: Counts;
  /** The current tracer's counters, as last read. */
  current: FlowCount;
  /** base + current: what the hub shows. */
  shown: FlowCount;
  /** Hub time of the report that last changed it. */
  changedAt: bigint;
}

interface FlowState {
  flow: FlowTuple;
  key: string;
  entries: Map<string, Entry>;
  changedAt: bigint;
  /** The changedAt the flow was last judged at (quiet). */
  judgedAt?: bigint;
  /** The counts at the flow's last quiet moment, and the time of its last packet then (0: none yet). */
  quietBase: Map<string, Counts>;
  quietEnd: bigint;
  /** Since its last quiet moment, the earliest of its nodes' latest reads that still saw no new packet. */
  quietRead: bigint;
  /**
   * What the flow's clean windows counted: the packets between two quiet moments while every hook
   * counted (no filter change on its way, no agent restarted). PACKET_LOSS is judged on these.
   */
  clean: Map<string, FlowCount>;
  /** A window was left out: its counts at some hop miss packets (a trace must not store them as one snapshot). */
  everMarred: boolean;
}

interface NodeState {
  tracerId: bigint;
  /** Hub time of its last whole read. */
  lastReportAt: bigint;
  /** Its last read's time, the agent's clock mapped onto the hub's. */
  readTimeNs: bigint;
}

/** A subscriber's counts at the moment it subscribed, per flow and entry: subtracted from what it is sent. */
type Baseline = Map<string, Map<string, Counts>>;

const entryKey = (node: string, c: FlowCount) => `${node}\0${c.device}\0${c.direction}\0${c.kind}\0${c.dropReason ?? ''}`;

function countsOf(c: FlowCount): Counts {
  return { packets: c.packets, bytes: c.bytes, records: c.records, sampled: c.sampled, lost: c.lost, firstNs: c.firstNs, lastNs: c.lastNs };
}

const minNs = (a: bigint, b: bigint) => (!a ? b : !b ? a : a < b ? a : b);
const maxNs = (a: bigint, b: bigint) => (a > b ? a : b);

function plus(c: FlowCount, b: Counts): FlowCount {
  return { ...c, packets: c.packets + b.packets, bytes: c.bytes + b.bytes, records: c.records + b.records, sampled: c.sampled + b.sampled, lost: c.lost + b.lost, firstNs: minNs(b.firstNs, c.firstNs), lastNs: maxNs(b.lastNs, c.lastNs) };
}

function minus(c: FlowCount, b: Counts): FlowCount {
  const d = (x: number, y: number) => Math.max(0, x - y);
  return { ...c, packets: d(c.packets, b.packets), bytes: d(c.bytes, b.bytes), records: d(c.records, b.records), sampled: d(c.sampled, b.sampled), lost: d(c.lost, b.lost) };
}

/** No new packet (the times are left out: the same kernel value mapped with a newer clock offset moves a little). */
const same = (a: FlowCount, b: FlowCount) => a.packets === b.packets && a.bytes === b.bytes && a.records === b.records && a.sampled === b.sampled && a.lost === b.lost;
/** A counter that went down within one tracer: the kernel let the entry go (LRU) and began it again. */
const wentDown = (now: FlowCount, before: FlowCount) => now.packets < before.packets || now.bytes < before.bytes || now.records < before.records || now.sampled < before.sampled || now.lost < before.lost;

export interface HubFlowsOptions {
  /** The model flows are resolved (pods, their nodes) and judged against. */
  model(): ClusterModel | undefined;
  maxEntries?: number;
}

export class HubFlows<C extends object> {
  private readonly flows = new Map<string, FlowState>();
  private readonly nodes = new Map<string, NodeState>();
  private readonly baselines = new Map<C, Baseline>();
  private readonly dirty = new Set<string>();
  private readonly found = new Map<string, Finding>();
  private entries = 0;
  private readsChanged = false;
  /** Intervals (hub clock) in which some hook may not have counted. */
  private readonly blind: { from: bigint; to: bigint }[] = [];
  /** A filter change sent to the agents and not applied by all of them yet: since when. */
  private filterPending: bigint | undefined;

  constructor(private readonly opts: HubFlowsOptions) {}

  get entryCount(): number {
    return this.entries;
  }

  /** One read (or part of one) from the agent of `node`; its times are mapped with `correctionNs`. */
  report(node: string, r: FlowCounterReport, correctionNs: bigint, nowNs: bigint): void {
    let n = this.nodes.get(node);
    if (!n) this.nodes.set(node, (n = { tracerId: r.tracerId, lastReportAt: 0n, readTimeNs: 0n }));
    if (n.tracerId !== r.tracerId) {
      // A new tracer (the agent restarted) counts from zero: what the old one counted stays.
      for (const f of this.flows.values()) {
        for (const e of f.entries.values()) {
          if (e.node !== node) continue;
          e.base = countsOf(e.shown);
          e.current = { ...e.current, packets: 0, bytes: 0, records: 0, sampled: 0, lost: 0, firstNs: 0n, lastNs: 0n };
        }
      }
      // The old tracer's packets after its last read and the new one's before its filter are counted nowhere.
      if (n.lastReportAt) this.addBlind(n.readTimeNs, r.readTimeNs + correctionNs);
      n.tracerId = r.tracerId;
    }
    for (const raw of r.counts) {
      const c: FlowCount = { ...raw, node, firstNs: raw.firstNs ? raw.firstNs + correctionNs : 0n, lastNs: raw.lastNs ? raw.lastNs + correctionNs : 0n };
      const fk = flowKeyOf(c.flow);
      let f = this.flows.get(fk);
      if (!f) this.flows.set(fk, (f = { flow: c.flow, key: fk, entries: new Map(), changedAt: nowNs, quietBase: new Map(), quietEnd: 0n, quietRead: 0n, clean: new Map(), everMarred: false }));
      const ek = entryKey(node, c);
      const e = f.entries.get(ek);
      if (!e) {
        f.entries.set(ek, { node, base: ZERO, current: c, shown: c, changedAt: nowNs });
        this.entries++;
      } else {
        if (wentDown(c, e.current)) e.base = countsOf(e.shown);
        const shown = plus(c, e.base);
        e.current = c;
        if (same(shown, e.shown)) continue;
        e.shown = shown;
        e.changedAt = nowNs;
      }
      f.changedAt = nowNs;
      this.dirty.add(fk);
    }
    if (!r.more) {
      n.lastReportAt = nowNs;
      n.readTimeNs = r.readTimeNs + correctionNs;
      this.readsChanged = true;
    }
    if (this.entries > (this.opts.maxEntries ?? MAX_FLOW_ENTRIES)) this.evict();
  }

  /**
   * The hub sent its agents a new in-kernel filter: until every one applied it, some hooks count
   * a flow and others not yet (or no more). A window of a flow with packets then is not judged.
   */
  filterChanged(nowNs: bigint): void {
    this.filterPending ??= nowNs;
  }

  /** Every agent applied the filter in force. */
  filterSettled(nowNs: bigint): void {
    if (this.filterPending === undefined) return;
    this.addBlind(this.filterPending, nowNs);
    this.filterPending = undefined;
  }

  private addBlind(from: bigint, to: bigint): void {
    this.blind.push({ from, to: to > from ? to : from });
    if (this.blind.length > MAX_BLIND) this.blind.shift();
  }

  /** Some hook may not have counted between `start` and `end` (packet times, hub clock). */
  private marred(start: bigint, end: bigint, nowNs: bigint): boolean {
    const overlaps = (from: bigint, to: bigint) => from <= end + CLOCK_TOLERANCE_NS && to >= start - CLOCK_TOLERANCE_NS;
    if (this.filterPending !== undefined && overlaps(this.filterPending, nowNs)) return true;
    return this.blind.some((b) => overlaps(b.from, b.to));
  }

  /** A new subscriber: it is sent what is counted from now on. */
  subscribe(c: C): void {
    const b: Baseline = new Map();
    for (const f of this.flows.values()) b.set(f.key, new Map([...f.entries].map(([k, e]) => [k, countsOf(e.shown)])));
    this.baselines.set(c, b);
  }

  unsubscribe(c: C): void {
    this.baselines.delete(c);
  }

  /**
   * Once a tick: the Flows event for each subscriber (its flows that changed, and every node's
   * last read; nothing when neither changed), and the PACKET_LOSS findings that are new or changed.
   */
  tick(nowNs: bigint, subscribers: Iterable<[C, (s: FlowSummary) => boolean]>): { events: Map<C, FlowsEvent>; findings: Finding[] } {
    this.expire(nowNs);
    const model = this.opts.model();
    const resolver = model ? resolverFromModel(model) : undefined;
    const changed = [...this.dirty].flatMap((k) => (this.flows.has(k) ? [this.flows.get(k)!] : []));
    this.dirty.clear();
    const events = new Map<C, FlowsEvent>();
    if (changed.length || this.readsChanged) {
      const reads = this.reads();
      const whole = new Map<string, FlowSummary>();
      const summaryOf = (f: FlowState, b?: Map<string, Counts>): FlowSummary | undefined => {
        if (!b) {
          if (!whole.has(f.key)) whole.set(f.key, summarizeFlows([...f.entries.values()].map((e) => e.shown), resolver)[0]!);
          return whole.get(f.key);
        }
        const counts = [...f.entries].map(([k, e]) => (b.has(k) ? minus(e.shown, b.get(k)!) : e.shown)).filter((c) => c.packets > 0);
        return counts.length ? summarizeFlows(counts, resolver)[0] : undefined;
      };
      for (const [c, wants] of subscribers) {
        const base = this.baselines.get(c);
        if (!base) continue;
        const flows: FlowSummary[] = [];
        for (const f of changed) {
          const s = summaryOf(f, base.get(f.key));
          if (s && wants(s)) flows.push(s);
        }
        if (flows.length || this.readsChanged) events.set(c, { flows, reads });
      }
    }
    this.readsChanged = false;
    return { events, findings: this.judge(resolver, model, nowNs) };
  }

  /** Every node's last read (hub clock). */
  reads(): FlowRead[] {
    return [...this.nodes].filter(([, n]) => n.lastReportAt > 0n).map(([node, n]) => ({ node, timeNs: n.readTimeNs })).sort((a, b) => a.node.localeCompare(b.node));
  }

  /** PACKET_LOSS findings the counters showed so far. */
  findings(): Finding[] {
    return [...this.found.values()];
  }

  /**
   * The counters of the flows `wanted` picks, as a local trace stores them (one per node, flow
   * and hook), of flows whose counts are one snapshot: quiet (a live flow's nodes were read at
   * different instants) and counted by every hook throughout (no window left out). A trace's
   * reader compares its hops as one snapshot. Returns them and how many flows were left out.
   */
  counts(wanted: (flow: FlowTuple) => boolean, nowNs: bigint): { counts: FlowCount[]; leftOut: number; readNs: bigint } {
    const counts: FlowCount[] = [];
    let leftOut = 0;
    for (const f of this.flows.values()) {
      if (!wanted(f.flow)) continue;
      const whole = this.quiet(f) && !f.everMarred && (f.judgedAt === f.changedAt || !this.marred(this.windowOf(f).start, this.windowOf(f).end, nowNs));
      if (!whole) leftOut++;
      else for (const e of f.entries.values()) counts.push(e.shown);
    }
    // Only quiet flows: final at every hop by nowNs (nothing in flight).
    return { counts, leftOut, readNs: nowNs };
  }

  /**
   * Quiet: every node the flow passes read its counters again after the read that last changed
   * any of them, and QUIET_MARGIN_NS after the flow's last change. Its counts are then final at
   * every hop (no packet is between two hops), whatever instant each node was read at.
   */
  private quiet(f: FlowState): boolean {
    for (const e of f.entries.values()) {
      const n = this.nodes.get(e.node);
      if (!n || n.lastReportAt <= e.changedAt || n.lastReportAt < f.changedAt + QUIET_MARGIN_NS) return false;
    }
    return true;
  }

  /** The packet times (hub clock) of the flow's window since its previous quiet moment. */
  private windowOf(f: FlowState): { start: bigint; end: bigint } {
    let start = f.quietRead > f.quietEnd ? f.quietRead : f.quietEnd;
    let end = 0n;
    for (const e of f.entries.values()) {
      if (!f.quietEnd && e.shown.firstNs && (!start || e.shown.firstNs < start)) start = e.shown.firstNs;
      if (e.shown.lastNs > end) end = e.shown.lastNs;
    }
    return { start, end };
  }

  /**
   * Each flow that went quiet since it was last judged: the window since its previous quiet moment
   * is added to what it counted clean, unless some hook may not have counted in it (then it is
   * left out whole: every hop's packets of the window, so the legs stay comparable), and the clean
   * counts are judged.
   */
  private judge(resolver: ReturnType<typeof resolverFromModel> | undefined, model: ClusterModel | undefined, nowNs: bigint): Finding[] {
    const fresh: Finding[] = [];
    for (const f of this.flows.values()) {
      if (f.judgedAt === f.changedAt) {
        // Still quiet: its next packets come after every node's read that saw none.
        let earliest: bigint | undefined;
        for (const e of f.entries.values()) {
          const t = this.nodes.get(e.node)?.readTimeNs ?? 0n;
          if (earliest === undefined || t < earliest) earliest = t;
        }
        if (earliest !== undefined && earliest > f.quietRead) f.quietRead = earliest;
        continue;
      }
      if (!this.quiet(f)) continue;
      f.judgedAt = f.changedAt;
      const { start, end } = this.windowOf(f);
      const clean = !this.marred(start, end, nowNs);
      if (!clean) f.everMarred = true;
      for (const [k, e] of f.entries) {
        if (clean) {
          const window = minus(e.shown, f.quietBase.get(k) ?? ZERO);
          const had = f.clean.get(k);
          f.clean.set(k, had ? plus(window, countsOf(had)) : window);
        }
        f.quietBase.set(k, countsOf(e.shown));
      }
      f.quietEnd = end;
      if (!clean) continue;
      const summary = summarizeFlows([...f.clean.values()].filter((c) => c.packets > 0), resolver);
      // Quiet at every hop: nothing in flight (its last packets came long before nowNs).
      for (const finding of flowLossFindings(summary, model, nowNs)) {
        const had = this.found.get(finding.key);
        if (had && had.packetCount === finding.packetCount && had.cause === finding.cause) continue;
        this.found.delete(finding.key);
        this.found.set(finding.key, finding);
        fresh.push(finding);
      }
    }
    while (this.found.size > MAX_FINDINGS) this.found.delete(this.found.keys().next().value!);
    return fresh;
  }

  private expire(nowNs: bigint): void {
    for (const [k, f] of this.flows) if (nowNs - f.changedAt > FLOW_IDLE_NS) this.drop(k, f);
  }

  /** Past the bound: the flows idle longest go until a tenth of the room is free again. */
  private evict(): void {
    const max = this.opts.maxEntries ?? MAX_FLOW_ENTRIES;
    const oldest = [...this.flows.values()].sort((a, b) => (a.changedAt < b.changedAt ? -1 : a.changedAt > b.changedAt ? 1 : 0));
    for (const f of oldest) {
      if (this.entries <= max - Math.ceil(max / 10)) break;
      this.drop(f.key, f);
    }
  }

  private drop(key: string, f: FlowState): void {
    this.flows.delete(key);
    this.dirty.delete(key);
    this.entries -= f.entries.size;
    for (const b of this.baselines.values()) b.delete(key);
  }
}
