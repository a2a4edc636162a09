#!/usr/bin/env bash
# cli-check.sh - bad input on the command line gets a clear error: exit 2, a
# message on stderr naming the command and what is wrong, nothing on stdout
# (so nothing ran).  Each case: the arguments, then a piece the message
# must contain.  Then output files that cannot be written: exit 1 before
# the run, and an existing results file left untouched.
set -u
cd "$(dirname "$0")/.."
L=build/labyrinth
fail=0 n=0
bad() {
	local want=$1
	shift
	local out err rc
	out=$("$L" "$@" 2>/tmp/cli-check.$$)
	rc=$?
	err=$(cat /tmp/cli-check.$$)
	n=$((n + 1))
	if [ "$rc" -ne 2 ] || [ -n "$out" ] || ! grep -qF -- "$want" <<<"$err"; then
		echo "FAIL: labyrinth $*: exit $rc, stdout ${#out} bytes, stderr: $(head -n 1 <<<"$err") (wanted '$want')"
		fail=1
	fi
}
bad "unknown command 'bogus'"              bogus
bad "unknown option '--bogus'"             demo --bogus
bad "--size wants a value"                 demo --size
bad "--size wants 16M..1T, got '1X'"       demo --size 1X
bad "--vms wants 1..15, got '0'"           demo --vms 0
bad "--seconds wants 1..3600"              demo --seconds 99999
bad "--cpus wants a value"                 info --cpus
bad "--cpus wants 1.."                     info --cpus 0
bad "--size wants a multiple of 4K from 4K up to 16T" info --size 32T
bad "--policy wants lab, lifo"             audit --policy bogus
bad "--policy wants a value"               audit --policy
bad "--class wants C1..C6, got 'C7'"       audit --class C7
bad "--runs wants 1..1000, got '0'"        audit --runs 0
bad "--samples wants 50000..2^32"          audit --samples 5000
bad "--seed wants a decimal number"        audit --seed -1
bad "unknown option '--ful'"               audit --ful
bad "unknown option '--bogus'"             bench --bogus
bad "--rounds wants a number from 1 to 1000" bench --rounds 0
bad "--threads wants a number from 1 to 64" bench --threads 0
bad "--run-ms"                             bench --run-ms 0
bad "--seed wants a decimal number"        audit --seed 99999999999999999999
bad "--seed wants a decimal number"        demo --seed " 5"
bad "--size wants 16M..1T, got '+1G'"      demo --size +1G
bad "--size wants a multiple of 4K"        info --size 4097
bad "not for --colour"                     audit --policy lifo --colour
bad "not for --timing"                     audit --policy colourblind --class C1
bad "which this run does not run"          audit --samples 50000
bad "--full runs the issue's timing test"   audit --full --runs 3
bad "--full runs the issue's timing test"   audit --full --samples 500000
bad "wants at most one command"            help demo bench
rm -f /tmp/cli-check.$$

# An output file that cannot be written stops the command before it runs
# (exit 1, "cannot write"), and an existing file is left as it was.
outputs=0
unwritable() {
	local out err rc
	out=$("$L" "$@" 2>/tmp/cli-check.$$)
	rc=$?
	err=$(cat /tmp/cli-check.$$)
	outputs=$((outputs + 1))
	if [ "$rc" -ne 1 ] || [ -n "$out" ] || ! grep -qF "cannot write" <<<"$err"; then
		echo "FAIL: labyrinth $*: exit $rc, stdout ${#out} bytes, stderr: $(head -n 1 <<<"$err") (wanted exit 1, 'cannot write')"
		fail=1
	fi
}
keep=$(mktemp)
echo '{"kept": 1}' >"$keep"
unwritable demo --seconds 1 --map /nonexistent-dir/map.png
unwritable bench --quick --json "$keep" --plot /nonexistent-dir/plot.svg
unwritable bench --quick --json /nonexistent-dir/b.json
if [ "$(cat "$keep")" != '{"kept": 1}' ]; then
	echo "FAIL: bench --json $keep changed the file although the run did not start"
	fail=1
fi
rm -f "$keep" /tmp/cli-check.$$
n=$((n + outputs))
echo "$((n - outputs)) bad invocations, $outputs unwritable outputs: $([ $fail -eq 0 ] && echo 'each refused (exit 2, or 1 for an output) with its message, nothing run' || echo 'some NOT refused as they must be')"
exit $fail
