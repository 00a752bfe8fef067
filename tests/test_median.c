/* test_median.c — kv_median (analysis/median.h): the upper middle value, inputs untouched. */
#include "test_util.h"

#include "median.h"

/* ------------------------------------------------------------------------------------------ */

static void test_median_of_odd_count_is_the_middle_value(void **state)
{
    (void)state;
    const double v[] = {5, 1, 4, 2, 3};
    assert_true(kv_median(v, 5) == 3);
    assert_true(kv_median(v, 1) == 5);
}

static void test_median_of_even_count_is_the_upper_middle_value_not_the_mean(void **state)
{
    (void)state;
    const double v[] = {4, 1, 3, 2};
    assert_true(kv_median(v, 4) == 3); /* sorted 1 2 3 4, index 2 */
    assert_true(kv_median(v, 2) == 4); /* sorted 1 4, index 1 */
}

static void test_median_leaves_its_input_alone_and_of_nothing_is_nan(void **state)
{
    (void)state;
    double v[] = {3, -1, 2};
    assert_true(kv_median(v, 3) == 2);
    assert_true(v[0] == 3 && v[1] == -1 && v[2] == 2);
    assert_true(isnan(kv_median(NULL, 0)));
}

static void test_median_sorts_nan_last(void **state)
{
    (void)state;
    const double v[] = {NAN, 1, 2, NAN, 0};
    assert_true(kv_median(v, 5) == 2); /* 0 1 2 nan nan */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_median_of_odd_count_is_the_middle_value),
        cmocka_unit_test(test_median_of_even_count_is_the_upper_middle_value_not_the_mean),
        cmocka_unit_test(test_median_leaves_its_input_alone_and_of_nothing_is_nan),
        cmocka_unit_test(test_median_sorts_nan_last),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
