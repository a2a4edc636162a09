/*
 * pool.c - a colour pool's free frames: a uniformly shuffled array G[0, n).
 *
 * Invariants (checked by lab_check, modelled in src/core/model/pool.pml):
 *  I1  a frame whose record is IN POOL(p) sits in slot 2p or 2p+1, below n,
 *      and no other live slot names it; every live slot names such a frame.
 *  I2  G[0, n) is a uniformly random arrangement of the pool's free frames
 *      as far as anyone without the CSPRNG's output can tell: frames enter at
 *      a uniformly random slot (exchange, or inside-out Fisher-Yates insert),
 *      or at the tail when they are themselves uniform samples of G (pcp
 *      spill); they leave from a random slot (exchange) or the tail (refill).
 *  I3  n only changes under the pool lock.  Whoever moves a frame between
 *      slots, or out of G, first locks the frame (its record becomes BUSY),
 *      so the slot holding a locked frame cannot change under the locker.
 *
 * Ordering rules that make lock-free exchanges safe against concurrent
 * pops/appends/claims (each is argued where it is used):
 *  - a slot is written before the record that points to it (release);
 *  - when n shrinks, n is published before the moved frame's new record;
 *  - an exchanger that locked a frame re-reads n and accepts only a slot
 *    below it holding that frame, else undoes its lock and tries again.
 */
#include "internal.h"

static inline struct lab_pool *pool_at(struct lab_zone *z, uint32_t pool)
{
	return &z->pools[pool];
}

static inline uint32_t busy_rec(const struct lab_zone *z, uint32_t frame, uint32_t me)
{
	return rec_make(z, frame, ST_BUSY, 0, me & 0xfffu);
}

static inline bool cas_at(lab_a32 *rec, uint32_t *expect, uint32_t desired)
{
	return atomic_compare_exchange_strong_explicit(rec, expect, desired, memory_order_acq_rel,
	                                               memory_order_acquire);
}

static inline bool cas_rec(struct lab_zone *z, uint32_t frame, uint32_t *expect, uint32_t desired)
{
	return cas_at(rec_at(z, frame), expect, desired);
}

static void corrupt_array(void)
{
	lab_plat_panic("labyrinth: corrupt pool array");
}

/* The slot holding frame f whose in-pool record is v, among the live slots
 * [0, n); LAB_NONE if neither candidate holds it.  The two candidates 2p and
 * 2p+1 are adjacent in storage: gslot keeps a pair together. */
static inline uint32_t locate(struct lab_zone *z, struct lab_pool *p, uint32_t f, uint32_t v,
                              uint32_t n)
{
	uint32_t s = (v & REC_POS_MASK) << 1;
	/* Bounds and whether the slot still names f: constant unless another
	 * CPU moved f meanwhile (consistency checks, public by rule (b)). */
	if (lab_public(s >= n))
		return LAB_NONE;
	lab_a32 *g = gslot(z, p, s);
	if (lab_public(ld_relaxed(g) == f))
		return s;
	if (lab_public(s + 1 < n) && lab_public(ld_relaxed(g + 1) == f))
		return s + 1;
	return LAB_NONE;
}

uint32_t lab_pool_slot_of(struct lab_zone *z, uint32_t pool, uint32_t frame, uint32_t v)
{
	struct lab_pool *p = pool_at(z, pool);
	return locate(z, p, frame, v, ld_acquire(&p->n));
}

uint32_t lab_pool_of_frame(const struct lab_zone *z, uint32_t frame)
{
	int8_t pi = ld_acquire(&z->pool_of_colour[frame_colour(z, frame)]);
	return pi < 0 ? LAB_NONE : (uint32_t)pi;
}

/*
 * Software pipeline of the exchanges of one pcp (P3 and speed): the draw for
 * exchange t+8 is made during exchange t and its position prefetched; during
 * t+4 that position is read and the record of the frame in it prefetched; so
 * exchange t+8 finds both lines in cache whatever the size of G, even when
 * calls come back to back and the lines come from DRAM or from another
 * CPU's cache.  Both prefetches are for writing (PREFETCHW where the build
 * has it: Makefile), since the exchange stores to the slot and CASes the
 * record.  Measured here (bench/RESULTS.md): with the two vCPUs far apart
 * (a line handed over in ~240 ns), a pipeline 4 deep with read prefetches
 * gave 2 threads 1.01x one thread's immediate pairs, 4 deep with PREFETCHW
 * 1.5x, 8 deep with PREFETCHW 1.9-2.0x.  A position that changed meanwhile
 * only costs a miss; correctness never depends on it.  N is the exchange's
 * range, n + count + 1 (see lab_pool_exchange).  Each step also prefetches
 * two decoy lines, so that with G scattered (gslot) the lines a free brings
 * in do not depend on how full the pool is (docs/DESIGN-NOTES.md, P3).
 */
_Static_assert((LAB_PIPE & (LAB_PIPE - 1)) == 0 && LAB_PIPE >= 2, "LAB_PIPE: a power of two");
static inline lab_a32 *position(struct lab_zone *z, struct lab_pool *p, struct lab_pcp *pcp,
                                uint32_t r, uint32_t n)
{
	/* Position r of "G[0, n), then the cache from its head": a data
	 * selection, not a branch, so both kinds cost the same (P3). */
	int in_g = r < n;
	lab_a32 *gs = gslot(z, p, sel32(in_g, r, 0));
	lab_a32 *cs = &pcp->ring[(pcp->head + r - n) & (LAB_PCP_CAP - 1)];
	return SELP(in_g, gs, cs);
}

static inline void pipeline_advance(struct lab_zone *z, struct lab_pool *p, struct lab_pcp *pcp,
                                    struct lab_rng *rng, uint32_t n, uint64_t N)
{
	/* The draw just used makes room for the one LAB_PIPE exchanges ahead. */
	uint32_t i = pcp->ui, drawn = i;
	uint64_t ahead = lab_rng_u64(rng);
	pcp->u[i] = ahead;
	pcp->ui = i = (i + 1) & (LAB_PIPE - 1);
	/* In a run of frees the range grows by one a call, so exchange t + k
	 * will draw from N + k: predict it, since G's slots are scattered
	 * (gslot) and a position off by a few is another line.  Whether calls
	 * are frees is the caller's pattern, not the allocator's state. */
	uint64_t run = N - pcp->lastN == 1;
	pcp->lastN = N;
	/* The frame in the position of the exchange LAB_PIPE / 2 ahead, found
	 * where that position was computed when it was drawn (pslot): a uniformly
	 * drawn frame, state-independent.  Until 2026-11-28 the position was
	 * computed again here with the range then predicted, N + LAB_PIPE / 2 in
	 * a run of frees; the two agree unless the range moved otherwise (another
	 * CPU's refill or spill), and then either is only a prefetch that misses.
	 * Not computing it again: 54 instructions less per pair, immediate pairs
	 * 76.4 -> 64.7 ns, batch 116.6 -> 106.3 (bench/pairs.c, 7 interleaved
	 * runs), since the address was a chain of arithmetic in front of a load. */
	uint32_t g = lab_public(ld_relaxed(pcp->pslot[(i + LAB_PIPE / 2 - 1) & (LAB_PIPE - 1)]));
	if (lab_likely(g < z->frame_lim))
		__builtin_prefetch(rec_at(z, g), 1, 3);
	lab_a32 *ps = position(z, p, pcp, lab_bound(lab_public(ahead), N + run * LAB_PIPE), n);
	pcp->pslot[drawn] = ps;
	__builtin_prefetch(ps, 1, 3);
	/* Decoys (P3), the pool's own lines only (decoy_lines). */
	const lab_a32 *ds, *dr;
	decoy_lines(z, p, lab_public(ahead >> 32 | ahead << 32), &ds, &dr); /* a uniform draw */
	__builtin_prefetch(ds, 0, 3);
	__builtin_prefetch(dr, 0, 3);
}

/*
 * Free frame f (BUSY, ours, scrubbed if it must be) into the arrangement
 * "G[0, n), then this CPU's cache from its head" by inside-out Fisher-Yates:
 * f joins at the end (the cache's tail), then trades places with the frame
 * at a uniformly random position r among the n + count + 1 (itself
 * included).  The arrangement stays uniformly random, so the cache's head,
 * which alloc takes, is a uniform pick among every frame this CPU can hand
 * out: no window in which recently allocated frames cannot come back (a pure
 * FIFO of samples of G has one, and a chi-square test sees it when the pool
 * is nearly full).  The cache grows by one.
 *
 * A position in G is shared: the frame there is locked with one CAS on its
 * record, and the slot re-checked against n (an append or pop may race).  A
 * position in the cache is ours alone, but runs the very same instructions
 * on as many cache lines, so how often each kind occurs (which depends on
 * how full the pool is) does not show in the time (P3).  The lines were
 * prefetched by the calls before (pipeline_advance, LAB_PIPE deep).
 *
 * Returns false if G positions were contended LAB_XCHG_TRIES times; nothing
 * changed and the caller inserts f under the pool lock.
 */
bool lab_pool_exchange(struct lab_zone *z, uint32_t pool, struct lab_pcp *pcp, struct lab_rng *rng,
                       uint32_t f, lab_a32 *rf)
{
	struct lab_pool *p = pool_at(z, pool);
	uint32_t count = ld_relaxed(&pcp->count);
	uint32_t ti = (pcp->head + count) & (LAB_PCP_CAP - 1);
	lab_a32 *tail = &pcp->ring[ti];
	/* The records this call builds, their field parts computed once. */
	uint32_t bbusy = pcp->bbusy, lbusy = pcp->lbusy, bpcp = pcp->bpcp, lpcp = pcp->lpcp;
	uint32_t hf = rec_fhash(z, f);
	uint32_t fbusy = rec_build(bbusy, lbusy, hf), fpcp = rec_build(bpcp, lpcp, hf);

	st_relaxed(tail, f); /* f at the end: position n + count */
	for (int t = 0; t < LAB_XCHG_TRIES; t++) { /* bound: LAB_XCHG_TRIES */
		uint32_t n = ld_acquire(&p->n);
		uint64_t N = (uint64_t)n + count + 1;
		uint32_t r = lab_bound(lab_public(pcp->u[pcp->ui]), N); /* a uniform draw */
		int in_g = r < n; /* used in selections only: never branched on */
		lab_a32 *slot = position(z, p, pcp, r, n);
		pipeline_advance(z, p, pcp, rng, n, N);

		uint32_t g = lab_public(ld_relaxed(slot)); /* the uniformly drawn frame */
		if (lab_unlikely(g >= z->frame_lim))
			corrupt_array();
		/* What g's record must say if g is where we found it: in G, its
		 * position; in the cache, PCP; f itself (r = the end), our lock. */
		uint32_t hg = rec_fhash(z, g);
		uint32_t gpcp = rec_build(bpcp, lpcp, hg), gbusy = rec_build(bbusy, lbusy, hg);
		uint32_t v = sel32(in_g, rec_pos(r), sel32(g == f, fbusy, gpcp));
		lab_a32 *rg = rec_at(z, g); /* computed once: the exchange comes back to it */
		if (!lab_public(atomic_compare_exchange_strong_explicit(rg, &v, gbusy, memory_order_seq_cst,
		                                                        memory_order_acquire))) /* g == f: BUSY -> BUSY */
			continue; /* g moved or is locked: another position (G only, contention) */
		/* A pool that began to die (owner.c stores DYING, then pool_home
		 * reads every record, both seq_cst) takes its frames home under
		 * its lock only: either that walk sees g locked and waits, or we
		 * see DYING here, put g back and free under the lock.  Checked
		 * once in lab_free_insert_at, a free preempted after it moved a
		 * frame the walk had passed into this CPU's cache, for good
		 * (until 2026-11-28). */
		if (lab_unlikely(atomic_load_explicit(&p->state, memory_order_seq_cst) != POOL_ACTIVE)) {
			st_release(rg, v);
			return false;
		}
		/* We own g.  In G, it is in a live slot, r or its sibling, unless
		 * an append has not published it yet or we read a stale copy of a
		 * dead slot: re-read n (acquire pairs with the publisher).  Both
		 * candidates are computed for either kind of position. */
		uint32_t nn = ld_acquire(&p->n), even = r & ~1u;
		/* gslot keeps pairs together: r's even sibling is adjacent in storage.
		 * Computed as an integer: for a ring position it would point before
		 * the ring, and the selections drop it. */
		uintptr_t g0 = (uintptr_t)slot - (r & 1) * sizeof(lab_a32);
		lab_a32 *c0 = (lab_a32 *)lab_selu(in_g, g0, (uintptr_t)slot);
		lab_a32 *c1 = (lab_a32 *)lab_selu(in_g, g0 + sizeof(lab_a32), (uintptr_t)slot);
		int hit0 = (int)sel32(in_g, even < nn, 1) & (ld_relaxed(c0) == g);
		int hit1 = (int)sel32(in_g, even + 1 < nn, 1) & (ld_relaxed(c1) == g);
		if (lab_public(!(hit0 | hit1))) { /* only when an append or a pop raced with us */
			st_release(rg, rec_pos(r));
			continue;
		}
		/* Which of the two: the draw's parity, public (rule (b)). */
		hit0 = lab_public(hit0);
		lab_a32 *at = SELP(hit0, c0, c1);
		uint32_t s = sel32(hit0, even, even + 1);
		st_relaxed(at, f);
		/* f's record index goes with it into a ring slot, to the sink for
		 * a slot of G; then g's to the tail. */
		pcp->ring_rix[sel32(in_g, LAB_PCP_CAP, (pcp->head + r - n) & (LAB_PCP_CAP - 1))] =
		        (uint32_t)(rf - z->rec);
		st_release(rf, sel32(in_g, rec_pos(s), fpcp));
		st_relaxed(tail, g);
		pcp->ring_rix[ti] = (uint32_t)(rg - z->rec);
		st_release(rg, gpcp);
		st_relaxed(&pcp->count, count + 1);
		return true;
	}
	return false;
}

/*
 * Lock the occupant of live slot s (pool lock held, so s stays live).  An
 * exchanger may hold it for a moment: wait, unless nested, where we give up
 * after LAB_NESTED_SPINS (the holder may be the code we interrupted).
 * Returns the frame, or LAB_NONE (nested give-up).
 */
static inline __attribute__((always_inline)) uint32_t
lock_occupant_at(struct lab_zone *z, uint32_t s, lab_a32 *g, uint32_t bb, uint32_t lb, bool nested,
                 uint32_t hint_f, uint32_t hint_ri, uint32_t *rix_out)
{
	uint32_t spins = 0, strange = 0;
	for (;;) {
		uint32_t y = ld_acquire(g);
		if (lab_unlikely(y >= z->frame_lim))
			corrupt_array();
		/* The hint is y's unless another CPU changed the slot since it was
		 * read (public, rule (b)); hint_f LAB_NONE is never a frame. */
		uint32_t v = rec_pos(s), ri = lab_public(y == hint_f) ? hint_ri : rix(z, y);
		if (cas_at(&z->rec[ri], &v, rec_build(bb, lb, rec_fhash(z, y)))) { /* BUSY, ours */
			if (ld_relaxed(g) == y) {
				*rix_out = ri;
				return y;
			}
			/* y sits in the sibling slot s^1 (same record): not ours. */
			st_release(&z->rec[ri], rec_pos(s));
			strange = 0;
		} else if ((rec_inpool(v) || rec_state(v) != ST_BUSY) &&
		           ld_acquire(g) == y) {
			/* Live slot s still names y, yet y's record (read after its
			 * writer wrote the slot) says y is elsewhere and nobody holds
			 * it.  A frame can leave and come back in between, so only a
			 * state that persists is corruption. */
			if (++strange > 64)
				corrupt_array();
		} else {
			strange = 0;
		}
		if (nested && ++spins > LAB_NESTED_SPINS)
			return LAB_NONE;
		lab_plat_relax();
	}
}

static uint32_t lock_occupant(struct lab_zone *z, struct lab_pool *p, uint32_t s, uint32_t me,
                              bool nested, uint32_t *rix_out)
{
	return lock_occupant_at(z, s, gslot(z, p, s), rec_body(ST_BUSY, 0, me & 0xfffu),
	                        rec_lin(z, ST_BUSY, 0, me & 0xfffu), nested, LAB_NONE, 0, rix_out);
}

/*
 * Take up to `want` frames from the tail of G (pool lock held).  They are a
 * uniform sample because G is uniformly arranged (I2).  Their records are
 * left BUSY for the caller to set.  Returns how many were taken.
 */
uint32_t lab_pool_pop_locked(struct lab_zone *z, uint32_t pool, uint32_t me, bool nested,
                             uint32_t *out, uint32_t *out_rix, uint32_t want)
{
	struct lab_pool *p = pool_at(z, pool);
	uint32_t n = ld_relaxed(&p->n);
	uint32_t k = want < n ? want : n;

	for (uint32_t j = 0; j < k; j++) { /* bound: want <= LAB_PCP_BATCH */
		uint32_t y = lock_occupant(z, p, n - 1 - j, me, nested, &out_rix[j]);
		if (y == LAB_NONE) {
			while (j--) /* undo: n is unchanged, so the slots are too */
				st_release(rec_at(z, out[j]), rec_pos(n - 1 - j));
			return 0;
		}
		out[j] = y;
	}
	st_release(&p->n, n - k);
	return k;
}

/*
 * lab_pool_pop_locked for a refill (not nested), with the tail hints of
 * pcp: the slots of G's last LAB_PCP_REFILL positions when n was tail_n, and
 * the frames found in them and their record indices, which the allocations
 * before the refill read to prefetch the records (lab_pcp_run_prefetch).  A
 * run of allocations changes no n, so unless another CPU (or a nested call)
 * did, n is still tail_n (public, rule (b)) and the refill computes no slot
 * and, for a frame still where it was, no record address: 38 instructions
 * less per batch pair (callgrind, 1382 -> 1344), batch pairs 102 -> 97 ns
 * (bench/pairs.c, 7 interleaved runs), and a shorter time under the lock:
 * 64 Ki allocations timed one by one, p99 312-338 -> 208 TSC cycles, p99.9
 * 364 -> 260-286 (three interleaved runs).  The hints are used once; a
 * frame hint is checked against the slot, so a stale one costs only the
 * record address it would have saved.
 */
uint32_t lab_pool_pop_hinted(struct lab_zone *z, uint32_t pool, uint32_t me, struct lab_pcp *pcp,
                             uint32_t *out, uint32_t *out_rix, uint32_t want)
{
	struct lab_pool *p = pool_at(z, pool);
	uint32_t n = ld_relaxed(&p->n), hinted = pcp->tail_n;
	pcp->tail_n = LAB_NONE;
	if (lab_public(n != hinted) || want > n || want > LAB_PCP_REFILL)
		return lab_pool_pop_locked(z, pool, me, false, out, out_rix, want);
	uint32_t bb = pcp->bbusy, lb = pcp->lbusy; /* (ST_BUSY, 0, me) */
	lab_assert(bb == rec_body(ST_BUSY, 0, me & 0xfffu));
	for (uint32_t j = 0; j < want; j++) /* bound: want <= LAB_PCP_REFILL */
		out[j] = lock_occupant_at(z, n - 1 - j, pcp->tail_slot[j], bb, lb, false, pcp->tail_frame[j],
		                          pcp->tail_rix[j], &out_rix[j]);
	st_release(&p->n, n - want);
	return want;
}

/* Append frames at the tail, pool lock held: frames only we can touch (BUSY
 * and ours, or PCP in our own cache).  Used for frames at fixed positions of
 * the uniform arrangement (pcp spill, drain), which keeps it uniform.  Slot, then
 * record, then n: an exchanger that locks one of them before n is published
 * does not find it below n and undoes. */
void lab_pool_append_locked(struct lab_zone *z, uint32_t pool, const uint32_t *in, const uint32_t *in_rix,
                            uint32_t k)
{
	struct lab_pool *p = pool_at(z, pool);
	uint32_t n = ld_relaxed(&p->n);
	if (lab_unlikely((uint64_t)n + k > p->cap))
		corrupt_array();
	for (uint32_t j = 0; j < k; j++) {
		st_relaxed(gslot(z, p, n + j), in[j]);
		st_release(&z->rec[in_rix ? in_rix[j] : rix(z, in[j])], rec_pos(n + j));
	}
	st_release(&p->n, n + k);
}

/*
 * Insert frame f (BUSY, ours) at a uniformly random position r in [0, n]
 * (inside-out Fisher-Yates: the occupant of r moves to the new slot n), pool
 * lock held.  Keeps I2 for frames that are not random samples (a freed frame).
 * Returns false only when nested and the occupant could not be locked.
 */
bool lab_pool_insert_locked(struct lab_zone *z, uint32_t pool, uint32_t me, bool nested,
                            uint32_t f, uint64_t u)
{
	struct lab_pool *p = pool_at(z, pool);
	uint32_t n = ld_relaxed(&p->n);
	if (lab_unlikely((uint64_t)n + 1 > p->cap))
		corrupt_array();
	uint32_t r = lab_bound(u, (uint64_t)n + 1);
	if (r == n) {
		lab_pool_append_locked(z, pool, &f, NULL, 1);
		return true;
	}
	uint32_t ri, y = lock_occupant(z, p, r, me, nested, &ri);
	if (y == LAB_NONE)
		return false;
	/* Slots first, then n, then the records: an exchanger that read the
	 * stale y at r and locks it after its record names slot n finds it there. */
	st_relaxed(gslot(z, p, n), y);
	st_relaxed(gslot(z, p, r), f);
	st_release(&p->n, n + 1);
	st_release(&z->rec[ri], rec_pos(n));
	st_release(rec_at(z, f), rec_pos(r));
	return true;
}

/* Remove live slot s, whose frame we hold locked, by moving the tail into
 * it.  If the tail holds a frame of the block [first, first + K) we claim it
 * too (counted in *claimed).  Pool lock held.  False only when nested and the
 * tail's occupant is locked (by the code we interrupted, mid-exchange): then
 * slot s still names our frame and nothing else moved since the last claim. */
static bool remove_slot(struct lab_zone *z, struct lab_pool *p, uint32_t s, uint32_t me,
                        bool nested, uint32_t first, uint32_t K, uint32_t *claimed, uint64_t *mine)
{
	for (;;) { /* bound: K iterations over the whole claim */
		uint32_t n = ld_relaxed(&p->n);
		uint32_t t = n - 1;
		if (t == s) {
			st_release(&p->n, t);
			return true;
		}
		uint32_t ri, y = lock_occupant(z, p, t, me, nested, &ri);
		if (y == LAB_NONE)
			return false;
		if (y - first < K) {
			/* A frame of our block at the tail: claim it on the way. */
			st_release(&p->n, t);
			mine[(y - first) / 64] |= 1ull << ((y - first) % 64);
			(*claimed)++;
			continue;
		}
		st_relaxed(gslot(z, p, s), y);
		st_release(&p->n, t);
		st_release(&z->rec[ri], rec_pos(s));
		return true;
	}
}

/* Insert f (BUSY, ours) with a fresh uniform draw per try, pool lock held.
 * A nested caller gives up on a slot whose occupant the code it interrupted
 * has locked (one or two slots; the append position needs no lock), so a
 * few retries make failure vanishingly unlikely; false if all failed. */
bool lab_pool_insert_retry_locked(struct lab_zone *z, uint32_t pool, uint32_t me, bool nested,
                                  uint32_t f, struct lab_rng *rng)
{
	for (int t = 0; t < LAB_NESTED_RETRIES; t++) /* bound: LAB_NESTED_RETRIES */
		if (lab_pool_insert_locked(z, pool, me, nested, f, lab_rng_u64(rng)))
			return true;
	return false;
}

/* Put back f (BUSY, ours) at a uniformly random position, pool lock held;
 * after LAB_NESTED_RETRIES failed draws (probability below (2/n)^64) at the
 * end, the one position that needs no lock. */
static void putback_locked(struct lab_zone *z, uint32_t pool, uint32_t me, bool nested, uint32_t f,
                           struct lab_rng *rng)
{
	if (!lab_pool_insert_retry_locked(z, pool, me, nested, f, rng))
		lab_pool_append_locked(z, pool, &f, NULL, 1);
}

/*
 * Take the aligned block [first, first + 2^order) out of G if every frame of
 * it is there (pool lock held).  Returns 0 with all frames BUSY and ours, or
 * -1 with nothing changed in distribution (frames taken before a conflict are
 * put back at random positions).  A nested caller never waits on a record:
 * a locked one aborts the claim like a conflict.
 */
int lab_pool_claim_locked(struct lab_zone *z, uint32_t pool, uint32_t me, bool nested,
                          uint32_t first, unsigned order, struct lab_rng *rng)
{
	struct lab_pool *p = pool_at(z, pool);
	uint32_t K = 1u << order;
	uint32_t claimed = 0;
	/* Which frames this claim took, by index in the block.  Not told by
	 * their records: a frame freed meanwhile by a nested call on this CPU
	 * (queued for the outer call: it could not take this lock) is BUSY
	 * with our id too, and counted as claimed it panicked the claim or
	 * went into G twice (until 2026-11-28). */
	uint64_t mine[(1u << LAB_MAX_ORDER) / 64];
	for (uint32_t w = 0; w < (K + 63) / 64; w++) /* bound: 16 */
		mine[w] = 0;

	for (uint32_t i = 0; i < K; i++) /* cheap pre-check, bound K */
		if (!rec_inpool(ld_relaxed(rec_at(z, first + i))))
			return -1;

	for (uint32_t i = 0; i < K; i++) { /* bound K */
		uint32_t f = first + i;
		if (mine[i / 64] >> (i % 64) & 1)
			continue; /* claimed from the tail already */
		uint32_t v = ld_acquire(rec_at(z, f));
		if (!rec_inpool(v) || !cas_rec(z, f, &v, busy_rec(z, f, me)))
			goto abort; /* an exchange took it meanwhile */
		uint32_t s = locate(z, p, f, v, ld_relaxed(&p->n));
		if (s == LAB_NONE)
			corrupt_array();
		if (!remove_slot(z, p, s, me, nested, first, K, &claimed, mine)) {
			/* f stays where it is: slot s still names it. */
			st_release(rec_at(z, f), rec_pos(s));
			goto abort;
		}
		mine[i / 64] |= 1ull << (i % 64);
		claimed++;
	}
	if (claimed != K)
		corrupt_array();
	return 0;

abort:
	for (uint32_t i = 0; i < K; i++)
		if (mine[i / 64] >> (i % 64) & 1)
			putback_locked(z, pool, me, nested, first + i, rng);
	return -1;
}

/* A pool's colours and the geometry of its slots (gslot): mask, the slices
 * in colour order, capacity, and the divisor's magic.  mask is not 0. */
void lab_pool_set_colours(const struct lab_zone *z, struct lab_pool *p, uint64_t mask)
{
	uint32_t nc = 0;
	p->mask = mask;
	for (uint32_t c = 0; c < z->nr_colours; c++)
		if (mask >> c & 1)
			p->slice_colour[nc++] = (uint8_t)c;
	p->nr_col = nc;
	p->cap = (uint64_t)nc * z->slice;
	p->div_magic = UINT64_MAX / (2ull * nc) + 1;
}

/*
 * Build pool `pool` over colours `mask` (configuration lock held, pool not
 * yet visible): gather the clean unassigned frames of those colours, shuffle
 * them (Fisher-Yates with cfg_rng, which cfg_lock protects), record their
 * positions.
 */
void lab_pool_build(struct lab_zone *z, uint32_t pool, uint64_t mask, uint32_t flags)
{
	struct lab_pool *p = pool_at(z, pool);
	uint32_t C = z->nr_colours, n = 0;

	lab_pool_set_colours(z, p, mask);
	uint32_t nc = p->nr_col;
	p->flags = flags;
	for (unsigned k = 0; k <= LAB_MAX_ORDER; k++) {
		uint64_t grp = 0;
		if ((1u << k) <= C) {
			uint32_t w = 1u << k;
			uint64_t ones = w == 64 ? UINT64_MAX : ((1ull << w) - 1);
			for (uint32_t g = 0; g < C / w; g++)
				if (((mask >> (g * w)) & ones) == ones)
					grp |= 1ull << g;
		} else if (nc == C) {
			grp = 1;
		}
		/* Keep the groups with an aligned block inside the zone: an order
		 * the zone can never hold (smaller than the block, or a base that
		 * leaves no aligned one) is refused, LAB_ECOLOUR, not "retry". */
		uint64_t K = 1ull << k, unit = K <= C ? C : K;
		for (uint64_t m = grp; m; m &= m - 1) { /* bound: 64 */
			uint64_t off = K <= C ? (uint64_t)__builtin_ctzll(m) * K : 0;
			uint64_t first = z->base_pfn <= off ? off : (z->base_pfn - off + unit - 1) / unit * unit + off;
			if (first + K > z->base_pfn + z->nr_frames)
				grp &= ~(m & -m);
		}
		p->grp[k] = grp;
	}

	uint64_t usable = 0; /* frames of these colours that can ever be free */
	for (uint32_t ci = 0; ci < nc; ci++) {
		uint32_t c = p->slice_colour[ci];
		uint64_t i0 = (c - (z->base_pfn & (C - 1))) & (C - 1);
		for (uint64_t i = i0; i < z->nr_frames; i += C) {
			uint32_t f = (uint32_t)i, v = ld_relaxed(rec_at(z, f));
			usable += v != rec_make(z, f, ST_RESERVED, 0, 0);
			if (v == rec_make(z, f, ST_UNASSIGNED, 0, 0))
				st_relaxed(gslot(z, p, n++), f);
		}
	}
	for (uint32_t j = n; j > 1; j--) { /* Fisher-Yates, bound n */
		uint32_t r = lab_bound(lab_rng_u64(&z->cfg_rng), j);
		uint32_t a = ld_relaxed(gslot(z, p, j - 1)), b = ld_relaxed(gslot(z, p, r));
		st_relaxed(gslot(z, p, j - 1), b);
		st_relaxed(gslot(z, p, r), a);
	}
	for (uint32_t j = 0; j < n; j++)
		st_relaxed(rec_at(z, ld_relaxed(gslot(z, p, j))), rec_pos(j));
	/* Sized by the pool's frames, not by how many are clean yet: frames a
	 * zone that did not start zeroed gets from lab_scrub() count too. */
	p->reserve = (uint32_t)(usable * z->reserve_permille / 1000);
	/* All CPUs together may cache at most a quarter of a small pool: an
	 * idle CPU's cache must not starve the others.  Below 4 frames per CPU
	 * the pool is used without caches (every call takes the pool lock). */
	uint64_t per_cpu = usable / (4ull * z->nr_cpus);
	p->pcp_max = per_cpu >= LAB_PCP_CAP ? LAB_PCP_CAP : per_cpu < 4 ? 0 : (uint32_t)per_cpu & ~1u;
	p->pcp_batch = p->pcp_max / 2;
	p->nr_owners = 0;
	p->teardown_phase = 0;
	p->cursor = 0;
	st_relaxed(&p->lock, 0);
	st_release(&p->n, n);
}
