/* cli_gate.h — `kvsim gate` (see cli_gate.c). */
#ifndef KV_CLI_GATE_H
#define KV_CLI_GATE_H

/* argv[0] is "gate". Returns 0 (no regression), 1 (regression) or 2 (bad input). */
int kv_cli_gate_main(int argc, char **argv);

#endif
