#!/usr/bin/env bash
# audit-check.sh - the audit's non-timing parts at reduced size with a fixed
# seed must pass on the library, and every deliberately bad placement policy
# must FAIL the metric meant to catch it (a metric that cannot fail proves
# nothing).  Timing is never run here: it is statistics on a noisy machine.
set -u
cd "$(dirname "$0")/.."
L=build/labyrinth
out=build/audit
mkdir -p "$out"
fail=0

if $L audit --seed 1 >"$out/lab.txt" 2>&1; then
	echo "library: $(tail -n 1 "$out/lab.txt")"
else
	echo "FAIL library: $(tail -n 1 "$out/lab.txt")"
	grep FAIL "$out/lab.txt"
	fail=1
fi

# policy  metric-that-must-fail (a regex on the FAIL lines)
expect() {
	local policy=$1 metric=$2
	$L audit --placement --seed 1 --policy "$policy" >"$out/$policy.txt" 2>&1
	local rc=$?
	local n
	n=$(grep -cE "^  FAIL P1 +$metric" "$out/$policy.txt")
	if [ "$rc" -ne 0 ] && [ "$n" -gt 0 ]; then
		echo "policy $policy: FAILs '$metric' in $n states (as it must); $(tail -n 1 "$out/$policy.txt")"
	else
		echo "FAIL policy $policy: expected FAIL on '$metric', got exit $rc and $n such lines"
		fail=1
	fi
}
expect lifo 'reuse'
expect scan 'chi-square'
expect firstfit 'predictors'
exit $fail
