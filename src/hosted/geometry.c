/*
 * geometry.c - cache geometry of this machine and the colour count it implies.
 *
 * colours = L2 size / (ways * 4 KiB): the number of page-sized groups of L2
 * sets that a physical page can map to.  The L3 of most servers is sliced by
 * a hash of the address, so size / (ways * 4 KiB) overstates its per-slice
 * colours; we report that figure but colour by the L2.  Sources, in order:
 * sysfs, glibc sysconf (which reads CPUID), a default of 32.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "labyrinth/hosted.h"

static long read_num(const char *dir, const char *name)
{
	char path[256], buf[64];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	if (fgets(buf, sizeof(buf), f)) {
		char *end;
		v = strtol(buf, &end, 10);
		if (*end == 'K')
			v *= 1024;
		else if (*end == 'M')
			v *= 1024 * 1024;
	}
	fclose(f);
	return v;
}

static bool from_sysfs(struct lab_geometry *g)
{
	bool any = false;
	for (int i = 0; i < 8; i++) {
		char dir[128], type[32] = "";
		snprintf(dir, sizeof(dir), "/sys/devices/system/cpu/cpu0/cache/index%d", i);
		char tpath[160];
		snprintf(tpath, sizeof(tpath), "%s/type", dir);
		FILE *f = fopen(tpath, "r");
		if (!f)
			continue;
		if (!fgets(type, sizeof(type), f))
			type[0] = 0;
		fclose(f);
		if (strncmp(type, "Instruction", 11) == 0)
			continue;
		long level = read_num(dir, "level");
		struct lab_cache_level *c = level == 1 ? &g->l1d : level == 2 ? &g->l2 : level == 3 ? &g->l3 : NULL;
		if (!c)
			continue;
		c->level = (unsigned)level;
		c->size = (uint64_t)(read_num(dir, "size") > 0 ? read_num(dir, "size") : 0);
		long w = read_num(dir, "ways_of_associativity"), s = read_num(dir, "number_of_sets");
		long l = read_num(dir, "coherency_line_size");
		c->ways = w > 0 ? (unsigned)w : 0;
		c->sets = s > 0 ? (unsigned)s : 0;
		c->line = l > 0 ? (unsigned)l : 64;
		c->shared = level >= 3;
		any = any || c->size;
	}
	return any && g->l2.size;
}

static bool from_sysconf(struct lab_geometry *g)
{
#ifdef _SC_LEVEL2_CACHE_SIZE
	long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE), l1w = sysconf(_SC_LEVEL1_DCACHE_ASSOC);
	long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE), l2w = sysconf(_SC_LEVEL2_CACHE_ASSOC);
	long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE), l3w = sysconf(_SC_LEVEL3_CACHE_ASSOC);
	long line = sysconf(_SC_LEVEL1_DCACHE_LINESIZE);
	if (l2 <= 0)
		return false;
	struct { struct lab_cache_level *c; long size, ways; unsigned level; } t[3] = {
		{&g->l1d, l1, l1w, 1}, {&g->l2, l2, l2w, 2}, {&g->l3, l3, l3w, 3}};
	for (int i = 0; i < 3; i++) {
		if (t[i].size <= 0)
			continue;
		t[i].c->level = t[i].level;
		t[i].c->size = (uint64_t)t[i].size;
		t[i].c->ways = t[i].ways > 0 ? (unsigned)t[i].ways : 0;
		t[i].c->line = line > 0 ? (unsigned)line : 64;
		t[i].c->sets = t[i].c->ways ? (unsigned)(t[i].c->size / (t[i].c->ways * t[i].c->line)) : 0;
		t[i].c->shared = t[i].level >= 3;
	}
	return true;
#else
	(void)g;
	return false;
#endif
}

static unsigned pow2_floor(uint64_t x)
{
	unsigned p = 1;
	while ((uint64_t)p * 2 <= x && p < 0x80000000u)
		p *= 2;
	return p;
}

static unsigned colours_of(const struct lab_cache_level *c)
{
	if (!c->size || !c->ways)
		return 0;
	return pow2_floor(c->size / ((uint64_t)c->ways * 4096));
}

void lab_hosted_geometry(struct lab_geometry *g)
{
	memset(g, 0, sizeof(*g));
	if (from_sysfs(g))
		g->source = "sysfs";
	else if (from_sysconf(g))
		g->source = "sysconf";
	else
		g->source = "default";
	unsigned c = colours_of(&g->l2);
	g->colours = c ? (c > 64 ? 64 : c) : 32;
	g->colours_l3 = colours_of(&g->l3);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	g->nr_cpus = n > 0 ? (unsigned)n : 1;
}

unsigned lab_hosted_default_cpus(const struct lab_geometry *g)
{
	unsigned n = g->nr_cpus > LAB_MAX_CPUS / 2 ? LAB_MAX_CPUS : 2 * g->nr_cpus;
	return n < 4 ? 4 : n;
}
