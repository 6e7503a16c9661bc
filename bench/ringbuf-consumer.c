// The plain C baseline for bench/datapath.ts: loads the same BPF object (bpf/.output/vxtrace.bpf.o),
// emits everything, attaches tcx links to the given devices, and only counts the records it
// consumes from the ring buffer: the most a consumer of this ring buffer can take.
//   ringbuf-consumer OBJECT SECONDS RING_BYTES NETNS:DEVICE...
// Prints one JSON line: {"records":N,"seconds":S,"lost":L}.
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vxtrace.h"

static unsigned long long records;

static int on_sample(void *ctx, void *data, size_t size)
{
	(void)ctx;
	(void)data;
	(void)size;
	records++;
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int enter(const char *netns)
{
	char path[320];
	snprintf(path, sizeof path, "/run/netns/%s", netns);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
		fprintf(stderr, "ringbuf-consumer: enter netns %s: %s\n", netns, strerror(errno));
		exit(1);
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: ringbuf-consumer OBJECT SECONDS RING_BYTES NETNS:DEVICE...\n");
		return 2;
	}
	double seconds = atof(argv[2]);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "ringbuf-consumer: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	bpf_program__set_autoload(bpf_object__find_program_by_name(obj, "vxt_kfree_skb"), false);
	bpf_program__set_autoload(bpf_object__find_program_by_name(obj, "vxt_kfree_skb_raw"), false);
	bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "vxt_events"), (unsigned)atol(argv[3]));
	if (bpf_object__load(obj)) {
		fprintf(stderr, "ringbuf-consumer: load: %s\n", strerror(errno));
		return 1;
	}
	int in_fd = bpf_program__fd(bpf_object__find_program_by_name(obj, "vxt_tc_ingress"));
	int eg_fd = bpf_program__fd(bpf_object__find_program_by_name(obj, "vxt_tc_egress"));
	int orig = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	for (int i = 4; i < argc; i++) {
		char spec[256];
		snprintf(spec, sizeof spec, "%s", argv[i]);
		char *colon = strchr(spec, ':');
		if (!colon) {
			fprintf(stderr, "ringbuf-consumer: %s is not NETNS:DEVICE\n", argv[i]);
			return 2;
		}
		*colon = 0;
		enter(spec);
		int ifindex = (int)if_nametoindex(colon + 1);
		if (!ifindex || bpf_link_create(in_fd, ifindex, (enum bpf_attach_type)46, NULL) < 0 ||
		    bpf_link_create(eg_fd, ifindex, (enum bpf_attach_type)47, NULL) < 0) {
			fprintf(stderr, "ringbuf-consumer: attach %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		setns(orig, CLONE_NEWNET);
	}
	struct vxt_filter all = { VXT_FILTER_ALL, 0 };
	__u32 zero = 0;
	bpf_map_update_elem(bpf_map__fd(bpf_object__find_map_by_name(obj, "vxt_filter")), &zero, &all, BPF_ANY);
	struct ring_buffer *rb =
		ring_buffer__new(bpf_map__fd(bpf_object__find_map_by_name(obj, "vxt_events")), on_sample, NULL, NULL);
	printf("ready\n");
	fflush(stdout);
	double start = now();
	while (now() - start < seconds)
		ring_buffer__poll(rb, 100);
	double elapsed = now() - start;
	unsigned long long got = records;
	int ncpu = libbpf_num_possible_cpus();
	struct vxt_stats per[ncpu];
	unsigned long long lost = 0;
	if (bpf_map_lookup_elem(bpf_map__fd(bpf_object__find_map_by_name(obj, "vxt_stats")), &zero, per) == 0)
		for (int i = 0; i < ncpu; i++)
			lost += per[i].lost;
	printf("{\"records\":%llu,\"seconds\":%.3f,\"lost\":%llu}\n", got, elapsed, lost);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
