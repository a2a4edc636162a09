/*
 * test_main.c - the harness's runner and shared helpers.
 * Usage: test_unit [substring...]   run tests whose name contains one of them
 *        test_unit --list           list tests
 */
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

#define MAX_TESTS 512
static struct { const char *name, *file; void (*fn)(void); } tests[MAX_TESTS];
static int nr_tests;
jmp_buf harness_abort;
int harness_failed_checks;

void harness_register(const char *name, void (*fn)(void), const char *file)
{
	if (nr_tests < MAX_TESTS) {
		tests[nr_tests].name = name;
		tests[nr_tests].fn = fn;
		tests[nr_tests].file = file;
		nr_tests++;
	}
}

void harness_fail(const char *file, int line, const char *what)
{
	harness_failed_checks++;
	fprintf(stderr, "    FAIL %s:%d: %s\n", file, line, what);
}

bool harness_death(void (*body)(void *), void *arg, const char *msg, char *got, size_t gotlen)
{
	int fds[2];
	got[0] = 0;
	if (pipe(fds) != 0)
		return false;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 2);
		lab_hosted_panic_exit(true);
		body(arg);
		_exit(0); /* survived: not a death */
	}
	close(fds[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < gotlen && (r = read(fds[0], got + n, gotlen - 1 - n)) > 0)
		n += (size_t)r;
	got[n] = 0;
	close(fds[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	for (char *p = got; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return WIFEXITED(status) && WEXITSTATUS(status) == 134 && strstr(got, msg) != NULL;
}

struct tzone tz_make_cfg(const struct lab_zone_cfg *cfg, uint8_t s)
{
	struct tzone t;
	uint8_t seed[32];
	memset(&t, 0, sizeof(t));
	memset(seed, s, sizeof(seed));
	t.cfg = *cfg;
	if (!t.cfg.seed) {
		t.cfg.seed = seed;
		t.cfg.seed_len = sizeof(seed);
	}
	if (!t.cfg.dmap_base && !(t.cfg.flags & LAB_ZONE_NO_SCRUB)) {
		t.arena = aligned_alloc(4096, t.cfg.nr_frames * 4096);
		memset(t.arena, 0, t.cfg.nr_frames * 4096);
		t.cfg.dmap_base = t.arena;
	}
	size_t need = lab_zone_meta_size(&t.cfg);
	if (!need) {
		fprintf(stderr, "tz_make: invalid cfg\n");
		abort();
	}
	t.meta = aligned_alloc(64, (need + 63) & ~(size_t)63);
	int rc = lab_zone_init(&t.z, t.meta, need, &t.cfg);
	if (rc != LAB_OK) {
		fprintf(stderr, "tz_make: lab_zone_init: %s\n", lab_strerror(rc));
		abort();
	}
	t.cfg.seed = NULL;
	return t;
}

struct tzone tz_make(uint64_t nr_frames, unsigned colours, unsigned cpus, uint32_t flags, uint8_t s)
{
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0, nr_frames, NULL);
	cfg.nr_colours = colours;
	cfg.nr_cpus = cpus;
	cfg.flags = flags | ((flags & LAB_ZONE_NO_SCRUB) ? 0 : LAB_ZONE_ZEROED);
	return tz_make_cfg(&cfg, s);
}

void tz_free(struct tzone *t)
{
	free(t->meta);
	free(t->arena);
	memset(t, 0, sizeof(*t));
}

void tz_owner(struct tzone *t, lab_owner_t id, uint64_t colours, uint64_t quota, bool excl)
{
	struct lab_owner_cfg oc = {.colours = colours, .quota = quota,
	                           .flags = excl ? LAB_OWNER_EXCLUSIVE : 0};
	int rc = lab_owner_add(t->z, id, &oc);
	if (rc != LAB_OK) {
		fprintf(stderr, "tz_owner(%u): %s\n", id, lab_strerror(rc));
		harness_fail(__FILE__, __LINE__, "lab_owner_add");
		longjmp(harness_abort, 1);
	}
}

/* FNV-1a over the whole metadata except statistics counters (a refused
 * call is allowed to count itself). */
uint64_t tz_hash(const struct tzone *t)
{
	size_t n = lab_zone_meta_size(&t->cfg);
	const uint8_t *p = t->meta;
	const struct lab_zone *z = t->meta;
	size_t skip_lo = offsetof(struct lab_zone, slow_st), skip_hi = skip_lo + sizeof(z->slow_st);
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		if (i >= skip_lo && i < skip_hi)
			continue;
		size_t off = (size_t)(p + i - z->cpu_base);
		if (p + i >= z->cpu_base && off < z->nr_cpus * z->cpu_stride) {
			size_t in = off % z->cpu_stride;
			if (in >= offsetof(struct lab_cpu, st) && in < offsetof(struct lab_cpu, st) + sizeof(struct lab_cpu_stats))
				continue;
		}
		h = (h ^ p[i]) * 1099511628211ull;
	}
	return h;
}

static bool selected(const char *name, int argc, char **argv)
{
	if (argc <= 1)
		return true;
	for (int i = 1; i < argc; i++)
		if (strstr(name, argv[i]))
			return true;
	return false;
}

/* Run the tests selected by argv (substrings; none: all); print one line per
 * test and the closing "N passed, M failed"; return M. */
int harness_run(int argc, char **argv)
{
	volatile int passed = 0, failed = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (volatile int i = 0; i < nr_tests; i++) {
		if (!selected(tests[i].name, argc, argv))
			continue;
		int before = harness_failed_checks;
		if (setjmp(harness_abort) == 0)
			tests[i].fn();
		if (harness_failed_checks == before) {
			passed++;
			printf("  ok   %s\n", tests[i].name);
		} else {
			failed++;
			printf("  FAIL %s (%s)\n", tests[i].name, tests[i].file);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed;
}

#ifndef HARNESS_NO_MAIN
int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--list") == 0) {
		for (int i = 0; i < nr_tests; i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	return harness_run(argc, argv) ? 1 : 0;
}
#endif
