// The Diagnoser: findings from state and from packets, deduplicated (one finding per cause, with the
// count of packets that show it). Pure: it holds the model it is given and the findings so far.
import type { ClusterModel } from '../cluster/model.js';
import type { PacketPath } from '../correlate/path.js';
import type { Finding } from './finding.js';
import { diagnosePath, type PathContext } from './packet.js';
import { diagnoseState, FindingSet } from './state.js';
import type { FlowSummary } from '../correlate/flows.js';
import { flowLossFindings } from './flow-loss.js';
import { HealthyShapes } from './fast-path.js';

export interface DiagnoserOptions {
  /** Fingerprints kept per finding as a sample. Default 10. */
  maxSamplePackets?: number;
}

export class Diagnoser {
  private set: FindingSet;
  private stateKeys = new Set<string>();
  /** Delivered paths of a shape already diagnosed clean are not diagnosed again (src/diagnose/fast-path.ts). */
  private readonly healthy = new HealthyShapes();

  constructor(
    private model: ClusterModel,
    private readonly opts: DiagnoserOptions = {},
  ) {
    this.set = new FindingSet(opts.maxSamplePackets ?? 10);
  }

  /** The model changed (a watch saw new Nodes or kernel state). Findings seen so far are kept. */
  setModel(model: ClusterModel): void {
    this.model = model;
    this.healthy.forget();
  }

  /**
   * Findings from state alone, merged into this diagnoser's set. A state finding from an earlier
   * check that no longer holds (the state was fixed) is dropped, unless packets showed it too.
   */
  checkState(): Finding[] {
    const fs = diagnoseState(this.model);
    const now = new Set(fs.map((f) => f.key));
    for (const key of this.stateKeys) {
      if (!now.has(key) && this.set.get(key)?.packetCount === 0) this.set.delete(key);
    }
    this.stateKeys = now;
    for (const f of fs) this.set.add(f);
    return fs;
  }

  /** Findings one finished path shows (empty for a healthy delivered packet); merged, with packet counts. Returns the merged findings this path touched. */
  observePath(path: PacketPath, context: PathContext = {}): Finding[] {
    if (this.healthy.known(path, this.model)) return [];
    const found = diagnosePath(path, this.model, context);
    this.healthy.learn(path, found);
    return found.map((f) => this.set.add(f));
  }

  /** Findings the kernel's flow counters show (packets vanishing between two hops at a rate); merged. `readNs`: when they were read (flowLossFindings). */
  observeFlows(flows: readonly FlowSummary[], readNs?: bigint): Finding[] {
    return flowLossFindings(flows, this.model, readNs).map((f) => this.set.add(f));
  }

  /** Every finding so far: errors first, one per cause. */
  findings(): Finding[] {
    return this.set.list();
  }
}

export { diagnosePath, diagnoseState };
