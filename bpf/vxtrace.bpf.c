// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vxtrace datapath: tc programs (one per direction) on the pod bridge, the VXLAN device and the
 * uplinks of every node, plus skb:kfree_skb for drops. Each hook is a thin function naming its
 * hook point and calling one shared path:
 *
 *   locate    find the headers in place (tc: the packet itself, by direct packet access, pulled
 *             into the linear part first only when they are not there, counted in `pulled`;
 *             drops: a copy) and read what the filter needs: the inner packet's addresses,
 *             protocol, ports
 *   filter    one lookup of the runtime filter (mode and rules in one value), one hash lookup for
 *             exact pod pairs; a packet not followed costs only this, nothing is copied (the
 *             steps below are a subprogram, vxt_follow_tc, so that this path stays short)
 *   count     the flow's counters at this hook (map vxt_flows): packets, wire bytes, first/last
 *   shed      while user space is behind, keep records only for the first packets of each flow
 *             per window, drops, TCP SYN/FIN/RST and ICMP; count the rest as sampled
 *   record    reserve the record in the ring buffer and fill it in place: the header from the
 *             packet's headers, the frame bytes copied once
 *
 * Every tc program returns TC_ACT_UNSPEC (tcx: TCX_NEXT) on every path: an observer never
 * changes traffic (when the headers are not in the linear part of the skb they are pulled there,
 * which moves bytes but changes none).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "vxtrace.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ---- configuration, maps ------------------------------------------------------------------ */

/* Defaults for a loader that writes nothing; the addon writes all of it before load, the two
 * reason_* values from the running kernel's BTF. */
const volatile struct vxt_config vxt_cfg = {
	.snaplen = VXT_DEFAULT_SNAPLEN,
	.track_drops = 1,
	.vxlan_ports = { bpf_htons(VXT_VXLAN_PORT_LINUX), bpf_htons(VXT_VXLAN_PORT_IANA), 0, 0 },
	.wakeup_bytes = 64 << 10,
	.sample_first = VXT_DEFAULT_SAMPLE_FIRST,
	.sample_window_ns = VXT_DEFAULT_SAMPLE_WINDOW_NS,
	.shed_above = ~0ULL,
	.count_flows = 1,
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* set by user space before load */
} vxt_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vxt_stats);
} vxt_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vxt_filter);
} vxt_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VXT_MAX_PAIRS);
	__type(key, struct vxt_pair_key);
	__type(value, struct vxt_pair_rule);
} vxt_pairs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, VXT_DEFAULT_FLOW_ENTRIES); /* set by user space before load */
	__type(key, struct vxt_flow_key);
	__type(value, struct vxt_flow_stats);
} vxt_flows SEC(".maps");

/* Network namespaces (by cookie) whose drops are reported: those this tracer watches. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u32);
} vxt_netns SEC(".maps");

/* A drop's record is built here (its bytes are read with bpf_probe_read_kernel, then parsed):
 * header, then frame bytes. The data area is twice the largest snaplen so that any length masked
 * with VXT_LEN_MASK is provably inside it. `unsignalled` counts the bytes this CPU wrote to the
 * ring buffer since it last woke the consumer (tc records too); `shedding` is this CPU's view of
 * whether user space is behind. */
#define VXT_LEN_MASK (2 * VXT_MAX_SNAPLEN - 1)
struct vxt_scratch {
	struct vxt_hop hop;
	__u8 data[2 * VXT_MAX_SNAPLEN];
	__u32 unsignalled;
	__u32 shedding;        /* what this CPU last saw: user space behind (vxt_shedding) */
	__u64 shed_checked_ns; /* and when */
};

/* v & VXT_LEN_MASK, in a way the compiler cannot fold into an earlier comparison. */
static __always_inline __u32 vxt_len_bound(__u32 v)
{
	asm volatile("%[v] &= %[m]" : [v] "+r"(v) : [m] "i"(VXT_LEN_MASK));
	return v;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vxt_scratch);
} vxt_scratch SEC(".maps");

/* ---- minimal kernel types (CO-RE: only the fields read) ----------------------------------- */

struct net {
	__u64 net_cookie;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sock_common {
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned int len;
	int skb_iif;
	__u16 mac_header;
	__u16 network_header;
	__be16 protocol;
	__u32 tail;
	unsigned char *head;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* The network namespace of the device a tc program runs on. (bpf_get_netns_cookie() in tc
 * answers for the skb's socket, or the initial namespace for forwarded packets.) */
static __always_inline __u64 vxt_tc_netns_cookie(struct __sk_buff *ctx)
{
	/* Plain loads (the verifier makes them fault-safe), not three bpf_probe_read_kernel() calls:
	 * the kernel context is a trusted pointer, and the pointers walked from it may be read. */
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	struct net_device *dev = skb->dev;
	if (!dev)
		return 0;
	struct net *net = dev->nd_net.net;
	return net ? net->net_cookie : 0;
}

/* ---- reading headers: in the packet (tc) or in a copy (drops) ------------------------------ */

/* Headers are parsed within the first VXT_PEEK_BYTES; the mask keeps offsets provably bounded. */
#define VXT_OFF_MASK 0xff

/*
 * Where headers are read from. tc: the packet itself (data..end: skb->data, skb->data_end, the
 * linear part), checked against end as direct packet access wants. Drops: a copy of n bytes in
 * the scratch record. Every function below takes `pkt` as a constant, so each use compiles to
 * one of the two.
 */
struct vxt_cur {
	__u8 *data;
	__u8 *end; /* pkt */
	__u32 n;   /* copy */
};
#define VXT_PKT 1
#define VXT_COPY 0

/* Pointer to len bytes at off, or NULL when they are not there. The mask keeps the offset
 * bounded for the verifier whatever the compiler does with the check before it. */
static __always_inline void *vxt_ptr(const struct vxt_cur *c, const int pkt, __u32 off, const __u32 len)
{
	if (off > VXT_OFF_MASK)
		return NULL;
	if (pkt) {
		__u8 *p = c->data + (off & VXT_OFF_MASK);
		if (p + len > c->end)
			return NULL;
		return p;
	}
	if (off + len > c->n)
		return NULL;
	return c->data + (off & VXT_OFF_MASK);
}

struct vxt_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct vxt_udp_hdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__be16 check;
};

struct vxt_vxlan_hdr {
	__be32 flags;
	__be32 vni;
};

struct vxt_l4_hdr { /* the first 14 bytes any of TCP/UDP/ICMP need */
	__be16 w0;
	__be16 w1;
	__be32 w2;
	__be32 w3;
	__u8 b12;
	__u8 b13;
};

#define VXT_ETH_P_8021Q 0x8100
#define VXT_ETH_P_8021AD 0x88A8
#define VXT_TCP_FIN 0x01
#define VXT_TCP_SYN 0x02
#define VXT_TCP_RST 0x04

/*
 * What locating the headers found: where each header is, and the inner packet's fields the
 * filter, the flow counters and shedding need. The first IP header is the inner packet's unless
 * it carries VXLAN (UDP to a configured port, I flag set): then the encapsulated one is.
 */
struct vxt_peek {
	struct vxt_l3 inner; /* family, protocol, ttl, addresses; ports of TCP/UDP */
	__u32 l3;            /* offset of the first IP header */
	__u32 l4;            /* offset of its L4 header (0: none: a non-first fragment) */
	__u32 inner_eth;     /* offset of the encapsulated Ethernet header (0: not encapsulated) */
	__u32 inner_l3;
	__u32 inner_l4;      /* 0: none */
	__u32 hdr_len;       /* bytes up to the end of the inner L4 header (what GSO repeats per segment) */
	__u32 tcp_seq;
	__be16 proto;        /* ethertype of the first IP header */
	__be16 icmp_id;
	__be16 icmp_seq;
	__u8 family;         /* of the first IP header */
	__u8 protocol;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 has_l4;
};

/* Ethernet and up to two 802.1Q/802.1ad tags at off. Returns the L3 offset, or 0. */
static __always_inline __u32 vxt_eth(const struct vxt_cur *c, const int pkt, __u32 off, __be16 *proto)
{
	struct ethhdr *eth = vxt_ptr(c, pkt, off, sizeof(struct ethhdr));
	if (!eth)
		return 0;
	*proto = eth->h_proto;
	off += sizeof(*eth);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (*proto != bpf_htons(VXT_ETH_P_8021Q) && *proto != bpf_htons(VXT_ETH_P_8021AD))
			break;
		struct vxt_vlan_hdr *vlan = vxt_ptr(c, pkt, off, sizeof(struct vxt_vlan_hdr));
		if (!vlan)
			return 0;
		*proto = vlan->proto;
		off += sizeof(*vlan);
	}
	return off;
}

/* The IPv4 or IPv6 header at off into t (family, protocol, ttl, addresses; family stays 0 when it
 * is not IP or is cut short). Returns the L4 offset, or 0: not IP, cut short, a non-first
 * fragment. */
static __always_inline __u32 vxt_ip(const struct vxt_cur *c, const int pkt, __u32 off, __be16 proto, struct vxt_l3 *t)
{
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = vxt_ptr(c, pkt, off, sizeof(struct iphdr));
		if (!ip)
			return 0;
		__u32 ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return 0;
		t->family = 4;
		t->protocol = ip->protocol;
		t->ttl = ip->ttl;
		__u32 *s = (__u32 *)t->saddr, *d = (__u32 *)t->daddr;
		s[0] = ip->saddr;
		s[1] = s[2] = s[3] = 0;
		d[0] = ip->daddr;
		d[1] = d[2] = d[3] = 0;
		if (ip->frag_off & bpf_htons(0x1fff))
			return 0;
		return off + ihl;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = vxt_ptr(c, pkt, off, sizeof(struct ipv6hdr));
		if (!ip6)
			return 0;
		t->family = 6;
		t->protocol = ip6->nexthdr;
		t->ttl = ip6->hop_limit;
		__builtin_memcpy(t->saddr, &ip6->saddr, 16);
		__builtin_memcpy(t->daddr, &ip6->daddr, 16);
		return off + sizeof(*ip6);
	}
	return 0;
}

static __always_inline int vxt_is_vxlan_port(__be16 port)
{
#pragma unroll
	for (int i = 0; i < VXT_MAX_VXLAN_PORTS; i++)
		if (vxt_cfg.vxlan_ports[i] && vxt_cfg.vxlan_ports[i] == port)
			return 1;
	return 0;
}

/* The inner L4 header: ports, TCP seq/flags, ICMP type/code/echo id/seq; the header length. */
static __always_inline void vxt_l4(const struct vxt_cur *c, const int pkt, __u32 off, struct vxt_peek *pk)
{
	struct vxt_l3 *t = &pk->inner;
	struct vxt_l4_hdr *l4 = vxt_ptr(c, pkt, off, 8);
	if (!l4)
		return;
	switch (t->protocol) {
	case IPPROTO_TCP:
		l4 = vxt_ptr(c, pkt, off, sizeof(struct vxt_l4_hdr));
		if (!l4)
			return;
		t->sport = l4->w0;
		t->dport = l4->w1;
		pk->tcp_seq = l4->w2;
		pk->tcp_flags = l4->b13;
		pk->hdr_len = off + (l4->b12 >> 4) * 4;
		break;
	case IPPROTO_UDP:
		t->sport = l4->w0;
		t->dport = l4->w1;
		pk->hdr_len = off + 8;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		pk->icmp_type = ((__u8 *)l4)[0];
		pk->icmp_code = ((__u8 *)l4)[1];
		if ((t->protocol == IPPROTO_ICMP && (pk->icmp_type == 8 || pk->icmp_type == 0)) ||
		    (t->protocol == IPPROTO_ICMPV6 && (pk->icmp_type == 128 || pk->icmp_type == 129))) {
			pk->icmp_id = (__be16)(l4->w2 & 0xffff);
			pk->icmp_seq = (__be16)(l4->w2 >> 16);
		}
		pk->hdr_len = off + 8;
		break;
	default:
		return;
	}
	pk->has_l4 = 1;
}

/*
 * Locate the headers: the first IP packet, and when it is UDP to a VXLAN port with the I flag,
 * the encapsulated Ethernet frame and its IP packet, which becomes the inner packet. l3_start:
 * the bytes start at the IP header (a drop before L2), of ethertype l3_proto. Returns 1 when an
 * inner IP packet was found (VXLAN without one, e.g. ARP, is not a hop vxtrace follows).
 */
static __always_inline int vxt_locate(const struct vxt_cur *c, const int pkt, const int l3_start, __be16 l3_proto,
				      struct vxt_peek *pk)
{
	__be16 proto = l3_proto;
	__u32 off = 0;
	if (!l3_start) {
		off = vxt_eth(c, pkt, 0, &proto);
		if (!off)
			return 0;
	}
	__u32 l4 = vxt_ip(c, pkt, off, proto, &pk->inner);
	if (!pk->inner.family)
		return 0;
	pk->l3 = pk->inner_l3 = off;
	pk->l4 = pk->inner_l4 = l4;
	pk->proto = proto;
	pk->family = pk->inner.family;
	pk->protocol = pk->inner.protocol;
	if (l4 && pk->protocol == IPPROTO_UDP) {
		struct vxt_udp_hdr *udp = vxt_ptr(c, pkt, l4, sizeof(struct vxt_udp_hdr) + sizeof(struct vxt_vxlan_hdr));
		if (udp && vxt_is_vxlan_port(udp->dest)) {
			struct vxt_vxlan_hdr *vx = (void *)(udp + 1);
			if (vx->flags & bpf_htonl(0x08000000)) {
				__u32 ieth = l4 + sizeof(*udp) + sizeof(*vx);
				__be16 iproto = 0;
				__u32 il3 = vxt_eth(c, pkt, ieth, &iproto);
				if (!il3)
					return 0;
				pk->inner.family = 0;
				__u32 il4 = vxt_ip(c, pkt, il3, iproto, &pk->inner);
				if (!pk->inner.family)
					return 0;
				pk->inner_eth = ieth;
				pk->inner_l3 = il3;
				pk->inner_l4 = il4;
			}
		}
	}
	if (pk->inner_l4)
		vxt_l4(c, pkt, pk->inner_l4, pk);
	return 1;
}

/* The rest of the record header from the headers located: MACs, the outer headers, the inner IP
 * header's id, length, flags and flow label, the L4 fields. hop is zeroed. */
static __always_inline void vxt_fill(const struct vxt_cur *c, const int pkt, const int l3_start,
				     const struct vxt_peek *pk, struct vxt_hop *hop)
{
	hop->inner = pk->inner;
	hop->tcp_seq = pk->tcp_seq;
	hop->tcp_flags = pk->tcp_flags;
	hop->icmp_type = pk->icmp_type;
	hop->icmp_code = pk->icmp_code;
	hop->icmp_id = pk->icmp_id;
	hop->icmp_seq = pk->icmp_seq;
	if (pk->has_l4)
		hop->flags |= VXT_F_HAS_L4;

	if (!l3_start) {
		struct ethhdr *eth = vxt_ptr(c, pkt, 0, sizeof(struct ethhdr));
		if (eth && pk->inner_eth) {
			__builtin_memcpy(hop->outer_src_mac, eth->h_source, ETH_ALEN);
			__builtin_memcpy(hop->outer_dst_mac, eth->h_dest, ETH_ALEN);
		} else if (eth) {
			__builtin_memcpy(hop->inner_src_mac, eth->h_source, ETH_ALEN);
			__builtin_memcpy(hop->inner_dst_mac, eth->h_dest, ETH_ALEN);
		}
	}
	if (pk->inner_eth) {
		struct ethhdr *eth = vxt_ptr(c, pkt, pk->inner_eth, sizeof(struct ethhdr));
		if (eth) {
			__builtin_memcpy(hop->inner_dst_mac, eth->h_dest, ETH_ALEN);
			__builtin_memcpy(hop->inner_src_mac, eth->h_source, ETH_ALEN);
		}
		hop->flags |= VXT_F_ENCAP;
		vxt_ip(c, pkt, pk->l3, pk->proto, &hop->outer);
		struct vxt_udp_hdr *udp = vxt_ptr(c, pkt, pk->l4, sizeof(struct vxt_udp_hdr) + sizeof(struct vxt_vxlan_hdr));
		if (udp) {
			hop->outer.sport = udp->source;
			hop->outer.dport = udp->dest;
			hop->outer_udp_csum = udp->check;
			hop->vxlan_vni = ((struct vxt_vxlan_hdr *)(udp + 1))->vni;
		}
	}
	if (pk->inner.family == 4) {
		struct iphdr *ip = vxt_ptr(c, pkt, pk->inner_l3, sizeof(struct iphdr));
		if (ip) {
			hop->ip_id = ip->id;
			hop->ip_len = ip->tot_len;
			if (ip->frag_off & bpf_htons(0x4000))
				hop->flags |= VXT_F_DF;
			if (ip->frag_off & bpf_htons(0x1fff))
				hop->flags |= VXT_F_FRAGMENT;
		}
	} else {
		struct ipv6hdr *ip6 = vxt_ptr(c, pkt, pk->inner_l3, sizeof(struct ipv6hdr));
		if (ip6) {
			hop->ip_len = ip6->payload_len;
			__u8 *fl = (__u8 *)&hop->flow_label; /* the 20-bit label, network order */
			fl[1] = ip6->flow_lbl[0] & 0x0f;
			fl[2] = ip6->flow_lbl[1];
			fl[3] = ip6->flow_lbl[2];
		}
	}
}

/* ---- filter, counters, fingerprint --------------------------------------------------------- */

/* 0 when addr is in net/mask (4 network-order words), else not 0: no branches, so that the
 * verifier walks one path per rule. */
static __always_inline __u32 vxt_outside(const __u32 *addr, const __u32 *net, const __u32 *mask)
{
	return ((addr[0] & mask[0]) ^ net[0]) | ((addr[1] & mask[1]) ^ net[1]) | ((addr[2] & mask[2]) ^ net[2]) |
	       ((addr[3] & mask[3]) ^ net[3]);
}

/* 1 when the runtime filter f wants the inner packet t. */
static __always_inline int vxt_wanted(const struct vxt_filter *f, const struct vxt_l3 *t)
{
	if (f->mode == VXT_FILTER_ALL)
		return 1;
	if (f->mode != VXT_FILTER_RULES)
		return 0;
	if (f->npairs) {
		struct vxt_pair_key k;
		__builtin_memcpy(k.saddr, t->saddr, 16);
		__builtin_memcpy(k.daddr, t->daddr, 16);
		k.family = t->family;
		k._pad[0] = k._pad[1] = k._pad[2] = 0;
		struct vxt_pair_rule *p = bpf_map_lookup_elem(&vxt_pairs, &k);
		if (p && (!p->protocol || p->protocol == t->protocol) && (!p->port || p->port == t->sport || p->port == t->dport))
			return 1;
	}
	__u32 nrules = f->nrules;
	const __u32 *src = (const __u32 *)t->saddr, *dst = (const __u32 *)t->daddr;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < VXT_MAX_RULES; i++) {
		if (i >= nrules)
			break;
		const struct vxt_rule *r = &f->rules[i];
		if ((r->family && r->family != t->family) || (r->protocol && r->protocol != t->protocol) ||
		    (r->port && r->port != t->sport && r->port != t->dport))
			continue;
		__u32 ab, ba;
		if (t->family == 4) {
			/* IPv4: only the first word carries the address */
			__u32 s0 = src[0], d0 = dst[0];
			ab = ((s0 & r->a_mask[0]) ^ r->a_addr[0]) | ((d0 & r->b_mask[0]) ^ r->b_addr[0]);
			ba = ((s0 & r->b_mask[0]) ^ r->b_addr[0]) | ((d0 & r->a_mask[0]) ^ r->a_addr[0]);
		} else {
			ab = vxt_outside(src, r->a_addr, r->a_mask) | vxt_outside(dst, r->b_addr, r->b_mask);
			ba = vxt_outside(src, r->b_addr, r->b_mask) | vxt_outside(dst, r->a_addr, r->a_mask);
		}
		if (!ab || !ba)
			return 1;
	}
	return 0;
}

/* vxt_wanted() as a subprogram: for drops, whose many ways in would make the verifier walk the
 * rules once per way if it were inlined. */
static __noinline int vxt_wanted_call(const struct vxt_filter *f, const struct vxt_l3 *t)
{
	return vxt_wanted(f, t);
}

static const struct vxt_flow_stats vxt_flow_zero;

/* The counters of the packet's flow at this hook (created at its first packet), or NULL when
 * flows are not counted. */
static __always_inline struct vxt_flow_stats *vxt_flow(const struct vxt_peek *pk, __u64 cookie, __u32 ifindex,
						       __u8 kind, __u8 direction, __u32 reason)
{
	if (!vxt_cfg.count_flows)
		return NULL;
	struct vxt_flow_key k;
	__builtin_memcpy(k.saddr, pk->inner.saddr, 16);
	__builtin_memcpy(k.daddr, pk->inner.daddr, 16);
	k.netns_cookie = cookie;
	k.ifindex = ifindex;
	k.drop_reason = reason;
	k.sport = pk->inner.sport;
	k.dport = pk->inner.dport;
	if (pk->icmp_id || pk->icmp_seq)
		k.sport = pk->icmp_id;
	k.family = pk->inner.family;
	k.protocol = pk->inner.protocol;
	k.kind = kind;
	k.direction = direction;
	struct vxt_flow_stats *fs = bpf_map_lookup_elem(&vxt_flows, &k);
	if (fs)
		return fs;
	bpf_map_update_elem(&vxt_flows, &k, &vxt_flow_zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&vxt_flows, &k);
}

static __always_inline void vxt_count(struct vxt_flow_stats *fs, __u64 now, __u32 packets, __u64 bytes)
{
	fs->packets += packets;
	fs->bytes += bytes;
	if (!fs->first_ns)
		fs->first_ns = now;
	fs->last_ns = now;
}

/* How often a CPU asks the ring buffer how full it is: the answer reads the consumer's position,
 * a cache line user space writes from another CPU, so not for every packet. In this time the ring
 * buffer fills by far less than the half it has left when shedding starts. */
#define VXT_SHED_CHECK_NS 100000ULL

/* 1 while user space is behind: more than shed_above bytes wait in the ring buffer (as this CPU
 * last looked, at most VXT_SHED_CHECK_NS ago). */
static __always_inline int vxt_shedding(__u64 now)
{
	if (vxt_cfg.shed_above == ~0ULL)
		return 0;
	if (vxt_cfg.shed_above == 0)
		return 1;
	__u32 zero = 0;
	struct vxt_scratch *s = bpf_map_lookup_elem(&vxt_scratch, &zero);
	if (!s)
		return bpf_ringbuf_query(&vxt_events, BPF_RB_AVAIL_DATA) > vxt_cfg.shed_above;
	if (now - s->shed_checked_ns >= VXT_SHED_CHECK_NS) {
		s->shed_checked_ns = now;
		s->shedding = bpf_ringbuf_query(&vxt_events, BPF_RB_AVAIL_DATA) > vxt_cfg.shed_above;
	}
	return s->shedding;
}

/*
 * Whether a followed tc packet gets a record (1) or is shed (0): see vxt_config. Every packet is
 * counted in its window, shedding or not, so that every hook of a flow counts the same packets and
 * keeps the same ones: a packet kept is kept at each of its hops (its path is whole), but for the
 * few between two hooks when the window turns or shedding starts.
 */
static __always_inline int vxt_keep(struct vxt_flow_stats *fs, const struct vxt_peek *pk, __u64 now, __u16 *flags)
{
	__u64 index = 0;
	if (fs && vxt_cfg.shed_above != ~0ULL) {
		__u64 window = now / vxt_cfg.sample_window_ns;
		if (fs->window != window) {
			fs->window = window;
			fs->window_packets = 0;
		}
		index = fs->window_packets++;
	}
	if (!vxt_shedding(now))
		return 1;
	*flags |= VXT_F_SHEDDING;
	if (pk->inner.protocol == IPPROTO_ICMP || pk->inner.protocol == IPPROTO_ICMPV6)
		return 1;
	if (pk->inner.protocol == IPPROTO_TCP && (pk->tcp_flags & (VXT_TCP_SYN | VXT_TCP_FIN | VXT_TCP_RST)))
		return 1;
	if (!fs || index >= vxt_cfg.sample_first)
		return 0;
	/* Kept, but every hook (and CPU) counts its own window: near the limit another hook of the
	 * same packet may have counted more of the flow and shed it. Such a record says so (ICMP and
	 * SYN/FIN/RST above are kept at every hook, a flow far below the limit too). */
	if (index >= vxt_cfg.sample_first / 4)
		*flags |= VXT_F_SAMPLED;
	return 1;
}

/* FNV-1a (64 bit) over bytes. */
static __always_inline __u64 vxt_fnv(__u64 h, const __u8 *p, const int n)
{
#pragma unroll
	for (int i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* FNV-1a (64 bit) over struct vxt_fp_key (bpf/vxtrace.h): the one fingerprint function (user
 * space mirrors it in src/datapath/decode.ts for traces read back from files). The key's fields
 * are hashed in its order straight from the record, where they lie in runs of the same order
 * (_Static_asserts below), so that no key is built on the stack. */
static __always_inline __u64 vxt_fingerprint(const struct vxt_hop *hop)
{
	__u64 h = 0xcbf29ce484222325ULL;
	h = vxt_fnv(h, hop->inner.saddr, 36);                /* saddr, daddr, sport, dport */
	h = vxt_fnv(h, (const __u8 *)&hop->ip_id, 4);        /* ip_id, ip_len */
	h = vxt_fnv(h, (const __u8 *)&hop->tcp_seq, 8);      /* tcp_seq, flow_label */
	h = vxt_fnv(h, (const __u8 *)&hop->icmp_id, 4);      /* icmp_id, icmp_seq */
	h = vxt_fnv(h, &hop->inner.family, 2);               /* family, protocol */
	h = vxt_fnv(h, &hop->icmp_type, 1);
	const __u8 pad = 0;
	return vxt_fnv(h, &pad, 1);
}
_Static_assert(__builtin_offsetof(struct vxt_fp_key, sport) == 32 && __builtin_offsetof(struct vxt_l3, sport) == 32 &&
		       __builtin_offsetof(struct vxt_l3, dport) == 34 && __builtin_offsetof(struct vxt_fp_key, ip_id) == 36,
	       "fingerprint: saddr, daddr, sport, dport lie in this order in the key and the record");
_Static_assert(__builtin_offsetof(struct vxt_hop, ip_len) == __builtin_offsetof(struct vxt_hop, ip_id) + 2 &&
		       __builtin_offsetof(struct vxt_fp_key, ip_len) == __builtin_offsetof(struct vxt_fp_key, ip_id) + 2 &&
		       __builtin_offsetof(struct vxt_fp_key, tcp_seq) == __builtin_offsetof(struct vxt_fp_key, ip_id) + 4,
	       "fingerprint: ip_id, ip_len, then tcp_seq");
_Static_assert(__builtin_offsetof(struct vxt_hop, flow_label) == __builtin_offsetof(struct vxt_hop, tcp_seq) + 4 &&
		       __builtin_offsetof(struct vxt_fp_key, flow_label) == __builtin_offsetof(struct vxt_fp_key, tcp_seq) + 4 &&
		       __builtin_offsetof(struct vxt_fp_key, icmp_id) == __builtin_offsetof(struct vxt_fp_key, tcp_seq) + 8,
	       "fingerprint: tcp_seq, flow_label, then icmp_id");
_Static_assert(__builtin_offsetof(struct vxt_hop, icmp_seq) == __builtin_offsetof(struct vxt_hop, icmp_id) + 2 &&
		       __builtin_offsetof(struct vxt_fp_key, icmp_seq) == __builtin_offsetof(struct vxt_fp_key, icmp_id) + 2 &&
		       __builtin_offsetof(struct vxt_fp_key, family) == __builtin_offsetof(struct vxt_fp_key, icmp_id) + 4,
	       "fingerprint: icmp_id, icmp_seq, then family");
_Static_assert(__builtin_offsetof(struct vxt_l3, protocol) == __builtin_offsetof(struct vxt_l3, family) + 1 &&
		       __builtin_offsetof(struct vxt_fp_key, protocol) == __builtin_offsetof(struct vxt_fp_key, family) + 1 &&
		       __builtin_offsetof(struct vxt_fp_key, icmp_type) == __builtin_offsetof(struct vxt_fp_key, family) + 2 &&
		       sizeof(struct vxt_fp_key) == __builtin_offsetof(struct vxt_fp_key, family) + 4,
	       "fingerprint: family, protocol, icmp_type, one byte of padding");

static __always_inline struct vxt_stats *vxt_counters(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&vxt_stats, &zero);
}

static __always_inline struct vxt_filter *vxt_filter_now(void)
{
	__u32 zero = 0;
	struct vxt_filter *f = bpf_map_lookup_elem(&vxt_filter, &zero);
	return f && f->mode != VXT_FILTER_NONE ? f : NULL;
}

/* The ring buffer's wakeup flag for a record of `bytes`: the consumer is woken per batch, not
 * per record, counted per CPU (asking the ring buffer how much is pending would touch the
 * consumer's cache line on every record). User space also polls on a short timeout, so a lone
 * record waits at most that long. */
static __always_inline __u64 vxt_wakeup(__u32 bytes)
{
	__u32 zero = 0;
	struct vxt_scratch *s = bpf_map_lookup_elem(&vxt_scratch, &zero);
	if (!s)
		return 0;
	s->unsignalled += bytes;
	if (s->unsignalled < vxt_cfg.wakeup_bytes)
		return BPF_RB_NO_WAKEUP;
	s->unsignalled = 0;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline __u32 vxt_min(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

/* Frame bytes a record keeps of a frame of len bytes (vxt_config: snaplen, whole_up_to). */
static __always_inline __u32 vxt_cap(__u32 len)
{
	if (len <= vxt_cfg.whole_up_to)
		return len;
	return vxt_min(len, vxt_cfg.snaplen);
}

static __always_inline void vxt_counted(struct vxt_stats *st, struct vxt_flow_stats *fs, int written)
{
	if (written) {
		st->records++;
		if (fs)
			fs->records++;
	} else {
		st->lost++;
		if (fs)
			fs->lost++;
	}
}

/* ---- tc: the shared path -------------------------------------------------------------------- */

static __always_inline int vxt_l4_known(__u8 protocol)
{
	return protocol == IPPROTO_TCP || protocol == IPPROTO_UDP || protocol == IPPROTO_ICMP || protocol == IPPROTO_ICMPV6;
}

/* The headers were not all in the linear part: pull them there (counted: for a cloned skb the
 * kernel copies its head) and look again. A subprogram, off the common path. */
static __noinline int vxt_peek_pulled(struct __sk_buff *skb, struct vxt_peek *pk, struct vxt_stats *st)
{
	__u32 want = vxt_min(skb->len, VXT_PEEK_BYTES);
	if ((long)skb->data + want <= (long)skb->data_end)
		return 0;
	st->pulled++;
	if (bpf_skb_pull_data(skb, want))
		return 0;
	__builtin_memset(pk, 0, sizeof(*pk));
	struct vxt_cur c = { .data = (void *)(long)skb->data, .end = (void *)(long)skb->data_end };
	return vxt_locate(&c, VXT_PKT, 0, 0, pk);
}

/* Locate the headers in the packet; when they are not all in the linear part (no inner IP
 * packet found, or its L4 header cut short), pull them there and look again. */
static __always_inline int vxt_peek_skb(struct __sk_buff *skb, struct vxt_peek *pk, struct vxt_stats *st)
{
	struct vxt_cur c = { .data = (void *)(long)skb->data, .end = (void *)(long)skb->data_end };
	if (vxt_locate(&c, VXT_PKT, 0, 0, pk) && (pk->has_l4 || !pk->inner_l4 || !vxt_l4_known(pk->inner.protocol)))
		return 1;
	return vxt_peek_pulled(skb, pk, st);
}

struct vxt_tc_hop {
	__u64 now;
	__u64 cookie;
	__u32 len;
	__u32 cap;
	__u16 flags;
	__u8 direction;
};

/* Fills a reserved record in place: the header from the packet's headers, then `cap` frame bytes
 * copied once. (A subprogram: one copy of it serves every record size below.) */
static __noinline int vxt_fill_tc(struct __sk_buff *skb, const struct vxt_peek *pk, const struct vxt_tc_hop *t,
				  struct vxt_hop *hop, __u32 cap)
{
	__builtin_memset(hop, 0, sizeof(*hop));
	struct vxt_cur c = { .data = (void *)(long)skb->data, .end = (void *)(long)skb->data_end };
	vxt_fill(&c, VXT_PKT, 0, pk, hop);
	hop->flags |= t->flags;
	hop->kind = VXT_KIND_TC;
	hop->direction = t->direction;
	hop->ifindex = skb->ifindex;
	hop->skb_len = t->len;
	hop->gso_size = (__u16)skb->gso_size;
	hop->gso_segs = (__u16)skb->gso_segs;
	hop->netns_cookie = t->cookie;
	hop->ts_ns = t->now;
	hop->fingerprint = vxt_fingerprint(hop);
	if (bpf_skb_load_bytes(skb, 0, (void *)(hop + 1), cap))
		cap = 0;
	hop->cap_len = cap;
	return 0;
}

/* A record of up to `room` frame bytes: its size is a constant, as bpf_ringbuf_reserve() wants. */
#define VXT_RECORD(room)                                                                                  \
	if (t->cap <= (room)) {                                                                          \
		struct vxt_hop *hop = bpf_ringbuf_reserve(&vxt_events, sizeof(struct vxt_hop) + (room), 0); \
		if (!hop)                                                                                \
			return 0;                                                                        \
		__u32 cap = t->cap - 1;                                                                  \
		asm volatile("if %[c] <= %[m] goto +1; %[c] = %[m]" : [c] "+r"(cap) : [m] "i"((room) - 1)); \
		vxt_fill_tc(skb, pk, t, hop, cap + 1);                                                   \
		bpf_ringbuf_submit(hop, vxt_wakeup(sizeof(struct vxt_hop) + (room)));                     \
		return 1;                                                                                \
	}

/* 1 when the record was written, 0 when the ring buffer had no room. */
static __always_inline int vxt_record_tc(struct __sk_buff *skb, const struct vxt_peek *pk, const struct vxt_tc_hop *t)
{
	VXT_RECORD(64)
	VXT_RECORD(128)
	VXT_RECORD(192)
	VXT_RECORD(256)
	VXT_RECORD(512)
	VXT_RECORD(1024)
	VXT_RECORD(1536)
	VXT_RECORD(VXT_MAX_SNAPLEN)
	return 0;
}

/* A followed packet: count it, then decide whether it gets a record. A subprogram: the path of a
 * packet not followed (vxt_tc up to the filter) stays short and in few cache lines. */
static __noinline int vxt_follow_tc(struct __sk_buff *skb, const struct vxt_peek *pk, struct vxt_stats *st, __u8 direction)
{
	st->followed++;
	struct vxt_tc_hop t = { .now = bpf_ktime_get_ns(), .cookie = vxt_tc_netns_cookie(skb), .len = skb->len, .direction = direction };
	struct vxt_flow_stats *fs = vxt_flow(pk, t.cookie, skb->ifindex, VXT_KIND_TC, direction, 0);
	if (fs) {
		__u32 segs = skb->gso_segs;
		__u64 bytes = t.len;
		if (segs > 1)
			bytes += (__u64)(segs - 1) * pk->hdr_len;
		else
			segs = 1;
		vxt_count(fs, t.now, segs, bytes);
	}
	if (!vxt_keep(fs, pk, t.now, &t.flags)) {
		st->sampled++;
		if (fs)
			fs->sampled++;
		return 0;
	}
	t.cap = vxt_cap(t.len);
	vxt_counted(st, fs, vxt_record_tc(skb, pk, &t));
	return 0;
}

static __always_inline void vxt_tc(struct __sk_buff *skb, __u8 direction)
{
	struct vxt_stats *st = vxt_counters();
	if (!st)
		return;
	st->seen++;
	struct vxt_filter *f = vxt_filter_now();
	if (!f)
		return;
	struct vxt_peek pk = {};
	if (!vxt_peek_skb(skb, &pk, st) || !vxt_wanted(f, &pk.inner))
		return;
	vxt_follow_tc(skb, &pk, st, direction);
}

SEC("tc")
int vxt_tc_ingress(struct __sk_buff *skb)
{
	vxt_tc(skb, VXT_DIR_INGRESS);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int vxt_tc_egress(struct __sk_buff *skb)
{
	vxt_tc(skb, VXT_DIR_EGRESS);
	return TC_ACT_UNSPEC;
}

/* ---- drops: skb:kfree_skb ------------------------------------------------------------------- */

/* 1 for the reasons that are not drops (the kernel's values, from its BTF, in vxt_cfg). */
static __always_inline int vxt_not_a_drop(__u32 reason)
{
	return reason == vxt_cfg.reason_not_dropped_yet || reason == vxt_cfg.reason_consumed;
}

/* Every drop of a followed packet gets a record (never shed). */
static __always_inline void vxt_drop(struct sk_buff *skb, void *location, __u32 reason)
{
	if (!vxt_cfg.track_drops || vxt_not_a_drop(reason))
		return;
	struct vxt_filter *f = vxt_filter_now();
	struct vxt_stats *st = vxt_counters();
	if (!f || !st)
		return;
	st->drops_seen++;

	/* only drops in the network namespaces this tracer watches */
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	__u64 cookie = 0;
	int ifindex = 0;
	if (dev) {
		cookie = BPF_CORE_READ(dev, nd_net.net, net_cookie);
		ifindex = BPF_CORE_READ(dev, ifindex);
	} else {
		struct sock *sk = BPF_CORE_READ(skb, sk);
		if (sk)
			cookie = BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie);
	}
	if (!cookie || !bpf_map_lookup_elem(&vxt_netns, &cookie))
		return;

	__u32 zero = 0;
	struct vxt_scratch *s = bpf_map_lookup_elem(&vxt_scratch, &zero);
	if (!s)
		return;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 mac = BPF_CORE_READ(skb, mac_header);
	__u16 net = BPF_CORE_READ(skb, network_header);
	__u32 tail = BPF_CORE_READ(skb, tail);
	__u32 start;
	__be16 l3_proto = 0;
	int l3_start = 0;
	if (mac != (__u16)~0U && mac < net) {
		start = mac;
	} else if (net != (__u16)~0U) {
		start = net;
		l3_start = 1;
		l3_proto = BPF_CORE_READ(skb, protocol);
	} else {
		return;
	}
	if (tail <= start)
		return;
	__u32 avail = tail - start;
	__u32 n = vxt_min(avail, VXT_PEEK_BYTES);
	if (n < 20 || bpf_probe_read_kernel(s->data, vxt_len_bound(n), head + start))
		return;
	struct vxt_cur c = { .data = s->data, .n = n };
	struct vxt_peek pk = {};
	int found = l3_start ? vxt_locate(&c, VXT_COPY, 1, l3_proto, &pk) : vxt_locate(&c, VXT_COPY, 0, 0, &pk);
	if (!found || !vxt_wanted_call(f, &pk.inner))
		return;
	st->followed++;
	__u32 len = BPF_CORE_READ(skb, len);
	__u64 now = bpf_ktime_get_ns();
	__u8 direction = BPF_CORE_READ(skb, skb_iif) ? VXT_DIR_INGRESS : VXT_DIR_EGRESS;
	struct vxt_flow_stats *fs = vxt_flow(&pk, cookie, ifindex, VXT_KIND_DROP, direction, reason);
	if (fs)
		vxt_count(fs, now, 1, len);

	__u32 cap = vxt_cap(avail);
	if (cap > n && bpf_probe_read_kernel(s->data, vxt_len_bound(cap), head + start))
		cap = n;
	__builtin_memset(&s->hop, 0, sizeof(s->hop));
	if (l3_start) {
		s->hop.flags |= VXT_F_L3_START;
		vxt_fill(&c, VXT_COPY, 1, &pk, &s->hop);
	} else {
		vxt_fill(&c, VXT_COPY, 0, &pk, &s->hop);
	}
	if (cap > VXT_MAX_SNAPLEN)
		cap = VXT_MAX_SNAPLEN;
	cap = vxt_len_bound(cap);
	s->hop.cap_len = cap;
	s->hop.kind = VXT_KIND_DROP;
	s->hop.direction = direction;
	s->hop.ifindex = ifindex;
	s->hop.skb_len = len;
	s->hop.netns_cookie = cookie;
	s->hop.drop_reason = reason;
	s->hop.drop_location = (__u64)location;
	s->hop.ts_ns = now;
	s->hop.fingerprint = vxt_fingerprint(&s->hop);
	__u32 size = sizeof(s->hop) + cap;
	vxt_counted(st, fs, bpf_ringbuf_output(&vxt_events, s, size, vxt_wakeup(size)) == 0);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(vxt_kfree_skb, struct sk_buff *skb, void *location, int reason)
{
	vxt_drop(skb, location, (__u32)reason);
	return 0;
}

/* Fallback where the kernel's BTF has no btf_trace_kfree_skb (user space probes it before load);
 * loaded only when vxt_kfree_skb is not. */
SEC("raw_tp/kfree_skb")
int vxt_kfree_skb_raw(struct bpf_raw_tracepoint_args *ctx)
{
	vxt_drop((struct sk_buff *)ctx->args[0], (void *)ctx->args[1], (__u32)ctx->args[2]);
	return 0;
}
