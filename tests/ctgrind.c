/*
 * ctgrind.c - no branch of the order-0 alloc/free paths depends on the
 * allocator's secret state (after Adam Langley's ctgrind: valgrind's memcheck
 * reports every conditional jump, and every address, computed from memory
 * marked undefined).
 *
 * Built with the core compiled with -DLAB_CTGRIND=1 (lab_public() then tells
 * memcheck which values are declassified, see internal.h) and run under
 * `valgrind --tool=memcheck` by scripts/ctgrind-check.sh.  The secret state:
 * the frame table, the pool arrays, the CPU's cached frames and its CSPRNG.
 * Two modes:
 *   strict      fill level public; no memcheck report of any kind allowed;
 *   fill-level  the pools' fill level (n) secret as well; no *branch* may
 *               depend on it (addresses do: the uniform slot index is drawn
 *               from [0, n); their timing is what the prefetch pipeline
 *               hides, and `labyrinth audit --timing` C1 measures it).
 * Each mode runs an exclusive pool (no scrub) and a shared one (scrub on
 * free) through alloc/free pairs and batches from a half-full state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <valgrind/memcheck.h>

#include "internal.h"
#include "labyrinth/hosted.h"

#define FRAMES 4096

static void make_secret(lab_zone_t *z, bool fill_secret)
{
	VALGRIND_MAKE_MEM_UNDEFINED((void *)z->rec, 64ul * z->rec_lines);
	VALGRIND_MAKE_MEM_UNDEFINED((void *)z->gstore, 4ul * z->nr_colours * z->slice);
	struct lab_cpu *cpu = cpu_at(z, lab_plat_cpu());
	for (uint32_t p = 0; p < z->nr_pools; p++) {
		struct lab_pcp *pcp = cpu_pcp(z, cpu, p);
		VALGRIND_MAKE_MEM_UNDEFINED(pcp->ring, sizeof pcp->ring);
		VALGRIND_MAKE_MEM_UNDEFINED(pcp->u, sizeof pcp->u);
		if (fill_secret)
			VALGRIND_MAKE_MEM_UNDEFINED((void *)&z->pools[p].n, sizeof z->pools[p].n);
	}
	VALGRIND_MAKE_MEM_UNDEFINED(cpu->rng.buf, sizeof cpu->rng.buf);
	VALGRIND_MAKE_MEM_UNDEFINED(cpu->rng.key, sizeof cpu->rng.key);
}

int main(int argc, char **argv)
{
	bool fill_secret = argc > 1 && !strcmp(argv[1], "fill-level");
	struct lab_zone_cfg cfg;
	void *arena = aligned_alloc(4096, (size_t)FRAMES * 4096);
	memset(arena, 0, (size_t)FRAMES * 4096);
	lab_zone_cfg_default(&cfg, 0, FRAMES, arena);
	cfg.nr_colours = 32;
	cfg.flags = LAB_ZONE_ZEROED;
	uint8_t seed[32] = {42};
	cfg.seed = seed;
	cfg.seed_len = sizeof seed;
	size_t need = lab_zone_meta_size(&cfg);
	void *meta = aligned_alloc(64, (need + 63) & ~(size_t)63);
	lab_zone_t *z;
	if (lab_zone_init(&z, meta, need, &cfg) != LAB_OK)
		return 2;
	struct lab_owner_cfg ex = {.colours = 0x0000ffff, .flags = LAB_OWNER_EXCLUSIVE};
	struct lab_owner_cfg sh = {.colours = 0xffff0000};
	if (lab_owner_add(z, 1, &ex) || lab_owner_add(z, 2, &sh) || lab_owner_add(z, 3, &sh))
		return 2;
	/* Half-full state, warmed up: caches and the prefetch pipeline primed. */
	static uint64_t keep[FRAMES];
	unsigned nk = 0;
	uint64_t pfn;
	for (lab_owner_t o = 1; o <= 2; o++) {
		while (lab_alloc(z, o, 0, LAB_ATOMIC, &pfn) == LAB_OK)
			keep[nk++] = pfn;
	}
	for (unsigned i = 0; i < nk; i += 2)
		lab_free(z, keep[i] & 16 ? 2 : 1, keep[i], 0);
	for (int i = 0; i < 200; i++)
		for (lab_owner_t o = 1; o <= 3; o++)
			if (lab_alloc(z, o, 0, LAB_ATOMIC, &pfn) == LAB_OK)
				lab_free(z, o, pfn, 0);

	make_secret(z, fill_secret);
	for (int i = 0; i < 300; i++) {
		for (lab_owner_t o = 1; o <= 3; o++) {
			/* owner 3 frees what owner 2's pool handed it: a cross-owner
			 * cycle through the scrub-on-free path */
			if (lab_alloc(z, o, 0, LAB_ATOMIC | (o == 1 ? LAB_EXCLUSIVE : 0), &pfn) != LAB_OK)
				return 3;
			VALGRIND_MAKE_MEM_DEFINED(&pfn, sizeof pfn); /* the result is the caller's */
			lab_free(z, o, pfn, 0);
		}
	}
	printf("ctgrind %s: 900 alloc/free pairs with the allocator state secret\n",
	       fill_secret ? "fill-level" : "strict");
	return 0;
}
