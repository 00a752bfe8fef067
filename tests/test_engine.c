/* test_engine.c — golden end-to-end runs on tiny traces whose outcome is derived by hand
 * (admission order, preemption victim, memory breakdown at given instants, TTFT), rejection,
 * the allocator checker at every step on real traces, and byte-identical repeated runs. */
#include "test_util.h"
#include "test_source.h"

#include <unistd.h>

#include "run.h"
#include "engine.h"
#include "report.h"

/* ------------------------------------------------------------------------------------------ */

/* Records of one run. */
typedef struct capture {
    kv_req_record req[64];
    size_t n_req;
    kv_mem_breakdown mem_at[16]; /* after step k (1-based) */
    uint32_t running_at[16];
    kv_engine_stats stats;
} capture;

static kv_status cap_request(void *ctx, const kv_req_record *r, kv_err *err)
{
    (void)err;
    capture *c = ctx;
    c->req[c->n_req++] = *r;
    return KV_OK;
}

static kv_status cap_step(void *ctx, const kv_step_record *s, kv_err *err)
{
    (void)err;
    capture *c = ctx;
    if (s->step < 16) {
        c->mem_at[s->step] = *s->mem;
        c->running_at[s->step] = s->running;
    }
    return KV_OK;
}

/* Paged, 4-token blocks of 64-byte tokens, n_blocks in the pool, no watermark. */
static void run_paged(const kv_request *reqs, size_t n, uint32_t n_blocks, capture *c)
{
    kv_engine_config ec;
    kv_engine_config_default(&ec);
    ec.max_num_seqs = 8;
    ec.max_num_batched_tokens = 64;
    ec.max_model_len = 64;
    kv_alloc_config ac = t_config(KV_PAGED, (uint64_t)n_blocks * 4);
    ac.paged.block_tokens = 4;
    kv_engine *e = NULL;
    kv_err err = {{0}};
    static const double one_second = 1.0; /* times are step counts */
    kv_executor ex = {.ctx = (void *)&one_second, .step = t_fixed_step};
    assert_int_equal(kv_engine_create(&ec, &ac, ex, &e, &err), KV_OK);
    t_list_src src = {reqs, n, 0};
    memset(c, 0, sizeof *c);
    kv_observer obs = {.ctx = c, .on_request = cap_request, .on_step = cap_step};
    kv_status st = kv_engine_run(e, (kv_source){&src, t_list_next}, obs, true, &err);
    if (st != KV_OK)
        fail_msg("run: %s", err.msg);
    c->stats = *kv_engine_stats_of(e);
    kv_engine_destroy(&e);
}

static const kv_req_record *find(const capture *c, uint64_t id)
{
    for (size_t i = 0; i < c->n_req; i++)
        if (c->req[i].id == id)
            return &c->req[i];
    fail_msg("request %llu never finished", (unsigned long long)id);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */

/* A(0 s, 8, 3) and B(0 s, 8, 3) fit 8 blocks of 4; C(0 s, 20, 2) needs 5 blocks and waits.
 *   step 1 [0,1]: prefill A, B (2 blocks each); C does not fit behind them (FCFS stops).
 *   step 2 [1,2]: A, B append their 9th token: a third block each, 2 blocks free.
 *   step 3 [2,3]: A, B reach 3 tokens of output and finish; all 8 blocks free.
 *   step 4 [3,4]: C prefills (5 blocks): TTFT 4.   step 5 [4,5]: C decodes and finishes. */
static void test_fcfs_admission_ttft_and_breakdown_by_hand(void **state)
{
    (void)state;
    kv_request reqs[] = {t_req(0, 8, 3), t_req(0, 8, 3), t_req(0, 20, 2)};
    capture c;
    run_paged(reqs, 3, 8, &c);
    assert_int_equal(c.n_req, 3);
    const kv_req_record *a = find(&c, 0), *b = find(&c, 1), *cc = find(&c, 2);
    assert_true(a->t_admit_s == 0 && b->t_admit_s == 0 && cc->t_admit_s == 3);
    assert_true(a->t_first_token_s == 1 && b->t_first_token_s == 1);
    assert_true(cc->t_first_token_s == 4);
    assert_true(a->t_finish_s == 3 && b->t_finish_s == 3 && cc->t_finish_s == 5);
    assert_true(c.req[0].id == 0 && c.req[1].id == 1 && c.req[2].id == 2); /* finish order */
    /* after step 2: A and B hold 9 tokens in 3 blocks each and will reach 10 */
    const kv_mem_breakdown *m = &c.mem_at[2];
    assert_int_equal(m->token_bytes, 18 * T_TOKEN_BYTES);
    assert_int_equal(m->reserved_bytes, 2 * T_TOKEN_BYTES);
    assert_int_equal(m->internal_frag_bytes, 4 * T_TOKEN_BYTES);
    assert_int_equal(m->free_bytes, 8 * T_TOKEN_BYTES);
    assert_int_equal(c.running_at[2], 2);
    /* after step 4: C alone, 20 tokens in 5 blocks, will reach 21 (a sixth block later) */
    m = &c.mem_at[4];
    assert_int_equal(m->token_bytes, 20 * T_TOKEN_BYTES);
    assert_int_equal(m->reserved_bytes, 0);
    assert_int_equal(m->free_bytes, 12 * T_TOKEN_BYTES);
}

/* Regression: an output so long that prompt + output wraps 32 bits (a source other than the
 * readers, which refuse it) is cut to the model's length as any long output is, not let through
 * to abort the replay. */
static void test_output_whose_sum_with_the_prompt_wraps_is_cut_to_max_model_len(void **state)
{
    (void)state;
    kv_request reqs[] = {t_req(0, 8, UINT32_MAX - 7)};
    capture c;
    run_paged(reqs, 1, 16, &c);
    assert_int_equal(c.n_req, 1);
    const kv_req_record *a = find(&c, 0);
    assert_int_equal(a->outcome, KV_REQ_DONE);
    assert_int_equal(a->output_tokens, 64 - 8); /* max_model_len - prompt */
}

/* A(0, 4, 10), B(0, 4, 10) in 4 blocks: both grow a block at token 5 and again at token 9,
 * when the pool is dry. A arrived first, so B, the latest, is the victim; it is recomputed
 * later from prompt + generated tokens and finishes after A. */
static void test_preemption_takes_the_latest_arrival(void **state)
{
    (void)state;
    kv_request reqs[] = {t_req(0, 4, 10), t_req(0, 4, 10)};
    capture c;
    run_paged(reqs, 2, 4, &c);
    const kv_req_record *a = find(&c, 0), *b = find(&c, 1);
    assert_int_equal(a->preemptions, 0);
    assert_int_equal(b->preemptions, 1);
    assert_true(a->t_finish_s < b->t_finish_s);
    assert_true(a->t_first_token_s == 1 && b->t_first_token_s == 1);
    /* A decodes without a pause: 1 prefill step + 9 decode steps */
    assert_true(a->t_finish_s == 10);
}

static void test_impossible_requests_are_rejected_not_hung(void **state)
{
    (void)state;
    kv_request reqs[] = {t_req(0, 64, 4),  /* prompt at the model context */
                         t_req(0, 40, 10), /* fits the context, not the 8-block pool */
                         t_req(1, 4, 2)};
    capture c;
    run_paged(reqs, 3, 8, &c);
    assert_int_equal(c.n_req, 3);
    assert_int_equal(find(&c, 0)->outcome, KV_REQ_REJECTED);
    assert_non_null(strstr(find(&c, 0)->reject_reason, "max_model_len"));
    assert_int_equal(find(&c, 1)->outcome, KV_REQ_REJECTED);
    assert_non_null(strstr(find(&c, 1)->reject_reason, "KV budget"));
    assert_int_equal(find(&c, 2)->outcome, KV_REQ_DONE);
}

static void test_parallel_samples_share_the_prompt(void **state)
{
    (void)state;
    kv_request r = t_req(0, 8, 3);
    r.n_samples = 3;
    capture c;
    run_paged(&r, 1, 16, &c);
    /* after step 1 the prompt's two blocks are shared by three sequences (forked) */
    assert_int_equal(c.mem_at[1].token_bytes, 8 * T_TOKEN_BYTES);
    /* after step 2 each sample wrote its 9th token to a block of its own */
    assert_int_equal(c.mem_at[2].token_bytes, (8 + 3) * T_TOKEN_BYTES);
    assert_int_equal(find(&c, 0)->n_samples, 3);
    assert_true(find(&c, 0)->t_finish_s == 3);
}

/* A replay of trace under strategy s into dir, as the CLI tests run it: 4x the trace's rate,
 * 512 sequences, no wall time, a timeline row per step. */
static kv_run_config replay_config(const char *trace, kv_strategy s, const char *dir)
{
    kv_run_config c;
    kv_run_config_default(&c);
    c.trace = trace;
    c.out_dir = dir;
    c.alloc.strategy = s;
    c.engine.rate_scale = 4;
    c.engine.max_num_seqs = 512;
    c.report.no_wall_time = true;
    c.report.timeline_interval_s = 0;
    return c;
}

/* kv_run, failing the test with its message. */
static void replay(const kv_run_config *c)
{
    kv_summary s;
    kv_err e = {{0}};
    kv_status st = kv_run(c, NULL, &s, &e);
    if (st != KV_OK)
        fail_msg("kv_run %s on %s: %s: %s", kv_strategy_name(c->alloc.strategy), c->trace,
                 kv_status_str(st), e.msg);
}

/* A big model on the long-context Mooncake trace. */
static void big_model(kv_run_config *c)
{
    c->model = "Llama-3.1-405B";
    c->gpu = "H200";
    c->tp = 8;
    c->engine.max_model_len = 131072;
}

static const kv_strategy all_strategies[] = {KV_CONTIGUOUS, KV_CHUNK_POOL, KV_PAGED,
                                             KV_COMPRESSED};

static void test_two_identical_runs_are_byte_identical(void **state)
{
    (void)state;
    char d1[256], d2[256];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(d1, sizeof d1, "%s/kvsim-eng-%d-a", tmp, (int)getpid());
    snprintf(d2, sizeof d2, "%s/kvsim-eng-%d-b", tmp, (int)getpid());
    for (int s = 0; s < 4; s++) {
        kv_run_config c = replay_config("traces/data/azure2023_code.csv", all_strategies[s], d1);
        c.limit = 3000;
        c.report.perfetto = true;
        replay(&c);
        c.out_dir = d2;
        replay(&c);
        const char *files[] = {"config.json", "requests.csv", "timeline.csv", "summary.json",
                               "trace.json"};
        for (int f = 0; f < 5; f++) {
            char a[1024], b[1024];
            snprintf(a, sizeof a, "%s/%s", d1, files[f]);
            snprintf(b, sizeof b, "%s/%s", d2, files[f]);
            if (!t_same_file(a, b))
                fail_msg("%s: %s differs between two identical runs",
                         kv_strategy_name(all_strategies[s]), files[f]);
        }
    }
    assert_int_equal(t_rm_rf(d1), 0);
    assert_int_equal(t_rm_rf(d2), 0);
}

static void test_checker_holds_at_every_step_on_real_traces(void **state)
{
    (void)state;
    char d[256];
    snprintf(d, sizeof d, "%s/kvsim-eng-%d-c", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    for (int s = 0; s < 4; s++) {
        kv_run_config c = replay_config("traces/data/azure2023_conv.csv", all_strategies[s], d);
        c.limit = 1500;
        c.check = true;
        c.alloc.watermark = 0;
        switch (all_strategies[s]) {
        case KV_CONTIGUOUS:
            c.alloc.contiguous.reserve = KV_RESERVE_GROW;
            c.alloc.contiguous.fit = KV_FIT_BEST;
            c.engine.preempt = KV_PREEMPT_SWAP;
            break;
        case KV_CHUNK_POOL:
            c.alloc.chunk.layout = KV_CHUNK_FUSED;
            c.engine.preempt = KV_PREEMPT_SWAP;
            break;
        case KV_PAGED: c.engine.preempt = KV_PREEMPT_SWAP; break;
        case KV_COMPRESSED:
            c.alloc.compressed.policy = KV_TOKENS_WINDOW;
            c.alloc.compressed.window_tokens = 512;
            break;
        case KV_N_STRATEGIES: break;
        }
        replay(&c);
        c = replay_config("traces/data/mooncake_synthetic_trace.jsonl", all_strategies[s], d);
        c.limit = 300;
        c.check = true;
        big_model(&c);
        replay(&c);
    }
    assert_int_equal(t_rm_rf(d), 0);
}

/* One request decoding alone: the fast path takes every step but the prefill and the last
 * decode (a completion); new blocks are taken inside jumps. The checker compares the
 * delta-maintained breakdown with a recount after every jump. */
static void test_fast_path_jumps_over_pure_decode_steps(void **state)
{
    (void)state;
    kv_request r = t_req(0, 5, 40);
    capture c;
    run_paged(&r, 1, 16, &c);
    assert_int_equal(c.stats.steps, 40);
    assert_true(c.stats.steps_jumped >= 37);
    assert_true(find(&c, 0)->t_finish_s == 40);
}

/* The fast path must not change a byte: every bundled trace, every strategy, with and without. */
static void test_fast_path_gives_byte_identical_outputs(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char d1[256], d2[256];
    snprintf(d1, sizeof d1, "%s/kvsim-fp-%d-a", tmp, (int)getpid());
    snprintf(d2, sizeof d2, "%s/kvsim-fp-%d-b", tmp, (int)getpid());
    static const char *const traces[] = {"traces/data/azure2023_conv.csv",
                                         "traces/data/azure2023_code.csv",
                                         "traces/data/mooncake_synthetic_trace.jsonl"};
    static const char *const configs[] = {"contiguous-pow2", "contiguous-grow", "chunk-pool",
                                          "chunk-pool-fused", "paged", "compressed-fp8"};
    for (size_t t = 0; t < 3; t++) {
        for (size_t s = 0; s < sizeof configs / sizeof configs[0]; s++) {
            const kv_named_config *nc = kv_named_config_find(configs[s]);
            assert_non_null(nc);
            kv_run_config c = replay_config(traces[t], nc->strategy, d1);
            kv_named_config_apply(nc, &c.alloc);
            if (t == 2)
                big_model(&c);
            replay(&c);
            c.out_dir = d2;
            c.engine.fast_path = false;
            replay(&c);
            const char *files[] = {"requests.csv", "timeline.csv", "summary.json"};
            for (int f = 0; f < 3; f++) {
                char a[1024], b[1024];
                snprintf(a, sizeof a, "%s/%s", d1, files[f]);
                snprintf(b, sizeof b, "%s/%s", d2, files[f]);
                if (!t_same_file(a, b))
                    fail_msg("%s, %s: %s differs with the fast path", traces[t], configs[s],
                             files[f]);
            }
        }
    }
    assert_int_equal(t_rm_rf(d1), 0);
    assert_int_equal(t_rm_rf(d2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fcfs_admission_ttft_and_breakdown_by_hand),
        cmocka_unit_test(test_output_whose_sum_with_the_prompt_wraps_is_cut_to_max_model_len),
        cmocka_unit_test(test_preemption_takes_the_latest_arrival),
        cmocka_unit_test(test_impossible_requests_are_rejected_not_hung),
        cmocka_unit_test(test_parallel_samples_share_the_prompt),
        cmocka_unit_test(test_two_identical_runs_are_byte_identical),
        cmocka_unit_test(test_checker_holds_at_every_step_on_real_traces),
        cmocka_unit_test(test_fast_path_jumps_over_pure_decode_steps),
        cmocka_unit_test(test_fast_path_gives_byte_identical_outputs),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
