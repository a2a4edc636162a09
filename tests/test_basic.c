/* test_basic.c - first end-to-end checks of zones, owners, alloc and free. */
#include "harness.h"

TEST(basic_alloc_free_order0)
{
	struct tzone t = tz_make(4096, 32, 2, 0, 1);
	tz_owner(&t, 1, 0xffffffffull, 0, false);
	uint64_t pfns[100];
	for (int i = 0; i < 100; i++)
		ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfns[i]), LAB_OK);
	for (int i = 0; i < 100; i++)
		for (int j = 0; j < i; j++)
			ASSERT_TRUE(pfns[i] != pfns[j]);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	for (int i = 0; i < 100; i++)
		ASSERT_EQ(lab_free(t.z, 1, pfns[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, pfns[0], 0), LAB_EFREE);
	struct lab_stats st;
	lab_stats(t.z, &st);
	EXPECT_EQ(st.nr_free, 4096);
	EXPECT_EQ(st.allocs, 100);
	EXPECT_EQ(st.frees, 100);
	tz_free(&t);
}

TEST(basic_exhaust_and_refill)
{
	struct tzone t = tz_make(1024, 32, 1, 0, 2);
	struct lab_owner_cfg oc = {.colours = 0xffffffffull};
	ASSERT_EQ(lab_owner_add(t.z, 1, &oc), LAB_OK);
	static uint64_t p[1024];
	int n = 0;
	while (n < 1024 && lab_alloc(t.z, 1, 0, LAB_ATOMIC, &p[n]) == LAB_OK)
		n++;
	EXPECT_EQ(n, 1024);
	uint64_t x;
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_ATOMIC, &x), LAB_ENOMEM);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(lab_free(t.z, 1, p[i], 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

TEST(basic_orders)
{
	struct tzone t = tz_make(8192, 32, 1, 0, 3);
	tz_owner(&t, 1, 0xffffffffull, 0, false);
	for (unsigned k = 1; k <= LAB_MAX_ORDER; k++) {
		uint64_t pfn;
		ASSERT_EQ(lab_alloc(t.z, 1, k, LAB_NOWAIT, &pfn), LAB_OK);
		EXPECT_EQ(pfn & ((1u << k) - 1), 0);
		EXPECT_EQ(lab_check(t.z), LAB_OK);
		EXPECT_EQ(lab_free(t.z, 1, pfn + 1, k), LAB_EALIGN);
		EXPECT_EQ(lab_free(t.z, 1, pfn + (1u << k) / 2, k - 1), LAB_EINTERIOR);
		EXPECT_EQ(lab_free(t.z, 1, pfn, k - 1), LAB_EORDER);
		ASSERT_EQ(lab_free(t.z, 1, pfn, k), LAB_OK);
		EXPECT_EQ(lab_check(t.z), LAB_OK);
	}
	tz_free(&t);
}

/* Frames this CPU caches for order 0 are free: an order > 0 allocation that
 * cannot be served from the pool's array alone takes them back first
 * (found by linux_gfp_zero_zeroes, whose order-3 allocation failed or not
 * depending on where its frees had landed). */
TEST(basic_order_above_0_takes_back_own_cache)
{
	struct tzone t = tz_make(64, 32, 1, 0, 9);
	tz_owner(&t, 1, 0xffffffffull, 0, false);
	static uint64_t held[64];
	unsigned n = 0;
	while (n < 64 && lab_alloc(t.z, 1, 0, LAB_ATOMIC, &held[n]) == LAB_OK)
		n++;
	ASSERT_EQ(n, 64);
	/* Free one aligned block of 8 frame by frame: with the array empty,
	 * every free lands in this CPU's cache. */
	uint64_t base = 0;
	for (unsigned i = 0; i < n; i++)
		if ((held[i] & 7) == 0) {
			base = held[i];
			break;
		}
	for (unsigned j = 0; j < 8; j++)
		ASSERT_EQ(lab_free(t.z, 1, base + j, 0), LAB_OK);
	struct lab_stats st;
	ASSERT_EQ(lab_stats(t.z, &st), LAB_OK);
	EXPECT_EQ(st.nr_free, 8);
	EXPECT_EQ(st.nr_cached, 8);
	/* Order 3: the array holds nothing, the cache the whole block. */
	uint64_t pfn;
	ASSERT_EQ(lab_alloc(t.z, 1, 3, LAB_ATOMIC, &pfn), LAB_OK);
	EXPECT_EQ(pfn, base);
	ASSERT_EQ(lab_stats(t.z, &st), LAB_OK);
	EXPECT_EQ(st.nr_free, 0);
	EXPECT_EQ(st.nr_cached, 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	/* Back as a block (into the array, under the lock).  NOWAIT may not
	 * take the reserve, so with only 8 free frames the same request is
	 * refused, and the cache is left alone. */
	ASSERT_EQ(lab_free(t.z, 1, pfn, 3), LAB_OK);
	ASSERT_EQ(lab_stats(t.z, &st), LAB_OK);
	uint64_t cached = st.nr_cached;
	if (st.reserve_frames > 0) {
		EXPECT_EQ(lab_alloc(t.z, 1, 3, LAB_NOWAIT, &pfn), LAB_ENOMEM);
		ASSERT_EQ(lab_stats(t.z, &st), LAB_OK);
		EXPECT_EQ(st.nr_cached, cached);
	}
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

static lab_owner_t owner_of(lab_zone_t *z, uint64_t pfn)
{
	lab_owner_t o = 99;
	if (lab_frame_owner(z, pfn, &o, NULL) != LAB_OK)
		return 99;
	return o;
}

TEST(basic_free_bulk)
{
	struct tzone t = tz_make(4096, 32, 2, 0, 9);
	tz_owner(&t, 1, 0xffffffffull, 0, false);
	tz_owner(&t, 2, 0xffffffffull, 0, false);
	enum { N = 300 };
	uint64_t pfns[N], other;
	for (int i = 0; i < N; i++)
		ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfns[i]), LAB_OK);
	ASSERT_EQ(lab_alloc(t.z, 2, 0, LAB_NOWAIT, &other), LAB_OK);

	/* Bad arguments: refused, nothing freed, *done 0. */
	size_t done = 77;
	EXPECT_EQ(lab_free_bulk(NULL, 1, pfns, N, &done), LAB_EINVAL);
	EXPECT_EQ(done, 0);
	done = 77;
	EXPECT_EQ(lab_free_bulk(t.z, 1, NULL, 3, &done), LAB_EINVAL);
	EXPECT_EQ(done, 0);
	EXPECT_EQ(lab_free_bulk(t.z, 1, NULL, 0, &done), LAB_OK);
	EXPECT_EQ(done, 0);

	/* Frames 0..99, then another owner's frame at 100: stops there with
	 * that frame's code; the frames after it are still held. */
	uint64_t list[N + 1];
	memcpy(list, pfns, 100 * sizeof(uint64_t));
	list[100] = other;
	memcpy(list + 101, pfns + 100, (N - 100) * sizeof(uint64_t));
	EXPECT_EQ(lab_free_bulk(t.z, 1, list, N + 1, &done), LAB_EOWNER);
	EXPECT_EQ(done, 100);
	EXPECT_EQ(owner_of(t.z, other), 2);
	for (int i = 0; i < 100; i++)
		EXPECT_EQ(owner_of(t.z, pfns[i]), 0);
	for (int i = 100; i < N; i++)
		EXPECT_EQ(owner_of(t.z, pfns[i]), 1);
	EXPECT_EQ(lab_check(t.z), LAB_OK);

	/* A pfn past the zone is refused as lab_free refuses it. */
	uint64_t past = t.cfg.base_pfn + t.cfg.nr_frames;
	EXPECT_EQ(lab_free_bulk(t.z, 1, &past, 1, &done), LAB_ERANGE);
	EXPECT_EQ(done, 0);
	/* The rest; then the same list again: a double free, refused at its
	 * first frame. */
	EXPECT_EQ(lab_free_bulk(t.z, 1, pfns + 100, N - 100, NULL), LAB_OK);
	EXPECT_EQ(lab_free_bulk(t.z, 1, list + 101, N - 100, &done), LAB_EFREE);
	EXPECT_EQ(done, 0);
	EXPECT_EQ(lab_free(t.z, 2, other, 0), LAB_OK);
	struct lab_stats st;
	lab_stats(t.z, &st);
	EXPECT_EQ(st.nr_free, 4096);
	EXPECT_EQ(st.frees, N + 1);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}
