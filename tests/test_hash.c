/* test_hash.c — the one hash: splitmix64's finalizer and the chaining combine. */
#include "test_util.h"

#include "hash.h"

/* ------------------------------------------------------------------------------------------ */

static void test_mix64_is_splitmix64s_finalizer(void **state)
{
    (void)state;
    /* splitmix64 seeded with 0: its first output is mix64(0x9e3779b97f4a7c15). */
    assert_true(kv_hash_mix64(0x9e3779b97f4a7c15ull) == 0xe220a8397b1dcdafull);
    assert_true(kv_hash_mix64(0) == 0);
    t_rng r = {0};
    assert_true(t_next(&r) == kv_hash_mix64(0x9e3779b97f4a7c15ull));
}

static void test_mix64_changes_about_half_the_bits_for_a_one_bit_change(void **state)
{
    (void)state;
    t_rng r = {42};
    uint64_t flips = 0, trials = 4096;
    for (uint64_t i = 0; i < trials; i++) {
        uint64_t x = t_next(&r);
        flips += (uint64_t)__builtin_popcountll(kv_hash_mix64(x) ^
                                                kv_hash_mix64(x ^ (1ull << (i % 64))));
    }
    double mean = (double)flips / (double)trials;
    assert_true(mean > 31 && mean < 33);
}

static void test_combine_is_mix_of_mixed_parent_xor_word_and_order_matters(void **state)
{
    (void)state;
    uint64_t p = 12345, a = 7, b = 9;
    assert_true(kv_hash_combine(p, a) == kv_hash_mix64(kv_hash_mix64(p) ^ a));
    assert_true(kv_hash_combine(kv_hash_combine(p, a), b) !=
                kv_hash_combine(kv_hash_combine(p, b), a));
}

static void test_ids32_chains_the_ids_of_every_series_in_order(void **state)
{
    (void)state;
    uint32_t ids[] = {1, 2, 99, 3, 4, 99}; /* two series of 2 ids, stride 3 */
    uint64_t want = 5;
    uint32_t order[] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++)
        want = kv_hash_combine(want, order[i]);
    assert_true(kv_hash_ids32(5, ids, 2, 3, 2) == want);
    assert_true(kv_hash_ids32(5, ids, 1, 0, 0) == 5);
    uint32_t swapped[] = {2, 1};
    assert_true(kv_hash_ids32(0, ids, 1, 0, 2) != kv_hash_ids32(0, swapped, 1, 0, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mix64_is_splitmix64s_finalizer),
        cmocka_unit_test(test_mix64_changes_about_half_the_bits_for_a_one_bit_change),
        cmocka_unit_test(test_combine_is_mix_of_mixed_parent_xor_word_and_order_matters),
        cmocka_unit_test(test_ids32_chains_the_ids_of_every_series_in_order),
    };
    return cmocka_run_group_tests_name("hash", tests, NULL, NULL);
}
