/*
 * test_misuse.c - hostile and mistaken calls.
 *
 * misuse_*: one kind of bad call per test.  Each must be refused with its
 * exact code and change nothing: the metadata hash (tz_hash) is the same and
 * every lab_stats field but `refused` is the same; `refused` counts the call
 * when it names a zone.
 *
 * death_*: corrupted metadata must stop the process through lab_plat_panic
 * with the message of the check that caught it.  Each body corrupts one
 * thing through internal.h in a zone of its own, in the forked child, and
 * calls the API that reads it; a body that returns is a missed detection.
 */
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

/* A zone that does not start at pfn 0 and whose size is not a power of two,
 * so range and alignment checks are tested against base_pfn, not 0. */
#define BASE 1000u
#define NR 1001u

static struct tzone fixture(uint8_t seed)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, BASE, NR, NULL);
	cfg.flags = LAB_ZONE_ZEROED;
	struct tzone t = tz_make_cfg(&cfg, seed);
	tz_owner(&t, 1, 0xffff, 0, false);     /* 1 and 2 share colours 0..15 */
	tz_owner(&t, 2, 0xffff, 0, false);
	tz_owner(&t, 3, 0xffff0000, 0, true); /* 3 has 16..31 to itself */
	return t;
}

struct snap {
	uint64_t hash;
	struct lab_stats st;
};

static struct snap snap_of(const struct tzone *t)
{
	struct snap s;
	memset(&s, 0, sizeof(s));
	s.hash = tz_hash(t);
	if (lab_stats(t->z, &s.st) != LAB_OK)
		harness_fail(__FILE__, __LINE__, "lab_stats");
	return s;
}

/* Nothing changed since `before` except `refused`, which grew by delta. */
static void expect_unchanged(int line, const struct tzone *t, const struct snap *before,
                             uint64_t delta)
{
	struct snap now = snap_of(t);
	char m[240];
	if (now.hash != before->hash)
		harness_fail(__FILE__, line, "refused call changed the zone's metadata");
	if (now.st.refused != before->st.refused + delta) {
		snprintf(m, sizeof m, "refused went from %llu to %llu, want +%llu",
		         (unsigned long long)before->st.refused, (unsigned long long)now.st.refused,
		         (unsigned long long)delta);
		harness_fail(__FILE__, line, m);
	}
	const struct { const char *name; uint64_t a, b; } f[] = {
		{"allocs", before->st.allocs, now.st.allocs},
		{"frees", before->st.frees, now.st.frees},
		{"fail_nomem", before->st.fail_nomem, now.st.fail_nomem},
		{"fail_quota", before->st.fail_quota, now.st.fail_quota},
		{"fail_frag", before->st.fail_frag, now.st.fail_frag},
		{"scrubbed", before->st.scrubbed, now.st.scrubbed},
		{"reserve_allocs", before->st.reserve_allocs, now.st.reserve_allocs},
		{"nr_free", before->st.nr_free, now.st.nr_free},
		{"nr_allocated", before->st.nr_allocated, now.st.nr_allocated},
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (f[i].a != f[i].b) {
			snprintf(m, sizeof m, "refused call changed %s: %llu -> %llu", f[i].name,
			         (unsigned long long)f[i].a, (unsigned long long)f[i].b);
			harness_fail(__FILE__, line, m);
		}
	now.st.refused = before->st.refused;
	if (memcmp(&now.st, &before->st, sizeof(now.st)) != 0)
		harness_fail(__FILE__, line, "refused call changed another lab_stats field");
}

/* `call` must return `want` and change nothing but `refused` (+delta). */
#define REFUSED(t, call, want, delta)                                                  \
	do {                                                                           \
		struct snap s_ = snap_of(t);                                           \
		EXPECT_EQ((call), (want));                                             \
		expect_unchanged(__LINE__, (t), &s_, (delta));                         \
	} while (0)

/* ---- range, alignment, order ------------------------------------------------- */

TEST(misuse_free_below_zone)
{
	struct tzone t = fixture(1);
	uint64_t p;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	REFUSED(&t, lab_free(t.z, 1, BASE - 1, 0), LAB_ERANGE, 1);
	REFUSED(&t, lab_free(t.z, 1, BASE - 8, 3), LAB_ERANGE, 1);
	REFUSED(&t, lab_free(t.z, 1, 0, 0), LAB_ERANGE, 1);
	EXPECT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_above_zone)
{
	struct tzone t = fixture(2);
	uint64_t p;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	REFUSED(&t, lab_free(t.z, 1, BASE + NR, 0), LAB_ERANGE, 1);
	REFUSED(&t, lab_free(t.z, 1, UINT64_MAX, 0), LAB_ERANGE, 1);
	REFUSED(&t, lab_free(t.z, 1, (uint64_t)BASE + (1ull << 32), 0), LAB_ERANGE, 1);
	EXPECT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_block_past_end)
{
	/* The last frame is pfn 2000: an aligned block starting there is in the
	 * zone by its head and out of it by its tail.  No such block was ever
	 * allocated: the refusal says what the head is (until 2026-11-28 it was
	 * LAB_ERANGE, which the header gives to a pfn outside the zone). */
	struct tzone t = fixture(3);
	REFUSED(&t, lab_free(t.z, 3, BASE + NR - 1, 1), LAB_EFREE, 1); /* not allocated */
	REFUSED(&t, lab_free(t.z, 3, BASE + NR - 1, 4), LAB_EFREE, 1);
	/* Held at order 0 by owner 3 (colour 16 is its): the wrong order, or
	 * another owner's. */
	uint64_t p = 0;
	for (int i = 0; i < 1024 && p != BASE + NR - 1; i++) /* ATOMIC: the reserve too */
		ASSERT_EQ(lab_alloc(t.z, 3, 0, LAB_ATOMIC, &p), LAB_OK);
	ASSERT_EQ(p, BASE + NR - 1);
	REFUSED(&t, lab_free(t.z, 3, BASE + NR - 1, 1), LAB_EORDER, 1);
	REFUSED(&t, lab_free(t.z, 3, BASE + NR - 1, 4), LAB_EORDER, 1);
	REFUSED(&t, lab_free(t.z, 1, BASE + NR - 1, 1), LAB_EOWNER, 1);
	EXPECT_EQ(lab_free(t.z, 3, BASE + NR - 1, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_misaligned)
{
	struct tzone t = fixture(4);
	uint64_t p;
	ASSERT_EQ(lab_alloc(t.z, 1, 2, LAB_NOWAIT, &p), LAB_OK);
	REFUSED(&t, lab_free(t.z, 1, p + 2, 2), LAB_EALIGN, 1);
	REFUSED(&t, lab_free(t.z, 1, p + 1, 1), LAB_EALIGN, 1);
	REFUSED(&t, lab_free(t.z, 1, p + 1, 2), LAB_EALIGN, 1);
	EXPECT_EQ(lab_free(t.z, 1, p, 2), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_wrong_order)
{
	struct tzone t = fixture(5);
	uint64_t p, q;
	ASSERT_EQ(lab_alloc(t.z, 1, 2, LAB_NOWAIT, &p), LAB_OK);
	ASSERT_EQ(lab_alloc(t.z, 3, 1, LAB_NOWAIT, &q), LAB_OK);
	REFUSED(&t, lab_free(t.z, 1, p, 1), LAB_EORDER, 1);
	REFUSED(&t, lab_free(t.z, 1, p, 0), LAB_EORDER, 1);
	REFUSED(&t, lab_free(t.z, 3, q, 0), LAB_EORDER, 1);
	EXPECT_EQ(lab_free(t.z, 1, p, 2), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 3, q, 1), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_order_too_big)
{
	struct tzone t = fixture(6);
	uint64_t p;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	REFUSED(&t, lab_free(t.z, 1, p, LAB_MAX_ORDER + 1), LAB_EORDER, 1);
	REFUSED(&t, lab_free(t.z, 1, p, 32), LAB_EORDER, 1); /* 1u << 32 would be UB */
	REFUSED(&t, lab_free(t.z, 1, p, UINT_MAX), LAB_EORDER, 1);
	EXPECT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_alloc_order_too_big)
{
	struct tzone t = fixture(7);
	uint64_t x = 42;
	REFUSED(&t, lab_alloc(t.z, 1, LAB_MAX_ORDER + 1, LAB_ATOMIC, &x), LAB_EORDER, 1);
	REFUSED(&t, lab_alloc(t.z, 1, UINT_MAX, LAB_ATOMIC, &x), LAB_EORDER, 1);
	EXPECT_EQ(x, 42);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- ownership and state ------------------------------------------------------- */

TEST(misuse_free_other_owner)
{
	struct tzone t = fixture(8);
	uint64_t p, b;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	ASSERT_EQ(lab_alloc(t.z, 1, 2, LAB_NOWAIT, &b), LAB_OK);
	REFUSED(&t, lab_free(t.z, 2, p, 0), LAB_EOWNER, 1); /* same pool, other owner */
	REFUSED(&t, lab_free(t.z, 3, p, 0), LAB_EOWNER, 1); /* other pool */
	REFUSED(&t, lab_free(t.z, 2, b, 2), LAB_EOWNER, 1);
	REFUSED(&t, lab_free(t.z, 2, b + 1, 0), LAB_EOWNER, 1); /* another's interior */
	lab_owner_t o = 0;
	lab_frame_owner(t.z, p, &o, NULL);
	EXPECT_EQ(o, 1);
	EXPECT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, b, 2), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_double_free_immediate)
{
	struct tzone t = fixture(9);
	uint64_t p, b;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	ASSERT_EQ(lab_alloc(t.z, 3, 3, LAB_NOWAIT, &b), LAB_OK);
	ASSERT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	ASSERT_EQ(lab_free(t.z, 3, b, 3), LAB_OK);
	REFUSED(&t, lab_free(t.z, 1, p, 0), LAB_EFREE, 1);
	REFUSED(&t, lab_free(t.z, 3, b, 3), LAB_EFREE, 1);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_double_free_delayed)
{
	struct tzone t = fixture(10);
	uint64_t p, q[60], b[5];
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	ASSERT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	/* Traffic in the same pool moves p between the pool array and the CPU
	 * cache, and may hand it out and take it back. */
	for (int round = 0; round < 6; round++) {
		for (int i = 0; i < 60; i++)
			ASSERT_EQ(lab_alloc(t.z, 2, 0, LAB_NOWAIT, &q[i]), LAB_OK);
		for (int i = 0; i < 5; i++)
			ASSERT_EQ(lab_alloc(t.z, 1, 1, LAB_NOWAIT, &b[i]), LAB_OK);
		for (int i = 0; i < 60; i++)
			ASSERT_EQ(lab_free(t.z, 2, q[i], 0), LAB_OK);
		for (int i = 0; i < 5; i++)
			ASSERT_EQ(lab_free(t.z, 1, b[i], 1), LAB_OK);
	}
	lab_owner_t o = 9;
	ASSERT_EQ(lab_frame_owner(t.z, p, &o, NULL), LAB_OK);
	ASSERT_EQ(o, 0);
	REFUSED(&t, lab_free(t.z, 1, p, 0), LAB_EFREE, 1);
	REFUSED(&t, lab_free(t.z, 2, p, 0), LAB_EFREE, 1);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_never_allocated)
{
	struct tzone t = fixture(11);
	uint64_t p;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK); /* a cache exists */
	/* Every frame of both pools not handed out: in a pool array or cached. */
	int tried = 0;
	for (uint64_t pfn = BASE; pfn < BASE + NR; pfn++) {
		if (pfn == p)
			continue;
		lab_owner_t owner = (pfn & 31) < 16 ? 1 : 3;
		REFUSED(&t, lab_free(t.z, owner, pfn, 0), LAB_EFREE, 1);
		tried++;
	}
	EXPECT_EQ(tried, NR - 1);
	EXPECT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_unowned_frames)
{
	/* Frames of colours no pool has, and reserved frames, are not allocated. */
	struct tzone t = tz_make(1024, 32, 1, 0, 12);
	ASSERT_EQ(lab_zone_reserve_range(t.z, 64, 8), LAB_OK); /* colours 0..7 */
	tz_owner(&t, 1, 0xffff, 0, false);
	REFUSED(&t, lab_free(t.z, 1, 20, 0), LAB_EFREE, 1);  /* colour 20: unassigned */
	REFUSED(&t, lab_free(t.z, 1, 16, 4), LAB_EFREE, 1);
	REFUSED(&t, lab_free(t.z, 1, 66, 0), LAB_EFREE, 1);  /* reserved */
	REFUSED(&t, lab_free(t.z, 1, 64, 3), LAB_EFREE, 1);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_interior)
{
	struct tzone t = fixture(13);
	uint64_t b;
	ASSERT_EQ(lab_alloc(t.z, 1, 3, LAB_NOWAIT, &b), LAB_OK);
	REFUSED(&t, lab_free(t.z, 1, b + 1, 0), LAB_EINTERIOR, 1);
	REFUSED(&t, lab_free(t.z, 1, b + 7, 0), LAB_EINTERIOR, 1);
	REFUSED(&t, lab_free(t.z, 1, b + 2, 1), LAB_EINTERIOR, 1);
	REFUSED(&t, lab_free(t.z, 1, b + 4, 2), LAB_EINTERIOR, 1);
	lab_owner_t o = 0;
	unsigned ord = 0;
	lab_frame_owner(t.z, b + 5, &o, &ord);
	EXPECT_EQ(o, 1);
	EXPECT_EQ(ord, 3);
	EXPECT_EQ(lab_free(t.z, 1, b, 3), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_stale_free_after_reuse)
{
	struct tzone t = fixture(14);
	static uint64_t all[1024];
	uint64_t p;
	int n = 0;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	ASSERT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	/* Owner 2 takes the whole shared pool, p included. */
	while (n < 1024 && lab_alloc(t.z, 2, 0, LAB_ATOMIC, &all[n]) == LAB_OK)
		n++;
	bool have = false;
	for (int i = 0; i < n; i++)
		have |= all[i] == p;
	ASSERT_TRUE(have);
	REFUSED(&t, lab_free(t.z, 1, p, 0), LAB_EOWNER, 1);
	lab_owner_t o = 0;
	lab_frame_owner(t.z, p, &o, NULL);
	EXPECT_EQ(o, 2);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 2, all[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- owner ids ------------------------------------------------------------------ */

TEST(misuse_alloc_owner_zero)
{
	struct tzone t = fixture(15);
	uint64_t x = 42;
	REFUSED(&t, lab_alloc(t.z, 0, 0, LAB_NOWAIT, &x), LAB_ENOOWNER, 1);
	REFUSED(&t, lab_alloc(t.z, 0, 2, LAB_ATOMIC, &x), LAB_ENOOWNER, 1);
	EXPECT_EQ(x, 42);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_alloc_owner_too_big)
{
	struct tzone t = fixture(16);
	uint64_t x = 42;
	REFUSED(&t, lab_alloc(t.z, 65, 0, LAB_NOWAIT, &x), LAB_ENOOWNER, 1); /* max_owners 64 */
	REFUSED(&t, lab_alloc(t.z, LAB_MAX_OWNERS + 1, 0, LAB_NOWAIT, &x), LAB_ENOOWNER, 1);
	REFUSED(&t, lab_alloc(t.z, UINT32_MAX, 0, LAB_NOWAIT, &x), LAB_ENOOWNER, 1);
	EXPECT_EQ(x, 42);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_alloc_owner_unregistered)
{
	struct tzone t = fixture(17);
	uint64_t x = 42;
	REFUSED(&t, lab_alloc(t.z, 4, 0, LAB_NOWAIT, &x), LAB_ENOOWNER, 1);
	REFUSED(&t, lab_alloc(t.z, 64, 1, LAB_NOWAIT, &x), LAB_ENOOWNER, 1);
	EXPECT_EQ(x, 42);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_owner_zero)
{
	struct tzone t = fixture(18);
	uint64_t p;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	REFUSED(&t, lab_free(t.z, 0, p, 0), LAB_ENOOWNER, 1);
	EXPECT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_owner_too_big)
{
	struct tzone t = fixture(19);
	uint64_t p;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	REFUSED(&t, lab_free(t.z, 65, p, 0), LAB_ENOOWNER, 1);
	REFUSED(&t, lab_free(t.z, LAB_MAX_OWNERS + 1, p, 0), LAB_ENOOWNER, 1);
	REFUSED(&t, lab_free(t.z, UINT32_MAX, p, 0), LAB_ENOOWNER, 1);
	EXPECT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_owner_unregistered)
{
	struct tzone t = fixture(20);
	uint64_t p;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	REFUSED(&t, lab_free(t.z, 4, p, 0), LAB_ENOOWNER, 1);
	REFUSED(&t, lab_free(t.z, 64, p, 0), LAB_ENOOWNER, 1);
	EXPECT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- arguments ------------------------------------------------------------------ */

TEST(misuse_alloc_bad_flags)
{
	struct tzone t = fixture(21);
	uint64_t x = 42;
	REFUSED(&t, lab_alloc(t.z, 1, 0, LAB_ALLOC_FLAGS_ALL + 1, &x), LAB_EINVAL, 1);
	REFUSED(&t, lab_alloc(t.z, 1, 0, LAB_NOWAIT | 0x100, &x), LAB_EINVAL, 1);
	REFUSED(&t, lab_alloc(t.z, 1, 2, 0x80000000u, &x), LAB_EINVAL, 1);
	REFUSED(&t, lab_alloc(t.z, 3, 0, ~0u, &x), LAB_EINVAL, 1);
	EXPECT_EQ(x, 42);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_alloc_null_pfn)
{
	struct tzone t = fixture(22);
	REFUSED(&t, lab_alloc(t.z, 1, 0, LAB_NOWAIT, NULL), LAB_EINVAL, 1);
	REFUSED(&t, lab_alloc(t.z, 3, 2, LAB_ATOMIC, NULL), LAB_EINVAL, 1);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_alloc_not_exclusive)
{
	struct tzone t = fixture(23);
	uint64_t x = 42;
	REFUSED(&t, lab_alloc(t.z, 1, 0, LAB_NOWAIT | LAB_EXCLUSIVE, &x), LAB_ENOTEXCL, 1);
	EXPECT_EQ(x, 42);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_alloc_colour_order)
{
	struct tzone t = fixture(24);
	uint64_t x = 42;
	REFUSED(&t, lab_alloc(t.z, 1, 5, LAB_NOWAIT, &x), LAB_ECOLOUR, 1); /* 16 colours */
	REFUSED(&t, lab_alloc(t.z, 3, 8, LAB_NOWAIT, &x), LAB_ECOLOUR, 1);
	EXPECT_EQ(x, 42);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_page_inside_frame)
{
	struct tzone t = fixture(25);
	uint8_t *va = lab_alloc_page(t.z, 1, LAB_NOWAIT);
	ASSERT_TRUE(va != NULL);
	REFUSED(&t, lab_free_page(t.z, 1, va + 1), LAB_EALIGN, 1);
	REFUSED(&t, lab_free_page(t.z, 1, va + LAB_FRAME_SIZE - 1), LAB_EALIGN, 1);
	REFUSED(&t, lab_free_pages(t.z, 1, va + 64, 0), LAB_EALIGN, 1);
	EXPECT_EQ(lab_free_page(t.z, 1, va), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_free_page_outside_map)
{
	struct tzone t = fixture(26);
	uintptr_t a = (uintptr_t)t.arena;
	REFUSED(&t, lab_free_page(t.z, 1, (void *)(a - LAB_FRAME_SIZE)), LAB_ERANGE, 1);
	REFUSED(&t, lab_free_page(t.z, 1, (void *)(a + (uintptr_t)NR * LAB_FRAME_SIZE)), LAB_ERANGE, 1);
	REFUSED(&t, lab_free_page(t.z, 1, NULL), LAB_ERANGE, 1);
	REFUSED(&t, lab_free_pages(t.z, 1, (void *)UINTPTR_MAX, 3), LAB_ERANGE, 1);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_null_zone)
{
	/* No zone to count in; a live zone next to it must not notice either. */
	struct tzone t = fixture(27);
	uint64_t p, x = 42;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	void *va = lab_pfn_to_virt(t.z, p);
	struct snap s = snap_of(&t);
	struct lab_owner_cfg oc = {.colours = 1};
	struct lab_stats st;
	struct lab_owner_stats os;
	lab_owner_t o;
	size_t done = 7;
	uint8_t seed[32] = {1};

	EXPECT_EQ(lab_alloc(NULL, 1, 0, LAB_NOWAIT, &x), LAB_EINVAL);
	EXPECT_EQ(lab_alloc(NULL, 1, 0, LAB_NOWAIT, NULL), LAB_EINVAL);
	EXPECT_EQ(x, 42);
	EXPECT_EQ(lab_free(NULL, 1, p, 0), LAB_EINVAL);
	EXPECT_TRUE(lab_alloc_page(NULL, 1, LAB_NOWAIT) == NULL);
	EXPECT_TRUE(lab_alloc_pages(NULL, 1, 2, LAB_NOWAIT) == NULL);
	EXPECT_EQ(lab_free_page(NULL, 1, va), LAB_EINVAL);
	EXPECT_EQ(lab_free_pages(NULL, 1, va, 0), LAB_EINVAL);
	EXPECT_TRUE(lab_pfn_to_virt(NULL, p) == NULL);
	EXPECT_EQ(lab_virt_to_pfn(NULL, va, &x), LAB_EINVAL);
	EXPECT_EQ(lab_frame_owner(NULL, p, &o, NULL), LAB_EINVAL);
	EXPECT_EQ(lab_owner_add(NULL, 5, &oc), LAB_EINVAL);
	EXPECT_EQ(lab_owner_remove(NULL, 1, 64), LAB_EINVAL);
	EXPECT_EQ(lab_owner_stats(NULL, 1, &os), LAB_EINVAL);
	EXPECT_EQ(lab_stats(NULL, &st), LAB_EINVAL);
	EXPECT_EQ(lab_check(NULL), LAB_EINVAL);
	EXPECT_EQ(lab_scrub(NULL, 16, &done), LAB_EINVAL);
	EXPECT_EQ(done, 7);
	EXPECT_EQ(lab_cpu_drain(NULL), LAB_EINVAL);
	EXPECT_EQ(lab_reseed(NULL, seed, sizeof(seed)), LAB_EINVAL);
	EXPECT_EQ(lab_zone_reserve_range(NULL, BASE, 1), LAB_EINVAL);
	EXPECT_EQ(x, 42);
	expect_unchanged(__LINE__, &t, &s, 0);
	EXPECT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(misuse_bad_magic_zone)
{
	/* Zeroed memory that is not a zone: refused on the magic, never written. */
	struct tzone t = fixture(28);
	uint64_t p, x = 42;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p), LAB_OK);
	struct snap s = snap_of(&t);
	const size_t len = 8192;
	uint8_t *buf = aligned_alloc(64, len);
	memset(buf, 0, len);
	lab_zone_t *fake = (lab_zone_t *)(void *)buf;
	struct lab_owner_cfg oc = {.colours = 1};
	struct lab_stats st;
	struct lab_owner_stats os;
	lab_owner_t o;
	uint8_t seed[32] = {1};

	EXPECT_EQ(lab_alloc(fake, 1, 0, LAB_NOWAIT, &x), LAB_EINVAL);
	EXPECT_EQ(lab_alloc(fake, 1, 0, LAB_NOWAIT, NULL), LAB_EINVAL);
	EXPECT_EQ(lab_alloc(fake, 0, 99, ~0u, &x), LAB_EINVAL);
	EXPECT_EQ(x, 42);
	EXPECT_EQ(lab_free(fake, 1, 0, 0), LAB_EINVAL);
	EXPECT_EQ(lab_free(fake, 1, p, 0), LAB_EINVAL);
	EXPECT_TRUE(lab_alloc_page(fake, 1, LAB_NOWAIT) == NULL);
	EXPECT_EQ(lab_free_page(fake, 1, buf), LAB_EINVAL);
	EXPECT_TRUE(lab_pfn_to_virt(fake, 0) == NULL);
	EXPECT_EQ(lab_virt_to_pfn(fake, buf, &x), LAB_EINVAL);
	EXPECT_EQ(lab_frame_owner(fake, 0, &o, NULL), LAB_EINVAL);
	EXPECT_EQ(lab_owner_add(fake, 1, &oc), LAB_EINVAL);
	EXPECT_EQ(lab_owner_remove(fake, 1, 64), LAB_EINVAL);
	EXPECT_EQ(lab_owner_stats(fake, 1, &os), LAB_EINVAL);
	EXPECT_EQ(lab_stats(fake, &st), LAB_EINVAL);
	EXPECT_EQ(lab_check(fake), LAB_EINVAL);
	EXPECT_EQ(lab_scrub(fake, 16, NULL), LAB_EINVAL);
	EXPECT_EQ(lab_cpu_drain(fake), LAB_EINVAL);
	EXPECT_EQ(lab_reseed(fake, seed, sizeof(seed)), LAB_EINVAL);
	EXPECT_EQ(lab_zone_reserve_range(fake, 0, 1), LAB_EINVAL);
	size_t nonzero = 0;
	for (size_t i = 0; i < len; i++)
		nonzero += buf[i] != 0;
	EXPECT_EQ(nonzero, 0);
	free(buf);
	expect_unchanged(__LINE__, &t, &s, 0);
	EXPECT_EQ(lab_free(t.z, 1, p, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- corruption: death tests ------------------------------------------------------ */

/* The child's zone: one CPU slot per id up to this thread's, so this thread
 * has a per-CPU cache; owners 1 and 2 share every colour.  A setup failure
 * makes the body return, which the harness reports as "did not die". */
static bool death_zone(struct tzone *t, uint8_t seed)
{
	*t = tz_make(1024, 32, lab_plat_cpu() + 1, 0, seed);
	struct lab_owner_cfg oc = {.colours = 0xffffffffull};
	return lab_owner_add(t->z, 1, &oc) == LAB_OK && lab_owner_add(t->z, 2, &oc) == LAB_OK;
}

static uint32_t frame_of(const struct tzone *t, uint64_t pfn)
{
	return (uint32_t)(pfn - t->z->base_pfn);
}

/* Replace bits [shift, shift + width) of frame pfn's record, leaving its
 * check value as it was. */
static void rec_poke(const struct tzone *t, uint64_t pfn, unsigned shift, uint32_t mask, uint32_t val)
{
	lab_a32 *r = rec_at(t->z, frame_of(t, pfn));
	uint32_t v = ld_relaxed(r);
	st_relaxed(r, (v & ~(mask << shift)) | ((val & mask) << shift));
}

static void die_owner_field(void *arg)
{
	struct tzone t;
	uint64_t p;
	(void)arg;
	if (!death_zone(&t, 31) || lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p) != LAB_OK)
		return;
	rec_poke(&t, p, 12, 0xfffu, 2); /* owner 1 -> 2; unchecked, the free says EOWNER */
	lab_free(t.z, 1, p, 0);
}

static void die_order_field(void *arg)
{
	struct tzone t;
	uint64_t p;
	(void)arg;
	if (!death_zone(&t, 32) || lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p) != LAB_OK)
		return;
	rec_poke(&t, p, 24, 0xfu, 1); /* order 0 -> 1; unchecked, the free says EORDER */
	lab_free(t.z, 1, p, 0);
}

static void die_state_field(void *arg)
{
	struct tzone t;
	uint64_t p;
	(void)arg;
	if (!death_zone(&t, 33) || lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p) != LAB_OK)
		return;
	rec_poke(&t, p, 28, 0x7u, ST_TAIL); /* ALLOC -> TAIL; unchecked: EINTERIOR */
	lab_free(t.z, 1, p, 0);
}

static void die_block_tail(void *arg)
{
	struct tzone t;
	uint64_t p;
	(void)arg;
	if (!death_zone(&t, 34) || lab_alloc(t.z, 1, 2, LAB_NOWAIT, &p) != LAB_OK)
		return;
	/* A well-formed tail record, but of owner 2: the block is no longer one
	 * owner's, whatever each record says on its own. */
	uint32_t f = frame_of(&t, p) + 2;
	st_relaxed(rec_at(t.z, f), rec_make(t.z, f, ST_TAIL, 2, 2));
	lab_free(t.z, 1, p, 2);
}

static void die_pcp_entry(void *arg)
{
	struct tzone t;
	uint64_t p, q;
	(void)arg;
	if (!death_zone(&t, 35) || lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p) != LAB_OK)
		return;
	struct lab_zone *z = t.z;
	struct lab_pcp *pcp = cpu_pcp(z, cpu_at(z, lab_plat_cpu()), owner_at(z, 1)->pool);
	if (ld_relaxed(&pcp->count) == 0)
		return;
	/* The next frame to pop becomes the one just handed out (record ALLOC):
	 * unchecked, the same frame would go out twice. */
	pcp->ring[pcp->head] = frame_of(&t, p);
	lab_alloc(t.z, 1, 0, LAB_NOWAIT, &q);
}

/* A frame number far past the zone: unchecked, using it as an index faults
 * instead of reaching any other check with the same message. */
#define WILD_FRAME 0xfffffff0u

static void die_pool_array_pop(void *arg)
{
	struct tzone t;
	uint64_t p;
	(void)arg;
	if (!death_zone(&t, 36))
		return;
	struct lab_zone *z = t.z;
	struct lab_pool *pool = &z->pools[owner_at(z, 1)->pool];
	uint32_t n = ld_relaxed(&pool->n);
	if (n == 0 || ld_relaxed(&cpu_pcp(z, cpu_at(z, lab_plat_cpu()), owner_at(z, 1)->pool)->count))
		return;
	/* The cache is empty, so the first allocation refills it from G's tail. */
	st_relaxed(gslot(z, pool, n - 1), WILD_FRAME);
	lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p);
}

static void die_pool_array_exchange(void *arg)
{
	struct tzone t;
	uint64_t p;
	(void)arg;
	if (!death_zone(&t, 37) || lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p) != LAB_OK)
		return;
	struct lab_zone *z = t.z;
	uint32_t pi = owner_at(z, 1)->pool;
	struct lab_pool *pool = &z->pools[pi];
	struct lab_pcp *pcp = cpu_pcp(z, cpu_at(z, lab_plat_cpu()), pi);
	uint32_t n = ld_relaxed(&pool->n);
	if (n == 0)
		return;
	/* The slot the next exchange will use was drawn in advance. */
	st_relaxed(gslot(z, pool, lab_bound(pcp->u[0], n)), WILD_FRAME);
	lab_free(t.z, 1, p, 0);
}

static void die_record_on_remove(void *arg)
{
	struct tzone t;
	uint64_t p;
	(void)arg;
	if (!death_zone(&t, 38) || lab_alloc(t.z, 1, 0, LAB_NOWAIT, &p) != LAB_OK)
		return;
	rec_poke(&t, p, 0, 0xfffu, (ld_relaxed(rec_at(t.z, frame_of(&t, p))) + 1) & 0xfffu);
	for (int i = 0; i < 10000 && lab_owner_remove(t.z, 1, 1024) == LAB_EAGAIN; i++)
		;
}

TEST(death_corrupt_owner_field)
{
	EXPECT_DEATH(die_owner_field, NULL, "labyrinth: corrupt frame record");
}

TEST(death_corrupt_order_field)
{
	EXPECT_DEATH(die_order_field, NULL, "labyrinth: corrupt frame record");
}

TEST(death_corrupt_state_field)
{
	EXPECT_DEATH(die_state_field, NULL, "labyrinth: corrupt frame record");
}

TEST(death_corrupt_block_tail)
{
	EXPECT_DEATH(die_block_tail, NULL, "labyrinth: corrupt block tail");
}

TEST(death_corrupt_pcp_entry)
{
	EXPECT_DEATH(die_pcp_entry, NULL, "labyrinth: corrupt per-CPU cache");
}

TEST(death_corrupt_pool_array_pop)
{
	EXPECT_DEATH(die_pool_array_pop, NULL, "labyrinth: corrupt pool array");
}

TEST(death_corrupt_pool_array_exchange)
{
	EXPECT_DEATH(die_pool_array_exchange, NULL, "labyrinth: corrupt pool array");
}

TEST(death_corrupt_record_on_remove)
{
	EXPECT_DEATH(die_record_on_remove, NULL, "labyrinth: corrupt frame record");
}

/*
 * A nested call (an interrupt arriving inside the allocator on the same CPU)
 * must never wait for a record the interrupted code holds.  Here the
 * "interrupted code" is simulated: this CPU is marked busy and the frame at
 * the tail of the pool array is locked the way an exchange locks it.  Every
 * order-1 claim has to move the tail into the hole it leaves, so before the
 * fix each such call spun forever (found by the TSan run of
 * nested_interrupt_allocations, which hung CI).  An alarm turns a hang into
 * a failure.
 */
static void on_nested_hang(int sig)
{
	static const char m[] = "FAIL nested_claim_never_waits: a nested order-1 alloc hung on a "
	                        "record held by the interrupted code\n";
	(void)sig;
	ssize_t r = write(2, m, sizeof m - 1);
	(void)r;
	_exit(3);
}

TEST(nested_claim_never_waits)
{
	struct tzone t = tz_make(256, 1, 2, LAB_ZONE_ZEROED, 77);
	tz_owner(&t, 1, 1, 0, true);
	struct lab_zone *z = t.z;
	uint32_t me = lab_plat_cpu();
	ASSERT_TRUE(me < z->nr_cpus);
	struct lab_pool *p = &z->pools[owner_at(z, 1)->pool];
	uint32_t n = ld_relaxed(&p->n);
	ASSERT_TRUE(n > 8);
	struct lab_stats st0;
	ASSERT_EQ(lab_stats(z, &st0), LAB_OK);
	uint64_t free0 = st0.nr_free;
	uint32_t y = ld_relaxed(gslot(z, p, n - 1));
	uint32_t saved = ld_relaxed(rec_at(z, y));
	st_relaxed(rec_at(z, y), rec_make(z, y, ST_BUSY, 0, me & 0xfffu));
	st_relaxed(&cpu_at(z, me)->busy, 1);

	signal(SIGALRM, on_nested_hang);
	alarm(20);
	int ok = 0, frag = 0, other = 0;
	uint64_t got[64];
	for (int i = 0; i < 64; i++) {
		int rc = lab_alloc(z, 1, 1, LAB_ATOMIC, &got[ok]);
		if (rc == LAB_OK)
			ok++;
		else if (rc == LAB_EFRAG)
			frag++;
		else
			other++;
	}
	alarm(0);
	signal(SIGALRM, SIG_DFL);

	/* The interrupted code resumes: it puts y back and leaves. */
	st_relaxed(&cpu_at(z, me)->busy, 0);
	st_relaxed(rec_at(z, y), saved);
	EXPECT_EQ(other, 0);
	EXPECT_TRUE(frag > 0); /* most claims needed the locked tail */
	EXPECT_EQ(lab_check(z), LAB_OK);
	for (int i = 0; i < ok; i++)
		EXPECT_EQ(lab_free(z, 1, got[i], 1), LAB_OK);
	EXPECT_EQ(lab_check(z), LAB_OK);
	struct lab_stats st;
	EXPECT_EQ(lab_stats(z, &st), LAB_OK);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(st.nr_free, free0);
	tz_free(&t);
}

/* Each owner keeps the key part of its ALLOC records (alin), which alloc and
 * free use instead of computing it: lab_check verifies it for every id. */
TEST(check_owner_record_key_part)
{
	struct tzone t = tz_make(1024, 4, 1, LAB_ZONE_ZEROED, 41);
	tz_owner(&t, 1, 0xf, 0, true);
	uint64_t pfn;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfn), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	ASSERT_TRUE(t.z->max_owners > 1);
	const uint32_t ids[2] = {1, t.z->max_owners}; /* a live owner, a free id */
	for (int i = 0; i < 2; i++) {
		uint32_t id = ids[i], keep = t.z->owners[id].alin;
		t.z->owners[id].alin = keep ^ 0x40;
		EXPECT_EQ(lab_check(t.z), LAB_ECORRUPT);
		t.z->owners[id].alin = keep;
		EXPECT_EQ(lab_check(t.z), LAB_OK);
	}
	EXPECT_EQ(lab_free(t.z, 1, pfn, 0), LAB_OK);
	tz_free(&t);
}
