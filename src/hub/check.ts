// `vxtrace check` run by the hub for one client (Subscribe.check): planned on the hub's model (every
// agent's kernel state), its probes sent by the agents of their nodes (AgentCommand SendProbes, each
// bounded there), followed by a pipeline of their own that keeps only probes (the hub's main one
// leaves them out, so no subscriber sees them), and judged as `vxtrace check` judges them locally.
import type { ClusterModel } from '../cluster/model.js';
import type { FlowRule, HopEvent } from '../datapath/index.js';
import { findingsConcerning } from '../diagnose/finding.js';
import { podNetwork } from '../diagnose/context.js';
import { CheckJudge, type CheckVerdict } from '../probe/judge.js';
import { planCheck, type CheckPlan } from '../probe/plan.js';
import { ProbeRun } from '../probe/run.js';
import type { ProbeResult } from '../probe/sender.js';
import { Pipeline } from '../session/pipeline.js';
import { checkFilter } from '../probe/filter.js';
import type { CheckRequest, WireProbe } from '../wire/codec.js';

export interface HubCheckOptions {
  request: CheckRequest;
  model: ClusterModel;
  /** Nodes whose agents are connected: they send the probes. */
  agents: ReadonlySet<string>;
  /** Ids unique in the hub (a ProbeResult names its probe by id). */
  nextId(): number;
  /** Hand probes to a node's agent; false when it has none now. */
  sendProbes(node: string, probes: WireProbe[]): boolean;
  /** Whether a node's hooks reach the hub (its agent is connected). */
  traced(node: string): boolean;
  /** A finished path whose sending side is not in yet waits this long for its other agents' hops. */
  settleNs: bigint;
}

/** How long past its reply timeout a probe's result may take to come back from its agent (the agent's queue of probes). */
const RESULT_GRACE_MS = 30_000;

export class HubCheck {
  readonly plan: CheckPlan;
  readonly startedAt = Date.now();
  private readonly judge: CheckJudge;
  private readonly run: ProbeRun;
  private readonly pipeline: Pipeline;
  private readonly pending = new Map<number, { node: string; resolve: (r: ProbeResult) => void; timer: NodeJS.Timeout }>();
  /** Probes to hand each agent, gathered over one turn of the event loop into one SendProbes. */
  private outbox = new Map<string, WireProbe[]>();
  private aborted = false;

  constructor(private readonly opts: HubCheckOptions) {
    const { request, model } = opts;
    this.plan = planCheck(model, { senders: opts.agents, protocol: request.protocol, ...(request.size ? { size: request.size } : {}), whyNotSending: 'it has no agent connected to the hub' });
    this.judge = new CheckJudge(this.plan);
    this.run = new ProbeRun(this.judge, (probe, r, signal) => this.send(probe.from, r, signal), request.timeoutMs ?? 1000);
    this.pipeline = new Pipeline({
      model,
      clocks: 'per-node',
      settleNs: opts.settleNs,
      wholeNeedsNoSettle: true,
      // A node whose agent connects while the check runs missed its first probes' hops: untraced for this check.
      traced: (node) => opts.agents.has(node) && opts.traced(node),
      probes: 'only',
      onPath: (path, _fresh, touched) => this.run.addPath(path, touched),
    });
    this.pipeline.stateFindings();
  }

  /** What the agents' in-kernel filters must let through for this check. */
  kernelRules(): FlowRule[] {
    const f = checkFilter(this.plan, podNetwork(this.opts.model));
    return typeof f === 'string' ? [] : f.rules;
  }

  add(events: readonly HopEvent[]): void {
    this.pipeline.add(events);
  }

  poll(nowNs: bigint): void {
    this.pipeline.poll(nowNs);
  }

  setModel(model: ClusterModel): void {
    this.pipeline.setModel(model);
  }

  /** A ProbeResult from `node`'s agent; false when the id is not one of this check's. */
  result(node: string, r: ProbeResult & { id: number }): boolean {
    const p = this.pending.get(r.id);
    if (!p || p.node !== node) return false;
    this.settle(r.id, { replied: r.replied, ...(r.error !== undefined ? { error: r.error } : {}) });
    return true;
  }

  /** The node's agent went away: its probes on their way end without their result. */
  nodeGone(node: string): void {
    for (const [id, p] of this.pending) if (p.node === node) this.settle(id, { replied: false, error: `the agent of ${node} went away` });
  }

  /** The client went away: stop sending. */
  abort(): void {
    this.aborted = true;
  }

  /** Probe, wait for the paths, judge. */
  async execute(): Promise<CheckVerdict> {
    await this.run.sendAll(() => this.aborted);
    await this.run.settle(() => this.aborted);
    this.pipeline.flush();
    return this.judge.verdicts(findingsConcerning(this.pipeline.findings(), this.plan.nodes.map((n) => n.name)));
  }

  private send(node: string, r: Omit<WireProbe & { cancel?: false }, 'id'>, signal: AbortSignal): Promise<ProbeResult> {
    return new Promise((resolve) => {
      const id = this.opts.nextId();
      const timer = setTimeout(() => this.settle(id, { replied: false, error: `no result from the agent of ${node} in time` }), r.timeoutMs + RESULT_GRACE_MS);
      this.pending.set(id, { node, resolve, timer });
      signal.addEventListener('abort', () => this.queue(node, { id, cancel: true }), { once: true });
      this.queue(node, { id, ...r });
    });
  }

  private queue(node: string, p: WireProbe): void {
    if (!this.outbox.size) setImmediate(() => this.flush());
    this.outbox.set(node, [...(this.outbox.get(node) ?? []), p]);
  }

  private flush(): void {
    const out = this.outbox;
    this.outbox = new Map();
    for (const [node, probes] of out) {
      if (this.opts.sendProbes(node, probes)) continue;
      for (const p of probes) this.settle(p.id, { replied: false, error: `${node} has no agent connected` });
    }
  }

  private settle(id: number, r: ProbeResult): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(r);
  }
}
