/* test_router.c — replicas behind a router: one replica equals a plain replay byte for byte,
 * the policies route where they say, every request comes back once with its trace row, and
 * `kvsim plan replicas` returns a count that passes while one fewer fails. */
#include "test_util.h"
#include "test_source.h"

#include "cli_plan.h"
#include "run.h"
#include "report.h"
#include "router.h"

/* ------------------------------------------------------------------------------------------ */

typedef struct seen {
    uint32_t count[64]; /* times each trace row came back */
    uint32_t steps_of[4];
} seen;

static kv_status seen_request(void *ctx, const kv_req_record *r, kv_err *err)
{
    (void)err;
    seen *s = ctx;
    assert_true(r->id < 64);
    assert_int_equal(r->outcome, KV_REQ_DONE);
    s->count[r->id]++;
    return KV_OK;
}

static kv_status seen_step(void *ctx, const kv_step_record *st, kv_err *err)
{
    (void)err;
    seen *s = ctx;
    assert_true(st->replica < 4);
    s->steps_of[st->replica]++;
    return KV_OK;
}

/* Route reqs over n_replicas paged engines of a tiny shape, the checker after every step. */
static kv_router *route(const kv_request *reqs, size_t n, uint32_t n_replicas,
                        kv_route_policy p, seen *s)
{
    kv_engine_config ec;
    kv_engine_config_default(&ec);
    ec.max_num_seqs = 8;
    ec.max_num_batched_tokens = 64;
    ec.max_model_len = 256;
    kv_alloc_config ac = t_config(KV_PAGED, 1024);
    ac.paged.block_tokens = 4;
    kv_router *r = NULL;
    kv_err err = {{0}};
    static const double one_ms = 1e-3;
    kv_executor ex = {.ctx = (void *)&one_ms, .step = t_fixed_step};
    assert_int_equal(kv_router_create(&ec, &ac, ex, n_replicas, p, &r, &err), KV_OK);
    t_list_src src = {reqs, n, 0};
    memset(s, 0, sizeof *s);
    kv_observer obs = {.ctx = s, .on_request = seen_request, .on_step = seen_step};
    kv_status st = kv_router_run(r, (kv_source){.ctx = &src, .next = t_list_next}, obs, true, &err);
    if (st != KV_OK)
        fail_msg("router: %s", err.msg);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s->count[i], 1); /* every row back exactly once */
    return r;
}

static void test_round_robin_deals_rows_in_turn(void **state)
{
    (void)state;
    kv_request reqs[10];
    for (int i = 0; i < 10; i++)
        reqs[i] = t_req(0.01 * i, 20 + i, 5);
    seen s;
    kv_router *r = route(reqs, 10, 3, KV_ROUTE_ROUND_ROBIN, &s);
    assert_int_equal(kv_router_routed(r, 0), 4); /* rows 0 3 6 9 */
    assert_int_equal(kv_router_routed(r, 1), 3);
    assert_int_equal(kv_router_routed(r, 2), 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_true(s.steps_of[i] > 0);
        assert_int_equal(kv_engine_stats_of(kv_router_engine(r, i))->requests_done,
                         kv_router_routed(r, i));
    }
    kv_engine_stats es;
    kv_alloc_stats as;
    kv_router_stats(r, &es, &as);
    assert_int_equal(es.requests_done, 10);
    assert_int_equal(es.steps, s.steps_of[0] + s.steps_of[1] + s.steps_of[2]);
    assert_int_equal(as.n_admits, 10);
    kv_router_destroy(&r);
}

static void test_least_tokens_avoids_the_loaded_replica_until_it_drains(void **state)
{
    (void)state;
    /* a long request on replica 0, then three short ones while it runs: all go to 1; after
     * everything has finished, the idle replicas tie and the lowest index wins */
    const kv_request reqs[] = {t_req(0, 100, 150),    t_req(0.001, 8, 4),  t_req(0.002, 8, 4),
                               t_req(0.003, 8, 4),    t_req(100.0, 8, 4)};
    seen s;
    kv_router *r = route(reqs, 5, 2, KV_ROUTE_LEAST_TOKENS, &s);
    assert_int_equal(kv_router_routed(r, 0), 2);
    assert_int_equal(kv_router_routed(r, 1), 3);
    kv_router_destroy(&r);
    r = route(reqs, 5, 2, KV_ROUTE_ROUND_ROBIN, &s);
    assert_int_equal(kv_router_routed(r, 0), 3);
    assert_int_equal(kv_router_routed(r, 1), 2);
    kv_router_destroy(&r);
}

static void test_policy_names_parse(void **state)
{
    (void)state;
    kv_route_policy p;
    assert_int_equal(kv_route_policy_parse("least-tokens", &p), KV_OK);
    assert_int_equal(p, KV_ROUTE_LEAST_TOKENS);
    assert_string_equal(kv_route_policy_name(KV_ROUTE_ROUND_ROBIN), "round-robin");
    assert_int_equal(kv_route_policy_parse("random", &p), KV_ERR_INPUT);
}

/* One replica behind a router is the plain engine: the same files, byte for byte. */
static void test_one_replica_equals_a_plain_replay(void **state)
{
    (void)state;
    char dir[512];
    assert_int_equal(t_mkdtemp(dir, sizeof dir, "router"), 0);
    static const kv_strategy strategies[] = {KV_PAGED, KV_CONTIGUOUS, KV_CHUNK_POOL,
                                             KV_COMPRESSED};
    for (int k = 0; k < 4; k++) {
        char plain[700], routed[700];
        kv_summary a, b;
        snprintf(plain, sizeof plain, "%s/plain", dir);
        snprintf(routed, sizeof routed, "%s/routed", dir);
        kv_run_config c;
        kv_run_config_default(&c);
        c.trace = "traces/data/azure2023_conv.csv";
        c.alloc.strategy = strategies[k];
        c.limit = 2500;
        c.engine.rate_scale = 4;
        c.report.no_wall_time = true;
        c.report.perfetto = true;
        c.out_dir = plain;
        kv_err e = {{0}};
        assert_int_equal(kv_run(&c, NULL, &a, &e), KV_OK);
        c.out_dir = routed;
        c.routed = true;
        c.replicas = 1;
        c.router = KV_ROUTE_LEAST_TOKENS;
        assert_int_equal(kv_run(&c, NULL, &b, &e), KV_OK);
        static const char *const files[] = {"requests.csv", "timeline.csv", "trace.json"};
        for (int f = 0; f < 3; f++) {
            char p1[700], p2[700];
            snprintf(p1, sizeof p1, "%s/plain/%s", dir, files[f]);
            snprintf(p2, sizeof p2, "%s/routed/%s", dir, files[f]);
            if (!t_same_file(p1, p2))
                fail_msg("%s: %s differs behind a one-replica router",
                         kv_strategy_name(strategies[k]), files[f]);
        }
        assert_int_equal(a.done, 2500 - a.rejected);
        assert_int_equal(a.done, b.done);
        assert_true(a.ttft_p99_s == b.ttft_p99_s && a.tpot_p99_s == b.tpot_p99_s);
        assert_true(a.share_free == b.share_free && a.steps == b.steps);
    }
    t_rm_rf(dir);
}

/* `kvsim plan replicas` on a slice of the code trace: its answer meets the SLOs and one
 * replica fewer does not. */
static void test_plan_replicas_answer_is_the_fewest(void **state)
{
    (void)state;
    char dir[512], out[600], tsv[700];
    assert_int_equal(t_mkdtemp(dir, sizeof dir, "planrep"), 0);
    snprintf(out, sizeof out, "%s/plan", dir);
    char *argv[] = {"plan",     "replicas",       "traces/data/azure2023_code.csv",
                    "--limit",  "2000",           "--rate-scale",
                    "4",        "--strategy",     "paged",
                    "--router", "round-robin",    "-o",
                    out,        NULL};
    assert_int_equal(kv_cli_plan_main(13, argv), 0);
    snprintf(tsv, sizeof tsv, "%s/plan.tsv", out);
    FILE *f = fopen(tsv, "r");
    assert_non_null(f);
    char label[128];
    double n = 0;
    assert_int_equal(fscanf(f, "%127[^\t]\t%lf", label, &n), 2);
    fclose(f);
    assert_string_equal(label, "paged round-robin");
    assert_true(n >= 2 && n <= 64); /* one replica cannot carry 4x this trace */
    for (int k = 0; k < 2; k++) {
        char check[700];
        kv_summary s;
        snprintf(check, sizeof check, "%s/check", dir);
        kv_run_config c;
        kv_run_config_default(&c);
        c.trace = "traces/data/azure2023_code.csv";
        c.out_dir = check;
        c.alloc.strategy = KV_PAGED;
        c.limit = 2000;
        c.engine.rate_scale = 4;
        c.report.no_wall_time = true;
        c.routed = true;
        c.replicas = (uint64_t)n - (uint64_t)k;
        c.router = KV_ROUTE_ROUND_ROBIN;
        kv_err e = {{0}};
        assert_int_equal(kv_run(&c, NULL, &s, &e), KV_OK);
        bool meets = s.ttft_p99_s <= 2.0 && s.tpot_p99_s <= 0.2;
        assert_true(meets == (k == 0));
    }
    t_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_robin_deals_rows_in_turn),
        cmocka_unit_test(test_least_tokens_avoids_the_loaded_replica_until_it_drains),
        cmocka_unit_test(test_policy_names_parse),
        cmocka_unit_test(test_one_replica_equals_a_plain_replay),
        cmocka_unit_test(test_plan_replicas_answer_is_the_fewest),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
