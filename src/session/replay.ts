// Replaying a trace offline: the HopEvents in the file -> the pipeline (correlate -> diagnose) that
// the live run used, with the cluster model rebuilt from the snapshot in the file and time passing as
// the hops say. Pure (no I/O): `vxtrace read` reads the file and prints what this returns. Nothing
// here needs root or the cluster.
import type { HopEvent } from '../datapath/hop.js';
import type { PacketPath } from '../correlate/path.js';
import { findingsConcerning, type Finding } from '../diagnose/finding.js';
import { ClusterModel } from '../cluster/model.js';
import { clusterObjectsFromJson } from '../cluster/list.js';
import type { Trace } from '../pcapng/reader.js';
import { Pipeline } from './pipeline.js';
import type { FlowSummary } from '../correlate/flows.js';

export interface Replay {
  paths: PacketPath[];
  /** Findings diagnosed again from the packets and the snapshot (undefined without a snapshot). */
  findings?: Finding[];
  /** The findings the writer recorded in the file, if any. */
  recordedFindings?: Finding[];
  model?: ClusterModel;
  /** Whether the hops were correlated as one clock (one machine, e.g. the lab) or a clock per node. */
  clocks: 'one' | 'per-node';
  /** Things the user should know (no snapshot, bad snapshot, ...). */
  warnings: string[];
  /** The kernel's per-hop flow counters stored in the trace, one summary per flow (empty when it has none). */
  flows: FlowSummary[];
}

/** The poll step when replaying: the live session polls every 100 ms. */
const POLL_STEP_NS = 100_000_000n;

/**
 * Correlates and diagnoses a trace's hops as a live run would. `source` names the file in messages.
 * State findings are kept for the nodes the paths run between, as `follow` reports them.
 */
export function replayTrace(trace: Trace, source = 'the trace'): Replay {
  const warnings: string[] = [];
  let model: ClusterModel | undefined;
  if (trace.snapshot?.cluster) {
    try {
      const objects = clusterObjectsFromJson(trace.snapshot.cluster, `the cluster snapshot in ${source}`);
      const kernel = new Map(Object.entries(trace.snapshot.nodeState ?? {}));
      model = ClusterModel.build(objects, kernel);
    } catch (err) {
      warnings.push(`${(err as Error).message}: paths are shown without pod names, and no findings are diagnosed`);
    }
  } else {
    warnings.push(`${source} holds no cluster snapshot (not written by vxtrace, or cut short before it): paths are shown without pod names, and no findings are diagnosed`);
  }

  const clocks = oneClock(trace.hops) ? 'one' : 'per-node';
  const tracedNodes = trace.snapshot?.tracedNodes;
  const paths: PacketPath[] = [];
  // A damaged file ends inside the path it was writing (the writer writes path by path): that
  // path's later hops are missing, so it is shown unfinished and not judged.
  const cut = trace.damaged ? trace.hops.at(-1)?.fingerprint : undefined;
  let unfinished = 0;
  const pipeline = new Pipeline({
    ...(model ? { model } : {}),
    ...(Array.isArray(tracedNodes) ? { traced: (n: string) => tracedNodes.includes(n) } : {}),
    clocks,
    judge(p) {
      if (cut === undefined || p.fingerprint !== cut || p.outcome === 'delivered') return true;
      p.outcome = 'in-flight';
      delete p.drop;
      unfinished++;
      return false;
    },
    onPath: (p) => void paths.push(p),
  });
  if ((trace.lostRecords ?? 0) > 0 || (trace.sampledRecords ?? 0) > 0) pipeline.noteRecordsLost();
  // Hops in the order they happened (the file holds them path by path, as paths finished), and
  // time passing as they say: before a hop that moves the clock on by a poll step, poll, as the live
  // session's timer did, so paths expire (and late hops start new paths) as they did live.
  const ordered = trace.hops
    .map((e, i) => ({ e, i }))
    .sort((a, b) => (a.e.wallTimeNs < b.e.wallTimeNs ? -1 : a.e.wallTimeNs > b.e.wallTimeNs ? 1 : a.i - b.i));
  let lastPoll: bigint | undefined;
  const one: HopEvent[] = [];
  for (const { e } of ordered) {
    if (lastPoll === undefined || e.wallTimeNs - lastPoll >= POLL_STEP_NS) {
      pipeline.poll(e.wallTimeNs);
      lastPoll = e.wallTimeNs;
    }
    one[0] = e;
    pipeline.add(one);
  }
  pipeline.flush();
  const { flows } = pipeline.observeFlows(trace.flows ?? [], trace.flowsReadNs);

  if (unfinished) warnings.push(`the last path in ${source} is cut short by the damage: shown as unfinished, not judged`);
  const out: Replay = { paths, clocks, warnings, flows };
  if (model) out.model = model;
  if (trace.findings) out.recordedFindings = trace.findings;
  if (model) {
    pipeline.stateFindings();
    out.findings = findingsConcerning(pipeline.findings(), paths.flatMap((p) => [p.srcNode, p.dstNode]));
  }
  return out;
}

/**
 * True when every node's hops share one clock: wall minus monotonic time is the same (within 50 ms)
 * on every node, as it is when one machine traced them all (the lab). Agents on different machines
 * booted at different times, so their offsets differ by far more.
 */
export function oneClock(hops: readonly HopEvent[]): boolean {
  const offsets = new Map<string, bigint>();
  for (const e of hops) if (!offsets.has(e.node)) offsets.set(e.node, e.wallTimeNs - e.timestampNs);
  const values = [...offsets.values()];
  if (values.length <= 1) return true;
  let min = values[0]!;
  let max = values[0]!;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return max - min < 50_000_000n;
}
