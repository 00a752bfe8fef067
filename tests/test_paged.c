/* test_paged.c — paged blocks: tables, refcounts, fork and copy-on-write, prefix caching with
 * LRU eviction, watermark, swap and the breakdown. */
#include "test_util.h"

#include "prefix_index.h"

#define BT          4u
#define BLOCK_BYTES (BT * T_TOKEN_BYTES)

static kv_alloc_config paged_cfg(uint32_t n_blocks)
{
    kv_alloc_config c = t_config(KV_PAGED, (uint64_t)n_blocks * BT);
    c.paged.block_tokens = BT;
    return c;
}

static kv_placement place_of(const kv_alloc *a, kv_seq_id s)
{
    kv_placement p;
    assert_int_equal(kv_alloc_placement(a, s, &p), KV_OK);
    assert_int_equal(p.kind, KV_PLACE_BLOCKS);
    return p;
}

static uint32_t free_blocks(const kv_alloc *a)
{
    return (uint32_t)(t_breakdown(a, NULL).free_bytes / BLOCK_BYTES);
}

static kv_seq_id admit_content(kv_alloc *a, uint32_t prompt, const uint64_t *content,
                               uint32_t n_content, uint32_t *cached)
{
    kv_admit_req r = {.prompt_tokens = prompt,
                      .final_tokens = prompt + 4,
                      .block_content = content,
                      .n_block_content = n_content};
    kv_seq_id s;
    assert_int_equal(kv_alloc_admit(a, &r, &s, cached), KV_OK);
    return s;
}

/* ------------------------------------------------------------------------------------------ */

static void test_empty_pool_then_blocks_by_ceiling(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(16);
    kv_alloc *a = t_create(&c);
    T_CHECK(a);
    assert_int_equal(free_blocks(a), 16);
    kv_seq_id s = t_admit(a, 5, 7);
    kv_placement p = place_of(a, s);
    assert_int_equal(p.n_blocks, 2);
    assert_int_equal(p.block_bytes, BLOCK_BYTES);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.token_bytes, 5 * T_TOKEN_BYTES);
    assert_int_equal(b.reserved_bytes, 2 * T_TOKEN_BYTES); /* slots 6, 7 of block 2 */
    assert_int_equal(b.internal_frag_bytes, 1 * T_TOKEN_BYTES);
    assert_int_equal(b.free_bytes, 14 * BLOCK_BYTES);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_exactly_full_pool_refuses_the_next_block(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(16);
    kv_alloc *a = t_create(&c);
    kv_seq_id s[4];
    for (int i = 0; i < 4; i++)
        s[i] = t_admit(a, 16, 20);
    assert_int_equal(free_blocks(a), 0);
    kv_admit_req r = {.prompt_tokens = 1, .final_tokens = 1};
    assert_false(kv_alloc_can_admit(a, &r));
    assert_int_equal(kv_alloc_append(a, s[0], 1), KV_NO_SPACE);
    assert_int_equal(kv_alloc_seq_tokens(a, s[0]), 16);
    T_CHECK(a);
    assert_int_equal(kv_alloc_free(a, s[1]), KV_OK);
    assert_int_equal(kv_alloc_append(a, s[0], 4), KV_OK);
    assert_int_equal(free_blocks(a), 3);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_prompt_larger_than_pool_is_too_large(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(16);
    kv_alloc *a = t_create(&c);
    kv_seq_id s;
    kv_admit_req r = {.prompt_tokens = 65, .final_tokens = 65};
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_TOO_LARGE);
    r = (kv_admit_req){.prompt_tokens = 8, .final_tokens = 65};
    assert_false(kv_alloc_can_admit(a, &r));
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_TOO_LARGE);
    r = (kv_admit_req){.prompt_tokens = 0, .final_tokens = 4};
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_INVALID);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_fork_of_a_fork_shares_then_copies_on_write(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(16);
    kv_alloc *a = t_create(&c);
    kv_seq_id pa = t_admit(a, 6, 12), b, cc;
    assert_int_equal(kv_alloc_fork(a, pa, 12, &b), KV_OK);
    assert_int_equal(kv_alloc_fork(a, b, 12, &cc), KV_OK);
    assert_int_equal(free_blocks(a), 14); /* three sequences, two blocks */
    T_CHECK(a);
    kv_placement pp = place_of(a, pa), pc = place_of(a, cc);
    assert_int_equal(pc.block_table[0], pp.block_table[0]);
    assert_int_equal(pc.block_table[1], pp.block_table[1]);

    assert_int_equal(kv_alloc_append(a, cc, 1), KV_OK); /* shared partial block: copy */
    const kv_alloc_stats *st = kv_alloc_stats_of(a);
    assert_int_equal(st->n_cow, 1);
    assert_int_equal(st->copy_bytes, 2 * T_TOKEN_BYTES);
    pc = place_of(a, cc);
    assert_int_equal(pc.block_table[0], pp.block_table[0]); /* full block still shared */
    assert_int_not_equal(pc.block_table[1], pp.block_table[1]);
    T_CHECK(a);
    assert_int_equal(kv_alloc_append(a, b, 1), KV_OK); /* still shared with pa: copy */
    assert_int_equal(st->n_cow, 2);
    assert_int_equal(kv_alloc_append(a, pa, 1), KV_OK); /* last holder writes in place */
    assert_int_equal(st->n_cow, 2);
    assert_int_equal(place_of(a, pa).block_table[1], pp.block_table[1]);
    assert_int_equal(free_blocks(a), 12);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_free_of_a_shared_block_keeps_it_for_the_other_holder(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(16);
    kv_alloc *a = t_create(&c);
    kv_seq_id pa = t_admit(a, 8, 12), ch;
    assert_int_equal(kv_alloc_fork(a, pa, 12, &ch), KV_OK);
    assert_int_equal(kv_alloc_free(a, pa), KV_OK);
    assert_int_equal(free_blocks(a), 14);
    T_CHECK(a);
    assert_int_equal(kv_alloc_append(a, ch, 1), KV_OK); /* a fresh block, no copy */
    assert_int_equal(kv_alloc_stats_of(a)->n_cow, 0);
    assert_int_equal(kv_alloc_free(a, ch), KV_OK);
    assert_int_equal(free_blocks(a), 16);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_prefix_hit_shares_leading_full_blocks(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(16);
    kv_alloc *a = t_create(&c);
    const uint64_t sys[] = {11, 12, 13};
    const uint64_t other[] = {11, 99, 13};
    uint32_t cached = 99;
    kv_seq_id s1 = admit_content(a, 13, sys, 3, &cached);
    assert_int_equal(cached, 0);
    kv_seq_id s2 = admit_content(a, 14, sys, 3, &cached);
    assert_int_equal(cached, 12);
    kv_placement p1 = place_of(a, s1), p2 = place_of(a, s2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(p1.block_table[i], p2.block_table[i]);
    assert_int_not_equal(p1.block_table[3], p2.block_table[3]);
    /* a different second block: only the first is shared, and the chain stops there even
     * though the third id matches (its prefix differs) */
    kv_seq_id s3 = admit_content(a, 12, other, 3, &cached);
    assert_int_equal(cached, 4);
    assert_int_equal(place_of(a, s3).block_table[2] == p1.block_table[2], 0);
    assert_int_equal(free_blocks(a), 16 - 4 - 1 - 2);
    const kv_alloc_stats *st = kv_alloc_stats_of(a);
    assert_int_equal(st->prefix_query_blocks, 9);
    assert_int_equal(st->prefix_hit_blocks, 4);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_prefix_hit_after_free_comes_from_the_lru(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(8);
    kv_alloc *a = t_create(&c);
    const uint64_t x[] = {7, 8}, y[] = {1, 2};
    uint32_t cached;
    kv_seq_id sx = admit_content(a, 8, x, 2, &cached);
    kv_seq_id sy = admit_content(a, 8, y, 2, &cached);
    assert_int_equal(kv_alloc_free(a, sx), KV_OK); /* x's blocks freed first: older in LRU */
    assert_int_equal(kv_alloc_free(a, sy), KV_OK);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.cached_free_bytes, 4 * BLOCK_BYTES);
    assert_int_equal(b.free_bytes, 8 * BLOCK_BYTES);
    /* 6 fresh blocks: 4 uncached ones first, then the 2 oldest cached (x's) are evicted */
    kv_seq_id filler = t_admit(a, 24, 24);
    assert_int_equal(kv_alloc_stats_of(a)->n_evictions, 2);
    T_CHECK(a);
    kv_seq_id sy2 = admit_content(a, 8, y, 2, &cached);
    assert_int_equal(cached, 8); /* y survived the eviction */
    assert_int_equal(kv_alloc_free(a, sy2), KV_OK);
    assert_int_equal(kv_alloc_free(a, filler), KV_OK);
    kv_seq_id sx2 = admit_content(a, 8, x, 2, &cached);
    assert_int_equal(cached, 0); /* x was evicted */
    (void)sx2;
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_prefix_hits_on_free_blocks_count_against_free_space(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(4);
    kv_alloc *a = t_create(&c);
    const uint64_t y[] = {1, 2};
    uint32_t cached;
    kv_seq_id s = admit_content(a, 8, y, 2, &cached);
    assert_int_equal(kv_alloc_free(a, s), KV_OK); /* 2 cached free + 2 plain free */
    /* 8 cached tokens + 9 more need 2 hits + 3 new blocks: 5 > 4 */
    kv_admit_req r = {
        .prompt_tokens = 17, .final_tokens = 17, .block_content = y, .n_block_content = 2};
    assert_false(kv_alloc_can_admit(a, &r));
    kv_seq_id t;
    assert_int_equal(kv_alloc_admit(a, &r, &t, &cached), KV_TOO_LARGE);
    r.prompt_tokens = r.final_tokens = 16; /* 2 hits + 2 new = 4 */
    assert_true(kv_alloc_can_admit(a, &r));
    assert_int_equal(kv_alloc_admit(a, &r, &t, &cached), KV_OK);
    assert_int_equal(cached, 8);
    assert_int_equal(kv_alloc_stats_of(a)->n_evictions, 0);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_watermark_holds_back_admission_not_appends(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(16);
    c.watermark = 0.25; /* 4 blocks */
    kv_alloc *a = t_create(&c);
    kv_admit_req r = {.prompt_tokens = 48, .final_tokens = 52};
    assert_true(kv_alloc_can_admit(a, &r)); /* leaves exactly 4 */
    kv_seq_id s = t_admit(a, 48, 64);
    r.prompt_tokens = r.final_tokens = 1;
    assert_false(kv_alloc_can_admit(a, &r));
    assert_int_equal(kv_alloc_append(a, s, 16), KV_OK); /* growth may use the watermark */
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_swap_copies_each_block_of_each_layer_tensor(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(16);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 9, 12);
    kv_swap_stats sw;
    assert_int_equal(kv_alloc_swap_out(a, s, &sw), KV_OK);
    assert_int_equal(sw.bytes, 3 * BLOCK_BYTES);
    assert_int_equal(sw.n_copies, 3 * T_N_TENSORS);
    assert_int_equal(free_blocks(a), 16);
    T_CHECK(a);
    assert_int_equal(kv_alloc_swap_in(a, s, &sw), KV_OK);
    assert_int_equal(place_of(a, s).n_blocks, 3);
    assert_int_equal(kv_alloc_append(a, s, 3), KV_OK);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_swap_out_of_a_forked_sequence_keeps_shared_blocks(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(16);
    kv_alloc *a = t_create(&c);
    kv_seq_id pa = t_admit(a, 8, 12), ch;
    assert_int_equal(kv_alloc_fork(a, pa, 12, &ch), KV_OK);
    kv_swap_stats sw;
    assert_int_equal(kv_alloc_swap_out(a, ch, &sw), KV_OK);
    assert_int_equal(sw.bytes, 2 * BLOCK_BYTES);
    assert_int_equal(free_blocks(a), 14); /* the parent still holds both */
    assert_int_equal(kv_alloc_swap_in(a, ch, &sw), KV_OK);
    assert_int_equal(free_blocks(a), 12); /* back in private blocks */
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_shared_partial_block_reserved_for_the_furthest_sharer(void **state)
{
    (void)state;
    kv_alloc_config c = paged_cfg(16);
    kv_alloc *a = t_create(&c);
    kv_seq_id pa = t_admit(a, 5, 5), ch; /* parent is done at 5 */
    assert_int_equal(kv_alloc_fork(a, pa, 7, &ch), KV_OK);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.token_bytes, 5 * T_TOKEN_BYTES); /* shared tokens counted once */
    assert_int_equal(b.reserved_bytes, 2 * T_TOKEN_BYTES);
    assert_int_equal(b.internal_frag_bytes, 1 * T_TOKEN_BYTES);
    kv_alloc_destroy(&a);
}

static void test_prefix_index_backward_shift_keeps_probes_reachable(void **state)
{
    (void)state;
    kv_prefix_index x;
    assert_int_equal(kv_prefix_index_init(&x, 64), KV_OK);
    t_rng r = {42};
    uint64_t keys[64];
    for (uint32_t i = 0; i < 64; i++) {
        keys[i] = t_next(&r);
        kv_prefix_index_insert(&x, keys[i], i);
    }
    for (uint32_t i = 0; i < 64; i += 2) {
        kv_prefix_index_remove(&x, keys[i]);
        assert_int_equal(kv_prefix_index_check(&x, NULL), KV_OK);
    }
    for (uint32_t i = 0; i < 64; i++)
        assert_int_equal(kv_prefix_index_find(&x, keys[i]), i % 2 ? i : KV_INDEX_NONE);
    kv_prefix_index_fini(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_pool_then_blocks_by_ceiling),
        cmocka_unit_test(test_exactly_full_pool_refuses_the_next_block),
        cmocka_unit_test(test_prompt_larger_than_pool_is_too_large),
        cmocka_unit_test(test_fork_of_a_fork_shares_then_copies_on_write),
        cmocka_unit_test(test_free_of_a_shared_block_keeps_it_for_the_other_holder),
        cmocka_unit_test(test_prefix_hit_shares_leading_full_blocks),
        cmocka_unit_test(test_prefix_hit_after_free_comes_from_the_lru),
        cmocka_unit_test(test_prefix_hits_on_free_blocks_count_against_free_space),
        cmocka_unit_test(test_watermark_holds_back_admission_not_appends),
        cmocka_unit_test(test_swap_copies_each_block_of_each_layer_tensor),
        cmocka_unit_test(test_swap_out_of_a_forked_sequence_keeps_shared_blocks),
        cmocka_unit_test(test_shared_partial_block_reserved_for_the_furthest_sharer),
        cmocka_unit_test(test_prefix_index_backward_shift_keeps_probes_reachable),
    };
    return cmocka_run_group_tests_name("paged", tests, NULL, NULL);
}
