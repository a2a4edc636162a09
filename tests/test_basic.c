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
