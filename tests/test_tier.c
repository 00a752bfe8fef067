/* test_tier.c — the host tier's pool (tier.h): block ids and first-fit extents, with the checker
 * after every operation. */
#include "test_util.h"

#include "tier.h"

/* ------------------------------------------------------------------------------------------ */

#define TIER_CHECK(t, mark)                                                                        \
    do {                                                                                           \
        kv_err e_ = {{0}};                                                                         \
        if (kv_tier_check((t), (mark), &e_) != KV_OK)                                              \
            fail_msg("%s:%d: tier check: %s", __FILE__, __LINE__, e_.msg);                         \
    } while (0)

/* ------------------------------------------------------------------------------------------ */

static void test_tier_blocks_fresh_ids_ascend_and_returned_ids_come_back_in_order(void **state)
{
    (void)state;
    kv_host_tier t;
    uint8_t mark[64];
    assert_int_equal(kv_tier_init(&t, KV_TIER_BLOCKS, 4096, 10 * 4096 + 100, 64), KV_OK);
    assert_int_equal(t.n_units, 10);
    uint32_t ids[10];
    assert_int_equal(kv_tier_take_blocks(&t, 4, ids), KV_OK);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(ids[i], i);
    TIER_CHECK(&t, mark);
    for (uint32_t i = 4; i-- > 0;) /* given back last first, as a swap-in does */
        kv_tier_give_block(&t, ids[i]);
    TIER_CHECK(&t, mark);
    assert_int_equal(kv_tier_take_blocks(&t, 4, ids), KV_OK);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(ids[i], i);
    kv_tier_fini(&t);
}

static void test_tier_blocks_refuse_beyond_capacity_all_or_nothing(void **state)
{
    (void)state;
    kv_host_tier t;
    uint8_t mark[64];
    assert_int_equal(kv_tier_init(&t, KV_TIER_BLOCKS, 100, 1000, 64), KV_OK);
    uint32_t ids[16];
    assert_int_equal(kv_tier_take_blocks(&t, 7, ids), KV_OK);
    assert_true(kv_tier_has_blocks(&t, 3));
    assert_false(kv_tier_has_blocks(&t, 4));
    assert_int_equal(kv_tier_take_blocks(&t, 4, ids + 7), KV_NO_SPACE);
    assert_int_equal(t.used_units, 7); /* nothing taken */
    TIER_CHECK(&t, mark);
    kv_tier_fini(&t);
}

static void test_tier_extents_first_fit_and_coalesce_both_neighbours(void **state)
{
    (void)state;
    kv_host_tier t;
    assert_int_equal(kv_tier_init(&t, KV_TIER_EXTENTS, 64, 100 * 64, 8), KV_OK);
    uint32_t a, b, c;
    assert_int_equal(kv_tier_alloc_extent(&t, 30, &a), KV_OK);
    assert_int_equal(kv_tier_alloc_extent(&t, 30, &b), KV_OK);
    assert_int_equal(kv_tier_alloc_extent(&t, 30, &c), KV_OK);
    assert_int_equal(a, 0);
    assert_int_equal(b, 30);
    assert_int_equal(c, 60);
    uint32_t d;
    assert_int_equal(kv_tier_alloc_extent(&t, 11, &d), KV_NO_SPACE); /* 10 left at the end */
    kv_tier_free_extent(&t, a, 30);
    kv_tier_free_extent(&t, c, 30);
    TIER_CHECK(&t, NULL);
    assert_int_equal(t.n_holes, 2);
    uint64_t usable, unusable;
    kv_tier_free_split(&t, 35, &usable, &unusable); /* 30 and 40 free: only 40 serves 35 */
    assert_int_equal(unusable, 30 * 64);
    assert_int_equal(usable, 40 * 64);
    assert_int_equal(kv_tier_alloc_extent(&t, 35, &d), KV_OK);
    assert_int_equal(d, 60); /* first fit skips the 30-unit hole */
    kv_tier_free_extent(&t, d, 35);
    kv_tier_free_extent(&t, b, 30); /* joins the hole before and the one after */
    TIER_CHECK(&t, NULL);
    assert_int_equal(t.n_holes, 1);
    assert_int_equal(t.holes[0].start, 0);
    assert_int_equal(t.holes[0].n_units, 100);
    kv_tier_fini(&t);
}

static void test_tier_check_finds_a_free_id_listed_twice(void **state)
{
    (void)state;
    kv_host_tier t;
    uint8_t mark[64];
    assert_int_equal(kv_tier_init(&t, KV_TIER_BLOCKS, 8, 64 * 8, 64), KV_OK);
    uint32_t ids[3];
    assert_int_equal(kv_tier_take_blocks(&t, 3, ids), KV_OK);
    kv_tier_give_block(&t, ids[0]);
    kv_tier_give_block(&t, ids[1]);
    t.free_ids[1] = t.free_ids[0]; /* corrupt: one id twice */
    kv_err e = {{0}};
    assert_int_equal(kv_tier_check(&t, mark, &e), KV_CORRUPT);
    assert_non_null(strstr(e.msg, "free id"));
    kv_tier_fini(&t);
}

static void test_tier_metadata_grows_with_what_is_held_not_with_capacity(void **state)
{
    (void)state;
    kv_host_tier t;
    assert_int_equal(kv_tier_init(&t, KV_TIER_EXTENTS, 4096, 1ull << 40, 16), KV_OK);
    assert_true(kv_tier_metadata_bytes(&t) < 4096); /* a TiB of host tier, 17 holes of room */
    kv_tier_fini(&t);
    assert_int_equal(kv_tier_init(&t, KV_TIER_BLOCKS, 1 << 20, 1ull << 40, 100), KV_OK);
    assert_true(kv_tier_metadata_bytes(&t) < 4096);
    kv_tier_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tier_blocks_fresh_ids_ascend_and_returned_ids_come_back_in_order),
        cmocka_unit_test(test_tier_blocks_refuse_beyond_capacity_all_or_nothing),
        cmocka_unit_test(test_tier_extents_first_fit_and_coalesce_both_neighbours),
        cmocka_unit_test(test_tier_check_finds_a_free_id_listed_twice),
        cmocka_unit_test(test_tier_metadata_grows_with_what_is_held_not_with_capacity),
    };
    return cmocka_run_group_tests_name("tier", tests, NULL, NULL);
}
