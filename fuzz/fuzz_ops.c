/*
 * fuzz_ops.c - libFuzzer harness for labyrinth: input bytes become a zone
 * and a stream of operations on it, each mirrored on a reference model.
 *
 * Every call's return code is predicted from the model and the rules of
 * include/labyrinth.h before the call is made, and compared after it (the
 * exact code, or the documented set where the library's choice is free:
 * which frame, EFRAG vs success for order > 0, EOVERLAP vs ESHARED vs EBUSY
 * when several pools conflict, EAGAIN counts of removal and scrubbing).
 * After every operation lab_check() must pass (see CHECK_EVERY); every few
 * operations the whole frame table is compared with the model (record state
 * through internal.h, lab_frame_owner, frame contents, pool counts, the dirty
 * ring, lab_stats, lab_owner_stats).  Refused bad-argument calls must leave
 * the metadata byte-identical (statistics counters excepted).
 *
 * Input format (fuzz/README.md has the table; fuzz/gen_corpus.py writes it):
 * a 12-byte header chooses the zone, then each operation is one opcode byte
 * followed by a fixed number of argument bytes (missing bytes read as 0).
 *
 * Build: see fuzz/run.sh.  With -DFUZZ_REPLAY there is a main() that runs
 * every file (or every file of every directory) named on the command line
 * and prints "replayed N inputs, F failures"; it also builds with gcc.
 *
 * Single-threaded by design.  A parked helper thread holds CPU slot 0 of
 * the POSIX host, so the fuzzing thread is CPU 1: zones with nr_cpus = 1
 * exercise the slot-less shared path, nr_cpus 2 and 3 the per-CPU caches
 * and the deferred-scrub ring.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "labyrinth.h"
#include "labyrinth/hosted.h"
#include "internal.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(FZ_ASAN)
#define FZ_ASAN 1
#endif
#ifdef FZ_ASAN
#include <sanitizer/asan_interface.h>
#define FZ_POISON(a, n) ASAN_POISON_MEMORY_REGION((a), (n))
#define FZ_UNPOISON(a, n) ASAN_UNPOISON_MEMORY_REGION((a), (n))
#else
#define FZ_POISON(a, n) ((void)(a), (void)(n))
#define FZ_UNPOISON(a, n) ((void)(a), (void)(n))
#endif

/* The harness's own bulk checks (hashing the metadata, reading frame
 * windows, the full scan) would otherwise dominate the run time with
 * coverage callbacks that guide nothing. */
#if defined(__clang__)
#define FZ_BULK __attribute__((no_sanitize("coverage"), noinline))
#else
#define FZ_BULK
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_FRAMES 2048u
#define MIN_FRAMES 64u
#define MAXO 8u        /* max_owners is 1..MAXO */
#define MAX_OPS 4096
#define GARBAGE 0x5a5a5a5au /* what a zone that did not start zeroed holds */
#define RING_CAP LAB_DIRTY_CAP
#define B(rc) (1u << (unsigned)(-(rc)))
#define BADARG_MASK (B(LAB_EINVAL) | B(LAB_ERANGE) | B(LAB_EALIGN) | B(LAB_EORDER) | B(LAB_EOWNER) | \
                     B(LAB_EFREE) | B(LAB_EINTERIOR) | B(LAB_ENOOWNER) | B(LAB_EEXIST) |          \
                     B(LAB_EOVERLAP) | B(LAB_ESHARED) | B(LAB_ENOTEXCL) | B(LAB_ECOLOUR) | B(LAB_EBUSY))

/* The direct map: the zone's frames are the last nr_frames of it, so a write
 * past the zone hits ASan's redzone after the array; the unused front part is
 * poisoned for the run of one input. */
static uint8_t arena[(size_t)MAX_FRAMES * LAB_FRAME_SIZE] __attribute__((aligned(4096)));
static uint8_t arena_nonzero[MAX_FRAMES]; /* the harness wrote non-zero bytes there */

/* ---- the reference model ------------------------------------------------------ */

enum { M_UNCLEAN, M_UNASS, M_RESV, M_FREE, M_DIRTY, M_HELD };
static const char *const mst_name[] = {"unassigned-dirty", "unassigned", "reserved", "free",
                                       "dirty (ring)", "held"};
struct mframe {
	uint8_t st, order;
	uint16_t owner;
	uint32_t head;
};
enum { O_FREE, O_ACTIVE, O_DYING };
struct mowner {
	int st;
	bool excl;
	int pool;
	uint32_t tag;
	uint64_t mask, quota, held;
};
enum { P_FREE, P_ACTIVE, P_DYING };
struct mpool {
	int st;
	bool excl;
	int owners;
	uint64_t mask;
	uint32_t nfree, reserve;
};
struct blk {
	uint32_t f;
	uint16_t owner;
	uint8_t order;
};
struct stale {
	uint64_t pfn;
	uint32_t owner;
	unsigned order;
};

static struct model {
	/* the zone */
	lab_zone_t *z;
	struct lab_zone *Z;
	void *meta;
	size_t meta_size;
	uint64_t base, nr, all;
	unsigned C, cpus, maxo, permille;
	uint32_t flags;
	uint8_t *dmap;
	bool have_cpu, noscrub, deferred;
	uint8_t seed[100];
	size_t seed_len;
	/* frames */
	uint32_t n_st[6];
	struct mframe fr[MAX_FRAMES];
	uint32_t tag[MAX_FRAMES];
	/* owners and pools */
	struct mowner ow[MAXO + 1];
	struct mpool pool[LAB_MAX_COLOURS];
	int8_t cpool[LAB_MAX_COLOURS];
	uint32_t regno;
	/* held blocks */
	struct blk held[MAX_FRAMES];
	uint32_t hidx[MAX_FRAMES];
	uint32_t nheld;
	/* this CPU's deferred-scrub ring, oldest first */
	uint32_t ring[RING_CAP];
	unsigned rlen;
	/* recently freed blocks, for stale frees */
	struct stale stale[16];
	unsigned nstale, stale_next;
	/* what lab_stats must count */
	uint64_t st_allocs, st_frees, st_refused, st_nomem, st_quota, st_frag, st_scrubbed, st_reserve;
	int hi_pool;                 /* the last order > 0 allocation that reached the probes */
	uint32_t hi_n, hi_pc;
	uint64_t hi_K;
	/* bookkeeping */
	int op;
	const char *call;
	unsigned hash_tick;
} M;

static unsigned my_slot;     /* this thread's CPU slot (1: slot 0 is parked) */
static bool trace;           /* FUZZ_TRACE=1: print every call */
static jmp_buf *fail_jmp;    /* replay mode: fail() returns here */
static const char *cur_file; /* replay mode: the input being run */

static const char *const code_names[] = {
	"LAB_OK", "LAB_ENOMEM", "LAB_EQUOTA", "LAB_EFRAG", "LAB_EINVAL", "LAB_ERANGE", "LAB_EALIGN",
	"LAB_EORDER", "LAB_EOWNER", "LAB_EFREE", "LAB_EINTERIOR", "LAB_ENOOWNER", "LAB_EEXIST",
	"LAB_EOVERLAP", "LAB_ESHARED", "LAB_ENOTEXCL", "LAB_ECOLOUR", "LAB_EAGAIN", "LAB_EBUSY",
	"LAB_EENTROPY", "LAB_EGEOMETRY", "LAB_ENOSPC", "LAB_ECORRUPT", "LAB_ENOMAP"};

static const char *cn(int rc)
{
	static char buf[4][24];
	static int k;
	if (rc <= 0 && rc >= -23)
		return code_names[-rc];
	k = (k + 1) & 3;
	snprintf(buf[k], sizeof buf[k], "%d", rc);
	return buf[k];
}

static const char *setstr(unsigned set)
{
	static char buf[2][256];
	static int k;
	k ^= 1;
	buf[k][0] = 0;
	size_t len = 0;
	for (int c = 0; c <= 23 && len < sizeof buf[k]; c++)
		if (set >> c & 1)
			len += (size_t)snprintf(buf[k] + len, sizeof buf[k] - len, "%s%s", len ? "|" : "",
			                        code_names[c]);
	return buf[k];
}

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "\nlabyrinth-fuzz: FAILURE at op %d (%s): ", M.op, M.call ? M.call : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr,
	        "\n  zone: base_pfn %llu, %llu frames, %u colours, %u CPUs (this thread: slot %u, %s), "
	        "max_owners %u, reserve %u permille, flags 0x%x%s\n",
	        (unsigned long long)M.base, (unsigned long long)M.nr, M.C, M.cpus, my_slot,
	        M.have_cpu ? "per-CPU cache" : "slot-less", M.maxo, M.permille, M.flags,
	        M.dmap ? "" : ", no direct map");
	if (cur_file)
		fprintf(stderr, "  input: %s\n", cur_file);
	fflush(stderr);
	if (fail_jmp)
		longjmp(*fail_jmp, 1);
	abort();
}

#define TRACE(...)                                                                       \
	do {                                                                             \
		if (trace)                                                               \
			fprintf(stderr, __VA_ARGS__);                                    \
	} while (0)

static void expect_set(int rc, unsigned set, const char *what)
{
	if (rc > 0 || rc < -23 || !(set & B(rc)))
		fail("%s returned %s, the model expects %s", what, cn(rc), setstr(set));
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline unsigned colour(uint32_t f)
{
	return (unsigned)((M.base + f) & (M.C - 1));
}

static inline uint64_t ones(unsigned w)
{
	return w >= 64 ? ~0ull : (1ull << w) - 1;
}

/* ---- frame states and counts ------------------------------------------------------ */

static void count_adj(uint32_t f, int st, int d)
{
	M.n_st[st] += (uint32_t)d;
	if (st == M_FREE) {
		int p = M.cpool[colour(f)];
		if (p < 0)
			fail("model: frame %u is free but its colour %u has no pool", f, colour(f));
		M.pool[p].nfree += (uint32_t)d;
	}
}

static void set_st(uint32_t f, int st)
{
	count_adj(f, M.fr[f].st, -1);
	M.fr[f].st = (uint8_t)st;
	count_adj(f, st, +1);
}

static void held_add(uint32_t f, uint32_t owner, unsigned order)
{
	uint32_t K = 1u << order;
	for (uint32_t i = 0; i < K; i++) {
		set_st(f + i, M_HELD);
		M.fr[f + i].owner = (uint16_t)owner;
		M.fr[f + i].order = (uint8_t)order;
		M.fr[f + i].head = f;
	}
	M.hidx[f] = M.nheld;
	M.held[M.nheld++] = (struct blk){f, (uint16_t)owner, (uint8_t)order};
	M.ow[owner].held += K;
}

/* Forget held block i; the caller sets its frames' new states. */
static struct blk held_del(uint32_t i)
{
	struct blk b = M.held[i];
	M.ow[b.owner].held -= 1u << b.order;
	M.held[i] = M.held[--M.nheld];
	if (i < M.nheld)
		M.hidx[M.held[i].f] = i;
	return b;
}

static void stale_push(uint64_t pfn, uint32_t owner, unsigned order)
{
	M.stale[M.stale_next] = (struct stale){pfn, owner, order};
	M.stale_next = (M.stale_next + 1) % 16;
	if (M.nstale < 16)
		M.nstale++;
}

/* ---- the library's view, through internal.h -------------------------------------------- */

enum { L_INPOOL, L_PCP, L_ALLOC, L_TAIL, L_DIRTY, L_UNASS, L_UNCLEAN, L_RESV, L_BUSY, L_BAD };
static const char *const lst_name[] = {"in pool array", "cached (pcp)", "allocated head", "tail",
                                       "dirty", "unassigned", "unassigned-dirty", "reserved",
                                       "BUSY", "invalid record"};

static int lst(uint32_t f, uint32_t *id, uint32_t *a)
{
	uint32_t v = ld_relaxed(rec_at(M.Z, f));
	*id = *a = 0;
	if (rec_inpool(v))
		return L_INPOOL;
	if (!rec_valid(M.Z, f, v))
		return L_BAD;
	*id = rec_id(v);
	*a = rec_a(v);
	switch (rec_state(v)) {
	case ST_ALLOC: return L_ALLOC;
	case ST_TAIL: return L_TAIL;
	case ST_PCP: return L_PCP;
	case ST_DIRTY: return L_DIRTY;
	case ST_UNASSIGNED: return (*a & 1) ? L_UNCLEAN : L_UNASS;
	case ST_RESERVED: return L_RESV;
	case ST_BUSY: return L_BUSY;
	default: return L_BAD;
	}
}

/* Is frame f, as the library has it (ls, id), free in the pool of its colour? */
static bool lib_free_in_pool(uint32_t f, int ls, uint32_t id)
{
	int p = M.cpool[colour(f)];
	return p >= 0 && (ls == L_INPOOL || (ls == L_PCP && id == (uint32_t)p));
}

static uint32_t lib_pool_n(int p)
{
	return ld_relaxed(&M.Z->pools[p].n);
}

static uint32_t our_pcp(int p)
{
	if (!M.have_cpu)
		return 0;
	return ld_relaxed(&cpu_pcp(M.Z, cpu_at(M.Z, my_slot), (uint32_t)p)->count);
}

/* Hash of the metadata except the zone-wide statistics counters (which a
 * refused call bumps): a bad-argument refusal must leave it unchanged. */
FZ_BULK static uint64_t meta_hash(void)
{
	const uint8_t *b = M.meta;
	size_t s0 = (size_t)((const uint8_t *)&M.Z->slow_st - b), s1 = s0 + sizeof(M.Z->slow_st);
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < M.meta_size; i += 8) {
		if (i >= s0 && i < s1)
			continue;
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 31;
	}
	return h;
}

/* Sampled: every refused call in small zones, every 4th in big ones. */
static bool hash_now(void)
{
	return M.meta_size <= (96u << 10) || (++M.hash_tick & 3) == 0;
}

/* ---- frame contents --------------------------------------------------------------------
 * The harness writes its tags into three 16-byte windows of a frame (start,
 * middle, end) and the library only ever writes zeroes, so the windows tell
 * exactly who wrote a frame last and whether it was scrubbed since. */

static const unsigned WOFF[3] = {0, 2040, 4080};

static inline uint8_t *fva(uint32_t f)
{
	return M.dmap + (size_t)f * LAB_FRAME_SIZE;
}

static inline size_t arena_index(uint32_t f)
{
	return (size_t)(fva(f) - arena) / LAB_FRAME_SIZE;
}

FZ_BULK static bool mem_is(uint32_t f, uint32_t want, uint32_t *seen)
{
	const uint8_t *p = fva(f);
	for (int w = 0; w < 3; w++)
		for (int j = 0; j < 4; j++) {
			uint32_t x;
			memcpy(&x, p + WOFF[w] + 4 * j, 4);
			if (x != want) {
				*seen = x;
				return false;
			}
		}
	return true;
}

FZ_BULK static void mem_put(uint32_t f, uint32_t val)
{
	uint8_t *p = fva(f);
	for (int w = 0; w < 3; w++)
		for (int j = 0; j < 4; j++)
			memcpy(p + WOFF[w] + 4 * j, &val, 4);
	if (val)
		arena_nonzero[arena_index(f)] = 1;
	M.tag[f] = val;
}

/* ---- checks ---------------------------------------------------------------------------- */

static void check_lab(void)
{
	M.call = "lab_check";
	int rc = lab_check(M.z);
	if (rc != LAB_OK)
		fail("lab_check returned %s", cn(rc));
}

/* Everything at once: each frame's record, owner and contents, pools,
 * colours, the dirty ring, owner and zone statistics. */
FZ_BULK static void full_scan(void)
{
	const char *saved = M.call;
	M.call = "scan";
	for (uint32_t f = 0; f < M.nr; f++) {
		uint32_t id, a;
		int ls = lst(f, &id, &a);
		const struct mframe *m = &M.fr[f];
		bool ok;
		switch (m->st) {
		case M_UNCLEAN: ok = ls == L_UNCLEAN; break;
		case M_UNASS: ok = ls == L_UNASS; break;
		case M_RESV: ok = ls == L_RESV; break;
		case M_FREE: ok = lib_free_in_pool(f, ls, id); break;
		case M_DIRTY: ok = ls == L_DIRTY; break;
		default:
			ok = (ls == (m->head == f ? L_ALLOC : L_TAIL)) && id == m->owner && a == m->order;
		}
		if (!ok)
			fail("frame %u (pfn %llu, colour %u): model has it %s (owner %u order %u head %u), "
			     "the library %s (id %u, a %u)",
			     f, (unsigned long long)(M.base + f), colour(f), mst_name[m->st], m->owner,
			     m->order, m->head, lst_name[ls], id, a);
		lab_owner_t o = 12345;
		unsigned ord = 99;
		int rc = lab_frame_owner(M.z, M.base + f, &o, &ord);
		uint32_t want = m->st == M_HELD ? m->owner : 0;
		if (rc != LAB_OK || o != want || (want && ord != m->order))
			fail("lab_frame_owner(pfn %llu) = %s, owner %u order %u; model: owner %u order %u",
			     (unsigned long long)(M.base + f), cn(rc), o, ord, want, m->order);
		if (M.dmap && m->st != M_RESV) {
			uint32_t seen = 0;
			if (!mem_is(f, M.tag[f], &seen))
				fail("frame %u (%s): contents 0x%08x, model expects 0x%08x", f,
				     mst_name[m->st], seen, M.tag[f]);
			if (!M.noscrub && M.tag[f] &&
			    (m->st == M_UNASS ||
			     (m->st == M_FREE && !M.pool[M.cpool[colour(f)]].excl)))
				fail("frame %u is %s yet holds data 0x%08x: it was not scrubbed", f,
				     mst_name[m->st], M.tag[f]);
		}
	}
	for (unsigned c = 0; c < M.C; c++) {
		int8_t lp = ld_relaxed(&M.Z->pool_of_colour[c]);
		if (lp != M.cpool[c])
			fail("colour %u: library pool %d, model pool %d", c, lp, M.cpool[c]);
	}
	uint64_t cached = 0;
	unsigned npools = 0;
	for (unsigned q = 0; q < M.C; q++) {
		struct lab_pool *lp = &M.Z->pools[q];
		struct mpool *mp = &M.pool[q];
		uint32_t st = ld_relaxed(&lp->state);
		uint32_t mst = mp->st == P_FREE ? POOL_FREE : mp->st == P_ACTIVE ? POOL_ACTIVE : POOL_DYING;
		if (st != mst)
			fail("pool %u: library state %u, model %d", q, st, mp->st);
		uint32_t pc = our_pcp((int)q);
		cached += pc;
		if (mp->st == P_FREE) {
			if (pc)
				fail("pool %u is free but %u frames are cached for it", q, pc);
			continue;
		}
		npools++;
		/* A dying pool's last owner has already left its count. */
		uint32_t owners = mp->st == P_DYING ? 0 : (uint32_t)mp->owners;
		if (lp->mask != mp->mask || !!(lp->flags & POOL_EXCL) != mp->excl ||
		    lp->nr_owners != owners || lp->reserve != mp->reserve)
			fail("pool %u: library mask %llx excl %d owners %u reserve %u; model mask %llx excl %d "
			     "owners %d reserve %u",
			     q, (unsigned long long)lp->mask, !!(lp->flags & POOL_EXCL), lp->nr_owners,
			     lp->reserve, (unsigned long long)mp->mask, mp->excl, mp->owners, mp->reserve);
		if ((uint64_t)lib_pool_n((int)q) + pc != mp->nfree)
			fail("pool %u: %u in its array + %u cached, the model has %u free", q,
			     lib_pool_n((int)q), pc, mp->nfree);
	}
	if (M.have_cpu) {
		struct lab_cpu *cpu = cpu_at(M.Z, my_slot);
		uint32_t dc = ld_relaxed(&cpu->dcount);
		if (dc != M.rlen)
			fail("dirty ring holds %u frames, model %u", dc, M.rlen);
		for (unsigned j = 0; j < M.rlen; j++)
			if (cpu->dirty[(cpu->dhead + j) % LAB_DIRTY_CAP] != M.ring[j])
				fail("dirty ring entry %u is frame %u, model %u", j,
				     cpu->dirty[(cpu->dhead + j) % LAB_DIRTY_CAP], M.ring[j]);
	}
	if (ld_relaxed(&M.Z->nr_dirty_scan) != M.n_st[M_UNCLEAN])
		fail("nr_dirty_scan %llu, model %u unassigned-dirty frames",
		     (unsigned long long)ld_relaxed(&M.Z->nr_dirty_scan), M.n_st[M_UNCLEAN]);
	unsigned nowners = 0;
	for (uint32_t id = 0; id <= M.maxo + 1; id++) {
		struct lab_owner_stats os;
		memset(&os, 0xee, sizeof os);
		int rc = lab_owner_stats(M.z, id, &os);
		bool live = id >= 1 && id <= M.maxo && M.ow[id].st != O_FREE;
		if (!live) {
			if (rc != LAB_ENOOWNER)
				fail("lab_owner_stats(%u) = %s for an unregistered id", id, cn(rc));
			continue;
		}
		nowners++;
		const struct mowner *o = &M.ow[id];
		if (rc != LAB_OK || os.held != o->held || os.quota != o->quota || os.colours != o->mask ||
		    os.exclusive != o->excl || os.pool_free != M.pool[o->pool].nfree)
			fail("lab_owner_stats(%u) = %s: held %llu quota %llu colours %llx excl %d pool_free %llu; "
			     "model held %llu quota %llu colours %llx excl %d pool_free %u",
			     id, cn(rc), (unsigned long long)os.held, (unsigned long long)os.quota,
			     (unsigned long long)os.colours, os.exclusive, (unsigned long long)os.pool_free,
			     (unsigned long long)o->held, (unsigned long long)o->quota,
			     (unsigned long long)o->mask, o->excl, M.pool[o->pool].nfree);
	}
	struct lab_stats st;
	if (lab_stats(M.z, &st) != LAB_OK)
		fail("lab_stats failed");
	if (st.nr_frames != M.nr || st.nr_free != M.n_st[M_FREE] || st.nr_cached != cached ||
	    st.nr_allocated != M.n_st[M_HELD] ||
	    st.nr_dirty != (uint64_t)M.n_st[M_DIRTY] + M.n_st[M_UNCLEAN] ||
	    st.nr_unassigned != M.n_st[M_UNASS] || st.nr_reserved != M.n_st[M_RESV] ||
	    st.nr_pools != npools || st.nr_owners != nowners || st.nr_colours != M.C ||
	    st.nr_cpus != M.cpus || st.free_blocks[0] != st.nr_free)
		fail("lab_stats: free %llu cached %llu allocated %llu dirty %llu unassigned %llu reserved %llu "
		     "pools %u owners %u; model free %u cached %llu held %u dirty %u+%u unassigned %u "
		     "reserved %u pools %u owners %u",
		     (unsigned long long)st.nr_free, (unsigned long long)st.nr_cached,
		     (unsigned long long)st.nr_allocated, (unsigned long long)st.nr_dirty,
		     (unsigned long long)st.nr_unassigned, (unsigned long long)st.nr_reserved, st.nr_pools,
		     st.nr_owners, M.n_st[M_FREE], (unsigned long long)cached, M.n_st[M_HELD],
		     M.n_st[M_DIRTY], M.n_st[M_UNCLEAN], M.n_st[M_UNASS], M.n_st[M_RESV], npools, nowners);
	if (st.allocs != M.st_allocs || st.frees != M.st_frees || st.refused != M.st_refused ||
	    st.fail_nomem != M.st_nomem || st.fail_quota != M.st_quota || st.fail_frag != M.st_frag ||
	    st.scrubbed != M.st_scrubbed || st.reserve_allocs != M.st_reserve || st.nested_calls ||
	    /* every committed alloc or free entered the zone: slot-less exactly
	     * when this thread has no slot */
	    (M.have_cpu ? st.slotless_calls != 0 : st.slotless_calls < M.st_allocs + M.st_frees))
		fail("lab_stats counters: allocs %llu frees %llu refused %llu nomem %llu quota %llu frag %llu "
		     "scrubbed %llu reserve_allocs %llu nested %llu slotless %llu; model %llu %llu %llu %llu "
		     "%llu %llu %llu %llu 0 %s",
		     (unsigned long long)st.allocs, (unsigned long long)st.frees,
		     (unsigned long long)st.refused, (unsigned long long)st.fail_nomem,
		     (unsigned long long)st.fail_quota, (unsigned long long)st.fail_frag,
		     (unsigned long long)st.scrubbed, (unsigned long long)st.reserve_allocs,
		     (unsigned long long)st.nested_calls, (unsigned long long)st.slotless_calls,
		     (unsigned long long)M.st_allocs,
		     (unsigned long long)M.st_frees, (unsigned long long)M.st_refused,
		     (unsigned long long)M.st_nomem, (unsigned long long)M.st_quota,
		     (unsigned long long)M.st_frag, (unsigned long long)M.st_scrubbed,
		     (unsigned long long)M.st_reserve, M.have_cpu ? "0" : ">= allocs + frees");
	/* Fully free aligned blocks per order, from a prefix count of free frames. */
	static uint32_t pre[MAX_FRAMES + 1];
	pre[0] = 0;
	for (uint32_t f = 0; f < M.nr; f++)
		pre[f + 1] = pre[f] + (M.fr[f].st == M_FREE);
	for (unsigned k = 0; k <= LAB_MAX_ORDER; k++) {
		uint64_t K = 1ull << k, want = 0;
		for (uint64_t b = (K - (M.base & (K - 1))) & (K - 1); b + K <= M.nr; b += K)
			want += pre[b + K] - pre[b] == K;
		if (st.free_blocks[k] != want)
			fail("lab_stats free_blocks[%u] = %llu, model %llu", k,
			     (unsigned long long)st.free_blocks[k], (unsigned long long)want);
	}
	for (unsigned c = 0; c < LAB_MAX_COLOURS; c++) {
		uint64_t want = 0;
		if (c < M.C && M.cpool[c] >= 0)
			for (uint32_t f = (uint32_t)((c - (M.base & (M.C - 1))) & (M.C - 1)); f < M.nr; f += M.C)
				want += M.fr[f].st == M_FREE;
		if (st.free_by_colour[c] != want)
			fail("lab_stats free_by_colour[%u] = %llu, model %llu", c,
			     (unsigned long long)st.free_by_colour[c], (unsigned long long)want);
	}
	M.call = saved;
}

/* ---- allocation -------------------------------------------------------------------------- */

static bool owner_active(uint32_t id)
{
	return id >= 1 && id <= M.maxo && M.ow[id].st == O_ACTIVE;
}

/* Does the zone hold an aligned block of 2^order frames all of whose
 * colours are in mask?  The aligned blocks from the first one in the zone
 * on, until the colours repeat (C / K of them) or the zone ends. */
static bool order_fits(uint64_t mask, unsigned order)
{
	uint64_t K = 1ull << order, a = (M.base + K - 1) / K * K;
	if (K > M.C)
		return mask == M.all && a + K <= M.base + M.nr;
	uint64_t w = ones((unsigned)K);
	for (uint64_t j = 0; j < M.C / K && a + j * K + K <= M.base + M.nr; j++)
		if (((mask >> ((a + j * K) % M.C)) & w) == w)
			return true;
	return false;
}

/* The codes lab_alloc may return, in the header's order of checks. */
static unsigned alloc_expect(uint32_t owner, unsigned order, unsigned flags, bool nullp,
                             bool *reserve_dip)
{
	if (reserve_dip)
		*reserve_dip = false;
	if (nullp || (flags & ~LAB_ALLOC_FLAGS_ALL))
		return B(LAB_EINVAL);
	if ((flags & LAB_ZERO) && !M.dmap)
		return B(LAB_ENOMAP);
	if (order > LAB_MAX_ORDER)
		return B(LAB_EORDER);
	if (!owner_active(owner))
		return B(LAB_ENOOWNER);
	const struct mowner *o = &M.ow[owner];
	if ((flags & LAB_EXCLUSIVE) && !o->excl)
		return B(LAB_ENOTEXCL);
	if (order && !order_fits(o->mask, order))
		return B(LAB_ECOLOUR);
	uint64_t K = 1ull << order;
	if (o->quota && o->held + K > o->quota)
		return B(LAB_EQUOTA);
	const struct mpool *p = &M.pool[o->pool];
	bool atomic = flags & LAB_ATOMIC;
	/* Order 0: every free frame of the pool is this CPU's to take (the
	 * idle CPUs cache nothing); NOWAIT leaves the reserve alone. */
	if (order == 0) {
		bool ok = p->nfree > 0 && (atomic || p->nfree > p->reserve);
		if (reserve_dip)
			*reserve_dip = ok && p->nfree <= p->reserve;
		return ok ? B(LAB_OK) : B(LAB_ENOMEM);
	}
	/* Order > 0 claims from the pool array; this CPU's cached frames go
	 * back to it when the array alone is too small or the probes fail
	 * (hi_dip below tells which from the cache afterwards); then EFRAG or
	 * success. */
	uint32_t n = lib_pool_n(o->pool), pc = our_pcp(o->pool);
	if ((uint64_t)n + pc != p->nfree)
		fail("pool %d: %u in array + %u cached, model %u free", o->pool, n, pc, p->nfree);
	if ((uint64_t)n + pc < K || (!atomic && (uint64_t)n + pc - K < p->reserve))
		return B(LAB_ENOMEM);
	M.hi_pool = o->pool, M.hi_n = n, M.hi_pc = pc, M.hi_K = K;
	if (reserve_dip)
		*reserve_dip = n - K < p->reserve; /* provisional: hi_dip */
	return B(LAB_OK) | B(LAB_EFRAG);
}

/* Reserve use of an order > 0 allocation that reached the probes: counted
 * once, against the array the last probes saw, which holds this CPU's
 * cached frames too if the call returned them (the cache is empty now). */
static bool hi_dip(void)
{
	const struct mpool *p = &M.pool[M.hi_pool];
	uint64_t n = M.hi_n;
	if (M.hi_pc > 0 && our_pcp(M.hi_pool) == 0)
		n += M.hi_pc;
	else if (our_pcp(M.hi_pool) != M.hi_pc)
		fail("pool %d: this CPU cached %u frames before an order > 0 allocation and %u after",
		     M.hi_pool, M.hi_pc, our_pcp(M.hi_pool));
	return n - M.hi_K < p->reserve;
}

/* lab_stats' counters for an allocation that returned rc. */
static void alloc_count(int rc, bool reserve_dip)
{
	if (rc == LAB_OK)
		M.st_allocs++;
	else if (rc == LAB_EQUOTA)
		M.st_quota++;
	else if (rc == LAB_ENOMEM)
		M.st_nomem++;
	else if (rc == LAB_EFRAG)
		M.st_frag++;
	else
		M.st_refused++;
	if (reserve_dip && rc == LAB_OK)
		M.st_reserve++;
}

/* A successful allocation of [pfn, pfn + 2^order) for owner. */
static void alloc_done(uint32_t owner, unsigned order, unsigned flags, uint64_t pfn)
{
	uint64_t K = 1ull << order;
	if (pfn < M.base || pfn - M.base >= M.nr || pfn - M.base + K > M.nr || (pfn & (K - 1)))
		fail("allocated block pfn %llu order %u is outside the zone or misaligned",
		     (unsigned long long)pfn, order);
	uint32_t f = (uint32_t)(pfn - M.base);
	const struct mowner *o = &M.ow[owner];
	const struct mpool *p = &M.pool[o->pool];
	bool zero = (flags & LAB_ZERO) || (!p->excl && !M.noscrub);
	for (uint32_t i = 0; i < K; i++) {
		uint32_t g = f + i;
		if (M.fr[g].st != M_FREE)
			fail("allocated block pfn %llu order %u: frame %u is %s in the model (owner %u)",
			     (unsigned long long)pfn, order, g, mst_name[M.fr[g].st], M.fr[g].owner);
		unsigned c = colour(g);
		if (!(o->mask >> c & 1) || M.cpool[c] != o->pool)
			fail("owner %u (colours %llx) got frame %u of colour %u", owner,
			     (unsigned long long)o->mask, g, c);
		if (!M.dmap)
			continue;
		uint32_t seen = 0;
		if (zero && !mem_is(g, 0, &seen))
			fail("owner %u got frame %u holding 0x%08x (model tag 0x%08x): %s", owner, g, seen,
			     M.tag[g], (flags & LAB_ZERO) ? "LAB_ZERO asked" : "a shared pool's frame");
		if (!zero && !mem_is(g, M.tag[g], &seen))
			fail("owner %u got frame %u holding 0x%08x, model expects 0x%08x", owner, g, seen,
			     M.tag[g]);
		if (!zero && !M.noscrub && M.tag[g] && M.tag[g] != o->tag)
			fail("exclusive owner %u (tag 0x%08x) got frame %u with another owner's data 0x%08x",
			     owner, o->tag, g, M.tag[g]);
		if (zero && !(flags & LAB_ZERO) && M.tag[g])
			fail("frame %u of a shared pool is zero but the model has it written (0x%08x): "
			     "the model missed a scrub", g, M.tag[g]);
	}
	held_add(f, owner, order);
	if (M.dmap)
		for (uint32_t i = 0; i < K; i++)
			mem_put(f + i, o->tag);
}

static void do_alloc(uint32_t owner, unsigned order, unsigned flags, bool nullp)
{
	bool dip;
	unsigned set = alloc_expect(owner, order, flags, nullp, &dip);
	uint64_t pfn = 0xdeadbeefull;
	bool h = (set & BADARG_MASK) && !(set & ~BADARG_MASK) && hash_now();
	uint64_t h0 = h ? meta_hash() : 0;
	M.call = "lab_alloc";
	int rc = lab_alloc(M.z, owner, order, flags, nullp ? NULL : &pfn);
	TRACE("  lab_alloc(owner %u, order %u, flags 0x%x%s) = %s pfn %llu\n", owner, order, flags,
	      nullp ? ", NULL" : "", cn(rc), (unsigned long long)pfn);
	expect_set(rc, set, "lab_alloc");
	if (set & B(LAB_EFRAG)) /* only order > 0 expects it: hi_* are set */
		dip = hi_dip();
	alloc_count(rc, dip);
	if (rc != LAB_OK) {
		if (pfn != 0xdeadbeefull)
			fail("a failed lab_alloc wrote *pfn");
		if (h && meta_hash() != h0)
			fail("refused lab_alloc (%s) changed the metadata", cn(rc));
		return;
	}
	alloc_done(owner, order, flags, pfn);
}

static void do_alloc_page(uint32_t owner, unsigned order, unsigned flags, bool single)
{
	if (single)
		order = 0;
	bool dip;
	unsigned set = alloc_expect(owner, order, flags, false, &dip);
	M.call = single ? "lab_alloc_page" : "lab_alloc_pages";
	uint8_t *va = single ? lab_alloc_page(M.z, owner, flags) : lab_alloc_pages(M.z, owner, order, flags);
	TRACE("  %s(owner %u, order %u, flags 0x%x) = %p\n", M.call, owner, order, flags, (void *)va);
	if (!M.dmap) {
		if (va)
			fail("%s returned %p in a zone without a direct map", M.call, (void *)va);
		return;
	}
	if (set & B(LAB_EFRAG)) /* only order > 0 expects it: hi_* are set */
		dip = hi_dip();
	if (!va) {
		if (!(set & ~B(LAB_OK)))
			fail("%s returned NULL where lab_alloc must succeed", M.call);
		alloc_count(-__builtin_ctz(set & ~B(LAB_OK)), dip); /* one failure code */
		return;
	}
	if (!(set & B(LAB_OK)))
		fail("%s returned %p, the model expects %s", M.call, (void *)va, setstr(set));
	alloc_count(LAB_OK, dip);
	uintptr_t a = (uintptr_t)va, b = (uintptr_t)M.dmap;
	if (a < b || (a - b) % LAB_FRAME_SIZE || (a - b) / LAB_FRAME_SIZE >= M.nr)
		fail("%s returned %p outside the direct map", M.call, (void *)va);
	alloc_done(owner, order, flags, M.base + (a - b) / LAB_FRAME_SIZE);
}

/* ---- frees ----------------------------------------------------------------------------------- */

/* What lab_free(owner, pfn, order) must return. */
static int free_code(uint32_t owner, uint64_t pfn, unsigned order)
{
	if (order > LAB_MAX_ORDER)
		return LAB_EORDER;
	if (!owner_active(owner))
		return LAB_ENOOWNER;
	uint64_t K = 1ull << order;
	if (pfn < M.base || pfn - M.base >= M.nr)
		return LAB_ERANGE;
	if (pfn & (K - 1))
		return LAB_EALIGN;
	uint64_t f = pfn - M.base;
	const struct mframe *m = &M.fr[f]; /* a block past the end: what its head is */
	if (m->st != M_HELD)
		return LAB_EFREE;
	if (m->owner != owner)
		return LAB_EOWNER;
	if (m->head != f)
		return LAB_EINTERIOR;
	return m->order == order ? LAB_OK : LAB_EORDER;
}

/* A successful free of owner's block at frame f. */
static void free_done(uint32_t owner, uint32_t f, unsigned order)
{
	struct blk b = held_del(M.hidx[f]);
	if (b.f != f || b.owner != owner || b.order != order)
		fail("model: held index broken at frame %u", f);
	uint32_t K = 1u << order;
	const struct mpool *p = &M.pool[M.ow[owner].pool];
	bool scrub = !p->excl && !M.noscrub;
	if (scrub && K == 1 && M.deferred && M.have_cpu) {
		/* Parked in this CPU's ring; a full ring scrubs its oldest. */
		if (M.rlen == RING_CAP) {
			uint32_t e = M.ring[0];
			memmove(M.ring, M.ring + 1, (RING_CAP - 1) * sizeof(M.ring[0]));
			M.rlen--;
			set_st(e, M_FREE);
			M.tag[e] = 0;
			M.st_scrubbed++;
		}
		M.ring[M.rlen++] = f;
		set_st(f, M_DIRTY);
	} else {
		for (uint32_t i = 0; i < K; i++) {
			set_st(f + i, M_FREE);
			if (scrub)
				M.tag[f + i] = 0;
		}
		if (scrub)
			M.st_scrubbed += K;
	}
	stale_push(M.base + f, owner, order);
}

static void do_free(uint32_t owner, uint64_t pfn, unsigned order)
{
	int want = free_code(owner, pfn, order);
	bool h = want != LAB_OK && hash_now();
	uint64_t h0 = h ? meta_hash() : 0;
	M.call = "lab_free";
	int rc = lab_free(M.z, owner, pfn, order);
	TRACE("  lab_free(owner %u, pfn %llu, order %u) = %s\n", owner, (unsigned long long)pfn, order,
	      cn(rc));
	if (rc != want)
		fail("lab_free(owner %u, pfn %llu, order %u) returned %s, the model expects %s", owner,
		     (unsigned long long)pfn, order, cn(rc), cn(want));
	if (rc == LAB_OK) {
		M.st_frees++;
		free_done(owner, (uint32_t)(pfn - M.base), order);
	} else {
		M.st_refused++;
		if (h && meta_hash() != h0)
			fail("refused lab_free (%s) changed the metadata", cn(rc));
	}
}

/* lab_free_bulk over list[0, n) as owner: the model expects n lab_free
 * calls in order that stop at the first refusal (a frame freed earlier in
 * the list is refused as a double free). */
static void do_free_bulk(uint32_t owner, const uint64_t *list, size_t n)
{
	int want = LAB_OK;
	size_t want_done = n;
	for (size_t i = 0; i < n && want == LAB_OK; i++) {
		bool again = false;
		for (size_t j = 0; j < i; j++)
			again |= list[j] == list[i];
		want = again ? LAB_EFREE : free_code(owner, list[i], 0);
		if (want != LAB_OK)
			want_done = i;
	}
	size_t done = 12345;
	M.call = "lab_free_bulk";
	int rc = lab_free_bulk(M.z, owner, list, n, &done);
	TRACE("  lab_free_bulk(owner %u, %zu frames) = %s, done %zu\n", owner, n, cn(rc), done);
	if (rc != want || done != want_done)
		fail("lab_free_bulk(owner %u, %zu frames) returned %s with %zu done, the model expects %s with %zu",
		     owner, n, cn(rc), done, cn(want), want_done);
	for (size_t i = 0; i < done; i++) {
		M.st_frees++;
		free_done(owner, (uint32_t)(list[i] - M.base), 0);
	}
	if (rc != LAB_OK)
		M.st_refused++;
}

/* lab_free_page(s) on an address: virt_to_pfn's checks come first. */
static void do_free_addr(uint32_t owner, uintptr_t addr, unsigned order, bool single)
{
	int want;
	uint64_t pfn = 0;
	uintptr_t b = (uintptr_t)M.dmap;
	if (!M.dmap)
		want = LAB_ENOMAP;
	else if (addr < b || (addr - b) >> LAB_FRAME_SHIFT >= M.nr)
		want = LAB_ERANGE;
	else if ((addr - b) & (LAB_FRAME_SIZE - 1))
		want = LAB_EALIGN;
	else {
		pfn = M.base + ((addr - b) >> LAB_FRAME_SHIFT);
		want = free_code(owner, pfn, single ? 0 : order);
	}
	bool h = want != LAB_OK && hash_now();
	uint64_t h0 = h ? meta_hash() : 0;
	M.call = single ? "lab_free_page" : "lab_free_pages";
	int rc = single ? lab_free_page(M.z, owner, (void *)addr) : lab_free_pages(M.z, owner, (void *)addr, order);
	TRACE("  %s(owner %u, %#llx, order %u) = %s\n", M.call, owner, (unsigned long long)addr,
	      single ? 0 : order, cn(rc));
	if (rc != want)
		fail("%s(owner %u, addr %#llx, order %u) returned %s, the model expects %s", M.call, owner,
		     (unsigned long long)addr, single ? 0 : order, cn(rc), cn(want));
	if (rc == LAB_OK) {
		M.st_frees++;
		free_done(owner, (uint32_t)(pfn - M.base), single ? 0 : order);
	} else {
		M.st_refused++;
		if (h && meta_hash() != h0)
			fail("refused %s (%s) changed the metadata", M.call, cn(rc));
	}
}

/* ---- owners ------------------------------------------------------------------------------------ */

FZ_BULK static void pool_build(int q, uint64_t mask, bool excl)
{
	struct mpool *p = &M.pool[q];
	*p = (struct mpool){P_ACTIVE, excl, 1, mask, 0, 0};
	for (unsigned c = 0; c < M.C; c++)
		if (mask >> c & 1) {
			if (M.cpool[c] != -1)
				fail("model: colour %u already in pool %d", c, M.cpool[c]);
			M.cpool[c] = (int8_t)q;
		}
	uint64_t usable = 0;
	for (uint32_t f = 0; f < M.nr; f++) {
		if (!(mask >> colour(f) & 1))
			continue;
		int st = M.fr[f].st;
		if (st == M_RESV)
			continue;
		usable++;
		if (st == M_UNASS)
			set_st(f, M_FREE);
		else if (st != M_UNCLEAN)
			fail("model: frame %u of a colour without a pool is %s", f, mst_name[st]);
	}
	p->reserve = (uint32_t)(usable * M.permille / 1000);
	if (M.Z->pools[q].reserve != p->reserve)
		fail("new pool %d over %llu usable frames: reserve %u, %u permille of them is %u", q,
		     (unsigned long long)usable, M.Z->pools[q].reserve, M.permille, p->reserve);
}

static bool gen_pending(void)
{
	return M.have_cpu && cpu_at(M.Z, my_slot)->gen_seen != ld_relaxed(&M.Z->gen);
}

static void do_add(uint32_t id, bool nullcfg, uint64_t mask, uint32_t flags, uint64_t quota)
{
	unsigned set;
	int target = -1;
	bool excl = flags & LAB_OWNER_EXCLUSIVE;
	if (nullcfg)
		set = B(LAB_EINVAL);
	else if (id == 0 || id > M.maxo)
		set = B(LAB_ENOOWNER);
	else if (!mask || (mask & ~M.all) || (flags & ~LAB_OWNER_EXCLUSIVE))
		set = B(LAB_EINVAL);
	else if (M.ow[id].st != O_FREE)
		set = B(LAB_EEXIST);
	else {
		/* Every pool the colours touch: dying (its colours come free later),
		 * exclusive vs anything, shared only with an identical set. */
		set = 0;
		for (unsigned q = 0; q < M.C; q++) {
			const struct mpool *p = &M.pool[q];
			if (p->st == P_FREE || !(p->mask & mask))
				continue;
			if (p->st == P_DYING)
				set |= B(LAB_EBUSY);
			else if (excl)
				set |= p->excl ? B(LAB_EOVERLAP) : B(LAB_ESHARED);
			else if (p->excl || p->mask != mask)
				set |= B(LAB_EOVERLAP);
			else
				target = (int)q;
		}
		if (!set)
			set = B(LAB_OK);
	}
	struct lab_owner_cfg oc = {.colours = mask, .quota = quota, .flags = flags};
	bool h = !(set & B(LAB_OK)) && !gen_pending() && hash_now();
	uint64_t h0 = h ? meta_hash() : 0;
	M.call = "lab_owner_add";
	int rc = lab_owner_add(M.z, id, nullcfg ? NULL : &oc);
	TRACE("  lab_owner_add(%u, colours %llx, quota %llu, flags 0x%x%s) = %s\n", id,
	      (unsigned long long)mask, (unsigned long long)quota, flags, nullcfg ? ", NULL cfg" : "",
	      cn(rc));
	expect_set(rc, set, "lab_owner_add");
	if (rc != LAB_OK) {
		if (h && meta_hash() != h0)
			fail("refused lab_owner_add (%s) changed the metadata", cn(rc));
		return;
	}
	int q = (int)M.Z->owners[id].pool;
	if (target >= 0) {
		if (q != target)
			fail("owner %u joined pool %d, the model has its colours in pool %d", id, q, target);
		M.pool[q].owners++;
	} else {
		if (q < 0 || q >= (int)M.C || M.pool[q].st != P_FREE)
			fail("owner %u got a new pool %d that the model has in use", id, q);
		pool_build(q, mask, excl);
	}
	M.regno++;
	M.ow[id] = (struct mowner){O_ACTIVE, excl, q, 0xc0000000u | (M.regno & 0xffffffu) << 6 | id,
	                           mask, quota, 0};
}

enum { SYNC_SCRUB, SYNC_REMOVE };

/*
 * After calls whose exact effect the model does not predict (how far a
 * budgeted removal or scrub got), learn it from the frame table, allowing
 * only the transitions those calls may make.  Returns the frames scrubbed
 * out of the dirty ring and the unassigned-dirty set.
 */
FZ_BULK static size_t resync(int kind, uint32_t rm_owner, int rm_pool)
{
	size_t scrubbed = 0;
	bool dissolving = kind == SYNC_REMOVE && M.pool[rm_pool].st == P_DYING;
	uint32_t id, a;

	if (kind == SYNC_REMOVE) { /* the dying owner's blocks: reclaimed or not */
		for (uint32_t i = 0; i < M.nheld;) {
			struct blk b = M.held[i];
			uint32_t K = 1u << b.order;
			if (b.owner != rm_owner) {
				i++;
				continue;
			}
			int ls = lst(b.f, &id, &a);
			if (ls == L_ALLOC && id == b.owner && a == b.order) {
				i++;
				continue; /* not reached yet; the scan checks its tails */
			}
			int nst[1024];
			for (uint32_t j = 0; j < K; j++) {
				ls = lst(b.f + j, &id, &a);
				if (lib_free_in_pool(b.f + j, ls, id))
					nst[j] = M_FREE;
				else if (ls == L_UNASS && dissolving)
					nst[j] = M_UNASS;
				else
					fail("dying owner %u's block at frame %u order %u: frame %u is now %s",
					     b.owner, b.f, b.order, b.f + j, lst_name[ls]);
			}
			held_del(i);
			for (uint32_t j = 0; j < K; j++) {
				set_st(b.f + j, nst[j]);
				if (!M.noscrub) {
					M.tag[b.f + j] = 0;
					/* zeroed when reclaimed, and again if an
					 * exclusive pool was dissolved since */
					M.st_scrubbed += nst[j] == M_UNASS && M.pool[rm_pool].excl ? 2 : 1;
				}
			}
		}
	}
	unsigned k = 0; /* the ring: a prefix was scrubbed, FIFO */
	while (k < M.rlen) {
		uint32_t e = M.ring[k];
		int ls = lst(e, &id, &a);
		if (ls == L_DIRTY)
			break;
		int pe = M.cpool[colour(e)];
		if (lib_free_in_pool(e, ls, id))
			set_st(e, M_FREE);
		else if (ls == L_UNASS && kind == SYNC_REMOVE && pe >= 0 && M.pool[pe].st == P_DYING)
			set_st(e, M_UNASS);
		else
			fail("dirty frame %u (ring entry %u) is now %s", e, k, lst_name[ls]);
		M.tag[e] = 0;
		scrubbed++;
		k++;
	}
	for (unsigned j = k; j < M.rlen; j++)
		if (lst(M.ring[j], &id, &a) != L_DIRTY)
			fail("dirty ring entry %u (frame %u) left the ring before entry %u: not FIFO", j,
			     M.ring[j], k);
	memmove(M.ring, M.ring + k, (M.rlen - k) * sizeof(M.ring[0]));
	M.rlen -= k;
	if (kind == SYNC_SCRUB && M.n_st[M_UNCLEAN]) {
		for (uint32_t f = 0; f < M.nr; f++) {
			if (M.fr[f].st != M_UNCLEAN)
				continue;
			int ls = lst(f, &id, &a);
			if (ls == L_UNCLEAN)
				continue;
			int p = M.cpool[colour(f)];
			bool active = p >= 0 && M.pool[p].st == P_ACTIVE;
			if (active && lib_free_in_pool(f, ls, id))
				set_st(f, M_FREE);
			else if (!active && ls == L_UNASS)
				set_st(f, M_UNASS);
			else
				fail("scrubbed frame %u (colour %u, pool %d %s) is now %s", f, colour(f), p,
				     active ? "active" : "not active", lst_name[ls]);
			M.tag[f] = 0;
			scrubbed++;
		}
	}
	if (dissolving) { /* the dying pool's free frames go back to unassigned */
		const struct mpool *p = &M.pool[rm_pool];
		for (uint32_t f = 0; f < M.nr; f++) {
			if (M.fr[f].st != M_FREE || M.cpool[colour(f)] != rm_pool)
				continue;
			int ls = lst(f, &id, &a);
			if (lib_free_in_pool(f, ls, id))
				continue;
			if (ls != L_UNASS)
				fail("frame %u of dying pool %d is now %s", f, rm_pool, lst_name[ls]);
			set_st(f, M_UNASS);
			if (p->excl && !M.noscrub) {
				M.tag[f] = 0;
				M.st_scrubbed++;
			}
		}
	}
	M.st_scrubbed += scrubbed;
	return scrubbed;
}

/* After removal calls of owner id (the last returned rc). */
static void remove_sync(uint32_t id, int rc)
{
	int q = M.ow[id].pool;
	struct mpool *p = &M.pool[q];
	uint32_t lstate = ld_relaxed(&M.Z->pools[q].state);
	if (lstate != POOL_ACTIVE) {
		if (p->owners != 1)
			fail("pool %d is %s while the model has %d owners in it", q,
			     lstate == POOL_FREE ? "free" : "dying", p->owners);
		p->st = P_DYING;
	}
	resync(SYNC_REMOVE, id, q);
	if (rc != LAB_OK)
		return;
	if (M.ow[id].held)
		fail("lab_owner_remove(%u) returned LAB_OK but %llu of its frames are still held", id,
		     (unsigned long long)M.ow[id].held);
	M.ow[id].st = O_FREE;
	if (--p->owners > 0) {
		if (lstate != POOL_ACTIVE)
			fail("pool %d is not active but %d owners remain", q, p->owners);
		return;
	}
	if (lstate != POOL_FREE)
		fail("the last owner of pool %d is gone, the pool is in state %u", q, lstate);
	if (p->nfree)
		fail("pool %d dissolved with %u free frames left in the model", q, p->nfree);
	for (unsigned c = 0; c < M.C; c++)
		if (p->mask >> c & 1)
			M.cpool[c] = -1;
	*p = (struct mpool){0};
}

static void do_remove(uint32_t id, size_t budget, bool all)
{
	unsigned set;
	bool was_live = id >= 1 && id <= M.maxo && M.ow[id].st != O_FREE;
	if (!was_live)
		set = B(LAB_ENOOWNER);
	else if (budget == 0)
		set = B(LAB_EINVAL);
	else if (M.ow[id].st == O_ACTIVE)
		set = B(LAB_EAGAIN) | B(LAB_EBUSY); /* EBUSY: the CPUs cannot be synchronised */
	else
		set = B(LAB_EAGAIN) | B(LAB_OK);
	M.call = "lab_owner_remove";
	if (!(set & (B(LAB_EAGAIN) | B(LAB_OK)))) {
		bool h = hash_now();
		uint64_t h0 = h ? meta_hash() : 0;
		int rc = lab_owner_remove(M.z, id, budget);
		TRACE("  lab_owner_remove(%u, %zu) = %s\n", id, budget, cn(rc));
		expect_set(rc, set, "lab_owner_remove");
		if (h && meta_hash() != h0)
			fail("refused lab_owner_remove (%s) changed the metadata", cn(rc));
		return;
	}
	int rc;
	long calls = 0;
	do {
		rc = lab_owner_remove(M.z, id, budget);
		calls++;
		TRACE("  lab_owner_remove(%u, %zu) = %s\n", id, budget, cn(rc));
		expect_set(rc, set, "lab_owner_remove");
		if (rc == LAB_EBUSY)
			return; /* refused: still active */
		if (M.ow[id].st == O_ACTIVE) {
			M.ow[id].st = O_DYING;
			set = B(LAB_EAGAIN) | B(LAB_OK);
		}
	} while (all && rc == LAB_EAGAIN && calls < 1000000);
	if (all && rc == LAB_EAGAIN)
		fail("lab_owner_remove(%u, budget %zu) still says LAB_EAGAIN after %ld calls", id, budget,
		     calls);
	remove_sync(id, rc);
}

/* ---- scrub, drain, reseed, reserve ------------------------------------------------------------- */

static void do_scrub(size_t budget, bool nulldone)
{
	size_t done = 777777, before = M.rlen + M.n_st[M_UNCLEAN], ring_before = M.rlen;
	M.call = "lab_scrub";
	int rc = lab_scrub(M.z, budget, nulldone ? NULL : &done);
	TRACE("  lab_scrub(%zu) = %s done %zu\n", budget, cn(rc), done);
	expect_set(rc, B(LAB_OK) | B(LAB_EAGAIN), "lab_scrub");
	size_t scrubbed = resync(SYNC_SCRUB, 0, -1);
	if (!nulldone && done != scrubbed)
		fail("lab_scrub(%zu) reported %zu frames done, %zu were scrubbed", budget, done, scrubbed);
	if (scrubbed > budget)
		fail("lab_scrub(%zu) scrubbed %zu frames", budget, scrubbed);
	size_t left = M.rlen + M.n_st[M_UNCLEAN];
	if ((rc == LAB_OK) != (left == 0))
		fail("lab_scrub(%zu) returned %s with %zu dirty frames left", budget, cn(rc), left);
	/* Budget for every dirty frame, and for the walk of the frame table
	 * (it looks at up to 64 frames per frame of budget left): a whole zone's
	 * walk fits, so nothing may be left. */
	size_t walk_need = M.nr > 64 ? (size_t)(M.nr - 64 + 63) / 64 : 0;
	if (budget >= before && budget - ring_before >= walk_need && left)
		fail("lab_scrub(budget %zu) left %zu of %zu dirty frames (done %zu): the budget covers "
		     "them all", budget, left, before, scrubbed);
}

static void do_drain(void)
{
	M.call = "lab_cpu_drain";
	int rc = lab_cpu_drain(M.z);
	TRACE("  lab_cpu_drain() = %s\n", cn(rc));
	if (rc != LAB_OK)
		fail("lab_cpu_drain returned %s", cn(rc));
	for (unsigned q = 0; q < M.C; q++)
		if (our_pcp((int)q))
			fail("pool %u: %u frames still cached after lab_cpu_drain", q, our_pcp((int)q));
}

static void do_reseed(unsigned mode)
{
	uint8_t seed[100];
	for (unsigned i = 0; i < sizeof seed; i++)
		seed[i] = (uint8_t)mix64(M.op * 131u + i + mode * 7919u);
	static const size_t lens[8] = {32, 31, 0, 0, 0, 64, 100, 33};
	size_t len = lens[mode & 7];
	const void *s = seed;
	int want = len >= 32 ? LAB_OK : LAB_EENTROPY;
	if ((mode & 7) == 3 || (mode & 7) == 4) {
		/* NULL seed: entropy from the host, made to fail (never real
		 * entropy: a run must repeat exactly). */
		s = NULL;
		lab_hosted_entropy_fault((mode & 7) == 3 ? 1 : 2);
		want = LAB_EENTROPY;
	}
	bool h = want != LAB_OK && hash_now();
	uint64_t h0 = h ? meta_hash() : 0;
	M.call = "lab_reseed";
	int rc = lab_reseed(M.z, s, len);
	lab_hosted_entropy_fault(0);
	TRACE("  lab_reseed(%s, %zu) = %s\n", s ? "seed" : "NULL", len, cn(rc));
	if (rc != want)
		fail("lab_reseed(%s, %zu) returned %s, expected %s", s ? "seed" : "NULL", len, cn(rc),
		     cn(want));
	if (h && meta_hash() != h0)
		fail("refused lab_reseed changed the metadata");
}

static void do_reserve(uint64_t pfn, uint64_t n)
{
	int want = LAB_OK;
	if (n == 0 || pfn < M.base || pfn - M.base > M.nr || n > M.nr - (pfn - M.base))
		want = LAB_ERANGE;
	else
		for (uint64_t i = 0; i < n; i++) {
			int st = M.fr[pfn - M.base + i].st;
			if (st != M_UNASS && st != M_UNCLEAN) {
				want = LAB_EBUSY;
				break;
			}
		}
	bool h = want != LAB_OK && (want == LAB_ERANGE || !gen_pending()) && hash_now();
	uint64_t h0 = h ? meta_hash() : 0;
	M.call = "lab_zone_reserve_range";
	int rc = lab_zone_reserve_range(M.z, pfn, n);
	TRACE("  lab_zone_reserve_range(%llu, %llu) = %s\n", (unsigned long long)pfn,
	      (unsigned long long)n, cn(rc));
	if (rc != want)
		fail("lab_zone_reserve_range(pfn %llu, %llu) returned %s, the model expects %s",
		     (unsigned long long)pfn, (unsigned long long)n, cn(rc), cn(want));
	if (rc != LAB_OK) {
		if (h && meta_hash() != h0)
			fail("refused lab_zone_reserve_range (%s) changed the metadata", cn(rc));
		return;
	}
	for (uint64_t i = 0; i < n; i++)
		set_st((uint32_t)(pfn - M.base + i), M_RESV);
}

/* ---- small calls: translation, queries, bad handles ------------------------------------------------ */

static void do_misc(unsigned sub, uint8_t a)
{
	switch (sub % 8) {
	case 0:
		full_scan();
		return;
	case 1: { /* pfn <-> address */
		M.call = "lab_pfn_to_virt";
		uint64_t pfns[4] = {M.base + a % (M.nr + 2), M.base - 1, M.base + M.nr, UINT64_MAX - a};
		for (int i = 0; i < 4; i++) {
			uint64_t p = pfns[i];
			void *va = lab_pfn_to_virt(M.z, p);
			bool in = M.dmap && p >= M.base && p - M.base < M.nr;
			if (in != (va != NULL) || (in && va != fva((uint32_t)(p - M.base))))
				fail("lab_pfn_to_virt(%llu) = %p", (unsigned long long)p, va);
			if (!in)
				continue;
			uint64_t back = 0;
			M.call = "lab_virt_to_pfn";
			if (lab_virt_to_pfn(M.z, (uint8_t *)va + (a & 1), &back) != ((a & 1) ? LAB_EALIGN : LAB_OK) ||
			    (!(a & 1) && back != p))
				fail("lab_virt_to_pfn(%p) round trip", va);
		}
		uint64_t keep = 5;
		int rc = lab_virt_to_pfn(M.z, M.dmap, NULL);
		if (rc != LAB_EINVAL)
			fail("lab_virt_to_pfn(NULL out) = %s", cn(rc));
		rc = lab_virt_to_pfn(M.z, (void *)(uintptr_t)0x1000, &keep);
		if (rc != (M.dmap ? LAB_ERANGE : LAB_ENOMAP) || keep != 5)
			fail("lab_virt_to_pfn(0x1000) = %s", cn(rc));
		return;
	}
	case 2: { /* frame owner and stats with bad arguments */
		M.call = "lab_frame_owner";
		lab_owner_t o = 77;
		if (lab_frame_owner(M.z, M.base, NULL, NULL) != LAB_EINVAL ||
		    lab_frame_owner(M.z, M.base + M.nr + a, &o, NULL) != LAB_ERANGE ||
		    (M.base && lab_frame_owner(M.z, M.base - 1, &o, NULL) != LAB_ERANGE) || o != 77)
			fail("lab_frame_owner bad arguments");
		M.call = "lab_owner_stats";
		if (lab_owner_stats(M.z, 1, NULL) != LAB_EINVAL || lab_stats(M.z, NULL) != LAB_EINVAL)
			fail("stats with NULL output");
		return;
	}
	case 3: { /* a handle that is not a zone: refused, never written */
		static uint8_t fake[4096] __attribute__((aligned(64)));
		memset(fake, a, sizeof fake);
		if (((struct lab_zone *)(void *)fake)->magic == LAB_ZONE_MAGIC)
			fake[0] ^= 1;
		uint8_t copy[sizeof fake];
		memcpy(copy, fake, sizeof fake);
		lab_zone_t *fz = (lab_zone_t *)(void *)fake;
		uint64_t x = 9;
		struct lab_owner_cfg oc = {.colours = 1};
		M.call = "fake zone";
		int bad = 0;
		bad |= lab_alloc(fz, 1, 0, 0, &x) != LAB_EINVAL;
		bad |= lab_free(fz, 1, 0, 0) != LAB_EINVAL;
		bad |= lab_owner_add(fz, 1, &oc) != LAB_EINVAL;
		bad |= lab_owner_remove(fz, 1, 1) != LAB_EINVAL;
		bad |= lab_scrub(fz, 1, NULL) != LAB_EINVAL;
		bad |= lab_cpu_drain(fz) != LAB_EINVAL;
		bad |= lab_check(fz) != LAB_EINVAL;
		bad |= lab_reseed(fz, M.seed, 32) != LAB_EINVAL;
		bad |= lab_zone_reserve_range(fz, 0, 1) != LAB_EINVAL;
		bad |= lab_alloc_page(fz, 1, 0) != NULL;
		bad |= lab_free_page(fz, 1, fake) != LAB_EINVAL;
		bad |= lab_pfn_to_virt(fz, 0) != NULL;
		bad |= lab_alloc(NULL, 1, 0, 0, &x) != LAB_EINVAL;
		bad |= lab_free(NULL, 1, 0, 0) != LAB_EINVAL;
		bad |= lab_check(NULL) != LAB_EINVAL;
		if (bad || x != 9 || memcmp(copy, fake, sizeof fake))
			fail("calls on a handle that is not a zone");
		return;
	}
	case 4: { /* strerror: distinct, never NULL */
		M.call = "lab_strerror";
		for (int e = -25; e <= 1; e++)
			if (!lab_strerror(e) || !lab_strerror(e)[0])
				fail("lab_strerror(%d)", e);
		return;
	}
	case 5: { /* metadata accounting of this very zone */
		M.call = "lab_meta_breakdown";
		struct lab_zone_cfg cfg;
		lab_zone_cfg_default(&cfg, M.base, M.nr, M.dmap);
		cfg.nr_colours = M.C;
		cfg.nr_cpus = M.cpus;
		cfg.max_owners = M.maxo;
		cfg.flags = M.flags;
		size_t per = 1, fixed = 1;
		lab_meta_breakdown(&cfg, &per, &fixed);
		if (lab_zone_meta_size(&cfg) != M.meta_size || per != 8 || fixed != M.meta_size - 8 * M.nr)
			fail("meta size %zu, breakdown %zu + %zu", lab_zone_meta_size(&cfg), per, fixed);
		lab_meta_breakdown(&cfg, NULL, NULL);
		cfg.nr_colours = 3 + (a & 1) * 125; /* not a power of two, or too many */
		lab_meta_breakdown(&cfg, &per, &fixed);
		lab_meta_breakdown(&cfg, NULL, NULL);
		if (per || fixed || lab_zone_meta_size(&cfg))
			fail("an invalid configuration has a metadata size");
		return;
	}
	case 6: { /* owner_remove/add with ids that never exist */
		uint32_t ids[3] = {0, M.maxo + 1 + a, UINT32_MAX};
		for (int i = 0; i < 3; i++) {
			do_remove(ids[i], 1 + a, false);
			do_add(ids[i], false, 1, 0, 0);
		}
		return;
	}
	default: { /* owner_stats on every id, lab_stats partition */
		M.call = "lab_stats";
		struct lab_stats st;
		if (lab_stats(M.z, &st) != LAB_OK)
			fail("lab_stats");
		uint64_t sum = st.nr_free + st.nr_allocated + st.nr_unassigned + st.nr_dirty + st.nr_reserved;
		uint64_t bc = 0;
		for (unsigned c = 0; c < LAB_MAX_COLOURS; c++)
			bc += st.free_by_colour[c];
		if (sum != st.nr_frames || bc != st.nr_free)
			fail("lab_stats partition: %llu of %llu frames, %llu by colour of %llu free",
			     (unsigned long long)sum, (unsigned long long)st.nr_frames,
			     (unsigned long long)bc, (unsigned long long)st.nr_free);
		return;
	}
	}
}

/* ---- input decoding ----------------------------------------------------------------------------- */

struct rd {
	const uint8_t *p;
	size_t n, i;
};
static uint8_t u8(struct rd *r)
{
	return r->i < r->n ? r->p[r->i++] : 0;
}

/* An owner id for alloc/free/remove: mostly a valid id (registered or not),
 * sometimes one of the registered owners by rank, sometimes nonsense. */
static uint32_t pick_owner(uint8_t b)
{
	if (b >= 0xf8) {
		const uint32_t odd[8] = {0, M.maxo + 1, M.maxo + 2, LAB_MAX_OWNERS, LAB_MAX_OWNERS + 1,
		                         0x1000, UINT32_MAX, 0};
		return odd[b & 7];
	}
	if (b & 0x80) {
		uint32_t live[MAXO], n = 0;
		for (uint32_t id = 1; id <= M.maxo; id++)
			if (M.ow[id].st != O_FREE)
				live[n++] = id;
		if (n)
			return live[(b & 0x7f) % n];
	}
	return 1 + b % M.maxo;
}

/* An id to register: by rank among the free ids, or as above. */
static uint32_t pick_new_id(uint8_t b)
{
	if (b < 0xf8 && (b & 0x80)) {
		uint32_t fr[MAXO], n = 0;
		for (uint32_t id = 1; id <= M.maxo; id++)
			if (M.ow[id].st == O_FREE)
				fr[n++] = id;
		if (n)
			return fr[(b & 0x7f) % n];
	}
	return pick_owner(b);
}

static uint64_t some_mask(uint8_t mode, uint8_t a, uint8_t b)
{
	unsigned C = M.C;
	uint32_t live[MAXO], n = 0;
	for (uint32_t id = 1; id <= M.maxo; id++)
		if (M.ow[id].st != O_FREE)
			live[n++] = id;
	switch (mode % 10) {
	case 0:
	case 1: /* an existing owner's set: share it (or be refused) */
		if (n)
			return M.ow[live[a % n]].mask;
		/* fall through */
	case 2: { /* an existing set with one colour flipped: partial overlap */
		uint64_t m = n ? M.ow[live[a % n]].mask : M.all;
		m ^= 1ull << (b % C);
		return m ? m : 1ull << (b % C);
	}
	case 3: { /* a run of colours */
		unsigned len = 1 + a % C;
		return ones(len) << (b % (C - len + 1));
	}
	case 4: { /* an aligned group: what higher orders need */
		unsigned w = 1u << (a % 7);
		if (w > C)
			w = C;
		return ones(w) << (w * (b % (C / w)));
	}
	case 5: { /* sparse random */
		uint64_t m = mix64((uint64_t)a << 8 | b) & M.all;
		return m ? m : 1ull << (a % C);
	}
	case 6:
		return 1ull << (a % C);
	case 7:
		return M.all;
	case 8: /* invalid: empty, or colours the zone does not have */
		if (C == 64 || (a & 1))
			return 0;
		return (1ull << (C + b % (64 - C))) | (a & 2 ? 1 : 0);
	default: { /* disjoint from everyone registered */
		uint64_t used = 0;
		for (uint32_t i = 0; i < n; i++)
			used |= M.ow[live[i]].mask;
		uint64_t m = ~used & M.all & (a & 1 ? mix64(b) : ~0ull);
		return m ? m : M.all;
	}
	}
}

static unsigned pick_order(uint8_t b)
{
	static const unsigned small[16] = {0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 8, 10};
	static const unsigned odd[8] = {11, 12, 31, 32, 64, UINT32_MAX, 7, 9};
	return (b & 0x80) && (b & 0x70) == 0x70 ? odd[b & 7] : small[b & 15];
}

/* Allocation flags: base kind, LAB_ZERO, LAB_EXCLUSIVE; now and then an
 * unknown bit, or a NULL pfn pointer (*nullp). */
static unsigned pick_flags(uint8_t b, bool *nullp)
{
	static const unsigned base[4] = {0, LAB_NOWAIT, LAB_ATOMIC, LAB_ATOMIC | LAB_NOWAIT};
	unsigned f = base[b & 3] | (b & 4 ? LAB_ZERO : 0) | (b & 8 ? LAB_EXCLUSIVE : 0);
	*nullp = (b & 0xf0) == 0x70;
	if ((b & 0xc0) == 0xc0 && (b & 0x30) == 0x30)
		f |= 0x10u << ((b & 3) * 9);
	return f;
}

static size_t pick_budget(uint8_t b)
{
	static const size_t t[16] = {0, 1, 2, 3, 5, 8, 16, 31, 64, 100, 256, 1000, 4096, 65536,
	                             SIZE_MAX, 7};
	return t[b & 15];
}

static struct blk *pick_held(uint8_t b)
{
	return M.nheld ? &M.held[b % M.nheld] : NULL;
}

enum {
	K_ADD, K_REMOVE, K_REMOVE_ALL, K_ALLOC, K_ALLOC_BATCH, K_ALLOC_PAGE, K_FREE, K_FREE_BATCH,
	K_FREE_BAD, K_FREE_PAGE, K_SCRUB, K_DRAIN, K_RESEED, K_RESERVE, K_MISC
};
static const uint8_t KTAB[32] = {
	K_ADD, K_ADD, K_ADD, K_REMOVE, K_REMOVE, K_REMOVE_ALL, K_ALLOC, K_ALLOC,
	K_ALLOC, K_ALLOC, K_ALLOC, K_ALLOC, K_ALLOC_BATCH, K_ALLOC_BATCH, K_ALLOC_PAGE, K_FREE,
	K_FREE, K_FREE, K_FREE, K_FREE, K_FREE_BATCH, K_FREE_BAD, K_FREE_BAD, K_FREE_BAD,
	K_FREE_BAD, K_FREE_PAGE, K_SCRUB, K_SCRUB, K_DRAIN, K_RESEED, K_RESERVE, K_MISC};
/* Argument bytes per kind (fuzz/gen_corpus.py mirrors this table). */
static const uint8_t KARGS[] = {6, 2, 2, 3, 4, 3, 1, 1, 4, 3, 1, 0, 1, 3, 2};
static const char *const KNAME[] = {"add", "remove", "remove-all", "alloc", "alloc-batch",
                                    "alloc-page", "free", "free-batch", "free-bad", "free-page",
                                    "scrub", "drain", "reseed", "reserve", "misc"};

static void op_free_bad(uint8_t sub, uint8_t a, uint8_t b, uint8_t c)
{
	struct blk *h = pick_held(a);
	switch (sub % 8) {
	case 0: { /* another owner's block (or its interior) */
		if (!h)
			break;
		uint32_t other = pick_owner(c);
		if (other == h->owner)
			other = other % M.maxo + 1;
		if (h->order && (b & 1))
			do_free(other, M.base + h->f + 1 + b % ((1u << h->order) - 1), 0);
		else
			do_free(other, M.base + h->f, h->order);
		return;
	}
	case 1: /* stale: a block freed earlier, maybe someone else's by now */
		if (M.nstale) {
			struct stale s = M.stale[a % M.nstale];
			do_free(s.owner, s.pfn, s.order);
			return;
		}
		break;
	case 2: { /* wild */
		uint64_t p;
		switch (b & 7) {
		case 0: p = M.base ? M.base - 1 - a % M.base : M.base + M.nr; break;
		case 1: p = M.base + M.nr + a; break;
		case 2: p = M.base + M.nr; break;
		case 3: p = UINT64_MAX - a; break;
		case 4: p = M.base + (1ull << 32) + a; break;
		case 5: p = 0; break;
		case 6: p = (uint64_t)a * 1000003ull; break;
		default: p = M.base + (((uint32_t)a << 8 | c) % M.nr); break;
		}
		do_free(pick_owner(b >> 3), p, c & 0x80 ? pick_order(c) : c % 4);
		return;
	}
	case 3: { /* misaligned for the order named */
		if (!h)
			break;
		unsigned j = h->order ? h->order : 1 + b % 4;
		do_free(h->owner, M.base + h->f + 1 + b % ((1u << j) - 1), j);
		return;
	}
	case 4: { /* the wrong order, including unsupported ones */
		if (!h)
			break;
		static const unsigned odd[5] = {11, 31, 32, 64, UINT32_MAX};
		unsigned j = b % 16;
		j = j <= LAB_MAX_ORDER ? (j == h->order ? (j + 1) % (LAB_MAX_ORDER + 1) : j) : odd[j - 11];
		do_free(h->owner, M.base + h->f, j);
		return;
	}
	case 5: { /* an interior frame, at an order it is aligned to */
		for (uint32_t t = 0; t < M.nheld; t++) {
			struct blk *x = &M.held[(a + t) % M.nheld];
			if (!x->order)
				continue;
			uint32_t off = 1 + b % ((1u << x->order) - 1);
			unsigned j = c % ((unsigned)__builtin_ctz(off) + 1);
			do_free(x->owner, M.base + x->f + off, j);
			return;
		}
		break;
	}
	case 6: /* anyone, anywhere near the zone */
		do_free(pick_owner(a), M.base + (((uint32_t)b << 8 | c) % (M.nr + 16)), c % 4);
		return;
	default: /* double free */
		if (!h)
			break;
		{
			struct blk x = *h;
			do_free(x.owner, M.base + x.f, x.order);
			do_free(x.owner, M.base + x.f, x.order);
		}
		return;
	}
	do_free(pick_owner(a), M.base + (b % M.nr), 0); /* nothing held: a never-allocated frame */
}

static void op_free_page(uint8_t sub, uint8_t a, uint8_t off)
{
	struct blk *h = pick_held(a);
	uintptr_t d = (uintptr_t)M.dmap;
	switch (sub % 6) {
	case 0:
		if (h) {
			bool single = h->order == 0 && (sub & 8);
			do_free_addr(h->owner, d + (uintptr_t)h->f * LAB_FRAME_SIZE, h->order, single);
			return;
		}
		break;
	case 1: /* inside a frame */
		if (h) {
			do_free_addr(h->owner, d + (uintptr_t)h->f * LAB_FRAME_SIZE + 1 + (off * 16u) % 4095,
			             h->order, sub & 8);
			return;
		}
		break;
	case 2: /* an interior frame's address */
		if (h && h->order) {
			do_free_addr(h->owner, d + (uintptr_t)(h->f + 1 + off % ((1u << h->order) - 1)) * LAB_FRAME_SIZE,
			             0, sub & 8);
			return;
		}
		break;
	case 3: { /* outside the map */
		const uintptr_t w[6] = {0, d - LAB_FRAME_SIZE, d + (uintptr_t)M.nr * LAB_FRAME_SIZE, UINTPTR_MAX,
		                        d - 1, (uintptr_t)arena};
		do_free_addr(pick_owner(a), w[off % 6], off >> 4 & 3, sub & 8);
		return;
	}
	case 4: /* another owner */
		if (h) {
			uint32_t other = pick_owner(off);
			if (other == h->owner)
				other = other % M.maxo + 1;
			do_free_addr(other, d + (uintptr_t)h->f * LAB_FRAME_SIZE, h->order, sub & 8);
			return;
		}
		break;
	default:
		if (M.nstale) {
			struct stale s = M.stale[a % M.nstale];
			do_free_addr(s.owner, d + (uintptr_t)(s.pfn - M.base) * LAB_FRAME_SIZE, s.order, false);
			return;
		}
		break;
	}
	do_free_addr(pick_owner(a), d + (uintptr_t)(off % M.nr) * LAB_FRAME_SIZE, 0, true);
}

static void run_op(int kind, const uint8_t *g)
{
	bool nullp;
	switch (kind) {
	case K_ADD: {
		uint32_t flags = g[4] & 1 ? LAB_OWNER_EXCLUSIVE : 0;
		if ((g[4] & 0xe0) == 0xe0)
			flags |= 2u << ((g[4] >> 1) & 15);
		uint64_t quota = 0;
		switch (g[5] >> 6) {
		case 2: quota = 1 + (g[5] & 63); break;
		case 3: {
			const uint64_t q[8] = {1, 2, 1024, 1ull << 40, UINT64_MAX, M.nr, M.nr / 2, 3};
			quota = q[g[5] & 7];
			break;
		}
		default: break;
		}
		do_add(pick_new_id(g[0]), g[4] == 0xfe, some_mask(g[1], g[2], g[3]), flags, quota);
		return;
	}
	case K_REMOVE:
	case K_REMOVE_ALL:
		do_remove(pick_owner(g[0]), pick_budget(g[1]), kind == K_REMOVE_ALL);
		return;
	case K_ALLOC: {
		unsigned f = pick_flags(g[2], &nullp);
		do_alloc(pick_owner(g[0]), pick_order(g[1]), f, nullp);
		return;
	}
	case K_ALLOC_BATCH: {
		unsigned f = pick_flags(g[3], &nullp), order = pick_order(g[2]) & 15;
		uint32_t owner = pick_owner(g[0]);
		unsigned n = 1 + g[1];
		for (unsigned i = 0; i < n; i++) {
			uint32_t before = M.nheld;
			do_alloc(owner, order, f, nullp);
			if (M.nheld == before && (g[1] & 0x80) == 0)
				break; /* stop at the first failure unless asked to go on */
		}
		return;
	}
	case K_ALLOC_PAGE: {
		unsigned f = pick_flags(g[2], &nullp);
		do_alloc_page(pick_owner(g[0]), pick_order(g[1]) & 15, f, (g[1] & 0x40) != 0);
		return;
	}
	case K_FREE: {
		struct blk *h = pick_held(g[0]);
		if (h)
			do_free(h->owner, M.base + h->f, h->order);
		else
			do_free(pick_owner(g[0]), M.base + g[0] % M.nr, 0);
		return;
	}
	case K_FREE_BATCH: {
		unsigned n = 1 + g[0] % 64;
		if (g[0] & 0x80 && M.nheld) {
			/* lab_free_bulk: the newest n blocks as the newest one's
			 * owner, order 0 each; bit 6 repeats its first frame at
			 * the end (a double free within the list). */
			uint64_t list[65];
			size_t k = 0;
			uint32_t owner = M.held[M.nheld - 1].owner;
			for (unsigned i = 0; i < n && i < M.nheld; i++)
				list[k++] = M.base + M.held[M.nheld - 1 - i].f;
			if (g[0] & 0x40)
				list[k++] = list[0];
			do_free_bulk(owner, list, k);
			return;
		}
		for (unsigned i = 0; i < n && i < M.nheld; i++) {
			struct blk x = M.held[M.nheld - 1 - i];
			do_free(x.owner, M.base + x.f, x.order);
		}
		return;
	}
	case K_FREE_BAD:
		op_free_bad(g[0], g[1], g[2], g[3]);
		return;
	case K_FREE_PAGE:
		op_free_page(g[0], g[1], g[2]);
		return;
	case K_SCRUB:
		do_scrub(pick_budget(g[0]), (g[0] & 0xf0) == 0xf0);
		return;
	case K_DRAIN:
		do_drain();
		return;
	case K_RESEED:
		do_reseed(g[0]);
		return;
	case K_RESERVE: {
		uint32_t off = ((uint32_t)g[0] << 8 | g[1]) % (uint32_t)M.nr;
		switch (g[2] >> 6) {
		case 0: do_reserve(M.base + off, 1 + (g[2] & 63)); return;
		case 1: do_reserve(M.base + off, M.nr - off); return;
		case 2: do_reserve(M.base + off, 0); return;
		default: {
			const uint64_t p[4] = {M.base - 1, M.base + M.nr, UINT64_MAX, M.base};
			const uint64_t n[4] = {1, 1, 1, UINT64_MAX};
			do_reserve(p[g[2] & 3], n[(g[2] >> 2) & 3]);
			return;
		}
		}
	}
	default:
		do_misc(g[0], g[1]);
		return;
	}
}

/* ---- zone set-up ----------------------------------------------------------------------------------- */

/* lab_zone_init must refuse cfg with `want` and write neither *zone nor meta. */
static void init_refused(const struct lab_zone_cfg *cfg, void *meta, size_t size, bool nullz, int want,
                         const char *what)
{
	lab_zone_t *const sentinel = (lab_zone_t *)(void *)&M;
	lab_zone_t *zz = sentinel;
	size_t probe = M.meta_size < 4096 ? M.meta_size : 4096;
	memset(M.meta, 0xaa, probe);
	M.call = "lab_zone_init";
	int rc = lab_zone_init(nullz ? NULL : &zz, meta, size, cfg);
	lab_hosted_entropy_fault(0);
	if (rc != want)
		fail("lab_zone_init with %s returned %s, expected %s", what, cn(rc), cn(want));
	if (zz != sentinel)
		fail("refused lab_zone_init (%s) wrote *zone", what);
	for (size_t i = 0; i < probe; i++)
		if (((uint8_t *)M.meta)[i] != 0xaa)
			fail("refused lab_zone_init (%s) wrote metadata byte %zu", what, i);
}

static void init_abuse(const struct lab_zone_cfg *good)
{
	struct lab_zone_cfg c;
#define BAD(field, value, want)                                                                \
	do {                                                                                   \
		c = *good;                                                                     \
		c.field = value;                                                               \
		init_refused(&c, M.meta, M.meta_size, false, want, #field " = " #value);       \
		if (c.seed && lab_zone_meta_size(&c) != 0)                                     \
			fail("lab_zone_meta_size accepted " #field " = " #value);              \
	} while (0)
	init_refused(good, M.meta, M.meta_size, true, LAB_EINVAL, "NULL zone pointer");
	init_refused(good, NULL, M.meta_size, false, LAB_EINVAL, "NULL metadata");
	init_refused(good, (uint8_t *)M.meta + 8, M.meta_size - 64, false, LAB_EINVAL, "misaligned metadata");
	init_refused(NULL, M.meta, M.meta_size, false, LAB_EINVAL, "NULL cfg");
	init_refused(good, M.meta, M.meta_size - 1, false, LAB_ENOSPC, "a buffer one byte short");
	BAD(flags, good->flags | 0x8u, LAB_EINVAL);
	BAD(nr_frames, 0, LAB_EGEOMETRY);
	BAD(nr_frames, (1ull << 32) + 1, LAB_EGEOMETRY); /* 2^32 is allowed */
	BAD(base_pfn, (1ull << 52) - 1, LAB_EGEOMETRY);
	BAD(nr_colours, 0, LAB_EGEOMETRY);
	BAD(nr_colours, 3, LAB_EGEOMETRY);
	BAD(nr_colours, 128, LAB_EGEOMETRY);
	BAD(nr_cpus, 0, LAB_EINVAL);
	BAD(nr_cpus, LAB_MAX_CPUS + 1, LAB_EINVAL);
	BAD(max_owners, 0, LAB_EINVAL);
	BAD(max_owners, LAB_MAX_OWNERS + 1, LAB_EINVAL);
	BAD(reserve_permille, 1001, LAB_EINVAL);
	BAD(dmap_base, (void *)((uintptr_t)M.dmap + 1), LAB_EGEOMETRY);
	BAD(dmap_base, (void *)(UINTPTR_MAX & ~(uintptr_t)(LAB_FRAME_SIZE - 1)), LAB_EGEOMETRY);
	BAD(seed_len, 31, LAB_EENTROPY);
	if (!(good->flags & LAB_ZONE_NO_SCRUB))
		BAD(dmap_base, NULL, LAB_EINVAL);
	lab_hosted_entropy_fault(1);
	BAD(seed, NULL, LAB_EENTROPY);
	lab_hosted_entropy_fault(2);
	BAD(seed, NULL, LAB_EENTROPY);
#undef BAD
}

static void zone_teardown(void)
{
	if (M.dmap)
		FZ_UNPOISON(arena, sizeof arena);
	free(M.meta);
	M.meta = NULL;
	M.z = NULL;
}

static void run_input(const uint8_t *data, size_t size)
{
	uint8_t h[12];
	struct rd r = {data, size, 0};
	for (int i = 0; i < 12; i++)
		h[i] = u8(&r);

	memset(&M, 0, sizeof M);
	uint64_t nr = (h[0] & 0x80) ? MIN_FRAMES + (((uint32_t)(h[0] & 7) << 8 | h[1]) % (MAX_FRAMES - MIN_FRAMES + 1))
	                            : MIN_FRAMES + h[1] % 193;
	unsigned C = 1u << (h[2] % 7);
	uint32_t flags = (h[3] & 1 ? LAB_ZONE_ZEROED : 0) | (h[3] & 2 ? LAB_ZONE_DEFERRED_SCRUB : 0);
	bool noscrub = ((h[3] >> 2) & 7) == 7, nomap = noscrub && (h[3] & 0x20);
	if (noscrub)
		flags |= LAB_ZONE_NO_SCRUB;
	static const unsigned cpus_t[4] = {1, 2, 2, 3};
	unsigned cpus = cpus_t[h[4] & 3], maxo = 1 + ((h[4] >> 2) & 7);
	uint64_t base;
	uint64_t p16 = (uint64_t)h[6] << 8 | h[7];
	switch (h[5] & 7) {
	case 0: base = 0; break;
	case 1: base = h[6]; break;
	case 2: base = p16; break;
	case 3: base = 1000; break;
	case 4: base = (1ull << 40) + p16; break;
	case 5: base = (1ull << 52) - nr - h[6]; break;
	case 6: base = 4096ull * h[6]; break;
	default: base = h[6] * 977ull + h[7]; break;
	}
	static const unsigned permille_t[8] = {0, 15, 100, 1000, 0, 15, 31, 500};
	static const size_t seedlen_t[4] = {32, 33, 64, 100};
	uint64_t s = 0;
	for (int i = 0; i < 12; i++)
		s = mix64(s ^ h[i]);
	for (unsigned i = 0; i < sizeof M.seed; i++)
		M.seed[i] = (uint8_t)mix64(s + i);

	M.base = base;
	M.nr = nr;
	M.C = C;
	M.all = ones(C);
	M.cpus = cpus;
	M.maxo = maxo;
	M.permille = permille_t[h[8] & 7];
	M.flags = flags;
	M.noscrub = noscrub;
	M.deferred = flags & LAB_ZONE_DEFERRED_SCRUB;
	M.have_cpu = my_slot < cpus;
	M.seed_len = seedlen_t[(h[8] >> 4) & 3];
	M.dmap = nomap ? NULL : arena + ((size_t)MAX_FRAMES - nr) * LAB_FRAME_SIZE;
	for (unsigned c = 0; c < LAB_MAX_COLOURS; c++)
		M.cpool[c] = -1;

	/* The frames' contents: zero for a zeroed zone, a previous tenant's
	 * data otherwise. */
	bool clean = flags & (LAB_ZONE_ZEROED | LAB_ZONE_NO_SCRUB);
	if (M.dmap) {
		for (uint32_t f = 0; f < nr; f++) {
			if (flags & LAB_ZONE_ZEROED) {
				if (arena_nonzero[arena_index(f)]) {
					mem_put(f, 0);
					arena_nonzero[arena_index(f)] = 0;
				}
			} else {
				mem_put(f, GARBAGE);
			}
		}
		FZ_POISON(arena, (size_t)(MAX_FRAMES - nr) * LAB_FRAME_SIZE);
	}
	for (uint32_t f = 0; f < nr; f++)
		M.fr[f].st = clean ? M_UNASS : M_UNCLEAN;
	M.n_st[clean ? M_UNASS : M_UNCLEAN] = (uint32_t)nr;

	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, base, nr, M.dmap);
	cfg.nr_colours = C;
	cfg.nr_cpus = cpus;
	cfg.max_owners = maxo;
	cfg.reserve_permille = M.permille;
	cfg.flags = flags;
	cfg.seed = M.seed;
	cfg.seed_len = M.seed_len;
	M.meta_size = lab_zone_meta_size(&cfg);
	if (!M.meta_size)
		fail("lab_zone_meta_size refused a valid configuration");
	M.meta = aligned_alloc(64, M.meta_size);
	if (!M.meta)
		fail("out of memory");
	if (h[8] & 0x08)
		init_abuse(&cfg);
	M.call = "lab_zone_init";
	int rc = lab_zone_init(&M.z, M.meta, M.meta_size, &cfg);
	if (rc != LAB_OK)
		fail("lab_zone_init returned %s", cn(rc));
	M.Z = (struct lab_zone *)M.z;
	TRACE("zone: base %llu nr %llu colours %u cpus %u (slot %u) max_owners %u permille %u flags 0x%x%s\n",
	      (unsigned long long)base, (unsigned long long)nr, C, cpus, my_slot, maxo, M.permille, flags,
	      M.dmap ? "" : " no-map");
	check_lab();

	/* lab_check on every operation in zones up to 512 frames, every 4th
	 * above (and after every operation that changes the configuration). */
	unsigned check_every = nr <= 512 ? 1 : 4, scan_every = nr <= 256 ? 8 : 32;
	while (r.i < r.n && M.op < MAX_OPS) {
		M.op++;
		int kind = KTAB[u8(&r) & 31];
		uint8_t g[8] = {0};
		for (int i = 0; i < KARGS[kind]; i++)
			g[i] = u8(&r);
		TRACE("op %d: %s %02x %02x %02x %02x %02x %02x\n", M.op, KNAME[kind], g[0], g[1], g[2], g[3],
		      g[4], g[5]);
		run_op(kind, g);
		bool cfgop = kind == K_ADD || kind == K_REMOVE || kind == K_REMOVE_ALL || kind == K_SCRUB ||
		             kind == K_RESERVE;
		if (cfgop || M.op % (int)check_every == 0)
			check_lab();
		if (kind == K_REMOVE || kind == K_REMOVE_ALL || kind == K_SCRUB || M.op % (int)scan_every == 0)
			full_scan();
	}

	/* The end: every owner removed (bounded), every dirty frame scrubbed;
	 * then nothing may be held, cached, dirty or in a pool. */
	M.op++;
	full_scan();
	for (uint32_t id = 1; id <= maxo; id++)
		if (M.ow[id].st != O_FREE)
			do_remove(id, 64 + (id * 97) % 512, true);
	do_scrub(1u << 20, false);
	full_scan();
	check_lab();
	bool all_gone = true;
	for (uint32_t id = 1; id <= maxo; id++)
		all_gone &= M.ow[id].st == O_FREE;
	if (all_gone && (M.nheld || M.n_st[M_FREE] || M.n_st[M_DIRTY] || M.n_st[M_UNCLEAN] ||
	                 M.n_st[M_UNASS] + M.n_st[M_RESV] != nr))
		fail("after removing every owner: %u blocks held, %u free, %u dirty, %u unassigned-dirty",
		     M.nheld, M.n_st[M_FREE], M.n_st[M_DIRTY], M.n_st[M_UNCLEAN]);
	zone_teardown();
}

/* ---- entry points ------------------------------------------------------------------------------------ */

static pthread_mutex_t park_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cv = PTHREAD_COND_INITIALIZER;
static int parked;

static void *park(void *arg)
{
	(void)arg;
	unsigned s = lab_plat_cpu(); /* takes slot 0 and keeps it */
	(void)s;
	pthread_mutex_lock(&park_mu);
	parked = 1;
	pthread_cond_broadcast(&park_cv);
	for (;;)
		pthread_cond_wait(&park_cv, &park_mu);
	return NULL;
}

static void fz_init(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	trace = getenv("FUZZ_TRACE") && getenv("FUZZ_TRACE")[0] == '1';
	pthread_t t;
	if (pthread_create(&t, NULL, park, NULL) == 0) {
		pthread_mutex_lock(&park_mu);
		while (!parked)
			pthread_cond_wait(&park_cv, &park_mu);
		pthread_mutex_unlock(&park_mu);
	}
	my_slot = lab_plat_cpu();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_init();
	if (size < 12)
		return 0;
	run_input(data, size);
	return 0;
}

#ifdef FUZZ_REPLAY
static long replayed, failures;

static void on_signal(int sig)
{
	static const char m[] = "\nlabyrinth-fuzz: crashed while replaying ";
	ssize_t r = write(2, m, sizeof m - 1);
	if (cur_file)
		r = write(2, cur_file, strlen(cur_file));
	r = write(2, "\n", 1);
	(void)r;
	signal(sig, SIG_DFL);
	raise(sig);
}

static void replay_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		fprintf(stderr, "labyrinth-fuzz: cannot open %s\n", path);
		failures++;
		return;
	}
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			cap = cap ? 2 * cap : 4096;
			uint8_t *nb = realloc(buf, cap);
			if (!nb) {
				fclose(fp);
				free(buf);
				failures++;
				return;
			}
			buf = nb;
		}
		size_t got = fread(buf + len, 1, cap - len, fp);
		if (!got)
			break;
		len += got;
	}
	fclose(fp);
	jmp_buf jb;
	cur_file = path;
	fail_jmp = &jb;
	if (setjmp(jb) == 0) {
		LLVMFuzzerTestOneInput(buf, len);
	} else {
		failures++;
		if (M.meta)
			zone_teardown();
	}
	fail_jmp = NULL;
	cur_file = NULL;
	replayed++;
	free(buf);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void replay_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		fprintf(stderr, "labyrinth-fuzz: no such file: %s\n", path);
		failures++;
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		replay_file(path);
		return;
	}
	DIR *d = opendir(path);
	if (!d) {
		failures++;
		return;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			char **nn = realloc(names, cap * sizeof *names);
			if (!nn)
				break;
			names = nn;
		}
		size_t l = strlen(path) + strlen(e->d_name) + 2;
		names[n] = malloc(l);
		if (!names[n])
			break;
		snprintf(names[n], l, "%s/%s", path, e->d_name);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n; i++) {
		struct stat fs;
		if (stat(names[i], &fs) == 0 && S_ISREG(fs.st_mode))
			replay_file(names[i]);
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	signal(SIGABRT, on_signal);
#ifndef FZ_ASAN
	signal(SIGSEGV, on_signal);
	signal(SIGBUS, on_signal);
#endif
	fz_init();
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		replay_path(argv[i]);
	printf("replayed %ld inputs, %ld failures\n", replayed, failures);
	return failures || !replayed ? 1 : 0;
}
#endif
