/* test_sweep.c — sweep specs, the point grid, and identical output for -j 1, -j 2 and MPI. */
#include "test_util.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_sweep.h"
#include "sweep.h"

/* ------------------------------------------------------------------------------------------ */

extern char **environ;

static char dir[256];

static int setup(void **state)
{
    (void)state;
    return t_mkdtemp(dir, sizeof dir, "sweep-t");
}

static int teardown(void **state)
{
    (void)state;
    return t_rm_rf(dir);
}

static int sweep(const char *spec, const char *jobs, const char *out)
{
    char *argv[] = {"sweep", (char *)spec, "-j", (char *)jobs, "-o", (char *)out, NULL};
    return kv_cli_sweep_main(6, argv);
}

/* ------------------------------------------------------------------------------------------ */

static void test_grid_enumerates_points_in_a_fixed_order(void **state)
{
    (void)state;
    kv_sweep_spec s;
    kv_err e = {{0}};
    assert_int_equal(kv_sweep_load("tests/data/sweep-small.ini", &s, &e), KV_OK);
    /* contiguous-oracle: 3 rates; paged: 2 block sizes x 3 rates */
    assert_int_equal(kv_sweep_n_points(&s), 3 + 6);
    kv_sweep_point p;
    kv_sweep_point_at(&s, 0, &p);
    assert_string_equal(p.label, "contiguous-oracle");
    assert_true(p.rate_scale == 1);
    kv_sweep_point_at(&s, 5, &p);
    assert_string_equal(p.label, "paged-b16");
    assert_true(p.rate_scale == 3);
    assert_int_equal(p.cfg.alloc.strategy, KV_PAGED);
    assert_int_equal(p.cfg.alloc.paged.block_tokens, 16);
    assert_int_equal(p.cfg.limit, 1500); /* from args */
    assert_true(p.cfg.engine.rate_scale == 3);
    kv_sweep_point_at(&s, 8, &p);
    assert_string_equal(p.label, "paged-b64");
}

static void test_local_workers_and_mpi_give_identical_rows(void **state)
{
    (void)state;
    char a[512], b[512], c[512];
    snprintf(a, sizeof a, "%s/j1.csv", dir);
    snprintf(b, sizeof b, "%s/j2.csv", dir);
    snprintf(c, sizeof c, "%s/mpi.csv", dir);
    assert_int_equal(sweep("tests/data/sweep-small.ini", "1", a), 0);
    assert_int_equal(sweep("tests/data/sweep-small.ini", "2", b), 0);
    assert_true(t_same_file(a, b));
    FILE *f = fopen(a, "r");
    char line[2048];
    int rows = 0;
    while (fgets(line, sizeof line, f))
        rows++;
    fclose(f);
    assert_int_equal(rows, 1 + 9);
    const char *mpi = getenv("KVSIM_MPI_BIN");
    if (mpi == NULL || mpi[0] == '\0') {
        print_message("  (no MPI build: mpicc absent, mpirun comparison skipped)\n");
        return;
    }
    /* mpirun without a shell: its output to mpi.log, leak checks off in the ranks */
    char log[600];
    snprintf(log, sizeof log, "%s/mpi.log", dir);
    char *argv[] = {"mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", (char *)mpi,
                    "sweep", "tests/data/sweep-small.ini", "-o", c, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    pid_t pid;
    int status = 0;
    int rc = posix_spawnp(&pid, "mpirun", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("mpirun -np 2 failed (log in %s)", log);
    assert_true(t_same_file(a, c));
}

static void test_bad_specs_name_file_line_and_key(void **state)
{
    (void)state;
    struct {
        const char *text, *needle;
    } bad[] = {
        {"[sweep]\ntrace = x.csv\nstrategies = paged, pagd\n", ":3: strategies: unknown \"pagd\""},
        {"[sweep]\nrate_scales = 1, fast\n", ":2: rate_scales: expected numbers"},
        {"[sweep]\ncolour = red\n", ":2: unknown key 'colour'"},
        {"[grid]\ntrace = x\n", "unknown section [grid]"},
        {"[sweep]\ntrace = x.csv\n", "needs trace, strategies and rate_scales"},
        {"[sweep]\nargs = --limit 5 --max-num-seqs lots\n",
         ":2: args: option --max-num-seqs: expected an integer"},
        {"[sweep]\ntrace = x.csv\nargs = --colour red\n", ":3: args: unknown option --colour"},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/bad.ini", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i].text, f);
        fclose(f);
        kv_sweep_spec s;
        kv_err e = {{0}};
        assert_int_equal(kv_sweep_load(path, &s, &e), KV_ERR_INPUT);
        if (strstr(e.msg, bad[i].needle) == NULL)
            fail_msg("\"%s\" lacks \"%s\"", e.msg, bad[i].needle);
    }
}

/* Regression: the loader once reported only the first bad line, with the last key's message. */
static void test_bad_spec_reports_several_bad_keys_with_their_lines(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/bad2.ini", dir);
    t_write_text(path,
                 "[sweep]\ntrace = x.csv\nargs = --seed '1'\nrate_scales = fast\ncolour = red\n"
                 "strategies = pagd\n");
    kv_sweep_spec s;
    kv_err e = {{0}};
    assert_int_equal(kv_sweep_load(path, &s, &e), KV_ERR_INPUT);
    T_ASSERT_HAS_ALL(e.msg, ":3: args: ", ":4: rate_scales: expected numbers",
                     ":5: unknown key 'colour'", ":6: strategies: unknown \"pagd\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_enumerates_points_in_a_fixed_order),
        cmocka_unit_test(test_local_workers_and_mpi_give_identical_rows),
        cmocka_unit_test(test_bad_specs_name_file_line_and_key),
        cmocka_unit_test(test_bad_spec_reports_several_bad_keys_with_their_lines),
    };
    return cmocka_run_group_tests_name("sweep", tests, setup, teardown);
}
