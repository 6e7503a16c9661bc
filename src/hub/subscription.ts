// One client's subscription, resolved against the cluster model: which paths and findings it gets,
// and what it needs from the agents' in-kernel filters. Pure.
import type { ClusterModel } from '../cluster/model.js';
import type { PacketPath } from '../correlate/path.js';
import type { FlowSummary } from '../correlate/flows.js';
import type { FlowRule } from '../datapath/index.js';
import { FINDING_CODES, type Finding } from '../diagnose/finding.js';
import { UsageError } from '../errors.js';
import { PATH_OUTCOMES, type Subscription } from '../wire/codec.js';

const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17 };

interface ResolvedPod {
  ref: string;
  ips: string[];
  node?: string;
}

export class SubscriptionFilter {
  private readonly from?: ResolvedPod;
  private readonly to?: ResolvedPod;
  private readonly pod?: ResolvedPod;
  private readonly codes?: Set<string>;
  private readonly outcomes?: Set<string>;
  private readonly protocol?: number;
  /** The nodes of the pods asked for: findings from state alone are given for these (all when no pod is asked for). */
  private readonly podNodes?: Set<string>;

  /** Throws UsageError naming what the hub cannot take (an unknown pod, code, outcome or protocol). */
  constructor(
    readonly subscription: Subscription,
    model: ClusterModel,
  ) {
    const s = subscription;
    if (s.stateOnly) {
      const others = (['from', 'to', 'bothWays', 'pod', 'node', 'codes', 'outcomes', 'protocol', 'port'] as const).filter((k) => {
        const v = s[k];
        return Array.isArray(v) ? v.length > 0 : v !== undefined && v !== '' && v !== false && v !== 0;
      });
      if (others.length) throw new UsageError(`a state-only subscription takes no other filter (it has ${others.join(', ')}): it gets every finding from state`);
    }
    const resolve = (ref: string): ResolvedPod => {
      const p = model.resolvePod(ref);
      return { ref: p.ref, ips: p.ips, ...(p.node ? { node: p.node } : {}) };
    };
    if (s.from) this.from = resolve(s.from);
    if (s.to) this.to = resolve(s.to);
    if (s.pod) this.pod = resolve(s.pod);
    if (s.bothWays && !(s.from && s.to)) throw new UsageError('both directions need two pods (from and to)');
    if (s.node && !model.node(s.node)) throw new UsageError(`node ${s.node} is not in the cluster (nodes: ${model.nodes.map((n) => n.name).join(', ')})`);
    if (s.codes?.length) {
      const unknown = s.codes.filter((c) => !(FINDING_CODES as readonly string[]).includes(c));
      if (unknown.length) throw new UsageError(`unknown finding code ${unknown.join(', ')}: codes are ${FINDING_CODES.join(', ')}`);
      this.codes = new Set(s.codes);
    }
    if (s.outcomes?.length) {
      const unknown = s.outcomes.filter((o) => !(PATH_OUTCOMES as readonly string[]).includes(o));
      if (unknown.length) throw new UsageError(`unknown outcome ${unknown.join(', ')}: outcomes are ${PATH_OUTCOMES.join(', ')}`);
      this.outcomes = new Set(s.outcomes);
    }
    if (s.protocol) {
      this.protocol = PROTOCOLS[s.protocol];
      if (this.protocol === undefined) throw new UsageError(`unknown protocol ${s.protocol}: use icmp, tcp or udp`);
    }
    const pods = [this.from, this.to, this.pod].filter((p): p is ResolvedPod => !!p);
    if (pods.length) this.podNodes = new Set(pods.flatMap((p) => (p.node ? [p.node] : [])));
  }

  /** The pods as the hub named them (namespace/name), for messages. */
  get pods(): string[] {
    return [this.from, this.to, this.pod].flatMap((p) => (p ? [p.ref] : []));
  }

  /** Findings from state only, in diagnoses of their own (Hub.publishDiagnoses): no paths, no other finding, no losses. */
  get stateOnly(): boolean {
    return !!this.subscription.stateOnly;
  }

  wantsPath(p: PacketPath): boolean {
    const s = this.subscription;
    if (s.stateOnly) return false;
    if (this.outcomes && !this.outcomes.has(p.outcome)) return false;
    if (this.protocol !== undefined && p.inner.protocol !== this.protocol) return false;
    if (s.port && p.inner.srcPort !== s.port && p.inner.dstPort !== s.port) return false;
    const src = p.inner.src;
    const dst = p.inner.dst;
    if (this.pod && !this.pod.ips.includes(src) && !this.pod.ips.includes(dst)) return false;
    if (this.from || this.to) {
      const forward = (!this.from || this.from.ips.includes(src)) && (!this.to || this.to.ips.includes(dst));
      const back = !!s.bothWays && this.from!.ips.includes(dst) && this.to!.ips.includes(src);
      if (!forward && !back) return false;
    }
    if (s.node && p.srcNode !== s.node && p.dstNode !== s.node && !p.hops.some((h) => h.event.node === s.node)) return false;
    return true;
  }

  /**
   * A flow's per-hop counters, by what its packets are (addresses, protocol, port, the nodes they
   * pass) as wantsPath judges a path of it; outcomes do not filter them (a flow has no outcome).
   */
  wantsFlow(f: FlowSummary): boolean {
    const s = this.subscription;
    if (s.stateOnly) return false;
    const t = f.flow;
    if (this.protocol !== undefined && t.protocol !== this.protocol) return false;
    if (s.port && t.srcPort !== s.port && t.dstPort !== s.port) return false;
    if (this.pod && !this.pod.ips.includes(t.src) && !this.pod.ips.includes(t.dst)) return false;
    if (this.from || this.to) {
      const forward = (!this.from || this.from.ips.includes(t.src)) && (!this.to || this.to.ips.includes(t.dst));
      const back = !!s.bothWays && this.from!.ips.includes(t.dst) && this.to!.ips.includes(t.src);
      if (!forward && !back) return false;
    }
    if (s.node && !f.hops.some((h) => h.node === s.node) && !f.drops.some((h) => h.node === s.node)) return false;
    return true;
  }

  /**
   * A finding a path of this subscription made certain goes with the path; any other finding (from
   * state, or known when the client subscribed) when it concerns the nodes asked for.
   */
  wantsFinding(f: Finding, withPath = false): boolean {
    if (this.stateOnly) return false;
    if (this.codes && !this.codes.has(f.code)) return false;
    if (this.subscription.node && !f.nodes.includes(this.subscription.node)) return false;
    if (withPath || !this.podNodes) return true;
    return f.nodes.some((n) => this.podNodes!.has(n));
  }

  /** A node's status concerns a client that watches that node (or every node). */
  wantsNode(node: string): boolean {
    return !this.subscription.node || !node || node === this.subscription.node;
  }

  /** Lost records on a node concern a client that gets paths through that node (or every node). */
  wantsLost(node: string): boolean {
    return !this.stateOnly && this.wantsNode(node);
  }

  /** What this subscription needs the kernel to emit: rules, everything (no pod asked for), or nothing (state only). */
  kernelRules(): FlowRule[] | 'everything' {
    const s = this.subscription;
    if (s.stateOnly) return [];
    const extra: Omit<FlowRule, 'between'> = {};
    if (s.protocol) extra.protocol = s.protocol as FlowRule['protocol'];
    if (s.port) extra.port = s.port;
    const pairs: [string, string][] = [];
    if (this.from && this.to) {
      for (const a of this.from.ips) for (const b of this.to.ips) pairs.push([a, b]);
    } else {
      // One pod (or several given apart): everything from or to each; the hub narrows it further.
      for (const p of [this.from, this.to, this.pod]) if (p) for (const ip of p.ips) pairs.push([ip, 'any']);
    }
    if (!pairs.length) return 'everything';
    return pairs.map((between) => ({ between, ...extra }));
  }
}
