/* test_run.c — one replay as one call (run.h): the options and named configurations, kv_run's
 * errors, and replay, compare, plan and sweep on a trace in a folder whose name holds a space, a
 * single quote and a double quote (no command line is formatted anywhere, so nothing breaks).
 */
#include "test_util.h"

#include <jansson.h>

#include "cli_plan.h"
#include "cli_replay.h"
#include "cli_sweep.h"
#include "run.h"

/* ------------------------------------------------------------------------------------------ */

static const char *const TRACE = "traces/data/azure2023_conv.csv";

static char root[256]; /* a plain temporary folder */
static char odd[512];  /* root/it's a "odd" dir */
static char odd_trace[700];

static int setup(void **state)
{
    (void)state;
    if (t_mkdtemp(root, sizeof root, "run") != 0)
        return -1;
    snprintf(odd, sizeof odd, "%s/it's a \"odd\" dir", root);
    kv_err e = {{0}};
    if (kv_fs_mkdirs(odd, &e) != KV_OK)
        return -1;
    /* the trace, copied byte for byte */
    snprintf(odd_trace, sizeof odd_trace, "%s/conv 'x' \"y\".csv", odd);
    FILE *in = fopen(TRACE, "rb"), *out = fopen(odd_trace, "wb");
    if (!in || !out)
        return -1;
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    return fclose(out) == 0 && kv_fs_same_bytes(TRACE, odd_trace) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return t_rm_rf(root);
}

static void same(const char *dir_a, const char *dir_b, const char *file)
{
    char a[1200], b[1200];
    snprintf(a, sizeof a, "%s/%s", dir_a, file);
    snprintf(b, sizeof b, "%s/%s", dir_b, file);
    if (!t_same_file(a, b))
        fail_msg("%s differs between %s and %s", file, dir_a, dir_b);
}

/* ------------------------------------------------------------------------------------------ */

static void test_named_configurations_are_one_table_with_compare_first(void **state)
{
    (void)state;
    static const char *const compare[] = {"contiguous-max", "contiguous-pow2", "contiguous-oracle",
                                          "chunk-pool",     "paged",           "compressed-fp8"};
    assert_true(kv_named_config_count() > 6);
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(kv_named_config_at(i)->name, compare[i]);
        assert_true(kv_named_config_at(i)->in & KV_NAMED_IN_COMPARE);
    }
    for (size_t i = 6; i < kv_named_config_count(); i++)
        assert_false(kv_named_config_at(i)->in & KV_NAMED_IN_COMPARE);
    assert_null(kv_named_config_find("pagd"));
    char names[512];
    kv_named_config_list(names, sizeof names);
    assert_non_null(strstr(names, "contiguous-max, contiguous-pow2"));
    assert_non_null(strstr(names, "compressed-int4"));
}

static void test_a_named_configuration_sets_only_what_its_name_says(void **state)
{
    (void)state;
    kv_shape sh = t_shape();
    kv_alloc_config ac;
    kv_alloc_config_default(&ac, KV_PAGED, &sh, 1 << 20);
    ac.paged.block_tokens = 32;
    ac.contiguous.fit = KV_FIT_BUDDY;
    kv_named_config_apply(kv_named_config_find("contiguous-pow2"), &ac);
    assert_int_equal(ac.strategy, KV_CONTIGUOUS);
    assert_int_equal(ac.contiguous.reserve, KV_RESERVE_POW2);
    assert_int_equal(ac.contiguous.fit, KV_FIT_BUDDY); /* not named: left */
    assert_int_equal(ac.paged.block_tokens, 32);
    kv_named_config_apply(kv_named_config_find("contiguous-oracle-best-fit"), &ac);
    assert_int_equal(ac.contiguous.reserve, KV_RESERVE_ORACLE);
    assert_int_equal(ac.contiguous.fit, KV_FIT_BEST);
    kv_named_config_apply(kv_named_config_find("compressed-int4"), &ac);
    assert_int_equal(ac.strategy, KV_COMPRESSED);
    assert_int_equal(ac.compressed.elem_bits, 4);
    assert_int_equal(ac.compressed.scale_group_elems, 32);
    assert_int_equal(ac.compressed.scale_bytes, 2);
    assert_true(ac.paged.prefix_caching);
    kv_named_config_apply(kv_named_config_find("compressed-fp8-window"), &ac);
    assert_int_equal(ac.compressed.elem_bits, 8);
    assert_int_equal(ac.compressed.policy, KV_TOKENS_WINDOW);
    assert_false(ac.paged.prefix_caching); /* dropped tokens break shared prefixes */
    kv_named_config_apply(kv_named_config_find("chunk-pool-fused"), &ac);
    assert_int_equal(ac.strategy, KV_CHUNK_POOL);
    assert_int_equal(ac.chunk.layout, KV_CHUNK_FUSED);
    assert_int_equal(kv_named_config_find("paged")->sizes, KV_NAMED_BLOCK_TOKENS);
    assert_int_equal(kv_named_config_find("chunk-pool")->sizes, KV_NAMED_CHUNK_BYTES);
}

static void test_options_set_fields_and_bad_values_name_the_option(void **state)
{
    (void)state;
    kv_run_config c;
    kv_run_config_default(&c);
    char *words[] = {
        "--max-num-seqs", "1024",       "--perfetto",  "--chunk-mib", "0.5", "--preempt",
        "swap",           "--replicas", "3",           "--limit",     "7",   "-o",
        "dir with space", "--router",   "least-tokens"};
    kv_err e = {{0}};
    assert_int_equal(kv_run_config_args(&c, 15, words, &e), KV_OK);
    assert_int_equal(c.engine.max_num_seqs, 1024);
    assert_true(c.report.perfetto);
    assert_int_equal(c.alloc.chunk.chunk_bytes, 512 * 1024);
    assert_int_equal(c.engine.preempt, KV_PREEMPT_SWAP);
    assert_true(c.routed);
    assert_int_equal(c.replicas, 3);
    assert_int_equal(c.router, KV_ROUTE_LEAST_TOKENS);
    assert_int_equal(c.limit, 7);
    assert_string_equal(c.out_dir, "dir with space");
    assert_int_equal(kv_run_option_arity("--check"), 0);
    assert_int_equal(kv_run_option_arity("--tp"), 1);
    assert_int_equal(kv_run_option_arity("--plot"), -1);
    struct {
        const char *opt, *value, *needle;
    } bad[] = {
        {"--tp", "0", "option --tp: expected an integer in 1..64, got \"0\""},
        {"--gpu-mem-util", "2", "option --gpu-mem-util: expected a number"},
        {"--strategy", "pagd", "option --strategy: unknown value \"pagd\""},
        {"--preempt", "never", "expected recompute or swap"},
        {"--format", "xml", "unknown format \"xml\""},
        {"--colour", "red", "unknown option --colour"},
        {"--max-num-seqs", NULL, "option --max-num-seqs needs a value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv_err x = {{0}};
        assert_int_equal(kv_run_config_set(&c, bad[i].opt, bad[i].value, &x), KV_ERR_INPUT);
        if (strstr(x.msg, bad[i].needle) == NULL)
            fail_msg("\"%s\" lacks \"%s\"", x.msg, bad[i].needle);
    }
    char *stray[] = {"--limit", "5", "extra"};
    assert_int_equal(kv_run_config_args(&c, 3, stray, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "unexpected argument extra"));
}

static void test_run_errors_are_statuses_with_messages(void **state)
{
    (void)state;
    char out[600];
    snprintf(out, sizeof out, "%s/errors", root);
    kv_run_config c;
    kv_run_config_default(&c);
    c.trace = TRACE;
    c.out_dir = out;
    c.limit = 10;
    c.model = "No-Such-Model";
    kv_err e = {{0}};
    assert_int_equal(kv_run(&c, NULL, NULL, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "No-Such-Model"));
    kv_run_config_default(&c);
    c.trace = TRACE;
    c.out_dir = out;
    c.decision_log = "unused.log";
    c.routed = true;
    c.replicas = 2;
    e = (kv_err){{0}};
    assert_int_equal(kv_run(&c, NULL, NULL, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "--replicas"));
    kv_run_config_default(&c);
    c.trace = "no/such/trace.csv";
    c.out_dir = out;
    e = (kv_err){{0}};
    assert_int_not_equal(kv_run(&c, NULL, NULL, &e), KV_OK);
    assert_non_null(strstr(e.msg, "no/such/trace.csv"));
}

/* kvsim replay through its argv entry: the same files as from the plain path, and config.json
 * records the odd path as valid JSON. */
static void test_replay_of_a_trace_in_an_odd_folder(void **state)
{
    (void)state;
    char plain[600], odd_out[700];
    snprintf(plain, sizeof plain, "%s/replay-plain", root);
    snprintf(odd_out, sizeof odd_out, "%s/replay \"out\" 'here'", odd);
    char *a1[] = {"replay", (char *)TRACE,    "--strategy", "paged", "--limit",
                  "300",    "--no-wall-time", "-o",         plain,   NULL};
    char *a2[] = {"replay", odd_trace,        "--strategy", "paged", "--limit",
                  "300",    "--no-wall-time", "-o",         odd_out, NULL};
    assert_int_equal(kv_cli_replay_main(9, a1), 0);
    assert_int_equal(kv_cli_replay_main(9, a2), 0);
    same(plain, odd_out, "requests.csv");
    same(plain, odd_out, "timeline.csv");
    char cfg[900];
    snprintf(cfg, sizeof cfg, "%s/config.json", odd_out);
    json_error_t je;
    json_t *j = json_load_file(cfg, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "trace")), odd_trace);
    json_decref(j);
}

static void test_compare_of_a_trace_in_an_odd_folder(void **state)
{
    (void)state;
    char plain[600], odd_out[700];
    snprintf(plain, sizeof plain, "%s/compare-plain", root);
    snprintf(odd_out, sizeof odd_out, "%s/compare 'out'", odd);
    char *a1[] = {"compare", (char *)TRACE, "--limit", "300", "--no-wall-time", "-o", plain, NULL};
    char *a2[] = {"compare", odd_trace, "--limit", "300", "--no-wall-time", "-o", odd_out, NULL};
    assert_int_equal(kv_cli_compare_main(7, a1), 0);
    assert_int_equal(kv_cli_compare_main(7, a2), 0);
    same(plain, odd_out, "compare.csv");
    for (size_t i = 0; i < 6; i++) {
        char a[700], b[800];
        snprintf(a, sizeof a, "%s/%s", plain, kv_named_config_at(i)->name);
        snprintf(b, sizeof b, "%s/%s", odd_out, kv_named_config_at(i)->name);
        same(a, b, "requests.csv");
    }
}

/* A tiny rate search: three evaluations per configuration, its figure in the odd folder too. */
static void test_plan_of_a_trace_in_an_odd_folder(void **state)
{
    (void)state;
    char plain[600], odd_out[700], png[800];
    snprintf(plain, sizeof plain, "%s/plan-plain", root);
    snprintf(odd_out, sizeof odd_out, "%s/plan \"out\"", odd);
    char *a1[] = {"plan", "rate", (char *)TRACE, "--limit", "200", "--lo", "1",
                  "--hi", "4",    "--tol",       "0.5",     "-o",  plain,  NULL};
    char *a2[] = {"plan", "rate", odd_trace, "--limit", "200", "--lo",  "1",
                  "--hi", "4",    "--tol",   "0.5",     "-o",  odd_out, NULL};
    assert_int_equal(kv_cli_plan_main(13, a1), 0);
    assert_int_equal(kv_cli_plan_main(13, a2), 0);
    same(plain, odd_out, "plan.tsv");
    snprintf(png, sizeof png, "%s/plan.png", odd_out);
    FILE *f = fopen(png, "rb");
    assert_non_null(f);
    fclose(f);
}

static void test_sweep_of_a_trace_in_an_odd_folder(void **state)
{
    (void)state;
    char spec_plain[600], spec_odd[700], csv_plain[600], csv_odd[700];
    snprintf(spec_plain, sizeof spec_plain, "%s/plain.ini", root);
    snprintf(spec_odd, sizeof spec_odd, "%s/odd 'spec'.ini", odd);
    snprintf(csv_plain, sizeof csv_plain, "%s/plain.csv", root);
    snprintf(csv_odd, sizeof csv_odd, "%s/odd \"rows\".csv", odd);
    const char *traces[2] = {TRACE, odd_trace}, *specs[2] = {spec_plain, spec_odd};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(specs[k], "w");
        assert_non_null(f);
        fprintf(f,
                "[sweep]\ntrace = %s\nstrategies = paged, contiguous-max\nrate_scales = 1, 2\n"
                "block_tokens = 16, 32\nargs = --limit 200 --max-num-seqs 512\n",
                traces[k]);
        fclose(f);
    }
    char *a1[] = {"sweep", spec_plain, "-j", "2", "-o", csv_plain, NULL};
    char *a2[] = {"sweep", spec_odd, "-j", "2", "-o", csv_odd, NULL};
    assert_int_equal(kv_cli_sweep_main(6, a1), 0);
    assert_int_equal(kv_cli_sweep_main(6, a2), 0);
    assert_true(t_same_file(csv_plain, csv_odd));
    FILE *f = fopen(csv_odd, "r");
    char line[2048];
    int rows = 0;
    while (fgets(line, sizeof line, f))
        rows++;
    fclose(f);
    assert_int_equal(rows, 1 + 2 * 2 + 2); /* paged: 2 sizes x 2 rates; contiguous: 2 rates */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_named_configurations_are_one_table_with_compare_first),
        cmocka_unit_test(test_a_named_configuration_sets_only_what_its_name_says),
        cmocka_unit_test(test_options_set_fields_and_bad_values_name_the_option),
        cmocka_unit_test(test_run_errors_are_statuses_with_messages),
        cmocka_unit_test(test_replay_of_a_trace_in_an_odd_folder),
        cmocka_unit_test(test_compare_of_a_trace_in_an_odd_folder),
        cmocka_unit_test(test_plan_of_a_trace_in_an_odd_folder),
        cmocka_unit_test(test_sweep_of_a_trace_in_an_odd_folder),
    };
    return cmocka_run_group_tests_name("run", tests, setup, teardown);
}
