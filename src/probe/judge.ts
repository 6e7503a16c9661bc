// Judging `vxtrace check`'s probes: each probe's two legs (request, reply) are the paths the
// pipeline built from their hops, with the findings the Diagnoser drew from them; a cell of the
// matrix (A, B) holds both probes between A and B. Why both: a probe is sent by A's own stack (it
// skips A's cni0 ingress and A's FORWARD chain) and its reply is delivered to A's own stack (it
// skips them again, on the way in), while B's probe and its reply pass exactly those hops on A as a
// pod's packet would. So the four legs together pass every hook pod traffic between A and B passes,
// in both directions, as a ping between two pods needs. Pure.
import type { PacketPath } from '../correlate/path.js';
import type { HopEvent } from '../datapath/hop.js';
import type { Finding } from '../diagnose/finding.js';
import { probeMarkOf } from './mark.js';
import type { CheckPlan, PlannedProbe } from './plan.js';
import type { ProbeResult } from './sender.js';

export type LegName = 'request' | 'reply';

export interface Leg {
  path: PacketPath;
  /** Keys of the findings this leg shows, less those another of them subsumes. */
  findings: string[];
}

export interface ProbeAttempt {
  probe: PlannedProbe;
  /** 1, or 2 for the retry. */
  attempt: number;
  tag: number;
  result?: ProbeResult;
  request?: Leg;
  reply?: Leg;
}

/** What went wrong with an attempt, on which leg, in a few words ("dropped at node2 eth1: UDP_CSUM"). */
export interface AttemptVerdict {
  ok: boolean;
  leg?: LegName;
  reason?: string;
}

/** The six hooks a pod's packet passes from one node to another, in order. */
const HOOKS: { at: 'from' | 'to'; role: HopEvent['role']; direction: HopEvent['direction'] }[] = [
  { at: 'from', role: 'pod-bridge', direction: 'ingress' },
  { at: 'from', role: 'vtep', direction: 'egress' },
  { at: 'from', role: 'uplink', direction: 'egress' },
  { at: 'to', role: 'uplink', direction: 'ingress' },
  { at: 'to', role: 'vtep', direction: 'ingress' },
  { at: 'to', role: 'pod-bridge', direction: 'egress' },
];

export interface LegRecord {
  probe: string;
  kind: PlannedProbe['kind'];
  attempt: number;
  leg: LegName;
  /** Relative to the cell: 'out' from its row's node to its column's, 'back' the other way. */
  direction: 'out' | 'back';
  protocol: PlannedProbe['protocol'];
  src: string;
  dst: string;
  bytes: number;
  tag: number;
  outcome: PacketPath['outcome'] | null;
  fingerprint: string | null;
  /** node/device/direction of each hook it passed (drops not included). */
  hops: string[];
  drop: PacketPath['drop'] | null;
  /** Why this leg failed, when it did. */
  reason: string | null;
  error: string | null;
}

export interface Cell {
  from: string;
  to: string;
  ok: boolean;
  /** Whether any probe of the pair was sent (false: neither node can send from here). */
  probed: boolean;
  reason?: string;
  /** Keys of the findings that explain it (broken cells). */
  findings: string[];
  /** The hooks of pod traffic the delivered legs passed, each way ("node1 cni0 ingress"), and those none did. */
  coverage: { out: string[]; back: string[]; missing: string[] };
  legs: LegRecord[];
}

export interface CheckVerdict {
  cells: Cell[];
  /** The findings to report, once each: those that explain a cell, and those from state alone. */
  findings: Finding[];
  /** Finding key -> the cells it explains. */
  explains: Map<string, [string, string][]>;
  probesSent: number;
}

const keyOf = (protocol: string, src: string, dst: string, tag: number) => `${protocol}|${src}|${dst}|${tag}`;

/**
 * A finding on a packet that another finding on the same packet already explains: in the seed's case
 * the FDB entries that point at the shared public-ip (FDB_DST_LOCAL) are DUPLICATE_PUBLIC_IP's
 * symptom, not a cause of their own (docs/findings.md).
 */
function subsumed(f: Finding, all: readonly Finding[]): boolean {
  if (f.code !== 'FDB_DST_LOCAL') return false;
  return all.some((d) => d.code === 'DUPLICATE_PUBLIC_IP' && d.evidence.facts?.publicIp === f.evidence.facts?.dst);
}

const tcHops = (p: PacketPath) => p.hops.filter((h) => h.event.kind === 'tc').map((h) => h.event);

/** A leg that did not arrive, in a few words. */
export function legFailure(p: PacketPath): string | undefined {
  const hops = tcHops(p);
  const last = hops.at(-1);
  const where = (e: HopEvent | undefined) => (e ? `${e.node} ${e.device}` : 'its first hook');
  switch (p.outcome) {
    case 'delivered':
      return undefined;
    case 'dropped': {
      const loop = loopOf(p);
      if (loop) return `loop on ${loop}`;
      return `dropped at ${p.drop?.node} ${p.drop?.device}: ${p.drop?.reason}`;
    }
    case 'lost-in-underlay': {
      const up = [...hops].reverse().find((e) => e.role === 'uplink' && e.direction === 'egress');
      return up?.outer ? `left ${where(up)} to ${up.outer.dst}` : `lost after ${where(last)}`;
    }
    case 'vanished':
      return loopOf(p) ? `loop on ${loopOf(p)}` : `vanished after ${where(last)}`;
    case 'untraced':
      return `left for ${p.dstNode ?? 'a node'} (not traced)`;
    case 'in-flight':
      return `unfinished after ${where(last)}`;
  }
}

/**
 * "node1 flannel.1" when the path looped: it came back in by the VXLAN device of a node it left by
 * (an FDB entry pointing at that node's own address decapsulates it there), or passed one device
 * again and again.
 */
function loopOf(p: PacketPath): string | undefined {
  const hops = tcHops(p);
  for (const [i, e] of hops.entries()) {
    if (e.role !== 'vtep' || e.direction !== 'egress' || e.node === p.dstNode) continue;
    if (hops.slice(i + 1).some((x) => x.node === e.node && x.role === 'vtep' && x.direction === 'ingress')) return `${e.node} ${e.device}`;
  }
  const counts = new Map<string, number>();
  for (const e of hops) {
    const k = `${e.node} ${e.device}`;
    const n = (counts.get(k) ?? 0) + 1;
    counts.set(k, n);
    if (n >= 3) return k;
  }
  return undefined;
}

export class CheckJudge {
  readonly attempts: ProbeAttempt[] = [];
  private readonly byKey = new Map<string, { attempt: ProbeAttempt; leg: LegName }>();
  /** Finding keys some leg showed only as another finding's symptom. */
  private readonly subsumedKeys = new Set<string>();
  private readonly shownKeys = new Set<string>();

  constructor(readonly plan: CheckPlan) {}

  /** A probe attempt about to be sent with `tag`: its legs' paths will be matched to it. */
  expect(probe: PlannedProbe, tag: number, attempt: number): ProbeAttempt {
    const a: ProbeAttempt = { probe, attempt, tag };
    this.attempts.push(a);
    this.byKey.set(keyOf(probe.protocol, probe.src.address, probe.dst.address, tag), { attempt: a, leg: 'request' });
    this.byKey.set(keyOf(probe.protocol, probe.dst.address, probe.src.address, tag), { attempt: a, leg: 'reply' });
    return a;
  }

  /** A finished probe path and every finding it showed. Returns the attempt it belongs to, if any. */
  addPath(path: PacketPath, touched: readonly Finding[]): ProbeAttempt | undefined {
    const first = path.hops[0]?.event;
    const mark = first ? probeMarkOf(first) : undefined;
    if (!mark) return undefined;
    const keep = touched.filter((f) => !subsumed(f, touched));
    for (const f of touched) if (subsumed(f, touched)) this.subsumedKeys.add(f.key);
    for (const f of keep) this.shownKeys.add(f.key);
    const hit = this.byKey.get(keyOf(mark.protocol, path.inner.src, path.inner.dst, mark.tag));
    if (!hit || hit.attempt[hit.leg]) return undefined; // a leg's first path is its packet (a TCP exchange has more)
    hit.attempt[hit.leg] = { path, findings: keep.map((f) => f.key) };
    return hit.attempt;
  }

  /** Whether nothing more is to come for this attempt: sent and heard of, and each leg's path in (or sure not to come). */
  settled(a: ProbeAttempt): boolean {
    if (!a.result) return false;
    if (a.result.error && !a.request) return true;
    if (!a.request) return false;
    const reqArrived = a.request.path.outcome === 'delivered' || a.request.path.outcome === 'untraced';
    return !reqArrived || a.reply !== undefined;
  }

  /** A lost probe is tried once more, unless the kernel said why it was lost (a drop) or it could not be sent. */
  shouldRetry(a: ProbeAttempt): boolean {
    if (a.attempt > 1 || a.result?.replied || a.result?.error) return false;
    return a.request?.path.outcome !== 'dropped' && a.reply?.path.outcome !== 'dropped';
  }

  verdictOf(a: ProbeAttempt): AttemptVerdict {
    const req = a.request?.path;
    if (!req) {
      if (a.result?.error) return { ok: false, leg: 'request', reason: `not sent: ${a.result.error}` };
      if (a.reply?.path.outcome === 'delivered') return { ok: true };
      return { ok: false, leg: 'request', reason: a.result ? 'not seen by any hook' : 'not sent' };
    }
    if (req.outcome !== 'delivered' && req.outcome !== 'untraced') return { ok: false, leg: 'request', reason: legFailure(req) };
    const rep = a.reply?.path;
    if (!rep) return { ok: false, leg: 'reply', reason: a.result?.replied ? 'reply not seen by any hook' : 'no reply' };
    if (rep.outcome !== 'delivered') return { ok: false, leg: 'reply', reason: legFailure(rep) };
    if (a.probe.protocol === 'icmp' && a.result && !a.result.replied && !a.result.error) {
      return { ok: false, leg: 'reply', reason: `reply reached ${rep.hops.at(-1)?.event.node ?? a.probe.from} but ping did not get it in time` };
    }
    return { ok: true };
  }

  /** The matrix: every cell judged from the probes between its two nodes. */
  verdicts(findings: readonly Finding[]): CheckVerdict {
    const byProbe = new Map<string, ProbeAttempt[]>();
    for (const a of this.attempts) byProbe.set(a.probe.id, [...(byProbe.get(a.probe.id) ?? []), a]);
    const explains = new Map<string, [string, string][]>();
    const cells: Cell[] = [];
    for (const [from, to] of this.plan.pairs) {
      // This cell's probes: from's (request out, reply back), then to's (request back, reply out); base before size.
      const own = this.plan.probes.filter((p) => p.from === from && p.to === to);
      const theirs = this.plan.probes.filter((p) => p.from === to && p.to === from);
      const legs: LegRecord[] = [];
      let reason: string | undefined;
      const keys = new Set<string>();
      const out: HopEvent[] = [];
      const back: HopEvent[] = [];
      let probed = false;
      for (const probe of [...own, ...theirs]) {
        const attempts = byProbe.get(probe.id) ?? [];
        const mine = probe.from === from;
        if (attempts.length) probed = true;
        const verdicts = attempts.map((a) => this.verdictOf(a));
        const good = attempts.find((_, i) => verdicts[i]!.ok);
        for (const [i, a] of attempts.entries()) {
          for (const leg of ['request', 'reply'] as const) legs.push(legRecord(a, leg, mine ? (leg === 'request' ? 'out' : 'back') : leg === 'request' ? 'back' : 'out', leg === verdicts[i]!.leg ? verdicts[i]!.reason : undefined));
        }
        if (good) {
          for (const leg of ['request', 'reply'] as const) {
            const p = good[leg]?.path;
            if (p?.outcome === 'delivered') ((mine ? leg === 'request' : leg === 'reply') ? out : back).push(...tcHops(p));
          }
          continue;
        }
        if (!attempts.length) {
          // Planned but never sent (the run was stopped first).
          reason ??= `${probe.kind === 'size' ? `${probe.bytes} B: ` : ''}${mine ? '' : 'back: '}not sent`;
          continue;
        }
        for (const a of attempts) for (const f of [...(a.request?.findings ?? []), ...(a.reply?.findings ?? [])]) keys.add(f);
        if (reason === undefined) {
          const v = verdicts[0]!;
          const backwards = mine ? v.leg === 'reply' : v.leg === 'request';
          reason = `${probe.kind === 'size' ? `${probe.bytes} B: ` : ''}${backwards ? 'back: ' : ''}${v.reason ?? 'failed'}`;
        }
      }
      const coverage = coverageOf(from, to, out, back);
      const ok = probed && reason === undefined;
      const cell: Cell = { from, to, ok, probed, findings: [...keys].sort(), coverage, legs };
      if (!probed) cell.reason = 'not probed: neither node can send from here';
      else if (reason !== undefined) cell.reason = reason;
      cells.push(cell);
      for (const k of cell.findings) explains.set(k, [...(explains.get(k) ?? []), [from, to]]);
    }
    // Each finding once, unless the probes showed it only as another's symptom.
    const reported = findings.filter((f) => explains.has(f.key) || this.shownKeys.has(f.key) || !this.subsumedKeys.has(f.key));
    return { cells, findings: reported, explains, probesSent: this.attempts.filter((a) => a.result && !a.result.error).length };
  }
}

function legRecord(a: ProbeAttempt, leg: LegName, direction: 'out' | 'back', reason: string | undefined): LegRecord {
  const p = a[leg]?.path;
  const src = leg === 'request' ? a.probe.src.address : a.probe.dst.address;
  const dst = leg === 'request' ? a.probe.dst.address : a.probe.src.address;
  return {
    probe: `${a.probe.from}>${a.probe.to}`,
    kind: a.probe.kind,
    attempt: a.attempt,
    leg,
    direction,
    protocol: a.probe.protocol,
    src,
    dst,
    bytes: a.probe.bytes,
    tag: a.tag,
    outcome: p?.outcome ?? null,
    fingerprint: p?.fingerprint ?? null,
    hops: p ? tcHops(p).map((e) => `${e.node}/${e.device}/${e.direction}`) : [],
    drop: p?.drop ?? null,
    reason: reason ?? null,
    error: leg === 'request' ? (a.result?.error ?? null) : null,
  };
}

/** Which of the six hooks of pod traffic from `from` to `to` (out) and back the delivered legs passed. */
function coverageOf(from: string, to: string, out: HopEvent[], back: HopEvent[]): Cell['coverage'] {
  const missing: string[] = [];
  const seen = (hops: HopEvent[], a: string, b: string) =>
    HOOKS.flatMap((h) => {
      const node = h.at === 'from' ? a : b;
      const hit = hops.find((e) => e.node === node && e.role === h.role && e.direction === h.direction);
      if (!hit) {
        missing.push(`${node} ${h.role} ${h.direction}`);
        return [];
      }
      return [`${node} ${hit.device} ${h.direction}`];
    });
  return { out: seen(out, from, to), back: seen(back, to, from), missing };
}
