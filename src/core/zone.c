/*
 * zone.c - zone geometry, metadata layout, initialisation and keys.
 *
 * Layout of the caller's metadata (each part 64-byte aligned):
 *   struct lab_zone | owners[max_owners+1] | pools[nr_colours] |
 *   per-CPU blocks[nr_cpus] (struct lab_cpu, pcps, held counters) |
 *   records[16 * rec_lines] (4 B) | pool slots[nr_colours * slice] (4 B)
 * slice = ceil(nr_frames / nr_colours) rounded up to a multiple of 16 (a
 * line of slots; to even with one colour), rec_lines = ceil(nr_frames / 16)
 * rounded up to a multiple of G nr_colours (at least 2; G = 16 lines of a
 * colour stored together, fewer in a small zone, 64 where that pads at most
 * 1/64 more: rix), so the per-frame cost is 8 bytes (plus < 1088 *
 * nr_colours + 128 bytes of padding, and with G = 64 at most 1/64 of the
 * records more, in all), and no
 * line of records or of slots holds two colours' entries.  Frame f's record
 * is at rix(z, f) (internal.h).  A pool's slots are scattered over its
 * colours' slices (gslot in internal.h).  Frame numbers are 32-bit: up to
 * 2^32 frames, the last of a zone of 2^32 reserved (LAB_TOP_FRAME).
 * lab_zone_init validates everything and gathers entropy before writing a
 * byte: a refused init leaves the buffer untouched (P7).
 */
#include "internal.h"

#define ALIGN64(x) (((x) + 63u) & ~(uint64_t)63u)

/* x rounded up to a multiple of m (m > 0). */
static inline uint64_t round_up(uint64_t x, uint64_t m)
{
	return (x + m - 1) / m * m;
}

struct layout {
	uint64_t owners, pools, cpus, cpu_stride, rec, gstore, total, slice, rec_lines;
	uint32_t rec_glg;
};

static bool is_pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

static int check_cfg(const struct lab_zone_cfg *cfg)
{
	if (!cfg)
		return LAB_EINVAL;
	if (cfg->flags & ~LAB_ZONE_FLAGS_ALL)
		return LAB_EINVAL;
	/* Frame numbers are 32-bit (the 8-byte-per-frame layout): up to 2^32
	 * frames, 16 TiB, per zone; in a zone of 2^32 the last frame is
	 * reserved (LAB_TOP_FRAME). */
	if (cfg->nr_frames == 0 || cfg->nr_frames > (1ull << 32))
		return LAB_EGEOMETRY;
	if (cfg->base_pfn > (1ull << 52) || cfg->base_pfn + cfg->nr_frames > (1ull << 52))
		return LAB_EGEOMETRY; /* addresses must fit 64 bits */
	if (!is_pow2(cfg->nr_colours) || cfg->nr_colours > LAB_MAX_COLOURS)
		return LAB_EGEOMETRY;
	if (cfg->nr_cpus == 0 || cfg->nr_cpus > LAB_MAX_CPUS)
		return LAB_EINVAL;
	if (cfg->max_owners == 0 || cfg->max_owners > LAB_MAX_OWNERS)
		return LAB_EINVAL;
	if (cfg->reserve_permille > 1000)
		return LAB_EINVAL;
	if (!cfg->dmap_base && !(cfg->flags & LAB_ZONE_NO_SCRUB))
		return LAB_EINVAL;
	if ((uintptr_t)cfg->dmap_base & (LAB_FRAME_SIZE - 1))
		return LAB_EGEOMETRY;
	if (cfg->dmap_base &&
	    (uintptr_t)cfg->dmap_base + (cfg->nr_frames << LAB_FRAME_SHIFT) - 1 < (uintptr_t)cfg->dmap_base)
		return LAB_EGEOMETRY; /* direct map wraps */
	if (cfg->seed && cfg->seed_len < 32)
		return LAB_EENTROPY;
	return LAB_OK;
}

static int layout_of(const struct lab_zone_cfg *cfg, struct layout *l)
{
	int rc = check_cfg(cfg);
	if (rc != LAB_OK)
		return rc;
	uint64_t C = cfg->nr_colours, N = cfg->nr_frames;
	l->slice = (N + C - 1) / C;
	/* Even (slot pairs); with several colours a multiple of 16, so each
	 * colour's slice starts a 64-byte line and pools of different colours
	 * never share a line of slots (one owner's exchanges would otherwise
	 * write a line another owner's calls read).  N <= 2^32 and C >= 2 keep
	 * it at most 2^31; one colour has no neighbour to keep apart. */
	l->slice = C == 1 ? l->slice + (l->slice & 1) : (l->slice + 15) & ~15ull;
	if (l->slice > 0xffffffffu) /* 32-bit slice: one colour, 2^32 - 1 frames or more */
		return LAB_EGEOMETRY;
	l->owners = ALIGN64(sizeof(struct lab_zone));
	l->pools = l->owners + ALIGN64((cfg->max_owners + 1ull) * sizeof(struct lab_owner));
	l->cpus = l->pools + ALIGN64(C * sizeof(struct lab_pool));
	l->cpu_stride = ALIGN64(sizeof(struct lab_cpu) + C * sizeof(struct lab_pcp) +
	                        (cfg->max_owners + 1ull) * sizeof(lab_a64));
	/* G, the lines of a colour stored together (rix): 16, or as many as the
	 * zone has per colour, so a small zone is not padded to 16 a colour;
	 * then 64 (a 4 KiB run: every colour's records cover every set of a
	 * 64-set L1) where that pads the table by at most 1/64 more.  With 16,
	 * a colour's lines sat in a quarter of L1's sets, so the records of a
	 * pool whose free frames are every other colour (a checkerboard) crowded
	 * half of them: the audit's C3 free, |t| 7-16 -> 1.5-5.4 (docs/AUDIT.md). */
	uint64_t lines = (N + 15) / 16;
	l->rec_glg = 0;
	while (l->rec_glg < 4 && (2ull << l->rec_glg) * C <= lines)
		l->rec_glg++;
	uint64_t pad16 = round_up(lines, C << l->rec_glg);
	while (l->rec_glg >= 4 && l->rec_glg < 6 && (2ull << l->rec_glg) * C <= lines &&
	       round_up(lines, C << (l->rec_glg + 1)) <= pad16 + lines / 64)
		l->rec_glg++;
	l->rec_lines = round_up(lines, C << l->rec_glg);
	if (l->rec_lines < 2)
		l->rec_lines = 2; /* rix's magic needs a divisor >= 2 */
	l->rec = l->cpus + cfg->nr_cpus * l->cpu_stride;
	l->gstore = l->rec + l->rec_lines * 64;
	l->total = l->gstore + ALIGN64(C * l->slice * 4);
	if (l->total > SIZE_MAX)
		return LAB_EGEOMETRY;
	return LAB_OK;
}

void lab_zone_cfg_default(struct lab_zone_cfg *cfg, uint64_t base_pfn, uint64_t nr_frames,
                          void *dmap_base)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->base_pfn = base_pfn;
	cfg->nr_frames = nr_frames;
	cfg->dmap_base = dmap_base;
	cfg->nr_colours = 32;
	cfg->nr_cpus = 1;
	cfg->max_owners = 64;
	cfg->reserve_permille = 15;
}

int lab_zone_cfg_check(const struct lab_zone_cfg *cfg)
{
	struct layout l;
	return layout_of(cfg, &l);
}

size_t lab_zone_meta_size(const struct lab_zone_cfg *cfg)
{
	struct layout l;
	return layout_of(cfg, &l) == LAB_OK ? (size_t)l.total : 0;
}

void lab_meta_breakdown(const struct lab_zone_cfg *cfg, size_t *per_frame, size_t *fixed)
{
	struct layout l;
	if (layout_of(cfg, &l) != LAB_OK) {
		if (per_frame)
			*per_frame = 0;
		if (fixed)
			*fixed = 0;
		return;
	}
	/* 4 bytes of record + 4 of pool slot per frame; the rest is fixed. */
	if (per_frame)
		*per_frame = 8;
	if (fixed)
		*fixed = (size_t)(l.total - 8 * cfg->nr_frames);
}

/* Absorb a caller seed into a 256-bit key: each 32-byte chunk is xored into
 * the key, which is then replaced by a ChaCha block keyed by itself. */
static void key_from_seed(uint32_t key[8], const uint8_t *seed, size_t len)
{
	uint32_t out[16];
	memset(key, 0, 32);
	for (size_t off = 0; off < len; off += 32) {
		uint32_t chunk[8] = {0};
		memcpy(chunk, seed + off, len - off < 32 ? len - off : 32);
		for (int i = 0; i < 8; i++)
			key[i] ^= chunk[i];
		lab_chacha_block(key, off / 32, 0x736565646b657921ull /* "seedkey!" */, out);
		memcpy(key, out, 32);
	}
}

/* Sub-key number `which` of the master key. */
static void derive(const uint32_t master[8], uint64_t which, uint32_t out[16])
{
	lab_chacha_block(master, 0, which, out);
}

#define DERIVE_MAC 0x6d61630000000000ull
#define DERIVE_CPU 0x6370750000000000ull
#define DERIVE_SLOW 0x736c6f7700000000ull
#define DERIVE_CFG 0x6366670000000000ull

/* (Re)key every generator from z->master. */
static void key_generators(struct lab_zone *z)
{
	uint32_t k[16];
	for (uint32_t i = 0; i < z->nr_cpus; i++) {
		struct lab_cpu *cpu = cpu_at(z, i);
		derive(z->master, DERIVE_CPU | i, k);
		lab_rng_init(&cpu->rng, k, i);
		cpu->bbusy = rec_body(ST_BUSY, 0, i & 0xfffu);
		cpu->lbusy = rec_lin(z, ST_BUSY, 0, i & 0xfffu);
		for (uint32_t p = 0; p < z->nr_pools; p++) {
			cpu_pcp(z, cpu, p)->ui = 0;
			cpu_pcp(z, cpu, p)->bpcp = rec_body(ST_PCP, 0, p);
			cpu_pcp(z, cpu, p)->lpcp = rec_lin(z, ST_PCP, 0, p);
			cpu_pcp(z, cpu, p)->bbusy = cpu->bbusy;
			cpu_pcp(z, cpu, p)->lbusy = cpu->lbusy;
			for (int k = 0; k < LAB_PIPE; k++)
				cpu_pcp(z, cpu, p)->u[k] = lab_rng_u64(&cpu->rng);
		}
		lab_pcp_pipe_reset(z, cpu);
	}
	derive(z->master, DERIVE_SLOW, k);
	lab_rng_init(&z->slow_rng, k, 0);
	derive(z->master, DERIVE_CFG, k);
	lab_rng_init(&z->cfg_rng, k, 1);
	memset(k, 0, sizeof(k));
}

static int get_master(uint32_t master[8], const void *seed, size_t seed_len)
{
	if (seed) {
		key_from_seed(master, seed, seed_len);
		return LAB_OK;
	}
	memset(master, 0, 32);
	if (lab_plat_entropy(master, 32) != 0)
		return LAB_EENTROPY;
	/* A source that "succeeds" with all zeroes is broken, not lucky. */
	uint32_t acc = 0;
	for (int i = 0; i < 8; i++)
		acc |= master[i];
	return acc ? LAB_OK : LAB_EENTROPY;
}

int lab_zone_init(lab_zone_t **zone, void *meta, size_t meta_size, const struct lab_zone_cfg *cfg)
{
	struct layout l;
	uint32_t master[8];

	if (!zone || !meta || ((uintptr_t)meta & 63))
		return LAB_EINVAL;
	int rc = layout_of(cfg, &l);
	if (rc != LAB_OK)
		return rc;
	if (meta_size < l.total)
		return LAB_ENOSPC;
	rc = get_master(master, cfg->seed, cfg->seed_len);
	if (rc != LAB_OK)
		return rc;

	uint8_t *base = meta;
	memset(base, 0, (size_t)l.rec); /* header, owners, pools, CPUs */
	struct lab_zone *z = (struct lab_zone *)base;
	z->flags = cfg->flags;
	z->nr_colours = cfg->nr_colours;
	z->nr_cpus = cfg->nr_cpus;
	z->max_owners = cfg->max_owners;
	z->nr_pools = cfg->nr_colours;
	z->slice = (uint32_t)l.slice;
	/* The largest power of two of 16-slot lines that fits the slice. */
	z->slice_lg = 0;
	while ((32ull << z->slice_lg) <= l.slice)
		z->slice_lg++;
	z->slice_lmask = (1u << z->slice_lg) - 1;
	z->slice_rows = 8u << z->slice_lg;
	z->rec_lines = (uint32_t)l.rec_lines;
	z->rec_glg = l.rec_glg;
	z->col_lg = (uint32_t)__builtin_ctz(cfg->nr_colours);
	z->rec_cmask = cfg->nr_colours - 1;
	z->rec_gmask = (1u << l.rec_glg) - 1;
	z->rec_hmask = ~((cfg->nr_colours << l.rec_glg) - 1);
	z->rec_magic = UINT64_MAX / l.rec_lines + 1;
	z->reserve_permille = cfg->reserve_permille;
	z->base_pfn = cfg->base_pfn;
	z->nr_frames = cfg->nr_frames;
	z->frame_lim = cfg->nr_frames < LAB_TOP_FRAME ? (uint32_t)cfg->nr_frames : LAB_TOP_FRAME;
	z->dmap = cfg->dmap_base;
	z->cpu_stride = (size_t)l.cpu_stride;
	z->cpu_base = base + l.cpus;
	z->owners = (struct lab_owner *)(base + l.owners);
	z->pools = (struct lab_pool *)(base + l.pools);
	z->rec = (lab_a32 *)(base + l.rec);
	z->gstore = (lab_a32 *)(base + l.gstore);
	memcpy(z->master, master, sizeof(master));
	memset(master, 0, sizeof(master));

	uint32_t k[16];
	derive(z->master, DERIVE_MAC, k);
	z->mac_k[0] = k[0] | 1;
	z->mac_k[1] = k[1] | 1;
	z->mac_k[2] = k[2] | 1;
	z->mac_h[0] = (uint64_t)k[3] << 32 | k[4];
	z->mac_h[1] = ((uint64_t)k[5] << 32 | k[6]) | 1;
	key_generators(z);
	for (uint32_t id = 0; id <= z->max_owners; id++)
		z->owners[id].alin = rec_lin(z, ST_ALLOC, 0, id);
	for (uint32_t c = 0; c < LAB_MAX_COLOURS; c++)
		st_relaxed(&z->pool_of_colour[c], (int8_t)-1);

	bool dirty = !(cfg->flags & (LAB_ZONE_ZEROED | LAB_ZONE_NO_SCRUB));
	for (uint64_t i = 0; i < 16ull * z->rec_lines; i++) { /* in storage order */
		uint64_t f = rix_frame(z, i);
		bool top = f == LAB_TOP_FRAME; /* reserved: never free (internal.h) */
		st_relaxed(&z->rec[i], f < z->nr_frames ? rec_make(z, (uint32_t)f, top ? ST_RESERVED : ST_UNASSIGNED,
		                                                   dirty && !top, 0) : 0);
	}
	st_relaxed(&z->nr_dirty_scan, dirty ? z->frame_lim : 0);
	/* The slot store is not cleared: a slot is only read below its pool's
	 * n, after the write that put a frame there (pool build, append), so
	 * none of it is touched before a pool is built over its colours. */
	z->magic = LAB_ZONE_MAGIC;
	*zone = z;
	return LAB_OK;
}

int lab_zone_reserve_range(lab_zone_t *z, uint64_t pfn, uint64_t nr)
{
	if (!z || z->magic != LAB_ZONE_MAGIC)
		return LAB_EINVAL;
	if (nr == 0 || pfn < z->base_pfn || pfn - z->base_pfn > z->nr_frames ||
	    nr > z->nr_frames - (pfn - z->base_pfn))
		return LAB_ERANGE;
	uint32_t first = (uint32_t)(pfn - z->base_pfn);
	struct lab_ctx c;
	lab_ctx_enter(z, &c);
	if (c.nested) { /* as lab_owner_add: the code interrupted may hold cfg_lock */
		lab_ctx_exit(&c);
		return LAB_EBUSY;
	}
	lock_get(&z->cfg_lock, c.id, false);
	int rc = LAB_OK;
	for (uint64_t i = 0; i < nr; i++) { /* validate first, then commit */
		uint32_t v = ld_relaxed(rec_at(z, first + i));
		if (rec_inpool(v) || rec_state(v) != ST_UNASSIGNED) {
			rc = LAB_EBUSY;
			break;
		}
	}
	if (rc == LAB_OK) {
		for (uint64_t i = 0; i < nr; i++) {
			uint32_t f = first + (uint32_t)i;
			if (rec_a(ld_relaxed(rec_at(z, f))) & 1)
				atomic_fetch_sub_explicit(&z->nr_dirty_scan, 1, memory_order_relaxed);
			st_release(rec_at(z, f), rec_make(z, f, ST_RESERVED, 0, 0));
		}
	}
	lock_put(&z->cfg_lock);
	lab_ctx_exit(&c);
	return rc;
}

int lab_reseed(lab_zone_t *z, const void *seed, size_t seed_len)
{
	uint32_t master[8];
	if (!z || z->magic != LAB_ZONE_MAGIC)
		return LAB_EINVAL;
	if (seed && seed_len < 32)
		return LAB_EENTROPY;
	int rc = get_master(master, seed, seed_len);
	if (rc != LAB_OK)
		return rc;
	/* The record check keys stay: they are baked into every record. */
	memcpy(z->master, master, sizeof(master));
	memset(master, 0, sizeof(master));
	key_generators(z);
	return LAB_OK;
}

const char *lab_strerror(int err)
{
	switch (err) {
	case LAB_OK: return "success";
	case LAB_ENOMEM: return "no eligible free frame";
	case LAB_EQUOTA: return "owner at quota";
	case LAB_EFRAG: return "no free block of that order found";
	case LAB_EINVAL: return "invalid argument";
	case LAB_ERANGE: return "frame outside the zone";
	case LAB_EALIGN: return "frame not aligned to the order";
	case LAB_EORDER: return "wrong or unsupported order";
	case LAB_EOWNER: return "frame belongs to another owner";
	case LAB_EFREE: return "frame is not allocated (double free?)";
	case LAB_EINTERIOR: return "frame is inside a larger block";
	case LAB_ENOOWNER: return "no such owner";
	case LAB_EEXIST: return "owner already registered";
	case LAB_EOVERLAP: return "colours overlap another owner's";
	case LAB_ESHARED: return "exclusive colours overlap shared colours";
	case LAB_ENOTEXCL: return "owner is not exclusive";
	case LAB_ECOLOUR: return "owner's colours cannot hold a block of that order";
	case LAB_EAGAIN: return "more work remains";
	case LAB_EBUSY: return "busy: frames in use or cached";
	case LAB_EENTROPY: return "entropy source failed";
	case LAB_EGEOMETRY: return "invalid zone geometry";
	case LAB_ENOSPC: return "metadata buffer too small";
	case LAB_ECORRUPT: return "metadata corrupt";
	case LAB_ENOMAP: return "zone has no direct map";
	}
	return "unknown error";
}
