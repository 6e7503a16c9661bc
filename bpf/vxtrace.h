/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every layout the vxtrace kernel programs share with user space: the hop record handed over the
 * ring buffer, its kinds and flags, the fingerprint key, the load-time configuration (.rodata),
 * the runtime filter (maps) and the per-CPU counters, and the defaults user space starts from.
 * bpf/vxtrace.bpf.c and native/src/ include this file; src/datapath/decode.ts decodes the hop
 * record and recomputes fingerprints, and test/unit/datapath-layout checks the two agree (the
 * addon exports sizeof/offsetof of every field, and the constants).
 *
 * Byte order: every address, port, id, sequence number and checksum is kept exactly as on the
 * wire (network order); user space converts. Counters and kernel values are host order.
 */
#ifndef VXTRACE_H
#define VXTRACE_H

#include <linux/types.h>

/* Bytes copied per record: default and the largest allowed (a 1500-byte inner frame plus
 * Ethernet+IPv6+UDP+VXLAN outer headers fits). */
#define VXT_DEFAULT_SNAPLEN 256
#define VXT_MAX_SNAPLEN 2048
/* Headers only: outer Ethernet+IPv4+UDP+VXLAN (50) and inner Ethernet+IPv4+TCP with options (74)
 * fit. What `follow` keeps when it writes no trace. */
#define VXT_HEADERS_SNAPLEN 128
/* Headers are parsed within the first VXT_PEEK_BYTES of a packet (pulled into the linear part
 * of the skb first when they are not there). */
#define VXT_PEEK_BYTES 256
/* Rules looped over (CIDRs, protocols, ports), and exact address pairs looked up by hash. */
#define VXT_MAX_RULES 16
#define VXT_MAX_PAIRS 1024
/* Flow counters (map vxt_flows): entries by default; the least recently used goes first. */
#define VXT_DEFAULT_FLOW_ENTRIES 16384
/* Shedding (when user space falls behind): records kept per flow and hook (and CPU) in each
 * window, by default. */
#define VXT_DEFAULT_SAMPLE_FIRST 32
#define VXT_DEFAULT_SAMPLE_WINDOW_NS 100000000ULL /* 100 ms */
#define VXT_MAX_VXLAN_PORTS 4
/* Hop records in one batch are each padded to this alignment (ring buffer records are, too). */
#define VXT_RECORD_ALIGN 8
/* UDP ports parsed as VXLAN unless configured otherwise: Linux's (and flannel's) default, then
 * IANA's. The addon exports them (layout().defaultVxlanPorts) for the rest of vxtrace. */
#define VXT_VXLAN_PORT_LINUX 8472
#define VXT_VXLAN_PORT_IANA 4789
#define VXT_DEFAULT_VXLAN_PORTS { VXT_VXLAN_PORT_LINUX, VXT_VXLAN_PORT_IANA } /* host order */

enum vxt_kind {
	VXT_KIND_TC = 1,   /* seen by a tc program on a device, in a direction */
	VXT_KIND_DROP = 2, /* freed by the kernel with a drop reason (skb:kfree_skb) */
};

enum vxt_direction {
	VXT_DIR_INGRESS = 0,
	VXT_DIR_EGRESS = 1,
};

enum vxt_hop_flags {
	VXT_F_ENCAP = 1 << 0,    /* outer IP/UDP/VXLAN present and parsed (outer, vni valid) */
	VXT_F_DF = 1 << 1,       /* inner IPv4 Don't Fragment */
	VXT_F_FRAGMENT = 1 << 2, /* inner IPv4 non-first fragment: no L4 fields */
	VXT_F_L3_START = 1 << 3, /* drop record whose frame starts at the IP header (no MAC header) */
	VXT_F_HAS_L4 = 1 << 4,   /* inner L4 header fully parsed */
	VXT_F_SHEDDING = 1 << 5, /* written while the kernel was shedding records (see vxt_config) */
	/* kept while its flow was being sampled at this hook (shedding, and more than sample_first/4
	 * of its packets in this window here): the packet's other hops may have been shed, so a path
	 * that ends early is not evidence of a loss (user space does not judge it) */
	VXT_F_SAMPLED = 1 << 6,
};

/* One IP header and the ports of its L4 header. IPv4 addresses use the first 4 bytes. */
struct vxt_l3 {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 family; /* 4, 6, or 0 when absent */
	__u8 protocol;
	__u8 ttl; /* IPv4 TTL or IPv6 hop limit */
	__u8 _pad;
};

/* The hop record: this fixed header, then cap_len bytes of the frame (Ethernet onwards, or IP
 * onwards for VXT_F_L3_START). */
struct vxt_hop {
	__u64 ts_ns;         /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 netns_cookie;  /* the device's network namespace (SO_NETNS_COOKIE in user space) */
	__u64 fingerprint;   /* vxt_fingerprint() of the inner packet: same at every hop */
	__u64 drop_location; /* kind DROP: kernel address of the freeing function */
	__u32 ifindex;
	__u32 skb_len;
	__u32 cap_len;       /* frame bytes following this header */
	__u32 drop_reason;   /* kind DROP: enum skb_drop_reason value */
	__u8 kind;           /* enum vxt_kind */
	__u8 direction;      /* enum vxt_direction (DROP: ingress when the skb was received) */
	__u16 flags;         /* enum vxt_hop_flags */
	__be32 vxlan_vni;    /* VXLAN header word 2 as on the wire: VNI << 8 | reserved */
	struct vxt_l3 outer;
	struct vxt_l3 inner;
	__u8 outer_src_mac[6];
	__u8 outer_dst_mac[6];
	__u8 inner_src_mac[6];
	__u8 inner_dst_mac[6];
	__be16 outer_udp_csum;
	__be16 ip_id;        /* inner IPv4 identification (0 for IPv6) */
	__be16 ip_len;       /* inner IPv4 total length, or IPv6 payload length */
	__u8 icmp_type;
	__u8 icmp_code;
	__be16 icmp_id;
	__be16 icmp_seq;
	__be32 tcp_seq;
	__be32 flow_label;   /* inner IPv6 flow label (low 20 bits) */
	__u8 tcp_flags;
	__u8 _pad;
	__u16 gso_size;      /* kind TC: skb's GSO segment size (0: not a GSO packet); the wire sees
	                      * gso_segs packets of this much payload each, not one of skb_len */
	__u16 gso_segs;      /* kind TC: segments the GSO packet stands for (0 or 1: not GSO) */
	__u8 _pad2[6];
};

/* The fields of the inner packet that no hop changes (not TTL, not checksums), as the kernel
 * hashes them into vxt_hop.fingerprint (FNV-1a 64 over the whole struct, padding zeroed). */
struct vxt_fp_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;      /* TCP/UDP only */
	__be16 dport;
	__be16 ip_id;      /* IPv4 only */
	__be16 ip_len;     /* IPv4 total length, IPv6 payload length */
	__be32 tcp_seq;    /* TCP only */
	__be32 flow_label; /* IPv6 only */
	__be16 icmp_id;    /* ICMP/ICMPv6 echo only */
	__be16 icmp_seq;
	__u8 family;
	__u8 protocol;
	__u8 icmp_type;    /* ICMP/ICMPv6 only */
	__u8 _pad;
};

/* Load-time configuration: the variable vxt_cfg in the .rodata of the BPF object (const
 * volatile, written by user space before load). */
struct vxt_config {
	__u32 snaplen;                           /* 1..VXT_MAX_SNAPLEN */
	__u32 track_drops;                       /* 0: skip kfree_skb records */
	__be16 vxlan_ports[VXT_MAX_VXLAN_PORTS]; /* network order, 0 = unused slot */
	__u32 wakeup_bytes;                      /* wake the consumer once this much is pending */
	/* The two enum skb_drop_reason values that are not drops, as the running kernel numbers
	 * them (user space reads them from its BTF): a kfree_skb with either is not reported. */
	__u32 reason_not_dropped_yet;
	__u32 reason_consumed;
	/* Shedding: while more than shed_above bytes wait in the ring buffer (user space is behind),
	 * a followed packet gets a record only when it is among the first sample_first packets of
	 * its flow at that hook in the current window of sample_window_ns (counted whether shedding
	 * or not, so that every hook keeps the same packets), is a TCP SYN/FIN/RST or ICMP, or is a
	 * drop; the rest are counted as sampled (vxt_stats.sampled and the flow's counters).
	 * shed_above 0: always shed; ~0: never. */
	__u32 sample_first;
	__u64 sample_window_ns;
	__u64 shed_above;
	__u32 count_flows; /* 0: no flow counters (map vxt_flows is not touched) */
	/* Frames of up to this many bytes are captured whole, whatever snaplen says (0: none): a
	 * headers-only snaplen still keeps small packets, e.g. for checking their outer checksum. */
	__u32 whole_up_to;
};

enum vxt_filter_mode {
	VXT_FILTER_NONE = 0,  /* emit nothing (attached but idle) */
	VXT_FILTER_ALL = 1,   /* emit every IP packet (capture) */
	VXT_FILTER_RULES = 2, /* emit packets matching a rule or an exact pair */
};

/* One rule: matches the inner packet when its (src, dst) is in (A, B) or in (B, A); addresses are
 * compared as 4 network-order words under the mask (IPv4: word 0 only). family/protocol/port 0
 * match anything; port matches either port. */
struct vxt_rule {
	__u32 a_addr[4];
	__u32 a_mask[4];
	__u32 b_addr[4];
	__u32 b_mask[4];
	__u8 family;
	__u8 protocol;
	__be16 port;
	__u32 _pad;
};

/* Runtime filter, map "vxt_filter" (array, 1 entry): the mode and the rules in one value, so
 * that a packet costs one lookup. Rules of two exact addresses (a pod pair) live in map
 * "vxt_pairs" instead, looked up by hash (npairs says whether there are any). */
struct vxt_filter {
	__u32 mode;
	__u32 nrules; /* rules[0..nrules) */
	__u32 npairs; /* entries in vxt_pairs (each pair twice: both directions) */
	__u32 _pad;
	struct vxt_rule rules[VXT_MAX_RULES];
};

/* Key of map "vxt_pairs" (hash, VXT_MAX_PAIRS entries): an inner packet's exact addresses. */
struct vxt_pair_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 family;
	__u8 _pad[3];
};

/* Value of map "vxt_pairs": what else the pair's rule asks (0: anything). */
struct vxt_pair_rule {
	__u8 protocol;
	__u8 _pad;
	__be16 port;
};

/* Per-CPU counters, map "vxt_stats" (per-CPU array, 1 entry). */
struct vxt_stats {
	__u64 records;      /* records written to the ring buffer */
	__u64 lost;         /* records lost: ring buffer full */
	__u64 seen;         /* packets the tc programs looked at */
	__u64 drops_seen;   /* kfree_skb events with a real drop reason, before filtering */
	__u64 followed;     /* packets (tc) and drops the filter wanted */
	__u64 sampled;      /* records not written by choice: shed while user space was behind */
	__u64 pulled;       /* tc packets whose headers were not in the linear part: pulled there
	                     * (bpf_skb_pull_data, which copies the head of a cloned skb) */
};

/* Key of map "vxt_flows" (LRU per-CPU hash): one flow at one hook. A flow is the inner packet's
 * addresses, protocol and ports (ICMP echo: its id in sport, 0 in dport), in the direction seen.
 * A hook is a device (netns cookie, ifindex) and direction, or (kind DROP) the kernel's drops of
 * the flow on that device with one reason. */
struct vxt_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u64 netns_cookie;
	__u32 ifindex;
	__u32 drop_reason;  /* kind DROP; 0 for tc */
	__be16 sport;
	__be16 dport;
	__u8 family;
	__u8 protocol;
	__u8 kind;          /* enum vxt_kind */
	__u8 direction;     /* enum vxt_direction */
};

/* Value of map "vxt_flows", per CPU (user space sums: packets, bytes, records, sampled, lost;
 * first_ns the least non-zero, last_ns the greatest). Exact whatever happens to the records:
 * counted before the ring buffer is asked for room. */
struct vxt_flow_stats {
	__u64 packets;      /* wire packets: a GSO skb counts its segments */
	__u64 bytes;        /* wire bytes at this hook (frame bytes; a GSO skb's headers once per segment) */
	__u64 first_ns;     /* bpf_ktime_get_ns() of the first and last packet */
	__u64 last_ns;
	__u64 records;      /* records written */
	__u64 sampled;      /* records shed by choice */
	__u64 lost;         /* records lost: ring buffer full */
	__u64 window;       /* shedding: the current window (ts / sample_window_ns) */
	__u64 window_packets; /* packets (skbs) of this flow at this hook in that window (counted unless shed_above is ~0) */
};

#endif /* VXTRACE_H */
