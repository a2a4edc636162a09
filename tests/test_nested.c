/*
 * test_nested.c - an "interrupt" that allocates while its CPU is inside the
 * allocator neither deadlocks nor corrupts anything (P2, P4).
 *
 * On the POSIX host a thread is a CPU and a signal is its interrupt: another
 * thread fires SIGUSR1 at the worker as fast as it can, and the handler
 * allocates with LAB_ATOMIC and frees, while the worker itself loops on
 * alloc/free.  lab_stats().nested_calls proves that many handler calls
 * really landed inside an outer call.  A shadow table (lock-free atomics are
 * async-signal-safe) catches any frame handed out twice.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define FRAMES 4096
#define HOLD 64

static struct tzone nt;
static _Atomic uint32_t shadow[FRAMES];
static _Atomic uint64_t violations, h_allocs, h_fail, h_frees, h_busy;
static _Atomic bool stop;
static pthread_t worker_thread;
/* Frames the handler holds: only the handler touches them (it does not
 * nest into itself: SIGUSR1 is blocked while it runs). */
static uint64_t h_held[HOLD];
static unsigned h_n;
static uint64_t h_seed = 0x2545f4914f6cdd1dull;

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void take(uint64_t pfn, uint32_t owner, unsigned order)
{
	for (uint64_t i = 0; i < (1u << order); i++) {
		uint32_t zero = 0;
		if (!atomic_compare_exchange_strong(&shadow[pfn + i], &zero, owner))
			atomic_fetch_add(&violations, 1);
	}
}

static bool give(uint64_t pfn, uint32_t owner, unsigned order)
{
	for (uint64_t i = 0; i < (1u << order); i++) {
		uint32_t want = owner;
		if (!atomic_compare_exchange_strong(&shadow[pfn + i], &want, 0))
			atomic_fetch_add(&violations, 1);
	}
	int rc = lab_free(nt.z, owner, pfn, order);
	if (rc == LAB_EBUSY) { /* could not finish without waiting: still ours */
		for (uint64_t i = 0; i < (1u << order); i++)
			atomic_store(&shadow[pfn + i], owner);
		return false;
	}
	if (rc != LAB_OK)
		atomic_fetch_add(&violations, 1);
	return true;
}

static void on_irq(int sig)
{
	(void)sig;
	uint64_t r = xs(&h_seed);
	uint32_t owner = 1 + (uint32_t)(r & 1); /* 1 exclusive, 2 shared (scrubs) */
	if (h_n < HOLD && (r >> 8) % 3) {
		uint64_t pfn;
		unsigned order = (r >> 16) % 8 == 0 ? 1 : 0;
		if (lab_alloc(nt.z, owner, order, LAB_ATOMIC, &pfn) == LAB_OK) {
			take(pfn, owner, order);
			h_held[h_n++] = pfn << 8 | owner << 4 | order;
			atomic_fetch_add(&h_allocs, 1);
		} else {
			atomic_fetch_add(&h_fail, 1);
		}
	} else if (h_n) {
		unsigned i = (unsigned)((r >> 24) % h_n);
		uint64_t e = h_held[i];
		if (give(e >> 8, (uint32_t)(e >> 4 & 15), (unsigned)(e & 15))) {
			h_held[i] = h_held[--h_n];
			atomic_fetch_add(&h_frees, 1);
		} else {
			atomic_fetch_add(&h_busy, 1);
		}
	}
}

static void *irq_source(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		pthread_kill(worker_thread, SIGUSR1);
		for (volatile int i = 0; i < 200; i++)
			;
	}
	return NULL;
}

TEST(nested_interrupt_allocations)
{
	nt = tz_make(FRAMES, 32, 2, 0, 91);
	tz_owner(&nt, 1, 0x0000ffffull, 0, true);
	tz_owner(&nt, 2, 0xffff0000ull, 0, false);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_irq;
	sigemptyset(&sa.sa_mask);
	ASSERT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	worker_thread = pthread_self();
	pthread_t src;
	pthread_create(&src, NULL, irq_source, NULL);

	uint64_t s = 7, held[256];
	unsigned n = 0;
	/* Run until enough interrupts have landed (their rate depends on the
	 * machine's load), at least 200000 iterations, at most 60 s. */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long it = 0;; it++) {
		if ((it & 4095) == 0) {
			struct lab_stats cur;
			lab_stats(nt.z, &cur);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if ((it >= 200000 && atomic_load(&h_allocs) >= 2000 && cur.nested_calls >= 1000) ||
			    t1.tv_sec - t0.tv_sec > 60)
				break;
		}
		uint64_t r = xs(&s);
		uint32_t owner = 1 + (uint32_t)(r & 1);
		if (n < 256 && (r >> 8) % 2) {
			uint64_t pfn;
			unsigned order = (r >> 16) % 16 == 0 ? 2 : 0;
			if (lab_alloc(nt.z, owner, order, (r >> 20) & 1 ? LAB_ATOMIC : LAB_NOWAIT, &pfn) == LAB_OK) {
				take(pfn, owner, order);
				held[n++] = pfn << 8 | owner << 4 | order;
			}
		} else if (n) {
			unsigned i = (unsigned)((r >> 24) % n);
			uint64_t e = held[i];
			if (give(e >> 8, (uint32_t)(e >> 4 & 15), (unsigned)(e & 15)))
				held[i] = held[--n];
		}
	}
	atomic_store(&stop, true);
	pthread_join(src, NULL);
	signal(SIGUSR1, SIG_IGN);
	for (unsigned i = 0; i < n; i++)
		EXPECT_TRUE(give(held[i] >> 8, (uint32_t)(held[i] >> 4 & 15), (unsigned)(held[i] & 15)));
	for (unsigned i = 0; i < h_n; i++)
		EXPECT_TRUE(give(h_held[i] >> 8, (uint32_t)(h_held[i] >> 4 & 15), (unsigned)(h_held[i] & 15)));
	lab_cpu_drain(nt.z);

	struct lab_stats st;
	lab_stats(nt.z, &st);
	printf("    nested: %llu handler allocs, %llu frees (%llu deferred by EBUSY), %llu failures; "
	       "%llu calls interrupted their CPU inside the zone\n",
	       (unsigned long long)h_allocs, (unsigned long long)h_frees, (unsigned long long)h_busy,
	       (unsigned long long)h_fail, (unsigned long long)st.nested_calls);
	EXPECT_EQ(atomic_load(&violations), 0);
	EXPECT_TRUE(atomic_load(&h_allocs) >= 2000);
	EXPECT_TRUE(st.nested_calls >= 1000); /* the case under test really happened */
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(st.nr_free, FRAMES);
	EXPECT_EQ(lab_check(nt.z), LAB_OK);
	tz_free(&nt);
}
