/* cli_gen.h — `kvsim gen` (see cli_gen.c). */
#ifndef KV_CLI_GEN_H
#define KV_CLI_GEN_H

/* argv[0] is "gen". Returns the process exit code. */
int kv_cli_gen_main(int argc, char **argv);

#endif
