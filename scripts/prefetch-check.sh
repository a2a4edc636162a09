#!/usr/bin/env bash
# prefetch-check.sh - the core's software prefetches are in the machine code.
# A prefetch cannot be seen in any result, only in the time, so a compiler
# that drops one breaks nothing a test would notice: gcc 12 deleted
# lab_free_bulk's (a helper that only loads and prefetches looks pure to it,
# and a call to a pure function whose result is unused is dead code), and
# nobody saw it for a day.  This compiles the core as the release build does
# and counts the prefetch instructions in each function that has some in its
# source; fewer than the source has fails.
set -eu
cd "$(dirname "$0")/.."
out=build/prefetch-check
mkdir -p "$out"
CC=${CC:-cc}
case "$(uname -m)" in
x86_64 | i?86) insn='prefetch' ;;
aarch64) insn='prfm' ;;
*)
	echo "FAIL: no prefetch mnemonic known for $(uname -m)"
	exit 1
	;;
esac
# The release build's optimisation.  Not the Makefile's PREFETCHW knob: a
# write prefetch is PREFETCHW with it and PREFETCHT0 without, and both count.
flags="-std=c11 -O2 -DNDEBUG -Iinclude -Isrc/core"
# functions (a regex: where the compiler may leave a helper out of line),
# source file, prefetch sites in their source (inlined helpers included)
want='lab_alloc|alloc0_pcp alloc 1
lab_free_bulk alloc 2
lab_pcp_run_prefetch|prefetch_tail_records cpu 3
lab_pool_exchange pool 4'
fail=0
for f in alloc cpu pool all; do
	# shellcheck disable=SC2086
	"$CC" $flags -c "src/core/$f.c" -o "$out/$f.o"
done
# Each file alone, as the Makefile builds the library, and the whole core as
# one unit (src/core/all.c, for kernels that vendor it), where gcc inlines
# differently.
for unit in separate all; do
	while read -r fns file need; do
		obj=$out/$file.o
		[ "$unit" = all ] && obj=$out/all.o
		got=$(objdump -d --no-show-raw-insn "$obj" |
			awk -v re="^<($fns)>:$" -v insn="$insn" '/^[0-9a-f]+ </ { on = ($2 ~ re) }
				on && $2 ~ "^" insn { n++ } END { print n + 0 }')
		if [ "$got" -lt "$need" ]; then
			echo "FAIL: $fns ($file.c, $unit) has $got $insn instructions, its source $need"
			fail=1
		else
			echo "ok: $fns ($file.c, $unit): $got $insn instructions (source: $need)"
		fi
	done <<<"$want"
done
[ "$fail" = 0 ] && echo "OK: every prefetch the source asks for is in the code"
exit "$fail"
