/* test_chunk_pool.c — chunk-pool: per-layer and fused series, map/unmap counting, chunk reuse,
 * fork, swap and the breakdown. */
#include "test_util.h"

/* Chunks of 64 bytes: 4 tokens of one 16-byte layer tensor (per-layer, 4 series per sequence),
 * or 1 token of 64 bytes (fused). */
static kv_alloc_config chunk_cfg(uint32_t n_chunks, kv_chunk_layout layout, uint64_t chunk_bytes)
{
    kv_alloc_config c = t_config(KV_CHUNK_POOL, 0);
    c.pool_bytes = (uint64_t)n_chunks * chunk_bytes;
    c.chunk.chunk_bytes = chunk_bytes;
    c.chunk.layout = layout;
    return c;
}

static kv_placement place_of(const kv_alloc *a, kv_seq_id s)
{
    kv_placement p;
    assert_int_equal(kv_alloc_placement(a, s, &p), KV_OK);
    assert_int_equal(p.kind, KV_PLACE_CHUNKS);
    return p;
}

/* ------------------------------------------------------------------------------------------ */

static void test_per_layer_maps_a_chunk_in_every_series(void **state)
{
    (void)state;
    kv_alloc_config c = chunk_cfg(32, KV_CHUNK_PER_LAYER, 64);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 5, 12);
    kv_placement p = place_of(a, s);
    assert_int_equal(p.n_chunk_tensors, T_N_TENSORS);
    assert_int_equal(p.chunk_tokens, 4);
    assert_int_equal(p.n_chunks, 2);
    assert_int_equal(kv_alloc_stats_of(a)->n_maps, 8);
    assert_int_equal(kv_alloc_append(a, s, 3), KV_OK); /* 8 tokens: still 2 chunks */
    assert_int_equal(kv_alloc_stats_of(a)->n_maps, 8);
    assert_int_equal(kv_alloc_append(a, s, 1), KV_OK); /* 9 tokens: one more in each series */
    assert_int_equal(kv_alloc_stats_of(a)->n_maps, 12);
    p = place_of(a, s);
    assert_int_equal(p.n_chunks, 3);
    /* every series holds distinct chunks */
    for (uint32_t t = 0; t < p.n_chunk_tensors; t++)
        for (uint32_t i = 0; i < p.n_chunks; i++)
            for (uint32_t u = 0; u < p.n_chunk_tensors; u++)
                for (uint32_t j = 0; j < p.n_chunks; j++)
                    if (t != u || i != j)
                        assert_int_not_equal(p.chunk_ids[t * p.chunk_stride + i],
                                             p.chunk_ids[u * p.chunk_stride + j]);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_breakdown_counts_the_unused_tail_of_every_series(void **state)
{
    (void)state;
    kv_alloc_config c = chunk_cfg(32, KV_CHUNK_PER_LAYER, 64);
    kv_alloc *a = t_create(&c);
    t_admit(a, 5, 7); /* 2 chunks x 4 series = 8 tokens of room per series */
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.token_bytes, 5 * T_TOKEN_BYTES);
    assert_int_equal(b.reserved_bytes, 2 * T_TOKEN_BYTES);
    assert_int_equal(b.internal_frag_bytes, 1 * T_TOKEN_BYTES);
    assert_int_equal(b.free_bytes, 24 * 64);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_chunk_slack_beyond_whole_tokens_is_internal(void **state)
{
    (void)state;
    kv_alloc_config c = chunk_cfg(8, KV_CHUNK_FUSED, 100); /* 1 token of 64 B per chunk */
    kv_alloc *a = t_create(&c);
    t_admit(a, 2, 2);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.token_bytes, 2 * T_TOKEN_BYTES);
    assert_int_equal(b.internal_frag_bytes, 2 * (100 - 64));
    kv_alloc_destroy(&a);
}

static void test_fused_layout_has_one_series(void **state)
{
    (void)state;
    kv_alloc_config c = chunk_cfg(16, KV_CHUNK_FUSED, 256);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 5, 5);
    kv_placement p = place_of(a, s);
    assert_int_equal(p.n_chunk_tensors, 1);
    assert_int_equal(p.chunk_tokens, 4);
    assert_int_equal(p.n_chunks, 2);
    kv_swap_stats sw;
    assert_int_equal(kv_alloc_swap_out(a, s, &sw), KV_OK);
    assert_int_equal(sw.n_copies, 1);
    assert_int_equal(sw.bytes, 5 * T_TOKEN_BYTES);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_exactly_full_pool_then_append_needs_a_chunk(void **state)
{
    (void)state;
    kv_alloc_config c = chunk_cfg(16, KV_CHUNK_PER_LAYER, 64);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 8, 9);  /* 2 chunks per series, 8 chunks */
    kv_seq_id s2 = t_admit(a, 5, 8); /* 8 more: the pool is full */
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.free_bytes, 0);
    assert_int_equal(kv_alloc_append(a, s, 1), KV_NO_SPACE);
    assert_int_equal(kv_alloc_seq_tokens(a, s), 8);
    assert_int_equal(kv_alloc_append(a, s2, 3), KV_OK); /* fits in its mapped chunks */
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_prompt_larger_than_pool_is_too_large_and_zero_rejected(void **state)
{
    (void)state;
    kv_alloc_config c = chunk_cfg(16, KV_CHUNK_PER_LAYER, 64); /* 16 tokens at most */
    kv_alloc *a = t_create(&c);
    kv_seq_id s;
    kv_admit_req r = {.prompt_tokens = 17, .final_tokens = 17};
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_TOO_LARGE);
    r = (kv_admit_req){.prompt_tokens = 0, .final_tokens = 1};
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_INVALID);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_freed_chunks_are_unmapped_and_reused(void **state)
{
    (void)state;
    kv_alloc_config c = chunk_cfg(16, KV_CHUNK_PER_LAYER, 64);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 4, 4);
    kv_placement p = place_of(a, s);
    uint32_t first[T_N_TENSORS];
    for (uint32_t t = 0; t < T_N_TENSORS; t++)
        first[t] = p.chunk_ids[t * p.chunk_stride];
    assert_int_equal(kv_alloc_free(a, s), KV_OK);
    assert_int_equal(kv_alloc_stats_of(a)->n_unmaps, 4);
    s = t_admit(a, 4, 4);
    p = place_of(a, s);
    for (uint32_t t = 0; t < T_N_TENSORS; t++) /* the pool hands back the same chunks */
        assert_int_equal(p.chunk_ids[t * p.chunk_stride], first[t]);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_fork_maps_and_copies_nothing_shared(void **state)
{
    (void)state;
    kv_alloc_config c = chunk_cfg(32, KV_CHUNK_PER_LAYER, 64);
    kv_alloc *a = t_create(&c);
    kv_seq_id p = t_admit(a, 6, 10), ch, gc;
    assert_int_equal(kv_alloc_fork(a, p, 12, &ch), KV_OK);
    assert_int_equal(kv_alloc_fork(a, ch, 12, &gc), KV_OK); /* fork of a fork */
    assert_int_equal(kv_alloc_stats_of(a)->n_maps, 24);
    assert_int_equal(kv_alloc_stats_of(a)->copy_bytes, 2 * 6 * T_TOKEN_BYTES);
    kv_seq_id ggc, none;
    assert_int_equal(kv_alloc_fork(a, gc, 12, &ggc), KV_OK); /* 32 of 32 chunks mapped */
    assert_int_equal(kv_alloc_fork(a, ggc, 12, &none), KV_NO_SPACE);
    assert_int_equal(none, KV_SEQ_NONE);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_swap_copies_one_range_per_series(void **state)
{
    (void)state;
    kv_alloc_config c = chunk_cfg(32, KV_CHUNK_PER_LAYER, 64);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 6, 10);
    kv_swap_stats sw;
    assert_int_equal(kv_alloc_swap_out(a, s, &sw), KV_OK);
    assert_int_equal(sw.n_copies, T_N_TENSORS);
    assert_int_equal(sw.bytes, 6 * T_TOKEN_BYTES);
    assert_int_equal(t_breakdown(a, NULL).free_bytes, 32 * 64);
    assert_int_equal(kv_alloc_stats_of(a)->n_unmaps, 8);
    T_CHECK(a);
    assert_int_equal(kv_alloc_swap_in(a, s, &sw), KV_OK);
    assert_int_equal(place_of(a, s).n_chunks, 2);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_layer_maps_a_chunk_in_every_series),
        cmocka_unit_test(test_breakdown_counts_the_unused_tail_of_every_series),
        cmocka_unit_test(test_chunk_slack_beyond_whole_tokens_is_internal),
        cmocka_unit_test(test_fused_layout_has_one_series),
        cmocka_unit_test(test_exactly_full_pool_then_append_needs_a_chunk),
        cmocka_unit_test(test_prompt_larger_than_pool_is_too_large_and_zero_rejected),
        cmocka_unit_test(test_freed_chunks_are_unmapped_and_reused),
        cmocka_unit_test(test_fork_maps_and_copies_nothing_shared),
        cmocka_unit_test(test_swap_copies_one_range_per_series),
    };
    return cmocka_run_group_tests_name("chunk-pool", tests, NULL, NULL);
}
