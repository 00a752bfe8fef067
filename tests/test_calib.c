/* test_calib.c — the cost-model fits behind `kvgpu calibrate` (analysis/calib.h), on the
 * measurements the H100 calibration recorded (results/gpu/h100/calibration/
 * llama-3-8b-h100.ini.csv: every measured step and swap, written by `kvgpu calibrate` beside
 * the calibration file), on synthetic steps priced by the cost model itself, and on a tiny
 * hand-checked case. */
#include "test_util.h"

#include <ini.h>

#include "calib.h"
#include "costmodel.h"
#include "preset.h"

/* ------------------------------------------------------------------------------------------ */

#define H100_INI "results/gpu/h100/calibration/llama-3-8b-h100.ini"
#define H100_CSV H100_INI ".csv"

/* Llama-3-8B on the H100-80GB preset, one GPU, bf16 KV: the starting model of the recorded
 * calibration (kvgpu calibrate's defaults). */
static kv_costmodel h100_start(void)
{
    kv_model m;
    kv_gpu g;
    kv_err e = {{0}};
    if (kv_model_load("Llama-3-8B", &m, &e) != KV_OK || kv_gpu_load("H100-80GB", &g, &e) != KV_OK)
        fail_msg("%s", e.msg);
    kv_shape sh = kv_model_shape(&m, 1);
    kv_costmodel cm;
    kv_costmodel_init(&cm, &m, &g, 1, kv_shape_token_bytes(&sh));
    return cm;
}

static kv_calib *create(const kv_costmodel *cm)
{
    kv_calib *c = NULL;
    kv_err e = {{0}};
    if (kv_calib_create(cm, &c, &e) != KV_OK)
        fail_msg("%s", e.msg);
    return c;
}

static void fit_ok(kv_calib *c, kv_calib_fit *fit)
{
    kv_err e = {{0}};
    if (kv_calib_fit_all(c, fit, &e) != KV_OK)
        fail_msg("%s", e.msg);
}

/* Every key = value of one section of an INI file, as numbers. */
typedef struct ini_vals {
    const char *section;
    char key[32][48];
    double v[32];
    int n;
} ini_vals;

static int on_ini(void *user, const char *section, const char *key, const char *value)
{
    ini_vals *iv = user;
    if (strcmp(section, iv->section) == 0 && iv->n < 32) {
        snprintf(iv->key[iv->n], sizeof iv->key[0], "%s", key);
        iv->v[iv->n++] = atof(value);
    }
    return 1;
}

static double ini_get(const ini_vals *iv, const char *key)
{
    for (int i = 0; i < iv->n; i++)
        if (strcmp(iv->key[i], key) == 0)
            return iv->v[i];
    fail_msg("key %s missing from [%s]", key, iv->section);
    return NAN;
}

static ini_vals read_section(const char *path, const char *section)
{
    ini_vals iv = {.section = section};
    if (ini_parse(path, on_ini, &iv) != 0)
        fail_msg("%s: cannot parse", path);
    return iv;
}

#define ASSERT_NEAR(got, want, tol)                                                                \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (!(fabs(g_ - w_) <= (tol)))                                                             \
            fail_msg("%s = %.9g, want %.9g (tolerance %g)", #got, g_, w_, (double)(tol));          \
    } while (0)

/* Synthetic steps: the recorded calibration's grid, measured times priced by truth. */
static void add_priced_steps(kv_calib *c, const kv_costmodel *truth)
{
    kv_err e = {{0}};
    const uint32_t batches[] = {1, 4, 16, 32, 64, 128, 256}, contexts[] = {128, 512, 2048, 8000};
    for (size_t i = 0; i < 7; i++)
        for (size_t j = 0; j < 4; j++) {
            kv_calib_step s = {KV_CALIB_DECODE, batches[i], contexts[j], 0, 0, 0};
            kv_step_work w = kv_calib_step_work(&s);
            s.measured_s = kv_costmodel_step((void *)truth, &w).compute_s;
            assert_int_equal(kv_calib_add_step(c, &s, &e), KV_OK);
        }
    const uint32_t chunks[] = {64, 256, 1024, 2048, 4096, 8192};
    for (size_t i = 0; i < 6; i++)
        for (uint32_t c0 = 0; c0 <= 2048; c0 += 2048) {
            kv_calib_step s = {KV_CALIB_PREFILL, 0, 0, chunks[i], c0, 0};
            kv_step_work w = kv_calib_step_work(&s);
            s.measured_s = kv_costmodel_step((void *)truth, &w).compute_s;
            assert_int_equal(kv_calib_add_step(c, &s, &e), KV_OK);
        }
    for (uint32_t ch = 512; ch <= 2048; ch += 1536)
        for (uint32_t b = 32; b <= 128; b += 96) {
            kv_calib_step s = {KV_CALIB_MIXED, b, 1024, ch, 0, 0};
            kv_step_work w = kv_calib_step_work(&s);
            s.measured_s = kv_costmodel_step((void *)truth, &w).compute_s;
            assert_int_equal(kv_calib_add_step(c, &s, &e), KV_OK);
        }
}

/* ------------------------------------------------------------------------------------------ */

static void test_refit_of_recorded_h100_measurements_gives_the_committed_calibration(void **state)
{
    (void)state;
    kv_costmodel start = h100_start();
    kv_calib *c = create(&start);
    kv_err e = {{0}};
    assert_int_equal(kv_calib_load_csv(c, H100_CSV, &e), KV_OK);
    assert_int_equal(kv_calib_n_steps(c), 39);
    assert_int_equal(kv_calib_n_swaps(c), 30);
    kv_calib_fit fit;
    fit_ok(c, &fit);

    ini_vals cal = read_section(H100_INI, "calibration"), fr = read_section(H100_INI, "fit");
    /* the file prints 6 decimals (efficiencies, ms) and 4 (us, GB/s); the fit runs on times
     * the CSV rounded to 1 ns, so agreement to a few units in the last printed place */
    ASSERT_NEAR(fit.gpu.eff_memory, ini_get(&cal, "eff_memory"), 2e-5);
    ASSERT_NEAR(fit.gpu.eff_compute, ini_get(&cal, "eff_compute"), 2e-5);
    ASSERT_NEAR(fit.gpu.step_overhead_ms, ini_get(&cal, "step_overhead_ms"), 2e-5);
    ASSERT_NEAR(fit.gpu.copy_latency_us, ini_get(&cal, "copy_latency_us"), 2e-3);
    ASSERT_NEAR(fit.gpu.d2h_gbps, ini_get(&cal, "d2h_gbps"), 2e-3);
    ASSERT_NEAR(fit.gpu.h2d_gbps, ini_get(&cal, "h2d_gbps"), 2e-3);
    ASSERT_NEAR(fit.copy_latency_out_us, ini_get(&fr, "copy_latency_out_us"), 2e-3);
    ASSERT_NEAR(fit.copy_latency_in_us, ini_get(&fr, "copy_latency_in_us"), 2e-3);
    ASSERT_NEAR(fit.r2_steps, ini_get(&fr, "r2_steps"), 2e-5);
    ASSERT_NEAR(fit.median_abs_pct_err_all, ini_get(&fr, "median_abs_pct_err_all"), 2e-3);
    ASSERT_NEAR(fit.median_abs_pct_err_phase[KV_CALIB_DECODE],
                ini_get(&fr, "median_abs_pct_err_decode"), 2e-3);
    ASSERT_NEAR(fit.median_abs_pct_err_phase[KV_CALIB_PREFILL],
                ini_get(&fr, "median_abs_pct_err_prefill"), 2e-3);
    ASSERT_NEAR(fit.median_abs_pct_err_phase[KV_CALIB_MIXED],
                ini_get(&fr, "median_abs_pct_err_mixed"), 2e-3);
    ASSERT_NEAR(fit.median_abs_pct_err_swaps, ini_get(&fr, "median_abs_pct_err_swaps"), 2e-3);
    assert_int_equal(fit.n_steps, (size_t)ini_get(&fr, "steps"));
    assert_int_equal(fit.n_swaps, (size_t)ini_get(&fr, "swaps"));
    assert_int_equal(fit.n_phase_steps[KV_CALIB_DECODE], 24);
    assert_int_equal(fit.n_phase_steps[KV_CALIB_PREFILL], 11);
    assert_int_equal(fit.n_phase_steps[KV_CALIB_MIXED], 4);
    for (int p = 0; p < KV_CALIB_N_PARAMS; p++)
        if (fit.at_bound[p])
            fail_msg("%s flagged at a bound: %s", kv_calib_param_name(p), fit.bound_msg);
    assert_string_equal(fit.bound_msg, "");
    kv_calib_destroy(&c);
    assert_null(c);
}

/* With the recorded map costs supplied, the files written are the committed ones, byte for
 * byte: same keys, same rounding, same rows in the same order with the same predictions. */
static void test_write_of_recorded_h100_refit_reproduces_the_committed_files(void **state)
{
    (void)state;
    kv_costmodel start = h100_start();
    kv_calib *c = create(&start);
    kv_err e = {{0}};
    assert_int_equal(kv_calib_load_csv(c, H100_CSV, &e), KV_OK);
    ini_vals cal = read_section(H100_INI, "calibration");
    /* maps were measured as totals over 8 rounds; their means are all the file kept */
    kv_calib_set_maps(c, ini_get(&cal, "map_us") * 1e-6, 1, ini_get(&cal, "unmap_us") * 1e-6, 1);
    kv_calib_fit fit;
    fit_ok(c, &fit);
    char dir[256], path[512], csv[600];
    assert_int_equal(t_mkdtemp(dir, sizeof dir, "calib"), 0);
    snprintf(path, sizeof path, "%s/llama-3-8b-h100.ini", dir);
    snprintf(csv, sizeof csv, "%s.csv", path);
    kv_calib_info info = {"Llama-3-8B", "H100-80GB", "NVIDIA H100 80GB HBM3", false, 32, 32};
    assert_int_equal(kv_calib_write(c, &fit, &info, path, &e), KV_OK);
    if (!t_same_file(path, H100_INI))
        fail_msg("%s differs from %s", path, H100_INI);
    if (!t_same_file(csv, H100_CSV))
        fail_msg("%s differs from %s", csv, H100_CSV);
    /* and kvsim loads it */
    kv_costmodel cm = start;
    assert_int_equal(kv_costmodel_calibrate(&cm, path, &e), KV_OK);
    ASSERT_NEAR(cm.gpu.eff_memory, fit.gpu.eff_memory, 1e-6);
    t_rm_rf(dir);
    kv_calib_destroy(&c);
}

/* A step overhead that is truly 0 ends at the bound, and the fit says so. */
static void test_fit_whose_true_overhead_is_zero_reports_the_bound(void **state)
{
    (void)state;
    kv_costmodel start = h100_start(), truth = start;
    truth.gpu.eff_memory = 0.7;
    truth.gpu.eff_compute = 0.5;
    truth.gpu.step_overhead_ms = 0;
    kv_calib *c = create(&start); /* starts from the preset: 0.8, 0.6, 0.57 ms */
    add_priced_steps(c, &truth);
    kv_calib_fit fit;
    fit_ok(c, &fit);
    ASSERT_NEAR(fit.gpu.eff_memory, 0.7, 1e-6);
    ASSERT_NEAR(fit.gpu.eff_compute, 0.5, 1e-6);
    assert_true(fit.gpu.step_overhead_ms >= 0 && fit.gpu.step_overhead_ms <= 1e-6);
    assert_true(fit.at_bound[KV_CALIB_STEP_OVERHEAD_MS]);
    assert_false(fit.at_bound[KV_CALIB_EFF_MEMORY]);
    assert_false(fit.at_bound[KV_CALIB_EFF_COMPUTE]);
    assert_non_null(strstr(fit.bound_msg, "step_overhead_ms = 0 is at its lower bound 0"));
    assert_null(strstr(fit.bound_msg, "eff_"));
    ASSERT_NEAR(fit.median_abs_pct_err_all, 0, 1e-4);

    /* the file records it as a comment, which kvsim's loader skips */
    char dir[256], path[512];
    assert_int_equal(t_mkdtemp(dir, sizeof dir, "calib"), 0);
    snprintf(path, sizeof path, "%s/zero.ini", dir);
    kv_calib_info info = {"Llama-3-8B", "H100-80GB", "synthetic", true, 4, 32};
    kv_err e = {{0}};
    assert_int_equal(kv_calib_write(c, &fit, &info, path, &e), KV_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    bool seen = false;
    while (fgets(line, sizeof line, f))
        seen |= strncmp(line, "# at a bound: step_overhead_ms = 0", 34) == 0;
    fclose(f);
    assert_true(seen);
    kv_costmodel cm = start;
    assert_int_equal(kv_costmodel_calibrate(&cm, path, &e), KV_OK);
    assert_true(cm.gpu.step_overhead_ms == fit.gpu.step_overhead_ms ||
                fabs(cm.gpu.step_overhead_ms) < 1e-6);
    t_rm_rf(dir);
    kv_calib_destroy(&c);
}

/* Steps faster than the roofline allows at any overhead: the unbounded optimum would be a
 * negative overhead; the fit stops at 0 and flags it (the H200's 0.000 ms, issue 13). */
static void test_fit_that_wants_a_negative_overhead_stops_at_the_bound_and_says_so(void **state)
{
    (void)state;
    kv_costmodel start = h100_start(), truth = start;
    truth.gpu.eff_memory = 0.7;
    truth.gpu.eff_compute = 0.5;
    truth.gpu.step_overhead_ms = 0;
    kv_calib *c = create(&start);
    /* every step 1 ms cheaper than the roofline alone (the smallest is ~7.5 ms) */
    const uint32_t batches[] = {1, 16, 64, 256}, contexts[] = {128, 2048};
    kv_err e = {{0}};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 2; j++) {
            kv_calib_step s = {KV_CALIB_DECODE, batches[i], contexts[j], 0, 0, 0};
            kv_step_work w = kv_calib_step_work(&s);
            s.measured_s = kv_costmodel_step(&truth, &w).compute_s - 1e-3;
            assert_int_equal(kv_calib_add_step(c, &s, &e), KV_OK);
        }
    for (uint32_t ch = 1024; ch <= 8192; ch *= 2) {
        kv_calib_step s = {KV_CALIB_PREFILL, 0, 0, ch, 0, 0};
        kv_step_work w = kv_calib_step_work(&s);
        s.measured_s = kv_costmodel_step(&truth, &w).compute_s - 1e-3;
        assert_int_equal(kv_calib_add_step(c, &s, &e), KV_OK);
    }
    kv_calib_fit fit;
    fit_ok(c, &fit);
    assert_true(fit.gpu.step_overhead_ms == 0);
    assert_true(fit.at_bound[KV_CALIB_STEP_OVERHEAD_MS]);
    assert_non_null(strstr(fit.bound_msg, "step_overhead_ms"));
    kv_calib_destroy(&c);
}

/* Every prediction is 10 ms (a cost model with no roofline, only the overhead), so each error
 * is |10 - m| / m:
 *   decode  10, 8, 12.5 ms -> 0, 25, 20 %      median (the middle one)        20 %
 *   prefill 5, 20 ms       -> 100, 50 %        median (upper of the two)     100 %
 *   mixed   10 ms          -> 0 %                                              0 %
 *   all     0 0 20 25 50 100, index 3                                         25 %
 * R^2 = 1 - SS_res / SS_tot with SS_res = 0 + 4 + 6.25 + 25 + 100 + 0 = 135.25 ms^2 and
 * SS_tot = sum m^2 - (sum m)^2 / n = 845.25 - 65.5^2 / 6 = 130.208333 ms^2. */
static void test_per_phase_errors_on_a_hand_checked_case(void **state)
{
    (void)state;
    kv_costmodel cm = {0};
    cm.gpu.bf16_tflops = cm.gpu.hbm_tbps = cm.gpu.eff_compute = cm.gpu.eff_memory = 1;
    cm.gpu.step_overhead_ms = 10;
    kv_calib *c = create(&cm);
    const struct {
        kv_calib_phase phase;
        double ms;
    } steps[] = {{KV_CALIB_DECODE, 10}, {KV_CALIB_PREFILL, 5},   {KV_CALIB_DECODE, 8},
                 {KV_CALIB_MIXED, 10},  {KV_CALIB_DECODE, 12.5}, {KV_CALIB_PREFILL, 20}};
    kv_err e = {{0}};
    for (size_t i = 0; i < 6; i++) {
        kv_calib_step s = {steps[i].phase,
                           steps[i].phase == KV_CALIB_PREFILL ? 0 : 4,
                           100,
                           steps[i].phase == KV_CALIB_DECODE ? 0 : 64,
                           0,
                           steps[i].ms * 1e-3};
        assert_int_equal(kv_calib_add_step(c, &s, &e), KV_OK);
    }
    kv_calib_fit fit;
    memset(&fit, 0, sizeof fit);
    kv_calib_evaluate(c, &cm, &fit);
    assert_int_equal(fit.n_steps, 6);
    assert_int_equal(fit.n_phase_steps[KV_CALIB_DECODE], 3);
    assert_int_equal(fit.n_phase_steps[KV_CALIB_PREFILL], 2);
    assert_int_equal(fit.n_phase_steps[KV_CALIB_MIXED], 1);
    ASSERT_NEAR(fit.median_abs_pct_err_phase[KV_CALIB_DECODE], 20, 1e-9);
    ASSERT_NEAR(fit.median_abs_pct_err_phase[KV_CALIB_PREFILL], 100, 1e-9);
    ASSERT_NEAR(fit.median_abs_pct_err_phase[KV_CALIB_MIXED], 0, 1e-9);
    ASSERT_NEAR(fit.median_abs_pct_err_all, 25, 1e-9);
    ASSERT_NEAR(fit.r2_steps, 1 - 135.25 / (845.25 - 65.5 * 65.5 / 6), 1e-9);
    kv_calib_destroy(&c);
}

static void test_phase_without_steps_has_no_median(void **state)
{
    (void)state;
    kv_costmodel cm = {0};
    cm.gpu.bf16_tflops = cm.gpu.hbm_tbps = cm.gpu.eff_compute = cm.gpu.eff_memory = 1;
    cm.gpu.step_overhead_ms = 1;
    kv_calib *c = create(&cm);
    kv_calib_step s = {KV_CALIB_DECODE, 1, 10, 0, 0, 2e-3};
    kv_err e = {{0}};
    assert_int_equal(kv_calib_add_step(c, &s, &e), KV_OK);
    kv_calib_fit fit;
    kv_calib_evaluate(c, &cm, &fit);
    ASSERT_NEAR(fit.median_abs_pct_err_phase[KV_CALIB_DECODE], 50, 1e-9);
    assert_true(isnan(fit.median_abs_pct_err_phase[KV_CALIB_PREFILL]));
    assert_int_equal(fit.n_phase_steps[KV_CALIB_MIXED], 0);
    /* and a fit of one step is refused, with a message */
    assert_int_equal(kv_calib_fit_all(c, &fit, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "at least 3"));
    kv_calib_destroy(&c);
}

/* A swap latency that is truly 0 is flagged, per direction; a bandwidth is recovered. */
static void test_swap_fit_separates_latency_and_bandwidth_and_flags_a_zero_latency(void **state)
{
    (void)state;
    kv_costmodel start = h100_start();
    kv_calib *c = create(&start);
    add_priced_steps(c, &start);
    kv_err e = {{0}};
    for (uint64_t copies = 1; copies <= 4096; copies *= 8)
        for (uint64_t mib = 2; mib <= 512; mib *= 4) {
            uint64_t bytes = mib << 20;
            kv_calib_swap out = {true, copies, bytes, copies * 3e-6 + bytes / 50e9};
            kv_calib_swap in = {false, copies, bytes, bytes / 40e9};
            assert_int_equal(kv_calib_add_swap(c, &out, &e), KV_OK);
            assert_int_equal(kv_calib_add_swap(c, &in, &e), KV_OK);
        }
    kv_calib_fit fit;
    fit_ok(c, &fit);
    ASSERT_NEAR(fit.copy_latency_out_us, 3, 1e-6);
    ASSERT_NEAR(fit.copy_latency_in_us, 0, 1e-6);
    ASSERT_NEAR(fit.gpu.copy_latency_us, 1.5, 1e-6);
    ASSERT_NEAR(fit.gpu.d2h_gbps, 50, 1e-6);
    ASSERT_NEAR(fit.gpu.h2d_gbps, 40, 1e-6);
    assert_false(fit.at_bound[KV_CALIB_COPY_LATENCY_OUT_US]);
    assert_true(fit.at_bound[KV_CALIB_COPY_LATENCY_IN_US]);
    assert_false(fit.at_bound[KV_CALIB_H2D_GBPS]);
    assert_non_null(strstr(fit.bound_msg, "copy_latency_in_us = 0 is at its lower bound"));
    /* the step fit of steps priced by the preset itself needs no bound */
    assert_false(fit.at_bound[KV_CALIB_STEP_OVERHEAD_MS]);
    kv_calib_destroy(&c);
}

static void test_maps_are_means_and_missing_ones_keep_the_start(void **state)
{
    (void)state;
    kv_costmodel start = h100_start();
    kv_calib *c = create(&start);
    add_priced_steps(c, &start);
    kv_calib_set_maps(c, 8 * 30e-6, 8, 0, 0);
    kv_calib_fit fit;
    fit_ok(c, &fit);
    ASSERT_NEAR(fit.gpu.map_us, 30, 1e-9);
    ASSERT_NEAR(fit.gpu.unmap_us, start.gpu.unmap_us, 1e-12);
    /* no swaps measured: the start's swap coefficients, no swap statistics */
    assert_int_equal(fit.n_swaps, 0);
    assert_true(isnan(fit.median_abs_pct_err_swaps));
    ASSERT_NEAR(fit.gpu.d2h_gbps, start.gpu.d2h_gbps, 1e-12);
    kv_calib_destroy(&c);
}

static void test_step_work_is_the_cost_models_view(void **state)
{
    (void)state;
    kv_calib_step s = {KV_CALIB_MIXED, 32, 1024, 512, 2048, 1e-3};
    kv_step_work w = kv_calib_step_work(&s);
    assert_int_equal(w.n_decode, 32);
    assert_int_equal(w.decode_context, 32 * 1025);
    assert_int_equal(w.n_prefill, 1);
    assert_int_equal(w.prefill_tokens, 512);
    ASSERT_NEAR(w.prefill_attn_tokens2, 512.0 * (2048 + 256), 0);
    assert_string_equal(kv_calib_phase_name(KV_CALIB_PREFILL), "prefill");
    assert_string_equal(kv_calib_param_name(KV_CALIB_H2D_GBPS), "h2d_gbps");
}

static void test_bad_measurements_and_csv_rows_are_refused_with_their_line(void **state)
{
    (void)state;
    kv_costmodel cm = h100_start();
    kv_calib *c = create(&cm);
    kv_err e = {{0}};
    kv_calib_step zero = {KV_CALIB_DECODE, 1, 10, 0, 0, 0};
    assert_int_equal(kv_calib_add_step(c, &zero, &e), KV_ERR_INPUT);
    kv_calib_swap empty = {true, 1, 0, 1e-3};
    e.msg[0] = '\0';
    assert_int_equal(kv_calib_add_swap(c, &empty, &e), KV_ERR_INPUT);

    char dir[256], path[512];
    assert_int_equal(t_mkdtemp(dir, sizeof dir, "calib"), 0);
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "region,batch,context,chunk,chunk_context,measured_ms,predicted_ms\n"
               "decode,1,128,0,0,7.742400,8.373678\n"
               "verify,1,128,0,0,7.742400,8.373678\n");
    fclose(f);
    e.msg[0] = '\0';
    assert_int_equal(kv_calib_load_csv(c, path, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "bad.csv:3: region \"verify\""));
    f = fopen(path, "w");
    fprintf(f, "decode,1,12x8,0,0,7.742400,8.373678\n");
    fclose(f);
    e.msg[0] = '\0';
    assert_int_equal(kv_calib_load_csv(c, path, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "bad.csv:1: column 3"));
    e.msg[0] = '\0';
    assert_int_equal(kv_calib_load_csv(c, "no/such/file.csv", &e), KV_ERR_IO);
    t_rm_rf(dir);
    kv_calib_destroy(&c);
    kv_calib_destroy(&c); /* NULL is fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refit_of_recorded_h100_measurements_gives_the_committed_calibration),
        cmocka_unit_test(test_write_of_recorded_h100_refit_reproduces_the_committed_files),
        cmocka_unit_test(test_fit_whose_true_overhead_is_zero_reports_the_bound),
        cmocka_unit_test(test_fit_that_wants_a_negative_overhead_stops_at_the_bound_and_says_so),
        cmocka_unit_test(test_per_phase_errors_on_a_hand_checked_case),
        cmocka_unit_test(test_phase_without_steps_has_no_median),
        cmocka_unit_test(test_swap_fit_separates_latency_and_bandwidth_and_flags_a_zero_latency),
        cmocka_unit_test(test_maps_are_means_and_missing_ones_keep_the_start),
        cmocka_unit_test(test_step_work_is_the_cost_models_view),
        cmocka_unit_test(test_bad_measurements_and_csv_rows_are_refused_with_their_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
