/*
 * audit.h - `labyrinth audit`: the parts and how they report.
 *
 * Every check prints one line: the property, what was measured, the figure,
 * the threshold and PASS/FAIL.  A part returns the number of FAIL lines it
 * printed; the driver (audit.c) exits non-zero when any part failed.
 */
#ifndef LAB_AUDIT_H
#define LAB_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"

/* Placement policies under test.  LAB is the library; the others are
 * deliberately bad allocators built over the same frames so every metric
 * can be shown to fail (test-only, --policy). */
enum audit_policy {
	POLICY_LAB = 0,
	POLICY_LIFO,     /* a LIFO free list: the frame just freed comes back  */
	POLICY_SCAN,     /* random start + linear scan (hardened_malloc slots) */
	POLICY_FIRSTFIT, /* lowest free frame first                            */
	POLICY_NR
};

struct audit_opts {
	bool full;            /* full sizes (else the reduced sizes make check uses) */
	bool timing;          /* run the timing part                                  */
	bool placement, ownership, colour; /* which parts run                         */
	enum audit_policy policy;
	uint64_t seed;        /* fixed seed: deterministic placement (non-timing parts) */
	bool seeded;
	unsigned timing_runs; /* dudect runs per class pair (valid runs needed: 5)     */
	uint64_t timing_samples; /* measurements per run                               */
	unsigned timing_class; /* 0: every class pair; k: only Ck (--class)           */
	bool verbose;
};

/* Print one result line and return 1 if it failed, 0 if it passed.
 *   property: "P1", "P3", ...; what: short description incl. the state;
 *   figure/threshold: already formatted numbers with their comparison. */
int audit_line(const char *property, bool pass, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* An informational line (no verdict). */
void audit_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *audit_policy_name(enum audit_policy p);

/* The parts.  Each returns the number of failed checks. */
int audit_placement(const struct audit_opts *o);
int audit_timing(const struct audit_opts *o);
int audit_ownership(const struct audit_opts *o);
int audit_colour(const struct audit_opts *o);

#endif
