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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"

/* ------------------------------------------------------------------------------------------ */

enum { MAX_FORKS = 1024 };

typedef struct bench_case {
    const char *label;
    kv_strategy strategy;
    kv_reserve reserve;
    kv_fit fit;
    kv_chunk_layout layout;
    kv_token_policy policy;
} bench_case;

static const bench_case cases[] = {
    {"contiguous max first-fit", KV_CONTIGUOUS, KV_RESERVE_MAX, KV_FIT_FIRST, 0, 0},
    {"contiguous oracle first-fit", KV_CONTIGUOUS, KV_RESERVE_ORACLE, KV_FIT_FIRST, 0, 0},
    {"contiguous oracle best-fit", KV_CONTIGUOUS, KV_RESERVE_ORACLE, KV_FIT_BEST, 0, 0},
    {"contiguous grow buddy", KV_CONTIGUOUS, KV_RESERVE_GROW, KV_FIT_BUDDY, 0, 0},
    {"chunk-pool per-layer 2MiB", KV_CHUNK_POOL, 0, 0, KV_CHUNK_PER_LAYER, 0},
    {"chunk-pool fused 2MiB", KV_CHUNK_POOL, 0, 0, KV_CHUNK_FUSED, 0},
    {"paged 16", KV_PAGED, 0, 0, 0, 0},
    {"compressed fp8 16", KV_COMPRESSED, 0, 0, 0, KV_TOKENS_ALL},
    {"compressed fp8 window 16", KV_COMPRESSED, 0, 0, 0, KV_TOKENS_WINDOW},
};

/* ------------------------------------------------------------------------------------------ */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: kvsim bench alloc [--live N] [--rounds N] [--seed N]\n"
               "  Nanoseconds per append, fork and free for every strategy, with up to N\n"
               "  (default 2048) live sequences of a Llama-3-8B-shaped KV in a 54 GiB pool.\n");
}

static int run_case(const bench_case *bc, uint32_t live, uint32_t rounds, const uint32_t *prompt,
                    const uint32_t *final)
{
    kv_shape shape = kv_shape_dense(32, 8, 128);
    kv_alloc_config c;
    kv_alloc_config_default(&c, bc->strategy, &shape, 54ull << 30);
    c.max_seqs = live + MAX_FORKS;
    c.contiguous.reserve = bc->reserve;
    c.contiguous.fit = bc->fit;
    c.chunk.layout = bc->layout;
    c.compressed.policy = bc->policy;
    c.paged.prefix_caching = bc->policy == KV_TOKENS_ALL;
    c.watermark = 0.25; /* admission stops with a quarter free: room for the append rounds */
    kv_alloc *a = NULL;
    kv_err err = {{0}};
    if (kv_alloc_create(&c, &a, &err) != KV_OK) {
        fprintf(stderr, "kvsim bench: %s: %s\n", bc->label, err.msg);
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

    printf("%-28s %6u %9.1f %5.0f%% %9.1f %5.0f%% %9.1f %8.1f%% %9.2f\n", bc->label, n,
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

int kv_bench_main(int argc, char **argv)
{
    uint32_t live = 2048, rounds = 32;
    unsigned long seed = 1;
    if (argc < 2 || strcmp(argv[1], "alloc") != 0) {
        usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    for (int i = 2; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "kvsim bench: %s needs a value\n", argv[i]);
            return 2;
        }
        unsigned long v = strtoul(argv[i + 1], &end, 10);
        if (*argv[i + 1] == '\0' || *end != '\0' || v == 0 || v > 1000000) {
            fprintf(stderr, "kvsim bench: %s: expected an integer in 1..1000000, got \"%s\"\n",
                    argv[i], argv[i + 1]);
            return 2;
        }
        if (strcmp(argv[i], "--live") == 0)
            live = (uint32_t)v;
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = (uint32_t)v;
        else if (strcmp(argv[i], "--seed") == 0)
            seed = v;
        else {
            fprintf(stderr, "kvsim bench: unknown option %s\n", argv[i]);
            return 2;
        }
        i++;
    }

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

    printf("kvsim bench alloc: Llama-3-8B KV (128 KiB/token), 54 GiB pool, up to %u live "
           "sequences, %u append rounds, seed %lu\n",
           live, rounds, seed);
    printf("%-28s %6s %9s %6s %9s %6s %9s %9s %9s\n", "strategy", "live", "append_ns", "ok",
           "fork_ns", "ok", "free_ns", "tokens", "meta_MiB");
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && rc == 0; i++)
        rc = run_case(&cases[i], live, rounds, prompt, final);
    free(prompt);
    free(final);
    return rc;
}
