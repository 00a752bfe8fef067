/* cli_sweep.h — `kvsim sweep` (see cli_sweep.c). */
#ifndef KV_CLI_SWEEP_H
#define KV_CLI_SWEEP_H

/* argv[0] is "sweep". Returns the process exit code. */
int kv_cli_sweep_main(int argc, char **argv);

#endif
