/* cli_plan.h — `kvsim plan` (see cli_plan.c). */
#ifndef KV_CLI_PLAN_H
#define KV_CLI_PLAN_H

/* argv[0] is "plan". Returns the process exit code. */
int kv_cli_plan_main(int argc, char **argv);

#endif
