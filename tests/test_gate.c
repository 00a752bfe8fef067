/* test_gate.c — the regression gate: every rule type and verdict, rules files, malformed inputs,
 * JUnit output. */
#include "test_util.h"

#include <unistd.h>

#include "gate.h"

/* ------------------------------------------------------------------------------------------ */

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return t_mkdtemp(dir, sizeof dir, "gate");
}

static int teardown(void **state)
{
    (void)state;
    return t_rm_rf(dir);
}

static const char *put(const char *name, const char *text)
{
    static char paths[4][512];
    static int k;
    char *p = paths[k++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

/* A one-rule set. */
static kv_gate_rules one(const char *metric, bool higher, double rel, double abs)
{
    kv_gate_rules r = {.n = 1};
    snprintf(r.r[0].metric, sizeof r.r[0].metric, "%s", metric);
    r.r[0].higher_is_better = higher;
    r.r[0].relative = rel;
    r.r[0].absolute = abs;
    return r;
}

static kv_verdict verdict(const char *metric, bool higher, double rel, double abs, double b,
                          double c)
{
    char tb[128], tc[128];
    snprintf(tb, sizeof tb, "{\"a\": {\"x\": %.17g}}", b);
    snprintf(tc, sizeof tc, "{\"a\": {\"x\": %.17g}}", c);
    const char *pb = put("b.json", tb), *pc = put("c.json", tc);
    kv_gate_rules r = one(metric, higher, rel, abs);
    kv_gate_result res;
    kv_err e = {{0}};
    if (kv_gate_compare(pb, pc, &r, &res, &e) != KV_OK)
        fail_msg("%s", e.msg);
    return res.rows[0].verdict;
}

/* ------------------------------------------------------------------------------------------ */

static void test_relative_rules_both_directions(void **state)
{
    (void)state;
    /* higher is better, 5%: 100 -> 96 ok, 94 regressed, 106 improved */
    assert_int_equal(verdict("a.x", true, 0.05, 0, 100, 96), KV_VERDICT_OK);
    assert_int_equal(verdict("a.x", true, 0.05, 0, 100, 94), KV_VERDICT_REGRESSED);
    assert_int_equal(verdict("a.x", true, 0.05, 0, 100, 106), KV_VERDICT_IMPROVED);
    /* lower is better: the same moves mean the opposite */
    assert_int_equal(verdict("a.x", false, 0.05, 0, 100, 94), KV_VERDICT_IMPROVED);
    assert_int_equal(verdict("a.x", false, 0.05, 0, 100, 106), KV_VERDICT_REGRESSED);
}

static void test_absolute_rules_and_the_larger_of_both(void **state)
{
    (void)state;
    assert_int_equal(verdict("a.x", false, 0, 0.01, 0.0, 0.009), KV_VERDICT_OK);
    assert_int_equal(verdict("a.x", false, 0, 0.01, 0.0, 0.011), KV_VERDICT_REGRESSED);
    assert_int_equal(verdict("a.x", false, 0, 0, 3, 3), KV_VERDICT_OK); /* zero tolerance */
    assert_int_equal(verdict("a.x", false, 0, 0, 3, 4), KV_VERDICT_REGRESSED);
    /* 10% of 1 is 0.1, absolute 0.5: 0.5 applies */
    assert_int_equal(verdict("a.x", false, 0.10, 0.5, 1, 1.4), KV_VERDICT_OK);
    assert_int_equal(verdict("a.x", false, 0.10, 0.5, 1, 1.6), KV_VERDICT_REGRESSED);
}

static void test_rules_file_and_its_errors(void **state)
{
    (void)state;
    kv_gate_rules r;
    kv_err e = {{0}};
    const char *ok = put("r.ini", "[a.x]\nbetter = lower\nrelative = 0.1\n[b]\nbetter = higher\n"
                                  "absolute = 2\n");
    assert_int_equal(kv_gate_load_rules(ok, &r, &e), KV_OK);
    assert_int_equal(r.n, 2);
    assert_false(r.r[0].higher_is_better);
    assert_true(r.r[0].relative == 0.1 && r.r[1].absolute == 2);
    struct {
        const char *text, *needle;
    } bad[] = {
        {"[a.x]\nbetter = sideways\n", ":2: [a.x] better: expected higher or lower"},
        {"[a.x]\nbetter = lower\nrelative = -1\n", ":3: [a.x] relative: expected a number"},
        {"[a.x]\nbetter = lower\ncolour = red\n", ":3: [a.x]: unknown key 'colour'"},
        {"[a.x]\nrelative = 0.1\n", "'better = higher|lower' missing"},
        {"; nothing\n", "no rules"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e.msg[0] = '\0';
        assert_int_equal(kv_gate_load_rules(put("bad.ini", bad[i].text), &r, &e), KV_ERR_INPUT);
        if (strstr(e.msg, bad[i].needle) == NULL)
            fail_msg("\"%s\" lacks \"%s\"", e.msg, bad[i].needle);
    }
    assert_int_equal(kv_gate_load_rules("/no/such/rules.ini", &r, &e), KV_ERR_IO);
}

/* Regression: the loader once reported only the first bad line, with the last key's message. */
static void test_rules_file_reports_several_bad_keys_with_their_lines(void **state)
{
    (void)state;
    kv_gate_rules r;
    kv_err e = {{0}};
    const char *p = put("bad2.ini", "[a.x]\nbetter = sideways\nrelative = 0.1\n"
                                    "absolute = -3\ncolour = red\n");
    assert_int_equal(kv_gate_load_rules(p, &r, &e), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(e.msg, ":2: [a.x] better: expected higher or lower",
                     ":4: [a.x] absolute: expected a number", ":5: [a.x]: unknown key 'colour'");
    assert_null(strstr(e.msg, ":3:"));
}

static void test_malformed_summaries_are_bad_input(void **state)
{
    (void)state;
    kv_gate_rules r = one("a.x", true, 0.05, 0);
    kv_gate_result res;
    kv_err e = {{0}};
    const char *good = put("g.json", "{\"a\": {\"x\": 1}}");
    assert_int_equal(kv_gate_compare(good, put("t.json", "{\"a\": {\"x\": 1"), &r, &res, &e),
                     KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "invalid JSON"));
    e.msg[0] = '\0';
    assert_int_equal(kv_gate_compare(good, put("m.json", "{\"a\": {\"y\": 1}}"), &r, &res, &e),
                     KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "metric 'a.x' missing"));
    e.msg[0] = '\0';
    assert_int_equal(
        kv_gate_compare(good, put("s.json", "{\"a\": {\"x\": \"fast\"}}"), &r, &res, &e),
        KV_ERR_INPUT);
    assert_int_equal(kv_gate_compare(good, put("arr.json", "[1, 2]"), &r, &res, &e), KV_ERR_INPUT);
    e.msg[0] = '\0';
    assert_int_equal(kv_gate_compare("/no/such.json", good, &r, &res, &e), KV_ERR_IO);
}

static void test_defaults_cover_a_real_summary_and_junit_lists_failures(void **state)
{
    (void)state;
    kv_gate_rules r;
    kv_gate_default_rules(&r);
    const char *base = "results/baseline/azure2023_conv/paged/summary.json";
    const char *worse = "results/baseline/azure2023_conv/contiguous-max/summary.json";
    kv_gate_result res;
    kv_err e = {{0}};
    assert_int_equal(kv_gate_compare(base, base, &r, &res, &e), KV_OK);
    assert_int_equal(res.n, r.n);
    assert_int_equal(res.n_regressed + res.n_improved, 0);
    assert_int_equal(kv_gate_compare(base, worse, &r, &res, &e), KV_OK);
    assert_true(res.n_regressed > 0);
    char path[512];
    snprintf(path, sizeof path, "%s/junit.xml", dir);
    assert_int_equal(kv_gate_write_junit(path, "t", &res, &e), KV_OK);
    FILE *f = fopen(path, "r");
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char want[64];
    snprintf(want, sizeof want, "failures=\"%d\"", res.n_regressed);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "<failure message=\"throughput.output_tokens_per_s regressed\""));
}

/* Regression: a rule named a"<b>&c made an invalid JUnit file while the gate exited 0. */
static void test_junit_escapes_names_and_suite(void **state)
{
    (void)state;
    kv_gate_rule rule = {.metric = "a\"<b>&c'", .higher_is_better = true};
    kv_gate_result res = {.n = 1, .n_regressed = 1};
    res.rows[0] = (kv_gate_row){.rule = &rule, .baseline = 2, .current = 1, .allowed = 0.1,
                                .verdict = KV_VERDICT_REGRESSED};
    char path[512];
    snprintf(path, sizeof path, "%s/junit-esc.xml", dir);
    kv_err e = {{0}};
    assert_int_equal(kv_gate_write_junit(path, "suite \"<x>\"", &res, &e), KV_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "<testsuite name=\"suite &quot;&lt;x&gt;&quot;\""));
    assert_non_null(strstr(buf, "name=\"a&quot;&lt;b&gt;&amp;c&apos;\""));
    assert_non_null(strstr(buf, "<failure message=\"a&quot;&lt;b&gt;&amp;c&apos; regressed\""));
    assert_null(strstr(buf, "a\"<b>")); /* nothing raw */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative_rules_both_directions),
        cmocka_unit_test(test_absolute_rules_and_the_larger_of_both),
        cmocka_unit_test(test_rules_file_and_its_errors),
        cmocka_unit_test(test_rules_file_reports_several_bad_keys_with_their_lines),
        cmocka_unit_test(test_malformed_summaries_are_bad_input),
        cmocka_unit_test(test_defaults_cover_a_real_summary_and_junit_lists_failures),
        cmocka_unit_test(test_junit_escapes_names_and_suite),
    };
    return cmocka_run_group_tests_name("gate", tests, setup, teardown);
}
