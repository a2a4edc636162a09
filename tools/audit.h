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

/* Allocators under test.  LAB is the library; the others are deliberately
 * bad ones, each for the part whose checks it must fail, so that every
 * check is shown able to fail (test-only, --policy).  A part a policy is not
 * for is not run under it (audit_policy_part). */
enum audit_policy {
	POLICY_LAB = 0,
	POLICY_LIFO,        /* placement: a LIFO free list, the frame just freed comes back */
	POLICY_SCAN,        /* placement: random start + linear scan (hardened_malloc)     */
	POLICY_FIRSTFIT,    /* placement: lowest free frame first                          */
	POLICY_NOSCRUB,     /* ownership canaries: the library with LAB_ZONE_NO_SCRUB      */
	POLICY_TRUSTING,    /* invalid frees: a free that believes its caller              */
	POLICY_POISONING,   /* invalid frees: poisons the named frames, then refuses       */
	POLICY_RACY,        /* racing frees: owner checked, then freed, in two steps       */
	POLICY_COLOURBLIND, /* colour model: every owner given every colour, shared        */
	POLICY_LEAKY,       /* timing: a toy with the classic leaks (audit_timing.c)       */
	POLICY_NR
};

/* The parts, as a policy names them. */
enum audit_part { PART_PLACEMENT, PART_CANARY, PART_FREES, PART_RACE, PART_COLOUR, PART_TIMING };

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
/* Does the part run under the options' policy?  The library runs every part;
 * a bad policy only the checks it exists to fail. */
bool audit_policy_part(const struct audit_opts *o, enum audit_part part);

/* The parts.  Each returns the number of failed checks. */
int audit_placement(const struct audit_opts *o);
int audit_timing(const struct audit_opts *o);
int audit_ownership(const struct audit_opts *o);
int audit_colour(const struct audit_opts *o);

#endif
