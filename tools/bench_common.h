/*
 * bench_common.h - shared parts of `labyrinth bench` (bench.c drives and
 * reports, bench_cands.c holds the candidates, the thread pool and the
 * timers, bench_plot.c draws the SVG).
 */
#ifndef LAB_BENCH_COMMON_H
#define LAB_BENCH_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"

#define BENCH_MAXT 64          /* worker threads (one per allowed CPU)        */
#define BENCH_BATCH 65536u     /* frames a batch run holds at once            */
#define BENCH_PERMS 4          /* free orders a thread rotates through        */
#define BENCH_RING 256         /* cross-CPU ring slots                        */
#define BENCH_NORD 4           /* orders measured                             */
#define BENCH_ZONE (1ull << 30) /* default zone: 1 GiB = 262,144 frames       */

extern const unsigned bench_orders[BENCH_NORD]; /* 0, 3, 9, 10 */

/* ---- time ------------------------------------------------------------------- */
uint64_t bench_tsc(void);        /* plain TSC read (deadlines)                 */
uint64_t bench_tsc_ser(void);    /* lfence; rdtsc; lfence                      */
double bench_tsc_calibrate(double seconds); /* ticks per ns, against CLOCK_MONOTONIC */
extern double bench_tpns;        /* ticks per ns, set by bench_tsc_calibrate   */

/* ---- one thread's result of one run ------------------------------------------- */
struct bres {
	uint64_t pairs;        /* completed alloc+free pairs                    */
	uint64_t fails;        /* allocations that failed                       */
	uint64_t cycles;       /* TSC ticks the thread spent in the timed loop  */
	uint64_t idle_cycles;  /* of which in the idle hook (lab_scrub)         */
	int err;               /* last allocation error (0, LAB_E*, -100 NULL)  */
};

/* Per-worker context, persistent across runs. */
struct tctx {
	int tid, nthreads;
	unsigned order;
	uint64_t dur;          /* run length in TSC ticks                       */
	unsigned min_batches;  /* batch: full batches before the deadline counts */
	uint64_t rng;          /* wyrand state                                  */
	uint64_t *held;        /* BENCH_BATCH handles                           */
	uint64_t *list;        /* BENCH_BATCH: a batch in free order (bulk free) */
	uint32_t *perm[BENCH_PERMS];
	unsigned perm_i;
	unsigned toggle;       /* alternating owners                            */
	uint64_t frees;        /* idle hook counter                             */
	uint64_t idle_cycles;
	/* latency */
	uint32_t *lat_a, *lat_f; /* samples (TSC ticks)                         */
	size_t lat_cap, na, nf;
	unsigned lat_hold;     /* frames held by the steady pattern             */
	uint64_t lat_steps;    /* steady steps                                  */
	unsigned lat_cycles;   /* batch-pattern cycles                          */
	unsigned lat_batch_n;  /* allocations per batch-pattern cycle (<= BENCH_BATCH) */
	/* shared with the other threads of the run */
	_Atomic int *bar;
	struct bench_ring *ring;
	char pad[64];
};

struct bench_ring {
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) _Atomic uint64_t head;
	_Alignas(64) _Atomic int done;
	_Alignas(64) uint64_t slot[BENCH_RING];
};

struct bench_floor;

/* A candidate: driven by identical code (a macro instantiates the same
 * drivers over each family's inline alloc/free), so ratios are fair. */
struct cand {
	const char *name;      /* table name                                     */
	const char *kind;      /* "labyrinth", "general-purpose", "floor"        */
	const char *legend;    /* what a pair does                               */
	const char *skip;      /* non-NULL: not run, and why                     */
	char why[320];
	bool scrubs;           /* this mode zeroes frames (excluded from the
	                          no-scrub latency target)                         */
	bool no_cross;         /* cannot take frees from another CPU             */
	const char *no_cross_why; /* printed in the cross-CPU table instead      */
	bool pcpu_bags;        /* floor_setup: one bag per worker                 */
	bool pcpu_table;       /* ... over a random half each, with an owner table */
	int (*setup)(struct cand *c);       /* 0, or sets skip                   */
	void (*teardown)(struct cand *c);
	int (*check)(struct cand *c);       /* lab_check (LAB_OK for others)     */
	void (*drain)(struct cand *c, struct tctx *t); /* on each worker         */
	void (*immediate)(struct cand *, struct tctx *, struct bres *);
	void (*batch)(struct cand *, struct tctx *, struct bres *);
	void (*produce)(struct cand *, struct tctx *, struct bres *);
	void (*consume)(struct cand *, struct tctx *, struct bres *);
	void (*lat_steady)(struct cand *, struct tctx *, struct bres *);
	void (*lat_batch)(struct cand *, struct tctx *, struct bres *);
	/* labyrinth */
	struct lab_hosted_zone hz;
	bool hz_ok;
	uint64_t zone_bytes;
	uint32_t zone_flags;
	bool no_touch, exclusive, half_colours; /* the hosted layer faults arenas in */
	bool owner_per_cpu;    /* owners 1..nr_owners, exclusive, worker t uses
	                          owner 1 + t mod nr_owners                       */
	unsigned nr_owners;
	unsigned aflags;       /* LAB_NOWAIT / LAB_ATOMIC / | LAB_EXCLUSIVE      */
	bool bulk_free;        /* one owner: batch frees through lab_free_bulk   */
	lab_owner_t owner;     /* single-owner families                          */
	uint64_t quota2;       /* scaling zones: owner 2's quota                 */
	unsigned scrub_every;  /* deferred: lab_scrub(budget) every N frees      */
	double init_s, owner_s; /* zone init, lab_owner_add                      */
	/* general-purpose */
	void *dl;
	const char *lib;
	/* floors */
	struct bench_floor *fl;
	uint64_t floor_frames;
	/* checks */
	unsigned checks, check_failures;
};

/* ---- candidates (bench_cands.c) ------------------------------------------------ */
/* The main candidate list (labyrinth modes, general-purpose, floors). */
int bench_candidates(struct cand **out);
/* Zone-scaling candidates: labyrinth (owner 1 shared, owner 2 shared with a
 * quota, LAB_ZONE_NO_SCRUB, arena never touched) and the two spinlock
 * floors, over `bytes`. */
void bench_scale_cands(struct cand *lab, struct cand *lifo, struct cand *bag, uint64_t bytes);
/* Preload the general-purpose libraries (before any thread exists). */
void bench_gp_preload(void);
/* After bench_gp_preload: print each general-purpose allocator that could not
 * be loaded to f; returns how many. */
int bench_gp_report_missing(FILE *f);

/* ---- thread pool ------------------------------------------------------------------ */
int bench_pool_start(unsigned max_threads, int *cpus_out);
void bench_pool_stop(void);
unsigned bench_pool_size(void);
struct tctx *bench_tctx(int tid);
/* Run fn(arg, tid) on workers 0..n-1 (pinned to CPUs), wait for all. */
void bench_pool_run(unsigned n, void (*fn)(void *arg, int tid), void *arg);
void bench_lat_reserve(size_t samples);

/* One timed run of cand c: kind 0 immediate, 1 batch, 2 cross (2 threads),
 * 3 steady latency, 4 batch latency. Fills res[0..threads-1]. */
enum { RUN_IMM, RUN_BATCH, RUN_CROSS, RUN_LAT, RUN_LATB };
void bench_run(struct cand *c, int kind, unsigned threads, unsigned order, double seconds,
               unsigned min_batches, struct bres *res);
/* Drain every worker's per-CPU cache of c (labyrinth) and run its check:
 * 0, a LAB_E* code from lab_check, or BENCH_EFREE when a lab_free during
 * the runs refused a block the zone had handed out. */
#define BENCH_EFREE (-1000)
int bench_check(struct cand *c);

/* ---- micro-floors ---------------------------------------------------------------- */
enum { MF_TIMER, MF_TIMER_RES, MF_MEMSET_HOT, MF_MEMSET_COLD, MF_NT_COLD, MF_CAS, MF_CAS_L3, MF_PINGPONG, MF_SPIN, MF_CHACHA,
       MF_LOAD_1M, MF_LOAD_64M, MF_N };
extern const char *const bench_mf_name[MF_N];
int bench_micro_setup(size_t bytes);
void bench_micro_teardown(void);
/* ns per operation (MF_TIMER: p50 of an empty serialized TSC pair, ns). */
double bench_micro(int which, double seconds, double *p99_out);
/* The cross-CPU ring alone: a candidate whose alloc and free do nothing. */
struct cand *bench_ring_cand(void);

/* Zone scaling: failing-allocation timings on worker 0.  For the quota case
 * owner 2 allocates to its quota; for the full case owner 1 fills the zone.
 * Return medians and maxima (TSC ticks) of `samples` failing calls. */
struct fail_res {
	double q_med, q_max, f_med, f_max; /* ticks                       */
	double q_mean, f_mean;              /* mean of the samples <= p99  */
	int q_err, f_err;                   /* the error the calls returned */
	uint64_t q_held, f_held;            /* frames held when failing     */
};
void bench_fail(struct cand *lab, size_t samples, struct fail_res *fr);

/* ---- percentiles ------------------------------------------------------------------ */
void bench_sort_u32(uint32_t *v, size_t n);
double bench_pct(const uint32_t *sorted, size_t n, double p);
/* Mean of the sorted samples at or below the 99th percentile. */
double bench_tmean(const uint32_t *sorted, size_t n);

/* ---- plot (bench_plot.c) ------------------------------------------------------------ */
struct plot_row {
	const char *name;
	double imm, imm_lo, imm_hi, bat, bat_lo, bat_hi; /* ns/pair, NaN if none */
	double mps[BENCH_MAXT + 1];                      /* Mpairs/s by threads (immediate) */
	double la[5], lf[5];                             /* p50 p99 p99.9 p99.99 max, ns */
};
int bench_plot_svg(FILE *f, const struct plot_row *rows, int n, unsigned maxt, const char *title,
                   double timer_ns);

#endif
