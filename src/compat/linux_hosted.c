/*
 * linux_hosted.c - GFP_KERNEL's wait for POSIX threads.
 *
 * The wait polls lab_linux_free_seq() every 100 us instead of sleeping on a
 * condition variable: a free may run in a signal handler (this host's
 * interrupts), where taking a mutex to wake someone could deadlock against
 * the thread it interrupted.  A GFP_KERNEL allocation is slow by nature; the
 * poll costs at most 100 us of latency once memory comes back.
 */
#include <time.h>

#include "labyrinth/linux.h"

static unsigned timeout_ms;

static long elapsed_us(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000L + (t.tv_nsec - t0->tv_nsec) / 1000;
}

static int hosted_wait(void *arg, uint64_t seq)
{
	(void)arg;
	struct timespec t0, nap = {0, 100000};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (lab_linux_free_seq() == seq) { /* bound: timeout_ms */
		if (elapsed_us(&t0) >= (long)timeout_ms * 1000L)
			return -1;
		nanosleep(&nap, NULL);
	}
	return 0;
}

void lab_linux_hosted_wait(unsigned ms)
{
	timeout_ms = ms;
	if (ms)
		lab_linux_set_wait(hosted_wait, NULL, NULL);
	else
		lab_linux_set_wait(NULL, NULL, NULL);
}
