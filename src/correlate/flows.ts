// The kernel's per-hop flow counters (FlowCount, one per flow and hook) joined into one summary
// per flow: its hops in path order, as a packet passes them, and its drops. Pure.
import type { FlowCount, FlowHopCount, FlowTuple } from '../datapath/flow.js';
import { hopPosition, type PathResolver } from './correlator.js';

export interface FlowSummary {
  flow: FlowTuple;
  /** Pod names (namespace/name) when the addresses resolve. */
  srcPod?: string;
  dstPod?: string;
  /**
   * The hops a packet of the flow passes, in path order (hook position, then first packet): on
   * the sending node, then the receiving one. A device seen under one name twice (recreated) adds up.
   */
  hops: FlowHopCount[];
  /** Hops on other nodes (copies an L2 underlay flooded there): not on the flow's way. */
  elsewhere: FlowHopCount[];
  /** The kernel's drops of the flow, per node, device and reason. */
  drops: FlowHopCount[];
}

const flowKey = (f: FlowTuple) => `${f.family}|${f.src}|${f.dst}|${f.protocol}|${f.srcPort}|${f.dstPort}`;

/** Add c's counts to into's (the same hook counted twice: a recreated device, two readers of one flow). */
export function mergeFlowHop(into: FlowHopCount, c: FlowHopCount): void {
  into.packets += c.packets;
  into.bytes += c.bytes;
  into.records += c.records;
  into.sampled += c.sampled;
  into.lost += c.lost;
  if (c.firstNs && (!into.firstNs || c.firstNs < into.firstNs)) into.firstNs = c.firstNs;
  if (c.lastNs > into.lastNs) into.lastNs = c.lastNs;
}

const hopOf = (c: FlowCount): FlowHopCount => {
  const { flow: _flow, ...hop } = c;
  return { ...hop };
};

/** One summary per flow, the busiest first. */
export function summarizeFlows(counts: readonly FlowCount[], resolver?: PathResolver): FlowSummary[] {
  const byFlow = new Map<string, { flow: FlowTuple; hops: Map<string, FlowHopCount>; drops: Map<string, FlowHopCount> }>();
  for (const c of counts) {
    const k = flowKey(c.flow);
    let f = byFlow.get(k);
    if (!f) byFlow.set(k, (f = { flow: c.flow, hops: new Map(), drops: new Map() }));
    const where = `${c.node}\0${c.device}\0${c.direction}\0${c.dropReason ?? ''}`;
    const table = c.kind === 'drop' ? f.drops : f.hops;
    const had = table.get(where);
    if (had) mergeFlowHop(had, c);
    else table.set(where, hopOf(c));
  }
  const out: FlowSummary[] = [];
  for (const { flow, hops, drops } of byFlow.values()) {
    const ordered = [...hops.values()].sort(
      (a, b) => hopPosition({ ...a, kind: 'tc' }) - hopPosition({ ...b, kind: 'tc' }) || (a.firstNs < b.firstNs ? -1 : a.firstNs > b.firstNs ? 1 : 0),
    );
    // The flow's own two nodes: from the cluster model, else the nodes its first and busiest later hops are on.
    const src = resolver?.nodeOfPodIp(flow.src) ?? ordered.find((h) => hopPosition({ ...h, kind: 'tc' }) <= 2)?.node ?? ordered[0]?.node;
    const later = ordered.filter((h) => hopPosition({ ...h, kind: 'tc' }) >= 3 && h.node !== src).sort((a, b) => b.packets - a.packets);
    const dst = resolver?.nodeOfPodIp(flow.dst) ?? later[0]?.node ?? src;
    const onWay = (h: FlowHopCount) => h.node === src || h.node === dst;
    const summary: FlowSummary = {
      flow,
      hops: ordered.filter(onWay),
      elsewhere: ordered.filter((h) => !onWay(h)),
      drops: [...drops.values()].sort((a, b) => b.packets - a.packets),
    };
    const srcPod = resolver?.podRef(flow.src);
    const dstPod = resolver?.podRef(flow.dst);
    if (srcPod) summary.srcPod = srcPod;
    if (dstPod) summary.dstPod = dstPod;
    out.push(summary);
  }
  return out.sort(compareFlows);
}

/** The order flows are shown in: the busiest (packets at its first hop) first. */
export function compareFlows(a: FlowSummary, b: FlowSummary): number {
  const sent = (s: FlowSummary) => s.hops[0]?.packets ?? 0;
  return sent(b) - sent(a) || flowKey(a.flow).localeCompare(flowKey(b.flow));
}
