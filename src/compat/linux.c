/*
 * linux.c - the state behind include/labyrinth/linux.h: the zone list, the
 * current-owner callback, GFP_KERNEL's wait, the warn hook and the parked
 * frees.  Freestanding: it uses only the public API, lab_plat_log() and
 * <stdatomic.h>, so a kernel links it beside src/core/all.c.
 *
 * The configuration (zones, hooks) is written at configuration time only and
 * read without synchronisation afterwards, like the zone itself.
 */
#include <stdatomic.h>
#include <stdbool.h>

#include "labyrinth/linux.h"
#include "labyrinth/platform.h"

static lab_zone_t *zones[LAB_LINUX_MAX_ZONES];
static unsigned nr_zones;
static lab_owner_t (*cur_owner)(void);
static int (*wait_fn)(void *, uint64_t);
static void (*wake_fn)(void *);
static void *wait_arg;
static void (*warn_fn)(const char *, int, const void *);

static _Atomic uint64_t free_seq, nr_warn, nr_waits, nr_wait_fails, nr_parked;
static _Atomic unsigned waiters;

/* Frees the core could not finish without waiting for the code they
 * interrupted (LAB_EBUSY).  A slot goes EMPTY -> FILLING -> FULL, and a
 * retrier takes it FULL -> RETRYING, then EMPTY or back to FULL. */
#define PARK_SLOTS 64
enum { P_EMPTY, P_FILLING, P_FULL, P_RETRYING };
static struct {
	_Atomic unsigned state;
	lab_zone_t *zone;
	uint64_t pfn;
	lab_owner_t owner;
	uint32_t incarnation; /* of the owner, when its free was refused */
	unsigned order;
} park[PARK_SLOTS];
static _Atomic unsigned parked_now;

/* ---- configuration ------------------------------------------------------------ */

int lab_linux_set_zones(lab_zone_t *const *zs, unsigned n)
{
	if (n > LAB_LINUX_MAX_ZONES || (n && !zs))
		return LAB_EINVAL;
	uint64_t pfn;
	for (unsigned i = 0; i < n; i++) {
		if (!zs[i])
			return LAB_EINVAL;
		/* A page is its direct-map address: a zone without one can serve
		 * no page (its blocks were taken and given back on every call),
		 * and stopped every free's search at it (until 2026-11-28). */
		if (lab_virt_to_pfn(zs[i], NULL, &pfn) == LAB_ENOMAP)
			return LAB_ENOMAP;
	}
	for (unsigned i = 0; i < LAB_LINUX_MAX_ZONES; i++)
		zones[i] = i < n ? zs[i] : NULL;
	nr_zones = n;
	return LAB_OK;
}

int lab_linux_set_zone(lab_zone_t *zone)
{
	return zone ? lab_linux_set_zones(&zone, 1) : lab_linux_set_zones(NULL, 0);
}

void lab_linux_set_owner(lab_owner_t (*current)(void))
{
	cur_owner = current;
}

void lab_linux_set_wait(int (*wait)(void *, uint64_t), void (*wake)(void *), void *arg)
{
	wait_fn = wait;
	wake_fn = wake;
	wait_arg = arg;
}

void lab_linux_set_warn(void (*warn)(const char *, int, const void *))
{
	warn_fn = warn;
}

lab_owner_t lab_linux_current(void)
{
	lab_owner_t (*f)(void) = cur_owner;
	return f ? f() : 0;
}

uint64_t lab_linux_free_seq(void)
{
	return atomic_load(&free_seq);
}

void lab_linux_stats(struct lab_linux_stats *st)
{
	st->warnings = atomic_load(&nr_warn);
	st->waits = atomic_load(&nr_waits);
	st->wait_fails = atomic_load(&nr_wait_fails);
	st->parked = atomic_load(&nr_parked);
	st->parked_now = atomic_load(&parked_now);
}

/* ---- warnings ------------------------------------------------------------------ */

static char *put_str(char *p, char *end, const char *s)
{
	while (*s && p < end)
		*p++ = *s++;
	return p;
}

void lab_linux_warn(const char *what, int err, const void *addr)
{
	atomic_fetch_add_explicit(&nr_warn, 1, memory_order_relaxed);
	void (*f)(const char *, int, const void *) = warn_fn;
	if (f) {
		f(what, err, addr);
		return;
	}
	/* "labyrinth/linux: WARN free_pages(0xffff800000123000): frame not allocated" */
	char buf[160], *p = buf, *end = buf + sizeof(buf) - 1;
	p = put_str(p, end, "labyrinth/linux: WARN ");
	p = put_str(p, end, what);
	p = put_str(p, end, "(");
	if (addr) {
		uintptr_t a = (uintptr_t)addr;
		p = put_str(p, end, "0x");
		for (int sh = (int)sizeof(a) * 8 - 4; sh >= 0 && p < end; sh -= 4)
			*p++ = "0123456789abcdef"[(a >> sh) & 15];
	}
	p = put_str(p, end, "): ");
	p = put_str(p, end, lab_strerror(err));
	*p = 0;
	lab_plat_log(buf);
}

/* ---- frees ------------------------------------------------------------------------ */

/* After a successful free: move the sequence and wake GFP_KERNEL waiters.
 * The waiter registers, then tries to allocate; we freed, then look for
 * waiters: with a full fence on both sides, either its attempt saw our
 * frame or we see it waiting (the Dekker pattern). */
static void freed(lab_zone_t *z)
{
	if (!wait_fn)
		return;
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&waiters, memory_order_relaxed)) {
		/* The frame went to this CPU's cache, where no other CPU can take
		 * it: give the cache back while someone waits (Linux drains its
		 * per-CPU lists in the slow path for the same reason). */
		lab_cpu_drain(z);
		atomic_fetch_add(&free_seq, 1);
		void (*w)(void *) = wake_fn;
		if (w)
			w(wait_arg);
	}
}

static bool park_free(lab_zone_t *z, uint64_t pfn, lab_owner_t owner, uint32_t incarnation, unsigned order)
{
	for (unsigned i = 0; i < PARK_SLOTS; i++) { /* bound: PARK_SLOTS */
		unsigned s = P_EMPTY;
		if (atomic_compare_exchange_strong(&park[i].state, &s, P_FILLING)) {
			park[i].zone = z;
			park[i].pfn = pfn;
			park[i].owner = owner;
			park[i].incarnation = incarnation;
			park[i].order = order;
			atomic_fetch_add(&parked_now, 1);
			atomic_fetch_add_explicit(&nr_parked, 1, memory_order_relaxed);
			atomic_store_explicit(&park[i].state, P_FULL, memory_order_release);
			return true;
		}
	}
	return false;
}

unsigned lab_linux_flush(void)
{
	if (!atomic_load_explicit(&parked_now, memory_order_acquire))
		return 0;
	for (unsigned i = 0; i < PARK_SLOTS; i++) { /* bound: PARK_SLOTS */
		unsigned s = P_FULL;
		if (!atomic_compare_exchange_strong(&park[i].state, &s, P_RETRYING))
			continue;
		/* An owner removed since (and maybe added again) had its blocks
		 * reclaimed: this one is no longer its caller's to free, and may
		 * be the new owner's (freed here until 2026-11-28). */
		int rc = lab_free_of(park[i].zone, park[i].owner, park[i].incarnation, park[i].pfn,
		                     park[i].order);
		if (rc == LAB_EBUSY) { /* still nested: the next call will try again */
			atomic_store_explicit(&park[i].state, P_FULL, memory_order_release);
			continue;
		}
		if (rc != LAB_OK)
			lab_linux_warn("free_pages (parked)", rc, lab_pfn_to_virt(park[i].zone, park[i].pfn));
		atomic_fetch_sub(&parked_now, 1);
		atomic_store_explicit(&park[i].state, P_EMPTY, memory_order_release);
		if (rc == LAB_OK)
			freed(park[i].zone);
	}
	return atomic_load(&parked_now);
}

int lab_linux_free(lab_owner_t owner, const void *addr, unsigned order)
{
	if (!addr)
		return LAB_OK;
	if (atomic_load_explicit(&parked_now, memory_order_relaxed))
		lab_linux_flush();
	int rc = nr_zones ? LAB_ERANGE : LAB_EINVAL;
	uint64_t pfn = 0;
	lab_zone_t *z = NULL;
	for (unsigned i = 0; i < nr_zones; i++) { /* bound: LAB_LINUX_MAX_ZONES */
		rc = lab_virt_to_pfn(zones[i], addr, &pfn);
		if (rc != LAB_ERANGE) {
			z = zones[i];
			break;
		}
	}
	if (rc == LAB_OK) {
		/* Read before the free: a parked free must not outlive the owner
		 * it was made for (lab_linux_flush). */
		uint32_t inc = lab_owner_incarnation(z, owner);
		rc = lab_free_of(z, owner, inc, pfn, order);
		if (rc == LAB_EBUSY && park_free(z, pfn, owner, inc, order))
			return LAB_EBUSY; /* parked: finished by a later call */
	}
	if (rc != LAB_OK) {
		lab_linux_warn("free_pages", rc, addr);
		return rc;
	}
	freed(z);
	return LAB_OK;
}

/* ---- allocation --------------------------------------------------------------------- */

static bool out_of_memory(int rc)
{
	return rc == LAB_ENOMEM || rc == LAB_EQUOTA || rc == LAB_EFRAG || rc == LAB_EBUSY;
}

/* One attempt over the zone list.  With several zones and LAB_ATOMIC, a first
 * pass leaves every reserve alone, so a reserve is used only when all zones
 * are low (Linux's watermarks); one zone is one call, whatever its state. */
static int try_zones(lab_owner_t owner, unsigned flags, unsigned order, void **va)
{
	unsigned n = nr_zones;
	unsigned passes = (n > 1 && (flags & LAB_ATOMIC)) ? 2 : 1;
	int bad = LAB_OK;
	bool short_of_memory = false;

	if (n == 0)
		return LAB_EINVAL;
	for (unsigned pass = 0; pass < passes; pass++) {
		unsigned f = (passes == 2 && pass == 0) ? ((flags & ~LAB_ATOMIC) | LAB_NOWAIT) : flags;
		for (unsigned i = 0; i < n; i++) { /* bound: LAB_LINUX_MAX_ZONES */
			uint64_t pfn;
			int rc = lab_alloc(zones[i], owner, order, f, &pfn);
			if (rc == LAB_OK) {
				*va = lab_pfn_to_virt(zones[i], pfn);
				if (*va)
					return LAB_OK;
				lab_free(zones[i], owner, pfn, order);
				rc = LAB_ENOMAP;
			}
			if (out_of_memory(rc))
				short_of_memory = true;
			else if (bad == LAB_OK || bad == LAB_ENOOWNER)
				bad = rc; /* an owner missing from one zone is the least telling */
		}
	}
	return short_of_memory ? LAB_ENOMEM : bad;
}

void *lab_linux_alloc(lab_owner_t owner, gfp_t gfp, unsigned order)
{
	void *va = NULL;
	if (atomic_load_explicit(&parked_now, memory_order_relaxed))
		lab_linux_flush();
	if (gfp & ~(gfp_t)LAB_LINUX_GFP_ALL) {
		lab_linux_warn("alloc_pages", LAB_EINVAL, NULL);
		return NULL;
	}
	if (owner == 0) {
		lab_linux_warn("alloc_pages", LAB_ENOOWNER, NULL);
		return NULL;
	}
	unsigned flags = gfp & LAB_ALLOC_FLAGS_ALL;
	if (!(flags & (LAB_ATOMIC | LAB_NOWAIT)))
		flags |= LAB_NOWAIT;
	bool may_wait = (gfp & __GFP_DIRECT_RECLAIM) && !(gfp & GFP_ATOMIC) && wait_fn;

	if (may_wait)
		atomic_fetch_add(&waiters, 1); /* seq_cst: before the attempt reads the pools */
	for (;;) {
		uint64_t seq = atomic_load(&free_seq);
		int rc = try_zones(owner, flags, order, &va);
		if (rc == LAB_OK)
			break;
		va = NULL;
		if (!out_of_memory(rc)) {
			lab_linux_warn("alloc_pages", rc, NULL);
			break;
		}
		if (!may_wait)
			break;
		/* Direct reclaim, once before each wait: frames freed into a
		 * deferred-scrub zone (or a zone that did not start zeroed) are
		 * dirty until scrubbed, and their frees moved free_seq already,
		 * so the wait would sleep past them (until 2026-11-28).  At most
		 * 64 frames a zone, then one more attempt, then the wait: the
		 * hook's bound holds however much is dirty. */
		size_t scrubbed = 0;
		for (unsigned i = 0; i < nr_zones; i++) { /* bound: LAB_LINUX_MAX_ZONES */
			size_t d = 0;
			lab_scrub(zones[i], 64, &d);
			scrubbed += d;
		}
		if (scrubbed && (rc = try_zones(owner, flags, order, &va)) == LAB_OK)
			break;
		va = NULL;
		if (scrubbed && !out_of_memory(rc)) {
			lab_linux_warn("alloc_pages", rc, NULL);
			break;
		}
		atomic_fetch_add_explicit(&nr_waits, 1, memory_order_relaxed);
		if (wait_fn(wait_arg, seq) != 0) {
			atomic_fetch_add_explicit(&nr_wait_fails, 1, memory_order_relaxed);
			break;
		}
	}
	if (may_wait)
		atomic_fetch_sub(&waiters, 1);
	return va;
}

/* ---- translation ------------------------------------------------------------------------ */

uint64_t lab_linux_virt_to_pfn(const void *addr)
{
	const void *frame = (const void *)((uintptr_t)addr & ~(uintptr_t)(LAB_FRAME_SIZE - 1));
	for (unsigned i = 0; i < nr_zones; i++) { /* bound: LAB_LINUX_MAX_ZONES */
		uint64_t pfn;
		if (lab_virt_to_pfn(zones[i], frame, &pfn) == LAB_OK)
			return pfn;
	}
	return ~(uint64_t)0;
}

void *lab_linux_pfn_to_virt(uint64_t pfn)
{
	for (unsigned i = 0; i < nr_zones; i++) { /* bound: LAB_LINUX_MAX_ZONES */
		void *va = lab_pfn_to_virt(zones[i], pfn);
		if (va)
			return va;
	}
	return NULL;
}
