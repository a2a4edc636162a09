/*
 * test_races.c - calls that race with an owner's removal, and contexts that
 * interrupt themselves: the bugs the review of 2026-11-28 found, one test
 * each, every one failing on the code before its fix.
 *
 * The pause: lab_plat_irq_save is wrapped at link time (the Makefile links
 * the unit tests with -Wl,--wrap=lab_plat_irq_save), and it is the first
 * thing every call into a zone does.  An armed test parks the next caller
 * there while another thread changes the zone, as a preemption or an
 * interrupt just before lab_ctx_enter would on a real host.
 */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

unsigned long __real_lab_plat_irq_save(void);
unsigned long __wrap_lab_plat_irq_save(void);

static _Atomic int armed;
static sem_t parked, resume;

unsigned long __wrap_lab_plat_irq_save(void)
{
	if (atomic_load_explicit(&armed, memory_order_relaxed) && atomic_exchange(&armed, 0)) {
		sem_post(&parked);
		sem_wait(&resume);
	}
	return __real_lab_plat_irq_save();
}

static lab_zone_t *rz;
static uint32_t pool1;
static int remover_rc;
static sem_t step;

/* Owner 1's removal up to its pool's death, while the caller sits parked;
 * then (after `step`) the rest of it, from here, while the caller goes on. */
static void *remove_owner1(void *arg)
{
	(void)arg;
	sem_wait(&parked);
	int rc, k = 0;
	do
		rc = lab_owner_remove(rz, 1, 1u << 20);
	while (rc == LAB_EAGAIN && ld_relaxed(&rz->pools[pool1].state) != POOL_DYING && ++k < 16);
	sem_post(&resume);
	sem_wait(&step);
	for (k = 0; k < 2000 && (rc = lab_owner_remove(rz, 1, 1u << 20)) == LAB_EAGAIN; k++)
		usleep(100);
	remover_rc = rc;
	return NULL;
}

/* Owners 1 and 2, a colour each, in a zone of 4 CPUs; the pause reset. */
static struct tzone two_owners(uint8_t seed)
{
	struct tzone t = tz_make(4096, 4, 4, 0, seed);
	tz_owner(&t, 1, 0x1, 0, false);
	tz_owner(&t, 2, 0x2, 0, false);
	rz = t.z;
	sem_init(&parked, 0, 0);
	sem_init(&resume, 0, 0);
	return t;
}

/* A CPU that enters after its pool died catches up on entry (its cached
 * frames of dead pools go home).  The alloc had checked the owner before
 * entering; until the fix it then refilled its cache from the dying pool,
 * handed one frame back, and kept 3 that no later call gave back: the
 * removal returned LAB_EAGAIN for good. */
TEST(race_alloc_after_pool_death_caches_nothing)
{
	struct tzone t = two_owners(71);
	pool1 = owner_at(t.z, 1)->pool;
	sem_init(&step, 0, 0);
	pthread_t th;
	ASSERT_EQ(pthread_create(&th, NULL, remove_owner1, NULL), 0);
	uint64_t pfn;
	atomic_store(&armed, 1);
	int rc = lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfn);
	EXPECT_EQ(rc, LAB_ENOOWNER);
	struct lab_cpu *cpu = cpu_at(t.z, lab_plat_cpu());
	EXPECT_EQ(ld_relaxed(&cpu_pcp(t.z, cpu, pool1)->count), 0); /* nothing of the dying pool here */
	sem_post(&step);
	/* This CPU goes on with another owner while the removal finishes. */
	for (int i = 0; i < 20000; i++)
		if (lab_alloc(t.z, 2, 0, LAB_NOWAIT, &pfn) == LAB_OK)
			lab_free(t.z, 2, pfn, 0);
	pthread_join(th, NULL);
	EXPECT_EQ(remover_rc, LAB_OK);
	EXPECT_EQ(lab_cpu_drain(t.z), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* While the caller of lab_alloc(owner 1) sits parked: owner 1 removed,
 * owner 3 added exclusive on colour 2 (its pool takes owner 1's old pool
 * slot), owner 1 added again on colour 3. */
static void *readd_owner1(void *arg)
{
	(void)arg;
	sem_wait(&parked);
	int rc, k = 0;
	do
		rc = lab_owner_remove(rz, 1, 1u << 20);
	while (rc == LAB_EAGAIN && ++k < 100);
	remover_rc = rc;
	struct lab_owner_cfg x = {.colours = 0x4, .flags = LAB_OWNER_EXCLUSIVE}, y = {.colours = 0x8};
	if (rc == LAB_OK && lab_owner_add(rz, 3, &x) == LAB_OK && lab_owner_add(rz, 1, &y) != LAB_OK)
		remover_rc = -100;
	sem_post(&resume);
	return NULL;
}

/* The alloc read owner 1's pool before entering.  Until the fix it then
 * took a frame of that pool slot, by now exclusive owner 3's, gave it to
 * owner 1 (its post-check saw owner 1 active again) and lab_check found a
 * frame outside its owner's colours (P6, P4). */
TEST(race_alloc_owner_removed_and_added_again)
{
	struct tzone t = two_owners(72);
	uint32_t slot = owner_at(t.z, 1)->pool;
	pthread_t th;
	ASSERT_EQ(pthread_create(&th, NULL, readd_owner1, NULL), 0);
	uint64_t pfn = 0;
	atomic_store(&armed, 1);
	int rc = lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfn);
	pthread_join(th, NULL);
	ASSERT_EQ(remover_rc, LAB_OK);
	EXPECT_EQ(owner_at(t.z, 3)->pool, slot); /* the scenario: owner 3 in the old slot */
	if (rc == LAB_OK) { /* allowed only from owner 1's own new colour */
		lab_owner_t who = 0;
		EXPECT_EQ(lab_frame_owner(t.z, pfn, &who, NULL), LAB_OK);
		EXPECT_EQ(who, 1);
		EXPECT_EQ(pfn & 3, 3);
		EXPECT_EQ(lab_free(t.z, 1, pfn, 0), LAB_OK);
	} else {
		EXPECT_EQ(rc, LAB_ENOOWNER);
	}
	EXPECT_EQ(lab_cpu_drain(t.z), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* ---- contexts that interrupt themselves (signals on the hosted platform) ---- */

static _Atomic bool sig_stop;
static _Atomic uint64_t sig_progress, sig_handled, sig_scrubs;
static lab_zone_t *sz;

/* Frames the handler could not free at once (LAB_EBUSY: the lock is held by
 * the code it interrupted; still its own): freed after the storm. */
static uint64_t sig_kept[1 << 16];
static _Atomic uint32_t sig_nkept;

static void on_alloc_signal(int s)
{
	(void)s;
	uint64_t pfn;
	if (lab_alloc(sz, 1, 0, LAB_ATOMIC, &pfn) == LAB_OK) {
		atomic_fetch_add(&sig_handled, 1);
		int rc = lab_free(sz, 1, pfn, 0);
		uint32_t k = atomic_load(&sig_nkept);
		if (rc == LAB_EBUSY && k < (1u << 16)) {
			sig_kept[k] = pfn;
			atomic_store(&sig_nkept, k + 1);
		}
	}
}

static size_t sig_budget = 64;

static void on_scrub_signal(int s)
{
	(void)s;
	lab_scrub(sz, sig_budget, NULL);
	atomic_fetch_add(&sig_scrubs, 1);
}

static bool sig_order1; /* every other allocation of order 1: the pool lock held longer */

static void *sig_worker(void *arg)
{
	(void)arg;
	uint64_t pfn[48];
	unsigned ord[48];
	while (!atomic_load(&sig_stop)) {
		int n = 0;
		for (int i = 0; i < 48; i++) {
			ord[n] = sig_order1 ? (unsigned)(i & 1) : 0;
			if (lab_alloc(sz, 1, ord[n], LAB_NOWAIT, &pfn[n]) == LAB_OK)
				n++;
		}
		for (int i = 0; i < n; i++)
			while (lab_free(sz, 1, pfn[i], ord[i]) == LAB_EBUSY)
				;
		atomic_fetch_add(&sig_progress, 1);
	}
	lab_cpu_drain(sz);
	return NULL;
}

/* Fire SIGUSR1 at a worker for `seconds`; true if the worker kept making
 * progress (a call that waits for the code it interrupted never returns). */
static bool signal_storm(void (*handler)(int), double seconds)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigaction(SIGUSR1, &sa, NULL);
	atomic_store(&sig_stop, false);
	atomic_store(&sig_progress, 0);
	pthread_t th;
	if (pthread_create(&th, NULL, sig_worker, NULL) != 0)
		return false;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t last = 0;
	double last_t = 0, el = 0;
	bool alive = true;
	while (el < seconds) {
		pthread_kill(th, SIGUSR1);
		for (volatile int i = 0; i < 2000; i++)
			;
		clock_gettime(CLOCK_MONOTONIC, &now);
		el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) * 1e-9;
		uint64_t p = atomic_load(&sig_progress);
		if (p != last) {
			last = p;
			last_t = el;
		} else if (el - last_t > 3) {
			alive = false; /* hung: the worker cannot be joined */
			break;
		}
	}
	if (!alive) {
		fprintf(stderr, "    worker hung inside the zone after %llu rounds\n", (unsigned long long)last);
		return false;
	}
	atomic_store(&sig_stop, true);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	if (pthread_timedjoin_np(th, NULL, &dl) != 0) { /* the last signal hung it */
		fprintf(stderr, "    worker hung inside the zone after the storm\n");
		return false;
	}
	signal(SIGUSR1, SIG_DFL);
	return true;
}

/* A thread beyond the zone's nr_cpus has no nesting depth.  Until the fix
 * its signal handler's allocation waited, forever, for the lock the call
 * it interrupted held (every slot-less context shared one lock id). */
TEST(race_slotless_thread_interrupting_itself)
{
	struct tzone t = tz_make(4096, 4, 1, 0, 73); /* one CPU slot: this thread's */
	tz_owner(&t, 1, 0x3, 0, false);
	sz = t.z;
	uint64_t pfn;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfn), LAB_OK); /* take slot 0 here */
	ASSERT_EQ(lab_free(t.z, 1, pfn, 0), LAB_OK);
	atomic_store(&sig_handled, 0);
	atomic_store(&sig_nkept, 0);
	bool alive = signal_storm(on_alloc_signal, 1.0);
	if (!alive) {
		harness_fail(__FILE__, __LINE__, "a slot-less thread's signal handler hung in lab_alloc");
		fflush(NULL);
		_exit(1); /* the hung worker cannot be stopped */
	}
	fprintf(stderr, "    %llu worker rounds, %llu allocations in the handler, %u of whose frees waited\n",
	        (unsigned long long)atomic_load(&sig_progress), (unsigned long long)atomic_load(&sig_handled),
	        atomic_load(&sig_nkept));
	EXPECT_TRUE(atomic_load(&sig_handled) > 0);
	for (uint32_t k = 0; k < atomic_load(&sig_nkept); k++)
		EXPECT_EQ(lab_free(t.z, 1, sig_kept[k], 0), LAB_OK);
	struct lab_stats st;
	EXPECT_EQ(lab_stats(t.z, &st), LAB_OK);
	EXPECT_TRUE(st.slotless_calls > 0);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* lab_scrub from a signal handler, while the worker's frees fill its dirty
 * ring.  Until the fix a nested scrub queued more frames for the outer call
 * than its queue holds and panicked ("dirty frame lost"), and its table
 * walk left frames clean outside their live pool, lost to it. */
TEST(race_scrub_interrupting_its_cpu)
{
	struct tzone t = tz_make(1u << 14, 4, 4, LAB_ZONE_DEFERRED_SCRUB, 74);
	tz_owner(&t, 1, 0x3, 0, false);
	sz = t.z;
	atomic_store(&sig_scrubs, 0);
	bool alive = signal_storm(on_scrub_signal, 1.0);
	if (!alive) {
		harness_fail(__FILE__, __LINE__, "a signal handler's lab_scrub hung its thread");
		fflush(NULL);
		_exit(1);
	}
	EXPECT_TRUE(atomic_load(&sig_scrubs) > 0);
	EXPECT_EQ(lab_cpu_drain(t.z), LAB_OK);
	while (lab_scrub(t.z, 1u << 20, NULL) == LAB_EAGAIN)
		;
	struct lab_stats st;
	EXPECT_EQ(lab_stats(t.z, &st), LAB_OK);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(st.nr_dirty, 0);
	EXPECT_EQ(st.nr_free, (1u << 14) / 2); /* colours 0 and 1: every frame back */
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* The same for a zone that starts dirty: the handler's scrub would walk the
 * frame table while the worker holds its pool's lock. */
TEST(race_scrub_walk_interrupting_its_cpu)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, 1u << 17, NULL);
	cfg.nr_colours = 4;
	cfg.nr_cpus = 4;
	struct tzone t = tz_make_cfg(&cfg, 75); /* not ZEROED: every frame dirty */
	tz_owner(&t, 1, 0x3, 0, false);
	sz = t.z;
	ASSERT_TRUE(lab_scrub(t.z, 256, NULL) == LAB_EAGAIN); /* a few clean frames to start */
	atomic_store(&sig_scrubs, 0);
	sig_budget = 1; /* the walk goes on through the whole storm */
	sig_order1 = true;
	bool alive = signal_storm(on_scrub_signal, 1.5);
	sig_budget = 64;
	sig_order1 = false;
	if (!alive) {
		harness_fail(__FILE__, __LINE__, "a signal handler's lab_scrub hung its thread");
		fflush(NULL);
		_exit(1);
	}
	EXPECT_EQ(lab_cpu_drain(t.z), LAB_OK);
	while (lab_scrub(t.z, 1u << 20, NULL) == LAB_EAGAIN)
		;
	struct lab_stats st;
	EXPECT_EQ(lab_stats(t.z, &st), LAB_OK);
	EXPECT_EQ(st.nr_dirty, 0);
	EXPECT_EQ(st.nr_free, (1u << 17) / 2); /* colours 0 and 1: every frame in the pool */
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}
