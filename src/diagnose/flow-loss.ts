// A rule from the kernel's flow counters, not from single packets: packets of a flow that pass
// one hop and not the next, at a rate (the underlay losing 0.8 % of a flow). The counters are
// exact whatever happened to the records (shed, lost), so this holds at full rate, where paths are
// only sampled. Pure.
import type { ClusterModel } from '../cluster/model.js';
import type { FlowSummary } from '../correlate/flows.js';
import type { FlowHopCount } from '../datapath/flow.js';
import { formatFlow } from '../datapath/describe.js';
import type { Finding } from './finding.js';
import { list, makeFinding } from './context.js';

/** Below this share of a hop's packets, missing ones are not reported (0.1 %). */
export const MIN_LOSS_RATE = 0.001;
/** Nor fewer than this many packets. */
export const MIN_LOSS_PACKETS = 3;
/**
 * Packets in flight between two hops when the counters were read (a run stops every hook at one
 * instant): the flow's rate over this long is never called lost.
 */
export const IN_FLIGHT_NS = 2_000_000;
/**
 * A flow whose last packet at a hop passed it this long before the counters were read had nothing
 * left in flight from there (far more than IN_FLIGHT_NS: the wall clock vxtrace converts kernel
 * times with may be off by a few ms).
 */
export const QUIET_BEFORE_READ_NS = 100_000_000n;

const where = (h: FlowHopCount) => `${h.node} ${h.device} ${h.direction}`;
const pct = (x: number) => `${(100 * x).toFixed(x < 0.01 ? 2 : 1)} %`;

/**
 * Packets of the flow that may have passed `h` and not yet the next hop when the counters were
 * read at `readNs` (wall clock): none when the flow had gone quiet there by then; else (or when the
 * instant is unknown) the flow's rate at `h` over IN_FLIGHT_NS.
 */
function inFlight(h: FlowHopCount, readNs: bigint | undefined): number {
  if (readNs !== undefined && h.lastNs > 0n && h.lastNs + QUIET_BEFORE_READ_NS < readNs) return 0;
  const span = Number(h.lastNs - h.firstNs);
  if (span <= 0) return 0;
  return Math.ceil((h.packets * IN_FLIGHT_NS) / span);
}

function describeFlow(s: FlowSummary): string {
  const f = s.flow;
  const who = (pod: string | undefined, ip: string) => (pod ? `${pod} (${ip})` : ip);
  return `${who(s.srcPod, f.src)} -> ${who(s.dstPod, f.dst)} ${formatFlow(f)}`;
}

/**
 * Every leg of every flow where packets went missing at a rate, one finding each. `readNs`: the
 * wall-clock instant every hook stopped counting (taken before they stopped), when known: a flow
 * that had gone quiet by then gets no allowance for packets in flight.
 */
export function flowLossFindings(flows: readonly FlowSummary[], model?: ClusterModel, readNs?: bigint): Finding[] {
  const out: Finding[] = [];
  for (const s of flows) {
    for (let i = 0; i + 1 < s.hops.length; i++) {
      const a = s.hops[i]!;
      const b = s.hops[i + 1]!;
      const missing = a.packets - b.packets;
      if (missing < MIN_LOSS_PACKETS || missing <= inFlight(a, readNs) || missing < MIN_LOSS_RATE * a.packets) continue;
      out.push(lossFinding(s, a, b, missing, model));
    }
  }
  return out;
}

function lossFinding(s: FlowSummary, a: FlowHopCount, b: FlowHopCount, missing: number, model?: ClusterModel): Finding {
  const rate = missing / a.packets;
  const underlay = a.node !== b.node;
  const nodes = underlay ? [a.node, b.node] : [a.node];
  // The kernel's drops of this flow on the nodes of the leg explain (some of) it.
  const drops = s.drops.filter((d) => nodes.includes(d.node));
  const dropped = drops.reduce((n, d) => n + d.packets, 0);
  const dropText = drops.map((d) => `${d.node}/${d.device} ${d.dropReason ?? 'drop'} ×${d.packets}`).join(', ');
  const what = describeFlow(s);
  const observed = `${what}: ${a.packets} packets at ${where(a)}, ${b.packets} at ${where(b)}: ${missing} missing (${pct(rate)})`;
  let cause: string;
  let fix: string;
  if (dropped > 0) {
    cause = `the kernel dropped ${dropped >= missing ? '' : `${dropped} of `}the ${missing} packets missing between ${where(a)} and ${where(b)} (${dropText})`;
    fix = `see why ${list([...new Set(drops.map((d) => d.dropReason ?? 'drop'))])} drops them on ${list([...new Set(drops.map((d) => d.node))])} (vxtrace follow shows the dropped packets with their DROPPED finding; the drop reasons are in docs/findings.md)`;
  } else if (underlay) {
    const peer = model?.node(b.node);
    cause = `${pct(rate)} of the packets that left ${a.node} by ${a.device} never arrived at ${b.node}'s ${b.device}, and no kernel drop on either node accounts for them: the underlay between them loses them`;
    fix = `check the underlay path between ${a.node} ${a.device} and ${b.node} ${b.device}${peer?.underlay.address ? ` (${peer.underlay.address})` : ''}: interface errors and drops (\`ip -s link show ${a.device}\` on ${a.node}, \`ip -s link show ${b.device}\` on ${b.node}), the switch or bridge between them, and the MTU along the way`;
  } else {
    cause = `${pct(rate)} of the packets vanished inside ${a.node} between ${a.device} and ${b.device} without a kernel drop vxtrace saw`;
    fix = `check what else handles packets on ${a.node} between ${a.device} and ${b.device}: tc filters and qdiscs (\`tc -s qdisc show dev ${b.device}\`), XDP programs, and \`nstat -az\` for drops the kernel counts without freeing through kfree_skb`;
  }
  const f = s.flow;
  const key = `PACKET_LOSS:${f.family}|${f.src}|${f.dst}|${f.protocol}|${f.srcPort}|${f.dstPort}:${where(a)}>${where(b)}`;
  return makeFinding('PACKET_LOSS', rate >= 0.01 ? 'error' : 'warning', key, nodes, cause, fix, {
    observed,
    expected: `every packet that passes ${where(a)} also passes ${where(b)}`,
    facts: {
      flow: what,
      from: where(a),
      to: where(b),
      passed: a.packets,
      arrived: b.packets,
      missing,
      rate: Number(rate.toFixed(6)),
      kernelDrops: dropped,
    },
  }, missing);
}
