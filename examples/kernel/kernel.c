/*
 * kernel.c - a small multiboot kernel whose physical memory manager is
 * labyrinth, driven through include/labyrinth/linux.h.
 *
 * Boot: the bootloader's memory map becomes one zone per usable range (the
 * RAM below 640 KiB and the RAM above 1 MiB on a PC: two zones), minus the
 * kernel image, the metadata carved after it, page 0 and the AP trampoline
 * (lab_zone_reserve_range).  Three domains (owners): 1 and 2 exclusive on
 * colours 0-7 and 8-15, 3 shared on colours 16-31.
 *
 * Run: each CPU's timer interrupt plays a network card.  It completes up to
 * four transmissions (frees their buffers: frees in interrupt context) and
 * receives one packet for the next domain with the driver fragment of issue
 * 6 (alloc_page(GFP_ATOMIC), drop the packet when it fails), writes a
 * pattern and queues it for the next CPU's main loop.  The main loop
 * consumes packets (pattern intact, frame still the domain's, then frees or
 * forwards them to the TX ring), and in cycles fills memory with its own
 * GFP_NOWAIT allocations up to the reserve (FILL), sits on them while the
 * network keeps allocating from the reserve and dropping (HOLD: it only
 * re-checks its blocks, the RX ring backs up), then frees most of them
 * (DRAIN).  Every block handed out is checked at once (owner and order from
 * lab_frame_owner, every frame's colour in its domain's set, a shadow table
 * that catches a frame handed out twice, zero contents when it must be
 * zero); every CHECK_TICKS ticks all CPUs stop outside the allocator and
 * lab_check() walks every invariant of every zone.
 *
 * End: after RUN_TICKS ticks the network stops, everything is freed, a
 * GFP_KERNEL allocation is shown waiting for interrupt-context frees, the
 * owners are removed (their frames zeroed), and the summary goes to COM1;
 * QEMU exits through isa-debug-exit: 33 pass, 35 violations, 37 panic,
 * 39 deadlock (x86.h).
 */
#include "kernel.h"
#include "labyrinth/linux.h"
#include "labyrinth/platform.h"

#define HZ 10000u             /* timer interrupts per second and CPU          */
#define RUN_TICKS 40000u      /* length of the run, in CPU 0's ticks (ticks=N) */
#define HOLD_TICKS 1200u      /* HOLD phase                                   */
#define CHECK_TICKS 1000u     /* lab_check of every zone                      */
#define WATCHDOG_TICKS 30000u /* a main loop silent this long is deadlocked (watchdog=N) */
#define WAIT_TICKS 20000u     /* GFP_KERNEL's bound                           */
#define RING_CAP 1024u
#define TX_PER_TICK 4u
#define MAX_ZONES 4
#define NDOM 3
#define NCOLOURS 32u

static const uint64_t dom_colours[NDOM + 1] = {0, 0x000000ffull, 0x0000ff00ull, 0xffff0000ull};
static const bool dom_exclusive[NDOM + 1] = {false, true, true, false};

struct percpu cpus[MAX_CPUS];
unsigned nr_cpus = 1;

/* ---- zones ---------------------------------------------------------------------------- */
static struct kzone {
	lab_zone_t *z;
	uint64_t base, nr;  /* frames [base, base + nr) */
	uint64_t reserved;
} zones[MAX_ZONES];
static unsigned nr_zones;
static uint64_t total_frames;

static struct kzone *zone_of(uint64_t pfn)
{
	for (unsigned i = 0; i < nr_zones; i++)
		if (pfn >= zones[i].base && pfn - zones[i].base < zones[i].nr)
			return &zones[i];
	return NULL;
}

/* ---- violations ------------------------------------------------------------------------- */
static volatile uint64_t violations;

static void violation(const char *fmt, uint64_t a, uint64_t b)
{
	uint64_t n = __atomic_fetch_add(&violations, 1, __ATOMIC_RELAXED);
	if (n < 20) {
		char m[160];
		ksnprintf(m, sizeof(m), fmt, a, b);
		kprintf("labyrinth kernel: VIOLATION on cpu %u: %s\n", lab_plat_cpu(), m);
	}
}

/* linux.h's warn hook: in this kernel every warning is a bug. */
static void linux_warn(const char *what, int err, const void *addr)
{
	__atomic_fetch_add(&violations, 1, __ATOMIC_RELAXED);
	kprintf("labyrinth kernel: VIOLATION on cpu %u: linux.h warned: %s(%p): %s\n", lab_plat_cpu(), what,
	        addr, lab_strerror(err));
}

/* Every frame's last owner, as this kernel saw it: 0 = free.  A frame handed
 * out while the shadow says someone holds it is a double allocation. */
static uint8_t shadow[1u << 20]; /* frames below 4 GiB */

static lab_owner_t current_domain(void)
{
	return this_cpu()->cur_dom;
}

/* ---- checks of a block just handed out, and before it is given back --------------------------- */
static inline uint64_t pat(uint64_t seq, unsigned i)
{
	return (seq * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)i << 48) ^ 0x5a5a;
}

static void fill(void *va, unsigned order, uint64_t seq)
{
	uint64_t *w = va;
	for (unsigned i = 0; i < (512u << order); i += 64) /* one word per 512 bytes */
		w[i] = pat(seq, i);
}

static bool intact(const void *va, unsigned order, uint64_t seq)
{
	const uint64_t *w = va;
	for (unsigned i = 0; i < (512u << order); i += 64)
		if (w[i] != pat(seq, i))
			return false;
	return true;
}

static bool all_zero(const void *va, unsigned order, bool sample)
{
	const uint64_t *w = va;
	unsigned n = 512u << order;
	if (sample) { /* interrupt context: first, middle and last words of each frame */
		for (unsigned f = 0; f < (1u << order); f++)
			if (w[f * 512] | w[f * 512 + 255] | w[f * 512 + 511])
				return false;
		return true;
	}
	uint64_t acc = 0;
	for (unsigned i = 0; i < n; i++)
		acc |= w[i];
	return acc == 0;
}

static volatile uint64_t blocks_checked;

/* Owner, order, colours, single ownership, and zero contents where due. */
static void check_new(void *va, unsigned order, lab_owner_t dom, bool want_zero, bool sample)
{
	uint64_t pfn = page_to_pfn(virt_to_page(va));
	struct kzone *kz = zone_of(pfn);
	if (!kz || page_address(pfn_to_page(pfn)) != va) {
		violation("block %lx outside every zone (pfn %lx)", (uint64_t)(uintptr_t)va, pfn);
		return;
	}
	lab_owner_t o = 0;
	unsigned ord = 99;
	if (lab_frame_owner(kz->z, pfn, &o, &ord) != LAB_OK || o != dom || ord != order)
		violation("pfn %lx: owner/order %lx is not the caller's", pfn, (uint64_t)o << 8 | ord);
	if (pfn & ((1u << order) - 1))
		violation("pfn %lx not aligned to order %lu", pfn, order);
	for (unsigned i = 0; i < (1u << order); i++) {
		if (!((dom_colours[dom] >> ((pfn + i) % NCOLOURS)) & 1))
			violation("pfn %lx: colour outside domain %lu's set", pfn + i, dom);
		uint8_t zero = 0;
		if (!__atomic_compare_exchange_n(&shadow[pfn + i], &zero, (uint8_t)dom, false,
		                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			violation("pfn %lx handed out while domain %lu holds it", pfn + i, zero);
	}
	if (want_zero && !all_zero(va, order, sample))
		violation("pfn %lx (order %lu) not zeroed", pfn, order);
	__atomic_fetch_add(&blocks_checked, 1, __ATOMIC_RELAXED);
}

static void check_release(void *va, unsigned order, lab_owner_t dom)
{
	uint64_t pfn = page_to_pfn(virt_to_page(va));
	for (unsigned i = 0; i < (1u << order); i++) {
		uint8_t want = (uint8_t)dom;
		if (!__atomic_compare_exchange_n(&shadow[pfn + i], &want, 0, false, __ATOMIC_ACQ_REL,
		                                 __ATOMIC_ACQUIRE))
			violation("pfn %lx freed by domain %lu but not held by it", pfn + i, dom);
	}
}

/* ---- the network card ------------------------------------------------------------------------- */
struct pkt {
	void *buf;
	uint64_t seq;
	lab_owner_t dom;
};

/* Single producer, single consumer. */
struct ring {
	struct pkt slot[RING_CAP];
	volatile uint64_t head, tail;
};

static bool ring_push(struct ring *r, struct pkt p)
{
	uint64_t t = __atomic_load_n(&r->tail, __ATOMIC_RELAXED);
	if (t - __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) >= RING_CAP)
		return false;
	r->slot[t % RING_CAP] = p;
	__atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
	return true;
}

static bool ring_pop(struct ring *r, struct pkt *p)
{
	uint64_t h = __atomic_load_n(&r->head, __ATOMIC_RELAXED);
	if (h == __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE))
		return false;
	*p = r->slot[h % RING_CAP];
	__atomic_store_n(&r->head, h + 1, __ATOMIC_RELEASE);
	return true;
}

static bool ring_empty(struct ring *r)
{
	return __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
}

struct wse { /* a block the main loop holds */
	void *va;
	uint32_t seq;
	uint8_t order, dom;
};

enum phase { FILL, HOLD, DRAIN };

struct scen {
	struct ring rx; /* filled by this CPU's interrupt, emptied by the next CPU's main loop */
	struct ring tx; /* filled by this CPU's main loop, completed by this CPU's interrupt   */
	uint64_t seq, rng;
	volatile bool rx_quiet; /* the interrupt saw the end and stopped receiving */
	/* interrupt side */
	uint64_t irq_allocs, drops, ring_full, irq_frees, irq_inside;
	/* main side */
	uint64_t rx_freed, forwarded, main_allocs, main_fails, main_frees, cycles, holds_verified;
	struct wse *ws;
	uint64_t ws_n, ws_max;
	enum phase phase;
	uint64_t hold_until, dom_rr;
	unsigned failed_doms;
	volatile uint64_t check_seen; /* the last lab_check round this CPU stopped for */
	uint64_t wd_last[MAX_CPUS], wd_tick[MAX_CPUS];
};
static struct scen scen[MAX_CPUS];

static volatile bool running, stop_rx, stop_main;
static uint64_t run_ticks_max = RUN_TICKS, watchdog_ticks = WATCHDOG_TICKS;
static bool selftest_hang, selftest_doublefree;
static volatile uint64_t check_round; /* odd: CPU 0 wants the others stopped */
static volatile uint64_t check_runs, check_fail, check_tsc;
static volatile bool deadlock;

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The receive path, with the driver fragment unchanged. */
static void rx_packet(struct percpu *pc, struct scen *s, lab_owner_t dom)
{
	pc->cur_dom = dom; /* the packet's domain */

	struct page *buffer_page; void *buffer;
	/* Must use GFP_ATOMIC because we're in interrupt context. */
	buffer_page = alloc_page(GFP_ATOMIC);
	if (!buffer_page) goto drop_packet;
	buffer = page_address(buffer_page);

	check_new(buffer, 0, dom, !dom_exclusive[dom], true);
	uint64_t seq = ++s->seq;
	fill(buffer, 0, seq);
	ring_push(&s->rx, (struct pkt){buffer, seq, dom}); /* room checked before */
	s->irq_allocs++;
	return;
drop_packet:
	s->drops++;
}

static void watchdog(struct percpu *pc, struct scen *s)
{
	for (unsigned c = 0; c < nr_cpus; c++) {
		uint64_t p = cpus[c].progress;
		if (cpus[c].idle || p != s->wd_last[c]) {
			s->wd_last[c] = p;
			s->wd_tick[c] = pc->ticks;
		} else if (pc->ticks - s->wd_tick[c] > watchdog_ticks && !deadlock) {
			deadlock = true;
			kfatal(EXIT_DEADLOCK,
			       "labyrinth kernel: DEADLOCK: cpu %u's main loop made no progress for %lu ticks "
			       "(seen from cpu %u); deadlocks 1\n",
			       c, watchdog_ticks, pc->id);
		}
	}
}

static void nic_interrupt(struct percpu *pc)
{
	struct scen *s = &scen[pc->id];
	pc->ticks++;
	if (!running)
		return;
	pc->in_irq++;
	if (pc->in_alloc)
		s->irq_inside++; /* held off by the allocator's irq save, or landed inside it */
	lab_owner_t saved = pc->cur_dom;

	/* Transmit completions: the buffers go back from interrupt context. */
	struct pkt p;
	for (unsigned k = 0; k < TX_PER_TICK && ring_pop(&s->tx, &p); k++) {
		if (!intact(p.buf, 0, p.seq))
			violation("TX buffer of pfn %lx overwritten (seq %lu)", page_to_pfn(p.buf), p.seq);
		check_release(p.buf, 0, p.dom);
		pc->cur_dom = p.dom;
		__free_page(virt_to_page(p.buf));
		s->irq_frees++;
	}
	/* One packet received. */
	if (stop_rx) {
		s->rx_quiet = true;
	} else if (s->rx.tail - s->rx.head >= RING_CAP) {
		s->ring_full++; /* no descriptor free: the card drops it */
	} else {
		rx_packet(pc, s, 1 + (lab_owner_t)(s->seq % NDOM));
	}
	pc->cur_dom = saved;
	if (pc->id == 0 && pc->ticks >= run_ticks_max)
		stop_rx = stop_main = true;
	watchdog(pc, s);
	pc->in_irq--;
}

static void sync_ipi(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	__atomic_fetch_add(&sync_acks, 1, __ATOMIC_RELEASE);
}

void isr_dispatch(struct irq_frame *f)
{
	switch (f->vector) {
	case VEC_PIT:
		nic_interrupt(this_cpu());
		pic_eoi(0);
		return;
	case VEC_LAPIC_TIMER:
		nic_interrupt(this_cpu());
		lapic_eoi();
		return;
	case VEC_SYNC:
		sync_ipi();
		lapic_eoi();
		return;
	case VEC_PIC_SPURIOUS:
	case VEC_SPURIOUS:
		return;
	default:
		break;
	}
	uint64_t cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	kfatal(EXIT_PANIC,
	       "labyrinth kernel: PANIC: exception %lu (error %lx) at rip %lx, cr2 %lx, cpu %u\n",
	       f->vector, f->error, f->rip, cr2, lab_plat_cpu());
}

/* ---- the main loop ------------------------------------------------------------------------------ */

/* A linux.h call, marked so the interrupt can tell it arrived during one. */
#define IN_ALLOC(pc, expr) ({ (pc)->in_alloc = 1; __typeof__(expr) r_ = (expr); (pc)->in_alloc = 0; r_; })

static void free_block(struct percpu *pc, struct wse *e)
{
	if (!intact(e->va, e->order, e->seq))
		violation("block at pfn %lx (domain %lu) overwritten", page_to_pfn(e->va), e->dom);
	check_release(e->va, e->order, e->dom);
	pc->cur_dom = e->dom;
	if (e->order == 0 && (e->seq & 1))
		IN_ALLOC(pc, (free_page((unsigned long)e->va), 0));
	else
		IN_ALLOC(pc, (__free_pages(virt_to_page(e->va), e->order), 0));
}

/* Take packets off the previous CPU's RX ring; free them or forward them. */
static void consume_rx(struct percpu *pc, struct scen *s, unsigned max)
{
	struct scen *src = &scen[(pc->id + nr_cpus - 1) % nr_cpus];
	struct pkt p;
	for (unsigned k = 0; k < max && ring_pop(&src->rx, &p); k++) {
		if (!intact(p.buf, 0, p.seq))
			violation("RX buffer of pfn %lx overwritten (seq %lu)", page_to_pfn(p.buf), p.seq);
		uint64_t pfn = page_to_pfn(virt_to_page(p.buf));
		lab_owner_t o = 0;
		if (lab_frame_owner(zone_of(pfn)->z, pfn, &o, NULL) != LAB_OK || o != p.dom)
			violation("RX buffer pfn %lx not held by its domain %lu", pfn, p.dom);
		if ((p.seq & 3) == 0 && ring_push(&s->tx, p)) { /* forward: freed by our interrupt */
			s->forwarded++;
			continue;
		}
		check_release(p.buf, 0, p.dom);
		pc->cur_dom = p.dom;
		if (p.seq & 1)
			IN_ALLOC(pc, (free_page((unsigned long)p.buf), 0));
		else
			IN_ALLOC(pc, (__free_page(virt_to_page(p.buf)), 0));
		s->rx_freed++;
	}
}

/* CPU 0: stop every CPU outside the allocator, interrupts off, and run
 * lab_check on every zone.  The others: stop when asked. */
static void check_point(struct percpu *pc, struct scen *s)
{
	if (pc->id != 0) {
		uint64_t r = check_round;
		if ((r & 1) && s->check_seen != r) {
			unsigned long f = irq_save_flags();
			__atomic_store_n(&s->check_seen, r, __ATOMIC_RELEASE);
			while (check_round == r) /* CPU 0 is checking */
				cpu_relax();
			irq_restore_flags(f);
		}
		return;
	}
	uint64_t r = __atomic_add_fetch(&check_round, 1, __ATOMIC_ACQ_REL); /* odd */
	for (unsigned c = 1; c < nr_cpus; c++) /* an idle CPU is done with the zones */
		while (__atomic_load_n(&scen[c].check_seen, __ATOMIC_ACQUIRE) != r && !cpus[c].idle)
			cpu_relax(); /* the watchdog on CPU 0's timer catches a CPU that never comes */
	unsigned long f = irq_save_flags();
	uint64_t c0 = rdtsc();
	for (unsigned i = 0; i < nr_zones; i++) {
		int rc = lab_check(zones[i].z);
		if (rc != LAB_OK) {
			check_fail++;
			violation("lab_check(zone %lu): %lx", i, (uint64_t)rc);
		}
	}
	check_runs++;
	check_tsc += rdtsc() - c0;
	irq_restore_flags(f);
	__atomic_add_fetch(&check_round, 1, __ATOMIC_ACQ_REL); /* even: go on */
}

static void main_step(struct percpu *pc, struct scen *s)
{
	uint64_t r = xs(&s->rng);
	switch (s->phase) {
	case FILL: {
		consume_rx(pc, s, 4);
		lab_owner_t dom = 0;
		for (unsigned k = 0; k < NDOM && !dom; k++) { /* the next domain not yet at its reserve */
			lab_owner_t d = 1 + (lab_owner_t)((s->dom_rr + k) % NDOM);
			if (!(s->failed_doms & (1u << d)))
				dom = d;
		}
		s->dom_rr++;
		if (!dom) {
			s->phase = HOLD;
			s->hold_until = pc->ticks + HOLD_TICKS;
			break;
		}
		unsigned order = (r & 15) == 0 ? 1 + (unsigned)((r >> 4) % 3) : 0;
		bool zero = ((r >> 8) & 7) == 0;
		gfp_t gfp = GFP_NOWAIT | (zero ? __GFP_ZERO : 0);
		pc->cur_dom = dom;
		void *va = NULL;
		if (order == 0 && ((r >> 12) & 1))
			va = (void *)IN_ALLOC(pc, __get_free_page(gfp));
		else if (order == 0 && zero)
			va = (void *)IN_ALLOC(pc, get_zeroed_page(GFP_NOWAIT));
		else
			va = IN_ALLOC(pc, page_address(alloc_pages(gfp, order)));
		if (!va) {
			s->main_fails++;
			if (order == 0)
				s->failed_doms |= 1u << dom;
			if (s->failed_doms == 0xe || s->ws_n + 8 >= s->ws_max) { /* every domain at its reserve */
				s->phase = HOLD;
				s->hold_until = pc->ticks + HOLD_TICKS;
			}
			break;
		}
		check_new(va, order, dom, zero || !dom_exclusive[dom], false);
		struct wse *e = &s->ws[s->ws_n++];
		*e = (struct wse){va, (uint32_t)r, (uint8_t)order, (uint8_t)dom};
		fill(va, order, e->seq);
		s->main_allocs++;
		if (s->ws_n + 8 >= s->ws_max) {
			s->phase = HOLD;
			s->hold_until = pc->ticks + HOLD_TICKS;
		}
		break;
	}
	case HOLD: /* busy elsewhere: the RX ring backs up, the card eats the reserve */
		if (s->ws_n) {
			struct wse *e = &s->ws[r % s->ws_n];
			if (!intact(e->va, e->order, e->seq))
				violation("held block at pfn %lx overwritten (domain %lu)", page_to_pfn(e->va), e->dom);
			s->holds_verified++;
		}
		if (pc->ticks >= s->hold_until)
			s->phase = DRAIN;
		break;
	case DRAIN:
		consume_rx(pc, s, 8);
		for (int k = 0; k < 4 && s->ws_n; k++) {
			uint64_t i = xs(&s->rng) % s->ws_n;
			free_block(pc, &s->ws[i]);
			s->ws[i] = s->ws[--s->ws_n];
			s->main_frees++;
		}
		if (s->ws_n <= (r % 64)) {
			s->phase = FILL;
			s->failed_doms = 0;
			s->cycles++;
		}
		break;
	}
}

static uint64_t next_check;

static void main_loop(struct percpu *pc)
{
	struct scen *s = &scen[pc->id];
	while (!stop_main) {
		pc->progress++;
		main_step(pc, s);
		if (selftest_hang && pc->id == 0 && s->main_allocs > 1000)
			for (;;) /* the watchdog must see this */
				wait_for_interrupt();
		if (selftest_doublefree && pc->id == 0 && s->ws_n > 10) {
			selftest_doublefree = false; /* linux.h must warn: one violation */
			struct wse *e = &s->ws[0];
			pc->cur_dom = e->dom;
			__free_pages(virt_to_page(e->va), e->order + 1);
		}
		if (pc->id == 0 && pc->ticks >= next_check && !stop_main) {
			next_check = pc->ticks + CHECK_TICKS;
			check_point(pc, s);
		} else if (pc->id != 0) {
			check_point(pc, s);
		}
	}
}

/* The end of the run on one CPU: give everything back, wait for the card to
 * finish the transmissions, drain this CPU's caches. */
static void finish(struct percpu *pc)
{
	struct scen *s = &scen[pc->id];
	struct scen *src = &scen[(pc->id + nr_cpus - 1) % nr_cpus];
	/* Other CPUs keep answering CPU 0's check rounds until they are idle. */
	while (!src->rx_quiet || !ring_empty(&src->rx)) {
		pc->progress++;
		consume_rx(pc, s, 64);
		if (pc->id != 0)
			check_point(pc, s);
	}
	while (s->ws_n) {
		pc->progress++;
		free_block(pc, &s->ws[--s->ws_n]);
		s->main_frees++;
		if (pc->id != 0)
			check_point(pc, s);
	}
	while (!ring_empty(&s->tx)) {
		pc->progress++;
		wait_for_interrupt();
		if (pc->id != 0)
			check_point(pc, s);
	}
	unsigned long f = irq_save_flags();
	for (unsigned i = 0; i < nr_zones; i++)
		lab_cpu_drain(zones[i].z);
	irq_restore_flags(f);
}

/* ---- GFP_KERNEL: wait for an interrupt to free something --------------------------------------------- */
static volatile uint64_t kwaits;

static int kernel_wait(void *arg, uint64_t seq)
{
	(void)arg;
	struct percpu *pc = this_cpu();
	if (pc->in_irq || !irqs_enabled()) {
		lab_linux_warn("GFP_KERNEL with interrupts off", LAB_EINVAL, NULL);
		return -1;
	}
	uint64_t t0 = pc->ticks;
	while (lab_linux_free_seq() == seq) { /* bound: WAIT_TICKS */
		if (pc->ticks - t0 > WAIT_TICKS)
			return -1;
		pc->progress++;
		wait_for_interrupt();
	}
	kwaits++;
	return 0;
}

/* Domain 1 takes everything (the reserve too), hands 200 frames to the
 * card for transmission, and asks for one more with GFP_KERNEL: it must
 * sleep until the interrupt's completions have freed more than the reserve
 * GFP_KERNEL may not touch.  Returns the ticks it waited. */
static uint64_t gfp_kernel_demo(struct percpu *pc, bool *ok)
{
	struct scen *s = &scen[0];
	*ok = false;
	pc->cur_dom = 1;
	s->ws_n = 0;
	void *va;
	while (s->ws_n < s->ws_max && (va = (void *)__get_free_page(GFP_ATOMIC)) != NULL) {
		check_new(va, 0, 1, false, false);
		s->ws[s->ws_n] = (struct wse){va, (uint32_t)s->ws_n, 0, 1};
		fill(va, 0, s->ws_n);
		s->ws_n++;
	}
	if (alloc_page(GFP_NOWAIT) || alloc_page(GFP_KERNEL | __GFP_NOWARN) != NULL) {
		violation("domain 1 not exhausted after %lu pages", s->ws_n, 0);
		return 0;
	}
	unsigned give = s->ws_n < 200 ? (unsigned)s->ws_n : 200;
	lab_linux_set_wait(kernel_wait, NULL, NULL);
	for (unsigned i = 0; i < give; i++) {
		struct wse *e = &s->ws[--s->ws_n];
		ring_push(&s->tx, (struct pkt){e->va, e->seq, 1});
	}
	uint64_t t0 = pc->ticks;
	struct page *pg = alloc_page(GFP_KERNEL);
	uint64_t waited = pc->ticks - t0;
	if (pg) {
		check_new(page_address(pg), 0, 1, false, false);
		check_release(page_address(pg), 0, 1);
		__free_page(pg);
		*ok = true;
	}
	lab_linux_set_wait(NULL, NULL, NULL);
	while (s->ws_n) {
		free_block(pc, &s->ws[--s->ws_n]);
		s->main_frees++;
	}
	while (!ring_empty(&s->tx))
		wait_for_interrupt();
	return waited;
}

/* ---- boot --------------------------------------------------------------------------------------------------- */
extern char __kernel_start[], __kernel_end[];
extern char trampoline_start[], trampoline_end[];
extern volatile uint64_t ap_boot_stack;
extern uint64_t pd[];

struct mmap_ent {
	uint64_t base, len;
	uint32_t type;
};
static struct mmap_ent mmap_copy[64];
static unsigned mmap_n;
static char cmdline[256];

static void read_multiboot(uint32_t magic, uint64_t info)
{
	if (magic != 0x2badb002)
		kfatal(EXIT_PANIC, "labyrinth kernel: not started by a multiboot loader (magic %x)\n", magic);
	const uint8_t *mbi = phys_to_virt(info);
	uint32_t flags = *(const uint32_t *)mbi;
	if (flags & (1u << 2)) {
		const char *c = phys_to_virt(*(const uint32_t *)(mbi + 16));
		size_t i = 0;
		for (; c[i] && i + 1 < sizeof(cmdline); i++)
			cmdline[i] = c[i];
		cmdline[i] = 0;
	}
	if (!(flags & (1u << 6)))
		kfatal(EXIT_PANIC, "labyrinth kernel: the bootloader gave no memory map\n");
	uint32_t len = *(const uint32_t *)(mbi + 44), addr = *(const uint32_t *)(mbi + 48);
	for (uint32_t off = 0; off < len && mmap_n < 64;) {
		const uint8_t *e = phys_to_virt(addr + off);
		uint32_t size = *(const uint32_t *)e;
		memcpy(&mmap_copy[mmap_n].base, e + 4, 8);
		memcpy(&mmap_copy[mmap_n].len, e + 12, 8);
		memcpy(&mmap_copy[mmap_n].type, e + 20, 4);
		mmap_n++;
		off += size + 4;
	}
}

static uint64_t cmdline_num(const char *key, uint64_t dflt)
{
	size_t n = strlen(key);
	for (const char *p = cmdline; *p; p++)
		if ((p == cmdline || p[-1] == ' ') && memcmp(p, key, n) == 0 && p[n] == '=') {
			uint64_t v = 0;
			for (p += n + 1; *p >= '0' && *p <= '9'; p++)
				v = v * 10 + (uint64_t)(*p - '0');
			return v;
		}
	return dflt;
}

static bool cmdline_has(const char *word)
{
	size_t n = strlen(word);
	for (const char *p = cmdline; *p; p++)
		if ((p == cmdline || p[-1] == ' ') && memcmp(p, word, n) == 0 && (p[n] == 0 || p[n] == ' '))
			return true;
	return false;
}

/* CPUs from the ACPI MADT (processor local APIC entries, enabled). */
static unsigned apic_ids[MAX_CPUS];

static const uint8_t *find_rsdp(void)
{
	uint64_t ebda = (uint64_t)(*(const volatile uint16_t *)phys_to_virt(0x40e)) << 4;
	uint64_t ranges[2][2] = {{ebda, ebda + 1024}, {0xe0000, 0x100000}};
	for (int r = 0; r < 2; r++)
		for (uint64_t a = ranges[r][0] & ~15ull; a + 20 <= ranges[r][1]; a += 16)
			if (ranges[r][0] && memcmp(phys_to_virt(a), "RSD PTR ", 8) == 0)
				return phys_to_virt(a);
	return NULL;
}

static unsigned find_cpus(void)
{
	unsigned n = 0;
	const uint8_t *rsdp = find_rsdp();
	if (rsdp) {
		const uint8_t *rsdt = phys_to_virt(*(const uint32_t *)(rsdp + 16));
		uint32_t rlen = *(const uint32_t *)(rsdt + 4);
		for (uint32_t i = 36; i + 4 <= rlen; i += 4) {
			const uint8_t *t = phys_to_virt(*(const uint32_t *)(rsdt + i));
			if (memcmp(t, "APIC", 4) != 0)
				continue;
			uint32_t tlen = *(const uint32_t *)(t + 4);
			for (uint32_t o = 44; o + 2 <= tlen;) {
				uint8_t type = t[o], elen = t[o + 1];
				if (elen < 2)
					break;
				if (type == 0 && (*(const uint32_t *)(t + o + 4) & 1) && n < MAX_CPUS)
					apic_ids[n++] = t[o + 3];
				o += elen;
			}
		}
	}
	if (n == 0) {
		apic_ids[0] = lapic_id();
		n = 1;
	}
	return n;
}

static void delay_ticks(uint64_t t)
{
	uint64_t t0 = cpus[0].ticks;
	while (cpus[0].ticks - t0 < t)
		wait_for_interrupt();
}

static volatile unsigned ap_started;
static volatile bool ap_go;
static uint32_t lapic_count;
static uint8_t ap_stacks[MAX_CPUS][65536] __attribute__((aligned(16)));

void ap_entry(void);
void ap_entry(void)
{
	idt_load();
	unsigned me = ap_started; /* the BSP starts one AP at a time */
	struct percpu *pc = &cpus[me];
	percpu_install(pc);
	lapic_enable();
	pc->apic_id = lapic_id();
	__atomic_store_n(&ap_started, me + 1, __ATOMIC_RELEASE);
	while (!ap_go)
		cpu_relax();
	lapic_timer_periodic(VEC_LAPIC_TIMER, lapic_count);
	irq_enable();
	main_loop(pc);
	finish(pc);
	lapic_timer_stop();
	pc->idle = true;
	for (;;) /* stay reachable for lab_plat_sync_cpus' IPI */
		wait_for_interrupt();
}

static void start_aps(unsigned n)
{
	/* The LAPIC timer's rate, measured against the PIT: 100 ticks. */
	lapic_write(LAPIC_LVT_TIMER, 0x10000u); /* masked, one-shot */
	lapic_write(LAPIC_TIMER_DIV, 0x3);
	lapic_write(LAPIC_TIMER_INIT, 0xffffffffu);
	delay_ticks(100);
	uint32_t used = 0xffffffffu - lapic_read(LAPIC_TIMER_CUR);
	lapic_write(LAPIC_TIMER_INIT, 0);
	lapic_count = used / 100 ? used / 100 : 1;

	memcpy(phys_to_virt(TRAMPOLINE), trampoline_start, (size_t)(trampoline_end - trampoline_start));
	for (unsigned i = 1; i < n; i++) {
		ap_started = i;
		ap_boot_stack = (uint64_t)(uintptr_t)&ap_stacks[i][sizeof(ap_stacks[i])];
		lapic_send_ipi(apic_ids[i], 0x4500); /* INIT */
		delay_ticks(HZ / 100);                /* 10 ms */
		for (int k = 0; k < 2 && ap_started == i; k++) {
			lapic_send_ipi(apic_ids[i], 0x4600 | (TRAMPOLINE >> 12)); /* SIPI */
			delay_ticks(HZ / 100);
		}
		for (unsigned t = 0; t < 100 && ap_started == i; t++)
			delay_ticks(HZ / 100);
		if (ap_started != i + 1)
			kfatal(EXIT_PANIC, "labyrinth kernel: CPU with APIC id %u did not start\n", apic_ids[i]);
	}
}

/* Zones over the usable RAM of the memory map, metadata carved after the
 * kernel image. */
static uint8_t *carve_ptr, *carve_end;

static void *carve(size_t bytes)
{
	uint8_t *p = (uint8_t *)(((uintptr_t)carve_ptr + 4095) & ~(uintptr_t)4095);
	if (p + bytes > carve_end)
		kfatal(EXIT_PANIC, "labyrinth kernel: not enough memory after the kernel for %lu bytes\n",
		       (uint64_t)bytes);
	carve_ptr = p + bytes;
	return p;
}

static void reserve(struct kzone *kz, uint64_t lo, uint64_t hi)
{
	if (lo < kz->base)
		lo = kz->base;
	if (hi > kz->base + kz->nr)
		hi = kz->base + kz->nr;
	if (lo >= hi)
		return;
	int rc = lab_zone_reserve_range(kz->z, lo, hi - lo);
	if (rc != LAB_OK)
		kfatal(EXIT_PANIC, "labyrinth kernel: lab_zone_reserve_range: %s\n", lab_strerror(rc));
	kz->reserved += hi - lo;
}

static void setup_zones(void)
{
	uint64_t kstart = (uint64_t)(uintptr_t)__kernel_start, kend = (uint64_t)(uintptr_t)__kernel_end;
	struct { uint64_t lo, hi; } r[MAX_ZONES];
	unsigned n = 0;
	kprintf("labyrinth kernel: memory map:\n");
	for (unsigned i = 0; i < mmap_n; i++) {
		struct mmap_ent *e = &mmap_copy[i];
		kprintf("  %016lx-%016lx %s\n", e->base, e->base + e->len - 1,
		        e->type == 1 ? "usable" : "reserved");
		if (e->type != 1)
			continue;
		uint64_t lo = (e->base + 4095) >> 12, hi = (e->base + e->len) >> 12;
		if (hi > DMAP_LIMIT >> 12)
			hi = DMAP_LIMIT >> 12; /* beyond the direct map: not used */
		if (hi < lo + 16 || n == MAX_ZONES)
			continue;
		/* Largest range first: it is the default zone, the rest fall back. */
		unsigned at = n++;
		while (at > 0 && r[at - 1].hi - r[at - 1].lo < hi - lo) {
			r[at] = r[at - 1];
			at--;
		}
		r[at].lo = lo;
		r[at].hi = hi;
	}
	/* The metadata goes right after the kernel, in the range holding it. */
	carve_ptr = (uint8_t *)(uintptr_t)kend;
	for (unsigned i = 0; i < n; i++)
		if (kend >> 12 >= r[i].lo && kend >> 12 < r[i].hi)
			carve_end = (uint8_t *)(uintptr_t)(r[i].hi << 12);
	if (!carve_end || n == 0)
		kfatal(EXIT_PANIC, "labyrinth kernel: no usable RAM after the kernel\n");

	for (unsigned i = 0; i < n; i++) {
		struct kzone *kz = &zones[nr_zones];
		struct lab_zone_cfg cfg;
		kz->base = r[i].lo;
		kz->nr = r[i].hi - r[i].lo;
		lab_zone_cfg_default(&cfg, kz->base, kz->nr, phys_to_virt(kz->base << 12));
		cfg.nr_colours = NCOLOURS;
		cfg.nr_cpus = nr_cpus;
		cfg.max_owners = 8;
		cfg.flags = 0; /* RAM from the firmware is not known to be zero: lab_scrub() below */
		size_t need = lab_zone_meta_size(&cfg);
		void *meta = carve(need);
		int rc = lab_zone_init(&kz->z, meta, need, &cfg);
		if (rc != LAB_OK)
			kfatal(EXIT_PANIC, "labyrinth kernel: lab_zone_init: %s\n", lab_strerror(rc));
		nr_zones++;
		total_frames += kz->nr;
	}
	/* Working sets of the main loops: carved too. */
	for (unsigned c = 0; c < nr_cpus; c++) {
		scen[c].ws_max = total_frames + 64;
		scen[c].ws = carve(scen[c].ws_max * sizeof(struct wse));
	}
	uint64_t carve_top = ((uint64_t)(uintptr_t)carve_ptr + 4095) >> 12;
	for (unsigned i = 0; i < nr_zones; i++) {
		struct kzone *kz = &zones[i];
		reserve(kz, kstart >> 12, carve_top); /* kernel image and metadata */
		reserve(kz, 0, 1);                    /* real-mode IVT and BIOS data */
		reserve(kz, TRAMPOLINE >> 12, (TRAMPOLINE >> 12) + 1); /* the AP trampoline */
		for (lab_owner_t d = 1; d <= NDOM; d++) {
			struct lab_owner_cfg oc = {.colours = dom_colours[d], .quota = 0,
			                           .flags = dom_exclusive[d] ? LAB_OWNER_EXCLUSIVE : 0};
			int rc = lab_owner_add(kz->z, d, &oc);
			if (rc != LAB_OK)
				kfatal(EXIT_PANIC, "labyrinth kernel: lab_owner_add(%u): %s\n", d, lab_strerror(rc));
		}
		size_t done = 0;
		while (lab_scrub(kz->z, 1u << 20, &done) == LAB_EAGAIN)
			;
		struct lab_stats st;
		lab_stats(kz->z, &st);
		kprintf("labyrinth kernel: zone %u: pfn %lx-%lx, %lu frames, %lu reserved, %lu free, "
		        "atomic reserve %lu, %lu KiB metadata\n",
		        i, kz->base, kz->base + kz->nr - 1, kz->nr, st.nr_reserved, st.nr_free,
		        st.reserve_frames, (uint64_t)(lab_zone_meta_size(&(struct lab_zone_cfg){
		                               .base_pfn = kz->base, .nr_frames = kz->nr,
		                               .dmap_base = phys_to_virt(kz->base << 12), .nr_colours = NCOLOURS,
		                               .nr_cpus = nr_cpus, .max_owners = 8, .reserve_permille = 15}) >> 10));
	}
	lab_zone_t *zl[MAX_ZONES];
	for (unsigned i = 0; i < nr_zones; i++)
		zl[i] = zones[i].z;
	lab_linux_set_zones(zl, nr_zones);
	lab_linux_set_owner(current_domain);
	lab_linux_set_warn(linux_warn);
}

void kmain(uint32_t magic, uint64_t info);
void kmain(uint32_t magic, uint64_t info)
{
	serial_init();
	read_multiboot(magic, info);
	kprintf("\nlabyrinth kernel: booting (labyrinth %s), command line \"%s\"\n", LAB_VERSION_STRING,
	        cmdline);
	percpu_install(&cpus[0]);
	idt_init();
	idt_load();
	platform_init();
	if (cmdline_has("irqsave=off"))
		plat_mask_irqs = false;
	bool want_smp = !cmdline_has("nosmp");
	run_ticks_max = cmdline_num("ticks", RUN_TICKS);
	watchdog_ticks = cmdline_num("watchdog", WATCHDOG_TICKS);
	selftest_hang = cmdline_has("selftest=hang");
	selftest_doublefree = cmdline_has("selftest=doublefree");

	/* Uncached for the MMIO hole above 3 GiB (the local APIC). */
	for (unsigned i = 1536; i < 2048; i++)
		pd[i] |= 0x18; /* PCD | PWT */
	__asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
	lapic_enable();
	cpus[0].apic_id = lapic_id();
	unsigned found = find_cpus();
	nr_cpus = want_smp ? found : 1;
	for (unsigned c = 0; c < MAX_CPUS; c++) {
		cpus[c].id = c;
		scen[c].rng = 0x9e3779b97f4a7c15ull * (c + 1);
	}

	kprintf("labyrinth kernel: %u CPU(s), entropy %s%s, lab_plat_irq_save %s\n", nr_cpus, entropy_source,
	        entropy_source[0] == 'T' ? " (NOT cryptographic: this CPU has no RDRAND/RDSEED; boot with "
	                                   "-cpu max)"
	                                 : "",
	        plat_mask_irqs ? "masks interrupts (pushf; cli)" : "does NOT mask interrupts (nested mode)");
	setup_zones();

	pic_init();
	pit_init(HZ);
	pic_unmask(0);
	irq_enable();
	if (nr_cpus > 1)
		start_aps(nr_cpus);

	kprintf("labyrinth kernel: running %lu ticks at %u Hz on %u CPU(s), %s timer\n", run_ticks_max, HZ, nr_cpus,
	        nr_cpus > 1 ? "PIT + local APIC" : "PIT");
	next_check = cpus[0].ticks + CHECK_TICKS;
	uint64_t tsc0 = rdtsc(), tick0 = cpus[0].ticks;
	running = true;
	ap_go = true;
	main_loop(&cpus[0]);
	finish(&cpus[0]);
	for (unsigned c = 1; c < nr_cpus; c++)
		while (!cpus[c].idle)
			wait_for_interrupt();
	uint64_t run_ticks = cpus[0].ticks - tick0, run_tsc = rdtsc() - tsc0;

	bool kw_ok;
	uint64_t kw_ticks = gfp_kernel_demo(&cpus[0], &kw_ok);
	running = false;
	pic_mask_all();
	irq_disable();

	/* Everything is back: nothing allocated, every invariant holds. */
	struct lab_stats st, sum;
	memset(&sum, 0, sizeof(sum));
	for (unsigned i = 0; i < nr_zones; i++) {
		if (lab_check(zones[i].z) != LAB_OK)
			violation("final lab_check(zone %lu) failed", i, 0);
		check_runs++;
		lab_stats(zones[i].z, &st);
		if (st.nr_allocated != 0)
			violation("zone %lu: %lu frames still allocated (leak)", i, st.nr_allocated);
		sum.allocs += st.allocs;
		sum.frees += st.frees;
		sum.reserve_allocs += st.reserve_allocs;
		sum.nested_calls += st.nested_calls;
		sum.fail_nomem += st.fail_nomem;
		sum.scrubbed += st.scrubbed;
	}
	for (uint64_t p = 0; p < (1u << 20); p++)
		if (shadow[p])
			violation("pfn %lx still held by domain %lu", p, shadow[p]);
	struct lab_linux_stats ls;
	lab_linux_stats(&ls);
	if (ls.parked_now)
		violation("%lu frees parked and never finished", ls.parked_now, 0);
	if (!kw_ok)
		violation("GFP_KERNEL did not get a page after %lu ticks", kw_ticks, 0);

	/* The domains go away: their frames are zeroed before the colours are free. */
	irq_enable();
	for (unsigned i = 0; i < nr_zones; i++) {
		for (lab_owner_t d = 1; d <= NDOM; d++) {
			int rc;
			while ((rc = lab_owner_remove(zones[i].z, d, 4096)) == LAB_EAGAIN)
				;
			if (rc != LAB_OK)
				violation("lab_owner_remove(%lu): %lx", d, (uint64_t)rc);
		}
		lab_stats(zones[i].z, &st);
		if (st.nr_owners != 0 || st.nr_allocated != 0 || st.nr_free != 0)
			violation("zone %lu after removal: owners/free %lx", i, (uint64_t)st.nr_owners << 32 | st.nr_free);
		if (lab_check(zones[i].z) != LAB_OK)
			violation("lab_check after removal (zone %lu)", i, 0);
	}
	uint64_t nonzero = 0;
	for (unsigned i = 0; i < nr_zones; i++)
		for (uint64_t p = zones[i].base; p < zones[i].base + zones[i].nr; p++) {
			lab_owner_t o;
			unsigned ord;
			uint64_t *w = phys_to_virt(p << 12);
			if (p < (uint64_t)(uintptr_t)carve_ptr >> 12 && p >= (uint64_t)(uintptr_t)__kernel_start >> 12)
				continue; /* the kernel and its metadata */
			if (p == 0 || p == TRAMPOLINE >> 12 || lab_frame_owner(zones[i].z, p, &o, &ord) != LAB_OK)
				continue;
			if (!all_zero(w, 0, false))
				nonzero++;
		}
	if (nonzero)
		violation("%lu frames not zero after their owners went away", nonzero, 0);

	uint64_t irq_allocs = 0, drops = 0, ring_full = 0, irq_frees = 0, inside = 0, main_allocs = 0,
	         main_frees = 0, rx_freed = 0, cycles = 0;
	for (unsigned c = 0; c < nr_cpus; c++) {
		struct scen *s = &scen[c];
		irq_allocs += s->irq_allocs;
		drops += s->drops;
		ring_full += s->ring_full;
		irq_frees += s->irq_frees;
		inside += s->irq_inside;
		main_allocs += s->main_allocs;
		main_frees += s->main_frees;
		rx_freed += s->rx_freed;
		cycles += s->cycles;
		kprintf("labyrinth kernel: cpu %u: %lu ticks, irq allocations %lu, drops %lu, irq frees %lu, "
		        "main allocations %lu, main frees %lu, fill cycles %lu\n",
		        c, cpus[c].ticks, s->irq_allocs, s->drops, s->irq_frees, s->main_allocs,
		        s->main_frees + s->rx_freed, s->cycles);
	}
	kprintf("labyrinth kernel: core: %lu allocations, %lu frees, %lu failed (no memory), %lu frames scrubbed, "
	        "%lu blocks checked\n",
	        sum.allocs, sum.frees, sum.fail_nomem, sum.scrubbed, blocks_checked);
	kprintf("labyrinth kernel: GFP_KERNEL waited %lu ticks for interrupt-context frees and got its page (%lu "
	        "wake-ups)\n",
	        kw_ticks, kwaits);
	kprintf("labyrinth kernel: run of %lu ticks took %lu M TSC cycles, lab_check %lu M\n", run_ticks,
	        run_tsc >> 20, check_tsc >> 20);
	kprintf("labyrinth kernel: cpus %u, zones %u, irq allocations %lu, drops %lu, frees %lu, "
	        "reserve dips %lu, irqs inside allocator %lu, nested calls %lu, lab_check runs %lu, "
	        "violations %lu, deadlocks 0\n",
	        nr_cpus, nr_zones, irq_allocs, drops, irq_frees + rx_freed + main_frees, sum.reserve_allocs,
	        inside, sum.nested_calls, check_runs, violations);
	if (violations) {
		kprintf("labyrinth kernel: FAIL\n");
		qemu_exit(EXIT_FAIL);
	}
	kprintf("labyrinth kernel: PASS\n");
	qemu_exit(EXIT_PASS);
}
