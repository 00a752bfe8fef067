/* run.c — one replay: the request source, the engine or router with the cost model (or
 * kvgpu's executor), the report files and config.json. See run.h.
 *
 * Order of a run (it fixes what exists when a hook is called, and what a failure leaves):
 * presets and budget -> allocator config resolved -> cost model (calibrated) -> executor
 * (wrapped by hooks) -> engine or router -> decision log -> hooks' attach -> source -> report
 * folder and config.json -> the run -> summary.json -> hooks' finish.
 *
 * The option names here are kvsim replay's; kv_run_config_set is the single place that turns
 * one into a field, for the CLI and for the option lists that plan and sweep pass on.
 */
#include "run.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "costmodel.h"
#include "decisions.h"
#include "gen.h"
#include "preset.h"
#include "spec.h"

/* ------------------------------------------------------------------------------------------ */

/* Replay options that take no value; every other option in value_options takes one. */
static const char *const flag_options[] = {
    "--no-chunked-prefill", "--skip-bad-rows",   "--perfetto", "--no-wall-time", "--check",
    "--no-fast-path",       "--no-prefix-cache",
};
static const char *const value_options[] = {
    "-o",
    "--strategy",
    "--model",
    "--gpu",
    "--calib",
    "--decision-log",
    "--tp",
    "--gpu-mem-util",
    "--swap-space-gib",
    "--max-num-seqs",
    "--max-num-batched-tokens",
    "--preempt",
    "--max-preemptions",
    "--max-model-len",
    "--rate-scale",
    "--replicas",
    "--router",
    "--limit",
    "--skip",
    "--seed",
    "--format",
    "--slo-ttft",
    "--slo-tpot",
    "--timeline-interval",
    "--reserve",
    "--fit",
    "--chunk-mib",
    "--layout",
    "--block-tokens",
    "--watermark",
    "--kv-bits",
    "--scale-group",
    "--scale-bytes",
    "--token-policy",
    "--sink",
    "--window",
    "--budget",
};

#define N_OF(x) (sizeof(x) / sizeof((x)[0]))

/* compare's six first, in compare's order; then the rest of sweep's and bench's. */
static const kv_named_config named[] = {
    {"contiguous-max", KV_CONTIGUOUS, KV_NAMED_IN_COMPARE | KV_NAMED_IN_BENCH, KV_NAMED_NO_SIZE,
     KV_RESERVE_MAX, -1, -1, -1, 0, 0, 0},
    {"contiguous-pow2", KV_CONTIGUOUS, KV_NAMED_IN_COMPARE, KV_NAMED_NO_SIZE, KV_RESERVE_POW2, -1,
     -1, -1, 0, 0, 0},
    {"contiguous-oracle", KV_CONTIGUOUS, KV_NAMED_IN_COMPARE | KV_NAMED_IN_BENCH, KV_NAMED_NO_SIZE,
     KV_RESERVE_ORACLE, -1, -1, -1, 0, 0, 0},
    {"chunk-pool", KV_CHUNK_POOL, KV_NAMED_IN_COMPARE | KV_NAMED_IN_BENCH, KV_NAMED_CHUNK_BYTES, -1,
     -1, -1, -1, 0, 0, 0},
    {"paged", KV_PAGED, KV_NAMED_IN_COMPARE | KV_NAMED_IN_BENCH, KV_NAMED_BLOCK_TOKENS, -1, -1, -1,
     -1, 0, 0, 0},
    {"compressed-fp8", KV_COMPRESSED, KV_NAMED_IN_COMPARE | KV_NAMED_IN_BENCH,
     KV_NAMED_BLOCK_TOKENS, -1, -1, -1, -1, 8, 0, 0},
    {"contiguous-grow", KV_CONTIGUOUS, 0, KV_NAMED_NO_SIZE, KV_RESERVE_GROW, -1, -1, -1, 0, 0, 0},
    {"contiguous-oracle-best-fit", KV_CONTIGUOUS, KV_NAMED_IN_BENCH, KV_NAMED_NO_SIZE,
     KV_RESERVE_ORACLE, KV_FIT_BEST, -1, -1, 0, 0, 0},
    {"contiguous-grow-buddy", KV_CONTIGUOUS, KV_NAMED_IN_BENCH, KV_NAMED_NO_SIZE, KV_RESERVE_GROW,
     KV_FIT_BUDDY, -1, -1, 0, 0, 0},
    {"chunk-pool-fused", KV_CHUNK_POOL, KV_NAMED_IN_BENCH, KV_NAMED_CHUNK_BYTES, -1, -1,
     KV_CHUNK_FUSED, -1, 0, 0, 0},
    {"compressed-int4", KV_COMPRESSED, 0, KV_NAMED_BLOCK_TOKENS, -1, -1, -1, -1, 4, 32, 2},
    {"compressed-fp8-window", KV_COMPRESSED, KV_NAMED_IN_BENCH, KV_NAMED_BLOCK_TOKENS, -1, -1, -1,
     KV_TOKENS_WINDOW, 8, 0, 0},
};

/* The request source: a trace reader or a workload generator. */
typedef struct source {
    kv_trace *trace;
    kv_gen *gen;
} source;

/* Progress on a terminal only: the observer wrapper prints a line per simulated minute. */
typedef struct progress {
    kv_observer inner;
    bool on;
    double next_s;
    const char *label;
} progress;

/* ------------------------------------------------------------------------------------------ */

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static kv_status set_u64(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out,
                         kv_err *err)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < lo || v > hi)
        return kv_errorf(err, KV_ERR_INPUT,
                         "option %s: expected an integer in %llu..%llu, got \"%s\"", opt,
                         (unsigned long long)lo, (unsigned long long)hi, s);
    *out = v;
    return KV_OK;
}

static kv_status set_u32(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint32_t *out,
                         kv_err *err)
{
    uint64_t v = 0;
    kv_status st = set_u64(opt, s, lo, hi, &v, err);
    if (st == KV_OK)
        *out = (uint32_t)v;
    return st;
}

static kv_status set_double(const char *opt, const char *s, double lo, double hi, double *out,
                            kv_err *err)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi)
        return kv_errorf(err, KV_ERR_INPUT, "option %s: expected a number in [%g, %g], got \"%s\"",
                         opt, lo, hi, s);
    *out = v;
    return KV_OK;
}

static kv_status unknown_value(const char *opt, const char *v, kv_err *err)
{
    return kv_errorf(err, KV_ERR_INPUT, "option %s: unknown value \"%s\"", opt, v);
}

static kv_status source_next(void *ctx, kv_request *out, kv_err *err)
{
    source *s = ctx;
    return s->trace ? kv_trace_next(s->trace, out, err) : kv_gen_next(s->gen, out, err);
}

static bool ends_with(const char *s, const char *t)
{
    size_t a = strlen(s), b = strlen(t);
    return a >= b && strcmp(s + a - b, t) == 0;
}

static kv_status source_skip(source *s, uint64_t n, kv_err *err)
{
    kv_request r;
    for (uint64_t i = 0; i < n; i++) {
        kv_status st = source_next(s, &r, err);
        if (st != KV_OK)
            return st == KV_EOF ? KV_OK : st; /* a window past the end is empty */
    }
    return KV_OK;
}

static kv_status source_open(const kv_run_config *c, source *s, kv_err *err)
{
    *s = (source){0};
    if (!ends_with(c->trace, ".ini")) {
        kv_status st = kv_trace_open(c->trace, &c->trace_opts, &s->trace, err);
        return st == KV_OK ? source_skip(s, c->skip, err) : st;
    }
    kv_workload_spec spec;
    kv_spec_default(&spec);
    kv_status st = kv_spec_load(c->trace, &spec, err);
    if (st == KV_OK && c->limit) { /* limit sets the number of requests to generate */
        spec.requests = c->limit + c->skip;
        spec.duration_s = 0;
    }
    if (st == KV_OK)
        st = kv_gen_create(&spec, c->seed, &s->gen, err);
    return st == KV_OK ? source_skip(s, c->skip, err) : st;
}

static void source_close(source *s)
{
    kv_trace_close(&s->trace);
    kv_gen_destroy(&s->gen);
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static kv_status progress_step(void *ctx, const kv_step_record *s, kv_err *err)
{
    progress *p = ctx;
    if (p->on && s->t_end_s >= p->next_s) {
        fprintf(stderr, "\r%s: t = %.0f s, %u running, %u waiting   ", p->label, s->t_end_s,
                s->running, s->waiting);
        p->next_s = s->t_end_s + 60;
    }
    return p->inner.on_step(p->inner.ctx, s, err);
}

static kv_status progress_request(void *ctx, const kv_req_record *r, kv_err *err)
{
    progress *p = ctx;
    return p->inner.on_request(p->inner.ctx, r, err);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The knobs of every strategy, whichever runs (the struct whole). */
static json_t *all_knobs_json(const kv_alloc_config *ac)
{
    return json_pack(
        "{s:{s:s, s:s}, s:{s:I, s:s}, s:{s:i, s:b}, s:{s:i, s:i, s:i, s:s, s:i, s:i, s:i}}",
        "contiguous", "reserve", kv_reserve_name(ac->contiguous.reserve), "fit",
        kv_fit_name(ac->contiguous.fit), "chunk-pool", "chunk_bytes",
        (json_int_t)ac->chunk.chunk_bytes, "layout", kv_chunk_layout_name(ac->chunk.layout),
        "paged", "block_tokens", (int)ac->paged.block_tokens, "prefix_caching",
        (int)ac->paged.prefix_caching, "compressed", "kv_bits", (int)ac->compressed.elem_bits,
        "scale_group_elems", (int)ac->compressed.scale_group_elems, "scale_bytes",
        (int)ac->compressed.scale_bytes, "token_policy",
        kv_token_policy_name(ac->compressed.policy), "sink_tokens", (int)ac->compressed.sink_tokens,
        "window_tokens", (int)ac->compressed.window_tokens, "budget_tokens",
        (int)ac->compressed.budget_tokens);
}

/* config.json: the configuration c as resolved for this run (engine ec, allocator ac, model,
 * GPU with calibration, budget b). Every field of kv_run_config appears, except out_dir (the
 * folder the file is in) and progress (terminal-dependent, and no effect on the outputs). The
 * keys of the first version come first, in their order, so older readers find them. */
static json_t *config_json(const kv_run_config *c, const char *label, const kv_engine_config *ec,
                           const kv_alloc_config *ac, const kv_model *m, const kv_gpu *g,
                           const kv_budget *b)
{
    json_t *j = json_object(), *x;
    json_object_set_new(j, "trace", json_string(c->trace));
    json_object_set_new(j, "seed", json_integer((json_int_t)c->seed));
    json_object_set_new(j, "rate_scale", json_real(ec->rate_scale));
    x = json_object();
    json_object_set_new(x, "name", json_string(m->name));
    json_object_set_new(x, "n_layers", json_integer(m->n_layers));
    json_object_set_new(x, "n_kv_heads", json_integer(m->n_kv_heads));
    json_object_set_new(x, "head_dim", json_integer(m->head_dim));
    json_object_set_new(x, "mla_latent_dim", json_integer(m->mla_latent_dim));
    json_object_set_new(x, "params_b", json_real(m->params_b));
    json_object_set_new(x, "tp", json_integer((json_int_t)c->tp));
    json_object_set_new(j, "model", x);
    x = json_object();
    json_object_set_new(x, "name", json_string(g->name));
    json_object_set_new(x, "memory_gib", json_real(g->memory_gib));
    json_object_set_new(x, "hbm_tbps", json_real(g->hbm_tbps));
    json_object_set_new(x, "bf16_tflops", json_real(g->bf16_tflops));
    json_object_set_new(x, "eff_memory", json_real(g->eff_memory));
    json_object_set_new(x, "eff_compute", json_real(g->eff_compute));
    json_object_set_new(x, "step_overhead_ms", json_real(g->step_overhead_ms));
    json_object_set_new(x, "calibration", str_or_null(c->calib));
    json_object_set_new(j, "gpu", x);
    x = json_object();
    json_object_set_new(x, "gpu_memory_utilization", json_real(c->gpu_mem_util));
    json_object_set_new(x, "weight_bytes", json_integer((json_int_t)b->weight_bytes));
    json_object_set_new(x, "activation_bytes", json_integer((json_int_t)b->activation_bytes));
    json_object_set_new(x, "non_torch_bytes", json_integer((json_int_t)b->non_torch_bytes));
    json_object_set_new(x, "kv_bytes", json_integer((json_int_t)b->kv_bytes));
    json_object_set_new(j, "budget", x);
    x = json_object();
    json_object_set_new(x, "max_num_seqs", json_integer(ec->max_num_seqs));
    json_object_set_new(x, "max_num_batched_tokens", json_integer(ec->max_num_batched_tokens));
    json_object_set_new(x, "chunked_prefill", json_boolean(ec->chunked_prefill));
    json_object_set_new(x, "preempt",
                        json_string(ec->preempt == KV_PREEMPT_SWAP ? "swap" : "recompute"));
    json_object_set_new(x, "max_preemptions", json_integer(ec->max_preemptions));
    json_object_set_new(x, "max_model_len", json_integer(ec->max_model_len));
    json_object_set_new(j, "engine", x);
    if (c->routed)
        json_object_set_new(j, "router",
                            json_pack("{s:s, s:I}", "policy", kv_route_policy_name(c->router),
                                      "replicas", (json_int_t)c->replicas));
    x = json_object();
    json_object_set_new(x, "strategy", json_string(kv_strategy_name(ac->strategy)));
    json_object_set_new(x, "pool_bytes", json_integer((json_int_t)ac->pool_bytes));
    json_object_set_new(x, "host_pool_bytes", json_integer((json_int_t)ac->host_pool_bytes));
    json_object_set_new(x, "host_link",
                        json_pack("{s:f, s:f, s:f}", "h2d_gbps", ac->host_link.h2d_gbps,
                                  "d2h_gbps", ac->host_link.d2h_gbps, "copy_latency_us",
                                  ac->host_link.copy_latency_us));
    json_object_set_new(x, "watermark", json_real(ac->watermark));
    json_object_set_new(x, "token_bytes",
                        json_integer((json_int_t)kv_shape_token_bytes(&ac->shape)));
    switch (ac->strategy) {
    case KV_CONTIGUOUS:
        json_object_set_new(x, "reserve", json_string(kv_reserve_name(ac->contiguous.reserve)));
        json_object_set_new(x, "fit", json_string(kv_fit_name(ac->contiguous.fit)));
        break;
    case KV_CHUNK_POOL:
        json_object_set_new(x, "chunk_bytes", json_integer((json_int_t)ac->chunk.chunk_bytes));
        json_object_set_new(x, "layout", json_string(kv_chunk_layout_name(ac->chunk.layout)));
        break;
    case KV_COMPRESSED:
        json_object_set_new(x, "kv_bits", json_integer(ac->compressed.elem_bits));
        json_object_set_new(x, "scale_group_elems", json_integer(ac->compressed.scale_group_elems));
        json_object_set_new(x, "scale_bytes", json_integer(ac->compressed.scale_bytes));
        json_object_set_new(x, "token_policy",
                            json_string(kv_token_policy_name(ac->compressed.policy)));
        json_object_set_new(x, "sink_tokens", json_integer(ac->compressed.sink_tokens));
        json_object_set_new(x, "window_tokens", json_integer(ac->compressed.window_tokens));
        json_object_set_new(x, "budget_tokens", json_integer(ac->compressed.budget_tokens));
        /* fall through - compressed uses the paged knobs too */
    case KV_PAGED:
        json_object_set_new(x, "block_tokens", json_integer(ac->paged.block_tokens));
        json_object_set_new(x, "prefix_caching", json_boolean(ac->paged.prefix_caching));
        break;
    case KV_N_STRATEGIES: break;
    }
    json_object_set_new(x, "knobs", all_knobs_json(ac));
    json_object_set_new(j, "allocator", x);
    /* added with kv_run: the rest of the struct */
    json_object_set_new(
        j, "run",
        json_pack("{s:s, s:I, s:I, s:f, s:s, s:b, s:b, s:b, s:o, s:b, s:s, s:I}", "label", label,
                  "limit", (json_int_t)c->limit, "skip", (json_int_t)c->skip, "swap_space_gib",
                  c->swap_space_gib, "trace_format", kv_trace_format_name(c->trace_opts.format),
                  "skip_bad_rows", (int)c->trace_opts.skip_bad_rows, "check", (int)c->check,
                  "fast_path", (int)ec->fast_path, "decision_log", str_or_null(c->decision_log),
                  "routed", (int)c->routed, "router", kv_route_policy_name(c->router), "replicas",
                  (json_int_t)c->replicas));
    json_object_set_new(j, "report",
                        json_pack("{s:f, s:f, s:f, s:b, s:b}", "timeline_interval_s",
                                  c->report.timeline_interval_s, "slo_ttft_s", c->report.slo_ttft_s,
                                  "slo_tpot_s", c->report.slo_tpot_s, "perfetto",
                                  (int)c->report.perfetto, "no_wall_time",
                                  (int)c->report.no_wall_time));
    return j;
}

/* ------------------------------------------------------------------------------------------ */

void kv_run_config_default(kv_run_config *c)
{
    *c = (kv_run_config){.model = "Llama-3-8B",
                         .gpu = "H100-80GB",
                         .seed = 1,
                         .tp = 1,
                         .gpu_mem_util = 0.9,
                         .swap_space_gib = 4,
                         .replicas = 1};
    kv_engine_config_default(&c->engine);
    c->engine.max_model_len = 0; /* from the model unless given */
    kv_shape none = {0};
    kv_alloc_config_default(&c->alloc, KV_PAGED, &none, 0);
    c->report = (kv_report_opts){.timeline_interval_s = 1.0, .slo_ttft_s = 2.0, .slo_tpot_s = 0.1};
}

int kv_run_option_arity(const char *opt)
{
    if (in_list(opt, flag_options, N_OF(flag_options)))
        return 0;
    if (in_list(opt, value_options, N_OF(value_options)))
        return 1;
    return -1;
}

kv_status kv_run_config_set(kv_run_config *c, const char *a, const char *v, kv_err *err)
{
    int arity = kv_run_option_arity(a);
    if (arity < 0)
        return kv_errorf(err, KV_ERR_INPUT, "unknown option %s", a);
    if (arity == 1 && v == NULL)
        return kv_errorf(err, KV_ERR_INPUT, "option %s needs a value", a);
    kv_alloc_config *ac = &c->alloc;
    kv_engine_config *ec = &c->engine;
    double d = 0;
    kv_status st = KV_OK;
    /* flags */
    if (strcmp(a, "--no-chunked-prefill") == 0)
        ec->chunked_prefill = false;
    else if (strcmp(a, "--skip-bad-rows") == 0)
        c->trace_opts.skip_bad_rows = true;
    else if (strcmp(a, "--perfetto") == 0)
        c->report.perfetto = true;
    else if (strcmp(a, "--no-wall-time") == 0)
        c->report.no_wall_time = true;
    else if (strcmp(a, "--check") == 0)
        c->check = true;
    else if (strcmp(a, "--no-fast-path") == 0)
        ec->fast_path = false;
    else if (strcmp(a, "--no-prefix-cache") == 0)
        ac->paged.prefix_caching = false;
    /* files and presets */
    else if (strcmp(a, "-o") == 0)
        c->out_dir = v;
    else if (strcmp(a, "--model") == 0)
        c->model = v;
    else if (strcmp(a, "--gpu") == 0)
        c->gpu = v;
    else if (strcmp(a, "--calib") == 0)
        c->calib = v;
    else if (strcmp(a, "--decision-log") == 0)
        c->decision_log = v;
    else if (strcmp(a, "--strategy") == 0)
        st = kv_strategy_parse(v, &ac->strategy) == KV_OK ? KV_OK : unknown_value(a, v, err);
    /* model and hardware, engine */
    else if (strcmp(a, "--tp") == 0)
        st = set_u64(a, v, 1, 64, &c->tp, err);
    else if (strcmp(a, "--gpu-mem-util") == 0)
        st = set_double(a, v, 0.05, 1.0, &c->gpu_mem_util, err);
    else if (strcmp(a, "--swap-space-gib") == 0)
        st = set_double(a, v, 0, 1e6, &c->swap_space_gib, err);
    else if (strcmp(a, "--max-num-seqs") == 0)
        st = set_u32(a, v, 1, 1u << 20, &ec->max_num_seqs, err);
    else if (strcmp(a, "--max-num-batched-tokens") == 0)
        st = set_u32(a, v, 1, 1u << 24, &ec->max_num_batched_tokens, err);
    else if (strcmp(a, "--preempt") == 0) {
        if (strcmp(v, "recompute") == 0)
            ec->preempt = KV_PREEMPT_RECOMPUTE;
        else if (strcmp(v, "swap") == 0)
            ec->preempt = KV_PREEMPT_SWAP;
        else
            st = kv_errorf(err, KV_ERR_INPUT,
                           "option --preempt: expected recompute or swap, got \"%s\"", v);
    } else if (strcmp(a, "--max-preemptions") == 0)
        st = set_u32(a, v, 0, 1u << 20, &ec->max_preemptions, err);
    else if (strcmp(a, "--max-model-len") == 0)
        st = set_u32(a, v, 2, 1u << 30, &ec->max_model_len, err);
    else if (strcmp(a, "--rate-scale") == 0)
        st = set_double(a, v, 1e-6, 1e6, &ec->rate_scale, err);
    else if (strcmp(a, "--replicas") == 0) {
        st = set_u64(a, v, 1, 4096, &c->replicas, err);
        c->routed = c->routed || st == KV_OK;
    } else if (strcmp(a, "--router") == 0) {
        st = kv_route_policy_parse(v, &c->router) == KV_OK ? KV_OK : unknown_value(a, v, err);
        c->routed = c->routed || st == KV_OK;
    }
    /* the source */
    else if (strcmp(a, "--limit") == 0)
        st = set_u64(a, v, 1, UINT64_MAX, &c->limit, err);
    else if (strcmp(a, "--skip") == 0)
        st = set_u64(a, v, 0, UINT64_MAX, &c->skip, err);
    else if (strcmp(a, "--seed") == 0)
        st = set_u64(a, v, 0, UINT32_MAX, &c->seed, err);
    else if (strcmp(a, "--format") == 0) {
        int f = KV_TRACE_AUTO;
        while (f <= KV_TRACE_MOONCAKE && strcmp(v, kv_trace_format_name((kv_trace_format)f)) != 0)
            f++;
        if (f > KV_TRACE_MOONCAKE)
            st = kv_errorf(err, KV_ERR_INPUT, "option --format: unknown format \"%s\"", v);
        else
            c->trace_opts.format = (kv_trace_format)f;
    }
    /* outputs */
    else if (strcmp(a, "--slo-ttft") == 0)
        st = set_double(a, v, 0, 1e9, &c->report.slo_ttft_s, err);
    else if (strcmp(a, "--slo-tpot") == 0)
        st = set_double(a, v, 0, 1e9, &c->report.slo_tpot_s, err);
    else if (strcmp(a, "--timeline-interval") == 0)
        st = set_double(a, v, 0, 1e9, &c->report.timeline_interval_s, err);
    /* allocator knobs */
    else if (strcmp(a, "--reserve") == 0)
        st = kv_reserve_parse(v, &ac->contiguous.reserve) == KV_OK ? KV_OK
                                                                   : unknown_value(a, v, err);
    else if (strcmp(a, "--fit") == 0)
        st = kv_fit_parse(v, &ac->contiguous.fit) == KV_OK ? KV_OK : unknown_value(a, v, err);
    else if (strcmp(a, "--chunk-mib") == 0) {
        if ((st = set_double(a, v, 1.0 / 1024, 1024, &d, err)) == KV_OK)
            ac->chunk.chunk_bytes = (uint64_t)(d * 1048576.0);
    } else if (strcmp(a, "--layout") == 0)
        st =
            kv_chunk_layout_parse(v, &ac->chunk.layout) == KV_OK ? KV_OK : unknown_value(a, v, err);
    else if (strcmp(a, "--block-tokens") == 0)
        st = set_u32(a, v, 1, 65536, &ac->paged.block_tokens, err);
    else if (strcmp(a, "--watermark") == 0)
        st = set_double(a, v, 0, 0.99, &ac->watermark, err);
    else if (strcmp(a, "--kv-bits") == 0)
        st = set_u32(a, v, 2, 16, &ac->compressed.elem_bits, err);
    else if (strcmp(a, "--scale-group") == 0)
        st = set_u32(a, v, 0, 1u << 20, &ac->compressed.scale_group_elems, err);
    else if (strcmp(a, "--scale-bytes") == 0)
        st = set_u32(a, v, 0, 64, &ac->compressed.scale_bytes, err);
    else if (strcmp(a, "--token-policy") == 0)
        st = kv_token_policy_parse(v, &ac->compressed.policy) == KV_OK ? KV_OK
                                                                       : unknown_value(a, v, err);
    else if (strcmp(a, "--sink") == 0)
        st = set_u32(a, v, 0, 1u << 30, &ac->compressed.sink_tokens, err);
    else if (strcmp(a, "--window") == 0)
        st = set_u32(a, v, 1, 1u << 30, &ac->compressed.window_tokens, err);
    else if (strcmp(a, "--budget") == 0)
        st = set_u32(a, v, 1, 1u << 30, &ac->compressed.budget_tokens, err);
    else
        KV_ASSERT(!"option listed but not handled");
    return st;
}

kv_status kv_run_config_args(kv_run_config *c, int n, char *const *words, kv_err *err)
{
    for (int i = 0; i < n; i++) {
        int arity = kv_run_option_arity(words[i]);
        if (arity < 0)
            return kv_errorf(err, KV_ERR_INPUT, "%s %s",
                             words[i][0] == '-' ? "unknown option" : "unexpected argument",
                             words[i]);
        const char *v = arity == 1 && i + 1 < n ? words[i + 1] : NULL;
        kv_status st = kv_run_config_set(c, words[i], v, err);
        if (st != KV_OK)
            return st;
        i += arity;
    }
    return KV_OK;
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_run(const kv_run_config *c, const kv_run_hooks *hooks, kv_summary *out, kv_err *err)
{
    kv_model m;
    kv_gpu g;
    if (c->trace == NULL || c->out_dir == NULL)
        return kv_errorf(err, KV_ERR_INPUT, "a replay needs a trace and an output folder");
    kv_status st = kv_model_load(c->model, &m, err);
    if (st == KV_OK)
        st = kv_gpu_load(c->gpu, &g, err);
    if (st != KV_OK)
        return KV_ERR_INPUT;
    const char *label = c->label ? c->label : kv_strategy_name(c->alloc.strategy);
    kv_engine_config ec = c->engine;
    if (ec.max_model_len == 0)
        ec.max_model_len = m.max_context;
    if (c->limit)
        ec.max_requests = c->limit;
    kv_budget b = kv_kv_budget(&m, &g, (uint32_t)c->tp, c->gpu_mem_util, ec.max_num_batched_tokens,
                               ec.max_num_seqs);
    if (b.kv_bytes <= 0)
        return kv_errorf(err, KV_ERR_INPUT,
                         "%s does not fit on %s x %llu at gpu_memory_utilization %.2f: weights "
                         "%.1f GiB + activations %.1f GiB leave no KV memory",
                         m.name, g.name, (unsigned long long)c->tp, c->gpu_mem_util,
                         (double)b.weight_bytes / (1 << 30),
                         (double)b.activation_bytes / (1 << 30));
    kv_alloc_config ac = c->alloc;
    if (ac.compressed.policy != KV_TOKENS_ALL) /* dropped tokens break shared prefixes */
        ac.paged.prefix_caching = false;
    ac.shape = kv_model_shape(&m, (uint32_t)c->tp);
    ac.pool_bytes = (uint64_t)b.kv_bytes;
    ac.host_pool_bytes = (uint64_t)(c->swap_space_gib * (double)(1ull << 30));
    kv_costmodel cm;
    /* the cost model reads KV at the strategy's stored size */
    kv_shape stored = kv_alloc_config_stored_shape(&ac);
    kv_costmodel_init(&cm, &m, &g, (uint32_t)c->tp, kv_shape_token_bytes(&stored));
    if (c->calib && kv_costmodel_calibrate(&cm, c->calib, err) != KV_OK)
        return KV_ERR_INPUT;
    ac.host_link = cm.host_link; /* the host tier's link, as the cost model prices it */
    kv_executor ex = kv_costmodel_executor(&cm);
    if (hooks) {
        ex = hooks->wrap(hooks->ctx, ex);
        ec.step_detail = true;
    }
    if (c->decision_log) /* the fast path appends many tokens at once: log them one by one */
        ec.fast_path = false;
    if ((hooks || c->decision_log) && c->routed)
        return kv_errorf(err, KV_ERR_INPUT,
                         "--decision-log and kvgpu run one engine: leave out --replicas");
    kv_engine *e = NULL;
    kv_router *router = NULL;
    if (c->routed)
        st = kv_router_create(&ec, &ac, ex, (uint32_t)c->replicas, c->router, &router, err);
    else
        st = kv_engine_create(&ec, &ac, ex, &e, err);
    if (st != KV_OK)
        return st == KV_ERR_NOMEM ? st : KV_ERR_INPUT;
    kv_decision_log *dlog = NULL;
    if (c->decision_log && (st = kv_decision_log_open(c->decision_log, &dlog, err)) != KV_OK) {
        kv_engine_destroy(&e);
        return st;
    }
    if (hooks) {
        st = hooks->attach(hooks->ctx, e, dlog, err);
        if (st != KV_OK) {
            kv_decision_log_close(&dlog, NULL);
            kv_engine_destroy(&e);
            return st;
        }
    } else if (dlog) {
        kv_engine_set_listener(e, kv_decision_log_listener, dlog);
    }
    source src;
    st = source_open(c, &src, err);
    kv_report *rep = NULL;
    kv_report_opts ro = c->report;
    ro.dir = c->out_dir;
    ro.replicas = (uint32_t)c->replicas;
    if (st == KV_OK)
        st = kv_report_open(&ro, &rep, err);
    if (st == KV_OK) {
        json_t *cfg = config_json(c, label, &ec, &ac, &m, &cm.gpu, &b);
        size_t n = strlen(c->out_dir) + sizeof "/config.json";
        char *path = malloc(n);
        if (path == NULL)
            st = kv_errorf(err, KV_ERR_NOMEM, "config.json: out of memory");
        else {
            snprintf(path, n, "%s/config.json", c->out_dir);
            if (json_dump_file(cfg, path,
                               JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)))
                st = kv_errorf(err, KV_ERR_IO, "%s: write failed", path);
            free(path);
        }
        json_decref(cfg);
    }
    double t0 = wall_now();
    if (st == KV_OK) {
        progress p = {.inner = kv_report_observer(rep), .on = c->progress, .label = label};
        kv_observer obs = {.ctx = &p, .on_request = progress_request, .on_step = progress_step};
        kv_source s = {.ctx = &src, .next = source_next};
        st = router ? kv_router_run(router, s, obs, c->check, err)
                    : kv_engine_run(e, s, obs, c->check, err);
        if (p.on)
            fprintf(stderr, "\r%*s\r", 70, "");
    }
    double wall = wall_now() - t0;
    /* built by jansson, so a trace path with quotes or backslashes stays valid JSON */
    json_t *mj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:f}", "trace", c->trace, "strategy",
                           kv_strategy_name(ac.strategy), "label", label, "model", m.name, "gpu",
                           g.name, "tp", (json_int_t)c->tp, "rate_scale", ec.rate_scale);
    kv_engine_stats es;
    kv_alloc_stats as;
    if (router) {
        kv_router_stats(router, &es, &as);
        json_t *routed = json_array();
        for (uint32_t i = 0; i < kv_router_replicas(router); i++)
            json_array_append_new(routed, json_integer((json_int_t)kv_router_routed(router, i)));
        json_object_set_new(mj, "router",
                            json_pack("{s:s, s:I, s:o}", "policy", kv_route_policy_name(c->router),
                                      "replicas", (json_int_t)c->replicas, "routed", routed));
    } else {
        es = *kv_engine_stats_of(e);
        as = *kv_alloc_stats_of(kv_engine_alloc(e));
    }
    char *meta = mj ? json_dumps(mj, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(mj);
    kv_summary sum;
    kv_status cst = kv_report_close(&rep, st == KV_OK ? &es : NULL, &as, meta, wall, &sum, err);
    free(meta);
    if (st == KV_OK)
        st = cst;
    cst = kv_decision_log_close(&dlog, err);
    if (st == KV_OK)
        st = cst;
    source_close(&src);
    if (st == KV_OK && hooks)
        st = hooks->finish(hooks->ctx, c->out_dir, err);
    kv_engine_destroy(&e);
    kv_router_destroy(&router);
    if (st == KV_OK && out)
        *out = sum;
    if (st != KV_OK && err && err->msg[0] == '\0')
        kv_errorf(err, st, "%s", kv_status_str(st));
    return st;
}

/* ------------------------------------------------------------------------------------------ */

size_t kv_named_config_count(void)
{
    return N_OF(named);
}

const kv_named_config *kv_named_config_at(size_t i)
{
    KV_ASSERT(i < N_OF(named));
    return &named[i];
}

const kv_named_config *kv_named_config_find(const char *name)
{
    for (size_t i = 0; i < N_OF(named); i++)
        if (strcmp(name, named[i].name) == 0)
            return &named[i];
    return NULL;
}

void kv_named_config_apply(const kv_named_config *n, kv_alloc_config *ac)
{
    ac->strategy = n->strategy;
    if (n->reserve >= 0)
        ac->contiguous.reserve = (kv_reserve)n->reserve;
    if (n->fit >= 0)
        ac->contiguous.fit = (kv_fit)n->fit;
    if (n->layout >= 0)
        ac->chunk.layout = (kv_chunk_layout)n->layout;
    if (n->policy >= 0) {
        ac->compressed.policy = (kv_token_policy)n->policy;
        if (n->policy != KV_TOKENS_ALL)
            ac->paged.prefix_caching = false;
    }
    if (n->elem_bits)
        ac->compressed.elem_bits = n->elem_bits;
    if (n->scale_group_elems) {
        ac->compressed.scale_group_elems = n->scale_group_elems;
        ac->compressed.scale_bytes = n->scale_bytes;
    }
}

void kv_named_config_list(char *buf, size_t cap)
{
    size_t used = 0;
    if (cap)
        buf[0] = '\0';
    for (size_t i = 0; i < N_OF(named) && used < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", named[i].name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}
