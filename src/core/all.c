/*
 * all.c - the whole core as one translation unit, for kernels that vendor
 * labyrinth as a single file (mimalloc's static.c, the SQLite amalgamation).
 * Build it with -ffreestanding; link your own lab_plat_* hooks.
 */
#include "rng.c"
#include "pool.c"
#include "cpu.c"
#include "alloc.c"
#include "scrub.c"
#include "owner.c"
#include "zone.c"
#include "check.c"
