/*
 * test_linux.c - the Linux-style layer (include/labyrinth/linux.h): every
 * name it defines, the GFP semantics, the warnings on bad frees, and the
 * driver fragment of issue 6 compiled unchanged and run under load until
 * allocations fail and packets are dropped, with nothing leaked.
 *
 * The layer's configuration is global: each test sets it and resets it
 * (linux_reset) before it ends.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "labyrinth/linux.h"

#define ALL32 0xffffffffull

/* The current domain: per thread, switched by "interrupt handlers". */
static __thread lab_owner_t cur_dom;
static lab_owner_t current_domain(void)
{
	return cur_dom;
}

/* Warnings caught instead of logged. */
static _Atomic int warn_count, warn_last_err;
static void catch_warn(const char *what, int err, const void *addr)
{
	(void)what;
	(void)addr;
	atomic_fetch_add(&warn_count, 1);
	atomic_store(&warn_last_err, err);
}

static void linux_setup(lab_zone_t *z, lab_owner_t dom)
{
	lab_linux_set_zone(z);
	lab_linux_set_owner(current_domain);
	lab_linux_set_warn(catch_warn);
	lab_linux_set_wait(NULL, NULL, NULL);
	atomic_store(&warn_count, 0);
	atomic_store(&warn_last_err, 0);
	cur_dom = dom;
}

static void linux_reset(void)
{
	lab_linux_set_zones(NULL, 0);
	lab_linux_set_owner(NULL);
	lab_linux_set_warn(NULL);
	lab_linux_set_wait(NULL, NULL, NULL);
	cur_dom = 0;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static bool all_byte(const void *p, size_t n, uint8_t b)
{
	const uint8_t *q = p;
	for (size_t i = 0; i < n; i++)
		if (q[i] != b)
			return false;
	return true;
}

/* ---- the names ------------------------------------------------------------------ */

TEST(linux_names_translate)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0x4000, 256, NULL);
	cfg.flags = LAB_ZONE_ZEROED;
	struct tzone t = tz_make_cfg(&cfg, 61);
	tz_owner(&t, 1, ALL32, 0, false);
	linux_setup(t.z, 1);

	EXPECT_EQ(PAGE_SIZE, 4096);
	EXPECT_EQ(PAGE_SHIFT, 12);
	EXPECT_EQ(PAGE_MASK, ~4095ul);
	EXPECT_EQ(get_order(1), 0);
	EXPECT_EQ(get_order(4096), 0);
	EXPECT_EQ(get_order(4097), 1);
	EXPECT_EQ(get_order(16384), 2);
	EXPECT_EQ(get_order(16385), 3);

	struct page *pg = alloc_page(GFP_KERNEL);
	ASSERT_TRUE(pg != NULL);
	void *va = page_address(pg);
	EXPECT_TRUE(va == (void *)pg);
	unsigned long pfn = page_to_pfn(pg);
	EXPECT_TRUE(pfn >= 0x4000 && pfn < 0x4100);
	EXPECT_TRUE(lab_pfn_to_virt(t.z, pfn) == va);
	EXPECT_TRUE(pfn_to_page(pfn) == pg);
	EXPECT_TRUE(virt_to_page(va) == pg);
	EXPECT_TRUE(virt_to_page((char *)va + 4095) == pg); /* any byte of the frame */
	EXPECT_TRUE(virt_to_page((char *)va + 4096) != pg);
	lab_owner_t o = 0;
	EXPECT_EQ(lab_frame_owner(t.z, pfn, &o, NULL), LAB_OK);
	EXPECT_EQ(o, 1);
	EXPECT_TRUE(pfn_to_page(0x3fff) == NULL); /* outside every zone */
	EXPECT_TRUE(pfn_to_page(0x4100) == NULL);
	EXPECT_EQ(page_to_pfn((struct page *)&cfg), ~0ul);
	__free_page(pg);
	EXPECT_EQ(lab_frame_owner(t.z, pfn, &o, NULL), LAB_OK);
	EXPECT_EQ(o, 0);

	/* Higher orders: aligned, and freed by the order they were taken with. */
	struct page *big = alloc_pages(GFP_NOWAIT, 2);
	ASSERT_TRUE(big != NULL);
	EXPECT_EQ(page_to_pfn(big) & 3, 0);
	memset(page_address(big), 0x5a, 4 * PAGE_SIZE);
	__free_pages(big, 2);

	unsigned long a = __get_free_pages(GFP_ATOMIC, 3);
	ASSERT_TRUE(a != 0);
	EXPECT_EQ(page_to_pfn(virt_to_page((void *)a)) & 7, 0);
	free_pages(a, 3);
	unsigned long b = __get_free_page(GFP_NOWAIT);
	ASSERT_TRUE(b != 0);
	EXPECT_EQ(b & (PAGE_SIZE - 1), 0);
	free_page(b);

	EXPECT_EQ(atomic_load(&warn_count), 0);
	struct lab_stats st;
	lab_stats(t.z, &st);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(st.allocs, 4);
	EXPECT_EQ(st.frees, 4);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	linux_reset();
	tz_free(&t);
}

/* ---- GFP semantics ---------------------------------------------------------------- */

TEST(linux_gfp_nowait_leaves_the_reserve_atomic_uses_it)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, 512, NULL);
	cfg.nr_cpus = 1;
	cfg.reserve_permille = 100; /* 51 frames of reserve */
	cfg.flags = LAB_ZONE_ZEROED;
	struct tzone t = tz_make_cfg(&cfg, 62);
	tz_owner(&t, 1, ALL32, 0, false);
	linux_setup(t.z, 1);

	static struct page *held[512];
	unsigned n = 0;
	while (n < 512 && (held[n] = alloc_page(GFP_NOWAIT)) != NULL)
		n++;
	struct lab_stats st;
	lab_stats(t.z, &st);
	EXPECT_TRUE(n < 512);
	EXPECT_TRUE(st.nr_free >= 40); /* what NOWAIT left: the reserve */
	EXPECT_EQ(st.reserve_allocs, 0);
	EXPECT_TRUE(alloc_page(GFP_NOWAIT) == NULL);
	EXPECT_TRUE(alloc_page(GFP_KERNEL) == NULL); /* no wait hook: GFP_NOWAIT */
	unsigned before = n;
	while (n < 512 && (held[n] = alloc_page(GFP_ATOMIC)) != NULL)
		n++;
	EXPECT_EQ(n, 512); /* ATOMIC takes the reserve to the last frame */
	lab_stats(t.z, &st);
	EXPECT_EQ(st.reserve_allocs, n - before);
	EXPECT_TRUE(alloc_page(GFP_ATOMIC) == NULL);
	EXPECT_EQ(atomic_load(&warn_count), 0); /* running out is not a bug */
	for (unsigned i = 0; i < n; i++)
		__free_page(held[i]);
	lab_stats(t.z, &st);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	linux_reset();
	tz_free(&t);
}

TEST(linux_gfp_zero_zeroes)
{
	/* An exclusive owner's frames are not scrubbed on free: __GFP_ZERO
	 * must zero them on demand. */
	struct tzone t = tz_make(128, 32, 1, 0, 63);
	tz_owner(&t, 1, 0x0000ffffull, 0, true);
	linux_setup(t.z, 1);
	static void *held[128];
	unsigned n = 0;
	while (n < 128 && (held[n] = page_address(alloc_page(GFP_ATOMIC))) != NULL)
		memset(held[n++], 0xa5, PAGE_SIZE);
	EXPECT_EQ(n, 64);
	for (unsigned i = 0; i < n; i++)
		free_page((unsigned long)held[i]);
	/* Without __GFP_ZERO the old contents may come back (same owner)... */
	void *p = page_address(alloc_page(GFP_NOWAIT));
	ASSERT_TRUE(p != NULL);
	EXPECT_TRUE(all_byte(p, PAGE_SIZE, 0xa5));
	free_page((unsigned long)p);
	/* ...with it, never. */
	n = 0;
	for (; n < 32; n++) {
		held[n] = page_address(alloc_page(GFP_ATOMIC | __GFP_ZERO));
		ASSERT_TRUE(held[n] != NULL);
		EXPECT_TRUE(all_byte(held[n], PAGE_SIZE, 0));
	}
	for (; n < 64; n++) {
		held[n] = (void *)get_zeroed_page(GFP_ATOMIC);
		ASSERT_TRUE(held[n] != NULL);
		EXPECT_TRUE(all_byte(held[n], PAGE_SIZE, 0));
	}
	for (unsigned i = 0; i < n; i++)
		free_page((unsigned long)held[i]);
	struct page *blk = alloc_pages(GFP_NOWAIT | __GFP_ZERO, 3);
	ASSERT_TRUE(blk != NULL);
	EXPECT_TRUE(all_byte(page_address(blk), 8 * PAGE_SIZE, 0));
	__free_pages(blk, 3);
	EXPECT_EQ(atomic_load(&warn_count), 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	linux_reset();
	tz_free(&t);
}

TEST(linux_gfp_exclusive_refused_for_a_shared_owner)
{
	struct tzone t = tz_make(256, 32, 1, 0, 64);
	tz_owner(&t, 1, 0x000000ffull, 0, true);  /* exclusive: colours 0-7  */
	tz_owner(&t, 2, 0xffffff00ull, 0, false); /* shared: colours 8-31 */
	linux_setup(t.z, 2);
	EXPECT_TRUE(alloc_page(GFP_ATOMIC | __GFP_EXCLUSIVE) == NULL);
	EXPECT_EQ(atomic_load(&warn_count), 1); /* a bug, not a shortage */
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_ENOTEXCL);
	struct page *s = alloc_page(GFP_ATOMIC);
	ASSERT_TRUE(s != NULL);
	EXPECT_TRUE((0xffffff00ull >> (page_to_pfn(s) & 31)) & 1);
	cur_dom = 1;
	for (int i = 0; i < 40; i++) {
		struct page *e = alloc_page(GFP_ATOMIC | __GFP_EXCLUSIVE);
		ASSERT_TRUE(e != NULL);
		EXPECT_TRUE((page_to_pfn(e) & 31) < 8);
		__free_page(e);
	}
	/* Freed by the wrong owner: refused, warned, still allocated. */
	__free_page(s);
	EXPECT_EQ(atomic_load(&warn_count), 2);
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_EOWNER);
	cur_dom = 2;
	__free_page(s);
	EXPECT_EQ(atomic_load(&warn_count), 2);
	struct lab_linux_stats ls;
	lab_linux_stats(&ls);
	EXPECT_TRUE(ls.warnings >= 2);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	linux_reset();
	tz_free(&t);
}

/* ---- GFP_KERNEL --------------------------------------------------------------------- */

struct late_free {
	void **pages;
	unsigned n;
	lab_owner_t dom;
	unsigned delay_ms;
	lab_zone_t *zone;
	uint64_t waits0; /* lab_linux_stats' waits before the allocation */
};

static void *free_later(void *arg)
{
	struct late_free *lf = arg;
	cur_dom = lf->dom;
	/* After the delay, and once the allocation waits (its hook called):
	 * a thread late to start must not free first. */
	struct lab_linux_stats ls;
	usleep(lf->delay_ms * 1000);
	do {
		usleep(1000);
		lab_linux_stats(&ls);
	} while (ls.waits == lf->waits0);
	for (unsigned i = 0; i < lf->n; i++)
		free_page((unsigned long)lf->pages[i]);
	lab_cpu_drain(lf->zone); /* a thread's cache goes back when it exits */
	return NULL;
}

static void gfp_kernel_waits(uint32_t zone_flags, uint8_t seed)
{
	struct tzone t = tz_make(256, 32, 4, zone_flags, seed);
	tz_owner(&t, 1, ALL32, 0, false);
	linux_setup(t.z, 1);
	lab_linux_hosted_wait(5000);
	static void *held[256];
	unsigned n = 0;
	while (n < 256 && (held[n] = (void *)__get_free_page(GFP_ATOMIC)) != NULL)
		n++;
	EXPECT_EQ(n, 256);
	EXPECT_TRUE(alloc_page(GFP_NOWAIT) == NULL);
	EXPECT_TRUE(alloc_page(GFP_ATOMIC) == NULL); /* never waits */

	/* Another thread (another CPU, with its own cache) frees 16 pages later:
	 * more than the reserve, which GFP_KERNEL must leave alone. */
	n -= 16;
	struct lab_linux_stats ls;
	lab_linux_stats(&ls);
	struct late_free lf = {&held[n], 16, 1, 80, t.z, ls.waits};
	pthread_t th;
	pthread_create(&th, NULL, free_later, &lf);
	double t0 = now_s();
	struct page *p = alloc_page(GFP_KERNEL);
	double waited = now_s() - t0;
	pthread_join(th, NULL);
	ASSERT_TRUE(p != NULL);
	bool one_of_them = false;
	for (unsigned i = n; i < n + 16; i++)
		one_of_them |= page_address(p) == held[i];
	EXPECT_TRUE(one_of_them);
	EXPECT_TRUE(all_byte(page_address(p), LAB_FRAME_SIZE, 0));
	EXPECT_TRUE(waited >= 0.05 && waited < 4.0);
	lab_linux_stats(&ls);
	EXPECT_TRUE(ls.waits >= 1);
	held[n++] = page_address(p);

	/* No free comes: GFP_KERNEL gives up after the hook's bound.  (In a
	 * deferred-scrub zone the frees that came after the one the wait took
	 * are dirty until scrubbed: the idle loop's work, done here.) */
	if (zone_flags & LAB_ZONE_DEFERRED_SCRUB)
		EXPECT_EQ(lab_scrub(t.z, 1024, NULL), LAB_OK);
	while (n < 256 && (held[n] = (void *)__get_free_page(GFP_ATOMIC)) != NULL)
		n++;
	EXPECT_EQ(n, 256);
	lab_linux_hosted_wait(100);
	t0 = now_s();
	EXPECT_TRUE(alloc_page(GFP_KERNEL) == NULL);
	waited = now_s() - t0;
	EXPECT_TRUE(waited >= 0.09 && waited < 3.0);
	struct lab_linux_stats ls2;
	lab_linux_stats(&ls2);
	EXPECT_EQ(ls2.wait_fails, ls.wait_fails + 1);

	for (unsigned i = 0; i < n; i++)
		free_page((unsigned long)held[i]);
	lab_linux_hosted_wait(0);
	struct lab_stats st;
	lab_stats(t.z, &st);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(atomic_load(&warn_count), 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	linux_reset();
	tz_free(&t);
}

TEST(linux_gfp_kernel_waits_for_a_free)
{
	gfp_kernel_waits(0, 65);
}

/* A deferred-scrub zone: the freed frames are dirty until scrubbed, and
 * their frees moved the count already.  Until 2026-11-28 GFP_KERNEL tried
 * once, failed, and slept until its bound passed; it now scrubs before it
 * waits (direct reclaim). */
TEST(linux_gfp_kernel_scrubs_deferred_frees)
{
	gfp_kernel_waits(LAB_ZONE_ZEROED | LAB_ZONE_DEFERRED_SCRUB, 88);
}

/* free_pages() takes any address inside the frame, as Linux's does
 * (virt_to_page rounds down); until 2026-11-28 it warned LAB_EALIGN and the
 * frame stayed held. */
TEST(linux_free_pages_rounds_down)
{
	struct tzone t = tz_make(256, 32, 1, LAB_ZONE_ZEROED, 89);
	tz_owner(&t, 1, ALL32, 0, false);
	linux_setup(t.z, 1);
	unsigned long a = __get_free_page(GFP_NOWAIT), b = __get_free_pages(GFP_NOWAIT, 2);
	ASSERT_TRUE(a != 0 && b != 0);
	free_page(a + 8);
	free_pages(b + LAB_FRAME_SIZE - 1, 2);
	struct lab_stats st;
	lab_stats(t.z, &st);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(atomic_load(&warn_count), 0);
	/* An interior frame of a block is still refused (the head names it). */
	b = __get_free_pages(GFP_NOWAIT, 2);
	ASSERT_TRUE(b != 0);
	free_pages(b + LAB_FRAME_SIZE, 2);
	EXPECT_EQ(atomic_load(&warn_count), 1);
	free_pages(b, 2);
	lab_stats(t.z, &st);
	EXPECT_EQ(st.nr_allocated, 0);
	/* Addresses 1..4095 round down to NULL: a bug, never silent. */
	free_page(8);
	free_pages(4095, 1);
	EXPECT_EQ(atomic_load(&warn_count), 3);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	linux_reset();
	tz_free(&t);
}

/* A zone without a direct map has no pages to give: the list refuses it.
 * Until 2026-11-28 it was taken, every allocation took and gave back one of
 * its blocks, and every free stopped its search at it (LAB_ENOMAP): pages
 * of the zones after it could not be freed. */
TEST(linux_zone_list_refuses_a_zone_without_a_direct_map)
{
	struct tzone nomap = tz_make(256, 32, 1, LAB_ZONE_NO_SCRUB, 90);
	struct tzone t = tz_make(256, 32, 1, LAB_ZONE_ZEROED, 91);
	tz_owner(&nomap, 1, ALL32, 0, false);
	tz_owner(&t, 1, ALL32, 0, false);
	linux_setup(t.z, 1);
	lab_zone_t *zs[2] = {nomap.z, t.z};
	EXPECT_EQ(lab_linux_set_zones(zs, 2), LAB_ENOMAP);
	EXPECT_EQ(lab_linux_set_zone(nomap.z), LAB_ENOMAP);
	/* The list is as it was: t alone. */
	struct page *p = alloc_page(GFP_NOWAIT);
	ASSERT_TRUE(p != NULL);
	__free_page(p);
	struct lab_stats st;
	lab_stats(t.z, &st);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(st.allocs, 1);
	lab_stats(nomap.z, &st);
	EXPECT_EQ(st.allocs, 0);
	EXPECT_EQ(atomic_load(&warn_count), 0);
	linux_reset();
	tz_free(&t);
	tz_free(&nomap);
}

/* ---- bugs are never silent ------------------------------------------------------------ */

TEST(linux_bad_frees_warn_and_change_nothing)
{
	struct tzone t = tz_make(256, 32, 1, 0, 66);
	tz_owner(&t, 1, ALL32, 0, false);
	linux_setup(t.z, 1);
	uint64_t h0 = tz_hash(&t);

	free_page(0); /* as in Linux: nothing, no warning */
	free_pages(0, 3);
	EXPECT_EQ(atomic_load(&warn_count), 0);
	EXPECT_EQ(tz_hash(&t), h0);

	static char outside[2 * 4096];
	free_page((unsigned long)outside); /* not in any zone */
	EXPECT_EQ(atomic_load(&warn_count), 1);
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_ERANGE);
	__free_page(NULL);
	EXPECT_EQ(atomic_load(&warn_count), 2);
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_EINVAL);

	unsigned long a = __get_free_pages(GFP_NOWAIT, 1);
	ASSERT_TRUE(a != 0);
	uint64_t h1 = tz_hash(&t);
	free_pages(a, 0); /* wrong order */
	EXPECT_EQ(atomic_load(&warn_count), 3);
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_EORDER);
	free_page(a + PAGE_SIZE); /* inside the block */
	EXPECT_EQ(atomic_load(&warn_count), 4);
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_EINTERIOR);
	/* Not a frame address: a struct page always is (free_pages() rounds
	 * an address down, as Linux's does: linux_free_pages_rounds_down). */
	__free_pages((struct page *)(a + 8), 1);
	EXPECT_EQ(atomic_load(&warn_count), 5);
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_EALIGN);
	EXPECT_EQ(tz_hash(&t), h1);
	free_pages(a, 1);
	free_pages(a, 1); /* double free */
	EXPECT_EQ(atomic_load(&warn_count), 6);
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_EFREE);

	/* Allocation bugs: unknown flag, no owner, no zone. */
	EXPECT_TRUE(alloc_page(GFP_ATOMIC | 0x1000u) == NULL);
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_EINVAL);
	cur_dom = 0;
	EXPECT_TRUE(alloc_page(GFP_ATOMIC) == NULL);
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_ENOOWNER);
	cur_dom = 7; /* not registered */
	EXPECT_TRUE(alloc_page(GFP_ATOMIC) == NULL);
	EXPECT_EQ(atomic_load(&warn_last_err), LAB_ENOOWNER);
	EXPECT_EQ(atomic_load(&warn_count), 9);
	cur_dom = 1;
	EXPECT_TRUE(alloc_page(GFP_ATOMIC | __GFP_NOWARN) != NULL); /* accepted */
	lab_linux_set_zone(NULL);
	EXPECT_TRUE(alloc_page(GFP_ATOMIC) == NULL);
	EXPECT_EQ(atomic_load(&warn_count), 10);

	/* The default hook writes a line through lab_plat_log and still counts. */
	struct lab_linux_stats ls0, ls1;
	lab_linux_stats(&ls0);
	lab_linux_set_warn(NULL);
	lab_linux_set_zone(t.z);
	fprintf(stderr, "    (expected warning follows)\n");
	free_page((unsigned long)outside);
	lab_linux_stats(&ls1);
	EXPECT_EQ(ls1.warnings, ls0.warnings + 1);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	linux_reset();
	tz_free(&t);
}

/* ---- zone lists ------------------------------------------------------------------------ */

TEST(linux_zonelist_fallback)
{
	struct lab_zone_cfg ca, cb;
	lab_zone_cfg_default(&ca, 0x100, 128, NULL);
	lab_zone_cfg_default(&cb, 0x10000, 256, NULL);
	ca.nr_cpus = cb.nr_cpus = 1;
	ca.reserve_permille = cb.reserve_permille = 100;
	ca.flags = cb.flags = LAB_ZONE_ZEROED;
	struct tzone a = tz_make_cfg(&ca, 67), b = tz_make_cfg(&cb, 68);
	tz_owner(&a, 1, ALL32, 0, false);
	tz_owner(&b, 1, ALL32, 0, false);
	lab_zone_t *zs[2] = {a.z, b.z};
	linux_setup(a.z, 1);
	EXPECT_EQ(lab_linux_set_zones(zs, 2), LAB_OK);
	EXPECT_EQ(lab_linux_set_zones(zs, LAB_LINUX_MAX_ZONES + 1), LAB_EINVAL);

	static struct page *held[384];
	unsigned n = 0, in_a = 0, in_b = 0;
	while (n < 384 && (held[n] = alloc_page(GFP_NOWAIT)) != NULL) {
		unsigned long pfn = page_to_pfn(held[n]);
		EXPECT_TRUE(pfn_to_page(pfn) == held[n]);
		if (pfn >= 0x100 && pfn < 0x180) {
			in_a++;
			EXPECT_EQ(in_b, 0); /* zone a first */
		} else {
			EXPECT_TRUE(pfn >= 0x10000 && pfn < 0x10100);
			in_b++;
		}
		n++;
	}
	EXPECT_TRUE(in_a > 100 && in_b > 200);
	struct lab_stats sa, sb;
	lab_stats(a.z, &sa);
	lab_stats(b.z, &sb);
	EXPECT_EQ(sa.reserve_allocs + sb.reserve_allocs, 0);
	/* Free a few of b's: GFP_ATOMIC takes them before any reserve. */
	for (unsigned i = n - 5; i < n; i++)
		__free_page(held[i]);
	n -= 5;
	for (int i = 0; i < 5; i++) {
		held[n] = alloc_page(GFP_ATOMIC);
		ASSERT_TRUE(held[n] != NULL);
		EXPECT_TRUE(page_to_pfn(held[n]) >= 0x10000);
		n++;
	}
	lab_stats(a.z, &sa);
	lab_stats(b.z, &sb);
	EXPECT_EQ(sa.reserve_allocs + sb.reserve_allocs, 0);
	held[n] = alloc_page(GFP_ATOMIC); /* now a reserve */
	ASSERT_TRUE(held[n] != NULL);
	n++;
	lab_stats(a.z, &sa);
	lab_stats(b.z, &sb);
	EXPECT_EQ(sa.reserve_allocs + sb.reserve_allocs, 1);
	for (unsigned i = 0; i < n; i++) /* each free finds its zone */
		__free_page(held[i]);
	lab_stats(a.z, &sa);
	lab_stats(b.z, &sb);
	EXPECT_EQ(sa.nr_allocated + sb.nr_allocated, 0);
	EXPECT_EQ(atomic_load(&warn_count), 0);
	EXPECT_EQ(lab_check(a.z), LAB_OK);
	EXPECT_EQ(lab_check(b.z), LAB_OK);

	/* An owner present in one zone only uses that zone, silently. */
	tz_owner(&b, 2, ALL32, 0, false);
	cur_dom = 2;
	struct page *p = alloc_page(GFP_NOWAIT);
	ASSERT_TRUE(p != NULL);
	EXPECT_TRUE(page_to_pfn(p) >= 0x10000);
	__free_page(p);
	EXPECT_EQ(atomic_load(&warn_count), 0);
	linux_reset();
	tz_free(&a);
	tz_free(&b);
}

/* ---- the driver fragment, under load ------------------------------------------------------ */

#define DRV_FRAMES 512
#define DRV_RINGS 3 /* two NIC threads and a signal handler */
#define RING_CAP 1024

struct pkt {
	void *buf;
	uint64_t seq;
	lab_owner_t dom;
};

/* One single-producer single-consumer ring per interrupt source. */
static struct rxring {
	struct pkt slot[RING_CAP];
	_Atomic uint64_t head, tail; /* consumer, producer */
	uint64_t seq;
	_Atomic uint64_t rx, drops, ring_full;
} rings[DRV_RINGS];

static _Atomic uint32_t drv_shadow[DRV_FRAMES];
static _Atomic uint64_t drv_violations, drv_frees, drv_worker_ops;
static _Atomic bool drv_stop, drv_stop_consumer;
static struct tzone drv;

static void fill(uint64_t *w, uint64_t seq)
{
	for (unsigned i = 0; i < PAGE_SIZE / 8; i += 8)
		w[i] = seq * 0x9e3779b97f4a7c15ull + i;
	w[PAGE_SIZE / 8 - 1] = ~seq;
}

static bool intact(const uint64_t *w, uint64_t seq)
{
	for (unsigned i = 0; i < PAGE_SIZE / 8; i += 8)
		if (w[i] != seq * 0x9e3779b97f4a7c15ull + i)
			return false;
	return w[PAGE_SIZE / 8 - 1] == ~seq;
}

/* The NIC's receive interrupt for ring r: one packet for domain dom. */
static void rx_interrupt(struct rxring *ring, lab_owner_t dom)
{
	lab_owner_t saved = cur_dom; /* the handler runs for the packet's domain */
	uint64_t t = atomic_load_explicit(&ring->tail, memory_order_relaxed);
	if (t - atomic_load_explicit(&ring->head, memory_order_acquire) >= RING_CAP) {
		atomic_fetch_add(&ring->ring_full, 1); /* no descriptor: dropped by the NIC */
		return;
	}
	cur_dom = dom;

	/* ---- the fragment of issue 6, unchanged ---- */
	struct page *buffer_page; void *buffer;
	/* Must use GFP_ATOMIC because we're in interrupt context. */
	buffer_page = alloc_page(GFP_ATOMIC);
	if (!buffer_page) goto drop_packet;
	buffer = page_address(buffer_page);
	/* ---- end of the fragment ---- */

	uint64_t pfn = page_to_pfn(buffer_page);
	uint32_t zero = 0;
	if (pfn >= DRV_FRAMES || !atomic_compare_exchange_strong(&drv_shadow[pfn], &zero, dom))
		atomic_fetch_add(&drv_violations, 1); /* handed out twice */
	uint64_t seq = ++ring->seq;
	fill(buffer, seq);
	ring->slot[t % RING_CAP] = (struct pkt){buffer, seq, dom};
	atomic_store_explicit(&ring->tail, t + 1, memory_order_release);
	atomic_fetch_add(&ring->rx, 1);
	cur_dom = saved;
	return;
drop_packet:
	atomic_fetch_add(&ring->drops, 1);
	cur_dom = saved;
}

static void *nic_thread(void *arg)
{
	unsigned r = (unsigned)(uintptr_t)arg;
	uint64_t n = 0;
	while (!atomic_load_explicit(&drv_stop, memory_order_relaxed)) {
		uint64_t d = atomic_load_explicit(&rings[r].drops, memory_order_relaxed);
		rx_interrupt(&rings[r], 1 + (lab_owner_t)(n++ % 2));
		if (atomic_load_explicit(&rings[r].drops, memory_order_relaxed) != d)
			sched_yield(); /* the wire is not infinitely fast either */
	}
	return NULL;
}

static void on_rx_signal(int sig)
{
	(void)sig;
	static uint64_t n;
	rx_interrupt(&rings[2], 1 + (lab_owner_t)(n++ % 2));
}

/* The network stack: takes packets off the rings, checks them, frees them.
 * Slower than the NICs (it pauses every 64 packets), so the zone runs dry. */
static void *consumer_thread(void *arg)
{
	(void)arg;
	uint64_t done = 0;
	for (;;) {
		/* Read before the pass: once it is set, every packet is already in
		 * a ring, and a pass that finds none means they are all consumed. */
		bool last = atomic_load(&drv_stop_consumer);
		bool any = false;
		for (unsigned r = 0; r < DRV_RINGS; r++) {
			struct rxring *ring = &rings[r];
			uint64_t h = atomic_load_explicit(&ring->head, memory_order_relaxed);
			if (h == atomic_load_explicit(&ring->tail, memory_order_acquire))
				continue;
			any = true;
			struct pkt p = ring->slot[h % RING_CAP];
			atomic_store_explicit(&ring->head, h + 1, memory_order_release);
			if (!intact(p.buf, p.seq))
				atomic_fetch_add(&drv_violations, 1);
			uint64_t pfn = page_to_pfn(virt_to_page(p.buf));
			uint32_t want = p.dom;
			if (pfn >= DRV_FRAMES || !atomic_compare_exchange_strong(&drv_shadow[pfn], &want, 0))
				atomic_fetch_add(&drv_violations, 1);
			cur_dom = p.dom;
			if (done & 1)
				free_page((unsigned long)p.buf);
			else
				__free_page(virt_to_page(p.buf));
			atomic_fetch_add(&drv_frees, 1);
			if ((++done & 63) == 0 && !atomic_load(&drv_stop))
				usleep(200);
		}
		if (!any && last)
			return NULL;
	}
}

/* A thread that allocates and frees for itself with GFP_NOWAIT, and takes
 * the signal "interrupt" in the middle of it. */
static pthread_t worker_tid;
static void *worker_thread(void *arg)
{
	(void)arg;
	void *mine[8] = {0};
	uint64_t i = 0;
	cur_dom = 2;
	while (!atomic_load_explicit(&drv_stop, memory_order_relaxed)) {
		unsigned k = (unsigned)(i++ % 8);
		if (mine[k]) {
			free_page((unsigned long)mine[k]);
			mine[k] = NULL;
		} else {
			mine[k] = (void *)__get_free_page(GFP_NOWAIT);
		}
		atomic_fetch_add_explicit(&drv_worker_ops, 1, memory_order_relaxed);
	}
	for (unsigned k = 0; k < 8; k++)
		free_page((unsigned long)mine[k]);
	return NULL;
}

static void *signal_source(void *arg)
{
	(void)arg;
	while (!atomic_load(&drv_stop)) {
		pthread_kill(worker_tid, SIGUSR2);
		for (volatile int i = 0; i < 300; i++)
			;
	}
	return NULL;
}

TEST(linux_driver_fragment_under_load)
{
	drv = tz_make(DRV_FRAMES, 32, 8, 0, 69);
	tz_owner(&drv, 1, 0x0000ffffull, 0, true);  /* domain 1: colours 0-15, exclusive  */
	tz_owner(&drv, 2, 0xffff0000ull, 0, true);  /* domain 2: colours 16-31, exclusive */
	linux_setup(drv.z, 0);
	memset(rings, 0, sizeof(rings));
	for (unsigned i = 0; i < DRV_FRAMES; i++)
		atomic_store(&drv_shadow[i], 0);
	atomic_store(&drv_violations, 0);
	atomic_store(&drv_frees, 0);
	atomic_store(&drv_stop, false);
	atomic_store(&drv_stop_consumer, false);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_rx_signal;
	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGUSR2, &sa, NULL), 0);

	pthread_t nic[2], cons, sig;
	pthread_create(&worker_tid, NULL, worker_thread, NULL);
	pthread_create(&cons, NULL, consumer_thread, NULL);
	for (unsigned r = 0; r < 2; r++)
		pthread_create(&nic[r], NULL, nic_thread, (void *)(uintptr_t)r);
	pthread_create(&sig, NULL, signal_source, NULL);

	/* Until allocations have failed and been dropped plenty of times, on
	 * every source: at least 1 s, at most 30 s. */
	double t0 = now_s();
	for (;;) {
		usleep(20000);
		uint64_t rx = 0, drops = 0;
		uint64_t sig = atomic_load(&rings[2].rx) + atomic_load(&rings[2].drops);
		for (unsigned r = 0; r < DRV_RINGS; r++) {
			rx += atomic_load(&rings[r].rx);
			drops += atomic_load(&rings[r].drops);
		}
		double el = now_s() - t0;
		if ((el > 1.0 && rx >= 20000 && drops >= 1000 && sig >= 1000 && atomic_load(&rings[2].rx)) ||
		    el > 30.0)
			break;
	}
	atomic_store(&drv_stop, true);
	pthread_join(sig, NULL);
	for (unsigned r = 0; r < 2; r++)
		pthread_join(nic[r], NULL);
	pthread_join(worker_tid, NULL);
	signal(SIGUSR2, SIG_IGN);
	atomic_store(&drv_stop_consumer, true);
	pthread_join(cons, NULL);
	lab_linux_flush();

	uint64_t rx = 0, drops = 0, full = 0;
	for (unsigned r = 0; r < DRV_RINGS; r++) {
		rx += atomic_load(&rings[r].rx);
		drops += atomic_load(&rings[r].drops);
		full += atomic_load(&rings[r].ring_full);
		EXPECT_EQ(atomic_load(&rings[r].head), atomic_load(&rings[r].tail)); /* all consumed */
	}
	struct lab_stats st;
	struct lab_linux_stats ls;
	lab_stats(drv.z, &st);
	lab_linux_stats(&ls);
	printf("    driver fragment: %llu packets received (%llu in the signal handler), %llu dropped "
	       "(no page), %llu ring-full, %llu freed; worker %llu ops; %llu nested calls, %llu reserve "
	       "dips, %llu frees parked\n",
	       (unsigned long long)rx, (unsigned long long)atomic_load(&rings[2].rx),
	       (unsigned long long)drops, (unsigned long long)full,
	       (unsigned long long)atomic_load(&drv_frees),
	       (unsigned long long)atomic_load(&drv_worker_ops), (unsigned long long)st.nested_calls,
	       (unsigned long long)st.reserve_allocs, (unsigned long long)ls.parked);
	EXPECT_EQ(atomic_load(&drv_violations), 0);
	EXPECT_TRUE(rx >= 2000);
	EXPECT_TRUE(drops > 0);          /* allocations failed, packets dropped */
	EXPECT_TRUE(atomic_load(&rings[2].rx) > 0); /* the signal handler got pages too */
	EXPECT_EQ(atomic_load(&drv_frees), rx); /* every buffer freed by the consumer */
	EXPECT_TRUE(st.reserve_allocs > 0);     /* GFP_ATOMIC used the reserve */
	EXPECT_EQ(ls.parked_now, 0);
	EXPECT_EQ(atomic_load(&warn_count), 0);
	EXPECT_EQ(st.nr_allocated, 0);          /* nothing leaked */
	EXPECT_EQ(st.nr_free, DRV_FRAMES);
	for (unsigned i = 0; i < DRV_FRAMES; i++)
		EXPECT_EQ(atomic_load(&drv_shadow[i]), 0);
	EXPECT_EQ(lab_check(drv.z), LAB_OK);
	linux_reset();
	tz_free(&drv);
}
