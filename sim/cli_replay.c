/* cli_replay.c — `kvsim replay` (one strategy) and `kvsim compare` (compare's named
 * configurations, run.h) on a trace or a workload spec: argv into a kv_run_config, then kv_run.
 */
#include "cli_replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_plot.h"
#include "fs.h"
#include "run.h"

/* ------------------------------------------------------------------------------------------ */

enum { MAX_COMPARE = 16 };

/* ------------------------------------------------------------------------------------------ */

static void usage_common(FILE *f)
{
    fprintf(f,
            "  TRACE is any trace kvsim reads, or a workload spec (.ini, generated with --seed).\n"
            "  model and hardware:\n"
            "    --model M (Llama-3-8B)  --gpu G (H100-80GB)  --tp N (1)  --gpu-mem-util X (0.9)\n"
            "    --calib FILE            cost-model coefficients from `kvgpu calibrate`\n"
            "  engine:\n"
            "    --max-num-seqs N (256)  --max-num-batched-tokens N (8192)  --no-chunked-prefill\n"
            "    --preempt recompute|swap (recompute)  --swap-space-gib X (4)\n"
            "    --max-preemptions N (8)  --max-model-len N (the model's context)\n"
            "    --rate-scale X (1: arrivals at their trace times; 2: twice as fast)\n"
            "    --replicas N (1)  --router round-robin|least-tokens (round-robin): N engines\n"
            "      behind a router on one clock; timeline.csv rows carry the replica\n"
            "    --limit N (requests)  --skip N (the first N requests are not replayed; with\n"
            "    --limit, a window)  --seed N (1)  --format F  --skip-bad-rows\n"
            "  outputs:\n"
            "    --slo-ttft S (2)  --slo-tpot S (0.1)  --timeline-interval S (1; 0 = every step)\n"
            "    --perfetto  --no-wall-time  --check (allocator checker every step)\n"
            "    --no-fast-path (step every iteration; same outputs, slower)\n"
            "    --decision-log FILE (every allocator operation, its result and placement;\n"
            "      steps one by one, as kvgpu does)\n"
            "  allocator knobs:\n"
            "    contiguous: --reserve max|pow2|oracle|grow  --fit first-fit|best-fit|buddy\n"
            "    chunk-pool: --chunk-mib X (2)  --layout per-layer|fused\n"
            "    paged, compressed: --block-tokens N (16)  --no-prefix-cache  --watermark X\n"
            "    compressed: --kv-bits 8|4|2 (8)  --scale-group N  --scale-bytes N\n"
            "                --token-policy none|window|budget  --sink N --window N --budget N\n");
}

static void usage_replay(FILE *f)
{
    fprintf(f, "usage: kvsim replay TRACE --strategy S [options] -o DIR\n"
               "  Replay TRACE under strategy S (contiguous, chunk-pool, paged, compressed) and\n"
               "  write config.json, requests.csv, timeline.csv, summary.json (and trace.json\n"
               "  with --perfetto) to DIR.\n");
    usage_common(f);
}

static void usage_compare(FILE *f)
{
    fprintf(f, "usage: kvsim compare TRACE [options] [-o DIR]\n"
               "  Replay TRACE under contiguous (max, pow2, oracle), chunk-pool, paged and\n"
               "  compressed (fp8) and print one table; with -o, each run's files go to\n"
               "  DIR/<strategy>/ and the table to DIR/compare.txt and DIR/compare.csv;\n"
               "  with --plot too, the figures of kvsim plot to DIR/plots/.\n");
    usage_common(f);
}

static void print_table(FILE *f, const kv_named_config *const *cases, const kv_summary *s, size_t n,
                        bool csv)
{
    if (csv)
        fprintf(f, "strategy,output_tok_per_s,ttft_p50_s,ttft_p99_s,tpot_p50_s,tpot_p99_s,"
                   "batch_mean,batch_peak,preemptions,swap_bytes,token_share,reserved_share,"
                   "internal_frag_share,external_frag_share,free_share,done,rejected\n");
    else
        fprintf(f, "%-22s %9s %8s %8s %8s %8s %6s %5s %7s %9s %6s %6s %6s %6s %6s\n", "strategy",
                "tok/s", "TTFT50", "TTFT99", "TPOT50", "TPOT99", "batch", "peak", "preempt",
                "swap MiB", "token", "resv", "int", "ext", "free");
    for (size_t i = 0; i < n; i++) {
        const kv_summary *x = &s[i];
        if (csv)
            fprintf(f,
                    "%s,%.3f,%.6f,%.6f,%.6f,%.6f,%.3f,%u,%llu,%llu,%.6f,%.6f,%.6f,%.6f,%.6f,"
                    "%llu,%llu\n",
                    cases[i]->name, x->output_tok_per_s, x->ttft_p50_s, x->ttft_p99_s, x->tpot_p50_s,
                    x->tpot_p99_s, x->batch_mean_seqs, x->batch_peak_seqs, (unsigned long long)x->preemptions,
                    (unsigned long long)(x->swap_out_bytes + x->swap_in_bytes), x->share_token,
                    x->share_reserved, x->share_internal, x->share_external, x->share_free,
                    (unsigned long long)x->done, (unsigned long long)x->rejected);
        else
            fprintf(f,
                    "%-22s %9.1f %8.3f %8.3f %8.4f %8.4f %6.1f %5u %7llu %9.1f %5.1f%% %5.1f%% "
                    "%5.1f%% %5.1f%% %5.1f%%\n",
                    cases[i]->name, x->output_tok_per_s, x->ttft_p50_s, x->ttft_p99_s, x->tpot_p50_s,
                    x->tpot_p99_s, x->batch_mean_seqs, x->batch_peak_seqs, (unsigned long long)x->preemptions,
                    (double)(x->swap_out_bytes + x->swap_in_bytes) / 1048576.0,
                    100 * x->share_token, 100 * x->share_reserved, 100 * x->share_internal,
                    100 * x->share_external, 100 * x->share_free);
    }
}

/* ------------------------------------------------------------------------------------------ */

void kv_cli_replay_usage(FILE *f)
{
    usage_replay(f);
}

int kv_cli_replay_parse(const char *cmd, int argc, char **argv, kv_run_config *cfg,
                        kv_cli_replay_flags *flags)
{
    *flags = (kv_cli_replay_flags){0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--plot") == 0) {
            flags->plot = true;
            continue;
        }
        int arity = kv_run_option_arity(a);
        if (arity < 0 && a[0] == '-') {
            fprintf(stderr, "kvsim %s: unknown option %s (see kvsim %s --help)\n", cmd, a, cmd);
            return -1;
        }
        if (arity < 0) {
            if (cfg->trace != NULL) {
                fprintf(stderr, "kvsim %s: unexpected argument %s\n", cmd, a);
                return -1;
            }
            cfg->trace = a;
            continue;
        }
        const char *v = NULL;
        if (arity == 1 && (v = kv_cli_value(cmd, argc, argv, &i)) == NULL)
            return -1;
        kv_err err = {{0}};
        if (kv_run_config_set(cfg, a, v, &err) != KV_OK) {
            fprintf(stderr, "kvsim %s: %s\n", cmd, err.msg);
            return -1;
        }
        flags->strategy_set = flags->strategy_set || strcmp(a, "--strategy") == 0;
    }
    return 0;
}

/* Exit code of a kv_run status, after printing its message. */
static int report_failure(const char *cmd, kv_status st, const kv_err *err)
{
    fprintf(stderr, "kvsim %s: %s\n", cmd, err->msg[0] ? err->msg : kv_status_str(st));
    return st == KV_ERR_INPUT ? KV_EXIT_USAGE : KV_EXIT_FAIL;
}

int kv_cli_replay_main(int argc, char **argv)
{
    kv_run_config cfg;
    kv_run_config_default(&cfg);
    cfg.progress = kv_cli_progress();
    kv_cli_replay_flags flags;
    int rc = kv_cli_replay_parse("replay", argc, argv, &cfg, &flags);
    if (rc == 1) {
        usage_replay(stdout);
        return KV_EXIT_OK;
    }
    if (rc < 0)
        return KV_EXIT_USAGE;
    if (cfg.trace == NULL || cfg.out_dir == NULL || !flags.strategy_set) {
        fprintf(stderr, "kvsim replay: TRACE, --strategy and -o DIR are required\n");
        usage_replay(stderr);
        return KV_EXIT_USAGE;
    }
    kv_summary s;
    kv_err err = {{0}};
    kv_status st = kv_run(&cfg, NULL, &s, &err);
    if (st != KV_OK)
        return report_failure("replay", st, &err);
    fprintf(stderr,
            "kvsim replay: %s: %llu done, %llu rejected, %.1f output tokens/s, TTFT p50 %.3f "
            "s p99 %.3f s, %llu preemptions -> %s\n",
            kv_strategy_name(cfg.alloc.strategy), (unsigned long long)s.done,
            (unsigned long long)s.rejected, s.output_tok_per_s, s.ttft_p50_s, s.ttft_p99_s,
            (unsigned long long)s.preemptions, cfg.out_dir);
    return KV_EXIT_OK;
}

int kv_cli_compare_main(int argc, char **argv)
{
    kv_run_config o;
    kv_run_config_default(&o);
    o.progress = kv_cli_progress();
    kv_cli_replay_flags flags;
    int rc = kv_cli_replay_parse("compare", argc, argv, &o, &flags);
    if (rc == 1) {
        usage_compare(stdout);
        return KV_EXIT_OK;
    }
    if (rc < 0)
        return KV_EXIT_USAGE;
    if (o.trace == NULL || flags.strategy_set || (flags.plot && o.out_dir == NULL)) {
        fprintf(stderr, "kvsim compare: TRACE is required, --strategy is not (it runs them all), "
                        "and --plot needs -o DIR\n");
        usage_compare(stderr);
        return KV_EXIT_USAGE;
    }
    const kv_named_config *cases[MAX_COMPARE];
    size_t n = 0;
    for (size_t i = 0; i < kv_named_config_count() && n < MAX_COMPARE; i++)
        if (kv_named_config_at(i)->in & KV_NAMED_IN_COMPARE)
            cases[n++] = kv_named_config_at(i);
    kv_summary sums[MAX_COMPARE];
    char tmp[256] = "";
    const char *root = o.out_dir;
    if (root == NULL) {
        snprintf(tmp, sizeof tmp, "%s/kvsim-compare-%d",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
        root = tmp;
    }
    size_t dir_bytes = strlen(root) + 80;
    char *dirs = malloc(n * dir_bytes);
    if (dirs == NULL) {
        fprintf(stderr, "kvsim compare: out of memory\n");
        return KV_EXIT_FAIL;
    }
    for (size_t i = 0; i < n && rc == KV_EXIT_OK; i++) {
        kv_run_config c = o;
        kv_named_config_apply(cases[i], &c.alloc);
        c.label = cases[i]->name;
        c.out_dir = dirs + i * dir_bytes;
        snprintf(dirs + i * dir_bytes, dir_bytes, "%s/%s", root, cases[i]->name);
        kv_err err = {{0}};
        kv_status st = kv_run(&c, NULL, &sums[i], &err);
        if (st != KV_OK)
            rc = report_failure("compare", st, &err);
    }
    if (rc == KV_EXIT_OK) {
        printf("kvsim compare: %s, %s on %s, rate scale %g\n", o.trace, o.model, o.gpu,
               o.engine.rate_scale);
        print_table(stdout, cases, sums, n, false);
    }
    if (rc == KV_EXIT_OK && o.out_dir) {
        size_t path_bytes = strlen(o.out_dir) + 32;
        char *path = malloc(path_bytes);
        FILE *f = NULL;
        if (path) {
            snprintf(path, path_bytes, "%s/compare.txt", o.out_dir);
            f = fopen(path, "w");
        }
        if (f) {
            fprintf(f, "kvsim compare: %s, %s on %s, rate scale %g\n", o.trace, o.model, o.gpu,
                    o.engine.rate_scale);
            print_table(f, cases, sums, n, false);
            fclose(f);
            snprintf(path, path_bytes, "%s/compare.csv", o.out_dir);
            f = fopen(path, "w");
        }
        if (f) {
            print_table(f, cases, sums, n, true);
            fclose(f);
        }
        if (!f) {
            fprintf(stderr, "kvsim compare: %s: cannot write\n", path ? path : o.out_dir);
            rc = KV_EXIT_FAIL;
        }
        if (rc == KV_EXIT_OK && flags.plot) {
            const char *runs[MAX_COMPARE];
            for (size_t i = 0; i < n; i++)
                runs[i] = dirs + i * dir_bytes;
            snprintf(path, path_bytes, "%s/plots", o.out_dir);
            rc = kv_plot_runs(runs, (int)n, path);
        }
        free(path);
    }
    if (o.out_dir == NULL) {
        kv_err err = {{0}};
        if (kv_fs_remove_tree(tmp, &err) != KV_OK)
            fprintf(stderr, "kvsim compare: %s\n", err.msg);
    }
    free(dirs);
    return rc;
}
