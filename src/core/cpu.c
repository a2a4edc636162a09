/*
 * cpu.c - entering the zone on a CPU, and the per-CPU caches (pcp).
 *
 * Every public call runs between lab_ctx_enter() and lab_ctx_exit(): local
 * interrupts saved, the CPU's nesting depth raised.  A call that finds the
 * depth already raised interrupted this CPU inside the zone (a signal, or an
 * interrupt on a host that cannot mask them): it is "nested" and must never
 * touch the CPU's pcp, generator or rings, nor wait for a lock its CPU holds.
 * Nested frees that cannot finish at once are queued for the outer call.
 * Both are inline (internal.h); their rare parts are here.
 *
 * A pcp is a FIFO of up to LAB_PCP_CAP frames of one pool, each a uniform
 * sample of the pool's array G (taken from its tail, or displaced by an
 * exchange).  Order-0 alloc pops the oldest; LAB_PCP_REFILL frames come from
 * G's tail when the FIFO runs empty, LAB_PCP_BATCH go back when it is full,
 * under the pool lock.
 */
#include "internal.h"

/* The rare parts of lab_ctx_enter/exit (internal.h): a CPU without a slot,
 * a catch-up after pools died, frees queued by nested calls. */
void lab_ctx_enter_rare(struct lab_zone *z, struct lab_ctx *c)
{
	if (c->cpu) {
		struct lab_cpu *cpu = c->cpu;
		cpu->gen_seen = ld_acquire(&z->gen);
		lab_pcp_pipe_reset(z, cpu);
		lab_pcp_drain(z, cpu, c->id, true);
	} else {
		/* No per-CPU slot.  A platform id of its own (a hosted thread's
		 * slot, a kernel's CPU id beyond nr_cpus) stays the context's lock
		 * id and has a nesting depth, so a call that interrupted its own
		 * context inside the zone (a signal handler on a thread beyond
		 * nr_cpus) is nested and never waits for the code it interrupted:
		 * until 2026-11-28 every slot-less context shared one id, and
		 * such a handler waited for ever.  LAB_MAX_CPUS and above: the
		 * one shared id, no depth. */
		if (c->id < LAB_MAX_CPUS) {
			uint8_t depth = ld_relaxed(&z->slotless_depth[c->id]);
			st_relaxed(&z->slotless_depth[c->id], (uint8_t)(depth + 1));
			atomic_signal_fence(memory_order_seq_cst);
			c->slotless_own = true;
			c->nested = depth != 0;
			if (c->nested)
				atomic_fetch_add_explicit(&z->slow_st.v[LS_NESTED], 1, memory_order_relaxed);
		} else {
			c->id = LAB_MAX_CPUS;
		}
		atomic_fetch_add_explicit(&z->slow_st.v[LS_SLOTLESS], 1, memory_order_relaxed);
	}
}

/* Point every pipeline position of this CPU's pcps at its own ring (pslot)
 * and drop the tail hints: a pool that died may come back in the same slot
 * with other colours, and its old slices may be another pool's by then.
 * Every pool death bumps z->gen before its slot can be rebuilt, so a CPU
 * runs this before it uses the slot again. */
void lab_pcp_pipe_reset(struct lab_zone *z, struct lab_cpu *cpu)
{
	for (uint32_t pool = 0; pool < z->nr_pools; pool++) {
		struct lab_pcp *pcp = cpu_pcp(z, cpu, pool);
		for (int k = 0; k < LAB_PIPE; k++)
			pcp->pslot[k] = &pcp->ring[0];
		pcp->tail_n = LAB_NONE; /* its slots may be the old pool's too */
	}
}

/* Finish frees queued by nested calls (outer call only). */
void lab_ctx_exit_queued(struct lab_ctx *c)
{
	struct lab_cpu *cpu = c->cpu;
	for (;;) { /* bound: LAB_NESTED_CAP per nested call */
		uint32_t n = ld_relaxed(&cpu->nested_count);
		if (n == 0)
			break;
		uint32_t f = cpu->nested[n - 1];
		if (!atomic_compare_exchange_strong_explicit(&cpu->nested_count, &n, n - 1,
		                                             memory_order_relaxed,
		                                             memory_order_relaxed))
			continue; /* a nested call queued one meanwhile */
		if (!lab_free_insert(c, lab_pool_of_frame(c->z, f), f))
			lab_plat_panic("labyrinth: queued free lost");
	}
}

void lab_zone_stat(struct lab_zone *z, enum lab_stat which)
{
	atomic_fetch_add_explicit(&z->slow_st.v[which], 1, memory_order_relaxed);
}

/* Make c->rng usable: the CPU's own generator, or the zone's shared one for
 * nested and slot-less contexts, under slow_lock.  Lock order everywhere:
 * slow_lock before any pool lock, so take it before the pool lock.  *took
 * says whether this call took slow_lock (then lab_ctx_rng_put releases it).
 * False only for a nested call that cannot get it without waiting for the
 * code it interrupted. */
bool lab_ctx_rng_get(struct lab_ctx *c, bool *took)
{
	*took = false;
	if (c->rng)
		return true;
	if (!lock_get(&c->z->slow_lock, c->id, lock_mode(c)))
		return false;
	c->rng = &c->z->slow_rng;
	c->slow_locked = true;
	*took = true;
	return true;
}

void lab_ctx_rng_put(struct lab_ctx *c, bool took)
{
	if (took && c->slow_locked) {
		c->rng = NULL;
		c->slow_locked = false;
		lock_put(&c->z->slow_lock);
	}
}

/* Append frame (record z->rec[ri]) to a pcp. */
static inline void pcp_put(struct lab_pcp *pcp, uint32_t frame, uint32_t ri)
{
	uint32_t n = ld_relaxed(&pcp->count), i = (pcp->head + n) & (LAB_PCP_CAP - 1);
	st_relaxed(&pcp->ring[i], frame);
	pcp->ring_rix[i] = ri;
	st_relaxed(&pcp->count, n + 1);
}

/* Frames a refill takes from pool p: LAB_PCP_REFILL, fewer for small pools. */
static inline uint32_t refill_want(const struct lab_pool *p)
{
	return p->pcp_batch < LAB_PCP_REFILL ? p->pcp_batch : LAB_PCP_REFILL;
}

/* Set pcp's tail hints for a pool of n frames: the slots of G positions
 * n - 1 - j that the next refill takes. */
static void tail_slots(struct lab_zone *z, struct lab_pool *p, struct lab_pcp *pcp, uint32_t n, uint32_t want)
{
	pcp->tail_n = n;
	for (uint32_t j = 0; j < want && j < n; j++) /* bound: LAB_PCP_REFILL */
		pcp->tail_slot[j] = gslot(z, p, n - 1 - j);
}

/* Prefetch, for writing, the records of the frames in the hinted slots j in
 * [lo, hi): frames the next refill takes.  The frames found and their record
 * indices become hints too (lab_pool_pop_hinted). */
static void prefetch_tail_records(struct lab_zone *z, struct lab_pcp *pcp, uint32_t lo, uint32_t hi)
{
	for (uint32_t j = lo; j < hi && j < pcp->tail_n; j++) { /* bound: hi <= LAB_PCP_REFILL */
		uint32_t f = ld_relaxed(pcp->tail_slot[j]), ri = 0;
		if (f < z->nr_frames) {
			ri = rix(z, f);
			__builtin_prefetch(&z->rec[ri], 1, 3);
		} else {
			f = LAB_NONE; /* corrupt: the refill finds out */
		}
		pcp->tail_frame[j] = f;
		pcp->tail_rix[j] = ri;
	}
}

/*
 * A run of allocations (lab_alloc: no free since the last alloc) refills
 * every LAB_PCP_REFILL calls.  The next refill's lines are prefetched by
 * the calls in between, a part each, not by the refill itself: a refill is
 * an alloc's p99.9, and its own prefetches, still in flight when it
 * returns, were part of its time.  count: frames left before this call
 * (3, 2, 1 after a refill of 4).  The call right after a refill also
 * prefetches the lock's line, for writing.  What they compute on the way,
 * the slots, frames and record indices of the next refill, they leave as
 * hints for it (lab_pool_pop_hinted).
 */
_Static_assert(LAB_PCP_REFILL == 4, "lab_pcp_run_prefetch spreads a refill of 4 over 3 calls");
void lab_pcp_run_prefetch(struct lab_zone *z, struct lab_pool *p, struct lab_pcp *pcp, uint32_t count)
{
	uint32_t n = ld_relaxed(&p->n), want = refill_want(p);
	if (count == 3) {
		__builtin_prefetch(&p->n, 1, 3); /* same line as the lock */
		tail_slots(z, p, pcp, n, want);
		prefetch_tail_records(z, pcp, 0, want < 2 ? want : 2);
	} else if (count == 2) {
		/* n moved only if another CPU (or a nested call) moved it, or the
		 * run began at count 2: public, rule (b).  The hints follow n. */
		if (lab_public(n != pcp->tail_n))
			tail_slots(z, p, pcp, n, want);
		prefetch_tail_records(z, pcp, 2, want);
	} else if (count == 1) {
		/* The slots of the refill after next, scattered: a line each;
		 * their records come two refills later. */
		for (uint32_t j = 2 * want + 1; j <= 3 * want && j <= n; j++) /* bound: 3 * LAB_PCP_REFILL */
			__builtin_prefetch(gslot(z, p, n - j), 1, 3);
	}
}

/* Refill an empty pcp with up to LAB_PCP_REFILL frames from G's tail.  Fewer
 * than a spill moves: a run of allocations pays a refill every
 * LAB_PCP_REFILL calls, and its cost (the lock and one CAS per frame, each a
 * locked instruction of ~25 cycles here) is that call's latency.  Measured
 * here (bench/RESULTS.md; far vCPU placement from the second figure on):
 * refills of 32 put the batch pattern's alloc p99.9 at 14x its p50, of 8 at
 * 9.5x; with write prefetches and the next refill's lines prefetched, of 8
 * at 7.8-8x and of 4 at 4.8-6.5x, for 21 more instructions per batch pair. */
int lab_pcp_refill(struct lab_ctx *c, uint32_t pool)
{
	struct lab_zone *z = c->z;
	struct lab_pool *p = &z->pools[pool];
	struct lab_pcp *pcp = cpu_pcp(z, c->cpu, pool);
	uint32_t got[LAB_PCP_REFILL], gri[LAB_PCP_REFILL], want = refill_want(p);

	/* The records of this batch, G's tail, were prefetched by the calls
	 * before (lab_pcp_run_prefetch).  Prefetching them before the lock, as this did
	 * until the slots were scattered, cost 4 slot addresses and loads per
	 * refill: without it a refill's p90 and p99 in a run of 64 Ki
	 * allocations were 21 TSC cycles lower (three interleaved runs). */
	lock_get(&p->lock, c->id, LOCK_WAIT);
	/* A pool that began to die takes no frames into caches: the removal's
	 * walk (pool_home, under this lock) may have passed them already. */
	if (lab_unlikely(ld_relaxed(&p->state) != POOL_ACTIVE)) {
		lock_put(&p->lock);
		return LAB_ENOMEM;
	}
	uint32_t k = lab_pool_pop_hinted(z, pool, c->id, pcp, got, gri, want);
	lock_put(&p->lock);
	/* If allocations go on, the next refills take G's new tail: the calls
	 * in between prefetch the records of the next one's frames (their
	 * slots were prefetched two refills before) and the slots of the one
	 * after next (lab_pcp_run_prefetch).  G's slots are scattered (gslot),
	 * a line each, so they get that long to arrive: a refill's p99.9 in a
	 * run of 64 Ki allocations, 462 -> 420 TSC cycles against one refill
	 * ahead (336 before the scattering). */
	for (uint32_t j = 0; j < k; j++) {
		st_release(&z->rec[gri[j]], rec_build(pcp->bpcp, pcp->lpcp, rec_fhash(z, got[j])));
		pcp_put(pcp, got[j], gri[j]);
	}
	return k ? LAB_OK : LAB_ENOMEM;
}

/* Take the n oldest frames out of a pcp, with their record indices. */
static void pcp_take(struct lab_pcp *pcp, uint32_t n, uint32_t *out, uint32_t *out_rix)
{
	for (uint32_t j = 0; j < n; j++) { /* bound: n <= LAB_PCP_CAP */
		out[j] = ld_relaxed(&pcp->ring[pcp->head]);
		out_rix[j] = pcp->ring_rix[pcp->head];
		pcp->head = (pcp->head + 1) & (LAB_PCP_CAP - 1);
	}
	st_relaxed(&pcp->count, ld_relaxed(&pcp->count) - n);
}

/* Move the n oldest frames of a pcp back to G's tail. */
static void pcp_spill(struct lab_zone *z, uint32_t me, uint32_t pool, struct lab_pcp *pcp, uint32_t n)
{
	struct lab_pool *p = &z->pools[pool];
	uint32_t out[LAB_PCP_CAP], out_rix[LAB_PCP_CAP];
	pcp_take(pcp, n, out, out_rix);
	lock_get(&p->lock, me, false);
	lab_pool_append_locked(z, pool, out, out_rix, n);
	lock_put(&p->lock);
}

/* Give every frame this CPU caches for pool back to G's tail, pool lock
 * held (order > 0 claims only blocks whose frames are all in G).  Nothing
 * for nested and slot-less contexts, which do not own the cache.  Returns
 * how many frames moved. */
uint32_t lab_pcp_return_locked(struct lab_ctx *c, uint32_t pool)
{
	struct lab_zone *z = c->z;
	if (!c->cpu || c->nested || !z->pools[pool].pcp_max)
		return 0;
	struct lab_pcp *pcp = cpu_pcp(z, c->cpu, pool);
	uint32_t n = ld_relaxed(&pcp->count), out[LAB_PCP_CAP], out_rix[LAB_PCP_CAP];
	pcp_take(pcp, n, out, out_rix);
	lab_pool_append_locked(z, pool, out, out_rix, n);
	return n;
}

/* Give back this CPU's cached frames: all pools, or only those no longer
 * active (their owners are going away). */
void lab_pcp_drain(struct lab_zone *z, struct lab_cpu *cpu, uint32_t me, bool dying_only)
{
	for (uint32_t pool = 0; pool < z->nr_pools; pool++) {
		struct lab_pcp *pcp = cpu_pcp(z, cpu, pool);
		uint32_t n = ld_relaxed(&pcp->count);
		if (n == 0)
			continue;
		if (dying_only && ld_acquire(&z->pools[pool].state) == POOL_ACTIVE)
			continue;
		pcp_spill(z, me, pool, pcp, n);
	}
}

/*
 * Put frame f (record BUSY and ours, already scrubbed if it must be) into its
 * pool.  With a pcp: exchange with a random position of G or the pcp (see
 * lab_pool_exchange).  Otherwise insert at a random position of G under the
 * pool lock.
 * Returns false only for a nested call that could not get the lock.
 */
bool lab_free_insert(struct lab_ctx *c, uint32_t pool, uint32_t f)
{
	return lab_free_insert_at(c, pool, f, rec_at(c->z, f));
}

bool lab_free_insert_at(struct lab_ctx *c, uint32_t pool, uint32_t f, lab_a32 *rf)
{
	struct lab_zone *z = c->z;
	struct lab_pool *p = &z->pools[pool];
	bool ok;

	if (pool >= z->nr_pools)
		lab_plat_panic("labyrinth: frame outside every pool");
	/* Only a live pool's frames go through the pcp.  A dying pool still
	 * takes frames home (lab_scrub_ring puts its dirty ones back), under
	 * the lock: through an exchange, a CPU that had already caught up with
	 * the death (lab_ctx_enter_rare) would cache the displaced frame, which
	 * only its next catch-up would give back (until then the removal's
	 * pool_home waits for it), and leave its pipeline positions (pslot) in
	 * the pool's slices, which may be another pool's when the slot is built
	 * again (lab_check caught that in the fuzzer's replay). */
	if (c->cpu && !c->nested && p->pcp_max && ld_relaxed(&p->state) == POOL_ACTIVE) {
		struct lab_pcp *pcp = cpu_pcp(z, c->cpu, pool);
		/* Room for one more first: the exchange appends at the tail. */
		if (lab_unlikely(ld_relaxed(&pcp->count) >= p->pcp_max))
			pcp_spill(z, c->id, pool, pcp, p->pcp_batch);
		if (lab_likely(lab_pool_exchange(z, pool, pcp, c->rng, f, rf)))
			return true;
	}
	bool took;
	if (!lab_ctx_rng_get(c, &took))
		return false;
	ok = lock_get(&p->lock, c->id, lock_mode(c));
	if (ok) {
		ok = lab_pool_insert_locked(z, pool, c->id, c->nested, f, lab_rng_u64(c->rng));
		lock_put(&p->lock);
	}
	lab_ctx_rng_put(c, took);
	return ok;
}

/* Queue a frame freed by a nested call for the interrupted outer call. */
bool lab_nested_queue(struct lab_ctx *c, uint32_t f)
{
	struct lab_cpu *cpu = c->cpu;
	if (!cpu)
		return false; /* slot-less: no queue */
	for (;;) {
		uint32_t n = ld_relaxed(&cpu->nested_count);
		if (n >= LAB_NESTED_CAP)
			return false;
		/* Reserve index n, then fill it: only deeper nested calls can run
		 * in between, and they reserve other indices. */
		if (atomic_compare_exchange_strong_explicit(&cpu->nested_count, &n, n + 1,
		                                            memory_order_relaxed, memory_order_relaxed)) {
			cpu->nested[n] = f;
			atomic_signal_fence(memory_order_seq_cst);
			return true;
		}
	}
}

int lab_cpu_drain(lab_zone_t *z)
{
	struct lab_ctx c;
	if (!z || z->magic != LAB_ZONE_MAGIC)
		return LAB_EINVAL;
	lab_ctx_enter(z, &c);
	if (c.cpu && !c.nested)
		lab_pcp_drain(z, c.cpu, c.id, false);
	lab_ctx_exit(&c);
	return LAB_OK;
}
