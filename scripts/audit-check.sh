#!/usr/bin/env bash
# audit-check.sh - the audit's non-timing parts at reduced size with a fixed
# seed must pass on the library, and every deliberately bad policy must FAIL
# the checks meant to catch it (a check that cannot fail proves nothing):
# the placement toys, a zone that never scrubs (the canaries), a free that
# trusts its caller (each class of invalid free), one that checks the owner
# and frees in two steps (racing frees) and an allocator blind to colours
# (both colour checks).  Timing is never run here: it is statistics
# on a noisy machine.
set -u
cd "$(dirname "$0")/.."
L=${L:-build/labyrinth} # L=build/labyrinth_asan: the same under ASan+UBSan
out=build/audit-$(basename "$L")
mkdir -p "$out"
fail=0

# Under a sanitizer, a report fails the suite whatever the audit's verdict
# (a bad policy exits 1 anyway).
sanitized() {
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1"; then
		echo "FAIL $(basename "$1" .txt): sanitizer report"
		grep -E -A8 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1" | head -20
		fail=1
	fi
}

if $L audit --seed 1 >"$out/lab.txt" 2>&1; then
	echo "library: $(tail -n 1 "$out/lab.txt")"
else
	echo "FAIL library: $(tail -n 1 "$out/lab.txt")"
	grep FAIL "$out/lab.txt"
	fail=1
fi

sanitized "$out/lab.txt"

# policy  part  property  check-that-must-fail (a regex)  how many FAIL lines at least.
# Each policy's part runs once; its output is reused for its other metrics.
expect() {
	local policy=$1 part=$2 prop=$3 metric=$4 least=$5
	if [ ! -e "$out/$policy.rc" ]; then
		$L audit "$part" --seed 1 --policy "$policy" >"$out/$policy.txt" 2>&1
		echo $? >"$out/$policy.rc"
		sanitized "$out/$policy.txt"
	fi
	local rc n
	rc=$(cat "$out/$policy.rc")
	n=$(grep -cE "^  FAIL $prop +$metric" "$out/$policy.txt")
	if [ "$rc" -ne 0 ] && [ "$n" -ge "$least" ]; then
		echo "policy $policy: FAILs '$metric' $n times (as it must); $(tail -n 1 "$out/$policy.txt")"
	else
		echo "FAIL policy $policy: expected >= $least FAIL lines on '$metric', got exit $rc and $n"
		fail=1
	fi
}
rm -f "$out"/*.rc
expect lifo --placement P1 'reuse, same owner' 1
expect lifo --placement P1 'reuse, across owners' 1
expect lifo --placement P1 'min-entropy' 1
expect scan --placement P1 'chi-square' 1
expect firstfit --placement P1 'predictors' 1
expect firstfit --placement P1 'adjacent allocations' 1
expect noscrub --ownership P5 'canary' 5
free_classes='(free by a non-owner|immediate double|delayed double|wild|unaligned|never-allocated|stale|wrong order|interior)'
expect trusting --ownership P7 "$free_classes" 9
# Rejected every time, yet the state changed: the "state unchanged" half.
expect poisoning --ownership P7 "$free_classes.* rejected ([0-9]+)/\\2, state unchanged" 8
expect racy --ownership P4 'two threads free each block' 1
expect colourblind --colour P6 '(overlapping owner configurations refused|exclusive colours never shared)' 2
rm -f "$out"/*.rc
exit $fail
