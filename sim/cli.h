/* cli.h — helpers shared by kvsim's subcommands: option values with clear errors.
 *
 * Every parser prints "kvsim CMD: option --x: expected ..., got "..."" to stderr and returns
 * false on bad input; the caller exits with status 2.
 */
#ifndef KV_CLI_H
#define KV_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Exit codes of every kvsim command. */
enum { KV_EXIT_OK = 0, KV_EXIT_FAIL = 1, KV_EXIT_USAGE = 2 };

/* The value after option argv[*i] (advancing *i), or NULL with a message when it is missing. */
const char *kv_cli_value(const char *cmd, int argc, char **argv, int *i);

bool kv_cli_u64(const char *cmd, const char *opt, const char *s, uint64_t lo, uint64_t hi,
                uint64_t *out);
/* Whether a long run should show progress: stderr is a terminal and $CI is unset. */
bool kv_cli_progress(void);

bool kv_cli_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                   double *out);

#endif
