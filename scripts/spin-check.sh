#!/usr/bin/env bash
# spin-check.sh - exhaustive model checking of the pool protocol model
# (src/core/model/pool.pml) with spin, and proof that the model can fail.
#
#   scripts/spin-check.sh [-j N] [--only NAME]
#
# Every run is `spin -a` + `cc -O0 -DSAFETY` + pan, exhaustive (no BITSTATE,
# no hash compaction).  -O0: with gcc, -O1/-O2 make pan about 25% faster but
# take 4 s more to compile, a loss for every search here (all below 5M
# states; set COPT=-O2 for big experiments).  Four kinds of runs:
#   check   a configuration of the real protocol: spin must find nothing.
#           One search checks the never claim (invariants M1-M5 in every
#           state), every inline assert, the final state, and deadlock (the
#           model's watchdog process: spin's own invalid-end-state check is
#           off when a never claim is present).
#   mutant  a seeded bug (MUTANT_*): spin MUST report an error, else the model
#           checks nothing there and this script fails.
#   equiv   a seeded change the model shows harmless under sequential
#           consistency (another ordering covers it): reported, never fatal.
#   cover   COVERAGE=mask: the search must reach every listed probe (the rare
#           interleavings: CAS failures, undo paths, sibling slots, races with
#           reclaim...), so the checks are not vacuous.
# Exit 0 only if every check passes, every mutant is killed, every probe is
# reached and no search was cut short (depth limit, memory).
#
# -j N: N searches at once (default 2).  --only NAME: one run.  The runs
# start heaviest first, so N parallel searches finish close together.
# Artifacts (pan, pan.out, trails) go to build/spin/NAME/.
set -u
cd "$(dirname "$0")/.."

MODEL=$PWD/src/core/model/pool.pml
OUT=$PWD/build/spin
JOBS=2
ONLY=""
while [ $# -gt 0 ]; do
	case $1 in
	-j) JOBS=$2; shift 2 ;;
	-j*) JOBS=${1#-j}; shift ;;
	--only) ONLY=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "spin-check: unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
done

if ! command -v spin >/dev/null 2>&1; then
	echo "spin-check: FAIL: spin is not installed (Debian: apt-get install spin," \
	     "or scripts/install-deps.sh as root)" >&2
	exit 1
fi
CC=${CC:-cc}
COPT=${COPT:--O0}
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "spin-check: FAIL: no C compiler ($CC) to build spin's verifier" >&2
	exit 1
fi
[ -f "$MODEL" ] || { echo "spin-check: FAIL: no model at $MODEL" >&2; exit 1; }

# ---- the runs: KIND NAME HASHBITS DEFINES... -----------------------------------
# 2 CPUs, 3 frames unless NF=4; OPS operations per CPU (OPS0/OPS1 per CPU);
# PCP_MAX=2: a pcp of 2 frames, so lab_free_insert's spill-first runs.
# States per check (pan's "states, stored"): teardown 7.6M, removal 4.9M
# (-DREMOVAL, the pool's death; OPS=2 has 15.3M and passes too), claim 4.1M,
# claim_one_owner 2.7M, claim_teardown 2.2M, pcp2 2.1M, one_owner 2.0M, nf4
# 1.6M, deferred 1.4M, base 0.9M, asym 0.8M: about 30M states, and the whole
# script about 100 s of CPU (65 s with -j 1 on an idle machine, 2026-11-28).  Heaviest first (see -j).  Cut down to finish
# within 5 minutes on a shared 2-core machine: claim_teardown OPS1=2 -> 1
# (was 13.1M states; it still has the racing order-1 free of pool.pml's
# FIXED: MUTANT_TAIL_BEFORE_CAS dies there too), claim_one_owner OPS0=3 -> 2
# (was 7.0M), cover_teardown OPS0=1 -> 0, OPS1=3 -> 2 (probes 14-16 need
# only CPU 1 and the remover).
# Coverage masks: bit k = probe k of pool.pml's list.
JOBLIST=$(cat <<'EOF'
check  teardown           24 -DTEARDOWN -DOPS0=1 -DOPS1=3
check  removal            23 -DREMOVAL -DOPS0=1 -DOPS1=2
check  claim              23 -DCLAIM
check  claim_one_owner    23 -DCLAIM -DONE_OWNER -DOPS0=2 -DOPS1=3
check  claim_teardown     23 -DCLAIM -DTEARDOWN -DOPS0=1 -DOPS1=1
check  pcp2               22 -DPCP_MAX=2
check  one_owner          22 -DONE_OWNER
check  nf4                22 -DNF=4 -DOPS=2
check  deferred           22 -DDEFERRED
check  base               21 -DNF=3 -DOPS=3
check  asym               21 -DOPS0=1 -DOPS1=5
mutant remove_rec_first   22 -DCLAIM -DMUTANT_REMOVE_REC_FIRST
mutant tail_before_cas    21 -DCLAIM -DONE_OWNER -DOPS=2 -DMUTANT_TAIL_BEFORE_CAS
mutant no_recheck         20 -DMUTANT_NO_RECHECK
mutant record_before_slot 20 -DMUTANT_RECORD_BEFORE_SLOT
mutant stale_n+rec_first  20 -DMUTANT_STALE_N -DMUTANT_REC_FIRST
mutant occ_no_recheck     20 -DOPS0=1 -DOPS1=4 -DMUTANT_OCC_NO_RECHECK
mutant insert_rec_first   20 -DMUTANT_INSERT_REC_FIRST
mutant free_store         20 -DONE_OWNER -DMUTANT_FREE_STORE
mutant no_dying_check     20 -DTEARDOWN -DOPS0=1 -DOPS1=3 -DMUTANT_NO_DYING_CHECK
mutant scrub_after_insert 20 -DMUTANT_SCRUB_AFTER_INSERT
mutant ring_no_scrub      20 -DDEFERRED -DMUTANT_RING_NO_SCRUB
mutant ring_no_pcp_record 20 -DMUTANT_RING_NO_PCP_RECORD
mutant tail_overwrite     20 -DPCP_MAX=2 -DMUTANT_TAIL_OVERWRITE
mutant no_postcas_state   20 -DREMOVAL -DOPS=1 -DMUTANT_NO_POSTCAS_STATE
mutant refill_from_dying  20 -DREMOVAL -DOPS=1 -DMUTANT_REFILL_FROM_DYING
equiv  stale_n            21 -DMUTANT_STALE_N
equiv  rec_first          21 -DMUTANT_REC_FIRST
cover  cover_teardown     22 -DCOVERAGE=0x1c000 -DTEARDOWN -DOPS0=0 -DOPS1=2
cover  cover_base         22 -DCOVERAGE=0xb803be
cover  cover_asym         22 -DCOVERAGE=0x40 -DOPS0=1 -DOPS1=4
cover  cover_one_owner    22 -DCOVERAGE=0xc00 -DONE_OWNER
cover  cover_claim        22 -DCOVERAGE=0x3000 -DCLAIM
cover  cover_deferred     22 -DCOVERAGE=0x60000 -DDEFERRED
cover  cover_pcp2         22 -DCOVERAGE=0x780000 -DPCP_MAX=2
cover  cover_removal      22 -DCOVERAGE=0x1f000000 -DREMOVAL -DOPS0=1 -DOPS1=2
EOF
)

DEPTH=200000   # -m: searches here stay below 2000 steps; pan says if not

# search DIR HASHBITS COPT DEFINES...: spin -a, cc COPT, pan in DIR.  Sets
# S_STATES, S_MS (pan's wall time), S_ERR (errors; "" if pan did not finish),
# S_MSG (first error, with the model line it is on), S_CUT (search cut short).
search() {
	local dir=$1 w=$2 copt=$3; shift 3
	S_STATES=0 S_MS=0 S_ERR="" S_MSG="" S_CUT=""
	rm -rf "$dir"; mkdir -p "$dir"
	if ! (cd "$dir" && spin -a "$@" "$MODEL" >spin.log 2>&1); then
		S_MSG="spin -a failed: $(grep -m1 -iE 'error|syntax' "$dir/spin.log")"
		return
	fi
	if ! (cd "$dir" && "$CC" "$copt" -DSAFETY -o pan pan.c >cc.log 2>&1); then
		S_MSG="cc pan.c failed: $(head -n 1 "$dir/cc.log")"
		return
	fi
	local t0 t1
	t0=$(date +%s%N)
	(cd "$dir" && ./pan -m$DEPTH -w"$w" >pan.out 2>&1)
	t1=$(date +%s%N)
	S_MS=$(( (t1 - t0) / 1000000 ))
	S_STATES=$(awk '/states, stored/ { print $1; exit }' "$dir/pan.out")
	S_ERR=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$dir/pan.out" | head -n 1)
	if grep -q 'PROBES DONE' "$dir/pan.out"; then
		S_ERR=0 S_STATES="(stopped early)"
	fi
	S_CUT=$(grep -m1 -E 'max search depth too small|out of memory' "$dir/pan.out")
	if [ -z "$S_ERR" ]; then
		S_MSG="pan did not finish: $(tail -n 1 "$dir/pan.out")"
	elif [ "$S_ERR" != 0 ]; then
		# the model line of the error, from a replay of the trail
		local what where
		what=$(grep -m1 -E '^pan:[0-9]+: ' "$dir/pan.out" | sed 's/^pan:[0-9]*: //; s/ (at depth.*//' | cut -c1-60)
		where=$(cd "$dir" && spin -k pool.pml.trail -t "$@" "$MODEL" 2>&1 |
		        sed -n 's/^spin: .*pool\.pml:\([0-9]*\), Error: .*/\1/p' | head -n 1)
		if [ -n "$where" ]; then
			S_MSG="$what at pool.pml:$where: $(sed -n "${where}p" "$MODEL" | sed 's/^[[:space:]]*//' | cut -c1-70)"
		else
			S_MSG=$what
		fi
	fi
}

secs() { printf '%d.%ds' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# job KIND NAME HASHBITS DEFINES...: writes one line to $OUT/NAME/result, first
# word the verdict: PASS FAIL KILLED SURVIVED EQUIV NOTE REACHED MISSED.
job() {
	local kind=$1 name=$2 w=$3; shift 3
	local d=$OUT/$name res
	# shellcheck disable=SC2086
	search "$d" "$w" "$COPT" "$@"
	local info="$S_STATES states, $(secs "$S_MS")"
	local replay="replay: (cd build/spin/$name && spin -k pool.pml.trail -t -p -g $* ../../../src/core/model/pool.pml)"
	if [ -z "$S_ERR" ]; then
		res="FAIL run broken: $S_MSG"
	elif [ -n "$S_CUT" ] && [ "$S_ERR" = 0 ]; then
		res="FAIL search cut short: $S_CUT"
	else
		case $kind in
		check)
			if [ "$S_ERR" = 0 ]; then res="PASS $info"
			else res="FAIL $info: $S_MSG; $replay"; fi ;;
		mutant)
			if [ "$S_ERR" != 0 ]; then res="KILLED $info: $S_MSG"
			else res="SURVIVED $info: no error, the model does not see this bug"; fi ;;
		equiv)
			if [ "$S_ERR" = 0 ]; then res="EQUIV $info: no error (harmless under SC, see pool.pml)"
			else res="NOTE $info: now killed: $S_MSG"; fi ;;
		cover)
			local want=${1#-DCOVERAGE=} k missing=""
			want=$((want))
			for k in $(seq 1 31); do
				if [ $((want >> k & 1)) = 1 ] && ! grep -qx "PROBE $k reached" "$d/pan.out"; then
					missing="$missing $k"
				fi
			done
			local got
			got=$(sed -n 's/^PROBE \([0-9]*\) reached$/\1/p' "$d/pan.out" | sort -n | tr '\n' ' ')
			if [ "$S_ERR" != 0 ]; then res="MISSED $info: error in coverage run: $S_MSG"
			elif [ -z "$missing" ]; then res="REACHED probes ${got}($(secs "$S_MS"))"
			else res="MISSED probes$missing never reached ($info)"; fi ;;
		esac
	fi
	printf '%s\n' "$res" >"$d/result"
	printf '  %-8s %-19s %s\n' "${res%% *}" "$name" "${res#* }"
}

mkdir -p "$OUT"
echo "spin-check: $(spin -V 2>&1 | head -n 1); src/core/model/pool.pml; $JOBS at once"
T0=$SECONDS
running=0
while read -r kind name w defs; do
	[ -n "$kind" ] || continue
	[ -z "$ONLY" ] || [ "$ONLY" = "$name" ] || continue
	rm -f "$OUT/$name/result"
	# shellcheck disable=SC2086
	job "$kind" "$name" "$w" $defs &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
done <<<"$JOBLIST"
wait

# ---- summary --------------------------------------------------------------------
bad=0 nck=0 npass=0 nmut=0 nkill=0 ncov=0 nreach=0
while read -r kind name w defs; do
	[ -n "$kind" ] || continue
	[ -z "$ONLY" ] || [ "$ONLY" = "$name" ] || continue
	r=$(cat "$OUT/$name/result" 2>/dev/null || echo "FAIL no result")
	v=${r%% *}
	case $kind in
	check) nck=$((nck + 1)); if [ "$v" = PASS ]; then npass=$((npass + 1)); else bad=1; fi ;;
	mutant) nmut=$((nmut + 1)); if [ "$v" = KILLED ]; then nkill=$((nkill + 1)); else bad=1; fi ;;
	cover) ncov=$((ncov + 1)); if [ "$v" = REACHED ]; then nreach=$((nreach + 1)); else bad=1; fi ;;
	equiv) if [ "$v" = FAIL ]; then bad=1; fi ;;
	esac
	case $v in
	FAIL|SURVIVED|MISSED) echo "spin-check: $v: $kind $name ($defs): ${r#* }" >&2 ;;
	esac
done <<<"$JOBLIST"
echo "spin-check: checks $npass/$nck passed, mutants $nkill/$nmut killed," \
     "coverage runs $nreach/$ncov complete, $((SECONDS - T0))s"
if [ "$bad" -ne 0 ]; then
	echo "spin-check: FAILED (artifacts in build/spin/)" >&2
	exit 1
fi
echo "spin-check: OK"
