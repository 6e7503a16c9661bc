// The hub's findings, one set for the whole hub: from state (its model) and from the packets every
// pipeline shard judged (src/hub/shard.ts: each path's own findings, packetCount 1 each), merged in
// the order they arrive. It keeps what a single Pipeline with its Diagnoser keeps (src/session/
// pipeline.ts, src/diagnose/diagnoser.ts) and says which findings are news for clients by the same
// rule: new, shown by packets where state alone showed it before, or raised to an error.
import type { ClusterModel } from '../cluster/model.js';
import type { Finding } from '../diagnose/finding.js';
import { diagnoseState, FindingSet } from '../diagnose/state.js';

/** Fingerprints kept per finding as a sample (the Diagnoser's default). */
const SAMPLE_PACKETS = 10;

export class HubFindings {
  private readonly set = new FindingSet(SAMPLE_PACKETS);
  private stateKeys = new Set<string>();
  /** What was handed out of each finding: its severity, and whether packets showed it by then. */
  private readonly seen = new Map<string, { severity: Finding['severity']; packets: boolean }>();

  /**
   * Findings from cluster and kernel state alone, marked as handed out. A state finding from an
   * earlier check that no longer holds (the state was fixed) is dropped, unless packets showed it.
   */
  checkState(model: ClusterModel): Finding[] {
    const fs = diagnoseState(model);
    const now = new Set(fs.map((f) => f.key));
    for (const key of this.stateKeys) {
      if (!now.has(key) && this.set.get(key)?.packetCount === 0) this.set.delete(key);
    }
    this.stateKeys = now;
    for (const f of fs) {
      this.set.add(f);
      this.markSeen(f);
    }
    return fs;
  }

  /** One path's own findings (from diagnosePath): merged; returns those that are news. */
  observe(pathFindings: readonly Finding[]): Finding[] {
    const fresh: Finding[] = [];
    for (const raw of pathFindings) {
      const f = this.set.add(raw);
      const seen = this.seen.get(f.key);
      if (!seen || (!seen.packets && f.packetCount > 0) || (seen.severity !== 'error' && f.severity === 'error')) {
        this.markSeen(f);
        fresh.push(f);
      }
    }
    return fresh;
  }

  /** Every finding so far, one per cause, errors first. */
  list(): Finding[] {
    return this.set.list();
  }

  private markSeen(f: Finding): void {
    this.seen.set(f.key, { severity: f.severity, packets: f.packetCount > 0 });
  }
}
