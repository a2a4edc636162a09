/*
 * labyrinth/hosted.h - the POSIX host: zones over mmap'd memory, the cache
 * geometry of this machine, and the blocking (GFP_KERNEL-like) allocation
 * that the freestanding core deliberately does not have.
 */
#ifndef LABYRINTH_HOSTED_H
#define LABYRINTH_HOSTED_H

#include "../labyrinth.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One cache level as the host reports it. */
struct lab_cache_level {
	unsigned level;          /* 1, 2, 3                                  */
	uint64_t size;           /* bytes, 0 if unknown                       */
	unsigned ways;           /* associativity, 0 if unknown or fully assoc */
	unsigned line;           /* line size in bytes                        */
	unsigned sets;           /* number of sets, 0 if unknown              */
	bool shared;             /* shared by several CPUs (likely sliced)    */
};

struct lab_geometry {
	struct lab_cache_level l1d, l2, l3;
	const char *source;      /* "sysfs", "sysconf", "cpuid", or "default" */
	unsigned colours;        /* colour count used: per-slice L2 colours, power of two, 1..64 */
	unsigned colours_l3;     /* what L3 size / (ways * 4 KiB) would give (sliced: not used) */
	unsigned nr_cpus;        /* online CPUs                                */
};

/* Read the cache geometry: sysfs, then sysconf, then CPUID.  Never fails:
 * falls back to 32 colours with source "default". */
LAB_API void lab_hosted_geometry(struct lab_geometry *g);

/* A hosted zone: arena + metadata, both mmap'd.  The arena is faulted in
 * at creation (2 MiB pages where the kernel gives them), as a kernel's
 * frames are present: no page fault, and no host zeroing, lands inside an
 * allocator call later.  That costs creation time (about 0.2-2 s per GiB
 * here) and makes the whole arena resident; no_touch skips it. */
struct lab_hosted_opts {
	uint64_t bytes;          /* zone size; rounded down to whole frames      */
	unsigned colours;        /* 0: from lab_hosted_geometry() (reinit: as before) */
	unsigned nr_cpus;        /* 0: lab_hosted_default_cpus() (see below)      */
	unsigned max_owners;     /* 0: 64                                         */
	unsigned reserve_permille; /* 0: 15; LAB_HOSTED_NO_RESERVE for none       */
	uint32_t zone_flags;     /* LAB_ZONE_DEFERRED_SCRUB, LAB_ZONE_NO_SCRUB    */
	bool no_touch;           /* map the arena MAP_NORESERVE and never touch it
	                            (only with LAB_ZONE_NO_SCRUB): huge bench zones */
	const void *seed;        /* NULL: getrandom                               */
	size_t seed_len;
};
#define LAB_HOSTED_NO_RESERVE 0xffffffffu

struct lab_hosted_zone {
	lab_zone_t *zone;
	void *arena;             /* the frames (direct map)                       */
	void *meta;
	size_t arena_bytes, meta_bytes;
	uint64_t nr_frames;
	uint64_t base_pfn;       /* real PFN of the first frame when known, else 0 */
	bool real_pfns;          /* base_pfn from /proc/self/pagemap              */
	bool hugepages;          /* every 2 MiB of the arena is one aligned 2 MiB page
	                            (checked page by page): colours exact          */
	unsigned colours;
	double init_seconds;     /* time spent in lab_zone_init                  */
	char why[160];           /* when real PFNs or hugepages are not in use    */
};

/* CPU slots of a hosted zone when lab_hosted_opts.nr_cpus is 0: twice the
 * online CPUs, at least 4, at most LAB_MAX_CPUS.  In the hosted layer a "CPU"
 * is a thread slot: a thread takes one at its first call into labyrinth and
 * gives it back when it exits.  Threads beyond the zone's nr_cpus still work,
 * through the shared slot-less path (no per-CPU cache, a lock per call):
 * correct, but that is the path interrupts take, not the fast one.  A signal
 * handler on such a thread that calls into the zone while the thread is
 * inside it gets LAB_EBUSY where it needs a lock the interrupted call holds
 * (a thread with a slot: the same, as a nested call).  A pool of more
 * threads than this needs nr_cpus set. */
LAB_API unsigned lab_hosted_default_cpus(const struct lab_geometry *g);

/* Create a zone over fresh anonymous memory.  Returns LAB_OK, LAB_EINVAL
 * (o NULL, bytes below one frame, no_touch without LAB_ZONE_NO_SCRUB), the
 * code lab_zone_init gives the configuration (checked before any memory is
 * mapped: lab_zone_cfg_check), or LAB_ENOSPC when the memory cannot be
 * mapped. */
LAB_API int lab_hosted_zone_create(const struct lab_hosted_opts *o, struct lab_hosted_zone *hz);
LAB_API void lab_hosted_zone_destroy(struct lab_hosted_zone *hz);

/* Build hz's zone again in place, over the same arena and metadata, with the
 * configuration o gives (as lab_hosted_zone_create would): every frame
 * unassigned, no owners, new generator keys.  o must describe the same size
 * and colours as at creation, and no more CPUs or owners than its metadata
 * holds.  Unless o->no_touch, the new zone is LAB_ZONE_ZEROED as at
 * creation: the caller vouches that no frame holds data (scrub on free does
 * that; an exclusive owner's frames are not scrubbed when freed).  No thread
 * may be inside the zone.  Returns LAB_OK; or, with the old zone untouched,
 * LAB_EINVAL (another size or colours), the code lab_zone_init gives the
 * configuration, or LAB_EGEOMETRY (more CPUs or owners than the metadata
 * holds).  For tests and tools that rebuild a state many times. */
LAB_API int lab_hosted_zone_reinit(struct lab_hosted_zone *hz, const struct lab_hosted_opts *o);

/* Zones whose per-CPU caches an exiting thread drains (lab_cpu_drain) before
 * its CPU slot is reused.  lab_hosted_zone_create/destroy do this; call it for
 * zones you build yourself with lab_zone_init. */
LAB_API void lab_hosted_track(lab_zone_t *zone, bool on);

/* Physical frame number behind a virtual address, from /proc/self/pagemap.
 * Returns 0 on success, -1 when not permitted (needs CAP_SYS_ADMIN) or absent. */
LAB_API int lab_hosted_pfn_of(const void *addr, uint64_t *pfn);

/* GFP_KERNEL: like lab_alloc, but when the zone has no frame for the owner
 * (LAB_ENOMEM, LAB_EQUOTA, LAB_EFRAG) sleep until another thread frees
 * through lab_hosted_free, or until timeout_ms passes (then the last error).
 * Before each sleep, unless the owner is at its quota, it scrubs up to 64
 * dirty frames (a deferred-scrub zone's frees, a zone that did not start
 * zeroed) and tries once more if it scrubbed any.  A frame freed before
 * anyone slept stays in its thread's cache until that thread calls into the
 * zone again, exits, or runs lab_cpu_drain.  Context: threads only, never
 * from a signal handler. */
LAB_API int lab_hosted_alloc_wait(lab_zone_t *zone, lab_owner_t owner, unsigned order,
                                  unsigned flags, unsigned timeout_ms, uint64_t *pfn);
/* lab_free, then, while lab_hosted_alloc_wait sleepers exist, give this
 * thread's cached frames back (lab_cpu_drain: out of a sleeper's reach) and
 * wake them. */
LAB_API int lab_hosted_free(lab_zone_t *zone, lab_owner_t owner, uint64_t pfn, unsigned order);

/* Test hooks: make lab_plat_entropy fail (1), return zeroes (2), or work (0). */
LAB_API void lab_hosted_entropy_fault(int mode);
/* Make lab_plat_panic longjmp-free but not abort: the message is printed and
 * the process exits with status 134 (like abort, without a core dump). */
LAB_API void lab_hosted_panic_exit(bool on);

#ifdef __cplusplus
}
#endif
#endif
