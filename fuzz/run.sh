#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] - build the libFuzzer harness (clang, ASan + UBSan),
# fuzz for SECONDS (default $FUZZ_SECONDS, else 300) starting from
# fuzz/corpus, then print executions, execs/s, libFuzzer's cov/ft figures and,
# when llvm-profdata/llvm-cov are installed, line/function/region coverage of
# src/core over the checked-in corpus plus what this run found.
#
# New inputs go to build/fuzz/new (fuzz/corpus is only read); a crash or a
# model mismatch is written to build/fuzz/artifacts/ and the script exits 1.
# Knobs (environment): FUZZ_CC (clang), FUZZ_CFLAGS (extra compiler flags),
# FUZZ_OUT (build/fuzz), FUZZ_JOBS (1),
# FUZZ_MAX_LEN (4096), FUZZ_NO_COV=1 (skip the coverage report).
set -u
cd "$(dirname "$0")/.."

SECS=${1:-${FUZZ_SECONDS:-300}}
OUT=${FUZZ_OUT:-build/fuzz}
CC_FUZZ=${FUZZ_CC:-clang}
EXTRA=${FUZZ_CFLAGS:-}
JOBS=${FUZZ_JOBS:-1}
MAXLEN=${FUZZ_MAX_LEN:-4096}

case $SECS in ''|*[!0-9]*) echo "usage: fuzz/run.sh [SECONDS]" >&2; exit 2;; esac
if ! command -v "$CC_FUZZ" >/dev/null 2>&1; then
	echo "fuzz/run.sh: $CC_FUZZ not found (clang with libFuzzer is needed)" >&2
	exit 2
fi

SRC="fuzz/fuzz_ops.c $(ls src/core/*.c | grep -v '/all\.c$') $(ls src/hosted/*.c)"
COMMON="-std=c11 -g -D_GNU_SOURCE -Iinclude -Isrc/core $EXTRA"
mkdir -p "$OUT/new" "$OUT/artifacts"

echo "building $OUT/fuzz_ops ($CC_FUZZ, -fsanitize=fuzzer,address,undefined)"
# shellcheck disable=SC2086
$CC_FUZZ $COMMON -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer -o "$OUT/fuzz_ops" $SRC -lpthread -lm || exit 2

echo "fuzzing for ${SECS}s (corpus: fuzz/corpus, $(ls fuzz/corpus | wc -l) inputs; new inputs: $OUT/new)"
t0=$(date +%s)
if [ "$JOBS" -gt 1 ]; then
	FORK="-fork=$JOBS"
else
	FORK=""
fi
# shellcheck disable=SC2086
ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
"$OUT/fuzz_ops" $FORK -max_total_time="$SECS" -max_len="$MAXLEN" -timeout=30 \
	-rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$OUT/artifacts/" \
	"$OUT/new" fuzz/corpus >"$OUT/fuzz.log" 2>&1
rc=$?
t1=$(date +%s)

grep -E 'labyrinth-fuzz: FAILURE|ERROR: |SUMMARY: |zone: |Test unit written' "$OUT/fuzz.log" | head -n 20
last=$(grep -E '^#[0-9]+' "$OUT/fuzz.log" | tail -n 1)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/fuzz.log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$OUT/fuzz.log" | tail -n 1)
[ -n "$execs" ] || execs=$(printf '%s\n' "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
[ -n "$rate" ] || rate=$(printf '%s\n' "$last" | sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p')
cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
ft=$(printf '%s\n' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
corp=$(printf '%s\n' "$last" | sed -n 's/.*corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p')
echo "fuzz: $((t1 - t0))s, ${execs:-?} executions, ${rate:-?} execs/s, libFuzzer cov ${cov:-?} ft ${ft:-?}, corpus ${corp:-?} (log: $OUT/fuzz.log)"

# Line coverage of src/core: a coverage build (no sanitizers) runs the
# corpus once.
PROFDATA=$(command -v llvm-profdata-14 || command -v llvm-profdata || true)
LLVMCOV=$(command -v llvm-cov-14 || command -v llvm-cov || true)
if [ -z "${FUZZ_NO_COV:-}" ] && [ -n "$PROFDATA" ] && [ -n "$LLVMCOV" ]; then
	# shellcheck disable=SC2086
	if $CC_FUZZ $COMMON -O1 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
		-o "$OUT/fuzz_cov" $SRC -lpthread -lm; then
		rm -f "$OUT"/cov-*.profraw
		LLVM_PROFILE_FILE="$OUT/cov-%p.profraw" "$OUT/fuzz_cov" -runs=0 "$OUT/new" fuzz/corpus \
			>"$OUT/cov.log" 2>&1
		"$PROFDATA" merge -sparse "$OUT"/cov-*.profraw -o "$OUT/cov.profdata"
		# shellcheck disable=SC2046
		"$LLVMCOV" report "$OUT/fuzz_cov" -instr-profile="$OUT/cov.profdata" \
			$(ls src/core/*.c | grep -v '/all\.c$') >"$OUT/cov-report.txt"
		total=$(grep '^TOTAL' "$OUT/cov-report.txt")
		# TOTAL regions missed cover functions missed cover lines missed cover [branches...]
		set -- $total
		echo "coverage of src/core (corpus + this run): lines ${10} of ${8} missed ${9}, functions ${7} ($5 total, $6 missed), regions ${4} (report: $OUT/cov-report.txt)"
		"$LLVMCOV" show "$OUT/fuzz_cov" -instr-profile="$OUT/cov.profdata" -format=text \
			$(ls src/core/*.c | grep -v '/all\.c$') >"$OUT/cov-show.txt" 2>/dev/null
	else
		echo "coverage build failed; no line coverage"
	fi
fi

if [ "$rc" -ne 0 ]; then
	echo "FAIL: the fuzzer stopped with status $rc; reproduce with" >&2
	echo "  FUZZ_TRACE=1 $OUT/fuzz_ops $OUT/artifacts/<file>" >&2
	echo "minimise with  $OUT/fuzz_ops -minimize_crash=1 -runs=20000 $OUT/artifacts/<file>" >&2
	exit 1
fi
exit 0
