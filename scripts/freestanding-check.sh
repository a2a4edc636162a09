#!/usr/bin/env bash
# freestanding-check.sh - the core builds with -ffreestanding -nostdlib, as one
# translation unit (src/core/all.c), and needs nothing but the documented
# platform hooks and mem*.
set -eu
cd "$(dirname "$0")/.."
out=build/freestanding
mkdir -p "$out"
CC=${CC:-cc}
"$CC" -std=c11 -O2 -ffreestanding -nostdlib -fno-stack-protector -fno-pic -Wall -Wextra -Werror \
	-Iinclude -Isrc/core -c src/core/all.c -o "$out/all.o"
# A relocatable link proves the unit is self-contained apart from what it imports.
"$CC" -nostdlib -r -o "$out/labyrinth-core.o" "$out/all.o"
allowed='^(lab_plat_panic|lab_plat_entropy|lab_plat_irq_save|lab_plat_irq_restore|lab_plat_cpu|lab_plat_sync_cpus|lab_plat_zero_frames|lab_plat_log|lab_plat_relax|memset|memcpy|memmove|memcmp)$'
undef=$(nm -u "$out/labyrinth-core.o" | awk '{print $2}' | sort -u)
echo "undefined symbols of the freestanding core:"
echo "$undef" | sed 's/^/  /'
bad=$(echo "$undef" | grep -Ev "$allowed" || true)
if [ -n "$bad" ]; then
	echo "FAIL: undocumented dependencies:"
	echo "$bad" | sed 's/^/  /'
	exit 1
fi
# Every hook the core imports is declared in the platform contract.
for s in $(echo "$undef" | grep '^lab_plat_'); do
	grep -q "$s(" include/labyrinth/platform.h || { echo "FAIL: $s not in platform.h"; exit 1; }
done
# Optional hooks have a weak default in the core, so a host may leave them out.
for s in lab_plat_zero_list; do
	nm "$out/labyrinth-core.o" | grep -q " W $s\$" || { echo "FAIL: no weak default for the optional hook $s"; exit 1; }
done
echo "OK: only platform hooks and mem*; optional hooks have weak defaults"
