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

static kv_status at_least(void *ctx, double n, bool *ok, kv_err *err)
{
    (void)err;
    threshold *t = ctx;
    t->calls++;
    *ok = n >= t->limit;
    return KV_OK;
}

static void test_fewest_finds_every_answer_up_to_the_maximum(void **state)
{
    (void)state;
    for (unsigned answer = 1; answer <= 100; answer++) {
        threshold t = {answer, 0};
        kv_fewest_result r;
        assert_int_equal(kv_plan_fewest(100, at_least, &t, &r, NULL), KV_OK);
        assert_true(r.found);
        assert_int_equal(r.best, answer);
        assert_int_equal(r.evaluations, t.calls);
        unsigned lg = 0;
        while ((1u << (lg + 1)) <= answer)
            lg++;
        assert_true(r.evaluations <= 2 * (int)lg + 2);
    }
    threshold t = {101, 0};
    kv_fewest_result r;
    assert_int_equal(kv_plan_fewest(100, at_least, &t, &r, NULL), KV_OK);
    assert_false(r.found);
    assert_int_equal(r.best, 0);
    assert_int_equal(t.calls, 8); /* 1 2 4 8 16 32 64 100 */
    kv_err e = {{0}};
    assert_int_equal(kv_plan_fewest(100, broken, NULL, &r, &e), KV_ERR_INPUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bisection_finds_a_known_threshold_within_tolerance),
        cmocka_unit_test(test_bisection_reports_both_ends),
        cmocka_unit_test(test_fewest_finds_every_answer_up_to_the_maximum),
    };
    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
