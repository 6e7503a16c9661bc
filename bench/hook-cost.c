// What one tc hook costs per packet, measured in the kernel with BPF_PROG_TEST_RUN (no traffic,
// no other process in the way): loads a vxtrace BPF object (this tree's bpf/.output/vxtrace.bpf.o,
// or an older build's), follows one pod pair (10.244.1.2 <-> 10.244.2.2), and runs the ingress
// program REPEAT times on each of four frames: a pod's TCP packet and the same packet in VXLAN
// (as on an uplink), from a pair that is not followed and from the followed pair. The harness's
// own cost (a program that only returns) is measured the same way and subtracted.
//   hook-cost OBJECT [REPEAT]
// Prints one JSON line per frame: {"case":"...","ns":N}. Objects before the one-value filter
// (map vxt_rules) are set up with their own layout, so that two builds compare side by side.
//   hook-cost stats PROG_ID...
// The same on real traffic: turns on the kernel's run-time statistics of BPF programs
// (BPF_ENABLE_STATS, only while this process holds it), prints "ready", and when its stdin closes
// prints for each program {"id":N,"runs":R,"ns":T} over that time.
//   hook-cost empty NETNS:DEVICE...
// An empty tc program (returns TC_ACT_UNSPEC, as vxtrace's do) attached with tcx links at both
// directions of each device, as the tracer attaches its own: prints {"id":N} and "ready", holds
// the links until its stdin closes. What the hook mechanism costs with no code of vxtrace's in it.
//   hook-cost sibling PROG_ID NAME
// The id of the program called NAME that uses a map of program PROG_ID (the same BPF object: e.g.
// the tracer's vxt_kfree_skb next to its tc program), or 0.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vxtrace.h"

/* The filter layout before bpf/vxtrace.h had the rules in the filter's value. */
struct filter_v1 {
	__u32 mode;
	__u32 nrules;
};

static int build_frame(unsigned char *out, int vxlan, const char *src, const char *dst, int payload)
{
	unsigned char *p = out;
	int inner_len = 20 + 20 + payload;
	if (vxlan) {
		struct iphdr o = { .ihl = 5, .version = 4, .ttl = 64, .protocol = 17 };
		memset(p, 0x02, 12);
		p[12] = 0x08, p[13] = 0x00;
		p += 14;
		o.tot_len = htons(20 + 8 + 8 + 14 + inner_len);
		inet_pton(AF_INET, "192.168.1.121", &o.saddr);
		inet_pton(AF_INET, "192.168.1.122", &o.daddr);
		memcpy(p, &o, 20);
		p += 20;
		__be16 udp[4] = { htons(40000), htons(VXT_VXLAN_PORT_LINUX), htons(8 + 8 + 14 + inner_len), 0 };
		memcpy(p, udp, 8);
		p += 8;
		__be32 vx[2] = { htonl(0x08000000), htonl(1 << 8) };
		memcpy(p, vx, 8);
		p += 8;
	}
	memset(p, 0x0a, 12);
	p[12] = 0x08, p[13] = 0x00;
	p += 14;
	struct iphdr ip = { .ihl = 5, .version = 4, .ttl = 64, .protocol = 6, .id = htons(7) };
	ip.tot_len = htons(inner_len);
	inet_pton(AF_INET, src, &ip.saddr);
	inet_pton(AF_INET, dst, &ip.daddr);
	memcpy(p, &ip, 20);
	p += 20;
	unsigned char tcp[20] = { 0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff };
	memcpy(p, tcp, 20);
	p += 20;
	memset(p, 0x55, payload);
	p += payload;
	return (int)(p - out);
}

/* The least of 25 runs' average ns per packet: the machine's other work only adds. */
static double run(int fd, const void *frame, int len, int repeat)
{
	double best = 1e9;
	for (int i = 0; i < 25; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = len, .repeat = repeat);
		if (bpf_prog_test_run_opts(fd, &o) != 0) {
			fprintf(stderr, "hook-cost: test run: %s\n", strerror(errno));
			exit(1);
		}
		if (o.duration < best)
			best = o.duration;
	}
	return best;
}

/* by_hash: the new layout's pairs map (as the addon fills it beyond 4 rules); else one rule in place. */
static void set_filter(struct bpf_object *obj, const char *a, const char *b, int by_hash)
{
	__u32 zero = 0;
	int filter = bpf_map__fd(bpf_object__find_map_by_name(obj, "vxt_filter"));
	struct bpf_map *rules = bpf_object__find_map_by_name(obj, "vxt_rules");
	__u32 aa, bb;
	inet_pton(AF_INET, a, &aa);
	inet_pton(AF_INET, b, &bb);
	if (rules || !by_hash) {
		struct vxt_rule r = { .family = 4 };
		r.a_addr[0] = aa, r.b_addr[0] = bb, r.a_mask[0] = r.b_mask[0] = 0xffffffff;
		struct filter_v1 f1 = { VXT_FILTER_RULES, 1 };
		static struct vxt_filter f = { .mode = VXT_FILTER_RULES, .nrules = 1 };
		f.rules[0] = r;
		if (rules ? bpf_map_update_elem(bpf_map__fd(rules), &zero, &r, BPF_ANY) || bpf_map_update_elem(filter, &zero, &f1, BPF_ANY)
			  : bpf_map_update_elem(filter, &zero, &f, BPF_ANY)) {
			fprintf(stderr, "hook-cost: set filter: %s\n", strerror(errno));
			exit(1);
		}
		return;
	}
	int pairs = bpf_map__fd(bpf_object__find_map_by_name(obj, "vxt_pairs"));
	struct vxt_pair_key k = { .family = 4 };
	struct vxt_pair_rule any = {};
	memcpy(k.saddr, &aa, 4), memcpy(k.daddr, &bb, 4);
	int err = bpf_map_update_elem(pairs, &k, &any, BPF_ANY);
	memset(&k, 0, sizeof k), k.family = 4;
	memcpy(k.saddr, &bb, 4), memcpy(k.daddr, &aa, 4);
	err = err || bpf_map_update_elem(pairs, &k, &any, BPF_ANY);
	static struct vxt_filter f;
	f.mode = VXT_FILTER_RULES, f.npairs = 2;
	if (err || bpf_map_update_elem(filter, &zero, &f, BPF_ANY)) {
		fprintf(stderr, "hook-cost: set filter: %s\n", strerror(errno));
		exit(1);
	}
}

static int prog_stats(int argc, char **argv)
{
	int n = argc - 2;
	int fds[n];
	struct bpf_prog_info before[n];
	for (int i = 0; i < n; i++) {
		fds[i] = bpf_prog_get_fd_by_id(atoi(argv[i + 2]));
		if (fds[i] < 0) {
			fprintf(stderr, "hook-cost: program %s: %s\n", argv[i + 2], strerror(errno));
			return 1;
		}
	}
	int stats = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats < 0) {
		fprintf(stderr, "hook-cost: enable BPF run-time statistics: %s\n", strerror(errno));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		__u32 len = sizeof before[i];
		memset(&before[i], 0, len);
		bpf_obj_get_info_by_fd(fds[i], &before[i], &len);
	}
	printf("ready\n");
	fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof buf) > 0)
		;
	for (int i = 0; i < n; i++) {
		struct bpf_prog_info after;
		__u32 len = sizeof after;
		memset(&after, 0, len);
		bpf_obj_get_info_by_fd(fds[i], &after, &len);
		printf("{\"id\":%s,\"runs\":%llu,\"ns\":%llu}\n", argv[i + 2], (unsigned long long)(after.run_cnt - before[i].run_cnt),
		       (unsigned long long)(after.run_time_ns - before[i].run_time_ns));
	}
	close(stats);
	return 0;
}

/* The empty program: r0 = TC_ACT_UNSPEC (-1); exit. */
static int load_empty(const char *name, int ret)
{
	struct bpf_insn insns[] = {
		{ .code = 0xb7, .dst_reg = 0, .imm = ret }, /* r0 = ret */
		{ .code = 0x95 },                            /* exit */
	};
	return bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, name, "GPL", insns, 2, NULL);
}

static int empty_hooks(int argc, char **argv)
{
	int prog = load_empty("vxt_empty_tc", -1);
	if (prog < 0) {
		fprintf(stderr, "hook-cost: load the empty program: %s\n", strerror(errno));
		return 1;
	}
	int orig = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	for (int i = 2; i < argc; i++) {
		char spec[256], path[320];
		snprintf(spec, sizeof spec, "%s", argv[i]);
		char *colon = strchr(spec, ':');
		if (!colon) {
			fprintf(stderr, "hook-cost: %s is not NETNS:DEVICE\n", argv[i]);
			return 2;
		}
		*colon = 0;
		snprintf(path, sizeof path, "/run/netns/%s", spec);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
			fprintf(stderr, "hook-cost: enter netns %s: %s\n", spec, strerror(errno));
			return 1;
		}
		close(fd);
		int ifindex = (int)if_nametoindex(colon + 1);
		if (!ifindex || bpf_link_create(prog, ifindex, (enum bpf_attach_type)46 /* BPF_TCX_INGRESS */, NULL) < 0 ||
		    bpf_link_create(prog, ifindex, (enum bpf_attach_type)47 /* BPF_TCX_EGRESS */, NULL) < 0) {
			fprintf(stderr, "hook-cost: attach %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		setns(orig, CLONE_NEWNET);
	}
	struct bpf_prog_info info;
	__u32 len = sizeof info;
	memset(&info, 0, len);
	bpf_obj_get_info_by_fd(prog, &info, &len);
	printf("{\"id\":%u}\nready\n", info.id);
	fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof buf) > 0)
		;
	return 0;
}

static int sibling(const char *id, const char *name)
{
	int fd = bpf_prog_get_fd_by_id(atoi(id));
	if (fd < 0) {
		fprintf(stderr, "hook-cost: program %s: %s\n", id, strerror(errno));
		return 1;
	}
	__u32 maps[16], nmaps = 16;
	struct bpf_prog_info info;
	__u32 len = sizeof info;
	memset(&info, 0, len);
	info.nr_map_ids = nmaps;
	info.map_ids = (__u64)(unsigned long)maps;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
		fprintf(stderr, "hook-cost: program %s: %s\n", id, strerror(errno));
		return 1;
	}
	nmaps = info.nr_map_ids < 16 ? info.nr_map_ids : 16;
	__u32 next = 0;
	while (bpf_prog_get_next_id(next, &next) == 0) {
		int other = bpf_prog_get_fd_by_id(next);
		if (other < 0)
			continue;
		__u32 omaps[16];
		struct bpf_prog_info oi;
		__u32 olen = sizeof oi;
		memset(&oi, 0, olen);
		oi.nr_map_ids = 16;
		oi.map_ids = (__u64)(unsigned long)omaps;
		int ok = bpf_obj_get_info_by_fd(other, &oi, &olen) == 0 && strcmp(oi.name, name) == 0;
		close(other);
		for (__u32 a = 0; ok && a < (oi.nr_map_ids < 16 ? oi.nr_map_ids : 16); a++)
			for (__u32 b = 0; b < nmaps; b++)
				if (omaps[a] == maps[b]) {
					printf("%u\n", next);
					return 0;
				}
	}
	printf("0\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "stats") == 0)
		return prog_stats(argc, argv);
	if (argc >= 3 && strcmp(argv[1], "empty") == 0)
		return empty_hooks(argc, argv);
	if (argc == 4 && strcmp(argv[1], "sibling") == 0)
		return sibling(argv[2], argv[3]);
	if (argc < 2) {
		fprintf(stderr, "usage: hook-cost OBJECT [REPEAT]\n");
		return 2;
	}
	int repeat = argc > 2 ? atoi(argv[2]) : 20000;
	libbpf_set_print(NULL);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "hook-cost: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	bpf_program__set_autoload(bpf_object__find_program_by_name(obj, "vxt_kfree_skb"), false);
	bpf_program__set_autoload(bpf_object__find_program_by_name(obj, "vxt_kfree_skb_raw"), false);
	/* room for every record of the followed runs: none is lost, none is consumed */
	bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "vxt_events"), 256u << 20);
	if (bpf_object__load(obj)) {
		fprintf(stderr, "hook-cost: load %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	int prog = bpf_program__fd(bpf_object__find_program_by_name(obj, "vxt_tc_ingress"));
	int empty = load_empty("vxt_empty", 0);
	if (empty < 0) {
		fprintf(stderr, "hook-cost: load the empty program: %s\n", strerror(errno));
		return 1;
	}
	set_filter(obj, "10.244.1.2", "10.244.2.2", 0);
	static unsigned char frame[4096];
	struct {
		const char *name;
		int vxlan;
		const char *src, *dst;
		int reps;
	} cases[] = {
		{ "not followed, pod packet", 0, "10.244.1.3", "10.244.2.3", repeat },
		{ "not followed, VXLAN packet", 1, "10.244.1.3", "10.244.2.3", repeat },
		{ "followed, pod packet", 0, "10.244.1.2", "10.244.2.2", repeat / 8 },
		{ "followed, VXLAN packet", 1, "10.244.1.2", "10.244.2.2", repeat / 8 },
	};
	for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int len = build_frame(frame, cases[i].vxlan, cases[i].src, cases[i].dst, 1400);
		double harness = run(empty, frame, len, cases[i].reps);
		double ns = run(prog, frame, len, cases[i].reps);
		printf("{\"case\":\"%s\",\"ns\":%.1f,\"harness\":%.1f}\n", cases[i].name, ns - harness, harness);
	}
	if (!bpf_object__find_map_by_name(obj, "vxt_rules")) {
		/* the pair in the hash map, as with more than a few rules */
		set_filter(obj, "10.244.1.2", "10.244.2.2", 1);
		int len = build_frame(frame, 0, "10.244.1.3", "10.244.2.3", 1400);
		double harness = run(empty, frame, len, repeat);
		double ns = run(prog, frame, len, repeat);
		printf("{\"case\":\"not followed, pod packet, pairs by hash\",\"ns\":%.1f,\"harness\":%.1f}\n", ns - harness, harness);
	}
	bpf_object__close(obj);
	return 0;
}
