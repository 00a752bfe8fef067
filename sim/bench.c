/* bench.c — `kvsim bench alloc`: nanoseconds per allocator operation at realistic occupancy.
 *
 * Method: a Llama-3-8B-shaped KV (32 layers x 8 KV heads x 128 dims, bf16: 128 KiB a token)
 * in a 54 GiB pool, about what vLLM leaves for KV on an 80 GB H100. Each configuration admits up
 * to --live sequences (prompts uniform in [32, 256], outputs in [16, 512], drawn from a seeded
 * GSL generator before timing starts), as many as fit while a quarter of the pool stays free
 * for the decode rounds to grow into. Then, timed separately:
 *   append  one decode token to every live sequence, round after round (--rounds);
 *   fork    one child of each of the first 1024 live sequences (the contiguous and chunk-pool
 *           strategies must copy, and run out of room: failed attempts count as operations);
 *   free    every child, then every sequence.
 * Each figure is the wall time of the phase over its attempted operations (CLOCK_MONOTONIC),
 * so it includes the cost of the occasional new block, chunk or extent move. One run, no warm-up
 * beyond the admission phase: read the figures as costs, not as a statistical study.
 */
#include "bench.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "cli.h"
#include "fs.h"
#include "report.h"
#include "reader.h"
#include "run.h"
#include "writer.h"

/* ------------------------------------------------------------------------------------------ */

enum { MAX_FORKS = 1024 };

/* ------------------------------------------------------------------------------------------ */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kvsim bench alloc [--live N] [--rounds N] [--seed N]\n"
            "  Nanoseconds per append, fork and free for every strategy, with up to N\n"
            "  (default 2048) live sequences of a Llama-3-8B-shaped KV in a 54 GiB pool.\n"
            "usage: kvsim bench trace [--rows N] [--seed N]\n"
            "  Rows per second of every reader on the bundled traces and on a generated\n"
            "  native trace of N rows (default 10 million), plain and gzip, in $TMPDIR.\n"
            "usage: kvsim bench sim [--rows N]\n"
            "  Simulator speed: every strategy on both Azure traces, and paged on generated\n"
            "  chat workloads of 1 million and N (default 10 million) requests, with peak RSS.\n");
}

/* One named configuration (run.h) at its defaults otherwise. */
static int run_case(const kv_named_config *bc, uint32_t live, uint32_t rounds,
                    const uint32_t *prompt, const uint32_t *final)
{
    kv_shape shape = kv_shape_dense(32, 8, 128);
    kv_alloc_config c;
    kv_alloc_config_default(&c, bc->strategy, &shape, 54ull << 30);
    kv_named_config_apply(bc, &c);
    c.max_seqs = live + MAX_FORKS;
    c.watermark = 0.25; /* admission stops with a quarter free: room for the append rounds */
    kv_alloc *a = NULL;
    kv_err err = {{0}};
    if (kv_alloc_create(&c, &a, &err) != KV_OK) {
        fprintf(stderr, "kvsim bench: %s: %s\n", bc->name, err.msg);
        return 1;
    }
    kv_seq_id *ids = malloc(sizeof *ids * (live + MAX_FORKS));
    if (ids == NULL) {
        fprintf(stderr, "kvsim bench: out of memory\n");
        kv_alloc_destroy(&a);
        return 1;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < live; i++) {
        kv_admit_req r = {.prompt_tokens = prompt[i], .final_tokens = final[i]};
        if (!kv_alloc_can_admit(a, &r) || kv_alloc_admit(a, &r, &ids[n], NULL) != KV_OK)
            break;
        n++;
    }

    uint64_t n_app_ok = 0;
    double t0 = now_ns();
    for (uint32_t r = 0; r < rounds; r++)
        for (uint32_t i = 0; i < n; i++)
            n_app_ok += kv_alloc_append(a, ids[i], 1) == KV_OK;
    double t_app = now_ns() - t0;
    uint64_t n_app = (uint64_t)rounds * n;

    kv_mem_breakdown b;
    kv_alloc_breakdown(a, NULL, &b);
    double used = (double)(b.token_bytes) / (double)b.pool_bytes;

    uint32_t n_fork = 0, n_fork_try = n < MAX_FORKS ? n : MAX_FORKS;
    t0 = now_ns();
    for (uint32_t i = 0; i < n_fork_try; i++) {
        kv_seq_id ch;
        if (kv_alloc_fork(a, ids[i], final[i] + rounds, &ch) == KV_OK)
            ids[n + n_fork++] = ch;
    }
    double t_fork = now_ns() - t0;

    t0 = now_ns();
    for (uint32_t i = 0; i < n + n_fork; i++)
        kv_alloc_free(a, ids[i]);
    double t_free = now_ns() - t0;

    printf("%-28s %6u %9.1f %5.0f%% %9.1f %5.0f%% %9.1f %8.1f%% %9.2f\n", bc->name, n,
           n_app ? t_app / (double)n_app : 0.0,
           n_app ? 100.0 * (double)n_app_ok / (double)n_app : 0.0,
           n_fork_try ? t_fork / n_fork_try : 0.0, n_fork_try ? 100.0 * n_fork / n_fork_try : 0.0,
           (n + n_fork) ? t_free / (double)(n + n_fork) : 0.0, 100.0 * used,
           (double)b.metadata_bytes / (1 << 20));
    free(ids);
    kv_alloc_destroy(&a);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------ bench trace --- */

/* Read path to the end; rows/s and MB/s of the file as stored. */
static int time_reader(const char *label, const char *path)
{
    kv_trace *t = NULL;
    kv_err err = {{0}};
    double t0 = now_ns();
    kv_status st = kv_trace_open(path, NULL, &t, &err);
    kv_request r;
    uint64_t rows = 0, tokens = 0;
    while (st == KV_OK && (st = kv_trace_next(t, &r, &err)) == KV_OK) {
        rows++;
        tokens += r.prompt_tokens; /* use the rows, so nothing is optimized away */
    }
    double dt = (now_ns() - t0) / 1e9;
    kv_trace_close(&t);
    if (st != KV_EOF) {
        fprintf(stderr, "kvsim bench: %s\n", err.msg);
        return 1;
    }
    FILE *f = fopen(path, "rb");
    long bytes = 0;
    if (f) {
        fseek(f, 0, SEEK_END);
        bytes = ftell(f);
        fclose(f);
    }
    printf("%-34s %10llu %8.3f %12.0f %9.1f  (%llu prompt tokens)\n", label,
           (unsigned long long)rows, dt, (double)rows / dt, (double)bytes / dt / 1e6,
           (unsigned long long)tokens);
    return 0;
}

/* A native trace of n rows: Poisson arrivals at 100/s, lognormal prompt and output lengths. */
static int write_synthetic(const char *path, uint64_t n, unsigned long seed)
{
    kv_trace_writer *w = NULL;
    kv_err err = {{0}};
    if (kv_trace_writer_open(path, 0, &w, &err) != KV_OK) {
        fprintf(stderr, "kvsim bench: %s\n", err.msg);
        return 1;
    }
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, seed);
    double t = 0;
    kv_status st = KV_OK;
    for (uint64_t i = 0; i < n && st == KV_OK; i++) {
        t += -log(1.0 - gsl_rng_uniform(rng)) / 100.0;
        double u1 = gsl_rng_uniform_pos(rng), u2 = gsl_rng_uniform_pos(rng);
        kv_request r = {.t_arrival_us = (int64_t)(t * 1e6),
                        .prompt_tokens = 1 + (uint32_t)(u1 * u1 * 4000),
                        .output_tokens = (uint32_t)(u2 * 600),
                        .n_samples = 1,
                        .beam_width = 1};
        st = kv_trace_write(w, &r, &err);
    }
    gsl_rng_free(rng);
    if (st == KV_OK)
        st = kv_trace_writer_close(&w, &err);
    else
        kv_trace_writer_close(&w, NULL);
    if (st != KV_OK) {
        fprintf(stderr, "kvsim bench: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int bench_trace(uint64_t rows, unsigned long seed)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char plain[512], gz[512];
    snprintf(plain, sizeof plain, "%s/kvsim-bench-%llu.csv", tmp, (unsigned long long)rows);
    snprintf(gz, sizeof gz, "%s/kvsim-bench-%llu.csv.gz", tmp, (unsigned long long)rows);
    double t0 = now_ns();
    if (write_synthetic(plain, rows, seed) != 0)
        return 1;
    double t_plain = (now_ns() - t0) / 1e9;
    t0 = now_ns();
    if (write_synthetic(gz, rows, seed) != 0)
        return 1;
    double t_gz = (now_ns() - t0) / 1e9;
    printf("kvsim bench trace: one core, reading to the end (writing: %.0f rows/s plain, %.0f "
           "rows/s gzip)\n",
           (double)rows / t_plain, (double)rows / t_gz);
    printf("%-34s %10s %8s %12s %9s\n", "trace", "rows", "seconds", "rows/s", "MB/s");
    static const char *const bundled[] = {"traces/data/azure2023_conv.csv",
                                          "traces/data/azure2023_code.csv",
                                          "traces/data/mooncake_synthetic_trace.jsonl"};
    int rc = 0;
    for (size_t i = 0; i < 3 && rc == 0; i++)
        rc = time_reader(bundled[i] + strlen("traces/data/"), bundled[i]);
    char label[64];
    snprintf(label, sizeof label, "native %lluM rows", (unsigned long long)rows / 1000000);
    if (rc == 0)
        rc = time_reader(label, plain);
    snprintf(label, sizeof label, "native %lluM rows, gzip", (unsigned long long)rows / 1000000);
    if (rc == 0)
        rc = time_reader(label, gz);
    remove(plain);
    remove(gz);
    return rc;
}

/* -------------------------------------------------------------------- bench sim --- */

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* One replay through kv_run (trace reading and output files included), timed. */
static int time_replay(const char *label, const kv_run_config *cfg)
{
    kv_summary s;
    kv_err err = {{0}};
    double t0 = now_ns();
    kv_status st = kv_run(cfg, NULL, &s, &err);
    double dt = (now_ns() - t0) / 1e9;
    if (st != KV_OK) {
        fprintf(stderr, "kvsim bench: %s: %s\n", label, err.msg);
        return st == KV_ERR_INPUT ? KV_EXIT_USAGE : KV_EXIT_FAIL;
    }
    printf("%-44s %10llu %8.2f %11.0f %11.0f %7.1f%% %8ld\n", label,
           (unsigned long long)s.requests_in, dt, (double)s.requests_in / dt, (double)s.steps / dt,
           s.steps ? 100.0 * (double)s.steps_jumped / (double)s.steps : 0, peak_rss_kib() / 1024);
    return 0;
}

static int bench_sim(uint64_t big)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/kvsim-bench-sim-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    printf("kvsim bench sim: one core, Llama-3-8B on H100-80GB, outputs written to %s\n", dir);
    printf("%-44s %10s %8s %11s %11s %8s %8s\n", "run", "requests", "seconds", "requests/s",
           "steps/s", "jumped", "RSS_MiB");
    static const kv_strategy strategies[] = {KV_CONTIGUOUS, KV_CHUNK_POOL, KV_PAGED,
                                             KV_COMPRESSED};
    static const char *const traces[] = {"traces/data/azure2023_conv.csv",
                                         "traces/data/azure2023_code.csv"};
    kv_run_config base;
    kv_run_config_default(&base);
    base.out_dir = dir;
    base.report.no_wall_time = true;
    base.progress = kv_cli_progress();
    int rc = 0;
    for (int t = 0; t < 2 && rc == 0; t++) {
        for (int s = 0; s < 4 && rc == 0; s++) {
            kv_run_config c = base;
            c.trace = traces[t];
            c.alloc.strategy = strategies[s];
            c.engine.rate_scale = 3;
            c.engine.max_num_seqs = 1024;
            char label[128];
            snprintf(label, sizeof label, "%s x3, %s", traces[t] + strlen("traces/data/"),
                     kv_strategy_name(strategies[s]));
            rc = time_replay(label, &c);
        }
    }
    const uint64_t sizes[] = {1000000, big};
    for (int i = 0; i < 2 && rc == 0; i++) {
        kv_run_config c = base;
        c.trace = "workloads/chat-sharegpt.ini";
        c.alloc.strategy = KV_PAGED;
        c.limit = sizes[i];
        char label[128];
        snprintf(label, sizeof label, "chat-sharegpt %lluM requests, paged",
                 (unsigned long long)sizes[i] / 1000000);
        rc = time_replay(label, &c);
    }
    kv_err err = {{0}};
    if (kv_fs_remove_tree(dir, &err) != KV_OK)
        fprintf(stderr, "kvsim bench: %s\n", err.msg);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */

int kv_bench_main(int argc, char **argv)
{
    uint64_t live = 2048, rounds = 32, rows = 10000000, seed = 1;
    bool is_alloc = argc >= 2 && strcmp(argv[1], "alloc") == 0;
    bool is_trace = argc >= 2 && strcmp(argv[1], "trace") == 0;
    bool is_sim = argc >= 2 && strcmp(argv[1], "sim") == 0;
    if (!is_alloc && !is_trace && !is_sim) {
        bool help = argc >= 2 && strcmp(argv[1], "--help") == 0;
        usage(help ? stdout : stderr);
        return help ? KV_EXIT_OK : KV_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return KV_EXIT_OK;
        }
        if (!(v = kv_cli_value("bench", argc, argv, &i)))
            return KV_EXIT_USAGE;
        bool ok;
        if (is_alloc && strcmp(argv[i - 1], "--live") == 0)
            ok = kv_cli_u64("bench", "--live", v, 1, 1000000, &live);
        else if (is_alloc && strcmp(argv[i - 1], "--rounds") == 0)
            ok = kv_cli_u64("bench", "--rounds", v, 1, 1000000, &rounds);
        else if ((is_trace || is_sim) && strcmp(argv[i - 1], "--rows") == 0)
            ok = kv_cli_u64("bench", "--rows", v, 1, 1000000000, &rows);
        else if (strcmp(argv[i - 1], "--seed") == 0)
            ok = kv_cli_u64("bench", "--seed", v, 0, UINT32_MAX, &seed);
        else {
            fprintf(stderr, "kvsim bench: unknown option %s\n", argv[i - 1]);
            return KV_EXIT_USAGE;
        }
        if (!ok)
            return KV_EXIT_USAGE;
    }
    if (is_trace)
        return bench_trace(rows, (unsigned long)seed);
    if (is_sim)
        return bench_sim(rows);

    uint32_t *prompt = malloc(sizeof *prompt * live), *final = malloc(sizeof *final * live);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!prompt || !final || !rng) {
        fprintf(stderr, "kvsim bench: out of memory\n");
        return 1;
    }
    gsl_rng_set(rng, seed);
    for (uint32_t i = 0; i < live; i++) {
        prompt[i] = 32 + (uint32_t)gsl_rng_uniform_int(rng, 225);
        final[i] = prompt[i] + 16 + (uint32_t)gsl_rng_uniform_int(rng, 497);
    }
    gsl_rng_free(rng);

    printf("kvsim bench alloc: Llama-3-8B KV (128 KiB/token), 54 GiB pool, up to %llu live "
           "sequences, %llu append rounds, seed %llu\n",
           (unsigned long long)live, (unsigned long long)rounds, (unsigned long long)seed);
    printf("%-28s %6s %9s %6s %9s %6s %9s %9s %9s\n", "strategy", "live", "append_ns", "ok",
           "fork_ns", "ok", "free_ns", "tokens", "meta_MiB");
    int rc = 0;
    for (size_t i = 0; i < kv_named_config_count() && rc == 0; i++)
        if (kv_named_config_at(i)->in & KV_NAMED_IN_BENCH)
            rc = run_case(kv_named_config_at(i), (uint32_t)live, (uint32_t)rounds, prompt, final);
    free(prompt);
    free(final);
    return rc;
}
