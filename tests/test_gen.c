/* test_gen.c — workload generators: moments of every arrival process and length distribution
 * within stated tolerances at a fixed seed, shared prefixes, sessions, determinism per seed,
 * and spec errors. Tolerances are several standard errors wide at the sample sizes used, and
 * the seed is fixed, so these tests are exact checks, not flaky ones. */
#include "test_util.h"

#include <unistd.h>

#include "gen.h"
#include "spec.h"
#include "writer.h"

/* ------------------------------------------------------------------------------------------ */

static kv_gen *make(const kv_workload_spec *s, uint64_t seed)
{
    kv_gen *g = NULL;
    kv_err e = {{0}};
    if (kv_gen_create(s, seed, &g, &e) != KV_OK)
        fail_msg("kv_gen_create: %s", e.msg);
    return g;
}

static kv_request next(kv_gen *g)
{
    kv_request r;
    kv_err e = {{0}};
    kv_status st = kv_gen_next(g, &r, &e);
    if (st != KV_OK)
        fail_msg("kv_gen_next: %s %s", kv_status_str(st), e.msg);
    return r;
}

/* Mean and coefficient of variation of inter-arrival gaps over n requests. */
static void gap_moments(const kv_workload_spec *s, uint64_t n, double *mean, double *cv)
{
    kv_gen *g = make(s, 11);
    double sum = 0, sum2 = 0;
    int64_t last = next(g).t_arrival_us;
    for (uint64_t i = 1; i < n; i++) {
        int64_t t = next(g).t_arrival_us;
        double gap = (double)(t - last) / 1e6;
        sum += gap;
        sum2 += gap * gap;
        last = t;
    }
    *mean = sum / (double)(n - 1);
    *cv = sqrt(sum2 / (double)(n - 1) - *mean * *mean) / *mean;
    kv_gen_destroy(&g);
}

static void assert_near(double got, double want, double rel, const char *what)
{
    if (fabs(got - want) > rel * fabs(want))
        fail_msg("%s: got %g, expected %g within %.1f%%", what, got, want, 100 * rel);
}

static kv_workload_spec base(void)
{
    kv_workload_spec s;
    kv_spec_default(&s);
    s.requests = 200000;
    return s;
}

/* ------------------------------------------------------------------------------------------ */

static void test_poisson_gaps_have_mean_one_over_rate_and_cv_one(void **state)
{
    (void)state;
    kv_workload_spec s = base();
    s.arrival.rate_per_s = 10;
    double mean, cv;
    gap_moments(&s, 200000, &mean, &cv);
    assert_near(mean, 0.1, 0.01, "poisson mean gap");
    assert_near(cv, 1.0, 0.02, "poisson cv");
}

static void test_gamma_gaps_have_the_requested_cv(void **state)
{
    (void)state;
    kv_workload_spec s = base();
    s.arrival.kind = KV_ARRIVAL_GAMMA;
    s.arrival.rate_per_s = 5;
    s.arrival.cv = 2;
    double mean, cv;
    gap_moments(&s, 200000, &mean, &cv);
    assert_near(mean, 0.2, 0.02, "gamma mean gap");
    assert_near(cv, 2.0, 0.04, "gamma cv");
}

static void test_weibull_gaps_keep_the_mean_rate(void **state)
{
    (void)state;
    kv_workload_spec s = base();
    s.arrival.kind = KV_ARRIVAL_WEIBULL;
    s.arrival.rate_per_s = 2;
    s.arrival.weibull_shape = 0.7;
    double mean, cv;
    gap_moments(&s, 200000, &mean, &cv);
    assert_near(mean, 0.5, 0.02, "weibull mean gap");
    /* cv of Weibull(k = 0.7): sqrt(G(1 + 2/k) / G(1 + 1/k)^2 - 1) = 1.4624 */
    assert_near(cv, 1.4624, 0.04, "weibull cv");
}

static void test_onoff_bursts_keep_mean_and_burst_rates(void **state)
{
    (void)state;
    kv_workload_spec s = base();
    s.requests = 0;
    s.duration_s = 20000;
    s.arrival.kind = KV_ARRIVAL_ONOFF;
    s.arrival.rate_per_s = 5;
    s.arrival.on_s = 20;
    s.arrival.off_s = 40;
    s.arrival.burst_factor = 2.5;
    kv_gen *g = make(&s, 5);
    kv_request r;
    kv_err e = {{0}};
    uint64_t n = 0, n_on = 0;
    while (kv_gen_next(g, &r, &e) == KV_OK) {
        n++;
        n_on += fmod((double)r.t_arrival_us / 1e6, 60.0) < 20.0;
    }
    assert_near((double)n / 20000.0, 5.0, 0.02, "onoff mean rate");
    /* on: 12.5/s for a third of the time; off: (5*60 - 12.5*20) / 40 = 1.25/s */
    assert_near((double)n_on / (20000.0 / 3), 12.5, 0.03, "onoff burst rate");
    kv_gen_destroy(&g);
}

static void test_diurnal_modulation_shifts_arrivals_to_the_peak(void **state)
{
    (void)state;
    kv_workload_spec s = base();
    s.requests = 0;
    s.duration_s = 10000;
    s.arrival.rate_per_s = 20;
    s.arrival.diurnal_amplitude = 0.5;
    s.arrival.diurnal_period_s = 100;
    kv_gen *g = make(&s, 6);
    kv_request r;
    kv_err e = {{0}};
    uint64_t peak = 0, trough = 0;
    while (kv_gen_next(g, &r, &e) == KV_OK) {
        if (fmod((double)r.t_arrival_us / 1e6, 100.0) < 50.0)
            peak++;
        else
            trough++;
    }
    /* rate 1 + 0.5 sin: halves integrate to 50 (1 +- 1/pi) */
    assert_near((double)peak / (double)trough, (1 + 1 / 3.14159265) / (1 - 1 / 3.14159265), 0.03,
                "diurnal peak/trough");
    assert_near((double)(peak + trough) / 10000.0, 20.0, 0.02, "diurnal mean rate");
    kv_gen_destroy(&g);
}

static void test_trace_arrivals_rescale_to_the_target_rate(void **state)
{
    (void)state;
    kv_workload_spec s = base();
    s.requests = 19366 * 2; /* twice around the trace */
    s.arrival.kind = KV_ARRIVAL_TRACE;
    s.arrival.rate_per_s = 20;
    snprintf(s.arrival.trace, sizeof s.arrival.trace, "traces/data/azure2023_conv.csv");
    kv_gen *g = make(&s, 1);
    kv_request r;
    kv_err e = {{0}};
    uint64_t n = 0;
    int64_t t_mid = 0;
    while (kv_gen_next(g, &r, &e) == KV_OK)
        if (++n == 19366)
            t_mid = r.t_arrival_us;
    assert_int_equal(n, 19366 * 2);
    assert_near((double)(19366 - 1) / ((double)t_mid / 1e6), 20.0, 1e-6, "trace-scaled rate");
    assert_near((double)(n - 1) / ((double)r.t_arrival_us / 1e6), 20.0, 1e-3, "two cycles");
    kv_gen_destroy(&g);
}

static void test_length_distributions_match_their_moments(void **state)
{
    (void)state;
    kv_workload_spec s = base();
    s.requests = 100000;
    s.prompt_tokens =
        (kv_len_spec){.kind = KV_LEN_LOGNORMAL, .mu = 6, .sigma = 0.5, .min = 1, .max = 1u << 24};
    s.output_tokens = (kv_len_spec){.kind = KV_LEN_UNIFORM, .min = 10, .max = 90};
    kv_gen *g = make(&s, 3);
    double sp = 0, so = 0;
    for (int i = 0; i < 100000; i++) {
        kv_request r = next(g);
        sp += r.prompt_tokens;
        so += r.output_tokens;
        assert_true(r.output_tokens >= 10 && r.output_tokens <= 90);
    }
    assert_near(sp / 1e5, exp(6 + 0.125), 0.01, "lognormal mean");
    assert_near(so / 1e5, 50, 0.005, "uniform mean");
    kv_gen_destroy(&g);

    s.prompt_tokens = (kv_len_spec){.kind = KV_LEN_ZIPF, .zipf_s = 1.5, .min = 1, .max = 1000};
    s.output_tokens = (kv_len_spec){.kind = KV_LEN_FIXED, .value = 77, .min = 0, .max = 1000};
    g = make(&s, 4);
    uint64_t ones = 0, twos = 0;
    for (int i = 0; i < 100000; i++) {
        kv_request r = next(g);
        ones += r.prompt_tokens == 1;
        twos += r.prompt_tokens == 2;
        assert_int_equal(r.output_tokens, 77);
    }
    assert_near((double)ones / (double)twos, pow(2, 1.5), 0.04, "zipf P(1)/P(2)");
    kv_gen_destroy(&g);
}

static void test_empirical_lengths_come_in_pairs_from_one_row(void **state)
{
    (void)state;
    kv_workload_spec s = base();
    s.requests = 2000;
    kv_len_spec e = {.kind = KV_LEN_EMPIRICAL, .min = 0, .max = 1u << 24};
    snprintf(e.file, sizeof e.file, "traces/data/azure2023_code.csv");
    s.prompt_tokens = e;
    s.output_tokens = e;
    snprintf(s.prompt_tokens.column, sizeof s.prompt_tokens.column, "prompt_tokens");
    snprintf(s.output_tokens.column, sizeof s.output_tokens.column, "output_tokens");
    /* the set of (prompt, output) rows of the trace */
    kv_trace *t = NULL;
    kv_err err = {{0}};
    assert_int_equal(kv_trace_open(e.file, NULL, &t, &err), KV_OK);
    static uint64_t rows[8819];
    size_t n = 0;
    kv_request r;
    while (kv_trace_next(t, &r, &err) == KV_OK)
        rows[n++] = (uint64_t)r.prompt_tokens << 32 | r.output_tokens;
    kv_trace_close(&t);
    kv_gen *g = make(&s, 9);
    for (int i = 0; i < 2000; i++) {
        r = next(g);
        uint64_t key = (uint64_t)r.prompt_tokens << 32 | r.output_tokens;
        bool found = false;
        for (size_t j = 0; j < n && !found; j++)
            found = rows[j] == key;
        if (!found)
            fail_msg("pair (%u, %u) is no row of the trace", r.prompt_tokens, r.output_tokens);
    }
    kv_gen_destroy(&g);
    /* a plain CSV column: ShareGPT prefill lengths */
    s.output_tokens = (kv_len_spec){.kind = KV_LEN_FIXED, .value = 1, .min = 0, .max = 10};
    snprintf(s.prompt_tokens.file, sizeof s.prompt_tokens.file,
             "workloads/data/sharegpt_lengths_llama2.csv");
    snprintf(s.prompt_tokens.column, sizeof s.prompt_tokens.column, "num_prefill_tokens");
    g = make(&s, 9);
    double sum = 0;
    for (int i = 0; i < 2000; i++)
        sum += next(g).prompt_tokens;
    assert_true(sum / 2000 > 100 && sum / 2000 < 5000);
    kv_gen_destroy(&g);
}

static void test_shared_prefix_groups_share_leading_hashes(void **state)
{
    (void)state;
    kv_workload_spec s = base();
    s.requests = 200;
    s.prefix.groups = 3;
    s.prefix.tokens = 100; /* 6 full 16-token blocks */
    s.prompt_tokens = (kv_len_spec){.kind = KV_LEN_UNIFORM, .min = 1, .max = 50};
    kv_gen *g = make(&s, 2);
    assert_true(kv_gen_fields(g) & KV_FIELD_PREFIX);
    uint64_t first[3] = {0}, sixth[3] = {0};
    int groups_seen = 0;
    for (int i = 0; i < 200; i++) {
        kv_request r = next(g);
        assert_true(r.prompt_tokens > 100);
        assert_int_equal(r.n_prefix_hashes, (r.prompt_tokens + 15) / 16);
        int k = 0;
        while (k < groups_seen && first[k] != r.prefix_hashes[0])
            k++;
        if (k == groups_seen) {
            assert_true(groups_seen < 3);
            first[k] = r.prefix_hashes[0];
            sixth[k] = r.prefix_hashes[5];
            groups_seen++;
        }
        assert_int_equal(r.prefix_hashes[5], sixth[k]);
        /* block 6 straddles the system prompt's end: private to the request */
        for (int j = 0; j < groups_seen; j++)
            assert_int_not_equal(r.prefix_hashes[6], sixth[j]);
    }
    assert_int_equal(groups_seen, 3);
    kv_gen_destroy(&g);
}

static void test_session_turns_hold_the_whole_conversation(void **state)
{
    (void)state;
    kv_workload_spec s = base();
    s.requests = 3000;
    s.sessions.turns_mean = 4;
    s.sessions.think_s = 5;
    s.arrival.rate_per_s = 0.5;
    s.prompt_tokens = (kv_len_spec){.kind = KV_LEN_UNIFORM, .min = 1, .max = 60};
    s.output_tokens = (kv_len_spec){.kind = KV_LEN_UNIFORM, .min = 0, .max = 60};
    kv_gen *g = make(&s, 8);
    enum { MAXS = 4096 };
    static uint32_t last_prompt[MAXS], last_output[MAXS], turns[MAXS];
    static uint64_t block0[MAXS];
    memset(turns, 0, sizeof turns);
    uint64_t max_session = 0, multi = 0;
    for (int i = 0; i < 3000; i++) {
        kv_request r = next(g);
        assert_true(r.session_id > 0 && r.session_id < MAXS);
        uint64_t id = r.session_id;
        if (turns[id] > 0) {
            assert_true(r.prompt_tokens > last_prompt[id] + last_output[id]);
            if (r.prompt_tokens >= 16 && last_prompt[id] >= 16)
                assert_int_equal(r.prefix_hashes[0], block0[id]);
            multi++;
        } else {
            assert_true(id > max_session); /* sessions open in order */
            max_session = id;
        }
        turns[id]++;
        last_prompt[id] = r.prompt_tokens;
        last_output[id] = r.output_tokens;
        if (r.prompt_tokens >= 16)
            block0[id] = r.prefix_hashes[0];
    }
    assert_near((double)3000 / (double)max_session, 4.0, 0.08, "turns per session");
    assert_true(multi > 1500);
    kv_gen_destroy(&g);
}

/* Write spec s with seed to path. */
static void write_trace(const kv_workload_spec *s, uint64_t seed, const char *path)
{
    kv_gen *g = make(s, seed);
    kv_trace_writer *w;
    kv_err e = {{0}};
    assert_int_equal(kv_trace_writer_open(path, kv_gen_fields(g), &w, &e), KV_OK);
    kv_request r;
    while (kv_gen_next(g, &r, &e) == KV_OK)
        assert_int_equal(kv_trace_write(w, &r, &e), KV_OK);
    assert_int_equal(kv_trace_writer_close(&w, &e), KV_OK);
    kv_gen_destroy(&g);
}

static void test_same_seed_gives_byte_identical_output(void **state)
{
    (void)state;
    const char *specs[] = {"workloads/chat-sharegpt.ini", "workloads/code-azure-like.ini",
                           "workloads/rag-shared-prefix.ini", "workloads/multiturn-sessions.ini",
                           "workloads/bursty.ini"};
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char a[512], b[512], c[512];
    snprintf(a, sizeof a, "%s/kvsim-gen-a-%d.csv", tmp, (int)getpid());
    snprintf(b, sizeof b, "%s/kvsim-gen-b-%d.csv", tmp, (int)getpid());
    snprintf(c, sizeof c, "%s/kvsim-gen-c-%d.csv", tmp, (int)getpid());
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        kv_workload_spec s;
        kv_spec_default(&s);
        kv_err e = {{0}};
        if (kv_spec_load(specs[i], &s, &e) != KV_OK)
            fail_msg("%s", e.msg);
        s.requests = 3000;
        s.duration_s = 0;
        write_trace(&s, 42, a);
        write_trace(&s, 42, b);
        write_trace(&s, 43, c);
        if (!t_same_file(a, b))
            fail_msg("%s: seed 42 twice gave different bytes", specs[i]);
        if (t_same_file(a, c))
            fail_msg("%s: seeds 42 and 43 gave the same bytes", specs[i]);
    }
    remove(a);
    remove(b);
    remove(c);
}

static void test_spec_errors_name_file_line_and_key(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/kvsim-spec-%d.ini", tmp, (int)getpid());
    struct {
        const char *text, *needle;
    } cases[] = {
        {"[arrival]\nrate_per_s = 2\nprocess = brownian\n",
         ":3: [arrival] process: expected one of"},
        {"[arrival]\nrate_per_s = -1\n", ":2: [arrival] rate_per_s: expected a number"},
        {"[workload]\ncolour = red\n", ":2: [workload] colour: unknown key"},
        {"[weather]\nsun = 1\n", ":2: unknown section [weather]"},
        {"[prompt]\ndist = uniform\nmin = 50\nmax = 10\n", "[prompt] max 10 is below min 50"},
        {"[prompt]\ndist = empirical\n", "needs file and column"},
        {"[arrival]\nprocess = onoff\non_s = 10\noff_s = 10\nburst_factor = 3\n", "burst_factor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(cases[i].text, f);
        fclose(f);
        kv_workload_spec s;
        kv_spec_default(&s);
        kv_err e = {{0}};
        assert_int_equal(kv_spec_load(path, &s, &e), KV_ERR_INPUT);
        if (strstr(e.msg, cases[i].needle) == NULL || strstr(e.msg, path) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e.msg, cases[i].needle);
    }
    remove(path);
    kv_workload_spec s;
    kv_spec_default(&s);
    kv_err e = {{0}};
    assert_int_equal(kv_spec_load("workloads/no-such.ini", &s, &e), KV_ERR_IO);
}

/* Regression: the loader once reported only the first bad line, with the last key's message. */
static void test_spec_reports_several_bad_keys_with_their_lines(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/kvsim-spec2-%d.ini", tmp, (int)getpid());
    t_write_text(path, "[workload]\nrequests = 10\n[arrival]\nrate_per_s = -1\nprocess = brownian\n"
                       "[prompt]\nsigma = 99\nno equals sign here\n");
    kv_workload_spec s;
    kv_spec_default(&s);
    kv_err e = {{0}};
    assert_int_equal(kv_spec_load(path, &s, &e), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(e.msg, ":4: [arrival] rate_per_s: expected a number",
                     ":5: [arrival] process: expected one of", ":7: [prompt] sigma: expected",
                     ":8: not a valid INI line");
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poisson_gaps_have_mean_one_over_rate_and_cv_one),
        cmocka_unit_test(test_gamma_gaps_have_the_requested_cv),
        cmocka_unit_test(test_weibull_gaps_keep_the_mean_rate),
        cmocka_unit_test(test_onoff_bursts_keep_mean_and_burst_rates),
        cmocka_unit_test(test_diurnal_modulation_shifts_arrivals_to_the_peak),
        cmocka_unit_test(test_trace_arrivals_rescale_to_the_target_rate),
        cmocka_unit_test(test_length_distributions_match_their_moments),
        cmocka_unit_test(test_empirical_lengths_come_in_pairs_from_one_row),
        cmocka_unit_test(test_shared_prefix_groups_share_leading_hashes),
        cmocka_unit_test(test_session_turns_hold_the_whole_conversation),
        cmocka_unit_test(test_same_seed_gives_byte_identical_output),
        cmocka_unit_test(test_spec_errors_name_file_line_and_key),
        cmocka_unit_test(test_spec_reports_several_bad_keys_with_their_lines),
    };
    return cmocka_run_group_tests_name("gen", tests, NULL, NULL);
}
