// A trace session wires the layers for one run: the datapath (Tracer, attached to every node this
// machine can see) -> the Correlator (HopEvents -> PacketPaths) -> the Diagnoser (findings) ->
// whoever listens (the CLI's text or NDJSON, a pcapng writer, a stream). `follow` and `capture` are
// thin commands over it. Time comes from the caller's clock; the session owns only its poll timer.
import type { ClusterObjects } from '../cluster/list.js';
import type { ClusterModel } from '../cluster/model.js';
import { kernelSourceOf, thisMachine } from '../cluster/kernel-reader.js';
import type { PacketPath } from '../correlate/path.js';
import { Tracer, defaultVxlanPorts, discoverAttachPoints, interfaceNames, type AttachPoint, type AttachedHook, type FlowCount, type FlowFilter, type HopEvent, type TracerStats } from '../datapath/index.js';
import type { FlowSummary } from '../correlate/flows.js';
import { execSync, inNetns } from '../util/exec.js';
import { Pipeline, type TraceSink } from './pipeline.js';
import type { Finding } from '../diagnose/finding.js';
import { EnvironmentError } from '../errors.js';

export interface TraceTarget {
  node: string;
  /** Network namespace holding the node (lab nodes); undefined: this machine's own namespace. */
  netns?: string;
}

/** The nodes whose datapath this machine can trace: lab nodes by namespace, a real node only itself. */
export function traceTargets(objects: ClusterObjects, self = thisMachine()): TraceTarget[] {
  return objects.nodes.flatMap((n) => {
    const src = kernelSourceOf(n, self);
    return src ? [{ node: n.metadata.name, netns: src.netns }] : [];
  });
}

/**
 * The ports of a node's pod bridge (the host ends of its pods' veths). Traffic between two pods on
 * one node is bridged from port to port and never passes the bridge device's own hooks, so a
 * same-node path is seen only here.
 */
export function podBridgePorts(target: TraceTarget): AttachPoint[] {
  const bridges = discoverAttachPoints(target.node, target.netns).points.filter((p) => p.role === 'pod-bridge');
  return bridges.flatMap((b) => {
    const r = execSync(inNetns(target.netns, ['ip', '-j', 'link', 'show', 'master', b.device]), { allowFail: true });
    const ports = r.status === 0 ? (JSON.parse(r.stdout || '[]') as { ifname: string }[]) : [];
    return ports.map((p) => ({ node: target.node, netns: target.netns, device: p.ifname, role: 'pod-bridge' as const }));
  });
}

export interface TraceSessionOptions {
  model: ClusterModel;
  targets: TraceTarget[];
  /** More hooks beyond each target's discovered ones (e.g. podBridgePorts for a same-node pair). */
  extraPoints?: AttachPoint[];
  filter: FlowFilter;
  /** Frame bytes kept per record (default: the datapath's), or 'headers' (outer and inner headers; small frames whole). */
  snaplen?: number | 'headers';
  /** When the kernel sheds records (see TracerOptions.shed): default 'auto'. */
  shed?: 'auto' | 'always' | 'never';
  ringBytes?: number;
  /** Wall clock in ns (for expiring paths); default Date.now(). */
  now?: () => bigint;
  /** How often finished paths are collected, ms (default 100). */
  pollMs?: number;
  /** Hand out at most this many paths (--count), then call `onLimit` once; later paths are not handed out. */
  maxPaths?: number;
  onLimit?(): void;
  /**
   * Called for each finished path with the findings it made certain for the first time, or
   * confirmed with packets (a finding first known from state alone), or raised to an error.
   */
  onPath(path: PacketPath, newFindings: Finding[], touched: Finding[]): void;
  /** vxtrace's own probes: left out (default: follow, capture) or the only hops kept (check). See Pipeline. */
  probes?: 'leave-out' | 'only';
  /**
   * Handling events failed (e.g. the trace could not be written: disk full). Called once; the
   * session handles no more events, and stop() throws the error after detaching.
   */
  onError?(err: Error): void;
  /** Raw hop events as they arrive (e.g. for a capture that also writes unfinished paths). */
  onEvents?(events: HopEvent[]): void;
  /**
   * A trace to write: every path handed out, and every hop that joined no path (it came after its
   * path was handed out, or looped past the cap), once per batch (one ring-buffer batch, one poll,
   * the final flush), so every record that reached user space is in the file.
   */
  trace?: TraceSink;
}

export interface TraceSessionSummary {
  tracer: TracerStats;
  /** Paths still open at the end (handed to onPath, with the outcome their hops show). */
  unfinished: number;
  findings: Finding[];
  /** The kernel's counters of every flow followed, per hop (exact, whatever happened to the records). */
  flows: FlowSummary[];
  /** The same counters as the kernel keeps them (one per flow and hook): what a trace stores. */
  flowCounts: FlowCount[];
  /** The wall-clock instant (ns) the hooks stopped counting, taken just before: what a trace stores with the counters. */
  countersReadNs?: bigint;
  /** Findings the counters showed that no path had (e.g. packets vanishing between two hops at a rate). */
  flowFindings: Finding[];
  /** Paths not judged: they end early while the kernel sampled their flow (Pipeline.partlySampled). */
  partlySampled: number;
}

/**
 * Attach to the devices of the targets that appeared since the tracer attached (a flanneld restart
 * recreates flannel.1 with a new ifindex; the old device's hooks went with it). Returns the hooks
 * newly attached.
 */
export function attachNewDevices(tracer: Tracer, targets: readonly TraceTarget[], extraPoints: readonly AttachPoint[] = []): AttachedHook[] {
  const attached = new Set(tracer.hooksAttached().map((h) => `${h.node}/${h.ifindex}/${h.device}`));
  const added: AttachedHook[] = [];
  for (const t of targets) {
    const ifindexOf = new Map([...interfaceNames(t.netns)].map(([index, name]) => [name, index]));
    const wanted = [...discoverAttachPoints(t.node, t.netns).points, ...extraPoints.filter((p) => p.node === t.node)];
    const missing = wanted.filter((p) => !attached.has(`${t.node}/${ifindexOf.get(p.device)}/${p.device}`) && ifindexOf.has(p.device));
    if (missing.length) added.push(...tracer.attach(missing));
  }
  return added;
}

/** UDP ports parsed as VXLAN: every port a node's VXLAN device uses, then flannel's and IANA's defaults (at most 4). */
export function vxlanPortsOf(model: ClusterModel): number[] {
  const seen = model.nodes.flatMap((n) => (n.kernel?.vxlan?.port ? [n.kernel.vxlan.port] : []));
  return [...new Set([...seen, ...defaultVxlanPorts()])].slice(0, 4);
}

const wallNow = () => BigInt(Date.now()) * 1_000_000n;

/**
 * The ring buffer of a session: 32 MiB, about 0.4 s of a flow followed at full speed (160k records/s
 * of ~450 bytes): room for a pause in user space (GC, a slow disk) without losing records.
 */
export const SESSION_RING_BYTES = 32 << 20;

export class TraceSession {
  private readonly pipeline: Pipeline;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private countersReadNs: bigint | undefined;
  private failure: Error | undefined;
  /** Whether the tracer has lost records (ring buffer full) so far: checked on every poll and at the end. */
  private recordsLost = false;

  private constructor(
    private readonly tracer: Tracer,
    private readonly opts: TraceSessionOptions,
  ) {
    // One process watches every node it traces: one clock for all of them.
    this.pipeline = new Pipeline({
      model: opts.model,
      clocks: 'one',
      traced: (node) => opts.targets.some((t) => t.node === node),
      maxPaths: opts.maxPaths,
      onLimit: opts.onLimit,
      onPath: (path, fresh, touched) => {
        if (!this.stopped) opts.onPath(path, fresh, touched);
      },
      ...(opts.probes ? { probes: opts.probes } : {}),
      trace: opts.trace,
    });
  }

  /** Load the BPF programs, attach to every target, and start delivering paths. */
  static start(opts: TraceSessionOptions): TraceSession {
    if (!opts.targets.length) throw new EnvironmentError('no node to trace on this machine: run vxtrace on one of the cluster nodes, or bring up the lab');
    // Nothing is emitted until every hook is attached: a packet seen by the first node's hooks
    // before the last node's are in would look lost on its way.
    const tracer = Tracer.open({ snaplen: opts.snaplen, ...(opts.shed ? { shed: opts.shed } : {}), ringBytes: opts.ringBytes ?? SESSION_RING_BYTES, filter: 'none', vxlanPorts: vxlanPortsOf(opts.model) });
    try {
      for (const t of opts.targets) tracer.attachNode(t.node, t.netns);
      if (opts.extraPoints?.length) tracer.attach(opts.extraPoints);
      const session = new TraceSession(tracer, opts);
      tracer.start(
        (events) => session.guard(() => session.onEvents(events)),
        (err) => session.fail(err),
      );
      tracer.setFilter(opts.filter);
      session.timer = setInterval(() => session.guard(() => session.poll()), opts.pollMs ?? 100);
      return session;
    } catch (err) {
      tracer.close();
      throw err;
    }
  }

  /** Findings from cluster and kernel state alone (no packets needed), marked as seen. */
  stateFindings(): Finding[] {
    return this.pipeline.stateFindings();
  }

  /**
   * The model changed (a watch saw new kernel or cluster state): judge packets against it, and
   * attach to devices that appeared since (a flanneld restart recreates flannel.1 with a new
   * ifindex; the old device's hooks went with it). Returns the hooks newly attached.
   */
  setModel(model: ClusterModel): AttachedHook[] {
    this.pipeline.setModel(model);
    return this.attachNewDevices();
  }

  private attachNewDevices(): AttachedHook[] {
    return attachNewDevices(this.tracer, this.opts.targets, this.opts.extraPoints ?? []);
  }

  /** Handling events failed (onError was called): stop() will throw the error. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Every hook attached so far. */
  get hooks(): AttachedHook[] {
    return this.tracer.hooksAttached();
  }

  stats(): TracerStats {
    return this.tracer.stats();
  }

  inFlight(): number {
    return this.pipeline.inFlight();
  }

  /** Runs one step of event handling; the first error ends handling (see onError). */
  private guard(step: () => void): void {
    if (this.failure) return;
    try {
      step();
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.opts.onError?.(err);
  }

  private onEvents(events: HopEvent[]): void {
    if (this.stopped || this.failure) return;
    this.opts.onEvents?.(events);
    this.pipeline.add(events);
  }

  private poll(): void {
    this.noteLosses();
    this.pipeline.poll((this.opts.now ?? wallNow)());
  }

  /** Whether the tracer has lost records (ring buffer full) or shed them so far: then no finding is drawn from missing hops. */
  private noteLosses(): void {
    if (this.recordsLost) return;
    const s = this.tracer.stats();
    if (s.lostRecords === 0 && s.sampled === 0) return;
    this.recordsLost = true;
    this.pipeline.noteRecordsLost();
  }

  /** Stop tracing, hand out what is still open, detach everything. Safe to call twice. */
  async stop(): Promise<TraceSessionSummary> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    let unfinished = 0;
    if (!this.stopped) {
      try {
        // Every hook stops counting and recording at one instant: the flow counters are one snapshot.
        this.countersReadNs = (this.opts.now ?? wallNow)();
        this.tracer.setFilter('none');
        await this.tracer.stop();
      } finally {
        if (!this.failure) {
          this.noteLosses();
          this.guard(() => {
            unfinished = this.pipeline.flush();
          });
        }
        this.stopped = true;
      }
    }
    const tracer = this.tracer.stats();
    const counts = this.failure ? [] : this.tracer.flowCounters();
    this.tracer.close();
    if (this.failure) throw this.failure;
    const { flows, fresh } = this.pipeline.observeFlows(counts, this.countersReadNs);
    return { tracer, unfinished, findings: this.pipeline.findings(), flows, flowCounts: counts, countersReadNs: this.countersReadNs, flowFindings: fresh, partlySampled: this.pipeline.partlySampled };
  }

  /** Every finding so far, one per cause. */
  findings(): Finding[] {
    return this.pipeline.findings();
  }
}
