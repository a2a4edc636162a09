/*
 * demo.c - `labyrinth demo`: a simulated hypervisor on a hosted zone.
 *
 * Exclusive VMs on disjoint colours and shared owners on the remaining
 * colours; one thread per CPU plays a network card's interrupt handler,
 * allocating with LAB_ATOMIC and handing buffers to the other threads, which
 * free them later (cross-CPU frees); halfway through, VM 1 is torn down and
 * its frames reclaimed.  Every step is checked against a shadow ownership
 * table, and the summary states each property with the figure behind it.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
	"usage: labyrinth demo [--size SIZE] [--vms N] [--seconds S] [--threads T] [--seed N]\n"
	"                      [--map FILE.png]\n"
	"\n"
	"Runs a small hypervisor on a zone of anonymous memory and prints, for each\n"
	"property labyrinth promises, what this run measured.  It also draws the\n"
	"zone as it stood before VM 1 was torn down: one pixel per frame in pfn\n"
	"order, 16 x colours frames per row, so each cache colour is a column and\n"
	"each VM's private colours a band; on the right the same holdings as a\n"
	"first-fit allocator lays them out.\n"
	"\n"
	"  --size SIZE    zone size (default 1G, or 256M if the machine cannot map 1G)\n"
	"  --vms N        exclusive VMs, each with its own cache colours (default 3, 1..15)\n"
	"  --seconds S    how long the interrupt threads run (default 4)\n"
	"  --threads T    interrupt threads (default: online CPUs, at least 2)\n"
	"  --seed N       fixed CSPRNG seed: placement becomes reproducible for debugging\n"
	"                 (default: fresh entropy from getrandom)\n"
	"  --map FILE     where to write the picture (default labyrinth-map.png)\n";

#define SHARED_OWNERS 2
#define RING 2048

struct demo {
	struct lab_hosted_zone hz;
	lab_zone_t *z;
	unsigned nr_owners, vms, colours, threads;
	uint64_t masks[32];
	bool excl[32];
	_Atomic uint32_t *shadow; /* owner holding each frame, 0 if none */
	_Atomic bool stop, vm1_dead, vm1_stop;
	_Atomic uint64_t allocs, frees, fail, violations, dirty_bytes, colour_bad, reserve_seen;
	_Atomic uint64_t handoffs;
	pthread_mutex_t mu;
	uint64_t inbox[64][256];
	unsigned inbox_n[64];
};

struct held {
	uint64_t pfn;
	uint32_t owner;
};

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void give_back(struct demo *d, struct held h)
{
	uint32_t f = (uint32_t)(h.pfn - d->hz.base_pfn), want = h.owner;
	if (!atomic_compare_exchange_strong(&d->shadow[f], &want, 0))
		atomic_fetch_add(&d->violations, 1);
	int rc = lab_free(d->z, h.owner, h.pfn, 0);
	if (rc == LAB_OK)
		atomic_fetch_add(&d->frees, 1);
	else if (!(rc == LAB_ENOOWNER && h.owner == 1)) /* VM 1 died: frame reclaimed */
		atomic_fetch_add(&d->violations, 1);
}

struct worker {
	struct demo *d;
	unsigned id;
	uint64_t seed;
};

static void *interrupt_thread(void *arg)
{
	struct worker *w = arg;
	struct demo *d = w->d;
	struct held ring[RING];
	unsigned n = 0;
	uint64_t s = w->seed;

	while (!atomic_load(&d->stop)) {
		/* Buffers other threads handed us: the "VM" side frees them. */
		pthread_mutex_lock(&d->mu);
		unsigned k = d->inbox_n[w->id];
		uint64_t box[256];
		memcpy(box, d->inbox[w->id], k * sizeof(uint64_t));
		d->inbox_n[w->id] = 0;
		pthread_mutex_unlock(&d->mu);
		for (unsigned i = 0; i < k; i++)
			give_back(d, (struct held){box[i] >> 8, (uint32_t)(box[i] & 0xff)});

		uint64_t r = xs(&s);
		uint32_t owner = 1 + (uint32_t)(r % d->nr_owners);
		if (owner == 1 && atomic_load(&d->vm1_stop))
			owner = 2;
		if (n < RING && (r >> 32) % 100 < 55) {
			uint64_t pfn;
			int rc = lab_alloc(d->z, owner, 0, LAB_ATOMIC, &pfn);
			if (rc != LAB_OK) {
				atomic_fetch_add(&d->fail, 1);
				continue;
			}
			atomic_fetch_add(&d->allocs, 1);
			uint32_t f = (uint32_t)(pfn - d->hz.base_pfn), zero = 0;
			if (!atomic_compare_exchange_strong(&d->shadow[f], &zero, owner))
				atomic_fetch_add(&d->violations, 1);
			if (!(d->masks[owner] >> (pfn & (d->colours - 1)) & 1))
				atomic_fetch_add(&d->colour_bad, 1);
			uint64_t *p = lab_pfn_to_virt(d->z, pfn);
			if (!d->excl[owner]) { /* shared frames must come zeroed */
				uint64_t nz = 0;
				for (int i = 0; i < 512; i++)
					nz += p[i] != 0;
				atomic_fetch_add(&d->dirty_bytes, nz);
			}
			p[0] = ((uint64_t)owner << 56) | pfn; /* the "packet" */
			p[511] = p[0];
			ring[n++] = (struct held){pfn, owner};
		} else if (n) {
			unsigned i = (unsigned)(r % n);
			struct held h = ring[i];
			ring[i] = ring[--n];
			uint64_t *p = lab_pfn_to_virt(d->z, h.pfn);
			if (!(h.owner == 1 && atomic_load(&d->vm1_dead)) &&
			    (p[0] != (((uint64_t)h.owner << 56) | h.pfn) || p[511] != p[0]))
				atomic_fetch_add(&d->violations, 1); /* someone else wrote our frame */
			unsigned to = (unsigned)((r >> 40) % d->threads);
			pthread_mutex_lock(&d->mu);
			if (to != w->id && d->inbox_n[to] < 256) {
				d->inbox[to][d->inbox_n[to]++] = h.pfn << 8 | h.owner;
				pthread_mutex_unlock(&d->mu);
				atomic_fetch_add(&d->handoffs, 1);
			} else {
				pthread_mutex_unlock(&d->mu);
				if (!(h.owner == 1 && atomic_load(&d->vm1_dead)))
					give_back(d, h);
			}
		}
	}
	for (unsigned i = 0; i < n; i++)
		if (!(ring[i].owner == 1 && atomic_load(&d->vm1_dead)))
			give_back(d, ring[i]);
	lab_cpu_drain(d->z);
	return NULL;
}

/* Chi-square of order-0 placement over a shared pool at 50% occupancy:
 * M = 20 n_free alloc+free pairs; Wilson-Hilferty z. */
static double placement_z(struct demo *d, uint32_t owner, uint64_t *n_free_out)
{
	struct lab_owner_stats os;
	lab_owner_stats(d->z, owner, &os);
	uint64_t total = os.pool_free, half = total / 2, *held = malloc(half * sizeof(uint64_t));
	uint64_t got = 0;
	while (got < half && lab_alloc(d->z, owner, 0, LAB_ATOMIC, &held[got]) == LAB_OK)
		got++;
	uint64_t nfree = total - got, M = 20 * nfree;
	uint32_t *count = calloc(d->hz.nr_frames, sizeof(uint32_t));
	for (uint64_t i = 0; i < M; i++) {
		uint64_t pfn;
		if (lab_alloc(d->z, owner, 0, LAB_ATOMIC, &pfn) != LAB_OK)
			break;
		count[pfn - d->hz.base_pfn]++;
		lab_free(d->z, owner, pfn, 0);
	}
	double chi = 0, e = (double)M / (double)nfree;
	uint64_t cells = 0;
	for (uint64_t f = 0; f < d->hz.nr_frames; f++) {
		lab_owner_t o;
		lab_frame_owner(d->z, d->hz.base_pfn + f, &o, NULL);
		if (!(d->masks[owner] >> ((d->hz.base_pfn + f) & (d->colours - 1)) & 1) || o != 0)
			continue;
		chi += ((double)count[f] - e) * ((double)count[f] - e) / e;
		cells++;
	}
	for (uint64_t i = 0; i < got; i++)
		lab_free(d->z, owner, held[i], 0);
	free(held);
	free(count);
	double k = (double)(cells - 1);
	*n_free_out = nfree;
	return (cbrt(chi / k) - (1 - 2 / (9 * k))) / sqrt(2 / (9 * k));
}

static const uint8_t palette[][3] = {
	{230, 25, 75}, {60, 180, 75}, {255, 225, 25}, {0, 130, 200}, {245, 130, 48},
	{145, 30, 180}, {70, 240, 240}, {240, 50, 230}, {210, 245, 60}, {250, 190, 212},
	{0, 128, 128}, {220, 190, 255}, {170, 110, 40}, {255, 250, 200}, {128, 0, 0}};

/* A frame's pixel: held frames in their owner's colour (shared domains in
 * white and light grey), free frames in a dark shade of their pool's colour,
 * so each partition shows as its own columns, unassigned frames black. */
static void frame_rgb(const struct demo *d, uint32_t owner, uint64_t pfn, uint8_t *px)
{
	unsigned col = (unsigned)(pfn & (d->colours - 1)), pool_owner = 0;
	for (unsigned id = 1; id <= d->nr_owners && !pool_owner; id++)
		if (d->masks[id] >> col & 1)
			pool_owner = id;
	if (owner) {
		if (d->excl[owner]) {
			memcpy(px, palette[(owner - 1) % (sizeof palette / sizeof palette[0])], 3);
		} else {
			uint8_t v = (uint8_t)(owner == d->vms + 1 ? 255 : 170);
			px[0] = px[1] = px[2] = v;
		}
		return;
	}
	if (!pool_owner) {
		px[0] = px[1] = px[2] = 0;
	} else if (d->excl[pool_owner]) {
		const uint8_t *c = palette[(pool_owner - 1) % (sizeof palette / sizeof palette[0])];
		px[0] = (uint8_t)(c[0] / 4);
		px[1] = (uint8_t)(c[1] / 4);
		px[2] = (uint8_t)(c[2] / 4);
	} else {
		px[0] = px[1] = px[2] = 56;
	}
}

/* The zone as it stands (left) and the same holdings laid out first-fit
 * (right): each frame a pixel in pfn order, W = 16 x colours frames per row,
 * so colour c is every column x with x mod colours == c, and an exclusive
 * owner's contiguous colours form a band repeated across the row. */
static int write_map(struct demo *d, const char *path, char *why, size_t whylen)
{
	uint64_t N = d->hz.nr_frames, W = 16ull * d->colours, H = (N + W - 1) / W;
	unsigned gap = 16, w = (unsigned)(2 * W + gap), h = (unsigned)H;
	uint8_t *rgb = calloc((size_t)w * h, 3);
	uint32_t *owner = calloc(N, sizeof(uint32_t));
	uint64_t held[32] = {0};
	if (!rgb || !owner) {
		snprintf(why, whylen, "out of memory");
		free(rgb);
		free(owner);
		return -1;
	}
	for (uint64_t f = 0; f < N; f++) {
		lab_owner_t o = 0;
		lab_frame_owner(d->z, d->hz.base_pfn + f, &o, NULL);
		owner[f] = o;
		if (o < 32)
			held[o]++;
	}
	for (uint64_t f = 0; f < N; f++) {
		uint64_t pfn = d->hz.base_pfn + f;
		frame_rgb(d, owner[f], pfn, rgb + ((f / W) * w + f % W) * 3);
		frame_rgb(d, 0, pfn, rgb + ((f / W) * w + W + gap + f % W) * 3);
	}
	/* First fit: each owner, in id order, takes the lowest free frames of its
	 * colours until it holds as many as it does in the real zone. */
	uint8_t *taken = calloc(N, 1);
	for (unsigned id = 1; id <= d->nr_owners && taken; id++) {
		uint64_t need = held[id];
		for (uint64_t f = 0; f < N && need; f++) {
			if (taken[f] || !(d->masks[id] >> ((d->hz.base_pfn + f) & (d->colours - 1)) & 1))
				continue;
			taken[f] = 1;
			need--;
			frame_rgb(d, id, d->hz.base_pfn + f, rgb + ((f / W) * w + W + gap + f % W) * 3);
		}
	}
	free(taken);
	for (unsigned y = 0; y < h; y++) /* a light gutter between the panels */
		for (unsigned x = (unsigned)W; x < W + gap; x++)
			memset(rgb + ((size_t)y * w + x) * 3, 200, 3);
	int rc = cli_write_png(path, rgb, w, h);
	if (rc)
		snprintf(why, whylen, "cannot write %s", path);
	free(rgb);
	free(owner);
	return rc;
}

int cmd_demo(int argc, char **argv)
{
	uint64_t size = 1ull << 30, vms = 3, secs = 4, threads = 0, seedv = 0;
	bool seeded = false, size_given = false;
	const char *map = "labyrinth-map.png";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(help, stdout);
			return 0;
		} else if (!strcmp(a, "--size") && i + 1 < argc) {
			if (!cli_parse_size(argv[++i], &size) || size < (16ull << 20) || size > (1ull << 40))
				return cli_usage_error("demo", "--size wants 16M..1T, got '%s'", argv[i]);
			size_given = true;
		} else if (!strcmp(a, "--map") && i + 1 < argc) {
			map = argv[++i];
		} else if (!strcmp(a, "--vms") && i + 1 < argc) {
			if (!cli_parse_uint(argv[++i], 1, 15, &vms))
				return cli_usage_error("demo", "--vms wants 1..15, got '%s'", argv[i]);
		} else if (!strcmp(a, "--seconds") && i + 1 < argc) {
			if (!cli_parse_uint(argv[++i], 1, 3600, &secs))
				return cli_usage_error("demo", "--seconds wants 1..3600, got '%s'", argv[i]);
		} else if (!strcmp(a, "--threads") && i + 1 < argc) {
			if (!cli_parse_uint(argv[++i], 1, 64, &threads))
				return cli_usage_error("demo", "--threads wants 1..64, got '%s'", argv[i]);
		} else if (!strcmp(a, "--seed") && i + 1 < argc) {
			if (!cli_parse_uint(argv[++i], 0, UINT64_MAX, &seedv))
				return cli_usage_error("demo", "--seed wants a decimal number, got '%s'", argv[i]);
			seeded = true;
		} else {
			return cli_option_error("demo", a, help);
		}
	}

	if (!cli_writable("demo", map)) /* now, not after the run */
		return 1;

	static struct demo d;
	struct lab_geometry g;
	lab_hosted_geometry(&g);
	if (!threads)
		threads = g.nr_cpus < 2 ? 2 : g.nr_cpus;
	d.threads = (unsigned)threads;
	d.vms = (unsigned)vms;
	uint8_t seed[32];
	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)(seedv >> (8 * (i % 8))) ^ (uint8_t)i;
	struct lab_hosted_opts o = {.bytes = size, .nr_cpus = (unsigned)threads + 1,
	                            .seed = seeded ? seed : NULL, .seed_len = 32};
	int rc = lab_hosted_zone_create(&o, &d.hz);
	if (rc == LAB_ENOSPC && !size_given) {
		printf("labyrinth demo: cannot map 1 GiB here (%s); using 256 MiB\n", d.hz.why);
		o.bytes = 256ull << 20;
		rc = lab_hosted_zone_create(&o, &d.hz);
	}
	if (rc != LAB_OK) {
		fprintf(stderr, "labyrinth demo: cannot create a %llu-byte zone: %s%s%s\n"
		                "  try a smaller --size\n",
		        (unsigned long long)size, lab_strerror(rc), d.hz.why[0] ? ": " : "", d.hz.why);
		return 1;
	}
	d.z = d.hz.zone;
	d.colours = d.hz.colours;

	/* Colour plan: 2^k equal groups of aligned colours, k the smallest with
	 * 2^k > vms; VM v gets group v - 1, the shared owners the rest. */
	unsigned groups = 1;
	while (groups <= vms)
		groups *= 2;
	if (groups > d.colours) {
		fprintf(stderr, "labyrinth demo: %u colours cannot give %llu VMs their own; use --vms %u\n",
		        d.colours, (unsigned long long)vms, d.colours - 1);
		return 2;
	}
	unsigned per = d.colours / groups;
	uint64_t one = per == 64 ? UINT64_MAX : (1ull << per) - 1, shared = 0;
	for (unsigned v = 0; v < vms; v++) {
		d.masks[v + 1] = one << (v * per);
		d.excl[v + 1] = true;
	}
	for (unsigned gi = (unsigned)vms; gi < groups; gi++)
		shared |= one << (gi * per);
	d.nr_owners = (unsigned)vms + SHARED_OWNERS;
	char b[32];
	printf("labyrinth demo: %s zone, %llu frames, %u colours (%s), %u interrupt threads\n",
	       cli_size(d.hz.nr_frames * 4096, b, sizeof b), (unsigned long long)d.hz.nr_frames, d.colours,
	       d.hz.hugepages ? "exact: 2 MiB pages" : "arena-relative", d.threads);
	for (unsigned id = 1; id <= d.nr_owners; id++) {
		if (id > vms)
			d.masks[id] = shared;
		struct lab_owner_cfg oc = {.colours = d.masks[id], .flags = d.excl[id] ? LAB_OWNER_EXCLUSIVE : 0};
		rc = lab_owner_add(d.z, id, &oc);
		if (rc != LAB_OK) {
			fprintf(stderr, "labyrinth demo: owner %u: %s\n", id, lab_strerror(rc));
			return 1;
		}
		printf("  owner %u: %s colours %#llx\n", id, d.excl[id] ? "exclusive VM " : "shared domain",
		       (unsigned long long)d.masks[id]);
	}

	d.shadow = calloc(d.hz.nr_frames, sizeof(*d.shadow));
	pthread_mutex_init(&d.mu, NULL);
	pthread_t th[64];
	struct worker wk[64];
	for (unsigned t = 0; t < d.threads; t++) {
		wk[t] = (struct worker){&d, t, 0x9e3779b97f4a7c15ull * (t + 1) ^ seedv};
		pthread_create(&th[t], NULL, interrupt_thread, &wk[t]);
	}
	double t0 = cli_now(), last = t0;
	uint64_t last_allocs = 0, reclaimed = 0;
	double teardown_s = 0;
	bool torn = false, map_ok = false;
	while (cli_now() - t0 < (double)secs) {
		struct timespec ts = {0, 100000000};
		nanosleep(&ts, NULL);
		double now = cli_now();
		if (!torn && now - t0 >= (double)secs / 2) {
			/* The VMs and domains grow to ~40% of their pools (as guests
			 * booting would), the zone is drawn, then they shrink back;
			 * VM 1 keeps its share, which its teardown reclaims. */
			uint64_t *grown = malloc(d.hz.nr_frames * sizeof(uint64_t)), ng = 0;
			for (unsigned id = 1; id <= d.nr_owners && grown; id++) {
				struct lab_owner_stats os;
				lab_owner_stats(d.z, id, &os);
				uint64_t want = os.pool_free * 2 / 5 / (d.excl[id] ? 1 : SHARED_OWNERS), pfn;
				for (uint64_t k = 0; k < want && lab_alloc(d.z, id, 0, LAB_NOWAIT, &pfn) == LAB_OK; k++)
					grown[ng++] = pfn << 8 | id;
			}
			char why[128];
			if (write_map(&d, map, why, sizeof why) == 0)
				map_ok = true;
			else
				fprintf(stderr, "\nlabyrinth demo: no picture: %s\n", why);
			for (uint64_t k = 0; k < ng; k++)
				if ((grown[k] & 0xff) != 1)
					lab_free(d.z, (lab_owner_t)(grown[k] & 0xff), grown[k] >> 8, 0);
			free(grown);
			struct lab_owner_stats os;
			atomic_store(&d.vm1_stop, true);
			lab_owner_stats(d.z, 1, &os);
			reclaimed = os.held;
			double r0 = cli_now();
			atomic_store(&d.vm1_dead, true);
			int steps = 0;
			while ((rc = lab_owner_remove(d.z, 1, 4096)) == LAB_EAGAIN && steps < 1000000)
				steps++;
			teardown_s = cli_now() - r0;
			printf("\r  VM 1 torn down: %llu frames reclaimed and zeroed in %d calls (budget 4096 each), %.1f ms (%s)\n",
			       (unsigned long long)reclaimed, steps + 1, teardown_s * 1e3, lab_strerror(rc));
			torn = true;
		}
		if (now - last >= 0.5) {
			struct lab_stats st;
			lab_stats(d.z, &st);
			uint64_t a = atomic_load(&d.allocs);
			printf("\r  %5.1fs  %8.2f M allocs/s  free %8llu frames  reserve dips %6llu  failures %6llu",
			       now - t0, (double)(a - last_allocs) / (now - last) / 1e6,
			       (unsigned long long)st.nr_free, (unsigned long long)st.reserve_allocs,
			       (unsigned long long)atomic_load(&d.fail));
			fflush(stdout);
			last = now;
			last_allocs = a;
		}
	}
	atomic_store(&d.stop, true);
	for (unsigned t = 0; t < d.threads; t++)
		pthread_join(th[t], NULL);
	/* Buffers still in inboxes. */
	for (unsigned t = 0; t < d.threads; t++)
		for (unsigned i = 0; i < d.inbox_n[t]; i++) {
			struct held h = {d.inbox[t][i] >> 8, (uint32_t)(d.inbox[t][i] & 0xff)};
			if (!(h.owner == 1 && atomic_load(&d.vm1_dead)))
				give_back(&d, h);
		}
	lab_cpu_drain(d.z);
	printf("\n");

	uint64_t nfree = 0;
	double z = placement_z(&d, d.nr_owners, &nfree);
	int check = lab_check(d.z);
	struct lab_stats st;
	lab_stats(d.z, &st);
	uint64_t v = atomic_load(&d.violations), nz = atomic_load(&d.dirty_bytes), cb = atomic_load(&d.colour_bad);
	printf("\nwhat this run measured:\n");
	printf("  allocations %llu (LAB_ATOMIC, %llu handed to another CPU to free), frees %llu, failures %llu\n",
	       (unsigned long long)atomic_load(&d.allocs), (unsigned long long)atomic_load(&d.handoffs),
	       (unsigned long long)atomic_load(&d.frees), (unsigned long long)atomic_load(&d.fail));
	printf("  %-5s P4 single owner: ownership violations %llu (shadow table + frame contents)\n",
	       v ? "FAIL" : "PASS", (unsigned long long)v);
	printf("  %-5s P5 scrubbed: non-zero 8-byte words in frames a shared owner received: %llu\n",
	       nz ? "FAIL" : "PASS", (unsigned long long)nz);
	printf("  %-5s P6 colours: frames outside their owner's colours %llu; exclusive sets disjoint\n",
	       cb ? "FAIL" : "PASS", (unsigned long long)cb);
	printf("  %-5s P1 placement: chi-square over %llu free frames, M = 20 x n_free draws, |z| = %.2f (< 3.7)\n",
	       fabs(z) < 3.7 ? "PASS" : "FAIL", (unsigned long long)nfree, fabs(z));
	printf("  %-5s teardown: VM 1's %llu frames reclaimed, zeroed, colours returned\n",
	       rc == LAB_OK ? "PASS" : "FAIL", (unsigned long long)reclaimed);
	printf("  %-5s lab_check: %s; frames allocated at the end %llu, free %llu, reserve dips %llu\n",
	       check == LAB_OK ? "PASS" : "FAIL", lab_strerror(check), (unsigned long long)st.nr_allocated,
	       (unsigned long long)st.nr_free, (unsigned long long)st.reserve_allocs);
	if (map_ok)
		printf("\npicture: %s -- left, this zone before VM 1 was torn down; right, the same\n"
		       "  holdings laid out first-fit.  One pixel per frame in pfn order, %u frames per\n"
		       "  row, so each cache colour is a column and each VM's private colours a band:\n"
		       "  held frames bright in their VM's colour (shared domains white/grey), free\n"
		       "  frames a dark shade of their pool's.  Random placement scatters inside each\n"
		       "  band; first fit stacks neighbours at the bottom of memory.\n",
		       map, 16 * d.colours);
	bool ok = !v && !nz && !cb && fabs(z) < 3.7 && rc == LAB_OK && check == LAB_OK && st.nr_allocated == 0 &&
	          map_ok;
	lab_hosted_zone_destroy(&d.hz);
	free(d.shadow);
	return ok ? 0 : 1;
}
