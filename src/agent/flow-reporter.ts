// The agent's half of the per-hop flow counters: about once a second it reads its kernel's
// counters (Tracer.flowCounters: absolute since the tracer started) and sends the hub the entries
// that changed since the last read it sent (every entry after a (re)connect), with the wall time
// of the read, in frames of at most MAX_FLOW_COUNTERS_PER_FRAME entries. A read with nothing
// changed is still sent (empty): the hub learns that the node's counters are current up to then.
import { randomBytes } from 'node:crypto';
import type { FlowCount } from '../datapath/flow.js';
import { mergeFlowHop } from '../correlate/flows.js';
import { MAX_FLOW_COUNTERS_PER_FRAME, flowKeyOf, type FlowCounterReport } from '../wire/flows.js';

const entryKey = (c: FlowCount) => `${flowKeyOf(c.flow)}\0${c.device}\0${c.direction}\0${c.kind}\0${c.dropReason ?? ''}`;
const signature = (c: FlowCount) => `${c.packets}/${c.bytes}/${c.records}/${c.sampled}/${c.lost}/${c.lastNs}`;

/**
 * One entry per flow and hook name: a device recreated under the same name (a new ifindex) is
 * one hook to the hub, as summarizeFlows adds it up.
 */
function merged(counts: readonly FlowCount[]): Map<string, FlowCount> {
  const out = new Map<string, FlowCount>();
  for (const c of counts) {
    const k = entryKey(c);
    const had = out.get(k);
    if (!had) {
      out.set(k, { ...c });
      continue;
    }
    mergeFlowHop(had, c);
  }
  return out;
}

export interface FlowReporterOptions {
  /** The tracer's counters as they stand. */
  read(): FlowCount[];
  /** The agent's wall clock, ns (with its test offset). */
  wallNow(): bigint;
  /** Added to the counters' wall times (the agent's test clock offset). */
  offsetNs?: bigint;
  /** Sends one report; false when it could not go (not connected): the next read is sent whole. */
  send(r: FlowCounterReport): boolean;
}

export class FlowReporter {
  /** This tracer's identity: a restarted agent's new tracer counts from zero, and the hub knows it. */
  readonly tracerId = randomBytes(8).readBigUInt64BE() & 0x7fffffffffffffffn;
  private sent = new Map<string, string>();
  private whole = true;

  constructor(private readonly opts: FlowReporterOptions) {}

  /** A new connection: the hub may not have anything of ours (it restarted), so the next read goes whole. */
  reconnected(): void {
    this.whole = true;
  }

  /** Read the counters and send what changed. */
  report(): void {
    const readTimeNs = this.opts.wallNow();
    const offset = this.opts.offsetNs ?? 0n;
    const now = merged(this.opts.read());
    const full = this.whole;
    const changed: FlowCount[] = [];
    const next = new Map<string, string>();
    for (const [k, c] of now) {
      if (offset) {
        if (c.firstNs) c.firstNs += offset;
        if (c.lastNs) c.lastNs += offset;
      }
      const sig = signature(c);
      next.set(k, sig);
      if (full || this.sent.get(k) !== sig) changed.push(c);
    }
    let ok = true;
    for (let at = 0; ok && (at < changed.length || at === 0); at += MAX_FLOW_COUNTERS_PER_FRAME) {
      const part = changed.slice(at, at + MAX_FLOW_COUNTERS_PER_FRAME);
      ok = this.opts.send({ tracerId: this.tracerId, readTimeNs, full, more: at + MAX_FLOW_COUNTERS_PER_FRAME < changed.length, counts: part });
    }
    if (!ok) {
      this.whole = true;
      return;
    }
    this.whole = false;
    this.sent = next;
  }
}
