/*
 * alloc.c - lab_alloc / lab_free and their address-based forms.
 *
 * Every call validates first and commits after (seL4's decode-then-invoke):
 * a refused call returns before lab_ctx_enter() and has touched nothing but a
 * statistics counter.  The commit of a free is one CAS on the head record
 * (ALLOC -> BUSY), so of two racing frees of one block exactly one wins (P4).
 *
 * Order 0 with a per-CPU slot is the fast path: pop the pcp FIFO, write the
 * record.  Its work does not depend on the pool's state: the popped frame's
 * record was written when it entered the pcp (so it is in cache), the
 * reserve check is a comparison, not a branch to different work (P3).
 */
#include "internal.h"

static int refuse(struct lab_zone *z, int err)
{
	lab_zone_stat(z, LS_REFUSED);
	return err;
}

static inline bool zone_ok(const struct lab_zone *z)
{
	return z && z->magic == LAB_ZONE_MAGIC;
}

/* Owner id -> live owner, or NULL. */
static inline struct lab_owner *live_owner(struct lab_zone *z, lab_owner_t owner)
{
	if (owner == 0 || owner > z->max_owners)
		return NULL;
	struct lab_owner *o = owner_at(z, owner);
	return ld_acquire(&o->state) == OWNER_ACTIVE ? o : NULL;
}

/* Order 0 from the CPU's pcp. */
static int alloc0_pcp(struct lab_ctx *c, uint32_t pool, unsigned flags, uint32_t *f, lab_a32 **rf,
                      uint32_t *fh)
{
	struct lab_zone *z = c->z;
	struct lab_pool *p = &z->pools[pool];
	struct lab_pcp *pcp = cpu_pcp(z, c->cpu, pool);

	/* Free frames we can see: the pool's array and our cache.  Other CPUs'
	 * caches only add to it, so NOWAIT never takes the pool below its
	 * reserve.  Tested before a refill, which moves frames from the array
	 * to our cache and leaves the sum: a refused NOWAIT call must not
	 * strand the reserve in this CPU's cache, out of reach of other CPUs'
	 * ATOMIC calls (it did until 2026-11-28).  Counting reserve use is
	 * branch-free. */
	uint32_t count = ld_relaxed(&pcp->count);
	bool in_reserve = ld_relaxed(&p->n) + count <= p->reserve;
	if (lab_unlikely(!(flags & LAB_ATOMIC) && in_reserve)) /* flags first: no branch on the fill for ATOMIC */
		return LAB_ENOMEM;
	if (lab_unlikely(count == 0)) {
		if (lab_pcp_refill(c, pool) != LAB_OK)
			return LAB_ENOMEM;
		count = ld_relaxed(&pcp->count);
	}
	stat_add(&c->cpu->st.v[LS_RESERVE], in_reserve);

	/* A run of allocations (no free since the last alloc: the count is what
	 * it left) empties the pcp every LAB_PCP_REFILL calls.  The refill's
	 * lines were most likely last written by another CPU; fetched on
	 * demand, under the lock, each would wait for a hand-over (~240 ns here
	 * when the vCPUs sit far apart).  The calls between two refills
	 * prefetch the next one's records and slots and the lock's line, for
	 * writing, a part each (lab_pcp_run_prefetch).  Measured (bench
	 * --quick, far placement, with refills of 8, when the refill itself
	 * prefetched): batch-pattern alloc p99 ~370 -> ~150 ns.  Only
	 * prefetches: a wrong guess costs a miss. */
	if (lab_unlikely(count == pcp->left && count < LAB_PCP_REFILL))
		lab_pcp_run_prefetch(z, p, pcp, count); /* the next refill's lines, a part a call */
	pcp->left = count - 1;

	uint32_t h = pcp->head;
	uint32_t x = lab_public(ld_relaxed(&pcp->ring[h])); /* the frame handed out */
	lab_a32 *rx = &z->rec[lab_public(pcp->ring_rix[h])]; /* its record (checked below) */
	pcp->head = h = (h + 1) & (LAB_PCP_CAP - 1);
	st_relaxed(&pcp->count, count - 1);
	/* The next head's record: written when it entered the cache, prefetch
	 * anyway so the next call never waits for it. */
	__builtin_prefetch(&z->rec[lab_public(pcp->ring_rix[h])], 1, 3);
	uint32_t hx = rec_fhash(z, x);
	if (lab_unlikely(lab_public(ld_relaxed(rx) != rec_build(pcp->bpcp, pcp->lpcp, hx))))
		lab_plat_panic("labyrinth: corrupt per-CPU cache");
	*f = x;
	*rf = rx; /* computed once: lab_alloc writes it next */
	*fh = hx;
	return LAB_OK;
}

/* Order 0 without a pcp (nested call, or a CPU id beyond nr_cpus): one frame
 * from G's tail under the pool lock. */
static int alloc0_locked(struct lab_ctx *c, uint32_t pool, unsigned flags, uint32_t *f)
{
	struct lab_zone *z = c->z;
	struct lab_pool *p = &z->pools[pool];
	int rc = LAB_ENOMEM;

	if (!lock_get(&p->lock, c->id, lock_mode(c)))
		return LAB_EBUSY; /* nested: our own CPU holds it */
	if (lab_unlikely(ld_relaxed(&p->state) != POOL_ACTIVE)) { /* as lab_pcp_refill */
		lock_put(&p->lock);
		return LAB_ENOMEM;
	}
	uint32_t n = ld_relaxed(&p->n);
	if (n > p->reserve || (n > 0 && (flags & LAB_ATOMIC))) {
		if (n <= p->reserve)
			lab_ctx_stat(c, LS_RESERVE, 1);
		uint32_t ri;
		rc = lab_pool_pop_locked(z, pool, c->id, c->nested, f, &ri, 1) == 1 ? LAB_OK : LAB_EBUSY;
	}
	lock_put(&p->lock);
	return rc;
}

/* The i-th set bit of m (i < popcount(m)). */
static unsigned select_bit(uint64_t m, unsigned i)
{
	while (i--) /* bound: 64 */
		m &= m - 1;
	return (unsigned)__builtin_ctzll(m);
}

/* LAB_HIGH_PROBES probes of uniformly random candidate blocks (pool lock
 * held); the first whose frames are all in G is claimed. */
static int probe_blocks(struct lab_ctx *c, uint32_t pool, unsigned order, uint32_t *f)
{
	struct lab_zone *z = c->z;
	uint32_t K = 1u << order, C = z->nr_colours;
	uint64_t unit = K <= C ? C : K;
	uint64_t lo = z->base_pfn / unit, rows = (z->base_pfn + z->nr_frames - 1) / unit - lo + 1;
	uint64_t grp = z->pools[pool].grp[order];
	unsigned ng = (unsigned)lab_popcount64(grp);

	for (int probe = 0; probe < LAB_HIGH_PROBES; probe++) { /* bound: LAB_HIGH_PROBES */
		uint64_t row = lo + lab_bound(lab_rng_u64(c->rng), rows);
		unsigned g = select_bit(grp, lab_bound(lab_rng_u64(c->rng), ng));
		uint64_t pfn = row * unit + (K <= C ? (uint64_t)g * K : 0);
		if (pfn < z->base_pfn || pfn + K > z->base_pfn + z->nr_frames)
			continue;
		uint32_t first = (uint32_t)(pfn - z->base_pfn);
		if (lab_pool_claim_locked(z, pool, c->id, c->nested, first, order, c->rng) == 0) {
			*f = first;
			return LAB_OK;
		}
	}
	return LAB_EFRAG;
}

/*
 * Order > 0: probe uniformly random aligned blocks whose colours are all the
 * pool's; the first whose frames are all in G is claimed.  Each probe is
 * uniform over the candidates, so the block found is uniform over the free
 * ones.  Frames this CPU caches for order 0 are free too but not in G: when
 * G alone is too small, or the probes find nothing, they go back to G
 * (lab_pcp_return_locked) and the probes run once more.  Other CPUs' caches
 * stay theirs (lab_cpu_drain on those CPUs gives them back).
 * Bound: 2 x LAB_HIGH_PROBES probes of 2^order records each, plus one
 * return of at most LAB_PCP_CAP frames.
 */
static int allocn(struct lab_ctx *c, uint32_t pool, unsigned order, unsigned flags, uint32_t *f)
{
	struct lab_zone *z = c->z;
	struct lab_pool *p = &z->pools[pool];
	uint32_t K = 1u << order;

	if (!lock_get(&p->lock, c->id, lock_mode(c)))
		return LAB_EBUSY;
	/* A pool that began to die gives no block out: its removal's walk
	 * (pool_home, under this lock) may have passed it, and the block
	 * would come back (give_back) to a pool dissolved meanwhile (until
	 * 2026-11-28). */
	if (lab_unlikely(ld_relaxed(&p->state) != POOL_ACTIVE)) {
		lock_put(&p->lock);
		return LAB_ENOMEM;
	}
	bool own = c->cpu && !c->nested && p->pcp_max;
	uint32_t n = ld_relaxed(&p->n), cached = own ? ld_relaxed(&cpu_pcp(z, c->cpu, pool)->count) : 0;
	/* Enough free frames, ours included, without the reserve unless ATOMIC? */
	if ((uint64_t)n + cached < K || ((uint64_t)n + cached - K < p->reserve && !(flags & LAB_ATOMIC))) {
		lock_put(&p->lock);
		return LAB_ENOMEM;
	}
	/* G alone too small: our cache first; else only if the probes fail. */
	bool g_short = n < K || (n - K < p->reserve && !(flags & LAB_ATOMIC));
	if (g_short)
		n += lab_pcp_return_locked(c, pool);
	int rc = probe_blocks(c, pool, order, f);
	if (rc != LAB_OK && !g_short && cached) {
		n += lab_pcp_return_locked(c, pool);
		rc = probe_blocks(c, pool, order, f);
	}
	/* Reserve use: counted once, for the array the last probes saw, when
	 * they found a block (lab_stats: allocations that dipped into it). */
	if (rc == LAB_OK && n - K < p->reserve)
		lab_ctx_stat(c, LS_RESERVE, 1);
	lock_put(&p->lock);
	return rc;
}

/* Put back a block taken for an owner that died meanwhile (its records are
 * BUSY and ours).  The generator is drawn before each lock, keeping the lock
 * order slow_lock -> pool lock used everywhere. */
static void give_back(struct lab_ctx *c, uint32_t pool, uint32_t f, uint32_t K)
{
	struct lab_pool *p = &c->z->pools[pool];
	bool took;
	if (K == 1 && c->rng && p->pcp_max && lab_free_insert(c, pool, f))
		return;
	if (lab_ctx_rng_get(c, &took) && lock_get(&p->lock, c->id, lock_mode(c))) {
		for (uint32_t i = 0; i < K; i++) /* bound K */
			if (!lab_pool_insert_retry_locked(c->z, pool, c->id, c->nested, f + i, c->rng) &&
			    !lab_nested_queue(c, f + i))
				lab_plat_panic("labyrinth: cannot return a frame from a nested call");
		lock_put(&p->lock);
		lab_ctx_rng_put(c, took);
		return;
	}
	lab_ctx_rng_put(c, took);
	/* A slot-less context has no queue.  It lacks the generator only when
	 * the code it interrupted holds it; the pool lock that code cannot
	 * hold (this call took it to take the block).  The frames go to G's
	 * tail without a draw, as a spill's do: each was a uniform sample. */
	if (!c->cpu && lock_get(&p->lock, c->id, lock_mode(c))) {
		for (uint32_t i = 0; i < K; i++) { /* bound K */
			uint32_t fr = f + i;
			lab_pool_append_locked(c->z, pool, &fr, NULL, 1);
		}
		lock_put(&p->lock);
		return;
	}
	for (uint32_t i = 0; i < K; i++)
		if (!lab_nested_queue(c, f + i))
			lab_plat_panic("labyrinth: cannot return a frame from a nested call");
}

int lab_alloc(lab_zone_t *z, lab_owner_t owner, unsigned order, unsigned flags, uint64_t *pfn)
{
	if (!zone_ok(z))
		return LAB_EINVAL;
	if (!pfn || (flags & ~LAB_ALLOC_FLAGS_ALL))
		return refuse(z, LAB_EINVAL);
	if ((flags & LAB_ZERO) && !z->dmap)
		return refuse(z, LAB_ENOMAP); /* nothing to zero through */
	if (order > LAB_MAX_ORDER)
		return refuse(z, LAB_EORDER);
	struct lab_owner *o = live_owner(z, owner);
	if (!o)
		return refuse(z, LAB_ENOOWNER);
	/* Before the owner's fields: acquire pairs with lab_owner_add's release
	 * of it, after the fields. */
	uint32_t incarn = ld_acquire(&o->incarn);
	if ((flags & LAB_EXCLUSIVE) && !(o->flags & LAB_OWNER_EXCLUSIVE))
		return refuse(z, LAB_ENOTEXCL);
	uint32_t pool = o->pool, K = 1u << order;
	struct lab_pool *p = &z->pools[pool];
	if (order && !p->grp[order])
		return refuse(z, LAB_ECOLOUR);

	struct lab_ctx c;
	lab_ctx_enter(z, &c);
	/* pool was read outside: the owner may have been removed, and even added
	 * again with other colours, its old pool slot rebuilt for another owner,
	 * before this CPU entered (a CPU catching up with a pool's death on
	 * entry would otherwise refill from the dying pool, or allocate from the
	 * slot's new owner's colours).  Removal and addition both change what
	 * this reads. */
	if (lab_unlikely(ld_acquire(&o->state) != OWNER_ACTIVE || ld_relaxed(&o->incarn) != incarn)) {
		lab_ctx_exit(&c);
		return refuse(z, LAB_ENOOWNER);
	}
	/* The quota of this incarnation, read once: a call still in flight when
	 * the owner is added again with another quota must settle what it
	 * counted (it subtracted from a count it never added to, until
	 * 2026-11-28, and the count wrapped). */
	uint64_t quota = o->quota;
	if (quota) {
		uint64_t held = atomic_fetch_add_explicit(&o->held_q, K, memory_order_relaxed);
		if (held + K > quota) {
			atomic_fetch_sub_explicit(&o->held_q, K, memory_order_relaxed);
			lab_ctx_stat(&c, LS_QUOTA, 1);
			lab_ctx_exit(&c);
			return LAB_EQUOTA;
		}
	}

	uint32_t f = 0, fh = 0;
	lab_a32 *rf = NULL;
	int rc;
	if (order == 0 && c.rng && p->pcp_max) {
		rc = alloc0_pcp(&c, pool, flags, &f, &rf, &fh);
	} else if (order == 0) {
		rc = alloc0_locked(&c, pool, flags, &f);
	} else {
		bool took; /* nested or slot-less: borrow the zone generator */
		rc = lab_ctx_rng_get(&c, &took) ? allocn(&c, pool, order, flags, &f) : LAB_EBUSY;
		lab_ctx_rng_put(&c, took);
	}

	if (rc == LAB_OK) {
		/* Zero while the block is still only ours: before its record says
		 * ALLOC, removal cannot reclaim (and scrub) it concurrently. */
		if ((flags & LAB_ZERO) && !(p->flags & POOL_ZEROED))
			lab_plat_zero_frames(frame_va(z, f), K);
		for (uint32_t i = 1; i < K; i++)
			st_relaxed(rec_at(z, f + i), rec_make(z, f + i, ST_TAIL, order, owner));
		if (!rf) {
			rf = rec_at(z, f);
			fh = rec_fhash(z, f);
		}
		uint32_t head = rec_build(rec_body(ST_ALLOC, order, owner), alloc_lin(z, o, order), fh);
		st_release(rf, head);
		/* Owner removal stores DYING, then makes every CPU run a barrier
		 * (lab_plat_sync_cpus), then scans records: either it sees this
		 * record, or we see DYING here and give the block back. */
		atomic_signal_fence(memory_order_seq_cst);
		/* ... and a removal that finished meanwhile, the owner added again,
		 * shows as another incarnation (the block was reclaimed: the CAS
		 * below fails). */
		if (lab_unlikely(ld_acquire(&o->state) != OWNER_ACTIVE || ld_relaxed(&o->incarn) != incarn)) {
			uint32_t busy = rec_make(z, f, ST_BUSY, 0, c.id & 0xfffu);
			if (atomic_compare_exchange_strong(rf, &head, busy)) {
				for (uint32_t i = 1; i < K; i++)
					st_relaxed(rec_at(z, f + i), rec_make(z, f + i, ST_BUSY, 0, c.id & 0xfffu));
				give_back(&c, pool, f, K);
				rc = LAB_ENOOWNER;
			} else {
				/* Removal reclaimed the block already and uncounted it:
				 * count it as held so the two balance; the caller is told
				 * the owner is gone and gets nothing. */
				lab_ctx_held(&c, owner, (int64_t)K);
				lab_ctx_exit(&c);
				return LAB_ENOOWNER;
			}
		}
	}
	if (rc == LAB_OK) {
		lab_ctx_held(&c, owner, (int64_t)K);
		lab_ctx_stat(&c, LS_ALLOCS, 1);
		*pfn = z->base_pfn + f;
	} else {
		if (quota)
			atomic_fetch_sub_explicit(&o->held_q, K, memory_order_relaxed);
		lab_ctx_stat(&c, rc == LAB_EFRAG ? LS_FRAG : LS_NOMEM, 1);
	}
	lab_ctx_exit(&c);
	return rc;
}

/* What freeing frame i (record v) as `order` by `owner` would mean. */
static inline int classify(const struct lab_zone *z, uint32_t i, uint32_t v, lab_owner_t owner,
                    unsigned order)
{
	if (rec_inpool(v))
		return LAB_EFREE;
	if (!rec_valid(z, i, v))
		lab_plat_panic("labyrinth: corrupt frame record");
	switch (rec_state(v)) {
	case ST_ALLOC:
		if (rec_id(v) != owner)
			return LAB_EOWNER;
		return rec_a(v) == order ? LAB_OK : LAB_EORDER;
	case ST_TAIL:
		return rec_id(v) != owner ? LAB_EOWNER : LAB_EINTERIOR;
	default: /* PCP, DIRTY, UNASSIGNED, RESERVED, BUSY: not allocated */
		return LAB_EFREE;
	}
}

/* Return a block whose records we hold BUSY: scrub, then into the pool. */
static int free_commit(struct lab_ctx *c, struct lab_owner *o, lab_owner_t owner, uint32_t pool,
                       uint32_t f, lab_a32 *rf, uint32_t K, uint32_t head)
{
	struct lab_zone *z = c->z;
	struct lab_pool *p = &z->pools[pool];
	bool scrub = !(p->flags & POOL_EXCL) && !(z->flags & LAB_ZONE_NO_SCRUB);

	if (scrub && K == 1 && (z->flags & LAB_ZONE_DEFERRED_SCRUB) && c->rng) {
		lab_dirty_push(c, f, owner);
	} else if (K == 1 && c->rng && p->pcp_max) {
		if (scrub)
			lab_scrub_frames(c, f, 1);
		if (!lab_free_insert_at(c, pool, f, rf))
			lab_plat_panic("labyrinth: free insert failed");
	} else {
		/* Nested, slot-less or order > 0: under the pool lock, with the
		 * generator taken first (lock order slow_lock -> pool lock). */
		bool took;
		if (lab_ctx_rng_get(c, &took) && lock_get(&p->lock, c->id, lock_mode(c))) {
			if (scrub)
				lab_scrub_frames(c, f, K);
			for (uint32_t i = 0; i < K; i++) /* bound K */
				if (!lab_pool_insert_retry_locked(c->z, pool, c->id, c->nested, f + i, c->rng) &&
				    !lab_nested_queue(c, f + i))
					lab_plat_panic("labyrinth: locked insert failed");
			lock_put(&p->lock);
			lab_ctx_rng_put(c, took);
		} else if (K == 1 && lab_nested_queue(c, f)) {
			lab_ctx_rng_put(c, took);
			if (scrub)
				lab_scrub_frames(c, f, 1);
		} else {
			/* Cannot free now without waiting for the code we interrupted:
			 * put the records back, nothing changed. */
			lab_ctx_rng_put(c, took);
			for (uint32_t i = 1; i < K; i++)
				st_relaxed(rec_at(z, f + i), rec_make(z, f + i, ST_TAIL, rec_a(head), owner));
			st_release(rf, head);
			return LAB_EBUSY;
		}
	}
	lab_ctx_held(c, owner, -(int64_t)K);
	if (o->quota)
		atomic_fetch_sub_explicit(&o->held_q, K, memory_order_relaxed);
	lab_ctx_stat(c, LS_FREES, 1);
	return LAB_OK;
}

/* lab_free, and lab_free_of (want: the owner's incarnation it frees for;
 * NULL: the one it finds now).  Either way the check after the CAS below
 * refuses a free whose owner was removed since.  Inlined into lab_free:
 * called out of line (10 instructions a pair less), every alloc pair of the
 * audit failed by 0.3-0.5 cycles and C1 alloc in five rounds of six;
 * inlined, 10 of 12 pairs passed, C5 alloc for the first time, at the cost
 * of 18 instructions and 5-12 ns a batch pair (docs/AUDIT.md, 14:35). */
static inline __attribute__((always_inline)) int free_block(lab_zone_t *z, lab_owner_t owner, uint64_t pfn,
                                                           unsigned order, const uint32_t *want)
{
	if (!zone_ok(z))
		return LAB_EINVAL;
	if (order > LAB_MAX_ORDER)
		return refuse(z, LAB_EORDER);
	struct lab_owner *o = live_owner(z, owner);
	if (!o)
		return refuse(z, LAB_ENOOWNER);
	uint32_t incarn = want ? *want : ld_acquire(&o->incarn), K = 1u << order;
	if (pfn < z->base_pfn || pfn - z->base_pfn >= z->nr_frames)
		return refuse(z, LAB_ERANGE);
	if (pfn & (K - 1))
		return refuse(z, LAB_EALIGN);
	uint32_t f = (uint32_t)(pfn - z->base_pfn);
	if ((uint64_t)f + K > z->nr_frames) {
		/* The head is in the zone, the block would run past its end: no
		 * block of this order was ever allocated there.  Say what the
		 * head's record says (another order, owner, or not allocated). */
		uint32_t v = lab_public(ld_acquire(rec_at(z, f)));
		int rc = classify(z, f, v, owner, order);
		return refuse(z, rc != LAB_OK ? rc : LAB_EORDER);
	}

	/* The state of the frame the caller names is the caller's to know:
	 * its own block, or a refusal code. */
	lab_a32 *rf = rec_at(z, f);
	uint32_t v = lab_public(ld_acquire(rf)), fh = rec_fhash(z, f);
	/* The caller's own block has exactly this record; anything else is
	 * classified (a refusal code, or corruption). */
	int rc = v == rec_build(rec_body(ST_ALLOC, order, owner), alloc_lin(z, o, order), fh)
	                 ? LAB_OK
	                 : classify(z, f, v, owner, order);
	if (rc != LAB_OK)
		return refuse(z, rc);
	struct lab_ctx c;
	lab_ctx_enter(z, &c);
	uint32_t busy = c.cpu ? rec_build(c.cpu->bbusy, c.cpu->lbusy, fh) : rec_make(z, f, ST_BUSY, 0, c.id & 0xfffu);
	if (!lab_public(atomic_compare_exchange_strong_explicit(rf, &v, busy, memory_order_acq_rel,
	                                                        memory_order_acquire))) {
		/* Lost a race (double free, or teardown took it): say why. */
		lab_ctx_exit(&c);
		rc = classify(z, f, v, owner, order);
		return refuse(z, rc != LAB_OK ? rc : LAB_EFREE);
	}
	/* The record names the owner by id only: if the owner was removed and
	 * added again since this call checked it, the block is the new
	 * owner's (the removal reclaimed the old one's), not the caller's.
	 * Put it back (until 2026-11-28 a stale free freed it). */
	if (lab_unlikely(ld_relaxed(&o->incarn) != incarn)) {
		st_release(rf, v);
		lab_ctx_exit(&c);
		return refuse(z, LAB_ENOOWNER);
	}
	/* The head is ours now, and only the head's holder changes the tails:
	 * a tail that disagrees is corrupt, not a race. */
	for (uint32_t i = 1; i < K; i++) { /* bound K */
		uint32_t want = rec_make(z, f + i, ST_TAIL, order, owner);
		if (lab_public(ld_relaxed(rec_at(z, f + i)) != want))
			lab_plat_panic("labyrinth: corrupt block tail");
		st_relaxed(rec_at(z, f + i), rec_make(z, f + i, ST_BUSY, 0, c.id & 0xfffu));
	}
	rc = free_commit(&c, o, owner, o->pool, f, rf, K, v);
	lab_ctx_exit(&c);
	return rc;
}

int lab_free(lab_zone_t *z, lab_owner_t owner, uint64_t pfn, unsigned order)
{
	return free_block(z, owner, pfn, order, NULL);
}

int lab_free_of(lab_zone_t *z, lab_owner_t owner, uint32_t incarnation, uint64_t pfn, unsigned order)
{
	return free_block(z, owner, pfn, order, &incarnation);
}

/* How far ahead lab_free_bulk prefetches: a free costs 50-100 ns and a record
 * read from DRAM ~240 ns here (bench micro-floor), so 8 frees cover it. */
#define LAB_BULK_AHEAD 8

/* Prefetch, for writing, the record of the frame at pfn if the zone has it
 * (lab_free rejects the others).  Always inlined: a function that only
 * loads and prefetches looks pure to gcc 12, which then deletes the calls
 * whose (void) result is unused; from 05988ff until 2026-11-28 lab_free_bulk
 * prefetched nothing (scripts/prefetch-check.sh now looks for the
 * instructions in the objects). */
static inline __attribute__((always_inline)) void prefetch_record(lab_zone_t *z, uint64_t pfn)
{
	if (pfn - z->base_pfn < z->nr_frames)
		__builtin_prefetch(rec_at(z, pfn - z->base_pfn), 1, 3);
}

int lab_free_bulk(lab_zone_t *z, lab_owner_t owner, const uint64_t *pfns, size_t n, size_t *done)
{
	if (done)
		*done = 0;
	if (!zone_ok(z) || (!pfns && n))
		return LAB_EINVAL;
	for (size_t i = 0; i < n && i < LAB_BULK_AHEAD; i++) /* bound: LAB_BULK_AHEAD */
		prefetch_record(z, pfns[i]);
	for (size_t i = 0; i < n; i++) { /* bound: n, the caller's */
		if (i + LAB_BULK_AHEAD < n)
			prefetch_record(z, pfns[i + LAB_BULK_AHEAD]);
		int rc = lab_free(z, owner, pfns[i], 0);
		if (rc != LAB_OK)
			return rc;
		if (done)
			*done = i + 1;
	}
	return LAB_OK;
}

void *lab_pfn_to_virt(const lab_zone_t *z, uint64_t pfn)
{
	if (!zone_ok(z) || !z->dmap || pfn < z->base_pfn || pfn - z->base_pfn >= z->nr_frames)
		return NULL;
	return frame_va(z, (uint32_t)(pfn - z->base_pfn));
}

int lab_virt_to_pfn(const lab_zone_t *z, const void *addr, uint64_t *pfn)
{
	if (!zone_ok(z) || !pfn)
		return LAB_EINVAL;
	if (!z->dmap)
		return LAB_ENOMAP;
	uintptr_t a = (uintptr_t)addr, b = (uintptr_t)z->dmap;
	if (a < b || (a - b) >> LAB_FRAME_SHIFT >= z->nr_frames)
		return LAB_ERANGE;
	if ((a - b) & (LAB_FRAME_SIZE - 1))
		return LAB_EALIGN;
	*pfn = z->base_pfn + ((a - b) >> LAB_FRAME_SHIFT);
	return LAB_OK;
}

void *lab_alloc_pages(lab_zone_t *z, lab_owner_t owner, unsigned order, unsigned flags)
{
	uint64_t pfn;
	if (!zone_ok(z) || !z->dmap || lab_alloc(z, owner, order, flags, &pfn) != LAB_OK)
		return NULL;
	return frame_va(z, (uint32_t)(pfn - z->base_pfn));
}

void *lab_alloc_page(lab_zone_t *z, lab_owner_t owner, unsigned flags)
{
	return lab_alloc_pages(z, owner, 0, flags);
}

int lab_free_pages(lab_zone_t *z, lab_owner_t owner, void *addr, unsigned order)
{
	uint64_t pfn;
	int rc = lab_virt_to_pfn(z, addr, &pfn);
	if (rc != LAB_OK)
		return zone_ok(z) ? refuse(z, rc) : rc;
	return lab_free(z, owner, pfn, order);
}

int lab_free_page(lab_zone_t *z, lab_owner_t owner, void *addr)
{
	return lab_free_pages(z, owner, addr, 0);
}
