/*
 * labyrinth/platform.h - what a host must provide to the freestanding core.
 *
 * The core (src/core) calls only these functions and memset/memcpy/memmove/
 * memcmp.  A host implements them once: src/hosted/platform.c for POSIX,
 * examples/kernel/platform.c for the bare-metal kernel.  Which host is used is
 * decided by which object is linked, never by #ifdefs in the core.
 *
 * Every hook returning int returns 0 for success.
 */
#ifndef LABYRINTH_PLATFORM_H
#define LABYRINTH_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Report corrupt metadata and stop.  msg is a fixed string naming the check
 * that failed (e.g. "labyrinth: corrupt frame record").  Must not return.
 * Context: any, including with interrupts disabled. */
void lab_plat_panic(const char *msg) __attribute__((noreturn));

/* Fill buf with len bytes from a cryptographic entropy source (getrandom,
 * RDSEED).  Return 0 only if all len bytes were written; the core refuses to
 * build a zone otherwise, it never falls back to a guessable seed.
 * Context: zone init and lab_reseed only. */
int lab_plat_entropy(void *buf, size_t len);

/* Disable local interrupts (or whatever can re-enter the allocator on this
 * CPU) and return the previous state; restore it.  Between the two the
 * caller is not migrated, so lab_plat_cpu() stays valid.  Nesting allowed.
 * A host whose "interrupts" cannot be masked (POSIX signals) may return 0 and
 * do nothing: the core detects re-entry on a CPU and takes a path that never
 * waits for the interrupted code. */
unsigned long lab_plat_irq_save(void);
void lab_plat_irq_restore(unsigned long flags);

/* Index of the current CPU, 0.. (any value; ids >= the zone's nr_cpus share a
 * slower locked path).  Two execution contexts that may run at the same time
 * must never get the same id; an interrupt handler gets its CPU's id.
 * Context: called with interrupts saved. */
unsigned lab_plat_cpu(void);

/* Make every other CPU execute a full memory barrier before returning
 * (an IPI running a fence, or Linux membarrier(2)).  Used only when owners
 * are removed.  Return non-zero if it could not be done. */
int lab_plat_sync_cpus(void);

/* Zero nr frames starting at va (a direct-map address).  Non-temporal stores
 * are best: they leave nothing of the frame in the shared cache.  On return
 * the zeroes must be ordered before every later store of this CPU (after
 * non-temporal stores, an SFENCE): the core hands the frame on with a later
 * store.  The core falls back to nothing: this is the scrub. */
void lab_plat_zero_frames(void *va, size_t nr);

/* Optional: zero the n single frames at va[0], ..., va[n - 1] (n <= 16), with
 * the same ordering on return.  Fencing once at the end, not once a frame,
 * lets the frames' non-temporal stores drain together: 127-135 ns a frame
 * instead of 195-209 on the machine of bench/RESULTS.md, 16 at a time.
 * lab_scrub uses it.  A host that does not define it gets the core's
 * default, a weak definition that calls lab_plat_zero_frames once a frame. */
void lab_plat_zero_list(void *const *va, size_t n);

/* Optional diagnostic line (no newline needed).  May do nothing. */
void lab_plat_log(const char *msg);

/* Spin-wait hint (x86 PAUSE).  May do nothing. */
void lab_plat_relax(void);

#ifdef __cplusplus
}
#endif
#endif /* LABYRINTH_PLATFORM_H */
