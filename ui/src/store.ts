// The page's one store of state: what the hub said (paths, findings, nodes, losses), what the page
// asks for (the filter), and what the operator is looking at (selection, pause, a finding's paths).
// Views are functions of it; it never touches the DOM. Memory stays bounded on a stream that runs
// for hours: at most `cap` paths are kept, the oldest let go first and counted.
import {
  flowKeyOfPath, flowKeyOfSummary, fullPath, int64, nsBetween, outcomeOf, OUTCOMES,
  type FindingMessage, type FlowSummaryMessage, type LostSource, type NodeMapMessage, type NodeState, type Outcome, type PageEvent, type PageFilter, type PathMessage,
} from './wire.js';

/** Flows whose per-hop counters the page keeps at most; the least recently updated go first. */
export const FLOW_CAP = 2000;

/** Paths kept by default: ~10 MB of decoded paths, a few minutes of a busy node pair, and what a table can show usefully. */
export const DEFAULT_PATH_CAP = 10_000;

export interface PathRow {
  /** Arrival order on this page (1, 2, ...). */
  seq: number;
  /** Position in the ring it lives in (contiguous there: the table's index is newest.pos - pos). */
  pos: number;
  /** The path without its hops (what the table needs). */
  path: PathMessage;
  /** Its bytes as they came, hops included, and how many hops. */
  raw: Uint8Array;
  hopCount: number;
  /** The whole path, once something needed its hops (fullOf). */
  full?: PathMessage;
  outcome: Outcome;
  /** Wall clock of its first hop, ms since the epoch. */
  firstSeenMs: number;
  durationNs: number;
}

/** What a table shows: rows newest first. */
export interface RowsView {
  readonly count: number;
  rowAt(index: number): PathRow;
  indexOf(row: PathRow): number;
}

/** A bounded ring of rows, newest first to its readers. */
export class PathRing implements RowsView {
  private slots: (PathRow | undefined)[];
  private start = 0;
  private n = 0;
  private nextPos = 0;

  constructor(readonly cap: number) {
    this.slots = new Array(cap);
  }

  get count(): number {
    return this.n;
  }

  /** Adds a row; returns the row let go to make room, if any. */
  push(row: PathRow): PathRow | undefined {
    row.pos = this.nextPos++;
    if (this.n < this.cap) {
      this.slots[(this.start + this.n++) % this.cap] = row;
      return undefined;
    }
    const gone = this.slots[this.start];
    this.slots[this.start] = row;
    this.start = (this.start + 1) % this.cap;
    return gone;
  }

  rowAt(index: number): PathRow {
    if (index < 0 || index >= this.n) throw new RangeError(`row ${index} of ${this.n}`);
    return this.slots[(this.start + this.n - 1 - index) % this.cap]!;
  }

  indexOf(row: PathRow): number {
    if (!this.n) return -1;
    const i = this.nextPos - 1 - row.pos;
    return i >= 0 && i < this.n && this.rowAt(i) === row ? i : -1;
  }

  /** Keeps the rows `keep` says yes to, in order; returns how many went. */
  retain(keep: (row: PathRow) => boolean): number {
    const kept: PathRow[] = [];
    for (let i = this.n - 1; i >= 0; i--) {
      const r = this.rowAt(i);
      if (keep(r)) kept.push(r);
    }
    const gone = this.n - kept.length;
    this.slots = new Array(this.cap);
    this.start = 0;
    this.n = 0;
    this.nextPos = 0;
    for (const r of kept) this.push(r);
    return gone;
  }

  clear(): void {
    this.retain(() => false);
  }

  /** Oldest first. */
  *[Symbol.iterator](): IterableIterator<PathRow> {
    for (let i = this.n - 1; i >= 0; i--) yield this.rowAt(i);
  }
}

/** A fixed list of rows (a paused view, a finding's paths), newest first. */
export class RowList implements RowsView {
  private readonly index = new Map<PathRow, number>();
  constructor(private readonly rows: PathRow[]) {
    rows.forEach((r, i) => this.index.set(r, i));
  }
  get count(): number {
    return this.rows.length;
  }
  rowAt(i: number): PathRow {
    const r = this.rows[i];
    if (!r) throw new RangeError(`row ${i} of ${this.rows.length}`);
    return r;
  }
  indexOf(row: PathRow): number {
    return this.index.get(row) ?? -1;
  }
}

export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'refused';

export interface Connection {
  state: ConnectionState;
  /** In words, for the status line ("hub unreachable, retrying in 2 s"). */
  detail: string;
  /** When it entered this state (ms, the page's clock). */
  since: number;
}

export interface NodeView {
  name: string;
  state: NodeState | 'unknown';
  reason: string;
}

export interface UpstreamLoss {
  ringBuffer: number;
  agentQueue: number;
  hubQueue: number;
}

/** Does a pod reference the operator typed ("pod-a", "default/pod-a") name this pod ("default/pod-a")? */
export function podMatches(typed: string, pod: string | null | undefined): boolean {
  if (!pod) return false;
  return typed.includes('/') ? pod === typed : pod === typed || pod.endsWith(`/${typed}`);
}

/**
 * The hub's path filter (src/hub/subscription.ts wantsPath), on what the page holds. Paths held
 * without their hops are judged by their nodes alone: a node filter keeps, of what is held, the
 * paths from or to that node (the hub also sends those that only pass through it).
 */
export function pathMatches(f: PageFilter, p: PathMessage, outcome: Outcome = outcomeOf(p)): boolean {
  if (f.outcomes?.length && !f.outcomes.includes(outcome)) return false;
  if (f.from || f.to) {
    const forward = (!f.from || podMatches(f.from, p.srcPod)) && (!f.to || podMatches(f.to, p.dstPod));
    const back = !!f.bothWays && !!f.from && !!f.to && podMatches(f.from, p.dstPod) && podMatches(f.to, p.srcPod);
    if (!forward && !back) return false;
  }
  if (f.node && p.srcNode !== f.node && p.dstNode !== f.node && !(p.hops ?? []).some((h) => h.node === f.node)) return false;
  return true;
}

export function findingMatches(f: PageFilter, finding: FindingMessage): boolean {
  if (f.codes?.length && !f.codes.includes(finding.code ?? '')) return false;
  if (f.node && !(finding.nodes ?? []).includes(f.node)) return false;
  return true;
}

const SEVERITY_RANK: Record<string, number> = { error: 0, warning: 1, info: 2 };

/** Errors first, then by code and key (the CLI's order). */
export function sortFindings(fs: Iterable<FindingMessage>): FindingMessage[] {
  return [...fs].sort((a, b) => (SEVERITY_RANK[a.severity ?? ''] ?? 3) - (SEVERITY_RANK[b.severity ?? ''] ?? 3) || (a.code ?? '').localeCompare(b.code ?? '') || (a.key ?? '').localeCompare(b.key ?? ''));
}

export function rowOf(e: { path: PathMessage; raw: Uint8Array; hopCount: number }, seq: number): PathRow {
  const path = e.path;
  return { seq, pos: 0, path, raw: e.raw, hopCount: e.hopCount, outcome: outcomeOf(path), firstSeenMs: int64(path.firstSeenNs) / 1e6, durationNs: Math.max(0, nsBetween(path.firstSeenNs, path.lastSeenNs)) };
}

/** A row's path with its hops, decoded the first time it is asked for (the path view, a lost path's last hop). */
export function fullOf(row: PathRow): PathMessage {
  return (row.full ??= fullPath(row.raw));
}

export class Store {
  /** Bumped on every change; each part has its own so that views of unchanged parts skip work. */
  version = 0;
  pathsVersion = 0;
  findingsVersion = 0;
  nodesVersion = 0;
  lossVersion = 0;

  connection: Connection = { state: 'connecting', detail: 'connecting to the hub', since: Date.now() };
  hub: { version: string; clusterFrom: string } | undefined;
  filter: PageFilter = {};

  readonly rows: PathRing;
  /** Paths received since the page opened, and those let go to stay within `cap`. */
  received = 0;
  letGo = 0;
  /** Paths per outcome among those received. */
  readonly outcomes = new Map<Outcome, number>(OUTCOMES.map((o) => [o, 0]));

  paused = false;
  private frozen: RowList | undefined;
  /** Paths that came while paused. */
  newSincePause = 0;

  private readonly findingsByKey = new Map<string, FindingMessage>();
  findings: FindingMessage[] = [];
  /** The finding whose paths the table shows (its key), and those paths. */
  focus: { finding: FindingMessage; rows: PathRow[]; fingerprints: Set<string>; list: RowList } | undefined;

  readonly nodes = new Map<string, NodeView>();
  nodeMap: NodeMapMessage | undefined;
  /** Records lost before the hub's pipeline, per node (ring buffer, agent queue, hub queue). */
  readonly lostUpstream = new Map<string, UpstreamLoss>();
  /** Events the hub dropped for this page because it did not read fast enough. */
  missed = 0;
  /** Frames from the hub that could not be decoded (each also logged to the console). */
  badFrames = 0;

  selected: PathRow | undefined;

  /** The kernel's per-hop counters of each flow (counted since the page subscribed), by flow key (wire.ts flowKeyOfSummary). */
  readonly flows = new Map<string, FlowSummaryMessage>();
  flowsVersion = 0;

  private readonly listeners = new Set<() => void>();

  constructor(readonly cap = DEFAULT_PATH_CAP) {
    this.rows = new PathRing(cap);
  }

  /** Called after every change (the page schedules one render per animation frame). */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(parts: { paths?: boolean; findings?: boolean; nodes?: boolean; loss?: boolean } = {}): void {
    this.version++;
    if (parts.paths) this.pathsVersion++;
    if (parts.findings) this.findingsVersion++;
    if (parts.nodes) this.nodesVersion++;
    if (parts.loss) this.lossVersion++;
    for (const fn of this.listeners) fn();
  }

  /** What the table shows now: a finding's paths, the paused view, or the live rows. */
  get view(): RowsView {
    if (this.focus) return this.focus.list;
    return this.frozen ?? this.rows;
  }

  /** The per-hop counters of the flow a path belongs to, when the hub sent them. */
  flowOf(row: PathRow): FlowSummaryMessage | undefined {
    return this.flows.get(flowKeyOfPath(row.path));
  }

  // -------------------------------------------------------------------------------------------
  // From the hub

  ingest(events: readonly PageEvent[]): void {
    if (!events.length) return;
    let paths = false;
    let findings = false;
    let nodes = false;
    let loss = false;
    for (const e of events) {
      switch (e.kind) {
        case 'path': {
          const row = rowOf(e, ++this.received);
          this.outcomes.set(row.outcome, (this.outcomes.get(row.outcome) ?? 0) + 1);
          if (this.rows.push(row)) this.letGo++;
          if (this.paused) this.newSincePause++;
          if (this.focus?.fingerprints.has(e.path.fingerprint ?? '')) {
            this.focus.rows.unshift(row);
            if (this.focus.rows.length > this.cap) this.focus.rows.pop();
            this.focus.list = new RowList(this.focus.rows);
          }
          paths = true;
          break;
        }
        case 'finding':
          this.findingsByKey.set(e.finding.key!, e.finding);
          if (this.focus?.finding.key === e.finding.key) this.focusOn(e.finding);
          findings = true;
          break;
        case 'node':
          this.nodes.set(e.node, { name: e.node, state: e.state, reason: e.reason });
          nodes = true;
          break;
        case 'lost':
          if (e.source === 'client-queue') this.missed += e.count;
          else {
            const l = this.lostUpstream.get(e.node) ?? { ringBuffer: 0, agentQueue: 0, hubQueue: 0 };
            if (e.source === 'ring-buffer') l.ringBuffer += e.count;
            else if (e.source === 'agent-queue') l.agentQueue += e.count;
            else l.hubQueue += e.count;
            this.lostUpstream.set(e.node, l);
          }
          loss = true;
          break;
        case 'flows':
          for (const f of e.flows) {
            const key = flowKeyOfSummary(f);
            this.flows.delete(key);
            this.flows.set(key, f);
          }
          while (this.flows.size > FLOW_CAP) this.flows.delete(this.flows.keys().next().value!);
          this.flowsVersion++;
          break;
        case 'subscribed':
          // The hub now sends what holds under this subscription: its findings and nodes anew.
          this.hub = { version: e.hubVersion, clusterFrom: e.clusterFrom };
          this.findingsByKey.clear();
          this.nodes.clear();
          this.flows.clear();
          this.flowsVersion++;
          for (const n of e.nodes) this.nodes.set(n, { name: n, state: 'connected', reason: 'agent connected' });
          this.setConnection('live', e.clusterFrom || 'subscribed');
          findings = nodes = true;
          break;
      }
    }
    if (findings) this.findings = sortFindings(this.findingsByKey.values());
    this.changed({ paths, findings, nodes, loss });
  }

  setConnection(state: ConnectionState, detail: string): void {
    if (this.connection.state === state && this.connection.detail === detail) return;
    this.connection = { state, detail, since: state === this.connection.state ? this.connection.since : Date.now() };
    this.changed();
  }

  setNodeMap(m: NodeMapMessage): void {
    this.nodeMap = m;
    this.changed();
  }

  frameFailed(): void {
    this.badFrames++;
    this.changed();
  }

  // -------------------------------------------------------------------------------------------
  // From the operator

  /** A new filter: what is held and does not match goes (the hub sends only what matches from now on). */
  setFilter(f: PageFilter): void {
    this.filter = f;
    this.rows.retain((r) => pathMatches(f, r.path, r.outcome));
    if (this.selected && !pathMatches(f, this.selected.path, this.selected.outcome)) this.selected = undefined;
    for (const [k, finding] of this.findingsByKey) if (!findingMatches(f, finding)) this.findingsByKey.delete(k);
    this.findings = sortFindings(this.findingsByKey.values());
    if (this.focus && !findingMatches(f, this.focus.finding)) this.focus = undefined;
    this.frozen = undefined;
    this.paused = false;
    this.changed({ paths: true, findings: true });
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.newSincePause = 0;
    const rows: PathRow[] = [];
    for (let i = 0; i < this.rows.count; i++) rows.push(this.rows.rowAt(i));
    this.frozen = new RowList(rows);
    this.changed({ paths: true });
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.frozen = undefined;
    this.changed({ paths: true });
  }

  select(row: PathRow | undefined): void {
    if (this.selected === row) return;
    this.selected = row;
    this.changed();
  }

  /** Show the paths that prove a finding (its evidence's packets), or the whole table again. */
  focusOn(finding: FindingMessage | undefined): void {
    if (!finding) {
      this.focus = undefined;
    } else {
      const fingerprints = new Set(finding.evidence?.packets?.values ?? []);
      const rows: PathRow[] = [];
      for (const r of this.rows) if (fingerprints.has(r.path.fingerprint ?? '')) rows.unshift(r);
      this.focus = { finding, rows, fingerprints, list: new RowList(rows) };
    }
    this.changed({ paths: true });
  }

  /** The fingerprints of the paths in view (the download asks the hub for these). */
  fingerprintsInView(): string[] {
    const v = this.view;
    const out = new Set<string>();
    for (let i = 0; i < v.count; i++) out.add(v.rowAt(i).path.fingerprint ?? '');
    out.delete('');
    return [...out];
  }

  /** Nodes as the map and the counters show them: every node the hub's cluster has, with its agent's state. */
  nodeViews(): NodeView[] {
    const names = new Set<string>([...(this.nodeMap?.nodes ?? []).map((n) => n.name ?? ''), ...this.nodes.keys()]);
    names.delete('');
    return [...names].sort().map((n) => this.nodes.get(n) ?? { name: n, state: 'unknown', reason: 'no agent has connected for it' });
  }

  /** Upstream losses summed over nodes. */
  get lostUpstreamTotal(): number {
    let n = 0;
    for (const l of this.lostUpstream.values()) n += l.ringBuffer + l.agentQueue + l.hubQueue;
    return n;
  }
}

export type { LostSource };
