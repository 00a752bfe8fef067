/* test_stress.c — seeded random operations on every strategy, the checker after each one.
 *
 * Each variant runs KV_STRESS_OPS operations (1e5 in `make test`, 1e6 in `make check`): admit
 * (with shared and private prefix content ids), append of 1..8 tokens, fork, free, swap out and
 * swap in, on random live sequences, in a pool small enough to be full most of the time.
 * After every operation: kv_alloc_check() (which also asserts that the breakdown's categories
 * sum to the pool), the returned status is one the contract allows, a failed operation changed
 * nothing a shadow copy tracks, and tokens match the shadow. Every 16 operations the breakdown
 * is also taken against a random waiting request.
 * The effects variants (test_effects_*) run a tenth of the operations with a shadow image of
 * memory (test_image.h) driven only by each operation's effects: every resident sequence must
 * read back its own tokens after every operation.
 */
#include "test_image.h"
#include "test_util.h"

/* ------------------------------------------------------------------------------------------ */

enum { MAX_LIVE = 48, MAX_TOKENS = 256 };

typedef struct variant {
    const char *name;
    kv_alloc_config cfg;
} variant;

typedef struct shadow {
    kv_seq_id ids[MAX_LIVE];
    uint32_t tokens[MAX_LIVE];
    uint32_t n;
} shadow;

/* ------------------------------------------------------------------------------------------ */

static kv_alloc_config base(kv_strategy s, uint64_t pool_tokens)
{
    kv_alloc_config c = t_config(s, pool_tokens);
    c.max_seqs = MAX_LIVE;
    c.max_seq_tokens = MAX_TOKENS;
    c.host_pool_bytes = 600 * T_TOKEN_BYTES;
    c.watermark = 0.02;
    return c;
}

static kv_alloc_config contig(kv_reserve r, kv_fit f)
{
    kv_alloc_config c = base(KV_CONTIGUOUS, 2000);
    c.contiguous.reserve = r;
    c.contiguous.fit = f;
    return c;
}

static kv_alloc_config chunk(kv_chunk_layout l, uint64_t chunk_bytes, uint32_t n_chunks)
{
    kv_alloc_config c = base(KV_CHUNK_POOL, 0);
    c.chunk.layout = l;
    c.chunk.chunk_bytes = chunk_bytes;
    c.pool_bytes = chunk_bytes * n_chunks + 7; /* a tail too small for a chunk */
    return c;
}

static kv_alloc_config paged(uint32_t bt, bool prefix, uint32_t n_blocks)
{
    kv_alloc_config c = base(KV_PAGED, (uint64_t)bt * n_blocks);
    c.paged.block_tokens = bt;
    c.paged.prefix_caching = prefix;
    return c;
}

static kv_alloc_config compressed(kv_token_policy p, uint32_t bits, uint32_t group)
{
    kv_alloc_config c = base(KV_COMPRESSED, 4 * 120);
    c.paged.block_tokens = 4;
    c.paged.prefix_caching = p == KV_TOKENS_ALL;
    c.compressed.policy = p;
    c.compressed.elem_bits = bits;
    c.compressed.scale_group_elems = group;
    c.compressed.scale_bytes = group ? 2 : 0;
    c.compressed.sink_tokens = 6;
    c.compressed.window_tokens = 20;
    c.compressed.budget_tokens = 30;
    return c;
}

/* Layer groups over blocks of 4 tokens: layouts[g] for group g, one layer each (a model of
 * n_groups layers), n_blocks pages in the pool. */
static kv_alloc_config groups(kv_strategy s, uint32_t n_groups, const kv_layer_group *layouts,
                              uint32_t n_blocks, bool prefix)
{
    kv_alloc_config c = base(s, 0);
    c.shape = kv_shape_dense(n_groups, 1, 8); /* 32 bytes per layer and token */
    c.paged.block_tokens = 4;
    c.paged.prefix_caching = prefix;
    c.pool_bytes = (uint64_t)n_blocks * 4 * 32;
    c.n_groups = n_groups;
    for (uint32_t g = 0; g < n_groups; g++) {
        c.groups[g] = layouts[g];
        c.groups[g].n_layers = 1;
    }
    return c;
}

#define FULL              {.policy = KV_TOKENS_ALL}
#define WINDOW(sink, win) {.policy = KV_TOKENS_WINDOW, .sink_tokens = sink, .window_tokens = win}
#define BUDGET(n)         {.policy = KV_TOKENS_BUDGET, .budget_tokens = n}

/* Prompt content ids: one of 4 shared "system prompts" for a random number of leading blocks,
 * then ids no other request uses. */
static uint32_t make_content(t_rng *r, uint64_t *content, uint32_t n_blocks, uint64_t *unique)
{
    uint64_t group = t_range(r, 0, 3);
    uint32_t shared = t_range(r, 0, n_blocks);
    for (uint32_t i = 0; i < n_blocks; i++)
        content[i] = i < shared ? group * 1000 + i : (*unique)++;
    return n_blocks;
}

/* Apply the effects of the operation just made to the image. */
static void apply_last(image *img, const kv_alloc *a)
{
    uint32_t n;
    const kv_effect *fx = kv_alloc_effects(a, &n);
    img_apply(img, a, fx, n);
}

/* Fail unless got is KV_OK or one of the two outcomes the contract allows for op. */
static void expect(kv_status got, kv_status a, kv_status b, const char *op, uint64_t step)
{
    if (got != KV_OK && got != a && got != b)
        fail_msg("step %llu: %s returned %s", (unsigned long long)step, op, kv_status_str(got));
}

static void run_variant(const variant *v, uint64_t n_ops, uint64_t seed, bool with_image)
{
    kv_alloc *a = t_create(&v->cfg);
    image img_store, *img = with_image ? &img_store : NULL;
    if (img)
        img_init(img, a);
    t_rng r = {seed};
    shadow sh = {.n = 0};
    uint64_t content[MAX_TOKENS], unique = 1000000;
    uint32_t bt = v->cfg.paged.block_tokens;
    uint64_t n_ok[6] = {0};

    for (uint64_t step = 0; step < n_ops; step++) {
        uint32_t pick = sh.n ? t_range(&r, 0, sh.n - 1) : 0;
        kv_seq_id s = sh.n ? sh.ids[pick] : KV_SEQ_NONE;
        uint32_t op = t_range(&r, 0, 99);
        kv_status st;
        if (op < 25 || sh.n == 0) { /* admit */
            uint32_t prompt = t_range(&r, 1, 60);
            kv_admit_req req = {.prompt_tokens = prompt,
                                .final_tokens = prompt + t_range(&r, 0, 80)};
            if (v->cfg.paged.prefix_caching)
                req.n_block_content = make_content(&r, content, prompt / bt, &unique),
                req.block_content = content;
            bool can = kv_alloc_can_admit(a, &req);
            kv_seq_id id;
            uint32_t cached = 0;
            st = kv_alloc_admit(a, &req, &id, &cached);
            if (img && st == KV_OK) {
                img_tag(img, id, 0, prompt, req.block_content, req.n_block_content, bt);
                apply_last(img, a);
                img_write(img, a, id, cached, prompt);
            }
            expect(st, KV_NO_SPACE, KV_TOO_LARGE, "admit", step);
            if (can && st != KV_OK)
                fail_msg("step %llu: can_admit said yes, admit said %s", (unsigned long long)step,
                         kv_status_str(st));
            if (st == KV_OK) {
                assert_true(sh.n < MAX_LIVE);
                sh.ids[sh.n] = id;
                sh.tokens[sh.n++] = prompt;
                n_ok[0]++;
            }
        } else if (op < 65) { /* append */
            if (kv_alloc_seq_state(a, s) != KV_SEQ_RESIDENT)
                continue;
            uint32_t n = t_range(&r, 0, 3) == 0 ? t_range(&r, 2, 8) : 1;
            if (sh.tokens[pick] + n > MAX_TOKENS)
                continue;
            st = kv_alloc_append(a, s, n);
            expect(st, KV_NO_SPACE, KV_NO_SPACE, "append", step);
            if (img && st == KV_OK) {
                img_tag(img, s, sh.tokens[pick], sh.tokens[pick] + n, NULL, 0, 0);
                apply_last(img, a);
                img_write(img, a, s, sh.tokens[pick], sh.tokens[pick] + n);
            }
            if (st == KV_OK) {
                sh.tokens[pick] += n;
                n_ok[1]++;
            }
        } else if (op < 72) { /* fork */
            if (kv_alloc_seq_state(a, s) != KV_SEQ_RESIDENT)
                continue;
            uint32_t final = sh.tokens[pick] + t_range(&r, 0, 40);
            kv_seq_id ch;
            st = kv_alloc_fork(a, s, final > MAX_TOKENS ? MAX_TOKENS : final, &ch);
            expect(st, KV_NO_SPACE, KV_NO_SPACE, "fork", step);
            if (img && st == KV_OK) {
                memcpy(img_expect(img, ch), img_expect(img, s),
                       sh.tokens[pick] * sizeof *img->expect);
                apply_last(img, a);
            }
            if (st == KV_OK) {
                sh.ids[sh.n] = ch;
                sh.tokens[sh.n++] = sh.tokens[pick];
                n_ok[2]++;
            }
        } else if (op < 88) { /* free */
            assert_int_equal(kv_alloc_free(a, s), KV_OK);
            if (img)
                apply_last(img, a);
            sh.ids[pick] = sh.ids[--sh.n];
            sh.tokens[pick] = sh.tokens[sh.n];
            n_ok[3]++;
        } else if (op < 94) { /* swap out */
            if (kv_alloc_seq_state(a, s) != KV_SEQ_RESIDENT)
                continue;
            st = kv_alloc_swap_out(a, s, NULL);
            expect(st, KV_NO_SPACE, KV_NO_SPACE, "swap_out", step);
            if (img)
                apply_last(img, a);
            n_ok[4] += st == KV_OK;
        } else { /* swap in */
            if (kv_alloc_seq_state(a, s) != KV_SEQ_SWAPPED)
                continue;
            st = kv_alloc_swap_in(a, s, NULL);
            expect(st, KV_NO_SPACE, KV_NO_SPACE, "swap_in", step);
            if (img)
                apply_last(img, a);
            n_ok[5] += st == KV_OK;
        }
        kv_err e = {{0}};
        if (kv_alloc_check(a, &e) != KV_OK)
            fail_msg("%s, seed %llu, step %llu: %s", v->name, (unsigned long long)seed,
                     (unsigned long long)step, e.msg);
        for (uint32_t i = 0; i < sh.n; i++)
            if (kv_alloc_seq_tokens(a, sh.ids[i]) != sh.tokens[i])
                fail_msg("%s step %llu: seq %u has %u tokens, expected %u", v->name,
                         (unsigned long long)step, sh.ids[i], kv_alloc_seq_tokens(a, sh.ids[i]),
                         sh.tokens[i]);
        if (img)
            img_verify(img, a, sh.ids, sh.n, v->name, step);
        if (step % 16 == 0) {
            uint32_t p = t_range(&r, 1, 120);
            kv_admit_req w = {.prompt_tokens = p, .final_tokens = p + t_range(&r, 0, 100)};
            t_breakdown(a, &w);
        }
    }
    /* every kind of operation succeeded many times, or the variant tested little */
    for (int k = 0; k < 6; k++)
        if (n_ok[k] < n_ops / 1000)
            fail_msg("%s: operation kind %d succeeded only %llu times", v->name, k,
                     (unsigned long long)n_ok[k]);
    const kv_alloc_stats *st = kv_alloc_stats_of(a);
    if (getenv("KV_STRESS_VERBOSE"))
        printf("%-26s ok: admit %llu append %llu fork %llu free %llu out %llu in %llu | "
               "moves %llu cow %llu hits %llu/%llu evictions %llu drops %llu maps %llu\n",
               v->name, (unsigned long long)n_ok[0], (unsigned long long)n_ok[1],
               (unsigned long long)n_ok[2], (unsigned long long)n_ok[3],
               (unsigned long long)n_ok[4], (unsigned long long)n_ok[5],
               (unsigned long long)st->n_moves, (unsigned long long)st->n_cow,
               (unsigned long long)st->prefix_hit_blocks,
               (unsigned long long)st->prefix_query_blocks, (unsigned long long)st->n_evictions,
               (unsigned long long)st->n_window_drops, (unsigned long long)st->n_maps);
    /* the mechanisms each variant exists for were exercised */
    const kv_alloc_config *c = &v->cfg;
    if (c->strategy == KV_CONTIGUOUS && c->contiguous.reserve == KV_RESERVE_GROW)
        assert_true(st->n_moves > 0);
    if (c->strategy == KV_CHUNK_POOL)
        assert_true(st->n_maps > 0 && st->n_unmaps > 0);
    if ((c->strategy == KV_PAGED || c->strategy == KV_COMPRESSED) &&
        c->compressed.policy == KV_TOKENS_ALL)
        assert_true(st->n_cow > 0);
    if (c->paged.prefix_caching && c->strategy != KV_CONTIGUOUS && c->strategy != KV_CHUNK_POOL)
        assert_true(st->prefix_hit_blocks > 0 && st->n_evictions > 0);
    if (c->strategy == KV_COMPRESSED && c->compressed.policy == KV_TOKENS_WINDOW)
        assert_true(st->n_window_drops > 0);
    for (uint32_t g = 0; g < c->n_groups; g++)
        if (c->groups[g].policy == KV_TOKENS_WINDOW)
            assert_true(st->n_window_drops > 0);
    while (sh.n > 0) /* and everything comes back */
        assert_int_equal(kv_alloc_free(a, sh.ids[--sh.n]), KV_OK);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.token_bytes + b.reserved_bytes + b.internal_frag_bytes, 0);
    T_CHECK(a);
    if (img)
        img_fini(img);
    kv_alloc_destroy(&a);
}

/* ------------------------------------------------------------------------------------------ */

#define VARIANT_TEST(fn, label, cfg_expr)                                                          \
    static void fn(void **state)                                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        variant v = {label, cfg_expr};                                                             \
        run_variant(&v, t_stress_ops(), 0x5eed0000u + __LINE__, false);                            \
    }                                                                                              \
    static void fn##_effects(void **state)                                                         \
    {                                                                                              \
        (void)state;                                                                               \
        variant v = {label " (effects)", cfg_expr};                                                \
        run_variant(&v, t_stress_ops() / 10, 0xeffe0000u + __LINE__, true);                       \
    }

VARIANT_TEST(test_stress_contiguous_max_first_fit, "contiguous max first-fit",
             contig(KV_RESERVE_MAX, KV_FIT_FIRST))
VARIANT_TEST(test_stress_contiguous_pow2_best_fit, "contiguous pow2 best-fit",
             contig(KV_RESERVE_POW2, KV_FIT_BEST))
VARIANT_TEST(test_stress_contiguous_oracle_first_fit, "contiguous oracle first-fit",
             contig(KV_RESERVE_ORACLE, KV_FIT_FIRST))
VARIANT_TEST(test_stress_contiguous_grow_buddy, "contiguous grow buddy",
             contig(KV_RESERVE_GROW, KV_FIT_BUDDY))
VARIANT_TEST(test_stress_contiguous_grow_best_fit, "contiguous grow best-fit",
             contig(KV_RESERVE_GROW, KV_FIT_BEST))
VARIANT_TEST(test_stress_chunk_pool_per_layer, "chunk-pool per-layer",
             chunk(KV_CHUNK_PER_LAYER, 64, 400))
VARIANT_TEST(test_stress_chunk_pool_fused, "chunk-pool fused", chunk(KV_CHUNK_FUSED, 300, 120))
VARIANT_TEST(test_stress_paged_prefix_cache, "paged 4 prefix", paged(4, true, 150))
VARIANT_TEST(test_stress_paged_no_prefix_cache, "paged 16", paged(16, false, 40))
VARIANT_TEST(test_stress_compressed_int4_prefix_cache, "compressed int4 prefix",
             compressed(KV_TOKENS_ALL, 4, 8))
VARIANT_TEST(test_stress_compressed_window, "compressed fp8 window",
             compressed(KV_TOKENS_WINDOW, 8, 0))
VARIANT_TEST(test_stress_compressed_budget, "compressed fp8 budget",
             compressed(KV_TOKENS_BUDGET, 8, 0))
VARIANT_TEST(test_stress_groups_full_window, "paged groups full+window",
             groups(KV_PAGED, 2, (kv_layer_group[]){FULL, WINDOW(6, 20)}, 220, false))
VARIANT_TEST(test_stress_groups_full_budget, "paged groups full+budget",
             groups(KV_PAGED, 2, (kv_layer_group[]){FULL, BUDGET(30)}, 220, false))
VARIANT_TEST(test_stress_groups_two_windows_full, "compressed groups 3",
             groups(KV_COMPRESSED, 3, (kv_layer_group[]){WINDOW(0, 8), WINDOW(6, 20), FULL},
                    300, false))
VARIANT_TEST(test_stress_groups_full_full_prefix, "paged groups full+full prefix",
             groups(KV_PAGED, 2, (kv_layer_group[]){FULL, FULL}, 260, true))

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_contiguous_max_first_fit),
        cmocka_unit_test(test_stress_contiguous_pow2_best_fit),
        cmocka_unit_test(test_stress_contiguous_oracle_first_fit),
        cmocka_unit_test(test_stress_contiguous_grow_buddy),
        cmocka_unit_test(test_stress_contiguous_grow_best_fit),
        cmocka_unit_test(test_stress_chunk_pool_per_layer),
        cmocka_unit_test(test_stress_chunk_pool_fused),
        cmocka_unit_test(test_stress_paged_prefix_cache),
        cmocka_unit_test(test_stress_paged_no_prefix_cache),
        cmocka_unit_test(test_stress_compressed_int4_prefix_cache),
        cmocka_unit_test(test_stress_compressed_window),
        cmocka_unit_test(test_stress_compressed_budget),
        cmocka_unit_test(test_stress_groups_full_window),
        cmocka_unit_test(test_stress_groups_full_budget),
        cmocka_unit_test(test_stress_groups_two_windows_full),
        cmocka_unit_test(test_stress_groups_full_full_prefix),
        cmocka_unit_test(test_stress_contiguous_max_first_fit_effects),
        cmocka_unit_test(test_stress_contiguous_pow2_best_fit_effects),
        cmocka_unit_test(test_stress_contiguous_oracle_first_fit_effects),
        cmocka_unit_test(test_stress_contiguous_grow_buddy_effects),
        cmocka_unit_test(test_stress_contiguous_grow_best_fit_effects),
        cmocka_unit_test(test_stress_chunk_pool_per_layer_effects),
        cmocka_unit_test(test_stress_chunk_pool_fused_effects),
        cmocka_unit_test(test_stress_paged_prefix_cache_effects),
        cmocka_unit_test(test_stress_paged_no_prefix_cache_effects),
        cmocka_unit_test(test_stress_compressed_int4_prefix_cache_effects),
        cmocka_unit_test(test_stress_compressed_window_effects),
        cmocka_unit_test(test_stress_compressed_budget_effects),
        cmocka_unit_test(test_stress_groups_full_window_effects),
        cmocka_unit_test(test_stress_groups_full_budget_effects),
        cmocka_unit_test(test_stress_groups_two_windows_full_effects),
        cmocka_unit_test(test_stress_groups_full_full_prefix_effects),
    };
    return cmocka_run_group_tests_name("stress", tests, NULL, NULL);
}
