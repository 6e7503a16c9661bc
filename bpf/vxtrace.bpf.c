// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * vxtrace datapath: tc programs (one per direction) on the pod bridge, the VXLAN device and the
 * uplinks of every node, plus skb:kfree_skb for drops. Each hook is a thin function naming its
 * hook point and calling one shared path: copy the first bytes of the packet into a per-CPU
 * scratch record, parse it there (outer Ethernet/802.1Q/IP/UDP/VXLAN, inner Ethernet/IP/L4),
 * ask the runtime filter whether it is wanted, fingerprint the inner packet and hand the record
 * to user space through the ring buffer. Every tc program returns TC_ACT_UNSPEC (tcx: TCX_NEXT)
 * on every path: an observer never changes traffic.
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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VXT_MAX_RULES);
	__type(key, __u32);
	__type(value, struct vxt_rule);
} vxt_rules SEC(".maps");

/* Network namespaces (by cookie) whose drops are reported: those this tracer watches. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u32);
} vxt_netns SEC(".maps");

/* The record being built: header, then frame bytes. The data area is twice the largest snaplen
 * so that any length masked with VXT_LEN_MASK is provably inside it. */
#define VXT_LEN_MASK (2 * VXT_MAX_SNAPLEN - 1)
struct vxt_scratch {
	struct vxt_hop hop;
	__u8 data[2 * VXT_MAX_SNAPLEN];
	__u32 unsignalled; /* bytes this CPU wrote since it last woke the consumer */
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
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	return BPF_CORE_READ(skb, dev, nd_net.net, net_cookie);
}

/* ---- parsers: bounded, on the scratch copy -------------------------------------------------- */

/* Headers are parsed within the first VXT_PEEK_BYTES; the mask keeps offsets provably bounded. */
#define VXT_OFF_MASK 0xff

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

/* 1 when len bytes at off were captured. Checked before every vxt_at(). */
static __always_inline int vxt_fits(__u32 off, __u32 len, __u32 n)
{
	return off <= VXT_OFF_MASK && off + len <= n;
}

/* Pointer to offset off of the scratch data. The mask keeps it inside the map value whatever
 * the compiler does with the vxt_fits() check, so the verifier never sees a NULL to track. */
#define vxt_at(s, off) ((void *)((s)->data + ((off) & VXT_OFF_MASK)))

/* Ethernet and up to two 802.1Q/802.1ad tags. Returns the L3 offset, or 0. */
static __always_inline __u32 vxt_parse_eth(struct vxt_scratch *s, __u32 off, __u32 n,
					   __u8 *src_mac, __u8 *dst_mac, __be16 *proto)
{
	if (!vxt_fits(off, sizeof(struct ethhdr), n))
		return 0;
	struct ethhdr *eth = vxt_at(s, off);
	__builtin_memcpy(src_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(dst_mac, eth->h_dest, ETH_ALEN);
	*proto = eth->h_proto;
	off += sizeof(*eth);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (*proto != bpf_htons(VXT_ETH_P_8021Q) && *proto != bpf_htons(VXT_ETH_P_8021AD))
			break;
		if (!vxt_fits(off, sizeof(struct vxt_vlan_hdr), n))
			return 0;
		struct vxt_vlan_hdr *vlan = vxt_at(s, off);
		*proto = vlan->proto;
		off += sizeof(*vlan);
	}
	return off;
}

/* IPv4 or IPv6 header into t, and the inner-packet fields of hop it carries (IPv4 id, length,
 * DF, fragment; IPv6 length, flow label): the caller clears those when the header turns out to
 * be an outer one. Returns the L4 offset, or 0 when not IP, truncated or a non-first fragment. */
static __always_inline __u32 vxt_parse_ip(struct vxt_scratch *s, __u32 off, __u32 n, __be16 proto,
					  struct vxt_l3 *t, struct vxt_hop *hop)
{
	if (proto == bpf_htons(ETH_P_IP)) {
		if (!vxt_fits(off, sizeof(struct iphdr), n))
			return 0;
		struct iphdr *ip = vxt_at(s, off);
		__u32 ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return 0;
		t->family = 4;
		t->protocol = ip->protocol;
		t->ttl = ip->ttl;
		__builtin_memcpy(t->saddr, &ip->saddr, 4);
		__builtin_memcpy(t->daddr, &ip->daddr, 4);
		hop->ip_id = ip->id;
		hop->ip_len = ip->tot_len;
		if (ip->frag_off & bpf_htons(0x4000))
			hop->flags |= VXT_F_DF;
		if (ip->frag_off & bpf_htons(0x1fff)) {
			hop->flags |= VXT_F_FRAGMENT;
			return 0;
		}
		return off + ihl;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		if (!vxt_fits(off, sizeof(struct ipv6hdr), n))
			return 0;
		struct ipv6hdr *ip6 = vxt_at(s, off);
		t->family = 6;
		t->protocol = ip6->nexthdr;
		t->ttl = ip6->hop_limit;
		__builtin_memcpy(t->saddr, &ip6->saddr, 16);
		__builtin_memcpy(t->daddr, &ip6->daddr, 16);
		hop->ip_len = ip6->payload_len;
		__u8 *fl = (__u8 *)&hop->flow_label; /* the 20-bit label, network order */
		fl[0] = 0;
		fl[1] = ip6->flow_lbl[0] & 0x0f;
		fl[2] = ip6->flow_lbl[1];
		fl[3] = ip6->flow_lbl[2];
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

/* Inner L4: ports, ICMP type/code/id/seq, TCP seq/flags. */
static __always_inline void vxt_parse_inner_l4(struct vxt_scratch *s, __u32 off, __u32 n,
					       struct vxt_hop *hop)
{
	struct vxt_l3 *t = &hop->inner;
	if (!vxt_fits(off, 8, n))
		return;
	if (t->protocol == IPPROTO_TCP && !vxt_fits(off, sizeof(struct vxt_l4_hdr), n))
		return;
	struct vxt_l4_hdr *l4 = vxt_at(s, off);
	switch (t->protocol) {
	case IPPROTO_TCP:
		t->sport = l4->w0;
		t->dport = l4->w1;
		hop->tcp_seq = l4->w2;
		hop->tcp_flags = l4->b13;
		break;
	case IPPROTO_UDP:
		t->sport = l4->w0;
		t->dport = l4->w1;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		hop->icmp_type = ((__u8 *)l4)[0];
		hop->icmp_code = ((__u8 *)l4)[1];
		if ((t->protocol == IPPROTO_ICMP && (hop->icmp_type == 8 || hop->icmp_type == 0)) ||
		    (t->protocol == IPPROTO_ICMPV6 && (hop->icmp_type == 128 || hop->icmp_type == 129))) {
			hop->icmp_id = (__be16)(l4->w2 & 0xffff);
			hop->icmp_seq = (__be16)(l4->w2 >> 16);
		}
		break;
	default:
		return;
	}
	hop->flags |= VXT_F_HAS_L4;
}

/*
 * Parse the captured bytes: the first IP packet, and when it is UDP to a VXLAN port with the
 * I flag, the encapsulated Ethernet frame and its IP packet, which becomes the inner packet.
 * Returns 1 when an inner IP packet was found.
 */
static __always_inline int vxt_parse(struct vxt_scratch *s, __u32 n, __be16 l3_proto)
{
	struct vxt_hop *hop = &s->hop;
	struct vxt_l3 first = {};
	__u8 src_mac[ETH_ALEN] = {}, dst_mac[ETH_ALEN] = {};
	__be16 proto = l3_proto;
	__u32 off = 0;

	if (!(hop->flags & VXT_F_L3_START)) {
		off = vxt_parse_eth(s, 0, n, src_mac, dst_mac, &proto);
		if (!off)
			return 0;
	}
	__u32 l4 = vxt_parse_ip(s, off, n, proto, &first, hop);
	if (!first.family)
		return 0;

	if (l4 && first.protocol == IPPROTO_UDP) {
		struct vxt_udp_hdr *udp = vxt_at(s, l4);
		if (vxt_fits(l4, sizeof(*udp) + sizeof(struct vxt_vxlan_hdr), n) &&
		    vxt_is_vxlan_port(udp->dest)) {
			struct vxt_vxlan_hdr *vx = vxt_at(s, l4 + sizeof(*udp));
			if (vx->flags & bpf_htonl(0x08000000)) {
				__be16 iproto = 0;
				__u32 ioff = vxt_parse_eth(s, l4 + sizeof(*udp) + sizeof(*vx), n,
							   hop->inner_src_mac, hop->inner_dst_mac, &iproto);
				if (ioff) {
					struct vxt_l3 inner = {};
					/* the first header was the outer one: its fields are not the inner's */
					hop->ip_id = 0;
					hop->ip_len = 0;
					hop->flow_label = 0;
					hop->flags &= ~(VXT_F_DF | VXT_F_FRAGMENT);
					__u32 il4 = vxt_parse_ip(s, ioff, n, iproto, &inner, hop);
					if (inner.family) {
						hop->flags |= VXT_F_ENCAP;
						hop->vxlan_vni = vx->vni;
						hop->outer_udp_csum = udp->check;
						first.sport = udp->source;
						first.dport = udp->dest;
						hop->outer = first;
						__builtin_memcpy(hop->outer_src_mac, src_mac, ETH_ALEN);
						__builtin_memcpy(hop->outer_dst_mac, dst_mac, ETH_ALEN);
						hop->inner = inner;
						if (il4)
							vxt_parse_inner_l4(s, il4, n, hop);
						return 1;
					}
				}
				/* VXLAN without an inner IP packet (e.g. ARP): not a hop we follow */
				return 0;
			}
		}
	}
	hop->inner = first;
	__builtin_memcpy(hop->inner_src_mac, src_mac, ETH_ALEN);
	__builtin_memcpy(hop->inner_dst_mac, dst_mac, ETH_ALEN);
	if (l4)
		vxt_parse_inner_l4(s, l4, n, hop);
	return 1;
}

/* ---- filter, fingerprint, emit -------------------------------------------------------------- */

static __always_inline int vxt_in(const __u32 *addr, const __u32 *net, const __u32 *mask)
{
	return (addr[0] & mask[0]) == net[0] && (addr[1] & mask[1]) == net[1] &&
	       (addr[2] & mask[2]) == net[2] && (addr[3] & mask[3]) == net[3];
}

/* 1 when the runtime filter wants this inner packet. */
static __always_inline int vxt_wanted(const struct vxt_hop *hop)
{
	__u32 zero = 0;
	struct vxt_filter *f = bpf_map_lookup_elem(&vxt_filter, &zero);
	if (!f || f->mode == VXT_FILTER_NONE)
		return 0;
	if (f->mode == VXT_FILTER_ALL)
		return 1;
	__u32 nrules = f->nrules;
	const struct vxt_l3 *t = &hop->inner;
	__u32 src[4], dst[4];
	__builtin_memcpy(src, t->saddr, 16);
	__builtin_memcpy(dst, t->daddr, 16);
	for (__u32 i = 0; i < VXT_MAX_RULES; i++) {
		if (i >= nrules)
			break;
		__u32 k = i;
		struct vxt_rule *r = bpf_map_lookup_elem(&vxt_rules, &k);
		if (!r)
			break;
		if (r->family && r->family != t->family)
			continue;
		if (r->protocol && r->protocol != t->protocol)
			continue;
		if (r->port && r->port != t->sport && r->port != t->dport)
			continue;
		if ((vxt_in(src, r->a_addr, r->a_mask) && vxt_in(dst, r->b_addr, r->b_mask)) ||
		    (vxt_in(src, r->b_addr, r->b_mask) && vxt_in(dst, r->a_addr, r->a_mask)))
			return 1;
	}
	return 0;
}

/* FNV-1a (64 bit) over struct vxt_fp_key (bpf/vxtrace.h): the one fingerprint function (user
 * space mirrors it in src/datapath/decode.ts for traces read back from files). */
static __always_inline __u64 vxt_fingerprint(const struct vxt_hop *hop)
{
	struct vxt_fp_key key = {};
	__builtin_memcpy(key.saddr, hop->inner.saddr, 16);
	__builtin_memcpy(key.daddr, hop->inner.daddr, 16);
	key.sport = hop->inner.sport;
	key.dport = hop->inner.dport;
	key.ip_id = hop->ip_id;
	key.ip_len = hop->ip_len;
	key.tcp_seq = hop->tcp_seq;
	key.flow_label = hop->flow_label;
	key.icmp_id = hop->icmp_id;
	key.icmp_seq = hop->icmp_seq;
	key.family = hop->inner.family;
	key.protocol = hop->inner.protocol;
	key.icmp_type = hop->icmp_type;

	const __u8 *p = (const __u8 *)&key;
	__u64 h = 0xcbf29ce484222325ULL;
#pragma unroll
	for (int i = 0; i < (int)sizeof(key); i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* 0 when the filter emits nothing: then a hook costs one map lookup, no copy, no parse. */
static __always_inline int vxt_active(void)
{
	__u32 zero = 0;
	struct vxt_filter *f = bpf_map_lookup_elem(&vxt_filter, &zero);
	return f && f->mode != VXT_FILTER_NONE;
}

static __always_inline struct vxt_stats *vxt_counters(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&vxt_stats, &zero);
}

static __always_inline void vxt_emit(struct vxt_scratch *s, __u32 cap)
{
	struct vxt_stats *st = vxt_counters();
	if (cap > VXT_MAX_SNAPLEN)
		cap = VXT_MAX_SNAPLEN;
	cap = vxt_len_bound(cap);
	s->hop.cap_len = cap;
	s->hop.fingerprint = vxt_fingerprint(&s->hop);
	s->hop.ts_ns = bpf_ktime_get_ns();
	/* Wake the consumer per batch, not per record, counted per CPU (asking the ring buffer how
	 * much is pending would touch the consumer's cache line on every record). User space also
	 * polls on a short timeout, so a lone record waits at most that long. */
	__u64 wake = BPF_RB_NO_WAKEUP;
	s->unsignalled += sizeof(s->hop) + cap;
	if (s->unsignalled >= vxt_cfg.wakeup_bytes) {
		s->unsignalled = 0;
		wake = BPF_RB_FORCE_WAKEUP;
	}
	long err = bpf_ringbuf_output(&vxt_events, s, sizeof(s->hop) + cap, wake);
	if (st) {
		if (err)
			__sync_fetch_and_add(&st->lost, 1);
		else
			__sync_fetch_and_add(&st->records, 1);
	}
}

static __always_inline struct vxt_scratch *vxt_scratch_get(void)
{
	__u32 zero = 0;
	struct vxt_scratch *s = bpf_map_lookup_elem(&vxt_scratch, &zero);
	if (s)
		__builtin_memset(&s->hop, 0, sizeof(s->hop));
	return s;
}

static __always_inline __u32 vxt_min(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

/* ---- tc: the shared path -------------------------------------------------------------------- */

static __always_inline void vxt_tc(struct __sk_buff *skb, __u8 direction)
{
	struct vxt_stats *st = vxt_counters();
	if (st)
		st->seen++;
	if (!vxt_active())
		return;

	struct vxt_scratch *s = vxt_scratch_get();
	if (!s)
		return;
	__u32 len = skb->len;
	__u32 n = vxt_min(len, VXT_PEEK_BYTES);
	if (n < ETH_HLEN)
		return;
	if (bpf_skb_load_bytes(skb, 0, s->data, vxt_len_bound(n - 1) + 1))
		return;
	if (!vxt_parse(s, n, 0) || !vxt_wanted(&s->hop))
		return;

	__u32 cap = vxt_min(len, vxt_cfg.snaplen);
	if (cap > n && bpf_skb_load_bytes(skb, 0, s->data, vxt_len_bound(cap - 1) + 1))
		cap = n;
	s->hop.kind = VXT_KIND_TC;
	s->hop.direction = direction;
	s->hop.ifindex = skb->ifindex;
	s->hop.skb_len = len;
	s->hop.gso_size = (__u16)skb->gso_size;
	s->hop.gso_segs = (__u16)skb->gso_segs;
	s->hop.netns_cookie = vxt_tc_netns_cookie(skb);
	vxt_emit(s, cap);
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

static __always_inline void vxt_drop(struct sk_buff *skb, void *location, __u32 reason)
{
	if (!vxt_cfg.track_drops || vxt_not_a_drop(reason) || !vxt_active())
		return;
	struct vxt_stats *st = vxt_counters();
	if (st)
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

	struct vxt_scratch *s = vxt_scratch_get();
	if (!s)
		return;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 mac = BPF_CORE_READ(skb, mac_header);
	__u16 net = BPF_CORE_READ(skb, network_header);
	__u32 tail = BPF_CORE_READ(skb, tail);
	__u32 start;
	__be16 l3_proto = 0;
	if (mac != (__u16)~0U && mac < net) {
		start = mac;
	} else if (net != (__u16)~0U) {
		start = net;
		s->hop.flags |= VXT_F_L3_START;
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
	if (!vxt_parse(s, n, l3_proto) || !vxt_wanted(&s->hop))
		return;
	__u32 cap = vxt_min(avail, vxt_cfg.snaplen);
	if (cap > n && bpf_probe_read_kernel(s->data, vxt_len_bound(cap), head + start))
		cap = n;
	s->hop.kind = VXT_KIND_DROP;
	s->hop.direction = BPF_CORE_READ(skb, skb_iif) ? VXT_DIR_INGRESS : VXT_DIR_EGRESS;
	s->hop.ifindex = ifindex;
	s->hop.skb_len = BPF_CORE_READ(skb, len);
	s->hop.netns_cookie = cookie;
	s->hop.drop_reason = reason;
	s->hop.drop_location = (__u64)location;
	vxt_emit(s, cap);
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
