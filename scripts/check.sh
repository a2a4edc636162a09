#!/usr/bin/env bash
# check.sh - every suite of `make check`, one line each, then "N passed, M failed".
#
# A suite whose tool (or memory) is missing is reported SKIP and counted; with CI=true a
# missing tool is a failure, never a silent skip.  Suites that use the test
# harness contribute their individual test counts.
set -u
cd "$(dirname "$0")/.."
B=build
passed=0 failed=0 skipped=0
LOG=$B/check-logs
mkdir -p "$LOG"

# Every suite runs under a time limit (SUITE_LIMIT seconds, default 900): a
# hang is reported as a FAIL naming the suite, and the log shows the last
# test that finished, instead of stalling CI until its own timeout.
SUITE_LIMIT=${SUITE_LIMIT:-900}

# run NAME CMD...: a suite; harness output "N passed, M failed" adds N and M,
# any other command counts as one test (exit status).
run() {
	local name=$1; shift
	local t0=$SECONDS
	timeout -k 10 "$SUITE_LIMIT" "$@" >"$LOG/$name.log" 2>&1
	local rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "TIMEOUT: $name did not finish within ${SUITE_LIMIT}s (a hang; last lines above)" >>"$LOG/$name.log"
	fi
	local last
	last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOG/$name.log" | tail -n 1)
	if [ -n "$last" ]; then
		local p f
		p=${last%% passed*}; f=${last#*, }; f=${f%% failed*}
		passed=$((passed + p)); failed=$((failed + f))
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
	elif [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
	if [ "$rc" -eq 0 ]; then
		printf '  PASS %-22s (%ds) %s\n' "$name" $((SECONDS - t0)) "$last"
	else
		printf '  FAIL %-22s (%ds) %s -- see %s\n' "$name" $((SECONDS - t0)) "$last" "$LOG/$name.log"
		tail -n 30 "$LOG/$name.log" | sed 's/^/       /'
	fi
}

# missing SUITE WHY: a suite that cannot run here is reported SKIP, or
# FAIL under CI=true (never a silent skip); returns false.
missing() {
	if [ "${CI:-}" = "true" ]; then
		printf '  FAIL %-22s %s\n' "$1" "$2"
		failed=$((failed + 1))
	else
		printf '  SKIP %-22s %s\n' "$1" "$2"
		skipped=$((skipped + 1))
	fi
	return 1
}

# need TOOL SUITE: true if TOOL exists.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	missing "$2" "missing tool: $1 (run scripts/install-deps.sh as root)"
}

# need_mem GIB SUITE: true if GIB GiB of memory are available.
need_mem() {
	local kb
	kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null)
	[ -n "$kb" ] && [ "$kb" -ge $(($1 * 1048576)) ] && return 0
	missing "$2" "needs $1 GiB of available memory, has $((${kb:-0} / 1048576))"
}

echo "labyrinth make check"
run unit            $B/test_unit
need_mem 18 zone-2^32 && run zone-2^32 $B/bigzone
run asan-ubsan      env ASAN_OPTIONS=detect_leaks=0 $B/test_asan
run tsan            env TSAN_OPTIONS=halt_on_error=1 $B/test_tsan
run fuzz-replay     env ASAN_OPTIONS=detect_leaks=0 $B/fuzz_replay fuzz/corpus
run freestanding    scripts/freestanding-check.sh
run prefetch        scripts/prefetch-check.sh
need valgrind ctgrind && run ctgrind scripts/ctgrind-check.sh
need spin spin && run spin scripts/spin-check.sh
run cli             scripts/cli-check.sh
run audit           scripts/audit-check.sh
run audit-asan      env L=$B/labyrinth_asan ASAN_OPTIONS=detect_leaks=1 scripts/audit-check.sh
need qemu-system-x86_64 qemu && run qemu scripts/qemu-check.sh
# Under CI=true a peer allocator (jemalloc, mimalloc, tcmalloc) that cannot
# be loaded fails the suite instead of showing up as "not installed".
peers=
[ "${CI:-}" = "true" ] && peers=--require-peers
run bench-quick     $B/labyrinth bench --quick $peers
need pkg-config install && run install scripts/install-check.sh
echo "$passed passed, $failed failed${skipped:+, $skipped skipped}" | sed 's/, 0 skipped//'
[ "$failed" -eq 0 ]
