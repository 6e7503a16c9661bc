// pcapng constants (draft-ietf-opsawg-pcapng) and the choices vxtrace makes inside the format.
// docs/trace-format.md explains each choice; this file is the one place their numbers live.
import { UsageError } from '../errors.js';
import type { V1List } from '../cluster/k8s.js';
import type { NodeKernelState } from '../cluster/kernel.js';
import type { FlowCount } from '../datapath/flow.js';
import type { Finding } from '../diagnose/finding.js';

export const BlockType = {
  SECTION_HEADER: 0x0a0d0d0a,
  INTERFACE_DESCRIPTION: 0x00000001,
  SIMPLE_PACKET: 0x00000003,
  NAME_RESOLUTION: 0x00000004,
  INTERFACE_STATISTICS: 0x00000005,
  ENHANCED_PACKET: 0x00000006,
  /** Custom Block that may be copied into a new file by a tool that does not understand it. */
  CUSTOM_COPYABLE: 0x00000bad,
  /** Custom Block that must not be copied. */
  CUSTOM_NOT_COPYABLE: 0x40000bad,
} as const;

export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

/**
 * vxtrace's padding block, of a block type reserved for local use (bit 31 set): zeros that keep
 * other blocks from straddling a page boundary (see alignToPages). Readers, Wireshark included,
 * skip block types they do not know.
 */
export const PADDING_BLOCK_TYPE = 0x80000bad;

/** Page size the writer aligns to: a multiple of it is a multiple of any larger page or folio size. */
export const PAGE_SIZE = 4096;

/** Options valid in every block. */
export const Opt = {
  END: 0,
  COMMENT: 1,
  /** Custom option: UTF-8 string, may be copied. */
  CUSTOM_STRING_COPYABLE: 2988,
  CUSTOM_BINARY_COPYABLE: 2989,
  CUSTOM_STRING_NOT_COPYABLE: 19372,
  CUSTOM_BINARY_NOT_COPYABLE: 19373,
} as const;

export const ShbOpt = { HARDWARE: 2, OS: 3, USERAPPL: 4 } as const;
export const IdbOpt = { NAME: 2, DESCRIPTION: 3, TSRESOL: 9, OS: 12 } as const;
export const EpbOpt = { FLAGS: 2 } as const;

export const LINKTYPE_ETHERNET = 1;
/** Raw IP: the packet starts at the IPv4 or IPv6 header (drop records without a MAC header). */
export const LINKTYPE_RAW = 101;

/** epb_flags bits 0-1: packet direction. */
export const EpbDirection = { UNKNOWN: 0, INBOUND: 1, OUTBOUND: 2 } as const;

/**
 * IANA Private Enterprise Number 32473, "Example Enterprise Number for Documentation Use"
 * (RFC 5612). vxtrace has no PEN of its own; this one is reserved for documentation and
 * examples, so it can never collide with a real vendor's custom blocks. Wireshark names it.
 */
export const VXTRACE_PEN = 32473;

/** Kinds of vxtrace Custom Block (the `vxtrace` field of the block's JSON). */
export type CustomBlockKind = 'snapshot' | 'findings';

/**
 * Version of vxtrace's own payloads (custom blocks and the per-packet hop record). 1: the hop
 * record was JSON (vxtrace 0.1); 2: binary, carrying the kernel's record header.
 */
export const TRACE_FORMAT_VERSION = 2;
/** The hop record's version byte: the trace format's version. */
export const HOP_RECORD_VERSION = TRACE_FORMAT_VERSION;

/** Nanosecond timestamps: if_tsresol = 9 (10^-9 s). */
export const TSRESOL_NANOSECONDS = 9;

/** The largest frame Wireshark accepts (WTAP_MAX_PACKET_SIZE_STANDARD). Longer frames are clipped. */
export const MAX_CAPTURE_LENGTH = 262144;

/** Smallest well-formed block: type, length, (empty body), length. */
export const MIN_BLOCK_LENGTH = 12;

/**
 * Default sanity limit on one block's length, for readers. A frame is at most 256 KiB; the
 * snapshot of a large cluster is the biggest block vxtrace writes. A length above this is damage.
 */
export const DEFAULT_MAX_BLOCK_LENGTH = 64 * 1024 * 1024;

/** An option value is at most 65535 bytes (16-bit length). */
export const MAX_OPTION_LENGTH = 0xffff;

/** Size the writer reserves for every Section Header Block, so the section comment can be rewritten in place. */
export const SHB_RESERVED_LENGTH = 4096;

/** A pcapng file that cannot be read (past `offset`), with what is wrong and what to do. */
export class TraceFormatError extends UsageError {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.name = 'TraceFormatError';
    this.offset = offset;
  }
}

export function padLength(n: number): number {
  return (n + 3) & ~3;
}

/** The cluster as vxtrace saw it when the trace started: stored in every file of the trace. */
export interface TraceSnapshot {
  /** v1 Nodes and Pods, in the shape `kubectl get nodes,pods -A -o json` prints (null if unknown). */
  cluster: V1List | null;
  /** Each node's kernel state (VXLAN device, FDB, neighbours, addresses, routes) by node name. */
  nodeState: Record<string, NodeKernelState>;
  /** ISO 8601 time the snapshot was taken. */
  takenAt: string;
  /** The nodes whose hooks the trace watches (absent: every node of the cluster). */
  tracedNodes?: string[];
}

/** The payload of each vxtrace Custom Block (JSON, then zero padding). */
export interface CustomBlockJson {
  vxtrace: CustomBlockKind;
  v: number;
  traceId: string;
  /** Which file of a rotated trace this is (0 = the first). */
  fileIndex: number;
  writer: string;
  snapshot?: TraceSnapshot;
  findings?: Finding[];
  /** With findings: datapath records lost (ring buffer full) during the capture, when the writer was told. */
  lostRecords?: number;
  /** With findings: records the kernel shed by choice (sampled out) while user space was behind. */
  sampledRecords?: number;
  /** With findings: the kernel's per-hop flow counters at the end of the capture (FlowCount, ns as decimal strings). */
  flows?: FlowCount[];
  /** With flows: the wall-clock instant (ns, a decimal string) the hooks stopped counting, taken just before. */
  flowsReadNs?: string;
}
