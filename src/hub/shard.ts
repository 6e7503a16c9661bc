// One pipeline shard of the hub: the packets whose fingerprints fall to it (every hop of a packet
// goes to the same shard), through the one Pipeline `follow` runs (correlation), each finished path
// judged (diagnosePath, its own findings, with the Diagnoser's fast path for healthy paths: the hub
// merges every shard's findings in one set, src/hub/findings.ts), matched against every client's
// subscription and encoded once for all of them, and kept a while for the page's pcapng download
// (its share of the hub's RecentPaths). The hub runs its shards in worker threads (src/hub/
// shard-worker.ts) or, with no workers, in its own thread; either way they only exchange these
// messages with it. Pure but for the time it is handed.
import { ClusterModel } from '../cluster/model.js';
import type { ClusterObjects } from '../cluster/list.js';
import type { NodeKernelState } from '../cluster/kernel.js';
import type { PacketPath } from '../correlate/path.js';
import type { HopEvent } from '../datapath/hop.js';
import { diagnosePath } from '../diagnose/diagnoser.js';
import { HealthyShapes } from '../diagnose/fast-path.js';
import type { Finding } from '../diagnose/finding.js';
import { Pipeline } from '../session/pipeline.js';
import { PATH_OUTCOMES, writePathEvent, type Subscription } from '../wire/codec.js';
import { ProtoWriter } from '../wire/proto-writer.js';
import { kernelHopEvents, type KernelHopRecords } from '../wire/hop-batch.js';
import { SubscriptionFilter } from './subscription.js';
import { RECENT_BYTES, RECENT_PATHS, RecentPaths } from './pcapng-download.js';

/** How long a finished path whose sending side is not in yet waits for its other agents' hops. */
export const SETTLE_NS = 300_000_000n;

/** What a shard starts from: the cluster objects, every agent's kernel state, and how many shards share the hub's bounds. */
export interface ShardSetup {
  objects: ClusterObjects;
  kernelStates: [string, NodeKernelState][];
  shards: number;
}

/** What the hub tells a shard. */
export type ShardCommand =
  /** The cluster objects and every agent's kernel state: paths from now on are judged against them. */
  | { kind: 'model'; objects: ClusterObjects; kernelStates: [string, NodeKernelState][] }
  /**
   * Hop records of one agent's node (all of this node, all IP: the hub checked them), its clock
   * correction added to their wall clocks; `order`: each record's place in the agent's batch.
   * Answered with a ShardPaths of the same `seq`.
   */
  | { kind: 'hops'; seq: number; records: KernelHopRecords; order: Uint32Array; correctionNs: bigint }
  /** Time passed (hub wall clock, ns): paths done by now are finished. Answered with a ShardPaths of the same `seq`. */
  | { kind: 'poll'; seq: number; nowNs: bigint }
  /** The nodes whose agents are connected: a path that left for another is untraced. */
  | { kind: 'watched'; nodes: string[] }
  /** Records were lost upstream: from now on no finding is drawn from missing hops. */
  | { kind: 'records-lost' }
  /** Every subscribed client (by id) and what it asked for. */
  | { kind: 'clients'; clients: { id: number; subscription: Subscription }[] }
  /** The recent paths this shard holds with one of these fingerprints (the page's download). Answered with a ShardRecent of the same `id`. */
  | { kind: 'recent'; id: number; fingerprints: string[] };

/** A shard's answer to a `recent` command: its paths with those fingerprints, oldest first. */
export interface ShardRecent {
  recent: number;
  paths: PacketPath[];
}

/**
 * What a shard hands back for each hops and poll command (`seq`): the paths it finished, each
 * encoded once as an EventBatch `Event` field (`bytes`, path i from ends[i - 1] to ends[i]), the ids
 * of the clients whose subscriptions want it (`wants`, path i's from wantsEnd[i - 1] to
 * wantsEnd[i]), its outcome (index into PATH_OUTCOMES), the findings it showed, and where it comes
 * in the command (`keys`: the place of the record that finished it in the agent's batch, or the
 * order the poll finished them in), so that the hub hands out every shard's paths in the order one
 * Pipeline would.
 */
export interface ShardPaths {
  seq: number;
  keys: Float64Array;
  bytes: Uint8Array;
  ends: Uint32Array;
  wants: Int32Array;
  wantsEnd: Uint32Array;
  outcomes: Uint8Array;
  /** [path index, that path's own findings (packetCount 1 each)], for the paths that showed any. */
  findings: [number, Finding[]][];
}

const OUTCOME_INDEX = new Map(PATH_OUTCOMES.map((o, i) => [o, i]));
const NO_FINDINGS: Finding[] = [];

/**
 * Paths to post to another thread: every hop's frame and record copied out of the batch it is a
 * view of, so that the message carries those bytes, not every batch they came in (a structured
 * clone copies a view's whole buffer).
 */
export function portablePaths(paths: PacketPath[]): PacketPath[] {
  return paths.map((p) => ({ ...p, hops: p.hops.map((h) => ({ ...h, event: { ...h.event, frame: h.event.frame.slice(), ...(h.event.record ? { record: h.event.record.slice() } : {}) } })) }));
}

export class PipelineShard {
  private model: ClusterModel;
  private readonly pipeline: Pipeline;
  private watched = new Set<string>();
  private recordsLost = false;
  private clients: { id: number; filter: SubscriptionFilter }[] = [];
  // The paths of the command being handled.
  private readonly out = new ProtoWriter();
  private ends: number[] = [];
  private wants: number[] = [];
  private wantsEnd: number[] = [];
  private outcomes: number[] = [];
  private keys: number[] = [];
  private pathFindings: [number, Finding[]][] = [];
  /** The key of the path finished next (see ShardPaths.keys), and whether a poll is finishing them. */
  private key = 0;
  private polling = false;
  private readonly one: HopEvent[] = [];
  /** Delivered paths of a shape already diagnosed clean are not diagnosed again (the Diagnoser's fast path). */
  private readonly healthy = new HealthyShapes();
  /** This shard's share of the last paths the hub joined (the pcapng download). */
  private readonly recent: RecentPaths;

  constructor(model: ShardSetup) {
    this.model = ClusterModel.build(model.objects, new Map(model.kernelStates));
    // Fingerprints spread evenly over the shards: each keeps its share of the hub's bounds.
    const n = Math.max(1, model.shards);
    this.recent = new RecentPaths(Math.ceil(RECENT_PATHS / n), Math.ceil(RECENT_BYTES / n));
    this.pipeline = new Pipeline({
      model: this.model,
      // Agents run on separate machines: a clock per node, joined by fingerprint and hop order.
      clocks: 'per-node',
      // Agents' batches arrive apart: a path that reached its end waits for the rest of its hops,
      // unless its sending side is already in (src/correlate/correlator.ts seenWhole).
      settleNs: SETTLE_NS,
      wholeNeedsNoSettle: true,
      // Every path goes to the recent paths, which hold its batches' bytes until evicted anyway.
      detachOpenHops: false,
      // A path that left for a node without an agent is 'untraced', not lost.
      traced: (node) => this.watched.has(node),
      // Judged here, path by path, so that the hub can merge every shard's findings into one set.
      judge: () => false,
      onPath: (path) => this.finished(path),
    });
  }

  /** Handle one command: for hops and poll, the paths they finished (maybe none); for recent, the paths asked for; for the others, undefined. */
  handle(c: ShardCommand): ShardPaths | ShardRecent | undefined {
    switch (c.kind) {
      case 'hops': {
        // One record at a time, so that each path finished is known by the record that finished it.
        const events = kernelHopEvents(c.records, c.correctionNs);
        const one = this.one;
        for (let i = 0; i < events.length; i++) {
          this.key = c.order[i] ?? i;
          one[0] = events[i]!;
          this.pipeline.add(one);
        }
        return this.take(c.seq);
      }
      case 'poll':
        this.key = 0;
        this.polling = true;
        try {
          this.pipeline.poll(c.nowNs);
        } finally {
          this.polling = false;
        }
        return this.take(c.seq);
      case 'model':
        this.model = ClusterModel.build(c.objects, new Map(c.kernelStates));
        this.pipeline.setModel(this.model);
        this.healthy.forget();
        break;
      case 'watched':
        this.watched = new Set(c.nodes);
        break;
      case 'records-lost':
        this.recordsLost = true;
        break;
      case 'clients':
        // Resolved against this shard's model as the hub resolved them (it refused those it could not).
        this.clients = c.clients.flatMap(({ id, subscription }) => {
          try {
            return [{ id, filter: new SubscriptionFilter(subscription, this.model) }];
          } catch {
            return [];
          }
        });
        break;
      case 'recent':
        return { recent: c.id, paths: this.recent.find(c.fingerprints) };
    }
    return undefined;
  }

  private finished(path: PacketPath): void {
    const i = this.ends.length;
    this.recent.add(path);
    let findings: Finding[] = NO_FINDINGS;
    if (!this.healthy.known(path, this.model)) {
      findings = diagnosePath(path, this.model, { recordsLost: this.recordsLost });
      this.healthy.learn(path, findings);
    }
    if (findings.length) this.pathFindings.push([i, findings]);
    for (const c of this.clients) if (c.filter.wantsPath(path)) this.wants.push(c.id);
    this.wantsEnd.push(this.wants.length);
    this.outcomes.push(OUTCOME_INDEX.get(path.outcome) ?? 0);
    this.keys.push(this.polling ? this.key++ : this.key);
    // Encoded (once, for every client) only when a client wants it: the counters need no bytes.
    if (this.wants.length > (i ? this.wantsEnd[i - 1]! : 0)) writePathEvent(this.out, path);
    this.ends.push(this.out.length);
  }

  private take(seq: number): ShardPaths {
    this.one.length = 0;
    const paths: ShardPaths = {
      seq,
      keys: Float64Array.from(this.keys),
      bytes: this.out.finish(),
      ends: Uint32Array.from(this.ends),
      wants: Int32Array.from(this.wants),
      wantsEnd: Uint32Array.from(this.wantsEnd),
      outcomes: Uint8Array.from(this.outcomes),
      findings: this.pathFindings,
    };
    this.out.reset();
    this.ends = [];
    this.wants = [];
    this.wantsEnd = [];
    this.outcomes = [];
    this.keys = [];
    this.pathFindings = [];
    return paths;
  }
}
