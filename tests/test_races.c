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
void __real_lab_rng_refill(struct lab_rng *r);
void __wrap_lab_rng_refill(struct lab_rng *r);
void __real_lab_plat_relax(void);
void __wrap_lab_plat_relax(void);
void __real_lab_plat_zero_frames(void *va, size_t nr);
void __wrap_lab_plat_zero_frames(void *va, size_t nr);

/* Where the armed thread parks: the start of a call (lab_plat_irq_save), a
 * draw that refills the generator (inside an exchange, after its checks),
 * a lock wait (lab_plat_relax) or a zeroing (lab_plat_zero_frames). */
enum { PARK_NONE, PARK_ENTRY, PARK_DRAW, PARK_LOCK_WAIT, PARK_ZERO };
static _Atomic int armed; /* PARK_*: for the thread whose parker is set */
static __thread bool parker;
static sem_t parked, resume;

static void park_if(int where)
{
	if (parker && atomic_load_explicit(&armed, memory_order_relaxed) == where) {
		int w = where;
		if (atomic_compare_exchange_strong(&armed, &w, PARK_NONE)) {
			sem_post(&parked);
			sem_wait(&resume);
		}
	}
}

unsigned long __wrap_lab_plat_irq_save(void)
{
	park_if(PARK_ENTRY);
	return __real_lab_plat_irq_save();
}

void __wrap_lab_rng_refill(struct lab_rng *r)
{
	park_if(PARK_DRAW);
	__real_lab_rng_refill(r);
}

/* Run once, on the parker thread, at its next lock wait (a nested call:
 * what an interrupt handler would run there). */
static void (*_Atomic relax_hook)(void);

void __wrap_lab_plat_relax(void)
{
	park_if(PARK_LOCK_WAIT);
	void (*h)(void) = parker ? atomic_exchange(&relax_hook, NULL) : NULL;
	if (h)
		h();
	__real_lab_plat_relax();
}

void __wrap_lab_plat_zero_frames(void *va, size_t nr)
{
	park_if(PARK_ZERO);
	__real_lab_plat_zero_frames(va, nr);
}

/* Arm a park point for this thread's next pass there. */
static void arm(int where)
{
	parker = true;
	atomic_store(&armed, where);
}

static lab_zone_t *rz;
static uint32_t pool1;
static int remover_rc;
static sem_t step;

/* Owner id's removal, called until it stops saying LAB_EAGAIN, at most
 * `tries` times (napping 100 us between calls if asked): its last code. */
static int remove_until_done(lab_zone_t *z, lab_owner_t id, unsigned tries, bool nap)
{
	int rc = LAB_EAGAIN;
	for (unsigned k = 0; k < tries && (rc = lab_owner_remove(z, id, 1u << 20)) == LAB_EAGAIN; k++)
		if (nap)
			usleep(100);
	return rc;
}

/* Let the parked caller go on; after `step`, owner 1's removal to its end,
 * while the caller makes calls of its own. */
static void finish_removal(void)
{
	sem_post(&resume);
	sem_wait(&step);
	remover_rc = remove_until_done(rz, 1, 2000, true);
}

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
	finish_removal();
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
	arm(PARK_ENTRY);
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
	arm(PARK_ENTRY);
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

/* Owner 1's removal until its pool's walk (pool_home) has begun, or, with
 * walk_done, finished; then, after `step`, to the end. */
static bool walk_done;
static uint32_t phase_seen, state_seen; /* where the removal stood while the caller was parked */
static void *remove_owner1_to_walk(void *arg)
{
	(void)arg;
	struct lab_pool *p = &rz->pools[pool1];
	sem_wait(&parked);
	int rc, k = 0;
	do
		rc = lab_owner_remove(rz, 1, 1u << 20);
	while (rc == LAB_EAGAIN && owner_at(rz, 1)->phase != (walk_done ? 4u : 3u) && ++k < 16);
	if (!walk_done) /* the walk begun: one more call runs it as far as it goes */
		rc = lab_owner_remove(rz, 1, 1u << 20);
	phase_seen = owner_at(rz, 1)->phase;
	state_seen = ld_relaxed(&p->state);
	finish_removal();
	return NULL;
}

/* After the pool died and its walk ran: nothing of it cached here, the
 * removal (thread th) finished, and a new owner of the colour gets every
 * frame. */
static void expect_pool_whole(struct tzone *t, pthread_t th)
{
	sem_post(&step);
	uint64_t pfn;
	for (int i = 0; i < 20000; i++)
		if (lab_alloc(t->z, 2, 0, LAB_NOWAIT, &pfn) == LAB_OK)
			lab_free(t->z, 2, pfn, 0);
	pthread_join(th, NULL);
	EXPECT_EQ(remover_rc, LAB_OK);
	EXPECT_EQ(lab_cpu_drain(t->z), LAB_OK);
	EXPECT_EQ(lab_check(t->z), LAB_OK);
	tz_owner(t, 3, 0x1, 0, true);
	int n = 0;
	while (lab_alloc(t->z, 3, 0, LAB_ATOMIC, &pfn) == LAB_OK)
		n++;
	EXPECT_EQ(n, 1024); /* the colour's every frame */
	EXPECT_EQ(lab_check(t->z), LAB_OK);
}

/* A free passed its pool's ACTIVE check, then was preempted inside its
 * exchange while the removal's walk (pool_home) ran past the frame the
 * exchange then moved into this CPU's cache.  Until the fix the frame
 * stayed there after the pool was dissolved: lab_check failed, and the
 * colour's next owner got 1023 of 1024 frames. */
TEST(race_free_exchange_after_removal_walk)
{
	struct tzone t = two_owners(76);
	pool1 = owner_at(t.z, 1)->pool;
	sem_init(&step, 0, 0);
	walk_done = false;
	static uint64_t held[300];
	int n = 0;
	for (int i = 0; i < 300; i++)
		if (lab_alloc(t.z, 1, 0, LAB_NOWAIT, &held[n]) == LAB_OK)
			n++;
	int hi = 0; /* the frame the walk reaches last */
	for (int i = 1; i < n; i++)
		if (held[i] > held[hi])
			hi = i;
	ASSERT_EQ(lab_cpu_drain(t.z), LAB_OK);
	pthread_t th;
	ASSERT_EQ(pthread_create(&th, NULL, remove_owner1_to_walk, NULL), 0);
	cpu_at(t.z, lab_plat_cpu())->rng.idx = LAB_RNG_WORDS; /* the next draw refills */
	arm(PARK_DRAW);
	int rc = lab_free(t.z, 1, held[hi], 0);
	EXPECT_EQ(rc, LAB_OK);
	/* Since the same day the removal waits for calls of the owner still in
	 * flight (their counts) before the pool dies: it stood at phase 1 or 2 with
	 * the pool ACTIVE while this free was parked, and the exchange's own
	 * check of the state is the second line. */
	EXPECT_TRUE(phase_seen == 1 || phase_seen == 2); /* walking again, or at the wait */
	EXPECT_EQ(state_seen, POOL_ACTIVE);
	expect_pool_whole(&t, th);
	tz_free(&t);
}

/* In the other thread: hold owner 1's pool lock (another CPU's short
 * critical section) until the armed caller is parked waiting for it. */
static void hold_pool_lock_until_parked(void)
{
	struct lab_pool *p = &rz->pools[pool1];
	while (!lock_try(&p->lock, lab_plat_cpu()))
		;
	sem_post(&step);
	sem_wait(&parked);
	lock_put(&p->lock);
}

/* An alloc passed its owner checks inside the zone, then its refill waited
 * for the pool lock while the removal ran through its walk.  Until the fix
 * the refill then took 4 frames of the dying pool into this CPU's cache,
 * where they outlived the pool. */
static void *hold_lock_then_remove(void *arg)
{
	hold_pool_lock_until_parked();
	int rc, k = 0;
	do
		rc = lab_owner_remove(rz, 1, 1u << 20);
	while (rc == LAB_EAGAIN && owner_at(rz, 1)->phase != 4 && ++k < 16);
	finish_removal();
	(void)arg;
	return NULL;
}

TEST(race_refill_after_removal_walk)
{
	struct tzone t = two_owners(77);
	pool1 = owner_at(t.z, 1)->pool;
	sem_init(&step, 0, 0);
	pthread_t th;
	ASSERT_EQ(pthread_create(&th, NULL, hold_lock_then_remove, NULL), 0);
	sem_wait(&step); /* the other thread holds the pool lock */
	arm(PARK_LOCK_WAIT);
	uint64_t pfn;
	int rc = lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfn);
	EXPECT_TRUE(rc == LAB_ENOMEM || rc == LAB_ENOOWNER);
	struct lab_cpu *cpu = cpu_at(t.z, lab_plat_cpu());
	EXPECT_EQ(ld_relaxed(&cpu_pcp(t.z, cpu, pool1)->count), 0); /* nothing of the dying pool */
	expect_pool_whole(&t, th);
	tz_free(&t);
}

/* A free checked its block, then sat parked while owner 1 was removed (its
 * block reclaimed) and added again, and the new owner 1 was handed the same
 * frame: the records are alike.  Until the fix the stale free freed the new
 * owner's block. */
static uint64_t stale_pfn;
static void *readd_and_take(void *arg)
{
	(void)arg;
	sem_wait(&parked);
	remover_rc = remove_until_done(rz, 1, 100, false);
	struct lab_owner_cfg oc = {.colours = 0x1};
	if (lab_owner_add(rz, 1, &oc) != LAB_OK)
		remover_rc = -100;
	uint64_t x = 0;
	while (lab_alloc(rz, 1, 0, LAB_ATOMIC, &x) == LAB_OK && x != stale_pfn)
		;
	if (x != stale_pfn)
		remover_rc = -101;
	sem_post(&resume);
	return NULL;
}

TEST(race_stale_free_after_owner_added_again)
{
	struct tzone t = tz_make(4096, 4, 4, 0, 78);
	tz_owner(&t, 1, 0x1, 0, false);
	tz_owner(&t, 2, 0x1, 0, false); /* keeps the pool alive */
	rz = t.z;
	sem_init(&parked, 0, 0);
	sem_init(&resume, 0, 0);
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &stale_pfn), LAB_OK);
	pthread_t th;
	ASSERT_EQ(pthread_create(&th, NULL, readd_and_take, NULL), 0);
	arm(PARK_ENTRY);
	int rc = lab_free(t.z, 1, stale_pfn, 0);
	pthread_join(th, NULL);
	ASSERT_EQ(remover_rc, LAB_OK);
	EXPECT_EQ(rc, LAB_ENOOWNER);
	lab_owner_t who = 0;
	EXPECT_EQ(lab_frame_owner(t.z, stale_pfn, &who, NULL), LAB_OK);
	EXPECT_EQ(who, 1); /* still the new owner 1's */
	EXPECT_EQ(lab_free(t.z, 1, stale_pfn, 0), LAB_OK);
	EXPECT_EQ(lab_owner_incarnation(t.z, 1), 2);
	EXPECT_EQ(lab_owner_incarnation(t.z, 3), 0);
	EXPECT_EQ(lab_cpu_drain(t.z), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* Start fn, which takes owner 1's pool lock and posts `step`; once it
 * holds the lock, arm this thread to park in its wait for it. */
static bool start_lock_holder(struct tzone *t, void *(*fn)(void *), pthread_t *th)
{
	rz = t->z;
	pool1 = owner_at(t->z, 1)->pool;
	sem_init(&parked, 0, 0);
	sem_init(&resume, 0, 0);
	sem_init(&step, 0, 0);
	if (pthread_create(th, NULL, fn, NULL) != 0)
		return false;
	sem_wait(&step);
	arm(PARK_LOCK_WAIT);
	return true;
}

/* An allocation of a quota owner counted its quota, then waited for the pool
 * lock while the owner was removed and added again: its refusal then
 * uncounted the new owner's quota count, which wrapped (a review, 2026-11-28).
 * The removal now waits, at phase 2, for the owner's calls in flight. */
static int removal_rc_parked;
static void *hold_lock_remove_readd(void *arg)
{
	(void)arg;
	hold_pool_lock_until_parked();
	int rc = LAB_EAGAIN;
	for (int k = 0; k < 20 && rc == LAB_EAGAIN; k++)
		rc = lab_owner_remove(rz, 1, 1u << 20);
	removal_rc_parked = rc;
	phase_seen = owner_at(rz, 1)->phase;
	sem_post(&resume);
	sem_wait(&step);
	rc = remove_until_done(rz, 1, 2000, true);
	struct lab_owner_cfg oc = {.colours = 0x1, .quota = 2};
	remover_rc = rc == LAB_OK ? lab_owner_add(rz, 1, &oc) : rc;
	return NULL;
}

TEST(race_quota_count_survives_removal)
{
	struct tzone t = tz_make(4096, 4, 4, 0, 82);
	tz_owner(&t, 1, 0x1, 2, false);
	tz_owner(&t, 2, 0x1, 0, false); /* keeps the pool alive */
	pthread_t th;
	ASSERT_TRUE(start_lock_holder(&t, hold_lock_remove_readd, &th));
	uint64_t pfn;
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfn), LAB_ENOOWNER);
	EXPECT_EQ(removal_rc_parked, LAB_EAGAIN); /* it waited for this call */
	EXPECT_TRUE(phase_seen == 1 || phase_seen == 2); /* walking again, or at the wait */
	sem_post(&step);
	pthread_join(th, NULL);
	ASSERT_EQ(remover_rc, LAB_OK); /* removed, and added again */
	EXPECT_EQ(ld_relaxed(&owner_at(t.z, 1)->held_q), 0);
	uint64_t a, b, c;
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &a), LAB_OK);
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &b), LAB_OK);
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &c), LAB_EQUOTA); /* the quota holds */
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, a, 0), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, b, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* The same with an owner without a quota, added again with one while the
 * call is in flight: nothing is counted, so the removal does not wait, and
 * the call's refusal subtracted from the new owner's quota count, which
 * wrapped, and every later removal of the id waited for it (a review,
 * 2026-11-28).  The call settles with the quota it read. */
static void *hold_lock_readd_with_quota(void *arg)
{
	(void)arg;
	hold_pool_lock_until_parked();
	int rc = remove_until_done(rz, 1, 100, false);
	struct lab_owner_cfg oc = {.colours = 0x1, .quota = 8};
	remover_rc = rc == LAB_OK ? lab_owner_add(rz, 1, &oc) : rc;
	sem_post(&resume);
	return NULL;
}

TEST(race_quota_added_while_call_in_flight)
{
	struct tzone t = tz_make(4096, 4, 4, 0, 84);
	tz_owner(&t, 1, 0x1, 0, false);
	tz_owner(&t, 2, 0x1, 0, false);
	pthread_t th;
	ASSERT_TRUE(start_lock_holder(&t, hold_lock_readd_with_quota, &th));
	uint64_t pfn;
	EXPECT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfn), LAB_ENOOWNER);
	pthread_join(th, NULL);
	ASSERT_EQ(remover_rc, LAB_OK);
	EXPECT_EQ(ld_relaxed(&owner_at(t.z, 1)->held_q), 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	EXPECT_EQ(remove_until_done(t.z, 1, 100, false), LAB_OK); /* nothing left to wait for */
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* An order-1 allocation waited for the pool lock while its only owner's
 * removal ran through its walk; it then claimed a block of the dying pool,
 * and gave it back into the pool after it was dissolved: 2 frames lost (a
 * review, 2026-11-28).  A dying pool now gives out no block. */
static void *hold_lock_remove_all(void *arg)
{
	(void)arg;
	hold_pool_lock_until_parked();
	int rc, k = 0;
	do
		rc = lab_owner_remove(rz, 1, 1u << 20);
	while (rc == LAB_EAGAIN && owner_at(rz, 1)->phase != 4 && ++k < 100);
	phase_seen = owner_at(rz, 1)->phase;
	/* If the call claims a block, it zeroes it (LAB_ZERO): park it there
	 * and dissolve the pool meanwhile. */
	atomic_store(&armed, PARK_ZERO);
	sem_post(&resume);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 1;
	bool claimed = sem_timedwait(&parked, &dl) == 0;
	atomic_store(&armed, PARK_NONE);
	remover_rc = remove_until_done(rz, 1, 100, false);
	if (claimed)
		sem_post(&resume);
	return NULL;
}

TEST(race_block_claim_after_removal_walk)
{
	struct tzone t = tz_make(4096, 4, 4, 0, 83);
	tz_owner(&t, 1, 0x3, 0, true);
	pthread_t th;
	ASSERT_TRUE(start_lock_holder(&t, hold_lock_remove_all, &th));
	uint64_t pfn;
	int rc = lab_alloc(t.z, 1, 1, LAB_NOWAIT | LAB_ZERO, &pfn);
	pthread_join(th, NULL);
	EXPECT_EQ(phase_seen, 4); /* the walk was done when the call got the lock */
	EXPECT_TRUE(rc == LAB_ENOMEM || rc == LAB_ENOOWNER);
	EXPECT_EQ(remover_rc, LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_owner(&t, 3, 0x3, 0, true);
	int n = 0;
	while (lab_alloc(t.z, 3, 0, LAB_ATOMIC, &pfn) == LAB_OK)
		n++;
	EXPECT_EQ(n, 2048); /* both colours' every frame */
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* An order-1 claim waited for G's tail occupant, locked by another CPU's
 * exchange, when an interrupt on its CPU freed a frame of the block it was
 * claiming: the nested free could not take the pool lock and queued the
 * frame, BUSY with this CPU's id, which the claim took for "claimed
 * already" (until 2026-11-28: "corrupt pool array", or the frame twice in
 * G).  The other CPU's exchange is stood in for by locking the occupant's
 * record by hand, as it would be between its CAS and its release. */
static sem_t go_b, b_done;
static uint64_t claim_target, b_pfn;
static uint32_t tail_frame, tail_slot;
static int nested_free_rc;

static void *claim_other_cpu(void *arg)
{
	(void)arg;
	uint64_t a, x;
	if (lab_alloc(rz, 1, 0, LAB_NOWAIT, &a) != LAB_OK)
		return NULL;
	sem_post(&b_done);
	sem_wait(&go_b);
	for (int it = 0; it < 1000000 && a != claim_target; it++) {
		if (lab_free(rz, 1, a, 0) != LAB_OK || lab_alloc(rz, 1, 0, LAB_NOWAIT, &x) != LAB_OK)
			break;
		a = x;
	}
	b_pfn = a;
	sem_post(&b_done);
	return NULL;
}

static void interrupt_during_claim(void)
{
	uint32_t me = lab_plat_cpu() & 0xfffu, first = LAB_NONE;
	for (uint32_t f = 0; f < rz->nr_frames && first == LAB_NONE; f++)
		if (ld_relaxed(rec_at(rz, f)) == rec_make(rz, f, ST_BUSY, 0, me))
			first = f;
	claim_target = rz->base_pfn + (first | 1); /* the block's other frame */
	sem_post(&go_b);
	sem_wait(&b_done);
	nested_free_rc = b_pfn == claim_target ? lab_free(rz, 1, b_pfn, 0) : -100;
	st_release(rec_at(rz, tail_frame), rec_pos(tail_slot)); /* the exchange lets go */
}

TEST(race_claim_with_a_nested_free_of_its_block)
{
	struct tzone t = tz_make(256, 1, 2, 0, 85);
	tz_owner(&t, 1, 0x1, 0, false);
	rz = t.z;
	sem_init(&go_b, 0, 0);
	sem_init(&b_done, 0, 0);
	pthread_t th;
	ASSERT_EQ(pthread_create(&th, NULL, claim_other_cpu, NULL), 0);
	sem_wait(&b_done);
	struct lab_pool *p = &t.z->pools[owner_at(t.z, 1)->pool];
	tail_slot = ld_relaxed(&p->n) - 1;
	tail_frame = ld_relaxed(gslot(t.z, p, tail_slot));
	uint32_t v = rec_pos(tail_slot), other = (lab_plat_cpu() + 1) & 0xfffu;
	ASSERT_TRUE(atomic_compare_exchange_strong(rec_at(t.z, tail_frame), &v,
	                                           rec_make(t.z, tail_frame, ST_BUSY, 0, other)));
	parker = true;
	atomic_store(&relax_hook, interrupt_during_claim);
	uint64_t blk = 0;
	int rc = lab_alloc(t.z, 1, 1, LAB_NOWAIT, &blk);
	pthread_join(th, NULL);
	EXPECT_EQ(nested_free_rc, LAB_OK);
	EXPECT_TRUE(rc == LAB_OK || rc == LAB_EFRAG);
	if (rc == LAB_OK)
		EXPECT_EQ(lab_free(t.z, 1, blk, 1), LAB_OK);
	EXPECT_EQ(lab_cpu_drain(t.z), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	struct lab_stats st;
	EXPECT_EQ(lab_stats(t.z, &st), LAB_OK);
	EXPECT_EQ(st.nr_free + st.nr_allocated, 256);
	tz_free(&t);
}

/* A nested free of an order-1 block locked its record, could not get the
 * pool lock, and put the ALLOC record back (LAB_EBUSY) after the removal's
 * walk had passed it: nothing could free the block any more, and since the
 * removal waits for the owner's counts, it returned LAB_EAGAIN for ever
 * (before that wait, the block leaked).  The removal now walks again. */
static uint64_t gave_up_block;
static _Atomic int gave_up_done, lock_holding;
static int gave_up_rc;

static void nested_free_gives_up(void)
{
	atomic_store(&armed, PARK_LOCK_WAIT); /* park at the nested free's own lock wait */
	gave_up_rc = lab_free(rz, 1, gave_up_block, 1);
	atomic_store(&gave_up_done, 1);
}

static void *hold_until_given_up(void *arg)
{
	(void)arg;
	struct lab_pool *p = &rz->pools[pool1];
	while (!lock_try(&p->lock, lab_plat_cpu()))
		;
	atomic_store(&lock_holding, 1);
	while (!atomic_load(&gave_up_done))
		usleep(100);
	lock_put(&p->lock);
	return NULL;
}

static void *remove_while_parked(void *arg)
{
	(void)arg;
	sem_wait(&parked);
	int rc = LAB_EAGAIN;
	for (int k = 0; k < 10 && rc == LAB_EAGAIN; k++)
		rc = lab_owner_remove(rz, 1, 1u << 20);
	removal_rc_parked = rc;
	sem_post(&resume);
	return NULL;
}

TEST(race_removal_walks_again_after_a_free_gives_up)
{
	struct tzone t = tz_make(4096, 1, 4, 0, 86);
	tz_owner(&t, 1, 0x1, 0, false);
	tz_owner(&t, 2, 0x1, 0, false);
	rz = t.z;
	pool1 = owner_at(t.z, 1)->pool;
	sem_init(&parked, 0, 0);
	sem_init(&resume, 0, 0);
	atomic_store(&gave_up_done, 0);
	atomic_store(&lock_holding, 0);
	ASSERT_EQ(lab_alloc(t.z, 1, 1, LAB_NOWAIT, &gave_up_block), LAB_OK);
	pthread_t h, r;
	ASSERT_EQ(pthread_create(&h, NULL, hold_until_given_up, NULL), 0);
	while (!atomic_load(&lock_holding))
		usleep(100);
	ASSERT_EQ(pthread_create(&r, NULL, remove_while_parked, NULL), 0);
	parker = true;
	atomic_store(&relax_hook, nested_free_gives_up); /* an interrupt at the outer call's lock wait */
	uint64_t x;
	int outer = lab_alloc(t.z, 2, 1, LAB_NOWAIT, &x);
	parker = false;
	pthread_join(r, NULL);
	pthread_join(h, NULL);
	EXPECT_EQ(gave_up_rc, LAB_EBUSY); /* the scenario: the nested free gave up */
	EXPECT_EQ(removal_rc_parked, LAB_EAGAIN);
	EXPECT_EQ(remove_until_done(t.z, 1, 2000, true), LAB_OK);
	lab_owner_t who = 7;
	EXPECT_EQ(lab_frame_owner(t.z, gave_up_block, &who, NULL), LAB_OK);
	EXPECT_EQ(who, 0); /* reclaimed */
	if (outer == LAB_OK)
		EXPECT_EQ(lab_free(t.z, 2, x, 1), LAB_OK);
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
static void scrub_storm_rings(unsigned cpus, uint8_t seed)
{
	struct tzone t = tz_make(1u << 14, 4, cpus, LAB_ZONE_DEFERRED_SCRUB, seed);
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

TEST(race_scrub_interrupting_its_cpu)
{
	scrub_storm_rings(4, 74);
}

/* The same on a thread beyond nr_cpus: its nesting depth is its id's
 * (slotless_depth); with one lock id per thread and no depth, the nested
 * scrub panicked (a review of the first fix, 2026-11-28). */
TEST(race_scrub_interrupting_a_slotless_thread)
{
	scrub_storm_rings(1, 79);
}

/* The same for a zone that starts dirty: the handler's scrub would walk the
 * frame table while the worker holds its pool's lock. */
static void scrub_storm_walk(unsigned cpus, uint8_t seed)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, 1u << 17, NULL);
	cfg.nr_colours = 4;
	cfg.nr_cpus = cpus;
	struct tzone t = tz_make_cfg(&cfg, seed); /* not ZEROED: every frame dirty */
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

TEST(race_scrub_walk_interrupting_its_cpu)
{
	scrub_storm_walk(4, 75);
}

TEST(race_scrub_walk_interrupting_a_slotless_thread)
{
	scrub_storm_walk(1, 80);
}

/* A thread's calls from a pthread key destructor that runs after the hosted
 * platform gave its CPU slot back (keys made later run later) used the slot
 * a new thread had just taken: two threads on one per-CPU cache ("corrupt
 * per-CPU cache", until 2026-11-28).  They now take the shared slot-less id. */
static pthread_key_t late_key;
static sem_t b_has_slot, a_in_dtor;
static unsigned a_late_id;
static _Atomic uint64_t late_fails;

static void churn(lab_owner_t who)
{
	uint64_t pf[8];
	for (int it = 0; it < 20000; it++) {
		int n = 0;
		for (int i = 0; i < 8; i++)
			if (lab_alloc(sz, who, 0, LAB_NOWAIT, &pf[n]) == LAB_OK)
				n++;
		for (int i = 0; i < n; i++)
			if (lab_free(sz, who, pf[i], 0) != LAB_OK)
				atomic_fetch_add(&late_fails, 1);
	}
}

static void late_dtor(void *v)
{
	(void)v;
	sem_post(&a_in_dtor);
	sem_wait(&b_has_slot);
	a_late_id = lab_plat_cpu();
	churn(1);
}

static void *late_thread_a(void *x)
{
	(void)x;
	uint64_t pf;
	if (lab_alloc(sz, 1, 0, LAB_NOWAIT, &pf) == LAB_OK) /* takes a slot */
		lab_free(sz, 1, pf, 0);
	pthread_setspecific(late_key, (void *)1);
	return NULL;
}

static void *late_thread_b(void *x)
{
	(void)x;
	uint64_t pf;
	if (lab_alloc(sz, 2, 0, LAB_NOWAIT, &pf) == LAB_OK) /* takes A's old slot */
		lab_free(sz, 2, pf, 0);
	sem_post(&b_has_slot);
	churn(2);
	return NULL;
}

TEST(hosted_thread_exit_gives_up_its_slot)
{
	struct tzone t = tz_make(4096, 4, 8, LAB_ZONE_NO_SCRUB, 81);
	tz_owner(&t, 1, 0x1, 0, false);
	tz_owner(&t, 2, 0x1, 0, false);
	sz = t.z;
	sem_init(&b_has_slot, 0, 0);
	sem_init(&a_in_dtor, 0, 0);
	atomic_store(&late_fails, 0);
	ASSERT_EQ(pthread_key_create(&late_key, late_dtor), 0);
	pthread_t a, b;
	ASSERT_EQ(pthread_create(&a, NULL, late_thread_a, NULL), 0);
	sem_wait(&a_in_dtor); /* A's slot is given back */
	ASSERT_EQ(pthread_create(&b, NULL, late_thread_b, NULL), 0);
	pthread_join(b, NULL);
	pthread_join(a, NULL);
	pthread_key_delete(late_key);
	EXPECT_EQ(a_late_id, LAB_MAX_CPUS);
	EXPECT_EQ(atomic_load(&late_fails), 0);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}

/* lab_check must run with no context inside the zone, and says so when one
 * is.  It looked only at the CPU slots' depths: a thread without a slot,
 * parked inside a call, went unnoticed (until 2026-11-28, evening). */
static uint64_t slotless_pfn;
static int slotless_rc;

static void *slotless_alloc_parked(void *arg)
{
	(void)arg;
	arm(PARK_LOCK_WAIT);
	slotless_rc = lab_alloc(sz, 1, 0, LAB_NOWAIT, &slotless_pfn);
	return NULL;
}

TEST(check_sees_a_slotless_context_inside)
{
	struct tzone t = tz_make(4096, 4, 1, 0, 87); /* one CPU slot: this thread's */
	tz_owner(&t, 1, 0x3, 0, false);
	sz = t.z;
	sem_init(&parked, 0, 0);
	sem_init(&resume, 0, 0);
	uint64_t pfn;
	ASSERT_EQ(lab_alloc(t.z, 1, 0, LAB_NOWAIT, &pfn), LAB_OK); /* take slot 0 here */
	ASSERT_EQ(lab_free(t.z, 1, pfn, 0), LAB_OK);
	ASSERT_EQ(lab_cpu_drain(t.z), LAB_OK);
	ASSERT_EQ(lab_check(t.z), LAB_OK);
	struct lab_pool *p = &t.z->pools[owner_at(t.z, 1)->pool];
	while (!lock_try(&p->lock, lab_plat_cpu()))
		;
	pthread_t th;
	ASSERT_EQ(pthread_create(&th, NULL, slotless_alloc_parked, NULL), 0);
	sem_wait(&parked); /* in the alloc, waiting for the pool lock */
	EXPECT_EQ(ld_relaxed(&t.z->pools[owner_at(t.z, 1)->pool].lock), lab_plat_cpu() + 1);
	EXPECT_EQ(lab_check(t.z), LAB_ECORRUPT);
	lock_put(&p->lock);
	sem_post(&resume);
	pthread_join(th, NULL);
	ASSERT_EQ(slotless_rc, LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	EXPECT_EQ(lab_free(t.z, 1, slotless_pfn, 0), LAB_OK);
	EXPECT_EQ(lab_check(t.z), LAB_OK);
	tz_free(&t);
}
