/* test_groups.c — layer groups over one block pool: per-group layouts and tables, operations
 * atomic across groups, validation, per-group breakdowns and effects, and the one-group fast
 * path against the general path. The checker runs after every operation. */
#include "alloc_internal.h" /* kv_paged.one_fast: the agreement test forces the general path */
#include "test_util.h"

#define BT   4u  /* tokens per block */
#define SLOT 32u /* one token of one layer (one group of t_shape's 2 layers): K + V, 8 x 16 bits */

#define FULL              {.policy = KV_TOKENS_ALL}
#define WINDOW(sink, win) {.policy = KV_TOKENS_WINDOW, .sink_tokens = sink, .window_tokens = win}
#define BUDGET(n)         {.policy = KV_TOKENS_BUDGET, .budget_tokens = n}

/* ------------------------------------------------------------------------------------------ */

/* Paged, 2 groups of one layer each (t_shape), n_blocks pages of BT tokens, no prefix cache. */
static kv_alloc_config two_groups(kv_layer_group g0, kv_layer_group g1, uint32_t n_blocks)
{
    kv_alloc_config c = t_config(KV_PAGED, 0);
    c.paged.block_tokens = BT;
    c.paged.prefix_caching = false;
    c.pool_bytes = (uint64_t)n_blocks * BT * SLOT;
    c.n_groups = 2;
    c.groups[0] = g0;
    c.groups[1] = g1;
    c.groups[0].n_layers = c.groups[1].n_layers = 1;
    return c;
}

static uint32_t free_blocks(const kv_alloc *a)
{
    return (uint32_t)(t_breakdown(a, NULL).free_bytes / (BT * SLOT));
}

/* Present (not dropped) entries of seq's group-g table, and its length in *n_blocks. */
static uint32_t present(const kv_alloc *a, kv_seq_id s, uint32_t g, uint32_t *n_blocks)
{
    kv_placement p;
    assert_int_equal(kv_alloc_placement_group(a, s, g, &p), KV_OK);
    uint32_t n = 0;
    for (uint32_t i = 0; i < p.n_blocks; i++)
        n += p.block_table[i] != KV_BLOCK_NONE;
    if (n_blocks)
        *n_blocks = p.n_blocks;
    return n;
}

static kv_status create_err(const kv_alloc_config *c, char *msg, size_t cap)
{
    kv_alloc *a = NULL;
    kv_err e = {{0}};
    kv_status st = kv_alloc_create(c, &a, &e);
    snprintf(msg, cap, "%s", e.msg);
    kv_alloc_destroy(&a);
    return st;
}

/* ------------------------------------------------------------------------------------------ */

static void test_window_group_admits_only_the_window_while_the_full_group_takes_all(void **state)
{
    (void)state;
    kv_alloc_config c = two_groups((kv_layer_group)FULL, (kv_layer_group)WINDOW(4, 8), 64);
    kv_alloc *a = t_create(&c);
    assert_int_equal(kv_alloc_n_groups(a), 2);
    assert_int_equal(kv_alloc_token_bytes(a), 2 * SLOT); /* a token over every layer */
    kv_seq_id s = t_admit(a, 40, 48);
    T_CHECK(a);
    uint32_t n0, n1;
    assert_int_equal(present(a, s, 0, &n0), 10); /* tokens 0..39: 10 blocks */
    assert_int_equal(n0, 10);
    /* the sink block (tokens 0..3) and the window's blocks 8, 9 (tokens 32..39) */
    assert_int_equal(present(a, s, 1, &n1), 3);
    assert_int_equal(n1, 10);
    kv_placement p;
    assert_int_equal(kv_alloc_placement_group(a, s, 1, &p), KV_OK);
    assert_int_equal(p.block_bytes, BT * SLOT);
    assert_int_equal(p.token_bytes, SLOT);
    for (uint32_t i = 1; i < 8; i++)
        assert_int_equal(p.block_table[i], KV_BLOCK_NONE);
    assert_int_equal(free_blocks(a), 64 - 13);
    /* group 0 is what kv_alloc_placement says */
    kv_placement p0;
    assert_int_equal(kv_alloc_placement(a, s, &p0), KV_OK);
    assert_int_equal(kv_alloc_placement_group(a, s, 0, &p), KV_OK);
    assert_ptr_equal(p0.block_table, p.block_table);
    assert_int_equal(kv_alloc_placement_group(a, s, 2, &p), KV_INVALID);
    kv_alloc_destroy(&a);
}

static void test_admission_effects_name_each_group(void **state)
{
    (void)state;
    kv_alloc_config c = two_groups((kv_layer_group)FULL, (kv_layer_group)WINDOW(4, 8), 64);
    kv_alloc *a = t_create(&c);
    t_admit(a, 16, 16);
    uint32_t n_fx, per[2] = {0, 0};
    const kv_effect *fx = kv_alloc_effects(a, &n_fx);
    for (uint32_t i = 0; i < n_fx; i++) {
        assert_int_equal(fx[i].kind, KV_FX_TABLE);
        assert_true(fx[i].grouped);
        assert_true(fx[i].group < 2);
        per[fx[i].group]++;
        if (i > 0)
            assert_true(fx[i].group >= fx[i - 1].group); /* group after group */
    }
    assert_int_equal(per[0], 4);
    assert_int_equal(per[1], 4); /* 2 kept, 2 written as dropped (KV_BLOCK_NONE) */
    char buf[128];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    kv_effect_fprint(f, &fx[n_fx - 1]);
    fclose(f);
    T_ASSERT_HAS_ALL(buf, "table g1 i3 b");
    kv_alloc_destroy(&a);

    /* one group prints as before groups existed */
    kv_alloc_config one = t_config(KV_PAGED, 64);
    one.paged.block_tokens = BT;
    a = t_create(&one);
    t_admit(a, 4, 4);
    fx = kv_alloc_effects(a, &n_fx);
    assert_int_equal(n_fx, 1);
    assert_false(fx[0].grouped);
    f = fmemopen(buf, sizeof buf, "w");
    kv_effect_fprint(f, &fx[0]);
    fclose(f);
    assert_string_equal(buf, "table i0 b0");
    kv_alloc_destroy(&a);
}

static void test_append_that_cannot_fit_one_group_changes_no_group(void **state)
{
    (void)state;
    /* full + window of 16 (keeps everything here): 8 tokens = 2 blocks per group, 1 block free */
    kv_alloc_config c = two_groups((kv_layer_group)FULL, (kv_layer_group)WINDOW(0, 16), 5);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 8, 8); /* appends may pass the expected final length */
    assert_int_equal(free_blocks(a), 1);
    kv_placement p0, p1;
    assert_int_equal(kv_alloc_placement_group(a, s, 0, &p0), KV_OK);
    assert_int_equal(kv_alloc_placement_group(a, s, 1, &p1), KV_OK);
    uint32_t t0[2] = {p0.block_table[0], p0.block_table[1]};
    uint32_t t1[2] = {p1.block_table[0], p1.block_table[1]};
    kv_alloc_stats before = *kv_alloc_stats_of(a);
    /* token 9 needs a block in each group: 2 > 1 free. The first group alone would fit. */
    assert_int_equal(kv_alloc_append(a, s, 1), KV_NO_SPACE);
    T_CHECK(a);
    uint32_t n_fx;
    kv_alloc_effects(a, &n_fx);
    assert_int_equal(n_fx, 0);
    assert_int_equal(kv_alloc_seq_tokens(a, s), 8);
    assert_int_equal(free_blocks(a), 1);
    uint32_t n;
    assert_int_equal(present(a, s, 0, &n), 2);
    assert_int_equal(n, 2);
    assert_int_equal(present(a, s, 1, &n), 2);
    assert_int_equal(n, 2);
    assert_int_equal(kv_alloc_placement_group(a, s, 0, &p0), KV_OK);
    assert_int_equal(kv_alloc_placement_group(a, s, 1, &p1), KV_OK);
    assert_int_equal(p0.block_table[0], t0[0]);
    assert_int_equal(p0.block_table[1], t0[1]);
    assert_int_equal(p1.block_table[0], t1[0]);
    assert_int_equal(p1.block_table[1], t1[1]);
    assert_memory_equal(&before, kv_alloc_stats_of(a), sizeof before);
    /* a fork that must copy the window group's 2 blocks fails the same way, whole */
    kv_seq_id ch;
    assert_int_equal(kv_alloc_fork(a, s, 20, &ch), KV_NO_SPACE);
    assert_int_equal(ch, KV_SEQ_NONE);
    T_CHECK(a);
    assert_int_equal(free_blocks(a), 1);
    kv_alloc_destroy(&a);
}

static void test_a_window_drop_in_one_group_makes_room_for_another(void **state)
{
    (void)state;
    /* full + window of 4 tokens: 8 tokens hold 2 + 1 blocks; one free */
    kv_alloc_config c = two_groups((kv_layer_group)FULL, (kv_layer_group)WINDOW(0, 4), 4);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 8, 8); /* appends may pass the expected final length */
    assert_int_equal(present(a, s, 1, NULL), 1);
    assert_int_equal(free_blocks(a), 1);
    /* to 12 tokens: the full group takes block 2, the window group drops block 1 and takes 2 */
    assert_int_equal(kv_alloc_append(a, s, 4), KV_OK);
    T_CHECK(a);
    assert_int_equal(free_blocks(a), 0);
    assert_int_equal(present(a, s, 0, NULL), 3);
    assert_int_equal(present(a, s, 1, NULL), 1);
    uint32_t n_fx;
    const kv_effect *fx = kv_alloc_effects(a, &n_fx);
    assert_true(n_fx >= 1);
    assert_int_equal(fx[0].kind, KV_FX_DROP); /* every group's drops come first */
    assert_int_equal(fx[0].cause, KV_CAUSE_WINDOW);
    assert_int_equal(fx[0].group, 1);
    assert_int_equal(kv_alloc_stats_of(a)->n_window_drops, 1);
    kv_alloc_destroy(&a);
}

static void test_breakdown_per_group_sums_to_the_pool(void **state)
{
    (void)state;
    kv_alloc_config c = two_groups((kv_layer_group)FULL, (kv_layer_group)WINDOW(4, 8), 64);
    kv_alloc *a = t_create(&c);
    t_admit(a, 38, 48);
    T_CHECK(a);
    kv_mem_breakdown b = t_breakdown(a, NULL), g0, g1;
    kv_alloc_breakdown_group(a, 0, &g0);
    kv_alloc_breakdown_group(a, 1, &g1);
    /* full group: 10 blocks for 38 tokens; the last block will fill to 40 */
    assert_int_equal(g0.token_bytes, 38 * SLOT);
    assert_int_equal(g0.reserved_bytes, 2 * SLOT);
    assert_int_equal(g0.internal_frag_bytes, 0);
    /* window group: blocks 0 (sinks 0..3), 7 (28..31, of which 28, 29 left the window), 8, 9
     * (36, 37 and 2 slots to come) */
    assert_int_equal(g1.token_bytes, 12 * SLOT);
    assert_int_equal(g1.reserved_bytes, 2 * SLOT);
    assert_int_equal(g1.internal_frag_bytes, 2 * SLOT);
    assert_int_equal(g0.token_bytes + g1.token_bytes, b.token_bytes);
    assert_int_equal(g0.reserved_bytes + g1.reserved_bytes, b.reserved_bytes);
    assert_int_equal(g0.internal_frag_bytes + g1.internal_frag_bytes, b.internal_frag_bytes);
    assert_int_equal(g0.free_bytes, b.free_bytes); /* the pool's, shared */
    assert_int_equal(b.free_bytes, (64 - 14) * BT * SLOT);
    assert_int_equal(g0.uncompressed_token_bytes, 38 * SLOT);
    assert_int_equal(b.uncompressed_token_bytes, 38 * 2 * SLOT);
    /* one group: the group's breakdown is the whole */
    kv_alloc_config one = t_config(KV_PAGED, 64);
    kv_alloc *o = t_create(&one);
    t_admit(o, 10, 30);
    kv_mem_breakdown w = t_breakdown(o, NULL), x;
    kv_alloc_breakdown_group(o, 0, &x);
    assert_memory_equal(&w, &x, sizeof w);
    kv_alloc_destroy(&o);
    kv_alloc_destroy(&a);
}

static void test_swap_moves_every_groups_blocks_and_back(void **state)
{
    (void)state;
    kv_alloc_config c = two_groups((kv_layer_group)FULL, (kv_layer_group)BUDGET(8), 64);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 20, 30); /* 5 blocks + 2 blocks (the budget) */
    uint32_t free0 = free_blocks(a);
    kv_swap_stats sw;
    assert_int_equal(kv_alloc_swap_out(a, s, &sw), KV_OK);
    T_CHECK(a);
    assert_int_equal(sw.bytes, 7 * BT * SLOT);
    assert_int_equal(sw.n_copies, 7 * 2); /* one layer's K and V per block */
    assert_int_equal(free_blocks(a), 64);
    uint32_t n_fx, per[2] = {0, 0};
    const kv_effect *fx = kv_alloc_effects(a, &n_fx);
    for (uint32_t i = 0; i < n_fx; i++)
        if (fx[i].kind == KV_FX_TRANSFER)
            per[fx[i].group]++;
    assert_int_equal(per[0], 5);
    assert_int_equal(per[1], 2);
    assert_int_equal(kv_alloc_swap_in(a, s, &sw), KV_OK);
    T_CHECK(a);
    assert_int_equal(free_blocks(a), free0);
    assert_int_equal(present(a, s, 0, NULL), 5);
    assert_int_equal(present(a, s, 1, NULL), 2);
    assert_int_equal(kv_alloc_free(a, s), KV_OK);
    T_CHECK(a);
    assert_int_equal(free_blocks(a), 64);
    kv_alloc_destroy(&a);
}

static void test_too_large_counts_every_groups_peak(void **state)
{
    (void)state;
    kv_alloc_config c = two_groups((kv_layer_group)FULL, (kv_layer_group)FULL, 20);
    kv_alloc *a = t_create(&c);
    kv_admit_req fits = {.prompt_tokens = 4, .final_tokens = 40};  /* 10 + 10 blocks */
    kv_admit_req over = {.prompt_tokens = 4, .final_tokens = 41};  /* 11 + 11 */
    assert_false(kv_alloc_too_large(a, &fits));
    assert_true(kv_alloc_too_large(a, &over));
    kv_seq_id s;
    assert_int_equal(kv_alloc_admit(a, &over, &s, NULL), KV_TOO_LARGE);
    kv_alloc_destroy(&a);
}

static void test_prefix_hits_count_only_where_every_group_has_them(void **state)
{
    (void)state;
    kv_alloc_config c = two_groups((kv_layer_group)FULL, (kv_layer_group)FULL, 64);
    c.paged.prefix_caching = true;
    kv_alloc *a = t_create(&c);
    uint64_t content[4] = {11, 12, 13, 14};
    kv_admit_req r = {.prompt_tokens = 16, .final_tokens = 20, .block_content = content,
                      .n_block_content = 4};
    kv_seq_id s1, s2;
    uint32_t cached = 99;
    assert_int_equal(kv_alloc_admit(a, &r, &s1, &cached), KV_OK);
    assert_int_equal(cached, 0);
    assert_int_equal(kv_alloc_admit(a, &r, &s2, &cached), KV_OK);
    assert_int_equal(cached, 16); /* every block of both groups shared */
    T_CHECK(a);
    kv_placement p1, p2;
    for (uint32_t g = 0; g < 2; g++) {
        assert_int_equal(kv_alloc_placement_group(a, s1, g, &p1), KV_OK);
        assert_int_equal(kv_alloc_placement_group(a, s2, g, &p2), KV_OK);
        assert_memory_equal(p1.block_table, p2.block_table, 4 * sizeof *p1.block_table);
    }
    assert_int_equal(free_blocks(a), 64 - 8);
    kv_alloc_destroy(&a);
}

static void test_growth_of_several_groups_allows_no_jump(void **state)
{
    (void)state;
    kv_alloc_config c = two_groups((kv_layer_group)FULL, (kv_layer_group)FULL, 64);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 5, 30);
    kv_growth g;
    assert_int_equal(kv_alloc_growth(a, s, &g), KV_OK);
    assert_int_equal(g.tokens, 5);
    assert_int_equal(g.capacity, 5);
    assert_int_equal(g.unit_tokens, 0);
    assert_int_equal(g.final_tokens, 30);
    kv_alloc_destroy(&a);
}

static void test_validation_names_the_field(void **state)
{
    (void)state;
    char msg[sizeof(kv_err)];
    kv_alloc_config c = two_groups((kv_layer_group)FULL, (kv_layer_group)WINDOW(4, 8), 64);
    kv_alloc_config bad = c;
    bad.groups[1].n_layers = 2; /* 3 layers in a 2-layer model, and unequal */
    assert_int_equal(create_err(&bad, msg, sizeof msg), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(msg, "groups[1].n_layers", "same number of layers", "page size");
    bad = c;
    bad.n_groups = 1; /* 1 layer of 2 */
    assert_int_equal(create_err(&bad, msg, sizeof msg), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(msg, "groups", "shape.n_layers", "1", "2");
    bad = c;
    bad.paged.prefix_caching = true;
    assert_int_equal(create_err(&bad, msg, sizeof msg), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(msg, "prefix_caching", "groups[1]", "window", "turn it off");
    bad = c;
    bad.groups[1].window_tokens = 0;
    assert_int_equal(create_err(&bad, msg, sizeof msg), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(msg, "groups[1].window_tokens");
    bad = c;
    bad.n_groups = KV_MAX_GROUPS + 1;
    assert_int_equal(create_err(&bad, msg, sizeof msg), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(msg, "n_groups", "at most 8");
    kv_strategy others[] = {KV_CONTIGUOUS, KV_CHUNK_POOL};
    for (int i = 0; i < 2; i++) {
        bad = c;
        bad.strategy = others[i];
        assert_int_equal(create_err(&bad, msg, sizeof msg), KV_ERR_INPUT);
        T_ASSERT_HAS_ALL(msg, "n_groups", "blocks pool", kv_strategy_name(others[i]));
        /* one group of every layer, full, means what no groups means */
        bad.n_groups = 1;
        bad.groups[0].n_layers = 2;
        assert_int_equal(create_err(&bad, msg, sizeof msg), KV_OK);
        bad.groups[0] = (kv_layer_group)WINDOW(4, 8);
        bad.groups[0].n_layers = 2;
        assert_int_equal(create_err(&bad, msg, sizeof msg), KV_ERR_INPUT);
        T_ASSERT_HAS_ALL(msg, "groups[0].policy", "window", "blocks pool");
    }
    bad = c;
    bad.strategy = KV_COMPRESSED;
    bad.compressed.policy = KV_TOKENS_BUDGET;
    assert_int_equal(create_err(&bad, msg, sizeof msg), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(msg, "token_policy", "groups[g].policy");
    bad.compressed.policy = KV_TOKENS_ALL;
    assert_int_equal(create_err(&bad, msg, sizeof msg), KV_OK);
}

/* The one-group append (append_one) and the general path, on the same random operations:
 * equal statuses, effects, states and breakdowns. */
static void same_effects(const kv_alloc *x, const kv_alloc *y, uint64_t step)
{
    uint32_t nx, ny;
    const kv_effect *fx = kv_alloc_effects(x, &nx), *fy = kv_alloc_effects(y, &ny);
    if (nx != ny)
        fail_msg("step %llu: %u effects against %u", (unsigned long long)step, nx, ny);
    for (uint32_t i = 0; i < nx; i++) {
        const kv_effect *e = &fx[i], *f = &fy[i];
        if (e->kind != f->kind || e->cause != f->cause || e->at != f->at ||
            e->dst_tier != f->dst_tier || e->group != f->group || e->grouped != f->grouped ||
            e->seq != f->seq || e->src_seq != f->src_seq || e->src != f->src || e->dst != f->dst ||
            e->index != f->index || e->n_copies != f->n_copies || e->bytes != f->bytes)
            fail_msg("step %llu: effect %u differs", (unsigned long long)step, i);
    }
}

static void agree(kv_alloc_config c, uint64_t seed)
{
    kv_alloc *x = t_create(&c), *y = t_create(&c);
    y->u.paged.one_fast = false;
    t_rng r = {seed};
    kv_seq_id ids[32];
    uint32_t n = 0;
    for (uint64_t step = 0; step < 20000; step++) {
        uint32_t op = t_range(&r, 0, 9);
        kv_status sx, sy;
        if (op < 3 || n == 0) {
            uint32_t prompt = t_range(&r, 1, 40);
            kv_admit_req q = {.prompt_tokens = prompt, .final_tokens = prompt + t_range(&r, 0, 60)};
            kv_seq_id a_id, b_id;
            sx = kv_alloc_admit(x, &q, &a_id, NULL);
            sy = kv_alloc_admit(y, &q, &b_id, NULL);
            assert_int_equal(sx, sy);
            if (sx == KV_OK) {
                assert_int_equal(a_id, b_id);
                if (n < 32)
                    ids[n++] = a_id;
                else
                    assert_int_equal(kv_alloc_free(x, a_id), kv_alloc_free(y, b_id));
            }
        } else {
            uint32_t k = t_range(&r, 0, n - 1);
            if (op < 8) {
                uint32_t m = t_range(&r, 1, 6);
                if (kv_alloc_seq_tokens(x, ids[k]) + m > c.max_seq_tokens)
                    continue;
                sx = kv_alloc_append(x, ids[k], m);
                sy = kv_alloc_append(y, ids[k], m);
                assert_int_equal(sx, sy);
            } else if (op == 8 && n < 32) {
                kv_seq_id cx, cy;
                uint32_t fin = kv_alloc_seq_tokens(x, ids[k]) + 10;
                sx = kv_alloc_fork(x, ids[k], fin, &cx);
                sy = kv_alloc_fork(y, ids[k], fin, &cy);
                assert_int_equal(sx, sy);
                if (sx == KV_OK)
                    ids[n++] = cx;
            } else {
                assert_int_equal(kv_alloc_free(x, ids[k]), KV_OK);
                assert_int_equal(kv_alloc_free(y, ids[k]), KV_OK);
                ids[k] = ids[--n];
            }
        }
        same_effects(x, y, step);
        T_CHECK(x);
        T_CHECK(y);
        kv_mem_breakdown bx = t_breakdown(x, NULL), by = t_breakdown(y, NULL);
        assert_memory_equal(&bx, &by, sizeof bx);
    }
    kv_alloc_destroy(&x);
    kv_alloc_destroy(&y);
}

static void test_one_group_append_agrees_with_the_general_path(void **state)
{
    (void)state;
    kv_alloc_config c = t_config(KV_PAGED, 40 * BT);
    c.paged.block_tokens = BT;
    c.max_seq_tokens = 128;
    agree(c, 1); /* full, forks share: copy-on-write */
    c = t_config(KV_COMPRESSED, 40 * BT);
    c.paged.block_tokens = BT;
    c.paged.prefix_caching = false;
    c.max_seq_tokens = 128;
    c.compressed.policy = KV_TOKENS_WINDOW;
    c.compressed.sink_tokens = 3;
    c.compressed.window_tokens = 10;
    agree(c, 2); /* window drops */
    c.compressed.policy = KV_TOKENS_BUDGET;
    c.compressed.budget_tokens = 14;
    agree(c, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_group_admits_only_the_window_while_the_full_group_takes_all),
        cmocka_unit_test(test_admission_effects_name_each_group),
        cmocka_unit_test(test_append_that_cannot_fit_one_group_changes_no_group),
        cmocka_unit_test(test_a_window_drop_in_one_group_makes_room_for_another),
        cmocka_unit_test(test_breakdown_per_group_sums_to_the_pool),
        cmocka_unit_test(test_swap_moves_every_groups_blocks_and_back),
        cmocka_unit_test(test_too_large_counts_every_groups_peak),
        cmocka_unit_test(test_prefix_hits_count_only_where_every_group_has_them),
        cmocka_unit_test(test_growth_of_several_groups_allows_no_jump),
        cmocka_unit_test(test_validation_names_the_field),
        cmocka_unit_test(test_one_group_append_agrees_with_the_general_path),
    };
    return cmocka_run_group_tests_name("groups", tests, NULL, NULL);
}
