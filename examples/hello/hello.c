/*
 * hello.c - labyrinth from an installed copy: build it with only
 *     cc hello.c $(pkg-config --cflags --libs labyrinth)
 * Two VMs with their own cache colours allocate in "interrupt context".
 */
#include <labyrinth.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	enum { FRAMES = 4096 };
	void *ram = aligned_alloc(4096, (size_t)FRAMES * 4096); /* the "physical memory" */
	memset(ram, 0, (size_t)FRAMES * 4096);
	struct lab_zone_cfg cfg;
	lab_zone_cfg_default(&cfg, 0x100000, FRAMES, ram); /* 32 colours, seed from getrandom */
	cfg.flags = LAB_ZONE_ZEROED;
	size_t need = lab_zone_meta_size(&cfg);
	void *meta = aligned_alloc(64, (need + 63) & ~(size_t)63);
	lab_zone_t *zone;
	int rc = lab_zone_init(&zone, meta, need, &cfg);
	if (rc != LAB_OK) {
		fprintf(stderr, "lab_zone_init: %s\n", lab_strerror(rc));
		return 1;
	}
	struct lab_owner_cfg vm1 = {.colours = 0x0000ffff, .flags = LAB_OWNER_EXCLUSIVE};
	struct lab_owner_cfg vm2 = {.colours = 0xffff0000, .flags = LAB_OWNER_EXCLUSIVE};
	if (lab_owner_add(zone, 1, &vm1) || lab_owner_add(zone, 2, &vm2))
		return 1;

	void *p = lab_alloc_page(zone, 1, LAB_ATOMIC | LAB_EXCLUSIVE);
	uint64_t pfn;
	lab_virt_to_pfn(zone, p, &pfn);
	printf("VM 1 got pfn %#llx, colour %llu\n", (unsigned long long)pfn, (unsigned long long)(pfn % 32));
	printf("VM 2 freeing it: %s\n", lab_strerror(lab_free_page(zone, 2, p)));
	printf("VM 1 freeing it: %s\n", lab_strerror(lab_free_page(zone, 1, p)));
	printf("VM 1 freeing it again: %s\n", lab_strerror(lab_free_page(zone, 1, p)));
	printf("lab_check: %s\n", lab_strerror(lab_check(zone)));
	free(meta);
	free(ram);
	return 0;
}
