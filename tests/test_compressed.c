/* test_compressed.c — quantized bytes per token, the window and budget token policies, and
 * config validation. */
#include "test_util.h"

#define BT 4u

static kv_alloc_config comp_cfg(uint32_t n_blocks, kv_token_policy policy)
{
    kv_alloc_config c = t_config(KV_COMPRESSED, (uint64_t)n_blocks * BT);
    c.paged.block_tokens = BT;
    c.compressed.elem_bits = 16; /* native size: keeps the token arithmetic readable */
    c.compressed.policy = policy;
    c.compressed.sink_tokens = 4;
    c.compressed.window_tokens = 8;
    c.compressed.budget_tokens = 10;
    c.paged.prefix_caching = policy == KV_TOKENS_ALL;
    return c;
}

static kv_placement place_of(const kv_alloc *a, kv_seq_id s)
{
    kv_placement p;
    assert_int_equal(kv_alloc_placement(a, s, &p), KV_OK);
    return p;
}

static uint32_t free_blocks(const kv_alloc *a)
{
    return (uint32_t)(t_breakdown(a, NULL).free_bytes / (BT * kv_alloc_token_bytes(a)));
}

/* ------------------------------------------------------------------------------------------ */

static void test_quantized_bytes_include_group_scales(void **state)
{
    (void)state;
    struct {
        uint32_t bits, group, scale;
        uint64_t token_bytes;
    } cases[] = {
        {8, 0, 0, 4 * 8},           /* fp8, per-tensor scale */
        {8, 8, 2, 4 * (8 + 2)},     /* int8, one fp16 scale per 8 elements */
        {4, 8, 2, 4 * (4 + 2)},     /* int4 */
        {4, 4, 4, 4 * (4 + 2 * 4)}, /* int4, scale + zero point per 4 elements */
        {2, 8, 2, 4 * (2 + 2)},     /* 2-bit */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kv_alloc_config c = comp_cfg(16, KV_TOKENS_ALL);
        c.compressed.elem_bits = cases[i].bits;
        c.compressed.scale_group_elems = cases[i].group;
        c.compressed.scale_bytes = cases[i].scale;
        kv_alloc *a = t_create(&c);
        assert_int_equal(kv_alloc_token_bytes(a), cases[i].token_bytes);
        /* the same pool bytes hold more blocks */
        assert_int_equal(free_blocks(a), c.pool_bytes / (BT * cases[i].token_bytes));
        kv_seq_id s = t_admit(a, 6, 8);
        kv_mem_breakdown b = t_breakdown(a, NULL);
        assert_int_equal(b.token_bytes, 6 * cases[i].token_bytes);
        assert_int_equal(b.uncompressed_token_bytes, 6 * T_TOKEN_BYTES);
        (void)s;
        T_CHECK(a);
        kv_alloc_destroy(&a);
    }
}

static void test_window_eviction_frees_whole_blocks_only(void **state)
{
    (void)state;
    kv_alloc_config c = comp_cfg(64, KV_TOKENS_WINDOW);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 8, 40);
    uint32_t t = 8;
    for (; t < 16; t++) {
        if (t == 13) { /* token 4 has left the window, but block 1 still holds 5..7 */
            assert_int_equal(kv_alloc_stats_of(a)->n_window_drops, 0);
        }
        assert_int_equal(kv_alloc_append(a, s, 1), KV_OK);
        T_CHECK(a);
    }
    /* t = 16: the window is [8, 16): block 1 (tokens 4..7) is wholly outside */
    assert_int_equal(kv_alloc_stats_of(a)->n_window_drops, 1);
    kv_placement p = place_of(a, s);
    assert_int_equal(p.block_table[1], KV_BLOCK_NONE);
    assert_int_not_equal(p.block_table[0], KV_BLOCK_NONE); /* sinks stay */
    for (; t < 30; t++) {
        assert_int_equal(kv_alloc_append(a, s, 1), KV_OK);
        T_CHECK(a);
    }
    /* t = 30: window [22, 30); blocks 1..4 dropped, 0 and 5..7 kept */
    p = place_of(a, s);
    assert_int_equal(p.n_blocks, 8);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(p.block_table[i] == KV_BLOCK_NONE, i >= 1 && i <= 4);
    assert_int_equal(free_blocks(a), 60);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.token_bytes, 12 * T_TOKEN_BYTES);        /* 4 sinks + 8 recent */
    assert_int_equal(b.reserved_bytes, 2 * T_TOKEN_BYTES);      /* slots 30, 31 */
    assert_int_equal(b.internal_frag_bytes, 2 * T_TOKEN_BYTES); /* tokens 20, 21 in block 5 */
    assert_int_equal(b.uncompressed_token_bytes, 30 * T_TOKEN_BYTES);
    kv_alloc_destroy(&a);
}

static void test_window_admission_allocates_only_kept_blocks(void **state)
{
    (void)state;
    kv_alloc_config c = comp_cfg(64, KV_TOKENS_WINDOW);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 30, 40);
    kv_placement p = place_of(a, s);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(p.block_table[i] == KV_BLOCK_NONE, i >= 1 && i <= 4);
    assert_int_equal(free_blocks(a), 60);
    T_CHECK(a);
    kv_swap_stats sw; /* swap moves only the kept blocks */
    assert_int_equal(kv_alloc_swap_out(a, s, &sw), KV_OK);
    assert_int_equal(sw.bytes, 4 * BT * T_TOKEN_BYTES);
    assert_int_equal(kv_alloc_swap_in(a, s, &sw), KV_OK);
    p = place_of(a, s);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(p.block_table[i] == KV_BLOCK_NONE, i >= 1 && i <= 4);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_window_runs_long_sequences_in_a_small_pool(void **state)
{
    (void)state;
    kv_alloc_config c = comp_cfg(4, KV_TOKENS_WINDOW); /* 1 sink + 2 window + 1 partial */
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 8, 250);
    for (uint32_t t = 8; t < 250; t++) {
        assert_int_equal(kv_alloc_append(a, s, 1), KV_OK);
        T_CHECK(a);
    }
    kv_alloc_destroy(&a);
    c = comp_cfg(4, KV_TOKENS_ALL); /* the same under no policy cannot fit */
    a = t_create(&c);
    kv_admit_req r = {.prompt_tokens = 8, .final_tokens = 250};
    kv_seq_id none;
    assert_int_equal(kv_alloc_admit(a, &r, &none, NULL), KV_TOO_LARGE);
    kv_alloc_destroy(&a);
}

static void test_budget_stops_growth_at_the_budget(void **state)
{
    (void)state;
    kv_alloc_config c = comp_cfg(16, KV_TOKENS_BUDGET);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 6, 40);
    assert_int_equal(kv_alloc_append(a, s, 4), KV_OK);
    assert_int_equal(place_of(a, s).n_blocks, 3);
    assert_int_equal(kv_alloc_append(a, s, 10), KV_OK);
    assert_int_equal(place_of(a, s).n_blocks, 3);
    assert_int_equal(kv_alloc_seq_tokens(a, s), 20);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.token_bytes, 10 * T_TOKEN_BYTES);
    assert_int_equal(b.reserved_bytes, 0);
    assert_int_equal(b.internal_frag_bytes, 2 * T_TOKEN_BYTES);
    assert_int_equal(b.uncompressed_token_bytes, 20 * T_TOKEN_BYTES);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_fork_under_a_token_policy_copies(void **state)
{
    (void)state;
    kv_alloc_config c = comp_cfg(64, KV_TOKENS_WINDOW);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 30, 40), ch;
    assert_int_equal(kv_alloc_fork(a, s, 40, &ch), KV_OK);
    assert_int_equal(free_blocks(a), 56);
    assert_int_equal(kv_alloc_stats_of(a)->copy_bytes, (4 + 4 + 4 + 2) * T_TOKEN_BYTES);
    T_CHECK(a);
    assert_int_equal(kv_alloc_append(a, ch, 1), KV_OK);
    assert_int_equal(kv_alloc_stats_of(a)->n_cow, 0);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_config_refuses_prefix_caching_with_a_token_policy(void **state)
{
    (void)state;
    kv_alloc_config c = comp_cfg(16, KV_TOKENS_WINDOW);
    c.paged.prefix_caching = true;
    kv_alloc *a = NULL;
    kv_err e = {{0}};
    assert_int_equal(kv_alloc_create(&c, &a, &e), KV_ERR_INPUT);
    assert_null(a);
    assert_non_null(strstr(e.msg, "prefix_caching"));
    c = comp_cfg(16, KV_TOKENS_ALL);
    c.compressed.elem_bits = 3;
    e.msg[0] = '\0';
    assert_int_equal(kv_alloc_create(&c, &a, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "elem_bits"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantized_bytes_include_group_scales),
        cmocka_unit_test(test_window_eviction_frees_whole_blocks_only),
        cmocka_unit_test(test_window_admission_allocates_only_kept_blocks),
        cmocka_unit_test(test_window_runs_long_sequences_in_a_small_pool),
        cmocka_unit_test(test_budget_stops_growth_at_the_budget),
        cmocka_unit_test(test_fork_under_a_token_policy_copies),
        cmocka_unit_test(test_config_refuses_prefix_caching_with_a_token_policy),
    };
    return cmocka_run_group_tests_name("compressed", tests, NULL, NULL);
}
