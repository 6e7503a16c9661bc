// The page's edge: hub frames (proto/vxtrace.proto, package vxtrace.v1, decoded by the module the
// build generates from it — the same one the hub and the CLI use) -> the events the store takes,
// and the page's requests -> bytes. A frame that is not an EventBatch throws FrameError, and only
// FrameError (test/unit/ui-wire.test.ts feeds it random bytes and cuts). Pure: no DOM.
import $protobuf from 'protobufjs/minimal.js';
import { vxtrace } from '../../src/generated/vxtrace.js';

export type PathMessage = vxtrace.v1.IPath;
export type HopMessage = vxtrace.v1.IHop;
export type FindingMessage = vxtrace.v1.IFinding;
export type NodeMapMessage = vxtrace.v1.INodeMap;
export type NodeInfoMessage = vxtrace.v1.INodeInfo;
export type FlowSummaryMessage = vxtrace.v1.IFlowSummary;

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
  /** A path without its hops (`raw` holds them: fullPath decodes them when the page needs them). */
  | { kind: 'path'; path: PathMessage; raw: Uint8Array; hopCount: number }
  | { kind: 'finding'; finding: FindingMessage }
  | { kind: 'node'; node: string; state: NodeState; reason: string }
  | { kind: 'lost'; source: LostSource; node: string; count: number }
  | { kind: 'subscribed'; hubVersion: string; nodes: string[]; clusterFrom: string }
  /** The kernel's per-hop counters of flows that changed (each replaces the one before it). */
  | { kind: 'flows'; flows: FlowSummaryMessage[] };

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

// ---------------------------------------------------------------------------------------------
// At thousands of paths a second, decoding every hop of every path is nine tenths of the page's
// work, and the page shows the hops of one path at a time: a frame is walked field by field, each
// path decoded without its hops (their bytes are kept), and fullPath decodes one path whole when it
// is looked at. The three field numbers this needs are read from the generated encoder, not typed in.

const Reader = $protobuf.Reader;
const fieldNumber = (bytes: Uint8Array): number => Reader.create(bytes).uint32() >>> 3;
const EVENTS_FIELD = fieldNumber(vxtrace.v1.EventBatch.encode({ events: [{}] }).finish());
const PATH_FIELD = fieldNumber(vxtrace.v1.Event.encode({ path: {} }).finish());
const HOPS_FIELD = fieldNumber(vxtrace.v1.Path.encode({ hops: [{}] }).finish());
const LENGTH_DELIMITED = 2;

/** The fields of a length-delimited message, as [field, wire type, start, end) of each (tag included). */
function walk(bytes: Uint8Array, each: (field: number, wireType: number, start: number, valueStart: number, end: number) => void): void {
  const r = Reader.create(bytes);
  while (r.pos < r.len) {
    const start = r.pos;
    const tag = r.uint32();
    const wireType = tag & 7;
    let valueStart = r.pos;
    if (wireType === LENGTH_DELIMITED) {
      const len = r.uint32();
      valueStart = r.pos;
      if (valueStart + len > r.len) throw new RangeError(`a field of ${len} bytes runs past the end`);
      r.pos = valueStart + len;
    } else {
      r.skipType(wireType);
    }
    each(tag >>> 3, wireType, start, valueStart, r.pos);
  }
}

/** A path message without its hops, and how many hops its bytes hold. */
function lightPath(raw: Uint8Array): { path: PathMessage; hopCount: number } {
  const keep: [number, number][] = [];
  let hopCount = 0;
  let size = 0;
  walk(raw, (field, wireType, start, _v, end) => {
    if (field === HOPS_FIELD && wireType === LENGTH_DELIMITED) {
      hopCount++;
      return;
    }
    keep.push([start, end]);
    size += end - start;
  });
  const rest = new Uint8Array(size);
  let at = 0;
  for (const [a, b] of keep) {
    rest.set(raw.subarray(a, b), at);
    at += b - a;
  }
  return { path: vxtrace.v1.Path.decode(rest), hopCount };
}

/** The whole path, hops included, from the bytes a path event kept. */
export function fullPath(raw: Uint8Array): PathMessage {
  try {
    return vxtrace.v1.Path.decode(raw);
  } catch (err) {
    throw new FrameError(`a path from the hub is malformed: ${(err as Error).message}`);
  }
}

function eventOf(bytes: Uint8Array): PageEvent | undefined {
  let raw: Uint8Array | undefined;
  walk(bytes, (field, wireType, _s, valueStart, end) => {
    if (field === PATH_FIELD && wireType === LENGTH_DELIMITED) raw = bytes.subarray(valueStart, end);
  });
  if (raw) {
    const { path, hopCount } = lightPath(raw);
    check(!!path.inner, 'a path without its inner packet');
    return { kind: 'path', path, raw, hopCount };
  }
  const e = vxtrace.v1.Event.decode(bytes);
  if (e.finding) {
    check(!!e.finding.code && !!e.finding.key, 'a finding without code or key');
    return { kind: 'finding', finding: e.finding };
  }
  if (e.nodeStatus) {
    const state = NODE_STATES[e.nodeStatus.state ?? 0];
    check(!!state && !!e.nodeStatus.node, `a node status with state ${e.nodeStatus.state} or no node`);
    return { kind: 'node', node: e.nodeStatus.node!, state: state!, reason: e.nodeStatus.reason ?? '' };
  }
  if (e.lost) {
    const source = LOST_SOURCES[e.lost.source ?? 0];
    check(!!source, `a lost event from source ${e.lost.source}`);
    return { kind: 'lost', source: source!, node: e.lost.node ?? '', count: int64(e.lost.count) };
  }
  if (e.subscribed) {
    return { kind: 'subscribed', hubVersion: e.subscribed.hubVersion ?? '', nodes: [...(e.subscribed.nodes ?? [])], clusterFrom: e.subscribed.clusterFrom ?? '' };
  }
  if (e.flows) {
    for (const f of e.flows.flows ?? []) check(!!f.flow, 'a flow summary without its flow');
    return { kind: 'flows', flows: e.flows.flows ?? [] };
  }
  // An event of a kind this page does not know (a newer hub) is skipped, not an error.
  return undefined;
}

/** One hub -> client frame (one EventBatch) -> its events, in order. */
export function decodeFrame(bytes: Uint8Array): PageEvent[] {
  const out: PageEvent[] = [];
  try {
    walk(bytes, (field, wireType, _s, valueStart, end) => {
      if (field !== EVENTS_FIELD || wireType !== LENGTH_DELIMITED) return;
      const e = eventOf(bytes.subarray(valueStart, end));
      if (e) out.push(e);
    });
  } catch (err) {
    if (err instanceof FrameError) throw err;
    throw new FrameError(`a frame from the hub is not an EventBatch: ${(err as Error).message}`);
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

/**
 * The key of the kernel's flow a path belongs to (bpf/vxtrace.bpf.c keys an ICMP echo by its id,
 * as the source port), and of a flow summary: equal when the path is one of the flow's packets.
 */
export function flowKeyOfPath(p: PathMessage): string {
  const i = p.inner;
  const srcPort = i?.icmp && (i.icmp.id || i.icmp.seq) ? i.icmp.id ?? 0 : i?.srcPort ?? 0;
  return `${i?.family ?? 0}|${i?.src ?? ''}|${i?.dst ?? ''}|${i?.protocol ?? 0}|${srcPort}|${i?.dstPort ?? 0}`;
}

export function flowKeyOfSummary(s: FlowSummaryMessage): string {
  const f = s.flow;
  return `${f?.family ?? 0}|${f?.src ?? ''}|${f?.dst ?? ''}|${f?.protocol ?? 0}|${f?.srcPort ?? 0}|${f?.dstPort ?? 0}`;
}
