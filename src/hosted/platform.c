/*
 * platform.c - the lab_plat_* hooks for POSIX threads on Linux.
 *
 * "CPUs" are threads: each thread takes a slot id the first time it enters a
 * zone and gives it back when it exits, so two threads never share a per-CPU
 * cache.  Signals cannot be masked cheaply (sigprocmask is a system call), so
 * irq save/restore do nothing: a signal handler that calls into a zone is a
 * nested call, which the core detects and handles without waiting for the
 * code it interrupted.
 */

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "labyrinth/hosted.h"
#include "labyrinth/platform.h"

#define SLOTS 1024 /* thread slot ids 0..SLOTS-1; LAB_MAX_CPUS after that */

static _Atomic uint64_t slot_used[SLOTS / 64];
static __thread int my_slot = -1;
static __thread unsigned spin_count;
static pthread_key_t slot_key;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;
static _Atomic int entropy_mode;
static _Atomic bool panic_exit;

/* Zones made by lab_hosted_zone_create: an exiting thread gives their
 * cached frames back before its slot can go to another thread. */
#define MAX_ZONES 64
static lab_zone_t *zones[MAX_ZONES];
static pthread_mutex_t zones_mu = PTHREAD_MUTEX_INITIALIZER;

void lab_hosted_track(lab_zone_t *z, bool on)
{
	pthread_mutex_lock(&zones_mu);
	for (int i = 0; i < MAX_ZONES; i++) {
		if (on && !zones[i]) {
			zones[i] = z;
			break;
		}
		if (!on && zones[i] == z)
			zones[i] = NULL;
	}
	pthread_mutex_unlock(&zones_mu);
}

static void slot_release(void *arg)
{
	int s = (int)(intptr_t)arg - 1;
	if (s < 0)
		return;
	pthread_mutex_lock(&zones_mu);
	for (int i = 0; i < MAX_ZONES; i++)
		if (zones[i])
			lab_cpu_drain(zones[i]);
	pthread_mutex_unlock(&zones_mu);
	/* Calls this thread still makes (another key's destructor) take the
	 * shared slot-less id: the slot may be another thread's from now on. */
	my_slot = LAB_MAX_CPUS;
	atomic_fetch_and(&slot_used[s / 64], ~(1ull << (s % 64)));
}

static void slot_init(void)
{
	pthread_key_create(&slot_key, slot_release);
}

static int slot_take(void)
{
	pthread_once(&slot_once, slot_init);
	for (int w = 0; w < SLOTS / 64; w++) {
		uint64_t used = atomic_load(&slot_used[w]);
		while (~used) {
			int b = __builtin_ctzll(~used);
			if (atomic_compare_exchange_weak(&slot_used[w], &used, used | (1ull << b))) {
				int s = w * 64 + b;
				pthread_setspecific(slot_key, (void *)(intptr_t)(s + 1));
				return s;
			}
		}
	}
	return LAB_MAX_CPUS; /* no slot: the zone's shared slow path */
}

unsigned lab_plat_cpu(void)
{
	if (__builtin_expect(my_slot < 0, 0))
		my_slot = slot_take();
	return (unsigned)my_slot;
}

unsigned long lab_plat_irq_save(void)
{
	return 0;
}

void lab_plat_irq_restore(unsigned long flags)
{
	(void)flags;
}

void lab_plat_panic(const char *msg)
{
	/* write(2) only: we may be in a signal handler or hold any lock. */
	size_t n = strlen(msg);
	ssize_t r = write(2, msg, n);
	r = write(2, "\n", 1);
	(void)r;
	if (atomic_load(&panic_exit))
		_exit(134);
	abort();
}

void lab_hosted_panic_exit(bool on)
{
	atomic_store(&panic_exit, on);
}

int lab_plat_entropy(void *buf, size_t len)
{
	int mode = atomic_load(&entropy_mode);
	if (mode == 1)
		return -1;
	if (mode == 2) {
		memset(buf, 0, len);
		return 0;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t r = getrandom((char *)buf + got, len - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

void lab_hosted_entropy_fault(int mode)
{
	atomic_store(&entropy_mode, mode);
}

static pthread_once_t mb_once = PTHREAD_ONCE_INIT;
static int mb_cmd = -1;

static void mb_init(void)
{
	long q = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
	    syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
		mb_cmd = MEMBARRIER_CMD_PRIVATE_EXPEDITED;
	else if (q > 0 && (q & MEMBARRIER_CMD_GLOBAL))
		mb_cmd = MEMBARRIER_CMD_GLOBAL;
}

int lab_plat_sync_cpus(void)
{
	pthread_once(&mb_once, mb_init);
	if (mb_cmd < 0)
		return -1;
	return syscall(__NR_membarrier, mb_cmd, 0, 0) == 0 ? 0 : -1;
}

/* Non-temporal zeroes over nr frames at va, not fenced. */
static void zero_nt(void *va, size_t nr)
{
#if defined(__SSE2__)
	__m128i z = _mm_setzero_si128();
	__m128i *p = va, *end = (__m128i *)((char *)va + nr * 4096);
	for (; p < end; p += 8) {
		_mm_stream_si128(p + 0, z);
		_mm_stream_si128(p + 1, z);
		_mm_stream_si128(p + 2, z);
		_mm_stream_si128(p + 3, z);
		_mm_stream_si128(p + 4, z);
		_mm_stream_si128(p + 5, z);
		_mm_stream_si128(p + 6, z);
		_mm_stream_si128(p + 7, z);
	}
#else
	memset(va, 0, nr * 4096);
#endif
}

void lab_plat_zero_frames(void *va, size_t nr)
{
	zero_nt(va, nr);
#if defined(__SSE2__)
	_mm_sfence();
#endif
}

void lab_plat_zero_list(void *const *va, size_t n)
{
	for (size_t i = 0; i < n; i++)
		zero_nt(va[i], 1);
#if defined(__SSE2__)
	_mm_sfence();
#endif
}

void lab_plat_log(const char *msg)
{
	fprintf(stderr, "%s\n", msg);
}

void lab_plat_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	_mm_pause();
#endif
	/* Oversubscribed hosts: the holder may be preempted; let it run. */
	if ((++spin_count & 63) == 0)
		sched_yield();
}
