// Correlation: HopEvents -> one PacketPath per inner packet (fingerprint), across nodes. Pure: no
// timers; the caller hands in `now` (wall-clock ns). Works on records from one process watching every
// lab node (one clock) and on records merged from several agents (one clock each): hops are grouped
// by node, ordered within a node by that node's clock, and nodes are ordered by hook position.
import type { HopEvent } from '../datapath/hop.js';
import type { ClusterModel } from '../cluster/model.js';
import type { PacketPath, PathHop, PathOutcome } from './path.js';

/** Resolves inner addresses to pods and nodes (the cluster model implements it). */
export interface PathResolver {
  podRef(ip: string): string | undefined;
  /** The node whose pod CIDR holds ip. */
  nodeOfPodIp(ip: string): string | undefined;
  /**
   * The node that holds ip as an address of its own (its pod bridge's gateway, its VTEP address):
   * a packet to it is delivered to that node's stack, past no pod bridge egress.
   */
  nodeOwningAddress?(ip: string): string | undefined;
}

export function resolverFromModel(model: ClusterModel): PathResolver {
  let own: Map<string, string> | undefined;
  return {
    podRef: (ip) => model.podByIp(ip)?.ref,
    nodeOfPodIp: (ip) => model.podCidrOwner(ip)?.node.name,
    nodeOwningAddress(ip) {
      // The addresses nodes hold in their own pod CIDRs (kernel state), looked up once per model.
      own ??= new Map(model.nodes.flatMap((n) => (n.kernel?.addresses ?? []).filter((a) => model.podCidrOwner(a.address)?.node === n).map((a) => [a.address, n.name] as const)));
      return own.get(ip);
    },
  };
}

export interface CorrelatorOptions {
  /**
   * A path with no new hop for this long (wall clock) is finished as lost/vanished. Default 4 s:
   * longer than a failed neighbour resolution (3 probes 1 s apart), whose NEIGH_FAILED drop is the
   * end of a packet queued for an address nobody answers for.
   */
  timeoutNs?: bigint;
  /** A path that reached a terminal hop (delivered, dropped) waits this long for late hops from other agents. Default 0: handed out at once. */
  settleNs?: bigint;
  /** With settleNs: a terminal path whose sending side is all in (seenWhole) is handed out at once. Default false. */
  wholeNeedsNoSettle?: boolean;
  /** The owner calls detachHops after each batch: the paths given hops are noted for it. Default false. */
  detachesHops?: boolean;
  /** Paths held at once; the oldest is evicted beyond this. Default 10000. */
  maxPaths?: number;
  /** Hops kept per path (loops repeat hops until the TTL runs out). Default 64. */
  maxHopsPerPath?: number;
  resolver?: PathResolver;
  /**
   * Hops kept out of any path: 'late' (its path was already handed out) or 'discarded' (past
   * maxHopsPerPath in a loop). Counted either way; a capture hands them here to write them too.
   */
  onUnpathed?: (event: HopEvent, why: 'late' | 'discarded' | 'flooded') => void;
  /**
   * Whether a node's hooks are traced (default: every node). A path that left for a node that is
   * not is 'untraced', not 'lost-in-underlay': nobody was watching it arrive.
   */
  traced?: (node: string) => boolean;
  /** Clock domain of an event: events with the same domain have comparable timestampNs. Default: the node (one agent per node). One process watching every lab node: `() => 'local'`. */
  clockOf?: (e: HopEvent) => string;
}

export interface CorrelatorStats {
  events: number;
  /** Events ignored because they lacked the fields correlation needs. */
  malformed: number;
  paths: number;
  delivered: number;
  dropped: number;
  lostInUnderlay: number;
  vanished: number;
  /** Paths that left for a node that is not traced. */
  untraced: number;
  /** Paths finished by the timeout (not by a terminal hop). */
  expired: number;
  /** Paths evicted to bound memory. */
  evicted: number;
  /** Paths still unfinished when flush() was called. */
  unfinished: number;
  /** Hops that arrived for a path already handed out (counted, not re-opened). */
  lateHops: number;
  hopsDiscarded: number;
  /** Hops of copies the underlay flooded to third nodes, left out of their paths. */
  floodedHops: number;
  inFlight: number;
}

/** Order of hook points along a cross-node path. (Runs in every sort of every path: no strings made.) */
export function hopPosition(e: Pick<HopEvent, 'role' | 'direction' | 'kind'>): number {
  const egress = e.direction === 'egress';
  switch (e.role) {
    case 'pod-bridge':
      return egress ? 5 : 0;
    case 'vtep':
      return egress ? 1 : 4;
    case 'uplink':
      return egress ? 2 : 3;
    default:
      return egress ? 2.5 : 3.5;
  }
}

interface OpenPath {
  fingerprint: string;
  /** Hops in arrival order. */
  events: HopEvent[];
  firstWall: bigint;
  lastWall: bigint;
  terminalAt?: bigint;
  discarded: number;
  /** The nodes owning the inner destination and source, resolved once when the path opens (undefined: unknown). */
  dstNode: string | undefined;
  srcNode: string | undefined;
  /** The destination is an address of dstNode itself (not a pod): delivered by its ingress there. */
  localDst: boolean;
  /** events[ownFrom..] may still be views into the buffer they were decoded from (detachHops). */
  ownFrom: number;
}

/** A view into a larger buffer (a record batch, a file): holding it holds the whole buffer. */
const isView = (a: Uint8Array): boolean => a.byteLength !== a.buffer.byteLength;

/**
 * Where detachHops copies hops to: slabs of SLAB_BYTES cut in order, each alive while one of its
 * copies is (about a thousand hops: a slab holds far less than the batches it replaces). One
 * Uint8Array per hop would cost about six times as much (V8 allocates each one's memory apart).
 */
const SLAB_BYTES = 256 * 1024;

class Slabs {
  private slab = new Uint8Array(0);
  private at = 0;

  /** Gives a hop copies of its frame and kernel record, side by side in a slab, when they are views. */
  detach(e: HopEvent): void {
    const r = e.record;
    const f = e.frame;
    if (!isView(f) && (r === undefined || !isView(r))) return;
    const rl = r === undefined ? 0 : r.byteLength;
    const n = rl + f.byteLength;
    if (this.at + n > this.slab.length) {
      this.slab = new Uint8Array(Math.max(SLAB_BYTES, n));
      this.at = 0;
    }
    const s = this.slab;
    const at = this.at;
    if (r !== undefined) {
      s.set(r, at);
      e.record = s.subarray(at, at + rl);
    }
    s.set(f, at + rl);
    e.frame = s.subarray(at + rl, at + n);
    this.at = (at + n + 7) & ~7;
  }
}

/**
 * How long a path delivered to a node's own address waits for a drop on the way up that node's
 * stack (an INPUT firewall rule): the kernel drops it in the same softirq, microseconds later.
 */
const LOCAL_SETTLE_NS = 100_000_000n;
/** A fingerprint as a 32-bit integer (a small integer to V8), the same for the same text: FNV-1a over its characters. */
export function fingerprintKey(fp: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < fp.length; i++) h = Math.imul(h ^ fp.charCodeAt(i), 0x01000193);
  return h | 0;
}

const NO_PATHS: PacketPath[] = Object.freeze([]) as unknown as PacketPath[];

/** Clock domains: one per node (agents), or one for all (one process tracing every lab node; pass it as clockOf). */
export const NODE_CLOCK = (e: HopEvent): string => e.node;
export const LOCAL_CLOCK = (): string => 'local';

const wallOf = (e: HopEvent): bigint => (typeof e.wallTimeNs === 'bigint' && e.wallTimeNs > 0n ? e.wallTimeNs : typeof e.timestampNs === 'bigint' ? e.timestampNs : 0n);

/**
 * True when `events` (in arrival order) are already what ordered() would make of them: each
 * node's hops contiguous and in the order of its clock (then position, then arrival), and the
 * nodes in the order of their first hop's position (then wall time, then arrival).
 */
function inPathOrder(events: readonly HopEvent[]): boolean {
  let groupStart = events[0];
  for (let i = 1; i < events.length; i++) {
    const a = events[i - 1]!;
    const b = events[i]!;
    if (a.node === b.node) {
      const ta = a.timestampNs;
      const tb = b.timestampNs;
      if (tb < ta || (tb === ta && hopPosition(b) < hopPosition(a))) return false;
      continue;
    }
    // a new node's group: it must not have appeared before, and must sort after the previous group
    for (let j = 0; j < i; j++) if (events[j]!.node === b.node) return false;
    const pa = hopPosition(groupStart!);
    const pb = hopPosition(b);
    if (pb < pa) return false;
    if (pb === pa) {
      const wa = wallOf(groupStart!);
      const wb = wallOf(b);
      if (wb < wa) return false;
    }
    groupStart = b;
  }
  return true;
}

function wellFormed(e: unknown): e is HopEvent {
  if (typeof e !== 'object' || e === null) return false;
  const h = e as Partial<HopEvent>;
  return (
    typeof h.fingerprint === 'string' && h.fingerprint.length > 0 &&
    typeof h.node === 'string' && typeof h.device === 'string' &&
    (h.kind === 'tc' || h.kind === 'drop') &&
    (h.direction === 'ingress' || h.direction === 'egress') &&
    typeof h.role === 'string' &&
    typeof h.timestampNs === 'bigint' &&
    typeof h.inner === 'object' && h.inner !== null && typeof h.inner.src === 'string' && typeof h.inner.dst === 'string'
  );
}

/**
 * A hop that hands the packet to its destination pod: out of the pod bridge on the destination's
 * node (any node when that is unknown). A packet to the node's own address (`vxtrace check`'s
 * probes and their replies) is delivered by the last hook it passes there: the ingress it came by.
 */
function isDelivery(e: HopEvent, p: Pick<OpenPath, 'dstNode' | 'localDst'>): boolean {
  if (e.kind !== 'tc') return false;
  if (p.localDst) return e.node === p.dstNode && e.direction === 'ingress' && (e.role === 'vtep' || e.role === 'pod-bridge');
  return e.role === 'pod-bridge' && e.direction === 'egress' && (p.dstNode === undefined || e.node === p.dstNode);
}

/**
 * A copy of an ICMP message delivered to a node's stack, freed there by the socket layer: every raw
 * socket (ping run as root: `vxtrace check`'s probes) gets a copy of an echo reply, which the filter
 * of each ping that did not send it refuses (SOCKET_FILTER), or a ping that ends frees unread
 * (QUEUE_PURGE); the ICMP layer then frees the reply itself when no ping socket asked for it
 * (NO_SOCKET). Whether the sender read its copy is the sender's to say: not the packet's fate.
 */
const SOCKET_COPY_REASONS = new Set(['NO_SOCKET', 'SOCKET_FILTER', 'QUEUE_PURGE', 'SOCKET_CLOSE', 'SOCKET_RCVBUFF']);
function isSocketCopyFreed(e: HopEvent, p: Pick<OpenPath, 'localDst'>): boolean {
  return p.localDst && e.kind === 'drop' && e.inner.protocol === 1 && SOCKET_COPY_REASONS.has(e.dropReason ?? '');
}

/** A kernel drop of a frame that was not for that node (OTHERHOST) on a third node: a flooded copy. */
function isFloodedCopy(e: HopEvent, p: Pick<OpenPath, 'dstNode' | 'srcNode'>): boolean {
  return e.kind === 'drop' && e.dropReason === 'OTHERHOST' && p.dstNode !== undefined && p.srcNode !== undefined && e.node !== p.dstNode && e.node !== p.srcNode;
}

/**
 * A terminal path whose sending side was seen whole needs no settle time: its source node's hops up
 * to the uplink (pod bridge in, VTEP out, uplink out; for a same-node path the bridge in) are in,
 * and hops from several agents can only be missing from the legs before the last one.
 */
function seenWhole(p: OpenPath): boolean {
  if (p.srcNode === undefined || p.dstNode === undefined) return false;
  let seen = 0;
  for (const e of p.events) {
    const at = hopPosition(e);
    if (e.node === p.srcNode && e.kind === 'tc' && Number.isInteger(at)) seen |= 1 << at;
  }
  return p.srcNode === p.dstNode ? (seen & 1) !== 0 : (seen & 0b111) === 0b111;
}

export class Correlator {
  private readonly open = new Map<string, OpenPath>();
  /**
   * The open paths by a number made from their fingerprint (fingerprintKey): a hop finds its path
   * by a small integer, not by hashing the fresh string each record brings. A path whose number
   * another open path holds is found in `open` (`unkeyed` of them).
   */
  private readonly openByKey = new Map<number, OpenPath>();
  private unkeyed = 0;
  /**
   * Recently handed-out fingerprints -> wall time, to count late hops instead of opening a new
   * path. Two generations, swapped when the newer is full: bounded at maxPaths without evicting
   * one by one from the front of a Map (which slows down as deleted entries pile up there).
   */
  private recent = new Map<string, bigint>();
  /** Paths given a hop that may be a view since the last detachHops (each once). */
  private readonly touched: OpenPath[] = [];
  private readonly slabs = new Slabs();
  private recentOld = new Map<string, bigint>();
  private readonly opts: Required<Omit<CorrelatorOptions, 'resolver' | 'onUnpathed' | 'traced' | 'wholeNeedsNoSettle' | 'detachesHops'>> & Pick<CorrelatorOptions, 'resolver' | 'onUnpathed' | 'traced' | 'wholeNeedsNoSettle' | 'detachesHops'>;
  private readonly counters: Omit<CorrelatorStats, 'inFlight'> = {
    events: 0, malformed: 0, paths: 0, delivered: 0, dropped: 0, lostInUnderlay: 0, vanished: 0, untraced: 0,
    expired: 0, evicted: 0, unfinished: 0, lateHops: 0, hopsDiscarded: 0, floodedHops: 0,
  };

  constructor(opts: CorrelatorOptions = {}) {
    this.opts = {
      timeoutNs: opts.timeoutNs ?? 4_000_000_000n,
      settleNs: opts.settleNs ?? 0n,
      maxPaths: Math.max(1, opts.maxPaths ?? 10_000),
      maxHopsPerPath: Math.max(2, opts.maxHopsPerPath ?? 64),
      clockOf: opts.clockOf ?? NODE_CLOCK,
      resolver: opts.resolver,
      onUnpathed: opts.onUnpathed,
      traced: opts.traced,
      wholeNeedsNoSettle: opts.wholeNeedsNoSettle ?? false,
      detachesHops: opts.detachesHops ?? false,
    };
  }

  /**
   * Copies the hops added since the last call, of paths still open, out of the buffers they were
   * decoded from. A hop's frame and record are views into its batch (the addon's 1 MiB of records,
   * an agent's message): a path still open after its batch would keep the whole batch alive until
   * it finishes, up to the timeout (4 s of batches under a flood whose records are shed or lost).
   * Call after each batch of add() (with the detachesHops option); costs nothing for paths that
   * finished within their batch.
   */
  detachHops(): void {
    for (const p of this.touched) {
      if (this.open.get(p.fingerprint) !== p) continue;
      for (let i = p.ownFrom; i < p.events.length; i++) this.slabs.detach(p.events[i]!);
      p.ownFrom = p.events.length;
    }
    this.touched.length = 0;
  }

  /** Replace the resolver (the cluster model changed). */
  setResolver(resolver: PathResolver | undefined): void {
    this.opts.resolver = resolver;
  }

  /** Add one hop. Returns the paths finished by it (terminal with no settle time, or evicted). Never throws on bad input: malformed events are counted and ignored. */
  add(event: HopEvent): PacketPath[] {
    this.counters.events++;
    if (!wellFormed(event)) {
      this.counters.malformed++;
      return NO_PATHS;
    }
    const fp = event.fingerprint;
    const wall = wallOf(event);
    let out: PacketPath[] | undefined;
    const key = fingerprintKey(fp);
    let p = this.openByKey.get(key);
    if (p !== undefined && p.fingerprint !== fp) p = this.unkeyed ? this.open.get(fp) : undefined;
    else if (p === undefined && this.unkeyed) p = this.open.get(fp);
    if (!p) {
      const finishedAt = this.recent.get(fp) ?? this.recentOld.get(fp);
      if (finishedAt !== undefined) {
        if (wall - finishedAt <= this.opts.timeoutNs) {
          this.counters.lateHops++;
          this.opts.onUnpathed?.(event, 'late');
          return NO_PATHS;
        }
        this.recent.delete(fp);
        this.recentOld.delete(fp);
      }
      if (this.open.size >= this.opts.maxPaths) {
        const oldest = this.open.keys().next().value as string;
        (out ??= []).push(this.finish(this.open.get(oldest)!, 'evicted'));
      }
      const dstNode = this.opts.resolver?.nodeOfPodIp(event.inner.dst);
      p = {
        fingerprint: fp, events: [], firstWall: wall, lastWall: wall, discarded: 0, ownFrom: 0,
        dstNode, srcNode: this.opts.resolver?.nodeOfPodIp(event.inner.src),
        localDst: dstNode !== undefined && this.opts.resolver?.nodeOwningAddress?.(event.inner.dst) === dstNode,
      };
      this.open.set(fp, p);
      if (this.openByKey.has(key)) this.unkeyed++;
      else this.openByKey.set(key, p);
      this.counters.paths++;
    }
    // The cap keeps loops bounded; a drop is always kept (it says how the path ended).
    if (p.events.length >= this.opts.maxHopsPerPath && event.kind !== 'drop') {
      p.discarded++;
      this.counters.hopsDiscarded++;
      this.opts.onUnpathed?.(event, 'discarded');
    } else {
      // the first hop since the last detachHops that may be a view: the path is looked at then
      if (p.events.push(event) === p.ownFrom + 1 && this.opts.detachesHops) this.touched.push(p);
    }
    if (wall > p.lastWall) p.lastWall = wall;
    if (wall < p.firstWall) p.firstWall = wall;
    // Terminal once a hop delivers or drops it: only the new hop can make it so.
    // (A flooded copy's drop on a third node is not the packet's fate.)
    if (p.terminalAt === undefined && ((event.kind === 'drop' && !isFloodedCopy(event, p) && !isSocketCopyFreed(event, p)) || isDelivery(event, p))) p.terminalAt = p.lastWall;
    if (p.terminalAt !== undefined && this.settleOf(p) === 0n) (out ??= []).push(this.finish(p, 'terminal'));
    // (most hops finish nothing: one shared empty list, frozen, instead of one per hop)
    return out ?? NO_PATHS;
  }

  /**
   * How long a terminal path waits for late hops: the settle time (none when its sending side is all
   * in, with wholeNeedsNoSettle), and at least LOCAL_SETTLE_NS for a local delivery not yet dropped.
   */
  private settleOf(p: OpenPath): bigint {
    const settle = this.opts.wholeNeedsNoSettle && seenWhole(p) ? 0n : this.opts.settleNs;
    if (!p.localDst || p.events.some((e) => e.kind === 'drop' && !isSocketCopyFreed(e, p))) return settle;
    return settle > LOCAL_SETTLE_NS ? settle : LOCAL_SETTLE_NS;
  }

  /** Hand out paths that are done by `now` (wall-clock ns): terminal ones past their settle time, others past the timeout. */
  poll(now: bigint): PacketPath[] {
    const out: PacketPath[] = [];
    // (finish() deletes the path it hands out: a Map's iteration goes on past a deleted entry)
    for (const p of this.open.values()) {
      if (p.terminalAt !== undefined) {
        if (now - p.lastWall >= this.settleOf(p)) out.push(this.finish(p, 'terminal'));
      } else if (now - p.lastWall >= this.opts.timeoutNs) {
        out.push(this.finish(p, 'timeout'));
      }
    }
    // Forget what finished more than the timeout ago, oldest first, up to the first that did not:
    // paths finish nearly in time order, and add() checks the time of what it finds anyway (a
    // fingerprint remembered a little longer is only memory, and the two generations bound it).
    for (const m of [this.recentOld, this.recent]) {
      for (const [fp, at] of m) {
        if (now - at <= this.opts.timeoutNs) break;
        m.delete(fp);
      }
    }
    return out;
  }

  /** End of input: hand out everything still open, with the outcome its hops show. */
  flush(): PacketPath[] {
    return [...this.open.values()].map((p) => this.finish(p, p.terminalAt !== undefined ? 'terminal' : 'flush'));
  }

  /** The open paths as they stand (outcome 'in-flight' unless terminal), without handing them out. */
  inFlight(): PacketPath[] {
    return [...this.open.values()].map((p) => this.build(p, p.terminalAt !== undefined ? undefined : 'in-flight'));
  }

  stats(): CorrelatorStats {
    return { ...this.counters, inFlight: this.open.size };
  }

  /**
   * Hops of copies an L2 underlay flooded to third nodes (its switch did not know the receiver's
   * MAC, or forgot it): on a node that is neither the packet's source nor its destination, only an
   * uplink ingress and the kernel's OTHERHOST drop (the frame was not for that node). They are not
   * the packet's journey.
   */
  private floodedCopies(p: OpenPath): Set<HopEvent> | undefined {
    if (p.dstNode === undefined || p.srcNode === undefined) return undefined;
    // Per finished path: nothing is allocated unless a hop was seen on a third node.
    let byNode: Map<string, HopEvent[]> | undefined;
    for (const e of p.events) {
      if (e.node === p.dstNode || e.node === p.srcNode) continue;
      byNode ??= new Map();
      const list = byNode.get(e.node);
      if (list) list.push(e);
      else byNode.set(e.node, [e]);
    }
    if (!byNode) return undefined;
    const out = new Set<HopEvent>();
    for (const events of byNode.values()) {
      const copy = events.every((e) => (e.kind === 'tc' && e.role === 'uplink' && e.direction === 'ingress') || isFloodedCopy(e, p));
      if (copy) for (const e of events) out.add(e);
    }
    return out;
  }

  private deliveredHop(p: OpenPath): HopEvent | undefined {
    // Delivered to a node's own stack and then dropped there (an INPUT rule): dropped.
    if (p.localDst && p.events.some((e) => e.kind === 'drop' && !isSocketCopyFreed(e, p))) return undefined;
    return p.events.find((e) => isDelivery(e, p));
  }

  private finish(p: OpenPath, by: NonNullable<PacketPath['finishedBy']>): PacketPath {
    this.open.delete(p.fingerprint);
    const key = fingerprintKey(p.fingerprint);
    if (this.openByKey.get(key) === p) this.openByKey.delete(key);
    else this.unkeyed--;
    // Flooded copies leave the path; a capture still writes them.
    const copies = this.floodedCopies(p);
    if (copies?.size && p.events.length > copies.size) {
      p.events = p.events.filter((e) => !copies.has(e));
      this.counters.floodedHops += copies.size;
      for (const e of copies) this.opts.onUnpathed?.(e, 'flooded');
    }
    if (this.recent.size >= Math.ceil(this.opts.maxPaths / 2)) {
      this.recentOld = this.recent;
      this.recent = new Map();
    }
    this.recent.set(p.fingerprint, p.lastWall);
    const path = this.build(p);
    path.finishedBy = by;
    const c = this.counters;
    if (by === 'evicted') c.evicted++;
    if (by === 'timeout') c.expired++;
    if (by === 'flush') c.unfinished++;
    if (path.outcome === 'delivered') c.delivered++;
    else if (path.outcome === 'dropped') c.dropped++;
    else if (path.outcome === 'lost-in-underlay') c.lostInUnderlay++;
    else if (path.outcome === 'vanished') c.vanished++;
    else if (path.outcome === 'untraced') c.untraced++;
    return path;
  }

  /** Order hops: group by node; within a node by its clock (then position, then arrival); nodes by the position of their first hop, then wall time. */
  private ordered(p: OpenPath): HopEvent[] {
    // Most paths arrive in order already (one machine's hooks see a packet one after another):
    // check that in one pass, and sort only the others (seq: arrival order within the path).
    if (inPathOrder(p.events)) return p.events;
    const groups = new Map<string, { e: HopEvent; seq: number }[]>();
    p.events.forEach((e, seq) => {
      const g = groups.get(e.node);
      if (g) g.push({ e, seq });
      else groups.set(e.node, [{ e, seq }]);
    });
    const sorted = [...groups.values()].map((g) =>
      g.sort((a, b) => (a.e.timestampNs < b.e.timestampNs ? -1 : a.e.timestampNs > b.e.timestampNs ? 1 : hopPosition(a.e) - hopPosition(b.e) || a.seq - b.seq)),
    );
    sorted.sort((a, b) => {
      const pa = hopPosition(a[0]!.e);
      const pb = hopPosition(b[0]!.e);
      if (pa !== pb) return pa - pb;
      const wa = wallOf(a[0]!.e);
      const wb = wallOf(b[0]!.e);
      return wa < wb ? -1 : wa > wb ? 1 : a[0]!.seq - b[0]!.seq;
    });
    return sorted.flat().map((x) => x.e);
  }

  private build(p: OpenPath, forceOutcome?: PathOutcome): PacketPath {
    const ordered = this.ordered(p);
    const hops: PathHop[] = new Array(ordered.length);
    // One pass: the hops with their latencies, and what the outcome is drawn from.
    const oneClock = this.opts.clockOf === LOCAL_CLOCK;
    let prev: HopEvent | undefined;
    let dropEvent: HopEvent | undefined;
    let egressUplink: HopEvent | undefined;
    let ingressUplink: HopEvent | undefined;
    let anyOuter: HopEvent | undefined;
    let srcFromHops: string | undefined;
    for (let i = 0; i < ordered.length; i++) {
      const e = ordered[i]!;
      const hop: PathHop = { event: e };
      if (prev && e.timestampNs >= prev.timestampNs && (oneClock || this.opts.clockOf(prev) === this.opts.clockOf(e))) hop.latencyNs = e.timestampNs - prev.timestampNs;
      hops[i] = hop;
      prev = e;
      if (!dropEvent && e.kind === 'drop') dropEvent = e;
      if (e.outer) {
        anyOuter ??= e;
        if (e.role === 'uplink') {
          if (e.direction === 'egress') egressUplink ??= e;
          else ingressUplink ??= e;
        }
      }
      if (srcFromHops === undefined && hopPosition(e) <= 2) srcFromHops = e.node;
    }
    const first = ordered[0]!;
    const r = this.opts.resolver;
    const delivered = this.deliveredHop(p);
    const outer = (egressUplink ?? ingressUplink ?? anyOuter)?.outer;
    let outcome: PathOutcome;
    if (forceOutcome) outcome = forceOutcome;
    else if (delivered) outcome = 'delivered';
    else if (dropEvent) outcome = 'dropped';
    else {
      const senders = new Set(ordered.filter((e) => e.role === 'uplink' && e.direction === 'egress').map((e) => e.node));
      const arrivedElsewhere = ordered.some((e) => hopPosition(e) >= 3 && hopPosition(e) !== 3.5 && !senders.has(e.node));
      outcome = senders.size > 0 && !arrivedElsewhere ? 'lost-in-underlay' : 'vanished';
      const bound = r?.nodeOfPodIp(first.inner.dst);
      if (outcome === 'lost-in-underlay' && bound && this.opts.traced && !this.opts.traced(bound)) outcome = 'untraced';
    }
    const srcNodeFromHops = srcFromHops ?? first.node;
    let dstNodeFromHops: string | undefined;
    for (let i = ordered.length - 1; i >= 0; i--) {
      const e = ordered[i]!;
      if (hopPosition(e) >= 3 && e.node !== srcNodeFromHops) {
        dstNodeFromHops = e.node;
        break;
      }
    }
    const path: PacketPath = {
      fingerprint: p.fingerprint,
      inner: first.inner,
      srcPod: r?.podRef(first.inner.src),
      dstPod: r?.podRef(first.inner.dst),
      srcNode: r?.nodeOfPodIp(first.inner.src) ?? srcNodeFromHops,
      dstNode: r?.nodeOfPodIp(first.inner.dst) ?? dstNodeFromHops,
      hops,
      outer,
      outcome,
      firstSeenNs: p.firstWall,
      lastSeenNs: p.lastWall,
    };
    if (dropEvent && outcome === 'dropped') {
      path.drop = { node: dropEvent.node, device: dropEvent.device, reason: dropEvent.dropReason ?? 'NOT_SPECIFIED', location: dropEvent.dropLocation };
    }
    if (p.discarded) path.hopsDiscarded = p.discarded;
    return path;
  }
}
