/* cli_replay.h — `kvsim replay` and `kvsim compare` (see cli_replay.c). */
#ifndef KV_CLI_REPLAY_H
#define KV_CLI_REPLAY_H

/* argv[0] is the command name. Return the process exit code. */
int kv_cli_replay_main(int argc, char **argv);
int kv_cli_compare_main(int argc, char **argv);

struct kv_summary;
/* `kvsim replay` without its closing message, for benchmarks: argv as for replay. Fills *sum
 * on success. Returns the exit code. */
int kv_cli_replay_quiet(int argc, char **argv, struct kv_summary *sum);

#endif
