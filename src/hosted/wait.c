/*
 * wait.c - the blocking allocation (Linux GFP_KERNEL) for threads.
 *
 * The core never sleeps.  Here a thread that finds no frame sleeps on a
 * condition variable until lab_hosted_free() returns one (or its timeout
 * passes), then tries again.  One condition for all zones: wake-ups are
 * rare and a spurious one only costs a retry.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "labyrinth/hosted.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static _Atomic unsigned sleepers;
static uint64_t frees_seen; /* under mu */

int lab_hosted_free(lab_zone_t *zone, lab_owner_t owner, uint64_t pfn, unsigned order)
{
	int rc = lab_free(zone, owner, pfn, order);
	if (rc == LAB_OK && atomic_load(&sleepers)) {
		/* An order-0 frame went to this thread's cache, where no sleeper
		 * can take it: give the cache back (until 2026-11-28 a sleeper
		 * waited out its timeout while a live thread held the frame). */
		lab_cpu_drain(zone);
		pthread_mutex_lock(&mu);
		frees_seen++;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
	return rc;
}

int lab_hosted_alloc_wait(lab_zone_t *zone, lab_owner_t owner, unsigned order, unsigned flags,
                          unsigned timeout_ms, uint64_t *pfn)
{
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	for (;;) {
		pthread_mutex_lock(&mu);
		uint64_t seen = frees_seen;
		atomic_fetch_add(&sleepers, 1);
		pthread_mutex_unlock(&mu);
		int rc = lab_alloc(zone, owner, order, flags, pfn);
		/* Reclaim before sleeping, once a wake-up: frames freed into a
		 * deferred-scrub zone (or a zone that did not start zeroed) are
		 * dirty until someone scrubs them, and their frees have woken us
		 * already.  A blocking caller may do 64 frames of that work; an
		 * owner at its quota gains nothing from it. */
		if (rc == LAB_ENOMEM || rc == LAB_EFRAG) {
			size_t scrubbed = 0;
			lab_scrub(zone, 64, &scrubbed);
			if (scrubbed)
				rc = lab_alloc(zone, owner, order, flags, pfn);
		}
		if (rc != LAB_ENOMEM && rc != LAB_EQUOTA && rc != LAB_EFRAG) {
			atomic_fetch_sub(&sleepers, 1);
			return rc;
		}
		pthread_mutex_lock(&mu);
		int w = 0;
		while (frees_seen == seen && w != ETIMEDOUT)
			w = pthread_cond_timedwait(&cv, &mu, &deadline);
		atomic_fetch_sub(&sleepers, 1);
		pthread_mutex_unlock(&mu);
		if (w == ETIMEDOUT)
			return lab_alloc(zone, owner, order, flags, pfn);
	}
}
