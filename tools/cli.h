/* cli.h - shared bits of the `labyrinth` command. */
#ifndef LAB_CLI_H
#define LAB_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "labyrinth.h"
#include "labyrinth/hosted.h"

int cmd_info(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_audit(int argc, char **argv);

/* "1G", "256M", "4096K", "12345" -> bytes; false on garbage (anything but
 * digits first, a value beyond 64 bits). */
bool cli_parse_size(const char *s, uint64_t *out);
/* Unsigned decimal in [lo, hi]; false on garbage (anything but digits, a
 * value beyond 64 bits) or out of range. */
bool cli_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
/* "labyrinth CMD: <msg>" and a pointer to --help on stderr; returns 2, the
 * exit status of bad usage. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Can an output file be written?  An existing file is only tested, never
 * truncated; a new one is created and removed again.  False: says why on
 * stderr ("labyrinth CMD: cannot write PATH: reason"). */
bool cli_writable(const char *cmd, const char *path);
/* qsort comparator: doubles in ascending order. */
int cli_cmp_double(const void *a, const void *b);
/* The error for argument a that no case matched: "wants a value" if the
 * command's help shows it with one, else "unknown option".  Returns 2. */
int cli_option_error(const char *cmd, const char *a, const char *help);
/* Human size: "1 GiB", "512 MiB", "48 KiB". */
const char *cli_size(uint64_t bytes, char *buf, unsigned len);
double cli_now(void);
/* Write w x h RGB pixels (row-major) as a PNG; 0 on success. */
int cli_write_png(const char *path, const uint8_t *rgb, unsigned w, unsigned h);
/* True when /proc/cpuinfo says we run under a hypervisor. */
bool cli_in_vm(void);

#endif
