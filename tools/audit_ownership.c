/*
 * audit_ownership.c - `labyrinth audit`: ownership and scrub (P4, P5, P7)
 * and colour isolation (P6).
 *
 * Everything here runs on zones the audit builds itself with lab_zone_init
 * over aligned_alloc'd memory: the audit then knows the arena (to read what
 * a frame holds when an owner receives it) and the metadata buffer (to hash
 * the whole allocator state around a refused call), and a fixed --seed
 * makes a reduced run repeat exactly (zone keys and the audit's own choices
 * both come from it).
 *
 *  P5  cross-owner canaries: owner A fills every frame it gets with a
 *      pattern and frees it, owner B checks all 4096 bytes of every frame
 *      it gets; synchronous scrub, deferred scrub, four threads at once
 *      (both scrub modes), and owners removed while holding dirty frames.
 *  P7  every invalid-free class, many trials each, on a zone with traffic:
 *      exact error code, metadata hash, the `refused` counter and the
 *      target frames' contents all checked around the call.
 *  P4  two threads race to free the same blocks: exactly one wins.
 *  P6  an exact model of the colour rules against random owner
 *      configurations and random operation sequences.
 *
 * Internal layout (internal.h) is used only to find the statistics counters
 * that a refused call may bump (they are left out of the state hash, as in
 * tests/test_main.c tz_hash) and to read the `refused` counter cheaply.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "audit.h"
#include "internal.h"

#define FRAME ((size_t)LAB_FRAME_SIZE)

/* ---- the audit's own random choices ------------------------------------------
 * xoshiro256** seeded through splitmix64: fast, and its output is a pure
 * function of (seed, salt), so each part draws its own stream and adding a
 * draw in one part never shifts another part's choices. */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_init(struct rng *r, uint64_t seed, uint64_t salt)
{
	uint64_t x = seed ^ (salt * 0xd1342543de82ef95ull);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rnd(struct rng *r)
{
	uint64_t *s = r->s, out = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return out;
}

/* Uniform in [0, n): the bias of the multiply-shift is below 2^-32, which
 * no check here can see. */
static uint32_t below(struct rng *r, uint32_t n)
{
	return (uint32_t)(((rnd(r) >> 32) * n) >> 32);
}

static bool chance(struct rng *r, unsigned pct)
{
	return below(r, 100) < pct;
}

/* The seed every part starts from: --seed when given (reduced runs always
 * have one), else one drawn from entropy and printed, so a full run that
 * fails can be repeated with --seed. */
static uint64_t run_seed(const struct audit_opts *o)
{
	static bool have;
	static uint64_t s;
	if (o->seeded)
		return o->seed;
	if (!have) {
		if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s))
			s = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
		have = true;
		audit_note("audit choices seeded with %llu from entropy (zone keys from getrandom); "
		           "--seed %llu repeats the choices",
		           (unsigned long long)s, (unsigned long long)s);
	}
	return s;
}

/* ---- zones over memory the audit owns ------------------------------------------ */

struct zone_spec {
	uint64_t base_pfn, nr_frames;
	unsigned colours, cpus, max_owners, reserve_permille;
	uint32_t flags;
	uint8_t fill;      /* arena bytes at start: non-zero stands for a previous tenant */
	uint8_t *arena;    /* a reused arena (zeroed, LAB_ZONE_ZEROED), or NULL */
	bool track;        /* exiting threads drain this zone's caches */
	uint64_t salt;     /* zone key derivation when seeded */
};

struct hseg {
	size_t lo, hi;
};

struct zone {
	lab_zone_t *z;
	uint8_t *arena, *meta;
	size_t meta_bytes;
	bool own_arena, tracked;
	struct lab_zone_cfg cfg;
	uint8_t seed[32];
	struct hseg *seg; /* metadata byte ranges the state hash covers */
	size_t nseg;
};

/* Metadata minus the statistics counters (the zone-wide slow_st and each
 * CPU's st): a refused call is allowed to count itself there and nowhere
 * else.  Both are arrays of 64-bit counters, so the ranges stay 8-aligned. */
static bool zone_segments(struct zone *t)
{
	const struct lab_zone *lz = (const struct lab_zone *)(const void *)t->meta;
	size_t ncpu = lz->nr_cpus, n = 0, lo = 0;
	t->seg = malloc((ncpu + 2) * sizeof(*t->seg));
	if (!t->seg)
		return false;
	size_t a = offsetof(struct lab_zone, slow_st);
	t->seg[n++] = (struct hseg){lo, a};
	lo = a + sizeof(lz->slow_st);
	size_t cpu0 = (size_t)(lz->cpu_base - t->meta);
	for (size_t k = 0; k < ncpu; k++) {
		a = cpu0 + k * lz->cpu_stride + offsetof(struct lab_cpu, st);
		t->seg[n++] = (struct hseg){lo, a};
		lo = a + sizeof(struct lab_cpu_stats);
	}
	t->seg[n++] = (struct hseg){lo, lab_zone_meta_size(&t->cfg)};
	t->nseg = n;
	return true;
}

static int zone_make(struct zone *t, const struct zone_spec *s, const struct audit_opts *o)
{
	memset(t, 0, sizeof(*t));
	size_t bytes = (size_t)s->nr_frames * FRAME;
	if (s->arena) {
		t->arena = s->arena;
	} else {
		t->arena = aligned_alloc(FRAME, bytes);
		if (!t->arena)
			return LAB_ENOSPC;
		t->own_arena = true;
		memset(t->arena, s->fill, bytes);
	}
	lab_zone_cfg_default(&t->cfg, s->base_pfn, s->nr_frames, t->arena);
	t->cfg.nr_colours = s->colours;
	t->cfg.nr_cpus = s->cpus;
	t->cfg.max_owners = s->max_owners;
	t->cfg.reserve_permille = s->reserve_permille;
	t->cfg.flags = s->flags;
	if (o->seeded) {
		uint64_t x = o->seed ^ (s->salt * 0xa0761d6478bd642full);
		for (int i = 0; i < 4; i++) {
			uint64_t w = splitmix64(&x);
			memcpy(t->seed + 8 * i, &w, 8);
		}
		t->cfg.seed = t->seed;
		t->cfg.seed_len = sizeof(t->seed);
	}
	size_t need = lab_zone_meta_size(&t->cfg);
	if (!need)
		return LAB_EGEOMETRY;
	t->meta_bytes = (need + 63) & ~(size_t)63;
	t->meta = aligned_alloc(64, t->meta_bytes);
	if (!t->meta)
		return LAB_ENOSPC;
	int rc = lab_zone_init(&t->z, t->meta, t->meta_bytes, &t->cfg);
	if (rc != LAB_OK)
		return rc;
	if (!zone_segments(t))
		return LAB_ENOSPC;
	if (s->track) {
		lab_hosted_track(t->z, true);
		t->tracked = true;
	}
	return LAB_OK;
}

static void zone_free(struct zone *t)
{
	if (t->tracked)
		lab_hosted_track(t->z, false);
	if (t->own_arena)
		free(t->arena);
	free(t->meta);
	free(t->seg);
	memset(t, 0, sizeof(*t));
}

/* Hash of the allocator state (see zone_segments).  Each step is a bijection
 * of h for a fixed word, so a change in any single word always changes the
 * result; several changes cancel with probability about 2^-64. */
static uint64_t meta_hash(const struct zone *t)
{
	uint64_t h = 0x6a09e667f3bcc909ull;
	for (size_t s = 0; s < t->nseg; s++)
		for (size_t i = t->seg[s].lo; i < t->seg[s].hi; i += 8) {
			uint64_t w;
			memcpy(&w, t->meta + i, 8);
			h = rotl64(h ^ w, 23) * 0x9e3779b97f4a7c15ull;
		}
	return h;
}

static uint64_t refused_count(const struct zone *t)
{
	const struct lab_zone *lz = (const struct lab_zone *)(const void *)t->meta;
	return ld_relaxed(&lz->slow_st.v[LS_REFUSED]);
}

static uint8_t *frame_va_of(const struct zone *t, uint64_t pfn)
{
	return t->arena + (size_t)(pfn - t->cfg.base_pfn) * FRAME;
}

/* Hash of the contents of [pfn, pfn + 2^order), clipped to the zone and to
 * 64 frames: a refused free must not scrub (or otherwise touch) the frames
 * it names.  The blocks the trials aim at have at most 8 frames; hashing
 * the megabytes an absurd order names would only cost time. */
static uint64_t frames_hash(const struct zone *t, uint64_t pfn, unsigned order)
{
	uint64_t base = t->cfg.base_pfn, end = base + t->cfg.nr_frames;
	uint64_t k = order >= 6 ? 64 : (1ull << order);
	uint64_t h = 0x243f6a8885a308d3ull;
	if (pfn < base || pfn >= end)
		return h;
	if (k > end - pfn)
		k = end - pfn;
	const uint8_t *p = frame_va_of(t, pfn);
	for (size_t i = 0; i < k * FRAME; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = rotl64(h ^ w, 23) * 0x9e3779b97f4a7c15ull;
	}
	return h;
}

/* Non-zero bytes in a frame.  Reads 64-byte lines and looks at bytes only
 * when a line is dirty, so checking every byte stays cheap. */
static uint64_t nonzero_bytes(const uint8_t *p)
{
	uint64_t bad = 0;
	for (size_t i = 0; i < FRAME; i += 64) {
		uint64_t w[8], any = 0;
		memcpy(w, p + i, sizeof(w));
		for (int j = 0; j < 8; j++)
			any |= w[j];
		if (!any)
			continue;
		for (int j = 0; j < 64; j++)
			bad += p[i + (size_t)j] != 0;
	}
	return bad;
}

/* CPU slots for a zone this thread uses alone: its own slot id included,
 * so it gets a per-CPU cache (an id without a slot takes the shared path). */
static unsigned my_cpus(void)
{
	unsigned me = lab_plat_cpu();
	return me < 64 ? me + 1 : 1;
}

/* Scrub until nothing is dirty; false if it never finishes (a bug). */
static bool scrub_all(lab_zone_t *z)
{
	for (int i = 0; i < 1000000; i++) {
		int rc = lab_scrub(z, 4096, NULL);
		if (rc == LAB_OK)
			return true;
		if (rc != LAB_EAGAIN)
			return false;
	}
	return false;
}

/* Remove an owner completely, in budgeted steps like a work queue would. */
static int remove_all(lab_zone_t *z, lab_owner_t id, struct rng *r)
{
	for (int i = 0; i < 1000000; i++) {
		int rc = lab_owner_remove(z, id, 1 + below(r, 256));
		if (rc != LAB_EAGAIN)
			return rc;
	}
	return LAB_EAGAIN;
}

static const char *code_name(int rc)
{
	static const char *n[] = {"OK", "ENOMEM", "EQUOTA", "EFRAG", "EINVAL", "ERANGE", "EALIGN",
	                          "EORDER", "EOWNER", "EFREE", "EINTERIOR", "ENOOWNER", "EEXIST",
	                          "EOVERLAP", "ESHARED", "ENOTEXCL", "ECOLOUR", "EAGAIN", "EBUSY",
	                          "EENTROPY", "EGEOMETRY", "ENOSPC", "ECORRUPT", "ENOMAP"};
	return rc <= 0 && rc > -(int)(sizeof(n) / sizeof(n[0])) ? n[-rc] : "?";
}

static uint64_t ones(unsigned w)
{
	return w >= 64 ? UINT64_MAX : (1ull << w) - 1;
}

/* ---- a reference model of who holds which frame --------------------------------- */

#define MAXO 16 /* owner ids the audit uses: 1..MAXO */

struct blk {
	uint64_t pfn;
	uint32_t owner;
	unsigned order;
};

struct model {
	uint64_t base, nr;
	uint8_t *own;   /* owner of the block the frame is in, 0 if none */
	uint8_t *ord;   /* its order                                      */
	uint32_t *head; /* its head frame                                 */
	uint32_t *idx;  /* for a head: index of the block in held[]       */
	uint8_t *ever;  /* ever handed out since the zone was made        */
	uint8_t *resv;  /* reserved (lab_zone_reserve_range)              */
	struct blk *held;
	size_t nheld;
	uint64_t frames_of[MAXO + 1];
};

static bool model_init(struct model *m, uint64_t base, uint64_t nr)
{
	memset(m, 0, sizeof(*m));
	m->base = base;
	m->nr = nr;
	m->own = calloc(nr, 1);
	m->ord = calloc(nr, 1);
	m->head = calloc(nr, sizeof(uint32_t));
	m->idx = calloc(nr, sizeof(uint32_t));
	m->ever = calloc(nr, 1);
	m->resv = calloc(nr, 1);
	m->held = calloc(nr, sizeof(struct blk));
	return m->own && m->ord && m->head && m->idx && m->ever && m->resv && m->held;
}

static void model_fini(struct model *m)
{
	free(m->own);
	free(m->ord);
	free(m->head);
	free(m->idx);
	free(m->ever);
	free(m->resv);
	free(m->held);
	memset(m, 0, sizeof(*m));
}

static void model_add(struct model *m, uint64_t pfn, unsigned order, uint32_t owner)
{
	uint32_t f = (uint32_t)(pfn - m->base), K = 1u << order;
	for (uint32_t i = 0; i < K; i++) {
		m->own[f + i] = (uint8_t)owner;
		m->ord[f + i] = (uint8_t)order;
		m->head[f + i] = f;
		m->ever[f + i] = 1;
	}
	m->idx[f] = (uint32_t)m->nheld;
	m->held[m->nheld++] = (struct blk){pfn, owner, order};
	m->frames_of[owner] += K;
}

static void model_del(struct model *m, size_t i)
{
	struct blk b = m->held[i];
	uint32_t f = (uint32_t)(b.pfn - m->base), K = 1u << b.order;
	for (uint32_t j = 0; j < K; j++)
		m->own[f + j] = 0;
	m->frames_of[b.owner] -= K;
	m->held[i] = m->held[--m->nheld];
	if (i < m->nheld)
		m->idx[m->held[i].pfn - m->base] = (uint32_t)i;
}

/* Index in held[] of the block whose head is pfn, or -1. */
static long model_find(const struct model *m, uint64_t pfn)
{
	if (pfn < m->base || pfn - m->base >= m->nr)
		return -1;
	uint32_t f = (uint32_t)(pfn - m->base);
	return m->own[f] && m->head[f] == f ? (long)m->idx[f] : -1;
}

static void model_drop_owner(struct model *m, uint32_t owner)
{
	for (size_t i = 0; i < m->nheld;)
		if (m->held[i].owner == owner)
			model_del(m, i);
		else
			i++;
}

/* What lab_free(owner, pfn, order) must return, by the rules of the header:
 * the argument checks in their documented order, then the frame's state. */
static int model_free_code(const struct model *m, uint32_t live, lab_owner_t owner, uint64_t pfn,
                           unsigned order)
{
	if (order > LAB_MAX_ORDER)
		return LAB_EORDER;
	if (owner == 0 || owner > MAXO || !(live >> owner & 1))
		return LAB_ENOOWNER;
	uint64_t K = 1ull << order;
	if (pfn < m->base || pfn - m->base >= m->nr)
		return LAB_ERANGE;
	if (pfn & (K - 1))
		return LAB_EALIGN;
	uint64_t f = pfn - m->base;
	if (f + K > m->nr)
		return LAB_ERANGE;
	if (!m->own[f])
		return LAB_EFREE;
	if (m->own[f] != owner)
		return LAB_EOWNER;
	if (m->head[f] != f)
		return LAB_EINTERIOR;
	return m->ord[f] == order ? LAB_OK : LAB_EORDER;
}

/* ==== P5: cross-owner canaries ====================================================== */

#define PAT_A 0xa5u
#define PAT_C 0xc3u
#define BOOT_FILL 0xeeu /* what a previous tenant left in the arena */

struct canary {
	uint64_t target, transfers, frames_checked, nonzero, pattern_bytes;
	uint64_t free_frames_swept, free_nonzero, bad_calls, alloc_fail, max_dirty, scrubs;
	int first_bad_rc;
	bool check_ok, setup_ok;
	double secs;
};

static void canary_bad(struct canary *c, int rc)
{
	if (!c->bad_calls++)
		c->first_bad_rc = rc;
}

/* Check one received frame: every byte must be zero.  Counts bytes of A's
 * pattern separately, so a failure says whether A's data leaked. */
static void canary_check(struct canary *c, const uint8_t *va)
{
	uint64_t nz = nonzero_bytes(va);
	c->frames_checked++;
	if (nz) {
		c->nonzero += nz;
		for (size_t i = 0; i < FRAME; i++)
			c->pattern_bytes += va[i] == PAT_A;
	}
}

/* After the run: every free frame of the shared colours must be zero too,
 * including those no owner happened to receive. */
static void canary_sweep(struct canary *c, struct zone *t, uint64_t shared_mask)
{
	lab_cpu_drain(t->z);
	if (!scrub_all(t->z))
		canary_bad(c, LAB_EAGAIN);
	c->check_ok = lab_check(t->z) == LAB_OK;
	unsigned C = t->cfg.nr_colours;
	for (uint64_t f = 0; f < t->cfg.nr_frames; f++) {
		uint64_t pfn = t->cfg.base_pfn + f;
		lab_owner_t w = 0;
		if (!(shared_mask >> (pfn & (C - 1)) & 1))
			continue;
		if (lab_frame_owner(t->z, pfn, &w, NULL) != LAB_OK || w)
			continue;
		c->free_frames_swept++;
		c->free_nonzero += nonzero_bytes(frame_va_of(t, pfn));
	}
}

enum { OWN_A = 1, OWN_B = 2, OWN_C = 3 };
#define CANARY_SHARED 0x0000ffffull /* A and B: one shared pool  */
#define CANARY_EXCL 0xffff0000ull   /* C: exclusive, never scrubbed on free */

/* --policy noscrub, the canaries' negative control: the library itself,
 * told never to scrub (LAB_ZONE_NO_SCRUB, for one-owner benchmarks), so a
 * previous tenant's bytes reach the next one. */
static uint32_t noscrub_flag(const struct audit_opts *o)
{
	return o->policy == POLICY_NOSCRUB ? LAB_ZONE_NO_SCRUB : 0;
}

/* The canary zone: A and B share colours 0..15, C (exclusive) has 16..31.
 * The arena starts full of BOOT_FILL and the zone is not marked zeroed, so
 * the first-use scrub (lab_scrub's walk) is under test as well. */
static bool canary_zone(struct zone *t, const struct audit_opts *o, uint64_t nr, unsigned cpus,
                        bool deferred, uint64_t salt)
{
	struct zone_spec s = {.base_pfn = 0x40000 + 32 * 3, .nr_frames = nr, .colours = 32,
	                      .cpus = cpus, .max_owners = MAXO, .reserve_permille = 0,
	                      .flags = (deferred ? LAB_ZONE_DEFERRED_SCRUB : 0) | noscrub_flag(o),
	                      .fill = BOOT_FILL,
	                      .track = true, .salt = salt};
	if (zone_make(t, &s, o) != LAB_OK)
		return false;
	struct lab_owner_cfg sh = {.colours = CANARY_SHARED}, ex = {.colours = CANARY_EXCL,
	                                                          .flags = LAB_OWNER_EXCLUSIVE};
	return lab_owner_add(t->z, OWN_A, &sh) == LAB_OK && lab_owner_add(t->z, OWN_B, &sh) == LAB_OK &&
	       lab_owner_add(t->z, OWN_C, &ex) == LAB_OK && scrub_all(t->z);
}

/* (a) and (b): one thread plays A, B and C in turn.  The shared pool is
 * small (256 frames) so the frames B draws are mostly ones A dirtied a few
 * rounds before; `marked` remembers which frames hold A's data. */
static void canary_serial(const struct audit_opts *o, bool deferred, struct canary *c)
{
	struct zone t;
	struct rng r;
	double t0 = cli_now();
	rng_init(&r, run_seed(o), deferred ? 0x5c2 : 0x5c1);
	c->target = o->full ? 1000000 : 100000;
	if (!canary_zone(&t, o, 512, my_cpus(), deferred, deferred ? 12 : 11)) {
		zone_free(&t);
		return;
	}
	c->setup_ok = true;
	uint8_t *marked = calloc(t.cfg.nr_frames, 1);
	uint64_t base = t.cfg.base_pfn, limit = c->target * 50;
	struct blk got[8];
	for (uint64_t round = 0; c->transfers < c->target && round < limit; round++) {
		unsigned n = 0, want = 1 + below(&r, 8);
		/* A: dirty some frames (now and then a block of 2 or 4). */
		for (unsigned i = 0; i < want; i++) {
			unsigned order = chance(&r, 12) ? 1 + below(&r, 2) : 0;
			uint64_t pfn;
			int rc = lab_alloc(t.z, OWN_A, order, LAB_NOWAIT, &pfn);
			if (rc != LAB_OK) {
				if (rc != LAB_ENOMEM && rc != LAB_EFRAG)
					canary_bad(c, rc);
				c->alloc_fail++;
				continue;
			}
			for (uint64_t k = 0; k < (1u << order); k++) {
				uint8_t *va = frame_va_of(&t, pfn + k);
				canary_check(c, va); /* A receives too: the pool is shared */
				memset(va, PAT_A, FRAME);
				marked[pfn + k - base] = 1;
			}
			got[n++] = (struct blk){pfn, OWN_A, order};
		}
		for (unsigned i = 0; i < n; i++) {
			int rc = lab_free(t.z, OWN_A, got[i].pfn, got[i].order);
			if (rc != LAB_OK)
				canary_bad(c, rc);
		}
		/* B: take frames, check every byte, give them back. */
		n = 0;
		want = 1 + below(&r, 8);
		for (unsigned i = 0; i < want; i++) {
			unsigned order = chance(&r, 12) ? 1 + below(&r, 2) : 0;
			uint64_t pfn;
			int rc = lab_alloc(t.z, OWN_B, order, chance(&r, 50) ? LAB_NOWAIT : LAB_ATOMIC, &pfn);
			if (rc != LAB_OK) {
				if (rc != LAB_ENOMEM && rc != LAB_EFRAG)
					canary_bad(c, rc);
				c->alloc_fail++;
				continue;
			}
			for (uint64_t k = 0; k < (1u << order); k++) {
				canary_check(c, frame_va_of(&t, pfn + k));
				if (marked[pfn + k - base]) {
					c->transfers++;
					marked[pfn + k - base] = 0;
				}
			}
			got[n++] = (struct blk){pfn, OWN_B, order};
		}
		for (unsigned i = 0; i < n; i++) {
			int rc = lab_free(t.z, OWN_B, got[i].pfn, got[i].order);
			if (rc != LAB_OK)
				canary_bad(c, rc);
		}
		/* C: an exclusive owner's frames are not scrubbed on free; they
		 * must stay in C's colours, so A and B never see PAT_C. */
		uint64_t pc;
		if (lab_alloc(t.z, OWN_C, 0, LAB_NOWAIT, &pc) == LAB_OK) {
			memset(frame_va_of(&t, pc), PAT_C, FRAME);
			if (lab_free(t.z, OWN_C, pc, 0) != LAB_OK)
				canary_bad(c, LAB_EINVAL);
		}
		/* Deferred mode: an idle loop scrubs a little now and then, so
		 * frames sit dirty (in the rings) most of the time. */
		if (deferred && round % 16 == 15) {
			int rc = lab_scrub(t.z, 1 + below(&r, 48), NULL);
			c->scrubs++;
			if (rc != LAB_OK && rc != LAB_EAGAIN)
				canary_bad(c, rc);
		}
		if (round % 2048 == 0) {
			struct lab_stats st;
			if (lab_stats(t.z, &st) == LAB_OK && st.nr_dirty > c->max_dirty)
				c->max_dirty = st.nr_dirty;
		}
	}
	canary_sweep(c, &t, CANARY_SHARED);
	free(marked);
	zone_free(&t);
	c->secs = cli_now() - t0;
}

/* (c) four threads: two A threads dirty frames, two B threads check what
 * they receive; every thread checks every frame it receives. */
struct cc_shared {
	struct zone *t;
	_Atomic uint8_t *marked;
	bool deferred;
	uint64_t target, seed;
	double deadline;
	atomic_bool stop;
	_Atomic uint64_t transfers, frames, nonzero, pattern, bad, fail, scrubs;
	_Atomic int first_bad;
};

struct cc_arg {
	struct cc_shared *s;
	bool is_b;
	unsigned idx;
};

static void *cc_thread(void *p)
{
	struct cc_arg *a = p;
	struct cc_shared *s = a->s;
	struct zone *t = s->t;
	struct rng r;
	lab_owner_t me = a->is_b ? OWN_B : OWN_A;
	uint64_t base = t->cfg.base_pfn, transfers = 0, frames = 0, nonzero = 0, pattern = 0;
	uint64_t bad = 0, fail = 0, scrubs = 0;
	struct blk got[4];
	rng_init(&r, s->seed, 0xcc00 + a->idx);
	for (uint64_t it = 0; !atomic_load_explicit(&s->stop, memory_order_relaxed); it++) {
		unsigned n = 0, want = 1 + below(&r, 4);
		for (unsigned i = 0; i < want; i++) {
			unsigned order = chance(&r, 10) ? 1 : 0;
			uint64_t pfn;
			int rc = lab_alloc(t->z, me, order, LAB_NOWAIT, &pfn);
			if (rc != LAB_OK) {
				if (rc != LAB_ENOMEM && rc != LAB_EFRAG && !bad++)
					atomic_store(&s->first_bad, rc);
				fail++;
				continue;
			}
			for (uint64_t k = 0; k < (1u << order); k++) {
				uint8_t *va = frame_va_of(t, pfn + k);
				uint64_t nz = nonzero_bytes(va);
				frames++;
				if (nz) {
					nonzero += nz;
					for (size_t b = 0; b < FRAME; b++)
						pattern += va[b] == PAT_A;
				}
				if (a->is_b) {
					/* Counted once per frame A dirtied: the marker is
					 * cleared by whoever counts it. */
					if (atomic_exchange_explicit(&s->marked[pfn + k - base], 0, memory_order_acq_rel))
						transfers++;
				} else {
					memset(va, PAT_A, FRAME);
					atomic_store_explicit(&s->marked[pfn + k - base], 1, memory_order_release);
				}
			}
			got[n++] = (struct blk){pfn, me, order};
		}
		for (unsigned i = 0; i < n; i++) {
			int rc = lab_free(t->z, me, got[i].pfn, got[i].order);
			if (rc != LAB_OK && !bad++)
				atomic_store(&s->first_bad, rc);
		}
		if (s->deferred && a->is_b && a->idx == 2 && it % 8 == 7) {
			int rc = lab_scrub(t->z, 1 + below(&r, 32), NULL);
			scrubs++;
			if (rc != LAB_OK && rc != LAB_EAGAIN && !bad++)
				atomic_store(&s->first_bad, rc);
		}
		if (it % 64 == 63) {
			/* Publish progress; a B thread decides when to stop. */
			uint64_t tot = atomic_fetch_add(&s->transfers, transfers) + transfers;
			transfers = 0;
			if (tot >= s->target || cli_now() > s->deadline)
				atomic_store(&s->stop, true);
		}
	}
	atomic_fetch_add(&s->transfers, transfers);
	atomic_fetch_add(&s->frames, frames);
	atomic_fetch_add(&s->nonzero, nonzero);
	atomic_fetch_add(&s->pattern, pattern);
	atomic_fetch_add(&s->bad, bad);
	atomic_fetch_add(&s->fail, fail);
	atomic_fetch_add(&s->scrubs, scrubs);
	lab_cpu_drain(t->z);
	return NULL;
}

static void canary_concurrent(const struct audit_opts *o, bool deferred, struct canary *c)
{
	struct zone t;
	double t0 = cli_now();
	c->target = o->full ? 1000000 : 100000;
	/* 8 CPU slots: the main thread and four workers each get their own
	 * cache; a 512-frame shared pool keeps frames cycling between them. */
	if (!canary_zone(&t, o, 1024, 8, deferred, deferred ? 14 : 13)) {
		zone_free(&t);
		return;
	}
	c->setup_ok = true;
	struct cc_shared s = {.t = &t, .deferred = deferred, .target = c->target,
	                      .seed = run_seed(o) ^ (deferred ? 0xdd : 0xcc),
	                      .deadline = t0 + (o->full ? 400.0 : 40.0)};
	s.marked = calloc(t.cfg.nr_frames, sizeof(*s.marked));
	pthread_t th[4];
	struct cc_arg args[4];
	unsigned started = 0;
	for (unsigned i = 0; i < 4; i++) {
		args[i] = (struct cc_arg){&s, i >= 2, i};
		if (pthread_create(&th[i], NULL, cc_thread, &args[i]) == 0)
			started++;
		else
			break;
	}
	if (started < 4)
		atomic_store(&s.stop, true);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	c->transfers = atomic_load(&s.transfers);
	c->frames_checked = atomic_load(&s.frames);
	c->nonzero = atomic_load(&s.nonzero);
	c->pattern_bytes = atomic_load(&s.pattern);
	c->bad_calls = atomic_load(&s.bad) + (started < 4);
	c->first_bad_rc = atomic_load(&s.first_bad);
	c->alloc_fail = atomic_load(&s.fail);
	c->scrubs = atomic_load(&s.scrubs);
	canary_sweep(c, &t, CANARY_SHARED);
	free(s.marked);
	zone_free(&t);
	c->secs = cli_now() - t0;
}

/* (d) owners that go away: an owner takes every frame of its colours,
 * writes its own pattern into each, frees half (an exclusive owner's frees
 * are not scrubbed) and is removed holding the rest; the next owner on
 * colours it had (exclusive and shared in turn) must receive only zeroes. */
static void canary_removal(const struct audit_opts *o, struct canary *c)
{
	struct rng r;
	double t0 = cli_now();
	unsigned rounds = o->full ? 2000 : 200;
	rng_init(&r, run_seed(o), 0x5c4);
	c->target = 0;
	c->setup_ok = true;
	c->check_ok = true;
	for (int zi = 0; zi < 2; zi++) {
		struct zone t;
		struct zone_spec s = {.base_pfn = 0x80000, .nr_frames = 1024, .colours = 32,
		                      .cpus = my_cpus(), .max_owners = MAXO,
		                      .flags = (zi ? LAB_ZONE_DEFERRED_SCRUB : 0) | noscrub_flag(o),
		                      .fill = BOOT_FILL,
		                      .track = true, .salt = 15 + (uint64_t)zi};
		if (zone_make(&t, &s, o) != LAB_OK || !scrub_all(t.z)) {
			c->setup_ok = false;
			zone_free(&t);
			return;
		}
		uint8_t *writer = calloc(t.cfg.nr_frames, 1); /* last owner that wrote the frame */
		uint64_t *held = malloc(t.cfg.nr_frames * sizeof(uint64_t));
		uint64_t base = t.cfg.base_pfn;
		for (unsigned round = 0; round < rounds / 2; round++) {
			lab_owner_t id = (lab_owner_t)(1 + round % MAXO);
			bool excl = round % 2 == 0;
			unsigned len = 4 + below(&r, 9);
			uint64_t mask = chance(&r, 50) ? ones(len) << below(&r, 32 - len + 1)
			                               : (rnd(&r) & rnd(&r) & 0xffffffffull) | 1ull << below(&r, 32);
			struct lab_owner_cfg oc = {.colours = mask, .flags = excl ? LAB_OWNER_EXCLUSIVE : 0};
			int rc = lab_owner_add(t.z, id, &oc);
			if (rc != LAB_OK) {
				canary_bad(c, rc);
				break;
			}
			size_t n = 0;
			uint64_t pfn;
			while (lab_alloc(t.z, id, 0, LAB_ATOMIC, &pfn) == LAB_OK) {
				uint8_t *va = frame_va_of(&t, pfn);
				uint64_t nz = nonzero_bytes(va);
				c->frames_checked++;
				c->nonzero += nz;
				if (writer[pfn - base] && writer[pfn - base] != id)
					c->transfers++;
				memset(va, (int)(0x40 + id), FRAME);
				writer[pfn - base] = (uint8_t)id;
				held[n++] = pfn;
			}
			for (size_t i = 0; i < n; i++)
				if (chance(&r, 50) && (rc = lab_free(t.z, id, held[i], 0)) != LAB_OK)
					canary_bad(c, rc);
			if ((rc = remove_all(t.z, id, &r)) != LAB_OK)
				canary_bad(c, rc);
		}
		/* Nothing is left: every frame of every colour must be zero. */
		if (!scrub_all(t.z) || lab_check(t.z) != LAB_OK)
			c->check_ok = false;
		for (uint64_t f = 0; f < t.cfg.nr_frames; f++) {
			c->free_frames_swept++;
			c->free_nonzero += nonzero_bytes(frame_va_of(&t, base + f));
		}
		free(writer);
		free(held);
		zone_free(&t);
	}
	c->secs = cli_now() - t0;
}

static int canary_report(const char *what, const struct canary *c, bool need_target)
{
	char extra[160] = "";
	if (!c->setup_ok)
		return audit_line("P5", false, what, "zone setup failed");
	if (c->bad_calls)
		snprintf(extra, sizeof(extra), "; %llu calls failed (first %s)",
		         (unsigned long long)c->bad_calls, code_name(c->first_bad_rc));
	else if (!c->check_ok)
		snprintf(extra, sizeof(extra), "; lab_check failed");
	bool pass = c->nonzero == 0 && c->free_nonzero == 0 && c->bad_calls == 0 && c->check_ok &&
	            (!need_target || c->transfers >= c->target);
	if (need_target)
		return audit_line("P5", pass, what,
		                  "%llu non-zero bytes in %llu frames received (%llu of A's), %llu transfers "
		                  "(>= %llu), free frames after: %llu non-zero bytes; %.1f s%s",
		                  (unsigned long long)c->nonzero, (unsigned long long)c->frames_checked,
		                  (unsigned long long)c->pattern_bytes, (unsigned long long)c->transfers,
		                  (unsigned long long)c->target, (unsigned long long)c->free_nonzero,
		                  c->secs, extra);
	return audit_line("P5", pass, what,
	                  "%llu non-zero bytes in %llu frames received, %llu from another owner, "
	                  "all %llu frames after: %llu non-zero bytes; %.1f s%s",
	                  (unsigned long long)c->nonzero, (unsigned long long)c->frames_checked,
	                  (unsigned long long)c->transfers, (unsigned long long)c->free_frames_swept,
	                  (unsigned long long)c->free_nonzero, c->secs, extra);
}

/* ==== P7: invalid frees ================================================================ */

enum {
	K_NONOWNER,
	K_DOUBLE_NOW,
	K_DOUBLE_LATER,
	K_WILD,
	K_UNALIGNED,
	K_NEVER,
	K_STALE,
	K_ORDER,
	K_INTERIOR,
	K_NR
};

static const char *const class_what[K_NR] = {
	"free by a non-owner (EOWNER)",
	"immediate double free (EFREE)",
	"delayed double free (EFREE; EOWNER if re-owned)",
	"wild pfn/address (ERANGE; in zone, free: EFREE)",
	"unaligned pfn or address (EALIGN)",
	"never-allocated frame (EFREE)",
	"stale free, frame now another owner's (EOWNER)",
	"wrong order (EORDER)",
	"interior of a block (EINTERIOR)",
};

struct kstat {
	uint64_t tried, rejected, unchanged, by_code[24];
	double secs; /* set-up, traffic and the attempt (-v) */
	int bad_rc, bad_want;
	bool accepted; /* an invalid free returned LAB_OK */
};

#define P7_BASE 5003u /* not a multiple of anything: range and alignment checks use base_pfn */
#define P7_NR 2000u
#define P7_LIVE 0x1eu /* owners 1..4 */

/* Owners 1 and 2 share colours 0..7, 3 has 8..15 to itself, 4 has 16..23
 * alone; 24..31 belong to nobody, and a reserved range sits inside. */
static const uint64_t p7_mask[5] = {0, 0xff, 0xff, 0xff00, 0xff0000};
static const bool p7_excl[5] = {false, false, false, true, false};

struct p7 {
	struct zone t;
	struct model m;
	struct rng r;
	size_t target;
	uint64_t traffic_bad;
	int traffic_rc;
	struct kstat k[K_NR];
	uint64_t *tmp;
	uint64_t resyncs;
	bool stop; /* an invalid free was accepted: the zone is not to be trusted */
	bool trusting; /* --policy trusting: invalid frees go to trusting_free */
	bool poisoning; /* --policy poisoning: poison_frames before each invalid free */
	int extra_failed;
};

static uint8_t owner_fill(lab_owner_t w)
{
	return (uint8_t)(0x10 + w);
}

static uint64_t colour_of(const struct zone *t, uint64_t pfn)
{
	return pfn & (t->cfg.nr_colours - 1);
}

static void p7_bad(struct p7 *s, int rc)
{
	if (!s->traffic_bad++)
		s->traffic_rc = rc;
}

/* Rebuild the model from the library's view: only needed after the library
 * accepted a free it should have refused (then the model is stale). */
static void p7_resync(struct p7 *s)
{
	struct model *m = &s->m;
	while (m->nheld)
		model_del(m, m->nheld - 1);
	for (uint64_t f = 0; f < m->nr;) {
		lab_owner_t w = 0;
		unsigned ord = 0;
		lab_frame_owner(s->t.z, m->base + f, &w, &ord);
		if (w && ord <= LAB_MAX_ORDER && f + (1u << ord) <= m->nr) {
			model_add(m, m->base + f, ord, w);
			f += 1u << ord;
		} else {
			f++;
		}
	}
	s->resyncs++;
}

/* A valid allocation; fills the block with its owner's byte so a refused
 * free that scrubbed it would show. */
static int p7_alloc(struct p7 *s, lab_owner_t w, unsigned order, bool fill, uint64_t *out)
{
	uint64_t pfn;
	int rc = lab_alloc(s->t.z, w, order, chance(&s->r, 50) ? LAB_NOWAIT : LAB_ATOMIC, &pfn);
	if (rc != LAB_OK) {
		if (rc != LAB_ENOMEM && rc != LAB_EFRAG)
			p7_bad(s, rc);
		return rc;
	}
	uint64_t K = 1ull << order, f = pfn - s->m.base;
	bool good = pfn >= s->m.base && f + K <= s->m.nr && !(pfn & (K - 1));
	for (uint64_t i = 0; good && i < K; i++)
		good = !s->m.own[f + i] && !s->m.resv[f + i] && (p7_mask[w] >> colour_of(&s->t, pfn + i) & 1);
	if (!good) {
		p7_bad(s, LAB_ECORRUPT); /* a frame handed out twice or outside its colours */
		p7_resync(s);
		return LAB_ECORRUPT;
	}
	model_add(&s->m, pfn, order, w);
	if (fill)
		memset(frame_va_of(&s->t, pfn), owner_fill(w), K * FRAME);
	if (out)
		*out = pfn;
	return LAB_OK;
}

static void p7_free_idx(struct p7 *s, size_t i)
{
	struct blk b = s->m.held[i];
	int rc = lab_free(s->t.z, b.owner, b.pfn, b.order);
	if (rc != LAB_OK) {
		p7_bad(s, rc);
		p7_resync(s);
		return;
	}
	model_del(&s->m, i);
}

/* One random valid operation; owners not in alloc_ok never allocate (the
 * delayed double free needs its frame not to come back to its owner). */
static void p7_traffic(struct p7 *s, uint32_t alloc_ok)
{
	size_t held = 0;
	for (unsigned w = 1; w <= 4; w++)
		held += s->m.frames_of[w];
	bool alloc = s->m.nheld == 0 || chance(&s->r, held < s->target ? 65 : 35);
	if (alloc && alloc_ok) {
		lab_owner_t w;
		do
			w = 1 + below(&s->r, 4);
		while (!(alloc_ok >> w & 1));
		p7_alloc(s, w, chance(&s->r, 70) ? 0 : 1 + below(&s->r, 3), true, NULL);
	} else if (s->m.nheld) {
		p7_free_idx(s, below(&s->r, (uint32_t)s->m.nheld));
	}
}

/* --policy trusting, the negative control of the P7 checks: a free that
 * believes its caller.  It frees whatever block holds the named frame (or
 * address), as that block's owner and order; a frame nobody holds goes to
 * the library, whose refusal it hides.  Either way it says LAB_OK. */
static int trusting_free(struct p7 *s, lab_owner_t who, uint64_t pfn, unsigned order, void *addr)
{
	uintptr_t a = (uintptr_t)addr, lo = (uintptr_t)s->t.arena;
	bool in_zone = !addr || a - lo < (uintptr_t)s->m.nr * FRAME;
	if (addr && in_zone)
		pfn = s->m.base + (a - lo) / FRAME;
	lab_owner_t w = 0;
	unsigned ord = 0;
	if (in_zone && lab_frame_owner(s->t.z, pfn, &w, &ord) == LAB_OK && w)
		(void)lab_free(s->t.z, w, pfn & ~((1ull << ord) - 1), ord);
	else if (addr)
		(void)lab_free_pages(s->t.z, who, addr, order);
	else
		(void)lab_free(s->t.z, who, pfn, order);
	return LAB_OK;
}

/* --policy poisoning, the negative control of "state unchanged": a free
 * that poisons the frame it is named (slab debugging's 0x6b, XORed into
 * its first byte so that every call changes it) before it checks the
 * caller, then refuses with the library's own code.  Frames outside the
 * zone it cannot touch. */
static void poison_frame(struct p7 *s, uint64_t pfn)
{
	uint64_t base = s->t.cfg.base_pfn;
	if (pfn >= base && pfn < base + s->t.cfg.nr_frames)
		*(volatile uint8_t *)frame_va_of(&s->t, pfn) ^= 0x6b;
}

/* The invalid call: exact code, metadata hash, `refused` +1 (the call is
 * counted, nothing else), and the named frames' contents, all unchanged. */
static void p7_attempt(struct p7 *s, int cls, lab_owner_t who, uint64_t pfn, unsigned order,
                       void *addr, int want)
{
	struct kstat *k = &s->k[cls];
	uint64_t h0 = meta_hash(&s->t), r0 = refused_count(&s->t), c0 = frames_hash(&s->t, pfn, order);
	if (s->poisoning)
		poison_frame(s, pfn);
	int rc = s->trusting ? trusting_free(s, who, pfn, order, addr)
	         : addr      ? lab_free_pages(s->t.z, who, addr, order)
	                     : lab_free(s->t.z, who, pfn, order);
	uint64_t h1 = meta_hash(&s->t), r1 = refused_count(&s->t), c1 = frames_hash(&s->t, pfn, order);
	k->tried++;
	k->by_code[-want]++;
	if (rc == want)
		k->rejected++;
	else if (!k->bad_rc && !k->bad_want)
		k->bad_rc = rc, k->bad_want = want;
	if (h0 == h1 && r1 == r0 + 1 && c0 == c1)
		k->unchanged++;
	if (rc == LAB_OK && s->trusting) {
		/* The bad policy is meant to accept: learn what it freed and go
		 * on, so that every class gets its trials. */
		k->accepted = true;
		if (h0 != h1)
			p7_resync(s);
	} else if (rc == LAB_OK) {
		/* Say so now: a library that frees what it should refuse may well
		 * corrupt itself and panic on the next call. */
		k->accepted = true;
		s->stop = true;
		s->extra_failed += audit_line("P7", false, "invalid free ACCEPTED, trials stopped",
		                              "lab_free(owner %u, pfn %llu, order %u) returned LAB_OK, "
		                              "expected %s (%s)", who, (unsigned long long)pfn, order,
		                              code_name(want), class_what[cls]);
	}
}

static long p7_pick(struct p7 *s, bool (*ok)(const struct blk *))
{
	if (!s->m.nheld)
		return -1;
	for (int tries = 0; tries < 64; tries++) {
		size_t i = below(&s->r, (uint32_t)s->m.nheld);
		if (!ok || ok(&s->m.held[i]))
			return (long)i;
	}
	return -1;
}

static bool order_ge1(const struct blk *b)
{
	return b->order >= 1;
}

/* A held block (allocating one when there is none that fits). */
static long p7_block(struct p7 *s, bool need_order)
{
	long i = p7_pick(s, need_order ? order_ge1 : NULL);
	for (int tries = 0; i < 0 && tries < 64; tries++) {
		uint64_t pfn;
		if (p7_alloc(s, 1 + below(&s->r, 4), need_order ? 1 + below(&s->r, 3) : 0, true, &pfn) == LAB_OK)
			i = model_find(&s->m, pfn);
		else if (s->m.nheld)
			p7_free_idx(s, below(&s->r, (uint32_t)s->m.nheld));
	}
	return i;
}

/* An order the block at pfn can be named with (aligned, inside the zone). */
static unsigned p7_fit_order(struct p7 *s, uint64_t pfn, unsigned max)
{
	unsigned j = below(&s->r, max + 1);
	while (j && ((pfn & ((1ull << j) - 1)) || pfn - s->m.base + (1ull << j) > s->m.nr))
		j--;
	return j;
}

static void p7_trial(struct p7 *s, int cls)
{
	struct model *m = &s->m;
	struct rng *r = &s->r;
	lab_owner_t x, y;
	uint64_t pfn;
	long i;

	switch (cls) {
	case K_NONOWNER: {
		if ((i = p7_block(s, false)) < 0)
			return;
		struct blk b = m->held[i];
		do
			y = 1 + below(r, 4);
		while (y == b.owner);
		if (b.order && chance(r, 30)) {
			/* Another owner's interior frame is still another owner's. */
			uint64_t p = b.pfn + 1 + below(r, (1u << b.order) - 1);
			p7_attempt(s, cls, y, p, 0, NULL, model_free_code(m, P7_LIVE, y, p, 0));
		} else {
			p7_attempt(s, cls, y, b.pfn, b.order, NULL, model_free_code(m, P7_LIVE, y, b.pfn, b.order));
		}
		return;
	}
	case K_DOUBLE_NOW:
	case K_DOUBLE_LATER: {
		/* The delayed case mostly uses the shared pool (owners 1, 2), where
		 * the frame can really go to another owner meanwhile. */
		x = cls == K_DOUBLE_LATER && chance(r, 70) ? 1 + below(r, 2) : 1 + below(r, 4);
		unsigned order = chance(r, 60) ? 0 : 1 + below(r, 3);
		if (p7_alloc(s, x, order, true, &pfn) != LAB_OK &&
		    (order = 0, p7_alloc(s, x, 0, true, &pfn)) != LAB_OK)
			return;
		i = model_find(m, pfn);
		p7_free_idx(s, (size_t)i);
		if (cls == K_DOUBLE_LATER) {
			/* Traffic in which x frees but never allocates: either the
			 * block is still free (EFREE) or another owner holds its head
			 * now (EOWNER: to x it is another owner's frame, and a free
			 * that succeeded would hand that owner's frame away).  Had x
			 * got it back, a free would be legitimate: x holds it. */
			unsigned d = 8 + below(r, 120);
			for (unsigned j = 0; j < d; j++)
				p7_traffic(s, P7_LIVE & ~(1u << x));
		}
		p7_attempt(s, cls, x, pfn, order, NULL, model_free_code(m, P7_LIVE, x, pfn, order));
		return;
	}
	case K_WILD: {
		x = 1 + below(r, 4);
		unsigned order = below(r, 4);
		if (chance(r, 50)) {
			/* Outside the zone: below it, just past it, far past it, or
			 * near the top of the pfn space; some as addresses. */
			uint64_t lo = m->base, hi = m->base + m->nr;
			switch (below(r, 5)) {
			case 0: pfn = rnd(r) % lo; break;
			case 1: pfn = hi + below(r, 64); break;
			case 2: pfn = hi + (rnd(r) >> below(r, 64)); break;
			case 3: pfn = UINT64_MAX - below(r, 1024); break;
			default: pfn = lo - 1 - below(r, 16); break;
			}
			if (pfn >= lo && pfn < hi)
				pfn = hi;
			if (chance(r, 25)) {
				uintptr_t a = (uintptr_t)s->t.arena, end = a + (uintptr_t)m->nr * FRAME;
				uintptr_t va = chance(r, 50) ? a - FRAME * (1 + below(r, 4096)) : end + FRAME * below(r, 4096);
				p7_attempt(s, cls, x, UINT64_MAX, order, (void *)va, LAB_ERANGE);
				return;
			}
			p7_attempt(s, cls, x, pfn, order, NULL, model_free_code(m, P7_LIVE, x, pfn, order));
			return;
		}
		/* Inside the zone, a frame nobody holds. */
		uint64_t f = below(r, (uint32_t)m->nr);
		for (int tries = 0; m->own[f] && tries < 1000; tries++)
			f = below(r, (uint32_t)m->nr);
		if (m->own[f])
			return;
		pfn = m->base + f;
		order = p7_fit_order(s, pfn, 3);
		p7_attempt(s, cls, x, pfn, order, NULL, model_free_code(m, P7_LIVE, x, pfn, order));
		return;
	}
	case K_UNALIGNED: {
		if ((i = p7_block(s, false)) < 0)
			return;
		struct blk b = m->held[i];
		if (chance(r, 40)) {
			/* The block's address plus a byte offset inside a frame. */
			uint8_t *va = frame_va_of(&s->t, b.pfn) + 1 + below(r, FRAME - 1);
			if (b.order && chance(r, 50))
				va += FRAME * below(r, 1u << b.order);
			p7_attempt(s, cls, b.owner, b.pfn, b.order, va, LAB_EALIGN);
			return;
		}
		/* A pfn inside the block (or next to it) not aligned to the order
		 * named: the header promises EALIGN before looking at records. */
		unsigned order = b.order ? b.order : 1 + below(r, 4);
		uint64_t p = b.pfn + 1 + below(r, (1u << order) - 1);
		if (p - m->base >= m->nr || !(p & ((1ull << order) - 1)))
			return; /* past the zone, or aligned after all: draw again next time */
		p7_attempt(s, cls, b.owner, p, order, NULL, model_free_code(m, P7_LIVE, b.owner, p, order));
		return;
	}
	case K_NEVER: {
		/* Frames never handed out: unowned colours, the reserved range,
		 * and pool frames the traffic has not reached yet. */
		uint64_t f = below(r, (uint32_t)m->nr);
		for (int tries = 0; m->ever[f] && tries < 1000; tries++)
			f = below(r, (uint32_t)m->nr);
		if (m->ever[f])
			return;
		x = 1 + below(r, 4);
		pfn = m->base + f;
		unsigned order = p7_fit_order(s, pfn, 2);
		if (m->own[f]) /* cannot be: ever is set when held */
			return;
		p7_attempt(s, cls, x, pfn, order, NULL, model_free_code(m, P7_LIVE, x, pfn, order));
		return;
	}
	case K_STALE: {
		/* x frees a block; y (same pool) then allocates until it holds
		 * the block's first frame; x's stale free must be refused. */
		x = 1 + below(r, 2);
		y = 3 - x;
		unsigned order = chance(r, 70) ? 0 : 1 + below(r, 2);
		if (p7_alloc(s, x, order, true, &pfn) != LAB_OK &&
		    (order = 0, p7_alloc(s, x, 0, true, &pfn)) != LAB_OK)
			return;
		p7_free_idx(s, (size_t)model_find(m, pfn));
		size_t n = 0;
		uint64_t q;
		while (m->own[pfn - m->base] != y && n < m->nr && p7_alloc(s, y, 0, false, &q) == LAB_OK)
			s->tmp[n++] = q;
		if (m->own[pfn - m->base] == y) {
			/* y's data in it now: a refusal that scrubbed it would show. */
			memset(frame_va_of(&s->t, pfn), owner_fill(y), FRAME);
			p7_attempt(s, cls, x, pfn, order, NULL, model_free_code(m, P7_LIVE, x, pfn, order));
		} else if (!s->traffic_bad) {
			p7_bad(s, LAB_ENOMEM); /* y emptied the pool without getting it */
		}
		for (size_t j = 0; j < n && !s->stop; j++) {
			long h = model_find(m, s->tmp[j]);
			if (h >= 0)
				p7_free_idx(s, (size_t)h);
		}
		return;
	}
	case K_ORDER: {
		if ((i = p7_block(s, false)) < 0)
			return;
		struct blk b = m->held[i];
		unsigned cand[LAB_MAX_ORDER + 6], nc = 0;
		for (unsigned j = 0; j <= LAB_MAX_ORDER; j++)
			if (j != b.order && !(b.pfn & ((1ull << j) - 1)) && b.pfn - m->base + (1ull << j) <= m->nr)
				cand[nc++] = j;
		/* Orders the API does not support at all, in about 1 trial of 10
		 * (or when the block has no other valid order): until 2026-11-28
		 * they were 5 of every list, 80 % of the trials at an odd pfn. */
		static const unsigned unsupported[] = {LAB_MAX_ORDER + 1, 31, 32, 64, UINT32_MAX};
		unsigned j = nc && !chance(r, 10) ? cand[below(r, nc)] : unsupported[below(r, 5)];
		p7_attempt(s, cls, b.owner, b.pfn, j, NULL, model_free_code(m, P7_LIVE, b.owner, b.pfn, j));
		return;
	}
	case K_INTERIOR: {
		if ((i = p7_block(s, true)) < 0)
			return;
		struct blk b = m->held[i];
		uint32_t off = 1 + below(r, (1u << b.order) - 1);
		unsigned j = below(r, (unsigned)__builtin_ctz(off) + 1); /* aligned inside the block */
		uint64_t p = b.pfn + off;
		p7_attempt(s, cls, b.owner, p, j, NULL, model_free_code(m, P7_LIVE, b.owner, p, j));
		return;
	}
	}
}

/* The class each trial is meant to produce: a trial whose construction
 * went elsewhere (the model says another code) is a bug in this audit, so
 * it is counted as a failure of its class, not skipped. */
static bool code_fits(int cls, int want)
{
	switch (cls) {
	case K_NONOWNER: return want == LAB_EOWNER;
	case K_DOUBLE_NOW: return want == LAB_EFREE;
	case K_DOUBLE_LATER: return want == LAB_EFREE || want == LAB_EOWNER;
	case K_WILD: return want == LAB_ERANGE || want == LAB_EFREE;
	case K_UNALIGNED: return want == LAB_EALIGN;
	case K_NEVER: return want == LAB_EFREE;
	case K_STALE: return want == LAB_EOWNER;
	case K_ORDER: return want == LAB_EORDER;
	case K_INTERIOR: return want == LAB_EINTERIOR;
	}
	return false;
}

static int audit_invalid_frees(const struct audit_opts *o)
{
	struct p7 *s = calloc(1, sizeof(*s));
	int failed = 0;
	double t0 = cli_now();
	uint64_t trials = o->full ? 100000 : 1000;
	struct zone_spec zs = {.base_pfn = P7_BASE, .nr_frames = P7_NR, .colours = 32,
	                       .cpus = my_cpus(), .max_owners = MAXO, .reserve_permille = 0,
	                       .flags = LAB_ZONE_ZEROED, .fill = 0, .track = true, .salt = 71};
	rng_init(&s->r, run_seed(o), 0x77);
	s->trusting = o->policy == POLICY_TRUSTING;
	s->poisoning = o->policy == POLICY_POISONING;
	if (zone_make(&s->t, &zs, o) != LAB_OK || !model_init(&s->m, P7_BASE, P7_NR) ||
	    !(s->tmp = malloc(P7_NR * sizeof(uint64_t)))) {
		failed += audit_line("P7", false, "invalid frees", "zone setup failed");
		goto out;
	}
	/* Reserved frames (colours 0..15 included) are never allocatable. */
	uint64_t rs = P7_BASE + 300;
	bool ok = lab_zone_reserve_range(s->t.z, rs, 24) == LAB_OK;
	for (unsigned k = 0; k < 24; k++)
		s->m.resv[rs - P7_BASE + k] = 1;
	for (lab_owner_t w = 1; w <= 4; w++) {
		struct lab_owner_cfg oc = {.colours = p7_mask[w], .flags = p7_excl[w] ? LAB_OWNER_EXCLUSIVE : 0};
		ok = ok && lab_owner_add(s->t.z, w, &oc) == LAB_OK;
	}
	if (!ok) {
		failed += audit_line("P7", false, "invalid frees", "owner setup failed");
		goto out;
	}
	/* About 40 % of the pools' frames held: free and held frames of every
	 * kind to aim at, and room for allocations to succeed. */
	s->target = (size_t)(P7_NR * 24 / 32) * 2 / 5;
	for (int w = 0; w < 300; w++)
		p7_traffic(s, P7_LIVE);
	uint64_t check_bad = 0;
	for (uint64_t n = 0; n < trials && !s->stop; n++) {
		for (int cls = 0; cls < K_NR && !s->stop; cls++) {
			unsigned d = below(&s->r, 6);
			for (unsigned j = 0; j < d; j++)
				p7_traffic(s, P7_LIVE);
			double c0 = cli_now();
			p7_trial(s, cls); /* may not set up (pool full ...): counted by tried */
			s->k[cls].secs += cli_now() - c0;
		}
		if (n % 1024 == 1023 && lab_check(s->t.z) != LAB_OK)
			check_bad++;
	}
	while (s->m.nheld && !s->stop)
		p7_free_idx(s, s->m.nheld - 1);
	struct lab_stats st;
	if (!s->stop &&
	    (lab_check(s->t.z) != LAB_OK || lab_stats(s->t.z, &st) != LAB_OK || st.nr_allocated != 0))
		check_bad++;
	for (int cls = 0; cls < K_NR; cls++) {
		struct kstat *k = &s->k[cls];
		char det[200] = "", more[120] = "";
		size_t len = 0;
		uint64_t misfit = 0;
		for (int c = 0; c < 24; c++) {
			if (!k->by_code[c])
				continue;
			if (!code_fits(cls, -c))
				misfit += k->by_code[c];
			len += (size_t)snprintf(det + len, sizeof(det) - len, "%s%s %llu", len ? ", " : "",
			                        code_name(-c), (unsigned long long)k->by_code[c]);
			if (len >= sizeof(det))
				break;
		}
		if (k->bad_want || k->bad_rc)
			snprintf(more, sizeof(more), "; first wrong: got %s want %s%s", code_name(k->bad_rc),
			         code_name(k->bad_want), k->accepted ? " (ACCEPTED)" : "");
		else if (misfit)
			snprintf(more, sizeof(more), "; %llu trials not of this class",
			         (unsigned long long)misfit);
		bool pass = !s->stop && k->tried >= trials / 2 && k->rejected == k->tried && k->unchanged == k->tried &&
		            !misfit && !s->traffic_bad && !check_bad;
		failed += audit_line("P7", pass, class_what[cls], "rejected %llu/%llu, state unchanged %llu/%llu (%s)%s",
		                     (unsigned long long)k->rejected, (unsigned long long)k->tried,
		                     (unsigned long long)k->unchanged, (unsigned long long)k->tried, det, more);
	}
	if (s->traffic_bad || check_bad)
		audit_note("P7 traffic: %llu valid calls misbehaved (first %s), lab_check failed %llu times",
		           (unsigned long long)s->traffic_bad, code_name(s->traffic_rc),
		           (unsigned long long)check_bad);
	if (o->verbose) {
		char h[300];
		size_t len = 0;
		for (int cls = 0; cls < K_NR && len < sizeof(h); cls++)
			len += (size_t)snprintf(h + len, sizeof(h) - len, " %.2f", s->k[cls].secs);
		audit_note("P7: zone of %u frames at pfn %u, %.1f s; per class:%s", P7_NR, P7_BASE,
		           cli_now() - t0, h);
	}
	failed += s->extra_failed;
out:
	model_fini(&s->m);
	zone_free(&s->t);
	free(s->tmp);
	free(s);
	return failed;
}

/* ==== P4: racing double frees ========================================================= */

/* Blocks per round: about a millisecond of frees per thread, so that on a
 * busy machine the two threads still overlap inside one time slice. */
#define RACE_N 2048

struct race {
	struct zone *t;
	pthread_barrier_t bar;
	struct blk blocks[RACE_N];
	int rc[2][RACE_N];
	atomic_bool quit;
	_Atomic uint64_t arrived; /* rendezvous: +1 per thread per round */
	unsigned mode;            /* thread 1's order: same, reversed, rotated */
	bool racy;                /* --policy racy: the frees go to racy_free */
};

/* --policy racy, the negative control of the P4 check: a free that checks
 * the owner, then frees, as two steps.  It yields between them, so that
 * the other thread's check of the same block can come in between even on
 * one CPU, and it reports the check's verdict, whatever the free said. */
static int racy_free(lab_zone_t *z, const struct blk *b)
{
	lab_owner_t w = 0;
	unsigned ord = 0;
	if (lab_frame_owner(z, b->pfn, &w, &ord) != LAB_OK || w != b->owner || ord != b->order)
		return LAB_EFREE;
	sched_yield();
	(void)lab_free(z, b->owner, b->pfn, b->order);
	return LAB_OK;
}

struct race_arg {
	struct race *r;
	int me;
	int cpu; /* pinned to this CPU, or -1 */
};

static void *race_thread(void *p)
{
	struct race_arg *a = p;
	struct race *r = a->r;
	if (a->cpu >= 0) {
		/* Two threads the scheduler puts on one CPU take turns: one
		 * frees the whole batch before the other runs, and the race is
		 * never run.  Pinned to different CPUs they overlap whenever
		 * both are scheduled. */
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(a->cpu, &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	for (uint64_t round = 1;; round++) {
		pthread_barrier_wait(&r->bar);
		if (atomic_load(&r->quit))
			break;
		/* A barrier wakes its waiters tens of microseconds apart, longer
		 * than the whole batch of frees takes: without this spin one
		 * thread would free everything before the other started. */
		atomic_fetch_add(&r->arrived, 1);
		/* A pure spin: yielding (as lab_plat_relax does every 64 spins) on
		 * a loaded machine hands the CPU away for a whole time slice, and
		 * the other thread is done before this one runs again.  After
		 * 2^16 spins (a millisecond or so) the other thread is not
		 * running: yield rather than burn the slice it may need. */
		for (uint32_t spins = 1; atomic_load(&r->arrived) < 2 * round; spins++) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			if (!(spins & 0xffff))
				sched_yield();
		}
		/* Same order: frees meet their twin within a few calls as long as
		 * the threads keep pace.  Reversed or rotated: threads that start
		 * apart still meet somewhere in the batch. */
		for (int k = 0; k < RACE_N; k++) {
			int i = a->me == 0 || r->mode == 0 ? k
			        : r->mode == 1 ? RACE_N - 1 - k : (k + RACE_N / 2) % RACE_N;
			const struct blk *b = &r->blocks[i];
			r->rc[a->me][i] = r->racy ? racy_free(r->t->z, b) : lab_free(r->t->z, b->owner, b->pfn, b->order);
		}
		pthread_barrier_wait(&r->bar);
	}
	lab_cpu_drain(r->t->z);
	return NULL;
}

static int audit_race(const struct audit_opts *o)
{
	struct zone t;
	struct rng g;
	struct race *r = calloc(1, sizeof(*r));
	memset(&t, 0, sizeof(t));
	unsigned rounds = o->full ? 500 : 50;
	uint64_t blocks = 0, one_ok = 0, loser_efree = 0, wins[2] = {0, 0}, left = 0, alloc_bad = 0;
	uint64_t mixed = 0; /* rounds in which both threads won blocks: they really overlapped */
	double t0 = cli_now();
	rng_init(&g, run_seed(o), 0x44);
	struct zone_spec zs = {.base_pfn = 0x100000, .nr_frames = 16384, .colours = 32, .cpus = 8,
	                       .max_owners = MAXO, .flags = LAB_ZONE_ZEROED, .track = true, .salt = 44};
	struct lab_owner_cfg sh = {.colours = 0xffff}, ex = {.colours = 0xffff0000, .flags = LAB_OWNER_EXCLUSIVE};
	if (!r || zone_make(&t, &zs, o) != LAB_OK || lab_owner_add(t.z, 1, &sh) != LAB_OK ||
	    lab_owner_add(t.z, 2, &ex) != LAB_OK) {
		zone_free(&t);
		free(r);
		return audit_line("P4", false, "racing double frees", "zone setup failed");
	}
	r->t = &t;
	r->racy = o->policy == POLICY_RACY;
	pthread_barrier_init(&r->bar, NULL, 3);
	pthread_t th[2];
	struct race_arg args[2] = {{r, 0, -1}, {r, 1, -1}};
	cpu_set_t allowed;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed) >= 2)
		for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
			if (CPU_ISSET(c, &allowed))
				args[k++].cpu = c;
	int started = 0;
	for (int i = 0; i < 2; i++)
		started += pthread_create(&th[i], NULL, race_thread, &args[i]) == 0;
	if (started < 2) {
		/* Cannot race without two threads.  A thread that did start waits
		 * at a barrier that can never fill: leave it and its memory be. */
		return audit_line("P4", false, "racing double frees", "cannot start threads");
	}
	/* Until both threads have won blocks in one round (they really ran at
	 * once), up to ten times the rounds: a race never run proves nothing. */
	unsigned round;
	for (round = 0; round < rounds || (!mixed && round < 10 * rounds); round++) {
		for (int i = 0; i < RACE_N; i++) {
			lab_owner_t w = 1 + below(&g, 2);
			unsigned order = chance(&g, 60) ? 0 : 1 + below(&g, 3);
			uint64_t pfn;
			if (lab_alloc(t.z, w, order, LAB_ATOMIC, &pfn) != LAB_OK &&
			    (order = 0, lab_alloc(t.z, w, 0, LAB_ATOMIC, &pfn)) != LAB_OK) {
				alloc_bad++;
				order = 0;
				pfn = 0; /* ERANGE for both: counted as a failure below */
			}
			r->blocks[i] = (struct blk){pfn, w, order};
		}
		r->mode = below(&g, 3);
		pthread_barrier_wait(&r->bar); /* go */
		pthread_barrier_wait(&r->bar); /* both done */
		uint64_t w0 = wins[0], w1 = wins[1];
		for (int i = 0; i < RACE_N; i++) {
			int a = r->rc[0][i], b = r->rc[1][i];
			blocks++;
			if ((a == LAB_OK) + (b == LAB_OK) == 1) {
				one_ok++;
				wins[a == LAB_OK ? 0 : 1]++;
				loser_efree += (a == LAB_OK ? b : a) == LAB_EFREE;
			}
			lab_owner_t w = 0;
			lab_frame_owner(t.z, r->blocks[i].pfn, &w, NULL);
			left += w != 0;
		}
		mixed += wins[0] > w0 && wins[1] > w1;
		if (one_ok != blocks || loser_efree != blocks || left) {
			/* Two winners (or none): the pools now hold a frame twice or
			 * lost one, and the next call may panic.  Report first. */
			atomic_store(&r->quit, true);
			pthread_barrier_wait(&r->bar);
			for (int i = 0; i < 2; i++)
				pthread_join(th[i], NULL);
			pthread_barrier_destroy(&r->bar);
			zone_free(&t);
			free(r);
			return audit_line("P4", false, "two threads free each block: exactly one wins",
			                  "round %u: %llu of %llu blocks had exactly one LAB_OK, loser LAB_EFREE "
			                  "%llu, %llu still held; stopped", round + 1, (unsigned long long)one_ok,
			                  (unsigned long long)blocks, (unsigned long long)loser_efree,
			                  (unsigned long long)left);
		}
	}
	atomic_store(&r->quit, true);
	pthread_barrier_wait(&r->bar);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	lab_cpu_drain(t.z);
	struct lab_stats st;
	bool check = lab_check(t.z) == LAB_OK && lab_stats(t.z, &st) == LAB_OK && st.nr_allocated == 0;
	pthread_barrier_destroy(&r->bar);
	zone_free(&t);
	free(r);
	bool pass = one_ok == blocks && loser_efree == blocks && !left && !alloc_bad && check && mixed;
	if (!mixed)
		audit_note("P4: the two threads never ran at the same time in %u rounds (one CPU, or a "
		           "busy machine?): the race was not exercised, which fails the check", round);
	return audit_line("P4", pass, "two threads free each block: exactly one wins",
	                  "%llu blocks: one LAB_OK %llu/%llu, other LAB_EFREE %llu/%llu (wins %llu/%llu, "
	                  "both won in %llu of %u rounds), %llu still held, lab_check %s; %.1f s",
	                  (unsigned long long)blocks, (unsigned long long)one_ok, (unsigned long long)blocks,
	                  (unsigned long long)loser_efree, (unsigned long long)blocks,
	                  (unsigned long long)wins[0], (unsigned long long)wins[1],
	                  (unsigned long long)mixed, round, (unsigned long long)left,
	                  check ? "OK" : "FAILED", cli_now() - t0);
}

static int audit_canaries(const struct audit_opts *o)
{
	struct canary c;
	int failed = 0;

	memset(&c, 0, sizeof(c));
	canary_serial(o, false, &c);
	failed += canary_report("canary A->B, synchronous scrub", &c, true);
	memset(&c, 0, sizeof(c));
	canary_serial(o, true, &c);
	failed += canary_report("canary A->B, deferred scrub (lab_scrub when idle)", &c, true);
	if (c.setup_ok)
		audit_note("deferred: up to %llu frames dirty at once (sampled), %llu lab_scrub calls",
		           (unsigned long long)c.max_dirty, (unsigned long long)c.scrubs);
	memset(&c, 0, sizeof(c));
	canary_concurrent(o, false, &c);
	failed += canary_report("canary, 2 A + 2 B threads, synchronous scrub", &c, true);
	memset(&c, 0, sizeof(c));
	canary_concurrent(o, true, &c);
	failed += canary_report("canary, 2 A + 2 B threads, deferred scrub", &c, true);
	memset(&c, 0, sizeof(c));
	canary_removal(o, &c);
	failed += canary_report("canary, owners removed while holding frames", &c, false);
	return failed;
}

int audit_ownership(const struct audit_opts *o)
{
	int failed = 0;

	if (audit_policy_part(o, PART_CANARY))
		failed += audit_canaries(o);
	if (audit_policy_part(o, PART_FREES))
		failed += audit_invalid_frees(o);
	if (audit_policy_part(o, PART_RACE))
		failed += audit_race(o);
	return failed;
}

/* ==== P6: colour isolation, exact model ================================================ */

#define P6_OWNERS 12
#define P6_MAX_FRAMES (64 * 25 + 64)

struct p6 {
	struct rng r;
	struct zone t;
	struct model m;
	unsigned C;
	uint64_t all;
	uint32_t live, dying;
	uint64_t mask[MAXO + 1], quota[MAXO + 1];
	bool excl[MAXO + 1];
	/* owner registration */
	uint64_t ov_cases, ov_refused, free_cases, free_accepted, other_cases, other_right;
	uint64_t add_wrong;
	int add_got, add_want;
	/* operations and scans */
	uint64_t adds, allocs, allocs_excl, frees, removals, scans, frames, held_frames, excl_frames;
	uint64_t violations, mismatches, check_bad, call_bad;
	uint64_t alloc_rc[24]; /* allocation results by code (-v) */
	char first[200];
	bool colourblind; /* --policy colourblind: the bad allocator below */
};

/* The first thing that went wrong, for the report line.  fmt takes two
 * %lld. */
static void p6_first(struct p6 *s, const char *fmt, long long a, long long b)
{
	if (!s->first[0])
		snprintf(s->first, sizeof(s->first), fmt, a, b);
}

/* Something went wrong: stop calling into the zone (a library that broke
 * a rule may have corrupted itself and panic on the next call) and report
 * what was seen so far. */
static bool p6_broken(const struct p6 *s)
{
	if (s->colourblind)
		return false; /* a bad policy is meant to break the rules: run it all */
	return s->violations || s->mismatches || s->check_bad || s->call_bad || s->add_wrong;
}

static unsigned code_bit(int rc)
{
	return rc <= 0 && rc > -32 ? 1u << -rc : 0;
}

/* Owner colours the rules accept and refuse: contiguous runs, aligned
 * groups (what higher orders need), sparse random sets, and copies or
 * near-copies of existing owners' sets (sharing, partial overlap). */
static uint64_t p6_mask(struct p6 *s)
{
	struct rng *r = &s->r;
	unsigned C = s->C, k = below(r, 100);
	if (k < 25 && s->live) {
		unsigned w;
		do
			w = 1 + below(r, P6_OWNERS);
		while (!(s->live >> w & 1));
		uint64_t m = s->mask[w] ^ (1ull << below(r, C));
		return k < 20 || !m ? s->mask[w] : m;
	}
	if (k < 55) {
		unsigned len = 1 + below(r, chance(r, 70) ? 8 : C);
		return ones(len) << below(r, C - len + 1);
	}
	if (k < 70) {
		unsigned w = 1u << below(r, 6);
		return ones(w) << (w * below(r, C / w));
	}
	if (k < 98) {
		uint64_t m = rnd(r) & rnd(r) & rnd(r) & s->all;
		if (chance(r, 50))
			m &= rnd(r);
		return m ? m : 1ull << below(r, C);
	}
	/* Invalid: empty, or colours the zone does not have. */
	return C == 64 || chance(r, 50) ? 0 : s->all + 1;
}

static void p6_add(struct p6 *s, lab_owner_t id, uint64_t mask, bool excl, uint64_t quota)
{
	unsigned want = 0;
	bool overlap = false, classed = false;
	if (id == 0 || id > P6_OWNERS) {
		want = code_bit(LAB_ENOOWNER);
	} else if (!mask || (mask & ~s->all)) {
		want = code_bit(LAB_EINVAL);
	} else if ((s->live | s->dying) >> id & 1) {
		want = code_bit(LAB_EEXIST);
	} else {
		classed = true;
		for (unsigned w = 1; w <= P6_OWNERS; w++) {
			if (!(s->live >> w & 1) || !(s->mask[w] & mask))
				continue;
			/* exclusive vs anything: EOVERLAP against an exclusive owner,
			 * ESHARED against shared ones (with both, the library reports
			 * whichever pool it meets first: either code is right);
			 * shared: only an identical set of a shared pool is allowed. */
			if (excl) {
				want |= code_bit(s->excl[w] ? LAB_EOVERLAP : LAB_ESHARED);
				overlap = true;
			} else if (s->excl[w] || s->mask[w] != mask) {
				want |= code_bit(LAB_EOVERLAP);
				overlap = true;
			}
		}
		if (!overlap)
			want = code_bit(LAB_OK);
	}
	struct lab_owner_cfg oc = {.colours = mask, .quota = quota, .flags = excl ? LAB_OWNER_EXCLUSIVE : 0};
	/* --policy colourblind, the negative control of both P6 checks: the
	 * library told that every owner has every colour, shared (so all share
	 * one pool), while the model keeps the colours asked for. */
	if (s->colourblind && mask && !(mask & ~s->all))
		oc = (struct lab_owner_cfg){.colours = s->all, .quota = quota};
	int rc = lab_owner_add(s->t.z, id, &oc);
	bool right = (want & code_bit(rc)) != 0;
	s->adds++;
	if (!classed) {
		s->other_cases++;
		s->other_right += right;
	} else if (overlap) {
		s->ov_cases++;
		s->ov_refused += right;
	} else {
		s->free_cases++;
		s->free_accepted += right;
	}
	if (!right && !s->add_wrong++) {
		s->add_got = rc;
		s->add_want = want & code_bit(LAB_OK) ? LAB_OK : -__builtin_ctz(want);
	}
	if (rc == LAB_OK) {
		s->live |= 1u << id;
		s->mask[id] = mask;
		s->excl[id] = excl;
		s->quota[id] = quota;
		if (!right) /* accepted an overlap: the model follows the library */
			s->violations++;
	}
}

/* Does mask hold an aligned group of 2^order colours (all its own)? */
static bool p6_order_fits(const struct p6 *s, uint64_t mask, unsigned order)
{
	uint64_t K = 1ull << order;
	if (K > s->C)
		return mask == s->all;
	for (uint64_t g = 0; g < s->C / K; g++)
		if ((mask >> (g * K) & ones((unsigned)K)) == ones((unsigned)K))
			return true;
	return false;
}

static void p6_alloc(struct p6 *s, lab_owner_t id)
{
	struct rng *r = &s->r;
	static const unsigned base_flags[3] = {0, LAB_NOWAIT, LAB_ATOMIC};
	unsigned order = chance(r, 65) ? 0 : chance(r, 50) ? 1 : 2 + below(r, 3);
	/* LAB_EXCLUSIVE mostly where it is allowed, now and then where it is
	 * not (ENOTEXCL). */
	bool ex = id <= P6_OWNERS && s->excl[id] && (s->live >> id & 1);
	unsigned flags = base_flags[below(r, 3)] | (chance(r, 20) ? LAB_ZERO : 0) |
	                 (chance(r, ex ? 60 : 8) ? LAB_EXCLUSIVE : 0);
	if (chance(r, 1))
		order = LAB_MAX_ORDER + 1 + below(r, 30);
	if (chance(r, 1))
		flags |= 0x10u << below(r, 20);
	uint64_t K = order <= LAB_MAX_ORDER ? 1ull << order : 0;
	bool live = s->live >> id & 1 && !(s->dying >> id & 1);
	int want = 1; /* 1: OK, ENOMEM or (order > 0) EFRAG */
	if (flags & ~LAB_ALLOC_FLAGS_ALL)
		want = LAB_EINVAL;
	else if (order > LAB_MAX_ORDER)
		want = LAB_EORDER;
	else if (!live)
		want = LAB_ENOOWNER;
	else if ((flags & LAB_EXCLUSIVE) && !s->excl[id])
		want = LAB_ENOTEXCL;
	else if (order && !p6_order_fits(s, s->mask[id], order))
		want = LAB_ECOLOUR;
	else if (s->quota[id] && s->m.frames_of[id] + K > s->quota[id])
		want = LAB_EQUOTA;
	uint64_t pfn = 0;
	int rc;
	if (s->colourblind && want != 1)
		rc = want; /* the bad allocator keeps the API's rules, only not the colours */
	else
		rc = lab_alloc(s->t.z, id, order, s->colourblind ? flags & ~LAB_EXCLUSIVE : flags, &pfn);
	s->allocs++;
	s->alloc_rc[rc <= 0 && rc > -24 ? -rc : 0]++;
	bool right = want == 1 ? rc == LAB_OK || rc == LAB_ENOMEM || (order && rc == LAB_EFRAG) : rc == want;
	if (!right) {
		s->call_bad++;
		p6_first(s, "alloc returned %lld, model said %lld", rc, want);
	}
	if (rc != LAB_OK)
		return;
	s->allocs_excl += (flags & LAB_EXCLUSIVE) != 0;
	uint64_t f = pfn - s->m.base;
	if (!live || pfn < s->m.base || f + K > s->m.nr || (pfn & (K - 1))) {
		s->violations++;
		p6_first(s, "block at pfn %lld order %lld outside the zone or misaligned", (long long)pfn,
		         order);
		return;
	}
	for (uint64_t i = 0; i < K; i++) {
		uint64_t c = (pfn + i) & (s->C - 1);
		bool other_excl = false;
		for (unsigned e = 1; e <= P6_OWNERS; e++)
			other_excl |= e != id && (s->live >> e & 1) && s->excl[e] && (s->mask[e] >> c & 1);
		if (!(s->mask[id] >> c & 1) || other_excl) {
			s->violations++;
			p6_first(s, "owner %lld got a frame of colour %lld", id, (long long)c);
		}
		uint8_t prev = s->m.own[f + i];
		if (prev && (s->dying >> prev & 1)) {
			/* Removal has reclaimed this block of the dying owner already:
			 * the model learns it here. */
			long h = model_find(&s->m, s->m.base + s->m.head[f + i]);
			if (h >= 0)
				model_del(&s->m, (size_t)h);
		}
		if (s->m.own[f + i] || s->m.resv[f + i]) {
			s->mismatches++;
			p6_first(s, "frame %lld handed out while held or reserved (owner %lld)",
			         (long long)(pfn + i), s->m.own[f + i]);
			return;
		}
	}
	model_add(&s->m, pfn, order, id);
}

static void p6_free(struct p6 *s)
{
	if (!s->m.nheld)
		return;
	size_t i = below(&s->r, (uint32_t)s->m.nheld);
	struct blk b = s->m.held[i];
	bool dying = s->dying >> b.owner & 1;
	int rc = lab_free(s->t.z, b.owner, b.pfn, b.order);
	s->frees++;
	/* An owner being removed is refused from the first removal call on. */
	if (rc != (dying ? LAB_ENOOWNER : LAB_OK)) {
		s->call_bad++;
		p6_first(s, "free returned %lld for owner %lld", rc, b.owner);
	}
	if (rc == LAB_OK)
		model_del(&s->m, i);
}

/* An id to register: mostly a free one, sometimes a taken one (EEXIST) or
 * one out of range (ENOOWNER). */
static lab_owner_t p6_new_id(struct p6 *s)
{
	if (chance(&s->r, 3))
		return chance(&s->r, 50) ? 0 : P6_OWNERS + 1;
	lab_owner_t w = 1 + below(&s->r, P6_OWNERS);
	for (int i = 0; i < 64 && (s->live >> w & 1) && !chance(&s->r, 10); i++)
		w = 1 + below(&s->r, P6_OWNERS);
	return w;
}

static lab_owner_t p6_some_owner(struct p6 *s)
{
	if (s->live && chance(&s->r, 92)) {
		lab_owner_t w;
		do
			w = 1 + below(&s->r, P6_OWNERS);
		while (!(s->live >> w & 1));
		return w;
	}
	return (lab_owner_t)below(&s->r, P6_OWNERS + 2); /* 0 and 13 are never valid */
}

/* Remove an owner in budgeted steps, with other owners' traffic (and calls
 * for the dying owner, which must be refused) between the steps. */
static void p6_remove(struct p6 *s, lab_owner_t id)
{
	int rc = LAB_EAGAIN;
	s->removals++;
	for (int step = 0; step < 1000000 && rc == LAB_EAGAIN && !p6_broken(s); step++) {
		rc = lab_owner_remove(s->t.z, id, 1 + below(&s->r, 200));
		if (rc != LAB_EAGAIN)
			break;
		s->dying |= 1u << id;
		if (chance(&s->r, 30)) {
			if (chance(&s->r, 50))
				p6_alloc(s, chance(&s->r, 30) ? id : p6_some_owner(s));
			else
				p6_free(s);
		}
	}
	if (rc != LAB_OK && !p6_broken(s)) {
		s->call_bad++;
		p6_first(s, "lab_owner_remove(%lld) returned %lld", id, rc);
	}
	s->dying &= ~(1u << id);
	if (rc == LAB_OK) {
		model_drop_owner(&s->m, id);
		s->live &= ~(1u << id);
	}
}

/* Every frame, as the library reports it, against the model and the rule:
 * a held frame's colour is its owner's, and no exclusive owner's colour
 * is held by anyone else. */
static void p6_scan(struct p6 *s)
{
	s->scans++;
	for (uint64_t f = 0; f < s->m.nr; f++) {
		uint64_t pfn = s->m.base + f, c = pfn & (s->C - 1);
		lab_owner_t w = 0;
		unsigned ord = 0;
		s->frames++;
		if (lab_frame_owner(s->t.z, pfn, &w, &ord) != LAB_OK) {
			s->call_bad++;
			continue;
		}
		if (w != s->m.own[f] || (w && ord != s->m.ord[f])) {
			s->mismatches++;
			p6_first(s, "frame %lld: library says owner %lld, model differs", (long long)pfn, w);
		}
		if (!w)
			continue;
		s->held_frames++;
		s->excl_frames += w <= P6_OWNERS && s->excl[w];
		if (w > P6_OWNERS || !(s->live >> w & 1) || !(s->mask[w] >> c & 1)) {
			s->violations++;
			p6_first(s, "frame of colour %lld held by owner %lld outside its colours", (long long)c, w);
			continue;
		}
		for (unsigned e = 1; e <= P6_OWNERS; e++)
			if (e != w && (s->live >> e & 1) && s->excl[e] && (s->mask[e] >> c & 1)) {
				s->violations++;
				p6_first(s, "exclusive owner %lld's colour held by owner %lld", e, w);
			}
	}
	if (lab_check(s->t.z) != LAB_OK) {
		s->check_bad++;
		p6_first(s, "lab_check failed at scan %lld (%lld colours)", (long long)s->scans, s->C);
	}
	for (lab_owner_t id = 1; id <= P6_OWNERS; id++) {
		struct lab_owner_stats os;
		int rc = lab_owner_stats(s->t.z, id, &os);
		if (!(s->live >> id & 1)) {
			if (rc != LAB_ENOOWNER)
				s->mismatches++;
			continue;
		}
		if (rc != LAB_OK || os.colours != s->mask[id] || os.exclusive != s->excl[id] ||
		    os.held != s->m.frames_of[id]) {
			s->mismatches++;
			p6_first(s, "lab_owner_stats of owner %lld disagrees (held %lld)", id,
			         rc == LAB_OK ? (long long)os.held : -1);
		}
	}
}

static void p6_config(struct p6 *s, const struct audit_opts *o, uint8_t *arena, uint64_t n)
{
	struct rng *r = &s->r;
	s->C = chance(r, 50) ? 32 : 64;
	s->all = ones(s->C);
	uint64_t nr = (uint64_t)s->C * (4 + below(r, 21)) + below(r, s->C);
	struct zone_spec zs = {.base_pfn = chance(r, 10) ? 0 : rnd(r) >> 40, .nr_frames = nr,
	                       .colours = s->C, .cpus = my_cpus() + below(r, 2),
	                       .max_owners = P6_OWNERS, .reserve_permille = (unsigned[]){0, 15, 100}[below(r, 3)],
	                       .flags = LAB_ZONE_ZEROED | (chance(r, 25) ? LAB_ZONE_DEFERRED_SCRUB : 0),
	                       .arena = arena, .salt = 0x600000 + n};
	s->live = s->dying = 0;
	memset(s->mask, 0, sizeof(s->mask));
	memset(s->quota, 0, sizeof(s->quota));
	memset(s->excl, 0, sizeof(s->excl));
	if (zone_make(&s->t, &zs, o) != LAB_OK || !model_init(&s->m, zs.base_pfn, nr)) {
		s->call_bad++;
		p6_first(s, "zone setup failed (%lld frames, %lld colours)", (long long)nr, s->C);
		goto out;
	}
	if (chance(r, 30)) {
		uint64_t f = below(r, (uint32_t)nr), len = 1 + below(r, 40);
		if (len > nr - f)
			len = nr - f;
		if (lab_zone_reserve_range(s->t.z, zs.base_pfn + f, len) == LAB_OK)
			memset(s->m.resv + f, 1, len);
		else
			s->call_bad++;
	}
	unsigned first = 2 + below(r, 8);
	for (unsigned i = 0; i < first && !p6_broken(s); i++)
		p6_add(s, p6_new_id(s), p6_mask(s), chance(r, 40), chance(r, 20) ? 1 + below(r, 64) : 0);
	unsigned ops = 300 + below(r, 400);
	for (unsigned i = 0; i < ops && !p6_broken(s); i++) {
		/* Frees are rare while less than a quarter of the zone is held:
		 * the scans need many held frames to have something to check. */
		uint64_t held = 0;
		for (unsigned w = 1; w <= P6_OWNERS; w++)
			held += s->m.frames_of[w];
		unsigned k = below(r, 100), fr = held * 3 < nr ? 5 : 30;
		if (__builtin_popcount(s->live) < 2 && chance(r, 30)) {
			p6_add(s, p6_new_id(s), p6_mask(s), chance(r, 40), chance(r, 20) ? 1 + below(r, 64) : 0);
		} else if (k < 55) {
			p6_alloc(s, p6_some_owner(s));
		} else if (k < 55 + fr) {
			p6_free(s);
		} else if ((k = below(r, 100)) < 4) {
			if (s->live) {
				lab_owner_t w;
				do
					w = 1 + below(r, P6_OWNERS);
				while (!(s->live >> w & 1));
				p6_remove(s, w);
			} else if (lab_owner_remove(s->t.z, 1 + below(r, P6_OWNERS), 16) != LAB_ENOOWNER) {
				s->call_bad++;
			}
		} else if (k < 70) {
			p6_add(s, p6_new_id(s), p6_mask(s), chance(r, 40), chance(r, 20) ? 1 + below(r, 64) : 0);
		} else if (k < 90) {
			int rc = lab_scrub(s->t.z, 1 + below(r, 64), NULL);
			if (rc != LAB_OK && rc != LAB_EAGAIN)
				s->call_bad++;
		} else if (lab_cpu_drain(s->t.z) != LAB_OK) {
			s->call_bad++;
		}
		if (i % 64 == 63)
			p6_scan(s);
	}
	p6_scan(s);
	if (p6_broken(s))
		goto out;
	/* Tear everything down: every colour goes back, nothing stays held. */
	for (lab_owner_t w = 1; w <= P6_OWNERS && !p6_broken(s); w++)
		if (s->live >> w & 1)
			p6_remove(s, w);
	if (p6_broken(s))
		goto out;
	p6_scan(s);
	struct lab_stats st;
	if (lab_stats(s->t.z, &st) != LAB_OK || st.nr_allocated || st.nr_pools || st.nr_owners) {
		s->mismatches++;
		p6_first(s, "after removing every owner: %lld frames held, %lld pools",
		         (long long)st.nr_allocated, st.nr_pools);
	}
out:
	model_fini(&s->m);
	zone_free(&s->t);
}

/* ---- Prime+Probe: the colours measured, where the machine lets us ----------------
 *
 * Same CPU, in turn: the attacker (colours of the lower half) reads its
 * frames, enough to fill its colours' share of every L2 set (ways x its
 * colours frames), as a chain of dependent loads in a random order; the
 * victim writes every line of twice as many frames, either of the same
 * colours (a shared pool) or of the other half (an exclusive owner), or
 * does nothing (idle); then the attacker times one walk of its chain.  The
 * victim's lines evict the attacker's only if they share L2 sets: R =
 * (disjoint - idle) / (shared - idle) is ~0 when colours isolate and ~1
 * when they do not.  Colours are real PFN mod colours; in a VM that is the
 * guest's PFN, and whether the host keeps those bits (2 MiB host pages) or
 * not (4 KiB) decides R: the figure measures this host, not the design. */
#define PP_ROUNDS 201

struct pp_chain {
	void **start;
	size_t lines;
};

static double pp_walk(const struct pp_chain *c)
{
	void **p = c->start;
	double t0 = cli_now();
	for (size_t i = 0; i < c->lines; i++)
		p = (void **)*p;
	double t = cli_now() - t0;
	__asm__ volatile("" : : "r"(p));
	return t;
}

/* The victim: write every line at offsets [lo, hi) of each frame.  The
 * addresses are computed, not read from a list: a list of lines would itself
 * pass through every set the attacker fills. */
struct pp_victim {
	uint8_t **frames;
	size_t n, lo, hi;
};

static void pp_touch(const struct pp_victim *v)
{
	for (size_t l = v->lo; l < v->hi; l += 64)
		for (size_t i = 0; i < v->n; i++)
			*(volatile uint8_t *)(v->frames[i] + l) = (uint8_t)i;
}

/* n frames of owner w, their addresses in out; false if the zone ran out. */
static bool pp_frames(lab_zone_t *z, lab_owner_t w, size_t n, uint8_t **out)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t pfn;
		if (lab_alloc(z, w, 0, LAB_NOWAIT, &pfn) != LAB_OK || !(out[i] = lab_pfn_to_virt(z, pfn)))
			return false;
	}
	return true;
}

/* Medians over PP_ROUNDS of one timed walk of the attacker's lines: offsets
 * [lo, hi) of its na frames, one chain of dependent loads in a random order
 * (no prefetcher runs ahead of it), in ns per line, after the victim wrote
 * nothing (med[0]), its shared frames (med[1]) or its disjoint ones
 * (med[2]).  Returns R, or -1 when the shared victim slowed nothing. */
static double pp_run(struct rng *r, uint8_t **att, size_t na, size_t lo, size_t hi,
                     const struct pp_victim *vs, const struct pp_victim *vd, double med[3])
{
	size_t per = (hi - lo) / 64, nl = na * per;
	void **line = calloc(nl, sizeof *line);
	double *t[3];
	for (int m = 0; m < 3; m++)
		t[m] = calloc(PP_ROUNDS, sizeof(double));
	med[0] = med[1] = med[2] = 0;
	if (!line || !t[0] || !t[1] || !t[2])
		goto out;
	for (size_t i = 0; i < nl; i++)
		line[i] = att[i / per] + lo + i % per * 64;
	for (size_t i = nl - 1; i > 0; i--) {
		size_t j = below(r, (uint32_t)(i + 1));
		void *x = line[i];
		line[i] = line[j];
		line[j] = x;
	}
	for (size_t i = 0; i < nl; i++)
		*(void **)line[i] = line[(i + 1) % nl];
	struct pp_chain ch = {(void **)line[0], nl};
	for (unsigned k = 0; k < PP_ROUNDS; k++) {
		unsigned first = below(r, 3); /* the modes in a rotating order */
		for (unsigned j = 0; j < 3; j++) {
			unsigned m = (first + j) % 3; /* 0 idle, 1 shared, 2 disjoint */
			pp_walk(&ch);
			pp_walk(&ch);
			if (m)
				pp_touch(m == 1 ? vs : vd);
			/* The victim's stores drained before the probe, in every
			 * mode: their misses in flight would slow the probe's
			 * loads whatever sets they fall in. */
			atomic_thread_fence(memory_order_seq_cst);
			t[m][k] = pp_walk(&ch);
		}
	}
	for (int m = 0; m < 3; m++) {
		qsort(t[m], PP_ROUNDS, sizeof(double), cli_cmp_double);
		med[m] = t[m][PP_ROUNDS / 2] * 1e9 / (double)nl;
	}
out:
	free(line);
	for (int m = 0; m < 3; m++)
		free(t[m]);
	return med[1] > med[0] ? (med[2] - med[0]) / (med[1] - med[0]) : -1;
}

static void prime_probe(const struct lab_geometry *g, struct lab_hosted_zone *hz, struct rng *r)
{
	unsigned C = hz->colours, W = g->l2.ways, W1 = g->l1d.ways;
	if (C < 2 || W < 4 || W > 64 || W1 < 4 || W1 > 64 || g->l1d.sets * g->l1d.line > FRAME) {
		audit_note("Prime+Probe: not run (%u colours, L2 ways %u, L1d ways %u)", C, W, W1);
		return;
	}
	/* The attacker fills all but two ways of its sets: the slack takes the
	 * stack and the loop's own lines, which would otherwise evict its lines
	 * in every mode alike and hide the victim's. */
	size_t na = (size_t)(C / 2) * (W - 2), nv = (size_t)(C / 2) * 2 * W;
	uint64_t lo = (1ull << (C / 2)) - 1, hi = lo << (C / 2);
	struct lab_owner_cfg a = {.colours = lo}, v_sh = {.colours = lo}, v_ex = {.colours = hi,
	                                                                       .flags = LAB_OWNER_EXCLUSIVE};
	uint8_t **fa = calloc(na, sizeof *fa), **fs = calloc(nv, sizeof *fs), **fd = calloc(nv, sizeof *fd);
	double med[3], R;
	if (!fa || !fs || !fd || lab_owner_add(hz->zone, 1, &a) || lab_owner_add(hz->zone, 2, &v_sh) ||
	    lab_owner_add(hz->zone, 3, &v_ex) || !pp_frames(hz->zone, 1, na, fa) ||
	    !pp_frames(hz->zone, 2, nv, fs) || !pp_frames(hz->zone, 3, nv, fd)) {
		audit_note("Prime+Probe: not run (could not set up %zu + 2 x %zu frames)", na, nv);
		goto out;
	}
	/* The method, where the answer is known: the L1d's set bits lie inside
	 * a page, so lines in the first half of their pages and lines in the
	 * second half never share an L1d set, whatever the frames. */
	size_t half = (size_t)g->l1d.sets * g->l1d.line / 2;
	struct pp_victim s1 = {fs, 2 * W1, 0, half}, d1 = {fs, 2 * W1, half, 2 * half};
	R = pp_run(r, fa, W1 - 2, 0, half, &s1, &d1, med);
	audit_note("Prime+Probe, the method on the L1d (the first vs the second half of pages): idle "
	           "%.2f, same sets %.2f, other sets %.2f ns per line: R = %.2f (~0 expected)",
	           med[0], med[1], med[2], R);
	/* The colours: frames of the attacker's colours against frames of the
	 * same colours (a shared pool) or of the other half (exclusive). */
	struct pp_victim s2 = {fs, nv, 0, FRAME}, d2 = {fd, nv, 0, FRAME};
	R = pp_run(r, fa, na, 0, FRAME, &s2, &d2, med);
	audit_note("Prime+Probe, the colours on the L2 (%u rounds, medians): idle %.2f, victim in the "
	           "same colours %.2f, in disjoint colours %.2f ns per line: R = (disjoint - idle) / "
	           "(shared - idle) = %.2f", PP_ROUNDS, med[0], med[1], med[2], R);
	audit_note("  attacker %zu frames (colours 0..%u, %u of %u ways), victim %zu frames; R ~0: the "
	           "colours isolate on this machine, ~1: they do not%s", na, C / 2 - 1, W - 2, W, nv,
	           cli_in_vm() ? "; in a VM this measures whether the host keeps the guest's PFN "
	           "bits (2 MiB host pages) or not, not the allocator" : "");
out:
	free(fa);
	free(fs);
	free(fd);
}

/* The geometry, and (with --full) the Prime+Probe experiment above on a
 * hosted zone whose colours are real PFNs on 2 MiB pages. */
static void colour_geometry(const struct audit_opts *o, struct rng *r)
{
	struct lab_geometry g;
	struct lab_hosted_zone hz;
	struct lab_hosted_opts ho = {.bytes = 16u << 20, .nr_cpus = 1, .reserve_permille = LAB_HOSTED_NO_RESERVE};
	lab_hosted_geometry(&g);
	char l3[120] = "no L3 reported";
	if (g.l3.size && g.l3.ways)
		snprintf(l3, sizeof(l3), "L3 %llu KiB %u-way would give %u (sliced: not used)",
		         (unsigned long long)(g.l3.size >> 10), g.l3.ways, g.colours_l3);
	else if (g.l3.size)
		snprintf(l3, sizeof(l3), "L3 %llu KiB, ways unknown (not used)",
		         (unsigned long long)(g.l3.size >> 10));
	audit_note("geometry (%s): L2 %llu KiB %u-way %u sets %u B lines -> %u colours of 4 KiB; %s",
	           g.source, (unsigned long long)(g.l2.size >> 10), g.l2.ways, g.l2.sets, g.l2.line,
	           g.colours, l3);
	int rc = lab_hosted_zone_create(&ho, &hz);
	if (rc != LAB_OK) {
		audit_note("probe zone: lab_hosted_zone_create failed (%s)", lab_strerror(rc));
		return;
	}
	audit_note("probe zone of 16 MiB: real PFNs %s, 2 MiB pages %s%s%s", hz.real_pfns ? "yes" : "no",
	           hz.hugepages ? "yes" : "no", hz.why[0] ? ": " : "", hz.why);
	if (cli_in_vm())
		audit_note("in a VM: guest PFNs predict the host's cache placement only if the host backs "
		           "guest memory with 2 MiB pages, which the guest cannot see (Prime+Probe below "
		           "measures it); isolation is checked below as an exact model of the allocator's rules");
	if (!o->full)
		audit_note("Prime+Probe: run with --full");
	else if (!hz.real_pfns || !hz.hugepages)
		audit_note("Prime+Probe: not run (the zone's colours are not real PFNs on 2 MiB pages)");
	else
		prime_probe(&g, &hz, r);
	lab_hosted_zone_destroy(&hz);
}

int audit_colour(const struct audit_opts *o)
{
	struct p6 *s = calloc(1, sizeof(*s));
	int failed = 0;
	uint64_t configs = o->full ? 5000 : 200;
	double t0 = cli_now();
	struct rng pr;
	rng_init(&pr, run_seed(o), 0x99);
	colour_geometry(o, &pr);
	uint8_t *arena = aligned_alloc(FRAME, P6_MAX_FRAMES * FRAME);
	if (!s || !arena) {
		free(s);
		free(arena);
		return audit_line("P6", false, "colour model", "out of memory");
	}
	/* One zeroed arena for every configuration: nothing here writes a
	 * non-zero byte, so LAB_ZONE_ZEROED stays true (scrubs write zeroes). */
	memset(arena, 0, P6_MAX_FRAMES * FRAME);
	rng_init(&s->r, run_seed(o), 0x66);
	s->colourblind = o->policy == POLICY_COLOURBLIND;
	uint64_t done = 0;
	for (; done < configs && !p6_broken(s); done++)
		p6_config(s, o, arena, done);
	if (done < configs)
		audit_note("stopped after configuration %llu of %llu: the first problem is reported below",
		           (unsigned long long)done, (unsigned long long)configs);
	free(arena);
	char more[240] = "";
	if (s->add_wrong)
		snprintf(more, sizeof(more), "; %llu wrong codes (first: got %s, want %s)",
		         (unsigned long long)s->add_wrong, code_name(s->add_got), code_name(s->add_want));
	failed += audit_line("P6", !s->add_wrong && s->ov_cases && s->free_cases,
	                     "overlapping owner configurations refused",
	                     "refused %llu of %llu that overlap, accepted %llu of %llu that do not, "
	                     "other bad adds right %llu/%llu%s",
	                     (unsigned long long)s->ov_refused, (unsigned long long)s->ov_cases,
	                     (unsigned long long)s->free_accepted, (unsigned long long)s->free_cases,
	                     (unsigned long long)s->other_right, (unsigned long long)s->other_cases, more);
	bool pass = !s->violations && !s->mismatches && !s->check_bad && !s->call_bad && s->excl_frames;
	failed += audit_line("P6", pass, "exclusive colours never shared",
	                     "%llu frames checked in %llu scans (%llu held, %llu by exclusive owners), "
	                     "violations %llu, model mismatches %llu, bad calls %llu, lab_check failures %llu%s%s",
	                     (unsigned long long)s->frames, (unsigned long long)s->scans,
	                     (unsigned long long)s->held_frames, (unsigned long long)s->excl_frames,
	                     (unsigned long long)s->violations, (unsigned long long)s->mismatches,
	                     (unsigned long long)s->call_bad, (unsigned long long)s->check_bad,
	                     s->first[0] ? "; first: " : "", s->first);
	audit_note("%llu configurations (32 and 64 colours), %llu owner adds, %llu allocations "
	           "(%llu with LAB_EXCLUSIVE), %llu frees, %llu removals; %.1f s",
	           (unsigned long long)done, (unsigned long long)s->adds, (unsigned long long)s->allocs,
	           (unsigned long long)s->allocs_excl, (unsigned long long)s->frees,
	           (unsigned long long)s->removals, cli_now() - t0);
	if (o->verbose) {
		char h[400];
		size_t len = 0;
		for (int c = 0; c < 24 && len < sizeof(h); c++)
			if (s->alloc_rc[c])
				len += (size_t)snprintf(h + len, sizeof(h) - len, " %s %llu", code_name(-c),
				                        (unsigned long long)s->alloc_rc[c]);
		audit_note("allocation results:%s; %.1f held frames per scan", h,
		           s->scans ? (double)s->held_frames / (double)s->scans : 0.0);
	}
	free(s);
	return failed;
}
