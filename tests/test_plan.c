/* test_plan.c — the capacity-planning bisection on synthetic cases with known answers. */
#include "test_util.h"

#include "plan.h"

typedef struct threshold {
    double limit;
    int calls;
} threshold;

static kv_status below(void *ctx, double x, bool *ok, kv_err *err)
{
    (void)err;
    threshold *t = ctx;
    t->calls++;
    *ok = x <= t->limit;
    return KV_OK;
}

static kv_status broken(void *ctx, double x, bool *ok, kv_err *err)
{
    (void)ctx;
    (void)x;
    (void)ok;
    return kv_errorf(err, KV_ERR_INPUT, "replay failed");
}

static void test_bisection_finds_a_known_threshold_within_tolerance(void **state)
{
    (void)state;
    const double limits[] = {0.3, 1.0, 3.7, 17.25, 31.9};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        threshold t = {limits[i], 0};
        kv_bisect_result r;
        assert_int_equal(kv_plan_bisect(0.25, 32, 0.01, below, &t, &r, NULL), KV_OK);
        assert_true(r.best <= limits[i]);                   /* the answer passes */
        assert_true(r.infeasible > limits[i]);              /* its bracket fails */
        assert_true(r.infeasible / r.best <= 1.01 + 1e-12); /* to the tolerance */
        assert_int_equal(r.evaluations, t.calls);
        assert_true(r.evaluations <= 12); /* log2(log(128) / log(1.01)) + 2 = 11.3 */
    }
}

static void test_bisection_reports_both_ends(void **state)
{
    (void)state;
    threshold t = {0.1, 0};
    kv_bisect_result r;
    assert_int_equal(kv_plan_bisect(0.25, 32, 0.01, below, &t, &r, NULL), KV_OK);
    assert_true(r.below_lo && r.best == 0 && r.evaluations == 1);
    t = (threshold){100, 0};
    assert_int_equal(kv_plan_bisect(0.25, 32, 0.01, below, &t, &r, NULL), KV_OK);
    assert_true(r.at_hi && r.best == 32 && r.evaluations == 2);
    kv_err e = {{0}};
    assert_int_equal(kv_plan_bisect(0.25, 32, 0.01, broken, NULL, &r, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "replay failed"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bisection_finds_a_known_threshold_within_tolerance),
        cmocka_unit_test(test_bisection_reports_both_ends),
    };
    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
