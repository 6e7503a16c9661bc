// What the in-kernel filter must let through for a check: the traffic of its senders' pod-bridge
// addresses (one rule each, against the pod network), or beyond 16 senders (the filter's rules) the
// whole pod network; the pipeline keeps only the probes of it.
import type { FlowFilter } from '../datapath/index.js';
import type { CheckPlan } from './plan.js';

/** The filter holds at most this many rules (bpf/vxtrace.h VXT_MAX_RULES). */
const MAX_RULES = 16;

export function checkFilter(plan: CheckPlan, podNet: string | undefined): FlowFilter {
  const sources = plan.nodes.flatMap((n) => (n.source ? [n.source.address] : []));
  const net = podNet ?? '0.0.0.0/0';
  if (sources.length <= MAX_RULES) return { rules: sources.map((s) => ({ between: [`${s}/32`, net] as [string, string] })) };
  return { rules: [{ between: [net, net] }] };
}
