/* test_median.c — the one median: the upper middle of the sorted sample, NaN when empty. */
#include "test_util.h"

#include "median.h"

/* ------------------------------------------------------------------------------------------ */

static void test_median_of_an_odd_sample_is_its_middle(void **state)
{
    (void)state;
    double v[] = {9, 1, 5, 3, 7};
    assert_true(kv_median(v, 5) == 5);
}

static void test_median_of_an_even_sample_is_the_upper_middle_not_an_average(void **state)
{
    (void)state;
    double v[] = {4, 1, 3, 2};
    assert_true(kv_median(v, 4) == 3); /* kvgpu's reports: v[n / 2] of the sorted sample */
}

static void test_median_sorts_the_callers_array_in_place(void **state)
{
    (void)state;
    double v[] = {3, -1, 2};
    assert_true(kv_median(v, 3) == 2);
    assert_true(v[0] == -1 && v[1] == 2 && v[2] == 3);
}

static void test_median_of_nothing_is_nan_and_of_one_is_it(void **state)
{
    (void)state;
    assert_true(isnan(kv_median(NULL, 0)));
    double one = 4.25;
    assert_true(kv_median(&one, 1) == 4.25);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_median_of_an_odd_sample_is_its_middle),
        cmocka_unit_test(test_median_of_an_even_sample_is_the_upper_middle_not_an_average),
        cmocka_unit_test(test_median_sorts_the_callers_array_in_place),
        cmocka_unit_test(test_median_of_nothing_is_nan_and_of_one_is_it),
    };
    return cmocka_run_group_tests_name("median", tests, NULL, NULL);
}
