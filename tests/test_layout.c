/*
 * test_layout.c - the scattered layout of a pool's slots (gslot, P3).
 *
 * For zones of several sizes and colour counts and pools of several colour
 * sets: slot r -> storage is one-to-one over the pool's capacity, lands in
 * the pool's own colour slices, keeps slots 2k and 2k + 1 adjacent (locate()
 * and the exchange rely on it), and spreads the first slots over distinct
 * 64-byte lines, which is what keeps a nearly full pool's footprint as wide
 * as a nearly empty one's; a line of slots holds one colour's slots only.
 * And the frame table (rix): frame -> record is one-to-one, a record line
 * holds frames of one colour only, a colour's lines are stored in blocks of
 * 16 (fewer in small zones), and a contiguous run of frames spreads over as
 * many lines as a scattered set.  And the decoy lines an exchange
 * prefetches (decoy_lines) are the pool's own and cover all of them.
 */
#include <pthread.h>

#include "harness.h"
#include "internal.h"

/* Every colour of a zone with n colours, as a mask. */
static uint64_t all_colours(unsigned n)
{
	return n == 64 ? ~0ull : (1ull << n) - 1;
}

/* A pool over exactly the colours of mask, laid out the library's way. */
static void pool_over(const struct lab_zone *z, uint64_t mask, struct lab_pool *p)
{
	memset(p, 0, sizeof *p);
	lab_pool_set_colours(z, p, mask);
}

static void check_pool(struct lab_zone *z, const struct lab_pool *p, const char *what)
{
	uint64_t total = (uint64_t)z->nr_colours * z->slice;
	uint8_t *seen = calloc(total, 1);
	ASSERT_TRUE(seen != NULL);
	uint64_t bad_range = 0, bad_colour = 0, dup = 0, bad_pair = 0;
	for (uint64_t r = 0; r < p->cap; r++) {
		lab_a32 *s = gslot(z, p, (uint32_t)r);
		ptrdiff_t i = s - z->gstore;
		if (i < 0 || (uint64_t)i >= total) {
			bad_range++;
			continue;
		}
		uint32_t colour = (uint32_t)((uint64_t)i / z->slice);
		bad_colour += !(p->mask >> colour & 1);
		dup += seen[i]++ != 0;
		if (r & 1)
			bad_pair += s != gslot(z, p, (uint32_t)r - 1) + 1;
	}
	free(seen);
	char m[200];
	snprintf(m, sizeof m, "%s: %llu out of the store, %llu in another colour, %llu twice, %llu split pairs",
	         what, (unsigned long long)bad_range, (unsigned long long)bad_colour, (unsigned long long)dup,
	         (unsigned long long)bad_pair);
	if (bad_range | bad_colour | dup | bad_pair)
		harness_fail(__FILE__, __LINE__, m);

	/* Spread: the first min(cap/2, lines) pairs sit on distinct lines, as
	 * far as the slices' line-aligned parts go (a slice's rows beyond the
	 * largest power of two of lines keep their place). */
	uint64_t lines = (uint64_t)p->nr_col << z->slice_lg, pairs = p->cap / 2;
	uint64_t want = pairs < lines ? pairs : lines;
	uint64_t nlines = total / 16 + 1, distinct = 0;
	uint8_t *line = calloc(nlines, 1);
	ASSERT_TRUE(line != NULL);
	for (uint64_t k = 0; k < want; k++) {
		uint64_t l = (uint64_t)(gslot(z, p, (uint32_t)(2 * k)) - z->gstore) / 16;
		distinct += !line[l]++;
	}
	free(line);
	snprintf(m, sizeof m, "%s: the first %llu pairs use %llu distinct lines", what, (unsigned long long)want,
	         (unsigned long long)distinct);
	if (z->slice >= 16 && distinct != want)
		harness_fail(__FILE__, __LINE__, m);
}

TEST(layout_pool_slots_scattered_one_to_one)
{
	static const struct {
		uint64_t frames;
		unsigned colours;
	} zones[] = {{1u << 16, 32}, {1001, 32}, {4096 + 37, 8}, {300, 64}, {50, 4}, {(1u << 14) + 2, 1}};
	static const uint64_t masks[] = {~0ull, 0x1, 0x3, 0x5, 0x7, 0xf0f0f0f0f0f0f0f0ull, 0x8000000000000001ull};
	for (size_t zi = 0; zi < sizeof zones / sizeof zones[0]; zi++) {
		struct tzone t = tz_make(zones[zi].frames, zones[zi].colours, 2, LAB_ZONE_ZEROED, (uint8_t)zi);
		uint64_t all = all_colours(zones[zi].colours);
		for (size_t mi = 0; mi < sizeof masks / sizeof masks[0]; mi++) {
			uint64_t mask = masks[mi] & all;
			if (!mask)
				continue;
			struct lab_pool p;
			pool_over(t.z, mask, &p);
			char what[120];
			snprintf(what, sizeof what, "%llu frames, %u colours, mask %#llx",
			         (unsigned long long)zones[zi].frames, zones[zi].colours, (unsigned long long)mask);
			check_pool(t.z, &p, what);
		}
		/* And a pool the library built itself (owner over every colour). */
		tz_owner(&t, 1, all, 0, false);
		for (uint32_t i = 0; i < t.z->nr_pools; i++)
			if (ld_acquire(&t.z->pools[i].state) == POOL_ACTIVE)
				check_pool(t.z, &t.z->pools[i], "built pool");
		EXPECT_EQ(lab_check(t.z), LAB_OK);
		tz_free(&t);
	}
}

/* No 64-byte line of slots holds two colours' slots, so pools of different
 * colours (different owners) never write a line the other reads: every slot
 * of a one-colour pool, for every colour, marks its line with the colour. */
TEST(layout_slot_lines_one_colour)
{
	static const struct {
		uint64_t frames;
		unsigned colours;
	} zones[] = {{1u << 16, 32}, {1001, 32}, {4096 + 37, 8}, {300, 64}, {50, 4}, {(1u << 18) + 5, 16},
	             {100003, 2}};
	for (size_t zi = 0; zi < sizeof zones / sizeof zones[0]; zi++) {
		struct tzone t = tz_make(zones[zi].frames, zones[zi].colours, 2, LAB_ZONE_ZEROED, (uint8_t)zi);
		struct lab_zone *z = t.z;
		uint64_t nlines = ((uint64_t)z->nr_colours * z->slice + 15) / 16, mixed = 0;
		int16_t *line_colour = malloc(nlines * sizeof(int16_t));
		ASSERT_TRUE(line_colour != NULL);
		for (uint64_t l = 0; l < nlines; l++)
			line_colour[l] = -1;
		for (uint32_t c = 0; c < z->nr_colours; c++) {
			struct lab_pool p;
			pool_over(z, 1ull << c, &p);
			for (uint64_t r = 0; r < p.cap; r++) {
				uint64_t l = (uint64_t)(gslot(z, &p, (uint32_t)r) - z->gstore) / 16;
				if (line_colour[l] >= 0 && line_colour[l] != (int16_t)c)
					mixed++;
				line_colour[l] = (int16_t)c;
			}
		}
		free(line_colour);
		char m[160];
		snprintf(m, sizeof m, "%llu frames, %u colours: %llu slots on a line of another colour",
		         (unsigned long long)zones[zi].frames, zones[zi].colours, (unsigned long long)mixed);
		if (mixed)
			harness_fail(__FILE__, __LINE__, m);
		tz_free(&t);
	}
}

/* The frame table of a zone: one-to-one onto its records, one colour a line,
 * and any run of L consecutive frames on L distinct lines. */
static void check_records(struct lab_zone *z, const char *what)
{
	uint64_t L = z->rec_lines, nrec = 16 * L, N = z->nr_frames;
	uint8_t *seen = calloc(nrec, 1);
	int16_t *line_colour = malloc(L * sizeof(int16_t));
	ASSERT_TRUE(seen && line_colour);
	for (uint64_t l = 0; l < L; l++)
		line_colour[l] = -1;
	uint64_t bad_range = 0, dup = 0, mixed = 0, not_inverse = 0;
	for (uint64_t f = 0; f < N; f++) {
		uint64_t i = rix(z, (uint32_t)f);
		if (i >= nrec) {
			bad_range++;
			continue;
		}
		dup += seen[i]++ != 0;
		not_inverse += rix_frame(z, i) != f;
		int16_t c = (int16_t)frame_colour(z, (uint32_t)f);
		if (line_colour[i / 16] >= 0 && line_colour[i / 16] != c)
			mixed++;
		line_colour[i / 16] = c;
	}
	/* A colour's lines are stored G at a time: two neighbouring lines inside
	 * a block of G are of one colour (the adjacent-line prefetch then does
	 * not cross owners), G is at least 16 once the zone fills a group of 16
	 * lines per colour, and 64 when the zone fills groups of 64 exactly:
	 * then every colour's lines cover all 64 sets of an L1 (line mod 64). */
	uint64_t G = 1ull << z->rec_glg, split = 0, lines = (N + 15) / 16, C = z->nr_colours;
	for (uint64_t l = 0; l + 1 < L; l++)
		if ((l + 1) % G && line_colour[l] >= 0 && line_colour[l + 1] >= 0 && line_colour[l] != line_colour[l + 1])
			split++;
	bool small_g = (lines >= 16 * C && G < 16) || (lines % (64 * C) == 0 && G != 64);
	uint64_t uncovered = 0;
	if (G == 64) {
		uint64_t *sets = calloc(C, sizeof(uint64_t)); /* per colour: L1 sets its lines hit */
		ASSERT_TRUE(sets != NULL);
		for (uint64_t l = 0; l < L; l++)
			if (line_colour[l] >= 0)
				sets[line_colour[l]] |= 1ull << (l % 64);
		for (uint64_t c = 0; c < C; c++)
			uncovered += sets[c] != ~0ull;
		free(sets);
	}
	/* Runs of L consecutive frames, at a few starts, each on L lines. */
	uint64_t short_runs = 0;
	uint8_t *hit = calloc(L, 1);
	ASSERT_TRUE(hit != NULL);
	for (uint64_t start = 0; start + L <= N; start += L / 3 + 1) {
		uint64_t distinct = 0;
		memset(hit, 0, L);
		for (uint64_t f = start; f < start + L; f++)
			distinct += !hit[rix(z, (uint32_t)f) / 16]++;
		short_runs += distinct != L;
	}
	free(hit);
	free(seen);
	free(line_colour);
	char m[480];
	snprintf(m, sizeof m, "%s: %llu records out of the table, %llu twice, %llu not inverted by rix_frame, "
	         "%llu mixed-colour lines, %llu runs of L frames on fewer than L lines, %llu colour changes inside "
	         "a block of G = %llu lines%s, %llu colours missing L1 sets", what, (unsigned long long)bad_range,
	         (unsigned long long)dup, (unsigned long long)not_inverse, (unsigned long long)mixed,
	         (unsigned long long)short_runs, (unsigned long long)split, (unsigned long long)G,
	         small_g ? " (too small for the zone)" : "", (unsigned long long)uncovered);
	if (bad_range | dup | not_inverse | mixed | short_runs | split | uncovered || small_g)
		harness_fail(__FILE__, __LINE__, m);
}

TEST(layout_frame_table_transposed)
{
	static const struct {
		uint64_t frames;
		unsigned colours;
	} zones[] = {{1u << 16, 32}, {1001, 32}, {4096 + 37, 8}, {300, 64}, {50, 4}, {7, 1}, {16, 1},
	             {(1u << 14) + 2, 1}, {(1u << 18) + 5, 16}};
	for (size_t zi = 0; zi < sizeof zones / sizeof zones[0]; zi++) {
		struct tzone t = tz_make(zones[zi].frames, zones[zi].colours, 2, LAB_ZONE_ZEROED, (uint8_t)zi);
		char what[120];
		snprintf(what, sizeof what, "%llu frames, %u colours", (unsigned long long)zones[zi].frames,
		         zones[zi].colours);
		check_records(t.z, what);
		/* Whatever the layout, the library itself agrees with it. */
		uint64_t all = all_colours(zones[zi].colours);
		tz_owner(&t, 1, all, 0, false);
		EXPECT_EQ(lab_check(t.z), LAB_OK);
		tz_free(&t);
	}
}

/* rix's f / L by multiplication is exact for every 32-bit frame number and
 * every L a zone can have (up to 2^28 + 64 lines): checked against division
 * at both sides of each multiple of L near the ends of the range and at
 * random frames. */
TEST(layout_frame_table_division_exact)
{
	static const uint32_t Ls[] = {2, 3, 32, 96, 1000, 4160, 65536, 65537 * 64, (1u << 28) + 64, 268435455};
	struct lab_zone z;
	uint64_t bad = 0, x = 0x9e3779b97f4a7c15ull;
	for (size_t li = 0; li < sizeof Ls / sizeof Ls[0]; li++) {
		memset(&z, 0, sizeof z);
		z.rec_lines = Ls[li];
		z.rec_magic = UINT64_MAX / Ls[li] + 1;
		z.rec_hmask = ~0u; /* no group bits: lines stored in order (rec_line the identity) */
		uint64_t top = 16ull * Ls[li] < (1ull << 32) ? 16ull * Ls[li] : (1ull << 32);
		for (int k = 0; k < 200000; k++) {
			uint64_t f;
			if (k < 64) /* around the multiples of L at the top */
				f = top - 1 - (uint64_t)(k / 2) * Ls[li] - (k & 1);
			else if (k < 128)
				f = (uint64_t)((k - 64) / 2) * Ls[li] + (k & 1) - ((k & 1) ? 0 : 1);
			else {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				f = x % top;
			}
			if (f >= top)
				continue;
			uint32_t want = (uint32_t)((f % Ls[li]) * 16 + f / Ls[li]);
			bad += rix(&z, (uint32_t)f) != want;
		}
	}
	EXPECT_EQ(bad, 0);
}

/* The decoy lines of an exchange (decoy_lines) are the pool's own: the slot
 * in one of its colour slices, the record line one of its colours' (every
 * frame on it of a pool colour), so one pool's decoys never read a line
 * another pool writes.  And they cover all of the pool's own lines (the
 * point of decoys: as many lines whatever the fill), with zones whose first
 * pfn is not a multiple of the colour count too. */
TEST(layout_decoys_own_lines)
{
	static const struct {
		uint64_t base, frames;
		unsigned colours;
	} zones[] = {{0, 1u << 14, 32}, {5, 1001, 32}, {3, 4096 + 37, 8}, {64 + 63, 3000, 64}, {1, 50, 4},
	             {0, 700, 1}, {9, (1u << 16) + 5, 16}};
	static const uint64_t masks[] = {~0ull, 0x1, 0x3, 0x5, 0xf0f0f0f0f0f0f0f0ull, 0x8000000000000001ull};
	uint64_t x = 0x243f6a8885a308d3ull;
	for (size_t zi = 0; zi < sizeof zones / sizeof zones[0]; zi++) {
		struct lab_zone_cfg cfg;
		lab_zone_cfg_default(&cfg, zones[zi].base, zones[zi].frames, NULL);
		cfg.nr_colours = zones[zi].colours;
		cfg.nr_cpus = 2;
		cfg.flags = LAB_ZONE_NO_SCRUB;
		struct tzone t = tz_make_cfg(&cfg, (uint8_t)zi);
		struct lab_zone *z = t.z;
		uint64_t all = all_colours(z->nr_colours);
		uint64_t nslot = (uint64_t)z->nr_colours * z->slice, nrec = 16ull * z->rec_lines;
		uint8_t *slot_hit = calloc((nslot + 15) / 16, 1), *rec_hit = calloc(z->rec_lines, 1);
		ASSERT_TRUE(slot_hit && rec_hit);
		for (size_t mi = 0; mi < sizeof masks / sizeof masks[0]; mi++) {
			uint64_t mask = masks[mi] & all;
			if (!mask)
				continue;
			struct lab_pool p;
			pool_over(z, mask, &p);
			memset(slot_hit, 0, (nslot + 15) / 16);
			memset(rec_hit, 0, z->rec_lines);
			uint64_t outside = 0, foreign = 0, misaligned = 0;
			uint64_t draws = 64 * (nslot / 16 + z->rec_lines);
			for (uint64_t k = 0; k < draws; k++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				const lab_a32 *s, *r;
				decoy_lines(z, &p, x, &s, &r);
				ptrdiff_t si = s - z->gstore, ri = r - z->rec;
				if (si < 0 || (uint64_t)si >= nslot || ri < 0 || (uint64_t)ri >= nrec) {
					outside++;
					continue;
				}
				misaligned += ri % 16 != 0;
				foreign += !(mask >> ((uint64_t)si / z->slice) & 1);
				for (uint64_t i = (uint64_t)ri; i < (uint64_t)ri + 16; i++) {
					uint64_t f = rix_frame(z, i);
					if (f < z->nr_frames)
						foreign += !(mask >> frame_colour(z, (uint32_t)f) & 1);
				}
				slot_hit[si / 16] = 1;
				rec_hit[ri / 16] = 1;
			}
			/* Every line of the pool's slices and of its colours' records hit. */
			uint64_t missed = 0, own_lines = 0;
			for (uint64_t l = 0; l < (nslot + 15) / 16; l++)
				if (mask >> (l * 16 / z->slice) & 1)
					own_lines++, missed += !slot_hit[l];
			for (uint64_t l = 0; l < z->rec_lines; l++) /* a stored line's colour: its first frame's */
				if (mask >> ((zones[zi].base + rix_frame(z, 16 * l)) & (z->nr_colours - 1)) & 1)
					own_lines++, missed += !rec_hit[l];
			char m[240];
			snprintf(m, sizeof m, "base %llu, %llu frames, %u colours, mask %#llx: %llu outside, %llu on "
			         "another colour's line, %llu not a line start, %llu of %llu own lines never drawn",
			         (unsigned long long)zones[zi].base, (unsigned long long)zones[zi].frames,
			         zones[zi].colours, (unsigned long long)mask, (unsigned long long)outside,
			         (unsigned long long)foreign, (unsigned long long)misaligned, (unsigned long long)missed,
			         (unsigned long long)own_lines);
			if (outside | foreign | misaligned | missed)
				harness_fail(__FILE__, __LINE__, m);
		}
		free(slot_hit);
		free(rec_hit);
		tz_free(&t);
	}
}

/* Pipeline positions (pcp->pslot) of pool slot `pool` on every CPU: how many
 * point into the slot store, and whether all do into colours of `mask`. */
static uint32_t pipe_in_store(struct lab_zone *z, uint32_t pool, uint64_t mask, bool *own)
{
	uint32_t in = 0;
	*own = true;
	for (uint32_t k = 0; k < z->nr_cpus; k++) {
		struct lab_pcp *pcp = cpu_pcp(z, cpu_at(z, k), pool);
		for (int j = 0; j < LAB_PIPE; j++) {
			lab_a32 *s = pcp->pslot[j];
			if (s >= pcp->ring && s < pcp->ring + LAB_PCP_CAP)
				continue;
			in++;
			*own &= s >= z->gstore && s < z->gstore + (size_t)z->nr_colours * z->slice &&
			        (mask >> ((size_t)(s - z->gstore) / z->slice) & 1);
		}
	}
	return in;
}

/* The exchange pipeline keeps the positions it computed (pcp->pslot) for
 * LAB_PIPE / 2 calls.  When a pool dies and its slot is built again over
 * other colours, no CPU may read its old slices (another tenant's lines by
 * then): every CPU points them at its own ring when it catches up with the
 * death, and lab_check refuses a position outside the pool and the cache. */
TEST(layout_pipeline_positions_follow_pool)
{
	struct tzone t = tz_make(1u << 14, 8, 2, LAB_ZONE_ZEROED, 7);
	struct lab_zone *z = t.z;
	tz_owner(&t, 1, 0x0f, 0, true);
	uint32_t pool = owner_at(z, 1)->pool;
	for (int i = 0; i < 200; i++) {
		uint64_t pfn;
		ASSERT_EQ(lab_alloc(z, 1, 0, LAB_NOWAIT, &pfn), LAB_OK);
		ASSERT_EQ(lab_free(z, 1, pfn, 0), LAB_OK);
	}
	bool own;
	EXPECT_TRUE(pipe_in_store(z, pool, 0x0f, &own) > 0); /* the test reaches the slices */
	EXPECT_TRUE(own);
	EXPECT_EQ(lab_check(z), LAB_OK);

	int rc;
	while ((rc = lab_owner_remove(z, 1, 1u << 20)) == LAB_EAGAIN)
		;
	ASSERT_EQ(rc, LAB_OK);
	tz_owner(&t, 2, 0xf0, 0, true);
	ASSERT_EQ(owner_at(z, 2)->pool, pool); /* the same slot, other colours */
	EXPECT_EQ(pipe_in_store(z, pool, 0xf0, &own), 0u); /* all reset to the ring */
	EXPECT_EQ(lab_check(z), LAB_OK);

	/* A position in a colour the pool does not have is corruption. */
	struct lab_pcp *pcp = cpu_pcp(z, cpu_at(z, 0), pool);
	lab_a32 *keep = pcp->pslot[3];
	pcp->pslot[3] = &z->gstore[0]; /* colour 0's slice: owner 2 has 4-7 */
	EXPECT_EQ(lab_check(z), LAB_ECORRUPT);
	pcp->pslot[3] = keep;
	EXPECT_EQ(lab_check(z), LAB_OK);

	for (int i = 0; i < 200; i++) {
		uint64_t pfn;
		ASSERT_EQ(lab_alloc(z, 2, 0, LAB_NOWAIT, &pfn), LAB_OK);
		ASSERT_EQ(lab_free(z, 2, pfn, 0), LAB_OK);
	}
	EXPECT_TRUE(pipe_in_store(z, pool, 0xf0, &own) > 0);
	EXPECT_TRUE(own);
	EXPECT_EQ(lab_check(z), LAB_OK);
	tz_free(&t);
}

/* The refill takes G's tail through the hints the allocations before it left
 * (lab_pool_pop_hinted).  The hints are used when n is what they were set
 * for, and a frame hint that no longer names the slot's frame (another CPU
 * moved it) must be ignored: here the first one names a frame of another
 * slot, and the refill must still take the tail's frames, each once, with
 * the right record indices (lab_check verifies them in the cache). */
TEST(layout_refill_tail_hints_checked)
{
	struct tzone t = tz_make(1u << 12, 4, 2, LAB_ZONE_ZEROED, 9);
	struct lab_zone *z = t.z;
	tz_owner(&t, 1, 0xf, 0, true);
	uint32_t pool = owner_at(z, 1)->pool;
	struct lab_pool *p = &z->pools[pool];
	uint64_t pfn[5];
	/* A refill of 4, then the two calls that set the next refill's hints. */
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(lab_alloc(z, 1, 0, LAB_NOWAIT, &pfn[i]), LAB_OK);
	struct lab_pcp *pcp = cpu_pcp(z, cpu_at(z, lab_plat_cpu()), pool);
	uint32_t n = ld_relaxed(&p->n);
	ASSERT_EQ(ld_relaxed(&pcp->count), 1u);
	ASSERT_EQ(pcp->tail_n, n); /* the run set them */
	uint32_t tail[4], other = ld_relaxed(gslot(z, p, 0));
	for (uint32_t j = 0; j < 4; j++) {
		EXPECT_TRUE(pcp->tail_slot[j] == gslot(z, p, n - 1 - j));
		tail[j] = ld_relaxed(gslot(z, p, n - 1 - j));
		EXPECT_EQ(pcp->tail_frame[j], tail[j]);
		EXPECT_EQ(pcp->tail_rix[j], rix(z, tail[j]));
	}
	pcp->tail_frame[0] = other; /* stale: that frame sits in slot 0 */
	pcp->tail_rix[0] = rix(z, other);
	for (int i = 3; i < 5; i++) /* the last one refills */
		ASSERT_EQ(lab_alloc(z, 1, 0, LAB_NOWAIT, &pfn[i]), LAB_OK);
	EXPECT_EQ(pcp->tail_n, LAB_NONE); /* used once */
	EXPECT_EQ(ld_relaxed(&p->n), n - 4);
	EXPECT_EQ(ld_relaxed(&pcp->count), 3u);
	EXPECT_EQ(pfn[4] - z->base_pfn, tail[0]); /* the pcp is a FIFO: G's last frame first */
	EXPECT_TRUE(ld_relaxed(gslot(z, p, 0)) == other);
	EXPECT_EQ(lab_check(z), LAB_OK);
	for (int i = 0; i < 5; i++)
		EXPECT_EQ(lab_free(z, 1, pfn[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(z), LAB_OK);
	tz_free(&t);
}

/* A dying pool takes its dirty frames home under its lock, never through a
 * CPU's cache.  Here CPU Y parks frames of owner 1 in its dirty ring
 * (deferred scrub), owner 1's removal kills the pool, Y catches up with the
 * death and then scrubs its ring, so the frames go home on Y.  Through Y's
 * pcp (an exchange, as until 2026-11-28) the frame it displaced stayed
 * cached on Y, where only Y's next catch-up would give it back, and the
 * removal, which waits for every frame of the pool to be home, never ended. */
struct dying_helper {
	lab_zone_t *z;
	pthread_barrier_t *bar;
	unsigned slot;
	int rc_alloc, rc_free, rc_scrub;
};

static void *dying_helper_run(void *arg)
{
	struct dying_helper *h = arg;
	uint64_t pfn[32];
	h->rc_alloc = h->rc_free = LAB_OK;
	for (int i = 0; i < 32; i++)
		if (lab_alloc(h->z, 1, 0, LAB_NOWAIT, &pfn[i]) != LAB_OK)
			h->rc_alloc = LAB_ENOMEM;
	for (int i = 0; i < 32 && h->rc_alloc == LAB_OK; i++)
		if (lab_free(h->z, 1, pfn[i], 0) != LAB_OK)
			h->rc_free = LAB_EINVAL;
	h->slot = lab_plat_cpu();
	pthread_barrier_wait(h->bar); /* the frames are dirty on this CPU */
	pthread_barrier_wait(h->bar); /* the pool is dying */
	h->rc_scrub = lab_scrub(h->z, 64, NULL);
	return NULL;
}

TEST(layout_dying_pool_frames_home_under_lock)
{
	struct tzone t = tz_make(1u << 12, 4, 8, LAB_ZONE_ZEROED | LAB_ZONE_DEFERRED_SCRUB, 11);
	struct lab_zone *z = t.z;
	tz_owner(&t, 1, 0x3, 0, false);
	tz_owner(&t, 2, 0xc, 0, false);
	uint64_t pfn;
	ASSERT_EQ(lab_alloc(z, 2, 0, LAB_NOWAIT, &pfn), LAB_OK); /* this thread's slot */
	ASSERT_EQ(lab_free(z, 2, pfn, 0), LAB_OK);
	uint32_t pool = owner_at(z, 1)->pool;
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, 2);
	struct dying_helper h = {.z = z, .bar = &bar};
	pthread_t th;
	ASSERT_EQ(pthread_create(&th, NULL, dying_helper_run, &h), 0);
	pthread_barrier_wait(&bar);
	bool two_cpus = h.slot < z->nr_cpus && lab_plat_cpu() < z->nr_cpus && h.slot != lab_plat_cpu();
	EXPECT_TRUE(two_cpus);
	EXPECT_EQ(h.rc_alloc, LAB_OK);
	EXPECT_EQ(h.rc_free, LAB_OK);
	EXPECT_TRUE(ld_relaxed(&cpu_at(z, h.slot)->dcount) == 32); /* parked dirty on Y */
	/* Two steps: the owner dies, then the pool (and z->gen moves). */
	EXPECT_EQ(lab_owner_remove(z, 1, 1u << 20), LAB_EAGAIN);
	EXPECT_EQ(lab_owner_remove(z, 1, 1u << 20), LAB_EAGAIN);
	EXPECT_EQ(ld_relaxed(&z->pools[pool].state), (uint32_t)POOL_DYING);
	pthread_barrier_wait(&bar); /* Y catches up, then scrubs its ring */
	pthread_join(th, NULL);
	pthread_barrier_destroy(&bar);
	EXPECT_EQ(h.rc_scrub, LAB_OK);
	EXPECT_EQ(ld_relaxed(&cpu_pcp(z, cpu_at(z, h.slot), pool)->count), 0u); /* nothing cached on Y */
	int rc = LAB_EAGAIN;
	for (int i = 0; i < 64 && rc == LAB_EAGAIN; i++)
		rc = lab_owner_remove(z, 1, 1u << 20);
	EXPECT_EQ(rc, LAB_OK);
	EXPECT_EQ(lab_check(z), LAB_OK);
	tz_free(&t);
}
