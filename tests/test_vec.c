/* test_vec.c — the growable array: doubling from a first capacity, zeroing, failure safety. */
#include "test_util.h"

#include "vec.h"

/* ------------------------------------------------------------------------------------------ */

static void test_vec_grows_by_doubling_from_the_first_capacity(void **state)
{
    (void)state;
    uint32_t *v = NULL;
    size_t cap = 0;
    assert_true(kv_vec_reserve(&v, &cap, 1, sizeof *v, 64));
    assert_int_equal(cap, 64);
    assert_true(kv_vec_reserve(&v, &cap, 64, sizeof *v, 64));
    assert_int_equal(cap, 64); /* enough already: no change */
    assert_true(kv_vec_reserve(&v, &cap, 65, sizeof *v, 64));
    assert_int_equal(cap, 128);
    assert_true(kv_vec_reserve(&v, &cap, 1000, sizeof *v, 64));
    assert_int_equal(cap, 1024);
    for (uint32_t i = 0; i < 1000; i++)
        v[i] = i;
    assert_true(kv_vec_reserve(&v, &cap, 5000, sizeof *v, 64));
    for (uint32_t i = 0; i < 1000; i++)
        assert_int_equal(v[i], i); /* contents kept */
    free(v);
}

static void test_vec_reserve_zeroed_clears_only_the_new_room(void **state)
{
    (void)state;
    uint64_t *v = NULL;
    size_t cap = 0;
    assert_true(kv_vec_reserve_zeroed(&v, &cap, 3, sizeof *v, 4));
    for (size_t i = 0; i < cap; i++)
        assert_true(v[i] == 0);
    v[0] = 11;
    v[3] = 33;
    assert_true(kv_vec_reserve_zeroed(&v, &cap, 9, sizeof *v, 4));
    assert_int_equal(cap, 16);
    assert_true(v[0] == 11 && v[3] == 33);
    for (size_t i = 4; i < cap; i++)
        assert_true(v[i] == 0);
    free(v);
}

static void test_vec_overflowing_request_fails_and_changes_nothing(void **state)
{
    (void)state;
    uint64_t *v = NULL;
    size_t cap = 0;
    assert_true(kv_vec_reserve(&v, &cap, 10, sizeof *v, 8));
    uint64_t *before = v;
    assert_false(kv_vec_reserve(&v, &cap, SIZE_MAX / 2, sizeof *v, 8));
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 16);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vec_grows_by_doubling_from_the_first_capacity),
        cmocka_unit_test(test_vec_reserve_zeroed_clears_only_the_new_room),
        cmocka_unit_test(test_vec_overflowing_request_fails_and_changes_nothing),
    };
    return cmocka_run_group_tests_name("vec", tests, NULL, NULL);
}
