// Human output for `follow` and `read`: one line per packet path, readable at a glance like
// `hubble observe`, and a block per finding. Pure: strings in, strings out; colour on request.
import type { HopEvent } from '../datapath/hop.js';
import { formatProtocol } from '../datapath/describe.js';
import type { PacketPath } from '../correlate/path.js';
import type { Finding } from '../diagnose/finding.js';
import type { FlowSummary } from '../correlate/flows.js';
import type { FlowHopCount } from '../datapath/flow.js';
import { formatFlow } from '../datapath/describe.js';

export interface TextStyle {
  color: boolean;
}

const ANSI = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, gray: 90, bold: 1 } as const;
type Paint = keyof typeof ANSI;
const painter = (style: TextStyle) => (c: Paint, s: string) => (style.color ? `\x1b[${ANSI[c]}m${s}\x1b[0m` : s);

/** 12µs, 1.3ms, 2.0s. */
export function formatDuration(ns: bigint): string {
  const n = Number(ns);
  if (n < 1_000) return `${n}ns`;
  if (n < 1_000_000) return `${Math.round(n / 1_000)}µs`;
  if (n < 1_000_000_000) return `${(n / 1_000_000).toFixed(1)}ms`;
  return `${(n / 1_000_000_000).toFixed(1)}s`;
}

/** HH:MM:SS.mmm in UTC from wall-clock nanoseconds. */
export function formatClock(wallNs: bigint): string {
  const d = new Date(Number(wallNs / 1_000_000n));
  return d.toISOString().slice(11, 23);
}

export { formatProtocol, formatTcpFlags } from '../datapath/describe.js';

/** `192.168.1.122:8472`, `[fd00:192:168:1::122]:8472`. */
const hostPort = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

const isUnderlayLeg = (e: HopEvent) => e.role === 'uplink' || (e.outer !== undefined && e.kind === 'tc');

/**
 * The hop chain: `node1 cni0 ▸ flannel.1 ▸ eth1 ⇢ 192.168.1.122:8472 vni 1 ⇢ node2 eth1 ▸ flannel.1 ▸ cni0`,
 * each hop followed by its latency from the previous one when both were seen on one clock.
 */
export function formatHopChain(path: PacketPath, style: TextStyle): string {
  const paint = painter(style);
  const parts: string[] = [];
  let node: string | undefined;
  let prev: HopEvent | undefined;
  // A packet that loops (FDB pointing back at this node) passes one device again and again until
  // its TTL runs out: show the run once, with how many times and for how long.
  let repeats = 0;
  let repeatNs = 0n;
  const closeRun = () => {
    if (repeats) parts.push(paint('yellow', `⟲ ${repeats}× in ${formatDuration(repeatNs)}`));
    repeats = 0;
    repeatNs = 0n;
  };
  for (const { event, latencyNs } of path.hops) {
    if (event.kind === 'drop') continue;
    if (prev && prev.node === event.node && prev.device === event.device) {
      repeats++;
      repeatNs += latencyNs ?? 0n;
      prev = event;
      continue;
    }
    closeRun();
    const crossed = prev && isUnderlayLeg(prev) && prev.direction === 'egress' && event.node !== prev.node;
    if (crossed && prev?.outer) {
      parts.push(paint('cyan', `⇢ ${hostPort(prev.outer.dst, prev.outer.dstPort)} vni ${prev.outer.vni} ⇢`));
    } else if (prev) {
      parts.push('▸');
    }
    const lat = latencyNs !== undefined && prev ? paint('gray', ` +${formatDuration(latencyNs)}`) : '';
    const label = event.node !== node ? `${paint('bold', event.node)} ${event.device}` : event.device;
    parts.push(`${label}${lat}`);
    node = event.node;
    prev = event;
  }
  closeRun();
  // The underlay leg that never arrived: show where it was sent.
  if (prev && isUnderlayLeg(prev) && prev.direction === 'egress' && prev.outer && path.outcome !== 'delivered') {
    parts.push(paint('cyan', `⇢ ${hostPort(prev.outer.dst, prev.outer.dstPort)} vni ${prev.outer.vni} ⇢`));
  }
  return parts.join(' ');
}

export function formatOutcome(path: PacketPath, style: TextStyle): string {
  const paint = painter(style);
  switch (path.outcome) {
    case 'delivered':
      return paint('green', `delivered in ${formatDuration(path.lastSeenNs - path.firstSeenNs)}`);
    case 'dropped':
      return paint('red', `DROPPED at ${path.drop?.node}/${path.drop?.device}: ${path.drop?.reason}`);
    case 'lost-in-underlay':
      return paint('red', `LOST in the underlay (left ${lastHop(path)} and never arrived)`);
    case 'vanished':
      return paint('yellow', `VANISHED after ${lastHop(path)}`);
    case 'in-flight':
      return paint('gray', 'in flight');
    case 'untraced':
      return paint('gray', `left the traced nodes (after ${lastHop(path)}${path.dstNode ? `, for ${path.dstNode}, not traced` : ''})`);
  }
}

function lastHop(path: PacketPath): string {
  const h = [...path.hops].reverse().find((x) => x.event.kind === 'tc');
  return h ? `${h.event.node}/${h.event.device} ${h.event.direction}` : 'the first hop';
}

/** One line per packet path. */
export function formatPathLine(path: PacketPath, style: TextStyle): string {
  const paint = painter(style);
  const first = path.hops[0]?.event;
  const when = first ? formatClock(first.wallTimeNs) : '--:--:--.---';
  const src = path.srcPod ?? path.inner.src;
  const dst = path.dstPod ?? path.inner.dst;
  return `${paint('gray', when)} ${src} → ${dst} ${paint('magenta', formatProtocol(path.inner))}  ${formatHopChain(path, style)}  ${formatOutcome(path, style)}`;
}

const SEVERITY_MARK: Record<Finding['severity'], [Paint, string]> = { error: ['red', '✖'], warning: ['yellow', '▲'], info: ['blue', 'ℹ'] };

/** A finding as a block: code and where, cause, evidence, fix. */
export function formatFinding(f: Finding, style: TextStyle): string {
  const paint = painter(style);
  const [c, mark] = SEVERITY_MARK[f.severity];
  const lines = [
    `${paint(c, `${mark} ${f.code}`)} (${f.severity}) on ${f.nodes.join(', ') || 'the cluster'}${f.packetCount ? `, ${f.packetCount} packet${f.packetCount === 1 ? '' : 's'}` : ''}`,
    `  cause:    ${f.cause}`,
    `  observed: ${f.evidence.observed}`,
  ];
  if (f.evidence.expected) lines.push(`  expected: ${f.evidence.expected}`);
  lines.push(`  ${paint('bold', 'fix')}:      ${f.fix}`);
  return lines.join('\n') + '\n';
}

/**
 * A finding handed out again (packets now confirm what state showed, or prove a warning an error)
 * in one line: `✖ DUPLICATE_PUBLIC_IP confirmed by 1 packet: <what the packet showed>`.
 */
export function formatFindingAgain(f: Finding, before: Finding['severity'] | undefined, style: TextStyle): string {
  const paint = painter(style);
  const [c, mark] = SEVERITY_MARK[f.severity];
  const raised = before && before !== f.severity ? ` now an ${f.severity},` : '';
  const packets = `${f.packetCount} packet${f.packetCount === 1 ? '' : 's'}`;
  return `${paint(c, `${mark} ${f.code}`)}${raised} confirmed by ${packets}: ${f.evidence.observed}
`;
}

/**
 * The text of findings as a run hands them out: a block the first time a finding is seen, one
 * line when it comes again (its key was printed before). Blocks are set off by blank lines.
 */
export function findingPrinter(style: TextStyle): (f: Finding) => string {
  const printed = new Map<string, Finding['severity']>();
  return (f) => {
    const before = printed.get(f.key);
    printed.set(f.key, f.severity);
    return before === undefined ? `\n${formatFinding(f, style)}\n` : formatFindingAgain(f, before, style);
  };
}

export interface RunSummary {
  paths: number;
  delivered: number;
  dropped: number;
  lostInUnderlay: number;
  vanished: number;
  inFlight: number;
  untraced: number;
  lostRecords: number;
  /** Records the kernel shed by choice while user space was behind (counted in the flow counters): absent when none. */
  sampledRecords?: number;
  /** Paths not judged because their flow was being sampled and their other hops may have been shed: absent when none. */
  partlySampled?: number;
  findings: Finding[];
}

export function summarize(paths: readonly PacketPath[], lostRecords: number, findings: Finding[], counts: { sampledRecords?: number; partlySampled?: number } = {}): RunSummary {
  const tally = new PathTally();
  for (const p of paths) tally.add(p);
  return tally.summary(lostRecords, findings, counts);
}

/** What a run's summary and verdict need of a path. */
export type PathGist = Pick<PacketPath, 'outcome' | 'srcPod' | 'dstPod' | 'srcNode' | 'dstNode'>;

/**
 * A run's paths as counts, for its summary and verdict: a capture or follow at full rate hands
 * out hundreds of thousands of paths a second, and keeping them (with the batches their frames
 * are views of) would grow without bound. Keeps the count per outcome and each distinct gist
 * (outcome, pods, nodes): bounded by the cluster's size, not by the traffic.
 */
export class PathTally {
  total = 0;
  private readonly byOutcome = new Map<PacketPath['outcome'], number>();
  private readonly gists = new Map<string, PathGist>();

  add(p: PathGist): void {
    this.total++;
    this.byOutcome.set(p.outcome, (this.byOutcome.get(p.outcome) ?? 0) + 1);
    const key = `${p.outcome}|${p.srcPod ?? ''}|${p.dstPod ?? ''}|${p.srcNode ?? ''}|${p.dstNode ?? ''}`;
    if (!this.gists.has(key)) this.gists.set(key, { outcome: p.outcome, srcPod: p.srcPod, dstPod: p.dstPod, srcNode: p.srcNode, dstNode: p.dstNode });
  }

  /** One gist per distinct (outcome, pods, nodes): what a verdict on the paths needs (which outcomes, for which pods). */
  distinct(): PathGist[] {
    return [...this.gists.values()];
  }

  /** The nodes the paths ran between. */
  nodes(): string[] {
    const out = new Set<string>();
    for (const g of this.gists.values()) {
      if (g.srcNode) out.add(g.srcNode);
      if (g.dstNode) out.add(g.dstNode);
    }
    return [...out];
  }

  summary(lostRecords: number, findings: Finding[], counts: { sampledRecords?: number; partlySampled?: number } = {}): RunSummary {
    const n = (o: PacketPath['outcome']) => this.byOutcome.get(o) ?? 0;
    return {
      paths: this.total,
      delivered: n('delivered'),
      dropped: n('dropped'),
      lostInUnderlay: n('lost-in-underlay'),
      vanished: n('vanished'),
      inFlight: n('in-flight'),
      untraced: n('untraced'),
      lostRecords,
      ...(counts.sampledRecords ? { sampledRecords: counts.sampledRecords } : {}),
      ...(counts.partlySampled ? { partlySampled: counts.partlySampled } : {}),
      findings,
    };
  }
}

/**
 * `sampling`: why records were sampled out: 'when-behind' (the kernel sheds only while user space
 * is behind: capture, follow --write) or 'always' (follow without --write: a few records per flow
 * and hop, whatever the rate).
 */
export function formatSummary(s: RunSummary, style: TextStyle, sampling: 'when-behind' | 'always' = 'when-behind'): string {
  const paint = painter(style);
  const parts = [`${s.paths} path${s.paths === 1 ? '' : 's'}: ${paint(s.delivered === s.paths && s.paths ? 'green' : 'bold', `${s.delivered} delivered`)}`];
  if (s.dropped) parts.push(paint('red', `${s.dropped} dropped`));
  if (s.lostInUnderlay) parts.push(paint('red', `${s.lostInUnderlay} lost in the underlay`));
  if (s.vanished) parts.push(paint('yellow', `${s.vanished} vanished`));
  if (s.inFlight) parts.push(`${s.inFlight} unfinished`);
  if (s.untraced) parts.push(`${s.untraced} left the traced nodes`);
  const lost = (s.lostRecords ? paint('red', `${s.lostRecords} records lost (ring buffer full)`) : '0 records lost') +
    (s.sampledRecords
      ? `; ${s.sampledRecords} records sampled out (${sampling === 'always' ? 'a few kept per flow and hop, every drop, SYN/FIN/RST and ICMP' : 'shed while behind'}; every packet counted below)`
      : '') +
    (s.partlySampled ? `; ${s.partlySampled} path${s.partlySampled === 1 ? '' : 's'} not judged (their other hops were sampled out)` : '');
  const codes = [...new Set(s.findings.map((f) => f.code))];
  return `${parts.join(', ')}; ${lost}; ${codes.length ? `findings: ${codes.join(', ')}` : 'no findings'}\n`;
}

/** Flows shown in the text summary; the rest are counted (NDJSON has them all). */
export const MAX_FLOWS_SHOWN = 8;

const hopLabel = (h: FlowHopCount, first: boolean, last: boolean): string => {
  if (h.role === 'pod-bridge' && h.direction === 'ingress' && first) return 'sent';
  if (h.role === 'pod-bridge' && h.direction === 'egress' && last) return 'reached the pod';
  if (h.role === 'uplink' && h.direction === 'egress') return `left ${h.node}`;
  if (h.role === 'uplink' && h.direction === 'ingress') return `arrived at ${h.node}`;
  return '';
};

const bytesText = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`);

/**
 * The kernel's per-hop counters of each flow: one table per flow, a row per hop in path order
 * (packets, bytes, what changed from the hop before), then its drops and what became of its
 * records. Every packet is counted, whether or not it got a record.
 */
export function formatFlowTable(flows: readonly FlowSummary[], style: TextStyle): string {
  const paint = painter(style);
  const shown = flows.filter((f) => f.hops.length).slice(0, MAX_FLOWS_SHOWN);
  if (!shown.length) return '';
  const lines: string[] = ['flows (every packet counted in the kernel, per hop):'];
  for (const f of shown) {
    const who = (pod: string | undefined, ip: string) => (pod ? `${pod} (${ip})` : ip);
    lines.push(`  ${who(f.srcPod, f.flow.src)} → ${who(f.dstPod, f.flow.dst)} ${paint('magenta', formatFlow(f.flow))}`);
    const width = Math.max(...f.hops.map((h) => `${h.node} ${h.device} ${h.direction}`.length));
    const packetWidth = Math.max(...f.hops.map((h) => String(h.packets).length));
    let prev: FlowHopCount | undefined;
    f.hops.forEach((h, i) => {
      const name = `${h.node} ${h.device} ${h.direction}`.padEnd(width);
      const diff = prev && h.packets !== prev.packets ? h.packets - prev.packets : 0;
      const change = diff < 0 ? paint('red', ` −${-diff} (${((100 * -diff) / prev!.packets).toFixed(2)} %)`) : diff > 0 ? ` +${diff}` : '';
      const label = hopLabel(h, i === 0, i === f.hops.length - 1);
      lines.push(`    ${name}  ${String(h.packets).padStart(packetWidth)} packets ${bytesText(h.bytes).padStart(9)}${change}${label ? paint('gray', `  ${label}`) : ''}`);
      prev = h;
    });
    for (const d of f.drops) lines.push(`    ${paint('red', `dropped at ${d.node} ${d.device}: ${d.dropReason ?? 'drop'}`)} ${d.packets} packets`);
    if (f.elsewhere.length) lines.push(`    also seen on ${[...new Set(f.elsewhere.map((h) => h.node))].join(', ')} (copies the underlay flooded there)`);
    const records = f.hops.reduce((n, h) => n + h.records, 0);
    const sampled = f.hops.reduce((n, h) => n + h.sampled, 0);
    const lost = f.hops.reduce((n, h) => n + h.lost, 0);
    if (sampled || lost) lines.push(paint('gray', `    records: ${records} written, ${sampled} sampled out, ${lost} lost`));
  }
  const rest = flows.length - shown.length;
  if (rest > 0) lines.push(`  and ${rest} more flow${rest === 1 ? '' : 's'} (--json prints every one)`);
  return lines.join('\n') + '\n';
}
