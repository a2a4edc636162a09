/*
 * test_limits.c - exhaustion and recovery: every owner at its quota, the
 * atomic reserve drained, then everything freed; the counts must come back
 * exactly to where they started, and the cycle must repeat identically.
 */
#include "harness.h"

#define FRAMES 4096

struct snapshot {
	struct lab_stats st;
	struct lab_owner_stats os[4];
};

static void snap(lab_zone_t *z, struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	lab_stats(z, &s->st);
	for (lab_owner_t o = 1; o <= 3; o++)
		lab_owner_stats(z, o, &s->os[o]);
}

/* Take everything owner o can get with flags; returns how many blocks. */
static unsigned drain(lab_zone_t *z, lab_owner_t o, unsigned flags, uint64_t *held, unsigned *n, int *last)
{
	unsigned got = 0;
	uint64_t pfn;
	while ((*last = lab_alloc(z, o, 0, flags, &pfn)) == LAB_OK) {
		held[(*n)++] = pfn << 8 | o;
		got++;
	}
	return got;
}

TEST(limits_exhaustion_and_recovery)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, FRAMES, NULL);
	cfg.nr_colours = 32;
	cfg.nr_cpus = 2;
	cfg.reserve_permille = 100; /* 10% of each pool only for LAB_ATOMIC */
	cfg.flags = LAB_ZONE_ZEROED;
	struct tzone t = tz_make_cfg(&cfg, 61);
	tz_owner(&t, 1, 0x0000ffffull, 1000, true);  /* exclusive, quota 1000 of 2048 */
	tz_owner(&t, 2, 0xffff0000ull, 700, false);  /* shared, quota 700 */
	tz_owner(&t, 3, 0xffff0000ull, 0, false);    /* shared, no quota: drains the pool */
	static uint64_t held[FRAMES];
	struct snapshot start, after;
	snap(t.z, &start);
	EXPECT_EQ(start.st.nr_free, FRAMES);
	EXPECT_EQ(start.st.reserve_frames, 204 + 204);

	for (int cycle = 0; cycle < 2; cycle++) {
		unsigned n = 0;
		int last;
		/* Owners at quota. */
		EXPECT_EQ(drain(t.z, 1, LAB_NOWAIT, held, &n, &last), 1000);
		EXPECT_EQ(last, LAB_EQUOTA);
		EXPECT_EQ(drain(t.z, 2, LAB_NOWAIT, held, &n, &last), 700);
		EXPECT_EQ(last, LAB_EQUOTA);
		struct lab_owner_stats os;
		lab_owner_stats(t.z, 1, &os);
		EXPECT_EQ(os.held, 1000);
		lab_owner_stats(t.z, 2, &os);
		EXPECT_EQ(os.held, 700);
		/* Owner 3 takes the shared pool down to its reserve with NOWAIT... */
		unsigned nowait = drain(t.z, 3, LAB_NOWAIT, held, &n, &last);
		EXPECT_EQ(last, LAB_ENOMEM);
		struct lab_stats mid;
		lab_stats(t.z, &mid);
		uint64_t shared_free = 0;
		for (int c = 16; c < 32; c++)
			shared_free += mid.free_by_colour[c];
		EXPECT_TRUE(shared_free >= 204); /* NOWAIT never goes below the reserve */
		/* ...and LAB_ATOMIC drains the reserve to the last frame. */
		unsigned atomic = drain(t.z, 3, LAB_ATOMIC, held, &n, &last);
		EXPECT_EQ(last, LAB_ENOMEM);
		EXPECT_EQ(700 + nowait + atomic, 2048);
		lab_stats(t.z, &mid);
		shared_free = 0;
		for (int c = 16; c < 32; c++)
			shared_free += mid.free_by_colour[c];
		EXPECT_EQ(shared_free, 0);
		EXPECT_TRUE(mid.reserve_allocs >= (uint64_t)(cycle + 1) * 200);
		EXPECT_EQ(lab_check(t.z), LAB_OK);

		/* Everything back. */
		for (unsigned i = 0; i < n; i++)
			ASSERT_EQ(lab_free(t.z, (lab_owner_t)(held[i] & 0xff), held[i] >> 8, 0), LAB_OK);
		lab_cpu_drain(t.z);
		snap(t.z, &after);
		EXPECT_EQ(after.st.nr_free, start.st.nr_free);
		EXPECT_EQ(after.st.nr_allocated, 0);
		EXPECT_EQ(after.st.nr_cached, 0);
		EXPECT_EQ(after.st.nr_dirty, 0);
		EXPECT_EQ(after.st.reserve_frames, start.st.reserve_frames);
		for (int c = 0; c < 32; c++)
			EXPECT_EQ(after.st.free_by_colour[c], start.st.free_by_colour[c]);
		for (int k = 0; k <= LAB_MAX_ORDER; k++)
			EXPECT_EQ(after.st.free_blocks[k], start.st.free_blocks[k]);
		for (lab_owner_t o = 1; o <= 3; o++) {
			EXPECT_EQ(after.os[o].held, 0);
			EXPECT_EQ(after.os[o].pool_free, start.os[o].pool_free);
		}
		EXPECT_EQ(after.st.allocs, after.st.frees);
		EXPECT_EQ(lab_check(t.z), LAB_OK);
	}
	tz_free(&t);
}
