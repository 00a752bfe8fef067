/* test_util.h — helpers shared by the allocator tests: cmocka, a tiny model shape, a seeded
 * generator for stress tests, and assertions that run the invariant checker. */
#ifndef KV_TEST_UTIL_H
#define KV_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "fs.h"

/* 2 layers x 1 KV head x 8 dims at 16 bits: 16 bytes per layer tensor, 64 bytes per token,
 * 4 layer tensors. Small numbers keep hand-derived expectations readable. */
#define T_TENSOR_BYTES 16u
#define T_TOKEN_BYTES  64u
#define T_N_TENSORS    4u

static inline kv_shape t_shape(void)
{
    return kv_shape_dense(2, 1, 8);
}

/* A config for strategy s over pool_tokens token slots of T_TOKEN_BYTES. */
static inline kv_alloc_config t_config(kv_strategy s, uint64_t pool_tokens)
{
    kv_shape sh = t_shape();
    kv_alloc_config c;
    kv_alloc_config_default(&c, s, &sh, pool_tokens * T_TOKEN_BYTES);
    c.watermark = 0.0;
    c.max_seqs = 64;
    c.max_seq_tokens = 256;
    c.host_pool_bytes = 1ull << 30;
    return c;
}

static inline kv_alloc *t_create(const kv_alloc_config *c)
{
    kv_alloc *a = NULL;
    kv_err err = {{0}};
    kv_status st = kv_alloc_create(c, &a, &err);
    if (st != KV_OK)
        fail_msg("kv_alloc_create: %s: %s", kv_status_str(st), err.msg);
    return a;
}

/* Run the checker; fail the test with its message on any broken invariant. */
#define T_CHECK(a)                                                                                 \
    do {                                                                                           \
        kv_err e_ = {{0}};                                                                         \
        if (kv_alloc_check((a), &e_) != KV_OK)                                                     \
            fail_msg("%s:%d: check failed: %s", __FILE__, __LINE__, e_.msg);                       \
    } while (0)

static inline kv_seq_id t_admit(kv_alloc *a, uint32_t prompt, uint32_t final)
{
    kv_admit_req r = {.prompt_tokens = prompt, .final_tokens = final};
    kv_seq_id s = KV_SEQ_NONE;
    kv_status st = kv_alloc_admit(a, &r, &s, NULL);
    if (st != KV_OK)
        fail_msg("admit %u/%u: %s", prompt, final, kv_status_str(st));
    return s;
}

static inline kv_mem_breakdown t_breakdown(const kv_alloc *a, const kv_admit_req *waiting)
{
    kv_mem_breakdown b;
    kv_alloc_breakdown(a, waiting, &b);
    assert_int_equal(b.token_bytes + b.reserved_bytes + b.internal_frag_bytes +
                         b.external_frag_bytes + b.free_bytes,
                     b.pool_bytes);
    return b;
}

/* splitmix64: a seeded, portable generator for stress tests. */
typedef struct t_rng {
    uint64_t s;
} t_rng;

static inline uint64_t t_next(t_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline uint32_t t_range(t_rng *r, uint32_t lo, uint32_t hi)
{
    return lo + (uint32_t)(t_next(r) % ((uint64_t)hi - lo + 1));
}

/* Make a fresh directory $TMPDIR/kvsim-<name>-XXXXXX into dir. 0 or -1. */
static inline int t_mkdtemp(char *dir, size_t cap, const char *name)
{
    snprintf(dir, cap, "%s/kvsim-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
    return mkdtemp(dir) ? 0 : -1;
}

/* Remove a file tree (fs.h: nftw, no shell). 0 or -1. */
static inline int t_rm_rf(const char *path)
{
    kv_err e = {{0}};
    if (kv_fs_remove_tree(path, &e) != KV_OK) {
        print_message("%s\n", e.msg);
        return -1;
    }
    return 0;
}

/* Whether two files both open and hold the same bytes (fs.h). */
static inline bool t_same_file(const char *a, const char *b)
{
    return kv_fs_same_bytes(a, b);
}

/* Write text to a new file at path (a test's input). */
static inline void t_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        fail_msg("cannot write %s", path);
}

/* Fail unless msg holds every one of the needles (a NULL-terminated list). */
static inline void t_assert_has_all(const char *file, int line, const char *msg,
                                    const char *const *needles)
{
    for (; *needles != NULL; needles++)
        if (strstr(msg, *needles) == NULL)
            fail_msg("%s:%d: \"%s\" lacks \"%s\"", file, line, msg, *needles);
}
#define T_ASSERT_HAS_ALL(msg, ...)                                                                 \
    t_assert_has_all(__FILE__, __LINE__, (msg), (const char *const[]){__VA_ARGS__, NULL})

/* Stress operations per strategy: KV_STRESS_OPS, default 100000. */
static inline uint64_t t_stress_ops(void)
{
    const char *s = getenv("KV_STRESS_OPS");
    return s ? strtoull(s, NULL, 10) : 100000;
}

#endif
