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

/* "1G", "256M", "4096K", "12345" -> bytes; false on garbage. */
bool cli_parse_size(const char *s, uint64_t *out);
/* Unsigned decimal in [lo, hi]; false on garbage or out of range. */
bool cli_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
/* "error: <msg>" on stderr and exit status 2 (bad usage). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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
