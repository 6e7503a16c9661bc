// The hub's pipeline, in shards: every hop record goes to the shard its packet's fingerprint falls
// to (so each packet is joined whole by one Pipeline), each shard in a worker thread of its own, so
// that the hub joins on as many cores as it is given; with no workers, one shard in the hub's own
// thread. The hub (src/hub/hub.ts) checks that records are of the agent's own node here, as it
// routes them, and gets back the finished paths one by one, in the order one Pipeline would have
// finished them: every shard's answer to a batch (or a poll) is awaited, and their paths are handed
// out by the place in the batch of the record that finished each.
import { Worker } from 'node:worker_threads';
import type { ClusterObjects } from '../cluster/list.js';
import type { NodeKernelState } from '../cluster/kernel.js';
import type { HopEvent } from '../datapath/hop.js';
import type { PacketPath } from '../correlate/path.js';
import { HOP_LAYOUT, KIND_DROP, KIND_TC, L3_LAYOUT } from '../datapath/decode.js';
import type { Finding } from '../diagnose/finding.js';
import { WireError, type Subscription } from '../wire/codec.js';
import { KernelRecordBatch, type KernelHopRecords } from '../wire/hop-batch.js';
import { PipelineShard, type ShardCommand, type ShardPaths, type ShardRecent, type ShardSetup } from './shard.js';

/** One finished path, as a shard hands it out. */
export interface FinishedPath {
  /** The path as an EventBatch `Event` field (empty when no client wants it). */
  bytes: Uint8Array;
  /** The ids of the clients whose subscriptions want it. */
  wants: Int32Array;
  /** Index into PATH_OUTCOMES. */
  outcome: number;
  /** The findings it showed (its own, packetCount 1 each). */
  findings: Finding[] | undefined;
}

export interface ShardsOptions {
  /** Worker threads, one shard each; 0: one shard in this thread. */
  workers: number;
  objects: ClusterObjects;
  /** Each finished path, in order. */
  onPath(path: FinishedPath): void;
  /**
   * The shards have more records to join than BACKLOG_RECORDS (true: read no more from the agents,
   * so that their sockets fill and they keep what the hub cannot take yet, counting what they
   * drop), or again less than half of it (false).
   */
  onBacklog(full: boolean): void;
}

/** Records sent to the shards and not joined yet past which the hub stops reading its agents (a few agents' batches). */
export const BACKLOG_RECORDS = 16_384;

const F = HOP_LAYOUT.fields;
const align = (n: number) => Math.ceil(n / HOP_LAYOUT.recordAlign) * HOP_LAYOUT.recordAlign;

interface ShardLink {
  send(c: ShardCommand, transfer?: ArrayBuffer[]): void;
  stop(): void;
  /** Keep the process alive while an answer is awaited (true), or not (false: the default). */
  hold(on: boolean): void;
}

/**
 * The records routed to one shard from one batch: copied back to back, as they were, with their
 * places in the batch; runs of records that follow each other in the batch are copied at once.
 */
class Routed {
  bytes: Uint8Array;
  length = 0;
  order: number[] = [];
  /** The run of the batch not copied yet: [runStart, runEnd) of `from`. */
  private runStart = 0;
  private runEnd = 0;

  constructor(
    private readonly from: Uint8Array,
    expectBytes: number,
  ) {
    this.bytes = new Uint8Array(expectBytes);
  }

  add(at: number, size: number, place: number): void {
    this.order.push(place);
    if (at !== this.runEnd) {
      this.flush();
      this.runStart = at;
    }
    this.runEnd = at + size;
  }

  /** Copy the run; the batch's last record may come without its padding. */
  flush(): void {
    const size = this.runEnd - this.runStart;
    if (!size) return;
    if (this.length + size > this.bytes.length) {
      const bigger = new Uint8Array(Math.max(this.bytes.length * 2, this.length + size));
      bigger.set(this.bytes.subarray(0, this.length));
      this.bytes = bigger;
    }
    const end = Math.min(this.runEnd, this.from.length);
    this.bytes.set(this.from.subarray(this.runStart, end), this.length);
    if (end < this.runEnd) this.bytes.fill(0, this.length + end - this.runStart, this.length + size);
    this.length += size;
    this.runStart = this.runEnd = 0;
  }
}

export class PipelineShards {
  private readonly shards: ShardLink[];
  private readonly onPath: (path: FinishedPath) => void;
  /** The next command's seq, and the first seq whose paths are not handed out yet. */
  private nextSeq = 0;
  private releaseSeq = 0;
  /** Per seq: how many shards answer it, their answers so far, and the records it carried. */
  private readonly answers = new Map<number, { expect: number; got: ShardPaths[]; records: number }>();
  private readonly onBacklog: (full: boolean) => void;
  /** Recent-path requests (the page's download) waiting for their shards' answers, by id. */
  private readonly recentAsked = new Map<number, { expect: number; got: PacketPath[][]; resolve: (paths: PacketPath[]) => void }>();
  private nextRecent = 0;
  /** Records sent and not answered yet, and whether that is a backlog. */
  private inFlight = 0;
  private backlog = false;

  constructor(opts: ShardsOptions) {
    this.onPath = opts.onPath;
    this.onBacklog = opts.onBacklog;
    const model: ShardSetup = { objects: opts.objects, kernelStates: [] as [string, NodeKernelState][], shards: Math.max(1, opts.workers) };
    if (opts.workers <= 0) {
      const shard = new PipelineShard(model);
      this.shards = [
        {
          send: (c) => {
            const paths = shard.handle(c);
            if (paths) this.answer(paths);
          },
          stop: () => {},
          hold: () => {},
        },
      ];
      return;
    }
    this.shards = Array.from({ length: opts.workers }, () => {
      const worker = new Worker(new URL('./shard-worker.js', import.meta.url), { workerData: model });
      worker.on('message', (paths: ShardPaths | ShardRecent) => this.answer(paths));
      // A shard that fails is a bug: the hub fails with it rather than drop packets unsaid.
      worker.on('error', (err) => {
        throw err;
      });
      worker.unref();
      return {
        send: (c, transfer) => worker.postMessage(c, transfer ?? []),
        stop: () => void worker.terminate(),
        hold: (on) => (on ? worker.ref() : worker.unref()),
      };
    });
  }

  get count(): number {
    return this.shards.length;
  }

  /**
   * One agent's batch of kernel records: each record whose hook is of the agent's node goes to its
   * packet's shard; the others are not taken. Returns how many were offered and taken. Throws
   * WireError for records that do not parse (cut inside a record, one claiming more frame bytes than
   * the batch holds, an unknown kind): the frame is malformed.
   */
  addKernelRecords(node: string, k: KernelHopRecords, correctionNs: bigint): { offered: number; taken: number } {
    const bytes = k.bytes;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // Each hook as (ifindex, cookie halves), and whether it is of this node.
    const hooks = k.hooks.map((h) => ({ ifindex: h.ifindex, low: Number(h.netnsCookie & 0xffffffffn), high: Number((h.netnsCookie >> 32n) & 0xffffffffn), mine: h.node === node }));
    const n = this.shards.length;
    const routed = Array.from({ length: n }, () => new Routed(bytes, n === 1 ? bytes.length + HOP_LAYOUT.recordAlign : Math.ceil((1.5 * bytes.length) / n)));
    let offered = 0;
    let taken = 0;
    for (let at = 0; at < bytes.length; ) {
      if (bytes.length - at < HOP_LAYOUT.size) throw new WireError(`the kernel records of a HopBatch are malformed: truncated hop record at byte ${at} of ${bytes.length}`);
      const cap = view.getUint32(at + F.cap_len.offset, true);
      if (at + HOP_LAYOUT.size + cap > bytes.length) throw new WireError(`the kernel records of a HopBatch are malformed: the hop record at byte ${at} claims more frame bytes than the batch holds`);
      const kind = bytes[at + F.kind.offset];
      if (kind !== KIND_TC && kind !== KIND_DROP) throw new WireError(`the kernel records of a HopBatch are malformed: the hop record at byte ${at} has unknown kind ${kind}`);
      const size = align(HOP_LAYOUT.size + cap);
      // Only IP packets are hops (the kernel emits no other; the datapath's decoder skips them too).
      const family = bytes[at + F.inner.offset + L3_LAYOUT.family.offset];
      if (family !== 4 && family !== 6) {
        at += size;
        continue;
      }
      const place = offered++;
      const ifindex = view.getUint32(at + F.ifindex.offset, true);
      const low = view.getUint32(at + F.netns_cookie.offset, true);
      const high = view.getUint32(at + F.netns_cookie.offset + 4, true);
      let mine = false;
      for (const h of hooks) {
        if (h.ifindex === ifindex && h.low === low && h.high === high) {
          mine = h.mine;
          break;
        }
      }
      // An agent speaks for its own node only (a hook the batch does not name is no node's).
      if (mine) {
        routed[n === 1 ? 0 : view.getUint32(at + F.fingerprint.offset, true) % n]!.add(at, size, place);
        taken++;
      }
      at += size;
    }
    for (const r of routed) r.flush();
    const parts = routed.filter((r) => r.length).length;
    if (parts) {
      const seq = this.expect(parts, taken);
      routed.forEach((r, i) => {
        if (!r.length) return;
        const records: KernelHopRecords = { ...k, bytes: r.bytes.subarray(0, r.length) };
        const order = Uint32Array.from(r.order);
        this.shards[i]!.send({ kind: 'hops', seq, records, order, correctionNs }, [r.bytes.buffer as ArrayBuffer, order.buffer]);
      });
    }
    return { offered, taken };
  }

  /** HopEvents already checked and corrected (records sent one by one, in the trace file's form): to their shards as kernel records. */
  addEvents(events: readonly HopEvent[]): void {
    const n = this.shards.length;
    let batches: (KernelRecordBatch | undefined)[] = new Array(n);
    let places: number[][] = Array.from({ length: n }, () => []);
    let place = 0;
    const send = () => {
      const parts = batches.filter((b) => b).length;
      if (parts) {
        const seq = this.expect(parts, place);
        batches.forEach((b, i) => {
          if (b) this.shards[i]!.send({ kind: 'hops', seq, records: b.records(), order: Uint32Array.from(places[i]!), correctionNs: 0n });
        });
      }
      batches = new Array(n);
      places = Array.from({ length: n }, () => []);
      place = 0;
    };
    for (const e of events) {
      const low = e.record && e.record.length >= HOP_LAYOUT.size ? new DataView(e.record.buffer, e.record.byteOffset).getUint32(F.fingerprint.offset, true) : parseInt(e.fingerprint.slice(8), 16) >>> 0;
      const i = n === 1 ? 0 : low % n;
      // A batch holds one clock offset and one name per hook: an event that does not fit sends them and starts anew.
      if (!batches[i]?.add(e)) {
        if (batches[i]) send();
        (batches[i] = new KernelRecordBatch()).add(e);
      }
      places[i]!.push(place++);
    }
    send();
  }

  poll(nowNs: bigint): void {
    this.all({ kind: 'poll', seq: this.expect(this.shards.length), nowNs });
  }

  setModel(objects: ClusterObjects, kernelStates: Map<string, NodeKernelState>): void {
    this.all({ kind: 'model', objects, kernelStates: [...kernelStates] });
  }

  setWatched(nodes: string[]): void {
    this.all({ kind: 'watched', nodes });
  }

  recordsLost(): void {
    this.all({ kind: 'records-lost' });
  }

  setClients(clients: { id: number; subscription: Subscription }[]): void {
    this.all({ kind: 'clients', clients });
  }

  /**
   * The recent paths (the page's pcapng download) with one of these fingerprints, from every shard
   * (a fingerprint's paths are all in one), oldest first.
   */
  recentPaths(fingerprints: readonly string[]): Promise<PacketPath[]> {
    return new Promise((resolve) => {
      const id = this.nextRecent++;
      // The workers keep no process alive (the hub's sockets do); one awaited here does until it answered.
      if (!this.recentAsked.size) for (const s of this.shards) s.hold(true);
      this.recentAsked.set(id, { expect: this.shards.length, got: [], resolve });
      this.all({ kind: 'recent', id, fingerprints: [...fingerprints] });
    });
  }

  stop(): void {
    for (const s of this.shards) s.stop();
    // A download waiting on a shard that stopped gets what the others answered.
    for (const [id, r] of this.recentAsked) {
      this.recentAsked.delete(id);
      r.resolve(byFirstSeen(r.got.flat()));
    }
  }

  private all(c: ShardCommand): void {
    for (const s of this.shards) s.send(c);
  }

  /** A seq for a command `shards` shards answer, carrying `records` hop records. */
  private expect(shards: number, records = 0): number {
    const seq = this.nextSeq++;
    this.answers.set(seq, { expect: shards, got: [], records });
    this.inFlight += records;
    if (!this.backlog && this.inFlight > BACKLOG_RECORDS) {
      this.backlog = true;
      this.onBacklog(true);
    }
    return seq;
  }

  /** One shard's answer: once every shard answered the oldest command not handed out, its paths go out in order. */
  private answer(paths: ShardPaths | ShardRecent): void {
    if ('recent' in paths) return this.recentAnswer(paths);
    this.answers.get(paths.seq)?.got.push(paths);
    for (let a = this.answers.get(this.releaseSeq); a && a.got.length === a.expect; a = this.answers.get(this.releaseSeq)) {
      this.answers.delete(this.releaseSeq++);
      this.inFlight -= a.records;
      this.handOut(a.got);
    }
    if (this.backlog && this.inFlight < BACKLOG_RECORDS / 2) {
      this.backlog = false;
      this.onBacklog(false);
    }
  }

  /** One shard's recent paths: once every shard answered, the request has them. */
  private recentAnswer(r: ShardRecent): void {
    const asked = this.recentAsked.get(r.recent);
    if (!asked) return;
    asked.got.push(r.paths);
    if (asked.got.length < asked.expect) return;
    this.recentAsked.delete(r.recent);
    if (!this.recentAsked.size) for (const s of this.shards) s.hold(false);
    asked.resolve(byFirstSeen(asked.got.flat()));
  }

  /** The paths of every shard's answer to one command, by key (the place in the batch of the record that finished each). */
  private handOut(answers: ShardPaths[]): void {
    const next = answers.map(() => 0);
    const found = answers.map((a) => new Map(a.findings));
    for (;;) {
      let pick = -1;
      for (let s = 0; s < answers.length; s++) {
        if (next[s]! < answers[s]!.keys.length && (pick < 0 || answers[s]!.keys[next[s]!]! < answers[pick]!.keys[next[pick]!]!)) pick = s;
      }
      if (pick < 0) return;
      const a = answers[pick]!;
      const i = next[pick]!++;
      this.onPath({
        bytes: a.bytes.subarray(i ? a.ends[i - 1]! : 0, a.ends[i]!),
        wants: a.wants.subarray(i ? a.wantsEnd[i - 1]! : 0, a.wantsEnd[i]!),
        outcome: a.outcomes[i]!,
        findings: found[pick]!.get(i),
      });
    }
  }
}

const byFirstSeen = (paths: PacketPath[]): PacketPath[] => paths.sort((a, b) => (a.firstSeenNs < b.firstSeenNs ? -1 : a.firstSeenNs > b.firstSeenNs ? 1 : 0));
