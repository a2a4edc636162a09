/*
 * test_api.c - the public API, one documented behaviour per test: zone
 * set-up and its refusals, owner rules, colours, allocation flags, scrubbing,
 * the atomic reserve, quotas, owner removal, statistics and determinism.
 *
 * Zones are small and seeded (tz_make's last argument), so every run takes
 * the same path and a failure reproduces.
 */
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "labyrinth/hosted.h"
#include "labyrinth/platform.h"

#define ALL32 0xffffffffull

static const uint8_t zero_frame[LAB_FRAME_SIZE];

/* Whole frame compared, not a sample: a scrub that stops short must show. */
static bool frame_is_zero(const lab_zone_t *z, uint64_t pfn)
{
	const void *va = lab_pfn_to_virt(z, pfn);
	return va && memcmp(va, zero_frame, LAB_FRAME_SIZE) == 0;
}

static bool frame_is_byte(const lab_zone_t *z, uint64_t pfn, uint8_t b)
{
	const uint8_t *va = lab_pfn_to_virt(z, pfn);
	if (!va)
		return false;
	for (size_t i = 0; i < LAB_FRAME_SIZE; i++)
		if (va[i] != b)
			return false;
	return true;
}

static void fill_block(const lab_zone_t *z, uint64_t pfn, unsigned order, uint8_t b)
{
	memset(lab_pfn_to_virt(z, pfn), b, (size_t)LAB_FRAME_SIZE << order);
}

/* Order-0 allocations until the first failure (at most max); *rc gets it. */
static size_t alloc_until_fail(lab_zone_t *z, lab_owner_t owner, unsigned flags, uint64_t *out,
                               size_t max, int *rc)
{
	size_t n = 0;
	*rc = LAB_OK;
	while (n < max && (*rc = lab_alloc(z, owner, 0, flags, &out[n])) == LAB_OK)
		n++;
	return n;
}

static bool contains(const uint64_t *a, size_t n, uint64_t x)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] == x)
			return true;
	return false;
}

static struct lab_stats stats_of(const struct tzone *t)
{
	struct lab_stats st;
	memset(&st, 0xff, sizeof(st));
	if (lab_stats(t->z, &st) != LAB_OK)
		harness_fail(__FILE__, __LINE__, "lab_stats");
	return st;
}

/* Every frame is in exactly one of the five states lab_stats counts. */
static void expect_stats_partition(int line, const struct lab_stats *st)
{
	uint64_t sum = st->nr_free + st->nr_allocated + st->nr_unassigned + st->nr_dirty +
	               st->nr_reserved;
	uint64_t by_colour = 0;
	for (unsigned c = 0; c < LAB_MAX_COLOURS; c++)
		by_colour += st->free_by_colour[c];
	char m[200];
	if (sum != st->nr_frames) {
		snprintf(m, sizeof m, "stats partition: %llu frames counted of %llu",
		         (unsigned long long)sum, (unsigned long long)st->nr_frames);
		harness_fail(__FILE__, line, m);
	}
	if (by_colour != st->nr_free) {
		snprintf(m, sizeof m, "free_by_colour sums to %llu, nr_free %llu",
		         (unsigned long long)by_colour, (unsigned long long)st->nr_free);
		harness_fail(__FILE__, line, m);
	}
	if (st->free_blocks[0] != st->nr_free) {
		snprintf(m, sizeof m, "free_blocks[0] %llu, nr_free %llu",
		         (unsigned long long)st->free_blocks[0], (unsigned long long)st->nr_free);
		harness_fail(__FILE__, line, m);
	}
}
#define EXPECT_PARTITION(st) expect_stats_partition(__LINE__, (st))

/* Step lab_owner_remove to the end; returns the last code and the calls made. */
static int remove_all(lab_zone_t *z, lab_owner_t id, size_t budget, long *calls)
{
	int rc = LAB_EAGAIN;
	*calls = 0;
	while (rc == LAB_EAGAIN && *calls < 100000) { /* bound: a stuck removal fails, not hangs */
		rc = lab_owner_remove(z, id, budget);
		(*calls)++;
	}
	return rc;
}

/* lab_scrub until nothing is dirty; bounded, so a scrub that never
 * finishes fails the test instead of hanging it. */
static int scrub_all(lab_zone_t *z, size_t budget)
{
	int rc = LAB_EAGAIN;
	for (int i = 0; i < 10000 && rc == LAB_EAGAIN; i++)
		rc = lab_scrub(z, budget, NULL);
	return rc;
}

/* ---- zone set-up ----------------------------------------------------------- */

/* lab_zone_init must refuse with `want` and write nothing: neither the
 * metadata buffer (all 0xAA) nor *zone. */
static void init_refused(int line, bool null_zone, const uint8_t *buf, size_t buflen, void *meta,
                         size_t meta_size, const struct lab_zone_cfg *cfg, int want)
{
	static char sentinel_obj;
	lab_zone_t *const sentinel = (lab_zone_t *)(void *)&sentinel_obj;
	lab_zone_t *z = sentinel;
	char m[200];

	int rc = lab_zone_init(null_zone ? NULL : &z, meta, meta_size, cfg);
	if (rc != want) {
		snprintf(m, sizeof m, "lab_zone_init returned %d (%s), want %d (%s)", rc,
		         lab_strerror(rc), want, lab_strerror(want));
		harness_fail(__FILE__, line, m);
	}
	if (z != sentinel)
		harness_fail(__FILE__, line, "refused lab_zone_init wrote *zone");
	for (size_t i = 0; i < buflen; i++)
		if (buf[i] != 0xAA) {
			snprintf(m, sizeof m, "refused lab_zone_init wrote metadata byte %zu", i);
			harness_fail(__FILE__, line, m);
			break;
		}
}

TEST(api_zone_init_refusals)
{
	uint8_t seed[32];
	memset(seed, 7, sizeof(seed));
	uint8_t *arena = aligned_alloc(LAB_FRAME_SIZE, 256 * LAB_FRAME_SIZE);
	struct lab_zone_cfg good, c;
	lab_zone_cfg_default(&good, 0, 256, arena);
	good.flags = LAB_ZONE_ZEROED;
	good.seed = seed;
	good.seed_len = sizeof(seed);
	size_t need = lab_zone_meta_size(&good);
	ASSERT_TRUE(need > 0);
	/* Room past `need` so a misaligned meta pointer still has a whole buffer. */
	size_t len = (need + 128 + 63) & ~(size_t)63;
	uint8_t *buf = aligned_alloc(64, len);
	memset(buf, 0xAA, len);

#define REFUSED(nz, meta, size, cfgp, want) init_refused(__LINE__, nz, buf, len, meta, size, cfgp, want)
	REFUSED(true, buf, need, &good, LAB_EINVAL);
	REFUSED(false, NULL, need, &good, LAB_EINVAL);
	REFUSED(false, buf, need, NULL, LAB_EINVAL);
	REFUSED(false, buf + 8, need, &good, LAB_EINVAL);
	REFUSED(false, buf + 32, need, &good, LAB_EINVAL);

	c = good;
	c.nr_frames = 0;
	REFUSED(false, buf, need, &c, LAB_EGEOMETRY);
	c = good;
	c.nr_frames = 0;
	c.dmap_base = NULL;
	c.flags = LAB_ZONE_NO_SCRUB; /* no map to wrap */
	REFUSED(false, buf, need, &c, LAB_EGEOMETRY);
	c = good;
	c.nr_frames = 1ull << 32; /* allowed (16 TiB): it needs 32 GiB of metadata */
	{
		size_t per_frame = 0, fixed = 0;
		lab_meta_breakdown(&c, &per_frame, &fixed);
		EXPECT_EQ(per_frame, 8);
		EXPECT_EQ(lab_zone_meta_size(&c), fixed + (8ull << 32));
		EXPECT_TRUE(fixed < (1u << 20));
	}
	REFUSED(false, buf, need, &c, LAB_ENOSPC);
	c.nr_colours = 1; /* one slice of 2^32 slots would not fit 32 bits */
	REFUSED(false, buf, need, &c, LAB_EGEOMETRY);
	c = good;
	c.nr_frames = (1ull << 32) + 1;
	REFUSED(false, buf, need, &c, LAB_EGEOMETRY);
	c = good;
	c.nr_frames = UINT64_MAX;
	REFUSED(false, buf, need, &c, LAB_EGEOMETRY);
	c = good;
	c.base_pfn = 1ull << 52; /* direct-map addresses would pass 2^64 */
	REFUSED(false, buf, need, &c, LAB_EGEOMETRY);
	const uint32_t bad_colours[] = {0, 3, 6, 48, 128, 0x80000000u};
	for (size_t i = 0; i < sizeof(bad_colours) / sizeof(bad_colours[0]); i++) {
		c = good;
		c.nr_colours = bad_colours[i];
		REFUSED(false, buf, need, &c, LAB_EGEOMETRY);
	}
	c = good;
	c.dmap_base = arena + 1;
	REFUSED(false, buf, need, &c, LAB_EGEOMETRY);
	c = good;
	c.dmap_base = arena + LAB_FRAME_SIZE / 2;
	REFUSED(false, buf, need, &c, LAB_EGEOMETRY);

	REFUSED(false, buf, need - 1, &good, LAB_ENOSPC);
	REFUSED(false, buf, 0, &good, LAB_ENOSPC);

	c = good;
	c.nr_cpus = 0;
	REFUSED(false, buf, need, &c, LAB_EINVAL);
	c = good;
	c.nr_cpus = LAB_MAX_CPUS + 1;
	REFUSED(false, buf, need, &c, LAB_EINVAL);
	c = good;
	c.max_owners = 0;
	REFUSED(false, buf, need, &c, LAB_EINVAL);
	c = good;
	c.max_owners = LAB_MAX_OWNERS + 1;
	REFUSED(false, buf, need, &c, LAB_EINVAL);
	c = good;
	c.reserve_permille = 1001;
	REFUSED(false, buf, need, &c, LAB_EINVAL);
	c = good;
	c.flags = LAB_ZONE_ZEROED | 0x8u;
	REFUSED(false, buf, need, &c, LAB_EINVAL);
	c = good;
	c.flags = 0x80000000u;
	REFUSED(false, buf, need, &c, LAB_EINVAL);
	c = good;
	c.dmap_base = NULL; /* required unless NO_SCRUB */
	REFUSED(false, buf, need, &c, LAB_EINVAL);

	c = good;
	c.seed_len = 31;
	REFUSED(false, buf, need, &c, LAB_EENTROPY);
	c = good;
	c.seed_len = 0;
	REFUSED(false, buf, need, &c, LAB_EENTROPY);

	c = good;
	c.seed = NULL;
	c.seed_len = 0;
	lab_hosted_entropy_fault(1);
	REFUSED(false, buf, need, &c, LAB_EENTROPY);
	lab_hosted_entropy_fault(2); /* "succeeds" with zeroes: broken, not lucky */
	REFUSED(false, buf, need, &c, LAB_EENTROPY);
	lab_hosted_entropy_fault(0);
#undef REFUSED

	/* The same buffer and settings are accepted, so each refusal above was
	 * about the one field it changed. */
	lab_zone_t *z = NULL;
	EXPECT_EQ(lab_zone_init(&z, buf, need, &good), LAB_OK);
	EXPECT_TRUE(z == (lab_zone_t *)(void *)buf);
	EXPECT_EQ(lab_check(z), LAB_OK);
	z = NULL;
	EXPECT_EQ(lab_zone_init(&z, buf, need, &c), LAB_OK); /* entropy source restored */
	EXPECT_EQ(lab_check(z), LAB_OK);
	free(buf);
	free(arena);
}

TEST(api_zone_meta_size)
{
	struct lab_zone_cfg c;
	void *dmap = (void *)(uintptr_t)0x40000000u; /* only checked, never touched */
	size_t m[3], pf[3], fixed[3];
	const uint64_t n[3] = {1024, 2048, 4096};

	for (int i = 0; i < 3; i++) {
		lab_zone_cfg_default(&c, 0, n[i], dmap);
		m[i] = lab_zone_meta_size(&c);
		pf[i] = fixed[i] = 12345;
		lab_meta_breakdown(&c, &pf[i], &fixed[i]);
		EXPECT_EQ(pf[i], 8);
		EXPECT_EQ(fixed[i] + 8 * n[i], m[i]);
	}
	EXPECT_TRUE(m[0] > 0 && m[0] < m[1] && m[1] < m[2]);
	EXPECT_EQ(m[1] - m[0], 8 * 1024);
	EXPECT_EQ(m[2] - m[1], 8 * 2048);
	EXPECT_EQ(fixed[0], fixed[2]); /* the fixed part does not depend on nr_frames */

	/* ... but grows with CPUs, colours and owners. */
	lab_zone_cfg_default(&c, 0, 1024, dmap);
	c.nr_cpus = 4;
	EXPECT_TRUE(lab_zone_meta_size(&c) > m[0]);
	lab_zone_cfg_default(&c, 0, 1024, dmap);
	c.nr_colours = 64;
	EXPECT_TRUE(lab_zone_meta_size(&c) > m[0]);
	lab_zone_cfg_default(&c, 0, 1024, dmap);
	c.max_owners = 1000;
	EXPECT_TRUE(lab_zone_meta_size(&c) > m[0]);

	/* Frame numbers are 32-bit: 2^32 frames (16 TiB) is the largest zone. */
	lab_zone_cfg_default(&c, 0, 0xffffffffull, dmap);
	EXPECT_TRUE(lab_zone_meta_size(&c) >= 8 * 0xffffffffull);
	lab_zone_cfg_default(&c, 0, 1ull << 32, dmap);
	EXPECT_TRUE(lab_zone_meta_size(&c) >= 8ull << 32);
	lab_zone_cfg_default(&c, 0, (1ull << 32) + 1, dmap);
	EXPECT_EQ(lab_zone_meta_size(&c), 0);
	/* With one colour the slice (rounded up to even) must fit 32 bits too. */
	lab_zone_cfg_default(&c, 0, 0xffffffffull, dmap);
	c.nr_colours = 1;
	EXPECT_EQ(lab_zone_meta_size(&c), 0);
	lab_zone_cfg_default(&c, 0, 0xfffffffeull, dmap);
	c.nr_colours = 1;
	EXPECT_TRUE(lab_zone_meta_size(&c) >= 8 * 0xfffffffeull);

	EXPECT_EQ(lab_zone_meta_size(NULL), 0);
	lab_zone_cfg_default(&c, 0, 0, dmap);
	EXPECT_EQ(lab_zone_meta_size(&c), 0);
	lab_zone_cfg_default(&c, 0, (1ull << 32) + 1, dmap);
	EXPECT_EQ(lab_zone_meta_size(&c), 0);
	lab_zone_cfg_default(&c, 0, 1024, dmap);
	c.nr_colours = 12;
	EXPECT_EQ(lab_zone_meta_size(&c), 0);
	size_t a = 1, b = 1;
	lab_meta_breakdown(&c, &a, &b);
	EXPECT_EQ(a, 0);
	EXPECT_EQ(b, 0);
	lab_zone_cfg_default(&c, 0, 1024, dmap);
	c.flags = 0x10;
	EXPECT_EQ(lab_zone_meta_size(&c), 0);
	lab_zone_cfg_default(&c, 0, 1024, dmap);
	c.max_owners = 0;
	EXPECT_EQ(lab_zone_meta_size(&c), 0);

	/* A zone built in exactly meta_size bytes passes its own check. */
	struct tzone t = tz_make(1024, 32, 1, 0, 1);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- owners ---------------------------------------------------------------- */

TEST(api_owner_add_rules)
{
	struct tzone t = tz_make(1024, 32, 1, 0, 11);
	struct lab_owner_cfg oc;
	uint64_t h = tz_hash(&t);

#define ADD_REFUSED(id, col, fl, want)                                                 \
	do {                                                                           \
		oc = (struct lab_owner_cfg){.colours = (col), .flags = (fl)};          \
		EXPECT_EQ(lab_owner_add(t.z, (id), &oc), (want));                      \
		EXPECT_TRUE(tz_hash(&t) == h);                                         \
	} while (0)

	ADD_REFUSED(0, 0x1, 0, LAB_ENOOWNER);
	ADD_REFUSED(65, 0x1, 0, LAB_ENOOWNER); /* max_owners is 64 */
	ADD_REFUSED(LAB_MAX_OWNERS + 1, 0x1, 0, LAB_ENOOWNER);
	ADD_REFUSED(1, 0, 0, LAB_EINVAL);
	ADD_REFUSED(1, 1ull << 32, 0, LAB_EINVAL); /* nr_colours is 32 */
	ADD_REFUSED(1, 0x1 | (1ull << 63), LAB_OWNER_EXCLUSIVE, LAB_EINVAL);
	ADD_REFUSED(1, 0x1, 0x2, LAB_EINVAL);
	EXPECT_EQ(lab_owner_add(t.z, 1, NULL), LAB_EINVAL);
	EXPECT_TRUE(tz_hash(&t) == h);

	tz_owner(&t, 1, 0x0f, 0, true);  /* exclusive, colours 0..3 */
	tz_owner(&t, 2, 0xf0, 0, false); /* shared, colours 4..7 */
	h = tz_hash(&t);

	ADD_REFUSED(1, 0xf00, 0, LAB_EEXIST);
	ADD_REFUSED(2, 0xf0, 0, LAB_EEXIST);
	ADD_REFUSED(2, 0xf00, LAB_OWNER_EXCLUSIVE, LAB_EEXIST);

	ADD_REFUSED(3, 0x0f, LAB_OWNER_EXCLUSIVE, LAB_EOVERLAP); /* same as exclusive 1 */
	ADD_REFUSED(3, 0x0c, LAB_OWNER_EXCLUSIVE, LAB_EOVERLAP); /* part of it */
	tz_owner(&t, 3, 0x30f00, 0, true); /* disjoint from both: colours 8..11, 16..17 */
	h = tz_hash(&t);
	ADD_REFUSED(4, 0x10000, LAB_OWNER_EXCLUSIVE, LAB_EOVERLAP);
	ADD_REFUSED(4, 0xf0, LAB_OWNER_EXCLUSIVE, LAB_ESHARED);  /* exactly the shared pool */
	ADD_REFUSED(4, 0x30, LAB_OWNER_EXCLUSIVE, LAB_ESHARED);  /* part of it */
	ADD_REFUSED(4, 0xff000f0, LAB_OWNER_EXCLUSIVE, LAB_ESHARED); /* more than it */
	ADD_REFUSED(4, 0x0f, 0, LAB_EOVERLAP);     /* shared on an exclusive owner's colours */
	ADD_REFUSED(4, 0x01, 0, LAB_EOVERLAP);
	ADD_REFUSED(4, 0x10000, 0, LAB_EOVERLAP);
	tz_owner(&t, 4, 0xf0000000, 0, false);
	h = tz_hash(&t);
	ADD_REFUSED(5, 0x30, 0, LAB_EOVERLAP);      /* part of the shared pool */
	ADD_REFUSED(5, 0x1f0, 0, LAB_EOVERLAP);     /* more than it */
	ADD_REFUSED(5, 0xf000f0, 0, LAB_EOVERLAP);
#undef ADD_REFUSED

	struct lab_stats st = stats_of(&t);
	EXPECT_EQ(st.nr_owners, 4);
	EXPECT_EQ(st.nr_pools, 4);

	/* Identical shared colours: one pool, so both owners see the same free count. */
	tz_owner(&t, 5, 0xf0, 0, false);
	st = stats_of(&t);
	EXPECT_EQ(st.nr_owners, 5);
	EXPECT_EQ(st.nr_pools, 4);
	struct lab_owner_stats a, b;
	ASSERT_EQ(lab_owner_stats(t.z, 2, &a), LAB_OK);
	ASSERT_EQ(lab_owner_stats(t.z, 5, &b), LAB_OK);
	EXPECT_EQ(a.pool_free, 4 * 32); /* 4 colours of 32 frames each */
	EXPECT_EQ(b.pool_free, a.pool_free);
	EXPECT_EQ(a.colours, 0xf0);
	EXPECT_TRUE(!a.exclusive && !b.exclusive);
	uint64_t p2, p5;
	ASSERT_EQ(lab_alloc(t.z, 2, 0, LAB_NOWAIT, &p2), LAB_OK);
	ASSERT_EQ(lab_alloc(t.z, 5, 0, LAB_NOWAIT, &p5), LAB_OK);
	EXPECT_TRUE(p2 != p5);
	lab_owner_stats(t.z, 2, &a);
	lab_owner_stats(t.z, 5, &b);
	EXPECT_EQ(a.pool_free, 4 * 32 - 2);
	EXPECT_EQ(b.pool_free, 4 * 32 - 2);
	EXPECT_EQ(a.held, 1);
	EXPECT_EQ(b.held, 1);
	ASSERT_EQ(lab_owner_stats(t.z, 1, &a), LAB_OK);
	EXPECT_EQ(a.pool_free, 4 * 32); /* the other pools are untouched */
	EXPECT_TRUE(a.exclusive);
	EXPECT_EQ(lab_free(t.z, 2, p2, 0), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 5, p5, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- colours and flags ------------------------------------------------------- */

TEST(api_alloc_colours)
{
	struct tzone t = tz_make(8192, 64, 1, 0, 12);
	const uint64_t shared = 0xffffull, excl = 0xffff0000ull, excl8 = 0xff00000000ull;
	tz_owner(&t, 1, shared, 0, false);
	tz_owner(&t, 2, excl, 0, true);
	tz_owner(&t, 3, excl8, 0, true);
	const struct { lab_owner_t id; uint64_t mask; unsigned max_order; } who[3] = {
		{1, shared, 4}, {2, excl, 4}, {3, excl8, 3}};
	uint64_t got[16];

	for (int w = 0; w < 3; w++) {
		for (unsigned k = 0; k <= who[w].max_order; k++) {
			lab_cpu_drain(t.z); /* cached frames would only cost probes */
			for (int i = 0; i < 16; i++) {
				ASSERT_EQ(lab_alloc(t.z, who[w].id, k, LAB_NOWAIT, &got[i]), LAB_OK);
				EXPECT_EQ(got[i] & ((1u << k) - 1), 0);
				for (uint64_t j = 0; j < (1u << k); j++)
					EXPECT_TRUE(who[w].mask >> ((got[i] + j) & 63) & 1);
			}
			for (int i = 0; i < 16; i++)
				ASSERT_EQ(lab_free(t.z, who[w].id, got[i], k), LAB_OK);
		}
	}
	/* 8 colours hold no block of 16 consecutive colours; 16 none of 32. */
	uint64_t pfn = 77;
	EXPECT_EQ(lab_alloc(t.z, 3, 4, LAB_NOWAIT, &pfn), LAB_ECOLOUR);
	EXPECT_EQ(pfn, 77);
	EXPECT_EQ(lab_alloc(t.z, 3, 4, LAB_ATOMIC | LAB_EXCLUSIVE, &pfn), LAB_ECOLOUR);
	EXPECT_EQ(lab_alloc(t.z, 1, 5, LAB_NOWAIT, &pfn), LAB_ECOLOUR);
	EXPECT_EQ(lab_alloc(t.z, 2, 5, LAB_NOWAIT, &pfn), LAB_ECOLOUR);
	EXPECT_EQ(pfn, 77);
	struct lab_stats st = stats_of(&t);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(api_alloc_exclusive_flag)
{
	struct tzone t = tz_make(1024, 32, 1, 0, 13);
	tz_owner(&t, 1, 0x00ff, 0, true);
	tz_owner(&t, 2, 0xff00, 0, false);
	uint64_t a, b, x = 99;

	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT | LAB_EXCLUSIVE, &a), LAB_OK);
	EXPECT_TRUE(0x00ff >> (a & 31) & 1);
	ASSERT_EQ(lab_alloc(t.z, 1, 2, LAB_ATOMIC | LAB_EXCLUSIVE, &b), LAB_OK);
	struct lab_stats before = stats_of(&t);
	EXPECT_EQ(lab_alloc(t.z, 2, 0, LAB_NOWAIT | LAB_EXCLUSIVE, &x), LAB_ENOTEXCL);
	EXPECT_EQ(lab_alloc(t.z, 2, 2, LAB_ATOMIC | LAB_EXCLUSIVE | LAB_ZERO, &x), LAB_ENOTEXCL);
	EXPECT_EQ(x, 99);
	struct lab_stats after = stats_of(&t);
	EXPECT_EQ(after.allocs, before.allocs);
	EXPECT_EQ(after.nr_allocated, before.nr_allocated);
	struct lab_owner_stats os;
	ASSERT_EQ(lab_owner_stats(t.z, 2, &os), LAB_OK);
	EXPECT_EQ(os.held, 0);
	/* The same owner without the flag is served. */
	ASSERT_EQ(lab_alloc(t.z, 2, 0, LAB_NOWAIT, &x), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 2, x, 0), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, a, 0), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, b, 2), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- zeroing ---------------------------------------------------------------- */

TEST(api_zero_exclusive)
{
	struct tzone t = tz_make(1024, 32, 1, 0, 14);
	tz_owner(&t, 1, 0xf, 0, true); /* 4 colours x 32 frames */
	static uint64_t p[256];
	uint64_t dirty[8];
	int rc;

	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &dirty[i]), LAB_OK);
		fill_block(t.z, dirty[i], 0, 0xFF);
	}
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(lab_free(t.z, 1, dirty[i], 0), LAB_OK);

	/* An exclusive pool does not scrub on free (the next holder is the same
	 * owner): without LAB_ZERO the pattern comes back, so the LAB_ZERO pass
	 * below has something to clear. */
	size_t n = alloc_until_fail(t.z, 1, LAB_ATOMIC, p, 256, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	ASSERT_EQ(n, 128);
	size_t patterned = 0;
	for (size_t i = 0; i < n; i++)
		patterned += frame_is_byte(t.z, p[i], 0xFF);
	EXPECT_EQ(patterned, 8);
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 1, p[i], 0), LAB_OK);

	n = alloc_until_fail(t.z, 1, LAB_ATOMIC | LAB_ZERO, p, 256, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	ASSERT_EQ(n, 128);
	for (int i = 0; i < 8; i++)
		EXPECT_TRUE(contains(p, n, dirty[i]));
	for (size_t i = 0; i < n; i++)
		EXPECT_TRUE(frame_is_zero(t.z, p[i]));
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 1, p[i], 0), LAB_OK);

	/* Order > 0 too. */
	uint64_t blk;
	ASSERT_EQ(lab_alloc(t.z, 1, 2, LAB_ATOMIC, &blk), LAB_OK);
	fill_block(t.z, blk, 2, 0xFF);
	ASSERT_EQ(lab_free(t.z, 1, blk, 2), LAB_OK);
	lab_cpu_drain(t.z);
	uint64_t blks[32];
	int nb = 0;
	while (nb < 32 && lab_alloc(t.z, 1, 2, LAB_ATOMIC | LAB_ZERO, &blks[nb]) == LAB_OK)
		nb++;
	EXPECT_TRUE(contains(blks, (size_t)nb, blk));
	for (int i = 0; i < nb; i++)
		for (uint64_t j = 0; j < 4; j++)
			EXPECT_TRUE(frame_is_zero(t.z, blks[i] + j));
	for (int i = 0; i < nb; i++)
		ASSERT_EQ(lab_free(t.z, 1, blks[i], 2), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(api_zero_shared_scrub)
{
	struct tzone t = tz_make(1024, 32, 1, 0, 15);
	tz_owner(&t, 1, 0xf0, 0, false);
	tz_owner(&t, 2, 0xf0, 0, false);
	static uint64_t pa[256], pb[256];
	int rc;

	size_t na = alloc_until_fail(t.z, 1, LAB_ATOMIC, pa, 256, &rc);
	ASSERT_EQ(na, 128);
	for (size_t i = 0; i < na; i++)
		fill_block(t.z, pa[i], 0, (uint8_t)(i | 1));
	for (size_t i = 0; i < na; i++)
		ASSERT_EQ(lab_free(t.z, 1, pa[i], 0), LAB_OK);

	size_t nb = alloc_until_fail(t.z, 2, LAB_ATOMIC, pb, 256, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	ASSERT_EQ(nb, 128); /* every frame of the pool, so every frame A wrote */
	for (size_t i = 0; i < nb; i++)
		EXPECT_TRUE(frame_is_zero(t.z, pb[i]));
	struct lab_stats st = stats_of(&t);
	EXPECT_EQ(st.scrubbed, 128); /* one scrub per order-0 free, none elsewhere */
	for (size_t i = 0; i < nb; i++)
		ASSERT_EQ(lab_free(t.z, 2, pb[i], 0), LAB_OK);

	/* An order-2 block written by A and freed reaches B zeroed as well. */
	uint64_t blk, got[32];
	ASSERT_EQ(lab_alloc(t.z, 1, 2, LAB_ATOMIC, &blk), LAB_OK);
	fill_block(t.z, blk, 2, 0x77);
	ASSERT_EQ(lab_free(t.z, 1, blk, 2), LAB_OK);
	for (uint64_t j = 0; j < 4; j++)
		EXPECT_TRUE(frame_is_zero(t.z, blk + j));
	size_t ng = alloc_until_fail(t.z, 2, LAB_ATOMIC, got, 32, &rc);
	for (size_t i = 0; i < ng; i++)
		EXPECT_TRUE(frame_is_zero(t.z, got[i]));
	for (size_t i = 0; i < ng; i++)
		ASSERT_EQ(lab_free(t.z, 2, got[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- orders ------------------------------------------------------------------ */

TEST(api_orders_frame_owner)
{
	struct tzone t = tz_make(8192, 32, 1, 0, 16);
	tz_owner(&t, 7, ALL32, 0, false);
	for (unsigned k = 0; k <= LAB_MAX_ORDER; k++) {
		uint64_t pfn, K = 1ull << k;
		lab_cpu_drain(t.z);
		ASSERT_EQ(lab_alloc(t.z, 7, k, LAB_NOWAIT, &pfn), LAB_OK);
		EXPECT_EQ(pfn & (K - 1), 0);
		EXPECT_TRUE(pfn + K <= 8192);
		for (uint64_t i = 0; i < K; i++) {
			lab_owner_t o = 0;
			unsigned ord = 99;
			ASSERT_EQ(lab_frame_owner(t.z, pfn + i, &o, &ord), LAB_OK);
			EXPECT_EQ(o, 7);
			EXPECT_EQ(ord, k);
		}
		/* Neighbours are not part of the block. */
		lab_owner_t o = 99;
		if (pfn + K < 8192) {
			ASSERT_EQ(lab_frame_owner(t.z, pfn + K, &o, NULL), LAB_OK);
			EXPECT_EQ(o, 0);
		}
		struct lab_stats st = stats_of(&t);
		EXPECT_EQ(st.nr_allocated, K);
		EXPECT_EQ(lab_check(t.z), LAB_OK);
		ASSERT_EQ(lab_free(t.z, 7, pfn, k), LAB_OK);
		for (uint64_t i = 0; i < K; i++) {
			o = 99;
			ASSERT_EQ(lab_frame_owner(t.z, pfn + i, &o, NULL), LAB_OK);
			EXPECT_EQ(o, 0);
		}
		st = stats_of(&t);
		EXPECT_EQ(st.nr_allocated, 0);
	}
	lab_owner_t o;
	EXPECT_EQ(lab_frame_owner(t.z, 8192, &o, NULL), LAB_ERANGE);
	EXPECT_EQ(lab_frame_owner(t.z, 0, NULL, NULL), LAB_EINVAL);
	uint64_t pfn;
	EXPECT_EQ(lab_alloc(t.z, 7, LAB_MAX_ORDER + 1, LAB_NOWAIT, &pfn), LAB_EORDER);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- reserve and quota ---------------------------------------------------------- */

TEST(api_reserve_atomic)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, 1024, NULL);
	cfg.flags = LAB_ZONE_ZEROED;
	cfg.reserve_permille = 100;
	struct tzone t = tz_make_cfg(&cfg, 17);
	tz_owner(&t, 1, ALL32, 0, false);
	static uint64_t p[1100];
	int rc;

	struct lab_stats st = stats_of(&t);
	EXPECT_EQ(st.reserve_frames, 102); /* 10% of the pool's 1024 frames, rounded down */
	size_t n = alloc_until_fail(t.z, 1, LAB_NOWAIT, p, 1100, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	/* With one CPU the pool array plus this CPU's cache is every free frame,
	 * so NOWAIT stops exactly at the reserve, not before, not after. */
	EXPECT_EQ(n, 1024 - 102);
	st = stats_of(&t);
	EXPECT_EQ(st.nr_free, 102);
	EXPECT_EQ(st.reserve_allocs, 0);
	EXPECT_EQ(st.fail_nomem, 1);
	uint64_t x;
	EXPECT_EQ(lab_alloc(t.z, 1, 0, 0, &x), LAB_ENOMEM); /* no flag is NOWAIT */
	EXPECT_EQ(lab_alloc(t.z, 1, 1, LAB_NOWAIT, &x), LAB_ENOMEM);
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_ZERO, &x), LAB_ENOMEM);

	size_t m = n + alloc_until_fail(t.z, 1, LAB_ATOMIC, p + n, 1100 - n, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	EXPECT_EQ(m, 1024);
	st = stats_of(&t);
	EXPECT_EQ(st.nr_free, 0);
	EXPECT_EQ(st.reserve_allocs, m - n);
	EXPECT_TRUE(st.reserve_allocs > 0);
	for (size_t i = 0; i < m; i++)
		ASSERT_EQ(lab_free(t.z, 1, p[i], 0), LAB_OK);
	/* Back above the reserve: NOWAIT works again. */
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &x), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, x, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* A LAB_NOWAIT call refused at the reserve must not move the reserve into
 * this CPU's cache (it refilled first until 2026-11-28): another CPU's
 * LAB_ATOMIC call must still find it. */
static lab_zone_t *atomic_zone;
static int atomic_rc;
static void *atomic_elsewhere(void *arg)
{
	(void)arg;
	uint64_t x;
	atomic_rc = lab_alloc(atomic_zone, 1, 0, LAB_ATOMIC, &x);
	return NULL;
}

TEST(api_refused_nowait_leaves_reserve_reachable)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, 4096, NULL);
	cfg.flags = LAB_ZONE_ZEROED;
	cfg.nr_colours = 4;
	cfg.nr_cpus = 4;
	cfg.reserve_permille = 4;
	struct tzone t = tz_make_cfg(&cfg, 18);
	tz_owner(&t, 1, 0x1, 0, false); /* 1024 frames, a reserve of 4 */
	static uint64_t p[1100];
	int rc;
	size_t n = alloc_until_fail(t.z, 1, LAB_NOWAIT, p, 1100, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	EXPECT_EQ(n, 1020);
	struct lab_stats st = stats_of(&t);
	EXPECT_EQ(st.nr_free, 4);
	EXPECT_EQ(st.nr_cached, 0); /* nor did the refused call take them */
	uint64_t x;
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &x), LAB_ENOMEM); /* again */
	st = stats_of(&t);
	EXPECT_EQ(st.nr_cached, 0);
	atomic_zone = t.z;
	pthread_t th;
	ASSERT_EQ(pthread_create(&th, NULL, atomic_elsewhere, NULL), 0);
	pthread_join(th, NULL);
	EXPECT_EQ(atomic_rc, LAB_OK); /* the reserve, from another CPU */
	EXPECT_EQ(lab_cpu_drain(t.z), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* lab_stats' reserve_allocs counts allocations that dipped into the
 * reserve, not LAB_ATOMIC calls that failed there (it did until 2026-11-28). */
TEST(api_reserve_allocs_counts_successes)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, 2048, NULL);
	cfg.flags = LAB_ZONE_ZEROED;
	cfg.nr_colours = 4;
	cfg.reserve_permille = 100;
	struct tzone t = tz_make_cfg(&cfg, 19);
	tz_owner(&t, 1, 0xf, 0, false);
	static uint64_t p[2100];
	int rc;
	size_t n = alloc_until_fail(t.z, 1, LAB_NOWAIT, p, 2100, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	struct lab_stats st = stats_of(&t);
	EXPECT_EQ(st.reserve_allocs, 0);
	/* Order 7 (128 frames) out of ~200 scattered free frames: the probes fail. */
	uint64_t ok = 0, x;
	for (int i = 0; i < 10; i++)
		if (lab_alloc(t.z, 1, 7, LAB_ATOMIC, &x) == LAB_OK) {
			ok++;
			EXPECT_EQ(lab_free(t.z, 1, x, 7), LAB_OK);
		}
	st = stats_of(&t);
	EXPECT_EQ(st.reserve_allocs, ok);
	EXPECT_EQ(st.fail_frag + ok, 10);
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 1, p[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* An order no aligned block of the owner's colours inside the zone can hold
 * is refused (LAB_ECOLOUR), not reported as "no memory now, retry later"
 * (LAB_ENOMEM, LAB_EFRAG), even in an empty zone (until 2026-11-28). */
TEST(api_order_the_zone_cannot_hold)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 1000, 1024, NULL); /* [1000, 2024): no aligned 1024 */
	cfg.flags = LAB_ZONE_ZEROED;
	struct tzone t = tz_make_cfg(&cfg, 20);
	tz_owner(&t, 1, ALL32, 0, false);
	uint64_t x, h = tz_hash(&t);
	EXPECT_EQ(lab_alloc(t.z, 1, 10, LAB_ATOMIC, &x), LAB_ECOLOUR);
	EXPECT_EQ(tz_hash(&t), h);
	ASSERT_EQ(lab_alloc(t.z, 1, 9, LAB_ATOMIC, &x), LAB_OK); /* [1024, 1536) */
	EXPECT_EQ(x, 1024);
	EXPECT_EQ(lab_free(t.z, 1, x, 9), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);

	t = tz_make(16, 4, 1, 0, 21); /* smaller than the block */
	tz_owner(&t, 1, 0xf, 0, false);
	EXPECT_EQ(lab_alloc(t.z, 1, 5, LAB_ATOMIC, &x), LAB_ECOLOUR);
	ASSERT_EQ(lab_alloc(t.z, 1, 4, LAB_ATOMIC, &x), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, x, 4), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* lab_free_of frees only for the owner's incarnation it names: once the
 * owner was removed and added again, the same block in the new owner's
 * hands is not the old caller's to free. */
TEST(api_free_of_incarnation)
{
	struct tzone t = tz_make(1024, 4, 1, 0, 22);
	tz_owner(&t, 1, 0x1, 0, false);
	tz_owner(&t, 2, 0x1, 0, false);
	uint64_t a, x;
	uint32_t inc = lab_owner_incarnation(t.z, 1);
	EXPECT_EQ(inc, 1);
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &a), LAB_OK);
	int rc, k = 0;
	while ((rc = lab_owner_remove(t.z, 1, 1u << 20)) == LAB_EAGAIN && ++k < 100)
		;
	ASSERT_EQ(rc, LAB_OK);
	tz_owner(&t, 1, 0x1, 0, false);
	EXPECT_EQ(lab_owner_incarnation(t.z, 1), 2);
	bool got = false;
	for (int i = 0; i < 256 && !got; i++) {
		ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_ATOMIC, &x), LAB_OK);
		got = x == a;
	}
	ASSERT_TRUE(got);
	uint64_t h = tz_hash(&t);
	EXPECT_EQ(lab_free_of(t.z, 1, inc, a, 0), LAB_ENOOWNER);
	EXPECT_EQ(tz_hash(&t), h);
	lab_owner_t who = 0;
	EXPECT_EQ(lab_frame_owner(t.z, a, &who, NULL), LAB_OK);
	EXPECT_EQ(who, 1);
	EXPECT_EQ(lab_free_of(t.z, 1, inc + 1, a, 0), LAB_OK);
	EXPECT_EQ(lab_owner_incarnation(t.z, 0), 0);
	EXPECT_EQ(lab_owner_incarnation(NULL, 1), 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(api_quota)
{
	struct tzone t = tz_make(1024, 32, 1, 0, 18);
	tz_owner(&t, 1, 0xffff, 37, false);
	tz_owner(&t, 2, 0xffff0000, 10, true);
	uint64_t p[64], x;
	struct lab_owner_stats os;
	int rc;

	size_t n = alloc_until_fail(t.z, 1, LAB_NOWAIT, p, 64, &rc);
	EXPECT_EQ(rc, LAB_EQUOTA);
	EXPECT_EQ(n, 37);
	ASSERT_EQ(lab_owner_stats(t.z, 1, &os), LAB_OK);
	EXPECT_EQ(os.held, 37);
	EXPECT_EQ(os.quota, 37);
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_ATOMIC, &x), LAB_EQUOTA); /* the reserve is no way round */
	ASSERT_EQ(lab_free(t.z, 1, p[5], 0), LAB_OK);
	lab_owner_stats(t.z, 1, &os);
	EXPECT_EQ(os.held, 36);
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p[5]), LAB_OK);
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &x), LAB_EQUOTA);
	lab_owner_stats(t.z, 1, &os);
	EXPECT_EQ(os.held, 37);
	struct lab_stats st = stats_of(&t);
	EXPECT_EQ(st.fail_quota, 3);

	/* Orders count 2^k frames. */
	uint64_t b3, b1, b1b;
	ASSERT_EQ(lab_alloc(t.z, 2, 3, LAB_NOWAIT, &b3), LAB_OK);
	EXPECT_EQ(lab_alloc(t.z, 2, 2, LAB_NOWAIT, &x), LAB_EQUOTA); /* 8 + 4 > 10 */
	ASSERT_EQ(lab_alloc(t.z, 2, 1, LAB_NOWAIT, &b1), LAB_OK);   /* 8 + 2 = 10 */
	EXPECT_EQ(lab_alloc(t.z, 2, 0, LAB_NOWAIT, &x), LAB_EQUOTA);
	ASSERT_EQ(lab_owner_stats(t.z, 2, &os), LAB_OK);
	EXPECT_EQ(os.held, 10);
	ASSERT_EQ(lab_free(t.z, 2, b1, 1), LAB_OK);
	lab_owner_stats(t.z, 2, &os);
	EXPECT_EQ(os.held, 8);
	ASSERT_EQ(lab_alloc(t.z, 2, 1, LAB_NOWAIT, &b1b), LAB_OK);
	EXPECT_EQ(lab_alloc(t.z, 2, 0, LAB_NOWAIT, &x), LAB_EQUOTA);
	lab_owner_stats(t.z, 2, &os);
	EXPECT_EQ(os.held, 10);
	/* A failed order > 0 attempt leaves no trace in the count. */
	ASSERT_EQ(lab_free(t.z, 2, b3, 3), LAB_OK);
	EXPECT_EQ(lab_alloc(t.z, 2, 4, LAB_NOWAIT, &x), LAB_EQUOTA);
	lab_owner_stats(t.z, 2, &os);
	EXPECT_EQ(os.held, 2);
	ASSERT_EQ(lab_alloc(t.z, 2, 3, LAB_NOWAIT, &b3), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);

	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 1, p[i], 0), LAB_OK);
	ASSERT_EQ(lab_free(t.z, 2, b3, 3), LAB_OK);
	ASSERT_EQ(lab_free(t.z, 2, b1b, 1), LAB_OK);
	lab_owner_stats(t.z, 1, &os);
	EXPECT_EQ(os.held, 0);
	lab_owner_stats(t.z, 2, &os);
	EXPECT_EQ(os.held, 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(api_quota_after_nomem)
{
	/* Failing for want of frames must not use up quota: owner 2 drains the
	 * pool it shares with owner 1 (quota 10), owner 1 fails a few times,
	 * and once frames are back it still gets its whole quota. */
	struct tzone t = tz_make(1024, 32, 1, 0, 28);
	tz_owner(&t, 1, 0xf, 10, false);
	tz_owner(&t, 2, 0xf, 0, false);
	static uint64_t all[256];
	uint64_t p[16], x;
	int rc;

	size_t n = alloc_until_fail(t.z, 2, LAB_ATOMIC, all, 256, &rc);
	ASSERT_EQ(n, 128);
	for (int i = 0; i < 5; i++) {
		EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_ATOMIC, &x), LAB_ENOMEM);
		EXPECT_EQ(lab_alloc(t.z, 1, 1, LAB_ATOMIC, &x), LAB_ENOMEM);
	}
	struct lab_owner_stats os;
	ASSERT_EQ(lab_owner_stats(t.z, 1, &os), LAB_OK);
	EXPECT_EQ(os.held, 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 2, all[i], 0), LAB_OK);
	size_t m = alloc_until_fail(t.z, 1, LAB_NOWAIT, p, 16, &rc);
	EXPECT_EQ(rc, LAB_EQUOTA);
	EXPECT_EQ(m, 10);
	for (size_t i = 0; i < m; i++)
		ASSERT_EQ(lab_free(t.z, 1, p[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- addresses ------------------------------------------------------------------ */

TEST(api_page_roundtrip)
{
	struct tzone t = tz_make(1024, 32, 1, 0, 19);
	tz_owner(&t, 1, ALL32, 0, false);
	uint8_t *arena = t.arena;
	uint64_t pfn = 0;

	uint8_t *va = lab_alloc_page(t.z, 1, LAB_NOWAIT);
	ASSERT_TRUE(va != NULL);
	EXPECT_TRUE(va >= arena && va < arena + 1024 * LAB_FRAME_SIZE);
	EXPECT_EQ((uintptr_t)va & (LAB_FRAME_SIZE - 1), 0);
	ASSERT_EQ(lab_virt_to_pfn(t.z, va, &pfn), LAB_OK);
	EXPECT_EQ(pfn, (uint64_t)(va - arena) / LAB_FRAME_SIZE);
	EXPECT_TRUE(lab_pfn_to_virt(t.z, pfn) == va);
	lab_owner_t o = 0;
	lab_frame_owner(t.z, pfn, &o, NULL);
	EXPECT_EQ(o, 1);
	memset(va, 0x42, LAB_FRAME_SIZE); /* the frame is really ours to write */
	EXPECT_EQ(lab_free_page(t.z, 1, va), LAB_OK);
	lab_frame_owner(t.z, pfn, &o, NULL);
	EXPECT_EQ(o, 0);

	uint8_t *blk = lab_alloc_pages(t.z, 1, 2, LAB_NOWAIT);
	ASSERT_TRUE(blk != NULL);
	ASSERT_EQ(lab_virt_to_pfn(t.z, blk, &pfn), LAB_OK);
	EXPECT_EQ(pfn & 3, 0);
	unsigned ord = 9;
	lab_frame_owner(t.z, pfn + 3, &o, &ord);
	EXPECT_EQ(o, 1);
	EXPECT_EQ(ord, 2);
	EXPECT_EQ(lab_free_pages(t.z, 1, blk, 2), LAB_OK);

	/* Every frame of the zone maps both ways. */
	for (uint64_t f = 0; f < 1024; f++) {
		void *v = lab_pfn_to_virt(t.z, f);
		EXPECT_TRUE(v == arena + f * LAB_FRAME_SIZE);
		uint64_t back = ~0ull;
		EXPECT_EQ(lab_virt_to_pfn(t.z, v, &back), LAB_OK);
		EXPECT_EQ(back, f);
	}
	EXPECT_TRUE(lab_pfn_to_virt(t.z, 1024) == NULL);
	EXPECT_TRUE(lab_pfn_to_virt(t.z, UINT64_MAX) == NULL);

	uint64_t keep = 555;
	const void *before = (const void *)((uintptr_t)arena - LAB_FRAME_SIZE);
	const void *after = (const void *)((uintptr_t)arena + 1024 * LAB_FRAME_SIZE);
	EXPECT_EQ(lab_virt_to_pfn(t.z, before, &keep), LAB_ERANGE);
	EXPECT_EQ(lab_virt_to_pfn(t.z, after, &keep), LAB_ERANGE);
	EXPECT_EQ(lab_virt_to_pfn(t.z, NULL, &keep), LAB_ERANGE);
	EXPECT_EQ(lab_virt_to_pfn(t.z, arena + LAB_FRAME_SIZE + 1, &keep), LAB_EALIGN);
	EXPECT_EQ(lab_virt_to_pfn(t.z, arena + 2 * LAB_FRAME_SIZE - 1, &keep), LAB_EALIGN);
	EXPECT_EQ(keep, 555);
	EXPECT_EQ(lab_virt_to_pfn(t.z, arena, NULL), LAB_EINVAL);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(api_page_no_direct_map)
{
	/* NO_SCRUB needs no direct map: address calls must say so, and the
	 * void* forms must not allocate a frame they cannot name. */
	struct tzone t = tz_make(1024, 32, 1, LAB_ZONE_NO_SCRUB, 20);
	tz_owner(&t, 1, ALL32, 0, false);
	uint64_t pfn = 3;
	EXPECT_EQ(lab_virt_to_pfn(t.z, (void *)(uintptr_t)0x100000, &pfn), LAB_ENOMAP);
	EXPECT_EQ(pfn, 3);
	EXPECT_TRUE(lab_pfn_to_virt(t.z, 0) == NULL);
	EXPECT_TRUE(lab_alloc_page(t.z, 1, LAB_NOWAIT) == NULL);
	EXPECT_TRUE(lab_alloc_pages(t.z, 1, 2, LAB_NOWAIT) == NULL);
	struct lab_stats st = stats_of(&t);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(st.allocs, 0);
	EXPECT_EQ(lab_free_page(t.z, 1, (void *)(uintptr_t)0x100000), LAB_ENOMAP);
	/* pfn-based calls work without a map. */
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfn), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, pfn, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- statistics ------------------------------------------------------------------ */

TEST(api_stats)
{
	/* Every state at once: allocated, free in two pools, dirty (deferred
	 * scrub), unassigned colours, reserved frames. */
	struct tzone t = tz_make(2048, 32, 1, LAB_ZONE_DEFERRED_SCRUB, 21);
	ASSERT_EQ(lab_zone_reserve_range(t.z, 100, 40), LAB_OK);
	tz_owner(&t, 1, 0x0000ffff, 0, false);
	tz_owner(&t, 2, 0x00ff0000, 0, true);
	uint64_t reserved_in[32] = {0};
	for (uint64_t pfn = 100; pfn < 140; pfn++)
		reserved_in[pfn & 31]++;
	uint64_t pool1 = 0, pool2 = 0, unassigned = 0;
	for (unsigned c = 0; c < 32; c++) {
		uint64_t avail = 2048 / 32 - reserved_in[c];
		if (c < 16)
			pool1 += avail;
		else if (c < 24)
			pool2 += avail;
		else
			unassigned += avail;
	}

	struct lab_stats st = stats_of(&t);
	EXPECT_PARTITION(&st);
	EXPECT_EQ(st.nr_frames, 2048);
	EXPECT_EQ(st.nr_free, pool1 + pool2);
	EXPECT_EQ(st.nr_reserved, 40);
	EXPECT_EQ(st.nr_unassigned, unassigned);
	EXPECT_EQ(st.allocs, 0);
	EXPECT_EQ(st.nr_pools, 2);
	EXPECT_EQ(st.nr_owners, 2);
	EXPECT_EQ(st.nr_colours, 32);
	EXPECT_EQ(st.nr_cpus, 1);

	uint64_t a[50], b[10], c4[3];
	for (int i = 0; i < 50; i++)
		ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &a[i]), LAB_OK);
	for (int i = 0; i < 20; i++)
		ASSERT_EQ(lab_free(t.z, 1, a[i], 0), LAB_OK); /* parked dirty */
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(lab_alloc(t.z, 2, 0, LAB_NOWAIT, &b[i]), LAB_OK);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ(lab_alloc(t.z, 2, 2, LAB_NOWAIT, &c4[i]), LAB_OK);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(lab_free(t.z, 2, b[i], 0), LAB_OK); /* exclusive: no scrub */
	uint64_t x;
	EXPECT_EQ(lab_alloc(t.z, 1, 6, LAB_NOWAIT, &x), LAB_ECOLOUR); /* refused, not counted */

	st = stats_of(&t);
	EXPECT_PARTITION(&st);
	EXPECT_EQ(st.allocs, 63);
	EXPECT_EQ(st.frees, 22);
	EXPECT_EQ(st.refused, 1);
	EXPECT_EQ(st.nr_allocated, 30 + 8 + 12);
	EXPECT_EQ(st.nr_dirty, 20);
	EXPECT_EQ(st.nr_free, pool1 + pool2 - 50 - 20);
	EXPECT_EQ(st.nr_reserved, 40);
	EXPECT_EQ(st.nr_unassigned, unassigned);
	EXPECT_EQ(st.scrubbed, 0);
	for (unsigned c = 24; c < 32; c++)
		EXPECT_EQ(st.free_by_colour[c], 0); /* unassigned is not free */
	EXPECT_TRUE(st.free_blocks[1] <= st.free_blocks[0] / 2);

	size_t done = 0;
	EXPECT_EQ(lab_scrub(t.z, 1000, &done), LAB_OK);
	EXPECT_EQ(done, 20);
	st = stats_of(&t);
	EXPECT_PARTITION(&st);
	EXPECT_EQ(st.nr_dirty, 0);
	EXPECT_EQ(st.nr_free, pool1 + pool2 - 50);
	EXPECT_EQ(st.scrubbed, 20);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- owner removal ------------------------------------------------------------- */

TEST(api_owner_remove_exclusive)
{
	struct tzone t = tz_make(4096, 32, 1, 0, 22);
	tz_owner(&t, 1, 0xff, 0, true); /* 8 colours x 128 frames */
	uint64_t held[100], blk[2], gone[20], x;
	long calls;

	for (int i = 0; i < 100; i++) {
		ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &held[i]), LAB_OK);
		fill_block(t.z, held[i], 0, 0xEE);
	}
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(lab_alloc(t.z, 1, 3, LAB_NOWAIT, &blk[i]), LAB_OK);
		fill_block(t.z, blk[i], 3, 0xEE);
	}
	/* Freed into an exclusive pool: not scrubbed, so still the owner's data. */
	for (int i = 0; i < 20; i++) {
		ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &gone[i]), LAB_OK);
		fill_block(t.z, gone[i], 0, 0xDD);
	}
	for (int i = 0; i < 20; i++)
		ASSERT_EQ(lab_free(t.z, 1, gone[i], 0), LAB_OK);

	uint64_t h = tz_hash(&t);
	EXPECT_EQ(lab_owner_remove(t.z, 1, 0), LAB_EINVAL);
	EXPECT_TRUE(tz_hash(&t) == h);
	struct lab_owner_stats os;
	ASSERT_EQ(lab_owner_stats(t.z, 1, &os), LAB_OK);
	EXPECT_EQ(os.held, 116);

	EXPECT_EQ(lab_owner_remove(t.z, 1, 64), LAB_EAGAIN);
	/* From the first call on, the id is dead for alloc and free. */
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_ATOMIC, &x), LAB_ENOOWNER);
	EXPECT_EQ(lab_alloc(t.z, 1, 3, LAB_ATOMIC, &x), LAB_ENOOWNER);
	EXPECT_EQ(lab_free(t.z, 1, held[0], 0), LAB_ENOOWNER);
	EXPECT_EQ(lab_free_page(t.z, 1, lab_pfn_to_virt(t.z, held[1])), LAB_ENOOWNER);
	struct lab_owner_cfg oc = {.colours = 0xff, .flags = LAB_OWNER_EXCLUSIVE};
	EXPECT_EQ(lab_owner_add(t.z, 1, &oc), LAB_EEXIST);

	int rc = remove_all(t.z, 1, 64, &calls);
	ASSERT_EQ(rc, LAB_OK);
	/* The 1024 frames of its 8 colours walked 64 at a time (take back,
	 * scrub, home): the work really was split, and only the frames of its
	 * colours were walked, not all 4096 (146 calls when they were). */
	EXPECT_TRUE(calls >= 1024 / 64);
	EXPECT_TRUE(calls < 4096 / 64);

	for (int i = 0; i < 100; i++) {
		EXPECT_TRUE(frame_is_zero(t.z, held[i]));
		lab_owner_t o = 9;
		lab_frame_owner(t.z, held[i], &o, NULL);
		EXPECT_EQ(o, 0);
	}
	for (int i = 0; i < 2; i++)
		for (uint64_t j = 0; j < 8; j++)
			EXPECT_TRUE(frame_is_zero(t.z, blk[i] + j));
	for (int i = 0; i < 20; i++)
		EXPECT_TRUE(frame_is_zero(t.z, gone[i]));
	struct lab_stats st = stats_of(&t);
	EXPECT_PARTITION(&st);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(st.nr_free, 0);
	EXPECT_EQ(st.nr_unassigned, 4096); /* the colours went back */
	EXPECT_EQ(st.nr_pools, 0);
	EXPECT_EQ(st.nr_owners, 0);
	EXPECT_EQ(lab_owner_stats(t.z, 1, &os), LAB_ENOOWNER);
	EXPECT_EQ(lab_owner_remove(t.z, 1, 64), LAB_ENOOWNER);
	EXPECT_EQ(lab_check(t.z), LAB_OK);

	/* A new exclusive owner on the same colours gets all of them, all zero. */
	tz_owner(&t, 2, 0xff, 0, true);
	static uint64_t p[2048];
	size_t n = alloc_until_fail(t.z, 2, LAB_ATOMIC, p, 2048, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	EXPECT_EQ(n, 1024);
	for (size_t i = 0; i < n; i++)
		EXPECT_TRUE(frame_is_zero(t.z, p[i]));
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 2, p[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(api_owner_remove_shared)
{
	struct tzone t = tz_make(2048, 32, 1, 0, 23);
	tz_owner(&t, 1, 0xff00, 0, false); /* 8 colours x 64 frames */
	tz_owner(&t, 2, 0xff00, 0, false);
	uint64_t a[50], blk, b[30], x;
	long calls;

	for (int i = 0; i < 50; i++) {
		ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &a[i]), LAB_OK);
		fill_block(t.z, a[i], 0, 0xEE);
	}
	ASSERT_EQ(lab_alloc(t.z, 1, 2, LAB_NOWAIT, &blk), LAB_OK);
	fill_block(t.z, blk, 2, 0xEE);
	for (int i = 0; i < 30; i++) {
		ASSERT_EQ(lab_alloc(t.z, 2, 0, LAB_NOWAIT, &b[i]), LAB_OK);
		fill_block(t.z, b[i], 0, 0xBB);
	}

	EXPECT_EQ(lab_owner_remove(t.z, 1, 0), LAB_EINVAL);
	EXPECT_EQ(lab_owner_remove(t.z, 1, 64), LAB_EAGAIN);
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &x), LAB_ENOOWNER);
	EXPECT_EQ(lab_free(t.z, 1, a[0], 0), LAB_ENOOWNER);
	int rc = remove_all(t.z, 1, 64, &calls);
	ASSERT_EQ(rc, LAB_OK);
	EXPECT_TRUE(calls >= 512 / 64); /* its colours' 512 frames, 64 at a time */
	EXPECT_TRUE(calls < 2048 / 64);  /* and not the other 1536 (33 calls when they were walked) */

	for (int i = 0; i < 50; i++)
		EXPECT_TRUE(frame_is_zero(t.z, a[i]));
	for (uint64_t j = 0; j < 4; j++)
		EXPECT_TRUE(frame_is_zero(t.z, blk + j));
	/* The other owner's frames are untouched and still its own. */
	for (int i = 0; i < 30; i++) {
		EXPECT_TRUE(frame_is_byte(t.z, b[i], 0xBB));
		lab_owner_t o = 0;
		lab_frame_owner(t.z, b[i], &o, NULL);
		EXPECT_EQ(o, 2);
	}
	struct lab_stats st = stats_of(&t);
	EXPECT_PARTITION(&st);
	EXPECT_EQ(st.nr_allocated, 30);
	EXPECT_EQ(st.nr_free, 512 - 30); /* the removed owner's 54 frames are free again */
	EXPECT_EQ(st.nr_pools, 1);
	EXPECT_EQ(st.nr_owners, 1);
	struct lab_owner_stats os;
	ASSERT_EQ(lab_owner_stats(t.z, 2, &os), LAB_OK);
	EXPECT_EQ(os.held, 30);
	EXPECT_EQ(os.pool_free, 512 - 30);
	EXPECT_EQ(lab_check(t.z), LAB_OK);

	/* The survivor works, order 0 and higher. */
	uint64_t more[10];
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(lab_alloc(t.z, 2, 0, LAB_NOWAIT, &more[i]), LAB_OK);
	ASSERT_EQ(lab_alloc(t.z, 2, 3, LAB_NOWAIT, &x), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 2, x, 3), LAB_OK);
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(lab_free(t.z, 2, more[i], 0), LAB_OK);
	/* The id can be registered again, with nothing held. */
	tz_owner(&t, 1, 0xff00, 0, false);
	ASSERT_EQ(lab_owner_stats(t.z, 1, &os), LAB_OK);
	EXPECT_EQ(os.held, 0);
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &x), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, x, 0), LAB_OK);
	for (int i = 0; i < 30; i++)
		ASSERT_EQ(lab_free(t.z, 2, b[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- scrubbing --------------------------------------------------------------- */

TEST(api_deferred_scrub)
{
	struct tzone t = tz_make(1024, 32, 1, LAB_ZONE_DEFERRED_SCRUB, 24);
	tz_owner(&t, 1, 0xf, 0, false); /* 4 colours x 32 frames */
	tz_owner(&t, 2, 0xf, 0, false);
	uint64_t a[8];
	static uint64_t b[256];
	int rc;

	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &a[i]), LAB_OK);
		fill_block(t.z, a[i], 0, 0x5C);
	}
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(lab_free(t.z, 1, a[i], 0), LAB_OK);
	struct lab_stats st = stats_of(&t);
	EXPECT_PARTITION(&st);
	EXPECT_EQ(st.nr_dirty, 8);
	EXPECT_EQ(st.nr_free, 120);
	EXPECT_EQ(st.scrubbed, 0);
	/* Not scrubbed yet: the data is still there, which is what B must not see. */
	for (int i = 0; i < 8; i++)
		EXPECT_TRUE(frame_is_byte(t.z, a[i], 0x5C));

	size_t n = alloc_until_fail(t.z, 2, LAB_ATOMIC, b, 256, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	EXPECT_EQ(n, 120);
	for (size_t i = 0; i < n; i++) {
		EXPECT_TRUE(frame_is_zero(t.z, b[i]));
		EXPECT_TRUE(!contains(a, 8, b[i]));
	}

	size_t done = 99;
	EXPECT_EQ(lab_scrub(t.z, 3, &done), LAB_EAGAIN);
	EXPECT_EQ(done, 3);
	st = stats_of(&t);
	EXPECT_EQ(st.nr_dirty, 5);
	EXPECT_EQ(lab_scrub(t.z, 1000, &done), LAB_OK);
	EXPECT_EQ(done, 5);
	EXPECT_EQ(lab_scrub(t.z, 1000, NULL), LAB_OK); /* nothing left, done optional */
	st = stats_of(&t);
	EXPECT_PARTITION(&st);
	EXPECT_EQ(st.nr_dirty, 0);
	EXPECT_EQ(st.scrubbed, 8);
	for (int i = 0; i < 8; i++)
		EXPECT_TRUE(frame_is_zero(t.z, a[i]));

	/* Allocatable again: B now gets exactly A's old frames, zeroed. */
	size_t m = alloc_until_fail(t.z, 2, LAB_ATOMIC, b + n, 256 - n, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	EXPECT_EQ(m, 8);
	for (size_t i = n; i < n + m; i++) {
		EXPECT_TRUE(contains(a, 8, b[i]));
		EXPECT_TRUE(frame_is_zero(t.z, b[i]));
	}
	for (size_t i = 0; i < n + m; i++)
		ASSERT_EQ(lab_free(t.z, 2, b[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	EXPECT_EQ(scrub_all(t.z, 64), LAB_OK);
	st = stats_of(&t);
	EXPECT_EQ(st.nr_dirty, 0);
	EXPECT_EQ(st.nr_free, 128);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(api_unzeroed_zone)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, 1024, NULL); /* flags 0: not zeroed */
	struct tzone t = tz_make_cfg(&cfg, 25);
	/* The arena happens to be zero; make it look like used memory, which is
	 * what the zone must assume. */
	memset(t.arena, 0x5A, 1024 * (size_t)LAB_FRAME_SIZE);
	tz_owner(&t, 1, 0xffff, 0, false);
	uint64_t x;
	static uint64_t p[1024];
	int rc;

	struct lab_stats st = stats_of(&t);
	EXPECT_PARTITION(&st);
	EXPECT_EQ(st.nr_dirty, 1024);
	EXPECT_EQ(st.nr_free, 0);
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &x), LAB_ENOMEM);
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_ATOMIC, &x), LAB_ENOMEM);
	EXPECT_EQ(lab_alloc(t.z, 1, 2, LAB_ATOMIC, &x), LAB_ENOMEM);

	size_t done = 0;
	EXPECT_EQ(lab_scrub(t.z, 100, &done), LAB_EAGAIN);
	EXPECT_EQ(done, 100);
	EXPECT_EQ(lab_scrub(t.z, 100000, &done), LAB_OK);
	EXPECT_EQ(done, 924);
	st = stats_of(&t);
	EXPECT_PARTITION(&st);
	EXPECT_EQ(st.nr_dirty, 0);
	EXPECT_EQ(st.nr_free, 512);
	EXPECT_EQ(st.nr_unassigned, 512);
	EXPECT_EQ(st.scrubbed, 1024);
	size_t nonzero = 0;
	for (uint64_t f = 0; f < 1024; f++)
		nonzero += !frame_is_zero(t.z, f);
	EXPECT_EQ(nonzero, 0);

	size_t n = alloc_until_fail(t.z, 1, LAB_ATOMIC, p, 1024, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	EXPECT_EQ(n, 512);
	for (size_t i = 0; i < n; i++)
		EXPECT_TRUE(0xffff >> (p[i] & 31) & 1);
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 1, p[i], 0), LAB_OK);
	/* Colours scrubbed while unassigned are clean for a later pool. */
	tz_owner(&t, 2, 0xffff0000, 0, true);
	struct lab_owner_stats os;
	ASSERT_EQ(lab_owner_stats(t.z, 2, &os), LAB_OK);
	EXPECT_EQ(os.pool_free, 512);
	n = alloc_until_fail(t.z, 2, LAB_ATOMIC, p, 1024, &rc);
	EXPECT_EQ(n, 512);
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 2, p[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(api_unzeroed_zone_reserve)
{
	/* reserve_permille is "per colour pool, in 1/1000 of its frames".  A
	 * pool created before lab_scrub() has cleaned its frames must still get
	 * its reserve once they arrive, as it would in a zeroed zone. */
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, 1024, NULL);
	cfg.reserve_permille = 100;
	struct tzone t = tz_make_cfg(&cfg, 26);
	tz_owner(&t, 1, ALL32, 0, false);
	ASSERT_EQ(scrub_all(t.z, 256), LAB_OK);
	static uint64_t p[1024];
	int rc;

	struct lab_stats st = stats_of(&t);
	EXPECT_EQ(st.nr_free, 1024);
	EXPECT_EQ(st.reserve_frames, 102);
	size_t n = alloc_until_fail(t.z, 1, LAB_NOWAIT, p, 1024, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	EXPECT_EQ(n, 1024 - 102); /* NOWAIT leaves the reserve to LAB_ATOMIC */
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 1, p[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- reserved ranges --------------------------------------------------------- */

TEST(api_reserve_range)
{
	struct tzone t = tz_make(1024, 32, 1, 0, 27);
	ASSERT_EQ(lab_zone_reserve_range(t.z, 100, 50), LAB_OK);
	tz_owner(&t, 1, 0xffff, 0, false); /* colours 0..15 */
	static uint64_t p[1024];
	int rc;

	struct lab_stats st = stats_of(&t);
	EXPECT_EQ(st.nr_reserved, 50);
	EXPECT_PARTITION(&st);
	uint64_t reserved_pool = 0;
	for (uint64_t pfn = 100; pfn < 150; pfn++)
		reserved_pool += (pfn & 31) < 16;
	size_t n = alloc_until_fail(t.z, 1, LAB_ATOMIC, p, 1024, &rc);
	EXPECT_EQ(rc, LAB_ENOMEM);
	EXPECT_EQ(n, 512 - reserved_pool);
	for (size_t i = 0; i < n; i++)
		EXPECT_TRUE(p[i] < 100 || p[i] >= 150);
	lab_owner_t o = 7;
	lab_frame_owner(t.z, 120, &o, NULL);
	EXPECT_EQ(o, 0);
	EXPECT_EQ(lab_free(t.z, 1, 120, 0), LAB_EFREE);

	uint64_t h = tz_hash(&t);
	/* Frames of a pool are not unassigned, wherever they are in the range. */
	EXPECT_EQ(lab_zone_reserve_range(t.z, 200, 10), LAB_EBUSY);
	EXPECT_EQ(lab_zone_reserve_range(t.z, 48 + 32 * 10, 20), LAB_EBUSY); /* colours 16..31, then 0..3 */
	EXPECT_EQ(lab_zone_reserve_range(t.z, 140, 20), LAB_EBUSY);
	EXPECT_TRUE(tz_hash(&t) == h);
	EXPECT_EQ(lab_zone_reserve_range(t.z, 1024, 1), LAB_ERANGE);
	EXPECT_EQ(lab_zone_reserve_range(t.z, 1000, 25), LAB_ERANGE);
	EXPECT_EQ(lab_zone_reserve_range(t.z, 5, UINT64_MAX), LAB_ERANGE);
	EXPECT_EQ(lab_zone_reserve_range(t.z, UINT64_MAX, 1), LAB_ERANGE);
	EXPECT_TRUE(tz_hash(&t) == h);
	/* Unassigned colours can still be reserved: colours 16..31 of one row. */
	EXPECT_EQ(lab_zone_reserve_range(t.z, 48 + 32 * 10, 16), LAB_OK);
	st = stats_of(&t);
	EXPECT_EQ(st.nr_reserved, 66);
	EXPECT_PARTITION(&st);
	/* ...and a pool created on them later leaves them out. */
	tz_owner(&t, 2, 0xffff0000, 0, false);
	struct lab_owner_stats os;
	ASSERT_EQ(lab_owner_stats(t.z, 2, &os), LAB_OK);
	EXPECT_EQ(os.pool_free, 512 - (50 - reserved_pool) - 16);
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 1, p[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- determinism --------------------------------------------------------------- */

/* A fixed script of allocations and frees over two owners; out gets the
 * 50 pfns handed out. */
static void script(uint8_t seed, uint64_t out[50])
{
	struct tzone t = tz_make(2048, 32, 1, 0, seed);
	tz_owner(&t, 1, 0xffff, 0, false);
	tz_owner(&t, 2, 0xffff0000, 0, true);
	uint64_t held1[50];
	int n1 = 0;
	for (int i = 0; i < 50; i++) {
		if (i % 5 == 4) {
			if (lab_alloc(t.z, 2, 2, LAB_NOWAIT, &out[i]) != LAB_OK)
				harness_fail(__FILE__, __LINE__, "script: order-2 alloc");
		} else {
			if (lab_alloc(t.z, 1, 0, LAB_NOWAIT, &out[i]) != LAB_OK)
				harness_fail(__FILE__, __LINE__, "script: order-0 alloc");
			held1[n1++] = out[i];
		}
		if (i % 7 == 6 && n1 > 0 && lab_free(t.z, 1, held1[--n1], 0) != LAB_OK)
			harness_fail(__FILE__, __LINE__, "script: free");
	}
	if (lab_check(t.z) != LAB_OK)
		harness_fail(__FILE__, __LINE__, "script: lab_check");
	tz_free(&t);
}

TEST(api_determinism)
{
	uint64_t a[50], b[50], c[50];
	script(41, a);
	script(41, b);
	script(42, c);
	int same = 0, differ = 0;
	for (int i = 0; i < 50; i++) {
		same += a[i] == b[i];
		differ += a[i] != c[i];
	}
	EXPECT_EQ(same, 50);
	/* Pools of 1024 frames: a chance match at one position is ~1/1000. */
	EXPECT_TRUE(differ >= 45);
}

TEST(api_strerror)
{
	const char *s[24];
	for (int e = 0; e <= 23; e++) {
		s[e] = lab_strerror(-e);
		ASSERT_TRUE(s[e] != NULL);
		EXPECT_TRUE(s[e][0] != 0);
		EXPECT_TRUE(strcmp(s[e], "unknown error") != 0);
		for (int j = 0; j < e; j++)
			EXPECT_TRUE(strcmp(s[e], s[j]) != 0);
	}
	EXPECT_TRUE(strcmp(lab_strerror(12345), "unknown error") == 0);
	EXPECT_TRUE(strcmp(lab_strerror(-24), "unknown error") == 0);
	EXPECT_TRUE(strcmp(lab_strerror(1), "unknown error") == 0);
	EXPECT_TRUE(strcmp(lab_strerror(INT_MIN), "unknown error") == 0);
}

/* A hosted zone's default slots cover the thread that set it up plus one
 * worker per online CPU, all alive at once: none of them is left on the
 * slot-less path (which works, but takes a lock per call). */
struct slot_probe {
	lab_zone_t *z;
	pthread_barrier_t *bar;
	unsigned slot;
	int rc;
};

static void *slot_probe_run(void *arg)
{
	struct slot_probe *sp = arg;
	uint64_t pfn = 0;
	sp->slot = lab_plat_cpu();
	sp->rc = lab_alloc(sp->z, 1, 0, LAB_NOWAIT, &pfn);
	pthread_barrier_wait(sp->bar); /* every probe holds its slot here */
	if (sp->rc == LAB_OK)
		sp->rc = lab_free(sp->z, 1, pfn, 0);
	return NULL;
}

TEST(hosted_default_slots_cover_setup_thread_and_workers)
{
	struct lab_geometry g;
	lab_hosted_geometry(&g);
	unsigned def = lab_hosted_default_cpus(&g);
	EXPECT_TRUE(def >= g.nr_cpus + 1 && def >= 4 && def <= LAB_MAX_CPUS);

	struct lab_hosted_opts o = {.bytes = 4u << 20, .seed = "slots-slots-slots-slots-slots-32", .seed_len = 32};
	struct lab_hosted_zone hz;
	ASSERT_EQ(lab_hosted_zone_create(&o, &hz), LAB_OK);
	struct lab_owner_cfg oc = {.colours = ~0ull >> (64 - hz.colours)};
	EXPECT_EQ(lab_owner_add(hz.zone, 1, &oc), LAB_OK); /* this thread takes a slot */
	struct lab_stats st;
	ASSERT_EQ(lab_stats(hz.zone, &st), LAB_OK);
	EXPECT_EQ(st.nr_cpus, def);
	EXPECT_TRUE(lab_plat_cpu() < st.nr_cpus);

	unsigned n = g.nr_cpus < 64 ? g.nr_cpus : 64;
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, n);
	struct slot_probe sp[64];
	pthread_t th[64];
	for (unsigned i = 0; i < n; i++) {
		sp[i] = (struct slot_probe){.z = hz.zone, .bar = &bar};
		ASSERT_EQ(pthread_create(&th[i], NULL, slot_probe_run, &sp[i]), 0);
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	for (unsigned i = 0; i < n; i++) {
		EXPECT_EQ(sp[i].rc, LAB_OK);
		EXPECT_TRUE(sp[i].slot < st.nr_cpus);
		EXPECT_TRUE(sp[i].slot != lab_plat_cpu());
		for (unsigned j = 0; j < i; j++)
			EXPECT_TRUE(sp[i].slot != sp[j].slot);
	}
	ASSERT_EQ(lab_stats(hz.zone, &st), LAB_OK);
	EXPECT_EQ(st.slotless_calls, 0); /* nobody fell back to the locked path */
	EXPECT_EQ(lab_check(hz.zone), LAB_OK);
	lab_hosted_zone_destroy(&hz);

	/* One slot for two threads: one of them runs slot-less, and the
	 * counter says so. */
	o.nr_cpus = 1;
	ASSERT_EQ(lab_hosted_zone_create(&o, &hz), LAB_OK);
	EXPECT_EQ(lab_owner_add(hz.zone, 1, &oc), LAB_OK);
	uint64_t pfn = 0;
	EXPECT_EQ(lab_alloc(hz.zone, 1, 0, LAB_NOWAIT, &pfn), LAB_OK);
	EXPECT_EQ(lab_free(hz.zone, 1, pfn, 0), LAB_OK);
	pthread_barrier_init(&bar, NULL, 1);
	sp[0] = (struct slot_probe){.z = hz.zone, .bar = &bar};
	ASSERT_EQ(pthread_create(&th[0], NULL, slot_probe_run, &sp[0]), 0);
	pthread_join(th[0], NULL);
	pthread_barrier_destroy(&bar);
	EXPECT_EQ(sp[0].rc, LAB_OK);
	ASSERT_EQ(lab_stats(hz.zone, &st), LAB_OK);
	EXPECT_TRUE(st.slotless_calls >= 2); /* an alloc and a free, at least */
	EXPECT_EQ(st.allocs, 2);
	EXPECT_EQ(st.frees, 2);
	EXPECT_EQ(lab_check(hz.zone), LAB_OK);
	lab_hosted_zone_destroy(&hz);
}

/* lab_hosted_zone_reinit: the zone built again in place (every frame
 * unassigned, no owners), and its refusals leave the old zone as it was. */
/* A bad configuration gets lab_zone_init's own code, before the arena is
 * mapped (it got LAB_EGEOMETRY, after mapping and touching it all, until
 * 2026-11-28). */
TEST(hosted_create_refusals_name_the_cause)
{
	struct lab_hosted_zone hz;
	struct lab_hosted_opts o = {.bytes = 64u << 20, .nr_cpus = LAB_MAX_CPUS + 1};
	EXPECT_EQ(lab_hosted_zone_create(&o, &hz), LAB_EINVAL);
	EXPECT_TRUE(hz.arena == NULL && hz.zone == NULL);
	o = (struct lab_hosted_opts){.bytes = 64u << 20, .max_owners = LAB_MAX_OWNERS + 1};
	EXPECT_EQ(lab_hosted_zone_create(&o, &hz), LAB_EINVAL);
	o = (struct lab_hosted_opts){.bytes = 64u << 20, .reserve_permille = 1001};
	EXPECT_EQ(lab_hosted_zone_create(&o, &hz), LAB_EINVAL);
	o = (struct lab_hosted_opts){.bytes = 64u << 20, .zone_flags = 0x8};
	EXPECT_EQ(lab_hosted_zone_create(&o, &hz), LAB_EINVAL);
	o = (struct lab_hosted_opts){.bytes = 64u << 20, .seed = "short", .seed_len = 5};
	EXPECT_EQ(lab_hosted_zone_create(&o, &hz), LAB_EENTROPY);
	o = (struct lab_hosted_opts){.bytes = 64u << 20, .colours = 3};
	EXPECT_EQ(lab_hosted_zone_create(&o, &hz), LAB_EGEOMETRY);
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, 1024, NULL);
	EXPECT_EQ(lab_zone_cfg_check(&cfg), LAB_EINVAL); /* no direct map, scrubbing */
	cfg.flags = LAB_ZONE_NO_SCRUB;
	EXPECT_EQ(lab_zone_cfg_check(&cfg), LAB_OK);
	EXPECT_EQ(lab_zone_cfg_check(NULL), LAB_EINVAL);
}

TEST(hosted_zone_reinit)
{
	struct lab_hosted_opts o = {.bytes = 4u << 20, .nr_cpus = 2, .seed = "reinit-reinit-reinit-reinit-32b!",
	                            .seed_len = 32};
	struct lab_hosted_zone hz;
	ASSERT_EQ(lab_hosted_zone_create(&o, &hz), LAB_OK);
	struct lab_owner_cfg oc = {.colours = ~0ull >> (64 - hz.colours)};
	ASSERT_EQ(lab_owner_add(hz.zone, 1, &oc), LAB_OK);
	uint64_t pfn[8];
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(lab_alloc(hz.zone, 1, 0, LAB_NOWAIT, &pfn[i]), LAB_OK);

	/* Refused: another size, other colours, more CPU slots than the
	 * metadata holds.  The old zone stands: its owner and frames too. */
	struct lab_hosted_opts bad = o;
	bad.bytes = 8u << 20;
	EXPECT_EQ(lab_hosted_zone_reinit(&hz, &bad), LAB_EINVAL);
	bad = o;
	bad.colours = hz.colours / 2;
	EXPECT_EQ(lab_hosted_zone_reinit(&hz, &bad), LAB_EINVAL);
	bad = o;
	bad.nr_cpus = LAB_MAX_CPUS;
	EXPECT_EQ(lab_hosted_zone_reinit(&hz, &bad), LAB_EGEOMETRY);
	bad = o;
	bad.reserve_permille = 2000; /* lab_zone_init's own refusal */
	EXPECT_EQ(lab_hosted_zone_reinit(&hz, &bad), LAB_EINVAL);
	bad = o;
	bad.seed_len = 5;
	EXPECT_EQ(lab_hosted_zone_reinit(&hz, &bad), LAB_EENTROPY);
	EXPECT_EQ(lab_hosted_zone_reinit(NULL, &o), LAB_EINVAL);
	EXPECT_EQ(lab_hosted_zone_reinit(&hz, NULL), LAB_EINVAL);
	lab_owner_t who = 0;
	EXPECT_EQ(lab_frame_owner(hz.zone, pfn[0], &who, NULL), LAB_OK);
	EXPECT_EQ(who, 1);
	EXPECT_EQ(lab_check(hz.zone), LAB_OK);

	ASSERT_EQ(lab_hosted_zone_reinit(&hz, &o), LAB_OK);
	EXPECT_EQ(lab_check(hz.zone), LAB_OK);
	uint64_t x;
	EXPECT_EQ(lab_alloc(hz.zone, 1, 0, LAB_NOWAIT, &x), LAB_ENOOWNER); /* no owners */
	EXPECT_EQ(lab_free(hz.zone, 1, pfn[0], 0), LAB_ENOOWNER);
	struct lab_stats st;
	ASSERT_EQ(lab_stats(hz.zone, &st), LAB_OK);
	EXPECT_EQ(st.allocs, 0);
	ASSERT_EQ(lab_owner_add(hz.zone, 1, &oc), LAB_OK);
	struct lab_owner_stats os;
	ASSERT_EQ(lab_owner_stats(hz.zone, 1, &os), LAB_OK);
	EXPECT_EQ(os.held, 0);
	EXPECT_EQ(os.pool_free, hz.nr_frames); /* every frame free again, and zero */
	ASSERT_EQ(lab_alloc(hz.zone, 1, 0, LAB_NOWAIT | LAB_ZERO, &x), LAB_OK);
	EXPECT_EQ(lab_free(hz.zone, 1, x, 0), LAB_OK);
	EXPECT_EQ(lab_check(hz.zone), LAB_OK);
	lab_hosted_zone_destroy(&hz);
}

/* lab_hosted_alloc_wait (GFP_KERNEL for threads) gets a frame that a thread
 * still alive frees with lab_hosted_free: the frame goes to that thread's
 * cache, out of the sleeper's reach, unless the free gives the cache back
 * (until 2026-11-28 it did not, and the sleeper waited out its timeout).
 * In a deferred-scrub zone the frame is dirty as well: the sleeper scrubs
 * before it sleeps again. */
struct live_freer {
	lab_zone_t *z;
	uint64_t pfn[3];
	sem_t done;
	int rc;
};

static void *free_and_stay(void *arg)
{
	struct live_freer *lf = arg;
	/* Not before the waiter's first attempt failed: it counts as a sleeper
	 * from before that attempt on, and a free made before anyone sleeps
	 * leaves its frame in this thread's cache (hosted.h). */
	struct lab_stats st;
	do {
		usleep(1000);
		lab_stats(lf->z, &st);
	} while (st.fail_nomem == 0);
	usleep(20000);
	for (int i = 0; i < 3; i++)
		lf->rc |= lab_hosted_free(lf->z, 1, lf->pfn[i], 0);
	sem_wait(&lf->done); /* alive (its slot, its cache) until the waiter is */
	return NULL;
}

static void hosted_wait_for_a_live_free(uint32_t flags, uint8_t seed)
{
	struct tzone t = tz_make(512, 8, 4, LAB_ZONE_ZEROED | flags, seed);
	tz_owner(&t, 1, 0xff, 0, false);
	static uint64_t all[512];
	unsigned n = 0;
	uint64_t pfn;
	while (n < 512 && lab_alloc(t.z, 1, 0, LAB_ATOMIC, &pfn) == LAB_OK)
		all[n++] = pfn;
	EXPECT_EQ(n, 512);
	struct live_freer lf = {.z = t.z, .pfn = {all[n - 1], all[n - 2], all[n - 3]}};
	n -= 3;
	sem_init(&lf.done, 0, 0);
	pthread_t th;
	ASSERT_EQ(pthread_create(&th, NULL, free_and_stay, &lf), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = lab_hosted_alloc_wait(t.z, 1, 0, LAB_ATOMIC, 3000, &pfn);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sem_post(&lf.done);
	pthread_join(th, NULL);
	double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	EXPECT_EQ(lf.rc, LAB_OK);
	ASSERT_EQ(rc, LAB_OK);
	EXPECT_TRUE(pfn == lf.pfn[0] || pfn == lf.pfn[1] || pfn == lf.pfn[2]);
	EXPECT_TRUE(waited < 2.0);
	all[n++] = pfn;
	for (unsigned i = 0; i < n; i++)
		EXPECT_EQ(lab_free(t.z, 1, all[i], 0), LAB_OK);
	EXPECT_EQ(lab_cpu_drain(t.z), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(hosted_alloc_wait_gets_a_live_threads_free)
{
	hosted_wait_for_a_live_free(0, 92);
}

TEST(hosted_alloc_wait_scrubs_deferred_frees)
{
	hosted_wait_for_a_live_free(LAB_ZONE_DEFERRED_SCRUB, 93);
}
