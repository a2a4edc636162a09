/*
 * rng.c - the CSPRNG behind every placement decision.
 *
 * ChaCha with 12 rounds (Bernstein 2008; 12 rounds as in Rust's StdRng: the
 * best known attack reaches 7), keyed per CPU from the zone's master key with
 * the CPU index as nonce, so CPUs never share a stream and never lock.
 * Output is buffered four 64-byte blocks at a time, computed together with
 * GCC/Clang vector extensions (SSE2 on x86-64, NEON on arm64, plain scalar
 * code elsewhere): about 30 instructions per 64-bit draw instead of 220.
 * Invariant: idx is even and <= LAB_RNG_WORDS; LAB_RNG_WORDS means spent.
 */
#include "internal.h"

#define ROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define QR(a, b, c, d)                                                         \
	do {                                                                   \
		a += b; d ^= a; d = ROTL(d, 16);                               \
		c += d; b ^= c; b = ROTL(b, 12);                               \
		a += b; d ^= a; d = ROTL(d, 8);                                \
		c += d; b ^= c; b = ROTL(b, 7);                                \
	} while (0)

#define LAB_CHACHA_ROUNDS 12

/* The ChaCha block function with any even number of rounds (tests check it
 * with 20 rounds against RFC 7539's vector, words 12..15 laid out the same). */
void lab_chacha_rounds(const uint32_t key[8], uint64_t counter, uint64_t nonce, uint32_t out[16],
                       int rounds)
{
	uint32_t in[16] = {
		0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u, /* "expand 32-byte k" */
		key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
		(uint32_t)counter, (uint32_t)(counter >> 32), (uint32_t)nonce, (uint32_t)(nonce >> 32),
	};
	uint32_t x[16];
	memcpy(x, in, sizeof(x));
	for (int i = 0; i < rounds; i += 2) {
		QR(x[0], x[4], x[8], x[12]);
		QR(x[1], x[5], x[9], x[13]);
		QR(x[2], x[6], x[10], x[14]);
		QR(x[3], x[7], x[11], x[15]);
		QR(x[0], x[5], x[10], x[15]);
		QR(x[1], x[6], x[11], x[12]);
		QR(x[2], x[7], x[8], x[13]);
		QR(x[3], x[4], x[9], x[14]);
	}
	for (int i = 0; i < 16; i++)
		out[i] = x[i] + in[i];
}

void lab_chacha_block(const uint32_t key[8], uint64_t counter, uint64_t nonce, uint32_t out[16])
{
	lab_chacha_rounds(key, counter, nonce, out, LAB_CHACHA_ROUNDS);
}

void lab_rng_init(struct lab_rng *rng, const uint32_t key[8], uint64_t nonce)
{
	memcpy(rng->key, key, sizeof(rng->key));
	rng->nonce = nonce;
	rng->counter = 0;
	rng->idx = LAB_RNG_WORDS;
}

typedef uint32_t v4u __attribute__((vector_size(16)));

#define VROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define VQR(a, b, c, d)                                                        \
	do {                                                                   \
		a += b; d ^= a; d = VROTL(d, 16);                              \
		c += d; b ^= c; b = VROTL(b, 12);                              \
		a += b; d ^= a; d = VROTL(d, 8);                               \
		c += d; b ^= c; b = VROTL(b, 7);                               \
	} while (0)

/* Four consecutive blocks (counters ctr..ctr+3) at once; block j's word i
 * lands in out[16 * j + i], exactly as four lab_chacha_block calls. */
static void chacha_x4(const uint32_t key[8], uint64_t ctr, uint64_t nonce, uint32_t out[64])
{
	v4u in[16], x[16];
	for (int i = 0; i < 4; i++) {
		static const uint32_t sigma[4] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u};
		in[i] = (v4u){sigma[i], sigma[i], sigma[i], sigma[i]};
	}
	for (int i = 0; i < 8; i++)
		in[4 + i] = (v4u){key[i], key[i], key[i], key[i]};
	uint64_t c0 = ctr, c1 = ctr + 1, c2 = ctr + 2, c3 = ctr + 3;
	in[12] = (v4u){(uint32_t)c0, (uint32_t)c1, (uint32_t)c2, (uint32_t)c3};
	in[13] = (v4u){(uint32_t)(c0 >> 32), (uint32_t)(c1 >> 32), (uint32_t)(c2 >> 32), (uint32_t)(c3 >> 32)};
	in[14] = (v4u){(uint32_t)nonce, (uint32_t)nonce, (uint32_t)nonce, (uint32_t)nonce};
	in[15] = (v4u){(uint32_t)(nonce >> 32), (uint32_t)(nonce >> 32), (uint32_t)(nonce >> 32),
	               (uint32_t)(nonce >> 32)};
	for (int i = 0; i < 16; i++)
		x[i] = in[i];
	for (int i = 0; i < LAB_CHACHA_ROUNDS; i += 2) {
		VQR(x[0], x[4], x[8], x[12]);
		VQR(x[1], x[5], x[9], x[13]);
		VQR(x[2], x[6], x[10], x[14]);
		VQR(x[3], x[7], x[11], x[15]);
		VQR(x[0], x[5], x[10], x[15]);
		VQR(x[1], x[6], x[11], x[12]);
		VQR(x[2], x[7], x[8], x[13]);
		VQR(x[3], x[4], x[9], x[14]);
	}
	for (int i = 0; i < 16; i++) {
		v4u w = x[i] + in[i];
		for (int j = 0; j < 4; j++)
			out[16 * j + i] = w[j];
	}
}

void lab_rng_refill(struct lab_rng *rng)
{
	chacha_x4(rng->key, rng->counter, rng->nonce, rng->buf);
	rng->counter += 4;
	rng->idx = 0;
}
