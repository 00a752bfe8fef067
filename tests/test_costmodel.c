/* test_costmodel.c — presets, the KV budget and the roofline: the H100 preset against the
 * Llama-3-8B decode steps measured in DESIGN.md §4, swap and map costs, calibration files. */
#include "test_util.h"

#include <unistd.h>

#include "costmodel.h"
#include "preset.h"

/* ------------------------------------------------------------------------------------------ */

static void load(kv_model *m, kv_gpu *g)
{
    kv_err e = {{0}};
    if (kv_model_load("llama-3-8b", m, &e) != KV_OK || kv_gpu_load("H100-80GB", g, &e) != KV_OK)
        fail_msg("%s", e.msg);
}

static double decode_ms(const kv_costmodel *cm, uint32_t batch, uint32_t context)
{
    kv_step_work w = {.n_decode = batch, .decode_context = (uint64_t)batch * context};
    kv_step_time t = kv_costmodel_step((void *)cm, &w);
    return t.total_s * 1e3;
}

static void test_h100_preset_matches_measured_decode_steps(void **state)
{
    (void)state;
    kv_model m;
    kv_gpu g;
    load(&m, &g);
    kv_costmodel cm;
    kv_costmodel_init(&cm, &m, &g, 1, 131072); /* Llama-3-8B bf16 KV: 128 KiB a token */
    /* DESIGN.md §4, Llama-3-8B on the reference H100 (batch, context, measured ms) */
    const struct {
        uint32_t batch, ctx;
        double ms;
    } m4[] = {{1, 1024, 6.18},    {8, 1024, 6.73},   {32, 1024, 7.77}, {64, 1024, 9.32},
              {128, 1024, 12.75}, {32, 4096, 11.90}, {256, 512, 13.93}};
    for (size_t i = 0; i < sizeof m4 / sizeof m4[0]; i++) {
        double got = decode_ms(&cm, m4[i].batch, m4[i].ctx);
        if (fabs(got - m4[i].ms) > 0.12 * m4[i].ms)
            fail_msg("batch %u ctx %u: model %.2f ms, measured %.2f ms", m4[i].batch, m4[i].ctx,
                     got, m4[i].ms);
    }
}

static void test_swap_and_map_costs_follow_the_formula(void **state)
{
    (void)state;
    kv_model m;
    kv_gpu g;
    load(&m, &g);
    kv_costmodel cm;
    kv_costmodel_init(&cm, &m, &g, 1, 131072);
    /* a 2 MiB pinned copy took ~40 us on the H100: 2.1 us + 2 MiB / 55.1 GB/s = 40.2 us */
    kv_step_work w = {.swap_out_bytes = 2u << 20, .swap_out_copies = 1};
    kv_step_time t = kv_costmodel_step(&cm, &w);
    assert_true(fabs(t.swap_s * 1e6 - (2.1 + 2097152 / 55.1e3)) < 1e-6);
    assert_true(t.compute_s == 0);
    w = (kv_step_work){.n_maps = 64, .n_unmaps = 10};
    t = kv_costmodel_step(&cm, &w);
    assert_true(fabs(t.map_s * 1e6 - (64 * 38.2 + 10 * 24.5)) < 1e-6);
}

static void test_kv_budget_follows_vllm(void **state)
{
    (void)state;
    kv_model m;
    kv_gpu g;
    load(&m, &g);
    kv_budget b = kv_kv_budget(&m, &g, 1, 0.9, 8192, 256);
    assert_true(llabs((long long)b.weight_bytes - 16060000000ll) <= 1);
    assert_true(b.kv_bytes > (int64_t)(50ull << 30) && b.kv_bytes < (int64_t)(60ull << 30));
    kv_budget b2 = kv_kv_budget(&m, &g, 2, 0.9, 8192, 256); /* TP halves the weights */
    assert_true(b2.kv_bytes > b.kv_bytes);
    kv_shape s1 = kv_model_shape(&m, 1), s2 = kv_model_shape(&m, 2), s16 = kv_model_shape(&m, 16);
    assert_int_equal(kv_shape_token_bytes(&s1), 2 * kv_shape_token_bytes(&s2));
    assert_int_equal(s16.n_kv_heads, 1); /* more GPUs than KV heads: replicated */
    kv_model v3;
    kv_err e = {{0}};
    assert_int_equal(kv_model_load("DeepSeek-V3", &v3, &e), KV_OK);
    kv_shape mla = kv_model_shape(&v3, 8);
    assert_int_equal(kv_shape_token_bytes(&mla), 61 * 576 * 2); /* latent on every GPU */
}

static void test_calibration_file_overrides_and_errors_name_the_line(void **state)
{
    (void)state;
    kv_model m;
    kv_gpu g;
    load(&m, &g);
    kv_costmodel cm;
    kv_costmodel_init(&cm, &m, &g, 1, 131072);
    char path[256];
    snprintf(path, sizeof path, "%s/kvsim-calib-%d.ini",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs("[fit]\nr2 = 0.99\n[calibration]\neff_memory = 0.5\nstep_overhead_ms = 1\n", f);
    fclose(f);
    double before = decode_ms(&cm, 1, 1024);
    kv_err e = {{0}};
    assert_int_equal(kv_costmodel_calibrate(&cm, path, &e), KV_OK);
    assert_true(cm.gpu.eff_memory == 0.5 && cm.gpu.step_overhead_ms == 1);
    assert_true(decode_ms(&cm, 1, 1024) > before);
    f = fopen(path, "w");
    fputs("[calibration]\neff_memory = 0.5\neff_compute = fast\n", f);
    fclose(f);
    assert_int_equal(kv_costmodel_calibrate(&cm, path, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, ":3: eff_compute"));
    remove(path);
    e.msg[0] = '\0';
    assert_int_equal(kv_gpu_load("no-such-gpu", &g, &e), KV_ERR_IO);
    assert_non_null(strstr(e.msg, "no-such-gpu"));
}

/* Regression: the calibration and preset loaders once reported only the first bad line, with
 * the last key's message. */
static void test_calibration_and_preset_files_report_several_bad_keys_with_their_lines(void **state)
{
    (void)state;
    kv_gpu g;
    kv_err e = {{0}};
    assert_int_equal(kv_gpu_load("H100-80GB", &g, &e), KV_OK);
    kv_model m;
    assert_int_equal(kv_model_load("Llama-3-8B", &m, &e), KV_OK);
    kv_costmodel cm;
    kv_costmodel_init(&cm, &m, &g, 1, 131072);
    char path[256];
    snprintf(path, sizeof path, "%s/kvsim-calib2-%d.ini",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    t_write_text(path,
                 "[calibration]\neff_memory = 2\nmap_us = 1\neff_compute = fast\nspeed = 9\n");
    assert_int_equal(kv_costmodel_calibrate(&cm, path, &e), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(e.msg, ":2: eff_memory: expected", ":4: eff_compute: expected",
                     ":5: unknown key 'speed'");
    t_write_text(
        path, "[gpu]\nname = X\nmemory_gib = lots\nhbm_tbps = 3\ncolour = red\n[other]\nx = 1\n");
    e.msg[0] = '\0';
    assert_int_equal(kv_gpu_load(path, &g, &e), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(e.msg, ":3: memory_gib: expected a number", ":5: unknown key 'colour'",
                     ":7: unknown section [other]");
    t_write_text(path, "[model]\nname = M\nn_layers = 1.5\nn_heads = 0\n");
    e.msg[0] = '\0';
    assert_int_equal(kv_model_load(path, &m, &e), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(e.msg, ":3: n_layers: expected an integer",
                     ":4: n_heads: expected an integer");
    remove(path);
}

/* Regression: n_heads = n_kv_heads = head_dim = 65536, each within its range, multiplied in 32
 * bits to 0 bytes a token and crashed every strategy with SIGFPE; 100000 wrapped silently. */
static void test_model_preset_whose_head_product_overflows_is_refused_with_file_and_fields(
    void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/kvsim-wide-%d.ini",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    static const unsigned sizes[] = {65536, 100000};
    for (int k = 0; k < 2; k++) {
        char text[512];
        snprintf(text, sizeof text,
                 "[model]\nname = Wide\nn_layers = 2\nn_heads = %u\nn_kv_heads = %u\n"
                 "head_dim = %u\nhidden = 4096\nintermediate = 4096\nvocab = 1000\n"
                 "params_b = 1\nactive_params_b = 1\nmax_context = 4096\nmla_latent_dim = 0\ngated_mlp = 1\n"
                 "weight_bytes = 2\nkv_bytes = 2\n",
                 sizes[k], sizes[k], sizes[k]);
        t_write_text(path, text);
        kv_model m;
        kv_err e = {{0}};
        assert_int_equal(kv_model_load(path, &m, &e), KV_ERR_INPUT);
        T_ASSERT_HAS_ALL(e.msg, path, "n_kv_heads x head_dim", "at most 16777216");
    }
    remove(path);
    /* and the allocator refuses such a shape itself, whoever builds it */
    kv_shape sh = kv_shape_dense(2, 65536, 65536);
    kv_alloc_config c;
    kv_alloc_config_default(&c, KV_PAGED, &sh, 1ull << 30);
    kv_alloc *a = NULL;
    kv_err e = {{0}};
    assert_int_equal(kv_alloc_create(&c, &a, &e), KV_ERR_INPUT);
    assert_null(a);
    assert_non_null(strstr(e.msg, "elements per token per layer tensor"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h100_preset_matches_measured_decode_steps),
        cmocka_unit_test(test_swap_and_map_costs_follow_the_formula),
        cmocka_unit_test(test_kv_budget_follows_vllm),
        cmocka_unit_test(test_calibration_file_overrides_and_errors_name_the_line),
        cmocka_unit_test(
            test_calibration_and_preset_files_report_several_bad_keys_with_their_lines),
        cmocka_unit_test(
            test_model_preset_whose_head_product_overflows_is_refused_with_file_and_fields),
    };
    return cmocka_run_group_tests_name("costmodel", tests, NULL, NULL);
}
