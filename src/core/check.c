/*
 * check.c - lab_check (every invariant), lab_stats, owner and frame queries.
 *
 * lab_check needs no memory of its own: to prove every cached frame is
 * cached exactly once, it marks each pcp / dirty-ring entry's record while
 * walking the caches (a second visit finds the mark instead of the expected
 * record) and restores them afterwards.  It must run with no CPU inside the
 * zone, like Zircon's CheckAllFreePages.
 */
#include "internal.h"

/* Marker records: BUSY with a = 1 (pcp entry, id = pool) or a = 2 (dirty
 * ring entry, id = owner).  Real locks always have a = 0. */
#define MARK_PCP 1u
#define MARK_DIRTY 2u

struct walk {
	uint64_t cached, dirty, alloc_frames, tails_expected, tails_seen;
	uint64_t inpool[LAB_MAX_COLOURS];
	int bad;
};

static void bad(struct walk *w, const char *msg)
{
	if (w->bad++ < 8)
		lab_plat_log(msg);
}

static void mark_entry(struct lab_zone *z, struct walk *w, uint32_t f, uint32_t want_state,
                       uint32_t id_or_any, uint32_t mark_kind)
{
	if (f >= z->frame_lim) {
		bad(w, "labyrinth check: cache entry outside the zone");
		return;
	}
	uint32_t v = ld_relaxed(rec_at(z, f));
	if (rec_inpool(v) || !rec_valid(z, f, v) || rec_state(v) != want_state ||
	    (id_or_any != LAB_NONE && rec_id(v) != id_or_any)) {
		bad(w, "labyrinth check: cache entry is not a cached frame (or is cached twice)");
		return;
	}
	st_relaxed(rec_at(z, f), rec_make(z, f, ST_BUSY, mark_kind, rec_id(v)));
	if (mark_kind == MARK_PCP)
		w->cached++;
	else
		w->dirty++;
}

/* Every pipeline position (pcp->pslot) of a CPU that has caught up with the
 * zone's pool deaths is a slot of its ring or of its pool's colour slices. */
static bool pipe_ok(const struct lab_zone *z, const struct lab_cpu *cpu, uint32_t pool,
                    const struct lab_pcp *pcp)
{
	if (cpu->gen_seen != ld_relaxed(&z->gen))
		return true; /* reset when this CPU next enters (lab_pcp_pipe_reset) */
	const struct lab_pool *p = &z->pools[pool];
	bool live = ld_relaxed(&p->state) != POOL_FREE;
	for (int k = 0; k < LAB_PIPE; k++) {
		const lab_a32 *s = pcp->pslot[k];
		if (s >= pcp->ring && s < pcp->ring + LAB_PCP_CAP)
			continue;
		if (!live || s < z->gstore || s >= z->gstore + (size_t)z->nr_colours * z->slice)
			return false;
		uint32_t col = (uint32_t)((size_t)(s - z->gstore) / z->slice);
		if (!(p->mask >> col & 1))
			return false;
	}
	return true;
}

static void walk_caches(struct lab_zone *z, struct walk *w)
{
	for (uint32_t k = 0; k < z->nr_cpus; k++) {
		struct lab_cpu *cpu = cpu_at(z, k);
		for (uint32_t pool = 0; pool < z->nr_pools; pool++) {
			struct lab_pcp *pcp = cpu_pcp(z, cpu, pool);
			uint32_t n = ld_relaxed(&pcp->count);
			if (n > LAB_PCP_CAP) {
				bad(w, "labyrinth check: pcp count out of range");
				continue;
			}
			if (n && ld_relaxed(&z->pools[pool].state) == POOL_FREE)
				bad(w, "labyrinth check: frames cached for a pool that does not exist");
			if (!pipe_ok(z, cpu, pool, pcp))
				bad(w, "labyrinth check: a pipeline position outside its pool and cache");
			for (uint32_t j = 0; j < n; j++) {
				uint32_t i = (pcp->head + j) & (LAB_PCP_CAP - 1), f = ld_relaxed(&pcp->ring[i]);
				mark_entry(z, w, f, ST_PCP, pool, MARK_PCP);
				if (f < z->frame_lim && pcp->ring_rix[i] != rix(z, f))
					bad(w, "labyrinth check: a cached frame's record index is wrong");
			}
		}
		uint32_t nd = ld_relaxed(&cpu->dcount);
		if (nd > LAB_DIRTY_CAP) {
			bad(w, "labyrinth check: dirty ring count out of range");
			continue;
		}
		for (uint32_t j = 0; j < nd; j++)
			mark_entry(z, w, cpu->dirty[(cpu->dhead + j) % LAB_DIRTY_CAP], ST_DIRTY, LAB_NONE,
			           MARK_DIRTY);
		if (ld_relaxed(&cpu->busy))
			bad(w, "labyrinth check: a CPU is inside the zone");
	}
	/* Slot-less contexts with an id of their own count their nesting here
	 * (cpu.c): one left raised is a context inside the zone, or a call that
	 * never left it. */
	for (uint32_t i = 0; i < LAB_MAX_CPUS; i++)
		if (ld_relaxed(&z->slotless_depth[i]))
			bad(w, "labyrinth check: a context without a CPU slot is inside the zone");
}

static void check_frame(struct lab_zone *z, struct walk *w, uint32_t f)
{
	uint32_t v = ld_relaxed(rec_at(z, f));
	int8_t pi = ld_relaxed(&z->pool_of_colour[frame_colour(z, f)]);

	if (rec_inpool(v)) {
		if (pi < 0) {
			bad(w, "labyrinth check: frame in a pool its colour does not have");
			return;
		}
		if (lab_pool_slot_of(z, (uint32_t)pi, f, v) == LAB_NONE)
			bad(w, "labyrinth check: in-pool record does not match the pool array");
		w->inpool[pi]++;
		return;
	}
	if (!rec_valid(z, f, v)) {
		bad(w, "labyrinth check: record fails its check value");
		return;
	}
	uint32_t id = rec_id(v), order = rec_a(v);
	switch (rec_state(v)) {
	case ST_ALLOC: {
		uint32_t K = 1u << order;
		if (id == 0 || id > z->max_owners || ld_relaxed(&z->owners[id].state) == OWNER_FREE) {
			bad(w, "labyrinth check: block held by no live owner");
			return;
		}
		if (((z->base_pfn + f) & (K - 1)) || (uint64_t)f + K > z->nr_frames) {
			bad(w, "labyrinth check: block misaligned or past the zone");
			return;
		}
		struct lab_owner *o = &z->owners[id];
		for (uint32_t i = 0; i < K; i++) {
			uint32_t c = frame_colour(z, f + i);
			if (!(o->colours >> c & 1) || ld_relaxed(&z->pool_of_colour[c]) != (int8_t)o->pool)
				bad(w, "labyrinth check: frame outside its owner's colours");
			if (i && ld_relaxed(rec_at(z, f + i)) != rec_make(z, f + i, ST_TAIL, order, id))
				bad(w, "labyrinth check: block tail does not match its head");
		}
		w->alloc_frames += K;
		w->tails_expected += K - 1;
		return;
	}
	case ST_TAIL:
		w->tails_seen++;
		return;
	case ST_PCP:
		bad(w, "labyrinth check: cached frame in no CPU cache");
		return;
	case ST_DIRTY:
		bad(w, "labyrinth check: dirty frame in no dirty ring");
		return;
	case ST_BUSY:
		if (order == MARK_PCP || order == MARK_DIRTY) {
			/* Restore what walk_caches marked. */
			st_relaxed(rec_at(z, f), rec_make(z, f, order == MARK_PCP ? ST_PCP : ST_DIRTY, 0, id));
			return;
		}
		bad(w, "labyrinth check: frame locked with no CPU inside the zone");
		return;
	case ST_UNASSIGNED:
		if (pi >= 0 && ld_relaxed(&z->pools[pi].state) == POOL_ACTIVE && !(order & 1))
			bad(w, "labyrinth check: clean frame of a pool's colour outside the pool");
		return;
	case ST_RESERVED:
		return;
	default:
		bad(w, "labyrinth check: invalid frame state");
	}
}

static void check_pools(struct lab_zone *z, struct walk *w)
{
	uint64_t seen = 0;
	for (uint32_t q = 0; q < z->nr_pools; q++) {
		struct lab_pool *p = &z->pools[q];
		uint32_t st = ld_relaxed(&p->state);
		if (st == POOL_FREE) {
			if (w->inpool[q])
				bad(w, "labyrinth check: frames in a pool that does not exist");
			continue;
		}
		if (p->mask & seen)
			bad(w, "labyrinth check: two pools share a colour");
		seen |= p->mask;
		for (uint32_t c = 0; c < z->nr_colours; c++)
			if ((p->mask >> c & 1) != (ld_relaxed(&z->pool_of_colour[c]) == (int8_t)q))
				bad(w, "labyrinth check: colour table disagrees with pool masks");
		uint32_t n = ld_relaxed(&p->n);
		if ((uint64_t)n > p->cap || n != w->inpool[q])
			bad(w, "labyrinth check: pool count disagrees with its frames");
		if ((p->flags & POOL_EXCL) && p->nr_owners > 1)
			bad(w, "labyrinth check: exclusive pool with several owners");
		if (lab_unlikely(LAB_DEBUG >= 2 || n <= (1u << 20))) {
			for (uint32_t j = 0; j < n; j++) { /* every slot names a frame of this pool */
				uint32_t f = ld_relaxed(gslot(z, p, j));
				if (f >= z->frame_lim || !(p->mask >> frame_colour(z, f) & 1) ||
				    lab_pool_slot_of(z, q, f, ld_relaxed(rec_at(z, f))) != j)
					bad(w, "labyrinth check: pool slot names a frame that is not there");
			}
		}
	}
	for (uint32_t id = 1; id <= z->max_owners; id++) {
		struct lab_owner *o = &z->owners[id];
		if (o->alin != rec_lin(z, ST_ALLOC, 0, id))
			bad(w, "labyrinth check: owner's record key part is wrong");
		if (ld_relaxed(&o->state) == OWNER_FREE)
			continue;
		struct lab_pool *p = &z->pools[o->pool];
		if (ld_relaxed(&p->state) == POOL_FREE || p->mask != o->colours)
			bad(w, "labyrinth check: owner's pool does not match its colours");
		if (((o->flags & LAB_OWNER_EXCLUSIVE) != 0) != ((p->flags & POOL_EXCL) != 0))
			bad(w, "labyrinth check: exclusive owner in a shared pool");
	}
}

/* Held counts of owners [lo, lo + 256): one pass of the frame table each. */
#define HELD_CHUNK 256
static void check_held(struct lab_zone *z, struct walk *w, uint32_t lo)
{
	uint64_t acc[HELD_CHUNK] = {0};
	for (uint64_t i = 0; i < 16ull * z->rec_lines; i++) { /* in storage order */
		if (rix_frame(z, i) >= z->nr_frames)
			continue; /* padding */
		uint32_t v = ld_relaxed(&z->rec[i]);
		if (!rec_inpool(v) && rec_state(v) == ST_ALLOC && rec_id(v) - lo < HELD_CHUNK)
			acc[rec_id(v) - lo] += 1ull << rec_a(v);
	}
	for (uint32_t id = lo; id < lo + HELD_CHUNK && id <= z->max_owners; id++) {
		struct lab_owner *o = &z->owners[id];
		uint32_t st = ld_relaxed(&o->state);
		if (st == OWNER_FREE || id == 0)
			continue;
		int64_t held = atomic_load_explicit(&o->held_slow, memory_order_relaxed);
		for (uint32_t k = 0; k < z->nr_cpus; k++)
			held += (int64_t)ld_relaxed(&cpu_held(z, cpu_at(z, k))[id]);
		if (st == OWNER_ACTIVE && (uint64_t)held != acc[id - lo])
			bad(w, "labyrinth check: owner's held count disagrees with the frame table");
		if (o->quota && ld_relaxed(&o->held_q) != acc[id - lo])
			bad(w, "labyrinth check: owner's quota count disagrees with the frame table");
	}
}

int lab_check(lab_zone_t *z)
{
	struct walk w;
	if (!z || z->magic != LAB_ZONE_MAGIC)
		return LAB_EINVAL;
	lock_get(&z->cfg_lock, LAB_MAX_CPUS + 1, false);
	memset(&w, 0, sizeof(w));
	walk_caches(z, &w);
	for (uint64_t f = 0; f < z->nr_frames; f++)
		check_frame(z, &w, (uint32_t)f);
	if (w.tails_seen != w.tails_expected)
		bad(&w, "labyrinth check: tail frames without a head");
	check_pools(z, &w);
	for (uint32_t lo = 0; lo <= z->max_owners; lo += HELD_CHUNK)
		check_held(z, &w, lo);
	lock_put(&z->cfg_lock);
	return w.bad ? LAB_ECORRUPT : LAB_OK;
}

int lab_stats(const lab_zone_t *z, struct lab_stats *st)
{
	if (!z || z->magic != LAB_ZONE_MAGIC || !st)
		return LAB_EINVAL;
	memset(st, 0, sizeof(*st));
	st->nr_frames = z->nr_frames;
	st->nr_colours = z->nr_colours;
	st->nr_cpus = z->nr_cpus;
	/* One pass in frame order: run = free frames in a row ending at f, so
	 * the naturally aligned 2^k block ending at f is all free iff run >= 2^k
	 * (it is counted when its last frame is reached). */
	uint64_t run = 0;
	for (uint64_t i = 0; i < z->nr_frames; i++) {
		uint32_t f = (uint32_t)i, v = ld_relaxed(rec_at(z, f));
		if (rec_inpool(v) || rec_state(v) == ST_PCP) {
			st->nr_free++;
			st->free_by_colour[frame_colour(z, f)]++;
			st->nr_cached += !rec_inpool(v);
			run++;
		} else {
			run = 0;
			switch (rec_state(v)) {
			case ST_ALLOC:
			case ST_TAIL: st->nr_allocated++; break;
			case ST_DIRTY: st->nr_dirty++; break;
			case ST_UNASSIGNED: (rec_a(v) & 1) ? st->nr_dirty++ : st->nr_unassigned++; break;
			case ST_RESERVED: st->nr_reserved++; break;
			default: break; /* BUSY: in flight */
			}
		}
		uint64_t end = z->base_pfn + i + 1; /* pfn after f */
		for (unsigned k = 0; k <= LAB_MAX_ORDER && run >> k && !(end & ((1ull << k) - 1)); k++)
			st->free_blocks[k]++;
	}
	for (uint32_t q = 0; q < z->nr_pools; q++)
		if (ld_relaxed(&z->pools[q].state) != POOL_FREE) {
			st->nr_pools++;
			st->reserve_frames += z->pools[q].reserve;
		}
	for (uint32_t id = 1; id <= z->max_owners; id++)
		st->nr_owners += ld_relaxed(&z->owners[id].state) != OWNER_FREE;
	uint64_t sum[LS_NR];
	for (int s = 0; s < LS_NR; s++) {
		sum[s] = ld_relaxed(&z->slow_st.v[s]);
		for (uint32_t k = 0; k < z->nr_cpus; k++)
			sum[s] += ld_relaxed(&cpu_at(z, k)->st.v[s]);
	}
	st->allocs = sum[LS_ALLOCS];
	st->frees = sum[LS_FREES];
	st->fail_nomem = sum[LS_NOMEM];
	st->fail_quota = sum[LS_QUOTA];
	st->fail_frag = sum[LS_FRAG];
	st->refused = sum[LS_REFUSED];
	st->scrubbed = sum[LS_SCRUBBED];
	st->reserve_allocs = sum[LS_RESERVE];
	st->nested_calls = sum[LS_NESTED];
	st->slotless_calls = sum[LS_SLOTLESS];
	return LAB_OK;
}

uint32_t lab_owner_incarnation(const lab_zone_t *z, lab_owner_t id)
{
	if (!z || z->magic != LAB_ZONE_MAGIC || id == 0 || id > z->max_owners)
		return 0;
	return ld_acquire(&z->owners[id].incarn);
}

int lab_owner_stats(const lab_zone_t *z, lab_owner_t id, struct lab_owner_stats *st)
{
	if (!z || z->magic != LAB_ZONE_MAGIC || !st)
		return LAB_EINVAL;
	if (id == 0 || id > z->max_owners || ld_acquire(&z->owners[id].state) == OWNER_FREE)
		return LAB_ENOOWNER;
	const struct lab_owner *o = &z->owners[id];
	int64_t held = atomic_load_explicit(&o->held_slow, memory_order_relaxed);
	uint64_t free = ld_relaxed(&z->pools[o->pool].n);
	for (uint32_t k = 0; k < z->nr_cpus; k++) {
		struct lab_cpu *cpu = cpu_at(z, k);
		held += (int64_t)ld_relaxed(&cpu_held(z, cpu)[id]);
		free += ld_relaxed(&cpu_pcp(z, cpu, o->pool)->count);
	}
	st->held = held < 0 ? 0 : (uint64_t)held;
	st->quota = o->quota;
	st->colours = o->colours;
	st->pool_free = free;
	st->exclusive = (o->flags & LAB_OWNER_EXCLUSIVE) != 0;
	return LAB_OK;
}

int lab_frame_owner(const lab_zone_t *z, uint64_t pfn, lab_owner_t *owner, unsigned *order)
{
	if (!z || z->magic != LAB_ZONE_MAGIC || !owner)
		return LAB_EINVAL;
	if (pfn < z->base_pfn || pfn - z->base_pfn >= z->nr_frames)
		return LAB_ERANGE;
	uint32_t f = (uint32_t)(pfn - z->base_pfn), v = ld_acquire(rec_at(z, f));
	*owner = 0;
	if (order)
		*order = 0;
	if (!rec_inpool(v) && (rec_state(v) == ST_ALLOC || rec_state(v) == ST_TAIL)) {
		*owner = rec_id(v);
		if (order)
			*order = rec_a(v);
	}
	return LAB_OK;
}
