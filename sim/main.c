/* main.c — the kvsim command line: dispatch to a subcommand.
 *
 * Exit codes: 0 success, 1 a run failed (environment, resources), 2 bad usage or bad input.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cli_gate.h"
#include "cli_gen.h"
#include "cli_plan.h"
#include "cli_plot.h"
#include "cli_replay.h"
#include "cli_sweep.h"
#include "cli_trace.h"

/* ------------------------------------------------------------------------------------------ */

#define KVSIM_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "kvsim %s — KV-cache memory strategies under a continuous-batching LLM server\n"
            "\n"
            "usage: kvsim COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  replay TRACE --strategy S -o DIR   simulate a trace under one strategy\n"
            "  compare TRACE [-o DIR]   every strategy on one trace, one table\n"
            "  sweep SPEC.ini -o OUT.csv   a grid of replays (-j N cores, or MPI)\n"
            "  plan rate|block TRACE    highest sustainable rate per strategy or block size\n"
            "  plot RUN_DIR... -o DIR   figures (PNG, SVG) from runs\n"
            "  gate --baseline A --current B   fail when a run regressed against a baseline\n"
            "  trace stats FILE...      size, span, rate, token quantiles, prefix reuse\n"
            "  trace convert IN OUT     rewrite a trace in the native format\n"
            "  gen SPEC -o OUT          generate a synthetic workload (workloads/*.ini)\n"
            "  bench alloc|trace        allocator costs, trace reader speed\n"
            "\n"
            "strategies: contiguous, chunk-pool, paged, compressed\n"
            "Run `kvsim COMMAND --help` for a command's options.\n",
            KVSIM_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("kvsim %s\n", KVSIM_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "replay") == 0)
        return kv_cli_replay_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "compare") == 0)
        return kv_cli_compare_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "sweep") == 0)
        return kv_cli_sweep_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "plan") == 0)
        return kv_cli_plan_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "plot") == 0)
        return kv_cli_plot_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "gate") == 0)
        return kv_cli_gate_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "trace") == 0)
        return kv_cli_trace_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "gen") == 0)
        return kv_cli_gen_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "bench") == 0)
        return kv_bench_main(argc - 1, argv + 1);
    fprintf(stderr, "kvsim: unknown command '%s' (try kvsim --help)\n", argv[1]);
    return 2;
}
