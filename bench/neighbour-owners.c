/*
 * bench/neighbour-owners.c - can one owner's calls slow down another's?
 * Two exclusive owners with disjoint colours (so two pools: no frame, slot
 * or record line in common) in one 1 GiB zone.  CPU 1 times owner 2's
 * order-0 pairs for 1 s, immediate (alloc then free) and batch (32 Ki
 * allocations, then their frees in a scrambled order), while CPU 0
 *   idle     does nothing,
 *   quota    runs immediate pairs for owner 1, which has a quota (every call
 *            then adds to and subtracts from owner 1's held counter),
 *   noquota  runs immediate pairs for owner 1 without a quota,
 *   batch    runs batches for owner 1 without a quota,
 *   refused  makes refused frees (lab_free of a frame owner 1 does not
 *            hold: the zone counts them),
 *   memory   calls no allocator at all: random read-modify-writes of lines
 *            of a 64 MiB buffer of its own (the machine's share: what any
 *            memory-bound neighbour costs through the caches and memory the
 *            two CPUs share).
 * Owner 2's ns per pair should not depend on what owner 1 does.  Until
 * 2026-11-27 the owner structures were 56 bytes, so owner 1's counter and
 * owner 2's state shared a cache line: "quota" made owner 2's pairs 1.8-2.2x
 * slower, 118-148 ns against 64-68 idle (bench/RESULTS.md).  And until
 * 2026-11-27 each exchange's decoy prefetches read lines anywhere in the
 * zone, other pools' too: owner 2's batch pairs ran 1.5x slower under
 * "batch" and 2.2x under "noquota" (decoy_lines in src/core/internal.h).
 * The owners' colours are the two halves (owner 1 the low one), or with
 * the argument "interleaved" the even and the odd colours: record lines
 * are then the two owners' in turn, and until the frame table stored each
 * colour's lines in blocks of 16 (rec_line in src/core/internal.h) the
 * hardware's adjacent-line prefetch carried one owner's lines to the other's
 * CPU: owner 2's batch pairs ran 2.2-2.6x slower while owner 1 allocated
 * (docs/DESIGN-NOTES.md, colours).  Build and run:
 *
 *   cc -O2 -Iinclude bench/neighbour-owners.c build/liblabyrinth.a -lpthread \
 *      -o build/neighbour-owners && build/neighbour-owners [interleaved]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "labyrinth.h"
#include "labyrinth/hosted.h"

enum { IDLE, QUOTA, NOQUOTA, BATCH, REFUSED, MEMORY, NMODES };
static const char *const mode_name[NMODES] = {"idle", "quota", "noquota", "batch", "refused", "memory"};
#define MEM_LINES (64u << 20 >> 6)
static uint64_t *mem;
static bool interleaved;
#define BATCH_LEN 32768

static volatile int stop;
static int mode;
static lab_zone_t *zone;

static void pin(int cpu)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* BATCH_LEN allocations for owner, then their frees in a scrambled order. */
static void batch(uint32_t owner, uint64_t *held)
{
	for (unsigned i = 0; i < BATCH_LEN; i++)
		if (lab_alloc(zone, owner, 0, LAB_NOWAIT, &held[i]) != LAB_OK)
			abort();
	for (unsigned i = 0; i < BATCH_LEN; i++) /* 40503 is odd: a permutation */
		lab_free(zone, owner, held[i * 40503u % BATCH_LEN], 0);
}

static void *neighbour(void *arg)
{
	uint64_t *held = arg;
	pin(0);
	while (!stop) {
		uint64_t pfn;
		if (mode == BATCH) {
			batch(1, held);
		} else if (mode == MEMORY) {
			static uint64_t x = 0x9e3779b97f4a7c15ull;
			for (int i = 0; i < 4096; i++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				mem[(x % MEM_LINES) * 8] += 1;
			}
		} else if (mode == REFUSED) {
			lab_free(zone, 1, 12345, 0);
		} else if (lab_alloc(zone, 1, 0, LAB_NOWAIT, &pfn) == LAB_OK) {
			lab_free(zone, 1, pfn, 0);
		}
	}
	return NULL;
}

static double run(int m, bool batched, uint64_t *held)
{
	struct lab_hosted_zone hz;
	struct lab_hosted_opts o;
	memset(&o, 0, sizeof o);
	o.bytes = 1ull << 30;
	o.zone_flags = LAB_ZONE_NO_SCRUB;
	o.no_touch = true;
	if (lab_hosted_zone_create(&o, &hz) != LAB_OK) {
		fprintf(stderr, "neighbour-owners: cannot create the zone\n");
		exit(1);
	}
	zone = hz.zone;
	uint64_t all = ~0ull >> (64 - hz.colours);
	uint64_t lo = interleaved ? 0x5555555555555555ull & all : all >> (hz.colours / 2);
	struct lab_owner_cfg a = {.colours = lo, .flags = LAB_OWNER_EXCLUSIVE,
	                          .quota = m == QUOTA ? 1u << 20 : 0};
	struct lab_owner_cfg b = {.colours = all & ~lo, .flags = LAB_OWNER_EXCLUSIVE};
	if (lab_owner_add(zone, 1, &a) != LAB_OK || lab_owner_add(zone, 2, &b) != LAB_OK) {
		fprintf(stderr, "neighbour-owners: cannot add the owners\n");
		exit(1);
	}
	mode = m;
	stop = 0;
	pthread_t t;
	if (m != IDLE)
		pthread_create(&t, NULL, neighbour, held + BATCH_LEN);
	pin(1);
	uint64_t pairs = 0;
	double t0 = now(), end = t0 + 1.0;
	while (now() < end) {
		if (batched) {
			batch(2, held);
		} else {
			for (int i = 0; i < BATCH_LEN; i++) {
				uint64_t pfn;
				if (lab_alloc(zone, 2, 0, LAB_NOWAIT, &pfn) != LAB_OK)
					abort();
				lab_free(zone, 2, pfn, 0);
			}
		}
		pairs += BATCH_LEN;
	}
	double ns = (now() - t0) / (double)pairs * 1e9;
	stop = 1;
	if (m != IDLE)
		pthread_join(t, NULL);
	lab_hosted_zone_destroy(&hz);
	return ns;
}

int main(int argc, char **argv)
{
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "interleaved"))) {
		fprintf(stderr, "usage: neighbour-owners [interleaved]\n");
		return 2;
	}
	interleaved = argc == 2;
	printf("owners' colours: %s\n", interleaved ? "owner 1 the even ones, owner 2 the odd ones"
	                                            : "owner 1 the low half, owner 2 the high half");
	uint64_t *held = malloc(2 * BATCH_LEN * sizeof *held);
	mem = calloc(MEM_LINES, 64);
	if (!held || !mem)
		return 1;
	for (int batched = 0; batched < 2; batched++) {
		printf("owner 2's order-0 %s pair on CPU 1 (ns), by what owner 1 does on CPU 0:\n",
		       batched ? "batch" : "immediate");
		for (int round = 0; round < 3; round++) {
			printf("  round %d:", round + 1);
			for (int m = 0; m < NMODES; m++)
				printf("  %s %.1f", mode_name[m], run(m, batched, held));
			printf("\n");
		}
	}
	free(held);
	free(mem);
	return 0;
}
