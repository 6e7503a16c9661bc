// The one pipeline every run goes through: HopEvents -> Correlator (PacketPaths) -> Diagnoser
// (findings) -> whoever listens (text, NDJSON, a pcapng trace, a stream). It does not care where the
// hops come from: a local tracer (TraceSession), a trace file (replay), agents over a socket (the
// hub). Pure: no I/O and no timers; the caller hands in hops and the time. vxtrace's own probes
// (`vxtrace check`) are recognised here, before correlation: every other run leaves them out.
import { keptWhileSampling } from '../datapath/decode.js';
import type { ClusterModel } from '../cluster/model.js';
import { Correlator, LOCAL_CLOCK, resolverFromModel } from '../correlate/correlator.js';
import type { PacketPath } from '../correlate/path.js';
import type { HopEvent } from '../datapath/hop.js';
import { Diagnoser } from '../diagnose/diagnoser.js';
import type { Finding } from '../diagnose/finding.js';
import { isProbe } from '../probe/mark.js';
import { summarizeFlows, type FlowSummary } from '../correlate/flows.js';
import type { FlowCount } from '../datapath/flow.js';

/** What a trace writer (PcapngWriter) offers the pipeline. */
export interface TraceSink {
  writeHops(paths: PacketPath[]): void;
  /** A hop that joined no path (outcome 'unknown'). */
  writeHop(event: HopEvent): void;
}

export interface PipelineOptions {
  /** The cluster and kernel state packets are judged against; without it paths carry no pod names and nothing is diagnosed. */
  model?: ClusterModel;
  /** Whether a node's hooks reach this pipeline (default: every node): a path that left for one that does not is 'untraced'. */
  traced?(node: string): boolean;
  /** 'one': every node's hops come from one machine's clock (one process tracing the lab); 'per-node': a clock per node (agents). */
  clocks: 'one' | 'per-node';
  /** A path that reached its last hop waits this long (wall clock ns) for late hops from other agents (default 0). */
  settleNs?: bigint;
  /** With settleNs: a path whose sending side is all in needs no settle time (the hub: late hops can only be the receiver's). */
  wholeNeedsNoSettle?: boolean;
  /**
   * Copy the hops of paths still open after each batch out of it (Correlator.detachHops; default
   * true): an open path then holds no batch alive. The hub turns it off: its recent paths (kept
   * for the page's download) hold every path's batches anyway, so the copies only added memory
   * (bench/README.md).
   */
  detachOpenHops?: boolean;
  /** Hand out at most this many paths (--count), then call `onLimit` once; later paths are not handed out. */
  maxPaths?: number;
  onLimit?(): void;
  /**
   * Called before a finished path is judged; false hands it out without judging it (a trace cut
   * short inside that path). It may change the path.
   */
  judge?(path: PacketPath): boolean;
  /**
   * vxtrace's own probes (`vxtrace check`, src/probe/mark.ts): 'leave-out' (default) drops their
   * hops before correlation, so that a follow, capture or read never shows, judges or writes them;
   * 'only' keeps nothing else (the check itself).
   */
  probes?: 'leave-out' | 'only';
  /**
   * Each finished path with the findings it made certain for the first time, or confirmed with
   * packets (a finding first known from state alone), or raised to an error; and every finding the
   * path shows (`touched`, merged with those before it).
   */
  onPath(path: PacketPath, fresh: Finding[], touched: Finding[]): void;
  /**
   * A trace to write: every path handed out, and every hop that joined no path (it came after its
   * path was handed out, looped past the cap, or was an underlay flood copy), once per add/poll/flush,
   * so every record that reached the pipeline is in the file.
   */
  trace?: TraceSink;
}

export class Pipeline {
  private readonly correlator: Correlator;
  private diagnoser: Diagnoser | undefined;
  /** What was handed out of each finding: its severity, and whether packets showed it by then. */
  private readonly seenFindings = new Map<string, { severity: Finding['severity']; packets: boolean }>();
  private handedOut = 0;
  private recordsLost = false;
  /**
   * Paths not judged because the kernel was sampling their flow (keptWhileSampling) and they end
   * early with no drop: their later (or earlier) hops may have been shed by choice, so where they
   * stop says nothing; their packets are counted exactly in the flow counters.
   */
  partlySampled = 0;
  private pathsToTrace: PacketPath[] = [];
  private hopsToTrace: HopEvent[] = [];
  private readonly keep: (e: HopEvent) => boolean;
  private model: ClusterModel | undefined;

  constructor(private readonly opts: PipelineOptions) {
    this.model = opts.model;
    const traced = opts.traced;
    this.correlator = new Correlator({
      ...(opts.model ? { resolver: resolverFromModel(opts.model) } : {}),
      ...(traced ? { traced: (node: string) => traced(node) } : {}),
      ...(opts.clocks === 'one' ? { clockOf: LOCAL_CLOCK } : {}),
      ...(opts.settleNs !== undefined ? { settleNs: opts.settleNs } : {}),
      ...(opts.wholeNeedsNoSettle ? { wholeNeedsNoSettle: true } : {}),
      ...(opts.detachOpenHops !== false ? { detachesHops: true } : {}),
      ...(opts.trace ? { onUnpathed: (e: HopEvent) => void this.hopsToTrace.push(e) } : {}),
    });
    if (opts.model) this.diagnoser = new Diagnoser(opts.model);
    // The model can change (setModel): whether an address is a pod's is asked of the current one.
    const isPod = (ip: string) => this.model?.podByIp(ip) !== undefined;
    this.keep = opts.probes === 'only' ? (e) => isProbe(e, isPod) : (e) => !isProbe(e, isPod);
  }

  /** Hops as they arrive (one batch). */
  add(events: readonly HopEvent[]): void {
    for (const e of events) {
      if (!this.keep(e)) continue;
      for (const p of this.correlator.add(e)) this.emit(p);
    }
    this.correlator.detachHops(); // (nothing to do when detachOpenHops is off)
    this.flushTrace();
  }

  /** Time passed (wall clock ns): paths with no new hop for the timeout are finished. */
  poll(nowNs: bigint): void {
    for (const p of this.correlator.poll(nowNs)) this.emit(p);
    this.flushTrace();
  }

  /** The end of input: hand out every path still open. Returns how many were unfinished. */
  flush(): number {
    const rest = this.correlator.flush();
    for (const p of rest) this.emit(p);
    this.flushTrace();
    return rest.length;
  }

  /** New cluster or kernel state: packets from now on are judged against it. */
  setModel(model: ClusterModel): void {
    this.model = model;
    this.correlator.setResolver(resolverFromModel(model));
    if (this.diagnoser) this.diagnoser.setModel(model);
    else this.diagnoser = new Diagnoser(model);
  }

  /** Records were lost upstream (a ring buffer, a queue): from now on no finding is drawn from missing hops. */
  noteRecordsLost(): void {
    this.recordsLost = true;
  }

  /**
   * The kernel's flow counters at the end of a run: one summary per flow, and the findings they
   * show for the first time. `readNs`: the wall-clock instant the hooks stopped counting, if known.
   */
  observeFlows(counts: readonly FlowCount[], readNs?: bigint): { flows: FlowSummary[]; fresh: Finding[] } {
    const model = this.model ?? this.opts.model;
    const flows = summarizeFlows(counts, model ? resolverFromModel(model) : undefined);
    const fresh = (this.diagnoser?.observeFlows(flows, readNs) ?? []).filter((f) => !this.seenFindings.has(f.key));
    for (const f of fresh) this.markSeen(f);
    return { flows, fresh };
  }

  /** Findings from cluster and kernel state alone (no packets needed), marked as handed out. */
  stateFindings(): Finding[] {
    const fs = this.diagnoser?.checkState() ?? [];
    for (const f of fs) this.markSeen(f);
    return fs;
  }

  /** Every finding so far, one per cause. */
  findings(): Finding[] {
    return this.diagnoser?.findings() ?? [];
  }

  inFlight(): number {
    return this.correlator.stats().inFlight;
  }

  private emit(path: PacketPath): void {
    if ((path.outcome === 'lost-in-underlay' || path.outcome === 'vanished') && path.hops.some((h) => keptWhileSampling(h.event))) {
      this.partlySampled++;
      if (this.opts.trace) this.pathsToTrace.push(path);
      return;
    }
    if (this.opts.maxPaths !== undefined && this.handedOut >= this.opts.maxPaths) return;
    this.handedOut++;
    let fresh: Finding[] = [];
    let touched: Finding[] = [];
    const judged = this.opts.judge?.(path) ?? true;
    if (this.diagnoser && judged) {
      touched = this.diagnoser.observePath(path, { recordsLost: this.recordsLost });
      // New, or now shown by packets where state alone showed it before, or more severe than when
      // handed out (a state warning that packets prove an error): the listener hears of it (again).
      fresh = touched.filter((f) => {
        const seen = this.seenFindings.get(f.key);
        return !seen || (!seen.packets && f.packetCount > 0) || (seen.severity !== 'error' && f.severity === 'error');
      });
      for (const f of fresh) this.markSeen(f);
    }
    if (this.opts.trace) this.pathsToTrace.push(path);
    this.opts.onPath(path, fresh, touched);
    if (this.handedOut === this.opts.maxPaths) this.opts.onLimit?.();
  }

  private markSeen(f: Finding): void {
    this.seenFindings.set(f.key, { severity: f.severity, packets: f.packetCount > 0 });
  }

  /** Paths and unpathed hops go to the trace once per step (one writev instead of one per path). */
  private flushTrace(): void {
    const sink = this.opts.trace;
    if (!sink) return;
    if (this.pathsToTrace.length) {
      const paths = this.pathsToTrace;
      this.pathsToTrace = [];
      sink.writeHops(paths);
    }
    if (this.hopsToTrace.length) {
      const hops = this.hopsToTrace;
      this.hopsToTrace = [];
      for (const h of hops) sink.writeHop(h);
    }
  }
}
