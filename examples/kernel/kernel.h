/*
 * kernel.h - what the example kernel's files share: per-CPU data, printing,
 * and the platform's modes.
 */
#ifndef KERNEL_KERNEL_H
#define KERNEL_KERNEL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labyrinth.h"
#include "x86.h"

#define MAX_CPUS 4
#define TRAMPOLINE 0x8000

/* Per CPU; %gs points at it, so lab_plat_cpu() is one load (%gs:0). */
struct percpu {
	unsigned id;           /* offset 0: lab_plat_cpu() */
	unsigned apic_id;
	struct percpu *self;   /* offset 8: this_cpu() */
	lab_owner_t cur_dom;   /* the domain running here: linux.h's owner */
	unsigned in_irq;
	volatile unsigned in_alloc; /* the main loop is inside a linux.h call */
	volatile uint64_t ticks;
	volatile uint64_t progress; /* main-loop steps, for the watchdog */
	volatile bool idle;         /* finished: the watchdog leaves it alone */
	void *scenario;             /* kernel.c's per-CPU state */
};
extern struct percpu cpus[MAX_CPUS];
extern unsigned nr_cpus;

static inline struct percpu *this_cpu(void)
{
	struct percpu *p;
	__asm__ volatile("movq %%gs:8, %0" : "=r"(p));
	return p;
}

void percpu_install(struct percpu *pc);

/* Printing to COM1, whole lines under a lock (any context). */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int ksnprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void kfatal(uint32_t code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

/* platform.c */
extern bool plat_mask_irqs;         /* lab_plat_irq_save masks (cli) or not   */
extern const char *entropy_source;  /* "RDSEED", "RDRAND" or "TSC"            */
void platform_init(void);
extern volatile uint64_t sync_acks;

/* Tiny spinlock with interrupts saved. */
typedef struct {
	volatile uint32_t v;
} kspin_t;
unsigned long kspin_lock(kspin_t *l);
bool kspin_trylock_for(kspin_t *l, unsigned long spins, unsigned long *flags);
void kspin_unlock(kspin_t *l, unsigned long flags);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
