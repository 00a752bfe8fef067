/* cli_trace.c — `kvsim trace stats` and `kvsim trace convert`.
 *
 * stats reads a whole trace once, streaming, and prints its size, span, rate, token-count
 * quantiles and, for traces with prefix hashes, the hit rate of an unlimited prefix cache.
 * convert rewrites a trace in the native format, optionally cut to an arrival window, limited in
 * rows and with its time axis scaled.
 */
#include "cli_trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "reader.h"
#include "stats.h"
#include "writer.h"

/* ------------------------------------------------------------------------------------------ */

static void usage_stats(FILE *f)
{
    fprintf(f, "usage: kvsim trace stats FILE... [--format F] [--skip-bad-rows]\n"
               "  Rows, span, mean arrival rate, min/median/p99/max of prompt and output tokens,\n"
               "  and for traces with prefix hashes the share of block references that repeat\n"
               "  an earlier block (the hit rate of an unlimited prefix cache).\n"
               "  F: auto (default), native, azure, burstgpt, mooncake. Bad rows stop the read\n"
               "  with an error unless --skip-bad-rows, which counts and reports them.\n");
}

static void usage_convert(FILE *f)
{
    fprintf(f, "usage: kvsim trace convert IN OUT [--format F] [--skip-bad-rows]\n"
               "                           [--time-scale X] [--limit N] [--window A:B]\n"
               "  Rewrite IN in the native format (OUT ending in .gz is compressed).\n"
               "  --window A:B  keep arrivals in [A, B) seconds from the trace's origin, shifted\n"
               "                to start at 0\n"
               "  --time-scale X  multiply arrival times by X (0.5 doubles the rate)\n"
               "  --limit N     keep at most N rows\n");
}

static void usage(FILE *f)
{
    usage_stats(f);
    usage_convert(f);
}

/* Options shared by both subcommands. Returns 1 if argv[*i] was one, 0 if not, -1 on error. */
static int common_opt(const char *cmd, int argc, char **argv, int *i, kv_trace_opts *o)
{
    if (strcmp(argv[*i], "--skip-bad-rows") == 0) {
        o->skip_bad_rows = true;
        return 1;
    }
    if (strcmp(argv[*i], "--format") == 0) {
        const char *v = kv_cli_value(cmd, argc, argv, i);
        if (v == NULL)
            return -1;
        for (int f = KV_TRACE_AUTO; f <= KV_TRACE_MOONCAKE; f++) {
            if (strcmp(v, kv_trace_format_name((kv_trace_format)f)) == 0) {
                o->format = (kv_trace_format)f;
                return 1;
            }
        }
        fprintf(stderr,
                "kvsim %s: option --format: expected auto, native, azure, burstgpt or mooncake, "
                "got \"%s\"\n",
                cmd, v);
        return -1;
    }
    return 0;
}

static void report_skips(const char *cmd, const kv_trace *t)
{
    if (kv_trace_skipped(t) > 0)
        fprintf(stderr, "kvsim %s: skipped %llu bad rows (first: %s)\n", cmd,
                (unsigned long long)kv_trace_skipped(t), kv_trace_first_skip(t));
}

static void print_len(const char *what, const kv_len_summary *s)
{
    printf("  %-14s min %llu, median %llu, p99 %llu, max %llu, mean %.1f\n", what,
           (unsigned long long)s->min, (unsigned long long)s->median, (unsigned long long)s->p99,
           (unsigned long long)s->max, s->mean);
}

static int stats_one(const char *path, const kv_trace_opts *o)
{
    kv_err err = {{0}};
    kv_trace *t = NULL;
    kv_trace_stats *s = NULL;
    kv_status st = kv_trace_open(path, o, &t, &err);
    if (st == KV_OK)
        st = kv_trace_stats_create(&s);
    kv_request r;
    while (st == KV_OK && (st = kv_trace_next(t, &r, &err)) == KV_OK)
        st = kv_trace_stats_add(s, &r);
    if (st != KV_EOF) {
        fprintf(stderr, "kvsim trace stats: %s\n", err.msg[0] ? err.msg : kv_status_str(st));
        kv_trace_stats_destroy(&s);
        kv_trace_close(&t);
        return st == KV_ERR_IO || st == KV_ERR_NOMEM ? KV_EXIT_FAIL : KV_EXIT_USAGE;
    }
    kv_trace_summary m;
    kv_trace_stats_summary(s, &m);
    printf("%s (%s)\n", path, kv_trace_format_name(kv_trace_format_of(t)));
    printf("  rows           %llu\n", (unsigned long long)m.rows);
    printf("  span           %.3f s\n", m.span_s);
    printf("  mean rate      %.3f requests/s\n", m.rate_per_s);
    print_len("prompt tokens", &m.prompt_tokens);
    print_len("output tokens", &m.output_tokens);
    if (m.n_samples_total != m.rows)
        printf("  samples        %llu (parallel n summed)\n",
               (unsigned long long)m.n_samples_total);
    if (m.prefix_refs > 0)
        printf("  prefix reuse   %.2f%% of %llu block references repeat an earlier block "
               "(unlimited prefix cache hit rate)\n",
               100.0 * (double)m.prefix_repeats / (double)m.prefix_refs,
               (unsigned long long)m.prefix_refs);
    if (kv_trace_skipped(t) > 0)
        printf("  skipped        %llu bad rows\n", (unsigned long long)kv_trace_skipped(t));
    report_skips("trace stats", t);
    kv_trace_stats_destroy(&s);
    kv_trace_close(&t);
    return KV_EXIT_OK;
}

static int cmd_stats(int argc, char **argv)
{
    kv_trace_opts o = {0};
    const char **files = calloc((size_t)argc, sizeof *files);
    int n_files = 0, rc = KV_EXIT_OK;
    if (files == NULL)
        return KV_EXIT_FAIL;
    for (int i = 1; i < argc && rc == KV_EXIT_OK; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage_stats(stdout);
            free(files);
            return KV_EXIT_OK;
        }
        int c = common_opt("trace stats", argc, argv, &i, &o);
        if (c < 0) {
            rc = KV_EXIT_USAGE;
        } else if (c == 0 && argv[i][0] == '-') {
            fprintf(stderr, "kvsim trace stats: unknown option %s\n", argv[i]);
            rc = KV_EXIT_USAGE;
        } else if (c == 0) {
            files[n_files++] = argv[i];
        }
    }
    if (rc == KV_EXIT_OK && n_files == 0) {
        usage_stats(stderr);
        rc = KV_EXIT_USAGE;
    }
    for (int i = 0; i < n_files && rc == KV_EXIT_OK; i++)
        rc = stats_one(files[i], &o);
    free(files);
    return rc;
}

static int cmd_convert(int argc, char **argv)
{
    const char *cmd = "trace convert";
    kv_trace_opts o = {0};
    const char *in = NULL, *out = NULL;
    double scale = 1.0, win_a = 0.0, win_b = -1.0;
    uint64_t limit = UINT64_MAX;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage_convert(stdout);
            return KV_EXIT_OK;
        }
        int c = common_opt(cmd, argc, argv, &i, &o);
        if (c < 0)
            return KV_EXIT_USAGE;
        if (c > 0)
            continue;
        const char *v;
        if (strcmp(argv[i], "--time-scale") == 0) {
            if (!(v = kv_cli_value(cmd, argc, argv, &i)) ||
                !kv_cli_double(cmd, "--time-scale", v, 1e-9, 1e9, &scale))
                return KV_EXIT_USAGE;
        } else if (strcmp(argv[i], "--limit") == 0) {
            if (!(v = kv_cli_value(cmd, argc, argv, &i)) ||
                !kv_cli_u64(cmd, "--limit", v, 0, UINT64_MAX, &limit))
                return KV_EXIT_USAGE;
        } else if (strcmp(argv[i], "--window") == 0) {
            if (!(v = kv_cli_value(cmd, argc, argv, &i)))
                return KV_EXIT_USAGE;
            const char *colon = strchr(v, ':');
            char a[64];
            if (colon == NULL || (size_t)(colon - v) >= sizeof a) {
                fprintf(stderr, "kvsim %s: option --window: expected A:B in seconds, got \"%s\"\n",
                        cmd, v);
                return KV_EXIT_USAGE;
            }
            memcpy(a, v, (size_t)(colon - v));
            a[colon - v] = '\0';
            if (!kv_cli_double(cmd, "--window (start)", a, 0, 1e12, &win_a) ||
                !kv_cli_double(cmd, "--window (end)", colon + 1, 0, 1e12, &win_b))
                return KV_EXIT_USAGE;
            if (win_b <= win_a) {
                fprintf(stderr, "kvsim %s: option --window: end %g must be after start %g\n", cmd,
                        win_b, win_a);
                return KV_EXIT_USAGE;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kvsim %s: unknown option %s\n", cmd, argv[i]);
            return KV_EXIT_USAGE;
        } else if (in == NULL) {
            in = argv[i];
        } else if (out == NULL) {
            out = argv[i];
        } else {
            fprintf(stderr, "kvsim %s: unexpected argument %s\n", cmd, argv[i]);
            return KV_EXIT_USAGE;
        }
    }
    if (in == NULL || out == NULL) {
        usage_convert(stderr);
        return KV_EXIT_USAGE;
    }
    kv_err err = {{0}};
    kv_trace *t = NULL;
    kv_trace_writer *w = NULL;
    kv_status st = kv_trace_open(in, &o, &t, &err);
    if (st == KV_OK)
        st = kv_trace_writer_open(out, kv_trace_fields(t), &w, &err);
    int64_t a_us = (int64_t)(win_a * 1e6), b_us = win_b < 0 ? INT64_MAX : (int64_t)(win_b * 1e6);
    uint64_t written = 0;
    kv_request r;
    while (st == KV_OK && written < limit) {
        st = kv_trace_next(t, &r, &err);
        if (st != KV_OK)
            break;
        if (r.t_arrival_us < a_us)
            continue;
        if (r.t_arrival_us >= b_us)
            break;
        r.t_arrival_us = (int64_t)((double)(r.t_arrival_us - a_us) * scale + 0.5);
        st = kv_trace_write(w, &r, &err);
        written++;
    }
    if (st == KV_EOF)
        st = KV_OK;
    kv_status cst = kv_trace_writer_close(&w, &err);
    if (st == KV_OK)
        st = cst;
    if (st != KV_OK) {
        fprintf(stderr, "kvsim %s: %s\n", cmd, err.msg[0] ? err.msg : kv_status_str(st));
        kv_trace_close(&t);
        remove(out); /* never leave a partial trace behind */
        return st == KV_ERR_IO || st == KV_ERR_NOMEM ? KV_EXIT_FAIL : KV_EXIT_USAGE;
    }
    report_skips(cmd, t);
    fprintf(stderr, "kvsim %s: wrote %llu rows to %s\n", cmd, (unsigned long long)written, out);
    kv_trace_close(&t);
    return KV_EXIT_OK;
}

/* ------------------------------------------------------------------------------------------ */

int kv_cli_trace_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? KV_EXIT_USAGE : KV_EXIT_OK;
    }
    if (strcmp(argv[1], "stats") == 0)
        return cmd_stats(argc - 1, argv + 1);
    if (strcmp(argv[1], "convert") == 0)
        return cmd_convert(argc - 1, argv + 1);
    fprintf(stderr, "kvsim trace: unknown subcommand '%s' (stats, convert)\n", argv[1]);
    return KV_EXIT_USAGE;
}
