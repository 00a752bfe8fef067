/* cli_replay.h — `kvsim replay` and `kvsim compare` (see cli_replay.c). */
#ifndef KV_CLI_REPLAY_H
#define KV_CLI_REPLAY_H

/* argv[0] is the command name. Return the process exit code. */
int kv_cli_replay_main(int argc, char **argv);
int kv_cli_compare_main(int argc, char **argv);

struct kv_summary;
/* `kvsim replay ARGS` without its closing message, for plan, sweep and the benchmarks: args is
 * replay's command line as one string of space-separated words (no quoting). Fills *sum on
 * success. Returns the exit code (2 also for a line of more than 127 words). */
int kv_cli_replay_line(const char *args, struct kv_summary *sum);

#endif
