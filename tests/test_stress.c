/*
 * test_stress.c - multi-threaded stress of lab_alloc / lab_free / owner
 * removal against a shadow ownership model.
 *
 * The zone: 16384 frames, 32 colours, five owners:
 *   E1 colours 0..7 and E2 colours 8..15, exclusive (each its own pool);
 *   S1, S2 and Q on colours 16..31, shared (one pool), Q with a quota.
 * Worker threads (each its own xorshift generator, fixed seeds) run a random
 * mix of order-0 allocations (mostly), orders 1..4 (1..3 for the exclusive
 * owners), LAB_NOWAIT / LAB_ATOMIC / LAB_ZERO / LAB_EXCLUSIVE flags, frees
 * of blocks they hold, and cross-thread frees: a block is handed to another
 * thread's mutex-protected inbox and that thread frees it with the owner id
 * recorded with it.  How many blocks a thread wants to hold sweeps up and
 * down in step across threads, so the pools regularly run dry (ENOMEM, the
 * atomic reserve, EFRAG, EQUOTA all happen).
 *
 * The shadow model: one _Atomic uint32_t per frame, 0 or the owner the test
 * believes holds it.  A successful allocation CASes 0 -> owner for every
 * frame of the block (a failed CAS: the frame was handed out twice); a free
 * CASes owner -> 0 first (must succeed), then lab_free must return LAB_OK.
 * Content, through the direct map: a shared owner's new frame is all zero
 * (scrubbed on free; the whole 4 KiB for 1/8 of them, a sample of words
 * otherwise), a LAB_ZERO frame is entirely zero, an exclusive owner's frame
 * holds zero or its own earlier pattern; then (owner, pfn) patterns go into
 * the first and last 8 bytes and are verified before the free.  Every frame's
 * colour must be in its owner's mask, every block aligned to its order.
 * Any discrepancy is a "violation", counted atomically and expected to be 0.
 *
 * Owner removal (stress_owner_remove*): while workers keep allocating for the
 * other owners, the main thread removes an owner X (E1, then S1, then Q).
 *   1. mode[X] = RACE: every worker stops using X, except the racer thread,
 *      which keeps calling lab_alloc / lab_free on X (all orders, all flags)
 *      without touching X's memory.  The main thread waits until every
 *      worker has acknowledged (an epoch counter), then calls
 *      lab_owner_remove(X, 32) until LAB_OK.  The racer must only see
 *      LAB_OK or LAB_ENOOWNER from alloc (besides ENOMEM/EFRAG/EQUOTA), and
 *      LAB_OK, LAB_ENOOWNER or LAB_EFREE from free (EFREE: removal took the
 *      block between lab_free's owner check and its commit; for a shared X
 *      also LAB_EOWNER: the reclaimed frame already went to S2 or Q).  While
 *      X is dying, an allocation that finds X in the shadow entry of its new
 *      frame takes it over (the allocator reclaimed it); its own id there, or
 *      any live owner's, is still a violation.
 *   2. mode[X] = GONE, wait for every worker; check no frame is X's any more
 *      (lab_frame_owner), clear X's shadow entries, make every worker drop
 *      the X blocks it still holds (they were reclaimed: never freed), then
 *      re-add X and resume.
 *   Accounting: lab_stats' allocs equals the test's successful allocations,
 *   frees its successful frees, and the difference is exactly the number of
 *   blocks dropped at removal.
 *
 * At the end every worker frees what it holds and calls lab_cpu_drain; then
 * lab_check() == LAB_OK, nr_allocated == 0, nr_free == the pools' frames,
 * every shadow entry is 0 and no violation was seen.
 *
 * The hosted platform gives each thread its own CPU slot while slots last
 * (the main thread holds one).  The tests:
 *   stress_4threads                 4 workers, 8 CPU slots
 *   stress_8threads_oversubscribed  8 workers on 2 cores, 16 slots
 *   stress_few_cpus                 8 workers, 3 slots: most take the
 *                                   zone's shared slot-less path
 *   stress_deferred_scrub           4 workers, LAB_ZONE_DEFERRED_SCRUB, the
 *                                   workers also call lab_scrub now and then
 *   stress_owner_remove             4 workers, three remove/re-add rounds
 *   stress_owner_remove_8threads    the same with 8 workers
 * Each prints one summary line (plus one per removal round).  A run in which
 * no operation completes for 60 s aborts with a message (a deadlock in the
 * allocator would otherwise hang the suite).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "harness.h"

#if defined(__SANITIZE_THREAD__)
#define SX_SCALE 20 /* ThreadSanitizer: 1/20 of the operations */
#elif defined(__SANITIZE_ADDRESS__)
#define SX_SCALE 5  /* ASan + UBSan cost little here: 1/5 */
#else
#define SX_SCALE 1
#endif

#define SX_FRAMES 16384u
#define SX_COLOURS 32u
#define SX_NOWN 5
#define SX_HELD_CAP 8192u
#define SX_INBOX_CAP 256u
#define SX_PERIOD 32768u /* ops per sweep of the wanted-held target */
#define SX_NERR 24       /* error codes 0..-23 */

enum { E1 = 1, E2 = 2, S1 = 3, S2 = 4, QO = 5 };

static const struct sx_owner_def {
	uint64_t mask, quota;
	bool excl;
	unsigned max_order;
	const char *name;
} sx_def[SX_NOWN + 1] = {
	[E1] = {0x000000ffull, 0, true, 3, "E1"},
	[E2] = {0x0000ff00ull, 0, true, 3, "E2"},
	[S1] = {0xffff0000ull, 0, false, 4, "S1"},
	[S2] = {0xffff0000ull, 0, false, 4, "S2"},
	[QO] = {0xffff0000ull, 384, false, 4, "Q"},
};
#define SX_POOL_FRAMES (SX_FRAMES) /* all 32 colours belong to some pool */

enum { M_ACTIVE = 0, M_RACE = 1, M_GONE = 2 };

struct sx_blk {
	uint32_t pfn;
	uint8_t order, owner, racy; /* racy: allocated by the racer while X was dying */
};

struct sx_inbox {
	pthread_mutex_t mu;
	_Atomic uint32_t pending; /* == n, readable without the lock */
	uint32_t n;
	struct sx_blk q[SX_INBOX_CAP];
};

struct sx_ctx;

struct sx_worker {
	struct sx_ctx *cx;
	unsigned tid;
	pthread_t th;
	uint64_t rng;
	uint64_t seen;          /* epoch last handled */
	_Atomic uint64_t ack;   /* epoch acknowledged (release) */
	_Atomic uint64_t prog;  /* ops so far, for the main thread's pacing */
	uint32_t nheld;
	struct sx_blk held[SX_HELD_CAP];
	struct sx_inbox in;
	/* plain counters, read after join */
	uint64_t ops, alloc_ok, free_ok, xfer, takeovers, dropped;
	uint64_t afail[SX_NERR], ffail[SX_NERR];
	uint64_t race_alloc[SX_NERR], race_free[SX_NERR], race_lost_shadow;
	uint64_t full_zero_checks, scrubs;
};

struct sx_ctx {
	struct tzone t;
	lab_zone_t *z;
	unsigned nthreads;
	uint64_t ops_per_thread;
	bool removal, deferred;
	_Atomic uint32_t *shadow;
	_Atomic uint64_t violations;
	_Atomic int mode[SX_NOWN + 1];
	_Atomic int dying[SX_NOWN + 1];
	_Atomic int race_owner; /* X while removing it, else 0 */
	_Atomic int discard;    /* owner whose blocks workers drop at the next epoch */
	_Atomic uint64_t epoch;
	_Atomic bool main_done;
	_Atomic int64_t q_held; /* frames of Q the test holds: <= the allocator's count */
	unsigned racer;         /* tid of the racer */
	_Atomic unsigned finished; /* workers that returned */
	const char *name;
	uint64_t watch_sum;     /* main thread's stall detector */
	double watch_t;
	pthread_barrier_t bar;
	struct sx_worker *w;
};

/* ---- small helpers ------------------------------------------------------------ */

static inline uint64_t sx_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static inline uint32_t sx_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)(((sx_rand(s) >> 32) * n) >> 32);
}

static inline uint64_t pat_lo(unsigned owner, uint64_t pfn)
{
	return 0x5a5a000000000000ull ^ ((uint64_t)owner << 40) ^ pfn;
}

static inline uint64_t pat_hi(unsigned owner, uint64_t pfn)
{
	return 0xa5a5000000000000ull ^ ((uint64_t)owner << 40) ^ (pfn * 0x9e37ull);
}

static double sx_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sx_nap(void)
{
	struct timespec ts = {0, 200000};
	nanosleep(&ts, NULL);
}

static unsigned sx_err(int rc)
{
	return rc <= 0 && rc > -SX_NERR ? (unsigned)-rc : SX_NERR - 1;
}

static void sx_violation(struct sx_ctx *cx, const char *what, uint64_t pfn, unsigned owner, long extra)
{
	uint64_t n = atomic_fetch_add(&cx->violations, 1);
	if (n < 20)
		fprintf(stderr, "    VIOLATION: %s (pfn %llu, owner %u, %ld)\n", what,
		        (unsigned long long)pfn, owner, extra);
}

static uint64_t *sx_words(struct sx_ctx *cx, uint64_t pfn)
{
	return lab_pfn_to_virt(cx->z, pfn);
}

static bool sx_all_zero(const uint64_t *w)
{
	uint64_t acc = 0;
	for (unsigned i = 0; i < LAB_FRAME_SIZE / 8; i++)
		acc |= w[i];
	return acc == 0;
}

static bool sx_sample_zero(const uint64_t *w, uint64_t *rng)
{
	uint64_t acc = w[0] | w[LAB_FRAME_SIZE / 8 - 1];
	for (int i = 0; i < 6; i++)
		acc |= w[sx_below(rng, LAB_FRAME_SIZE / 8)];
	return acc == 0;
}

/* ---- the shadow model --------------------------------------------------------- */

/* Frame f was just allocated to owner: 0 -> owner.  While an owner with the
 * same colours is being removed, its entries may be taken over (the allocator
 * reclaimed those frames).  False: the frame is someone's already. */
static bool sx_shadow_take(struct sx_worker *w, uint32_t f, unsigned owner)
{
	struct sx_ctx *cx = w->cx;
	for (int tries = 0; tries < 16; tries++) {
		uint32_t old = 0;
		if (atomic_compare_exchange_strong(&cx->shadow[f], &old, owner))
			return true;
		if (old == owner || old > SX_NOWN || !atomic_load(&cx->dying[old]) ||
		    sx_def[old].mask != sx_def[owner].mask)
			return false;
		if (atomic_compare_exchange_strong(&cx->shadow[f], &old, owner)) {
			w->takeovers++;
			return true;
		}
	}
	return false;
}

static void sx_held_push(struct sx_worker *w, struct sx_blk b);

/* ---- alloc ---------------------------------------------------------------------- */

static void sx_alloc(struct sx_worker *w, unsigned owner, bool race)
{
	struct sx_ctx *cx = w->cx;
	const struct sx_owner_def *d = &sx_def[owner];
	uint64_t *rng = &w->rng;
	unsigned order = sx_below(rng, 100) < 85 ? 0 : 1 + sx_below(rng, d->max_order);
	unsigned r = sx_below(rng, 100);
	unsigned flags = r < 55 ? LAB_NOWAIT : r < 80 ? LAB_ATOMIC : r < 90 ? 0 : LAB_NOWAIT | LAB_ATOMIC;
	if (sx_below(rng, 100) < 12)
		flags |= LAB_ZERO;
	bool want_notexcl = false;
	if (d->excl && sx_below(rng, 100) < 10)
		flags |= LAB_EXCLUSIVE;
	else if (!d->excl && sx_below(rng, 1000) < 5)
		flags |= LAB_EXCLUSIVE, want_notexcl = true;

	uint64_t pfn = UINT64_MAX;
	int rc = lab_alloc(cx->z, owner, order, flags, &pfn);
	w->ops++;
	if (race)
		w->race_alloc[sx_err(rc)]++;
	else if (rc != LAB_OK)
		w->afail[sx_err(rc)]++;

	if (want_notexcl) {
		if (rc == LAB_ENOTEXCL || (race && rc == LAB_ENOOWNER))
			return;
		sx_violation(cx, "LAB_EXCLUSIVE for a shared owner not refused", pfn, owner, rc);
		if (rc == LAB_OK) /* keep the model straight anyway */
			goto ok;
		return;
	}
	switch (rc) {
	case LAB_OK:
		goto ok;
	case LAB_ENOMEM:
		return;
	case LAB_EFRAG:
		if (order == 0)
			sx_violation(cx, "EFRAG for order 0", 0, owner, rc);
		return;
	case LAB_EQUOTA:
		if (!d->quota)
			sx_violation(cx, "EQUOTA for an owner without quota", 0, owner, rc);
		return;
	case LAB_ENOOWNER:
		if (!race)
			sx_violation(cx, "ENOOWNER for a live owner", 0, owner, rc);
		return;
	default:
		sx_violation(cx, "unexpected lab_alloc error", 0, owner, rc);
		return;
	}

ok:;
	uint32_t K = 1u << order;
	w->alloc_ok++;
	if (pfn >= SX_FRAMES || pfn + K > SX_FRAMES) {
		sx_violation(cx, "pfn outside the zone", pfn, owner, order);
		return;
	}
	if (pfn & (K - 1))
		sx_violation(cx, "block not aligned to its order", pfn, owner, order);
	if (!race && sx_below(rng, 16) == 0) {
		lab_owner_t fo = 0;
		unsigned ford = 99;
		if (lab_frame_owner(cx->z, pfn, &fo, &ford) != LAB_OK || fo != owner || ford != order)
			sx_violation(cx, "lab_frame_owner disagrees right after alloc", pfn, owner, (long)fo);
	}
	for (uint32_t i = 0; i < K; i++) {
		uint32_t f = (uint32_t)pfn + i;
		if (!(d->mask >> (f & (SX_COLOURS - 1)) & 1))
			sx_violation(cx, "frame colour outside the owner's mask", f, owner, (long)(f & 31));
		if (!sx_shadow_take(w, f, owner))
			sx_violation(cx, "frame handed out twice (shadow CAS 0 -> owner failed)", f, owner,
			             (long)atomic_load(&cx->shadow[f]));
	}
	if (d->quota) {
		int64_t now = atomic_fetch_add(&cx->q_held, (int64_t)K) + (int64_t)K;
		if (now > (int64_t)d->quota)
			sx_violation(cx, "owner holds more than its quota", pfn, owner, (long)now);
	}
	if (!race) {
		for (uint32_t i = 0; i < K; i++) {
			uint64_t f = pfn + i, *wd = sx_words(cx, f);
			const uint64_t last = LAB_FRAME_SIZE / 8 - 1;
			bool good;
			if (flags & LAB_ZERO) {
				good = sx_all_zero(wd);
				w->full_zero_checks++;
			} else if (!d->excl) {
				if (sx_below(rng, 8) == 0) {
					good = sx_all_zero(wd);
					w->full_zero_checks++;
				} else {
					good = sx_sample_zero(wd, rng);
				}
			} else {
				/* Exclusive: not scrubbed between its own uses, so zero or
				 * the pattern this owner wrote into this very frame. */
				good = (wd[0] == 0 || wd[0] == pat_lo(owner, f)) &&
				       (wd[last] == 0 || wd[last] == pat_hi(owner, f));
			}
			if (!good)
				sx_violation(cx, (flags & LAB_ZERO) ? "LAB_ZERO frame not zero"
				                 : d->excl ? "exclusive frame holds foreign data"
				                           : "shared frame not scrubbed",
				             f, owner, (long)wd[0]);
			wd[0] = pat_lo(owner, f);
			wd[last] = pat_hi(owner, f);
		}
	}
	struct sx_blk b = {(uint32_t)pfn, (uint8_t)order, (uint8_t)owner, (uint8_t)race};
	sx_held_push(w, b);
}

/* ---- free ----------------------------------------------------------------------- */

/* Free a block of a live owner: patterns intact, shadow owner -> 0, LAB_OK. */
static void sx_free(struct sx_worker *w, struct sx_blk b)
{
	struct sx_ctx *cx = w->cx;
	uint32_t K = 1u << b.order;
	if (b.racy)
		sx_violation(cx, "test bug: racy block freed as normal", b.pfn, b.owner, 0);
	for (uint32_t i = 0; i < K; i++) {
		uint64_t f = b.pfn + i, *wd = sx_words(cx, f);
		if (wd[0] != pat_lo(b.owner, f) || wd[LAB_FRAME_SIZE / 8 - 1] != pat_hi(b.owner, f))
			sx_violation(cx, "pattern overwritten while held (frame shared or scrubbed)", f,
			             b.owner, (long)wd[0]);
	}
	for (uint32_t i = 0; i < K; i++) {
		uint32_t old = b.owner;
		if (!atomic_compare_exchange_strong(&cx->shadow[b.pfn + i], &old, 0))
			sx_violation(cx, "shadow owner -> 0 failed before free", b.pfn + i, b.owner, (long)old);
	}
	if (sx_def[b.owner].quota)
		atomic_fetch_sub(&cx->q_held, (int64_t)K);
	int rc = lab_free(cx->z, b.owner, b.pfn, b.order);
	w->ops++;
	if (rc == LAB_OK) {
		w->free_ok++;
	} else {
		w->ffail[sx_err(rc)]++;
		sx_violation(cx, "lab_free of a held block failed", b.pfn, b.owner, rc);
	}
}

/* The racer frees a block of the dying owner X: no memory access (removal
 * zeroes it), shadow cleared first (for a shared X it may have been taken
 * over already), and only LAB_OK / LAB_ENOOWNER / LAB_EFREE (/ LAB_EOWNER
 * for a shared X) are acceptable. */
static void sx_free_race(struct sx_worker *w, struct sx_blk b)
{
	struct sx_ctx *cx = w->cx;
	const struct sx_owner_def *d = &sx_def[b.owner];
	uint32_t K = 1u << b.order;
	for (uint32_t i = 0; i < K; i++) {
		uint32_t old = b.owner;
		if (!atomic_compare_exchange_strong(&cx->shadow[b.pfn + i], &old, 0)) {
			if (d->excl)
				sx_violation(cx, "exclusive dying owner's frame taken by someone else", b.pfn + i,
				             b.owner, (long)old);
			w->race_lost_shadow++;
		}
	}
	if (d->quota)
		atomic_fetch_sub(&cx->q_held, (int64_t)K);
	int rc = lab_free(cx->z, b.owner, b.pfn, b.order);
	w->ops++;
	w->race_free[sx_err(rc)]++;
	if (rc == LAB_OK)
		w->free_ok++;
	else if (rc == LAB_ENOOWNER || rc == LAB_EFREE || (rc == LAB_EOWNER && !d->excl))
		w->dropped++; /* removal took (or will take) it back */
	else
		sx_violation(cx, "racing free on a dying owner: unexpected result", b.pfn, b.owner, rc);
}

/* ---- held lists and inboxes ----------------------------------------------------- */

static void sx_held_push(struct sx_worker *w, struct sx_blk b)
{
	if (w->nheld < SX_HELD_CAP) {
		w->held[w->nheld++] = b;
		return;
	}
	/* full (never in practice): give it back at once */
	if (b.racy)
		sx_free_race(w, b);
	else
		sx_free(w, b);
}

static void sx_held_take(struct sx_worker *w, uint32_t i)
{
	w->held[i] = w->held[--w->nheld];
}

/* Hand b to another worker; false if its inbox is full. */
static bool sx_handoff(struct sx_worker *w, struct sx_blk b)
{
	struct sx_ctx *cx = w->cx;
	unsigned to = (w->tid + 1 + sx_below(&w->rng, cx->nthreads - 1)) % cx->nthreads;
	struct sx_inbox *in = &cx->w[to].in;
	bool ok = false;
	pthread_mutex_lock(&in->mu);
	if (in->n < SX_INBOX_CAP) {
		in->q[in->n++] = b;
		atomic_store_explicit(&in->pending, in->n, memory_order_relaxed);
		ok = true;
	}
	pthread_mutex_unlock(&in->mu);
	return ok;
}

/* Take the inbox; free blocks of live owners (cross-thread frees), keep the
 * others (an owner being removed) in the held list. */
static void sx_inbox_drain(struct sx_worker *w, bool keep_all)
{
	struct sx_ctx *cx = w->cx;
	struct sx_blk got[SX_INBOX_CAP];
	uint32_t n;
	if (!atomic_load_explicit(&w->in.pending, memory_order_relaxed))
		return;
	pthread_mutex_lock(&w->in.mu);
	n = w->in.n;
	memcpy(got, w->in.q, n * sizeof(got[0]));
	w->in.n = 0;
	atomic_store_explicit(&w->in.pending, 0, memory_order_relaxed);
	pthread_mutex_unlock(&w->in.mu);
	for (uint32_t i = 0; i < n; i++) {
		if (!keep_all && atomic_load(&cx->mode[got[i].owner]) == M_ACTIVE)
			sx_free(w, got[i]);
		else
			sx_held_push(w, got[i]);
	}
}

/* Owner x was removed: drop its blocks (reclaimed by the allocator). */
static void sx_discard(struct sx_worker *w, unsigned x)
{
	struct sx_ctx *cx = w->cx;
	sx_inbox_drain(w, true);
	for (uint32_t i = 0; i < w->nheld;) {
		if (w->held[i].owner == x) {
			if (sx_def[x].quota)
				atomic_fetch_sub(&cx->q_held, (int64_t)1 << w->held[i].order);
			w->dropped++;
			sx_held_take(w, i);
		} else {
			i++;
		}
	}
}

/* ---- the worker ----------------------------------------------------------------- */

static unsigned sx_pick_owner(struct sx_worker *w, bool *race)
{
	struct sx_ctx *cx = w->cx;
	*race = false;
	if (w->tid == cx->racer) {
		int x = atomic_load(&cx->race_owner);
		if (x && atomic_load(&cx->mode[x]) == M_RACE && sx_below(&w->rng, 2)) {
			*race = true;
			return (unsigned)x;
		}
	}
	for (int tries = 0; tries < 8; tries++) {
		unsigned o = sx_below(&w->rng, 100) < 40 ? 1 + w->tid % SX_NOWN : 1 + sx_below(&w->rng, SX_NOWN);
		if (atomic_load(&cx->mode[o]) == M_ACTIVE)
			return o;
	}
	return 0;
}

/* Blocks this thread wants to hold: a triangle wave, in step across threads,
 * peaking above what the zone has. */
static uint32_t sx_target(const struct sx_worker *w)
{
	uint32_t hi = 16000 / w->cx->nthreads;
	uint32_t ph = (uint32_t)(w->ops % SX_PERIOD);
	uint32_t tri = ph < SX_PERIOD / 2 ? ph : SX_PERIOD - ph;
	return 4 + (uint32_t)((uint64_t)tri * hi / (SX_PERIOD / 2));
}

static void sx_free_op(struct sx_worker *w)
{
	struct sx_ctx *cx = w->cx;
	uint32_t i = sx_below(&w->rng, w->nheld);
	struct sx_blk b = w->held[i];
	int m = atomic_load(&cx->mode[b.owner]);
	if (m == M_RACE && w->tid == cx->racer && atomic_load(&cx->race_owner) == b.owner) {
		sx_held_take(w, i);
		sx_free_race(w, b);
		return;
	}
	if (m != M_ACTIVE)
		return; /* an owner being removed: not ours to touch now */
	sx_held_take(w, i);
	if (cx->nthreads > 1 && sx_below(&w->rng, 100) < 25 && sx_handoff(w, b)) {
		w->xfer++;
		return;
	}
	sx_free(w, b);
}

static void *sx_worker_main(void *arg)
{
	struct sx_worker *w = arg;
	struct sx_ctx *cx = w->cx;

	for (;;) {
		uint64_t e = atomic_load_explicit(&cx->epoch, memory_order_acquire);
		if (e != w->seen) {
			int x = atomic_load(&cx->discard);
			if (x)
				sx_discard(w, (unsigned)x);
			w->seen = e;
			atomic_store_explicit(&w->ack, e, memory_order_release);
		}
		if (w->ops >= cx->ops_per_thread &&
		    (!cx->removal || atomic_load_explicit(&cx->main_done, memory_order_acquire)))
			break;
		atomic_store_explicit(&w->prog, w->ops, memory_order_relaxed);

		sx_inbox_drain(w, false);
		if (cx->deferred && sx_below(&w->rng, 1024) == 0) {
			lab_scrub(cx->z, 16, NULL);
			w->scrubs++;
		}
		uint32_t target = sx_target(w);
		unsigned r = sx_below(&w->rng, 100);
		if (w->nheld == 0 || (w->nheld < target ? r < 70 : r < 30)) {
			bool race;
			unsigned o = sx_pick_owner(w, &race);
			if (o)
				sx_alloc(w, o, race);
			else
				w->ops++;
		} else {
			sx_free_op(w);
		}
	}

	/* Wait until nobody hands blocks around any more, then give back all. */
	pthread_barrier_wait(&cx->bar);
	sx_inbox_drain(w, true);
	while (w->nheld) {
		atomic_store_explicit(&w->prog, w->ops, memory_order_relaxed);
		struct sx_blk b = w->held[--w->nheld];
		if (atomic_load(&cx->mode[b.owner]) != M_ACTIVE) {
			w->dropped++; /* only after a failed removal */
			continue;
		}
		sx_free(w, b);
	}
	if (lab_cpu_drain(cx->z) != LAB_OK)
		sx_violation(cx, "lab_cpu_drain failed", 0, 0, 0);
	atomic_store_explicit(&w->prog, w->ops + 1, memory_order_relaxed);
	atomic_fetch_add(&cx->finished, 1);
	return NULL;
}

/* ---- the main thread: stall detector, owner removal rounds ---------------------- */

static uint64_t sx_progress(struct sx_ctx *cx)
{
	uint64_t s = 0;
	for (unsigned i = 0; i < cx->nthreads; i++)
		s += atomic_load_explicit(&cx->w[i].prog, memory_order_relaxed);
	return s;
}

/* Called while the main thread waits for the workers: no operation
 * completed anywhere for SX_STALL_S seconds means threads are stuck inside
 * the allocator (a deadlock or a livelock); the zone cannot be recovered,
 * so say so and abort rather than hang the suite. */
#define SX_STALL_S 60.0
static void sx_watch(struct sx_ctx *cx)
{
	uint64_t s = sx_progress(cx);
	double now = sx_now();
	if (s != cx->watch_sum || cx->watch_t == 0) {
		cx->watch_sum = s;
		cx->watch_t = now;
		return;
	}
	if (now - cx->watch_t < SX_STALL_S)
		return;
	fprintf(stderr, "    FAIL %s: no worker completed an operation for %.0f s: threads are stuck "
	        "inside the allocator (deadlock?); per-thread ops:", cx->name, SX_STALL_S);
	for (unsigned i = 0; i < cx->nthreads; i++)
		fprintf(stderr, " %llu", (unsigned long long)atomic_load(&cx->w[i].prog));
	fprintf(stderr, "\n");
	fflush(NULL);
	abort();
}

static void sx_quiesce(struct sx_ctx *cx)
{
	uint64_t e = atomic_fetch_add_explicit(&cx->epoch, 1, memory_order_acq_rel) + 1;
	for (unsigned i = 0; i < cx->nthreads; i++)
		while (atomic_load_explicit(&cx->w[i].ack, memory_order_acquire) < e) {
			sx_nap();
			sx_watch(cx);
		}
}

struct sx_round {
	unsigned owner;
	int rc;
	uint64_t calls, swept, leftover;
	double ms;
};

static void sx_remove_round(struct sx_ctx *cx, unsigned x, struct sx_round *rd)
{
	lab_zone_t *z = cx->z;
	memset(rd, 0, sizeof(*rd));
	rd->owner = x;

	/* 1: only the racer keeps using x; then remove it under the racer's feet */
	atomic_store(&cx->race_owner, (int)x);
	atomic_store(&cx->dying[x], 1);
	atomic_store(&cx->mode[x], M_RACE);
	sx_quiesce(cx);
	double t0 = sx_now();
	int rc;
	do {
		rc = lab_owner_remove(z, x, 32);
		rd->calls++;
		if ((rd->calls & 7) == 0)
			sched_yield();
	} while (rc == LAB_EAGAIN && rd->calls < 2000000 && sx_now() - t0 < 60.0);
	rd->ms = (sx_now() - t0) * 1e3;
	rd->rc = rc;
	uint64_t pfn;
	EXPECT_EQ(rc, LAB_OK);
	EXPECT_EQ(lab_alloc(z, x, 0, LAB_NOWAIT, &pfn), LAB_ENOOWNER);
	EXPECT_EQ(lab_free(z, x, 0, 0), LAB_ENOOWNER);
	struct lab_owner_stats os;
	EXPECT_EQ(lab_owner_stats(z, x, &os), LAB_ENOOWNER);

	/* 2: nobody uses x; no frame may still be x's */
	atomic_store(&cx->mode[x], M_GONE);
	sx_quiesce(cx);
	for (uint32_t f = 0; f < SX_FRAMES; f++) {
		lab_owner_t o = 0;
		lab_frame_owner(z, f, &o, NULL);
		if (o == x)
			rd->leftover++;
		uint32_t old = x;
		if (atomic_compare_exchange_strong(&cx->shadow[f], &old, 0))
			rd->swept++;
	}
	EXPECT_EQ(rd->leftover, 0);
	atomic_store(&cx->discard, (int)x);
	sx_quiesce(cx);
	atomic_store(&cx->discard, 0);
	if (sx_def[x].quota)
		EXPECT_EQ(atomic_load(&cx->q_held), 0);

	/* 3: back in business */
	atomic_store(&cx->dying[x], 0);
	atomic_store(&cx->race_owner, 0);
	if (rc == LAB_OK) {
		struct lab_owner_cfg oc = {.colours = sx_def[x].mask, .quota = sx_def[x].quota,
		                           .flags = sx_def[x].excl ? LAB_OWNER_EXCLUSIVE : 0};
		int arc = lab_owner_add(z, x, &oc);
		EXPECT_EQ(arc, LAB_OK);
		if (arc == LAB_OK)
			atomic_store(&cx->mode[x], M_ACTIVE);
	}
	sx_quiesce(cx);
}

/* ---- the driver --------------------------------------------------------------------- */

/* For `make soak` (tests/soak.c): totals over every run, and a seed offset
 * so each round of the soak runs different operation streams. */
_Atomic uint64_t sx_total_ops, sx_total_violations;
uint32_t sx_seed_offset; /* the zone key takes its low byte, the workers all of it */

struct sx_params {
	const char *name;
	unsigned nthreads, nr_cpus;
	uint64_t ops_total; /* plain build; divided by SX_SCALE under sanitizers */
	bool removal, deferred;
	uint8_t seed;
};

static void sx_run(const struct sx_params *p)
{
	struct sx_ctx *cx = calloc(1, sizeof(*cx));
	ASSERT_TRUE(cx != NULL);
	cx->nthreads = p->nthreads;
	cx->ops_per_thread = p->ops_total / SX_SCALE / p->nthreads;
	cx->removal = p->removal;
	cx->deferred = p->deferred;
	cx->racer = 0;
	cx->name = p->name;
	uint8_t seed = (uint8_t)(p->seed + sx_seed_offset);
	cx->t = tz_make(SX_FRAMES, SX_COLOURS, p->nr_cpus, p->deferred ? LAB_ZONE_DEFERRED_SCRUB : 0, seed);
	cx->z = cx->t.z;
	for (unsigned o = 1; o <= SX_NOWN; o++)
		tz_owner(&cx->t, o, sx_def[o].mask, sx_def[o].quota, sx_def[o].excl);
	cx->shadow = calloc(SX_FRAMES, sizeof(cx->shadow[0]));
	cx->w = calloc(p->nthreads, sizeof(cx->w[0]));
	ASSERT_TRUE(cx->shadow && cx->w);
	pthread_barrier_init(&cx->bar, NULL, p->nthreads);
	for (unsigned i = 0; i < p->nthreads; i++) {
		struct sx_worker *w = &cx->w[i];
		w->cx = cx;
		w->tid = i;
		w->rng = 0x9E3779B97F4A7C15ull * (i + 1) ^ ((uint64_t)seed << 56) ^
		         (uint64_t)sx_seed_offset * 0xBF58476D1CE4E5B9ull ^ 0xD1B54A32D192ED03ull;
		pthread_mutex_init(&w->in.mu, NULL);
	}

	double t0 = sx_now();
	for (unsigned i = 0; i < p->nthreads; i++)
		ASSERT_EQ(pthread_create(&cx->w[i].th, NULL, sx_worker_main, &cx->w[i]), 0);

	static const unsigned seq[] = {E1, S1, QO};
	struct sx_round rounds[3];
	unsigned nrounds = 0;
	if (p->removal) {
		uint64_t total = cx->ops_per_thread * p->nthreads;
		for (unsigned r = 0; r < 3; r++) {
			while (sx_progress(cx) < (r + 1) * total / 4) {
				sx_nap();
				sx_watch(cx);
			}
			sx_remove_round(cx, seq[r], &rounds[r]);
			nrounds++;
		}
	}
	atomic_store_explicit(&cx->main_done, true, memory_order_release);
	while (atomic_load(&cx->finished) < p->nthreads) {
		sx_nap();
		sx_watch(cx);
	}
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(cx->w[i].th, NULL);
	double secs = sx_now() - t0;

	lab_cpu_drain(cx->z);
	if (p->deferred) {
		int rc = LAB_EAGAIN;
		for (int i = 0; i < 100000 && rc == LAB_EAGAIN; i++)
			rc = lab_scrub(cx->z, 256, NULL);
		EXPECT_EQ(rc, LAB_OK);
	}

	/* sums */
	uint64_t ops = 0, aok = 0, fok = 0, xfer = 0, take = 0, dropped = 0, fullz = 0, lost = 0;
	uint64_t af[SX_NERR] = {0}, ff[SX_NERR] = {0}, ra[SX_NERR] = {0}, rf[SX_NERR] = {0};
	for (unsigned i = 0; i < p->nthreads; i++) {
		struct sx_worker *w = &cx->w[i];
		ops += w->ops, aok += w->alloc_ok, fok += w->free_ok, xfer += w->xfer;
		take += w->takeovers, dropped += w->dropped, fullz += w->full_zero_checks;
		lost += w->race_lost_shadow;
		for (int k = 0; k < SX_NERR; k++) {
			af[k] += w->afail[k], ff[k] += w->ffail[k];
			ra[k] += w->race_alloc[k], rf[k] += w->race_free[k];
		}
		EXPECT_EQ(w->nheld, 0);
		EXPECT_EQ(w->in.n, 0);
	}

	struct lab_stats st;
	EXPECT_EQ(lab_check(cx->z), LAB_OK);
	EXPECT_EQ(lab_stats(cx->z, &st), LAB_OK);
	uint64_t shadow_left = 0;
	for (uint32_t f = 0; f < SX_FRAMES; f++)
		shadow_left += atomic_load(&cx->shadow[f]) != 0;
	uint64_t viol = atomic_load(&cx->violations);
	atomic_fetch_add(&sx_total_ops, ops);
	atomic_fetch_add(&sx_total_violations, viol);

	printf("    %s: %u threads, %u cpus, %.2fs: %llu ops, %llu allocs, %llu frees (%llu handed over), "
	       "alloc failures nomem %llu frag %llu quota %llu notexcl %llu, %llu full-frame zero checks, "
	       "stats allocs %llu frees %llu nomem %llu frag %llu quota %llu reserve %llu refused %llu, "
	       "violations %llu\n",
	       p->name, p->nthreads, p->nr_cpus, secs, (unsigned long long)ops, (unsigned long long)aok,
	       (unsigned long long)fok, (unsigned long long)xfer,
	       (unsigned long long)af[-LAB_ENOMEM], (unsigned long long)af[-LAB_EFRAG],
	       (unsigned long long)af[-LAB_EQUOTA], (unsigned long long)af[-LAB_ENOTEXCL],
	       (unsigned long long)fullz, (unsigned long long)st.allocs, (unsigned long long)st.frees,
	       (unsigned long long)st.fail_nomem, (unsigned long long)st.fail_frag,
	       (unsigned long long)st.fail_quota, (unsigned long long)st.reserve_allocs,
	       (unsigned long long)st.refused, (unsigned long long)viol);
	for (unsigned r = 0; r < nrounds; r++)
		printf("    %s: removed %s: rc %d after %llu calls, %.1f ms, %llu shadow entries swept\n",
		       p->name, sx_def[rounds[r].owner].name, rounds[r].rc,
		       (unsigned long long)rounds[r].calls, rounds[r].ms, (unsigned long long)rounds[r].swept);
	if (p->removal)
		printf("    %s: racer on dying owners: alloc ok %llu enoowner %llu nomem %llu frag %llu quota %llu; "
		       "free ok %llu enoowner %llu efree %llu eowner %llu; shadow taken over %llu, lost %llu; "
		       "blocks dropped (reclaimed) %llu\n",
		       p->name, (unsigned long long)ra[0], (unsigned long long)ra[-LAB_ENOOWNER],
		       (unsigned long long)ra[-LAB_ENOMEM], (unsigned long long)ra[-LAB_EFRAG],
		       (unsigned long long)ra[-LAB_EQUOTA], (unsigned long long)rf[0],
		       (unsigned long long)rf[-LAB_ENOOWNER], (unsigned long long)rf[-LAB_EFREE],
		       (unsigned long long)rf[-LAB_EOWNER], (unsigned long long)take,
		       (unsigned long long)lost, (unsigned long long)dropped);

	EXPECT_EQ(viol, 0);
	EXPECT_TRUE(ops >= cx->ops_per_thread * p->nthreads);
	EXPECT_EQ(st.nr_allocated, 0);
	EXPECT_EQ(st.nr_dirty, 0);
	EXPECT_EQ(st.nr_free, SX_POOL_FRAMES);
	EXPECT_EQ(st.nr_unassigned, SX_FRAMES - SX_POOL_FRAMES);
	EXPECT_EQ(st.nr_owners, SX_NOWN);
	EXPECT_EQ(shadow_left, 0);
	EXPECT_EQ(atomic_load(&cx->q_held), 0);
	EXPECT_EQ(st.allocs, aok);
	EXPECT_EQ(st.frees, fok);
	EXPECT_EQ(st.allocs - st.frees, dropped);
	EXPECT_EQ(st.fail_frag, af[-LAB_EFRAG] + ra[-LAB_EFRAG]);
	EXPECT_EQ(st.fail_quota, af[-LAB_EQUOTA] + ra[-LAB_EQUOTA]);
	if (!p->removal) {
		EXPECT_EQ(st.allocs, st.frees);
		EXPECT_EQ(dropped, 0);
		EXPECT_EQ(st.fail_nomem, af[-LAB_ENOMEM]);
	} else {
		/* an alloc that loses to removal after entering the zone returns
		 * ENOOWNER but is counted with the nomem failures */
		EXPECT_TRUE(st.fail_nomem >= af[-LAB_ENOMEM] + ra[-LAB_ENOMEM]);
		EXPECT_TRUE(st.fail_nomem <= af[-LAB_ENOMEM] + ra[-LAB_ENOMEM] + ra[-LAB_ENOOWNER]);
	}

	pthread_barrier_destroy(&cx->bar);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_mutex_destroy(&cx->w[i].in.mu);
	free(cx->w);
	free(cx->shadow);
	tz_free(&cx->t);
	free(cx);
}

/* ---- the tests ---------------------------------------------------------------------- */

TEST(stress_4threads)
{
	struct sx_params p = {"stress_4threads", 4, 8, 2400000, false, false, 41};
	sx_run(&p);
}

TEST(stress_8threads_oversubscribed)
{
	struct sx_params p = {"stress_8threads_oversubscribed", 8, 16, 2400000, false, false, 42};
	sx_run(&p);
}

/* 8 threads, 3 per-CPU slots (the main thread holds one): at least six
 * workers take the zone's shared slot-less path. */
TEST(stress_few_cpus)
{
	struct sx_params p = {"stress_few_cpus", 8, 3, 2000000, false, false, 43};
	sx_run(&p);
}

TEST(stress_deferred_scrub)
{
	struct sx_params p = {"stress_deferred_scrub", 4, 8, 2000000, false, true, 44};
	sx_run(&p);
}

TEST(stress_owner_remove)
{
	struct sx_params p = {"stress_owner_remove", 4, 8, 2400000, true, false, 45};
	sx_run(&p);
}

/* The same, oversubscribed: removal steps and the racer get preempted
 * inside the allocator. */
TEST(stress_owner_remove_8threads)
{
	struct sx_params p = {"stress_owner_remove_8threads", 8, 16, 2400000, true, false, 46};
	sx_run(&p);
}
