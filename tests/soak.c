/*
 * soak.c - `make soak`: the stress workload of tests/test_stress.c, round
 * after round with fresh seeds, until the time is up.  Prints operations
 * done and violations found (shadow model, contents, lab_check) and exits
 * non-zero on any.
 * Usage: build/soak [SECONDS]   (default 600)
 */
#include <stdatomic.h>
#include <time.h>

#include "harness.h"

extern _Atomic uint64_t sx_total_ops, sx_total_violations;
extern uint32_t sx_seed_offset;

int main(int argc, char **argv)
{
	long secs = argc > 1 ? strtol(argv[1], NULL, 10) : 600;
	if (secs <= 0) {
		fprintf(stderr, "usage: soak [SECONDS]  (a positive number of seconds)\n");
		return 2;
	}
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char *filter[] = {argv[0], "stress_"};
	int failed = 0, rounds = 0;
	do {
		sx_seed_offset = (uint32_t)rounds * 17u + 1u; /* every round its own operation streams */
		failed += harness_run(2, filter);
		rounds++;
		clock_gettime(CLOCK_MONOTONIC, &t);
		printf("soak: round %d done, %.0f s, %llu operations, %llu violations, %d failed tests\n", rounds,
		       (double)(t.tv_sec - t0.tv_sec), (unsigned long long)atomic_load(&sx_total_ops),
		       (unsigned long long)atomic_load(&sx_total_violations), failed);
	} while (t.tv_sec - t0.tv_sec < secs);
	printf("soak: %d rounds in %ld s: %llu operations, %llu violations, %d failed tests\n", rounds,
	       (long)(t.tv_sec - t0.tv_sec), (unsigned long long)atomic_load(&sx_total_ops),
	       (unsigned long long)atomic_load(&sx_total_violations), failed);
	return (failed || atomic_load(&sx_total_violations)) ? 1 : 0;
}
