#!/usr/bin/env bash
# qemu-check.sh - build the example kernel (examples/kernel) and boot it in
# QEMU: labyrinth as the physical memory manager of a real x86-64 kernel,
# timer interrupts allocating with GFP_ATOMIC while the main loop is inside
# the allocator.  Each boot must print its summary on the serial port and
# leave through isa-debug-exit with the expected status:
#   33 pass, 35 violations, 37 panic or CPU exception, 39 deadlock (watchdog);
#   124 from timeout(1): the kernel hung with interrupts off.
# Boots:
#   up      1 CPU, -cpu max (RDRAND), interrupts masked by lab_plat_irq_save
#   smp     2 CPUs allocating, PIT + local APIC timers, cross-CPU frees
#   hang, doublefree   short boots proving the watchdog and the checks can fail
#   nested  (not run by default) 1 CPU, default CPU model (TSC entropy
#           fallback), irqsave=off: lab_plat_irq_save does not mask, the timer
#           lands inside the allocator and the core's nested path runs.  It
#           panics in about one boot out of four ("locked insert failed": a
#           nested free whose random slot is the one the interrupted exchange
#           holds), a core bug; add it to the default list once fixed.
# QEMU_CHECK_BOOTS="up smp nested" selects boots; QEMU_TIMEOUT (s) bounds each.
set -u
cd "$(dirname "$0")/.."
QEMU=${QEMU:-qemu-system-x86_64}
TIMEOUT=${QEMU_TIMEOUT:-180}
BOOTS=${QEMU_CHECK_BOOTS:-up smp nested hang doublefree}
out=build/kernel
if ! command -v "$QEMU" >/dev/null 2>&1; then
	echo "qemu-check: $QEMU not found (scripts/install-deps.sh installs qemu-system-x86)"
	exit 1
fi
examples/kernel/build.sh >"$out.build.log" 2>&1 || { cat "$out.build.log"; echo "qemu-check: kernel build failed"; exit 1; }
mkdir -p "$out"
fail=0

# boot NAME EXPECTED_STATUS QEMU_ARGS... -- KERNEL_CMDLINE
boot() {
	local name=$1 want=$2
	shift 2
	local args=()
	while [ "$1" != "--" ]; do args+=("$1"); shift; done
	shift
	local log=$out/serial-$name.log t0=$SECONDS
	timeout "$TIMEOUT" "$QEMU" -nographic -no-reboot -m 128M \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		"${args[@]}" -kernel "$out/labyrinth-kernel.elf" -append "$*" </dev/null >"$log" 2>&1
	local rc=$?
	local summary
	summary=$(tr -d '\r' <"$log" | grep -a -E '^labyrinth kernel: (cpus [0-9]+,|DEADLOCK|PANIC)' | tail -n 1)
	local ok=1 why=""
	[ "$rc" -eq "$want" ] || { ok=0; why="exit status $rc, expected $want"; }
	if [ "$rc" -eq 124 ]; then why="no exit within ${TIMEOUT}s: hang with interrupts off (deadlock)"; fi
	if [ "$want" -eq 33 ]; then
		local irq viol
		irq=$(echo "$summary" | sed -n 's/.*irq allocations \([0-9]*\).*/\1/p')
		viol=$(echo "$summary" | sed -n 's/.*violations \([0-9]*\).*/\1/p')
		if [ -z "$irq" ] || [ "$irq" -lt 10000 ]; then ok=0; why="$why; irq allocations '${irq}' < 10000"; fi
		if [ "$viol" != "0" ]; then ok=0; why="$why; violations '${viol}'"; fi
		echo "$summary" | grep -q 'deadlocks 0' || { ok=0; why="$why; no 'deadlocks 0'"; }
		if [ "$name" = smp ]; then
			echo "$summary" | grep -q 'cpus 2,' || { ok=0; why="$why; not 2 CPUs"; }
			# both CPUs allocated in interrupt context
			n=$(tr -d '\r' <"$log" | grep -a -c -E '^labyrinth kernel: cpu [01]: .*irq allocations [1-9]')
			[ "$n" -eq 2 ] || { ok=0; why="$why; not both CPUs allocating"; }
		fi
		if [ "$name" = nested ]; then
			nested=$(echo "$summary" | sed -n 's/.*nested calls \([0-9]*\).*/\1/p')
			if [ -z "$nested" ] || [ "$nested" -lt 100 ]; then ok=0; why="$why; nested calls '${nested}' < 100"; fi
		fi
	fi
	if [ "$ok" -eq 1 ]; then
		printf 'qemu-check: %-10s ok   (%ds, status %d) %s\n' "$name" $((SECONDS - t0)) "$rc" "${summary#labyrinth kernel: }"
	else
		printf 'qemu-check: %-10s FAIL (%ds) %s -- serial log %s:\n' "$name" $((SECONDS - t0)) "${why#; }" "$log"
		tr -d '\r' <"$log" | grep -a -v '^$' | tail -n 25 | sed 's/^/    /'
		fail=1
	fi
}

for b in $BOOTS; do
	case $b in
	up)         boot up 33 -cpu max -smp 1 -- nosmp ;;
	smp)        boot smp 33 -cpu max -smp 2 -- ;;
	nested)     boot nested 33 -smp 1 -- nosmp irqsave=off ;;
	hang)       boot hang 39 -cpu max -smp 1 -- nosmp watchdog=2000 selftest=hang ;;
	doublefree) boot doublefree 35 -cpu max -smp 1 -- nosmp ticks=3000 selftest=doublefree ;;
	*) echo "qemu-check: unknown boot '$b'"; fail=1 ;;
	esac
done
if [ "$fail" -eq 0 ]; then
	echo "qemu-check: all boots passed"
else
	echo "qemu-check: FAILED"
fi
exit "$fail"
