/* test_plot.c — the gnuplot scripts on committed example outputs produce non-empty images. */
#include "test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include "cli_plot.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_figures_of_committed_runs_are_drawn),
        cmocka_unit_test(test_bad_run_directory_is_bad_input),
    };
    return cmocka_run_group_tests_name("plot", tests, NULL, NULL);
}
