/*
 * bench/pairs.c - the smallest driver of the order-0 pair, for comparing
 * builds of the core (scripts/harden-overhead.sh builds it with
 * -DLAB_HARDEN=0 and =1): a 1 GiB LAB_ZONE_NO_SCRUB hosted zone, one shared
 * owner over every colour, then N immediate pairs (mode 0) or N/65536
 * batches of 65536 allocations freed in a scrambled order, one lab_free a
 * frame (mode 1) or one lab_free_bulk over the scrambled list (mode 2).
 * GIB (default 1) sets the zone's size.  Prints ns per pair (N > 0).
 * Build (the script's line, one build):
 *
 *   cc -std=c11 -O2 -DNDEBUG -D_GNU_SOURCE -Iinclude -Isrc/core -o build/pairs \
 *      bench/pairs.c $(ls src/core/*.c | grep -v '/all\.c$') src/hosted/*.c -lpthread -lm
 *   pairs MODE N [GIB]
 *
 * (add -mprfchw where the CPU has PREFETCHW, as the Makefile does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "labyrinth.h"
#include "labyrinth/hosted.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	int mode = argc > 1 ? atoi(argv[1]) : 0;
	long n = argc > 2 ? atol(argv[2]) : 200000;
	struct lab_hosted_opts o;
	memset(&o, 0, sizeof o);
	long gib = argc > 3 ? atol(argv[3]) : 1;
	if (gib < 1 || gib > 1024) {
		fprintf(stderr, "pairs: GIB wants 1..1024\n");
		return 2;
	}
	o.bytes = (uint64_t)gib << 30;
	o.zone_flags = LAB_ZONE_NO_SCRUB;
	o.no_touch = true;
	struct lab_hosted_zone hz;
	if (lab_hosted_zone_create(&o, &hz) != LAB_OK) {
		fprintf(stderr, "pairs: cannot create a %ld GiB zone\n", gib);
		return 1;
	}
	struct lab_owner_cfg oc = {.colours = ~0ull >> (64 - hz.colours)};
	if (lab_owner_add(hz.zone, 1, &oc) != LAB_OK)
		return 1;
	uint64_t *held = malloc(65536 * sizeof *held), *list = malloc(65536 * sizeof *list), pfn;
	if (!held || !list)
		return 1;
	double t0 = now();
	if (mode == 0) {
		for (long i = 0; i < n; i++) {
			if (lab_alloc(hz.zone, 1, 0, LAB_NOWAIT, &pfn) != LAB_OK)
				return 1;
			lab_free(hz.zone, 1, pfn, 0);
		}
	} else {
		for (long r = 0; r < n / 65536; r++) {
			for (unsigned i = 0; i < 65536; i++)
				if (lab_alloc(hz.zone, 1, 0, LAB_NOWAIT, &held[i]) != LAB_OK)
					return 1;
			if (mode == 1) {
				for (unsigned i = 0; i < 65536; i++) /* 40503 is odd: a permutation */
					lab_free(hz.zone, 1, held[i * 40503u % 65536u], 0);
			} else {
				for (unsigned i = 0; i < 65536; i++)
					list[i] = held[i * 40503u % 65536u];
				if (lab_free_bulk(hz.zone, 1, list, 65536, NULL) != LAB_OK)
					return 1;
			}
		}
	}
	double dt = now() - t0;
	if (n)
		printf("%.2f ns/pair\n", dt * 1e9 / (double)n);
	free(held);
	free(list);
	lab_hosted_zone_destroy(&hz);
	return 0;
}
