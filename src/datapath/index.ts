// The datapath's public API: open a tracer, attach it to hook points on lab or real nodes,
// choose what to follow, and receive HopEvents in batches. Wraps the native addon (libbpf) and
// the record decoder; nothing else in vxtrace talks to either.
import { EnvironmentError, UsageError } from '../errors.js';
import { parseAddressPrefix } from '../net/address.js';
import { decodeBatchChunks, type DecodeContext, type HookIdentity } from './decode.js';
import { decodeFlowCounters, type FlowCount } from './flow.js';
import { discoverAttachPoints, interfaceNames, type AttachPoint } from './discover.js';
import { KernelSymbols } from './kallsyms.js';
import { loadNative, BPF_OBJECT_PATH } from './native.js';
import type { RawLayout, RawLoadedConfig, RawRule, RawTracer } from './native-addon.js';
import type { DeviceRole, Direction, HopEvent } from './hop.js';

export type { HopEvent, DeviceRole, Direction } from './hop.js';
export { discoverAttachPoints, interfaceNames, type AttachPoint, type NodeDatapath, type VxlanDeviceInfo } from './discover.js';
export { fingerprintOf, fingerprintFieldsOf, type FingerprintFields } from './decode.js';
export type { FlowCount, FlowHopCount, FlowTuple } from './flow.js';

/** What the kernel emits: nothing, every IP packet, or packets matching any rule. */
export type FlowFilter = 'none' | 'everything' | { rules: FlowRule[] };

export interface FlowRule {
  /** Two addresses or CIDRs; the rule matches packets from either to the other. Default: any. */
  between?: [string, string];
  /** IP protocol: name or number. Default: any. */
  protocol?: 'icmp' | 'tcp' | 'udp' | 'icmpv6' | number;
  /** Source or destination port (TCP/UDP). Default: any. */
  port?: number;
}

export interface TracerOptions {
  /**
   * Frame bytes kept per record: default defaultSnaplen(), at most 2048. 'headers': the outer and
   * inner headers (headersSnaplen()), frames up to defaultSnaplen() bytes whole (so that a small
   * packet's outer checksum can still be checked).
   */
  snaplen?: number | 'headers';
  /** UDP ports parsed as VXLAN: default defaultVxlanPorts(); at most 4. */
  vxlanPorts?: number[];
  /** Ring buffer size in bytes (power of two, at least a page): default 4 MiB. */
  ringBytes?: number;
  /** Report kernel drops (skb:kfree_skb) in the watched namespaces: default true. */
  trackDrops?: boolean;
  /** The drop tracepoint: 'auto' (default) takes tp_btf when the kernel's BTF has it, else the raw tracepoint. */
  dropHook?: 'auto' | 'tp_btf' | 'raw_tp';
  /** Initial filter: default 'none' (attached, emitting nothing). */
  filter?: FlowFilter;
  /** tcx links (die with the process) or clsact filters; 'auto' prefers tcx. */
  attachMode?: 'auto' | 'tcx' | 'clsact';
  /** Count every followed packet per flow and hook in the kernel (flowCounters()): default true. */
  countFlows?: boolean;
  /** Flow counter entries (flow x hook) the kernel keeps, the least recently used going first: default 16384. */
  flowEntries?: number;
  /**
   * When the kernel sheds records (user space is behind): 'auto' (default) once half the ring
   * buffer waits, 'always', 'never', or that many bytes waiting. Shed records are counted as
   * sampled, per flow and hook too; counters stay exact.
   */
  shed?: 'auto' | 'always' | 'never' | number;
  /** While shedding, records kept per flow and hook (and CPU) per window: default 32. */
  sampleFirst?: number;
  /** The shedding window, ms: default 100. */
  sampleWindowMs?: number;
}

export interface AttachedHook extends HookIdentity {
  netns?: string;
  direction: Direction;
  ifindex: number;
  netnsCookie: bigint;
  mode: 'tcx' | 'clsact';
  /** Kernel ids, as bpftool shows them (linkId 0 for clsact). */
  programId: number;
  linkId: number;
}

export interface TracerStats {
  /** Records the kernel wrote to the ring buffer. */
  records: number;
  /** Records lost: ring buffer full (per CPU, summed) plus any dropped in user space on close. */
  lostRecords: number;
  /** Ring-buffer losses per CPU. */
  lostPerCpu: number[];
  /** Packets the tc programs looked at. */
  seen: number;
  /** Records handed to JavaScript. */
  delivered: number;
  /** Real kernel drops seen by the kfree_skb program, before filtering. */
  dropsSeen: number;
  /** Packets (at tc hooks) and drops the filter wanted. */
  followed: number;
  /** Records the kernel did not write by choice (shed while user space was behind): counted in the flow counters, never lost. */
  sampled: number;
  /** Packets (at tc hooks) whose headers were not in the skb's linear part and were pulled there first. */
  pulled: number;
}

/** The load-time configuration as the loaded programs hold it (read back from the kernel). */
export type LoadedConfig = RawLoadedConfig;

interface WatchedNetns {
  node: string;
  netns?: string;
  inode: number;
  names: Map<number, string>;
  roles: Map<string, DeviceRole>;
}

const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58 };

/** Events per onEvents call: a ring-buffer batch (up to 1 MiB, thousands of records) in pieces. */
export const EVENTS_PER_CALL = 256;
/** Batches are handled for at most about this long (ms) in one turn of the event loop (at least one). */
const TURN_MS = 10;

function native<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof EnvironmentError || err instanceof UsageError) throw err;
    throw new EnvironmentError((err as Error).message, { cause: err });
  }
}

let layoutCache: RawLayout | undefined;
/** bpf/vxtrace.h's layouts, constants and defaults, as the addon was built with them. */
function headerLayout(): RawLayout {
  return (layoutCache ??= loadNative().layout());
}

/** Frame bytes a record keeps when no snaplen is given (VXT_DEFAULT_SNAPLEN of bpf/vxtrace.h). */
export function defaultSnaplen(): number {
  return headerLayout().defaultSnaplen;
}

/** Frame bytes that hold a packet's outer and inner headers (VXT_HEADERS_SNAPLEN): what a run keeps when it writes no trace. */
export function headersSnaplen(): number {
  return headerLayout().headersSnaplen;
}

/**
 * UDP ports parsed as VXLAN when none are given: Linux's (flannel's) 8472, then IANA's 4789
 * (VXT_DEFAULT_VXLAN_PORTS of bpf/vxtrace.h). A function, not a constant, so that importing this
 * module does not load the addon.
 */
export function defaultVxlanPorts(): number[] {
  return [...headerLayout().defaultVxlanPorts];
}

export class Tracer {
  private readonly raw: RawTracer;
  /** netns cookie -> ifindex -> the hook there, for decoding (looked up for every record). */
  private readonly hooks = new Map<bigint, Map<number, AttachedHook>>();
  private readonly attached: AttachedHook[] = [];
  private readonly namespaces = new Map<bigint, WatchedNetns>();
  private readonly symbols = new KernelSymbols();
  private dropNames: Record<string, string> | undefined;
  private counterContext: DecodeContext | undefined;
  private stopped: Promise<void> | undefined;
  private closed = false;
  private readonly attachMode: 'auto' | 'tcx' | 'clsact';
  private readonly filterModes: { none: number; all: number; rules: number };
  readonly dropHook: string | null;

  private constructor(raw: RawTracer, opts: TracerOptions, dropHook: string | null, layout: RawLayout) {
    this.raw = raw;
    this.attachMode = opts.attachMode ?? 'auto';
    this.dropHook = dropHook;
    const c = layout.constants;
    this.filterModes = { none: c.FILTER_NONE, all: c.FILTER_ALL, rules: c.FILTER_RULES };
  }

  /** Opens, configures and loads the BPF programs (needs root: CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN). */
  static open(opts: TracerOptions = {}): Tracer {
    const addon = loadNative();
    const layout = headerLayout();
    if (opts.snaplen !== undefined && opts.snaplen !== 'headers' && !(Number.isInteger(opts.snaplen) && opts.snaplen >= 1 && opts.snaplen <= layout.maxSnaplen)) {
      throw new UsageError(`snaplen ${opts.snaplen} is out of range: use 1..${layout.maxSnaplen}`);
    }
    if (opts.vxlanPorts !== undefined) {
      const ports = [...new Set(opts.vxlanPorts)];
      if (!ports.length || ports.length > layout.maxVxlanPorts || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
        throw new UsageError(`VXLAN ports ${opts.vxlanPorts.join(',')}: give 1..${layout.maxVxlanPorts} UDP ports`);
      }
      opts = { ...opts, vxlanPorts: ports };
    }
    const shed = opts.shed ?? 'auto';
    if (typeof shed === 'number' && !(Number.isInteger(shed) && shed >= 0)) throw new UsageError(`shed ${shed}: give 'auto', 'always', 'never' or a number of bytes`);
    const raw = native('open', () => new addon.Tracer(BPF_OBJECT_PATH));
    try {
      native('configure', () =>
        raw.configure({
          ...(opts.snaplen === 'headers' ? { snaplen: layout.headersSnaplen, wholeUpTo: layout.defaultSnaplen } : opts.snaplen !== undefined ? { snaplen: opts.snaplen } : {}),
          ...(opts.vxlanPorts ? { vxlanPorts: opts.vxlanPorts } : {}),
          ...(opts.ringBytes !== undefined ? { ringBytes: opts.ringBytes } : {}),
          trackDrops: opts.trackDrops ?? true,
          dropHook: opts.dropHook ?? 'auto',
          countFlows: opts.countFlows ?? true,
          ...(opts.flowEntries !== undefined ? { flowEntries: opts.flowEntries } : {}),
          ...(shed === 'auto' ? {} : { shedAbove: shed === 'always' ? 0 : shed === 'never' ? -1 : shed }),
          ...(opts.sampleFirst !== undefined ? { sampleFirst: opts.sampleFirst } : {}),
          ...(opts.sampleWindowMs !== undefined ? { sampleWindowNs: Math.round(opts.sampleWindowMs * 1e6) } : {}),
        }),
      );
      const { dropHook } = native('load', () => raw.load());
      const tracer = new Tracer(raw, opts, dropHook, layout);
      tracer.setFilter(opts.filter ?? 'none');
      return tracer;
    } catch (err) {
      raw.close();
      throw err;
    }
  }

  /** Attaches to each point (both directions unless it says otherwise). */
  attach(points: AttachPoint[]): AttachedHook[] {
    this.assertOpen('attach');
    const attached: AttachedHook[] = [];
    for (const p of points) {
      for (const direction of p.directions ?? (['ingress', 'egress'] as Direction[])) {
        const r = native('attach', () =>
          this.raw.attach({ netns: p.netns ?? null, device: p.device, direction, mode: this.attachMode }),
        );
        const hook: AttachedHook = {
          node: p.node,
          ...(p.netns ? { netns: p.netns } : {}),
          device: p.device,
          role: p.role,
          direction,
          ifindex: r.ifindex,
          netnsCookie: r.netnsCookie,
          netnsInode: r.netnsInode,
          mode: r.mode,
          programId: r.programId,
          linkId: r.linkId,
        };
        let byIfindex = this.hooks.get(r.netnsCookie);
        if (!byIfindex) this.hooks.set(r.netnsCookie, (byIfindex = new Map()));
        byIfindex.set(r.ifindex, hook);
        this.attached.push(hook);
        this.remember(p.node, p.netns, r.netnsCookie, r.netnsInode).roles.set(p.device, p.role);
        attached.push(hook);
      }
    }
    return attached;
  }

  /** Discovers a node's attach points from its kernel and attaches to all of them. */
  attachNode(node: string, netns?: string): AttachedHook[] {
    return this.attach(discoverAttachPoints(node, netns).points);
  }

  /** Reports drops in a namespace without attaching tc there (e.g. a pod's). */
  watchNetns(node: string, netns?: string): void {
    this.assertOpen('watchNetns');
    const r = native('watchNetns', () => this.raw.watchNetns(netns ?? null));
    this.remember(node, netns, r.netnsCookie, r.netnsInode);
  }

  private remember(node: string, netns: string | undefined, cookie: bigint, inode: number): WatchedNetns {
    let w = this.namespaces.get(cookie);
    if (!w) {
      w = { node, ...(netns ? { netns } : {}), inode, names: interfaceNames(netns), roles: new Map() };
      this.namespaces.set(cookie, w);
    }
    return w;
  }

  /** Chooses what the kernel emits; takes effect at once on every hook. */
  setFilter(filter: FlowFilter): void {
    this.assertOpen('setFilter');
    const modes = this.filterModes;
    if (filter === 'none') return native('setFilter', () => this.raw.setFilter(modes.none, []));
    if (filter === 'everything') return native('setFilter', () => this.raw.setFilter(modes.all, []));
    const rules = filter.rules.map(encodeRule);
    native('setFilter', () => this.raw.setFilter(modes.rules, rules));
  }

  /**
   * Starts delivering events; onEvents gets the events of each batch the kernel handed over, in
   * arrays of at most EVENTS_PER_CALL (each decoded just before the call: a call's events can be
   * done with before the next are made, which keeps them young for the garbage collector). An error
   * thrown while decoding or by onEvents goes to onError (default: thrown again outside the addon's
   * callback, as an uncaught exception): never swallowed by N-API with the batch.
   */
  start(onEvents: (events: HopEvent[]) => void, onError: (err: Error) => void = throwLater): void {
    this.assertOpen('start');
    if (this.stopped) throw new UsageError('the tracer is already started');
    const ctx = this.decodeContext();
    let resolveStopped!: () => void;
    this.stopped = new Promise((r) => (resolveStopped = r));
    // The addon's callback only queues a batch; batches are handled in turns of the event loop
    // (setImmediate), a few at a time, and each one handled is reported (done) so that the polling
    // thread hands out more. Handled inside the callback, a flood kept N-API calling it for seconds
    // in one turn: no timer, signal or finalizer (which frees the batches) ran meanwhile.
    const raw = this.raw;
    const queue: Buffer[] = [];
    let scheduled = false;
    let ended = false;
    const handle = () => {
      scheduled = false;
      if (this.closed) {
        queue.length = 0; // closed without stop(): the hooks are gone, what is left is not wanted
        if (ended) resolveStopped();
        return;
      }
      const until = performance.now() + TURN_MS;
      while (queue.length) {
        const batch = queue.shift()!;
        try {
          decodeBatchChunks(batch, ctx, EVENTS_PER_CALL, onEvents);
        } catch (err) {
          onError(err instanceof Error ? err : new Error(String(err)));
        }
        raw.done(1);
        if (queue.length && performance.now() >= until) return schedule();
      }
      if (ended) resolveStopped();
    };
    const schedule = () => {
      if (scheduled) return;
      scheduled = true;
      setImmediate(handle);
    };
    native('start', () =>
      raw.start(
        (batch) => {
          queue.push(batch);
          schedule();
        },
        () => {
          // after the last batch: stopped once it is handled too
          ended = true;
          if (!queue.length && !scheduled) resolveStopped();
        },
      ),
    );
  }

  /** Stops after delivering every record already in the ring buffer. */
  async stop(): Promise<void> {
    if (!this.stopped) return;
    this.raw.stop();
    await this.stopped;
    this.stopped = undefined;
  }

  stats(): TracerStats {
    this.assertOpen('stats');
    const s = native('stats', () => this.raw.stats());
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    return {
      records: sum(s.records),
      lostRecords: sum(s.lost) + s.userLost,
      lostPerCpu: s.lost,
      seen: sum(s.seen),
      delivered: s.delivered,
      dropsSeen: sum(s.dropsSeen),
      followed: sum(s.followed),
      sampled: sum(s.sampled),
      pulled: sum(s.pulled),
    };
  }

  /**
   * The kernel's counters of every followed flow at every hook (and its drops per device and
   * reason), as they stand: exact whatever happened to the records.
   */
  flowCounters(): FlowCount[] {
    this.assertOpen('flowCounters');
    const buf = native('flowCounters', () => this.raw.flowCounters());
    return decodeFlowCounters(buf, this.counterContext ??= this.decodeContext());
  }

  /** The load-time configuration the kernel holds: snaplen, VXLAN ports, the non-drop reasons it was given. */
  loadedConfig(): LoadedConfig {
    this.assertOpen('loadedConfig');
    return native('loadedConfig', () => this.raw.loadedConfig());
  }

  /** One entry per program attached (device and direction). */
  hooksAttached(): AttachedHook[] {
    return [...this.attached];
  }

  /** Detaches everything this tracer attached and frees it; safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.raw.close();
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new UsageError(`${what}: the tracer is closed`);
  }

  private decodeContext(): DecodeContext {
    // Drop reasons' names (the kernel's BTF) and kernel symbols (/proc/kallsyms) take 0.1-0.2 s to
    // read: read them now, not at the first drop, when records arrive and the ring buffer fills.
    if (this.dropHook) {
      this.dropNames ??= native('dropReasons', () => loadNative().dropReasons());
      this.symbols.preload();
    }
    const wall = BigInt(Date.now()) * 1_000_000n;
    const mono = process.hrtime.bigint(); // CLOCK_MONOTONIC on Linux, as bpf_ktime_get_ns()
    return {
      monotonicToWallNs: wall - mono,
      hookOf: (cookie, ifindex) => {
        const hook = this.hooks.get(cookie)?.get(ifindex);
        if (hook) return hook;
        const ns = this.namespaces.get(cookie);
        const device = ns?.names.get(ifindex) ?? (ifindex ? `ifindex ${ifindex}` : 'none');
        return { node: ns?.node ?? `netns cookie ${cookie}`, device, role: ns?.roles.get(device) ?? 'other', netnsInode: ns?.inode ?? 0 };
      },
      dropReasonName: (code) => {
        this.dropNames ??= native('dropReasons', () => loadNative().dropReasons());
        return this.dropNames[String(code)] ?? `UNKNOWN_${code}`;
      },
      symbolOf: (addr) => this.symbols.lookup(addr),
    };
  }
}

/** A rule from addresses/CIDRs to the kernel's form (16-byte network-order address and mask). */
export function encodeRule(rule: FlowRule): RawRule {
  const [a, b] = rule.between ?? ['any', 'any'];
  const pa = parseCidr(a);
  const pb = parseCidr(b);
  if (pa.family && pb.family && pa.family !== pb.family) {
    throw new UsageError(`filter: ${a} and ${b} are of different address families`);
  }
  let protocol = 0;
  if (rule.protocol !== undefined) {
    protocol = typeof rule.protocol === 'number' ? rule.protocol : (PROTOCOLS[rule.protocol] ?? -1);
    if (!Number.isInteger(protocol) || protocol < 0 || protocol > 255) {
      throw new UsageError(`filter: unknown protocol '${rule.protocol}': use icmp, tcp, udp, icmpv6 or a number`);
    }
  }
  const port = rule.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`filter: port ${rule.port} is not a port`);
  return { family: pa.family || pb.family, protocol, port, aAddr: pa.addr, aMask: pa.mask, bAddr: pb.addr, bMask: pb.mask };
}

function parseCidr(text: string): { family: 0 | 4 | 6; addr: Buffer; mask: Buffer } {
  if (text === 'any') return { family: 0, addr: Buffer.alloc(16), mask: Buffer.alloc(16) };
  try {
    const p = parseAddressPrefix(text);
    return { family: p.family, addr: Buffer.from(p.addr), mask: Buffer.from(p.mask) };
  } catch (err) {
    throw new UsageError(`filter: ${(err as Error).message}`);
  }
}

function throwLater(err: Error): void {
  setImmediate(() => {
    throw err;
  });
}
