/*
 * audit.c - `labyrinth audit`: run the parts, print one line per check,
 * exit non-zero when any check fails.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "audit.h"

static const char help[] =
	"usage: labyrinth audit [--full] [--timing] [--placement] [--ownership] [--colour]\n"
	"                       [--policy P] [--seed N]\n"
	"                       [--runs N] [--samples N] [--class C1..C6] [-v]\n"
	"\n"
	"Measures every property labyrinth claims and prints, per check, the figure,\n"
	"the threshold and PASS or FAIL; exits 1 when any check fails.\n"
	"\n"
	"  (no part named)  placement, ownership/scrub and colour parts at reduced\n"
	"                   size with a fixed seed: what `make check` runs\n"
	"  --full           every part at full size, timing included, and the colour\n"
	"                   part's Prime+Probe experiment (R, with a check of the method)\n"
	"  --timing         the timing part (dudect t-tests, tail latency, system\n"
	"                   calls); statistics on a noisy machine, never run by make check.\n"
	"                   With each tail: the interrupts of its worst run and the tail\n"
	"                   of register-only work timed alike (what the machine allows)\n"
	"  --placement, --ownership, --colour (or --color)   run just those parts\n"
	"  --policy P       swap in a deliberately bad allocator (test-only); each must\n"
	"                   FAIL the checks meant to catch it; alone, it runs the part\n"
	"                   it is for; naming a part it is not for is an error.  Placement:\n"
	"                   lifo (free list), scan (random start + linear scan),\n"
	"                   firstfit.  Ownership: noscrub (the library with\n"
	"                   LAB_ZONE_NO_SCRUB) for the canaries, trusting (frees\n"
	"                   whatever block holds the frame, as its owner) for the\n"
	"                   invalid frees, poisoning (poisons the frames it is named, as\n"
	"                   slab debugging does, then refuses with the right code) for\n"
	"                   the invalid frees' state-unchanged half, racy (checks the\n"
	"                   owner, then frees, in two\n"
	"                   steps) for the racing frees.  Colour: colourblind (every\n"
	"                   owner gets every colour, shared).  Timing: leaky (a toy\n"
	"                   with the classic leaks: scan, rejection sampling, zeroing\n"
	"                   at allocation, buddy merges).  lab (default): the library,\n"
	"                   every part\n"
	"  --seed N         fixed CSPRNG seed (default 1 for reduced runs, entropy for --full)\n"
	"  --runs N         valid dudect runs per class pair (default 5; --full: at least\n"
	"                   5, the issue's test); timing part only\n"
	"  --samples N      measurements per dudect run, 50000 or more (default 10^6 with\n"
	"                   --full, which takes no fewer, 10^5 else); timing part only\n"
	"  --class Cn       timing part: only class pair Cn (C1..C6) and the system-call\n"
	"                   check, for a targeted run; implies --timing\n"
	"  -v, --verbose    more detail; for each dudect run, which test gave the\n"
	"                   largest |t|, its two class means in cycles and the timer's step\n";

static int nr_checks, nr_failed;

int audit_line(const char *property, bool pass, const char *what, const char *fmt, ...)
{
	char fig[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fig, sizeof fig, fmt, ap);
	va_end(ap);
	printf("  %-4s %-3s %-52s %s\n", pass ? "PASS" : "FAIL", property, what, fig);
	fflush(stdout);
	nr_checks++;
	nr_failed += !pass;
	return !pass;
}

void audit_note(const char *fmt, ...)
{
	va_list ap;
	printf("       ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

const char *audit_policy_name(enum audit_policy p)
{
	static const char *n[POLICY_NR] = {"lab",       "lifo", "scan",        "firstfit", "noscrub",
	                                   "trusting",  "poisoning", "racy", "colourblind", "leaky"};
	return p < POLICY_NR ? n[p] : "?";
}

bool audit_policy_part(const struct audit_opts *o, enum audit_part part)
{
	switch (o->policy) {
	case POLICY_LAB: return true;
	case POLICY_LIFO:
	case POLICY_SCAN:
	case POLICY_FIRSTFIT: return part == PART_PLACEMENT;
	case POLICY_NOSCRUB: return part == PART_CANARY;
	case POLICY_TRUSTING:
	case POLICY_POISONING: return part == PART_FREES;
	case POLICY_RACY: return part == PART_RACE;
	case POLICY_COLOURBLIND: return part == PART_COLOUR;
	case POLICY_LEAKY: return part == PART_TIMING;
	default: return false;
	}
}

/* What a bad policy is for, for the note of a part it does not run. */
static const char *policy_for(enum audit_policy p)
{
	switch (p) {
	case POLICY_NOSCRUB: return "the ownership part's canaries (P5)";
	case POLICY_TRUSTING:
	case POLICY_POISONING: return "the ownership part's invalid frees (P7)";
	case POLICY_RACY: return "the ownership part's racing frees (P4)";
	case POLICY_COLOURBLIND: return "the colour part (P6)";
	case POLICY_LEAKY: return "the timing part (P2, P3)";
	default: return "the placement part (P1)";
	}
}

/* Is the policy for a check of the ownership part (the library: all of them)? */
static bool ownership_part(const struct audit_opts *o)
{
	return audit_policy_part(o, PART_CANARY) || audit_policy_part(o, PART_FREES) ||
	       audit_policy_part(o, PART_RACE);
}

static bool part_runs(const struct audit_opts *o, enum audit_part part)
{
	if (audit_policy_part(o, part))
		return true;
	audit_note("not run: policy %s is a bad allocator for %s only", audit_policy_name(o->policy),
	           policy_for(o->policy));
	return false;
}

int cmd_audit(int argc, char **argv)
{
	struct audit_opts o = {.timing_runs = 5};
	bool any_part = false, timing_opt = false;
	uint64_t v;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(help, stdout);
			return 0;
		} else if (!strcmp(a, "--full")) {
			o.full = true;
		} else if (!strcmp(a, "--timing")) {
			o.timing = any_part = true;
		} else if (!strcmp(a, "--placement")) {
			o.placement = any_part = true;
		} else if (!strcmp(a, "--ownership")) {
			o.ownership = any_part = true;
		} else if (!strcmp(a, "--colour") || !strcmp(a, "--color")) {
			o.colour = any_part = true;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			o.verbose = true;
		} else if (!strcmp(a, "--policy") && i + 1 < argc) {
			const char *p = argv[++i];
			enum audit_policy k;
			for (k = 0; k < POLICY_NR && strcmp(p, audit_policy_name(k)); k++)
				;
			if (k == POLICY_NR)
				return cli_usage_error("audit", "--policy wants lab, lifo, scan, firstfit, noscrub, trusting, "
				                       "poisoning, racy, colourblind or leaky, got '%s'", p);
			o.policy = k;
		} else if (!strcmp(a, "--seed") && i + 1 < argc) {
			if (!cli_parse_uint(argv[++i], 0, UINT64_MAX, &o.seed))
				return cli_usage_error("audit", "--seed wants a decimal number, got '%s'", argv[i]);
			o.seeded = true;
		} else if (!strcmp(a, "--runs") && i + 1 < argc) {
			if (!cli_parse_uint(argv[++i], 1, 1000, &v))
				return cli_usage_error("audit", "--runs wants 1..1000, got '%s'", argv[i]);
			o.timing_runs = (unsigned)v;
			timing_opt = true;
		} else if (!strcmp(a, "--samples") && i + 1 < argc) {
			/* The first 10^4 only set dudect's crops, and the second-order
			 * test starts past 10^4 of each class: fewer would test nothing. */
			if (!cli_parse_uint(argv[++i], 50000, 1ull << 32, &o.timing_samples))
				return cli_usage_error("audit", "--samples wants 50000..2^32, got '%s'", argv[i]);
			timing_opt = true;
		} else if (!strcmp(a, "--class") && i + 1 < argc) {
			const char *c = argv[++i];
			if (!(c[0] == 'C' && c[1] >= '1' && c[1] <= '6' && !c[2]))
				return cli_usage_error("audit", "--class wants C1..C6, got '%s'", c);
			o.timing_class = (unsigned)(c[1] - '0');
			o.timing = any_part = true;
		} else {
			return cli_option_error("audit", a, help);
		}
	}
	/* A bad policy with a part it is not for would run no check and pass. */
	const struct {
		bool named;
		bool is_for;
		const char *opt;
	} named[] = {{o.placement, audit_policy_part(&o, PART_PLACEMENT), "--placement"},
	             {o.ownership, ownership_part(&o), "--ownership"},
	             {o.colour, audit_policy_part(&o, PART_COLOUR), "--colour"},
	             {o.timing, audit_policy_part(&o, PART_TIMING), "--timing (or --class)"}};
	for (unsigned k = 0; k < sizeof named / sizeof named[0]; k++)
		if (named[k].named && !named[k].is_for)
			return cli_usage_error("audit", "policy %s is a bad allocator for %s only, not for %s",
			                       audit_policy_name(o.policy), policy_for(o.policy), named[k].opt);
	if (!any_part && o.policy != POLICY_LAB) {
		/* A bad policy alone: the part it is for. */
		o.placement = audit_policy_part(&o, PART_PLACEMENT);
		o.ownership = ownership_part(&o);
		o.colour = audit_policy_part(&o, PART_COLOUR);
		o.timing = audit_policy_part(&o, PART_TIMING);
	} else if (!any_part) {
		o.placement = o.ownership = o.colour = true;
		o.timing = o.full;
	}
	if (o.full && any_part && !o.timing && !o.placement && !o.ownership && !o.colour)
		o.timing = true;
	if (timing_opt && !o.timing)
		return cli_usage_error("audit", "--runs and --samples set the timing part, which this run does not "
		                       "run (add --timing, --class Cn or --full)");
	if (!o.seeded && !o.full) {
		o.seed = 1; /* reduced runs are deterministic */
		o.seeded = true;
	}
	if (o.full && o.timing && (o.timing_runs < 5 || (o.timing_samples && o.timing_samples < 1000000)))
		return cli_usage_error("audit", "--full runs the issue's timing test: at least 5 runs of 10^6 "
		                       "measurements (use --timing for fewer)");
	if (!o.timing_samples)
		o.timing_samples = o.full ? 1000000 : 100000;

	struct utsname u;
	uname(&u);
	struct lab_geometry g;
	lab_hosted_geometry(&g);
	char seed[64] = "from entropy, printed by each part";
	if (o.seeded)
		snprintf(seed, sizeof seed, "%llu", (unsigned long long)o.seed);
	printf("labyrinth audit %s: %s size, policy %s, seed %s\n", LAB_VERSION_STRING,
	       o.full ? "full" : "reduced", audit_policy_name(o.policy), seed);
	printf("machine: %s %s, %u CPUs, L2 %llu KiB %u-way -> %u colours%s\n", u.sysname, u.release,
	       g.nr_cpus, (unsigned long long)(g.l2.size >> 10), g.l2.ways, g.colours,
	       cli_in_vm() ? ", in a VM" : "");
	if (o.placement) {
		printf("\nplacement (P1)\n");
		if (part_runs(&o, PART_PLACEMENT))
			audit_placement(&o);
	}
	if (o.ownership) {
		printf("\nownership and scrub (P4, P5, P7)\n");
		if (ownership_part(&o) || part_runs(&o, PART_RACE))
			audit_ownership(&o);
	}
	if (o.colour) {
		printf("\ncolour isolation (P6)\n");
		if (part_runs(&o, PART_COLOUR))
			audit_colour(&o);
	}
	if (o.timing) {
		printf("\ntiming (P2, P3)\n");
		if (part_runs(&o, PART_TIMING))
			audit_timing(&o);
	}
	printf("\naudit: %d checks, %d failed\n", nr_checks, nr_failed);
	return nr_failed ? 1 : 0;
}
