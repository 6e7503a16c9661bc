// HopEvent: one observation of one packet at one hook point, decoded from the kernel's hop record
// (bpf/vxtrace.h, decoded by src/datapath/decode.ts). Everything downstream (correlation, diagnosis,
// pcapng, NDJSON, the stream) consumes this type and nothing rawer.

/** Where on a node a hook sits, by what the device is for. */
export type DeviceRole = 'pod-bridge' | 'vtep' | 'uplink' | 'other';
export type Direction = 'ingress' | 'egress';

export interface IcmpInfo {
  type: number;
  code: number;
  /** Echo identifier and sequence (0 for other ICMP types). */
  id: number;
  seq: number;
}

export interface TcpInfo {
  seq: number;
  /** TCP flag bits as on the wire: FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 ... */
  flags: number;
}

/** Addresses and ports of one IP header and its L4 header. */
export interface PacketTuple {
  family: 4 | 6;
  src: string;
  dst: string;
  /** IP protocol number: 1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6. */
  protocol: number;
  srcPort: number;
  dstPort: number;
}

/** The inner (pod-to-pod) packet: present at every hop of a followed packet. */
export interface InnerPacket extends PacketTuple {
  /** IPv4 identification (0 for IPv6). */
  ipId: number;
  /** Inner IP total length in bytes. */
  ipLength: number;
  ttl: number;
  /** Don't Fragment set (IPv4). */
  dontFragment: boolean;
  icmp?: IcmpInfo;
  tcp?: TcpInfo;
}

/** The outer VXLAN/UDP/IP headers: present only on the underlay leg (uplink hops). */
export interface OuterHeaders extends PacketTuple {
  vni: number;
  /** Outer UDP checksum as on the wire (0 = not computed, legal for IPv4). */
  udpChecksum: number;
  srcMac: string;
  dstMac: string;
}

export interface HopEvent {
  /** Kernel CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns): comparable within one machine. */
  timestampNs: bigint;
  /** Wall clock nanoseconds since the epoch, derived from timestampNs by the receiving process. */
  wallTimeNs: bigint;
  kind: 'tc' | 'drop';
  /** Node name (the cluster's), resolved by user space from the hook's network namespace. */
  node: string;
  /** Interface name in that node (`cni0`, `flannel.1`, `eth1`, ...). */
  device: string;
  role: DeviceRole;
  direction: Direction;
  ifindex: number;
  netnsInode: number;
  /** skb->len at the hook. */
  skbLength: number;
  /** Same value for the same inner packet at every hop on every node (16 hex digits). */
  fingerprint: string;
  /** Inner-frame Ethernet addresses at this hop (as seen inside any encapsulation). */
  innerSrcMac: string;
  innerDstMac: string;
  inner: InnerPacket;
  outer?: OuterHeaders;
  /** For kind 'drop': the kernel's reason, named from its BTF enum skb_drop_reason (e.g. NETFILTER_DROP). */
  dropReason?: string;
  dropReasonCode?: number;
  /** For kind 'drop': the kernel function that freed the skb (from /proc/kallsyms), when known. */
  dropLocation?: string;
  /**
   * Where `frame` starts when it is not the Ethernet header: 'ip' for a drop record whose skb had no
   * MAC header (VXT_F_L3_START): the frame starts at the IP header. Absent = Ethernet.
   */
  frameStart?: 'ip';
  /**
   * A GSO packet (TCP/UDP segmentation offload): one skb at the hook that stands for `segments`
   * packets on the wire, each carrying `size` bytes of payload. Its `inner.ipLength` is the whole
   * skb's, not any wire packet's. Absent: an ordinary packet (or a drop record).
   */
  gso?: { size: number; segments: number };
  /** The first snaplen bytes of the frame as seen at the hook (Ethernet onwards). */
  frame: Uint8Array;
  /**
   * The kernel's record header this event was decoded from (struct vxt_hop, HOP_LAYOUT.size bytes,
   * bpf/vxtrace.h), when it came from the datapath or a trace file: the trace writer stores it as
   * it is. Absent on events built by hand (the writer encodes one: encodeHopHeader).
   */
  record?: Uint8Array;
}
