/*
 * audit_timing.c - the timing part of `labyrinth audit` (P2, P3).
 *
 * dudect (Reparaz, Balasch, Verbauwhede, DATE 2017): two allocator *states*
 * are the two classes.  Each measurement picks a class with a random bit,
 * times one order-0 lab_alloc (or, separately, one lab_free) in a zone in
 * that state with a serialised TSC pair, and undoes the call outside the
 * timed region so the state stays fixed.  Welch's t-test runs online on the
 * raw cycles, on 100 crops at the percentiles 1 - 0.5^(10 (i+1) / 100) of
 * the first measurements, and (past 10,000 per class) a second-order test on
 * (x - mean)^2; the largest |t| is the run's figure.  Every run also measures
 * a same-state control (two zones in the same state): a run whose control
 * exceeds 4.5 is void (the machine, not the allocator) and is repeated.
 * The four zones' memory is counterbalanced: each state is rebuilt in each
 * zone in turn during a run (dudect_run), so no zone's memory can pose as a
 * leak of the state it happens to hold.
 * Pass: |t| < 10 in all of at least 5 valid runs and < 4.5 in at least 3.
 * With --policy leaky the same harness times a toy allocator with the
 * classic leaks instead (below): every pair must fail it.
 *
 * Also here: tail latency (p99.99 <= 2 x p50 in every class state) and a
 * seccomp filter proving the order-0 alloc/free paths make no system call.
 * With the tail go two figures about the machine, for the worst run: how
 * many interrupts its CPU took and how many of them can have fallen inside
 * the timed calls (their share of the run's time), and p99.99/p50 of a
 * fixed piece of register-only work timed the same way right after each
 * test call.  When that work, which touches no memory, has a tail as long
 * as the allocator's, the stalls are the machine's (in a VM, the host's,
 * which the guest's interrupt counts do not show).
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "audit.h"

/* ---- time ------------------------------------------------------------------ */

static inline uint64_t tsc_begin(void)
{
#if defined(__x86_64__) || defined(__i386__)
	_mm_lfence();
	uint64_t t = __rdtsc();
	_mm_lfence();
	return t;
#else
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
#endif
}

static inline uint64_t tsc_end(void)
{
	return tsc_begin();
}

/* ---- Welch's t, online --------------------------------------------------- */

struct welch {
	double n[2], mean[2], m2[2];
};

static void welch_push(struct welch *w, int cls, double x)
{
	w->n[cls]++;
	double d = x - w->mean[cls];
	w->mean[cls] += d / w->n[cls];
	w->m2[cls] += d * (x - w->mean[cls]);
}

static double welch_t(const struct welch *w)
{
	if (w->n[0] < 2 || w->n[1] < 2)
		return 0;
	double v0 = w->m2[0] / (w->n[0] - 1), v1 = w->m2[1] / (w->n[1] - 1);
	double den = sqrt(v0 / w->n[0] + v1 / w->n[1]);
	return den > 0 ? (w->mean[0] - w->mean[1]) / den : 0;
}

#define NCROPS 100
#define PREP 10000 /* measurements that fix the crop thresholds */

struct ttest {
	struct welch raw, crop[NCROPS], second;
	double thr[NCROPS];
	bool thr_set;
	double prep[PREP];
	unsigned nprep;
};

static void ttest_push(struct ttest *t, int cls, double x)
{
	if (!t->thr_set) {
		t->prep[t->nprep++] = x;
		if (t->nprep == PREP) {
			qsort(t->prep, PREP, sizeof(double), cli_cmp_double);
			for (int i = 0; i < NCROPS; i++) {
				double q = 1 - pow(0.5, 10.0 * (i + 1) / NCROPS);
				t->thr[i] = t->prep[(unsigned)(q * (PREP - 1))];
			}
			t->thr_set = true;
		}
		return; /* the first measurements only set thresholds (dudect) */
	}
	welch_push(&t->raw, cls, x);
	for (int i = 0; i < NCROPS; i++)
		if (x < t->thr[i])
			welch_push(&t->crop[i], cls, x);
	if (t->raw.n[0] > 10000 && t->raw.n[1] > 10000) {
		double d = x - t->raw.mean[cls];
		welch_push(&t->second, cls, d * d);
	}
}

/* What the largest |t| of a run is made of, for the reader: which test gave
 * it (-1 raw, 0..NCROPS-1 a crop, NCROPS the second order), that test's
 * class means (for a crop: below its threshold), and the timer's step, the
 * gcd of the threshold-setting samples (a TSC that ticks in steps of many
 * cycles turns a shift of a fraction of a cycle into a shift of counts
 * between two adjacent steps). */
struct tmax {
	double t;
	int which;
	double thr, mean[2];
	uint64_t step;
};

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t r = a % b;
		a = b;
		b = r;
	}
	return a;
}

static struct tmax ttest_max(const struct ttest *t)
{
	struct tmax m = {fabs(welch_t(&t->raw)), -1, 0, {t->raw.mean[0], t->raw.mean[1]}, 0};
	for (int i = 0; i < NCROPS; i++)
		if (fabs(welch_t(&t->crop[i])) > m.t && t->crop[i].n[0] > 100 && t->crop[i].n[1] > 100)
			m = (struct tmax){fabs(welch_t(&t->crop[i])), i, t->thr[i],
			                  {t->crop[i].mean[0], t->crop[i].mean[1]}, 0};
	if (fabs(welch_t(&t->second)) > m.t)
		m = (struct tmax){fabs(welch_t(&t->second)), NCROPS, 0, {t->second.mean[0], t->second.mean[1]}, 0};
	for (unsigned i = 0; i < t->nprep; i++)
		m.step = gcd64(m.step, (uint64_t)t->prep[i]);
	return m;
}

/* ---- allocator states -------------------------------------------------------- */

#define FRAMES 65536 /* 256 MiB zones: metadata 512 KiB, beyond L2 */
#define OWNER 1
#define OTHER 2

struct toy;

struct state {
	struct lab_hosted_zone hz;
	lab_zone_t *z;
	struct toy *toy; /* --policy leaky: the toy below instead of z */
	/* Per frame, 1 while its last holder was another owner than OWNER, as
	 * this harness made it (C4's class b: how many of the timed calls met
	 * the state the class names). */
	uint8_t *other;
	uint64_t mask;
	uint32_t flags;
	char name[48];
};

static uint64_t xs64(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- --policy leaky: the negative control of the timing part --------------
 *
 * A toy allocator over FRAMES frames with the classic timing leaks, so that
 * the class pairs are shown able to fail (a pair no leaky allocator fails
 * proves nothing when the library passes it):
 * - alloc: a random start, then a linear scan to the first free frame of the
 *   pool's colours (hardened_malloc's slot choice): its length depends on
 *   the fill (C1), on where the free frames are (C2, C3) and on how many
 *   colours the pool has (C5);
 * - the start is drawn by rejection sampling over the free count (an
 *   unbiased bound, with a loop that never repeats when the count is a power
 *   of two and repeats half the time just above one: C6);
 * - a frame whose last owner was another is zeroed at allocation, and once
 *   more when that owner frees it (C4, alloc and free: 4 KiB of zeroes into
 *   a buffer each time, the toy having no frames);
 * - free: a random slot by the same rejection sampling (a random bag's
 *   insert: C6), then buddy coalescing up to order 6 while the buddy block
 *   is all free, each merge taking the buddy off its list, a write to its
 *   descriptor (Linux's merge loop): how far it goes depends on the
 *   fill, the layout and the colours (C1, C2, C3, C5).
 */
struct toy {
	uint64_t bits[FRAMES / 64]; /* 1 = free */
	uint8_t last[FRAMES];       /* the frame's last owner, bit 7: it came from another */
	uint64_t desc[FRAMES];      /* a descriptor per frame (struct page) */
	uint64_t mask, rng, merges;
	uint32_t nfree;
	_Alignas(64) uint8_t scratch[4096];
};

static bool leaky; /* the options' policy is POLICY_LEAKY */

static bool toy_eligible(const struct toy *t, uint32_t f)
{
	return (t->bits[f / 64] >> (f % 64) & 1) && (t->mask >> (f % 32) & 1);
}

/* Uniform in [0, n), n >= 1, by rejection: a loop whose length leaks n. */
static uint64_t toy_below(struct toy *t, uint64_t n)
{
	uint64_t m = n - 1, r;
	m |= m >> 1, m |= m >> 2, m |= m >> 4, m |= m >> 8, m |= m >> 16; /* 2^k - 1 >= n - 1 */
	do /* no bound: each try succeeds with probability > 1/2 */
		r = xs64(&t->rng) & m;
	while (r >= n);
	return r;
}

static int toy_alloc(struct toy *t, uint32_t owner, uint64_t *pfn)
{
	if (!t->nfree)
		return LAB_ENOMEM;
	uint32_t f = (uint32_t)(toy_below(t, t->nfree) * FRAMES / t->nfree);
	while (!toy_eligible(t, f)) /* bound: FRAMES (a free frame exists) */
		f = (f + 1) % FRAMES;
	t->bits[f / 64] &= ~(1ull << (f % 64));
	t->nfree--;
	if ((t->last[f] & 0x7f) != owner) {
		memset(t->scratch, 0, sizeof t->scratch);
		__asm__ volatile("" : : "r"(t->scratch) : "memory");
		t->last[f] = (uint8_t)(owner | 0x80);
	}
	*pfn = f;
	return LAB_OK;
}

static int toy_free(struct toy *t, uint32_t owner, uint64_t pfn)
{
	uint32_t f = (uint32_t)pfn;
	if (pfn >= FRAMES || (t->bits[f / 64] >> (f % 64) & 1))
		return LAB_EFREE;
	t->bits[f / 64] |= 1ull << (f % 64);
	t->nfree++;
	if (t->last[f] & 0x80) {
		memset(t->scratch, 0, sizeof t->scratch);
		__asm__ volatile("" : : "r"(t->scratch) : "memory");
	}
	t->last[f] = (uint8_t)owner;
	t->merges += toy_below(t, t->nfree); /* the bag slot (kept live) */
	for (unsigned k = 0; k < 6; k++) { /* the order-(k+1) block around f: all free? */
		uint64_t len = 2ull << k, sh = f % 64 & ~(len - 1);
		uint64_t want = (len == 64 ? ~0ull : (1ull << len) - 1) << sh;
		if ((t->bits[f / 64] & want) != want)
			break;
		t->desc[f ^ (1u << k)]++; /* the buddy leaves its list */
	}
	return LAB_OK;
}

/* Every pool frame allocated by builder; `all` gets them in frame order. */
static uint64_t toy_fill(struct toy *t, uint64_t mask, uint32_t builder, uint64_t seed, uint64_t *all)
{
	uint64_t n = 0;
	memset(t->bits, 0, sizeof t->bits);
	t->mask = mask;
	t->rng = (seed * 0x9e3779b97f4a7c15ull) | 1;
	t->nfree = 0;
	for (uint32_t f = 0; f < FRAMES; f++) {
		t->last[f] = (uint8_t)builder;
		if (mask >> (f % 32) & 1)
			all[n++] = f;
	}
	return n;
}

/* The timed calls, on the library or the toy: order 0, LAB_ATOMIC. */
static inline int t_alloc(struct state *s, uint32_t owner, uint64_t *pfn)
{
	return s->toy ? toy_alloc(s->toy, owner, pfn) : lab_alloc(s->z, owner, 0, LAB_ATOMIC, pfn);
}

static inline int t_free(struct state *s, uint32_t owner, uint64_t pfn)
{
	return s->toy ? toy_free(s->toy, owner, pfn) : lab_free(s->z, owner, pfn, 0);
}

/* The class states.  Each zone has OWNER on `mask` (exclusive unless
 * shared) and is brought to a layout by allocating every frame of the pool
 * and freeing exactly the frames the layout wants free. */
enum layout {
	L_EMPTY,    /* 1% full                                             */
	L_FULL,     /* 99% full                                            */
	L_SPREAD,   /* 50%, free frames uniformly spread                   */
	L_END,      /* 50%, free frames all at the end (last pfns)         */
	L_FRAG,     /* 50%, checkerboard                                   */
	L_RUN,      /* 50%, free frames one contiguous run                 */
	L_POW2,     /* exactly 2^14 free frames                            */
	L_POW2P1,   /* 2^14 + 1 free frames                                */
};

/* Bring the zone in s to a layout: its owner(s) on `mask`, then every frame
 * of the pool allocated by `builder` (OWNER, or in a shared pool OTHER) and
 * exactly the frames the layout wants freed, by the same owner.  A
 * zone already built is first re-initialised in place, over the same
 * metadata and frames, with a fresh seed: run_pair moves the class states
 * between zones' memory this way (see there).  The audit never writes a
 * frame, and scrubs write zeros, so the arena is still LAB_ZONE_ZEROED. */
static int set_state(struct state *s, const char *name, uint64_t mask, bool shared, enum layout lay,
                     uint32_t builder, uint32_t zone_flags, uint64_t seed)
{
	uint64_t *all = malloc(FRAMES * sizeof(uint64_t)), n = 0, pfn;
	if (!all || (!s->other && !(s->other = malloc(FRAMES)))) {
		free(all);
		return -1;
	}
	memset(s->other, 0, FRAMES);
	s->mask = mask;
	snprintf(s->name, sizeof s->name, "%s", name);
	if (leaky) {
		if (!s->toy && !(s->toy = aligned_alloc(64, sizeof *s->toy))) {
			free(all);
			return -1;
		}
		n = toy_fill(s->toy, mask, builder, seed, all);
		goto layout;
	}
	uint8_t sd[32];
	for (int i = 0; i < 32; i++)
		sd[i] = (uint8_t)(seed >> (i % 8 * 8)) ^ (uint8_t)(i * 37);
	struct lab_hosted_opts o = {.bytes = (uint64_t)FRAMES * 4096, .nr_cpus = 2, .colours = 32,
	                            .reserve_permille = LAB_HOSTED_NO_RESERVE, .zone_flags = zone_flags,
	                            .seed = sd, .seed_len = 32};
	/* The frames hold nothing but zeros: the audit never writes into them. */
	struct lab_owner_cfg oc = {.colours = mask, .flags = shared ? 0 : LAB_OWNER_EXCLUSIVE};
	if ((s->z ? lab_hosted_zone_reinit(&s->hz, &o) : lab_hosted_zone_create(&o, &s->hz)) != LAB_OK ||
	    (s->z = s->hz.zone, lab_owner_add(s->z, OWNER, &oc)) != LAB_OK ||
	    (shared && lab_owner_add(s->z, OTHER, &oc) != LAB_OK)) {
		free(all);
		return -1;
	}
	/* Take every frame of the pool, then free the layout's free set. */
	while (lab_alloc(s->z, builder, 0, LAB_ATOMIC, &pfn) == LAB_OK)
		all[n++] = pfn;
layout:;
	/* Sort (by marking) so layouts can talk about positions. */
	uint8_t *have = calloc(FRAMES, 1);
	for (uint64_t i = 0; i < n; i++)
		have[all[i] - s->hz.base_pfn] = 1;
	uint64_t k = 0, want_free;
	for (uint64_t f = 0; f < FRAMES; f++)
		if (have[f])
			all[k++] = s->hz.base_pfn + f; /* now sorted */
	switch (lay) {
	case L_EMPTY: want_free = n - n / 100; break;
	case L_FULL: want_free = n / 100; break;
	case L_POW2: want_free = 1u << 14; break;
	case L_POW2P1: want_free = (1u << 14) + 1; break;
	default: want_free = n / 2; break;
	}
	if (want_free > n)
		want_free = n;
	uint8_t *freeit = calloc(n, 1);
	uint64_t r = (seed * 0x9e3779b97f4a7c15ull) | 1, chosen = 0;
	if (lay == L_END || lay == L_RUN) {
		uint64_t start = lay == L_END ? n - want_free : (n - want_free) / 2;
		for (uint64_t i = start; i < start + want_free; i++)
			freeit[i] = 1;
	} else if (lay == L_FRAG) {
		for (uint64_t i = 0; i < n && chosen < want_free; i += 2, chosen++)
			freeit[i] = 1;
	} else {
		while (chosen < want_free) { /* uniform subset */
			uint64_t i = xs64(&r) % n;
			if (!freeit[i]) {
				freeit[i] = 1;
				chosen++;
			}
		}
	}
	for (uint64_t i = 0; i < n; i++)
		if (freeit[i]) {
			t_free(s, builder, all[i]);
			s->other[all[i] - s->hz.base_pfn] = builder != OWNER;
		}
	if (!s->toy)
		lab_cpu_drain(s->z);
	free(all);
	free(have);
	free(freeit);
	return 0;
}

static int build_state(struct state *s, const char *name, uint64_t mask, bool shared, enum layout lay,
                       uint32_t zone_flags, uint64_t seed)
{
	memset(s, 0, sizeof *s);
	return set_state(s, name, mask, shared, lay, OWNER, zone_flags, seed);
}

static void drop_state(struct state *s)
{
	if (s->z)
		lab_hosted_zone_destroy(&s->hz);
	free(s->toy);
	free(s->other);
}

/* ---- one dudect run ------------------------------------------------------------ */

struct run_result {
	double t, t_control;
	struct tmax tm, tmc; /* what made t, and the control's t */
	double p50[2], p9999[2];
	/* For the tail: interrupts this CPU took during the run (-1: unknown),
	 * the share of the run's time spent inside the timed test calls, the
	 * samples beyond p99.99 (both classes), and p99.99/p50 of a fixed piece
	 * of register-only work timed the same way right after each test call
	 * (what the machine allows any code). */
	double irqs, timed_share, beyond, fixed_ratio;
	/* Class b's timed calls on a frame whose last holder was the other
	 * owner, a share (-1: the pair has no other owner).  Every timed call
	 * is OWNER's, so each one it makes on such a frame turns the frame
	 * into one OWNER held last: the phases are short enough that few do. */
	double b_other;
	/* Too few measurements for a Welch test in some class (either test) */
	bool unmeasured;
};

/* ~30 dependent multiply-adds in registers: no memory, no branch on data. */
static inline uint64_t fixed_work(uint64_t x)
{
	for (int i = 0; i < 32; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		__asm__("" : "+r"(x));
	}
	return x;
}

/* The CPU the timing runs are pinned to: the highest one this process may
 * run on (CPU 1 on a 2-CPU machine, unless taskset says otherwise); -1 when
 * pinning failed. */
static int timing_cpu = -1;

/* Interrupts CPU `cpu` has taken since boot: its column of /proc/interrupts
 * summed over every source (timer, IPIs, devices); -1 if unreadable or if
 * the header names no such CPU (columns are the online CPUs, in order). */
static double cpu_interrupts(int cpu)
{
	if (cpu < 0)
		return -1;
	FILE *f = fopen("/proc/interrupts", "r");
	if (!f)
		return -1;
	char line[4096], want[16];
	snprintf(want, sizeof want, "CPU%d", cpu);
	int col = -1;
	if (fgets(line, sizeof line, f)) { /* "CPU0 CPU1 ...": the column order */
		int i = 0;
		for (char *t = strtok(line, " \t\n"); t; t = strtok(NULL, " \t\n"), i++)
			if (!strcmp(t, want))
				col = i;
	}
	if (col < 0) {
		fclose(f);
		return -1;
	}
	double sum = 0;
	while (fgets(line, sizeof line, f)) {
		char *p = strchr(line, ':');
		if (!p)
			continue;
		p++;
		for (int c = 0; c <= col; c++) {
			char *end;
			unsigned long long v = strtoull(p, &end, 10);
			if (end == p)
				break; /* a row with fewer columns (ERR, MIS) */
			if (c == col)
				sum += (double)v;
			p = end;
		}
	}
	fclose(f);
	return sum;
}

enum what { TIME_ALLOC, TIME_FREE };

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Sort v[0, n) and give its p50 and p99.99 (0 for none). */
static void percentiles(uint32_t *v, uint64_t n, double *p50, double *p9999)
{
	qsort(v, n, sizeof(uint32_t), cmp_u32);
	*p50 = n ? v[n / 2] : 0;
	*p9999 = n ? v[(uint64_t)((double)(n - 1) * 0.9999)] : 0;
}

/* A TSC interval as a 32-bit sample, saturated. */
static uint32_t sample32(uint64_t cycles)
{
	return (uint32_t)(cycles > 0xffffffffu ? 0xffffffffu : cycles);
}

/* ---- the class pairs ------------------------------------------------------------- */

struct pair {
	const char *id, *what;
	const char *na, *nb;
	uint64_t mask_a, mask_b;
	bool shared;
	enum layout la, lb;
	uint32_t builder_b; /* the owner whose allocations and frees build class b's
	                       layout (a's: always OWNER, the owner every timed call
	                       runs as) */
	uint32_t zone_flags;
};

#define ALL 0xffffffffull

static const struct pair pairs[] = {
	{"C1", "near-empty vs near-full", "1% full", "99% full", ALL, ALL, false, L_EMPTY, L_FULL, OWNER, 0},
	{"C2", "spread vs free frames all at the end", "spread", "at end", ALL, ALL, false, L_SPREAD, L_END,
	 OWNER, 0},
	{"C3", "fragmented vs one contiguous run", "checkerboard", "one run", ALL, ALL, false, L_FRAG, L_RUN,
	 OWNER, 0},
	/* One shared pool of two owners, the timed calls always OWNER's: in a
	 * every free frame was last held (and freed) by OWNER, in b by OTHER,
	 * which also holds the allocated half.  Until 2026-11-27 both classes
	 * were one zone, b's calls made as OTHER: that timed two callers (two
	 * owner structures), not the frames' previous owner. */
	{"C4", "previous owner same vs other (scrub)", "same owner", "other owner", ALL, ALL, true, L_SPREAD,
	 L_SPREAD, OTHER, 0},
	{"C5", "owner with few colours vs many", "2 colours", "32 colours", 0x3, ALL, false, L_SPREAD, L_SPREAD,
	 OWNER, 0},
	{"C6", "random bound 2^14 vs 2^14 + 1", "2^14 free", "2^14+1 free", ALL, ALL, false, L_POW2, L_POW2P1,
	 OWNER, 0},
};

/*
 * One run: `samples` measurements of the classes a and b, interleaved with
 * the same-state control c0/c1 so both see the same machine.
 *
 * The four states live in four zones, mem[0..3], and move between them: the
 * run is cut into PHASES = 16 phases, k = 4 u + v, and in phase k the state
 * of role r (0 = a, 1 = b, 2 = c0, 3 = c1) is rebuilt, with a fresh seed, in
 * mem[(r + u) % 4], as the ((r + v) % 4)-th of the four.  Each role so
 * spends the same number of measurements in each zone's memory, in each
 * place of the build order and in each pairing of the two (a Latin square):
 * the state built last has the freshest lines, and with the order fixed
 * (a, b, c0, c1) a toy allocator's same-state control, c0 against c1, was
 * 5-9 cycles apart in every run (docs/AUDIT.md).
 * Without this, a zone's memory itself could pose as a leak: two zones in
 * the same state, in one process, timed apart by 3 cycles a free (|t| 19,
 * six times with the states swapped between them; zone X was the slower
 * whichever state it held), and not at all in the next process.  The host
 * decides what backs the guest's memory; the guest cannot see it.
 */
#define PHASES 16
#define ROLES 4 /* a, b, c0, c1: one zone each */
_Static_assert(PHASES == ROLES * ROLES, "one phase per (memory, build place) of each role");

static int dudect_run(const struct pair *p, struct state *mem, enum what w, uint64_t samples,
                      uint64_t seed, struct run_result *res)
{
	static struct ttest test, ctrl;
	memset(&test, 0, sizeof test);
	memset(&ctrl, 0, sizeof ctrl);
	uint32_t *lat[2], *lat_fixed = malloc(samples * sizeof(uint32_t));
	uint64_t nl[2] = {0, 0}, nf = 0, sink = seed;
	lat[0] = malloc(samples * sizeof(uint32_t));
	lat[1] = malloc(samples * sizeof(uint32_t));
	uint64_t r = seed | 1, met[2][2] = {{0, 0}, {0, 0}}, calls[2][2] = {{0, 0}, {0, 0}};
	struct state *a = NULL, *b = NULL, *c0 = NULL, *c1 = NULL;
	double irq0 = cpu_interrupts(timing_cpu), timed = 0;
	/* C4's class b (frames the other owner held last) wears off as OWNER's
	 * timed calls take its frames, a frame a call: the Latin square goes
	 * round once per 65,536 measurements, so a phase's b calls take at
	 * most about 2,048 of its 32,768 free frames.  (Its warm-up calls are
	 * the other owner's.)  Until 2026-11-28 a full run's phases took
	 * 31,250 and only about 57 % of b's calls met a frame of the other owner. */
	bool track = p->builder_b != OWNER;
	uint64_t squares = track && samples / 65536 > 1 ? samples / 65536 : 1;
	uint64_t per_phase = samples / (PHASES * squares) + 1;
	uint64_t run0 = tsc_begin();
	for (uint64_t i = 0; i < samples; i++) {
		if (i % per_phase == 0) {
			unsigned k = (unsigned)(i / per_phase), u = k / ROLES % ROLES, v = k % ROLES;
			for (unsigned j = 0; j < ROLES; j++) { /* the j-th built */
				unsigned role = (j + ROLES - v) % ROLES;
				struct state *s = &mem[(role + u) % ROLES];
				bool is_b = role == 1;
				if (set_state(s, is_b ? p->nb : p->na, is_b ? p->mask_b : p->mask_a, p->shared,
				              is_b ? p->lb : p->la, is_b ? p->builder_b : OWNER, p->zone_flags,
				              seed ^ (uint64_t)(16 * k + role) << 24)) {
					free(lat[0]);
					free(lat[1]);
					free(lat_fixed);
					return -1;
				}
				*(role == 0 ? &a : role == 1 ? &b : role == 2 ? &c0 : &c1) = s;
			}
			/* Untimed calls, round robin from a zone that changes with
			 * the phase, so no zone starts the phase warmer for having
			 * been rebuilt or called last. */
			for (unsigned j = 0; j < 4160 * ROLES; j++) {
				unsigned m = (j + k) % ROLES;
				struct state *s = &mem[m];
				/* Its role's owner; the last 64 rounds OWNER's everywhere,
				 * whose calls are timed (C4's b: its owner record warm). */
				uint32_t who = j < 4096 * ROLES && (m + ROLES - u) % ROLES == 1 ? p->builder_b : OWNER;
				uint64_t pfn;
				if (t_alloc(s, who, &pfn) == LAB_OK) {
					t_free(s, who, pfn);
					s->other[pfn - s->hz.base_pfn] = who != OWNER;
				}
			}
		}
		uint64_t bits = xs64(&r);
		int cls = (int)(bits & 1), ccls = (int)(bits >> 1 & 1);
		for (int pass = 0; pass < 2; pass++) {
			struct state *s = pass == 0 ? (cls ? b : a) : (ccls ? c1 : c0);
			uint64_t pfn, t0, t1;
			if (w == TIME_ALLOC) {
				t0 = tsc_begin();
				int rc = t_alloc(s, OWNER, &pfn);
				t1 = tsc_end();
				if (rc != LAB_OK)
					pfn = UINT64_MAX; /* nothing to count */
				else
					t_free(s, OWNER, pfn);
			} else {
				if (t_alloc(s, OWNER, &pfn) != LAB_OK)
					continue;
				t0 = tsc_begin();
				t_free(s, OWNER, pfn);
				t1 = tsc_end();
			}
			/* Which frame the call met (C4 only), counted after the timed
			 * region and alike for every class and the control: a harness
			 * that did it only for class b, before the timed free, made
			 * b's frees 2 cycles faster (|t| 15-23, 2026-11-28).  Not for
			 * the other pairs: a random line of a 64 KiB array between
			 * calls is cache traffic of its own (C5 alloc 11-27 with it,
			 * 1-8 without, interleaved). */
			if (track && pfn != UINT64_MAX) {
				uint8_t *o = &s->other[pfn - s->hz.base_pfn];
				met[pass][pass == 0 ? cls : ccls] += *o;
				calls[pass][pass == 0 ? cls : ccls]++;
				*o = 0; /* OWNER's now */
			}
			double x = (double)(t1 - t0);
			if (pass == 0) {
				timed += x;
				ttest_push(&test, cls, x);
				lat[cls][nl[cls]++] = sample32(t1 - t0);
				t0 = tsc_begin();
				sink = fixed_work(sink);
				t1 = tsc_end();
				lat_fixed[nf++] = sample32(t1 - t0);
			} else {
				ttest_push(&ctrl, ccls, x);
			}
		}
	}
	double run_cycles = (double)(tsc_end() - run0), irq1 = cpu_interrupts(timing_cpu);
	res->irqs = irq0 >= 0 && irq1 >= irq0 ? irq1 - irq0 : -1;
	res->timed_share = run_cycles > 0 ? timed / run_cycles : 0;
	res->beyond = (double)(nl[0] + nl[1]) * 1e-4;
	double f50, f9999;
	percentiles(lat_fixed, nf, &f50, &f9999);
	res->fixed_ratio = f50 > 0 ? f9999 / f50 : 0;
	free(lat_fixed);
	__asm__ volatile("" : : "r"(sink));
	res->tm = ttest_max(&test);
	res->t = res->tm.t;
	res->tmc = ttest_max(&ctrl);
	res->t_control = res->tmc.t;
	res->b_other = track && calls[0][1] ? (double)met[0][1] / (double)calls[0][1] : -1;
	/* A class with fewer than 2 measurements in the raw or the second-order
	 * test has no t: 0 would read as a pass (--samples has a floor so that
	 * it cannot happen; allocations that fail could still cause it). */
	res->unmeasured = test.raw.n[0] < 2 || test.raw.n[1] < 2 || test.second.n[0] < 2 ||
	                  test.second.n[1] < 2 || ctrl.raw.n[0] < 2 || ctrl.raw.n[1] < 2;
	for (int c = 0; c < 2; c++) {
		percentiles(lat[c], nl[c], &res->p50[c], &res->p9999[c]);
		free(lat[c]);
	}
	return 0;
}

/* Pin to the highest CPU in this process's affinity mask (timing_cpu);
 * leave timing_cpu at -1 if that fails. */
static void pin_timing_cpu(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof set, &set))
		return;
	for (int cpu = CPU_SETSIZE - 1; cpu >= 0; cpu--) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof one, &one) == 0)
			timing_cpu = cpu;
		return;
	}
}

static int run_pair(const struct pair *p, enum what w, const struct audit_opts *o)
{
	struct state mem[ROLES];
	uint64_t seed = o->seeded ? o->seed : (uint64_t)time(NULL);
	memset(mem, 0, sizeof mem);
	for (unsigned m = 0; m < ROLES; m++)
		if (set_state(&mem[m], p->na, p->mask_a, p->shared, p->la, OWNER, p->zone_flags, seed + m)) {
			for (unsigned k = 0; k < m; k++)
				drop_state(&mem[k]);
			return audit_line("P3", false, p->what, "could not build the states");
		}
	unsigned valid = 0, below45 = 0, below10 = 0, voided = 0, attempts = 0, tail_runs = 0;
	double worst = 0, tail_ratio = 0, b_share = 2; /* the least share of class b's calls on its state */
	struct run_result tail_run = {0}; /* the run with the worst tail */
	char figs[256] = "";
	while (valid < o->timing_runs && attempts < o->timing_runs * 4) {
		struct run_result res;
		attempts++;
		if (dudect_run(p, mem, w, o->timing_samples, seed + 100 * attempts, &res)) {
			for (unsigned m = 0; m < ROLES; m++)
				drop_state(&mem[m]);
			return audit_line("P3", false, p->what, "could not rebuild the states");
		}
		/* The tail does not need the t-test's control: every run counts. */
		for (int c = 0; c < 2; c++)
			if (res.p50[c] > 0) {
				tail_runs++;
				if (res.p9999[c] / res.p50[c] > tail_ratio) {
					tail_ratio = res.p9999[c] / res.p50[c];
					tail_run = res;
				}
			}
		if (res.unmeasured) { /* no t: a run that cannot pass, never a void one */
			res.t = res.t_control = INFINITY;
			res.tm.t = INFINITY;
		} else if (res.t_control > 4.5) {
			voided++;
			if (o->verbose)
				audit_note("%s %s run %u void: control |t| = %.1f (%s: means %.3f, %.3f)", p->id,
				           w == TIME_ALLOC ? "alloc" : "free", attempts, res.t_control,
				           res.tmc.which < 0 ? "raw" : res.tmc.which < NCROPS ? "a crop" : "second order",
				           res.tmc.mean[0], res.tmc.mean[1]);
			continue;
		}
		valid++;
		if (res.b_other >= 0 && res.b_other < b_share)
			b_share = res.b_other;
		below45 += res.t < 4.5;
		below10 += res.t < 10;
		if (res.t > worst)
			worst = res.t;
		size_t len = strlen(figs);
		snprintf(figs + len, sizeof figs - len, "%s%.1f", len ? " " : "", res.t);
		if (o->verbose) {
			audit_note("%s %s run %u: |t| = %.2f (control %.2f), p50 %.0f/%.0f p99.99 %.0f/%.0f cycles",
			           p->id, w == TIME_ALLOC ? "alloc" : "free", attempts, res.t, res.t_control,
			           res.p50[0], res.p50[1], res.p9999[0], res.p9999[1]);
			const struct tmax *m = &res.tm;
			char test[48];
			if (m->which < 0)
				snprintf(test, sizeof test, "raw cycles");
			else if (m->which < NCROPS)
				snprintf(test, sizeof test, "crop below %.0f cycles", m->thr);
			else
				snprintf(test, sizeof test, "second order");
			audit_note("  largest |t| from the %s: mean %.3f (%s), %.3f (%s), difference %+.3f%s; "
			           "timer step %llu cycles",
			           test, m->mean[0], p->na, m->mean[1], p->nb, m->mean[1] - m->mean[0],
			           m->which == NCROPS ? " (squared cycles)" : " cycles", (unsigned long long)m->step);
		}
	}
	char what[96];
	snprintf(what, sizeof what, "%s %s %s", p->id, w == TIME_ALLOC ? "alloc" : "free", p->what);
	bool pass = valid >= o->timing_runs && below10 == valid && below45 >= (valid >= 5 ? 3 : valid);
	char held[96] = "";
	if (b_share <= 1) { /* the class must be what it names in (nearly) every call */
		pass &= b_share >= 0.9;
		snprintf(held, sizeof held, "; class b on a frame the other owner held last: >= %.1f %% (>= 90)",
		         100 * b_share);
	}
	int failed = audit_line("P3", pass, what, "max|t| per valid run: %s (%u void)%s", figs, voided, held);
	if (w == TIME_ALLOC) {
		snprintf(what, sizeof what, "%s alloc tail, %s / %s", p->id, p->na, p->nb);
		if (tail_runs) {
			failed += audit_line("P2", tail_ratio <= 2.0, what, "worst p99.99/p50 = %.2f <= 2", tail_ratio);
			/* What the machine did meanwhile: interrupts spread over the run
			 * land in the timed calls in proportion to the time they take.
			 * More such hits than samples beyond p99.99 means p99.99 is an
			 * interrupted call, whatever the allocator does. */
			if (tail_run.irqs >= 0)
				audit_note("%s tail, worst run: CPU %d took %.0f interrupts; the timed calls were "
				           "%.1f %% of the run, so ~%.0f fell inside them, against %.0f samples "
				           "beyond p99.99; fixed register-only work timed alike: p99.99/p50 = %.2f",
				           p->id, timing_cpu, tail_run.irqs, 100 * tail_run.timed_share,
				           tail_run.irqs * tail_run.timed_share, tail_run.beyond, tail_run.fixed_ratio);
		} else { /* nothing measured cannot pass */
			failed += audit_line("P2", false, what, "no measurement");
		}
	}
	for (unsigned m = 0; m < ROLES; m++)
		drop_state(&mem[m]);
	return failed;
}

/* ---- system calls ------------------------------------------------------------ */

/* In a child, after setup, allow no system call but exit: the alloc/free
 * loop must complete.  Returns 0 when it did.  With self_test, the loop
 * makes one system call (getppid) halfway: the filter must kill it, or the
 * check proves nothing. */
static int no_syscalls(bool self_test)
{
	struct state s;
	if (build_state(&s, "syscalls", ALL, false, L_SPREAD, 0, 7))
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		uint64_t pfn;
		/* Warm up: the thread's CPU slot is taken on the first call. */
		lab_alloc(s.z, OWNER, 0, LAB_ATOMIC, &pfn);
		lab_free(s.z, OWNER, pfn, 0);
		struct sock_filter filt[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		};
		struct sock_fprog prog = {.len = sizeof filt / sizeof filt[0], .filter = filt};
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(3);
		for (int i = 0; i < 200000; i++) {
			if (lab_alloc(s.z, OWNER, 0, LAB_ATOMIC, &pfn) != LAB_OK)
				syscall(__NR_exit_group, 2);
			if (self_test && i == 100000)
				syscall(__NR_getppid);
			lab_free(s.z, OWNER, pfn, 0);
		}
		syscall(__NR_exit_group, 0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	drop_state(&s);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 100 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int audit_timing(const struct audit_opts *o)
{
	int failed = 0;
	leaky = o->policy == POLICY_LEAKY;
	if (leaky)
		audit_note("policy leaky: a toy allocator with the classic timing leaks (scan, rejection "
		           "sampling, zeroing at allocation, buddy merges), not the library");
	pin_timing_cpu();
	if (timing_cpu >= 0)
		audit_note("dudect: %llu measurements per run, %u valid runs per class pair, pinned to CPU %d;",
		           (unsigned long long)o->timing_samples, o->timing_runs, timing_cpu);
	else
		audit_note("dudect: %llu measurements per run, %u valid runs per class pair; NOT pinned "
		           "(sched_setaffinity failed: the scheduler may move the runs between CPUs);",
		           (unsigned long long)o->timing_samples, o->timing_runs);
	if (o->timing_runs >= 5)
		audit_note("a run is void when its same-state control exceeds |t| 4.5; pass: all < 10, >= 3 < 4.5");
	else /* the test needs 5 runs: fewer pass only if every one is < 4.5 */
		audit_note("a run is void when its same-state control exceeds |t| 4.5; with fewer than 5 runs, "
		           "pass: every run < 4.5 (the full test needs --runs 5 or more)");
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		if (o->timing_class && o->timing_class != i + 1)
			continue;
		failed += run_pair(&pairs[i], TIME_ALLOC, o);
		failed += run_pair(&pairs[i], TIME_FREE, o);
	}
	if (leaky)
		return failed; /* the system-call check is about the library's paths */
	int sc = no_syscalls(false), self = no_syscalls(true);
	/* The self-test's child must die of SIGSYS (100 + 31). */
	if (sc == 0 && self == 100 + SIGSYS)
		failed += audit_line("P2", true, "no system call on the order-0 alloc/free path",
		                     "200000 pairs under a seccomp filter that kills on any (it killed "
		                     "the same loop with one getppid: signal %d)", self - 100);
	else
		failed += audit_line("P2", false, "no system call on the order-0 alloc/free path",
		                     "child ended with status %d, the self-test's (one getppid) with %d "
		                     "(>100: killed by signal; the self-test must die of SIGSYS, %d)",
		                     sc, self, 100 + SIGSYS);
	return failed;
}
