/* cli_trace.h — `kvsim trace stats|convert` (see cli_trace.c). */
#ifndef KV_CLI_TRACE_H
#define KV_CLI_TRACE_H

/* argv[0] is "trace". Returns the process exit code. */
int kv_cli_trace_main(int argc, char **argv);

#endif
