/*
 * platform.c - labyrinth's platform hooks (include/labyrinth/platform.h) for
 * real: interrupts masked with pushf/cli and restored with popf, the CPU id
 * from %gs, panics to the serial port and out through isa-debug-exit,
 * entropy from RDSEED/RDRAND (TSC jitter, loudly, where the CPU has
 * neither), an IPI that makes the other CPUs run a fence, non-temporal
 * zeroing.
 */
#include "kernel.h"
#include "labyrinth/platform.h"

bool plat_mask_irqs = true;
const char *entropy_source = "none";
static bool has_rdseed, has_rdrand;

void platform_init(void)
{
	uint32_t r[4];
	cpuid(0, 0, r);
	unsigned max = r[0];
	cpuid(1, 0, r);
	has_rdrand = (r[2] >> 30) & 1;
	if (max >= 7) {
		cpuid(7, 0, r);
		has_rdseed = (r[1] >> 18) & 1;
	}
	entropy_source = has_rdseed ? "RDSEED" : has_rdrand ? "RDRAND" : "TSC";
}

void percpu_install(struct percpu *pc)
{
	pc->self = pc;
	wrmsr(0xc0000101, (uint64_t)(uintptr_t)pc); /* IA32_GS_BASE */
}

unsigned long lab_plat_irq_save(void)
{
	if (!plat_mask_irqs) /* the "irqsave=off" mode: the core sees nested calls */
		return 0;
	return irq_save_flags();
}

void lab_plat_irq_restore(unsigned long flags)
{
	if (plat_mask_irqs)
		irq_restore_flags(flags);
}

unsigned lab_plat_cpu(void)
{
	unsigned id;
	__asm__ volatile("movl %%gs:0, %0" : "=r"(id));
	return id;
}

void lab_plat_panic(const char *msg)
{
	kfatal(EXIT_PANIC, "labyrinth kernel: PANIC on cpu %u: %s\n", lab_plat_cpu(), msg);
}

void lab_plat_log(const char *msg)
{
	kprintf("labyrinth: %s\n", msg);
}

void lab_plat_relax(void)
{
	cpu_relax();
}

/* ---- entropy -------------------------------------------------------------------------- */
static bool rdseed64(uint64_t *v)
{
	for (int i = 0; i < 1000; i++) { /* RDSEED may run dry for a moment */
		unsigned char ok;
		__asm__ volatile("rdseed %0; setc %1" : "=r"(*v), "=qm"(ok));
		if (ok)
			return true;
		cpu_relax();
	}
	return false;
}

static bool rdrand64(uint64_t *v)
{
	for (int i = 0; i < 100; i++) {
		unsigned char ok;
		__asm__ volatile("rdrand %0; setc %1" : "=r"(*v), "=qm"(ok));
		if (ok)
			return true;
	}
	return false;
}

/* Without RDRAND/RDSEED: the low bits of the TSC around small, irregular
 * delays (interrupts, caches, an emulator's timing) mixed with a 64-bit
 * multiply-xorshift.  NOT a cryptographic source: the kernel says so at
 * boot, and real hardware should provide one of the instructions above. */
static uint64_t tsc_jitter64(void)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ rdtsc();
	for (int i = 0; i < 64; i++) {
		uint64_t t0 = rdtsc();
		for (volatile int k = 0; k < (int)(t0 & 63); k++)
			;
		h ^= rdtsc() - t0;
		h *= 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
	}
	return h;
}

int lab_plat_entropy(void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len) {
		uint64_t v;
		if (has_rdseed) {
			if (!rdseed64(&v) && !(has_rdrand && rdrand64(&v)))
				return -1;
		} else if (has_rdrand) {
			if (!rdrand64(&v))
				return -1;
		} else {
			v = tsc_jitter64();
		}
		size_t n = len < 8 ? len : 8;
		memcpy(p, &v, n);
		p += n;
		len -= n;
	}
	return 0;
}

/* ---- the other CPUs run a fence ---------------------------------------------------------- */
volatile uint64_t sync_acks;

int lab_plat_sync_cpus(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (nr_cpus == 1)
		return 0;
	uint64_t want = __atomic_load_n(&sync_acks, __ATOMIC_ACQUIRE) + (nr_cpus - 1);
	lapic_send_ipi(0, 0xc0000u | 0x4000u | VEC_SYNC); /* all but self, fixed, assert */
	for (unsigned long i = 0; i < 200000000ul; i++) { /* bound: ~a second */
		if (__atomic_load_n(&sync_acks, __ATOMIC_ACQUIRE) >= want)
			return 0;
		cpu_relax();
	}
	return -1;
}

/* ---- scrub: non-temporal stores, nothing of the frame left in the caches ------------------ */
static void zero_nt(void *va, size_t nr)
{
	uint64_t *p = va, *end = p + nr * 512;
	for (; p < end; p += 8) {
		__asm__ volatile("movnti %1, 0(%0)\n\tmovnti %1, 8(%0)\n\tmovnti %1, 16(%0)\n\t"
		                 "movnti %1, 24(%0)\n\tmovnti %1, 32(%0)\n\tmovnti %1, 40(%0)\n\t"
		                 "movnti %1, 48(%0)\n\tmovnti %1, 56(%0)"
		                 : : "r"(p), "r"(0ull) : "memory");
	}
}

void lab_plat_zero_frames(void *va, size_t nr)
{
	zero_nt(va, nr);
	__asm__ volatile("sfence" ::: "memory");
}

/* Optional hook: one fence for the whole list. */
void lab_plat_zero_list(void *const *va, size_t n)
{
	for (size_t i = 0; i < n; i++)
		zero_nt(va[i], 1);
	__asm__ volatile("sfence" ::: "memory");
}
