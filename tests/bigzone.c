/*
 * bigzone.c - a zone of 2^32 frames (16 TiB), the largest the 32-bit frame
 * numbers allow, run for real: init, one exclusive colour drained to the
 * last frame and given back, refusals at the top, owner removal.
 *
 * Its metadata is 32 GiB of address space (8 bytes a frame), mapped with
 * MAP_NORESERVE; it touches the 16 GiB frame table and the 256 MiB of slots
 * of the one colour it uses (64 colours), so it needs about 17 GiB of free
 * memory.  scripts/check.sh runs it as the suite "zone-2^32" when the
 * machine has that much available (under CI=true, a machine without it
 * fails the suite).  The drain is exact (every frame of the colour but the
 * top one, each once); lab_check walks the whole table once at the end.
 *
 *   build/bigzone       prints each step and its time, exit 0 if all hold
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "labyrinth.h"

#define NR_FRAMES (1ull << 32)
#define COLOURS 64u
#define COLOUR 63u /* the colour of frame 2^32 - 1 */
#define OWNER 1

static int failures;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
			printf(__VA_ARGS__);                                   \
			printf("\n");                                          \
			failures++;                                            \
		}                                                              \
	} while (0)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void)
{
	static const uint8_t seed[32] = {0x6c, 0x61, 0x62, 0x79, 0x32, 0x5e, 0x33, 0x32};
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, NR_FRAMES, NULL);
	cfg.nr_colours = COLOURS;
	cfg.nr_cpus = 1;
	cfg.max_owners = 4;
	cfg.flags = LAB_ZONE_NO_SCRUB; /* no direct map: 16 TiB of frames do not exist here */
	cfg.seed = seed;
	cfg.seed_len = sizeof(seed);

	size_t need = lab_zone_meta_size(&cfg), per_frame = 0, fixed = 0;
	lab_meta_breakdown(&cfg, &per_frame, &fixed);
	printf("zone of %llu frames (16 TiB), %u colours: metadata %zu bytes = %zu per frame + %zu\n",
	       (unsigned long long)NR_FRAMES, COLOURS, need, per_frame, fixed);
	CHECK(need == fixed + 8 * NR_FRAMES && per_frame == 8, "need %zu", need);
	if (need == 0)
		return 1;
	void *meta = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
	                  -1, 0);
	if (meta == MAP_FAILED) {
		printf("  FAIL mmap of %zu bytes: %s\n", need, strerror(errno));
		return 1;
	}

	madvise(meta, need, MADV_HUGEPAGE); /* as the hosted layer does: 2 MiB pages, far fewer faults */

	double t0 = now();
	lab_zone_t *z = NULL;
	int rc = lab_zone_init(&z, meta, need, &cfg);
	printf("lab_zone_init: %s, %.1f s\n", lab_strerror(rc), now() - t0);
	CHECK(rc == LAB_OK, "%d", rc);
	if (rc != LAB_OK)
		return 1;

	const uint64_t top = NR_FRAMES - 1; /* reserved by lab_zone_init */
	t0 = now();
	struct lab_owner_cfg oc = {.colours = 1ull << COLOUR, .quota = 0, .flags = LAB_OWNER_EXCLUSIVE};
	rc = lab_owner_add(z, OWNER, &oc);
	printf("lab_owner_add (colour %u, %llu frames): %s, %.1f s\n", COLOUR,
	       (unsigned long long)(NR_FRAMES / COLOURS), lab_strerror(rc), now() - t0);
	CHECK(rc == LAB_OK, "%d", rc);
	if (rc != LAB_OK)
		return 1;
	struct lab_owner_stats os;
	lab_owner_stats(z, OWNER, &os);
	CHECK(os.pool_free == NR_FRAMES / COLOURS - 1, "pool_free %llu", (unsigned long long)os.pool_free);

	/* Drain the colour: every frame but the top one, each exactly once. */
	const uint64_t per_colour = NR_FRAMES / COLOURS;
	uint64_t *seen = calloc(per_colour / 64, sizeof(uint64_t));
	if (!seen)
		return 1;
	t0 = now();
	uint64_t got = 0, pfn = 0, dup = 0, wrong = 0;
	while ((rc = lab_alloc(z, OWNER, 0, LAB_ATOMIC, &pfn)) == LAB_OK) {
		uint64_t i = pfn / COLOURS;
		if (pfn >= top || pfn % COLOURS != COLOUR)
			wrong++;
		else if (seen[i / 64] >> (i % 64) & 1)
			dup++;
		else
			seen[i / 64] |= 1ull << (i % 64);
		got++;
	}
	double ta = now() - t0;
	printf("drained %llu frames in %.1f s (%.0f ns each), then %s\n", (unsigned long long)got, ta,
	       ta * 1e9 / (double)(got ? got : 1), lab_strerror(rc));
	CHECK(rc == LAB_ENOMEM, "%s", lab_strerror(rc));
	CHECK(got == per_colour - 1 && wrong == 0 && dup == 0, "got %llu wrong %llu dup %llu",
	      (unsigned long long)got, (unsigned long long)wrong, (unsigned long long)dup);
	CHECK(seen[(per_colour - 2) / 64] >> ((per_colour - 2) % 64) & 1,
	      "frame 2^32 - 1 - %u (the colour's highest below the top) never handed out", COLOURS);
	lab_owner_stats(z, OWNER, &os);
	CHECK(os.held == per_colour - 1 && os.pool_free == 0, "held %llu pool_free %llu",
	      (unsigned long long)os.held, (unsigned long long)os.pool_free);

	/* Refusals at the top and past it. */
	rc = lab_free(z, OWNER, top, 0);
	CHECK(rc == LAB_EFREE, "free of the top frame: %s", lab_strerror(rc));
	rc = lab_free(z, OWNER, NR_FRAMES, 0);
	CHECK(rc == LAB_ERANGE, "free past the zone: %s", lab_strerror(rc));
	rc = lab_free(z, OWNER, top - COLOURS, 0);
	CHECK(rc == LAB_OK, "free of the colour's highest frame: %s", lab_strerror(rc));
	rc = lab_free(z, OWNER, top - COLOURS, 0);
	CHECK(rc == LAB_EFREE, "double free at the top: %s", lab_strerror(rc));
	rc = lab_alloc(z, OWNER, 0, LAB_ATOMIC, &pfn);
	CHECK(rc == LAB_OK && pfn == top - COLOURS, "the one free frame: %s, pfn %llu", lab_strerror(rc),
	      (unsigned long long)pfn);

	/* Give everything back, in bulk. */
	t0 = now();
	uint64_t batch[1024];
	size_t nb = 0, freed = 0, refused = 0;
	for (uint64_t i = 0; i < per_colour; i++) {
		if (seen[i / 64] >> (i % 64) & 1)
			batch[nb++] = i * COLOURS + COLOUR;
		if (nb == 1024 || (nb && i + 1 == per_colour)) { /* a full batch, or the last */
			size_t done = 0;
			rc = lab_free_bulk(z, OWNER, batch, nb, &done);
			freed += done;
			refused += rc != LAB_OK;
			nb = 0;
		}
	}
	printf("freed %zu frames in %.1f s\n", freed, now() - t0);
	CHECK(freed == per_colour - 1 && refused == 0, "freed %zu refused %zu", freed, refused);
	lab_owner_stats(z, OWNER, &os);
	CHECK(os.held == 0 && os.pool_free == per_colour - 1, "held %llu pool_free %llu",
	      (unsigned long long)os.held, (unsigned long long)os.pool_free);

	/* Remove the owner: its walks visit the frames of its colour only. */
	t0 = now();
	int calls = 0;
	while ((rc = lab_owner_remove(z, OWNER, (size_t)1 << 30)) == LAB_EAGAIN && calls < 1000)
		calls++;
	printf("lab_owner_remove: %s after %d calls, %.1f s\n", lab_strerror(rc), calls + 1, now() - t0);
	CHECK(rc == LAB_OK, "%s", lab_strerror(rc));
	rc = lab_owner_stats(z, OWNER, &os);
	CHECK(rc == LAB_ENOOWNER, "%s", lab_strerror(rc));
	rc = lab_owner_add(z, 2, &oc); /* the colour's frames came back whole */
	CHECK(rc == LAB_OK, "%s", lab_strerror(rc));
	lab_owner_stats(z, 2, &os);
	CHECK(os.pool_free == per_colour - 1, "pool_free %llu", (unsigned long long)os.pool_free);

	/* The whole invariant walk, once: 2^32 records and the held counts. */
	t0 = now();
	rc = lab_check(z);
	printf("lab_check: %s, %.1f s\n", lab_strerror(rc), now() - t0);
	CHECK(rc == LAB_OK, "%s", lab_strerror(rc));

	/* The top frame is reserved: it cannot be reserved again (checked last:
	 * a zone that left it free would hand it out in the drain above). */
	rc = lab_zone_reserve_range(z, top, 1);
	CHECK(rc == LAB_EBUSY, "reserve the top frame: %s", lab_strerror(rc));
	rc = lab_zone_reserve_range(z, top, 2);
	CHECK(rc == LAB_ERANGE, "reserve past the zone: %s", lab_strerror(rc));

	free(seen);
	munmap(meta, need);
	printf("%d passed, %d failed\n", failures ? 0 : 1, failures ? 1 : 0);
	return failures ? 1 : 0;
}
