// Hop records as agents send them: the kernel's own records back to back (struct vxt_hop and its
// frame bytes, padded to 8 bytes, as the ring buffer hands them over), with the few things they name
// by number (hooks by netns cookie and ifindex, drop reasons by code, the freeing function) said once
// per batch. The agent copies each record once into its batch (KernelRecordBatch); the hub decodes a
// whole batch with the datapath's own decoder (kernelHopEvents): no message, string table or copy
// per record. proto/vxtrace.proto HopBatch; docs/protocol.md.
import { decodeBatch, encodeHopHeader, HOP_LAYOUT, KIND_DROP, RecordDecodeError, type DecodeContext, type HookIdentity } from '../datapath/decode.js';
import type { HopEvent } from '../datapath/hop.js';

/** A hook point as the records of a batch name it. */
export interface BatchHook extends HookIdentity {
  netnsCookie: bigint;
  ifindex: number;
}

/** The kernel's records of one batch and what they name (HopBatch.kernel_records and its tables). */
export interface KernelHopRecords {
  bytes: Uint8Array;
  hooks: BatchHook[];
  /** enum skb_drop_reason value -> name. */
  dropReasons: Map<number, string>;
  /** The freeing functions: a drop record's drop_location is 1 + its index here (0: unknown). */
  dropLocations: string[];
  /** Add to a record's ts_ns for its wall clock (ns since the epoch). */
  monotonicToWallNs: bigint;
}

const F = HOP_LAYOUT.fields;
const align = (n: number) => Math.ceil(n / HOP_LAYOUT.recordAlign) * HOP_LAYOUT.recordAlign;

/** Bytes one hop takes in a batch (header, frame, padding). */
export const kernelRecordSize = (e: HopEvent): number => align(HOP_LAYOUT.size + e.frame.length);

/**
 * An agent's batch being filled: each HopEvent from the datapath is copied in as the kernel wrote it
 * (its `record` header and its frame; an event built by hand gets the header the kernel would have
 * written), with its hook, drop reason and freeing function added to the batch's tables.
 */
export class KernelRecordBatch {
  private buf: Uint8Array;
  private view: DataView;
  private at = 0;
  /** Records in the batch. */
  count = 0;
  private readonly hooks: BatchHook[] = [];
  /** Per hook: ifindex and the two halves of its netns cookie, compared without a bigint per record. */
  private readonly hookKeys: number[] = [];
  private readonly dropReasons = new Map<number, string>();
  private readonly dropLocations: string[] = [];
  private readonly locationIndex = new Map<string, number>();

  /** Wall clock - monotonic clock of every event of the batch (the first one's; an agent's tracer has one). */
  private monotonicToWallNs = 0n;

  constructor(initialBytes = 16 << 10) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  /** Bytes of records in the batch. */
  get byteLength(): number {
    return this.at;
  }

  /**
   * Copy one hop in; false (and nothing added) when it cannot join this batch: its wall clock maps
   * from its monotonic clock otherwise than the batch's, or its hook (netns cookie, ifindex) is
   * named otherwise in the batch (events built by hand). An empty batch takes any hop.
   */
  add(e: HopEvent): boolean {
    const offset = e.wallTimeNs - e.timestampNs;
    if (!this.count) this.monotonicToWallNs = offset;
    else if (offset !== this.monotonicToWallNs) return false;
    const header = e.record && e.record.length === HOP_LAYOUT.size ? e.record : encodeHopHeader(e);
    const hv = new DataView(header.buffer, header.byteOffset, header.byteLength);
    const cookieLow = hv.getUint32(F.netns_cookie.offset, true);
    const cookieHigh = hv.getUint32(F.netns_cookie.offset + 4, true);
    const ifindex = hv.getUint32(F.ifindex.offset, true);
    const hook = this.hookOf(ifindex, cookieLow, cookieHigh);
    if (hook && (hook.node !== e.node || hook.device !== e.device || hook.role !== e.role || hook.netnsInode !== e.netnsInode)) return false;
    if (!hook) {
      this.hookKeys.push(ifindex, cookieLow, cookieHigh);
      this.hooks.push({ netnsCookie: (BigInt(cookieHigh) << 32n) | BigInt(cookieLow), ifindex, node: e.node, device: e.device, role: e.role, netnsInode: e.netnsInode });
    }
    const size = align(HOP_LAYOUT.size + e.frame.length);
    if (this.at + size > this.buf.length) this.grow(this.at + size);
    const b = this.buf;
    const v = this.view;
    const at = this.at;
    b.set(header, at);
    b.set(e.frame, at + HOP_LAYOUT.size);
    b.fill(0, at + HOP_LAYOUT.size + e.frame.length, at + size);
    v.setUint32(at + F.cap_len.offset, e.frame.length, true);
    // Not the kernel address of the freeing function (the node's KASLR offset): its name, by index.
    let location = 0;
    if (v.getUint8(at + F.kind.offset) === KIND_DROP) {
      this.dropReasons.set(v.getUint32(at + F.drop_reason.offset, true), e.dropReason ?? 'NOT_SPECIFIED');
      if (e.dropLocation !== undefined) {
        let i = this.locationIndex.get(e.dropLocation);
        if (i === undefined) {
          i = this.dropLocations.push(e.dropLocation) - 1;
          this.locationIndex.set(e.dropLocation, i);
        }
        location = i + 1;
      }
    }
    v.setUint32(at + F.drop_location.offset, location, true);
    v.setUint32(at + F.drop_location.offset + 4, 0, true);
    this.at += size;
    this.count++;
    return true;
  }

  /** The batch as it goes on the wire. */
  records(): KernelHopRecords {
    return {
      bytes: this.buf.subarray(0, this.at),
      hooks: [...this.hooks],
      dropReasons: new Map(this.dropReasons),
      dropLocations: [...this.dropLocations],
      monotonicToWallNs: this.monotonicToWallNs,
    };
  }

  private hookOf(ifindex: number, cookieLow: number, cookieHigh: number): BatchHook | undefined {
    const keys = this.hookKeys;
    for (let i = 0; i < keys.length; i += 3) if (keys[i] === ifindex && keys[i + 1] === cookieLow && keys[i + 2] === cookieHigh) return this.hooks[i / 3];
    return undefined;
  }

  private grow(need: number): void {
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buf.subarray(0, this.at));
    this.buf = bigger;
    this.view = new DataView(bigger.buffer);
  }
}

/** A hook no entry of the batch names: its records are not taken (see kernelHopEvents). */
const UNKNOWN_HOOK: HookIdentity = { node: '', device: '', role: 'other', netnsInode: 0 };

/** What kernelHopEvents throws for records that do not parse (codec.ts makes it a WireError). */
export class KernelRecordsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelRecordsError';
  }
}

/**
 * The HopEvents of a batch, decoded in one pass by the datapath's decoder; `correctionNs` is added
 * to every wall clock (the agent's clock mapped onto the hub's). A record whose hook the batch does
 * not name comes out with node '' (the caller drops it, as it drops another node's). Throws
 * KernelRecordsError for records that do not parse (truncated, an unknown kind).
 */
export function kernelHopEvents(k: KernelHopRecords, correctionNs = 0n): HopEvent[] {
  const hooks = k.hooks;
  const ctx: DecodeContext = {
    monotonicToWallNs: k.monotonicToWallNs + correctionNs,
    hookOf(cookie, ifindex) {
      for (const h of hooks) if (h.ifindex === ifindex && h.netnsCookie === cookie) return h;
      return UNKNOWN_HOOK;
    },
    dropReasonName: (code) => k.dropReasons.get(code) ?? `UNKNOWN_${code}`,
    symbolOf: (index) => k.dropLocations[Number(index) - 1],
  };
  try {
    return decodeBatch(k.bytes, ctx);
  } catch (err) {
    if (err instanceof RecordDecodeError) throw new KernelRecordsError(err.message);
    throw err;
  }
}
