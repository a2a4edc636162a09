/*
 * audit_placement.c - P1, placement randomness: from fixed allocator states,
 * is the frame handed out uniform over the free frames, and unpredictable
 * from what an owner can see (the frames it gets and the frames it frees)?
 *
 * Metrics, formulas and thresholds are those of issue #3 and of the
 * project's evaluation brief ("Placement randomness"; not in this
 * repository), each restated where it is computed below.  Every metric is computed by the same code
 * whatever allocator is under test: the library (POLICY_LAB) or one of the
 * deliberately bad toy allocators below (--policy lifo|scan|firstfit).  The
 * toys exist to show that each metric can fail: a metric that no bad policy
 * fails proves nothing when the library passes it.
 *
 * States (exact: every frame is allocated, then exactly the layout's free
 * frames are freed): 0, 50, 90 and 99 % occupancy with random held sets, a
 * checkerboard (every other frame free) and "one colour" (only colour-0
 * frames free).  Measurements leave the state as they found it: alloc+free
 * pairs, two allocations then two frees (adjacency), short bursts of
 * allocations then frees (predictors).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

#define NCOL 32u     /* colours of the audit zone: the library's default   */
#define OWNER_A 1u   /* holds the state's allocated frames                 */
#define OWNER_B 2u   /* same colours as A, hence the same pool             */
#define Z999 3.090   /* one-sided 99.9 % normal quantile                   */
#define CHI_Z 3.7    /* |z| bound for the chi-square test                  */
#define BURST_MAX 4u /* predictor stream: 1..BURST_MAX allocations a burst  */

/* ---- xoshiro256**: the toys' and the layouts' randomness, and the ideal
 * uniform sampler the library is compared with.  Seeded from o->seed only,
 * so a reduced run is the same every time. ---------------------------------- */

struct xo {
	uint64_t s[4];
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A seed for one purpose in one state: distinct streams never overlap in
 * practice, and no two purposes share a generator by accident. */
static uint64_t seed_for(uint64_t seed, unsigned state, unsigned purpose)
{
	uint64_t x = seed ^ ((uint64_t)state << 32 | purpose) * 0xd6e8feb86659fd93ull;
	splitmix(&x);
	return splitmix(&x);
}

static void xo_seed(struct xo *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t xo_next(struct xo *r)
{
	uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* Uniform in [0, n): multiply-high, bias at most n / 2^64 (far below what
 * any test here can see). */
static inline uint32_t xo_below(struct xo *r, uint32_t n)
{
	return (uint32_t)(((unsigned __int128)xo_next(r) * n) >> 64);
}

/* ---- bitmaps ---------------------------------------------------------------- */

static inline void bit_set(uint64_t *b, uint32_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

static inline void bit_clear(uint64_t *b, uint32_t i)
{
	b[i / 64] &= ~(1ull << (i % 64));
}

static inline bool bit_test(const uint64_t *b, uint32_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

/* First set bit at or after `from`, UINT32_MAX if none (bits past nr are
 * never set). */
static uint32_t bit_next(const uint64_t *b, uint32_t nr, uint32_t from)
{
	uint32_t w = from / 64, nw = (nr + 63) / 64;
	if (from >= nr)
		return UINT32_MAX;
	uint64_t m = b[w] & (~0ull << (from % 64));
	for (;;) {
		if (m)
			return w * 64 + (uint32_t)__builtin_ctzll(m);
		if (++w == nw)
			return UINT32_MAX;
		m = b[w];
	}
}

/* ---- the allocator under test ---------------------------------------------------
 *
 * One interface, two implementations: the library, and the toys over the
 * same frame numbers 0..nr-1.  reset() leaves every frame allocated to
 * OWNER_A; the caller then frees the layout's frames one by one. */

struct placer;

struct placer_ops {
	bool (*reset)(struct placer *p, uint64_t seed);
	bool (*alloc)(struct placer *p, lab_owner_t who, uint32_t *f);
	bool (*free)(struct placer *p, lab_owner_t who, uint32_t f);
	bool (*settle)(struct placer *p); /* state built: nothing hidden in caches */
};

struct placer {
	const struct placer_ops *ops;
	enum audit_policy policy;
	uint32_t nr;
	char err[120];
	/* the library */
	lab_zone_t *zone;
	void *meta;
	size_t meta_size;
	struct lab_zone_cfg cfg;
	uint8_t key[32];
	/* the toys */
	uint64_t *bits; /* bit f: frame f free */
	uint32_t *stack; /* LIFO: the free frames, top at depth - 1 */
	uint32_t depth, nfree;
	struct xo rng;
};

static bool lab_fail(struct placer *p, const char *what, int rc)
{
	snprintf(p->err, sizeof p->err, "%s: %s", what, lab_strerror(rc));
	return false;
}

static bool libp_reset(struct placer *p, uint64_t seed)
{
	/* A fresh zone for every state, keyed from the audit seed, so that a
	 * state's result does not depend on the states measured before it and
	 * a reduced run is reproducible. */
	for (int i = 0; i < 4; i++) {
		uint64_t v = splitmix(&seed);
		memcpy(p->key + 8 * i, &v, 8);
	}
	memset(p->meta, 0, p->meta_size);
	int rc = lab_zone_init(&p->zone, p->meta, p->meta_size, &p->cfg);
	if (rc != LAB_OK)
		return lab_fail(p, "lab_zone_init", rc);
	/* Two shared owners with every colour: one pool, so "across owners"
	 * reuse (A frees, B allocates next) is a real possibility. */
	struct lab_owner_cfg oc = {.colours = (1ull << NCOL) - 1, .quota = 0, .flags = 0};
	if ((rc = lab_owner_add(p->zone, OWNER_A, &oc)) != LAB_OK ||
	    (rc = lab_owner_add(p->zone, OWNER_B, &oc)) != LAB_OK)
		return lab_fail(p, "lab_owner_add", rc);
	for (uint32_t i = 0; i < p->nr; i++) {
		uint64_t pfn;
		if ((rc = lab_alloc(p->zone, OWNER_A, 0, LAB_NOWAIT, &pfn)) != LAB_OK)
			return lab_fail(p, "filling the zone", rc);
	}
	struct lab_stats st;
	if ((rc = lab_stats(p->zone, &st)) != LAB_OK)
		return lab_fail(p, "lab_stats", rc);
	if (st.nr_allocated != p->nr || st.nr_free != 0) {
		snprintf(p->err, sizeof p->err, "zone not full after %u allocations", p->nr);
		return false;
	}
	return true;
}

static bool libp_alloc(struct placer *p, lab_owner_t who, uint32_t *f)
{
	uint64_t pfn;
	int rc = lab_alloc(p->zone, who, 0, LAB_NOWAIT, &pfn);
	if (rc != LAB_OK)
		return lab_fail(p, "lab_alloc", rc);
	if (pfn >= p->nr) { /* base_pfn is 0: pfn is the frame number */
		snprintf(p->err, sizeof p->err, "lab_alloc returned pfn %llu", (unsigned long long)pfn);
		return false;
	}
	*f = (uint32_t)pfn;
	return true;
}

static bool libp_free(struct placer *p, lab_owner_t who, uint32_t f)
{
	int rc = lab_free(p->zone, who, f, 0);
	return rc == LAB_OK ? true : lab_fail(p, "lab_free", rc);
}

static bool libp_settle(struct placer *p)
{
	/* Frames freed while building sit partly in this CPU's cache; drain
	 * so the state is what its layout says, with nothing in flight. */
	int rc = lab_cpu_drain(p->zone);
	return rc == LAB_OK ? true : lab_fail(p, "lab_cpu_drain", rc);
}

static const struct placer_ops lib_ops = {libp_reset, libp_alloc, libp_free, libp_settle};

static bool toy_reset(struct placer *p, uint64_t seed)
{
	memset(p->bits, 0, (p->nr + 63) / 64 * sizeof *p->bits);
	p->depth = p->nfree = 0;
	xo_seed(&p->rng, seed);
	return true;
}

static bool toy_alloc(struct placer *p, lab_owner_t who, uint32_t *f)
{
	(void)who; /* the toys have one pool, like the library's two owners */
	if (p->nfree == 0) {
		snprintf(p->err, sizeof p->err, "toy allocator empty");
		return false;
	}
	uint32_t x;
	switch (p->policy) {
	case POLICY_LIFO: /* the frame freed last comes back first */
		x = p->stack[--p->depth];
		break;
	case POLICY_SCAN: /* hardened_malloc's slot choice: random start, scan up */
		x = bit_next(p->bits, p->nr, xo_below(&p->rng, p->nr));
		if (x == UINT32_MAX)
			x = bit_next(p->bits, p->nr, 0);
		break;
	default: /* POLICY_FIRSTFIT: the lowest free frame */
		x = bit_next(p->bits, p->nr, 0);
		break;
	}
	bit_clear(p->bits, x);
	p->nfree--;
	*f = x;
	return true;
}

static bool toy_free(struct placer *p, lab_owner_t who, uint32_t f)
{
	(void)who;
	if (f >= p->nr || bit_test(p->bits, f)) {
		snprintf(p->err, sizeof p->err, "toy: bad free of frame %u", f);
		return false;
	}
	bit_set(p->bits, f);
	p->nfree++;
	if (p->policy == POLICY_LIFO)
		p->stack[p->depth++] = f;
	return true;
}

static bool toy_settle(struct placer *p)
{
	(void)p;
	return true;
}

static const struct placer_ops toy_ops = {toy_reset, toy_alloc, toy_free, toy_settle};

static bool placer_init(struct placer *p, enum audit_policy policy, uint32_t nr)
{
	memset(p, 0, sizeof *p);
	p->policy = policy;
	p->nr = nr;
	if (policy == POLICY_LAB) {
		p->ops = &lib_ops;
		/* No scrubbing: placement does not depend on it, and zeroing
		 * 4 KiB per free would dominate the run time (so no direct map
		 * either).  One CPU: the audit is one thread, and its cache is
		 * where allocations come from, so cached frames stay eligible. */
		lab_zone_cfg_default(&p->cfg, 0, nr, NULL);
		p->cfg.nr_colours = NCOL;
		p->cfg.nr_cpus = 1;
		p->cfg.max_owners = 2;
		p->cfg.reserve_permille = 0; /* every free frame allocatable */
		p->cfg.flags = LAB_ZONE_NO_SCRUB;
		p->cfg.seed = p->key;
		p->cfg.seed_len = sizeof p->key;
		p->meta_size = lab_zone_meta_size(&p->cfg);
		if (!p->meta_size)
			return false;
		p->meta = aligned_alloc(64, (p->meta_size + 63) & ~(size_t)63);
		return p->meta != NULL;
	}
	p->ops = &toy_ops;
	p->bits = calloc((nr + 63) / 64, sizeof *p->bits);
	p->stack = calloc(nr, sizeof *p->stack);
	return p->bits && p->stack;
}

static void placer_fini(struct placer *p)
{
	free(p->meta);
	free(p->bits);
	free(p->stack);
}

/* ---- what the observer knows: the free set --------------------------------------
 *
 * The audit holds every allocated frame itself, so it knows the free set
 * exactly; each frame handed out is checked against it (an allocator that
 * hands out a held frame breaks the run, it is not a statistic). */

struct run {
	struct placer *pl;
	uint32_t nr, nfree;
	uint8_t *free;   /* by frame */
	uint64_t *bits;  /* the same, for the lowest free frame */
	uint32_t by_colour[NCOL];
	bool broken;
	char why[160];
};

static bool run_break(struct run *r, const char *what)
{
	if (!r->broken)
		snprintf(r->why, sizeof r->why, "%s", what);
	r->broken = true;
	return false;
}

static bool take(struct run *r, lab_owner_t who, uint32_t *f)
{
	if (!r->pl->ops->alloc(r->pl, who, f))
		return run_break(r, r->pl->err);
	if (*f >= r->nr || !r->free[*f]) {
		char m[80];
		snprintf(m, sizeof m, "handed out frame %u, which is not free", *f);
		return run_break(r, m);
	}
	r->free[*f] = 0;
	bit_clear(r->bits, *f);
	r->by_colour[*f % NCOL]--;
	r->nfree--;
	return true;
}

static bool give(struct run *r, lab_owner_t who, uint32_t f)
{
	if (!r->pl->ops->free(r->pl, who, f))
		return run_break(r, r->pl->err);
	r->free[f] = 1;
	bit_set(r->bits, f);
	r->by_colour[f % NCOL]++;
	r->nfree++;
	return true;
}

/* ---- states ---------------------------------------------------------------------- */

enum layout { L_OCC, L_CHECKER, L_COLOUR };

struct state {
	const char *name;
	enum layout layout;
	unsigned permille; /* L_OCC: frames held */
};

static const struct state states[] = {
	{"0% full", L_OCC, 0},           {"50% full", L_OCC, 500},   {"90% full", L_OCC, 900},
	{"99% full", L_OCC, 990},        {"checkerboard", L_CHECKER, 0}, {"one colour", L_COLOUR, 0},
};
#define NSTATES (sizeof states / sizeof states[0])

/* Which frames the state wants free (1) or held (0). */
static void layout_make(const struct state *s, uint32_t nr, uint8_t *want, uint64_t seed)
{
	for (uint32_t f = 0; f < nr; f++) {
		switch (s->layout) {
		case L_CHECKER:
			want[f] = f % 2 == 0;
			break;
		case L_COLOUR: /* base_pfn 0: colour = frame mod NCOL */
			want[f] = f % NCOL == 0;
			break;
		default:
			want[f] = 1;
		}
	}
	if (s->layout != L_OCC || s->permille == 0)
		return;
	/* Exactly round(nr * permille / 1000) held frames, a uniform subset
	 * (partial Fisher-Yates): occupancy is exact, not just expected. */
	uint32_t held = (uint32_t)(((uint64_t)nr * s->permille + 500) / 1000);
	uint32_t *perm = malloc(nr * sizeof *perm);
	struct xo rng;
	if (!perm)
		abort();
	xo_seed(&rng, seed);
	for (uint32_t i = 0; i < nr; i++)
		perm[i] = i;
	for (uint32_t i = 0; i < held; i++) {
		uint32_t j = i + xo_below(&rng, nr - i), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
		want[perm[i]] = 0;
	}
	free(perm);
}

/* Build the state: every frame allocated, then the wanted ones freed in
 * ascending order (the observer's LIFO predictor starts from that order). */
static bool state_build(struct run *r, const uint8_t *want, uint64_t seed)
{
	memset(r->free, 0, r->nr);
	memset(r->bits, 0, (r->nr + 63) / 64 * sizeof *r->bits);
	memset(r->by_colour, 0, sizeof r->by_colour);
	r->nfree = 0;
	if (!r->pl->ops->reset(r->pl, seed))
		return run_break(r, r->pl->err);
	for (uint32_t f = 0; f < r->nr; f++)
		if (want[f] && !give(r, OWNER_A, f))
			return false;
	if (!r->pl->ops->settle(r->pl))
		return run_break(r, r->pl->err);
	return true;
}

/* ---- statistics ------------------------------------------------------------------ */

/* Wilson score upper bound, one-sided 99.9 %, of a binomial proportion. */
static double wilson_upper(uint64_t hits, uint64_t trials)
{
	double n = (double)trials, p = (double)hits / n, z2 = Z999 * Z999;
	double c = p + z2 / (2 * n), w = Z999 * sqrt(p * (1 - p) / n + z2 / (4 * n * n));
	return (c + w) / (1 + z2 / n);
}

/* Smallest q with P(Poisson(mu) <= q) >= 0.999 (mu small: direct sum). */
static uint64_t poisson_q999(double mu)
{
	double pmf = exp(-mu), cdf = pmf;
	uint64_t q = 0;
	while (cdf < 0.999) {
		q++;
		pmf *= mu / (double)q;
		cdf += pmf;
	}
	return q;
}

/* Wilson-Hilferty: chi-square with k degrees of freedom -> standard normal. */
static double wilson_hilferty(double chi2, double k)
{
	double v = 2 / (9 * k);
	return (cbrt(chi2 / k) - (1 - v)) / sqrt(v);
}

/* NIST SP 800-90B 6.3.1 most-common-value estimate. */
static double mcv_entropy(uint64_t maxc, uint64_t m)
{
	double p = (double)maxc / (double)m;
	double pu = p + 2.576 * sqrt(p * (1 - p) / (double)(m - 1));
	return pu < 1 ? -log2(pu) : 0; /* not -log2(1): that prints as -0.00 */
}

/* The same estimator on an ideal uniform sampler over n values, M draws:
 * the estimator is biased low at finite M, so this is the yardstick. */
static double mcv_reference(uint32_t n, uint64_t m, uint64_t seed)
{
	uint32_t *c = calloc(n, sizeof *c), maxc = 0;
	struct xo rng;
	if (!c)
		abort();
	xo_seed(&rng, seed);
	for (uint64_t i = 0; i < m; i++) {
		uint32_t x = ++c[xo_below(&rng, n)];
		maxc = x > maxc ? x : maxc;
	}
	free(c);
	return mcv_entropy(maxc, m);
}

/* ---- measurements ---------------------------------------------------------------- */

/*
 * alloc+free pairs, `trials` transitions: reuse hits count "the frame
 * allocated is the one freed just before".  With `alternate`, the owner
 * changes at every pair, so each transition is A frees -> B allocates (or
 * B -> A).  The first m frames are counted into counts[] for chi-square.
 */
static bool run_pairs(struct run *r, bool alternate, uint64_t trials, uint32_t *counts, uint64_t m,
                      uint64_t *hits)
{
	uint32_t last = UINT32_MAX, f;
	lab_owner_t who = OWNER_A;
	*hits = 0;
	for (uint64_t t = 0; t <= trials; t++) {
		if (!take(r, who, &f))
			return false;
		if (t < m)
			counts[f]++;
		*hits += f == last;
		if (!give(r, who, f))
			return false;
		last = f;
		if (alternate)
			who = who == OWNER_A ? OWNER_B : OWNER_A;
	}
	return true;
}

/* Two allocations in a row, then both freed (in allocation order). */
static bool run_adjacent(struct run *r, uint64_t trials, uint64_t *hits)
{
	uint32_t a, b;
	*hits = 0;
	for (uint64_t t = 0; t < trials; t++) {
		if (!take(r, OWNER_A, &a) || !take(r, OWNER_A, &b))
			return false;
		*hits += (a > b ? a - b : b - a) == 1;
		if (!give(r, OWNER_A, a) || !give(r, OWNER_A, b))
			return false;
	}
	return true;
}

enum { PR_LASTFREED, PR_NEXT, PR_PREV, PR_LOWEST, PR_FREQ, PR_STACK, PR_COLOUR, PR_NR };
static const char *const pr_name[PR_NR] = {"last freed", "previous+1", "previous-1", "lowest free",
                                           "most frequent", "LIFO stack", "same colour"};

struct pred {
	uint64_t hits[PR_NR], trials;
	/* Sum over trials of the chance that a uniform pick hits the guess:
	 * 1/n_free for a frame guess, free frames of the colour / n_free for
	 * the colour guess.  A guess is judged against its own chance. */
	double chance[PR_NR];
};

/* The observer's LIFO stack of freed frames, with frames that were
 * allocated since dropped lazily: an entry counts only while its frame is
 * free and it is that frame's latest push. */
struct lstack {
	uint32_t *f, *seq, *last_seq;
	uint32_t depth, cap, next_seq;
};

static void lstack_push(struct lstack *s, const uint8_t *isfree, uint32_t f)
{
	if (s->depth == s->cap) { /* compact: at most one live entry per free frame */
		uint32_t k = 0;
		for (uint32_t i = 0; i < s->depth; i++) {
			if (isfree[s->f[i]] && s->last_seq[s->f[i]] == s->seq[i]) {
				s->f[k] = s->f[i];
				s->seq[k++] = s->seq[i];
			}
		}
		s->depth = k;
	}
	s->seq[s->depth] = s->last_seq[f] = ++s->next_seq;
	s->f[s->depth++] = f;
}

static uint32_t lstack_top(struct lstack *s, const uint8_t *isfree)
{
	while (s->depth) {
		uint32_t i = s->depth - 1, f = s->f[i];
		if (isfree[f] && s->last_seq[f] == s->seq[i])
			return f;
		s->depth--;
	}
	return UINT32_MAX;
}

/*
 * The predictor stream: bursts of 1..BURST_MAX allocations, then the same
 * frames freed in a random order, so the state is back where it was after
 * every burst.  Bursts rather than pairs because in a pair stream the LIFO
 * stack top, the last freed frame and the previous allocation are all the
 * same frame; bursts let each predictor see a history of its own kind.
 * Guesses use only what an owner sees: its own allocations and frees.
 */
static bool run_predictors(struct run *r, uint64_t allocs, uint64_t seed, struct pred *pr)
{
	uint32_t *cnt = calloc(r->nr, sizeof *cnt);
	struct lstack st = {.cap = 2 * r->nr + 2 * BURST_MAX};
	st.f = malloc(st.cap * sizeof *st.f);
	st.seq = malloc(st.cap * sizeof *st.seq);
	st.last_seq = calloc(r->nr, sizeof *st.last_seq);
	if (!cnt || !st.f || !st.seq || !st.last_seq)
		abort();
	struct xo rng;
	xo_seed(&rng, seed);
	memset(pr, 0, sizeof *pr);

	/* History before the stream: the build freed the free frames in
	 * ascending order. */
	uint32_t last_freed = UINT32_MAX, prev = UINT32_MAX, best = UINT32_MAX;
	for (uint32_t f = 0; f < r->nr; f++) {
		if (r->free[f]) {
			lstack_push(&st, r->free, f);
			last_freed = f;
		}
	}
	bool ok = true;
	while (ok && pr->trials < allocs) {
		uint32_t k = 1 + xo_below(&rng, BURST_MAX), got[BURST_MAX];
		for (uint32_t j = 0; j < k; j++) {
			uint32_t g[PR_NR], f;
			double frame_chance = 1.0 / r->nfree;
			g[PR_LASTFREED] = last_freed;
			g[PR_NEXT] = prev + 1 < r->nr ? prev + 1 : UINT32_MAX;
			g[PR_PREV] = prev != UINT32_MAX && prev > 0 ? prev - 1 : UINT32_MAX;
			g[PR_LOWEST] = bit_next(r->bits, r->nr, 0);
			g[PR_FREQ] = best;
			g[PR_STACK] = lstack_top(&st, r->free);
			uint32_t colour = prev != UINT32_MAX ? prev % NCOL : UINT32_MAX;
			for (int i = 0; i < PR_COLOUR; i++)
				pr->chance[i] += frame_chance;
			if (colour != UINT32_MAX)
				pr->chance[PR_COLOUR] += (double)r->by_colour[colour] / r->nfree;
			if (!(ok = take(r, OWNER_A, &f)))
				break;
			for (int i = 0; i < PR_COLOUR; i++)
				pr->hits[i] += f == g[i];
			pr->hits[PR_COLOUR] += f % NCOL == colour;
			pr->trials++;
			/* Ties keep the older leader: no tie-break guesses newer. */
			if (++cnt[f] > (best == UINT32_MAX ? 0 : cnt[best]))
				best = f;
			prev = f;
			got[j] = f;
		}
		if (!ok)
			break;
		for (uint32_t j = k; j > 1; j--) {
			uint32_t i = xo_below(&rng, j), t = got[j - 1];
			got[j - 1] = got[i];
			got[i] = t;
		}
		for (uint32_t j = 0; j < k && ok; j++) {
			ok = give(r, OWNER_A, got[j]);
			last_freed = got[j];
			lstack_push(&st, r->free, got[j]);
		}
	}
	free(cnt);
	free(st.f);
	free(st.seq);
	free(st.last_seq);
	return ok;
}

/* ---- one state --------------------------------------------------------------------- */

struct sizes {
	uint32_t nr;
	unsigned chi_mult;   /* M = chi_mult * n_free draws (chi-square, entropy) */
	unsigned reuse_mult; /* reuse and predictor trials: reuse_mult * n_free */
	uint64_t adj_cap;    /* most adjacency trials per state               */
};

/* What one state's runs produced, before any verdict. */
struct results {
	uint32_t n;                       /* free frames */
	uint64_t m, trials;               /* chi-square draws, reuse trials */
	uint64_t same_hits, cross_hits;   /* reuse */
	uint64_t adj_pairs, adj_trials, adj_hits;
	double p_adj;                     /* the ideal sampler's adjacency rate */
	struct pred pr;
};

/* Build the state and run every stream on it; false if the run broke
 * (r->why says how). */
static bool collect(struct run *r, unsigned si, const struct sizes *sz, uint64_t seed,
                    const uint8_t *want, uint32_t *counts, struct results *res)
{
	if (!state_build(r, want, seed_for(seed, si, 2)))
		return false;
	const uint32_t n = res->n = r->nfree;
	res->m = (uint64_t)sz->chi_mult * n;
	res->trials = (uint64_t)sz->reuse_mult * n;

	/* Predictors first: their LIFO stack starts from the build's frees. */
	if (!run_predictors(r, res->trials, seed_for(seed, si, 3), &res->pr))
		return false;
	/* Same-owner pairs: chi-square and entropy over the first M frames,
	 * reuse over all of them.  Then pairs alternating owners. */
	if (!run_pairs(r, false, res->trials, counts, res->m, &res->same_hits) ||
	    !run_pairs(r, true, res->trials, counts, 0, &res->cross_hits))
		return false;

	/* Adjacency.  The ideal uniform sampler's rate is exact, not
	 * simulated: with A pairs of adjacent free frames, a uniform first
	 * pick and a uniform second pick among the rest are adjacent with
	 * probability 2A / (n (n - 1)), which a simulation only approaches.
	 * Trials: enough for about 200 adjacent pairs from the ideal sampler,
	 * so its own upper bound stays near 1.2x. */
	res->adj_pairs = 0;
	for (uint32_t f = 0; f + 1 < r->nr; f++)
		res->adj_pairs += want[f] && want[f + 1];
	res->p_adj = 2.0 * (double)res->adj_pairs / ((double)n * (n - 1));
	res->adj_trials = res->trials;
	if (res->p_adj > 0 && 200 / res->p_adj > (double)res->adj_trials)
		res->adj_trials = 200 / res->p_adj > (double)sz->adj_cap ? sz->adj_cap
		                                                        : (uint64_t)(200 / res->p_adj);
	if (!run_adjacent(r, res->adj_trials, &res->adj_hits))
		return false;

	/* Leave no trace: the run must end in the state it started from. */
	if (r->nfree != n)
		return run_break(r, "state not restored after the runs");
	if (r->pl->policy == POLICY_LAB && lab_check(r->pl->zone) != LAB_OK)
		return run_break(r, "lab_check: metadata inconsistent");
	return true;
}

/* The verdicts: one line per metric.  Returns the number of failures. */
static int report(const struct audit_opts *o, unsigned si, const struct results *res,
                  const uint8_t *want, const uint32_t *counts, uint32_t nr, uint64_t seed)
{
	const uint32_t n = res->n;
	char what[64], tag[40];
	int failed = 0;
	snprintf(tag, sizeof tag, "%s (%u free)", states[si].name, n);

	/* chi-square over the free frames, k = n - 1 */
	double e = (double)res->m / n, chi2 = 0;
	uint32_t maxc = 0;
	for (uint32_t f = 0; f < nr; f++) {
		if (!want[f])
			continue;
		double d = counts[f] - e;
		chi2 += d * d / e;
		maxc = counts[f] > maxc ? counts[f] : maxc;
	}
	double z = wilson_hilferty(chi2, n - 1.0);
	snprintf(what, sizeof what, "chi-square, %s", tag);
	/* Signed: z < 0 means counts too even (frames kept from coming back),
	 * z > 0 too uneven (favoured frames); both are departures. */
	failed += audit_line("P1", fabs(z) < CHI_Z, what, "z = %+.2f, |z| %s %.1f (M = %llu)", z,
	                     fabs(z) < CHI_Z ? "<" : ">=", CHI_Z, (unsigned long long)res->m);

	double h = mcv_entropy(maxc, res->m), href = mcv_reference(n, res->m, seed_for(seed, si, 4));
	snprintf(what, sizeof what, "min-entropy, %s", tag);
	failed += audit_line("P1", h >= href - 0.5, what, "H = %.2f %s %.2f - 0.5 bit (uniform ref)", h,
	                     h >= href - 0.5 ? ">=" : "<", href);

	/* Reuse: the ideal rate is 1/n; the bound must be <= 2/n.  Shown in
	 * units of 1/n so every state reads the same way. */
	for (int cross = 0; cross < 2; cross++) {
		uint64_t hits = cross ? res->cross_hits : res->same_hits;
		double ub = wilson_upper(hits, res->trials) * n;
		snprintf(what, sizeof what, "reuse, %s, %s", cross ? "across owners" : "same owner", tag);
		failed += audit_line("P1", ub <= 2, what, "%llu/%llu, bound %.2f/n %s 2/n",
		                     (unsigned long long)hits, (unsigned long long)res->trials, ub,
		                     ub <= 2 ? "<=" : ">");
	}

	/*
	 * Adjacency, pass: rate <= 2x the uniform rate.  With enough expected
	 * pairs (>= 25 from the ideal sampler) the 99.9 % upper bound of the
	 * measured rate must be <= 2x.  Below that a bound is too wide for an
	 * ideal allocator to pass, so the small-count rule: fail when the
	 * count is above the 99.9 % Poisson quantile of twice the uniform
	 * expectation.  No adjacent free pair at all (checkerboard, one
	 * colour): that quantile is 0, and no allocator can score a hit.
	 */
	double lam = res->p_adj * (double)res->adj_trials;
	unsigned long long ah = res->adj_hits, at = res->adj_trials;
	snprintf(what, sizeof what, "adjacent allocations, %s", tag);
	if (res->adj_pairs == 0) {
		/* No two free frames are adjacent: no allocator can score a hit,
		 * so a PASS here would prove nothing.  Not counted as a check;
		 * a hit anyway would be a broken harness, and fails. */
		if (ah == 0)
			audit_note("n/a  P1  %-52s no two free frames adjacent: cannot fail, not counted", what);
		else
			failed += audit_line("P1", false, what, "%llu/%llu with no adjacent free frames", ah, at);
	} else if (lam >= 25) {
		double ratio = (double)ah / lam, rub = wilson_upper(ah, at) / res->p_adj;
		failed += audit_line("P1", rub <= 2, what, "%.2fx uniform, bound %.2fx %s 2x", ratio, rub,
		                     rub <= 2 ? "<=" : ">");
	} else {
		unsigned long long q = poisson_q999(2 * lam);
		failed += audit_line("P1", ah <= q, what, "%llu hits %s %llu (uniform expects %.1f)", ah,
		                     ah <= q ? "<=" : ">", q, lam);
	}

	/*
	 * Predictors: each one's 99.9 % upper bound on its hit rate, over its
	 * chance of hitting by luck.  For frame guesses the chance is 1/n_free
	 * (bursts shrink n_free by up to 3, which the chance follows), so this
	 * is "hit rate <= 2/n_free".  "Same colour as last" is a guess of a
	 * colour, not a frame: a uniform pick has the colour with probability
	 * (free frames of that colour) / n_free, 1/32 or 1 here, never
	 * 1/n_free, so it is judged against that chance, also at 2x.
	 */
	const struct pred *pr = &res->pr;
	int bi = 0;
	double bub = -1, bpt = 0;
	for (int i = 0; i < PR_NR; i++) {
		double ch = pr->chance[i] / (double)pr->trials;
		double pt = (double)pr->hits[i] / (double)pr->trials / ch;
		double pub = wilson_upper(pr->hits[i], pr->trials) / ch;
		if (o->verbose)
			audit_note("  %-13s %8llu hits / %llu, %.3fx chance, bound %.3fx", pr_name[i],
			           (unsigned long long)pr->hits[i], (unsigned long long)pr->trials, pt, pub);
		if (pub > bub) {
			bub = pub;
			bpt = pt;
			bi = i;
		}
	}
	snprintf(what, sizeof what, "predictors, %s", tag);
	failed += audit_line("P1", bub <= 2, what, "best %s %.2fx chance, bound %.2fx %s 2x", pr_name[bi],
	                     bpt, bub, bub <= 2 ? "<=" : ">");
	return failed;
}

static int measure_state(const struct audit_opts *o, struct run *r, unsigned si, const struct sizes *sz,
                         uint64_t seed, double *secs)
{
	double t0 = cli_now();
	uint8_t *want = malloc(r->nr);
	uint32_t *counts = calloc(r->nr, sizeof *counts);
	struct results res;
	int failed;
	if (!want || !counts)
		abort();

	layout_make(&states[si], r->nr, want, seed_for(seed, si, 1));
	r->broken = false;
	if (collect(r, si, sz, seed, want, counts, &res)) {
		failed = report(o, si, &res, want, counts, r->nr, seed);
	} else {
		char what[64];
		snprintf(what, sizeof what, "placement runs, %s", states[si].name);
		failed = audit_line("P1", false, what, "broken: %s", r->why);
	}
	free(want);
	free(counts);
	*secs = cli_now() - t0;
	return failed;
}

/* A seed for a run the user did not seed: printed, so a failure can be
 * replayed with --seed. */
static uint64_t fresh_seed(void)
{
	uint64_t s = 0;
	FILE *fp = fopen("/dev/urandom", "rb");
	if (!fp || fread(&s, sizeof s, 1, fp) != 1)
		s = (uint64_t)(cli_now() * 1e9) ^ (uint64_t)(uintptr_t)&s;
	if (fp)
		fclose(fp);
	return s;
}

int audit_placement(const struct audit_opts *o)
{
	/* Reduced (make check): 4096 frames, under a few seconds.  Full:
	 * 65536 frames, the same multiples of n_free. */
	const struct sizes sz = {
		.nr = o->full ? 65536 : 4096,
		.chi_mult = 20,
		.reuse_mult = 100,
		.adj_cap = o->full ? 40000000 : 10000000,
	};
	uint64_t seed = o->seeded ? o->seed : fresh_seed();
	struct placer pl;
	struct run r = {.pl = &pl, .nr = sz.nr};
	int failed = 0;

	if (!placer_init(&pl, o->policy, sz.nr))
		return audit_line("P1", false, "placement setup", "cannot build the %s allocator",
		                  audit_policy_name(o->policy));
	r.free = malloc(sz.nr);
	r.bits = calloc((sz.nr + 63) / 64, sizeof *r.bits);
	if (!r.free || !r.bits)
		abort();

	audit_note("policy %s: %u frames, %u colours, 1 CPU, owners %u and %u share one pool%s",
	           audit_policy_name(o->policy), sz.nr, NCOL, OWNER_A, OWNER_B,
	           o->policy == POLICY_LAB ? " (no scrub)" : " (toy allocator)");
	audit_note("chi-square and min-entropy: M = %u n_free; reuse, predictors: %u n_free trials",
	           sz.chi_mult, sz.reuse_mult);
	if (!o->seeded)
		audit_note("seed %llu (entropy): replay with --seed %llu", (unsigned long long)seed,
		           (unsigned long long)seed);

	double total = 0, secs[NSTATES];
	for (unsigned si = 0; si < NSTATES; si++) {
		failed += measure_state(o, &r, si, &sz, seed, &secs[si]);
		total += secs[si];
		if (si == 0 && o->policy == POLICY_LAB) {
			/* The measurement is of the per-CPU path only if this thread
			 * has a CPU slot in the zone; say so if it did not. */
			struct lab_stats st;
			uint64_t f;
			if (lab_alloc(pl.zone, OWNER_A, 0, LAB_NOWAIT, &f) == LAB_OK) {
				if (lab_stats(pl.zone, &st) == LAB_OK && st.nr_cached == 0)
					audit_note("warning: no per-CPU cache in use (thread has no CPU slot)");
				lab_free(pl.zone, OWNER_A, f, 0);
			}
		}
	}
	char per[NSTATES * 12] = "";
	for (unsigned si = 0; si < NSTATES; si++)
		snprintf(per + strlen(per), sizeof per - strlen(per), "%s%.1f", si ? " " : "", secs[si]);
	audit_note("time: %.1f s (%s s per state)", total, per);
	placer_fini(&pl);
	free(r.free);
	free(r.bits);
	return failed;
}
