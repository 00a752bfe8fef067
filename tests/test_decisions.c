/* test_decisions.c — the allocator decision log (kvgpu compares its own with it line by line):
 * one line per operation, in order, with the placement after it; the same bytes on every run;
 * the fast path switched off so that every append is its own line. */
#include "test_util.h"

#include "run.h"
#include "report.h"

static void count_ops(const char *path, uint64_t counts[6], uint64_t *lines)
{
    static const char *const ops[] = {"admit", "append", "fork", "free", "swap-out", "swap-in"};
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL, op[32];
    size_t cap = 0;
    unsigned long long n;
    *lines = 0;
    memset(counts, 0, 6 * sizeof counts[0]);
    while (getline(&line, &cap, f) > 0) {
        assert_int_equal(sscanf(line, "%llu %31s", &n, op), 2);
        assert_int_equal(n, *lines); /* numbered in order */
        (*lines)++;
        int k = 0;
        while (k < 6 && strcmp(op, ops[k]) != 0)
            k++;
        assert_true(k < 6);
        counts[k]++;
        if (strstr(line, "-> ok") && k != 3 && k != 4) /* resident after: a placement */
            assert_true(strstr(line, " extent off=") || strstr(line, " blocks ") ||
                        strstr(line, " chunks "));
        if (strstr(line, "-> ok") && (k == 4 || k == 5)) /* a swap moves bytes between tiers */
            assert_non_null(strstr(line, k == 4 ? "| xfer:swap-out" : "xfer:swap-in"));
    }
    free(line);
    fclose(f);
}

static void test_decision_log_is_complete_and_repeatable(void **state)
{
    (void)state;
    char dir[512];
    assert_int_equal(t_mkdtemp(dir, sizeof dir, "decisions"), 0);
    static const kv_strategy strategies[] = {KV_CONTIGUOUS, KV_CHUNK_POOL, KV_PAGED,
                                             KV_COMPRESSED};
    for (int k = 0; k < 4; k++) {
        char out[700], a[700], b[700];
        kv_summary s;
        snprintf(out, sizeof out, "%s/out", dir);
        snprintf(a, sizeof a, "%s/%s-1.log", dir, kv_strategy_name(strategies[k]));
        snprintf(b, sizeof b, "%s/%s-2.log", dir, kv_strategy_name(strategies[k]));
        for (int run = 0; run < 2; run++) {
            kv_run_config c;
            kv_run_config_default(&c);
            c.trace = "traces/data/azure2023_conv.csv";
            c.out_dir = out;
            c.alloc.strategy = strategies[k];
            c.limit = 300;
            c.engine.rate_scale = 8;
            c.gpu_mem_util = 0.25;
            c.engine.preempt = KV_PREEMPT_SWAP;
            c.report.no_wall_time = true;
            c.decision_log = run ? b : a;
            kv_err e = {{0}};
            if (kv_run(&c, NULL, &s, &e) != KV_OK)
                fail_msg("kv_run: %s", e.msg);
        }
        assert_true(t_same_file(a, b));
        uint64_t c[6], lines;
        count_ops(a, c, &lines);
        assert_int_equal(c[0], 300);      /* every request admitted once (no recompute here) */
        assert_int_equal(c[3], 300);      /* and freed once */
        assert_int_equal(c[4], s.preemptions); /* each preemption swapped out */
        /* one append per generated token after the first, one line each */
        assert_true(c[1] > 300 * 10);
    }
    t_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_log_is_complete_and_repeatable),
    };
    return cmocka_run_group_tests_name("decisions", tests, NULL, NULL);
}
