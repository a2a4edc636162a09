/*
 * png.c - write an RGB image as a PNG with no library: the pixels go in
 * "stored" (uncompressed) deflate blocks, which every PNG reader accepts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[n] = c;
	}
}

static uint32_t crc(uint32_t c, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return c;
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int chunk(FILE *f, const char *type, const uint8_t *data, uint32_t len)
{
	uint8_t hdr[8];
	be32(hdr, len);
	memcpy(hdr + 4, type, 4);
	uint32_t c = crc(0xffffffffu, hdr + 4, 4);
	c = crc(c, data, len) ^ 0xffffffffu;
	uint8_t tail[4];
	be32(tail, c);
	return fwrite(hdr, 1, 8, f) == 8 && (len == 0 || fwrite(data, 1, len, f) == len) &&
	               fwrite(tail, 1, 4, f) == 4 ? 0 : -1;
}

int cli_write_png(const char *path, const uint8_t *rgb, unsigned w, unsigned h)
{
	crc_init();
	size_t raw_len = (size_t)h * (1 + 3 * (size_t)w);
	uint8_t *raw = malloc(raw_len);
	if (!raw)
		return -1;
	for (unsigned y = 0; y < h; y++) { /* filter type 0 on every row */
		raw[y * (1 + 3 * (size_t)w)] = 0;
		memcpy(raw + y * (1 + 3 * (size_t)w) + 1, rgb + (size_t)y * w * 3, 3 * (size_t)w);
	}
	/* zlib stream: header, stored blocks of <= 65535 bytes, Adler-32. */
	size_t nblk = raw_len / 65535 + 1, z_len = 2 + raw_len + 5 * nblk + 4;
	uint8_t *z = malloc(z_len);
	if (!z) {
		free(raw);
		return -1;
	}
	size_t o = 0;
	z[o++] = 0x78;
	z[o++] = 0x01;
	uint32_t a = 1, b = 0;
	for (size_t i = 0; i < raw_len; i++) {
		a = (a + raw[i]) % 65521;
		b = (b + a) % 65521;
	}
	for (size_t off = 0; off < raw_len || off == 0;) {
		size_t n = raw_len - off > 65535 ? 65535 : raw_len - off;
		z[o++] = off + n == raw_len ? 1 : 0;
		z[o++] = (uint8_t)n;
		z[o++] = (uint8_t)(n >> 8);
		z[o++] = (uint8_t)~n;
		z[o++] = (uint8_t)(~n >> 8);
		memcpy(z + o, raw + off, n);
		o += n;
		off += n;
		if (n == 0)
			break;
	}
	be32(z + o, (b << 16) | a);
	o += 4;
	uint8_t ihdr[13];
	be32(ihdr, w);
	be32(ihdr + 4, h);
	ihdr[8] = 8;  /* bit depth */
	ihdr[9] = 2;  /* RGB */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;
	FILE *f = fopen(path, "wb");
	int rc = -1;
	if (f) {
		static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
		rc = fwrite(sig, 1, 8, f) == 8 && !chunk(f, "IHDR", ihdr, 13) &&
		             !chunk(f, "IDAT", z, (uint32_t)o) && !chunk(f, "IEND", NULL, 0) ? 0 : -1;
		if (fclose(f) != 0)
			rc = -1;
	}
	free(raw);
	free(z);
	return rc;
}
