/*
 * internal.h - private declarations of the labyrinth core, one section per file.
 *
 * The big picture (docs/DESIGN-NOTES.md has the long version):
 *
 *  - Every frame has one 32-bit record (the frame table) and every frame of a
 *    colour pool has one 32-bit slot in the pool's array G: 8 bytes per frame.
 *  - A pool is the set of frames whose colours one group of owners may use.
 *    Its free frames sit in G[0, n), kept as a uniformly shuffled array; the
 *    record of a frame in G holds its position there, so any frame can be
 *    found and taken out in O(1) (higher orders need that).
 *  - Each CPU keeps, per pool, a FIFO of at most LAB_PCP_CAP frames (the pcp).
 *    Order-0 alloc pops the pcp; order-0 free *exchanges* the freed frame
 *    with the frame at a uniformly random position of G, and the displaced
 *    frame joins the pcp.  So a freed frame lands at a random place, the
 *    frames handed out are uniform samples of G, and a balanced alloc/free
 *    stream does a fixed amount of work per call and touches no shared hot
 *    cache line.  Imbalance moves frames between the pcp and the tail of G
 *    under the pool's lock: LAB_PCP_REFILL into an empty pcp, LAB_PCP_BATCH
 *    out of a full one.
 *  - Concurrency: a record in state BUSY is a lock on that frame (and on the
 *    slot of G that holds it).  Exchanges lock the frame they displace with
 *    one CAS; everything that changes n holds the pool lock and locks the
 *    occupants of the slots it moves.  src/core/model/pool.pml models this.
 */
#ifndef LAB_INTERNAL_H
#define LAB_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "labyrinth.h"
#include "labyrinth/platform.h"

/* ---- build switches: always defined, used in plain ifs --------------------- */

#ifndef LAB_DEBUG
#define LAB_DEBUG 0 /* 1: cheap asserts on every transition */
#endif
#ifndef LAB_HARDEN
#define LAB_HARDEN 1 /* 1: keyed check value verified on every record read */
#endif

#define LAB_PCP_CAP (2 * LAB_PCP_BATCH) /* frames a CPU caches per pool     */
#define LAB_XCHG_TRIES 4                /* random slots tried by an exchange */
#define LAB_PIPE 8                      /* exchanges drawn ahead (2^k)       */
#define LAB_PCP_REFILL 4                /* frames a refill takes (<= batch)  */
#define LAB_DIRTY_CAP 64                /* deferred-scrub ring per CPU       */
#define LAB_NESTED_CAP 16               /* frees deferred by nested calls    */
#define LAB_NESTED_SPINS 4096           /* a nested call never waits longer  */
#define LAB_NESTED_RETRIES 64           /* fresh draws for a nested insert   */
#define LAB_ZONE_MAGIC 0x4c414259u      /* "LABY"                            */
#define LAB_NONE 0xffffffffu
/* Frame 2^32 - 1 of a zone of 2^32 frames is reserved at init and never free:
 * every frame in a pool or a cache is then below LAB_NONE, and a pool holds
 * at most 2^32 - 1 frames, so n, slot numbers and frame numbers stay 32-bit. */
#define LAB_TOP_FRAME 0xffffffffu

/*
 * lab_public(x): x may be known to an observer; the ctgrind-style audit
 * (tests/ctgrind.c, built with -DLAB_CTGRIND=1 and run under valgrind's
 * memcheck) marks the allocator's state secret and flags every branch and
 * address that depends on it, except values passed through here.  Only two
 * kinds of value may be: (a) random draws whose distribution does not depend
 * on the allocator's state (CSPRNG output, the uniformly drawn slot and the
 * frame in it, which the caller receives anyway), and (b) outcomes of
 * consistency checks that are constant unless memory is corrupt or another
 * CPU interferes.  Elsewhere it compiles to nothing.
 */
#ifndef LAB_CTGRIND
#define LAB_CTGRIND 0
#endif
#if LAB_CTGRIND == 2 /* self-test of the check: declassify nothing, it must fail */
#define lab_public(x) (x)
#elif LAB_CTGRIND
#include <valgrind/memcheck.h>
#define lab_public(x)                                                          \
	__extension__({                                                        \
		__typeof__(x) pub_ = (x);                                      \
		VALGRIND_MAKE_MEM_DEFINED(&pub_, sizeof pub_);                 \
		pub_;                                                          \
	})
#else
#define lab_public(x) (x)
#endif

/* c ? a : b computed with masks, never a branch or a conditional move: the
 * empty asm hides the mask from the optimiser, which would otherwise turn
 * the expression back into one.  For choices that must not show in time. */
static inline uintptr_t lab_mask(int c)
{
	uintptr_t m = (uintptr_t)0 - (uintptr_t)(c != 0);
	__asm__("" : "+r"(m));
	return m;
}
static inline uint32_t sel32(int c, uint32_t a, uint32_t b)
{
	uint32_t m = (uint32_t)lab_mask(c);
	return (a & m) | (b & ~m);
}
static inline uintptr_t lab_selu(int c, uintptr_t a, uintptr_t b)
{
	uintptr_t m = lab_mask(c);
	return (a & m) | (b & ~m);
}
#define SELP(c, a, b) ((__typeof__(a))lab_selu((c), (uintptr_t)(a), (uintptr_t)(b)))

#define lab_likely(x) __builtin_expect(!!(x), 1)
#define lab_unlikely(x) __builtin_expect(!!(x), 0)

#define lab_assert(c)                                                          \
	do {                                                                   \
		if (LAB_DEBUG && !(c))                                         \
			lab_plat_panic("labyrinth: assertion failed: " #c);    \
	} while (0)

typedef _Atomic uint32_t lab_a32;
typedef _Atomic uint64_t lab_a64;

#define ld_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define ld_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define st_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define st_release(p, v) atomic_store_explicit((p), (v), memory_order_release)

/* A counter only its CPU writes: plain load + store, readable by others. */
static inline void stat_add(lab_a64 *c, uint64_t v)
{
	st_relaxed(c, ld_relaxed(c) + v);
}

/* Bits set in x (not __builtin_popcountll: without -mpopcnt it calls libgcc,
 * and the core links against nothing but mem*). */
static inline unsigned lab_popcount64(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* ---- rng.c: ChaCha12 keystream, one generator per CPU --------------------- */

#define LAB_RNG_WORDS 64 /* four ChaCha blocks per refill */
struct lab_rng {
	uint32_t idx; /* next unused word of buf; LAB_RNG_WORDS = empty */
	uint32_t key[8];
	uint64_t nonce;
	uint64_t counter;
	uint32_t buf[LAB_RNG_WORDS];
};

void lab_rng_init(struct lab_rng *rng, const uint32_t key[8], uint64_t nonce);
void lab_rng_refill(struct lab_rng *rng);
void lab_chacha_block(const uint32_t key[8], uint64_t counter, uint64_t nonce, uint32_t out[16]);
void lab_chacha_rounds(const uint32_t key[8], uint64_t counter, uint64_t nonce, uint32_t out[16],
                       int rounds);

static inline uint64_t lab_rng_u64(struct lab_rng *rng)
{
	if (lab_unlikely(rng->idx >= LAB_RNG_WORDS))
		lab_rng_refill(rng);
	uint64_t v = (uint64_t)rng->buf[rng->idx] | ((uint64_t)rng->buf[rng->idx + 1] << 32);
	rng->idx += 2;
	return v;
}

/* High 64 bits of a 64x32-bit product, exact: one MUL where the compiler has
 * 128-bit integers, two 32x32 products otherwise (32-bit kernels). */
static inline uint64_t mulhi_64x32(uint64_t a, uint32_t b)
{
#if defined(__SIZEOF_INT128__)
	return (uint64_t)(((unsigned __int128)a * b) >> 64);
#else
	uint64_t lo = (a & 0xffffffffu) * b;
	uint64_t hi = (a >> 32) * b;
	return (hi + (lo >> 32)) >> 32;
#endif
}

/* Uniform integer in [0, n) from a 64-bit uniform u, n <= 2^32: floor(u*n/2^64).
 * No rejection loop, so no data-dependent time; each value has probability
 * within n/2^64 <= 2^-32 of 1/n (the bias P1 allows, stated). */
static inline uint32_t lab_bound(uint64_t u, uint64_t n)
{
	/* n == 2^32 does not fit a uint32_t multiplier: take the high word. */
	if (lab_unlikely(n > 0xffffffffu))
		return (uint32_t)(u >> 32);
	return (uint32_t)mulhi_64x32(u, (uint32_t)n);
}

/* ---- record.c: the frame table ---------------------------------------------
 *
 *  bit 31 = 1   IN POOL: bits 30..0 = position in G >> 1.  The frame is at
 *               slot 2p or 2p+1; G itself says which (G[slot] == frame).
 *  bit 31 = 0   bits 30..28 state, 27..24 a, 23..12 id, 11..0 keyed check:
 *     ALLOC     head of an allocated block: a = order, id = owner
 *     TAIL      other frames of that block: a = order, id = owner
 *     PCP       cached on a CPU: id = pool
 *     DIRTY     freed, waiting for lab_scrub: id = previous owner
 *     UNASSIGNED  free, colour in no pool: a bit 0 = dirty
 *     RESERVED  never allocatable
 *     BUSY      locked by the CPU id during a transition
 *  A zero word is state 0, never valid: uninitialised memory is caught.
 *
 *  The check is (k1*a + k2*id + k3*state + H(frame)) mod 4096 with odd
 *  secret k1..k3 and H a keyed multiply-shift hash: changing any single
 *  field always changes it, several fields or a record copied from another
 *  frame are caught with probability 1 - 2^-12.  Scudo keys its chunk
 *  headers the same way.
 */

enum lab_state {
	ST_INVALID = 0,
	ST_ALLOC = 1,
	ST_TAIL = 2,
	ST_PCP = 3,
	ST_DIRTY = 4,
	ST_UNASSIGNED = 5,
	ST_RESERVED = 6,
	ST_BUSY = 7
};

#define REC_INPOOL 0x80000000u
#define REC_POS_MASK 0x7fffffffu

static inline bool rec_inpool(uint32_t v) { return (v & REC_INPOOL) != 0; }
static inline uint32_t rec_state(uint32_t v) { return (v >> 28) & 7u; }
static inline uint32_t rec_a(uint32_t v) { return (v >> 24) & 15u; }
static inline uint32_t rec_id(uint32_t v) { return (v >> 12) & 0xfffu; }
static inline uint32_t rec_pos(uint32_t slot) { return REC_INPOOL | (slot >> 1); }

struct lab_zone;

/* Keyed 12-bit hash of a frame number: multiply-shift with a secret odd
 * multiplier (2-universal), one multiplication. */
static inline uint32_t rec_fhash(const struct lab_zone *z, uint32_t frame);

static inline uint32_t rec_make(const struct lab_zone *z, uint32_t frame, uint32_t state,
                                uint32_t a, uint32_t id);
/* ---- zone layout ----------------------------------------------------------- */

/* One colour pool. */
struct lab_pool {
	_Alignas(64) lab_a32 n; /* live entries G[0, n)                         */
	lab_a32 lock;  /* 0, or holder CPU id + 1: changes n, pops, pushes    */
	lab_a32 state; /* POOL_FREE, POOL_ACTIVE, POOL_DYING                   */
	uint32_t flags;
	uint64_t cap;      /* slots: nr_col * slice (may reach 2^32)            */
	uint32_t nr_col;
	uint32_t reserve;  /* frames only LAB_ATOMIC may take                   */
	uint32_t pcp_max;  /* frames a CPU may cache (0: no caching)            */
	uint32_t pcp_batch; /* frames moved per refill / spill: pcp_max / 2      */
	uint32_t nr_owners;
	uint64_t mask;     /* colours                                          */
	uint64_t div_magic; /* floor(2^64 / (2 nr_col)) + 1: slot -> row (gslot) */
	uint64_t grp[LAB_MAX_ORDER + 1]; /* order k: bit g = colours [g*2^k, (g+1)*2^k) all ours */
	uint64_t rows_lo[LAB_MAX_ORDER + 1], rows_hi[LAB_MAX_ORDER + 1]; /* candidate rows */
	uint8_t slice_colour[LAB_MAX_COLOURS];
	uint32_t teardown_phase; /* dissolve progress                         */
	uint64_t cursor;
};

enum { POOL_FREE = 0, POOL_ACTIVE = 1, POOL_DYING = 2 };
#define POOL_EXCL 0x1u   /* one exclusive owner: no scrub on free         */
#define POOL_ZEROED 0x2u /* frames in G are zero                          */

struct lab_owner {
	_Alignas(64) lab_a32 state; /* OWNER_FREE, OWNER_ACTIVE, OWNER_DYING */
	uint32_t pool;
	uint32_t flags;
	uint32_t phase; /* teardown progress */
	uint64_t colours;
	uint64_t quota;
	lab_a64 held_q;   /* frames held, maintained only when quota != 0 */
	_Atomic int64_t held_slow; /* held changes made outside per-CPU counters */
	uint64_t cursor;
	uint32_t alin;    /* rec_lin(ST_ALLOC, 0, this id): fixed at zone init */
	lab_a32 incarn;   /* bumped by each lab_owner_add of this id: a call that
	                     read the owner before entering tells a removal and
	                     re-addition meanwhile from no change (lab_alloc) */
};

/* Each owner and each pool on lines of its own: an owner with a quota writes
 * held_q on every call, and while owners were 56 bytes that line also held
 * the next owner's state and pool, which every call of that owner reads (one
 * tenant's calls made another's 1.8-2.2x slower: bench/neighbour-owners.c);
 * a pool's refills and spills write its n and lock, which a 408-byte pool
 * shared with the end of the pool before it. */
_Static_assert(sizeof(struct lab_owner) % 64 == 0, "struct lab_owner: whole cache lines");
_Static_assert(sizeof(struct lab_pool) % 64 == 0, "struct lab_pool: whole cache lines");

enum { OWNER_FREE = 0, OWNER_ACTIVE = 1, OWNER_DYING = 2 };

/* Per-CPU cache of one pool: FIFO of frames taken from G. */
struct lab_pcp {
	uint32_t head;   /* oldest entry                                    */
	lab_a32 count;   /* written by its CPU only; read by stats anywhere */
	/* Draws for the next LAB_PIPE exchanges, a ring: u[ui] is the next
	 * one's, u[(ui + k - 1) % LAB_PIPE] the k-th next one's.  The position
	 * of each was prefetched when it was drawn (LAB_PIPE exchanges ahead),
	 * the record in that position LAB_PIPE / 2 exchanges ahead. */
	uint32_t ui;
	uint32_t left;   /* count the last alloc left: equal at the next alloc
	                    means no free in between (a run of allocations) */
	uint64_t lastN;  /* the last exchange's range: one less at the next one
	                    means a run of frees (the range grows one a call) */
	uint64_t u[LAB_PIPE];
	/* rec_body and rec_lin of the records the fast paths build, (ST_PCP, 0,
	 * this pool) and (ST_BUSY, 0, this CPU's id): fixed at zone init. */
	uint32_t bpcp, lpcp, bbusy, lbusy;
	lab_a32 ring[LAB_PCP_CAP]; /* atomic only so an exchange can select between a
	                              ring slot and a pool slot without a branch */
	/* ring_rix[i] = rix(ring[i]) for the live entries: the alloc finds the
	 * records of the frame it hands out and of the next one without
	 * computing their addresses.  ring_rix[LAB_PCP_CAP] is a sink: it takes
	 * the exchange's write when its position is in G (a data selection,
	 * like the ring slot's). */
	uint32_t ring_rix[LAB_PCP_CAP + 1];
	/* Fields added later go last: the older ones keep their offsets, and
	 * so the L1 sets their lines fall in, which the audit's timing pairs
	 * are sensitive to (docs/AUDIT.md). */
	/* pslot[k]: the position drawn with u[k], as computed when it was
	 * drawn (and prefetched); LAB_PIPE / 2 exchanges later the pipeline
	 * reads it there to prefetch the record of the frame it holds, without
	 * computing the address again.  Always a slot of this pool's colour
	 * slices or of this ring: set to ring[0] at zone init and, on every CPU,
	 * when it catches up after a pool died (lab_pcp_pipe_reset), before a
	 * pool slot can be rebuilt with other colours; lab_check verifies it. */
	lab_a32 *pslot[LAB_PIPE];
	/* Tail hints for the next refill (lab_pool_pop_hinted): the slots of G
	 * positions tail_n - 1 - j, all set together with tail_n, and the
	 * frames last seen in them with their record indices (checked against
	 * the slot before use).  tail_n LAB_NONE: no hints. */
	uint32_t tail_n;
	uint32_t tail_frame[LAB_PCP_REFILL], tail_rix[LAB_PCP_REFILL];
	lab_a32 *tail_slot[LAB_PCP_REFILL];
};

enum lab_stat {
	LS_ALLOCS, LS_FREES, LS_NOMEM, LS_QUOTA, LS_FRAG, LS_REFUSED, LS_SCRUBBED, LS_RESERVE,
	LS_NESTED, LS_SLOTLESS, LS_NR
};
struct lab_cpu_stats {
	lab_a64 v[LS_NR];
};

struct lab_cpu {
	_Atomic uint32_t busy; /* nesting depth on this CPU (same-CPU access only) */
	uint32_t gen_seen;     /* zone->gen at last catch-up                        */
	struct lab_rng rng;
	uint32_t bbusy, lbusy; /* rec_body and rec_lin of (ST_BUSY, 0, this CPU's id): fixed */
	struct lab_cpu_stats st;
	lab_a32 dlock;         /* dirty ring: taken by lab_scrub on other CPUs       */
	uint32_t dhead;        /* under dlock                                         */
	lab_a32 dcount;        /* under dlock for writes; read by anyone              */
	uint32_t dirty[LAB_DIRTY_CAP];
	lab_a32 nested_count;  /* frees queued by nested calls, done by the outer one */
	uint32_t nested[LAB_NESTED_CAP];
	/* followed by: struct lab_pcp pcp[nr_pools]; lab_a64 held[max_owners + 1] */
};

struct lab_zone {
	uint32_t magic;
	uint32_t flags;
	uint32_t nr_colours;
	uint32_t nr_cpus;
	uint32_t max_owners;
	uint32_t nr_pools; /* pool slots = nr_colours */
	uint32_t slice;    /* G slots per colour (a multiple of 16; even for 1)  */
	uint32_t slice_lg; /* log2 of the lines a slice's rows are spread over   */
	uint32_t slice_lmask, slice_rows; /* 2^slice_lg - 1 and 8 * 2^slice_lg (gslot) */
	uint32_t rec_lines; /* L: lines of 16 records the frame table spreads over */
	uint32_t rec_glg;   /* log2 G: a colour's lines are stored G at a time (rix) */
	uint32_t col_lg;    /* log2 nr_colours                                     */
	uint32_t rec_cmask, rec_gmask, rec_hmask; /* C - 1, G - 1, ~(G C - 1) (rix) */
	uint64_t rec_magic; /* floor((2^64 - 1) / L) + 1: frame -> line (rix)     */
	uint32_t reserve_permille;
	uint32_t frame_lim; /* frames that can ever be free: nr_frames, less frame
	                       2^32 - 1 (LAB_TOP_FRAME) in a zone of 2^32 frames;
	                       in what was padding, so no other field moved */
	uint64_t base_pfn;
	uint64_t nr_frames;
	uint8_t *dmap;
	size_t cpu_stride;
	uint8_t *cpu_base;
	lab_a32 *rec;      /* 16 * rec_lines records, frame f's at rix(z, f)     */
	lab_a32 *gstore;   /* nr_colours * slice slots                             */
	struct lab_owner *owners; /* [max_owners + 1] */
	struct lab_pool *pools;   /* [nr_pools]       */
	uint32_t mac_k[3];        /* odd multipliers of the record check          */
	uint64_t mac_h[2];        /* key of the frame hash                        */
	uint32_t master[8];       /* master key (zone rng and derivations)        */
	lab_a32 cfg_lock;         /* owner add/remove, pool build/dissolve        */
	lab_a32 slow_lock;        /* slow_rng and the shared-path CPU             */
	struct lab_rng slow_rng;  /* for CPUs without a slot and nested calls     */
	struct lab_rng cfg_rng;   /* pool builds (under cfg_lock)                 */
	lab_a32 gen;              /* bumped when pools die: CPUs drain at entry   */
	_Atomic int8_t pool_of_colour[LAB_MAX_COLOURS]; /* pool index or -1 */
	uint64_t scrub_cursor;    /* lab_scrub's walk of the frame table          */
	lab_a64 nr_dirty_scan;    /* dirty frames only the walk can find          */
	struct lab_cpu_stats slow_st; /* counters of calls without a CPU slot (atomic adds) */
	/* Nesting depth of contexts without a CPU slot, by platform id below
	 * LAB_MAX_CPUS (a hosted thread's slot, a kernel's CPU id beyond
	 * nr_cpus): each byte is its id's own, as cpu->busy is its CPU's. */
	_Atomic uint8_t slotless_depth[LAB_MAX_CPUS];
};

static inline uint32_t rec_fhash(const struct lab_zone *z, uint32_t frame)
{
	return (uint32_t)((((uint64_t)frame ^ z->mac_h[0]) * z->mac_h[1]) >> 52);
}

/* The field-dependent part of the check, k1*a + k2*id + k3*state: hot paths
 * compute it once per call for the records they build (rec_build). */
static inline uint32_t rec_lin(const struct lab_zone *z, uint32_t state, uint32_t a, uint32_t id)
{
	return z->mac_k[0] * a + z->mac_k[1] * id + z->mac_k[2] * state;
}

static inline uint32_t rec_check(const struct lab_zone *z, uint32_t frame, uint32_t body)
{
	return (rec_lin(z, rec_state(body), rec_a(body), rec_id(body)) + rec_fhash(z, frame)) & 0xfffu;
}

/* A record from its body, its linear part and the frame's hash. */
static inline uint32_t rec_build(uint32_t body, uint32_t lin, uint32_t fh)
{
	return body | ((lin + fh) & 0xfffu);
}

static inline uint32_t rec_body(uint32_t state, uint32_t a, uint32_t id)
{
	return (state << 28) | (a << 24) | (id << 12);
}

static inline uint32_t rec_make(const struct lab_zone *z, uint32_t frame, uint32_t state,
                                uint32_t a, uint32_t id)
{
	return rec_build(rec_body(state, a, id), rec_lin(z, state, a, id), rec_fhash(z, frame));
}

/* Is v a well-formed non-pool record for frame (check value matches)? */
static inline bool rec_valid(const struct lab_zone *z, uint32_t frame, uint32_t v)
{
	if (rec_inpool(v))
		return true; /* validated against G where it is used */
	if (rec_state(v) == ST_INVALID)
		return false;
	if (!LAB_HARDEN)
		return true;
	return (v & 0xfffu) == rec_check(z, frame, v & ~0xfffu);
}

static inline struct lab_cpu *cpu_at(const struct lab_zone *z, uint32_t id)
{
	return (struct lab_cpu *)(z->cpu_base + (size_t)id * z->cpu_stride);
}
static inline struct lab_pcp *cpu_pcp(const struct lab_zone *z, struct lab_cpu *c, uint32_t pool)
{
	(void)z;
	return (struct lab_pcp *)((uint8_t *)c + sizeof(struct lab_cpu)) + pool;
}
static inline lab_a64 *cpu_held(const struct lab_zone *z, struct lab_cpu *c)
{
	return (lab_a64 *)((uint8_t *)cpu_pcp(z, c, 0) + (size_t)z->nr_pools * sizeof(struct lab_pcp));
}

static inline uint32_t frame_colour(const struct lab_zone *z, uint32_t frame)
{
	return (uint32_t)((z->base_pfn + frame) & (z->nr_colours - 1));
}

/*
 * Where frame f's record is (P3, P6): the frame table is transposed over L =
 * rec_lines lines of 16 records, frame f on line m = f mod L, place f / L.  So
 * any run of frames, a contiguous one as much as a scattered one, has its
 * records on min(run, L) distinct lines spread over the whole table: which
 * frames are free (all at the end, one run, a checkerboard) does not decide
 * how many lines a free's record traffic spans, the audit's C2 and C3 (at
 * 10^6 measurements, free |t| 13-24 -> 1-5 in a prototype).  L is a multiple
 * of G nr_colours, so the 16 frames of a line are of one colour, one pool:
 * owners whose colours differ never share a record line.  Line m is stored
 * at rec_line(m): within each group of G nr_colours lines, the G lines of
 * one colour are consecutive (m = g G C + q C + c goes to g G C + c G + q).
 * Stored in the order of m, the colours alternated line by line, and the
 * hardware's adjacent-line prefetch carried one owner's lines into the cache
 * of the CPU working on the next colour's: with two exclusive owners of the
 * even and the odd colours, one owner's batch pairs ran 2.2x slower while
 * the other allocated (bench/neighbour-owners.c interleaved, vCPUs far
 * apart; two CPUs writing random lines of line-interleaved halves of a
 * buffer, 1.15-1.21x, of halves interleaved in runs of 16 lines, 1.00-1.02x).
 * G is 16, or as many lines as a small zone has per colour, so metadata
 * stays 8 bytes a frame (lab_zone_init); 64 where that pads the table by at
 * most 1/64 more, so every colour's lines cover all 64 sets of L1 (with 16,
 * a colour had a quarter of them, and a pool of every other colour, half:
 * the audit's C3).  The price: a block of 2^k frames has its records on
 * 2^k lines, not 2^k / 16.
 */
static inline uint32_t rec_line(const struct lab_zone *z, uint32_t m)
{
	return (m & z->rec_hmask) | (m & z->rec_cmask) << z->rec_glg | (m >> z->col_lg & z->rec_gmask);
}

/* rec_line inverted. */
static inline uint32_t rec_line_inv(const struct lab_zone *z, uint32_t l)
{
	return (l & z->rec_hmask) | (l & z->rec_gmask) << z->col_lg | (l >> z->rec_glg & z->rec_cmask);
}

static inline uint32_t rix(const struct lab_zone *z, uint32_t f)
{
	uint32_t q = (uint32_t)mulhi_64x32(z->rec_magic, f); /* f / L, exact for 32-bit f */
	return rec_line(z, f - q * z->rec_lines) << 4 | q;
}

/* Frame f's record. */
static inline lab_a32 *rec_at(const struct lab_zone *z, uint32_t f)
{
	return &z->rec[rix(z, f)];
}

/* The frame whose record is z->rec[i], i < 16 * rec_lines: (i mod 16) L + i / 16,
 * nr_frames or more for the padding after the last frame.  Walks over the whole
 * table go in this order, a line at a time, not frame by frame (a stride of a
 * line per frame). */
static inline uint64_t rix_frame(const struct lab_zone *z, uint64_t i)
{
	return (i & 15) * z->rec_lines + rec_line_inv(z, (uint32_t)(i >> 4));
}

/*
 * Slot r of pool p, scattered (P3): slots pair up (2k, 2k + 1 adjacent, see
 * locate), pair k goes to colour slice k mod nr_col, row k / nr_col of it,
 * and a slice's rows are transposed over its lines (row t*L + m at line m,
 * place t, for L = 2^slice_lg lines of 8 pairs; rows beyond 8L keep their
 * place).  So G[0, n) touches min(n/2, all) distinct lines spread over the
 * whole store whatever n is: a nearly full pool's few free slots do not sit
 * in a few lines that stay in L1 while a nearly empty pool's miss.
 */
static inline lab_a32 *gslot(const struct lab_zone *z, const struct lab_pool *p, uint32_t r)
{
	/* row = k / nr_col = (2k) / (2 nr_col): a divisor >= 2 has a 64-bit magic */
	uint32_t k = r >> 1, row = (uint32_t)mulhi_64x32(p->div_magic, r & ~1u); /* exact */
	uint32_t ci = k - row * p->nr_col;
	uint32_t tr = (row & z->slice_lmask) << 3 | row >> z->slice_lg;
	uint32_t place = sel32(row < z->slice_rows, tr, row);
	return &z->gstore[(size_t)p->slice_colour[ci] * z->slice + 2 * place + (r & 1)];
}

/*
 * The two decoy lines an exchange prefetches (P3), from a 64-bit draw d: a
 * slot anywhere in the pool's own colour slices and the start of a record
 * line anywhere among its own colours' lines, so the lines a call brings in
 * do not depend on how full the pool is (the scattered G covers min(n/2,
 * all) of the same lines).  Only the pool's own lines: until 2026-11-27 they
 * were drawn over the whole zone, and each read of a line another pool
 * writes costs that pool's CPU an invalidation before its next store there;
 * with two exclusive owners on two CPUs, one owner's batch pairs then ran
 * 1.5-2.2x slower while the other allocated (bench/neighbour-owners.c):
 * a channel from one tenant's activity to another's timing.  Line m holds
 * frames of colour (base_pfn + m) mod nr_colours (rix: L is a multiple of
 * nr_colours); the k-th of colour c's lines is m = k nr_colours + c.
 */
static inline void decoy_lines(const struct lab_zone *z, const struct lab_pool *p, uint64_t d,
                               const lab_a32 **slot, const lab_a32 **rec)
{
	uint64_t d2 = d * 0x9e3779b97f4a7c15ull, d3 = d2 * 0x9e3779b97f4a7c15ull;
	uint32_t col = p->slice_colour[lab_bound(d, p->nr_col)];
	uint32_t lpc = z->rec_lines >> z->col_lg; /* record lines per colour */
	uint32_t c = (uint32_t)(col - z->base_pfn) & (z->nr_colours - 1), k = lab_bound(d3, lpc);
	*slot = &z->gstore[(size_t)col * z->slice + lab_bound(d2, z->slice)];
	*rec = &z->rec[16 * (size_t)rec_line(z, k << z->col_lg | c)];
}

/* ---- locks (lock.c-less: all inline) ----------------------------------------
 * A lock word holds 0 or the holder's CPU id + 1, so a nested call can tell
 * "held by the code I interrupted" (never wait) from "held by another CPU"
 * (wait: the holder is in a short critical section). */

static inline bool lock_try(lab_a32 *l, uint32_t me)
{
	uint32_t zero = 0;
	return atomic_compare_exchange_strong_explicit(l, &zero, me + 1, memory_order_acquire,
	                                               memory_order_relaxed);
}
/* How lock_get waits: LOCK_WAIT until the lock is free; LOCK_NESTED, for a
 * nested call: never for a lock its own id holds (the code it interrupted),
 * at most LAB_NESTED_SPINS for another's. */
enum { LOCK_WAIT = 0, LOCK_NESTED = 1 };
/* Returns false only for LOCK_NESTED, when the lock is ours or will not come
 * free within LAB_NESTED_SPINS. */
static inline bool lock_get(lab_a32 *l, uint32_t me, int mode)
{
	uint32_t spins = 0;
	for (;;) {
		if (lock_try(l, me))
			return true;
		uint32_t h = ld_relaxed(l);
		if (mode == LOCK_NESTED && (h == me + 1 || ++spins > LAB_NESTED_SPINS))
			return false;
		lab_plat_relax();
	}
}
static inline void lock_put(lab_a32 *l)
{
	st_release(l, 0);
}

/* ---- cpu.c: entering and leaving the zone --------------------------------- */

struct lab_ctx {
	struct lab_zone *z;
	struct lab_cpu *cpu; /* NULL: no per-CPU slot (shared path)       */
	uint32_t id;         /* CPU id (for lock words)                   */
	bool nested;         /* this CPU was already inside the zone      */
	bool slotless_own;   /* no slot, an id of its own: slotless_depth */
	unsigned long irq;
	struct lab_rng *rng; /* cpu->rng, or the zone's slow_rng (locked) */
	bool slow_locked;
};

void lab_ctx_enter_rare(struct lab_zone *z, struct lab_ctx *c);
void lab_ctx_exit_queued(struct lab_ctx *c);

/* Enter the zone on this CPU (cpu.c says what a context is).  Inline: every
 * public call runs it, and out of line it cost a call, a return and the
 * saves around them, twice a call. */
static inline void lab_ctx_enter(struct lab_zone *z, struct lab_ctx *c)
{
	c->z = z;
	c->irq = lab_plat_irq_save();
	c->id = lab_plat_cpu();
	c->nested = false;
	c->slotless_own = false;
	c->slow_locked = false;
	c->cpu = NULL;
	c->rng = NULL;
	if (lab_likely(c->id < z->nr_cpus)) {
		struct lab_cpu *cpu = cpu_at(z, c->id);
		uint32_t depth = ld_relaxed(&cpu->busy);
		st_relaxed(&cpu->busy, depth + 1);
		atomic_signal_fence(memory_order_seq_cst);
		c->cpu = cpu;
		c->nested = depth != 0;
		if (c->nested) {
			atomic_fetch_add_explicit(&z->slow_st.v[LS_NESTED], 1, memory_order_relaxed);
		} else {
			c->rng = &cpu->rng;
			if (lab_unlikely(ld_acquire(&z->gen) != cpu->gen_seen))
				lab_ctx_enter_rare(z, c);
		}
	} else {
		lab_ctx_enter_rare(z, c);
	}
}

/* How this context waits for a lock whose failure it handles (lock_get). */
static inline int lock_mode(const struct lab_ctx *c)
{
	return c->nested ? LOCK_NESTED : LOCK_WAIT;
}

/* Finish frees queued by nested calls, then leave. */
static inline void lab_ctx_exit(struct lab_ctx *c)
{
	struct lab_cpu *cpu = c->cpu;
	if (cpu) {
		if (!c->nested && lab_unlikely(ld_relaxed(&cpu->nested_count) != 0))
			lab_ctx_exit_queued(c);
		atomic_signal_fence(memory_order_seq_cst);
		st_relaxed(&cpu->busy, ld_relaxed(&cpu->busy) - 1);
	} else if (c->slotless_own) {
		atomic_signal_fence(memory_order_seq_cst);
		st_relaxed(&c->z->slotless_depth[c->id], (uint8_t)(ld_relaxed(&c->z->slotless_depth[c->id]) - 1));
	}
	lab_plat_irq_restore(c->irq);
}
void lab_zone_stat(struct lab_zone *z, enum lab_stat which);

/* Count into this CPU's counters, or the zone's (atomically) for nested and
 * slot-less contexts. */
static inline void lab_ctx_stat(struct lab_ctx *c, enum lab_stat which, uint64_t v)
{
	if (lab_likely(c->cpu && !c->nested))
		stat_add(&c->cpu->st.v[which], v);
	else
		atomic_fetch_add_explicit(&c->z->slow_st.v[which], v, memory_order_relaxed);
}

static inline void lab_ctx_held(struct lab_ctx *c, uint32_t owner, int64_t delta)
{
	if (lab_likely(c->cpu && !c->nested))
		stat_add(&cpu_held(c->z, c->cpu)[owner], (uint64_t)delta);
	else
		atomic_fetch_add_explicit(&c->z->owners[owner].held_slow, delta, memory_order_relaxed);
}
bool lab_ctx_rng_get(struct lab_ctx *c, bool *took);
void lab_ctx_rng_put(struct lab_ctx *c, bool took);
int lab_pcp_refill(struct lab_ctx *c, uint32_t pool);
void lab_pcp_run_prefetch(struct lab_zone *z, struct lab_pool *p, struct lab_pcp *pcp, uint32_t count);
void lab_pcp_drain(struct lab_zone *z, struct lab_cpu *cpu, uint32_t me, bool dying_only);
void lab_pcp_pipe_reset(struct lab_zone *z, struct lab_cpu *cpu);
uint32_t lab_pcp_return_locked(struct lab_ctx *c, uint32_t pool);

/* ---- pool.c: the shuffled free array of a pool ----------------------------- */

void lab_pool_set_colours(const struct lab_zone *z, struct lab_pool *p, uint64_t mask);
bool lab_pool_exchange(struct lab_zone *z, uint32_t pool, struct lab_pcp *pcp, struct lab_rng *rng,
                       uint32_t f, lab_a32 *rf);

uint32_t lab_pool_pop_locked(struct lab_zone *z, uint32_t pool, uint32_t me, bool nested,
                             uint32_t *out, uint32_t *out_rix, uint32_t want);
uint32_t lab_pool_pop_hinted(struct lab_zone *z, uint32_t pool, uint32_t me, struct lab_pcp *pcp,
                             uint32_t *out, uint32_t *out_rix, uint32_t want);
void lab_pool_append_locked(struct lab_zone *z, uint32_t pool, const uint32_t *in, const uint32_t *in_rix,
                            uint32_t k);
bool lab_pool_insert_locked(struct lab_zone *z, uint32_t pool, uint32_t me, bool nested,
                            uint32_t f, uint64_t u);
bool lab_pool_insert_retry_locked(struct lab_zone *z, uint32_t pool, uint32_t me, bool nested,
                                  uint32_t f, struct lab_rng *rng);
int lab_pool_claim_locked(struct lab_zone *z, uint32_t pool, uint32_t me, bool nested,
                          uint32_t first, unsigned order, struct lab_rng *rng);
uint32_t lab_pool_slot_of(struct lab_zone *z, uint32_t pool, uint32_t frame, uint32_t v);
void lab_pool_build(struct lab_zone *z, uint32_t pool, uint64_t mask, uint32_t flags);
uint32_t lab_pool_of_frame(const struct lab_zone *z, uint32_t frame);

/* Insert frame f (record BUSY, held by us) into pool: exchange when we have
 * a pcp, else insert at a random position under the lock. */
bool lab_free_insert(struct lab_ctx *c, uint32_t pool, uint32_t f);
/* The same, with f's record already located (rf = rec_at(z, f)). */
bool lab_free_insert_at(struct lab_ctx *c, uint32_t pool, uint32_t f, lab_a32 *rf);
bool lab_nested_queue(struct lab_ctx *c, uint32_t f);

/* ---- owner.c ------------------------------------------------------------------ */
static inline struct lab_owner *owner_at(const struct lab_zone *z, uint32_t id)
{
	return &z->owners[id];
}

/* rec_lin(z, ST_ALLOC, order, id) of owner o = owner_at(z, id), from the part
 * the owner keeps (alin, fixed at zone init; lab_check verifies it). */
static inline uint32_t alloc_lin(const struct lab_zone *z, const struct lab_owner *o, unsigned order)
{
	return o->alin + z->mac_k[0] * order;
}

/* ---- scrub.c ------------------------------------------------------------------- */
void lab_scrub_frames(struct lab_ctx *c, uint32_t frame, uint32_t nr);
void lab_scrub_list(struct lab_ctx *c, const uint32_t *frames, uint32_t k);
void lab_dirty_push(struct lab_ctx *c, uint32_t frame, uint32_t owner);
size_t lab_scrub_ring(struct lab_ctx *c, struct lab_cpu *ring_cpu, size_t budget);
void lab_scrub_release(struct lab_ctx *c, uint32_t frame);

static inline void *frame_va(const struct lab_zone *z, uint32_t frame)
{
	return z->dmap + ((size_t)frame << LAB_FRAME_SHIFT);
}

#endif /* LAB_INTERNAL_H */
