/*
 * info.c - `labyrinth info`: what labyrinth would use on this machine.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char help[] =
	"usage: labyrinth info [--size SIZE] [--cpus N] [--owners N]\n"
	"\n"
	"Prints the cache geometry and the colour count it implies, whether real\n"
	"PFNs and 2 MiB pages are available to colour exactly, the metadata a zone\n"
	"needs per frame, and the build configuration.\n"
	"\n"
	"  --size SIZE   zone size for the metadata figures (default 1G; K/M/G/T)\n"
	"  --cpus N      per-CPU caches in that zone (default: online CPUs)\n"
	"  --owners N    owner ids in that zone (default 64)\n";

static void level(const char *name, const struct lab_cache_level *c)
{
	char b[32];
	if (!c->size) {
		printf("  %-4s unknown\n", name);
		return;
	}
	printf("  %-4s %s, %u-way, %u-byte lines", name, cli_size(c->size, b, sizeof b), c->ways, c->line);
	if (c->ways)
		printf(", %llu page colours (size / (ways x 4 KiB))",
		       (unsigned long long)(c->size / ((uint64_t)c->ways * 4096)));
	else
		printf(", associativity not reported");
	printf("\n");
}

int cmd_info(int argc, char **argv)
{
	uint64_t size = 1ull << 30, cpus = 0, owners = 64;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(help, stdout);
			return 0;
		} else if (!strcmp(a, "--size") && i + 1 < argc) {
			if (!cli_parse_size(argv[++i], &size) || size < 4096 || size / 4096 > (1ull << 32) || size % 4096)
				return cli_usage_error("info", "--size wants a multiple of 4K from 4K up to 16T (2^32 frames), got '%s'",
				                       argv[i]);
		} else if (!strcmp(a, "--cpus") && i + 1 < argc) {
			if (!cli_parse_uint(argv[++i], 1, LAB_MAX_CPUS, &cpus))
				return cli_usage_error("info", "--cpus wants 1..%d, got '%s'", LAB_MAX_CPUS, argv[i]);
		} else if (!strcmp(a, "--owners") && i + 1 < argc) {
			if (!cli_parse_uint(argv[++i], 1, LAB_MAX_OWNERS, &owners))
				return cli_usage_error("info", "--owners wants 1..%d, got '%s'", LAB_MAX_OWNERS,
				                       argv[i]);
		} else {
			return cli_option_error("info", a, help);
		}
	}

	struct lab_geometry g;
	lab_hosted_geometry(&g);
	if (!cpus)
		cpus = g.nr_cpus;
	printf("labyrinth %s\n", LAB_VERSION_STRING);
	printf("build: %s, per-CPU batch %d frames, order 0..%d, colours <= %d, owners <= %d, "
	       "CPUs <= %d\n",
#ifdef NDEBUG
	       "release",
#else
	       "debug",
#endif
	       LAB_PCP_BATCH, LAB_MAX_ORDER, LAB_MAX_COLOURS, LAB_MAX_OWNERS, LAB_MAX_CPUS);
	/* Built with the same flags as the library (Makefile: PREFETCHW). */
#if defined(__PRFCHW__)
	printf("write prefetches: PREFETCHW (lines arrive exclusive)\n");
#elif defined(__x86_64__) || defined(__i386__)
	printf("write prefetches: PREFETCHT0 (lines arrive shared; make PREFETCHW=yes where the CPU\n"
	       "  has PREFETCHW)\n");
#else
	printf("write prefetches: the compiler's __builtin_prefetch(p, 1)\n");
#endif
	printf("\ncache geometry (from %s), %u online CPUs:\n", g.source, g.nr_cpus);
	level("L1d", &g.l1d);
	level("L2", &g.l2);
	level("L3", &g.l3);
	printf("colours used: %u, the L2's (an L3 is sliced by an address hash, so its\n"
	       "  size / (ways x 4 KiB) does not count the sets one page can reach)\n", g.colours);

	struct lab_hosted_opts o = {.bytes = 8ull << 20, .nr_cpus = 1};
	struct lab_hosted_zone hz;
	int rc = lab_hosted_zone_create(&o, &hz);
	printf("\nframe numbers: ");
	if (rc != LAB_OK) {
		printf("could not create a probe zone: %s\n", lab_strerror(rc));
	} else {
		printf("%s\n", hz.real_pfns ? "real PFNs readable from /proc/self/pagemap"
		                            : "arena-relative (pagemap hides PFNs without CAP_SYS_ADMIN)");
		printf("2 MiB pages behind a hosted zone: %s\n", hz.hugepages ? "yes: colours exact" : "no");
		if (hz.why[0])
			printf("  note: %s\n", hz.why);
		lab_hosted_zone_destroy(&hz);
	}
	if (cli_in_vm())
		printf("running in a VM: guest PFNs do not predict the host's cache sets; colour\n"
		       "  isolation here is exact only in the model (bare metal or a hypervisor needed)\n");

	struct lab_zone_cfg cfg;
	char b1[32], b2[32], b3[32];
	lab_zone_cfg_default(&cfg, 0, size / 4096, (void *)(uintptr_t)4096);
	cfg.nr_colours = g.colours;
	cfg.nr_cpus = (uint32_t)cpus;
	cfg.max_owners = (uint32_t)owners;
	size_t per = 0, fixed = 0, total = lab_zone_meta_size(&cfg);
	lab_meta_breakdown(&cfg, &per, &fixed);
	printf("\nmetadata for a %s zone (%llu frames, %llu CPUs, %llu owners, %u colours):\n",
	       cli_size(size / 4096 * 4096, b1, sizeof b1), (unsigned long long)(size / 4096),
	       (unsigned long long)cpus, (unsigned long long)owners, g.colours);
	printf("  %zu bytes per frame (4-byte record incl. owner + 4-byte pool slot)\n", per);
	printf("  + %s more (zone, owners, pools, per-CPU caches, frame-table padding)\n",
	       cli_size(fixed, b2, sizeof b2));
	printf("  = %s, %.3f bytes per frame overall\n", cli_size(total, b3, sizeof b3),
	       (double)total / (double)(size / 4096));
	return 0;
}
