/*
 * x86.h - the few x86-64 instructions and devices the example kernel uses:
 * port I/O, MSRs, CPUID, the TSC, the COM1 UART, the 8259 PIC, the 8254 PIT,
 * the local APIC and QEMU's isa-debug-exit device.
 */
#ifndef KERNEL_X86_H
#define KERNEL_X86_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The direct map: all of the first 4 GiB of physical memory, mapped with
 * 2 MiB pages at Linux's x86-64 PAGE_OFFSET (boot.S).  The kernel image
 * itself runs identity-mapped at 1 MiB. */
#define DMAP_BASE 0xffff800000000000ull
#define DMAP_LIMIT 0x100000000ull /* bytes of physical memory mapped */
static inline void *phys_to_virt(uint64_t pa)
{
	return (void *)(uintptr_t)(DMAP_BASE + pa);
}

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline void io_wait(void)
{
	outb(0x80, 0);
}

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return (uint64_t)hi << 32 | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}
static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}
static inline void irq_disable(void)
{
	__asm__ volatile("cli" ::: "memory");
}
static inline void irq_enable(void)
{
	__asm__ volatile("sti" ::: "memory");
}
static inline unsigned long irq_save_flags(void)
{
	unsigned long f;
	__asm__ volatile("pushfq; popq %0; cli" : "=r"(f) : : "memory");
	return f;
}
static inline void irq_restore_flags(unsigned long f)
{
	__asm__ volatile("pushq %0; popfq" : : "r"(f) : "memory", "cc");
}
static inline bool irqs_enabled(void)
{
	unsigned long f;
	__asm__ volatile("pushfq; popq %0" : "=r"(f));
	return f & 0x200;
}
/* Wait for the next interrupt with interrupts enabled (sti; hlt has no
 * window between the two), then restore the caller's state. */
static inline void wait_for_interrupt(void)
{
	unsigned long f = irq_save_flags();
	__asm__ volatile("sti; hlt" ::: "memory");
	irq_restore_flags(f);
}

/* ---- devices (x86.c) ---------------------------------------------------------- */
void serial_init(void);
void serial_write(const char *s, size_t n); /* raw, no lock */
void pic_init(void);                        /* remap to 0x20/0x28, all masked */
void pic_unmask(unsigned irq);
void pic_mask_all(void);
void pic_eoi(unsigned irq);
void pit_init(unsigned hz);
uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t v);
void lapic_enable(void);
unsigned lapic_id(void);
void lapic_eoi(void);
void lapic_timer_periodic(uint8_t vector, uint32_t count);
void lapic_timer_stop(void);
void lapic_send_ipi(unsigned apic_id, uint32_t icr_low);
void qemu_exit(uint32_t code) __attribute__((noreturn));
void idt_init(void);
void idt_load(void);

#define LAPIC_ID 0x20
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0

/* Interrupt vectors. */
#define VEC_PIT 0x20     /* PIC IRQ 0 after the remap */
#define VEC_PIC_SPURIOUS 0x27
#define VEC_LAPIC_TIMER 0x30
#define VEC_SYNC 0xf0    /* lab_plat_sync_cpus' IPI */
#define VEC_SPURIOUS 0xff

/* isa-debug-exit: QEMU exits with status (code << 1) | 1. */
#define EXIT_PASS 0x10     /* status 33 */
#define EXIT_FAIL 0x11     /* status 35: violations                 */
#define EXIT_PANIC 0x12    /* status 37: lab_plat_panic, exception   */
#define EXIT_DEADLOCK 0x13 /* status 39: the watchdog fired          */

/* The saved state an interrupt stub hands to isr_dispatch (boot.S). */
struct irq_frame {
	uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};
void isr_dispatch(struct irq_frame *f);

#endif
