// PcapngWriter: streams hops, findings and the cluster snapshot into pcapng files that Wireshark
// opens and `vxtrace read` replays. Crash-safe by construction: every call turns into whole
// blocks handed to the kernel in one write (writev), so a killed writer leaves a file that ends on
// a block boundary (the page cache keeps what was written; close() also fsyncs).
import { closeSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync, writevSync, ftruncateSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { arch, cpus, release, type as osType } from 'node:os';
import { basename, dirname } from 'node:path';
import type { HopEvent } from '../datapath/hop.js';
import type { PacketPath } from '../correlate/path.js';
import type { Finding } from '../diagnose/finding.js';
import type { FlowCount } from '../datapath/flow.js';
import { FLANNEL_BACKEND_V6_DATA, flannelBackendData } from '../cluster/k8s.js';
import { EnvironmentError, UsageError } from '../errors.js';
import { VERSION } from '../version.js';
import {
  BlockType,
  DEFAULT_MAX_BLOCK_LENGTH,
  EpbOpt,
  EpbDirection,
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW,
  MAX_CAPTURE_LENGTH,
  Opt,
  PAGE_SIZE,
  SHB_RESERVED_LENGTH,
  TRACE_FORMAT_VERSION,
  TSRESOL_NANOSECONDS,
  VXTRACE_PEN,
  padLength,
  type CustomBlockKind,
  type CustomBlockJson,
  type TraceSnapshot,
} from './format.js';
import {
  alignToPages,
  encodeCustomBlock,
  encodeInterfaceDescription,
  encodeSectionHeader,
  measureEnhancedPacket,
  paddingBefore,
  truncateUtf8,
  viewOf,
  writeEnhancedPacket,
  writePaddingBlock,
  type PacketFields,
  type PacketMeasure,
  type RawOption,
} from './blocks.js';
import { HOP_RECORD_LAYOUT, HopCommentOption, HopRecordOption, frameStartsAtIp, hopComment, interfaceNameOf, type HopAnnotation } from './hop-record.js';
import { encodeHopHeader, HOP_LAYOUT } from '../datapath/decode.js';

export interface PcapngWriterOptions {
  snapshot: TraceSnapshot;
  /** Start a new file once the current one would grow past this many bytes. */
  rotateSize?: number;
  /** Keep at most this many files (the oldest is deleted); needs rotateSize. */
  rotateCount?: number;
  /** Interface snaplen recorded in each IDB, and the most bytes of a frame kept (default and maximum 262144). */
  snaplen?: number;
}

export interface WriterStats {
  packets: number;
  bytes: number;
  /** Files of this trace still on disk, oldest first. */
  files: string[];
  /** Packets in those files (fewer than `packets` once --rotate-count deleted older files). */
  packetsKept: number;
}

/** File name of the `index`th file of a rotated trace: trace.pcapng, trace.1.pcapng, trace.2.pcapng, ... */
export function rotatedFileName(base: string, index: number): string {
  if (index === 0) return base;
  return base.endsWith('.pcapng') ? `${base.slice(0, -'.pcapng'.length)}.${index}.pcapng` : `${base}.${index}`;
}

export class PcapngWriter {
  /** Random id shared by every file of this trace (in their custom blocks), so readers never mix runs. */
  readonly traceId = randomBytes(8).toString('hex');
  private fd: number | undefined;
  private fileIndex = 0;
  private fileSize = 0;
  private packetsInFile = 0;
  private interfaces = new Map<string, number>();
  private findings: Finding[] | undefined;
  private lostRecords: number | undefined;
  private sampledRecords: number | undefined;
  private flows: FlowCount[] | undefined;
  private flowsReadNs: bigint | undefined;
  private failed: VxtraceErrorLike | undefined;
  private closed = false;
  private readonly files: string[] = [];
  private readonly packetsByFile = new Map<string, number>();
  private packets = 0;
  private bytes = 0;
  private readonly snaplen: number;
  private readonly snapshotJson: TraceSnapshot;
  private readonly vniByNode = new Map<string, number>();
  private readonly batch = new BlockBatch();
  private readonly hookEntries = new Map<string, Map<string, HookEntry[]>>();
  private lastFingerprint: string | undefined;
  private lastFingerprintAscii = false;
  private readonly fpWords = new Uint32Array(4);

  private constructor(
    private readonly basePath: string,
    private readonly options: PcapngWriterOptions,
  ) {
    this.snaplen = options.snaplen ?? MAX_CAPTURE_LENGTH;
    this.snapshotJson = options.snapshot;
    for (const item of options.snapshot.cluster?.items ?? []) {
      if (item.kind !== 'Node') continue;
      const vni = flannelBackendData(item).vni ?? flannelBackendData(item, FLANNEL_BACKEND_V6_DATA).vni; // an IPv6-only node has only backend-v6-data
      if (vni !== undefined) this.vniByNode.set(item.metadata.name, vni);
    }
  }

  /** Creates (or overwrites) `path` and writes the section header and the snapshot. */
  static open(path: string, options: PcapngWriterOptions): PcapngWriter {
    validateOptions(options);
    const w = new PcapngWriter(path, options);
    w.startFile();
    return w;
  }

  /**
   * Every hop of a path (or of several: a batch as the correlator hands them out), each with its
   * path's outcome, in one write (one per file when it rotates, one per 4 MiB of blocks).
   */
  writeHops(paths: PacketPath | readonly PacketPath[]): void {
    const list = Array.isArray(paths) ? (paths as readonly PacketPath[]) : [paths as PacketPath];
    if (this.options.rotateSize === undefined) {
      // Not rotating: each packet goes straight into the batch (the hot path of a capture).
      this.ensureWritable();
      const batch = this.batch;
      batch.reset(this.fileSize);
      for (const path of list) {
        const annotation: HopAnnotation = { outcome: path.outcome };
        if (path.drop) annotation.pathDrop = path.drop;
        for (const h of path.hops) {
          this.writePacket(h.event, annotation);
          if (batch.length >= MAX_BATCH_BYTES) this.flushBatch();
        }
      }
      this.flushBatch();
      return;
    }
    const items: { event: HopEvent; annotation: HopAnnotation }[] = [];
    for (const path of list) {
      const annotation: HopAnnotation = { outcome: path.outcome };
      if (path.drop) annotation.pathDrop = path.drop;
      for (const h of path.hops) items.push({ event: h.event, annotation });
    }
    this.writeEvents(items);
  }

  /**
   * One packet's blocks into the batch, encoded in place: the interface block when its device is
   * new in this file, then the packet block with its three options (flags, the comment, the hop
   * record), as placePacket(preparePacket()) would write them, without the objects in between.
   * What the options say is the same for every packet of a flow at a hook but for the
   * fingerprint's digits, the wall time and the kernel's record header: their bytes come from a
   * template (PacketTemplate) made for the first such packet, and a packet costs three copies
   * (the frame, the template, the record header) and a few words.
   */
  private writePacket(event: HopEvent, annotation: HopAnnotation): void {
    const rawIp = frameStartsAtIp(event);
    const hook = this.hookEntry(event, rawIp);
    const fp = event.fingerprint;
    const template = this.fingerprintWords(fp) ? templateFor(hook, event, annotation) : undefined;
    if (!template) return this.placePacket(this.preparePacket(event, annotation));
    const batch = this.batch;
    let id = this.interfaces.get(hook.key);
    if (id === undefined) {
      const packet = this.preparePacket(event, annotation);
      id = this.interfaces.size;
      this.interfaces.set(hook.key, id);
      const idb = this.interfaceBlock(packet);
      const at = batch.place(idb.length);
      batch.buffer.set(idb, at);
    }
    const frame = event.frame.length > this.snaplen ? event.frame.subarray(0, this.snaplen) : event.frame;
    const dataLength = frame.length;
    const options = template.bytes;
    const total = 28 + padLength(dataLength) + options.length + 4;
    const at = batch.place(total);
    const buf = batch.buffer;
    const view = viewOf(buf);
    view.setUint32(at, BlockType.ENHANCED_PACKET, true);
    view.setUint32(at + 4, total, true);
    view.setUint32(at + 8, id, true);
    // timestamp: high 32 bits, then low 32 bits
    const wall = event.wallTimeNs;
    view.setBigUint64(at + 12, wall < 0n ? 0n : wall, true);
    const low = view.getUint32(at + 12, true);
    const high = view.getUint32(at + 16, true);
    view.setUint32(at + 12, high, true);
    view.setUint32(at + 16, low, true);
    view.setUint32(at + 20, dataLength, true);
    view.setUint32(at + 24, Math.max(event.skbLength, dataLength), true);
    buf.set(frame, at + 28);
    let p = at + 28 + dataLength;
    while ((p - at) & 3) buf[p++] = 0;
    buf.set(options, p);
    const digits = p + template.fingerprintAt;
    const words = this.fpWords;
    view.setUint32(digits, words[0]!, true);
    view.setUint32(digits + 4, words[1]!, true);
    view.setUint32(digits + 8, words[2]!, true);
    view.setUint32(digits + 12, words[3]!, true);
    // the hop record's wall time: the timestamp's words (setBigInt64 takes a negative one modulo 2^64, as HopRecordOption does)
    if (wall < 0n) view.setBigInt64(p + template.wallTimeAt, wall, true);
    else {
      view.setUint32(p + template.wallTimeAt, low, true);
      view.setUint32(p + template.wallTimeAt + 4, high, true);
    }
    buf.set(event.record && event.record.length === HOP_LAYOUT.size ? event.record : encodeHopHeader(event), p + template.headerAt);
    // not the kernel address of the freeing function (see HopRecordOption.write)
    view.setUint32(p + template.headerAt + HOP_LAYOUT.fields.drop_location.offset, 0, true);
    view.setUint32(p + template.headerAt + HOP_LAYOUT.fields.drop_location.offset + 4, 0, true);
    view.setUint32(p + options.length, total, true);
    batch.packets++;
  }

  /**
   * Whether `fp` is 16 ASCII characters (the comment template's digits); if so, this.fpWords holds
   * them as four little-endian words. Remembered for the last fingerprint: a path's hops share it.
   */
  private fingerprintWords(fp: string): boolean {
    if (fp === this.lastFingerprint) return this.lastFingerprintAscii;
    this.lastFingerprint = fp;
    this.lastFingerprintAscii = false;
    if (fp.length !== 16) return false;
    const words = this.fpWords;
    for (let w = 0; w < 4; w++) {
      let word = 0;
      for (let i = 3; i >= 0; i--) {
        const c = fp.charCodeAt(w * 4 + i);
        if (c > 0x7f) return false;
        word = (word << 8) | c;
      }
      words[w] = word >>> 0;
    }
    this.lastFingerprintAscii = true;
    return true;
  }

  /** A device's interface name and key in the interface table, per node, device, kind and frame start (cached: no string per packet). */
  private hookEntry(event: HopEvent, rawIp: boolean): HookEntry {
    let byDevice = this.hookEntries.get(event.node);
    if (!byDevice) this.hookEntries.set(event.node, (byDevice = new Map()));
    let entries = byDevice.get(event.device);
    if (!entries) byDevice.set(event.device, (entries = []));
    const slot = (event.kind === 'drop' ? 2 : 0) + (rawIp ? 1 : 0);
    let e = entries[slot];
    if (!e) {
      const name = interfaceNameOf(event);
      e = entries[slot] = { name, key: rawIp ? `${name}\0ip` : name, templates: [], nextTemplate: 0 };
    }
    return e;
  }

  /** One hop; `outcome` defaults to 'unknown' (written without correlation, e.g. by `capture`). */
  writeHop(event: HopEvent, annotation: HopAnnotation = { outcome: 'unknown' }): void {
    this.writeEvents([{ event, annotation }]);
  }

  /**
   * Records the trace's findings (the whole current set: the last call wins): a findings Custom
   * Block, and a summary in the section comment that Wireshark shows (Capture File Properties).
   * Later files of a rotated trace repeat the latest set. `lostRecords`: datapath records lost
   * (ring buffer full) so far, so that a replay reports the loss too; `sampledRecords`: records
   * the kernel shed by choice; `flows`: the kernel's per-hop flow counters (the last set written
   * wins), `flowsReadNs` the wall-clock instant they were read at.
   */
  writeFindings(findings: Finding[], counts: { lostRecords?: number; sampledRecords?: number; flows?: readonly FlowCount[]; flowsReadNs?: bigint | undefined } = {}): void {
    this.ensureWritable();
    this.findings = findings;
    if (counts.lostRecords !== undefined) this.lostRecords = counts.lostRecords;
    if (counts.sampledRecords !== undefined) this.sampledRecords = counts.sampledRecords;
    if (counts.flows !== undefined) {
      this.flows = [...counts.flows];
      this.flowsReadNs = counts.flowsReadNs;
    }
    const block = this.customBlock('findings');
    const limit = this.options.rotateSize;
    if (limit !== undefined && this.packetsInFile > 0 && this.fileSize + paddingBefore(this.fileSize, block.length) + block.length > limit) {
      // The next file starts with the findings (startFile writes the latest set).
      this.rotate();
      return;
    }
    this.appendBlocks(alignToPages([block], this.fileSize));
    this.patchSectionHeader();
  }

  /** Flushes to disk and closes. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fd !== undefined) {
      const fd = this.fd;
      this.fd = undefined;
      try {
        fsyncSync(fd);
      } catch {
        // fsync is not supported on every file (e.g. a pipe): the data is written either way.
      }
      closeSync(fd);
    }
  }

  get stats(): WriterStats {
    let packetsKept = 0;
    for (const f of this.files) packetsKept += this.packetsByFile.get(f) ?? 0;
    return { packets: this.packets, bytes: this.bytes, files: [...this.files], packetsKept };
  }

  // -------------------------------------------------------------------------------------------

  private writeEvents(items: readonly { event: HopEvent; annotation: HopAnnotation }[]): void {
    this.ensureWritable();
    const batch = this.batch;
    batch.reset(this.fileSize);
    const limit = this.options.rotateSize;
    for (const { event, annotation } of items) {
      const packet = this.preparePacket(event, annotation);
      if (limit !== undefined && this.packetsInFile + batch.packets > 0 && batch.end + this.extentOf(packet, batch.end) > limit) {
        this.flushBatch();
        this.rotate();
        batch.reset(this.fileSize);
      }
      this.placePacket(packet);
      // Bounded memory for a huge call (a flush of thousands of looping paths): whole blocks per write either way.
      if (batch.length >= MAX_BATCH_BYTES) this.flushBatch();
    }
    this.flushBatch();
  }

  /** Everything about a packet's blocks that does not depend on where they go. */
  private preparePacket(event: HopEvent, annotation: HopAnnotation): PreparedPacket {
    const name = interfaceNameOf(event);
    // A frame that starts at the IP header goes on an interface of its own (same name, raw IP).
    const rawIp = frameStartsAtIp(event);
    const frame = event.frame.length > this.snaplen ? event.frame.subarray(0, this.snaplen) : event.frame;
    const fields: PacketFields = {
      interfaceId: 0,
      timestamp: event.wallTimeNs < 0n ? 0n : event.wallTimeNs,
      data: frame,
      originalLength: event.skbLength,
      flags: event.kind === 'drop' ? EpbDirection.UNKNOWN : event.direction === 'ingress' ? EpbDirection.INBOUND : EpbDirection.OUTBOUND,
      optionWriters: [new HopRecordOption(event, annotation)],
    };
    // The comment as bytes straight into the block (its option comes first, as `comment` would)
    const comment = new HopCommentOption(event, annotation);
    if (comment.fits) fields.optionWriters!.unshift(comment);
    else fields.comment = hopComment(event, annotation);
    return { event, name, rawIp, key: rawIp ? `${name}\0ip` : name, fields, measure: measureEnhancedPacket(fields) };
  }

  /** Bytes the packet's blocks (interface block when new, padding, packet block) add at `position`. */
  private extentOf(packet: PreparedPacket, position: number): number {
    let pos = position;
    if (!this.interfaces.has(packet.key)) pos += paddingBefore(pos, this.interfaceBlock(packet).length) + this.interfaceBlock(packet).length;
    pos += paddingBefore(pos, packet.measure.total) + packet.measure.total;
    return pos - position;
  }

  /** The interface block (first time a node/device is seen in this file) and the packet block, into the batch. */
  private placePacket(packet: PreparedPacket): void {
    const batch = this.batch;
    let id = this.interfaces.get(packet.key);
    if (id === undefined) {
      id = this.interfaces.size;
      this.interfaces.set(packet.key, id);
      const idb = this.interfaceBlock(packet);
      const at = batch.place(idb.length); // first: placing may grow (replace) the buffer
      batch.buffer.set(idb, at);
    }
    packet.fields.interfaceId = id;
    const at = batch.place(packet.measure.total);
    writeEnhancedPacket(batch.buffer, at, packet.fields, packet.measure);
    batch.packets++;
  }

  private interfaceBlock(packet: PreparedPacket): Buffer {
    packet.idb ??= encodeInterfaceDescription({
      linkType: packet.rawIp ? LINKTYPE_RAW : LINKTYPE_ETHERNET,
      snapLength: this.snaplen,
      name: packet.name,
      description: this.describe(packet.event) + (packet.rawIp ? '; frames start at the IP header' : ''),
      tsresol: TSRESOL_NANOSECONDS,
    });
    return packet.idb;
  }

  private flushBatch(): void {
    const batch = this.batch;
    if (batch.length) this.appendBlocks([batch.buffer.subarray(0, batch.length)], batch.packets);
    batch.reset(this.fileSize);
  }


  private describe(event: HopEvent): string {
    if (event.kind === 'drop') {
      return `${event.node} kernel drops (tracepoint skb:kfree_skb): packets the kernel freed with a drop reason, named in each packet's comment`;
    }
    const vni = this.vniByNode.get(event.node) ?? event.outer?.vni;
    const role =
      event.role === 'vtep' ? `VXLAN VTEP${vni !== undefined ? `, VNI ${vni}` : ''}` :
      event.role === 'uplink' ? 'underlay uplink, carries the VXLAN-encapsulated packets' :
      event.role === 'pod-bridge' ? 'pod bridge' : 'watched device';
    return `${event.node} ${event.device} (${role})`;
  }

  private startFile(): void {
    const path = rotatedFileName(this.basePath, this.fileIndex);
    // The oldest file goes first, so that a writer killed in between leaves fewer files, never more.
    const count = this.options.rotateCount;
    if (count !== undefined && this.fileIndex >= count) {
      const old = rotatedFileName(this.basePath, this.fileIndex - count);
      try {
        unlinkSync(old);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.failed = new EnvironmentError(`cannot remove the old trace file ${old} (--rotate-count): ${(err as Error).message}; the files written so far are whole`);
          throw this.failed;
        }
      }
      const i = this.files.indexOf(old);
      if (i >= 0) this.files.splice(i, 1);
      this.packetsByFile.delete(old);
    }
    // Each file is written under a temporary name until its section header and snapshot are in,
    // then renamed: a writer killed at any moment never leaves an empty (unreadable) trace file.
    const partial = `${path}.partial`;
    try {
      refuseToClobber(path);
      this.fd = openSync(partial, 'w');
    } catch (err) {
      // Stop here for good: the files written so far stay as they are, whole.
      this.failed = err instanceof UsageError ? err : openError(path, err as NodeJS.ErrnoException);
      throw this.failed;
    }
    this.files.push(path);
    this.fileSize = 0;
    this.packetsInFile = 0;
    this.interfaces.clear();
    const blocks = [this.sectionHeader(), this.customBlock('snapshot')];
    if (this.findings) blocks.push(this.customBlock('findings'));
    this.appendBlocks(alignToPages(blocks, 0));
    if (this.findings) this.patchSectionHeader();
    try {
      renameSync(partial, path);
    } catch (err) {
      this.failed = openError(path, err as NodeJS.ErrnoException);
      throw this.failed;
    }
  }

  private rotate(): void {
    const fd = this.fd!;
    this.fd = undefined;
    try {
      fsyncSync(fd);
    } catch {
      // see close()
    }
    closeSync(fd);
    this.fileIndex++;
    this.startFile();
  }

  private sectionHeader(): Buffer {
    const fixed = {
      hardware: `${arch()}${cpus()[0]?.model ? ` ${cpus()[0]!.model.trim()}` : ''}`,
      os: `${osType()} ${release()}`,
      userApplication: `vxtrace ${VERSION}`,
    };
    const base = encodeSectionHeader(fixed).length;
    // Room left for the comment: the comment option's header, the filler option's header and PEN.
    const budget = SHB_RESERVED_LENGTH - base - 4 - 8;
    const comment = truncateUtf8(this.sectionComment(budget), budget & ~3);
    const commentText = Buffer.from(comment).toString('utf8');
    const fillerLength = SHB_RESERVED_LENGTH - base - 4 - padLength(comment.length) - 8;
    const filler: RawOption = { code: Opt.CUSTOM_BINARY_COPYABLE, value: Buffer.alloc(4 + fillerLength) };
    filler.value.set(penBytes(), 0);
    const shb = encodeSectionHeader({ comment: commentText, ...fixed, customOptions: [filler] });
    if (shb.length !== SHB_RESERVED_LENGTH) throw new Error(`section header is ${shb.length} bytes, not ${SHB_RESERVED_LENGTH}`);
    return shb;
  }

  /** The section comment: what the trace is and a summary of its findings, within `budget` bytes. */
  private sectionComment(budget: number): string {
    const head = `vxtrace ${VERSION} trace ${this.traceId}, file ${this.fileIndex}: per-hop packets of pod-to-pod traffic on every node (interfaces node/device). `;
    if (!this.findings) {
      return `${head}Findings: not written yet (capture running, or the writer stopped before diagnosing). \`vxtrace read\` rebuilds them from the packets and the cluster snapshot stored in this file.`;
    }
    const bySeverity = (s: string) => this.findings!.filter((f) => f.severity === s).length;
    let text = `${head}Findings: ${this.findings.length} (${bySeverity('error')} error, ${bySeverity('warning')} warning, ${bySeverity('info')} info); all details in the vxtrace findings custom block, or run \`vxtrace read\`.`;
    for (let i = 0; i < this.findings.length; i++) {
      const f = this.findings[i]!;
      const line = `\n[${f.severity}] ${f.code} on ${f.nodes.join(', ') || '-'}: ${f.cause} Fix: ${f.fix}`;
      const more = `\n... and ${this.findings.length - i} more (see the findings block)`;
      if (Buffer.byteLength(text + line) + Buffer.byteLength(more) > budget) {
        text += more;
        break;
      }
      text += line;
    }
    return text;
  }

  /** Rewrites the (fixed-size) section header of the current file in place, with the new comment. */
  private patchSectionHeader(): void {
    const shb = this.sectionHeader();
    try {
      writeSync(this.fd!, shb, 0, shb.length, 0);
    } catch (err) {
      this.fail(err as NodeJS.ErrnoException);
    }
  }

  private customBlock(kind: CustomBlockKind): Buffer {
    const payload: CustomBlockJson = {
      vxtrace: kind,
      v: TRACE_FORMAT_VERSION,
      traceId: this.traceId,
      fileIndex: this.fileIndex,
      writer: `vxtrace ${VERSION}`,
    };
    if (kind === 'snapshot') payload.snapshot = this.snapshotJson;
    else {
      payload.findings = this.findings ?? [];
      if (this.lostRecords !== undefined) payload.lostRecords = this.lostRecords;
      if (this.sampledRecords !== undefined) payload.sampledRecords = this.sampledRecords;
      if (this.flows !== undefined) payload.flows = this.flows;
      if (this.flowsReadNs !== undefined) payload.flowsReadNs = this.flowsReadNs.toString();
    }
    const json = Buffer.from(JSON.stringify(payload, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)), 'utf8');
    let data = Buffer.alloc(padLength(json.length));
    json.copy(data);
    let block = encodeCustomBlock(VXTRACE_PEN, data);
    // A block larger than a page starts on a boundary (alignToPages); keep its end from leaving a
    // page with 4 or 8 bytes, too few for padding: 8 more zeros (readers strip trailing zeros).
    const left = (PAGE_SIZE - (block.length % PAGE_SIZE)) % PAGE_SIZE;
    if (block.length > PAGE_SIZE && (left === 4 || left === 8)) {
      data = Buffer.concat([data, Buffer.alloc(8)]);
      block = encodeCustomBlock(VXTRACE_PEN, data);
    }
    if (block.length > DEFAULT_MAX_BLOCK_LENGTH) {
      throw new UsageError(
        `the ${kind} is ${block.length} bytes, more than the ${DEFAULT_MAX_BLOCK_LENGTH}-byte block limit of vxtrace traces: trace fewer nodes`,
      );
    }
    return block;
  }

  /** Appends whole blocks in one write; on failure truncates back to the last whole block. */
  private appendBlocks(blocks: Buffer[], packets = 0): void {
    if (blocks.length === 0) return;
    const fd = this.fd!;
    const total = blocks.reduce((n, b) => n + b.length, 0);
    // Many small blocks: one buffer, so the kernel gets one write (writev takes at most IOV_MAX).
    if (blocks.length > 64) blocks = [Buffer.concat(blocks, total)];
    try {
      let written = writevSync(fd, blocks, this.fileSize);
      // A regular file takes it all at once; finish a short write by hand, still whole blocks.
      while (written < total) {
        const rest = Buffer.concat(blocks).subarray(written);
        written += writeSync(fd, rest, 0, rest.length, this.fileSize + written);
      }
    } catch (err) {
      try {
        ftruncateSync(fd, this.fileSize);
      } catch {
        // the reader stops at the partial block anyway
      }
      this.fail(err as NodeJS.ErrnoException);
    }
    this.fileSize += total;
    this.bytes += total;
    this.packets += packets;
    this.packetsInFile += packets;
    if (packets) {
      const file = this.files[this.files.length - 1]!;
      this.packetsByFile.set(file, (this.packetsByFile.get(file) ?? 0) + packets);
    }
  }

  private fail(err: NodeJS.ErrnoException): never {
    const path = rotatedFileName(this.basePath, this.fileIndex);
    const why = err.code === 'ENOSPC' ? 'no space left on the device' : err.code === 'EDQUOT' ? 'disk quota exceeded' : err.message;
    this.failed = new EnvironmentError(
      `writing the trace file ${path} failed (${why}): the ${this.packets} packets written before are intact; free space or write elsewhere, and capture again`,
    );
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // already failing
      }
      this.fd = undefined;
    }
    throw this.failed;
  }

  private ensureWritable(): void {
    if (this.failed) throw this.failed;
    if (this.closed) throw new Error('PcapngWriter: write after close()');
  }
}

type VxtraceErrorLike = EnvironmentError | UsageError | Error;

interface PreparedPacket {
  event: HopEvent;
  /** Interface name (node/device) and key (name, plus whether frames start at the IP header). */
  name: string;
  rawIp: boolean;
  key: string;
  fields: PacketFields;
  measure: PacketMeasure;
  idb?: Buffer;
}

/** A hook's interface name and key (per node, device, kind, frame start), and the packet templates of the flows seen there. */
interface HookEntry {
  name: string;
  key: string;
  templates: PacketTemplate[];
  /** The slot the next new template takes once `templates` is full (round robin). */
  nextTemplate: number;
}

/**
 * A packet block's options (flags, comment, hop record, end) as bytes, for the packets of one flow
 * at one hook with one fate: everything in them but the fingerprint's 16 digits, the wall time and
 * the kernel's record header (written over these offsets per packet). `of` holds what those bytes
 * were made from, compared field by field (no key string per packet).
 */
interface PacketTemplate {
  bytes: Buffer;
  fingerprintAt: number;
  wallTimeAt: number;
  headerAt: number;
  of: {
    direction: HopEvent['direction'];
    role: HopEvent['role'];
    netnsInode: number;
    src: string;
    dst: string;
    protocol: number;
    outer: { src: string; dst: string; vni: number } | undefined;
    dropReason: string | undefined;
    dropLocation: string | undefined;
    outcome: HopAnnotation['outcome'];
    pathDrop: HopAnnotation['pathDrop'];
  };
}

/** Templates kept per hook (flows beyond it at one hook take turns). */
const TEMPLATES_PER_HOOK = 16;

/** The template for this packet at this hook: found, or made from it (undefined when its comment does not fit an option). */
function templateFor(hook: HookEntry, event: HopEvent, annotation: HopAnnotation): PacketTemplate | undefined {
  const list = hook.templates;
  for (let i = 0; i < list.length; i++) {
    const t = list[i]!;
    if (sameOptions(t.of, event, annotation)) return t;
  }
  const t = makeTemplate(event, annotation);
  if (!t) return undefined;
  if (list.length < TEMPLATES_PER_HOOK) list.push(t);
  else {
    list[hook.nextTemplate] = t;
    hook.nextTemplate = (hook.nextTemplate + 1) % TEMPLATES_PER_HOOK;
  }
  return t;
}

function sameOptions(of: PacketTemplate['of'], e: HopEvent, a: HopAnnotation): boolean {
  const inner = e.inner;
  if (of.src !== inner.src || of.dst !== inner.dst || of.protocol !== inner.protocol) return false;
  if (of.direction !== e.direction || of.role !== e.role || of.netnsInode !== e.netnsInode || of.outcome !== a.outcome) return false;
  if (of.dropReason !== e.dropReason || of.dropLocation !== e.dropLocation) return false;
  const o = e.outer;
  const oo = of.outer;
  if (o === undefined ? oo !== undefined : oo === undefined || oo.src !== o.src || oo.dst !== o.dst || oo.vni !== o.vni) return false;
  const d = a.pathDrop;
  const od = of.pathDrop;
  if (d === undefined) return od === undefined;
  return od !== undefined && od.node === d.node && od.device === d.device && od.reason === d.reason && od.location === d.location;
}

/** The options of `event`'s packet block written once by the encoders the other paths use, with where the per-packet bytes go. */
function makeTemplate(event: HopEvent, annotation: HopAnnotation): PacketTemplate | undefined {
  const comment = new HopCommentOption(event, annotation);
  if (!comment.fits || comment.fingerprintAt < 0) return undefined;
  const record = new HopRecordOption(event, annotation);
  const length = 8 + 4 + padLength(comment.length) + 4 + padLength(record.length) + 4;
  const bytes = Buffer.alloc(length);
  const view = viewOf(bytes);
  view.setUint16(0, EpbOpt.FLAGS, true);
  view.setUint16(2, 4, true);
  view.setUint32(4, event.kind === 'drop' ? EpbDirection.UNKNOWN : event.direction === 'ingress' ? EpbDirection.INBOUND : EpbDirection.OUTBOUND, true);
  view.setUint16(8, Opt.COMMENT, true);
  view.setUint16(10, comment.length, true);
  comment.write(bytes, 12);
  const recordAt = 12 + padLength(comment.length);
  view.setUint16(recordAt, record.code, true);
  view.setUint16(recordAt + 2, record.length, true);
  record.write(bytes, recordAt + 4);
  // (the end of options, zero, is the last word)
  const value = recordAt + 4 + 4; // past the option header and the PEN
  const o = event.outer;
  const d = annotation.pathDrop;
  return {
    bytes,
    fingerprintAt: 12 + comment.fingerprintAt,
    wallTimeAt: value + HOP_RECORD_LAYOUT.wallTimeNs,
    headerAt: value + HOP_RECORD_LAYOUT.header,
    of: {
      direction: event.direction, role: event.role, netnsInode: event.netnsInode,
      src: event.inner.src, dst: event.inner.dst, protocol: event.inner.protocol,
      outer: o ? { src: o.src, dst: o.dst, vni: o.vni } : undefined,
      dropReason: event.dropReason, dropLocation: event.dropLocation,
      outcome: annotation.outcome, pathDrop: d ? { ...d } : undefined,
    },
  };
}

/** A write's blocks are handed to the kernel once they reach this size (and at the end of each call). */
const MAX_BATCH_BYTES = 4 << 20;

/**
 * One write's blocks in one reused buffer, placed as they will lie in the file: a padding block
 * goes first wherever a block would straddle a page boundary (see alignToPages).
 */
class BlockBatch {
  buffer = Buffer.allocUnsafe(1 << 20);
  length = 0;
  packets = 0;
  /** File offset of buffer[0]. */
  private base = 0;

  reset(base: number): void {
    this.base = base;
    this.length = 0;
    this.packets = 0;
  }

  /** File offset just past the batch. */
  get end(): number {
    return this.base + this.length;
  }

  /** Room for a block of `size` bytes (after padding when needed): the offset to write it at. */
  place(size: number): number {
    const fill = paddingBefore(this.end, size);
    this.ensure(fill + size);
    if (fill) writePaddingBlock(this.buffer, this.length, fill);
    const at = this.length + fill;
    this.length = at + size;
    return at;
  }

  private ensure(more: number): void {
    if (this.length + more <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + more));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }
}

function penBytes(): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(VXTRACE_PEN, 0);
  return b;
}

/** The rotation options a trace can be opened with (the writer checks them again on open; commands check them before anything else). */
export function validateRotation(o: Pick<PcapngWriterOptions, 'rotateSize' | 'rotateCount'>): void {
  if (o.rotateSize !== undefined && (!Number.isSafeInteger(o.rotateSize) || o.rotateSize <= 0)) {
    throw new UsageError(`--rotate-size ${o.rotateSize} is not a positive number of bytes (e.g. 100M)`);
  }
  if (o.rotateCount !== undefined) {
    if (!Number.isSafeInteger(o.rotateCount) || o.rotateCount < 1) throw new UsageError(`--rotate-count ${o.rotateCount} is not a whole number of files of at least 1`);
    if (o.rotateSize === undefined) throw new UsageError('--rotate-count needs --rotate-size: say how large each file may grow');
  }
}

function validateOptions(o: PcapngWriterOptions): void {
  validateRotation(o);
  if (o.snaplen !== undefined && (!Number.isSafeInteger(o.snaplen) || o.snaplen < 1 || o.snaplen > MAX_CAPTURE_LENGTH)) {
    throw new UsageError(`--snaplen ${o.snaplen} is not between 1 and ${MAX_CAPTURE_LENGTH} bytes`);
  }
}

/**
 * A trace overwrites an earlier trace of the same name (as tcpdump -w does), but never a file that
 * is something else: `--write /etc/hosts` as root must not destroy it.
 */
function refuseToClobber(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return; // absent (or unreadable: open for writing says why)
  }
  try {
    const head = Buffer.alloc(4);
    const n = readSync(fd, head, 0, 4, 0);
    if (n === 0) return;
    if (n < 4 || head.readUInt32LE(0) !== 0x0a0d0d0a) {
      throw new UsageError(`${path} exists and is not a pcapng trace: vxtrace does not overwrite it; remove it or write to another file`);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    // A directory or an unreadable file: opening it for writing reports it.
  } finally {
    closeSync(fd);
  }
}

function openError(path: string, err: NodeJS.ErrnoException): Error {
  const dir = dirname(path);
  switch (err.code) {
    case 'ENOENT':
      return new UsageError(`cannot create the trace file ${path}: the directory ${dir} does not exist; create it or write elsewhere`);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new UsageError(`cannot create the trace file ${path}: ${err.code === 'EROFS' ? 'read-only file system' : 'permission denied'}; write to a directory you can write to`);
    case 'EISDIR':
      return new UsageError(`cannot write the trace to ${path}: it is a directory; give a file name such as ${dir}/${basename(path)}/trace.pcapng`);
    default:
      return new EnvironmentError(`cannot create the trace file ${path}: ${err.message}`);
  }
}

/** Parses a size such as `100M`, `1G`, `512k` or `4096` (bytes; K/M/G are powers of 1024). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:i?[bB])?\s*$/.exec(text);
  if (!m) throw new UsageError(`size "${text}" is not a number of bytes with an optional K, M or G (e.g. 100M)`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new UsageError(`size "${text}" must be more than 0 bytes`);
  return bytes;
}
