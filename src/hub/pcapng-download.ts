// The page's "download the paths in view": the hub keeps the last paths it joined, with every hop's
// record and frame (RecentPaths, bounded by count and bytes; each pipeline shard keeps its share,
// src/hub/shard.ts), and POST /v1/pcapng with a
// vxtrace.v1.PcapngRequest (fingerprints) answers them as one pcapng trace, written by the same
// writer and in the same format as `vxtrace capture` (cluster snapshot, hops with their paths'
// outcomes, findings), so tshark and `vxtrace read` open it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vxtrace } from '../generated/vxtrace.js';
import type { ClusterModel } from '../cluster/model.js';
import type { PacketPath } from '../correlate/path.js';
import { findingsConcerning, type Finding } from '../diagnose/finding.js';
import { openTrace } from '../session/trace-file.js';
import { MAX_CAPTURE_LENGTH } from '../pcapng/format.js';
import type { FlowCount } from '../datapath/flow.js';

/** Paths the hub keeps for downloads: the page keeps at most 10,000 (ui/src/store.ts), the hub twice that. */
export const RECENT_PATHS = 20_000;
/** ...and at most this many bytes of their frames and records (an estimate: frame + 200 per hop). */
export const RECENT_BYTES = 64 << 20;
/** Largest request body: 20,000 fingerprints of 16 hex digits with their protobuf framing is ~400 KiB. */
const MAX_REQUEST_BYTES = 1 << 20;

const pathBytes = (p: PacketPath): number => p.hops.reduce((n, h) => n + h.event.frame.length + 200, 0);

/** The last paths the hub joined, by fingerprint; the oldest go first past either bound. */
export class RecentPaths {
  private readonly order: PacketPath[] = [];
  private head = 0;
  private readonly byFingerprint = new Map<string, PacketPath[]>();
  private bytes = 0;
  /** Paths let go to stay within the bounds. */
  evicted = 0;

  constructor(
    private readonly maxPaths = RECENT_PATHS,
    private readonly maxBytes = RECENT_BYTES,
  ) {}

  get size(): number {
    return this.order.length - this.head;
  }

  add(path: PacketPath): void {
    this.order.push(path);
    this.bytes += pathBytes(path);
    const same = this.byFingerprint.get(path.fingerprint);
    if (same) same.push(path);
    else this.byFingerprint.set(path.fingerprint, [path]);
    while (this.size > this.maxPaths || (this.bytes > this.maxBytes && this.size > 1)) this.dropOldest();
    // Compact the queue now and then, not on every eviction.
    if (this.head > 4096 && this.head * 2 > this.order.length) {
      this.order.splice(0, this.head);
      this.head = 0;
    }
  }

  private dropOldest(): void {
    const p = this.order[this.head]!;
    this.order[this.head++] = undefined as never;
    this.bytes -= pathBytes(p);
    this.evicted++;
    const same = this.byFingerprint.get(p.fingerprint)!;
    same.shift();
    if (!same.length) this.byFingerprint.delete(p.fingerprint);
  }

  /** Every held path with one of these fingerprints, oldest first. */
  find(fingerprints: Iterable<string>): PacketPath[] {
    const out: PacketPath[] = [];
    for (const f of new Set(fingerprints)) out.push(...(this.byFingerprint.get(f) ?? []));
    return out.sort((a, b) => (a.firstSeenNs < b.firstSeenNs ? -1 : a.firstSeenNs > b.firstSeenNs ? 1 : 0));
  }
}

/** What the download needs of the hub. */
export interface PcapngSource {
  readonly clusterModel: ClusterModel;
  readonly watchedNodes: readonly string[];
  /** The last paths joined with one of these fingerprints, oldest first. */
  recentPaths(fingerprints: readonly string[]): Promise<PacketPath[]>;
  findings(): Finding[];
  /** The kernel's flow counters of these paths' flows that are one snapshot, how many flows were left out, and the snapshot's instant. */
  flowCounts?(paths: readonly PacketPath[]): { counts: FlowCount[]; leftOut: number; readNs?: bigint };
}

function fail(res: ServerResponse, status: number, why: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' }).end(`${why}\n`);
}

function readBody(req: IncomingMessage, max: number): Promise<Uint8Array | undefined> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (b: Buffer) => {
      n += b.length;
      if (n > max) {
        resolve(undefined);
        req.destroy();
        return;
      }
      parts.push(b);
    });
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);

/** POST /v1/pcapng: a PcapngRequest in, a pcapng trace of the paths asked for out. */
export async function servePcapng(req: IncomingMessage, res: ServerResponse, src: PcapngSource): Promise<void> {
  if (req.method !== 'POST') return fail(res, 405, 'POST /v1/pcapng takes a vxtrace.v1.PcapngRequest (the fingerprints of the paths to write)');
  const body = await readBody(req, MAX_REQUEST_BYTES);
  if (!body) return fail(res, 413, `the request is larger than ${MAX_REQUEST_BYTES} bytes: ask for at most ${RECENT_PATHS} paths`);
  let fingerprints: string[];
  try {
    fingerprints = vxtrace.v1.PcapngRequest.decode(body).fingerprints;
  } catch (err) {
    return fail(res, 400, `the body is not a vxtrace.v1.PcapngRequest: ${(err as Error).message}`);
  }
  if (!fingerprints.length) return fail(res, 400, 'the request names no path: send the fingerprints of the paths to write');
  const paths = await src.recentPaths(fingerprints);
  if (!paths.length) {
    return fail(res, 404, `the hub no longer holds any of the ${fingerprints.length} paths asked for (it keeps its last ${RECENT_PATHS} paths)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'vxtrace-download-'));
  const file = join(dir, 'trace.pcapng');
  try {
    const model = src.clusterModel;
    const snaplen = Math.min(MAX_CAPTURE_LENGTH, Math.max(64, ...paths.flatMap((p) => p.hops.map((h) => h.event.frame.length))));
    const writer = openTrace(file, model.objects, model, src.watchedNodes, { snaplen });
    // The counters as a local trace stores them, so that `vxtrace read` shows the per-hop table.
    const flows = src.flowCounts?.(paths);
    try {
      writer.writeHops(paths);
      writer.writeFindings(findingsConcerning(src.findings(), paths.flatMap((p) => [p.srcNode, p.dstNode])), flows ? { flows: flows.counts, flowsReadNs: flows.readNs } : {});
    } finally {
      writer.close();
    }
    const size = statSync(file).size;
    res.writeHead(200, {
      'Content-Type': 'application/vnd.tcpdump.pcap',
      'Content-Disposition': `attachment; filename="vxtrace-${stamp(new Date())}.pcapng"`,
      'Content-Length': size,
      'Cache-Control': 'no-store',
      // How many of the paths asked for the hub still held (the rest were let go).
      'X-Vxtrace-Paths': `${new Set(paths.map((p) => p.fingerprint)).size}/${new Set(fingerprints).size}`,
      // Flows of those paths whose counters were left out: still live, or not counted at every hook throughout.
      ...(flows ? { 'X-Vxtrace-Flows-Left-Out': String(flows.leftOut) } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      const s = createReadStream(file);
      s.on('error', reject);
      res.on('close', () => resolve());
      s.pipe(res);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
