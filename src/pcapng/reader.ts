// Reading traces back: sections, interfaces, packets (with the HopEvents they carry), the snapshot
// and the findings. Tolerant: damage stops reading and is reported with everything before it;
// only a file with nothing usable at all is an error (TraceFormatError).
import { open, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { HopEvent } from '../datapath/hop.js';
import type { FlowCount } from '../datapath/flow.js';
import type { Finding } from '../diagnose/finding.js';
import { LINKTYPE_ETHERNET, LINKTYPE_RAW, Opt, TRACE_FORMAT_VERSION, TraceFormatError, VXTRACE_PEN, type CustomBlockJson, type TraceSnapshot } from './format.js';
import type { CustomBlock, EnhancedPacketBlock, InterfaceDescriptionBlock, PcapngBlock, SectionHeaderBlock } from './blocks.js';
import { PcapngParser, type ParserOptions } from './parser.js';
import { decodeHopRecord, HopRecordError, type HopAnnotation } from './hop-record.js';
import { UsageError } from '../errors.js';

export interface TraceInterface {
  /** Index of the section (0-based, across files when reading a rotated set). */
  section: number;
  id: number;
  name?: string;
  description?: string;
  linkType: number;
  snapLength: number;
  tsresol: number;
}

export interface TracePacket {
  section: number;
  interfaceName?: string;
  /** Wall-clock nanoseconds since the epoch (the EPB timestamp, scaled by if_tsresol). */
  timestampNs: bigint;
  capturedLength: number;
  originalLength: number;
  /** epb_flags, when present (bits 0-1: 1 inbound, 2 outbound). */
  flags?: number;
  frame: Uint8Array;
  comments: string[];
  /** The hop this packet records, when it carries a valid vxtrace hop record. */
  hop?: HopEvent;
  annotation?: HopAnnotation;
}

export interface TraceSection {
  index: number;
  file?: string;
  littleEndian: boolean;
  userApplication?: string;
  hardware?: string;
  os?: string;
  comments: string[];
}

export interface Trace {
  sections: TraceSection[];
  interfaces: TraceInterface[];
  packets: TracePacket[];
  /** HopEvents rebuilt from the packets' hop records, in file order. */
  hops: HopEvent[];
  /** The snapshot of the first file that has one. */
  snapshot?: TraceSnapshot;
  /** The latest findings written (the last findings block wins). */
  findings?: Finding[];
  /** Datapath records lost during the capture, as the latest findings block says (when the writer was told). */
  lostRecords?: number;
  /** Records the kernel shed by choice (sampled out), as the latest findings block says. */
  sampledRecords?: number;
  /** The kernel's per-hop flow counters, as the latest findings block holds them (entries that do not parse are left out, with a warning). */
  flows?: FlowCount[];
  /** When the counters were read (wall-clock ns), as the same block says; absent in older traces. */
  flowsReadNs?: bigint;
  /** The vxtrace custom blocks, decoded, in file order. */
  customBlocks: CustomBlockJson[];
  /** Trace id shared by the files (from their custom blocks). */
  traceId?: string;
  /** Files read, in order (empty for a Buffer). */
  files: string[];
  /** Damage that stopped reading (with its file), or bad records skipped: all said in words. */
  warnings: string[];
  /** True when reading stopped early (truncated or damaged file): packets before the damage are all here. */
  damaged: boolean;
}

/** A block stream being turned into a Trace: feed it blocks of one or more sections. */
export class TraceBuilder {
  readonly trace: Trace = {
    sections: [], interfaces: [], packets: [], hops: [], customBlocks: [], files: [], warnings: [], damaged: false,
  };
  private sectionInterfaces: TraceInterface[] = [];
  private currentFile: string | undefined;
  /** Set when the current file turned out to belong to another trace (a stale rotated file). */
  private skippingFile = false;

  /** Starts a new file: blocks that follow belong to it. */
  beginFile(file: string | undefined): void {
    this.currentFile = file;
    this.skippingFile = false;
    if (file) this.trace.files.push(file);
  }

  add(block: PcapngBlock): void {
    if (this.skippingFile) return;
    switch (block.type) {
      case 'section':
        return this.section(block);
      case 'interface':
        return this.interfaceBlock(block);
      case 'packet':
        return this.packet(block);
      case 'custom':
        return this.custom(block);
      default:
        return;
    }
  }

  /** Records damage that stopped reading. */
  damage(err: TraceFormatError): void {
    this.trace.damaged = true;
    this.trace.warnings.push(this.where(err.message));
  }

  private where(message: string): string {
    return this.currentFile ? `${this.currentFile}: ${message}` : message;
  }

  private section(b: SectionHeaderBlock): void {
    const s: TraceSection = { index: this.trace.sections.length, littleEndian: b.littleEndian, comments: b.comments };
    if (this.currentFile) s.file = this.currentFile;
    if (b.userApplication !== undefined) s.userApplication = b.userApplication;
    if (b.hardware !== undefined) s.hardware = b.hardware;
    if (b.os !== undefined) s.os = b.os;
    this.trace.sections.push(s);
    this.sectionInterfaces = [];
  }

  private interfaceBlock(b: InterfaceDescriptionBlock): void {
    const i: TraceInterface = {
      section: this.trace.sections.length - 1,
      id: this.sectionInterfaces.length,
      linkType: b.linkType,
      snapLength: b.snapLength,
      tsresol: b.tsresol,
    };
    if (b.name !== undefined) i.name = b.name;
    if (b.description !== undefined) i.description = b.description;
    this.sectionInterfaces.push(i);
    this.trace.interfaces.push(i);
  }

  private packet(b: EnhancedPacketBlock): void {
    const iface = this.sectionInterfaces[b.interfaceId];
    if (!iface) {
      this.trace.warnings.push(this.where(`packet at byte ${b.offset} names interface ${b.interfaceId}, which the section does not describe: skipped`));
      return;
    }
    const frame = new Uint8Array(b.data); // a copy: the parser's buffer is not kept alive
    const p: TracePacket = {
      section: iface.section,
      timestampNs: scaleToNs(b.timestamp, iface.tsresol),
      capturedLength: b.capturedLength,
      originalLength: b.originalLength,
      frame,
      comments: b.comments,
    };
    if (iface.name !== undefined) p.interfaceName = iface.name;
    if (b.flags !== undefined) p.flags = b.flags;
    const record = b.customOptions.find((o) => o.pen === VXTRACE_PEN && o.code === Opt.CUSTOM_BINARY_COPYABLE);
    if (record && (iface.linkType === LINKTYPE_ETHERNET || iface.linkType === LINKTYPE_RAW)) {
      try {
        const { event, annotation } = decodeHopRecord(record.value, frame);
        p.hop = event;
        p.annotation = annotation;
        this.trace.hops.push(event);
      } catch (err) {
        if (!(err instanceof HopRecordError)) throw err;
        this.trace.warnings.push(this.where(`packet at byte ${b.offset}: its vxtrace hop record is damaged (${err.message}); kept as a plain packet`));
      }
    }
    this.trace.packets.push(p);
  }

  private custom(b: CustomBlock): void {
    if (b.pen !== VXTRACE_PEN) return;
    let end = b.data.length;
    while (end > 0 && b.data[end - 1] === 0) end--;
    let json: CustomBlockJson;
    try {
      json = JSON.parse(Buffer.from(b.data.subarray(0, end)).toString('utf8')) as CustomBlockJson;
    } catch {
      this.trace.warnings.push(this.where(`vxtrace custom block at byte ${b.offset} is not valid JSON: skipped`));
      return;
    }
    if (typeof json === 'object' && json !== null && typeof json.v === 'number' && json.v < TRACE_FORMAT_VERSION && this.trace.packets.length === 0) {
      // An older vxtrace's trace: its hop records are in a format this version does not read.
      throw new TraceFormatError(
        this.where(`this trace was written by an older vxtrace (trace format ${json.v}; this version reads format ${TRACE_FORMAT_VERSION}): open it with Wireshark, or read it with the vxtrace that wrote it (${typeof json.writer === 'string' ? json.writer : 'see the section header'})`),
        b.offset,
      );
    }
    if (typeof json !== 'object' || json === null || json.v !== TRACE_FORMAT_VERSION || typeof json.traceId !== 'string') {
      this.trace.warnings.push(this.where(`vxtrace custom block at byte ${b.offset} is not a version-${TRACE_FORMAT_VERSION} vxtrace block: skipped`));
      return;
    }
    if (this.trace.traceId === undefined) this.trace.traceId = json.traceId;
    else if (json.traceId !== this.trace.traceId) {
      if (this.currentFile && json.vxtrace === 'snapshot') {
        // A left-over file of an earlier run beside a rotated trace: its packets are not this trace's.
        this.skippingFile = true;
        this.trace.files.pop();
        this.trace.warnings.push(`${this.currentFile}: belongs to another trace (id ${json.traceId}, not ${this.trace.traceId}), probably left from an earlier run: skipped`);
        return;
      }
      this.trace.warnings.push(this.where(`custom block at byte ${b.offset} belongs to another trace (${json.traceId}, not ${this.trace.traceId}): skipped`));
      return;
    }
    if (json.vxtrace === 'snapshot' && isSnapshot(json.snapshot)) {
      this.trace.snapshot ??= json.snapshot;
    } else if (json.vxtrace === 'findings' && Array.isArray(json.findings)) {
      this.trace.findings = json.findings;
      if (typeof json.lostRecords === 'number') this.trace.lostRecords = json.lostRecords;
      if (typeof json.sampledRecords === 'number') this.trace.sampledRecords = json.sampledRecords;
      if (Array.isArray(json.flows)) {
        const flows = (json.flows as unknown[]).map(flowCountOf);
        const good = flows.filter((f): f is FlowCount => f !== undefined);
        if (good.length < flows.length) this.trace.warnings.push(this.where(`${flows.length - good.length} flow counters in the findings block at byte ${b.offset} are malformed: left out`));
        this.trace.flows = good;
        this.trace.flowsReadNs = typeof json.flowsReadNs === 'string' && /^\d{1,20}$/.test(json.flowsReadNs) ? BigInt(json.flowsReadNs) : undefined;
      }
    } else {
      this.trace.warnings.push(this.where(`vxtrace custom block at byte ${b.offset} has an unknown kind or a malformed body: skipped`));
      return;
    }
    this.trace.customBlocks.push(json);
  }
}

const ROLES = new Set(['pod-bridge', 'vtep', 'uplink', 'other']);

/** A flow counter as stored (JSON, ns as decimal strings), or undefined when it is not one. */
function flowCountOf(v: unknown): FlowCount | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const c = v as Record<string, unknown>;
  const f = c.flow as Record<string, unknown> | null | undefined;
  const num = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  const ns = (x: unknown) => typeof x === 'string' && /^\d{1,20}$/.test(x);
  if (typeof f !== 'object' || f === null || (f.family !== 4 && f.family !== 6) || typeof f.src !== 'string' || typeof f.dst !== 'string') return undefined;
  if (!num(f.protocol) || !num(f.srcPort) || !num(f.dstPort)) return undefined;
  if (typeof c.node !== 'string' || typeof c.device !== 'string' || !ROLES.has(c.role as string)) return undefined;
  if ((c.direction !== 'ingress' && c.direction !== 'egress') || (c.kind !== 'tc' && c.kind !== 'drop')) return undefined;
  if (![c.packets, c.bytes, c.records, c.sampled, c.lost].every(num) || !ns(c.firstNs) || !ns(c.lastNs)) return undefined;
  const out: FlowCount = {
    flow: { family: f.family, src: f.src, dst: f.dst, protocol: f.protocol as number, srcPort: f.srcPort as number, dstPort: f.dstPort as number },
    node: c.node,
    device: c.device,
    role: c.role as FlowCount['role'],
    direction: c.direction,
    kind: c.kind,
    packets: c.packets as number,
    bytes: c.bytes as number,
    firstNs: BigInt(c.firstNs as string),
    lastNs: BigInt(c.lastNs as string),
    records: c.records as number,
    sampled: c.sampled as number,
    lost: c.lost as number,
  };
  if (typeof c.dropReason === 'string') out.dropReason = c.dropReason;
  return out;
}

function isSnapshot(v: unknown): v is TraceSnapshot {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  return (s.cluster === null || (typeof s.cluster === 'object' && Array.isArray((s.cluster as { items?: unknown }).items))) &&
    typeof s.nodeState === 'object' && s.nodeState !== null;
}

/** Converts a timestamp in if_tsresol units to nanoseconds. */
export function scaleToNs(ts: bigint, tsresol: number): bigint {
  if (tsresol & 0x80) {
    const shift = BigInt(tsresol & 0x7f);
    return (ts * 1_000_000_000n) >> shift;
  }
  const exp = tsresol;
  if (exp <= 9) return ts * 10n ** BigInt(9 - exp);
  return ts / 10n ** BigInt(Math.min(exp - 9, 300));
}

export interface ReadOptions extends ParserOptions {
  /** Bytes read from the file at a time (default 1 MiB). */
  chunkSize?: number;
}

/**
 * Reads a trace from a Buffer, one file, or several files (a rotated set, oldest first).
 * Damage is reported in `warnings`/`damaged`; only input with no pcapng section at all throws
 * TraceFormatError, and a missing or unreadable file throws UsageError.
 */
export async function readTrace(input: Uint8Array | string | string[], options: ReadOptions = {}): Promise<Trace> {
  const builder = new TraceBuilder();
  if (input instanceof Uint8Array) {
    feed(builder, undefined, [input], options);
  } else {
    for (const file of typeof input === 'string' ? [input] : input) {
      await feedFile(builder, file, options);
    }
  }
  return builder.trace;
}

/** Synchronous reading of bytes already in memory. */
export function parseTrace(bytes: Uint8Array, options: ParserOptions = {}): Trace {
  const builder = new TraceBuilder();
  feed(builder, undefined, [bytes], options);
  return builder.trace;
}

function feed(builder: TraceBuilder, file: string | undefined, chunks: Iterable<Uint8Array>, options: ParserOptions): void {
  builder.beginFile(file);
  const parser = new PcapngParser(options);
  for (const chunk of chunks) for (const b of parser.push(chunk)) builder.add(b);
  finish(builder, parser, file);
}

function finish(builder: TraceBuilder, parser: PcapngParser, file: string | undefined): void {
  const damage = parser.end();
  if (!damage) return;
  if (parser.offset === 0) throw new TraceFormatError(file ? `${file}: ${damage.message}` : damage.message, damage.offset);
  builder.damage(damage);
}

function fileErrorWords(e: NodeJS.ErrnoException): string {
  return e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'it is a directory, not a trace file' : e.message;
}

async function feedFile(builder: TraceBuilder, file: string, options: ReadOptions): Promise<void> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new UsageError(`cannot read the trace ${file}: ${fileErrorWords(err as NodeJS.ErrnoException)}`);
  }
  try {
    builder.beginFile(file);
    const parser = new PcapngParser(options);
    const size = options.chunkSize ?? 1024 * 1024;
    for (;;) {
      const buf = Buffer.allocUnsafe(size);
      const { bytesRead } = await handle.read(buf, 0, size, null);
      if (bytesRead === 0) break;
      for (const b of parser.push(buf.subarray(0, bytesRead))) builder.add(b);
      if (parser.damage) break;
    }
    finish(builder, parser, file);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read the trace ${file}: ${fileErrorWords(err as NodeJS.ErrnoException)}`);
  } finally {
    await handle.close();
  }
}

/**
 * The files of a rotated trace, oldest first: `base` itself (if it still exists) and every
 * `base-without-.pcapng.N.pcapng` beside it, by N. Just [base] when there are none.
 */
export async function rotatedTraceFiles(base: string): Promise<string[]> {
  const dir = dirname(base);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return [base];
  }
  let name = basename(base);
  let stem = name.endsWith('.pcapng') ? name.slice(0, -'.pcapng'.length) : name;
  const suffix = name.endsWith('.pcapng') ? '.pcapng' : '';
  // Given a numbered file that exists (trace.6.pcapng): it and the later ones. (One that does not
  // exist is read as given, and reading says so.)
  let from = 0;
  const numberedName = /^(.+)\.([1-9]\d*)$/.exec(stem);
  if (numberedName && suffix) {
    if (!entries.includes(name)) return [base];
    stem = numberedName[1]!;
    from = Number(numberedName[2]);
    name = `${stem}${suffix}`;
  }
  const numbered: { n: number; path: string }[] = [];
  for (const e of entries) {
    if (!e.startsWith(`${stem}.`) || !e.endsWith(suffix)) continue;
    const middle = e.slice(stem.length + 1, e.length - suffix.length);
    if (/^[1-9]\d*$/.test(middle) && Number(middle) >= from) numbered.push({ n: Number(middle), path: join(dir, e) });
  }
  numbered.sort((a, b) => a.n - b.n);
  const files = from === 0 && entries.includes(name) ? [base] : [];
  files.push(...numbered.map((x) => x.path));
  return files.length ? files : [base];
}
