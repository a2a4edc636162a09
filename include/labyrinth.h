/*
 * labyrinth.h - public API of the labyrinth page-frame allocator.
 *
 * labyrinth hands out 4 KiB page frames (and naturally aligned blocks of
 * 2^order frames) to owners such as VMs or processes.  Placement is uniformly
 * random over the eligible free frames (ChaCha CSPRNG), the order-0 paths do
 * a fixed amount of work whatever the allocator state, every frame has one
 * owner at a time and is zeroed before it can reach another owner, and owners
 * marked exclusive get cache colours nobody else can use.
 *
 * The library never allocates memory: the caller gives it metadata memory
 * (lab_zone_meta_size() bytes) and a direct map of the frames.  It never
 * sleeps: a call that cannot be satisfied at once fails with an error code.
 *
 * Conventions: functions returning int return LAB_OK (0) or a negative
 * LAB_E* code; a call that fails with a bad-argument code has changed
 * nothing.  Results are written through out-parameters.  The void* forms
 * (lab_alloc_page, ...) sit on top and return NULL on any failure.
 *
 * This header includes only <stddef.h>, <stdint.h> and <stdbool.h>.
 */
#ifndef LABYRINTH_H
#define LABYRINTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(LAB_API)
#define LAB_API __attribute__((visibility("default")))
#elif !defined(LAB_API)
#define LAB_API
#endif

#define LAB_VERSION_MAJOR 0
#define LAB_VERSION_MINOR 1
#define LAB_VERSION_PATCH 0
#define LAB_VERSION_STRING "0.1.0"

/* A frame is 4 KiB; a block of order k is 2^k frames aligned on 2^k. */
#define LAB_FRAME_SHIFT 12
#define LAB_FRAME_SIZE (1u << LAB_FRAME_SHIFT)
#define LAB_MAX_ORDER 10     /* orders 0..LAB_MAX_ORDER are supported     */
#define LAB_MAX_COLOURS 64   /* nr_colours is a power of two, 1..64       */
#define LAB_MAX_OWNERS 4095  /* owner ids are 1..max_owners, 0 is "none"  */
#define LAB_MAX_CPUS 1024    /* per-CPU caches a zone can have            */

/* Opaque zone handle; it lives at the start of the caller's metadata. */
typedef struct lab_zone lab_zone_t;

/* An owner (domain) id: 1..max_owners.  0 never names an owner. */
typedef uint32_t lab_owner_t;

/*
 * Error codes.  Three kinds, never mixed:
 *  - no memory / over quota (LAB_ENOMEM, LAB_EQUOTA, LAB_EFRAG): retry later;
 *  - bad arguments (everything from LAB_EINVAL to LAB_EBUSY): the call was
 *    refused before anything it asked for changed.  (A call that had to
 *    enter the zone to find out may first have done its CPU's own
 *    housekeeping, as every call does: giving back the frames this CPU
 *    cached for a pool that died since its last call.);
 *  - corrupt metadata: never returned by alloc/free, which report it through
 *    lab_plat_panic(); lab_check() returns LAB_ECORRUPT.
 */
enum lab_error {
	LAB_OK = 0,
	LAB_ENOMEM = -1,     /* no eligible free frame (or only the atomic reserve left) */
	LAB_EQUOTA = -2,     /* the owner holds its quota                            */
	LAB_EFRAG = -3,      /* order > 0: no free block found in LAB_HIGH_PROBES probes */
	LAB_EINVAL = -4,     /* malformed argument: NULL, unknown flag, bad config   */
	LAB_ERANGE = -5,     /* pfn or address outside the zone                      */
	LAB_EALIGN = -6,     /* pfn or address not aligned to the order              */
	LAB_EORDER = -7,     /* order out of range, or not the order allocated       */
	LAB_EOWNER = -8,     /* the frame belongs to another owner                   */
	LAB_EFREE = -9,      /* the frame is not allocated (double free, never allocated) */
	LAB_EINTERIOR = -10, /* the pfn is inside a larger allocated block            */
	LAB_ENOOWNER = -11,  /* owner id not registered, out of range, or being removed */
	LAB_EEXIST = -12,    /* owner id already registered                          */
	LAB_EOVERLAP = -13,  /* colours overlap an exclusive owner, or partly overlap a pool */
	LAB_ESHARED = -14,   /* exclusive owner's colours overlap shared colours       */
	LAB_ENOTEXCL = -15,  /* LAB_EXCLUSIVE asked by an owner that is not exclusive  */
	LAB_ECOLOUR = -16,   /* no aligned block of this order of the owner's colours
	                        lies inside the zone                              */
	LAB_EAGAIN = -17,    /* more work remains: call again (teardown)               */
	LAB_EBUSY = -18,     /* in use: frames still cached or allocated, or a nested call
	                        could only proceed by waiting for the code it interrupted */
	LAB_EENTROPY = -19,  /* the entropy source failed or returned too little      */
	LAB_EGEOMETRY = -20, /* zone geometry invalid: zero, overflow, too big, misaligned */
	LAB_ENOSPC = -21,    /* metadata buffer too small                             */
	LAB_ECORRUPT = -22,  /* lab_check(): metadata inconsistent                    */
	LAB_ENOMAP = -23     /* the zone has no direct map for address-based calls    */
};

/* A short, fixed, English description of an error code ("unknown error" otherwise). */
LAB_API const char *lab_strerror(int err);

/* ---- allocation flags (lab_gfp_t-style, one bit each) ---------------------- */

/* Never sleeps (the core never does anyway) and may use the zone's atomic
 * reserve: for interrupt handlers.  Linux GFP_ATOMIC. */
#define LAB_ATOMIC 0x1u
/* Never sleeps and leaves the reserve alone.  Linux GFP_NOWAIT.  A call with
 * neither LAB_ATOMIC nor LAB_NOWAIT behaves as LAB_NOWAIT in the core; the
 * hosted layer's lab_hosted_alloc_wait() adds the blocking GFP_KERNEL kind. */
#define LAB_NOWAIT 0x2u
/* The frame(s) are returned zeroed.  Frames of shared pools are always zero
 * already (scrubbed on free); exclusive owners' frames are zeroed on demand.
 * Refused with LAB_ENOMAP on a zone without a direct map. */
#define LAB_ZERO 0x4u
/* Only from the owner's private colours: refused (LAB_ENOTEXCL) when the
 * owner is not exclusive, so the caller can rely on cache isolation. */
#define LAB_EXCLUSIVE 0x8u
#define LAB_ALLOC_FLAGS_ALL 0xfu

/* ---- zones ------------------------------------------------------------------ */

/* Zone flags (lab_zone_cfg.flags). */
#define LAB_ZONE_ZEROED 0x1u        /* frames are zero at init (e.g. fresh mmap)  */
#define LAB_ZONE_DEFERRED_SCRUB 0x2u /* scrub in lab_scrub(), not in free          */
#define LAB_ZONE_NO_SCRUB 0x4u      /* never scrub: UNSAFE, benchmarks of one owner */
#define LAB_ZONE_FLAGS_ALL 0x7u

struct lab_zone_cfg {
	uint64_t base_pfn;    /* first frame number; base_pfn + nr_frames <= 2^52        */
	uint64_t nr_frames;   /* 1 .. 2^32 frames (16 TiB): frame numbers are 32-bit, and
	                         in a zone of 2^32 the last frame is reserved at init;
	                         2^32 - 2 at most with nr_colours 1                    */
	void *dmap_base;      /* virtual address of base_pfn in the direct map; required
	                         unless LAB_ZONE_NO_SCRUB                                   */
	uint32_t nr_colours;  /* cache colours, power of two 1..64 (colour = pfn mod it)   */
	uint32_t nr_cpus;     /* per-CPU caches, 1..LAB_MAX_CPUS (CPU ids above use a slow
	                         shared path)                                               */
	uint32_t max_owners;  /* owner ids 1..max_owners, at most LAB_MAX_OWNERS           */
	uint32_t reserve_permille; /* atomic reserve, per colour pool, in 1/1000 of its frames */
	uint32_t flags;       /* LAB_ZONE_*                                              */
	const void *seed;     /* optional seed (>= 32 bytes); NULL: lab_plat_entropy()   */
	size_t seed_len;
};

/* Fill *cfg with defaults: 32 colours, 1 CPU, 64 owners, 1/64 reserve (15 permille), no flags. */
LAB_API void lab_zone_cfg_default(struct lab_zone_cfg *cfg, uint64_t base_pfn, uint64_t nr_frames,
                                  void *dmap_base);

/* Bytes of metadata lab_zone_init() needs for cfg, 0 if cfg is invalid.
 * 8 bytes per frame plus a fixed part that grows with nr_cpus, nr_colours and
 * max_owners.  Context: any.  Cost: O(1). */
LAB_API size_t lab_zone_meta_size(const struct lab_zone_cfg *cfg);

/* What lab_zone_init() would say of cfg alone, before any memory: LAB_OK,
 * or the LAB_EINVAL, LAB_EGEOMETRY or LAB_EENTROPY it would refuse it with
 * (a seed shorter than 32 bytes; the entropy source itself is not asked).
 * Context: any.  Cost: O(1). */
LAB_API int lab_zone_cfg_check(const struct lab_zone_cfg *cfg);

/* Build a zone in meta (64-byte aligned, meta_size >= lab_zone_meta_size()).
 * All frames start unassigned: they become allocatable when an owner whose
 * colours cover them is added.  Unless LAB_ZONE_ZEROED (or NO_SCRUB), frames
 * start dirty and only enter pools once lab_scrub() has zeroed them.
 * Returns LAB_EGEOMETRY, LAB_EINVAL, LAB_ENOSPC or LAB_EENTROPY without writing
 * anything when it refuses.  Context: may take O(nr_frames); not in interrupt
 * context.  Cost: O(nr_frames). */
LAB_API int lab_zone_init(lab_zone_t **zone, void *meta, size_t meta_size,
                          const struct lab_zone_cfg *cfg);

/* Mark [pfn, pfn + nr) unusable (firmware, the kernel image, bad RAM).  The
 * frames must be unassigned (else LAB_EBUSY) and inside the zone, nr >= 1
 * (else LAB_ERANGE); LAB_EBUSY also for a call that interrupted its own CPU
 * inside the zone.  Context: configuration time.  Cost: O(nr). */
LAB_API int lab_zone_reserve_range(lab_zone_t *zone, uint64_t pfn, uint64_t nr);

/* Replace the CSPRNG keys with ones derived from seed (>= 32 bytes, else
 * LAB_EENTROPY), or from lab_plat_entropy() when seed is NULL.  For tests and periodic rekeying.
 * Context: no CPU may be inside the zone.  Cost: O(nr_cpus). */
LAB_API int lab_reseed(lab_zone_t *zone, const void *seed, size_t seed_len);

/* ---- owners ------------------------------------------------------------------- */

#define LAB_OWNER_EXCLUSIVE 0x1u

struct lab_owner_cfg {
	uint64_t colours; /* bit c = colour c; non-zero, below nr_colours           */
	uint64_t quota;   /* most frames held at once; 0 = no limit                  */
	uint32_t flags;   /* LAB_OWNER_EXCLUSIVE                                    */
};

/* Register owner id.  Owners with identical colour sets share one pool of
 * frames; a colour set that partly overlaps an existing pool is refused
 * (LAB_EOVERLAP), as is an exclusive owner whose colours any other owner uses
 * (LAB_EOVERLAP with an exclusive owner, LAB_ESHARED with shared owners), or a
 * shared owner on an exclusive owner's colours (LAB_EOVERLAP).  Also
 * LAB_EINVAL (NULL zone or cfg, colours empty or beyond nr_colours, unknown
 * flags), LAB_ENOOWNER (id 0 or above max_owners), LAB_EEXIST, and LAB_EBUSY while the
 * colours belong to a pool whose removal has not finished.
 * Context: not in interrupt context.  Cost: O(frames of the new colours) when
 * a new pool is created (its free frames are shuffled in), else O(1). */
LAB_API int lab_owner_add(lab_zone_t *zone, lab_owner_t id, const struct lab_owner_cfg *cfg);

/* Remove owner id and reclaim its frames, doing at most about `budget` frames
 * of work per call: frames it holds are taken back and zeroed; when it was the
 * last owner of its pool, the pool's frames are zeroed and return to the
 * unassigned colours.  New calls for the owner are refused from the first
 * call on: allocations and frees get LAB_ENOOWNER, while lab_owner_stats and
 * lab_frame_owner still report the owner and what it holds until the
 * removal has reclaimed it.  Returns LAB_EAGAIN while work remains (call
 * again, e.g. from a work queue), including while calls of the owner begun
 * before the removal are still in flight, LAB_OK when done; LAB_ENOOWNER, LAB_EINVAL
 * (budget 0), or LAB_EBUSY when called nested, or when the platform could
 * not make every CPU run a barrier (lab_plat_sync_cpus).  Other CPUs release cached frames at their
 * next call into the zone or at lab_cpu_drain().
 * Context: not in interrupt context.  Cost: O(budget) per call; the whole
 * removal walks only the frames of the owner's colours (a few passes). */
LAB_API int lab_owner_remove(lab_zone_t *zone, lab_owner_t id, size_t budget);

/* ---- allocation -------------------------------------------------------------- */

/* Allocate a block of 2^order frames for owner; on success write its first
 * pfn to *pfn.  Order 0 is uniform over the owner's pool's free frames not
 * cached by other CPUs; order > 0 probes random aligned blocks of the owner's
 * colours (uniform over the free ones) up to LAB_HIGH_PROBES times; when
 * that fails, or the pool's array alone is too small, it returns the frames
 * this CPU caches for order 0 to the pool and probes once more (frames other
 * CPUs cache count only after lab_cpu_drain() on those CPUs).
 * Errors: LAB_ENOOWNER, LAB_EORDER, LAB_EINVAL (flags, NULL pfn),
 * LAB_ENOTEXCL, LAB_ECOLOUR, LAB_EQUOTA, LAB_ENOMEM, LAB_EFRAG, and LAB_EBUSY
 * only on hosts whose lab_plat_irq_save() cannot mask interrupts (POSIX
 * signals): a call that interrupted its own CPU inside the zone (or, beyond
 * nr_cpus, its own thread) fails rather than wait for the code it
 * interrupted.
 * Does not check: that the caller really is the owner.
 * Context: any, including interrupt handlers (with LAB_ATOMIC); never sleeps.
 * Cost: order 0: O(1), fixed work per call plus, in a run of allocations,
 * a transfer of a few frames every few calls (4 and 4 in this version; the
 * number is internal), and in a run of frees one of LAB_PCP_BATCH frames
 * every LAB_PCP_BATCH calls; order k: O(2^k * LAB_HIGH_PROBES) plus one
 * return of at most 2 * LAB_PCP_BATCH cached frames. */
LAB_API int lab_alloc(lab_zone_t *zone, lab_owner_t owner, unsigned order, unsigned flags,
                      uint64_t *pfn);

/* Return the block at pfn, of the given order, held by owner.  Refused with no
 * change: LAB_EINVAL (bad zone), LAB_ERANGE (pfn outside the zone), LAB_EALIGN, LAB_EORDER (not the
 * allocated order; a block that would run past the zone's end is refused
 * for what its first frame is), LAB_EOWNER (another owner's), LAB_EFREE (not allocated:
 * double free or never allocated), LAB_EINTERIOR (inside a larger block),
 * LAB_ENOOWNER (also when the owner was removed and added again since the
 * block was allocated: it is no longer the caller's), and LAB_EBUSY, as for
 * lab_alloc, when the call interrupted its own CPU (or thread) inside the
 * zone and could only free by waiting for that code: the block is still
 * the caller's.  The frames are zeroed before another owner can get them.
 * Context: any; never sleeps.  Cost: O(2^order) plus the scrub (4 KiB zeroing
 * per frame when the pool is shared and scrub is synchronous). */
LAB_API int lab_free(lab_zone_t *zone, lab_owner_t owner, uint64_t pfn, unsigned order);

/* lab_free, for the owner's incarnation (lab_owner_incarnation) only: a
 * free kept to retry later (the Linux layer's parked frees) is refused with
 * LAB_ENOOWNER, changing nothing, once the owner was removed, even if the
 * id was added again and the new owner holds the same block.  A check of
 * the incarnation before a plain lab_free would leave a gap. */
LAB_API int lab_free_of(lab_zone_t *zone, lab_owner_t owner, uint32_t incarnation, uint64_t pfn,
                        unsigned order);

/* Return n order-0 frames held by owner, pfns[0] first: the same as n calls
 * of lab_free(zone, owner, pfns[i], 0), except that the records of the frames
 * a few places ahead in the list are prefetched.  A free must read the record
 * of the frame it is given, and only the caller knows which comes next: in a
 * large zone that read is a cache miss each call would otherwise wait for.
 * Stops at the first frame lab_free refuses and returns its code, with the
 * frames before it freed and that one and the rest untouched; *done (if not
 * NULL) is set to how many were freed.  LAB_EINVAL for a NULL zone, or NULL
 * pfns with n > 0.  Context and cost: as n calls of lab_free. */
LAB_API int lab_free_bulk(lab_zone_t *zone, lab_owner_t owner, const uint64_t *pfns, size_t n,
                          size_t *done);

/* Convenience forms over the direct map: the frame's address, NULL on failure. */
LAB_API void *lab_alloc_page(lab_zone_t *zone, lab_owner_t owner, unsigned flags);
LAB_API void *lab_alloc_pages(lab_zone_t *zone, lab_owner_t owner, unsigned order, unsigned flags);
LAB_API int lab_free_page(lab_zone_t *zone, lab_owner_t owner, void *addr);
LAB_API int lab_free_pages(lab_zone_t *zone, lab_owner_t owner, void *addr, unsigned order);

/* Direct-map translation.  lab_pfn_to_virt returns NULL outside the zone. */
LAB_API void *lab_pfn_to_virt(const lab_zone_t *zone, uint64_t pfn);
LAB_API int lab_virt_to_pfn(const lab_zone_t *zone, const void *addr, uint64_t *pfn);

/* Owner of the block containing pfn (0 if free or not allocated); order of its
 * head in *order when non-NULL (0 when not allocated).  For audits and
 * debuggers.  Context: any. */
LAB_API int lab_frame_owner(const lab_zone_t *zone, uint64_t pfn, lab_owner_t *owner,
                            unsigned *order);

/* ---- scrubbing and per-CPU caches ------------------------------------------- */

/* Zero up to `budget` dirty frames (deferred frees, frames of a zone that did
 * not start zeroed) and make them allocatable; *done (optional) gets the count.
 * Returns LAB_OK when nothing dirty remains, LAB_EAGAIN otherwise.  A call
 * that interrupted its own CPU inside the zone (hosts whose
 * lab_plat_irq_save() cannot mask interrupts) zeroes nothing: it returns
 * LAB_EAGAIN if anything is dirty, for the caller to try again later.
 * Context: any (an idle loop, a work queue); never sleeps. Cost: O(budget). */
LAB_API int lab_scrub(lab_zone_t *zone, size_t budget, size_t *done);

/* Give this CPU's cached frames back to their pools.  Context: on the CPU
 * whose cache it drains (idle loop, CPU offline, thread exit). Cost: O(cache). */
LAB_API int lab_cpu_drain(lab_zone_t *zone);

/* ---- statistics and checks -------------------------------------------------- */

struct lab_stats {
	uint64_t nr_frames;      /* frames in the zone                                  */
	uint64_t nr_free;        /* free in pools (including per-CPU caches)           */
	uint64_t nr_cached;      /* of which cached on CPUs                            */
	uint64_t nr_allocated;   /* held by owners                                     */
	uint64_t nr_dirty;       /* waiting for lab_scrub()                            */
	uint64_t nr_unassigned;  /* free, on colours no owner has                      */
	uint64_t nr_reserved;    /* unusable (lab_zone_reserve_range)                  */
	uint64_t free_blocks[LAB_MAX_ORDER + 1]; /* fully free aligned blocks per order   */
	uint64_t free_by_colour[LAB_MAX_COLOURS]; /* free frames per colour             */
	uint64_t reserve_frames; /* sum of the pools' atomic reserves                   */
	uint64_t reserve_allocs; /* LAB_ATOMIC allocations that dipped into the reserve */
	uint64_t allocs, frees;  /* successful calls                                   */
	uint64_t fail_nomem, fail_quota, fail_frag, refused; /* failures, bad calls   */
	uint64_t scrubbed;       /* frames zeroed                                      */
	uint64_t nested_calls;   /* calls that interrupted their CPU inside the zone   */
	uint64_t slotless_calls; /* calls from CPU ids >= nr_cpus: no per-CPU cache,
	                            the pool lock every call (size nr_cpus for them) */
	uint32_t nr_pools, nr_owners, nr_colours, nr_cpus;
};

/* Counters and a walk of the frame table.  Context: any, not on hot paths.
 * Cost: O(nr_frames). Counts are exact only when no other CPU is working. */
LAB_API int lab_stats(const lab_zone_t *zone, struct lab_stats *st);

struct lab_owner_stats {
	uint64_t held;      /* frames held now                               */
	uint64_t quota;     /* 0 = none                                      */
	uint64_t colours;   /* colour mask                                   */
	uint64_t pool_free; /* free frames in its pool (G + CPU caches)      */
	bool exclusive;
};
LAB_API int lab_owner_stats(const lab_zone_t *zone, lab_owner_t owner, struct lab_owner_stats *st);

/* How many times id has been added to the zone (0: never, or a bad zone or
 * id).  A caller that holds on to a refused free to retry it later (the
 * Linux layer's parked frees) compares it before the retry: once the owner
 * was removed, its blocks were reclaimed, and a block with the same number
 * may be a re-added owner's.  Context: any.  Cost: O(1). */
LAB_API uint32_t lab_owner_incarnation(const lab_zone_t *zone, lab_owner_t owner);

/* Walk every invariant: each frame record is well formed and its keyed check
 * value matches, every free frame is in exactly one free structure (pool array
 * or CPU cache), counts add up, each allocated block's frames are contiguous,
 * owned by a live owner and of its colours, exclusive pools are disjoint from
 * everything else.  Returns LAB_OK or LAB_ECORRUPT (details via lab_plat_log).
 * Context: no CPU may be inside the zone.  Cost: O(nr_frames + nr_cpus). */
LAB_API int lab_check(lab_zone_t *zone);

/* Bytes of metadata for a zone configuration in two parts: per frame (8),
 * and the rest, lab_zone_meta_size() - 8 x nr_frames: zone, owner, pool and
 * per-CPU structures, plus the frame table's padding to whole blocks of
 * record lines, which depends on nr_frames too (0 for 1 GiB of 4 KiB
 * frames with 32 colours). */
LAB_API void lab_meta_breakdown(const struct lab_zone_cfg *cfg, size_t *per_frame, size_t *fixed);

#define LAB_PCP_BATCH 32     /* frames moved per per-CPU cache refill/spill   */
#define LAB_HIGH_PROBES 64   /* random probes for an order > 0 block          */

#ifdef __cplusplus
}
#endif
#endif /* LABYRINTH_H */
