// NDJSON output (`--json`): one object per line, `type` first. Schema: docs/ndjson.md.
// Field names are stable; bigints (timestamps) are decimal strings, frames are not included.
import type { HopEvent } from '../datapath/hop.js';
import type { PacketPath } from '../correlate/path.js';
import type { Finding } from '../diagnose/finding.js';
import type { RunSummary } from './text.js';
import type { Cell, CheckVerdict } from '../probe/judge.js';
import type { FlowSummary } from '../correlate/flows.js';
import type { FlowHopCount } from '../datapath/flow.js';

function hopJson(e: HopEvent, latencyNs?: bigint) {
  return {
    node: e.node,
    device: e.device,
    role: e.role,
    direction: e.direction,
    kind: e.kind,
    timestampNs: e.timestampNs.toString(),
    wallTime: new Date(Number(e.wallTimeNs / 1_000_000n)).toISOString(),
    latencyNs: latencyNs === undefined ? null : latencyNs.toString(),
    skbLength: e.skbLength,
    ...(e.gso ? { gso: { ...e.gso } } : {}),
    ...(e.outer ? { outer: { ...e.outer } } : {}),
    ...(e.dropReason ? { dropReason: e.dropReason, dropLocation: e.dropLocation ?? null } : {}),
  };
}

export function pathRecord(p: PacketPath) {
  return {
    type: 'path' as const,
    fingerprint: p.fingerprint,
    time: p.hops[0] ? new Date(Number(p.hops[0].event.wallTimeNs / 1_000_000n)).toISOString() : null,
    srcPod: p.srcPod ?? null,
    dstPod: p.dstPod ?? null,
    srcNode: p.srcNode ?? null,
    dstNode: p.dstNode ?? null,
    inner: { ...p.inner },
    outer: p.outer ? { ...p.outer } : null,
    outcome: p.outcome,
    drop: p.drop ?? null,
    durationNs: (p.lastSeenNs - p.firstSeenNs).toString(),
    hops: p.hops.map((h) => hopJson(h.event, h.latencyNs)),
  };
}

export function findingRecord(f: Finding) {
  return {
    type: 'finding' as const,
    code: f.code,
    severity: f.severity,
    nodes: f.nodes,
    cause: f.cause,
    fix: f.fix,
    evidence: f.evidence,
    packetCount: f.packetCount,
    key: f.key,
  };
}

export function summaryRecord(s: RunSummary) {
  const { findings, ...counts } = s;
  return { type: 'summary' as const, ...counts, sampledRecords: counts.sampledRecords ?? 0, findingCodes: [...new Set(findings.map((f) => f.code))] };
}

const isoOf = (ns: bigint): string | null => (ns > 0n ? new Date(Number(ns / 1_000_000n)).toISOString() : null);

function flowHopJson(h: FlowHopCount) {
  return {
    node: h.node,
    device: h.device,
    role: h.role,
    direction: h.direction,
    packets: h.packets,
    bytes: h.bytes,
    firstTime: isoOf(h.firstNs),
    lastTime: isoOf(h.lastNs),
    records: h.records,
    sampled: h.sampled,
    lost: h.lost,
  };
}

/** One flow's per-hop counters (docs/ndjson.md, type "flow"). */
export function flowRecord(f: FlowSummary) {
  return {
    type: 'flow' as const,
    flow: { ...f.flow },
    srcPod: f.srcPod ?? null,
    dstPod: f.dstPod ?? null,
    hops: f.hops.map(flowHopJson),
    drops: f.drops.map((d) => ({ node: d.node, device: d.device, direction: d.direction, reason: d.dropReason ?? null, packets: d.packets, bytes: d.bytes })),
    elsewhere: f.elsewhere.map(flowHopJson),
  };
}

/** `vxtrace check`: one record per ordered pair of nodes (a cell of the matrix). */
export function pairRecord(c: Cell) {
  return {
    type: 'pair' as const,
    from: c.from,
    to: c.to,
    ok: c.ok,
    probed: c.probed,
    reason: c.reason ?? null,
    findings: c.findings,
    coverage: c.coverage,
    legs: c.legs,
  };
}

/** `vxtrace check`: the last line. */
export function checkRecord(v: CheckVerdict, nodes: readonly string[], elapsedMs: number) {
  const probed = v.cells.filter((c) => c.probed);
  return {
    type: 'check' as const,
    nodes: [...nodes],
    pairs: v.cells.length,
    working: probed.filter((c) => c.ok).length,
    broken: probed.filter((c) => !c.ok).length,
    notProbed: v.cells.length - probed.length,
    probes: v.probesSent,
    durationMs: Math.round(elapsedMs),
    findingCodes: [...new Set(v.findings.map((f) => f.code))],
  };
}

export const ndjsonLine = (o: unknown): string => JSON.stringify(o) + '\n';

/**
 * The last record of `vxtrace diagnose --json` (and of each re-diagnosis with --watch): what was
 * checked, so a script tells "healthy" (no findings) from "did not run". Schema: docs/ndjson.md.
 */
export function diagnoseSummaryRecord(s: { nodes: string[]; kernelState: string[]; compared: string[]; findings: Finding[] }) {
  return {
    type: 'summary' as const,
    command: 'diagnose' as const,
    nodes: s.nodes.length,
    kernelState: s.kernelState,
    noKernelState: s.nodes.filter((n) => !s.kernelState.includes(n)),
    compared: s.compared,
    findings: s.findings.length,
    errors: s.findings.filter((f) => f.severity === 'error').length,
    findingCodes: [...new Set(s.findings.map((f) => f.code))],
  };
}
