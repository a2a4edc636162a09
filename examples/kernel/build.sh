#!/usr/bin/env bash
# build.sh - build the example kernel: build/kernel/labyrinth-kernel.elf, a
# multiboot ELF32 that QEMU's -kernel (or GRUB) loads.  The core is compiled
# as one translation unit (src/core/all.c) with the project's freestanding
# flags plus what code running in ring 0 with interrupts needs: no red zone,
# no SSE/x87 (the interrupt stubs do not save vector registers).
set -eu
cd "$(dirname "$0")/../.."
CC=${CC:-cc}
OBJCOPY=${OBJCOPY:-objcopy}
out=build/kernel
mkdir -p "$out"
K=examples/kernel
# The project's cross flags (scripts/freestanding-check.sh) + kernel code.
FREESTANDING="-O2 -g -ffreestanding -nostdlib -fno-stack-protector -fno-pic -fno-pie -Wall -Wextra -Werror"
KERNEL="-m64 -mno-red-zone -mgeneral-regs-only -mcmodel=small -fno-asynchronous-unwind-tables \
	-fno-tree-loop-distribute-patterns -fno-omit-frame-pointer"
INC="-Iinclude -Isrc/core -I$K"
set -x
"$CC" -std=c11 $FREESTANDING $KERNEL $INC -c src/core/all.c -o "$out/core.o"
"$CC" -std=c11 $FREESTANDING $KERNEL $INC -Wmissing-prototypes -c src/compat/linux.c -o "$out/linux.o"
for f in kernel platform x86 lib; do
	"$CC" -std=gnu11 $FREESTANDING $KERNEL $INC -Wmissing-prototypes -c "$K/$f.c" -o "$out/$f.o"
done
"$CC" $KERNEL -c "$K/boot.S" -o "$out/boot.o"
"$CC" -nostdlib -static -no-pie -Wl,-T,"$K/kernel.ld" -Wl,-z,max-page-size=0x1000 -Wl,--build-id=none -Wl,--no-warn-rwx-segments \
	-o "$out/labyrinth-kernel64.elf" "$out/boot.o" "$out/kernel.o" "$out/platform.o" "$out/x86.o" \
	"$out/lib.o" "$out/linux.o" "$out/core.o" -lgcc
# QEMU's multiboot loader takes ELF32 only: same code, 32-bit container.
"$OBJCOPY" -O elf32-i386 "$out/labyrinth-kernel64.elf" "$out/labyrinth-kernel.elf"

# `build.sh iso`: also a GRUB rescue ISO (grub-pc-bin, xorriso, mtools), for
# -cdrom, other hypervisors, or a USB stick on real hardware.
if [ "${1:-}" = iso ]; then
	rm -rf "$out/iso"
	mkdir -p "$out/iso/boot/grub"
	cp "$out/labyrinth-kernel.elf" "$out/iso/boot/"
	cat >"$out/iso/boot/grub/grub.cfg" <<'CFG'
set timeout=0
menuentry "labyrinth kernel" {
	multiboot /boot/labyrinth-kernel.elf
	boot
}
CFG
	grub-mkrescue -o "$out/labyrinth-kernel.iso" "$out/iso"
fi
