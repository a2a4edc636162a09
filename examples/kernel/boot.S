/*
 * boot.S - multiboot entry, long mode, interrupt stubs and the AP trampoline.
 *
 * QEMU's -kernel (or GRUB) loads us as a multiboot ELF32 at 1 MiB and jumps
 * to _start in 32-bit protected mode, paging off, EAX = 0x2BADB002, EBX = the
 * multiboot information.  We build page tables that map the first 4 GiB
 * twice with 2 MiB pages (identity, where the kernel runs, and at
 * 0xffff800000000000, the direct map labyrinth's zones use), enter long mode
 * and call kmain(magic, info).
 */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-aligned modules, memory map */

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.section .bss
	.align 4096
	.globl pml4, pd
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4 * 4096          /* 4 page directories: 4 GiB of 2 MiB pages */
	.align 16
bsp_stack:
	.skip 65536
bsp_stack_top:

	.section .data
	.align 8
	.globl mb_magic, mb_info, ap_boot_stack
mb_magic:	.quad 0
mb_info:	.quad 0
ap_boot_stack:	.quad 0

	.align 16
	.globl gdt64
gdt64:
	.quad 0
	.quad 0x00af9a000000ffff /* 0x08: 64-bit code           */
	.quad 0x00cf92000000ffff /* 0x10: data                  */
	.quad 0x00cf9a000000ffff /* 0x18: 32-bit code (APs)     */
gdt64_end:
gdt64_ptr:
	.word gdt64_end - gdt64 - 1
	.quad gdt64

	.section .text.boot, "ax"
	.code32
	.globl _start
_start:
	cli
	cld
	mov %eax, %esi                  /* keep magic and info across the bss clear */
	mov $__bss_start, %edi
	mov $__bss_end, %ecx
	sub %edi, %ecx
	xor %eax, %eax
	rep stosb
	mov %esi, mb_magic
	mov %ebx, mb_info
	mov $bsp_stack_top, %esp

	/* 2048 PD entries: entry i maps [i * 2 MiB, (i + 1) * 2 MiB), present,
	 * writable, large page. */
	mov $pd, %edi
	xor %ecx, %ecx
1:	mov %ecx, %eax
	shl $21, %eax
	or $0x83, %eax
	mov %eax, (%edi,%ecx,8)
	movl $0, 4(%edi,%ecx,8)
	inc %ecx
	cmp $2048, %ecx
	jb 1b
	/* PDPT[0..3] -> the 4 PDs */
	mov $pdpt, %edi
	mov $pd + 3, %eax
	mov %eax, 0(%edi)
	add $4096, %eax
	mov %eax, 8(%edi)
	add $4096, %eax
	mov %eax, 16(%edi)
	add $4096, %eax
	mov %eax, 24(%edi)
	/* PML4[0] (identity) and PML4[256] (0xffff800000000000) -> the PDPT */
	mov $pdpt + 3, %eax
	mov %eax, pml4
	mov %eax, pml4 + 256 * 8

	mov $pml4, %eax
	mov %eax, %cr3
	mov %cr4, %eax
	or $0x20, %eax                  /* PAE */
	mov %eax, %cr4
	mov $0xc0000080, %ecx           /* EFER.LME */
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax            /* PG | PE */
	mov %eax, %cr0
	lgdt gdt64_ptr
	ljmp $0x08, $long_start

	.code64
/* Data segments for long mode: the GDT's data descriptor, %fs/%gs null
 * (the C code sets %gs to its per-CPU block). */
.macro load_data_segments
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	xor %ax, %ax
	mov %ax, %fs
	mov %ax, %gs
.endm

long_start:
	load_data_segments
	mov $bsp_stack_top, %rsp
	mov mb_magic(%rip), %rdi
	mov mb_info(%rip), %rsi
	call kmain
2:	cli
	hlt
	jmp 2b

/* An application processor arrives here from the trampoline, in long mode
 * on the shared page tables, with its stack in ap_boot_stack. */
	.globl ap_long
ap_long:
	load_data_segments
	mov ap_boot_stack(%rip), %rsp
	call ap_entry
3:	cli
	hlt
	jmp 3b

/* ---- interrupt stubs ----------------------------------------------------------
 * Each pushes an error code (0 where the CPU pushes none) and its vector,
 * then isr_common saves the caller-saved registers (the C handler keeps the
 * others) and calls isr_dispatch(frame).  The CPU pushed 5 words on a 16-byte
 * aligned stack, we push 2 + 9: the call is made on a 16-byte boundary. */
	.text
	.altmacro
	.macro isr_stub n
isr_\n:
	.if (\n == 8) || ((\n >= 10) && (\n <= 14)) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
	push $\n
	.else
	push $0
	push $\n
	.endif
	jmp isr_common
	.endm

	.set vec, 0
	.rept 256
	isr_stub %vec
	.set vec, vec + 1
	.endr

isr_common:
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	cld
	mov %rsp, %rdi
	call isr_dispatch
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	add $16, %rsp
	iretq

	.macro isr_addr n
	.quad isr_\n
	.endm
	.section .rodata
	.align 8
	.globl isr_table
isr_table:
	.set vec, 0
	.rept 256
	isr_addr %vec
	.set vec, vec + 1
	.endr
	.noaltmacro

/* ---- the AP trampoline ------------------------------------------------------------
 * Copied to TRAMPOLINE (0x8000) and started there by a SIPI in real mode:
 * load the GDT, protected mode, PAE + the BSP's page tables, long mode. */
#define TRAMPOLINE 0x8000
#define T(x) ((x) - trampoline_start + TRAMPOLINE)
	.section .data
	.align 16
	.globl trampoline_start, trampoline_end
	.code16
trampoline_start:
	cli
	cld
	xor %ax, %ax
	mov %ax, %ds
	lgdtl T(tramp_gdtr)
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmpl $0x18, $T(tramp32)
	.code32
tramp32:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %cr4, %eax
	or $0x20, %eax
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000000, %eax
	mov %eax, %cr0
	ljmp $0x08, $ap_long
	.align 8
tramp_gdtr:
	.word gdt64_end - gdt64 - 1
	.long gdt64
trampoline_end:
	.code64

	.section .note.GNU-stack, "", @progbits
