/*
 * x86.c - the devices: COM1, the 8259 PICs, the 8254 PIT, the local APIC,
 * the IDT, and QEMU's isa-debug-exit port.
 */
#include "x86.h"

/* ---- COM1: 115200 8N1, polled ------------------------------------------------------ */
#define COM1 0x3f8

void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* divisor 1: 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0xc7); /* FIFO on, cleared */
	outb(COM1 + 4, 0x03); /* DTR, RTS */
}

static void serial_putc(char c)
{
	for (unsigned i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++) /* bound: a stuck UART */
		cpu_relax();
	outb(COM1, (uint8_t)c);
}

void serial_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			serial_putc('\r');
		serial_putc(s[i]);
	}
}

/* ---- 8259 PIC: remapped to 0x20-0x2f, everything masked but what we unmask ---------- */
static uint16_t pic_masks = 0xffff;

void pic_init(void)
{
	outb(0x20, 0x11); io_wait();  /* ICW1: init, ICW4 follows */
	outb(0xa0, 0x11); io_wait();
	outb(0x21, 0x20); io_wait();  /* ICW2: master at vector 0x20 */
	outb(0xa1, 0x28); io_wait();  /*       slave at 0x28 */
	outb(0x21, 0x04); io_wait();  /* ICW3: slave on IRQ 2 */
	outb(0xa1, 0x02); io_wait();
	outb(0x21, 0x01); io_wait();  /* ICW4: 8086 mode */
	outb(0xa1, 0x01); io_wait();
	pic_mask_all();
}

void pic_mask_all(void)
{
	pic_masks = 0xffff;
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

void pic_unmask(unsigned irq)
{
	pic_masks &= (uint16_t)~(1u << irq);
	outb(0x21, (uint8_t)pic_masks);
	outb(0xa1, (uint8_t)(pic_masks >> 8));
}

void pic_eoi(unsigned irq)
{
	if (irq >= 8)
		outb(0xa0, 0x20);
	outb(0x20, 0x20);
}

/* ---- 8254 PIT channel 0, rate generator --------------------------------------------- */
void pit_init(unsigned hz)
{
	unsigned div = 1193182u / hz;
	outb(0x43, 0x34); /* channel 0, lo/hi, mode 2 */
	outb(0x40, (uint8_t)div);
	outb(0x40, (uint8_t)(div >> 8));
}

/* ---- local APIC, through the identity map ------------------------------------------ */
#define LAPIC_BASE 0xfee00000u

uint32_t lapic_read(uint32_t reg)
{
	return *(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg);
}

void lapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg) = v;
}

void lapic_enable(void)
{
	wrmsr(0x1b, (rdmsr(0x1b) & ~0xfffull) | LAPIC_BASE | 0x800); /* IA32_APIC_BASE: enabled */
	lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS);
}

unsigned lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

void lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}

void lapic_timer_periodic(uint8_t vector, uint32_t count)
{
	lapic_write(LAPIC_TIMER_DIV, 0x3); /* divide by 16 */
	lapic_write(LAPIC_LVT_TIMER, 0x20000u | vector);
	lapic_write(LAPIC_TIMER_INIT, count);
}

void lapic_timer_stop(void)
{
	lapic_write(LAPIC_LVT_TIMER, 0x10000u); /* masked */
	lapic_write(LAPIC_TIMER_INIT, 0);
}

void lapic_send_ipi(unsigned apic_id, uint32_t icr_low)
{
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, icr_low);
	for (unsigned i = 0; i < 1000000 && (lapic_read(LAPIC_ICR_LO) & 0x1000); i++) /* delivery pending */
		cpu_relax();
}

/* ---- IDT -------------------------------------------------------------------------------- */
struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_entry idt[256] __attribute__((aligned(16)));
extern const uint64_t isr_table[256];

void idt_init(void)
{
	for (unsigned v = 0; v < 256; v++) {
		uint64_t a = isr_table[v];
		idt[v] = (struct idt_entry){(uint16_t)a, 0x08, 0, 0x8e /* present, interrupt gate */,
		                            (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
	}
}

void idt_load(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) p = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
	__asm__ volatile("lidt %0" : : "m"(p));
}

/* ---- isa-debug-exit ------------------------------------------------------------------------ */
void qemu_exit(uint32_t code)
{
	outl(0xf4, code);
	for (;;) /* without the device: stop here */
		__asm__ volatile("cli; hlt");
}
