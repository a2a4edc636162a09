/*
 * owner.c - registering owners (domains), their colour pools, and removal.
 *
 * Owners with identical colour sets share a pool; every other overlap is
 * refused, so pools are disjoint and an exclusive owner's pool has exactly
 * one owner (P6 holds by construction: a frame is only ever handed out of
 * the pool its colour belongs to).
 *
 * Removal is a small state machine run in budgeted steps (seL4 resets
 * objects in chunks the same way), each step under cfg_lock:
 *   0  ACTIVE -> DYING; make every CPU run a barrier, so from now on an
 *      allocation either shows up in the frame table or sees DYING and
 *      gives its block back (alloc.c)
 *   1  reclaim: walk the pool's colours, take every block the owner holds,
 *      zero it and put it back in the pool
 *   2  if other owners share the pool, done; else the pool starts dying
 *   3  wait until every frame of the pool is home (in G): CPUs drop cached
 *      frames of dying pools at their next call, dirty rings are scrubbed
 *   4  dissolve: zero (exclusive pools) and unassign the frames, tail first,
 *      so the pool array stays consistent between steps
 */
#include "internal.h"

static inline uint64_t colour_mask_all(const struct lab_zone *z)
{
	return z->nr_colours == 64 ? UINT64_MAX : (1ull << z->nr_colours) - 1;
}

/* Sum of the per-CPU held counters of an owner id (no CPU may be using it). */
static int64_t held_percpu(const struct lab_zone *z, uint32_t id)
{
	int64_t sum = 0;
	for (uint32_t k = 0; k < z->nr_cpus; k++)
		sum += (int64_t)ld_relaxed(&cpu_held(z, cpu_at(z, k))[id]);
	return sum;
}

static int add_locked(struct lab_zone *z, uint32_t id, const struct lab_owner_cfg *cfg)
{
	struct lab_owner *o = owner_at(z, id);
	bool excl = cfg->flags & LAB_OWNER_EXCLUSIVE;
	uint32_t target = LAB_NONE, spare = LAB_NONE;

	if (ld_relaxed(&o->state) != OWNER_FREE)
		return LAB_EEXIST;
	for (uint32_t q = 0; q < z->nr_pools; q++) {
		struct lab_pool *p = &z->pools[q];
		uint32_t st = ld_relaxed(&p->state);
		if (st == POOL_FREE) {
			if (spare == LAB_NONE)
				spare = q;
			continue;
		}
		if (!(p->mask & cfg->colours))
			continue;
		if (st == POOL_DYING)
			return LAB_EBUSY; /* its colours come free when removal finishes */
		bool pexcl = p->flags & POOL_EXCL;
		if (excl)
			return pexcl ? LAB_EOVERLAP : LAB_ESHARED;
		if (pexcl || p->mask != cfg->colours)
			return LAB_EOVERLAP;
		target = q; /* same colours, both shared: share the pool */
	}
	if (target == LAB_NONE) {
		if (spare == LAB_NONE)
			return LAB_EBUSY; /* cannot happen: pools are disjoint and non-empty */
		uint32_t flags = excl ? POOL_EXCL : ((z->flags & LAB_ZONE_NO_SCRUB) ? 0 : POOL_ZEROED);
		target = spare;
		lab_pool_build(z, target, cfg->colours, flags);
		st_release(&z->pools[target].state, POOL_ACTIVE);
		for (uint32_t c = 0; c < z->nr_colours; c++)
			if (cfg->colours >> c & 1)
				st_release(&z->pool_of_colour[c], (int8_t)target);
	}
	z->pools[target].nr_owners++;
	o->pool = target;
	o->flags = cfg->flags;
	o->colours = cfg->colours;
	o->quota = cfg->quota;
	o->phase = 0;
	o->cursor = 0;
	st_relaxed(&o->held_q, 0);
	atomic_store_explicit(&o->held_slow, -held_percpu(z, id), memory_order_relaxed);
	st_release(&o->incarn, ld_relaxed(&o->incarn) + 1); /* after the fields: lab_alloc */
	st_release(&o->state, OWNER_ACTIVE);
	return LAB_OK;
}

int lab_owner_add(lab_zone_t *z, lab_owner_t id, const struct lab_owner_cfg *cfg)
{
	struct lab_ctx c;
	int rc;

	if (!z || z->magic != LAB_ZONE_MAGIC || !cfg)
		return LAB_EINVAL;
	if (id == 0 || id > z->max_owners)
		return LAB_ENOOWNER;
	if (!cfg->colours || (cfg->colours & ~colour_mask_all(z)) || (cfg->flags & ~LAB_OWNER_EXCLUSIVE))
		return LAB_EINVAL;
	lab_ctx_enter(z, &c);
	if (c.nested) {
		rc = LAB_EBUSY;
	} else {
		lock_get(&z->cfg_lock, c.id, false);
		rc = add_locked(z, id, cfg);
		lock_put(&z->cfg_lock);
	}
	lab_ctx_exit(&c);
	return rc;
}

/* The first frame at or after f whose colour is in mask (nr_frames if
 * none): the walks of owner removal visit only their colours' frames, so a
 * walk over one colour of 64 costs 1/64 of the zone, not all of it. */
static inline uint64_t next_in_mask(const struct lab_zone *z, uint64_t f, uint64_t mask)
{
	if (f >= z->nr_frames || !mask)
		return z->nr_frames;
	uint32_t c = frame_colour(z, (uint32_t)f);
	uint64_t up = mask >> c; /* colours c and above */
	f += up ? (uint64_t)__builtin_ctzll(up) : z->nr_colours - c + (uint64_t)__builtin_ctzll(mask);
	return f < z->nr_frames ? f : z->nr_frames;
}

/* Phase 1: take back the owner's blocks.  Returns frames examined. */
static size_t reclaim(struct lab_ctx *c, struct lab_owner *o, uint32_t id, size_t budget,
                      bool *finished)
{
	struct lab_zone *z = c->z;
	struct lab_pool *p = &z->pools[o->pool];
	size_t work = 0;

	while (work < budget) { /* bound: budget */
		o->cursor = next_in_mask(z, o->cursor, o->colours);
		if (o->cursor >= z->nr_frames)
			break;
		uint32_t f = (uint32_t)o->cursor++;
		work++;
		uint32_t v = ld_acquire(rec_at(z, f));
		if (rec_inpool(v) || rec_state(v) != ST_ALLOC || rec_id(v) != id)
			continue;
		if (!rec_valid(z, f, v))
			lab_plat_panic("labyrinth: corrupt frame record");
		uint32_t K = 1u << rec_a(v);
		uint32_t busy = rec_make(z, f, ST_BUSY, 0, c->id & 0xfffu);
		if (!atomic_compare_exchange_strong(rec_at(z, f), &v, busy))
			continue; /* the owner freed it meanwhile */
		for (uint32_t i = 1; i < K; i++)
			st_relaxed(rec_at(z, f + i), rec_make(z, f + i, ST_BUSY, 0, c->id & 0xfffu));
		if (!(z->flags & LAB_ZONE_NO_SCRUB))
			lab_scrub_frames(c, f, K);
		bool took;
		lab_ctx_rng_get(c, &took); /* never nested here: cannot fail */
		lock_get(&p->lock, c->id, false);
		for (uint32_t i = 0; i < K; i++)
			lab_pool_insert_locked(z, o->pool, c->id, false, f + i, lab_rng_u64(c->rng));
		lock_put(&p->lock);
		lab_ctx_rng_put(c, took);
		atomic_fetch_sub_explicit(&o->held_slow, (int64_t)K, memory_order_relaxed);
		if (o->quota)
			atomic_fetch_sub_explicit(&o->held_q, K, memory_order_relaxed);
		o->cursor = f + K;
		work += K;
	}
	*finished = o->cursor >= z->nr_frames;
	return work;
}

/* Phase 3: every frame of the dying pool's colours must be in G (or never
 * have been the pool's: unassigned, reserved).  Returns false to retry. */
static bool pool_home(struct lab_ctx *c, struct lab_pool *p, size_t budget)
{
	struct lab_zone *z = c->z;
	for (uint32_t k = 0; k < z->nr_cpus; k++)
		lab_scrub_ring(c, cpu_at(z, k), LAB_DIRTY_CAP);
	if (c->cpu)
		lab_pcp_drain(z, c->cpu, c->id, true);
	/* Under the pool lock: a refill that got the lock after this walk
	 * passed its frames sees the pool DYING and takes none (it waited for
	 * the lock while the removal ran up to here, until 2026-11-28).  The
	 * exchanges take no lock: the records are read seq_cst against their
	 * check of the state (lab_pool_exchange). */
	bool home = false;
	lock_get(&p->lock, c->id, LOCK_WAIT);
	for (size_t work = 0; work < budget; work++) { /* bound: budget */
		p->cursor = next_in_mask(z, p->cursor, p->mask);
		if (p->cursor >= z->nr_frames)
			break;
		uint32_t f = (uint32_t)p->cursor;
		uint32_t v = atomic_load_explicit(rec_at(z, f), memory_order_seq_cst);
		uint32_t st = rec_state(v);
		if (!rec_inpool(v) && st != ST_UNASSIGNED && st != ST_RESERVED)
			goto out; /* cached on a CPU, dirty, or in flight */
		p->cursor++;
	}
	home = p->cursor >= z->nr_frames;
out:
	lock_put(&p->lock);
	return home;
}

/* Phase 4: empty the pool from the tail.  Returns true when done. */
static bool pool_dissolve(struct lab_ctx *c, uint32_t pool, size_t budget)
{
	struct lab_zone *z = c->z;
	struct lab_pool *p = &z->pools[pool];
	uint32_t got[16], gri[16];

	lock_get(&p->lock, c->id, false);
	for (size_t work = 0; work < budget;) { /* bound: budget */
		uint32_t want = budget - work < 16 ? (uint32_t)(budget - work) : 16;
		uint32_t k = lab_pool_pop_locked(z, pool, c->id, false, got, gri, want);
		if (k == 0)
			break;
		if (p->flags & POOL_EXCL) /* 16 at a time, one fence (lab_scrub_list) */
			lab_scrub_list(c, got, k);
		for (uint32_t j = 0; j < k; j++)
			st_release(&z->rec[gri[j]], rec_make(z, got[j], ST_UNASSIGNED, 0, 0));
		work += k;
	}
	bool empty = ld_relaxed(&p->n) == 0;
	lock_put(&p->lock);
	if (!empty)
		return false;
	for (uint32_t col = 0; col < z->nr_colours; col++)
		if (p->mask >> col & 1)
			st_release(&z->pool_of_colour[col], (int8_t)-1);
	p->mask = 0;
	st_release(&p->state, POOL_FREE);
	return true;
}

static int remove_locked(struct lab_ctx *c, uint32_t id, size_t budget)
{
	struct lab_zone *z = c->z;
	struct lab_owner *o = owner_at(z, id);
	struct lab_pool *p = &z->pools[o->pool];
	bool finished;

	switch (o->phase) {
	case 0:
		if (ld_relaxed(&o->state) != OWNER_ACTIVE)
			return LAB_ENOOWNER;
		st_release(&o->state, OWNER_DYING);
		if (lab_plat_sync_cpus() != 0) {
			st_release(&o->state, OWNER_ACTIVE);
			return LAB_EBUSY;
		}
		o->phase = 1;
		o->cursor = 0;
		return LAB_EAGAIN;
	case 1:
		reclaim(c, o, id, budget, &finished);
		if (!finished)
			return LAB_EAGAIN;
		o->phase = 2;
		/* fall through */
	case 2:
		/* Every block reclaimed has been uncounted: what the counts still
		 * hold belongs to calls of this owner still in flight (a free
		 * that had locked its block before the walk, an allocation that
		 * counted its quota).  They settle them soon; until then the id
		 * cannot be added again, or they would settle against the new
		 * owner's counts (its quota count wrapped, until 2026-11-28). */
		/* A free that gave up (LAB_EBUSY: nested, it could not wait for a
		 * lock) puts its block's ALLOC record back, maybe behind the walk:
		 * walk again, or the block would stay held for good (a review). */
		if (held_percpu(z, id) + atomic_load_explicit(&o->held_slow, memory_order_acquire) != 0 ||
		    (o->quota && ld_acquire(&o->held_q) != 0)) {
			o->phase = 1;
			o->cursor = 0;
			return LAB_EAGAIN;
		}
		if (--p->nr_owners > 0) {
			o->phase = 0;
			st_release(&o->state, OWNER_FREE);
			return LAB_OK;
		}
		atomic_store_explicit(&p->state, POOL_DYING, memory_order_seq_cst); /* lab_pool_exchange */
		atomic_fetch_add_explicit(&z->gen, 1, memory_order_acq_rel);
		p->cursor = 0;
		o->phase = 3;
		return LAB_EAGAIN;
	case 3:
		if (!pool_home(c, p, budget))
			return LAB_EAGAIN;
		o->phase = 4;
		return LAB_EAGAIN;
	case 4:
		if (!pool_dissolve(c, o->pool, budget))
			return LAB_EAGAIN;
		o->phase = 0;
		st_release(&o->state, OWNER_FREE);
		return LAB_OK;
	}
	lab_plat_panic("labyrinth: corrupt owner state");
}

int lab_owner_remove(lab_zone_t *z, lab_owner_t id, size_t budget)
{
	struct lab_ctx c;
	int rc;

	if (!z || z->magic != LAB_ZONE_MAGIC)
		return LAB_EINVAL;
	if (id == 0 || id > z->max_owners || ld_acquire(&owner_at(z, id)->state) == OWNER_FREE)
		return LAB_ENOOWNER;
	if (budget == 0)
		return LAB_EINVAL;
	lab_ctx_enter(z, &c);
	if (c.nested) {
		rc = LAB_EBUSY;
	} else {
		lock_get(&z->cfg_lock, c.id, false);
		rc = remove_locked(&c, id, budget);
		lock_put(&z->cfg_lock);
	}
	lab_ctx_exit(&c);
	return rc;
}
