/*
 * arena.c - hosted zones over anonymous memory.
 *
 * The arena is 2 MiB aligned and asked for transparent huge pages: inside a
 * 2 MiB page, physical address bits 12-20 equal the virtual ones, so for up
 * to 512 colours the colour of arena frame i is i mod colours, exactly as on
 * bare metal.  Without huge pages (or inside a VM whose host backs guest RAM
 * with 4 KiB pages) the colours are arena-relative; lab_hosted_zone says
 * which case holds.  Real PFNs come from /proc/self/pagemap when readable.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "labyrinth/hosted.h"

#define HUGE (2ull << 20)

/* The PFN of addr through an open /proc/self/pagemap. */
static int pfn_at(int fd, const void *addr, uint64_t *pfn)
{
	uint64_t ent = 0;
	off_t off = (off_t)((uintptr_t)addr / 4096) * 8;
	if (pread(fd, &ent, sizeof(ent), off) != (ssize_t)sizeof(ent) || !(ent >> 63))
		return -1;
	uint64_t p = ent & ((1ull << 55) - 1);
	if (!p)
		return -1; /* present, but PFNs hidden from us (no CAP_SYS_ADMIN) */
	*pfn = p;
	return 0;
}

int lab_hosted_pfn_of(const void *addr, uint64_t *pfn)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return -1;
	int rc = pfn_at(fd, addr, pfn);
	close(fd);
	return rc;
}

/* True if every 2 MiB of [arena, arena + bytes) is one aligned huge page
 * (its first and last 4 KiB are PFNs p and p + 511, p a multiple of 512). */
static bool all_huge(const uint8_t *arena, size_t bytes)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return false;
	bool huge = bytes >= HUGE;
	for (size_t off = 0; huge && off + HUGE <= bytes; off += HUGE) {
		uint64_t a, b;
		huge = pfn_at(fd, arena + off, &a) == 0 && pfn_at(fd, arena + off + HUGE - 4096, &b) == 0 &&
		       b == a + 511 && (a & 511) == 0;
	}
	close(fd);
	return huge;
}

static void *map_aligned(uint64_t bytes, bool noreserve)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | (noreserve ? MAP_NORESERVE : 0);
	uint8_t *p = mmap(NULL, bytes + HUGE, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	uint8_t *end = p + bytes + HUGE, *aend = a + bytes;
	if (end > aend)
		munmap(aend, (size_t)(end - aend));
	return a;
}

/* The zone configuration options o give over hz's memory. */
static void hosted_cfg(const struct lab_hosted_opts *o, const struct lab_hosted_zone *hz,
                       const struct lab_geometry *g, struct lab_zone_cfg *cfg)
{
	lab_zone_cfg_default(cfg, hz->base_pfn, hz->nr_frames, hz->arena);
	cfg->nr_colours = hz->colours;
	/* A hosted "CPU" is a thread slot (lab_plat_cpu): the thread that set
	 * the zone up holds one too, so online CPUs alone would leave the last
	 * worker of a one-per-CPU pool on the slot-less path (a lock per call). */
	cfg->nr_cpus = o->nr_cpus ? o->nr_cpus : lab_hosted_default_cpus(g);
	cfg->max_owners = o->max_owners ? o->max_owners : 64;
	if (o->reserve_permille == LAB_HOSTED_NO_RESERVE)
		cfg->reserve_permille = 0;
	else if (o->reserve_permille)
		cfg->reserve_permille = o->reserve_permille;
	cfg->flags = o->zone_flags | (o->no_touch ? 0 : LAB_ZONE_ZEROED);
	cfg->seed = o->seed;
	cfg->seed_len = o->seed_len;
}

int lab_hosted_zone_create(const struct lab_hosted_opts *o, struct lab_hosted_zone *hz)
{
	struct lab_geometry g;
	struct lab_zone_cfg cfg;

	memset(hz, 0, sizeof(*hz));
	if (!o || o->bytes < 4096 || (o->no_touch && !(o->zone_flags & LAB_ZONE_NO_SCRUB)))
		return LAB_EINVAL;
	lab_hosted_geometry(&g);
	hz->nr_frames = o->bytes / 4096;
	hz->colours = o->colours ? o->colours : g.colours;
	/* Refuse a bad configuration with lab_zone_init's own code before
	 * mapping (and faulting in) the arena: the direct map is not known
	 * yet, so any aligned address stands in for it. */
	hosted_cfg(o, hz, &g, &cfg);
	cfg.dmap_base = (void *)(uintptr_t)4096;
	int rc = lab_zone_cfg_check(&cfg);
	if (rc != LAB_OK)
		return rc;
	hz->arena_bytes = (size_t)(((hz->nr_frames * 4096) + HUGE - 1) & ~(HUGE - 1));
	hz->arena = map_aligned(hz->arena_bytes, o->no_touch);
	if (!hz->arena) {
		snprintf(hz->why, sizeof(hz->why), "cannot map %llu bytes: %s",
		         (unsigned long long)hz->arena_bytes, strerror(errno));
		return LAB_ENOSPC;
	}
	if (!o->no_touch) {
		madvise(hz->arena, hz->arena_bytes, MADV_HUGEPAGE);
		/* Fault the whole arena in now, as a kernel's frames are present:
		 * otherwise the host's first touch of each page (zeroing, for a
		 * 2 MiB page, half a megabyte per frame's worth) lands in whichever
		 * allocator call writes the frame first, a scrub most often, and
		 * the colours of pages not yet present could not be checked.
		 * Writing zero keeps the arena zero (LAB_ZONE_ZEROED). */
		for (size_t off = 0; off < hz->arena_bytes; off += 4096)
			((volatile uint8_t *)hz->arena)[off] = 0;
		uint64_t p0;
		if (lab_hosted_pfn_of(hz->arena, &p0) == 0) {
			hz->real_pfns = true;
			hz->base_pfn = p0;
			/* Colour = PFN mod nr_colours holds for every frame only if
			 * every 2 MiB of the arena is one aligned huge page: check
			 * each, not just the first. */
			hz->hugepages = hz->nr_frames >= 512 && all_huge(hz->arena, hz->arena_bytes);
			if (!hz->hugepages)
				snprintf(hz->why, sizeof(hz->why),
				         "not every 2 MiB of the arena is a huge page: colours are arena-relative");
		} else {
			snprintf(hz->why, sizeof(hz->why),
			         "/proc/self/pagemap hides PFNs (needs CAP_SYS_ADMIN): arena-relative PFNs");
		}
	} else {
		snprintf(hz->why, sizeof(hz->why), "arena never touched (no-scrub benchmark zone)");
	}
	if (hz->real_pfns && !hz->hugepages)
		hz->base_pfn = 0; /* a 4 KiB page's PFN says nothing about its neighbours */

	hosted_cfg(o, hz, &g, &cfg);
	size_t need = lab_zone_meta_size(&cfg);
	if (!need) { /* the real PFNs or direct map: lab_zone_init's reason */
		rc = lab_zone_cfg_check(&cfg);
		lab_hosted_zone_destroy(hz);
		return rc;
	}
	/* Metadata on 2 MiB pages too: the order-0 paths touch random records
	 * and slots, and with 4 KiB pages how many distinct pages they touch
	 * (so dTLB misses) would depend on how the free frames are laid out, a
	 * timing leak (P3).  A kernel's direct map uses large pages anyway. */
	hz->meta_bytes = (need + HUGE - 1) & ~(size_t)(HUGE - 1);
	hz->meta = map_aligned(hz->meta_bytes, false);
	if (hz->meta)
		madvise(hz->meta, hz->meta_bytes, MADV_HUGEPAGE);
	if (!hz->meta) {
		snprintf(hz->why, sizeof(hz->why), "cannot map %zu bytes of metadata: %s", need,
		         strerror(errno));
		lab_hosted_zone_destroy(hz);
		return LAB_ENOSPC;
	}
	/* Fault it all in, as a kernel's metadata is memory that is there:
	 * lab_zone_init leaves the slots of pools not yet built untouched, and
	 * a prefetch into a page never mapped is dropped, so the decoys (P3)
	 * would bring in lines only where pools exist. */
	memset(hz->meta, 0, hz->meta_bytes);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = lab_zone_init(&hz->zone, hz->meta, hz->meta_bytes, &cfg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	hz->init_seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	if (rc != LAB_OK) {
		lab_hosted_zone_destroy(hz);
		return rc;
	}
	lab_hosted_track(hz->zone, true);
	return LAB_OK;
}

int lab_hosted_zone_reinit(struct lab_hosted_zone *hz, const struct lab_hosted_opts *o)
{
	struct lab_geometry g;
	struct lab_zone_cfg cfg;

	if (!hz || !hz->zone || !o || o->bytes / 4096 != hz->nr_frames ||
	    (o->colours ? o->colours : hz->colours) != hz->colours ||
	    (o->no_touch && !(o->zone_flags & LAB_ZONE_NO_SCRUB)))
		return LAB_EINVAL;
	lab_hosted_geometry(&g);
	hosted_cfg(o, hz, &g, &cfg);
	int rc = lab_zone_cfg_check(&cfg);
	if (rc != LAB_OK)
		return rc; /* lab_zone_init's own refusal, before anything changed */
	if (lab_zone_meta_size(&cfg) > hz->meta_bytes)
		return LAB_EGEOMETRY; /* more CPUs or owners than the metadata was sized for */
	lab_hosted_track(hz->zone, false);
	lab_zone_t *z = NULL;
	rc = lab_zone_init(&z, hz->meta, hz->meta_bytes, &cfg);
	if (rc != LAB_OK) /* refused before writing anything: the old zone stands */
		z = hz->zone;
	hz->zone = z;
	lab_hosted_track(hz->zone, true);
	return rc;
}

void lab_hosted_zone_destroy(struct lab_hosted_zone *hz)
{
	if (hz->zone)
		lab_hosted_track(hz->zone, false);
	if (hz->arena)
		munmap(hz->arena, hz->arena_bytes);
	if (hz->meta)
		munmap(hz->meta, hz->meta_bytes);
	hz->arena = hz->meta = NULL;
	hz->zone = NULL;
}
