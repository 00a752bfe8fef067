/* test_contiguous.c — contiguous reservation: policies, first/best/buddy placement, growth,
 * coalescing, fork, swap, and the exact memory breakdown. */
#include "test_util.h"

#include "buddy.h"
#include "holes.h"

static kv_alloc_config contig(uint64_t pool_tokens, kv_reserve r, kv_fit f)
{
    kv_alloc_config c = t_config(KV_CONTIGUOUS, pool_tokens);
    c.contiguous.reserve = r;
    c.contiguous.fit = f;
    return c;
}

static uint32_t start_of(const kv_alloc *a, kv_seq_id s)
{
    kv_placement p;
    assert_int_equal(kv_alloc_placement(a, s, &p), KV_OK);
    assert_int_equal(p.kind, KV_PLACE_EXTENT);
    return (uint32_t)(p.offset_bytes / T_TOKEN_BYTES);
}

static uint32_t cap_of(const kv_alloc *a, kv_seq_id s)
{
    kv_placement p;
    assert_int_equal(kv_alloc_placement(a, s, &p), KV_OK);
    return (uint32_t)(p.capacity_bytes / T_TOKEN_BYTES);
}

/* ------------------------------------------------------------------------------------------ */

static void test_empty_pool_is_all_free(void **state)
{
    (void)state;
    kv_alloc_config c = contig(100, KV_RESERVE_ORACLE, KV_FIT_FIRST);
    c.pool_bytes += 10; /* a tail smaller than one token */
    kv_alloc *a = t_create(&c);
    T_CHECK(a);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.free_bytes, 100 * T_TOKEN_BYTES);
    assert_int_equal(b.external_frag_bytes, 10);
    assert_int_equal(b.token_bytes + b.reserved_bytes + b.internal_frag_bytes, 0);
    kv_alloc_destroy(&a);
    assert_null(a);
    kv_alloc_destroy(&a); /* NULL is fine */
}

static void test_exactly_full_pool_admits_then_refuses(void **state)
{
    (void)state;
    kv_alloc_config c = contig(100, KV_RESERVE_ORACLE, KV_FIT_FIRST);
    kv_alloc *a = t_create(&c);
    t_admit(a, 10, 60);
    t_admit(a, 20, 40);
    T_CHECK(a);
    kv_admit_req r = {.prompt_tokens = 1, .final_tokens = 1};
    kv_seq_id s;
    assert_false(kv_alloc_can_admit(a, &r));
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_NO_SPACE);
    assert_int_equal(s, KV_SEQ_NONE);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.free_bytes, 0);
    assert_int_equal(b.token_bytes, 30 * T_TOKEN_BYTES);
    assert_int_equal(b.reserved_bytes, 70 * T_TOKEN_BYTES);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_prompt_larger_than_pool_is_too_large(void **state)
{
    (void)state;
    kv_alloc_config c = contig(100, KV_RESERVE_ORACLE, KV_FIT_BEST);
    kv_alloc *a = t_create(&c);
    kv_admit_req r = {.prompt_tokens = 101, .final_tokens = 120};
    kv_seq_id s;
    assert_false(kv_alloc_can_admit(a, &r));
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_TOO_LARGE);
    r = (kv_admit_req){.prompt_tokens = 10, .final_tokens = 101}; /* final cannot fit either */
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_TOO_LARGE);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_zero_length_prompt_is_rejected(void **state)
{
    (void)state;
    kv_alloc_config c = contig(100, KV_RESERVE_MAX, KV_FIT_FIRST);
    kv_alloc *a = t_create(&c);
    kv_seq_id s;
    kv_admit_req r = {.prompt_tokens = 0, .final_tokens = 10};
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_INVALID);
    r = (kv_admit_req){.prompt_tokens = 10, .final_tokens = 5}; /* final < prompt */
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_INVALID);
    r = (kv_admit_req){.prompt_tokens = 10, .final_tokens = 257}; /* beyond max_seq_tokens */
    assert_int_equal(kv_alloc_admit(a, &r, &s, NULL), KV_INVALID);
    assert_int_equal(kv_alloc_append(a, 0, 1), KV_INVALID); /* no such sequence */
    assert_int_equal(kv_alloc_free(a, 0), KV_INVALID);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_reservation_policies_reserve_max_pow2_oracle_grow(void **state)
{
    (void)state;
    const kv_reserve rs[] = {KV_RESERVE_MAX, KV_RESERVE_POW2, KV_RESERVE_ORACLE, KV_RESERVE_GROW};
    const uint32_t expect_cap[] = {256, 64, 40, 10};
    for (int i = 0; i < 4; i++) {
        kv_alloc_config c = contig(1000, rs[i], KV_FIT_FIRST);
        kv_alloc *a = t_create(&c);
        kv_seq_id s = t_admit(a, 10, 40);
        assert_int_equal(cap_of(a, s), expect_cap[i]);
        kv_mem_breakdown b = t_breakdown(a, NULL);
        assert_int_equal(b.token_bytes, 10 * T_TOKEN_BYTES);
        uint32_t res = expect_cap[i] >= 40 ? 30 : expect_cap[i] - 10;
        assert_int_equal(b.reserved_bytes, res * T_TOKEN_BYTES);
        assert_int_equal(b.internal_frag_bytes, (expect_cap[i] - 10 - res) * T_TOKEN_BYTES);
        T_CHECK(a);
        kv_alloc_destroy(&a);
    }
}

/* Extents A(30) B(10) C(10) D(20) E(30) fill 100 slots; freeing A and C leaves holes of 30 at 0
 * and 10 at 40. */
static kv_alloc *two_holes(kv_fit fit, kv_seq_id ids[5])
{
    kv_alloc_config c = contig(100, KV_RESERVE_ORACLE, fit);
    kv_alloc *a = t_create(&c);
    const uint32_t len[] = {30, 10, 10, 20, 30};
    for (int i = 0; i < 5; i++)
        ids[i] = t_admit(a, len[i], len[i]);
    assert_int_equal(kv_alloc_free(a, ids[0]), KV_OK);
    assert_int_equal(kv_alloc_free(a, ids[2]), KV_OK);
    T_CHECK(a);
    return a;
}

static void test_first_fit_takes_lowest_hole_best_fit_smallest(void **state)
{
    (void)state;
    kv_seq_id ids[5];
    kv_alloc *a = two_holes(KV_FIT_FIRST, ids);
    assert_int_equal(start_of(a, t_admit(a, 10, 10)), 0);
    kv_alloc_destroy(&a);
    a = two_holes(KV_FIT_BEST, ids);
    assert_int_equal(start_of(a, t_admit(a, 10, 10)), 40);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_external_fragmentation_counts_holes_too_small_for_waiting(void **state)
{
    (void)state;
    kv_seq_id ids[5];
    kv_alloc *a = two_holes(KV_FIT_FIRST, ids);
    kv_admit_req big = {.prompt_tokens = 35, .final_tokens = 35};
    assert_false(kv_alloc_can_admit(a, &big));
    kv_mem_breakdown b = t_breakdown(a, &big);
    assert_int_equal(b.external_frag_bytes, 40 * T_TOKEN_BYTES);
    assert_int_equal(b.free_bytes, 0);
    kv_admit_req mid = {.prompt_tokens = 20, .final_tokens = 20};
    b = t_breakdown(a, &mid);
    assert_int_equal(b.external_frag_bytes, 10 * T_TOKEN_BYTES);
    assert_int_equal(b.free_bytes, 30 * T_TOKEN_BYTES);
    b = t_breakdown(a, NULL); /* nothing waits: nothing is fragmentation */
    assert_int_equal(b.external_frag_bytes, 0);
    kv_alloc_destroy(&a);
}

static void test_free_coalesces_both_neighbours(void **state)
{
    (void)state;
    kv_seq_id ids[5];
    kv_alloc *a = two_holes(KV_FIT_FIRST, ids);
    /* B sits between the holes at 0 and 40: freeing it leaves one hole of 50. */
    assert_int_equal(kv_alloc_free(a, ids[1]), KV_OK);
    T_CHECK(a);
    kv_admit_req r = {.prompt_tokens = 50, .final_tokens = 50};
    assert_true(kv_alloc_can_admit(a, &r));
    assert_int_equal(start_of(a, t_admit(a, 50, 50)), 0);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_grow_extends_in_place_when_next_is_free(void **state)
{
    (void)state;
    kv_alloc_config c = contig(100, KV_RESERVE_GROW, KV_FIT_FIRST);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 4, 20);
    assert_int_equal(cap_of(a, s), 4);
    assert_int_equal(kv_alloc_append(a, s, 1), KV_OK);
    assert_int_equal(cap_of(a, s), 8);
    assert_int_equal(start_of(a, s), 0);
    assert_int_equal(kv_alloc_stats_of(a)->n_moves, 0);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_grow_moves_and_counts_copied_bytes_when_blocked(void **state)
{
    (void)state;
    kv_alloc_config c = contig(100, KV_RESERVE_GROW, KV_FIT_FIRST);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 4, 20);
    kv_seq_id wall = t_admit(a, 2, 2); /* right after s */
    for (int i = 0; i < 5; i++) {      /* 4 -> 9 tokens: capacity 4 -> 16, moved once */
        assert_int_equal(kv_alloc_append(a, s, 1), KV_OK);
        T_CHECK(a);
    }
    assert_int_equal(cap_of(a, s), 8 * 2);
    assert_int_equal(start_of(a, s), 6);
    const kv_alloc_stats *st = kv_alloc_stats_of(a);
    assert_int_equal(st->n_moves, 1);
    assert_int_equal(st->copy_bytes, 4 * T_TOKEN_BYTES);
    (void)wall;
    kv_alloc_destroy(&a);
}

static void test_grow_refuses_atomically_when_no_room(void **state)
{
    (void)state;
    kv_alloc_config c = contig(12, KV_RESERVE_GROW, KV_FIT_FIRST);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 4, 12);
    t_admit(a, 2, 2);
    /* 4 -> 5 needs 8 slots; 6 are free but not behind s, and no 8-slot hole exists */
    assert_int_equal(kv_alloc_append(a, s, 1), KV_NO_SPACE);
    assert_int_equal(kv_alloc_seq_tokens(a, s), 4);
    assert_int_equal(cap_of(a, s), 4);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_buddy_rounds_up_and_counts_internal_fragmentation(void **state)
{
    (void)state;
    kv_alloc_config c = contig(64, KV_RESERVE_ORACLE, KV_FIT_BUDDY);
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 3, 5);
    assert_int_equal(cap_of(a, s), 8);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.token_bytes, 3 * T_TOKEN_BYTES);
    assert_int_equal(b.reserved_bytes, 2 * T_TOKEN_BYTES);
    assert_int_equal(b.internal_frag_bytes, 3 * T_TOKEN_BYTES);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_buddy_free_of_all_blocks_merges_up_to_the_root(void **state)
{
    (void)state;
    kv_buddy b;
    assert_int_equal(kv_buddy_init(&b, 64), KV_OK);
    uint32_t starts[4];
    for (int i = 0; i < 4; i++)
        starts[i] = kv_buddy_alloc(&b, 16, (uint32_t)i);
    assert_int_equal(b.list_len[6], 0);
    const int order[] = {2, 0, 3, 1}; /* never two buddies in a row */
    for (int i = 0; i < 4; i++) {
        kv_buddy_free(&b, starts[order[i]]);
        assert_int_equal(kv_buddy_check(&b, NULL), KV_OK);
    }
    assert_int_equal(b.list_len[6], 1);
    assert_int_equal(b.list_head[6], 0);
    for (int k = 0; k < 6; k++)
        assert_int_equal(b.list_len[k], 0);
    assert_int_equal(b.free_units, 64);
    kv_buddy_fini(&b);
}

static void test_buddy_non_power_of_two_pool_has_top_blocks(void **state)
{
    (void)state;
    kv_buddy b;
    assert_int_equal(kv_buddy_init(&b, 96), KV_OK); /* 64 + 32 */
    assert_int_equal(kv_buddy_max_units(&b), 64);
    assert_int_equal(kv_buddy_alloc(&b, 33, 1), 0);
    assert_int_equal(kv_buddy_alloc(&b, 64, 2), KV_UNIT_NONE);
    assert_int_equal(kv_buddy_alloc(&b, 32, 3), 64);
    assert_int_equal(kv_buddy_check(&b, NULL), KV_OK);
    kv_buddy_free(&b, 0);
    kv_buddy_free(&b, 64);
    /* the two top blocks never merge: 96 is not a power of two */
    assert_int_equal(b.list_len[6], 1);
    assert_int_equal(b.list_len[5], 1);
    assert_int_equal(kv_buddy_check(&b, NULL), KV_OK);
    kv_buddy_fini(&b);
}

static void test_buddy_extends_in_place_into_free_right_buddy(void **state)
{
    (void)state;
    kv_buddy b;
    assert_int_equal(kv_buddy_init(&b, 64), KV_OK);
    uint32_t s = kv_buddy_alloc(&b, 4, 1);
    assert_true(kv_buddy_extend(&b, s, 16));
    assert_int_equal(kv_buddy_len(&b, s), 16);
    uint32_t t = kv_buddy_alloc(&b, 16, 2); /* takes [16, 32) */
    assert_false(kv_buddy_extend(&b, s, 32));
    assert_false(kv_buddy_extend(&b, t, 32)); /* a right buddy cannot grow in place */
    assert_int_equal(kv_buddy_check(&b, NULL), KV_OK);
    kv_buddy_fini(&b);
}

static void test_holes_checker_catches_corruption(void **state)
{
    (void)state;
    kv_holes h;
    assert_int_equal(kv_holes_init(&h, 32), KV_OK);
    kv_holes_alloc(&h, 8, false, 1);
    assert_int_equal(kv_holes_check(&h, NULL), KV_OK);
    h.free_units++; /* break a counter: the checker must notice */
    kv_err e = {{0}};
    assert_int_equal(kv_holes_check(&h, &e), KV_CORRUPT);
    assert_non_null(strstr(e.msg, "free units"));
    kv_holes_fini(&h);
}

static void test_fork_copies_tokens_into_a_new_extent(void **state)
{
    (void)state;
    kv_alloc_config c = contig(100, KV_RESERVE_ORACLE, KV_FIT_FIRST);
    kv_alloc *a = t_create(&c);
    kv_seq_id p = t_admit(a, 10, 20), ch;
    assert_int_equal(kv_alloc_fork(a, p, 30, &ch), KV_OK);
    assert_int_equal(kv_alloc_seq_tokens(a, ch), 10);
    assert_int_equal(cap_of(a, ch), 30);
    assert_int_equal(start_of(a, ch), 20);
    assert_int_equal(kv_alloc_stats_of(a)->copy_bytes, 10 * T_TOKEN_BYTES);
    kv_seq_id gc; /* fork of a fork */
    assert_int_equal(kv_alloc_fork(a, ch, 40, &gc), KV_OK);
    assert_int_equal(kv_alloc_fork(a, gc, 41, &gc), KV_NO_SPACE); /* 50 + 41 > 100 */
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_swap_moves_one_extent_and_frees_device_memory(void **state)
{
    (void)state;
    kv_alloc_config c = contig(100, KV_RESERVE_ORACLE, KV_FIT_FIRST);
    c.host_pool_bytes = 15 * T_TOKEN_BYTES;
    kv_alloc *a = t_create(&c);
    kv_seq_id s = t_admit(a, 10, 60), s2 = t_admit(a, 10, 10);
    kv_swap_stats sw;
    assert_int_equal(kv_alloc_swap_out(a, s, &sw), KV_OK);
    assert_int_equal(sw.bytes, 10 * T_TOKEN_BYTES);
    assert_int_equal(sw.n_copies, 1);
    assert_int_equal(kv_alloc_seq_state(a, s), KV_SEQ_SWAPPED);
    kv_placement p;
    assert_int_equal(kv_alloc_placement(a, s, &p), KV_INVALID);
    assert_int_equal(kv_alloc_append(a, s, 1), KV_INVALID);
    kv_mem_breakdown b = t_breakdown(a, NULL);
    assert_int_equal(b.host_bytes, 10 * T_TOKEN_BYTES);
    assert_int_equal(b.free_bytes, 90 * T_TOKEN_BYTES);
    assert_int_equal(kv_alloc_swap_out(a, s2, &sw), KV_NO_SPACE); /* host tier full */
    T_CHECK(a);
    assert_int_equal(kv_alloc_swap_in(a, s, &sw), KV_OK);
    assert_int_equal(sw.bytes, 10 * T_TOKEN_BYTES);
    assert_int_equal(cap_of(a, s), 60);
    T_CHECK(a);
    assert_int_equal(kv_alloc_swap_out(a, s, &sw), KV_OK);
    assert_int_equal(kv_alloc_free(a, s), KV_OK); /* free of a swapped sequence */
    assert_int_equal(t_breakdown(a, NULL).host_bytes, 0);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_pool_is_all_free),
        cmocka_unit_test(test_exactly_full_pool_admits_then_refuses),
        cmocka_unit_test(test_prompt_larger_than_pool_is_too_large),
        cmocka_unit_test(test_zero_length_prompt_is_rejected),
        cmocka_unit_test(test_reservation_policies_reserve_max_pow2_oracle_grow),
        cmocka_unit_test(test_first_fit_takes_lowest_hole_best_fit_smallest),
        cmocka_unit_test(test_external_fragmentation_counts_holes_too_small_for_waiting),
        cmocka_unit_test(test_free_coalesces_both_neighbours),
        cmocka_unit_test(test_grow_extends_in_place_when_next_is_free),
        cmocka_unit_test(test_grow_moves_and_counts_copied_bytes_when_blocked),
        cmocka_unit_test(test_grow_refuses_atomically_when_no_room),
        cmocka_unit_test(test_buddy_rounds_up_and_counts_internal_fragmentation),
        cmocka_unit_test(test_buddy_free_of_all_blocks_merges_up_to_the_root),
        cmocka_unit_test(test_buddy_non_power_of_two_pool_has_top_blocks),
        cmocka_unit_test(test_buddy_extends_in_place_into_free_right_buddy),
        cmocka_unit_test(test_holes_checker_catches_corruption),
        cmocka_unit_test(test_fork_copies_tokens_into_a_new_extent),
        cmocka_unit_test(test_swap_moves_one_extent_and_frees_device_memory),
    };
    return cmocka_run_group_tests_name("contiguous", tests, NULL, NULL);
}
