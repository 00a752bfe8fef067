/* cli_replay.h — `kvsim replay` and `kvsim compare` (see cli_replay.c): argv into a
 * kv_run_config (run.h), then kv_run. */
#ifndef KV_CLI_REPLAY_H
#define KV_CLI_REPLAY_H

#include <stdbool.h>
#include <stdio.h>

#include "run.h"

/* argv[0] is the command name. Return the process exit code. */
int kv_cli_replay_main(int argc, char **argv);
int kv_cli_compare_main(int argc, char **argv);

/* kvsim replay's usage text (kvgpu replay takes the same options). */
void kv_cli_replay_usage(FILE *f);

/* What the command line said beyond the configuration. */
typedef struct kv_cli_replay_flags {
    bool strategy_set; /* --strategy was given */
    bool plot;         /* --plot (compare) */
} kv_cli_replay_flags;

/* Parse replay's options in argv[1..argc) onto cfg (which holds the defaults or the caller's
 * settings): the one positional word is the trace; strings stay borrowed from argv. cmd names
 * the command in messages ("replay", "replay (kvgpu)"). Returns 0, 1 for --help, or -1 after
 * printing what was wrong. */
int kv_cli_replay_parse(const char *cmd, int argc, char **argv, kv_run_config *cfg,
                        kv_cli_replay_flags *flags);

#endif
