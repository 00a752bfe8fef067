/* cli_replay.h — `kvsim replay` and `kvsim compare` (see cli_replay.c). */
#ifndef KV_CLI_REPLAY_H
#define KV_CLI_REPLAY_H

/* argv[0] is the command name. Return the process exit code. */
int kv_cli_replay_main(int argc, char **argv);
int kv_cli_compare_main(int argc, char **argv);

#endif
