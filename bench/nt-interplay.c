/*
 * bench/nt-interplay.c - why a scrub-on-free pair costs more than "pair +
 * non-temporal zero": times, in one process and alternating three times,
 *   a) the order-0 pair alone (exclusive owner, nothing zeroed),
 *   b) a non-temporal 4 KiB zero of a random frame of the same arena alone,
 *   c) the pair with the caller zeroing a random arena frame between alloc
 *      and free (the library does no scrub here),
 * and prints c - a - b: what the two cost together beyond their sum.  The
 * zero is the hosted layer's scrub itself, lab_plat_zero_frames.  Build:
 *
 *   cc -O2 -Iinclude bench/nt-interplay.c build/liblabyrinth.a -lpthread \
 *      -o build/nt-interplay && build/nt-interplay 300000
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "labyrinth.h"
#include "labyrinth/hosted.h"
#include "labyrinth/platform.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The hosted layer's own scrub (src/hosted/platform.c), called directly. */
static void nt_zero(void *va)
{
	lab_plat_zero_frames(va, 1);
}

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 300000;
	struct lab_hosted_opts o;
	memset(&o, 0, sizeof o);
	o.bytes = 1ull << 30;
	struct lab_hosted_zone hz;
	if (n <= 0 || lab_hosted_zone_create(&o, &hz) != LAB_OK) {
		fprintf(stderr, "nt-interplay: bad count, or cannot create a 1 GiB zone\n");
		return 1;
	}
	struct lab_owner_cfg oc = {.colours = ~0ull >> (64 - hz.colours), .flags = LAB_OWNER_EXCLUSIVE};
	if (lab_owner_add(hz.zone, 1, &oc) != LAB_OK)
		return 1;
	uint64_t pfn, x = 88172645463325252ull;
	for (int rep = 0; rep < 3; rep++) {
		double t0 = now();
		for (long i = 0; i < n; i++)
			if (lab_alloc(hz.zone, 1, 0, LAB_NOWAIT, &pfn) || lab_free(hz.zone, 1, pfn, 0))
				return 1;
		double a = (now() - t0) * 1e9 / (double)n;
		t0 = now();
		for (long i = 0; i < n; i++)
			nt_zero((char *)hz.arena + (next(&x) % hz.nr_frames) * 4096);
		double b = (now() - t0) * 1e9 / (double)n;
		t0 = now();
		for (long i = 0; i < n; i++) {
			if (lab_alloc(hz.zone, 1, 0, LAB_NOWAIT, &pfn))
				return 1;
			nt_zero((char *)hz.arena + (next(&x) % hz.nr_frames) * 4096);
			if (lab_free(hz.zone, 1, pfn, 0))
				return 1;
		}
		double c = (now() - t0) * 1e9 / (double)n;
		printf("pair %.0f ns, NT zero %.0f ns, pair + NT zero %.0f ns: %+.0f ns beyond the sum\n", a, b,
		       c, c - a - b);
	}
	lab_hosted_zone_destroy(&hz);
	return 0;
}
