# labyrinth - plain Makefile.  `make` builds the library and the tool,
# `make check` runs every suite, `make demo` runs the main job.
#
# Knobs (validated below): BUILD (release|debug), CC, PREFIX, PREFETCHW
# (auto|yes|no), CI (true makes every missing tool a failure instead of a
# skip).

CC      ?= cc
BUILD   ?= release
PREFIX  ?= /usr/local
CI      ?=
O       := build

ifeq ($(filter $(BUILD),release debug),)
$(error BUILD must be release or debug, not '$(BUILD)')
endif

WARN    := -Wall -Wextra -Wcast-qual -Wundef -Wmissing-prototypes -Wstrict-prototypes -Werror
OPT_release := -O2 -DNDEBUG
OPT_debug   := -O0 -DLAB_DEBUG=1
# PREFETCHW (auto|yes|no): compile the core's write prefetches as x86's
# PREFETCHW (gcc -mprfchw), which fetches a line exclusive, instead of
# PREFETCHT0, which fetches it shared; a CAS or store on a shared line that
# another CPU last wrote then waits for a second hand-over.  Measured here
# (bench/RESULTS.md): 2-thread immediate pairs 1.01x -> 1.52x one thread
# when the vCPUs sit far apart.  auto: yes when the compiler targets x86-64
# and this machine's CPU has it (the 3dnowprefetch flag); a kernel build
# uses its own flags (Linux gates the instruction the same way).
PREFETCHW ?= auto
ifeq ($(filter $(PREFETCHW),auto yes no),)
$(error PREFETCHW must be auto, yes or no, not '$(PREFETCHW)')
endif
ifeq ($(PREFETCHW),auto)
PREFETCHW := $(if $(and $(findstring x86_64,$(shell $(CC) -dumpmachine 2>/dev/null)),$(shell grep -qw 3dnowprefetch /proc/cpuinfo 2>/dev/null && echo y)),yes,no)
endif
OPT_PREFETCHW_yes := -mprfchw
CFLAGS_BASE := -std=c11 -g $(OPT_$(BUILD)) $(OPT_PREFETCHW_$(PREFETCHW)) $(WARN) -Iinclude -Isrc/core
LIBCFLAGS   := $(CFLAGS_BASE) -fPIC -fvisibility=hidden
# The core sees no libc: only its own headers, the compiler's freestanding
# ones, and string.h for mem*.
CORECFLAGS  := $(LIBCFLAGS) -ffreestanding -fno-stack-protector

CORE_SRC   := $(wildcard src/core/*.c)
CORE_SRC   := $(filter-out src/core/all.c,$(CORE_SRC))
HOSTED_SRC := $(wildcard src/hosted/*.c)
COMPAT_SRC := $(wildcard src/compat/*.c)
CORE_OBJ   := $(CORE_SRC:src/%.c=$(O)/obj/%.o)
HOSTED_OBJ := $(HOSTED_SRC:src/%.c=$(O)/obj/%.o)
COMPAT_OBJ := $(COMPAT_SRC:src/%.c=$(O)/obj/%.o)
LIB_OBJ    := $(CORE_OBJ) $(HOSTED_OBJ) $(COMPAT_OBJ)
# $(O)/.flags holds the compiler and flags of the last build; it changes
# (and so rebuilds everything) when BUILD, PREFETCHW or CC do.
FLAGS_NOW  := $(CC) $(CFLAGS_BASE)
$(shell mkdir -p $(O) && { [ "$$(cat $(O)/.flags 2>/dev/null)" = '$(FLAGS_NOW)' ] || echo '$(FLAGS_NOW)' >$(O)/.flags; })
HEADERS    := $(wildcard include/*.h include/labyrinth/*.h src/core/*.h) $(O)/.flags

TOOL_SRC   := $(wildcard tools/*.c)
TEST_SRC   := $(wildcard tests/test_*.c)

.PHONY: all lib demo check clean install uninstall soak kernel fuzz
all: lib $(O)/labyrinth

lib: $(O)/liblabyrinth.a $(O)/liblabyrinth.so

$(O)/obj/core/%.o: src/core/%.c $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC $@"; $(CC) $(CORECFLAGS) -c $< -o $@

$(O)/obj/hosted/%.o: src/hosted/%.c $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC $@"; $(CC) $(LIBCFLAGS) -D_GNU_SOURCE -c $< -o $@

# The Linux-style layer (include/labyrinth/linux.h): linux.c is freestanding
# (the example kernel links it too), linux_hosted.c is GFP_KERNEL's POSIX wait.
$(O)/obj/compat/%.o: src/compat/%.c $(HEADERS)
	@mkdir -p $(@D)
	@echo "  CC $@"; $(CC) $(LIBCFLAGS) -D_GNU_SOURCE -c $< -o $@

$(O)/liblabyrinth.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

VERSION := $(shell sed -n 's/^\#define LAB_VERSION_STRING "\(.*\)"/\1/p' include/labyrinth.h)
SONAME  := liblabyrinth.so.$(firstword $(subst ., ,$(VERSION)))

$(O)/liblabyrinth.so: $(LIB_OBJ)
	@echo "  CC $@"; $(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ -lpthread

# `make install PREFIX=/usr/local DESTDIR=`: libraries, headers, pkg-config
# file and the labyrinth command.
install: all
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/labyrinth $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(O)/liblabyrinth.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(O)/liblabyrinth.so $(DESTDIR)$(PREFIX)/lib/liblabyrinth.so.$(VERSION)
	ln -sf liblabyrinth.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/liblabyrinth.so
	install -m 644 include/labyrinth.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/labyrinth/*.h $(DESTDIR)$(PREFIX)/include/labyrinth/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' labyrinth.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/labyrinth.pc
	install -m 755 $(O)/labyrinth $(DESTDIR)$(PREFIX)/bin/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/liblabyrinth.a $(DESTDIR)$(PREFIX)/lib/liblabyrinth.so* \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/labyrinth.pc $(DESTDIR)$(PREFIX)/bin/labyrinth \
	      $(DESTDIR)$(PREFIX)/include/labyrinth.h
	rm -rf $(DESTDIR)$(PREFIX)/include/labyrinth

TOOL_HDR   := $(wildcard tools/*.h)
$(O)/labyrinth: $(TOOL_SRC) $(TOOL_HDR) $(O)/liblabyrinth.a $(HEADERS)
	@echo "  CC $@"; $(CC) $(CFLAGS_BASE) -D_GNU_SOURCE -o $@ $(TOOL_SRC) $(O)/liblabyrinth.a -lpthread -lm

demo: $(O)/labyrinth
	./$(O)/labyrinth demo

# ---- tests ------------------------------------------------------------------
# tests/test_races.c parks a caller inside lab_plat_irq_save (the first step
# of every call into a zone), a generator refill (inside an exchange), a
# lock wait or a zeroing, while another thread changes the zone.
TEST_LDFLAGS := -Wl,--wrap=lab_plat_irq_save -Wl,--wrap=lab_rng_refill -Wl,--wrap=lab_plat_relax \
                -Wl,--wrap=lab_plat_zero_frames
$(O)/test_unit: $(TEST_SRC) tests/harness.h $(O)/liblabyrinth.a $(HEADERS)
	@echo "  CC $@"; $(CC) $(CFLAGS_BASE) -D_GNU_SOURCE -o $@ $(TEST_SRC) $(O)/liblabyrinth.a $(TEST_LDFLAGS) -lpthread -lm

# A zone of 2^32 frames run for real (32 GiB of address space, ~17 GiB touched).
$(O)/bigzone: tests/bigzone.c $(O)/liblabyrinth.a $(HEADERS)
	@echo "  CC $@"; $(CC) $(CFLAGS_BASE) -D_GNU_SOURCE -o $@ tests/bigzone.c $(O)/liblabyrinth.a -lpthread -lm

SAN_SRC := $(CORE_SRC) $(HOSTED_SRC) $(COMPAT_SRC) $(TEST_SRC)
ASAN_FLAGS := -O1 -D_GNU_SOURCE -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
$(O)/test_asan: $(SAN_SRC) tests/harness.h $(HEADERS)
	@mkdir -p $(O)
	@echo "  CC $@"; $(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -o $@ $(SAN_SRC) $(TEST_LDFLAGS) -lpthread -lm

# The command-line tool under ASan+UBSan: make check runs the audit's
# reduced parts and every bad policy with it (their failure paths included).
$(O)/labyrinth_asan: $(CORE_SRC) $(HOSTED_SRC) $(COMPAT_SRC) $(TOOL_SRC) $(TOOL_HDR) $(HEADERS)
	@mkdir -p $(O)
	@echo "  CC $@"; $(CC) $(CFLAGS_BASE) $(ASAN_FLAGS) -o $@ $(CORE_SRC) $(HOSTED_SRC) $(COMPAT_SRC) $(TOOL_SRC) \
	    -lpthread -lm

$(O)/test_tsan: $(SAN_SRC) tests/harness.h $(HEADERS)
	@mkdir -p $(O)
	@echo "  CC $@"; $(CC) $(CFLAGS_BASE) -O1 -D_GNU_SOURCE -fsanitize=thread -o $@ $(SAN_SRC) $(TEST_LDFLAGS) -lpthread -lm

# The example kernel (examples/kernel): a multiboot ELF for QEMU's -kernel.
KERNEL_SRC := $(wildcard examples/kernel/*.c examples/kernel/*.h examples/kernel/*.S examples/kernel/*.ld)
$(O)/kernel/labyrinth-kernel.elf: $(KERNEL_SRC) examples/kernel/build.sh $(CORE_SRC) src/core/all.c \
		src/compat/linux.c $(HEADERS)
	@mkdir -p $(O)/kernel
	@echo "  KERNEL $@"; CC=$(CC) examples/kernel/build.sh >$(O)/kernel.build.log 2>&1 || \
	    { cat $(O)/kernel.build.log; exit 1; }

kernel: $(O)/kernel/labyrinth-kernel.elf

# The fuzz harness as a plain program (ASan + UBSan, gcc): replays the
# checked-in corpus in `make check`.  `make fuzz` runs libFuzzer (clang).
$(O)/fuzz_replay: fuzz/fuzz_ops.c $(CORE_SRC) $(HOSTED_SRC) $(HEADERS) src/core/internal.h
	@mkdir -p $(O)
	@echo "  CC $@"; $(CC) $(CFLAGS_BASE) -O1 -D_GNU_SOURCE -DFUZZ_REPLAY -Isrc/core \
	    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    -o $@ fuzz/fuzz_ops.c $(CORE_SRC) $(HOSTED_SRC) -lpthread -lm

FUZZ_SECONDS ?= 300
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

check: all $(O)/test_unit $(O)/bigzone $(O)/test_asan $(O)/test_tsan $(O)/labyrinth_asan $(O)/fuzz_replay \
       $(O)/kernel/labyrinth-kernel.elf
	CI=$(CI) ./scripts/check.sh

# `make soak SOAK_SECONDS=3600`: the stress workload, round after round.
SOAK_SECONDS ?= 600
STRESS_SRC := tests/test_stress.c tests/test_main.c tests/soak.c
$(O)/soak: $(STRESS_SRC) tests/harness.h $(O)/liblabyrinth.a $(HEADERS)
	$(CC) $(CFLAGS_BASE) -D_GNU_SOURCE -DHARNESS_NO_MAIN -o $@ $(STRESS_SRC) $(O)/liblabyrinth.a -lpthread -lm

soak: $(O)/soak
	./$(O)/soak $(SOAK_SECONDS)

clean:
	rm -rf $(O)
