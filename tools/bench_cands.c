/*
 * bench_cands.c - the candidates of `labyrinth bench`, the pinned thread
 * pool that drives them, the timers and the micro-floors.
 *
 * Every candidate is a family of two inline functions, alloc and free, over
 * opaque 64-bit handles (a pfn, a pointer or a frame index).  BENCH_FAMILY()
 * instantiates the same drivers (immediate, batch, cross-CPU producer and
 * consumer, steady and batch latency) over each family, so every candidate
 * runs literally the same loop and ratios are fair; the general-purpose
 * allocators are called through pointers from dlsym (as a PLT call would),
 * labyrinth and the floors directly.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BENCH_X86 1
#else
#define BENCH_X86 0
#endif

#include "bench_common.h"

const unsigned bench_orders[BENCH_NORD] = {0, 3, 9, 10};
double bench_tpns = 1.0;

/* ---- time ------------------------------------------------------------------- */

static inline uint64_t tsc(void)
{
#if BENCH_X86
	return __rdtsc();
#else
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
#endif
}

static inline uint64_t tsc_ser(void)
{
#if BENCH_X86
	_mm_lfence();
	uint64_t t = __rdtsc();
	_mm_lfence();
	return t;
#else
	return tsc();
#endif
}

static inline void relax(void)
{
#if BENCH_X86
	_mm_pause();
#endif
}

uint64_t bench_tsc(void)
{
	return tsc();
}

uint64_t bench_tsc_ser(void)
{
	return tsc_ser();
}

double bench_tsc_calibrate(double seconds)
{
	/* Three tries, the median: a preempted try gives a wild figure. */
	double r[3];
	for (int k = 0; k < 3; k++) {
		double c0 = cli_now();
		uint64_t t0 = tsc_ser();
		while (cli_now() - c0 < seconds / 3)
			;
		double c1 = cli_now();
		uint64_t t1 = tsc_ser();
		r[k] = (double)(t1 - t0) / ((c1 - c0) * 1e9);
	}
	double a = r[0], b = r[1], c = r[2];
	bench_tpns = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
	return bench_tpns;
}

/* ---- small tools ------------------------------------------------------------ */

static inline uint64_t wyrand(uint64_t *s)
{
	*s += 0xa0761d6478bd642full;
	unsigned __int128 m = (unsigned __int128)*s * (*s ^ 0xe7037ed1a0b428dbull);
	return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

static inline uint64_t below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)wyrand(s) * n) >> 64);
}

/* Test-and-test-and-set spinlock: the floors' lock and the spinlock micro-floor. */
static inline void spin_lock(_Atomic uint32_t *l)
{
	for (;;) {
		if (!atomic_exchange_explicit(l, 1, memory_order_acquire))
			return;
		while (atomic_load_explicit(l, memory_order_relaxed))
			relax();
	}
}

static inline void spin_unlock(_Atomic uint32_t *l)
{
	atomic_store_explicit(l, 0, memory_order_release);
}

/* Hide a value from the optimiser (an allocation whose pointer is only
 * freed may otherwise be elided). */
#define OPAQUE(x) __asm__ volatile("" : "+r"(x))

static _Atomic uint64_t free_errors;

static void bad_free(const char *who, int rc)
{
	if (atomic_fetch_add(&free_errors, 1) == 0)
		fprintf(stderr, "\nlabyrinth bench: %s: lab_free failed: %s\n", who, lab_strerror(rc));
}

static inline void barrier_wait(struct tctx *t)
{
	atomic_fetch_add(t->bar, 1);
	while (atomic_load(t->bar) < t->nthreads)
		relax();
}

/* ---- families ---------------------------------------------------------------- */

/* labyrinth, one owner (same-owner, exclusive colours, atomic, scaling). */
static inline int labp_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	(void)t;
	return lab_alloc(c->hz.zone, c->owner, order, c->aflags, h);
}

static inline void labp_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	(void)t;
	int rc = lab_free(c->hz.zone, c->owner, h, order);
	if (__builtin_expect(rc != LAB_OK, 0))
		bad_free(c->name, rc);
}

static inline void labp_idle(struct cand *c, struct tctx *t)
{
	(void)c, (void)t;
}

/* labyrinth, one exclusive owner per worker thread (owner 1 + tid), each
 * with colours of its own: tenants that share no pool and no metadata line
 * their calls write (a hypervisor's VMs, one per CPU). */
static inline lab_owner_t labo_owner(const struct cand *c, const struct tctx *t)
{
	return (lab_owner_t)(1 + (unsigned)t->tid % c->nr_owners);
}

static inline int labo_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	return lab_alloc(c->hz.zone, labo_owner(c, t), order, c->aflags, h);
}

static inline void labo_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	int rc = lab_free(c->hz.zone, labo_owner(c, t), h, order);
	if (__builtin_expect(rc != LAB_OK, 0))
		bad_free(c->name, rc);
}

#define labo_idle labp_idle

/* labyrinth, two shared owners alternating: every frame changes owner. The
 * owner that allocated rides in the handle's top bits. */
#define OWNER_SHIFT 48

static inline int labx_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	lab_owner_t o = 1 + (t->toggle ^= 1);
	uint64_t pfn;
	int rc = lab_alloc(c->hz.zone, o, order, c->aflags, &pfn);
	*h = pfn | ((uint64_t)o << OWNER_SHIFT);
	return rc;
}

static inline void labx_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	(void)t;
	int rc = lab_free(c->hz.zone, (lab_owner_t)(h >> OWNER_SHIFT), h & ((1ull << OWNER_SHIFT) - 1), order);
	if (__builtin_expect(rc != LAB_OK, 0))
		bad_free(c->name, rc);
}

#define labx_idle labp_idle
#define labd_alloc labx_alloc
#define labd_free labx_free

/* Deferred scrub: what an idle loop would do, every scrub_every frees. */
static inline void labd_idle(struct cand *c, struct tctx *t)
{
	if ((++t->frees & (c->scrub_every - 1)) == 0) { /* scrub_every: a power of two */
		uint64_t a = tsc();
		lab_scrub(c->hz.zone, c->scrub_every, NULL);
		t->idle_cycles += tsc() - a;
	}
}

/* glibc */
static inline int glibc_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	(void)c, (void)t;
	size_t sz = (size_t)4096 << order;
	void *p = aligned_alloc(sz, sz);
	*h = (uintptr_t)p;
	return p ? 0 : -100;
}

static inline void glibc_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	(void)c, (void)t, (void)order;
	free((void *)(uintptr_t)h);
}

/* jemalloc: mallocx/dallocx with MALLOCX_ALIGN(a) = ffs(a) - 1 in the low bits. */
static void *(*je_mallocx)(size_t, int);
static void (*je_dallocx)(void *, int);
#define MALLOCX_ALIGN(a) (ffsll((long long)(a)) - 1)

static inline int je_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	(void)c, (void)t;
	size_t sz = (size_t)4096 << order;
	void *p = je_mallocx(sz, MALLOCX_ALIGN(sz));
	*h = (uintptr_t)p;
	return p ? 0 : -100;
}

static inline void je_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	(void)c, (void)t;
	je_dallocx((void *)(uintptr_t)h, MALLOCX_ALIGN((size_t)4096 << order));
}

/* mimalloc */
static void *(*mi_aligned)(size_t, size_t);
static void (*mi_freep)(void *);

static inline int mi_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	(void)c, (void)t;
	size_t sz = (size_t)4096 << order;
	void *p = mi_aligned(sz, sz);
	*h = (uintptr_t)p;
	return p ? 0 : -100;
}

static inline void mi_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	(void)c, (void)t, (void)order;
	mi_freep((void *)(uintptr_t)h);
}

/* tcmalloc (gperftools) */
static void *(*tc_memalignp)(size_t, size_t);
static void (*tc_freep)(void *);

static inline int tc_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	(void)c, (void)t;
	size_t sz = (size_t)4096 << order;
	void *p = tc_memalignp(sz, sz);
	*h = (uintptr_t)p;
	return p ? 0 : -100;
}

static inline void tc_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	(void)c, (void)t, (void)order;
	tc_freep((void *)(uintptr_t)h);
}

#define glibc_idle labp_idle
#define je_idle labp_idle
#define mi_idle labp_idle
#define tc_idle labp_idle

/* Floors: arrays of frame (block) indices, one per order measured. */
struct fstack {
	_Alignas(64) _Atomic uint32_t lock;
	uint32_t cnt, cap;
	uint32_t *a;
};

struct swap_hand {
	_Alignas(64) uint32_t n;
	uint32_t a[64];
};

struct bench_floor {
	struct fstack s[BENCH_NORD];
	struct swap_hand hand[BENCH_MAXT][BENCH_NORD]; /* the shared-swap floor's */
	struct fstack *pc[BENCH_MAXT]; /* per-CPU bags: [BENCH_NORD] each */
	uint32_t *tab[BENCH_NORD]; /* per-CPU bags + table: a word a block (atomic) */
};

static inline int oidx(unsigned order)
{
	return order == 0 ? 0 : order == 3 ? 1 : order == 9 ? 2 : order == 10 ? 3 : -1;
}

#define FLOOR_NOORDER (-101)

/* LIFO stack under a spinlock */
static inline int lifo_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	(void)t;
	int i = oidx(order);
	if (i < 0)
		return FLOOR_NOORDER;
	struct fstack *s = &c->fl->s[i];
	spin_lock(&s->lock);
	if (!s->cnt) {
		spin_unlock(&s->lock);
		return LAB_ENOMEM;
	}
	*h = s->a[--s->cnt];
	spin_unlock(&s->lock);
	return 0;
}

static inline void lifo_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	(void)t;
	struct fstack *s = &c->fl->s[oidx(order)];
	spin_lock(&s->lock);
	s->a[s->cnt++] = (uint32_t)h;
	spin_unlock(&s->lock);
}

/* random bag under a spinlock: uniform pick, swap-remove; free appends */
static inline int bag_take(struct fstack *s, uint64_t r, uint64_t *h)
{
	if (!s->cnt)
		return LAB_ENOMEM;
	uint32_t i = (uint32_t)(((unsigned __int128)r * s->cnt) >> 64);
	*h = s->a[i];
	s->a[i] = s->a[--s->cnt];
	return 0;
}

static inline int bag_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	int i = oidx(order);
	if (i < 0)
		return FLOOR_NOORDER;
	struct fstack *s = &c->fl->s[i];
	uint64_t r = wyrand(&t->rng);
	spin_lock(&s->lock);
	int rc = bag_take(s, r, h);
	spin_unlock(&s->lock);
	return rc;
}

#define bag_free lifo_free

/* per-CPU random bags: one per worker, no lock */
static inline int pcpu_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	int i = oidx(order);
	if (i < 0)
		return FLOOR_NOORDER;
	return bag_take(&c->fl->pc[t->tid][i], wyrand(&t->rng), h);
}

static inline void pcpu_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	struct fstack *s = &c->fl->pc[t->tid][oidx(order)];
	s->a[s->cnt++] = (uint32_t)h;
}

/* per-CPU bags + table: the bags above, but each holds a random half of the
 * blocks (uniform placement interleaves the CPUs' frames over the zone), and
 * alloc and free CAS the block's 4-byte owner word in one shared table, 16
 * to a line, as an allocator that tracks ownership in a few bytes a frame
 * must.  Nothing else is shared: what such a table alone costs across CPUs
 * (a line holds other CPUs' frames' words). */
static inline int ptab_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	int i = oidx(order);
	if (i < 0)
		return FLOOR_NOORDER;
	int rc = bag_take(&c->fl->pc[t->tid][i], wyrand(&t->rng), h);
	if (rc)
		return rc;
	uint32_t was = 0;
	if (!atomic_compare_exchange_strong_explicit((_Atomic uint32_t *)&c->fl->tab[i][*h], &was, t->tid + 1u,
	                                             memory_order_acquire, memory_order_relaxed))
		abort(); /* a block in two bags: a bug of this floor */
	return 0;
}

static inline void ptab_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	int i = oidx(order);
	uint32_t was = t->tid + 1u;
	if (!atomic_compare_exchange_strong_explicit((_Atomic uint32_t *)&c->fl->tab[i][h], &was, 0, memory_order_release,
	                                             memory_order_relaxed))
		abort(); /* freed by a thread that does not hold it: a bug of the driver */
	struct fstack *s = &c->fl->pc[t->tid][i];
	s->a[s->cnt++] = (uint32_t)h;
}

/* shared random slots, no lock: one array of frame slots shared by every
 * thread.  Free exchanges the frame into a uniformly random slot and keeps
 * what it displaced in the thread's hand (at most 64); alloc takes from the
 * hand, else empties a random slot.  Each pair writes one uniformly random
 * shared cache line, as an allocator whose placement is uniform over all
 * free frames must: the cost of global uniformity across cores, with
 * nothing else (no owner, no checks, no state-independent timing). */
#define SWAP_EMPTY UINT32_MAX
#define SWAP_HAND 64
static inline int swap_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	int i = oidx(order);
	if (i < 0)
		return FLOOR_NOORDER;
	struct swap_hand *hd = &c->fl->hand[t->tid][i];
	if (hd->n) {
		*h = hd->a[--hd->n];
		return 0;
	}
	struct fstack *s = &c->fl->s[i];
	_Atomic uint32_t *a = (_Atomic uint32_t *)s->a;
	for (int probe = 0; probe < 64; probe++) { /* bound: 64 probes */
		uint32_t r = (uint32_t)(((unsigned __int128)wyrand(&t->rng) * s->cap) >> 64);
		if (atomic_load_explicit(&a[r], memory_order_relaxed) == SWAP_EMPTY)
			continue;
		uint32_t g = atomic_exchange_explicit(&a[r], SWAP_EMPTY, memory_order_acquire);
		if (g != SWAP_EMPTY) {
			*h = g;
			return 0;
		}
	}
	return LAB_ENOMEM;
}

static inline void swap_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	int i = oidx(order);
	struct swap_hand *hd = &c->fl->hand[t->tid][i];
	_Atomic uint32_t *a = (_Atomic uint32_t *)c->fl->s[i].a;
	uint32_t cap = c->fl->s[i].cap;
	for (;;) { /* a full hand looks for an empty slot: there are as many as frames out */
		uint32_t r = (uint32_t)(((unsigned __int128)wyrand(&t->rng) * cap) >> 64);
		uint32_t g = atomic_exchange_explicit(&a[r], (uint32_t)h, memory_order_acq_rel);
		if (g == SWAP_EMPTY)
			return;
		if (hd->n < SWAP_HAND) {
			hd->a[hd->n++] = g;
			return;
		}
		h = g;
	}
}

/* nothing at all: the cross-CPU ring alone */
static inline int null_alloc(struct cand *c, struct tctx *t, unsigned order, uint64_t *h)
{
	(void)c, (void)order;
	*h = ++t->frees;
	return 0;
}

static inline void null_free(struct cand *c, struct tctx *t, uint64_t h, unsigned order)
{
	(void)c, (void)t, (void)order;
	OPAQUE(h);
}

#define null_idle labp_idle
#define lifo_idle labp_idle
#define bag_idle labp_idle
#define pcpu_idle labp_idle
#define ptab_idle labp_idle
#define swap_idle labp_idle

/* A labyrinth candidate with bulk_free set (one owner, no idle hook) frees a
 * full batch with one lab_free_bulk call over the batch in free order. */
static void bulk_free_batch(struct cand *c, struct tctx *t, const uint64_t *held, const uint32_t *perm)
{
	for (uint32_t i = 0; i < BENCH_BATCH; i++)
		t->list[i] = held[perm[i]];
	int rc = lab_free_bulk(c->hz.zone, c->owner, t->list, BENCH_BATCH, NULL);
	if (__builtin_expect(rc != LAB_OK, 0))
		bad_free(c->name, rc);
}

/* ---- the drivers, identical for every family ----------------------------------- */

#define BENCH_FAMILY(F)                                                                    \
	static void F##_immediate(struct cand *c, struct tctx *t, struct bres *r)             \
	{                                                                                      \
		unsigned order = t->order, chunk = order >= 6 ? 1 : 64u >> order;                 \
		uint64_t h, n = 0, fails = 0;                                                      \
		int err = 0;                                                                       \
		t->idle_cycles = 0;                                                                \
		barrier_wait(t);                                                                   \
		uint64_t t0 = tsc(), dl = t0 + t->dur;                                             \
		for (;;) {                                                                         \
			for (unsigned i = 0; i < chunk; i++) {                                     \
				int rc = F##_alloc(c, t, order, &h);                                   \
				if (__builtin_expect(rc != 0, 0)) {                                    \
					fails++, err = rc;                                             \
					continue;                                                      \
				}                                                                      \
				OPAQUE(h);                                                             \
				F##_free(c, t, h, order);                                              \
				F##_idle(c, t);                                                        \
				n++;                                                                   \
			}                                                                          \
			if (tsc() >= dl || (fails && !n))                                          \
				break;                                                             \
		}                                                                                  \
		r->cycles = tsc() - t0, r->pairs = n, r->fails = fails, r->err = err;              \
		r->idle_cycles = t->idle_cycles;                                                   \
	}                                                                                      \
                                                                                               \
	static void F##_batch(struct cand *c, struct tctx *t, struct bres *r)                 \
	{                                                                                      \
		unsigned order = t->order, full = 0;                                               \
		uint64_t *held = t->held, n = 0, fails = 0;                                        \
		int err = 0;                                                                       \
		t->idle_cycles = 0;                                                                \
		barrier_wait(t);                                                                   \
		uint64_t t0 = tsc(), dl = t0 + t->dur;                                             \
		for (;;) {                                                                         \
			const uint32_t *perm = t->perm[t->perm_i++ % BENCH_PERMS];                 \
			bool may_stop = full >= t->min_batches;                                    \
			uint32_t m = 0;                                                            \
			while (m < BENCH_BATCH) {                                                  \
				uint64_t h;                                                            \
				int rc = F##_alloc(c, t, order, &h);                                   \
				if (__builtin_expect(rc != 0, 0)) {                                    \
					fails++, err = rc;                                             \
					break;                                                         \
				}                                                                      \
				OPAQUE(h);                                                             \
				held[m++] = h;                                                         \
				if (may_stop && !(m & 1023) && tsc() >= dl)                            \
					break;                                                         \
			}                                                                          \
			if (m == BENCH_BATCH && c->bulk_free && order == 0) {                      \
				full++;                                                                \
				bulk_free_batch(c, t, held, perm);                                     \
			} else if (m == BENCH_BATCH) {                                             \
				full++;                                                                \
				for (uint32_t i = 0; i < BENCH_BATCH; i++) {                           \
					F##_free(c, t, held[perm[i]], order);                          \
					F##_idle(c, t);                                                \
				}                                                                      \
			} else {                                                                   \
				for (uint32_t i = 0; i < BENCH_BATCH; i++)                             \
					if (perm[i] < m) {                                             \
						F##_free(c, t, held[perm[i]], order);                  \
						F##_idle(c, t);                                        \
					}                                                              \
			}                                                                          \
			n += m;                                                                    \
			if (m == 0 || (tsc() >= dl && (full >= t->min_batches || fails)))          \
				break;                                                             \
		}                                                                                  \
		r->cycles = tsc() - t0, r->pairs = n, r->fails = fails, r->err = err;              \
		r->idle_cycles = t->idle_cycles;                                                   \
	}                                                                                      \
                                                                                               \
	static void F##_produce(struct cand *c, struct tctx *t, struct bres *r)               \
	{                                                                                      \
		struct bench_ring *q = t->ring;                                                    \
		uint64_t tail = 0, head = 0, fails = 0;                                            \
		int err = 0;                                                                       \
		barrier_wait(t);                                                                   \
		uint64_t t0 = tsc(), dl = t0 + t->dur;                                             \
		while (tsc() < dl) {                                                               \
			for (int i = 0; i < 16; i++) {                                             \
				if (tail - head == BENCH_RING) {                                       \
					head = atomic_load_explicit(&q->head, memory_order_acquire);   \
					if (tail - head == BENCH_RING) {                               \
						relax();                                               \
						continue;                                              \
					}                                                              \
				}                                                                      \
				uint64_t h;                                                            \
				int rc = F##_alloc(c, t, t->order, &h);                                \
				if (__builtin_expect(rc != 0, 0)) {                                    \
					fails++, err = rc;                                             \
					continue;                                                      \
				}                                                                      \
				q->slot[tail % BENCH_RING] = h;                                        \
				atomic_store_explicit(&q->tail, ++tail, memory_order_release);        \
			}                                                                          \
			if (fails && !tail)                                                        \
				break;                                                             \
		}                                                                                  \
		atomic_store_explicit(&q->done, 1, memory_order_release);                          \
		r->cycles = tsc() - t0, r->pairs = tail, r->fails = fails, r->err = err;           \
		r->idle_cycles = 0;                                                                \
	}                                                                                      \
                                                                                               \
	static void F##_consume(struct cand *c, struct tctx *t, struct bres *r)               \
	{                                                                                      \
		struct bench_ring *q = t->ring;                                                    \
		uint64_t head = 0, tail = 0;                                                       \
		t->idle_cycles = 0;                                                                \
		barrier_wait(t);                                                                   \
		uint64_t t0 = tsc();                                                               \
		for (;;) {                                                                         \
			if (head == tail) {                                                        \
				tail = atomic_load_explicit(&q->tail, memory_order_acquire);           \
				if (head == tail) {                                                    \
					if (atomic_load_explicit(&q->done, memory_order_acquire)) {    \
						tail = atomic_load_explicit(&q->tail,                  \
						                            memory_order_acquire);     \
						if (head == tail)                                      \
							break;                                         \
						continue;                                              \
					}                                                              \
					relax();                                                       \
					continue;                                                      \
				}                                                                      \
			}                                                                          \
			F##_free(c, t, q->slot[head % BENCH_RING], t->order);                      \
			F##_idle(c, t);                                                            \
			atomic_store_explicit(&q->head, ++head, memory_order_release);             \
		}                                                                                  \
		r->cycles = tsc() - t0, r->pairs = head, r->fails = 0, r->err = 0;                 \
		r->idle_cycles = t->idle_cycles;                                                   \
	}                                                                                      \
                                                                                               \
	/* Steady state: hold lat_hold blocks; each step allocates one (timed) and     */   \
	/* frees a random held one (timed).  The idle hook runs outside the timing.   */   \
	static void F##_lat_steady(struct cand *c, struct tctx *t, struct bres *r)            \
	{                                                                                      \
		unsigned order = t->order, hold = t->lat_hold;                                     \
		uint64_t *held = t->held, fails = 0, h;                                            \
		size_t na = 0, nf = 0;                                                             \
		int err = 0;                                                                       \
		unsigned m = 0;                                                                    \
		for (; m < hold; m++) {                                                            \
			int rc = F##_alloc(c, t, order, &held[m]);                                 \
			if (rc) {                                                                  \
				err = rc;                                                          \
				break;                                                             \
			}                                                                          \
		}                                                                                  \
		if (m == hold) {                                                                   \
			for (uint64_t s = 0; s < t->lat_steps && na < t->lat_cap; s++) {           \
				uint64_t a = tsc_ser();                                                \
				int rc = F##_alloc(c, t, order, &h);                                   \
				uint64_t b = tsc_ser();                                                \
				if (rc) {                                                              \
					fails++, err = rc;                                             \
					if (fails > 1000 && !na)                                       \
						break;                                                 \
					continue;                                                      \
				}                                                                      \
				t->lat_a[na++] = (uint32_t)(b - a > UINT32_MAX ? UINT32_MAX : b - a);  \
				uint64_t j = below(&t->rng, hold), old = held[j];                      \
				held[j] = h;                                                           \
				a = tsc_ser();                                                         \
				F##_free(c, t, old, order);                                            \
				b = tsc_ser();                                                         \
				t->lat_f[nf++] = (uint32_t)(b - a > UINT32_MAX ? UINT32_MAX : b - a);  \
				F##_idle(c, t);                                                        \
			}                                                                          \
		}                                                                                  \
		for (unsigned i = 0; i < m; i++) {                                                 \
			F##_free(c, t, held[i], order);                                            \
			F##_idle(c, t);                                                            \
		}                                                                                  \
		t->na = na, t->nf = nf;                                                            \
		r->pairs = na, r->fails = fails, r->err = err, r->cycles = 0;                      \
	}                                                                                      \
                                                                                               \
	/* Batch pattern: BENCH_BATCH allocations in a row (each timed), then the     */   \
	/* frees in random order (each timed). */                                         \
	static void F##_lat_batch(struct cand *c, struct tctx *t, struct bres *r)             \
	{                                                                                      \
		unsigned order = t->order;                                                         \
		uint64_t *held = t->held, fails = 0;                                               \
		size_t na = 0, nf = 0;                                                             \
		int err = 0;                                                                       \
		for (unsigned cyc = 0; cyc < t->lat_cycles; cyc++) {                               \
			const uint32_t *perm = t->perm[t->perm_i++ % BENCH_PERMS];                 \
			uint32_t m = 0;                                                            \
			while (m < t->lat_batch_n && na < t->lat_cap) {                            \
				uint64_t h, a = tsc_ser();                                             \
				int rc = F##_alloc(c, t, order, &h);                                   \
				uint64_t b = tsc_ser();                                                \
				if (rc) {                                                              \
					fails++, err = rc;                                             \
					break;                                                         \
				}                                                                      \
				t->lat_a[na++] = (uint32_t)(b - a > UINT32_MAX ? UINT32_MAX : b - a);  \
				held[m++] = h;                                                         \
			}                                                                          \
			for (uint32_t i = 0; i < BENCH_BATCH; i++) {                               \
				if (perm[i] >= m)                                                      \
					continue;                                                      \
				uint64_t a = tsc_ser();                                                \
				F##_free(c, t, held[perm[i]], order);                                  \
				uint64_t b = tsc_ser();                                                \
				if (nf < t->lat_cap)                                                   \
					t->lat_f[nf++] = (uint32_t)(b - a > UINT32_MAX ? UINT32_MAX    \
					                                                : b - a);      \
				F##_idle(c, t);                                                        \
			}                                                                          \
			if (m < t->lat_batch_n)                                                    \
				break;                                                             \
		}                                                                                  \
		t->na = na, t->nf = nf;                                                            \
		r->pairs = na, r->fails = fails, r->err = err, r->cycles = 0;                      \
	}

BENCH_FAMILY(labp)
BENCH_FAMILY(labo)
BENCH_FAMILY(labx)
BENCH_FAMILY(labd)
BENCH_FAMILY(glibc)
BENCH_FAMILY(je)
BENCH_FAMILY(mi)
BENCH_FAMILY(tc)
BENCH_FAMILY(lifo)
BENCH_FAMILY(bag)
BENCH_FAMILY(pcpu)
BENCH_FAMILY(ptab)
BENCH_FAMILY(swap)
BENCH_FAMILY(null)

#define SET_FAMILY(c, F)                                                                   \
	do {                                                                               \
		(c)->immediate = F##_immediate, (c)->batch = F##_batch;                     \
		(c)->produce = F##_produce, (c)->consume = F##_consume;                     \
		(c)->lat_steady = F##_lat_steady, (c)->lat_batch = F##_lat_batch;           \
	} while (0)

/* ---- the thread pool ------------------------------------------------------------ */

static struct {
	unsigned n;
	pthread_t th[BENCH_MAXT];
	int cpu[BENCH_MAXT];
	struct tctx *t[BENCH_MAXT];
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	uint64_t gen;
	unsigned pending;
	bool quit;
	void (*fn)(void *, int);
	void *arg;
	unsigned active;
} P = {.mu = PTHREAD_MUTEX_INITIALIZER, .go = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static void tctx_init(struct tctx *t, int tid)
{
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	t->rng = 0x243f6a8885a308d3ull ^ ((uint64_t)tid << 32) ^ (uint64_t)time(NULL);
	t->held = calloc(BENCH_BATCH, sizeof(uint64_t));
	t->list = calloc(BENCH_BATCH, sizeof(uint64_t));
	for (int k = 0; k < BENCH_PERMS; k++) {
		uint32_t *p = malloc(BENCH_BATCH * sizeof(uint32_t));
		for (uint32_t i = 0; i < BENCH_BATCH; i++)
			p[i] = i;
		for (uint32_t i = BENCH_BATCH - 1; i > 0; i--) {
			uint32_t j = (uint32_t)below(&t->rng, i + 1), x = p[i];
			p[i] = p[j], p[j] = x;
		}
		t->perm[k] = p;
	}
	if (!t->held || !t->list)
		abort();
}

static void *worker(void *arg)
{
	int tid = (int)(intptr_t)arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(P.cpu[tid], &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	struct tctx *t = aligned_alloc(64, (sizeof(struct tctx) + 63) & ~(size_t)63);
	if (!t)
		abort();
	tctx_init(t, tid);
	uint64_t seen = 0;
	pthread_mutex_lock(&P.mu);
	P.t[tid] = t;
	P.pending--;
	pthread_cond_broadcast(&P.done);
	for (;;) {
		while (P.gen == seen && !P.quit)
			pthread_cond_wait(&P.go, &P.mu);
		if (P.quit)
			break;
		seen = P.gen;
		void (*fn)(void *, int) = P.fn;
		void *a = P.arg;
		bool mine = (unsigned)tid < P.active;
		pthread_mutex_unlock(&P.mu);
		if (mine)
			fn(a, tid);
		pthread_mutex_lock(&P.mu);
		if (--P.pending == 0)
			pthread_cond_broadcast(&P.done);
	}
	pthread_mutex_unlock(&P.mu);
	return NULL;
}

int bench_pool_start(unsigned max_threads, int *cpus_out)
{
	cpu_set_t set;
	unsigned n = 0;
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		for (int c = 0; c < CPU_SETSIZE && n < max_threads && n < BENCH_MAXT; c++)
			if (CPU_ISSET(c, &set))
				P.cpu[n++] = c;
	}
	if (!n)
		P.cpu[n++] = 0;
	P.n = n;
	P.pending = n;
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&P.th[i], NULL, worker, (void *)(intptr_t)i))
			return -1;
	pthread_mutex_lock(&P.mu);
	while (P.pending)
		pthread_cond_wait(&P.done, &P.mu);
	pthread_mutex_unlock(&P.mu);
	if (cpus_out)
		memcpy(cpus_out, P.cpu, n * sizeof(int));
	return (int)n;
}

void bench_pool_run(unsigned n, void (*fn)(void *, int), void *arg)
{
	pthread_mutex_lock(&P.mu);
	P.fn = fn, P.arg = arg, P.active = n;
	P.pending = P.n;
	P.gen++;
	pthread_cond_broadcast(&P.go);
	while (P.pending)
		pthread_cond_wait(&P.done, &P.mu);
	pthread_mutex_unlock(&P.mu);
}

void bench_pool_stop(void)
{
	pthread_mutex_lock(&P.mu);
	P.quit = true;
	pthread_cond_broadcast(&P.go);
	pthread_mutex_unlock(&P.mu);
	for (unsigned i = 0; i < P.n; i++)
		pthread_join(P.th[i], NULL);
	P.n = 0;
}

unsigned bench_pool_size(void)
{
	return P.n;
}

struct tctx *bench_tctx(int tid)
{
	return P.t[tid];
}

void bench_lat_reserve(size_t samples)
{
	/* Only worker 0 measures latency; prefault so no page fault lands in a
	 * timed region. */
	struct tctx *t = P.t[0];
	free(t->lat_a), free(t->lat_f);
	t->lat_a = malloc(samples * sizeof(uint32_t));
	t->lat_f = malloc(samples * sizeof(uint32_t));
	if (!t->lat_a || !t->lat_f)
		abort();
	memset(t->lat_a, 1, samples * sizeof(uint32_t));
	memset(t->lat_f, 1, samples * sizeof(uint32_t));
	t->lat_cap = samples;
}

/* ---- runs ------------------------------------------------------------------------- */

struct runarg {
	struct cand *c;
	int kind;
	struct bres *res;
	_Atomic int bar;
	struct bench_ring *ring;
};

static void run_fn(void *arg, int tid)
{
	struct runarg *ra = arg;
	struct tctx *t = P.t[tid];
	struct cand *c = ra->c;
	switch (ra->kind) {
	case RUN_IMM:
		c->immediate(c, t, &ra->res[tid]);
		break;
	case RUN_BATCH:
		c->batch(c, t, &ra->res[tid]);
		break;
	case RUN_CROSS:
		(tid == 0 ? c->produce : c->consume)(c, t, &ra->res[tid]);
		break;
	case RUN_LAT:
		c->lat_steady(c, t, &ra->res[tid]);
		break;
	case RUN_LATB:
		c->lat_batch(c, t, &ra->res[tid]);
		break;
	}
}

void bench_run(struct cand *c, int kind, unsigned threads, unsigned order, double seconds,
               unsigned min_batches, struct bres *res)
{
	static struct bench_ring ring;
	struct runarg ra = {.c = c, .kind = kind, .res = res, .ring = &ring};
	atomic_init(&ra.bar, 0);
	atomic_store(&ring.head, 0);
	atomic_store(&ring.tail, 0);
	atomic_store(&ring.done, 0);
	if (kind == RUN_CROSS)
		threads = 2;
	if (kind == RUN_LAT || kind == RUN_LATB)
		threads = 1;
	memset(res, 0, threads * sizeof(*res));
	for (unsigned i = 0; i < threads; i++) {
		struct tctx *t = P.t[i];
		t->nthreads = (int)threads;
		t->order = order;
		t->dur = (uint64_t)(seconds * 1e9 * bench_tpns);
		t->min_batches = min_batches;
		t->bar = &ra.bar;
		t->ring = &ring;
	}
	bench_pool_run(threads, run_fn, &ra);
}

static void drain_fn(void *arg, int tid)
{
	struct cand *c = arg;
	c->drain(c, P.t[tid]);
}

int bench_check(struct cand *c)
{
	if (!c->check)
		return 0;
	if (c->drain)
		bench_pool_run(P.n, drain_fn, c);
	int rc = c->check(c);
	c->checks++;
	if (rc != LAB_OK || atomic_load(&free_errors)) {
		c->check_failures++;
		return rc != LAB_OK ? rc : BENCH_EFREE;
	}
	return 0;
}

/* ---- candidate set-up ------------------------------------------------------------ */

static int lab_check_cb(struct cand *c)
{
	return lab_check(c->hz.zone);
}

static void lab_drain_cb(struct cand *c, struct tctx *t)
{
	(void)t;
	lab_cpu_drain(c->hz.zone);
}

static int lab_setup(struct cand *c)
{
	struct lab_hosted_opts o = {
		.bytes = c->zone_bytes,
		.nr_cpus = bench_pool_size() + 2,
		.zone_flags = c->zone_flags,
		.no_touch = c->no_touch,
	};
	int rc = lab_hosted_zone_create(&o, &c->hz);
	if (rc != LAB_OK) {
		snprintf(c->why, sizeof(c->why), "cannot create a zone: %s (%s)", lab_strerror(rc), c->hz.why);
		c->skip = c->why;
		return -1;
	}
	c->hz_ok = true;
	c->init_s = c->hz.init_seconds;
	unsigned nc = c->hz.colours;
	uint64_t all = nc >= 64 ? UINT64_MAX : (1ull << nc) - 1;
	uint64_t half = nc >= 2 ? (nc >= 128 ? UINT64_MAX : (1ull << (nc / 2)) - 1) : all;
	struct lab_owner_cfg oc = {.colours = all};
	double t0 = cli_now();
	if (c->owner_per_cpu) {
		/* nr_owners exclusive owners, colours cut into that many runs. */
		unsigned per = nc / c->nr_owners;
		oc.flags = LAB_OWNER_EXCLUSIVE;
		for (unsigned i = 0; i < c->nr_owners && rc == LAB_OK; i++) {
			oc.colours = (per >= 64 ? UINT64_MAX : (1ull << per) - 1) << (i * per);
			rc = lab_owner_add(c->hz.zone, 1 + i, &oc);
		}
		c->owner_s = cli_now() - t0;
	} else if (c->exclusive) {
		oc.colours = c->half_colours ? half : all;
		oc.flags = LAB_OWNER_EXCLUSIVE;
		rc = lab_owner_add(c->hz.zone, 1, &oc);
		c->owner_s = cli_now() - t0;
	} else {
		rc = lab_owner_add(c->hz.zone, 1, &oc);
		c->owner_s = cli_now() - t0;
		if (rc == LAB_OK) {
			oc.quota = c->quota2;
			rc = lab_owner_add(c->hz.zone, 2, &oc);
		}
	}
	if (rc != LAB_OK) {
		snprintf(c->why, sizeof(c->why), "lab_owner_add: %s", lab_strerror(rc));
		c->skip = c->why;
		lab_hosted_zone_destroy(&c->hz);
		c->hz_ok = false;
		return -1;
	}
	return 0;
}

static void lab_teardown(struct cand *c)
{
	if (c->hz_ok)
		lab_hosted_zone_destroy(&c->hz);
	c->hz_ok = false;
}

/* The general-purpose libraries: loaded once, with RTLD_DEEPBIND so their
 * own internal calls bind to themselves and glibc's malloc stays glibc's. */
static struct {
	const char *lib[2];
	const char *sym[2];
	void *dl;
	const char *loaded;
	char err[200];
} GP[3] = {
	{{"libjemalloc.so.2", NULL}, {"mallocx", "dallocx"}, NULL, NULL, ""},
	{{"libmimalloc.so.2", NULL}, {"mi_malloc_aligned", "mi_free"}, NULL, NULL, ""},
	{{"libtcmalloc_minimal.so.4", "libtcmalloc.so.4"}, {"tc_memalign", "tc_free"}, NULL, NULL, ""},
};

void bench_gp_preload(void)
{
	for (int i = 0; i < 3; i++) {
		for (int k = 0; k < 2 && GP[i].lib[k] && !GP[i].dl; k++) {
			GP[i].dl = dlopen(GP[i].lib[k], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
			if (GP[i].dl) {
				GP[i].loaded = GP[i].lib[k];
			} else if (k == 0) {
				const char *e = dlerror();
				snprintf(GP[i].err, sizeof(GP[i].err), "%s", e ? e : "dlopen failed");
			}
		}
		if (GP[i].dl && (!dlsym(GP[i].dl, GP[i].sym[0]) || !dlsym(GP[i].dl, GP[i].sym[1]))) {
			snprintf(GP[i].err, sizeof(GP[i].err), "%s: no %s/%s", GP[i].loaded, GP[i].sym[0], GP[i].sym[1]);
			GP[i].dl = NULL;
		}
	}
	void *s;
#define SYM(i, name, var) (s = dlsym(GP[i].dl, name), memcpy(&(var), &s, sizeof(s)))
	if (GP[0].dl)
		SYM(0, "mallocx", je_mallocx), SYM(0, "dallocx", je_dallocx);
	if (GP[1].dl)
		SYM(1, "mi_malloc_aligned", mi_aligned), SYM(1, "mi_free", mi_freep);
	if (GP[2].dl)
		SYM(2, "tc_memalign", tc_memalignp), SYM(2, "tc_free", tc_freep);
#undef SYM
}

int bench_gp_report_missing(FILE *f)
{
	int missing = 0;
	for (int i = 0; i < 3; i++)
		if (!GP[i].dl) {
			fprintf(f, "labyrinth bench: %s cannot be loaded (run scripts/install-deps.sh as root): %s\n",
			        GP[i].lib[0], GP[i].err);
			missing++;
		}
	return missing;
}

static int gp_setup(struct cand *c)
{
	int i = !strcmp(c->name, "jemalloc") ? 0 : !strcmp(c->name, "mimalloc") ? 1 : 2;
	if (!GP[i].dl) {
		snprintf(c->why, sizeof(c->why), "not installed (scripts/install-deps.sh): %s", GP[i].err);
		c->skip = c->why;
		return -1;
	}
	c->lib = GP[i].loaded;
	return 0;
}

static int glibc_setup(struct cand *c)
{
	c->lib = "libc.so.6";
	return 0;
}

static void floor_fill(struct fstack *s, uint64_t n)
{
	s->a = malloc((n ? n : 1) * sizeof(uint32_t));
	if (!s->a)
		abort();
	for (uint64_t i = 0; i < n; i++)
		s->a[i] = (uint32_t)i;
	s->cnt = s->cap = (uint32_t)n;
	atomic_init(&s->lock, 0);
}

/* For the per-CPU bags + table: order index k's owner table, all zero, and
 * a uniformly random permutation of its blocks for the bags to be dealt from
 * (a fixed seed: the same split every run).  The caller frees it. */
static uint32_t *ptab_setup(struct bench_floor *f, int k, uint64_t blocks)
{
	uint32_t *p = malloc((blocks ? blocks : 1) * sizeof(uint32_t));
	size_t tb = ((blocks ? blocks : 1) * sizeof(uint32_t) + 63) & ~(size_t)63;
	f->tab[k] = aligned_alloc(64, tb);
	if (!p || !f->tab[k])
		abort();
	memset(f->tab[k], 0, tb);
	uint64_t s = 0x243f6a8885a308d3ull + (uint64_t)k;
	for (uint64_t i = 0; i < blocks; i++)
		p[i] = (uint32_t)i;
	for (uint64_t i = blocks; i > 1; i--) { /* Fisher-Yates */
		uint64_t j = below(&s, i);
		uint32_t x = p[i - 1];
		p[i - 1] = p[j], p[j] = x;
	}
	return p;
}

static int floor_setup(struct cand *c)
{
	struct bench_floor *f = aligned_alloc(64, sizeof(*f));
	if (!f)
		abort();
	memset(f, 0, sizeof(*f));
	uint64_t n = c->floor_frames;
	bool pc = c->pcpu_bags;
	if (!pc) {
		for (int k = 0; k < BENCH_NORD; k++)
			floor_fill(&f->s[k], n >> bench_orders[k]);
	} else {
		unsigned nb = bench_pool_size();
		for (unsigned w = 0; w < nb; w++) {
			f->pc[w] = aligned_alloc(64, BENCH_NORD * sizeof(struct fstack));
			if (!f->pc[w])
				abort();
			memset(f->pc[w], 0, BENCH_NORD * sizeof(struct fstack));
		}
		for (int k = 0; k < BENCH_NORD; k++) {
			uint64_t blocks = n >> bench_orders[k], per = blocks / nb;
			/* Disjoint blocks per bag: consecutive runs, or with the
			 * table a random half each (interleaved). */
			uint32_t *perm = c->pcpu_table ? ptab_setup(f, k, blocks) : NULL;
			for (unsigned w = 0; w < nb; w++) {
				floor_fill(&f->pc[w][k], per);
				for (uint64_t i = 0; i < per; i++)
					f->pc[w][k].a[i] = perm ? perm[w * per + i] : (uint32_t)(w * per + i);
			}
			free(perm);
		}
	}
	c->fl = f;
	return 0;
}

static void floor_teardown(struct cand *c)
{
	struct bench_floor *f = c->fl;
	if (!f)
		return;
	for (int k = 0; k < BENCH_NORD; k++)
		free(f->s[k].a), free(f->tab[k]);
	for (unsigned w = 0; w < BENCH_MAXT; w++)
		if (f->pc[w]) {
			for (int k = 0; k < BENCH_NORD; k++)
				free(f->pc[w][k].a);
			free(f->pc[w]);
		}
	free(f);
	c->fl = NULL;
}

static struct cand C[15];

int bench_candidates(struct cand **out)
{
	int n = 0;
	struct cand *c;
#define LAB(nm, lg)                                                                        \
	(c = &C[n++], memset(c, 0, sizeof(*c)), c->name = nm, c->kind = "labyrinth",        \
	 c->legend = lg, c->setup = lab_setup, c->teardown = lab_teardown,                 \
	 c->check = lab_check_cb, c->drain = lab_drain_cb, c->zone_bytes = BENCH_ZONE,     \
	 c->aflags = LAB_NOWAIT, c->owner = 1)

	LAB("lab scrub-on-free",
	    "two shared owners alternate (1, 2, 1, ...), so every frame changes owner: "
	    "lab_free zeroes it (non-temporal stores) before it can be allocated again");
	c->scrubs = true;
	SET_FAMILY(c, labx);

	LAB("lab deferred-scrub",
	    "LAB_ZONE_DEFERRED_SCRUB, two shared owners alternate: frees park frames dirty; "
	    "the loop calls lab_scrub(zone, 32) after every 32 frees, as an idle loop would, "
	    "inside the timed region (throughput counts it; the latency runs leave it untimed)");
	c->scrubs = true, c->zone_flags = LAB_ZONE_DEFERRED_SCRUB, c->scrub_every = 32;
	SET_FAMILY(c, labd);

	LAB("lab same-owner", "one exclusive owner with every colour: frames go back to the "
	                      "same owner, no scrub needed (LAB_NOWAIT)");
	c->exclusive = true;
	SET_FAMILY(c, labp);

	LAB("lab excl-colours",
	    "an exclusive owner with half the colours, LAB_EXCLUSIVE|LAB_NOWAIT; 2 GiB zone so "
	    "its pool holds 262,144 frames like the others");
	c->exclusive = true, c->half_colours = true, c->zone_bytes = 2 * BENCH_ZONE;
	c->aflags = LAB_NOWAIT | LAB_EXCLUSIVE;
	SET_FAMILY(c, labp);

	LAB("lab atomic", "same-owner with LAB_ATOMIC (may use the atomic reserve)");
	c->exclusive = true, c->aflags = LAB_ATOMIC;
	SET_FAMILY(c, labp);

	LAB("lab owner per CPU",
	    "one exclusive owner per worker thread, each with its own colours (the colours cut in "
	    "as many runs as there are workers, at most 8; a 1 GiB zone per owner): tenants that "
	    "share no pool, LAB_EXCLUSIVE|LAB_NOWAIT");
	c->owner_per_cpu = true, c->exclusive = true, c->aflags = LAB_NOWAIT | LAB_EXCLUSIVE;
	c->nr_owners = bench_pool_size() < 8 ? bench_pool_size() : 8;
	if (c->nr_owners < 1)
		c->nr_owners = 1;
	c->zone_bytes = (uint64_t)c->nr_owners * BENCH_ZONE;
	c->no_cross = true;
	c->no_cross_why = "n/a: a frame freed on the other CPU would be another owner's (refused)";
	SET_FAMILY(c, labo);
#undef LAB

#define GPC(nm, lg, F, su)                                                                 \
	(c = &C[n++], memset(c, 0, sizeof(*c)), c->name = nm, c->kind = "general-purpose",  \
	 c->legend = lg, c->setup = su);                                                   \
	SET_FAMILY(c, F)
	GPC("glibc", "aligned_alloc(4096 << k, 4096 << k) / free (glibc)", glibc, glibc_setup);
	GPC("jemalloc", "mallocx(4096 << k, MALLOCX_ALIGN(4096 << k)) / dallocx", je, gp_setup);
	GPC("mimalloc", "mi_malloc_aligned(4096 << k, 4096 << k) / mi_free", mi, gp_setup);
	GPC("tcmalloc", "tc_memalign(4096 << k, 4096 << k) / tc_free (gperftools)", tc, gp_setup);
#undef GPC

#define FLC(nm, lg, F)                                                                     \
	(c = &C[n++], memset(c, 0, sizeof(*c)), c->name = nm, c->kind = "floor",            \
	 c->legend = lg, c->setup = floor_setup, c->teardown = floor_teardown,             \
	 c->floor_frames = BENCH_ZONE >> 12);                                              \
	SET_FAMILY(c, F)
	FLC("floor LIFO+lock", "a stack of frame indices under one test-and-test-and-set spinlock "
	                       "(one stack per order, of 2^k-frame blocks)",
	    lifo);
	FLC("floor bag+lock", "an array of frame indices under the spinlock: uniform pick "
	                      "(wyrand, multiply-shift), swap-remove; free appends",
	    bag);
	FLC("floor per-CPU bags", "one random bag per worker thread, no lock (the zone split "
	                          "evenly); cannot take frees from another CPU",
	    pcpu);
	c->no_cross = c->pcpu_bags = true;
	c->no_cross_why = "n/a: a per-CPU bag without a lock cannot take another CPU's frees";
	const char *bag_why = c->no_cross_why;
	FLC("floor per-CPU bags+table",
	    "the per-CPU bags, each over a random half of the frames, and a shared 4-byte owner "
	    "word per frame that alloc and free CAS: the price of an owner table under random "
	    "placement, nothing else shared",
	    ptab);
	c->no_cross = c->pcpu_bags = c->pcpu_table = true;
	c->no_cross_why = bag_why;
	FLC("floor shared swap", "one array of frame slots shared by all threads, no lock: alloc "
	                         "empties a uniformly random full slot (atomic exchange), free exchanges "
	                         "into a uniformly random slot and keeps what it displaces in a small "
	                         "per-thread hand: global uniformity, nothing else",
	    swap);
	c->no_cross = true;
	c->no_cross_why = "n/a: the freeing CPU's hand fills and each free then hunts for one of the "
	                  "256 empty slots among 262,144 (a floor for immediate and batch only)";
#undef FLC
	*out = C;
	return n;
}

void bench_scale_cands(struct cand *lab, struct cand *lifo, struct cand *bag, uint64_t bytes)
{
	memset(lab, 0, sizeof(*lab));
	lab->name = "lab (no-scrub zone)";
	lab->kind = "labyrinth";
	lab->legend = "LAB_ZONE_NO_SCRUB, arena never touched; owner 1 shared (pairs, "
	              "fills the zone), owner 2 shared with a quota of 1024 frames";
	lab->setup = lab_setup, lab->teardown = lab_teardown;
	lab->check = lab_check_cb, lab->drain = lab_drain_cb;
	lab->zone_bytes = bytes, lab->zone_flags = LAB_ZONE_NO_SCRUB, lab->no_touch = true;
	lab->aflags = LAB_NOWAIT, lab->owner = 1, lab->quota2 = 1024;
	SET_FAMILY(lab, labp);
	memset(lifo, 0, sizeof(*lifo));
	lifo->name = "floor LIFO+lock", lifo->kind = "floor";
	lifo->setup = floor_setup, lifo->teardown = floor_teardown, lifo->floor_frames = bytes >> 12;
	SET_FAMILY(lifo, lifo);
	memset(bag, 0, sizeof(*bag));
	bag->name = "floor bag+lock", bag->kind = "floor";
	bag->setup = floor_setup, bag->teardown = floor_teardown, bag->floor_frames = bytes >> 12;
	SET_FAMILY(bag, bag);
}

struct cand *bench_ring_cand(void)
{
	static struct cand r;
	memset(&r, 0, sizeof(r));
	r.name = "ring alone";
	r.kind = "floor";
	r.legend = "the cross-CPU ring with no allocator: the handoff's own cost";
	SET_FAMILY(&r, null);
	return &r;
}

/* ---- failing allocations (zone scaling) -------------------------------------------- */

struct failarg {
	struct cand *c;
	size_t samples;
	struct fail_res *fr;
};

static uint32_t *fill_buf;
static uint64_t fill_cap;

static void fail_time(struct tctx *t, lab_zone_t *z, lab_owner_t o, size_t samples, double *med,
                      double *max, double *mean)
{
	size_t n = samples < t->lat_cap ? samples : t->lat_cap;
	uint64_t pfn;
	for (size_t i = 0; i < n; i++) {
		uint64_t a = tsc_ser();
		int rc = lab_alloc(z, o, 0, LAB_NOWAIT, &pfn);
		uint64_t b = tsc_ser();
		t->lat_a[i] = (uint32_t)(b - a > UINT32_MAX ? UINT32_MAX : b - a);
		if (rc == LAB_OK) /* a frame came back (another CPU's cache drained): return it */
			lab_free(z, o, pfn, 0);
	}
	bench_sort_u32(t->lat_a, n);
	*med = bench_pct(t->lat_a, n, 0.5);
	*max = bench_pct(t->lat_a, n, 1.0);
	*mean = bench_tmean(t->lat_a, n);
}

static void fail_fn(void *arg, int tid)
{
	struct failarg *fa = arg;
	struct tctx *t = P.t[tid];
	lab_zone_t *z = fa->c->hz.zone;
	uint64_t pfn, n = 0;
	int rc;
	/* at quota: owner 2 */
	while ((rc = lab_alloc(z, 2, 0, LAB_NOWAIT, &pfn)) == LAB_OK && n < fill_cap)
		fill_buf[n++] = (uint32_t)pfn;
	fa->fr->q_err = rc, fa->fr->q_held = n;
	fail_time(t, z, 2, fa->samples, &fa->fr->q_med, &fa->fr->q_max, &fa->fr->q_mean);
	for (uint64_t i = 0; i < n; i++)
		lab_free(z, 2, fill_buf[i], 0);
	/* full zone: owner 1 */
	n = 0;
	while ((rc = lab_alloc(z, 1, 0, LAB_NOWAIT, &pfn)) == LAB_OK && n < fill_cap)
		fill_buf[n++] = (uint32_t)pfn;
	fa->fr->f_err = rc, fa->fr->f_held = n;
	fail_time(t, z, 1, fa->samples, &fa->fr->f_med, &fa->fr->f_max, &fa->fr->f_mean);
	for (uint64_t i = 0; i < n; i++)
		lab_free(z, 1, fill_buf[i], 0);
}

void bench_fail(struct cand *lab, size_t samples, struct fail_res *fr)
{
	if (fill_cap < lab->hz.nr_frames) {
		free(fill_buf);
		fill_cap = lab->hz.nr_frames;
		fill_buf = malloc(fill_cap * sizeof(uint32_t));
		if (!fill_buf)
			abort();
	}
	struct failarg fa = {lab, samples, fr};
	bench_pool_run(1, fail_fn, &fa);
}

/* ---- micro-floors ---------------------------------------------------------------- */

const char *const bench_mf_name[MF_N] = {
	"timer: serialized TSC pair, empty (p50)",
	"timer: resolution (smallest step seen)",
	"memset 4 KiB, cached frame",
	"memset 4 KiB, cold frame (random in the buffer)",
	"non-temporal store 4 KiB, cold frame",
	"CAS, uncontended",
	"CAS, random line of 4 MiB (L3 sized)",
	"a line handed CPU 0 -> CPU 1 (half a ping-pong)",
	"spinlock lock+unlock, uncontended",
	"ChaCha12 64-bit draw (4-block buffer)",
	"dependent load, random line of 1 MiB",
	"dependent load, random line of 64 MiB",
};

static uint8_t *cold_buf;
static size_t cold_bytes;
/* MF_CAS_L3 works in the first 4 MiB of the cold buffer: the size of a 1 GiB
 * zone's metadata (records and slots) with room, past L2, inside L3.  A
 * locked RMW there is what a refill or an exchange does to a record that is
 * not in L2; on some hosts it costs far more than a plain load. */
#define COLD_L3_BYTES (4u << 20)

int bench_micro_setup(size_t bytes)
{
	cold_bytes = bytes;
	void *p = mmap(NULL, cold_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	madvise(p, cold_bytes, MADV_HUGEPAGE);
	memset(p, 0, cold_bytes);
	cold_buf = p;
	return 0;
}

void bench_micro_teardown(void)
{
	if (cold_buf)
		munmap(cold_buf, cold_bytes);
	cold_buf = NULL;
}

static inline void nt_zero(void *va)
{
#if defined(__SSE2__)
	__m128i z = _mm_setzero_si128();
	__m128i *p = va, *end = (__m128i *)((char *)va + 4096);
	for (; p < end; p += 8) {
		_mm_stream_si128(p + 0, z);
		_mm_stream_si128(p + 1, z);
		_mm_stream_si128(p + 2, z);
		_mm_stream_si128(p + 3, z);
		_mm_stream_si128(p + 4, z);
		_mm_stream_si128(p + 5, z);
		_mm_stream_si128(p + 6, z);
		_mm_stream_si128(p + 7, z);
	}
	_mm_sfence();
#else
	memset(va, 0, 4096);
#endif
}

/* ChaCha12, four blocks at once with vector extensions (as the library's
 * generator does), drawn 64 bits at a time. */
typedef uint32_t v4u __attribute__((vector_size(16)));
#define VROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define VQR(a, b, c, d)                                                                    \
	do {                                                                               \
		a += b, d ^= a, d = VROTL(d, 16);                                          \
		c += d, b ^= c, b = VROTL(b, 12);                                          \
		a += b, d ^= a, d = VROTL(d, 8);                                           \
		c += d, b ^= c, b = VROTL(b, 7);                                           \
	} while (0)

struct chacha {
	uint32_t key[8];
	uint64_t ctr;
	uint32_t idx;
	uint64_t buf[32];
};

static void chacha_refill(struct chacha *s)
{
	v4u in[16], x[16];
	static const uint32_t k[4] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u};
	for (int i = 0; i < 4; i++)
		in[i] = (v4u){k[i], k[i], k[i], k[i]};
	for (int i = 0; i < 8; i++)
		in[4 + i] = (v4u){s->key[i], s->key[i], s->key[i], s->key[i]};
	uint64_t c = s->ctr;
	in[12] = (v4u){(uint32_t)c, (uint32_t)(c + 1), (uint32_t)(c + 2), (uint32_t)(c + 3)};
	in[13] = (v4u){(uint32_t)(c >> 32), (uint32_t)((c + 1) >> 32), (uint32_t)((c + 2) >> 32),
	               (uint32_t)((c + 3) >> 32)};
	in[14] = (v4u){0, 0, 0, 0};
	in[15] = in[14];
	memcpy(x, in, sizeof(x));
	for (int r = 0; r < 12; r += 2) {
		VQR(x[0], x[4], x[8], x[12]);
		VQR(x[1], x[5], x[9], x[13]);
		VQR(x[2], x[6], x[10], x[14]);
		VQR(x[3], x[7], x[11], x[15]);
		VQR(x[0], x[5], x[10], x[15]);
		VQR(x[1], x[6], x[11], x[12]);
		VQR(x[2], x[7], x[8], x[13]);
		VQR(x[3], x[4], x[9], x[14]);
	}
	uint32_t *o = (uint32_t *)s->buf;
	for (int i = 0; i < 16; i++) {
		v4u v = x[i] + in[i];
		for (int j = 0; j < 4; j++)
			o[16 * j + i] = v[j];
	}
	s->ctr += 4;
	s->idx = 0;
}

static inline uint64_t chacha_u64(struct chacha *s)
{
	if (__builtin_expect(s->idx == 32, 0))
		chacha_refill(s);
	return s->buf[s->idx++];
}

static _Alignas(64) _Atomic uint64_t pp_ball;
static _Alignas(64) _Atomic int pp_stop, pp_done;

struct microarg {
	int which;
	double seconds;
	double ns, p99;
};

static void micro_fn(void *arg, int tid)
{
	struct microarg *ma = arg;
	struct tctx *t = P.t[tid];
	uint64_t dl = tsc() + (uint64_t)(ma->seconds * 1e9 * bench_tpns), ops = 0, sink = 0;
	static _Alignas(64) uint8_t hot[4096];
	static _Alignas(64) _Atomic uint64_t word;
	static _Alignas(64) _Atomic uint32_t lock;
	uint64_t nframes = cold_bytes >> 12;
	uint64_t t0 = tsc();
	switch (ma->which) {
	case MF_TIMER:
	case MF_TIMER_RES: {
		size_t n = 0;
		while (n < t->lat_cap && ((n & 1023) != 0 || tsc() < dl)) {
			uint64_t a = tsc_ser();
			uint64_t b = tsc_ser();
			t->lat_a[n++] = (uint32_t)(b - a);
		}
		bench_sort_u32(t->lat_a, n);
		ma->ns = bench_pct(t->lat_a, n, 0.5) / bench_tpns;
		ma->p99 = bench_pct(t->lat_a, n, 0.99) / bench_tpns;
		if (ma->which == MF_TIMER_RES) {
			/* the smallest step between two distinct values seen */
			uint32_t step = UINT32_MAX;
			for (size_t i = 1; i < n; i++)
				if (t->lat_a[i] != t->lat_a[i - 1] && t->lat_a[i] - t->lat_a[i - 1] < step)
					step = t->lat_a[i] - t->lat_a[i - 1];
			ma->ns = step == UINT32_MAX ? 0.0 / 0.0 : step / bench_tpns;
		}
		return;
	}
	case MF_MEMSET_HOT:
		do {
			for (int i = 0; i < 64; i++) {
				memset(hot, (int)(ops + (uint64_t)i), sizeof(hot));
				__asm__ volatile("" ::"r"(hot) : "memory");
			}
			ops += 64;
		} while (tsc() < dl);
		break;
	case MF_MEMSET_COLD:
		do {
			for (int i = 0; i < 16; i++) {
				memset(cold_buf + (below(&t->rng, nframes) << 12), 0, 4096);
				__asm__ volatile("" ::: "memory");
			}
			ops += 16;
		} while (tsc() < dl);
		break;
	case MF_NT_COLD:
		do {
			for (int i = 0; i < 16; i++)
				nt_zero(cold_buf + (below(&t->rng, nframes) << 12));
			ops += 16;
		} while (tsc() < dl);
		break;
	case MF_CAS: {
		uint64_t v = atomic_load(&word);
		do {
			for (int i = 0; i < 256; i++) {
				uint64_t e = v;
				atomic_compare_exchange_strong(&word, &e, v + 1);
				v++;
			}
			ops += 256;
		} while (tsc() < dl);
		break;
	}
	case MF_CAS_L3: {
		_Atomic uint64_t *w = (_Atomic uint64_t *)(void *)cold_buf;
		uint64_t lines = COLD_L3_BYTES / 64;
		do {
			for (int i = 0; i < 256; i++) {
				_Atomic uint64_t *at = w + below(&t->rng, lines) * 8;
				uint64_t e = atomic_load_explicit(at, memory_order_relaxed);
				atomic_compare_exchange_strong(at, &e, e + 1);
			}
			ops += 256;
		} while (tsc() < dl);
		break;
	}
	case MF_LOAD_1M:
	case MF_LOAD_64M: {
		/* A chain of loads, each address depending on the value the one
		 * before read (always 0): the latency of reading a random record
		 * in a 1 GiB zone's record table (1 MiB) and a 64 GiB zone's
		 * (64 MiB), which a free must do for the frame its caller names. */
		size_t bytes = (size_t)(ma->which == MF_LOAD_1M ? 1 : 64) << 20;
		if (bytes > cold_bytes)
			bytes = cold_bytes;
		const volatile uint64_t *w = (const volatile uint64_t *)(void *)cold_buf;
		uint64_t lines = bytes / 64, dep = 0;
		do {
			for (int i = 0; i < 256; i++)
				dep = w[(below(&t->rng, lines) ^ dep) * 8];
			ops += 256;
		} while (tsc() < dl);
		__asm__ volatile("" ::"r"(dep));
		break;
	}
	case MF_PINGPONG: {
		/* Two workers pass one line back and forth; what every shared
		 * write of a 2-thread run pays when the other CPU has the line.
		 * The host's placement of the two vCPUs decides it.  bench_micro
		 * resets the three words before the run. */
		if (tid == 0) {
			do {
				for (int i = 0; i < 64; i++) {
					uint64_t want = 2 * (ops + (uint64_t)i);
					while (atomic_load_explicit(&pp_ball, memory_order_acquire) != want)
						relax();
					atomic_store_explicit(&pp_ball, want + 1, memory_order_release);
				}
				ops += 64;
			} while (tsc() < dl);
			atomic_store(&pp_stop, 1);
			while (!atomic_load(&pp_done))
				relax();
			ops *= 2; /* two hand-overs per round trip */
		} else {
			for (uint64_t k = 0;; k++) {
				uint64_t v;
				while ((v = atomic_load_explicit(&pp_ball, memory_order_acquire)) != 2 * k + 1) {
					/* Worker 0 is done, and (read again after pp_stop,
					 * which it sets after its last store) no hand-over
					 * is still waiting for us. */
					if (v == 2 * k && atomic_load(&pp_stop) &&
					    atomic_load_explicit(&pp_ball, memory_order_acquire) == 2 * k) {
						atomic_store(&pp_done, 1);
						return;
					}
					relax();
				}
				atomic_store_explicit(&pp_ball, 2 * k + 2, memory_order_release);
			}
		}
		break;
	}
	case MF_SPIN:
		do {
			for (int i = 0; i < 256; i++) {
				spin_lock(&lock);
				spin_unlock(&lock);
			}
			ops += 256;
		} while (tsc() < dl);
		break;
	case MF_CHACHA: {
		static struct chacha s;
		for (int i = 0; i < 8; i++)
			s.key[i] = (uint32_t)wyrand(&t->rng);
		s.idx = 32;
		do {
			for (int i = 0; i < 256; i++)
				sink += chacha_u64(&s);
			ops += 256;
		} while (tsc() < dl);
		__asm__ volatile("" ::"r"(sink));
		break;
	}
	}
	ma->ns = (double)(tsc() - t0) / bench_tpns / (double)ops;
	ma->p99 = 0;
}

double bench_micro(int which, double seconds, double *p99_out)
{
	struct microarg ma = {which, seconds, 0, 0};
	if ((which == MF_MEMSET_COLD || which == MF_NT_COLD || which == MF_CAS_L3) && !cold_buf)
		return -1;
	if (which == MF_CAS_L3 && cold_bytes < COLD_L3_BYTES)
		return -1;
	if (which == MF_PINGPONG && bench_pool_size() < 2)
		return 0.0 / 0.0; /* one CPU: nothing to hand a line to (n/a) */
	atomic_store(&pp_ball, 0);
	atomic_store(&pp_stop, 0);
	atomic_store(&pp_done, 0);
	bench_pool_run(which == MF_PINGPONG ? 2 : 1, micro_fn, &ma);
	if (p99_out)
		*p99_out = ma.p99;
	return ma.ns;
}

/* ---- percentiles ------------------------------------------------------------------ */

/* LSD radix sort, 2 x 16 bits: 200,000 samples sort in a millisecond. */
void bench_sort_u32(uint32_t *v, size_t n)
{
	if (n < 2)
		return;
	uint32_t *tmp = malloc(n * sizeof(uint32_t));
	if (!tmp)
		abort();
	static size_t cnt[65536];
	uint32_t *src = v, *dst = tmp;
	for (int shift = 0; shift < 32; shift += 16) {
		memset(cnt, 0, sizeof(cnt));
		for (size_t i = 0; i < n; i++)
			cnt[(src[i] >> shift) & 0xffff]++;
		size_t sum = 0;
		for (size_t b = 0; b < 65536; b++) {
			size_t x = cnt[b];
			cnt[b] = sum;
			sum += x;
		}
		for (size_t i = 0; i < n; i++)
			dst[cnt[(src[i] >> shift) & 0xffff]++] = src[i];
		uint32_t *s = src;
		src = dst, dst = s;
	}
	/* two passes: the sorted data is back in v */
	free(tmp);
}

/* Nearest-rank percentile of sorted data (p = 1: the maximum). */
double bench_pct(const uint32_t *s, size_t n, double p)
{
	if (!n)
		return 0.0 / 0.0;
	double r = p * (double)n;
	size_t i = (size_t)r;
	if ((double)i < r)
		i++;
	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return (double)s[i - 1];
}

double bench_tmean(const uint32_t *s, size_t n)
{
	if (!n)
		return 0.0 / 0.0;
	double lim = bench_pct(s, n, 0.99), sum = 0;
	size_t k = 0;
	for (size_t i = 0; i < n && s[i] <= lim; i++)
		sum += s[i], k++;
	return sum / (double)k;
}
