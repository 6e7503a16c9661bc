// The wire at the edge: frames (proto/vxtrace.proto, package vxtrace.v1) <-> domain types
// (PacketPath, Finding, HopEvent, NodeKernelState, ...). Everything past a socket is decoded here
// into the types the rest of vxtrace uses, and encoded here from them; nothing else touches the
// generated message classes. A frame that is not what it claims to be throws WireError, and only
// WireError (test/unit/wire-codec.test.ts feeds it random bytes and random cuts).
import { vxtrace } from '../generated/vxtrace.js';
import type { DeviceRole, Direction, HopEvent, InnerPacket, OuterHeaders } from '../datapath/hop.js';
import type { PacketPath, PathHop, PathOutcome } from '../correlate/path.js';
import { FINDING_CODES, type Finding, type FindingCode, type FindingEvidence, type Severity } from '../diagnose/finding.js';
import type { DiagnosedNode } from '../diagnose/diagnosis.js';
import type { NodeKernelState } from '../cluster/kernel.js';
import type { FlowFilter, FlowRule } from '../datapath/index.js';
import { decodeHopRecord, encodeHopRecord, HopRecordError } from '../pcapng/hop-record.js';
import type { Cell, LegRecord } from '../probe/judge.js';
import type { ProbeRequest, ProbeResult } from '../probe/sender.js';
import { flowCountersMessage, flowCountersOf, flowsMessage, flowsOf, FlowWireError, type FlowCounterReport, type FlowsEvent } from './flows.js';
import { ProtoWriter } from './proto-writer.js';
import { KernelRecordBatch, kernelHopEvents, KernelRecordsError, type KernelHopRecords } from './hop-batch.js';

const pb = vxtrace.v1;
type Long = { low: number; high: number; unsigned?: boolean };

/** A frame that cannot be decoded: malformed, truncated, or not the message the endpoint takes. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/** Largest frame a client may send the hub (a Subscribe is a few hundred bytes). */
export const MAX_CLIENT_FRAME = 64 * 1024;
/** Largest frame an agent may send the hub (a batch of hop records). */
export const MAX_AGENT_FRAME = 16 * 1024 * 1024;
/** The websocket subprotocol of both endpoints. */
export const SUBPROTOCOL = 'vxtrace.v1';

// ---------------------------------------------------------------------------------------------
// 64-bit integers: bigint in the domain, {low, high} for protobufjs (no Long objects made here).

function toLong(v: bigint): Long {
  const u = BigInt.asUintN(64, v);
  return { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0 };
}

function fromLong(v: number | Long | null | undefined, signed = true): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  const u = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return signed ? BigInt.asIntN(64, u) : u;
}
const fromULong = (v: number | Long | null | undefined): number => Number(fromLong(v, false));

// ---------------------------------------------------------------------------------------------
// Enums: the domain's strings <-> the schema's numbers.

const OUTCOMES: PathOutcome[] = ['delivered', 'dropped', 'lost-in-underlay', 'vanished', 'in-flight', 'untraced'];
const ROLES: DeviceRole[] = ['pod-bridge', 'vtep', 'uplink', 'other'];
const outcomeCode = (o: PathOutcome): number => OUTCOMES.indexOf(o) + 1;
const roleCode = (r: DeviceRole): number => ROLES.indexOf(r) + 1;

function enumOf<T>(values: readonly T[], code: number | null | undefined, what: string): T {
  const v = values[(code ?? 0) - 1];
  if (v === undefined) throw new WireError(`${what} ${code} is not one vxtrace.v1 defines`);
  return v;
}

export const PATH_OUTCOMES: readonly PathOutcome[] = OUTCOMES;

// ---------------------------------------------------------------------------------------------
// Paths

function innerMsg(p: InnerPacket): vxtrace.v1.IInner {
  const m: vxtrace.v1.IInner = {
    family: p.family, src: p.src, dst: p.dst, protocol: p.protocol, srcPort: p.srcPort, dstPort: p.dstPort,
    ipId: p.ipId, ipLength: p.ipLength, ttl: p.ttl, dontFragment: p.dontFragment,
  };
  if (p.icmp) m.icmp = { ...p.icmp };
  if (p.tcp) m.tcp = { ...p.tcp };
  return m;
}

function family(v: number | null | undefined, what: string): 4 | 6 {
  if (v !== 4 && v !== 6) throw new WireError(`${what} has address family ${v}, not 4 or 6`);
  return v;
}

// Objects are built in the key order of the datapath's decoder (src/datapath/decode.ts), so that
// their NDJSON is byte for byte what a local run prints.
function innerOf(m: vxtrace.v1.IInner | null | undefined): InnerPacket {
  if (!m) throw new WireError('a path has no inner packet');
  const p: InnerPacket = {
    family: family(m.family, 'an inner packet'),
    src: m.src ?? '',
    dst: m.dst ?? '',
    protocol: m.protocol ?? 0,
    srcPort: m.srcPort ?? 0,
    dstPort: m.dstPort ?? 0,
    ipId: m.ipId ?? 0,
    ipLength: m.ipLength ?? 0,
    ttl: m.ttl ?? 0,
    dontFragment: m.dontFragment ?? false,
  };
  if (m.icmp) p.icmp = { type: m.icmp.type ?? 0, code: m.icmp.code ?? 0, id: m.icmp.id ?? 0, seq: m.icmp.seq ?? 0 };
  if (m.tcp) p.tcp = { seq: m.tcp.seq ?? 0, flags: m.tcp.flags ?? 0 };
  return p;
}

const outerMsg = (o: OuterHeaders): vxtrace.v1.IOuter => ({ ...o });

function outerOf(m: vxtrace.v1.IOuter): OuterHeaders {
  return {
    family: family(m.family, 'an outer header'),
    src: m.src ?? '',
    dst: m.dst ?? '',
    protocol: m.protocol ?? 0,
    srcPort: m.srcPort ?? 0,
    dstPort: m.dstPort ?? 0,
    vni: m.vni ?? 0,
    udpChecksum: m.udpChecksum ?? 0,
    srcMac: m.srcMac ?? '',
    dstMac: m.dstMac ?? '',
  };
}

function hopMsg(h: PathHop): vxtrace.v1.IHop {
  const e = h.event;
  const m: vxtrace.v1.IHop = {
    node: e.node,
    device: e.device,
    role: roleCode(e.role),
    direction: e.direction === 'egress' ? 2 : 1,
    kind: e.kind === 'drop' ? 2 : 1,
    timestampNs: toLong(e.timestampNs) as never,
    wallTimeNs: toLong(e.wallTimeNs) as never,
    skbLength: e.skbLength,
  };
  if (h.latencyNs !== undefined) m.latencyNs = toLong(h.latencyNs) as never;
  if (e.gso) m.gso = { ...e.gso };
  if (e.outer) m.outer = outerMsg(e.outer);
  if (e.dropReason !== undefined) m.dropReason = e.dropReason;
  if (e.dropLocation !== undefined) m.dropLocation = e.dropLocation;
  return m;
}

const EMPTY = new Uint8Array(0);

function hopOf(m: vxtrace.v1.IHop, path: { fingerprint: string; inner: InnerPacket }): PathHop {
  const event: HopEvent = {
    timestampNs: fromLong(m.timestampNs),
    wallTimeNs: fromLong(m.wallTimeNs),
    kind: m.kind === 2 ? 'drop' : m.kind === 1 ? 'tc' : bad(`hop kind ${m.kind}`),
    node: m.node ?? '',
    device: m.device ?? '',
    role: enumOf(ROLES, m.role, 'hop role'),
    direction: (m.direction === 2 ? 'egress' : m.direction === 1 ? 'ingress' : bad(`hop direction ${m.direction}`)) as Direction,
    ifindex: 0,
    netnsInode: 0,
    skbLength: m.skbLength ?? 0,
    fingerprint: path.fingerprint,
    innerSrcMac: '',
    innerDstMac: '',
    inner: path.inner,
    frame: EMPTY,
  };
  if (m.gso) event.gso = { size: m.gso.size ?? 0, segments: m.gso.segments ?? 0 };
  if (m.outer) event.outer = outerOf(m.outer);
  if (has(m, 'dropReason')) event.dropReason = m.dropReason!;
  if (has(m, 'dropLocation')) event.dropLocation = m.dropLocation!;
  const hop: PathHop = { event };
  if (has(m, 'latencyNs')) hop.latencyNs = fromLong(m.latencyNs);
  return hop;
}

function bad(what: string): never {
  throw new WireError(`${what} is not one vxtrace.v1 defines`);
}

// Presence of a proto3 `optional` field as protobufjs decodes it.
const has = (m: object, key: string): boolean => Object.prototype.hasOwnProperty.call(m, key) && (m as Record<string, unknown>)[key] != null;

export function pathMessage(p: PacketPath): vxtrace.v1.IPath {
  const m: vxtrace.v1.IPath = {
    fingerprint: p.fingerprint,
    inner: innerMsg(p.inner),
    outcome: outcomeCode(p.outcome),
    firstSeenNs: toLong(p.firstSeenNs) as never,
    lastSeenNs: toLong(p.lastSeenNs) as never,
    hops: p.hops.map(hopMsg),
  };
  if (p.srcPod !== undefined) m.srcPod = p.srcPod;
  if (p.dstPod !== undefined) m.dstPod = p.dstPod;
  if (p.srcNode !== undefined) m.srcNode = p.srcNode;
  if (p.dstNode !== undefined) m.dstNode = p.dstNode;
  if (p.outer) m.outer = outerMsg(p.outer);
  if (p.drop) {
    m.drop = { node: p.drop.node, device: p.drop.device, reason: p.drop.reason };
    if (p.drop.location !== undefined) m.drop.location = p.drop.location;
  }
  if (p.hopsDiscarded) m.hopsDiscarded = p.hopsDiscarded;
  return m;
}

// The hub's encoder of a path event: straight into one reused buffer (ProtoWriter), no message
// object per hop. Field numbers are proto/vxtrace.proto's; the bytes are exactly protobufjs' for
// pathMessage(p) (test/unit/wire-codec.test.ts compares them for fixture and random paths).

function writeOuter(w: ProtoWriter, field: number, o: OuterHeaders): void {
  const at = w.begin(field);
  w.uint32(1, o.family);
  w.string(2, o.src);
  w.string(3, o.dst);
  w.uint32(4, o.protocol);
  w.uint32(5, o.srcPort);
  w.uint32(6, o.dstPort);
  w.uint32(7, o.vni);
  w.uint32(8, o.udpChecksum);
  w.string(9, o.srcMac);
  w.string(10, o.dstMac);
  w.end(at);
}

function writeInner(w: ProtoWriter, field: number, p: InnerPacket): void {
  const at = w.begin(field);
  w.uint32(1, p.family);
  w.string(2, p.src);
  w.string(3, p.dst);
  w.uint32(4, p.protocol);
  w.uint32(5, p.srcPort);
  w.uint32(6, p.dstPort);
  w.uint32(7, p.ipId);
  w.uint32(8, p.ipLength);
  w.uint32(9, p.ttl);
  w.bool(10, p.dontFragment);
  if (p.icmp) {
    const i = w.begin(11);
    w.uint32(1, p.icmp.type);
    w.uint32(2, p.icmp.code);
    w.uint32(3, p.icmp.id);
    w.uint32(4, p.icmp.seq);
    w.end(i);
  }
  if (p.tcp) {
    const t = w.begin(12);
    w.uint32(1, p.tcp.seq);
    w.uint32(2, p.tcp.flags);
    w.end(t);
  }
  w.end(at);
}

function writeHop(w: ProtoWriter, field: number, h: PathHop): void {
  const e = h.event;
  const at = w.begin(field);
  w.string(1, e.node);
  w.string(2, e.device);
  w.uint32(3, roleCode(e.role));
  w.uint32(4, e.direction === 'egress' ? 2 : 1);
  w.uint32(5, e.kind === 'drop' ? 2 : 1);
  w.int64(6, e.timestampNs);
  w.int64(7, e.wallTimeNs);
  if (h.latencyNs !== undefined) w.int64(8, h.latencyNs, true);
  w.uint32(9, e.skbLength);
  if (e.gso) {
    const g = w.begin(10);
    w.uint32(1, e.gso.size);
    w.uint32(2, e.gso.segments);
    w.end(g);
  }
  if (e.outer) writeOuter(w, 11, e.outer);
  if (e.dropReason !== undefined) w.string(12, e.dropReason, true);
  if (e.dropLocation !== undefined) w.string(13, e.dropLocation, true);
  w.end(at);
}

function writePath(w: ProtoWriter, field: number, p: PacketPath): void {
  const at = w.begin(field);
  w.string(1, p.fingerprint);
  if (p.srcPod !== undefined) w.string(2, p.srcPod, true);
  if (p.dstPod !== undefined) w.string(3, p.dstPod, true);
  if (p.srcNode !== undefined) w.string(4, p.srcNode, true);
  if (p.dstNode !== undefined) w.string(5, p.dstNode, true);
  writeInner(w, 6, p.inner);
  if (p.outer) writeOuter(w, 7, p.outer);
  w.uint32(8, outcomeCode(p.outcome));
  if (p.drop) {
    const d = w.begin(9);
    w.string(1, p.drop.node);
    w.string(2, p.drop.device);
    w.string(3, p.drop.reason);
    if (p.drop.location !== undefined) w.string(4, p.drop.location, true);
    w.end(d);
  }
  w.int64(10, p.firstSeenNs);
  w.int64(11, p.lastSeenNs);
  for (const h of p.hops) writeHop(w, 12, h);
  if (p.hopsDiscarded) w.uint32(13, p.hopsDiscarded);
  w.end(at);
}

/** Append a path event to `w` as an `Event` field of an EventBatch (the bytes encodeEventField gives for it). */
export function writePathEvent(w: ProtoWriter, p: PacketPath): void {
  const event = w.begin(1);
  writePath(w, 1, p);
  w.end(event);
}

const scratch = new ProtoWriter();

function pathEventField(p: PacketPath): Uint8Array {
  scratch.reset();
  writePathEvent(scratch, p);
  return scratch.finish();
}

export function pathOf(m: vxtrace.v1.IPath): PacketPath {
  const fingerprint = m.fingerprint ?? '';
  const inner = innerOf(m.inner);
  const path: PacketPath = { fingerprint, inner, hops: [], outcome: enumOf(OUTCOMES, m.outcome, 'path outcome'), firstSeenNs: fromLong(m.firstSeenNs), lastSeenNs: fromLong(m.lastSeenNs) };
  // Key order of the correlator's paths (src/correlate/correlator.ts build()).
  const out: PacketPath = {
    fingerprint,
    inner,
    ...(has(m, 'srcPod') ? { srcPod: m.srcPod! } : {}),
    ...(has(m, 'dstPod') ? { dstPod: m.dstPod! } : {}),
    ...(has(m, 'srcNode') ? { srcNode: m.srcNode! } : {}),
    ...(has(m, 'dstNode') ? { dstNode: m.dstNode! } : {}),
    hops: (m.hops ?? []).map((h) => hopOf(h, path)),
    ...(m.outer ? { outer: outerOf(m.outer) } : {}),
    outcome: path.outcome,
    firstSeenNs: path.firstSeenNs,
    lastSeenNs: path.lastSeenNs,
  };
  if (m.drop) {
    out.drop = { node: m.drop.node ?? '', device: m.drop.device ?? '', reason: m.drop.reason ?? '' };
    if (has(m.drop, 'location')) out.drop.location = m.drop.location!;
  }
  if (m.hopsDiscarded) out.hopsDiscarded = m.hopsDiscarded;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Findings

const SEVERITIES: Severity[] = ['error', 'warning', 'info'];

type Fact = string | number | boolean | string[];

function factMsg(v: Fact): vxtrace.v1.IFact {
  if (Array.isArray(v)) return { list: { values: v } };
  if (typeof v === 'string') return { text: v };
  if (typeof v === 'number') return { number: v };
  return { flag: v };
}

function factOf(m: vxtrace.v1.IFact): Fact {
  if (m.list) return [...(m.list.values ?? [])];
  if (has(m, 'text')) return m.text!;
  if (has(m, 'number')) return m.number!;
  if (has(m, 'flag')) return m.flag!;
  throw new WireError('a finding fact has no value');
}

export function findingMessage(f: Finding): vxtrace.v1.IFinding {
  const evidence: vxtrace.v1.IEvidence = { observed: f.evidence.observed };
  if (f.evidence.expected !== undefined) evidence.expected = f.evidence.expected;
  if (f.evidence.packets) evidence.packets = { values: f.evidence.packets };
  if (f.evidence.facts) evidence.facts = { values: Object.fromEntries(Object.entries(f.evidence.facts).map(([k, v]) => [k, factMsg(v)])) };
  return { code: f.code, severity: f.severity, nodes: f.nodes, cause: f.cause, fix: f.fix, evidence, packetCount: f.packetCount, key: f.key };
}

export function findingOf(m: vxtrace.v1.IFinding): Finding {
  const code = m.code ?? '';
  if (!(FINDING_CODES as readonly string[]).includes(code)) throw new WireError(`finding code '${code}' is not one vxtrace knows (docs/findings.md)`);
  const severity = m.severity as Severity;
  if (!SEVERITIES.includes(severity)) throw new WireError(`finding severity '${m.severity}' is not error, warning or info`);
  const e = m.evidence ?? {};
  // Key order of the diagnoser's evidence: observed, expected, packets, facts.
  const evidence: FindingEvidence = { observed: e.observed ?? '' };
  if (has(e, 'expected')) evidence.expected = e.expected!;
  if (e.packets) evidence.packets = [...(e.packets.values ?? [])];
  if (e.facts) evidence.facts = Object.fromEntries(Object.entries(e.facts.values ?? {}).map(([k, v]) => [k, factOf(v)]));
  return { code: code as FindingCode, severity, nodes: [...(m.nodes ?? [])], cause: m.cause ?? '', fix: m.fix ?? '', evidence, packetCount: m.packetCount ?? 0, key: m.key ?? '' };
}

// ---------------------------------------------------------------------------------------------
// Stream events (hub -> client) and the subscription (client -> hub)

export type NodeState = 'connected' | 'unwatched' | 'error';
export type LostSource = 'ring-buffer' | 'agent-queue' | 'hub-queue' | 'client-queue';
const NODE_STATES: NodeState[] = ['connected', 'unwatched', 'error'];
const LOST_SOURCES: LostSource[] = ['ring-buffer', 'agent-queue', 'hub-queue', 'client-queue'];

export interface NodeStatus {
  node: string;
  state: NodeState;
  reason: string;
  timeNs: bigint;
}

export interface LostEvent {
  source: LostSource;
  node: string;
  count: number;
  timeNs: bigint;
}

export interface SubscribedEvent {
  hubVersion: string;
  nodes: string[];
  clusterFrom: string;
  timeNs: bigint;
}

/** The end of a check (the NDJSON `check` record's counts). */
export interface CheckDoneEvent {
  nodes: string[];
  pairs: number;
  working: number;
  broken: number;
  notProbed: number;
  probes: number;
  durationMs: number;
}

/** The end of one diagnosis from state (a state-only subscription): the Diagnosis without its findings, which came before it. */
export interface DiagnosisEvent {
  clusterFrom: string;
  pods: number;
  nodes: DiagnosedNode[];
  /** The keys of the findings of this diagnosis, in order. */
  findingKeys: string[];
  /** What changed since the previous diagnosis; empty for the first. */
  why: string;
  timeNs: bigint;
}

export type StreamEvent =
  | { kind: 'path'; path: PacketPath }
  | { kind: 'finding'; finding: Finding }
  | { kind: 'node'; status: NodeStatus }
  | { kind: 'lost'; lost: LostEvent }
  | { kind: 'subscribed'; subscribed: SubscribedEvent }
  | { kind: 'pair'; cell: Cell }
  | { kind: 'check-done'; done: CheckDoneEvent }
  | { kind: 'diagnosis'; diagnosis: DiagnosisEvent }
  | { kind: 'flows'; flows: FlowsEvent };

// ---------------------------------------------------------------------------------------------
// A check's cells (Pair)

const LEG_KINDS = ['base', 'size'] as const;
const LEG_NAMES = ['request', 'reply'] as const;
const LEG_DIRECTIONS = ['out', 'back'] as const;
const PROBE_PROTOCOLS = ['icmp', 'udp', 'tcp'] as const;

function oneOf<T extends string>(values: readonly T[], v: string | null | undefined, what: string): T {
  if (!values.includes(v as T)) throw new WireError(`${what} '${v}' is not one vxtrace.v1 defines (${values.join(', ')})`);
  return v as T;
}

function pairMessage(c: Cell): vxtrace.v1.IPair {
  const m: vxtrace.v1.IPair = {
    from: c.from, to: c.to, ok: c.ok, probed: c.probed, findings: c.findings,
    coverageOut: c.coverage.out, coverageBack: c.coverage.back, coverageMissing: c.coverage.missing,
    legs: c.legs.map((l) => {
      const leg: vxtrace.v1.IPairLeg = {
        probe: l.probe, kind: l.kind, attempt: l.attempt, leg: l.leg, direction: l.direction, protocol: l.protocol,
        src: l.src, dst: l.dst, bytes: l.bytes, tag: l.tag, hops: l.hops, outcome: l.outcome ? outcomeCode(l.outcome) : 0,
      };
      if (l.fingerprint !== null) leg.fingerprint = l.fingerprint;
      if (l.drop) {
        leg.drop = { node: l.drop.node, device: l.drop.device, reason: l.drop.reason };
        if (l.drop.location !== undefined) leg.drop.location = l.drop.location;
      }
      if (l.reason !== null) leg.reason = l.reason;
      if (l.error !== null) leg.error = l.error;
      return leg;
    }),
  };
  if (c.reason !== undefined) m.reason = c.reason;
  return m;
}

function pairOf(m: vxtrace.v1.IPair): Cell {
  const legs: LegRecord[] = (m.legs ?? []).map((l) => ({
    probe: l.probe ?? '',
    kind: oneOf(LEG_KINDS, l.kind, 'a probe kind'),
    attempt: l.attempt ?? 0,
    leg: oneOf(LEG_NAMES, l.leg, 'a leg'),
    direction: oneOf(LEG_DIRECTIONS, l.direction, 'a leg direction'),
    protocol: oneOf(PROBE_PROTOCOLS, l.protocol, 'a probe protocol'),
    src: l.src ?? '',
    dst: l.dst ?? '',
    bytes: l.bytes ?? 0,
    tag: l.tag ?? 0,
    outcome: l.outcome ? enumOf(OUTCOMES, l.outcome, 'leg outcome') : null,
    fingerprint: has(l, 'fingerprint') ? l.fingerprint! : null,
    hops: [...(l.hops ?? [])],
    drop: l.drop ? { node: l.drop.node ?? '', device: l.drop.device ?? '', reason: l.drop.reason ?? '', ...(has(l.drop, 'location') ? { location: l.drop.location! } : {}) } : null,
    reason: has(l, 'reason') ? l.reason! : null,
    error: has(l, 'error') ? l.error! : null,
  }));
  return {
    from: m.from ?? '',
    to: m.to ?? '',
    ok: m.ok ?? false,
    probed: m.probed ?? false,
    ...(has(m, 'reason') ? { reason: m.reason! } : {}),
    findings: [...(m.findings ?? [])],
    coverage: { out: [...(m.coverageOut ?? [])], back: [...(m.coverageBack ?? [])], missing: [...(m.coverageMissing ?? [])] },
    legs,
  };
}

/** One event as a message (the hub encodes an event once and sends it to every client that wants it). */
export function eventMessage(e: StreamEvent): vxtrace.v1.IEvent {
  switch (e.kind) {
    case 'path':
      return { path: pathMessage(e.path) };
    case 'finding':
      return { finding: findingMessage(e.finding) };
    case 'node':
      return { nodeStatus: { node: e.status.node, state: NODE_STATES.indexOf(e.status.state) + 1, reason: e.status.reason, timeNs: toLong(e.status.timeNs) as never } };
    case 'lost':
      return { lost: { source: LOST_SOURCES.indexOf(e.lost.source) + 1, node: e.lost.node, count: toLong(BigInt(e.lost.count)) as never, timeNs: toLong(e.lost.timeNs) as never } };
    case 'subscribed':
      return { subscribed: { hubVersion: e.subscribed.hubVersion, nodes: e.subscribed.nodes, clusterFrom: e.subscribed.clusterFrom, timeNs: toLong(e.subscribed.timeNs) as never } };
    case 'pair':
      return { pair: pairMessage(e.cell) };
    case 'check-done':
      return { checkDone: { ...e.done, durationMs: toLong(BigInt(e.done.durationMs)) as never } };
    case 'diagnosis': {
      const d = e.diagnosis;
      const nodes = d.nodes.map((n) => ({ name: n.name, ...(n.underlay !== undefined ? { underlay: n.underlay } : {}), underlayExplanation: n.underlayExplanation, kernelState: n.kernelState, noKernelState: n.noKernelState ?? '', ...(n.underlay6 !== undefined ? { underlay6: n.underlay6 } : {}), ...(n.underlay6Explanation !== undefined ? { underlay6Explanation: n.underlay6Explanation } : {}) }));
      return { diagnosis: { clusterFrom: d.clusterFrom, pods: d.pods, nodes, findingKeys: d.findingKeys, why: d.why, timeNs: toLong(d.timeNs) as never } };
    }
    case 'flows':
      return { flows: flowsMessage(e.flows) };
  }
}

/**
 * One event encoded as the bytes of an `Event` field of an EventBatch (tag and length included):
 * batches are these byte strings back to back, so the hub encodes each event once, however many
 * clients get it.
 */
export function encodeEventField(e: StreamEvent): Uint8Array {
  if (e.kind === 'path') return pathEventField(e.path);
  return pb.EventBatch.encode({ events: [eventMessage(e)] }).finish();
}

/** A frame from pieces made by encodeEventField. */
export function concatFrame(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function encodeEventBatch(events: readonly StreamEvent[]): Uint8Array {
  return concatFrame(events.map(encodeEventField));
}

function decodeWith<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof WireError) throw err;
    if (err instanceof HopRecordError || err instanceof FlowWireError) throw new WireError(`${what}: ${err.message}`);
    throw new WireError(`${what} is malformed: ${(err as Error).message}`);
  }
}

export function decodeEventBatch(bytes: Uint8Array): StreamEvent[] {
  return decodeWith('an EventBatch', () => {
    const batch = pb.EventBatch.decode(bytes);
    return batch.events.map((m): StreamEvent => {
      if (m.path) return { kind: 'path', path: pathOf(m.path) };
      if (m.finding) return { kind: 'finding', finding: findingOf(m.finding) };
      if (m.nodeStatus) {
        const s = m.nodeStatus;
        return { kind: 'node', status: { node: s.node ?? '', state: enumOf(NODE_STATES, s.state, 'node state'), reason: s.reason ?? '', timeNs: fromLong(s.timeNs) } };
      }
      if (m.lost) {
        const l = m.lost;
        return { kind: 'lost', lost: { source: enumOf(LOST_SOURCES, l.source, 'lost source'), node: l.node ?? '', count: fromULong(l.count), timeNs: fromLong(l.timeNs) } };
      }
      if (m.subscribed) {
        const s = m.subscribed;
        return { kind: 'subscribed', subscribed: { hubVersion: s.hubVersion ?? '', nodes: [...(s.nodes ?? [])], clusterFrom: s.clusterFrom ?? '', timeNs: fromLong(s.timeNs) } };
      }
      if (m.pair) return { kind: 'pair', cell: pairOf(m.pair) };
      if (m.checkDone) {
        const d = m.checkDone;
        return { kind: 'check-done', done: { nodes: [...(d.nodes ?? [])], pairs: d.pairs ?? 0, working: d.working ?? 0, broken: d.broken ?? 0, notProbed: d.notProbed ?? 0, probes: d.probes ?? 0, durationMs: fromULong(d.durationMs) } };
      }
      if (m.diagnosis) {
        const d = m.diagnosis;
        const nodes = (d.nodes ?? []).map((n): DiagnosedNode => ({
          name: n.name ?? '',
          ...(n.underlay != null ? { underlay: n.underlay } : {}),
          underlayExplanation: n.underlayExplanation ?? '',
          kernelState: !!n.kernelState,
          ...(!n.kernelState ? { noKernelState: n.noKernelState ?? '' } : {}),
          ...(n.underlay6 != null ? { underlay6: n.underlay6 } : {}),
          ...(n.underlay6Explanation ? { underlay6Explanation: n.underlay6Explanation } : {}),
        }));
        return { kind: 'diagnosis', diagnosis: { clusterFrom: d.clusterFrom ?? '', pods: d.pods ?? 0, nodes, findingKeys: [...(d.findingKeys ?? [])], why: d.why ?? '', timeNs: fromLong(d.timeNs) } };
      }
      if (m.flows) return { kind: 'flows', flows: flowsOf(m.flows) };
      throw new WireError('an event of the batch is empty (no path, finding, node status, lost, subscribed, pair, check done, diagnosis or flows)');
    });
  });
}

/** What a client asks the hub for (proto Subscribe; docs/protocol.md). */
export interface Subscription {
  from?: string;
  to?: string;
  bothWays?: boolean;
  pod?: string;
  node?: string;
  codes?: string[];
  outcomes?: string[];
  protocol?: string;
  port?: number;
  client?: string;
  /** Run a check instead of streaming (`vxtrace check --hub`). */
  check?: CheckRequest;
  /** Findings from state only (`diagnose --hub`): no paths, no agent's filter changes. */
  stateOnly?: boolean;
}

export interface CheckRequest {
  protocol: 'icmp' | 'udp' | 'tcp';
  /** IP length of the DF probe; undefined: each sender's VXLAN MTU. */
  size?: number;
  /** How long a probe waits for its reply, ms (default 1000). */
  timeoutMs?: number;
}

export function encodeSubscribe(s: Subscription): Uint8Array {
  const { check, ...rest } = s;
  return pb.Subscribe.encode({ ...rest, ...(check ? { check: { protocol: check.protocol, size: check.size ?? 0, timeoutMs: check.timeoutMs ?? 0 } } : {}) }).finish();
}

export function decodeSubscribe(bytes: Uint8Array): Subscription {
  return decodeWith('a Subscribe', () => {
    const m = pb.Subscribe.decode(bytes);
    const s: Subscription = {};
    if (m.from) s.from = m.from;
    if (m.to) s.to = m.to;
    if (m.bothWays) s.bothWays = true;
    if (m.pod) s.pod = m.pod;
    if (m.node) s.node = m.node;
    if (m.codes.length) s.codes = [...m.codes];
    if (m.outcomes.length) s.outcomes = [...m.outcomes];
    if (m.protocol) s.protocol = m.protocol;
    if (m.port) s.port = m.port;
    if (m.client) s.client = m.client;
    if (m.check) {
      s.check = { protocol: m.check.protocol ? oneOf(PROBE_PROTOCOLS, m.check.protocol, 'a check protocol') : 'icmp' };
      if (m.check.size) s.check.size = m.check.size;
      if (m.check.timeoutMs) s.check.timeoutMs = m.check.timeoutMs;
    }
    if (m.stateOnly) s.stateOnly = true;
    return s;
  });
}

// ---------------------------------------------------------------------------------------------
// Agent <-> hub

export interface AgentHello {
  node: string;
  version: string;
  hostname: string;
  hooks: string[];
  wallTimeNs: bigint;
}

export interface AgentStats {
  ringLost: number;
  queueDropped: number;
  records: number;
  wallTimeNs: bigint;
}

/**
 * A frame of hop records as it arrived, decoded into HopEvents only when the hub takes them: the
 * kernel's records back to back (what agents send), and/or one record at a time in the trace file's
 * encoding (tools, tests).
 */
export interface HopRecords {
  records: { record: Uint8Array; frame: Uint8Array }[];
  kernel?: KernelHopRecords;
}

export type AgentReport =
  | { kind: 'hello'; hello: AgentHello }
  | { kind: 'hops'; hops: HopRecords }
  | { kind: 'kernel-state'; state: NodeKernelState }
  | { kind: 'stats'; stats: AgentStats }
  | { kind: 'filter-applied'; generation: number }
  | { kind: 'error'; message: string }
  | { kind: 'probe-results'; results: (ProbeResult & { id: number })[] }
  | { kind: 'flow-counters'; counters: FlowCounterReport };

/** A probe the hub asks an agent to send (SendProbes), or to stop waiting for (`cancel`). */
export type WireProbe = (ProbeRequest & { id: number; cancel?: false }) | { id: number; cancel: true };

export type AgentCommand = { kind: 'set-filter'; generation: number; filter: FlowFilter } | { kind: 'send-probes'; probes: WireProbe[] };

export function encodeAgentReport(r: AgentReport): Uint8Array {
  switch (r.kind) {
    case 'hello':
      return pb.AgentReport.encode({ hello: { ...r.hello, wallTimeNs: toLong(r.hello.wallTimeNs) as never } }).finish();
    case 'hops': {
      const k = r.hops.kernel;
      const hops: vxtrace.v1.IHopBatch = { records: r.hops.records };
      if (k) {
        hops.kernelRecords = k.bytes;
        hops.hooks = k.hooks.map((h) => ({ netnsCookie: toLong(h.netnsCookie) as never, ifindex: h.ifindex, node: h.node, device: h.device, role: roleCode(h.role), netnsInode: h.netnsInode }));
        if (k.dropReasons.size) hops.dropReasons = Object.fromEntries(k.dropReasons);
        hops.dropLocations = k.dropLocations;
        hops.monotonicToWallNs = toLong(k.monotonicToWallNs) as never;
      }
      return pb.AgentReport.encode({ hops }).finish();
    }
    case 'kernel-state': {
      const k = r.state;
      return pb.AgentReport.encode({
        kernelState: {
          ...(k as vxtrace.v1.IKernelState),
          rpFilterRead: k.rpFilter !== undefined,
          firewallRead: k.firewall !== undefined,
          qdiscsRead: k.qdiscs !== undefined,
          tcFiltersRead: k.tcFilters !== undefined,
        },
      }).finish();
    }
    case 'stats':
      return pb.AgentReport.encode({
        stats: { ringLost: toLong(BigInt(r.stats.ringLost)) as never, queueDropped: toLong(BigInt(r.stats.queueDropped)) as never, records: toLong(BigInt(r.stats.records)) as never, wallTimeNs: toLong(r.stats.wallTimeNs) as never },
      }).finish();
    case 'filter-applied':
      return pb.AgentReport.encode({ filterApplied: { generation: r.generation } }).finish();
    case 'error':
      return pb.AgentReport.encode({ error: { message: r.message } }).finish();
    case 'probe-results':
      return pb.AgentReport.encode({ probeResults: { results: r.results.map((x) => ({ id: x.id, replied: x.replied, ...(x.error !== undefined ? { error: x.error } : {}) })) } }).finish();
    case 'flow-counters':
      return pb.AgentReport.encode({ flowCounters: flowCountersMessage(r.counters) }).finish();
  }
}

/** The hop records of a batch of events, one by one as the trace file stores them (src/pcapng/hop-record.ts): tools and tests. */
export function hopRecordsOf(events: readonly HopEvent[]): HopRecords {
  return { records: events.map((e) => ({ record: encodeHopRecord(e, { outcome: 'unknown' }), frame: e.frame })) };
}

/** Hop records as an agent sends them: the kernel's records of the events, in one batch (src/wire/hop-batch.ts). */
export function kernelHopRecordsOf(events: readonly HopEvent[]): HopRecords {
  const batch = new KernelRecordBatch();
  for (const e of events) {
    if (!batch.add(e)) throw new RangeError('the events of one batch of kernel records need one wall - monotonic clock offset and one name per hook (netns cookie, ifindex)');
  }
  return { records: [], kernel: batch.records() };
}

/**
 * The HopEvents of a batch of kernel records (src/wire/hop-batch.ts), `correctionNs` added to their
 * wall clocks; a record of a hook the batch does not name has node ''. Throws WireError.
 */
export function hopEventsOfKernel(k: KernelHopRecords, correctionNs = 0n): HopEvent[] {
  try {
    return kernelHopEvents(k, correctionNs);
  } catch (err) {
    if (err instanceof KernelRecordsError) throw new WireError(`the kernel records of a HopBatch are malformed: ${err.message}`);
    throw err;
  }
}

/** One hop record back into its HopEvent (the record's PEN is skipped). Throws WireError. */
export function hopEventOf(r: { record: Uint8Array; frame: Uint8Array }): HopEvent {
  if (r.record.length < 4) throw new WireError('a hop record is shorter than its PEN');
  try {
    // The frame stays a view into the frame the socket received (ws gives each message its own
    // buffer): no copy per record; a batch is kept while a path holds one of its hops.
    return decodeHopRecord(r.record.subarray(4), r.frame, { copy: false }).event;
  } catch (err) {
    if (err instanceof HopRecordError) throw new WireError(`a hop record is malformed: ${err.message}`);
    throw err;
  }
}

const NFT_VERDICTS = ['accept', 'drop', 'reject', 'jump', 'goto', 'return', 'continue', 'queue'] as const;
const TC_DIRECTIONS = ['ingress', 'egress'] as const;

function kernelStateOf(m: vxtrace.v1.IKernelState): NodeKernelState {
  const neighbours = (l: vxtrace.v1.INeighEntry[] | null | undefined) => (l ?? []).map((n) => ({ ip: n.ip ?? '', ...opt(n, 'mac', n.mac), states: [...(n.states ?? [])] }));
  const fdb = (l: vxtrace.v1.IFdbEntry[] | null | undefined) => (l ?? []).map((f) => ({ mac: f.mac ?? '', ...opt(f, 'dst', f.dst), permanent: f.permanent ?? false, self: f.self ?? false, ...opt(f, 'vni', f.vni), ...opt(f, 'port', f.port) }));
  const opt = <T>(o: object, k: string, v: T | null | undefined): { [key: string]: T } => (has(o, k) ? { [k]: v as T } : {});
  const state: NodeKernelState = {
    links: (m.links ?? []).map((l) => ({ name: l.name ?? '', ifindex: l.ifindex ?? 0, kind: l.kind ?? '', mtu: l.mtu ?? 0, mac: l.mac ?? '', up: l.up ?? false, ...opt(l, 'master', l.master) })),
    addresses: (m.addresses ?? []).map((a) => ({ device: a.device ?? '', family: family(a.family, 'a kernel address'), address: a.address ?? '', prefixLength: a.prefixLength ?? 0, scope: a.scope ?? '' })),
    routes: (m.routes ?? []).map((r) => ({ dst: r.dst ?? '', ...opt(r, 'gateway', r.gateway), ...opt(r, 'device', r.device), onlink: r.onlink ?? false, ...opt(r, 'prefsrc', r.prefsrc), type: r.type ?? '', ...(r.family === 6 ? { family: 6 as const } : {}) })),
    neighbours: neighbours(m.neighbours),
    fdb: fdb(m.fdb),
  };
  const vxlan = (v: vxtrace.v1.IVxlanDevice) => ({
    name: v.name ?? '', ifindex: v.ifindex ?? 0, vni: v.vni ?? 0, port: v.port ?? 0, ...opt(v, 'local', v.local), ...opt(v, 'lowerDevice', v.lowerDevice),
    mtu: v.mtu ?? 0, mac: v.mac ?? '', learning: v.learning ?? false, up: v.up ?? false,
  });
  if (m.vxlan) state.vxlan = vxlan(m.vxlan);
  // The IPv6 VTEP: its device, and its neighbours and FDB entries when it has one.
  if (m.vxlan6) {
    state.vxlan6 = vxlan(m.vxlan6);
    state.neighbours6 = neighbours(m.neighbours6);
    state.fdb6 = fdb(m.fdb6);
  }
  if (m.rpFilterRead) {
    const rp: Record<string, 0 | 1 | 2> = {};
    for (const [dev, v] of Object.entries(m.rpFilter ?? {})) {
      if (v !== 0 && v !== 1 && v !== 2) throw new WireError(`rp_filter ${v} of ${dev} is not 0, 1 or 2`);
      rp[dev] = v;
    }
    state.rpFilter = rp;
  }
  if (m.firewallRead) {
    state.firewall = (m.firewall ?? []).map((c) => ({
      family: c.family ?? '', table: c.table ?? '', name: c.name ?? '',
      ...opt(c, 'hook', c.hook), ...opt(c, 'type', c.type), ...opt(c, 'priority', c.priority), ...opt(c, 'policy', c.policy),
      ...(c.devices?.length ? { devices: [...c.devices] } : {}),
      ...opt(c, 'legacy', c.legacy),
      rules: (c.rules ?? []).map((r) => ({
        handle: r.handle ?? 0, text: r.text ?? '', ...opt(r, 'comment', r.comment),
        matches: (r.matches ?? []).map((x) => ({ key: x.key ?? '', op: x.op ?? '', values: [...(x.values ?? [])] })),
        opaque: r.opaque ?? false,
        ...(has(r, 'verdict') ? { verdict: oneOf(NFT_VERDICTS, r.verdict, 'an nftables verdict') } : {}),
        ...opt(r, 'target', r.target),
      })),
    }));
  }
  if (m.qdiscsRead) state.qdiscs = (m.qdiscs ?? []).map((q) => ({ device: q.device ?? '', kind: q.kind ?? '', root: q.root ?? false }));
  if (m.tcFiltersRead) {
    state.tcFilters = (m.tcFilters ?? []).map((f) => ({
      device: f.device ?? '', direction: oneOf(TC_DIRECTIONS, f.direction, 'a tc filter direction'), pref: f.pref ?? 0, kind: f.kind ?? '', ...opt(f, 'name', f.name), text: f.text ?? '',
    }));
  }
  return state;
}

/** A plain Uint8Array view of a Buffer: protobufjs then cuts bytes fields with subarray, not as Buffers (cheaper, per record). */
const plainView = (b: Uint8Array): Uint8Array => (Buffer.isBuffer(b) ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : b);

export function decodeAgentReport(bytes: Uint8Array): AgentReport {
  return decodeWith('an AgentReport', (): AgentReport => {
    const m = pb.AgentReport.decode(plainView(bytes));
    if (m.hello) {
      const h = m.hello;
      if (!h.node) throw new WireError('the agent hello names no node');
      return { kind: 'hello', hello: { node: h.node, version: h.version ?? '', hostname: h.hostname ?? '', hooks: [...(h.hooks ?? [])], wallTimeNs: fromLong(h.wallTimeNs) } };
    }
    if (m.hops) {
      const h = m.hops;
      const hops: HopRecords = { records: (h.records ?? []).map((r) => ({ record: r.record ?? EMPTY, frame: r.frame ?? EMPTY })) };
      if (h.kernelRecords?.length) {
        hops.kernel = {
          bytes: h.kernelRecords,
          hooks: (h.hooks ?? []).map((k) => ({
            netnsCookie: fromLong(k.netnsCookie, false), ifindex: k.ifindex ?? 0, node: k.node ?? '', device: k.device ?? '',
            role: enumOf(ROLES, k.role, 'hook role'), netnsInode: k.netnsInode ?? 0,
          })),
          dropReasons: new Map(Object.entries(h.dropReasons ?? {}).map(([code, name]) => [Number(code), name])),
          dropLocations: [...(h.dropLocations ?? [])],
          monotonicToWallNs: fromLong(h.monotonicToWallNs),
        };
      }
      return { kind: 'hops', hops };
    }
    if (m.kernelState) return { kind: 'kernel-state', state: kernelStateOf(m.kernelState) };
    if (m.stats) {
      const s = m.stats;
      return { kind: 'stats', stats: { ringLost: fromULong(s.ringLost), queueDropped: fromULong(s.queueDropped), records: fromULong(s.records), wallTimeNs: fromLong(s.wallTimeNs) } };
    }
    if (m.filterApplied) return { kind: 'filter-applied', generation: m.filterApplied.generation ?? 0 };
    if (m.error) return { kind: 'error', message: m.error.message ?? '' };
    if (m.probeResults) {
      return { kind: 'probe-results', results: (m.probeResults.results ?? []).map((x) => ({ id: x.id ?? 0, replied: x.replied ?? false, ...(has(x, 'error') ? { error: x.error! } : {}) })) };
    }
    if (m.flowCounters) return { kind: 'flow-counters', counters: flowCountersOf(m.flowCounters) };
    throw new WireError('an AgentReport carries nothing (no hello, hops, kernel state, stats, filter-applied, error, probe results or flow counters)');
  });
}

function ruleMsg(r: FlowRule): vxtrace.v1.IFlowRule {
  const [a, b] = r.between ?? ['any', 'any'];
  return { a, b, protocol: r.protocol === undefined ? '' : String(r.protocol), port: r.port ?? 0 };
}

function ruleOf(m: vxtrace.v1.IFlowRule): FlowRule {
  const rule: FlowRule = {};
  if ((m.a && m.a !== 'any') || (m.b && m.b !== 'any')) rule.between = [m.a || 'any', m.b || 'any'];
  if (m.protocol) rule.protocol = /^\d+$/.test(m.protocol) ? Number(m.protocol) : (m.protocol as FlowRule['protocol']);
  if (m.port) rule.port = m.port;
  return rule;
}

export function encodeAgentCommand(c: AgentCommand): Uint8Array {
  if (c.kind === 'send-probes') {
    return pb.AgentCommand.encode({
      sendProbes: { probes: c.probes.map((p) => (p.cancel ? { id: p.id, cancel: true } : { id: p.id, protocol: p.protocol, src: p.src, dst: p.dst, tag: p.tag, bytes: p.bytes, df: p.df, timeoutMs: p.timeoutMs })) },
    }).finish();
  }
  const f = c.filter;
  const setFilter: vxtrace.v1.ISetFilter =
    f === 'none' ? { generation: c.generation, mode: 0 } : f === 'everything' ? { generation: c.generation, mode: 1 } : { generation: c.generation, mode: 2, rules: f.rules.map(ruleMsg) };
  return pb.AgentCommand.encode({ setFilter }).finish();
}

export function decodeAgentCommand(bytes: Uint8Array): AgentCommand {
  return decodeWith('an AgentCommand', (): AgentCommand => {
    const m = pb.AgentCommand.decode(bytes);
    if (m.sendProbes) {
      return {
        kind: 'send-probes',
        probes: (m.sendProbes.probes ?? []).map((p): WireProbe => (p.cancel
          ? { id: p.id ?? 0, cancel: true }
          : { id: p.id ?? 0, protocol: oneOf(PROBE_PROTOCOLS, p.protocol, 'a probe protocol'), src: p.src ?? '', dst: p.dst ?? '', tag: p.tag ?? 0, bytes: p.bytes ?? 0, df: p.df ?? false, timeoutMs: p.timeoutMs ?? 1000 })),
      };
    }
    if (!m.setFilter) throw new WireError('an AgentCommand carries no command');
    const s = m.setFilter;
    const filter: FlowFilter = s.mode === 1 ? 'everything' : s.mode === 2 ? { rules: (s.rules ?? []).map(ruleOf) } : s.mode === 0 || s.mode == null ? 'none' : bad(`filter mode ${s.mode}`);
    return { kind: 'set-filter', generation: s.generation ?? 0, filter };
  });
}
