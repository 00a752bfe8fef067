/* test_validate_report.c — kvgpu validate's report (analysis/validate_report.h): the three
 * validations recorded on the H100 (results/gpu/h100/validation/: both Azure traces and a
 * swapping window, each with its runs' folders) regenerate their committed report.md,
 * report.csv and steps.tsv byte for byte from those folders; and the per-step series, medians
 * and errors on tiny hand-checked files. */
#include "test_util.h"

#include "validate_report.h"

/* ------------------------------------------------------------------------------------------ */

#define VAL_DIR "results/gpu/h100/validation"

typedef struct recorded {
    const char *name, *trace, *calib;
    unsigned long long first, end;
    const char *strategies[4];
    size_t n_strategies;
} recorded;

/* As results/gpu/h100/validation/README.md lists the commands that made them. */
static const recorded RECORDED[] = {
    {"azure2023_conv",
     "traces/data/azure2023_conv.csv",
     "results/gpu/h100/calibration/llama-3-8b-h100.ini",
     0,
     200,
     {"contiguous", "chunk-pool", "paged", "compressed"},
     4},
    {"azure2023_code",
     "traces/data/azure2023_code.csv",
     "results/gpu/h100/calibration/llama-3-8b-h100.ini",
     0,
     200,
     {"contiguous", "chunk-pool", "paged", "compressed"},
     4},
    {"azure2023_conv-swap",
     "traces/data/azure2023_conv.csv",
     "/root/out/cal/llama-3-8b-h100.ini",
     0,
     300,
     {"paged", "chunk-pool", "compressed"},
     3},
};

/* The command lines of a committed report.md (between its ``` fences): what kvgpu validate
 * ran, which the report prints and the test passes through. */
static size_t read_commands(const char *report_md, char lines[][1024], size_t cap)
{
    FILE *f = fopen(report_md, "r");
    if (f == NULL)
        fail_msg("%s: cannot open", report_md);
    char line[1024];
    size_t n = 0;
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "```", 3) == 0) {
            if (in)
                break;
            in = true;
            continue;
        }
        if (in && n < cap) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(lines[n++], sizeof lines[0], "%s", line);
        }
    }
    fclose(f);
    return n;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        fail_msg("%s: cannot create", path);
    fputs(text, f);
    fclose(f);
}

#define ASSERT_NEAR(got, want, tol)                                                                \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (!(fabs(g_ - w_) <= (tol)))                                                             \
            fail_msg("%s = %.9g, want %.9g", #got, g_, w_);                                        \
    } while (0)

/* ------------------------------------------------------------------------------------------ */

static void regenerate(const recorded *r)
{
    char dir[256], path[512], ref[512], gdir[512], sdir[512];
    assert_int_equal(t_mkdtemp(dir, sizeof dir, "vreport"), 0);
    snprintf(path, sizeof path, "%s/steps.tsv", dir);
    FILE *tsv = fopen(path, "w");
    assert_non_null(tsv);
    kv_vreport_run runs[4];
    kv_err e = {{0}};
    for (size_t i = 0; i < r->n_strategies; i++) {
        snprintf(gdir, sizeof gdir, VAL_DIR "/%s/%s-gpu", r->name, r->strategies[i]);
        snprintf(sdir, sizeof sdir, VAL_DIR "/%s/%s-sim", r->name, r->strategies[i]);
        if (kv_vreport_collect(gdir, sdir, (int)i, tsv, &runs[i], &e) != KV_OK)
            fail_msg("%s", e.msg);
        runs[i].strategy = r->strategies[i];
    }
    fclose(tsv);
    static char cmd[16][1024];
    const char *cmds[16];
    snprintf(ref, sizeof ref, VAL_DIR "/%s/report.md", r->name);
    size_t n_cmds = read_commands(ref, cmd, 16);
    assert_int_equal(n_cmds, 2 * r->n_strategies);
    for (size_t i = 0; i < n_cmds; i++)
        cmds[i] = cmd[i];
    kv_vreport_info info = {r->trace, r->calib, r->first, r->end, cmds, n_cmds};
    if (kv_vreport_write(dir, &info, runs, r->n_strategies, &e) != KV_OK)
        fail_msg("%s", e.msg);
    const char *files[] = {"report.md", "report.csv", "steps.tsv"};
    for (size_t k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[k]);
        snprintf(ref, sizeof ref, VAL_DIR "/%s/%s", r->name, files[k]);
        if (!t_same_file(path, ref))
            fail_msg("%s differs from the committed %s", path, ref);
    }
    t_rm_rf(dir);
}

static void test_recorded_conv_validation_regenerates_its_committed_report(void **state)
{
    (void)state;
    regenerate(&RECORDED[0]);
}

static void test_recorded_code_validation_regenerates_its_committed_report(void **state)
{
    (void)state;
    regenerate(&RECORDED[1]);
}

static void test_recorded_swapping_validation_regenerates_its_committed_report(void **state)
{
    (void)state;
    regenerate(&RECORDED[2]);
}

/* The committed swapping window's numbers, as its README quotes them. */
static void test_recorded_swapping_validation_gives_the_quoted_errors(void **state)
{
    (void)state;
    kv_vreport_series s;
    kv_err e = {{0}};
    assert_int_equal(
        kv_vreport_read_steps(VAL_DIR "/azure2023_conv-swap/paged-gpu/gpu_steps.csv", &s, &e),
        KV_OK);
    kv_vreport_run r = {0};
    kv_vreport_run_errors(&r, &s);
    assert_int_equal(r.n_steps, 3280);
    assert_int_equal(r.n_swap_steps, 56);
    ASSERT_NEAR(r.step_err_pct, 1.95, 0.005);
    ASSERT_NEAR(r.swap_err_pct, 12.09, 0.005);
    ASSERT_NEAR(r.peak_meas_bytes / 1073741824.0, 21.76, 0.005);
    kv_vreport_series_fini(&s);
    assert_null(s.step_pred_ms);
    assert_int_equal(s.n_steps, 0);
}

/* Columns by name, in any order; steps without sequences or measured time and swaps without
 * bytes or time left out:
 *   step 0: 2 seqs, pred 11, meas 10            -> 10 %
 *   step 1: 0 seqs (idle)                       -> left out
 *   step 2: 1 seq, pred 9, meas 12, swap 4 / 5  -> 25 %, swap 20 %
 *   step 3: 1 seq, pred 30, meas 20             -> 50 %
 *   step 4: 1 seq, measured 0                   -> left out; swap bytes but no time: left out
 * step median: sorted 10 25 50 -> 25 %; swap median 20 %; peak 900. */
static void test_steps_series_and_medians_on_a_hand_checked_file(void **state)
{
    (void)state;
    char dir[256], path[512];
    assert_int_equal(t_mkdtemp(dir, sizeof dir, "vreport"), 0);
    snprintf(path, sizeof path, "%s/gpu_steps.csv", dir);
    write_file(path, "step_ms,extra,seqs,sim_step_ms,swap_bytes,swap_ms,pred_swap_ms,"
                     "device_used_bytes\n"
                     "10,x,2,11,0,0,0,500\n"
                     "7,x,0,8,0,0,0,900\n"
                     "12,x,1,9,4096,5,4,800\n"
                     "20,x,1,30,0,0,0,700\n"
                     "0,x,1,5,4096,0,3,100\n");
    kv_vreport_series s;
    kv_err e = {{0}};
    assert_int_equal(kv_vreport_read_steps(path, &s, &e), KV_OK);
    assert_int_equal(s.n_steps, 3);
    assert_int_equal(s.n_swaps, 1);
    kv_vreport_run r = {0};
    kv_vreport_run_errors(&r, &s);
    ASSERT_NEAR(r.step_err_pct, 25, 1e-12);
    ASSERT_NEAR(r.swap_err_pct, 20, 1e-12);
    ASSERT_NEAR(r.peak_meas_bytes, 900, 0);
    snprintf(path, sizeof path, "%s/steps.tsv", dir);
    FILE *f = fopen(path, "w");
    kv_vreport_write_steps(f, 3, &s);
    fclose(f);
    char want[512];
    snprintf(want, sizeof want, "%s/want.tsv", dir);
    write_file(want, "3\t11.000000\t10.000000\n3\t9.000000\t12.000000\n3\t30.000000\t20.000000\n");
    assert_true(t_same_file(path, want));
    kv_vreport_series_fini(&s);
    t_rm_rf(dir);
}

static void test_no_swaps_gives_nan_and_says_no_swaps(void **state)
{
    (void)state;
    assert_true(isnan(kv_vreport_median_abs_pct(NULL, NULL, 0)));
    const double pred[] = {1, 3}, meas[] = {2, 2};
    ASSERT_NEAR(kv_vreport_median_abs_pct(pred, meas, 2), 50, 1e-12); /* 50 50 */
    assert_string_equal(kv_vreport_metric_name(0), "output tokens/s");
    assert_string_equal(kv_vreport_metric_name(11), "swap-outs");
    assert_string_equal(kv_vreport_metric_name(12), "?");
}

static void test_bad_inputs_are_refused_with_the_file_named(void **state)
{
    (void)state;
    char dir[256], path[512];
    assert_int_equal(t_mkdtemp(dir, sizeof dir, "vreport"), 0);
    snprintf(path, sizeof path, "%s/gpu_steps.csv", dir);
    kv_vreport_series s;
    kv_err e = {{0}};
    write_file(path, "step,seqs,sim_step_ms\n0,1,2\n");
    assert_int_equal(kv_vreport_read_steps(path, &s, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "gpu_steps.csv:1: no column 'step_ms'"));
    write_file(path, "seqs,sim_step_ms,step_ms,swap_bytes,swap_ms,pred_swap_ms,device_used_bytes\n"
                     "1,2,3,0,0,0,5\n1,2,x,0,0,0,5\n");
    e.msg[0] = '\0';
    assert_int_equal(kv_vreport_read_steps(path, &s, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "gpu_steps.csv:3: step_ms: expected a number, got \"x\""));
    assert_null(s.step_pred_ms);
    write_file(path, "seqs,sim_step_ms,step_ms,swap_bytes,swap_ms,pred_swap_ms,device_used_bytes\n"
                     "1,2,3,0,0,0\n");
    e.msg[0] = '\0';
    assert_int_equal(kv_vreport_read_steps(path, &s, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, ":2: 6 columns, the header has 7"));
    e.msg[0] = '\0';
    assert_int_equal(kv_vreport_collect(dir, dir, 0, stdout, &(kv_vreport_run){0}, &e),
                     KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "summary.json"));
    double v[KV_VREPORT_N_METRICS];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    write_file(path, "{\"throughput\": {\"output_tokens_per_s\": 12.5}}");
    assert_int_equal(kv_vreport_read_summary(path, v, &e), KV_OK);
    ASSERT_NEAR(v[0], 12.5, 0);
    assert_true(isnan(v[1]));
    assert_true(isnan(kv_vreport_peak_predicted("no/such/config.json")));
    t_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded_conv_validation_regenerates_its_committed_report),
        cmocka_unit_test(test_recorded_code_validation_regenerates_its_committed_report),
        cmocka_unit_test(test_recorded_swapping_validation_regenerates_its_committed_report),
        cmocka_unit_test(test_recorded_swapping_validation_gives_the_quoted_errors),
        cmocka_unit_test(test_steps_series_and_medians_on_a_hand_checked_file),
        cmocka_unit_test(test_no_swaps_gives_nan_and_says_no_swaps),
        cmocka_unit_test(test_bad_inputs_are_refused_with_the_file_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
