/*
 * bench/shared-records.c - why the batch pattern does not scale to two CPUs
 * when the host puts them far apart.  CPU 0 runs the batch pattern (64 Ki
 * allocations, then the frees in a scrambled order) on a 1 GiB zone and
 * times every call alone; meanwhile CPU 1
 *   idle   does nothing,
 *   same   runs the same pattern on the same zone and pool,
 *   other  runs it on a zone of its own (same code, no shared metadata).
 * A free reads and CASes the record of the frame it is given.  CPU 0 wrote
 * that record when it allocated the frame, up to 64 Ki calls earlier; in
 * "same", CPU 1's own random traffic over the records has most likely
 * touched the line since, so the free waits for a transfer between the
 * CPUs, which no prefetch can start earlier (the caller names the frame).
 * Build and run (prints TSC cycles, serialized, timer included):
 *
 *   cc -O2 -Iinclude bench/shared-records.c build/liblabyrinth.a -lpthread \
 *      -o build/shared-records && build/shared-records
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>

#include "labyrinth.h"
#include "labyrinth/hosted.h"

#define B 65536u
#define CYCLES 10

static atomic_int stop;

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static inline uint64_t tsc(void)
{
	unsigned aux;
	_mm_lfence();
	uint64_t t = __rdtscp(&aux);
	_mm_lfence();
	return t;
}

static int zone(struct lab_hosted_zone *hz)
{
	struct lab_hosted_opts o;
	memset(&o, 0, sizeof o);
	o.bytes = 1ull << 30;
	o.zone_flags = LAB_ZONE_NO_SCRUB;
	o.no_touch = true;
	if (lab_hosted_zone_create(&o, hz) != LAB_OK)
		return -1;
	struct lab_owner_cfg oc = {.colours = ~0ull >> (64 - hz->colours)};
	return lab_owner_add(hz->zone, 1, &oc) == LAB_OK ? 0 : -1;
}

/* One batch; times[] gets each alloc's and each free's cycles when given. */
static void batch(lab_zone_t *z, uint64_t *held, uint32_t *ta, uint32_t *tf)
{
	for (uint32_t i = 0; i < B; i++) {
		uint64_t a = tsc();
		if (lab_alloc(z, 1, 0, LAB_NOWAIT, &held[i]) != LAB_OK)
			abort();
		if (ta)
			ta[i] = (uint32_t)(tsc() - a);
	}
	for (uint32_t i = 0; i < B; i++) { /* 40503 is odd: a permutation */
		uint64_t a = tsc();
		lab_free(z, 1, held[i * 40503u % B], 0);
		if (tf)
			tf[i] = (uint32_t)(tsc() - a);
	}
}

struct other {
	lab_zone_t *z;
};

static void *other_cpu(void *arg)
{
	struct other *o = arg;
	uint64_t *held = malloc(B * sizeof *held);
	pin(1);
	while (!atomic_load(&stop))
		batch(o->z, held, NULL, NULL);
	free(held);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *mode, const char *call, uint32_t *v, size_t n)
{
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	qsort(v, n, sizeof *v, cmp);
	printf("%-6s %-5s mean %6.0f  p50 %5u  p90 %5u  p99 %5u\n", mode, call, sum / (double)n,
	       v[n / 2], v[n * 9 / 10], v[n * 99 / 100]);
}

int main(void)
{
	static const char *const modes[] = {"idle", "same", "other"};
	struct lab_hosted_zone a, b;
	if (zone(&a) || zone(&b)) {
		fprintf(stderr, "shared-records: cannot create two 1 GiB zones\n");
		return 1;
	}
	uint64_t *held = malloc(B * sizeof *held);
	uint32_t *ta = malloc((size_t)B * CYCLES * sizeof *ta), *tf = malloc((size_t)B * CYCLES * sizeof *tf);
	if (!held || !ta || !tf)
		return 1;
	pin(0);
	printf("CPU 0: batch pattern on a 1 GiB zone, each call timed (TSC cycles); CPU 1:\n");
	for (int m = 0; m < 3; m++) {
		pthread_t t;
		struct other o = {.z = m == 1 ? a.zone : b.zone};
		atomic_store(&stop, 0);
		if (m > 0 && pthread_create(&t, NULL, other_cpu, &o) != 0)
			return 1;
		batch(a.zone, held, NULL, NULL); /* warm-up */
		for (int c = 0; c < CYCLES; c++)
			batch(a.zone, held, ta + (size_t)c * B, tf + (size_t)c * B);
		atomic_store(&stop, 1);
		if (m > 0)
			pthread_join(t, NULL);
		report(modes[m], "alloc", ta, (size_t)B * CYCLES);
		report(modes[m], "free", tf, (size_t)B * CYCLES);
	}
	lab_hosted_zone_destroy(&a);
	lab_hosted_zone_destroy(&b);
	return 0;
}
