/*
 * rng.c - the CSPRNG behind every placement decision.
 *
 * ChaCha with 12 rounds (Bernstein 2008; 12 rounds as in Rust's StdRng: the
 * best known attack reaches 7), keyed per CPU from the zone's master key with
 * the CPU index as nonce, so CPUs never share a stream and never lock.
 * Output is buffered one 64-byte block at a time.  Invariant: idx is even and
 * <= 16; 16 means the buffer is spent.
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
	rng->idx = 16;
}

void lab_rng_refill(struct lab_rng *rng)
{
	lab_chacha_block(rng->key, rng->counter++, rng->nonce, rng->buf);
	rng->idx = 0;
}
