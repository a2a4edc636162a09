#!/usr/bin/env bash
# harden-overhead.sh - what the keyed record checks cost (issue 5): builds
# bench/pairs.c against the core with -DLAB_HARDEN=0 (check values written,
# never verified) and -DLAB_HARDEN=1 (the default: verified on every record
# read), then
#   - instructions per pair under callgrind (stable on a noisy machine),
#   - ns per pair: RUNS alternating runs of each build pinned to CPU 0,
#     medians (a timing: never a pass/fail test).
# Usage: scripts/harden-overhead.sh [RUNS]   (default 11)
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-11}
O=build/harden
mkdir -p "$O"
SRC="$(ls src/core/*.c | grep -v '/all\.c$') $(ls src/hosted/*.c)"
# Write prefetches as the Makefile's PREFETCHW=auto builds them.
PF=""
if grep -qw 3dnowprefetch /proc/cpuinfo 2>/dev/null && ${CC:-gcc} -dumpmachine | grep -q x86_64; then
	PF=-mprfchw
fi
for h in 0 1; do
	# shellcheck disable=SC2086
	${CC:-gcc} -std=c11 -O2 -DNDEBUG -D_GNU_SOURCE $PF -DLAB_HARDEN=$h -Iinclude -Isrc/core \
		-o "$O/pairs$h" bench/pairs.c $SRC -lpthread -lm
done
if command -v valgrind >/dev/null; then
	for m in 0 1; do
		n=$([ $m = 0 ] && echo 400000 || echo 393216)
		for h in 0 1; do
			a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$O/pairs$h" $m $n 2>&1 |
				sed -n 's/.*refs: *//p' | tr -d ,)
			b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$O/pairs$h" $m 0 2>&1 |
				sed -n 's/.*refs: *//p' | tr -d ,)
			echo "$([ $m = 0 ] && echo immediate || echo batch) LAB_HARDEN=$h: $(((a - b) / n)) instructions per pair (callgrind)"
		done
	done
fi
PIN=""
command -v taskset >/dev/null && PIN="taskset -c 0"
: >"$O/raw"
for m in 0 1; do
	n=$([ $m = 0 ] && echo 4000000 || echo 2097152)
	for _ in $(seq "$RUNS"); do
		for h in 0 1; do
			echo "$m $h $($PIN "$O/pairs$h" $m $n | cut -d' ' -f1)" >>"$O/raw"
		done
	done
done
for m in 0 1; do
	for h in 0 1; do
		med=$(awk -v m=$m -v h=$h '$1 == m && $2 == h {print $3}' "$O/raw" | sort -n |
			awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
		echo "$([ $m = 0 ] && echo immediate || echo batch) LAB_HARDEN=$h: median $med ns per pair of $RUNS runs (alternating, CPU 0)"
	done
done
