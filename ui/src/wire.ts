// The page's edge: hub frames (proto/vxtrace.proto, package vxtrace.v1, decoded by the module the
// build generates from it — the same one the hub and the CLI use) -> the events the store takes,
// and the page's requests -> bytes. A frame that is not an EventBatch throws FrameError, and only
// FrameError (test/unit/ui-wire.test.ts feeds it random bytes and cuts). Pure: no DOM.
import { vxtrace } from '../../src/generated/vxtrace.js';

export type PathMessage = vxtrace.v1.IPath;
export type HopMessage = vxtrace.v1.IHop;
export type FindingMessage = vxtrace.v1.IFinding;
export type NodeMapMessage = vxtrace.v1.INodeMap;
export type NodeInfoMessage = vxtrace.v1.INodeInfo;

/** A frame from the hub that is not what it claims to be. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export type NodeState = 'connected' | 'unwatched' | 'error';
export type LostSource = 'ring-buffer' | 'agent-queue' | 'hub-queue' | 'client-queue';

export type PageEvent =
  | { kind: 'path'; path: PathMessage }
  | { kind: 'finding'; finding: FindingMessage }
  | { kind: 'node'; node: string; state: NodeState; reason: string }
  | { kind: 'lost'; source: LostSource; node: string; count: number }
  | { kind: 'subscribed'; hubVersion: string; nodes: string[]; clusterFrom: string };

// ---------------------------------------------------------------------------------------------
// 64-bit integers: protobufjs gives a number or a Long ({low, high}); the page wants numbers.

export type Int64 = number | { low: number; high: number } | null | undefined;

const TWO_32 = 4294967296;

/** A 64-bit integer as a number (exact below 2^53; ns since the epoch are off by at most 256 ns). */
export function int64(v: Int64): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  return v.high * TWO_32 + (v.low >>> 0);
}

/** b - a, exact for any two 64-bit values less than 2^53 apart (two wall clocks in ns). */
export function nsBetween(a: Int64, b: Int64): number {
  if (typeof a === 'number' || typeof b === 'number' || !a || !b) return int64(b) - int64(a);
  return (b.high - a.high) * TWO_32 + ((b.low >>> 0) - (a.low >>> 0));
}

// ---------------------------------------------------------------------------------------------
// Enums: the schema's numbers -> the names vxtrace prints (docs/ndjson.md).

const enumName = (values: Record<number, string>, v: number | null | undefined): string | undefined => {
  const name = values[v ?? 0];
  return name && !name.endsWith('_UNSPECIFIED') ? name.toLowerCase().replace(/_/g, '-') : undefined;
};

export type Outcome = 'delivered' | 'dropped' | 'lost-in-underlay' | 'vanished' | 'in-flight' | 'untraced';
export const OUTCOMES: readonly Outcome[] = ['delivered', 'dropped', 'lost-in-underlay', 'vanished', 'in-flight', 'untraced'];

export function outcomeOf(p: PathMessage): Outcome {
  return (enumName(vxtrace.v1.Path.Outcome as unknown as Record<number, string>, p.outcome) as Outcome | undefined) ?? 'in-flight';
}

export function roleOf(h: HopMessage): string {
  return enumName(vxtrace.v1.Hop.Role as unknown as Record<number, string>, h.role) ?? 'other';
}

export const directionOf = (h: HopMessage): 'ingress' | 'egress' => (h.direction === vxtrace.v1.Hop.Direction.EGRESS ? 'egress' : 'ingress');
export const isDropHop = (h: HopMessage): boolean => h.kind === vxtrace.v1.Hop.Kind.DROP;

/** Presence of a proto3 `optional` field as protobufjs decodes it. */
export const has = (m: object, key: string): boolean => Object.prototype.hasOwnProperty.call(m, key) && (m as Record<string, unknown>)[key] != null;

// ---------------------------------------------------------------------------------------------
// Frames

const NODE_STATES: Record<number, NodeState> = { 1: 'connected', 2: 'unwatched', 3: 'error' };
const LOST_SOURCES: Record<number, LostSource> = { 1: 'ring-buffer', 2: 'agent-queue', 3: 'hub-queue', 4: 'client-queue' };

function check(ok: boolean, what: string): void {
  if (!ok) throw new FrameError(what);
}

/** One hub -> client frame (one EventBatch) -> its events, in order. */
export function decodeFrame(bytes: Uint8Array): PageEvent[] {
  let batch: vxtrace.v1.EventBatch;
  try {
    batch = vxtrace.v1.EventBatch.decode(bytes);
  } catch (err) {
    throw new FrameError(`a frame from the hub is not an EventBatch: ${(err as Error).message}`);
  }
  const out: PageEvent[] = [];
  for (const e of batch.events) {
    if (e.path) {
      check(!!e.path.inner, 'a path without its inner packet');
      out.push({ kind: 'path', path: e.path });
    } else if (e.finding) {
      check(!!e.finding.code && !!e.finding.key, 'a finding without code or key');
      out.push({ kind: 'finding', finding: e.finding });
    } else if (e.nodeStatus) {
      const state = NODE_STATES[e.nodeStatus.state ?? 0];
      check(!!state && !!e.nodeStatus.node, `a node status with state ${e.nodeStatus.state} or no node`);
      out.push({ kind: 'node', node: e.nodeStatus.node!, state: state!, reason: e.nodeStatus.reason ?? '' });
    } else if (e.lost) {
      const source = LOST_SOURCES[e.lost.source ?? 0];
      check(!!source, `a lost event from source ${e.lost.source}`);
      out.push({ kind: 'lost', source: source!, node: e.lost.node ?? '', count: int64(e.lost.count) });
    } else if (e.subscribed) {
      out.push({ kind: 'subscribed', hubVersion: e.subscribed.hubVersion ?? '', nodes: [...(e.subscribed.nodes ?? [])], clusterFrom: e.subscribed.clusterFrom ?? '' });
    }
    // An event of a kind this page does not know (a newer hub) is skipped, not an error.
  }
  return out;
}

/** What the page asks the hub for: the filter bar, as a Subscribe. */
export interface PageFilter {
  from?: string;
  to?: string;
  bothWays?: boolean;
  node?: string;
  outcomes?: string[];
  codes?: string[];
}

export function subscribeFrame(f: PageFilter): Uint8Array {
  const m: vxtrace.v1.ISubscribe = { client: 'page' };
  if (f.from) m.from = f.from;
  if (f.to) m.to = f.to;
  if (f.from && f.to && f.bothWays) m.bothWays = true;
  if (f.node) m.node = f.node;
  if (f.outcomes?.length) m.outcomes = f.outcomes;
  if (f.codes?.length) m.codes = f.codes;
  return vxtrace.v1.Subscribe.encode(m).finish();
}

export function decodeNodeMap(bytes: Uint8Array): NodeMapMessage {
  try {
    return vxtrace.v1.NodeMap.decode(bytes);
  } catch (err) {
    throw new FrameError(`the hub's node map is not a NodeMap: ${(err as Error).message}`);
  }
}

export function pcapngRequest(fingerprints: readonly string[]): Uint8Array {
  return vxtrace.v1.PcapngRequest.encode({ fingerprints: [...fingerprints] }).finish();
}
