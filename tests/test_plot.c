/* test_plot.c — the gnuplot scripts on committed example outputs produce non-empty images. */
#include "test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include "cli_plot.h"

#include <jansson.h>

static void test_figures_of_committed_runs_are_drawn(void **state)
{
    (void)state;
    char out[256];
    snprintf(out, sizeof out, "%s/kvsim-plot-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    const char *runs[] = {"results/default/contiguous-max", "results/default/paged",
                          "results/default/compressed-fp8"};
    assert_int_equal(kv_plot_runs(runs, 3, out), 0);
    const char *figs[] = {"memory", "timeline", "latency"};
    const char *exts[] = {"png", "svg"};
    for (int f = 0; f < 3; f++) {
        for (int e = 0; e < 2; e++) {
            char p[512];
            snprintf(p, sizeof p, "%s/%s.%s", out, figs[f], exts[e]);
            struct stat sb;
            if (stat(p, &sb) != 0 || sb.st_size < 5000)
                fail_msg("%s missing or nearly empty", p);
        }
    }
    char tsv[512], line[256];
    snprintf(tsv, sizeof tsv, "%s/memory.tsv", out);
    FILE *fp = fopen(tsv, "r");
    assert_non_null(fp);
    int rows = 0;
    while (fgets(line, sizeof line, fp))
        rows++;
    fclose(fp);
    assert_int_equal(rows, 3);
    assert_int_equal(t_rm_rf(out), 0);
}

static void test_bad_run_directory_is_bad_input(void **state)
{
    (void)state;
    const char *runs[] = {"results/no-such-run"};
    char out[256];
    snprintf(out, sizeof out, "%s/kvsim-plot-bad-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    assert_int_equal(kv_plot_runs(runs, 1, out), 2);
    assert_int_equal(t_rm_rf(out), 0);
}

static void test_quote_doubles_quotes_and_blanks_control_characters(void **state)
{
    (void)state;
    char q[64];
    assert_string_equal(kv_plot_quote("a'b\nc", q, sizeof q), "a''b c");
    assert_string_equal(kv_plot_quote("plain/path", q, sizeof q), "plain/path");
    assert_string_equal(kv_plot_quote("'''''''''", q, 8), "''''''"); /* 3 whole quotes fit in 8 */
}

/* Regression: a model name from a run's summary.json went into gnuplot's -e command inside
 * quotes: m'; system('touch ...'); x=' ran the command. Now it is a title like any other, and
 * an output folder with a quote and a space is fine. */
static void test_strings_from_runs_cannot_run_gnuplot_commands(void **state)
{
    (void)state;
    char base[256], run[300], out[300], marker[300], path[400];
    snprintf(base, sizeof base, "%s/kvsim-plot-inj-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    snprintf(run, sizeof run, "%s/run", base);
    snprintf(out, sizeof out, "%s/it's out", base);
    snprintf(marker, sizeof marker, "%s/PWNED", base);
    kv_err err = {{0}};
    assert_int_equal(kv_fs_mkdirs(run, &err), KV_OK);
    static const char *const files[] = {"summary.json", "timeline.csv", "requests.csv",
                                        "config.json"};
    for (int i = 0; i < 4; i++) {
        char from[300];
        snprintf(from, sizeof from, "results/default/paged/%s", files[i]);
        snprintf(path, sizeof path, "%s/%s", run, files[i]);
        if (i == 0) {
            json_error_t je;
            json_t *j = json_load_file(from, 0, &je);
            assert_non_null(j);
            char evil[400];
            snprintf(evil, sizeof evil, "m'; system('touch %s'); x='", marker);
            json_object_set_new(j, "model", json_string(evil));
            assert_int_equal(json_dump_file(j, path, JSON_INDENT(2)), 0);
            json_decref(j);
        } else {
            FILE *in = fopen(from, "rb"), *o = fopen(path, "wb");
            assert_non_null(in);
            assert_non_null(o);
            char buf[65536];
            size_t n;
            while ((n = fread(buf, 1, sizeof buf, in)) > 0)
                assert_int_equal(fwrite(buf, 1, n, o), n);
            fclose(in);
            fclose(o);
        }
    }
    const char *runs[] = {run};
    assert_int_equal(kv_plot_runs(runs, 1, out), 0);
    struct stat sb;
    assert_int_not_equal(stat(marker, &sb), 0); /* no command ran */
    snprintf(path, sizeof path, "%s/memory.png", out);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(t_rm_rf(base), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_figures_of_committed_runs_are_drawn),
        cmocka_unit_test(test_bad_run_directory_is_bad_input),
        cmocka_unit_test(test_quote_doubles_quotes_and_blanks_control_characters),
        cmocka_unit_test(test_strings_from_runs_cannot_run_gnuplot_commands),
    };
    return cmocka_run_group_tests_name("plot", tests, NULL, NULL);
}
