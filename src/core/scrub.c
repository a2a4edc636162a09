/*
 * scrub.c - zeroing frames before they can reach another owner (P5).
 *
 * Who scrubs what:
 *  - shared pools, synchronous mode (default): lab_free zeroes the frame
 *    before it enters G, so every frame in a shared pool's G is zero;
 *  - shared pools, LAB_ZONE_DEFERRED_SCRUB: an order-0 free parks the frame
 *    in its CPU's dirty ring (state DIRTY, in no free structure); lab_scrub()
 *    or the ring's overflow zeroes it and only then puts it in G;
 *  - exclusive pools: nothing on free, the next holder is the same owner;
 *    owner removal zeroes every frame of the pool before its colours go back;
 *  - frames of a zone that did not start zeroed: unassigned and dirty until
 *    lab_scrub's walk of the frame table zeroes them.
 * Every path zeroes a frame while holding its record BUSY, so nobody can
 * allocate it half-scrubbed.
 */
#include "internal.h"

void lab_scrub_frames(struct lab_ctx *c, uint32_t frame, uint32_t nr)
{
	if (c->z->flags & LAB_ZONE_NO_SCRUB)
		return;
	lab_plat_zero_frames(frame_va(c->z, frame), nr);
	lab_ctx_stat(c, LS_SCRUBBED, nr);
}

/* The default of the optional hook (include/labyrinth/platform.h): a host
 * that defines it replaces this one at link time. */
__attribute__((weak)) void lab_plat_zero_list(void *const *va, size_t n)
{
	for (size_t i = 0; i < n; i++) /* bound: n <= 16 */
		lab_plat_zero_frames(va[i], 1);
}

/* Scrub k <= 16 single frames (each BUSY and ours), fenced once. */
void lab_scrub_list(struct lab_ctx *c, const uint32_t *frames, uint32_t k)
{
	void *va[16];
	if (c->z->flags & LAB_ZONE_NO_SCRUB)
		return;
	for (uint32_t j = 0; j < k; j++) /* bound: k <= 16 */
		va[j] = frame_va(c->z, frames[j]);
	lab_plat_zero_list(va, k);
	lab_ctx_stat(c, LS_SCRUBBED, k);
}

/* A zeroed frame (BUSY, ours) goes to its colour's pool, or back to the
 * unassigned colours.  Caller holds cfg_lock or knows the pool is alive. */
void lab_scrub_release(struct lab_ctx *c, uint32_t frame)
{
	struct lab_zone *z = c->z;
	uint32_t pool = lab_pool_of_frame(z, frame);
	if (pool != LAB_NONE && ld_acquire(&z->pools[pool].state) == POOL_ACTIVE &&
	    lab_free_insert(c, pool, frame))
		return;
	st_release(rec_at(z, frame), rec_make(z, frame, ST_UNASSIGNED, 0, 0));
}

static inline void ring_put(struct lab_cpu *cpu, uint32_t f)
{
	uint32_t n = ld_relaxed(&cpu->dcount);
	cpu->dirty[(cpu->dhead + n) % LAB_DIRTY_CAP] = f;
	st_relaxed(&cpu->dcount, n + 1);
}

static inline uint32_t ring_take(struct lab_cpu *cpu)
{
	uint32_t f = cpu->dirty[cpu->dhead];
	cpu->dhead = (cpu->dhead + 1) % LAB_DIRTY_CAP;
	st_relaxed(&cpu->dcount, ld_relaxed(&cpu->dcount) - 1);
	return f;
}

/* Deferred scrub: park frame f (BUSY, ours) in this CPU's dirty ring; when
 * the ring is full the oldest frame is scrubbed now, so the ring is bounded
 * and a free does at most one scrub. */
void lab_dirty_push(struct lab_ctx *c, uint32_t f, uint32_t owner)
{
	struct lab_zone *z = c->z;
	struct lab_cpu *cpu = c->cpu;
	uint32_t old = LAB_NONE;

	st_release(rec_at(z, f), rec_make(z, f, ST_DIRTY, 0, owner));
	lock_get(&cpu->dlock, c->id, false);
	if (ld_relaxed(&cpu->dcount) == LAB_DIRTY_CAP)
		old = ring_take(cpu);
	ring_put(cpu, f);
	lock_put(&cpu->dlock);
	if (old != LAB_NONE) {
		st_relaxed(rec_at(z, old), rec_make(z, old, ST_BUSY, 0, c->id & 0xfffu));
		lab_scrub_frames(c, old, 1);
		if (!lab_free_insert(c, lab_pool_of_frame(z, old), old))
			lab_plat_panic("labyrinth: dirty frame lost");
	}
}

/* Scrub up to budget frames of ring_cpu's dirty ring; returns how many. */
size_t lab_scrub_ring(struct lab_ctx *c, struct lab_cpu *ring_cpu, size_t budget)
{
	struct lab_zone *z = c->z;
	size_t done = 0;

	while (done < budget) { /* bound: budget */
		uint32_t batch[16], k = 0;
		if (!lock_get(&ring_cpu->dlock, c->id, lock_mode(c)))
			break;
		while (k < 16 && ld_relaxed(&ring_cpu->dcount) && done + k < budget)
			batch[k++] = ring_take(ring_cpu);
		lock_put(&ring_cpu->dlock);
		if (k == 0)
			break;
		/* All of the batch zeroed before any goes back, one fence for
		 * all (lab_plat_zero_list). */
		for (uint32_t j = 0; j < k; j++)
			st_relaxed(rec_at(z, batch[j]), rec_make(z, batch[j], ST_BUSY, 0, c->id & 0xfffu));
		lab_scrub_list(c, batch, k);
		for (uint32_t j = 0; j < k; j++) {
			uint32_t f = batch[j];
			if (!lab_free_insert(c, lab_pool_of_frame(z, f), f) && !lab_nested_queue(c, f))
				lab_plat_panic("labyrinth: dirty frame lost");
		}
		done += k;
	}
	return done;
}

/* The walk's claimed frames (BUSY, ours): zero them, one fence, release. */
static size_t walk_flush(struct lab_ctx *c, const uint32_t *batch, uint32_t *k)
{
	uint32_t n = *k;
	if (n == 0)
		return 0;
	lab_scrub_list(c, batch, n);
	atomic_fetch_sub_explicit(&c->z->nr_dirty_scan, n, memory_order_relaxed);
	for (uint32_t j = 0; j < n; j++)
		lab_scrub_release(c, batch[j]);
	*k = 0;
	return n;
}

/* Walk the frame table for frames only the walk can find (a zone that did
 * not start zeroed).  cfg_lock held: pool membership cannot change. */
static size_t scrub_walk(struct lab_ctx *c, size_t budget)
{
	struct lab_zone *z = c->z;
	size_t done = 0, seen = 0;
	size_t limit = budget < (SIZE_MAX - 64) / 64 ? budget * 64 + 64 : SIZE_MAX; /* no wrap */

	uint32_t batch[16], k = 0;
	while (done + k < budget && seen < limit && ld_relaxed(&z->nr_dirty_scan) > k) { /* bound: limit */
		uint32_t f = (uint32_t)z->scrub_cursor;
		z->scrub_cursor = z->scrub_cursor + 1 == z->nr_frames ? 0 : z->scrub_cursor + 1;
		seen++;
		uint32_t v = rec_make(z, f, ST_UNASSIGNED, 1, 0);
		if (ld_relaxed(rec_at(z, f)) != v ||
		    !atomic_compare_exchange_strong(rec_at(z, f), &v, rec_make(z, f, ST_BUSY, 0, c->id & 0xfffu)))
			continue;
		batch[k++] = f;
		if (k == 16)
			done += walk_flush(c, batch, &k);
	}
	done += walk_flush(c, batch, &k);
	return done;
}

int lab_scrub(lab_zone_t *z, size_t budget, size_t *done)
{
	struct lab_ctx c;
	size_t total = 0;
	bool dirty_left = false;

	if (!z || z->magic != LAB_ZONE_MAGIC)
		return LAB_EINVAL;
	lab_ctx_enter(z, &c);
	/* A call that interrupted its CPU inside the zone scrubs nothing: a
	 * frame it zeroed could only go into its pool through a lock the code
	 * it interrupted may hold.  Until 2026-11-28 the walk then left such a
	 * frame clean outside its live pool, lost to it, and the rings queued
	 * more frames for the outer call than its queue holds (a panic). */
	if (c.nested)
		budget = 0;
	for (uint32_t k = 0; k < z->nr_cpus && total < budget; k++) {
		uint32_t id = c.cpu ? (c.id + k) % z->nr_cpus : k; /* our own ring first */
		total += lab_scrub_ring(&c, cpu_at(z, id), budget - total);
	}
	if (total < budget && ld_relaxed(&z->nr_dirty_scan) && lock_get(&z->cfg_lock, c.id, LOCK_NESTED)) {
		total += scrub_walk(&c, budget - total);
		lock_put(&z->cfg_lock);
	}
	for (uint32_t k = 0; k < z->nr_cpus; k++)
		if (ld_relaxed(&cpu_at(z, k)->dcount))
			dirty_left = true;
	if (ld_relaxed(&z->nr_dirty_scan))
		dirty_left = true;
	lab_ctx_exit(&c);
	if (done)
		*done = total;
	return dirty_left ? LAB_EAGAIN : LAB_OK;
}
