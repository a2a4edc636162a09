/*
 * bench.c - `labyrinth bench`: throughput of alloc+free pairs, by rounds.
 *
 * Machines here are noisy (the same binary varies 3-5x between runs), so a
 * result is never one number: every round runs every configuration once,
 * rounds repeat, and the table shows medians and the per-round ratio to the
 * 1-thread figure.  Nothing here asserts: these are measurements.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
	"usage: labyrinth bench [--quick] [--rounds N] [--size SIZE] [--pairs N]\n"
	"\n"
	"Order-0 alloc+free pairs on a hosted zone, one exclusive owner (the\n"
	"same-owner path: no scrub), for 1 thread and for every thread count up to\n"
	"the online CPUs.  Workloads: immediate (alloc then free at once) and batch\n"
	"(allocate 64 Ki frames, free them in random order).  Prints the median\n"
	"ns per pair and Mpairs/s of each, and the per-round ratio of N threads'\n"
	"total throughput to one thread's.\n"
	"\n"
	"  --quick       3 rounds of 2 M pairs per thread (under a minute)\n"
	"  --rounds N    rounds (default 7)\n"
	"  --size SIZE   zone size (default 1G)\n"
	"  --pairs N     pairs per thread per run (default 4000000)\n";

#define BATCH (64 * 1024)

struct run {
	lab_zone_t *z;
	int workload; /* 0 immediate, 1 batch */
	uint64_t pairs;
	pthread_barrier_t *start;
	double seconds;
	uint64_t done;
};

static void *worker(void *arg)
{
	struct run *r = arg;
	uint64_t pfn, s = 0x9e3779b97f4a7c15ull ^ (uintptr_t)r;
	uint64_t *held = r->workload ? malloc(BATCH * sizeof(uint64_t)) : NULL;
	pthread_barrier_wait(r->start);
	double t0 = cli_now();
	uint64_t done = 0;
	if (r->workload == 0) {
		for (; done < r->pairs; done++) {
			if (lab_alloc(r->z, 1, 0, LAB_NOWAIT, &pfn) != LAB_OK)
				break;
			lab_free(r->z, 1, pfn, 0);
		}
	} else {
		while (done < r->pairs) {
			uint64_t n = 0;
			while (n < BATCH && lab_alloc(r->z, 1, 0, LAB_NOWAIT, &held[n]) == LAB_OK)
				n++;
			for (uint64_t i = n; i > 1; i--) { /* free in random order */
				s ^= s << 13, s ^= s >> 7, s ^= s << 17;
				uint64_t j = s % i, t = held[i - 1];
				held[i - 1] = held[j];
				held[j] = t;
			}
			for (uint64_t i = 0; i < n; i++)
				lab_free(r->z, 1, held[i], 0);
			done += n;
			if (n == 0)
				break;
		}
	}
	r->seconds = cli_now() - t0;
	r->done = done;
	lab_cpu_drain(r->z);
	free(held);
	return NULL;
}

/* One measurement: `threads` threads, each `pairs` pairs; returns total
 * pairs per second and fills *ns_per_pair (per thread). */
static double measure(lab_zone_t *z, int workload, unsigned threads, uint64_t pairs, double *ns)
{
	pthread_t th[64];
	struct run r[64];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, threads);
	for (unsigned t = 0; t < threads; t++) {
		r[t] = (struct run){z, workload, pairs, &bar, 0, 0};
		pthread_create(&th[t], NULL, worker, &r[t]);
	}
	double longest = 0, total = 0, ns_sum = 0;
	for (unsigned t = 0; t < threads; t++) {
		pthread_join(th[t], NULL);
		if (r[t].seconds > longest)
			longest = r[t].seconds;
		total += (double)r[t].done;
		ns_sum += r[t].seconds * 1e9 / (double)(r[t].done ? r[t].done : 1);
	}
	pthread_barrier_destroy(&bar);
	*ns = ns_sum / threads;
	return total / longest;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int cmd_bench(int argc, char **argv)
{
	uint64_t rounds = 7, size = 1ull << 30, pairs = 4000000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(help, stdout);
			return 0;
		} else if (!strcmp(a, "--quick")) {
			rounds = 3;
			pairs = 2000000;
		} else if (!strcmp(a, "--rounds") && i + 1 < argc) {
			if (!cli_parse_uint(argv[++i], 1, 1000, &rounds))
				return cli_usage_error("bench", "--rounds wants 1..1000, got '%s'", argv[i]);
		} else if (!strcmp(a, "--size") && i + 1 < argc) {
			if (!cli_parse_size(argv[++i], &size) || size < (64ull << 20) || size / 4096 > 0xffffffffull)
				return cli_usage_error("bench", "--size wants 64M..16T, got '%s'", argv[i]);
		} else if (!strcmp(a, "--pairs") && i + 1 < argc) {
			if (!cli_parse_uint(argv[++i], 1000, 1ull << 40, &pairs))
				return cli_usage_error("bench", "--pairs wants at least 1000, got '%s'", argv[i]);
		} else {
			return cli_usage_error("bench", "unknown option '%s'", a);
		}
	}
	struct lab_geometry g;
	lab_hosted_geometry(&g);
	unsigned maxt = g.nr_cpus > 64 ? 64 : g.nr_cpus;
	struct lab_hosted_opts o = {.bytes = size, .nr_cpus = maxt + 1};
	struct lab_hosted_zone hz;
	int rc = lab_hosted_zone_create(&o, &hz);
	if (rc != LAB_OK) {
		fprintf(stderr, "labyrinth bench: cannot create a zone of %llu bytes: %s (%s); try a smaller --size\n",
		        (unsigned long long)size, lab_strerror(rc), hz.why);
		return 1;
	}
	uint64_t all = hz.colours == 64 ? UINT64_MAX : (1ull << hz.colours) - 1;
	struct lab_owner_cfg oc = {.colours = all, .flags = LAB_OWNER_EXCLUSIVE};
	lab_owner_add(hz.zone, 1, &oc);
	char b[32];
	printf("labyrinth bench: %s zone (%llu frames), %u colours, %u CPUs, %llu rounds x %llu pairs/thread\n",
	       cli_size(hz.nr_frames * 4096, b, sizeof b), (unsigned long long)hz.nr_frames, hz.colours,
	       g.nr_cpus, (unsigned long long)rounds, (unsigned long long)pairs);

	static const char *wname[2] = {"immediate", "batch"};
	double ns[2][65][1000], tput[2][65][1000], ratio[2][65][1000];
	for (uint64_t r = 0; r < rounds; r++) {
		for (int w = 0; w < 2; w++)
			for (unsigned t = 1; t <= maxt; t++) {
				fprintf(stderr, "\r  round %llu/%llu: %s, %u thread%s   ", (unsigned long long)r + 1,
				        (unsigned long long)rounds, wname[w], t, t > 1 ? "s" : "");
				tput[w][t][r] = measure(hz.zone, w, t, pairs, &ns[w][t][r]);
				ratio[w][t][r] = tput[w][t][r] / tput[w][1][r];
			}
	}
	fprintf(stderr, "\r%60s\r", "");
	printf("\n%-10s %7s %12s %12s %24s\n", "workload", "threads", "ns/pair", "Mpairs/s", "N-thread/1-thread (median)");
	for (int w = 0; w < 2; w++)
		for (unsigned t = 1; t <= maxt; t++)
			printf("%-10s %7u %12.1f %12.2f %24.2f\n", wname[w], t, median(ns[w][t], (int)rounds),
			       median(tput[w][t], (int)rounds) / 1e6, median(ratio[w][t], (int)rounds));
	int check = lab_check(hz.zone);
	printf("\nlab_check after the runs: %s\n", lab_strerror(check));
	lab_hosted_zone_destroy(&hz);
	return check == LAB_OK ? 0 : 1;
}
