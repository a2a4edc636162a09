/*
 * labyrinth/linux.h - the page allocator names Linux kernel code already
 * writes (alloc_page, __free_pages, page_address, GFP_ATOMIC, ...) over
 * labyrinth zones.
 *
 *     struct page *buffer_page; void *buffer;
 *     buffer_page = alloc_page(GFP_ATOMIC);      (interrupt context)
 *     if (!buffer_page) goto drop_packet;
 *     buffer = page_address(buffer_page);
 *
 * Model.
 *  - struct page is an incomplete type: a `struct page *` IS the frame's
 *    direct-map address, so page_address() is a cast and virt_to_page() the
 *    reverse (rounded down to the frame, as free_pages() rounds its address
 *    down, like Linux's).  It must never be dereferenced;
 *    there is no per-page metadata beyond labyrinth's 8 bytes.  The direct
 *    maps of the zones must be 4 KiB aligned.
 *  - Allocations go to the embedder's zone list (lab_linux_set_zones):
 *    zones[0] first, then the others, like Linux's zonelist fallback.  With
 *    more than one zone, GFP_ATOMIC first tries every zone without touching a
 *    reserve and only then dips into one, as Linux does with its watermarks.
 *    Frees, page_to_pfn and virt_to_page find the zone holding the address.
 *  - Every call is made for the owner that the embedder's callback names
 *    (lab_linux_set_owner: the current domain, VM or process), and a free is
 *    refused unless that owner holds the block: labyrinth's single-owner rule
 *    is kept, Linux simply never had it.  The lab_linux_* forms take an
 *    explicit owner instead.
 *
 * GFP flags, faithfully:
 *  - GFP_ATOMIC: never sleeps, may use the atomic reserve (LAB_ATOMIC).  For
 *    interrupt handlers and code holding spinlocks.
 *  - GFP_NOWAIT: never sleeps, leaves the reserve alone (LAB_NOWAIT).
 *  - GFP_KERNEL: may wait.  The core never sleeps; when no frame is free the
 *    layer calls the embedder's wait hook (lab_linux_set_wait) and tries again
 *    when a free may have happened, until the hook gives up.  Without a hook
 *    (a platform that cannot wait) GFP_KERNEL behaves as GFP_NOWAIT.  Never in
 *    interrupt context (Linux's might_sleep()): a kernel's hook should refuse.
 *  - __GFP_ZERO: the frames come zeroed (LAB_ZERO).
 *  - __GFP_EXCLUSIVE (labyrinth's own): only from the owner's private cache
 *    colours; refused (NULL and a warning) when the owner is not exclusive.
 *  - __GFP_NOWARN is accepted and changes nothing: a failed allocation never
 *    warns here (it is the normal "drop the packet" case).  Other bits are
 *    refused (NULL and a warning).
 *
 * Failures that are bugs are never silent.  A free that labyrinth refuses (a
 * pointer outside every zone, a double free, the wrong order, another
 * owner's frame, a NULL struct page) and an allocation refused for a bad
 * argument (__GFP_EXCLUSIVE for a shared owner, an unknown flag, no owner
 * set) call the warn hook (lab_linux_set_warn), which by default writes one
 * line through lab_plat_log(), like Linux's WARN/bad_page(); nothing changes,
 * the call returns, and lab_linux_stats() counts it.  An embedder that wants
 * such bugs fatal sets a hook that panics.  free_page(0) / free_pages(0, n)
 * do nothing, as in Linux.  A free that the core could only finish by
 * waiting for the code it interrupted (LAB_EBUSY: an interrupt on a host that
 * cannot mask them, e.g. POSIX signals) is parked and finished by the next
 * call of this layer on any CPU, or by lab_linux_flush(): it is not lost.
 *
 * Context: allocations and frees as documented for lab_alloc/lab_free (any
 * context, GFP_KERNEL excepted); lab_linux_set_* at configuration time only,
 * with no call of this layer running.
 */
#ifndef LABYRINTH_LINUX_H
#define LABYRINTH_LINUX_H

#include "../labyrinth.h"

#ifdef __cplusplus
extern "C" {
#endif

struct page; /* never defined: a struct page * is the frame's direct-map address */

typedef unsigned int gfp_t;

#define GFP_ATOMIC ((gfp_t)LAB_ATOMIC)
#define GFP_NOWAIT ((gfp_t)LAB_NOWAIT)
#define __GFP_ZERO ((gfp_t)LAB_ZERO)
#define __GFP_EXCLUSIVE ((gfp_t)LAB_EXCLUSIVE)
/* "May wait for memory": what makes GFP_KERNEL blocking, Linux's name. */
#define __GFP_DIRECT_RECLAIM ((gfp_t)0x100u)
#define __GFP_NOWARN ((gfp_t)0x200u)
#define GFP_KERNEL __GFP_DIRECT_RECLAIM
#define LAB_LINUX_GFP_ALL (LAB_ALLOC_FLAGS_ALL | 0x300u)

#ifndef PAGE_SHIFT
#define PAGE_SHIFT LAB_FRAME_SHIFT
#endif
#ifndef PAGE_SIZE
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#endif
#ifndef PAGE_MASK
#define PAGE_MASK (~(PAGE_SIZE - 1))
#endif
#ifndef MAX_ORDER
#define MAX_ORDER LAB_MAX_ORDER /* orders 0..MAX_ORDER, as in Linux 6.4+ */
#endif

/* ---- configuration (lab_linux_*) ------------------------------------------- */

#define LAB_LINUX_MAX_ZONES 8

/* Zones used by this layer, in allocation order (zones[0] is the default
 * zone); n = 0 clears the list.  The array is copied.  Returns LAB_OK, or
 * LAB_EINVAL (n > LAB_LINUX_MAX_ZONES, a NULL zone), LAB_ENOMAP (a zone
 * without a direct map: a page is its direct-map address); nothing changes
 * when it refuses. */
LAB_API int lab_linux_set_zones(lab_zone_t *const *zones, unsigned n);
/* One default zone: lab_linux_set_zones(&zone, 1); NULL clears. */
LAB_API int lab_linux_set_zone(lab_zone_t *zone);

/* The owner of every call: current() returns the owner id of the running
 * context (the current domain, VM, process).  It is called on every
 * allocation and free, in any context, including interrupt handlers, so it
 * must be cheap and never sleep.  Until it is set (or after NULL), calls are
 * refused with a warning. */
LAB_API void lab_linux_set_owner(lab_owner_t (*current)(void));

/* GFP_KERNEL's wait.  When an allocation that may wait finds no frame in any
 * zone, the layer calls wait(arg, seq) with seq = lab_linux_free_seq() as read
 * before that attempt.  The hook blocks until the free count has moved past
 * seq or until its own bound passes, and returns 0 to try again or non-zero
 * to give up (the allocation then returns NULL).  Before each wait the
 * allocation scrubs up to 64 dirty frames in every zone (a deferred-scrub
 * zone's frees, a zone that did not start zeroed: a freed frame is
 * allocatable only once scrubbed, and its free has moved the count
 * already) and, if it scrubbed any, tries once more before it waits.  While someone waits, every
 * free through this layer also gives the freeing CPU's cached frames back to
 * the pools (lab_cpu_drain: a frame in another CPU's cache is out of the
 * waiter's reach, which is why Linux drains its per-CPU lists in the slow
 * path), moves the count and calls wake(arg).  wake may be NULL (a hook that
 * polls).  Setting wait to NULL makes GFP_KERNEL behave as GFP_NOWAIT. */
LAB_API void lab_linux_set_wait(int (*wait)(void *arg, uint64_t seq), void (*wake)(void *arg),
                                void *arg);

/* Where bugs are reported: what names the call ("__free_pages", "alloc_pages",
 * ...), err the LAB_E* code, addr the address or NULL.  NULL restores the
 * default, a line through lab_plat_log().  Called in the caller's context,
 * which may be an interrupt handler. */
LAB_API void lab_linux_set_warn(void (*warn)(const char *what, int err, const void *addr));

/* Report a bug through the warn hook (and count it). */
LAB_API void lab_linux_warn(const char *what, int err, const void *addr);

/* A counter that every free through this layer moves while a GFP_KERNEL
 * caller waits (wait hooks compare it with their seq). */
LAB_API uint64_t lab_linux_free_seq(void);

/* The POSIX host's wait hook (src/compat/linux_hosted.c, not in freestanding
 * builds): each wait polls lab_linux_free_seq() every 100 us (so a free in a
 * signal handler never has to take a lock to wake anyone) and gives up after
 * timeout_ms without a free.  0 removes it (GFP_KERNEL = GFP_NOWAIT again). */
LAB_API void lab_linux_hosted_wait(unsigned timeout_ms);

struct lab_linux_stats {
	uint64_t warnings;   /* bugs reported through the warn hook           */
	uint64_t waits;      /* GFP_KERNEL calls of the wait hook             */
	uint64_t wait_fails; /* GFP_KERNEL allocations that gave up           */
	uint64_t parked;     /* frees parked on LAB_EBUSY (finished later)    */
	uint64_t parked_now; /* parked and not finished yet                   */
};
LAB_API void lab_linux_stats(struct lab_linux_stats *st);

/* Finish parked frees now (idle loop, teardown).  Returns how many remain. */
LAB_API unsigned lab_linux_flush(void);

/* The explicit-owner forms under the Linux names.  alloc returns the block's
 * direct-map address or NULL; free returns LAB_OK, the refusal code (after
 * warning), LAB_EBUSY without a warning when the free was parked to finish
 * later (lab_linux_flush), and LAB_OK without a warning for NULL
 * (free_page(0)). */
LAB_API void *lab_linux_alloc(lab_owner_t owner, gfp_t gfp, unsigned order);
LAB_API int lab_linux_free(lab_owner_t owner, const void *addr, unsigned order);
/* The owner current() names now (0 if none is set). */
LAB_API lab_owner_t lab_linux_current(void);
/* pfn <-> direct map over the zone list: ~0 / NULL when in no zone (no warning). */
LAB_API uint64_t lab_linux_virt_to_pfn(const void *addr);
LAB_API void *lab_linux_pfn_to_virt(uint64_t pfn);

/* ---- the Linux names --------------------------------------------------------- */

static inline struct page *alloc_pages(gfp_t gfp, unsigned int order)
{
	return (struct page *)lab_linux_alloc(lab_linux_current(), gfp, order);
}

static inline struct page *alloc_page(gfp_t gfp)
{
	return alloc_pages(gfp, 0);
}

static inline void __free_pages(struct page *page, unsigned int order)
{
	if (!page) { /* Linux would oops: say so, do nothing */
		lab_linux_warn("__free_pages", LAB_EINVAL, NULL);
		return;
	}
	lab_linux_free(lab_linux_current(), (const void *)page, order);
}

static inline void __free_page(struct page *page)
{
	__free_pages(page, 0);
}

static inline void *page_address(const struct page *page)
{
	return (void *)(uintptr_t)page;
}

static inline struct page *virt_to_page(const void *addr)
{
	return (struct page *)((uintptr_t)addr & ~(uintptr_t)(LAB_FRAME_SIZE - 1));
}

static inline unsigned long page_to_pfn(const struct page *page)
{
	return (unsigned long)lab_linux_virt_to_pfn(page);
}

static inline struct page *pfn_to_page(unsigned long pfn)
{
	return (struct page *)lab_linux_pfn_to_virt(pfn);
}

static inline unsigned long __get_free_pages(gfp_t gfp, unsigned int order)
{
	return (unsigned long)(uintptr_t)lab_linux_alloc(lab_linux_current(), gfp, order);
}

static inline unsigned long __get_free_page(gfp_t gfp)
{
	return __get_free_pages(gfp, 0);
}

static inline unsigned long get_zeroed_page(gfp_t gfp)
{
	return __get_free_pages(gfp | __GFP_ZERO, 0);
}

static inline void free_pages(unsigned long addr, unsigned int order)
{
	if (addr != 0) /* free_pages(0, n) does nothing, as in Linux */
		__free_pages(virt_to_page((const void *)(uintptr_t)addr), order); /* 1..4095: NULL, warned */
}

static inline void free_page(unsigned long addr)
{
	free_pages(addr, 0);
}

/* Smallest order whose block holds size bytes (Linux get_order; as there,
 * size 0 is undefined: it gives BITS_PER_LONG - PAGE_SHIFT). */
static inline int get_order(unsigned long size)
{
	int order = 0;
	size = (size - 1) >> PAGE_SHIFT;
	while (size) {
		order++;
		size >>= 1;
	}
	return order;
}

#ifdef __cplusplus
}
#endif
#endif /* LABYRINTH_LINUX_H */
