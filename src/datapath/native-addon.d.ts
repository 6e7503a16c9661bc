// The raw surface of native/build/Release/vxtrace_native.node (native/src/addon.cc, tracer.cc).
// Only src/datapath/native.ts loads it and only src/datapath/index.ts calls it; everything else
// uses what src/datapath/index.ts exports (the Tracer, defaultSnaplen(), defaultVxlanPorts()).

export interface RawFieldLayout {
  offset: number;
  size: number;
}

/** sizeof/offsetof, constants and defaults from bpf/vxtrace.h as the C++ compiler sees them. */
export interface RawLayout {
  hopSize: number;
  l3Size: number;
  /** sizeof(struct vxt_fp_key): the bytes the fingerprint hashes. */
  fpKeySize: number;
  recordAlign: number;
  /** Bytes of each frame kept when no snaplen is given (VXT_DEFAULT_SNAPLEN). */
  defaultSnaplen: number;
  /** Bytes that hold the outer and inner headers (VXT_HEADERS_SNAPLEN): a headers-only record. */
  headersSnaplen: number;
  maxSnaplen: number;
  /** Rules that are not one exact address pair each (VXT_MAX_RULES), and pod pairs (VXT_MAX_PAIRS / 2). */
  maxRules: number;
  maxPairs: number;
  defaultFlowEntries: number;
  defaultSampleFirst: number;
  defaultSampleWindowNs: number;
  maxVxlanPorts: number;
  /** UDP ports parsed as VXLAN when none are given (VXT_DEFAULT_VXLAN_PORTS). */
  defaultVxlanPorts: number[];
  hop: Record<string, RawFieldLayout>;
  l3: Record<string, RawFieldLayout>;
  fpKey: Record<string, RawFieldLayout>;
  flowKeySize: number;
  flowKey: Record<string, RawFieldLayout>;
  flowStatsSize: number;
  flowStats: Record<string, RawFieldLayout>;
  /** KIND_*, DIR_*, F_* (F_SHEDDING too), FILTER_* of bpf/vxtrace.h. */
  constants: Record<string, number>;
}

export interface RawConfig {
  snaplen?: number;
  /** Frames of up to this many bytes are kept whole, whatever snaplen says (0: none). */
  wholeUpTo?: number;
  vxlanPorts?: number[];
  ringBytes?: number;
  trackDrops?: boolean;
  /** Which kfree_skb program reports drops: tp_btf (BTF-typed), raw_tp, or auto (tp_btf when the kernel's BTF has the tracepoint, else raw_tp). */
  dropHook?: 'auto' | 'tp_btf' | 'raw_tp';
  /** Count every followed packet per flow and hook (map vxt_flows). Default true. */
  countFlows?: boolean;
  flowEntries?: number;
  /** Shed records while more than this many bytes wait in the ring buffer; -1 never, 0 always. Default half the ring buffer. */
  shedAbove?: number;
  /** While shedding: records kept per flow and hook (and CPU) in each window of sampleWindowNs. */
  sampleFirst?: number;
  sampleWindowNs?: number;
}

export interface RawAttachSpec {
  /** Name under /run/netns, an absolute path, or null for the process's own namespace. */
  netns: string | null;
  device: string;
  direction: 'ingress' | 'egress';
  mode?: 'auto' | 'tcx' | 'clsact';
}

export interface RawAttachment {
  ifindex: number;
  netnsCookie: bigint;
  netnsInode: number;
  mode: 'tcx' | 'clsact';
  /** Kernel program id (bpftool prog show id N). */
  programId: number;
  /** Kernel link id for tcx (bpftool link show id N); 0 for clsact. */
  linkId: number;
}

export interface RawAttachmentInfo extends RawAttachment {
  netns: string | null;
  device: string;
  direction: 'ingress' | 'egress';
}

export interface RawRule {
  family: number;
  protocol: number;
  port: number;
  aAddr: Buffer;
  aMask: Buffer;
  bAddr: Buffer;
  bMask: Buffer;
}

/** struct vxt_config as the loaded programs hold it (their .rodata, read back from the kernel). */
export interface RawLoadedConfig {
  snaplen: number;
  trackDrops: boolean;
  vxlanPorts: number[];
  wakeupBytes: number;
  /** enum skb_drop_reason values that are not drops, from the running kernel's BTF. */
  reasonNotDroppedYet: number;
  reasonConsumed: number;
  countFlows: boolean;
  wholeUpTo: number;
  /** -1: never shed. */
  shedAbove: number;
  sampleFirst: number;
  sampleWindowNs: number;
}

/** Per-CPU counters (index = CPU) and user-space totals. */
export interface RawStats {
  records: number[];
  lost: number[];
  seen: number[];
  dropsSeen: number[];
  pulled: number[];
  followed: number[];
  sampled: number[];
  userLost: number;
  delivered: number;
}

export declare class RawTracer {
  /** Opens (does not load) the BPF object file. */
  constructor(objectPath: string);
  configure(config: RawConfig): void;
  /** Loads programs and maps; attaches the kfree_skb program unless trackDrops is false. */
  load(): { dropHook: string | null };
  attach(spec: RawAttachSpec): RawAttachment;
  watchNetns(netns: string | null): { netnsCookie: bigint; netnsInode: number };
  /** mode: layout().constants.FILTER_NONE, FILTER_ALL or FILTER_RULES. */
  setFilter(mode: number, rules: RawRule[]): void;
  /**
   * onBatch gets concatenated hop records, each padded to recordAlign; onStopped runs after the last
   * batch. At most 16 batches are given out before done() says some were handled.
   */
  start(onBatch: (batch: Buffer) => void, onStopped: () => void): void;
  /** n more of the batches onBatch got have been handled (default 1): the polling thread may hand out more. */
  done(n?: number): void;
  stop(): void;
  stats(): RawStats;
  /** Every flow counter entry: struct vxt_flow_key then struct vxt_flow_stats (summed over CPUs), back to back. */
  flowCounters(): Buffer;
  attachments(): RawAttachmentInfo[];
  loadedConfig(): RawLoadedConfig;
  close(): void;
}

export interface NativeAddon {
  Tracer: typeof RawTracer;
  layout(): RawLayout;
  /** enum skb_drop_reason of the running kernel (BTF): value -> name without SKB_DROP_REASON_. */
  dropReasons(): Record<string, string>;
}
