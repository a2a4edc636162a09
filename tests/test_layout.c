/*
 * test_layout.c - the scattered layout of a pool's slots (gslot, P3).
 *
 * For zones of several sizes and colour counts and pools of several colour
 * sets: slot r -> storage is one-to-one over the pool's capacity, lands in
 * the pool's own colour slices, keeps slots 2k and 2k + 1 adjacent (locate()
 * and the exchange rely on it), and spreads the first slots over distinct
 * 64-byte lines, which is what keeps a nearly full pool's footprint as wide
 * as a nearly empty one's.
 */
#include "harness.h"
#include "internal.h"

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
		uint64_t all = zones[zi].colours == 64 ? ~0ull : (1ull << zones[zi].colours) - 1;
		for (size_t mi = 0; mi < sizeof masks / sizeof masks[0]; mi++) {
			uint64_t mask = masks[mi] & all;
			if (!mask)
				continue;
			/* A pool over exactly these colours, laid out the library's way. */
			struct lab_pool p;
			memset(&p, 0, sizeof p);
			lab_pool_set_colours(t.z, &p, mask);
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
