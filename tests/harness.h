/*
 * harness.h - a tiny test harness (after mimalloc's testhelper.h and Redis'
 * testhelp.h): TEST(name) registers a test, EXPECT_* record failures and go
 * on, ASSERT_* stop the test, EXPECT_DEATH runs code in a child process and
 * checks it dies through lab_plat_panic with a given message.  The runner
 * ends with "N passed, M failed".
 */
#ifndef LAB_TEST_HARNESS_H
#define LAB_TEST_HARNESS_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labyrinth.h"
#include "labyrinth/hosted.h"

void harness_register(const char *name, void (*fn)(void), const char *file);
int harness_run(int argc, char **argv);
void harness_fail(const char *file, int line, const char *what);
extern jmp_buf harness_abort;
extern int harness_failed_checks;

#define TEST(name)                                                                   \
	static void test_##name(void);                                               \
	__attribute__((constructor)) static void register_##name(void)             \
	{                                                                            \
		harness_register(#name, test_##name, __FILE__);                      \
	}                                                                            \
	static void test_##name(void)

#define EXPECT_TRUE(c)                                                               \
	do {                                                                         \
		if (!(c))                                                            \
			harness_fail(__FILE__, __LINE__, #c);                        \
	} while (0)
#define EXPECT_EQ(a, b)                                                              \
	do {                                                                         \
		long long ea_ = (long long)(a), eb_ = (long long)(b);                \
		if (ea_ != eb_) {                                                    \
			char m_[256];                                                \
			snprintf(m_, sizeof m_, "%s == %s (%lld != %lld)", #a, #b, ea_, eb_); \
			harness_fail(__FILE__, __LINE__, m_);                        \
		}                                                                    \
	} while (0)
#define ASSERT_TRUE(c)                                                               \
	do {                                                                         \
		if (!(c)) {                                                          \
			harness_fail(__FILE__, __LINE__, #c);                        \
			longjmp(harness_abort, 1);                                   \
		}                                                                    \
	} while (0)
#define ASSERT_EQ(a, b)                                                              \
	do {                                                                         \
		long long aa_ = (long long)(a), ab_ = (long long)(b);                \
		if (aa_ != ab_) {                                                    \
			char m_[256];                                                \
			snprintf(m_, sizeof m_, "%s == %s (%lld != %lld)", #a, #b, aa_, ab_); \
			harness_fail(__FILE__, __LINE__, m_);                        \
			longjmp(harness_abort, 1);                                   \
		}                                                                    \
	} while (0)

/* Run `body` in a child; expect it to die in lab_plat_panic with `msg`. */
bool harness_death(void (*body)(void *), void *arg, const char *msg, char *got, size_t gotlen);
#define EXPECT_DEATH(body, arg, msg)                                                 \
	do {                                                                         \
		char got_[512];                                                      \
		if (!harness_death(body, arg, msg, got_, sizeof got_)) {             \
			char m_[700];                                                \
			snprintf(m_, sizeof m_, "death with \"%s\", got: %s", msg, got_); \
			harness_fail(__FILE__, __LINE__, m_);                        \
		}                                                                    \
	} while (0)

/* ---- a small zone over heap memory, fixed seed -------------------------------- */
struct tzone {
	lab_zone_t *z;
	void *meta, *arena;
	struct lab_zone_cfg cfg;
};
/* nr_frames frames, colours, cpus, zone flags; seed byte s (32 bytes of it). */
struct tzone tz_make(uint64_t nr_frames, unsigned colours, unsigned cpus, uint32_t flags, uint8_t s);
struct tzone tz_make_cfg(const struct lab_zone_cfg *cfg, uint8_t s);
void tz_free(struct tzone *t);
/* Add owner id with colours mask, quota, exclusive flag; asserts success. */
void tz_owner(struct tzone *t, lab_owner_t id, uint64_t colours, uint64_t quota, bool excl);
/* A byte hash of the whole metadata (state-unchanged checks). */
uint64_t tz_hash(const struct tzone *t);

#endif
