/*
 * main.c - the `labyrinth` command: dispatch to its subcommands.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
	"usage: labyrinth <command> [options]\n"
	"\n"
	"labyrinth is a page-frame allocator for kernels and hypervisors: uniformly\n"
	"random placement, state-independent timing, one owner per frame, frames\n"
	"zeroed between owners, and cache colours exclusive owners never share.\n"
	"\n"
	"commands:\n"
	"  demo     a simulated hypervisor on a hosted zone: VMs, interrupt-context\n"
	"           allocations, a VM torn down; prints what each property measured\n"
	"  audit    measure every property (placement, timing, ownership, scrub,\n"
	"           colours): figure, threshold, PASS/FAIL per check\n"
	"  bench    alloc+free throughput for 1..N threads, in rounds, as ratios\n"
	"  info     cache geometry, colour count, real PFNs and hugepages, metadata\n"
	"           bytes per frame, build configuration\n"
	"  help     this text; `labyrinth help <command>` (or `labyrinth <command>\n"
	"           --help`) explains a command\n"
	"\n"
	"options: --version\n";

/* strtoull skips blanks and takes a sign, and clamps on overflow: a number
 * here is digits only, and one too large for 64 bits is refused. */
static bool parse_digits(const char *s, unsigned long long *v, char **end)
{
	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*v = strtoull(s, end, 10);
	return errno == 0;
}

bool cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	if (!parse_digits(s, &v, &end))
		return false;
	uint64_t mul = 1;
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10;
	else if (*end == 'M' || *end == 'm')
		mul = 1ull << 20;
	else if (*end == 'G' || *end == 'g')
		mul = 1ull << 30;
	else if (*end == 'T' || *end == 't')
		mul = 1ull << 40;
	else if (*end)
		return false;
	if (*end && end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B"))
		return false;
	if (v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

bool cli_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;
	if (!parse_digits(s, &v, &end))
		return false;
	if (*end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "labyrinth %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(try `labyrinth %s --help`)\n", cmd);
	return 2;
}

bool cli_writable(const char *cmd, const char *path)
{
	if (access(path, F_OK) == 0) {
		if (access(path, W_OK) == 0)
			return true;
	} else {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0666);
		if (fd >= 0) {
			close(fd);
			unlink(path);
			return true;
		}
	}
	fprintf(stderr, "labyrinth %s: cannot write %s: %s\n", cmd, path, strerror(errno));
	return false;
}

int cli_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int cli_option_error(const char *cmd, const char *a, const char *help)
{
	/* An option the help shows with a value ("--seed N") wants one. */
	size_t n = strlen(a);
	for (const char *h = help; n > 2 && a[0] == '-' && (h = strstr(h, a)); h += n)
		if (h[n] == ' ' && h[n + 1] && h[n + 1] != ' ')
			return cli_usage_error(cmd, "%s wants a value", a);
	return cli_usage_error(cmd, "unknown option '%s'", a);
}

const char *cli_size(uint64_t b, char *buf, unsigned len)
{
	static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;
	double v = (double)b;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, v == (double)(uint64_t)v ? "%.0f %s" : "%.1f %s", v, unit[u]);
	return buf;
}

double cli_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

bool cli_in_vm(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	bool vm = false;
	if (!f)
		return false;
	while (!vm && fgets(line, sizeof(line), f))
		if (strncmp(line, "flags", 5) == 0 && strstr(line, " hypervisor"))
			vm = true;
	fclose(f);
	return vm;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	char *help_argv[] = {NULL, (char *)"--help", NULL};
	if (!strcmp(cmd, "help") && argc == 3) { /* help CMD: CMD --help */
		cmd = help_argv[0] = argv[2];
		argc = 3;
		argv = help_argv - 1;
	} else if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		if (argc > 2)
			return cli_usage_error("help", "wants at most one command, got %d words", argc - 2);
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("labyrinth %s\n", LAB_VERSION_STRING);
		return 0;
	}
	if (!strcmp(cmd, "info"))
		return cmd_info(argc - 1, argv + 1);
	if (!strcmp(cmd, "demo"))
		return cmd_demo(argc - 1, argv + 1);
	if (!strcmp(cmd, "bench"))
		return cmd_bench(argc - 1, argv + 1);
	if (!strcmp(cmd, "audit"))
		return cmd_audit(argc - 1, argv + 1);
	fprintf(stderr, "labyrinth: unknown command '%s'\n\n%s", cmd, usage);
	return 2;
}
