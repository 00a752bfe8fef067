/* cli_replay.c — `kvsim replay` (one strategy) and `kvsim compare` (every strategy) on a trace
 * or a workload spec, with the cost model as executor. */
#include "cli_replay.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_plot.h"
#include "costmodel.h"
#include "decisions.h"
#include "engine.h"
#include "gen.h"
#include "preset.h"
#include "reader.h"
#include "report.h"
#include "router.h"
#include "spec.h"

/* ------------------------------------------------------------------------------------------ */

typedef struct run_opts {
    const char *trace, *out, *model, *gpu, *calib, *decision_log;
    uint64_t seed, tp, limit, skip;
    double gpu_mem_util, swap_space_gib;
    kv_engine_config ec;
    kv_alloc_config ac; /* strategy knobs; shape and pool filled from the presets */
    kv_report_opts ro;
    kv_trace_opts to;
    bool check, progress, plot;
    uint64_t replicas;      /* engines behind a router; 1 without --router */
    kv_route_policy router;
    bool routed;            /* --replicas or --router given: run through the router */
} run_opts;

/* ------------------------------------------------------------------------------------------ */

static void usage_common(FILE *f)
{
    fprintf(f,
            "  TRACE is any trace kvsim reads, or a workload spec (.ini, generated with --seed).\n"
            "  model and hardware:\n"
            "    --model M (Llama-3-8B)  --gpu G (H100-80GB)  --tp N (1)  --gpu-mem-util X (0.9)\n"
            "    --calib FILE            cost-model coefficients from `kvgpu calibrate`\n"
            "  engine:\n"
            "    --max-num-seqs N (256)  --max-num-batched-tokens N (8192)  --no-chunked-prefill\n"
            "    --preempt recompute|swap (recompute)  --swap-space-gib X (4)\n"
            "    --max-preemptions N (8)  --max-model-len N (the model's context)\n"
            "    --rate-scale X (1: arrivals at their trace times; 2: twice as fast)\n"
            "    --replicas N (1)  --router round-robin|least-tokens (round-robin): N engines\n"
            "      behind a router on one clock; timeline.csv rows carry the replica\n"
            "    --limit N (requests)  --skip N (the first N requests are not replayed; with\n"
            "    --limit, a window)  --seed N (1)  --format F  --skip-bad-rows\n"
            "  outputs:\n"
            "    --slo-ttft S (2)  --slo-tpot S (0.1)  --timeline-interval S (1; 0 = every step)\n"
            "    --perfetto  --no-wall-time  --check (allocator checker every step)\n"
            "    --no-fast-path (step every iteration; same outputs, slower)\n"
            "    --decision-log FILE (every allocator operation, its result and placement;\n"
            "      steps one by one, as kvgpu does)\n"
            "  allocator knobs:\n"
            "    contiguous: --reserve max|pow2|oracle|grow  --fit first-fit|best-fit|buddy\n"
            "    chunk-pool: --chunk-mib X (2)  --layout per-layer|fused\n"
            "    paged, compressed: --block-tokens N (16)  --no-prefix-cache  --watermark X\n"
            "    compressed: --kv-bits 8|4|2 (8)  --scale-group N  --scale-bytes N\n"
            "                --token-policy none|window|budget  --sink N --window N --budget N\n");
}

static void usage_replay(FILE *f)
{
    fprintf(f, "usage: kvsim replay TRACE --strategy S [options] -o DIR\n"
               "  Replay TRACE under strategy S (contiguous, chunk-pool, paged, compressed) and\n"
               "  write config.json, requests.csv, timeline.csv, summary.json (and trace.json\n"
               "  with --perfetto) to DIR.\n");
    usage_common(f);
}

static void usage_compare(FILE *f)
{
    fprintf(f, "usage: kvsim compare TRACE [options] [-o DIR]\n"
               "  Replay TRACE under contiguous (max, pow2, oracle), chunk-pool, paged and\n"
               "  compressed (fp8) and print one table; with -o, each run's files go to\n"
               "  DIR/<strategy>/ and the table to DIR/compare.txt and DIR/compare.csv;\n"
               "  with --plot too, the figures of kvsim plot to DIR/plots/.\n");
    usage_common(f);
}

static void opts_default(run_opts *o)
{
    *o = (run_opts){.model = "Llama-3-8B",
                    .gpu = "H100-80GB",
                    .seed = 1,
                    .tp = 1,
                    .gpu_mem_util = 0.9,
                    .swap_space_gib = 4,
                    .replicas = 1};
    kv_engine_config_default(&o->ec);
    o->ec.max_model_len = 0; /* from the model unless given */
    kv_shape none = {0};
    kv_alloc_config_default(&o->ac, KV_PAGED, &none, 0);
    o->ro = (kv_report_opts){.timeline_interval_s = 1.0, .slo_ttft_s = 2.0, .slo_tpot_s = 0.1};
}

/* Parse argv into o. Returns -1 on error, 1 on --help, 0 otherwise. */
static int parse(const char *cmd, int argc, char **argv, run_opts *o, bool *strategy_set)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        uint64_t u;
        double d;
#define VAL()            ((v = kv_cli_value(cmd, argc, argv, &i)) != NULL)
#define U64(lo, hi, dst) (VAL() && kv_cli_u64(cmd, a, v, lo, hi, &u) && ((dst) = u, true))
#define DBL(lo, hi, dst) (VAL() && kv_cli_double(cmd, a, v, lo, hi, &d) && ((dst) = d, true))
#define ENUM(fn, dst)                                                                              \
    (VAL() &&                                                                                      \
     (fn(v, &(dst)) == KV_OK ||                                                                    \
      (fprintf(stderr, "kvsim %s: option %s: unknown value \"%s\"\n", cmd, a, v), false)))
        bool ok = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        else if (strcmp(a, "-o") == 0)
            ok = VAL() && (o->out = v);
        else if (strcmp(a, "--strategy") == 0)
            ok = ENUM(kv_strategy_parse, o->ac.strategy) && (*strategy_set = true);
        else if (strcmp(a, "--model") == 0)
            ok = VAL() && (o->model = v);
        else if (strcmp(a, "--gpu") == 0)
            ok = VAL() && (o->gpu = v);
        else if (strcmp(a, "--calib") == 0)
            ok = VAL() && (o->calib = v);
        else if (strcmp(a, "--decision-log") == 0)
            ok = VAL() && (o->decision_log = v);
        else if (strcmp(a, "--tp") == 0)
            ok = U64(1, 64, o->tp);
        else if (strcmp(a, "--gpu-mem-util") == 0)
            ok = DBL(0.05, 1.0, o->gpu_mem_util);
        else if (strcmp(a, "--swap-space-gib") == 0)
            ok = DBL(0, 1e6, o->swap_space_gib);
        else if (strcmp(a, "--max-num-seqs") == 0)
            ok = U64(1, 1u << 20, o->ec.max_num_seqs);
        else if (strcmp(a, "--max-num-batched-tokens") == 0)
            ok = U64(1, 1u << 24, o->ec.max_num_batched_tokens);
        else if (strcmp(a, "--no-chunked-prefill") == 0)
            o->ec.chunked_prefill = false;
        else if (strcmp(a, "--preempt") == 0) {
            ok = VAL();
            if (ok && strcmp(v, "recompute") == 0)
                o->ec.preempt = KV_PREEMPT_RECOMPUTE;
            else if (ok && strcmp(v, "swap") == 0)
                o->ec.preempt = KV_PREEMPT_SWAP;
            else if (ok) {
                fprintf(stderr,
                        "kvsim %s: option --preempt: expected recompute or swap, got "
                        "\"%s\"\n",
                        cmd, v);
                ok = false;
            }
        } else if (strcmp(a, "--max-preemptions") == 0)
            ok = U64(0, 1u << 20, o->ec.max_preemptions);
        else if (strcmp(a, "--max-model-len") == 0)
            ok = U64(2, 1u << 30, o->ec.max_model_len);
        else if (strcmp(a, "--rate-scale") == 0)
            ok = DBL(1e-6, 1e6, o->ec.rate_scale);
        else if (strcmp(a, "--replicas") == 0)
            ok = U64(1, 4096, o->replicas) && (o->routed = true);
        else if (strcmp(a, "--router") == 0)
            ok = ENUM(kv_route_policy_parse, o->router) && (o->routed = true);
        else if (strcmp(a, "--limit") == 0)
            ok = U64(1, UINT64_MAX, o->limit);
        else if (strcmp(a, "--skip") == 0)
            ok = U64(0, UINT64_MAX, o->skip);
        else if (strcmp(a, "--seed") == 0)
            ok = U64(0, UINT32_MAX, o->seed);
        else if (strcmp(a, "--skip-bad-rows") == 0)
            o->to.skip_bad_rows = true;
        else if (strcmp(a, "--format") == 0) {
            ok = VAL();
            int f = KV_TRACE_AUTO;
            while (ok && f <= KV_TRACE_MOONCAKE &&
                   strcmp(v, kv_trace_format_name((kv_trace_format)f)) != 0)
                f++;
            if (ok && f > KV_TRACE_MOONCAKE) {
                fprintf(stderr, "kvsim %s: option --format: unknown format \"%s\"\n", cmd, v);
                ok = false;
            }
            o->to.format = (kv_trace_format)f;
        } else if (strcmp(a, "--slo-ttft") == 0)
            ok = DBL(0, 1e9, o->ro.slo_ttft_s);
        else if (strcmp(a, "--slo-tpot") == 0)
            ok = DBL(0, 1e9, o->ro.slo_tpot_s);
        else if (strcmp(a, "--timeline-interval") == 0)
            ok = DBL(0, 1e9, o->ro.timeline_interval_s);
        else if (strcmp(a, "--perfetto") == 0)
            o->ro.perfetto = true;
        else if (strcmp(a, "--no-wall-time") == 0)
            o->ro.no_wall_time = true;
        else if (strcmp(a, "--check") == 0)
            o->check = true;
        else if (strcmp(a, "--no-fast-path") == 0)
            o->ec.fast_path = false;
        else if (strcmp(a, "--plot") == 0)
            o->plot = true;
        else if (strcmp(a, "--reserve") == 0)
            ok = ENUM(kv_reserve_parse, o->ac.contiguous.reserve);
        else if (strcmp(a, "--fit") == 0)
            ok = ENUM(kv_fit_parse, o->ac.contiguous.fit);
        else if (strcmp(a, "--chunk-mib") == 0) {
            ok = DBL(1.0 / 1024, 1024, d);
            o->ac.chunk.chunk_bytes = (uint64_t)(d * 1048576.0);
        } else if (strcmp(a, "--layout") == 0)
            ok = ENUM(kv_chunk_layout_parse, o->ac.chunk.layout);
        else if (strcmp(a, "--block-tokens") == 0)
            ok = U64(1, 65536, o->ac.paged.block_tokens);
        else if (strcmp(a, "--no-prefix-cache") == 0)
            o->ac.paged.prefix_caching = false;
        else if (strcmp(a, "--watermark") == 0)
            ok = DBL(0, 0.99, o->ac.watermark);
        else if (strcmp(a, "--kv-bits") == 0)
            ok = U64(2, 16, o->ac.compressed.elem_bits);
        else if (strcmp(a, "--scale-group") == 0)
            ok = U64(0, 1u << 20, o->ac.compressed.scale_group_elems);
        else if (strcmp(a, "--scale-bytes") == 0)
            ok = U64(0, 64, o->ac.compressed.scale_bytes);
        else if (strcmp(a, "--token-policy") == 0)
            ok = ENUM(kv_token_policy_parse, o->ac.compressed.policy);
        else if (strcmp(a, "--sink") == 0)
            ok = U64(0, 1u << 30, o->ac.compressed.sink_tokens);
        else if (strcmp(a, "--window") == 0)
            ok = U64(1, 1u << 30, o->ac.compressed.window_tokens);
        else if (strcmp(a, "--budget") == 0)
            ok = U64(1, 1u << 30, o->ac.compressed.budget_tokens);
        else if (a[0] == '-') {
            fprintf(stderr, "kvsim %s: unknown option %s (see kvsim %s --help)\n", cmd, a, cmd);
            ok = false;
        } else if (o->trace == NULL)
            o->trace = a;
        else {
            fprintf(stderr, "kvsim %s: unexpected argument %s\n", cmd, a);
            ok = false;
        }
        if (!ok)
            return -1;
#undef VAL
#undef U64
#undef DBL
#undef ENUM
    }
    if (o->ac.compressed.policy != KV_TOKENS_ALL)
        o->ac.paged.prefix_caching = false;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

/* The request source: a trace reader or a workload generator. */
typedef struct source {
    kv_trace *trace;
    kv_gen *gen;
} source;

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

static kv_status source_open(const run_opts *o, source *s, kv_err *err)
{
    *s = (source){0};
    if (!ends_with(o->trace, ".ini")) {
        kv_status st = kv_trace_open(o->trace, &o->to, &s->trace, err);
        return st == KV_OK ? source_skip(s, o->skip, err) : st;
    }
    kv_workload_spec spec;
    kv_spec_default(&spec);
    kv_status st = kv_spec_load(o->trace, &spec, err);
    if (st == KV_OK && o->limit) { /* --limit sets the number of requests to generate */
        spec.requests = o->limit + o->skip;
        spec.duration_s = 0;
    }
    if (st == KV_OK)
        st = kv_gen_create(&spec, o->seed, &s->gen, err);
    return st == KV_OK ? source_skip(s, o->skip, err) : st;
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

/* Progress on a terminal only: the observer wrapper prints a line per simulated minute. */
typedef struct progress {
    kv_observer inner;
    bool on;
    double next_s;
    const char *label;
} progress;

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

static json_t *config_json(const run_opts *o, const kv_alloc_config *ac, const kv_model *m,
                           const kv_gpu *g, const kv_budget *b)
{
    json_t *j = json_object(), *x;
    json_object_set_new(j, "trace", json_string(o->trace));
    json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(j, "rate_scale", json_real(o->ec.rate_scale));
    x = json_object();
    json_object_set_new(x, "name", json_string(m->name));
    json_object_set_new(x, "n_layers", json_integer(m->n_layers));
    json_object_set_new(x, "n_kv_heads", json_integer(m->n_kv_heads));
    json_object_set_new(x, "head_dim", json_integer(m->head_dim));
    json_object_set_new(x, "mla_latent_dim", json_integer(m->mla_latent_dim));
    json_object_set_new(x, "params_b", json_real(m->params_b));
    json_object_set_new(x, "tp", json_integer((json_int_t)o->tp));
    json_object_set_new(j, "model", x);
    x = json_object();
    json_object_set_new(x, "name", json_string(g->name));
    json_object_set_new(x, "memory_gib", json_real(g->memory_gib));
    json_object_set_new(x, "hbm_tbps", json_real(g->hbm_tbps));
    json_object_set_new(x, "bf16_tflops", json_real(g->bf16_tflops));
    json_object_set_new(x, "eff_memory", json_real(g->eff_memory));
    json_object_set_new(x, "eff_compute", json_real(g->eff_compute));
    json_object_set_new(x, "step_overhead_ms", json_real(g->step_overhead_ms));
    json_object_set_new(x, "calibration", o->calib ? json_string(o->calib) : json_null());
    json_object_set_new(j, "gpu", x);
    x = json_object();
    json_object_set_new(x, "gpu_memory_utilization", json_real(o->gpu_mem_util));
    json_object_set_new(x, "weight_bytes", json_integer((json_int_t)b->weight_bytes));
    json_object_set_new(x, "activation_bytes", json_integer((json_int_t)b->activation_bytes));
    json_object_set_new(x, "non_torch_bytes", json_integer((json_int_t)b->non_torch_bytes));
    json_object_set_new(x, "kv_bytes", json_integer((json_int_t)b->kv_bytes));
    json_object_set_new(j, "budget", x);
    x = json_object();
    json_object_set_new(x, "max_num_seqs", json_integer(o->ec.max_num_seqs));
    json_object_set_new(x, "max_num_batched_tokens", json_integer(o->ec.max_num_batched_tokens));
    json_object_set_new(x, "chunked_prefill", json_boolean(o->ec.chunked_prefill));
    json_object_set_new(x, "preempt",
                        json_string(o->ec.preempt == KV_PREEMPT_SWAP ? "swap" : "recompute"));
    json_object_set_new(x, "max_preemptions", json_integer(o->ec.max_preemptions));
    json_object_set_new(x, "max_model_len", json_integer(o->ec.max_model_len));
    json_object_set_new(j, "engine", x);
    if (o->routed)
        json_object_set_new(j, "router",
                            json_pack("{s:s, s:I}", "policy", kv_route_policy_name(o->router),
                                      "replicas", (json_int_t)o->replicas));
    x = json_object();
    json_object_set_new(x, "strategy", json_string(kv_strategy_name(ac->strategy)));
    json_object_set_new(x, "pool_bytes", json_integer((json_int_t)ac->pool_bytes));
    json_object_set_new(x, "host_pool_bytes", json_integer((json_int_t)ac->host_pool_bytes));
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
    json_object_set_new(j, "allocator", x);
    return j;
}

/* One replay with opts o, label for messages; *sum gets the headline figures. hooks: kvgpu's,
 * or NULL. */
static int run_one(run_opts *o, const char *label, const char *dir, kv_summary *sum,
                   const kv_replay_hooks *hooks)
{
    kv_err err = {{0}};
    kv_model m;
    kv_gpu g;
    kv_status st = kv_model_load(o->model, &m, &err);
    if (st == KV_OK)
        st = kv_gpu_load(o->gpu, &g, &err);
    if (st != KV_OK) {
        fprintf(stderr, "kvsim: %s\n", err.msg);
        return KV_EXIT_USAGE;
    }
    if (o->ec.max_model_len == 0)
        o->ec.max_model_len = m.max_context;
    if (o->limit)
        o->ec.max_requests = o->limit;
    kv_budget b = kv_kv_budget(&m, &g, (uint32_t)o->tp, o->gpu_mem_util,
                               o->ec.max_num_batched_tokens, o->ec.max_num_seqs);
    if (b.kv_bytes <= 0) {
        fprintf(stderr,
                "kvsim: %s does not fit on %s x %llu at gpu_memory_utilization %.2f: weights "
                "%.1f GiB + activations %.1f GiB leave no KV memory\n",
                m.name, g.name, (unsigned long long)o->tp, o->gpu_mem_util,
                (double)b.weight_bytes / (1 << 30), (double)b.activation_bytes / (1 << 30));
        return KV_EXIT_USAGE;
    }
    kv_alloc_config ac = o->ac;
    ac.shape = kv_model_shape(&m, (uint32_t)o->tp);
    ac.pool_bytes = (uint64_t)b.kv_bytes;
    ac.host_pool_bytes = (uint64_t)(o->swap_space_gib * (double)(1ull << 30));
    kv_costmodel cm;
    /* the cost model reads KV at the strategy's stored size */
    kv_shape stored = ac.shape;
    if (ac.strategy == KV_COMPRESSED) {
        stored.elem_bits = ac.compressed.elem_bits;
        stored.scale_group_elems = ac.compressed.scale_group_elems;
        stored.scale_bytes = ac.compressed.scale_bytes;
    }
    kv_costmodel_init(&cm, &m, &g, (uint32_t)o->tp, kv_shape_token_bytes(&stored));
    if (o->calib && (st = kv_costmodel_calibrate(&cm, o->calib, &err)) != KV_OK) {
        fprintf(stderr, "kvsim: %s\n", err.msg);
        return KV_EXIT_USAGE;
    }
    kv_engine *e = NULL;
    kv_router *router = NULL;
    kv_executor ex = kv_costmodel_executor(&cm);
    if (hooks) {
        ex = hooks->wrap(hooks->ctx, ex);
        o->ec.step_detail = true;
    }
    if (o->decision_log) /* the fast path appends many tokens at once: log them one by one */
        o->ec.fast_path = false;
    if ((hooks || o->decision_log) && o->routed) {
        fprintf(stderr, "kvsim: --decision-log and kvgpu run one engine: leave out --replicas\n");
        return KV_EXIT_USAGE;
    }
    if (o->routed)
        st = kv_router_create(&o->ec, &ac, ex, (uint32_t)o->replicas, o->router, &router, &err);
    else
        st = kv_engine_create(&o->ec, &ac, ex, &e, &err);
    if (st != KV_OK) {
        fprintf(stderr, "kvsim: %s\n", err.msg);
        return KV_EXIT_USAGE;
    }
    kv_decision_log *dlog = NULL;
    if (o->decision_log && (st = kv_decision_log_open(o->decision_log, &dlog, &err)) != KV_OK) {
        fprintf(stderr, "kvsim: %s\n", err.msg);
        kv_engine_destroy(&e);
        return KV_EXIT_FAIL;
    }
    if (hooks) {
        int rc = hooks->attach(hooks->ctx, e, dlog);
        if (rc != KV_EXIT_OK) {
            kv_decision_log_close(&dlog, NULL);
            kv_engine_destroy(&e);
            return rc;
        }
    } else if (dlog) {
        kv_engine_set_listener(e, kv_decision_log_listener, dlog);
    }
    source src;
    st = source_open(o, &src, &err);
    kv_report *rep = NULL;
    kv_report_opts ro = o->ro;
    ro.dir = dir;
    ro.replicas = (uint32_t)o->replicas;
    if (st == KV_OK)
        st = kv_report_open(&ro, &rep, &err);
    if (st == KV_OK) {
        json_t *cfg = config_json(o, &ac, &m, &cm.gpu, &b);
        char path[1200];
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (json_dump_file(cfg, path,
                           JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)))
            st = kv_errorf(&err, KV_ERR_IO, "%s: write failed", path);
        json_decref(cfg);
    }
    double t0 = wall_now();
    if (st == KV_OK) {
        progress p = {
            .inner = kv_report_observer(rep), .on = isatty(2) && !getenv("CI"), .label = label};
        kv_observer obs = {.ctx = &p, .on_request = progress_request, .on_step = progress_step};
        kv_source s = {.ctx = &src, .next = source_next};
        st = router ? kv_router_run(router, s, obs, o->check, &err)
                    : kv_engine_run(e, s, obs, o->check, &err);
        if (p.on)
            fprintf(stderr, "\r%*s\r", 70, "");
    }
    double wall = wall_now() - t0;
    /* built by jansson, so a trace path with quotes or backslashes stays valid JSON */
    json_t *mj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:f}", "trace", o->trace, "strategy",
                           kv_strategy_name(ac.strategy), "label", label, "model", m.name, "gpu",
                           g.name, "tp", (json_int_t)o->tp, "rate_scale", o->ec.rate_scale);
    kv_engine_stats es;
    kv_alloc_stats as;
    if (router) {
        kv_router_stats(router, &es, &as);
        json_t *routed = json_array();
        for (uint32_t i = 0; i < kv_router_replicas(router); i++)
            json_array_append_new(routed, json_integer((json_int_t)kv_router_routed(router, i)));
        json_object_set_new(mj, "router",
                            json_pack("{s:s, s:I, s:o}", "policy", kv_route_policy_name(o->router),
                                      "replicas", (json_int_t)o->replicas, "routed", routed));
    } else {
        es = *kv_engine_stats_of(e);
        as = *kv_alloc_stats_of(kv_engine_alloc(e));
    }
    char *meta = mj ? json_dumps(mj, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(mj);
    kv_status cst =
        kv_report_close(&rep, st == KV_OK ? &es : NULL, &as, meta, wall, sum, &err);
    free(meta);
    if (st == KV_OK)
        st = cst;
    cst = kv_decision_log_close(&dlog, &err);
    if (st == KV_OK)
        st = cst;
    source_close(&src);
    int hrc = st == KV_OK && hooks ? hooks->finish(hooks->ctx, dir) : KV_EXIT_OK;
    kv_engine_destroy(&e);
    kv_router_destroy(&router);
    if (hrc != KV_EXIT_OK)
        return hrc;
    if (st != KV_OK) {
        fprintf(stderr, "kvsim: %s\n", err.msg[0] ? err.msg : kv_status_str(st));
        return st == KV_ERR_INPUT ? KV_EXIT_USAGE : KV_EXIT_FAIL;
    }
    return KV_EXIT_OK;
}

/* ------------------------------------------------------------------------------------------ */

int kv_cli_replay_line(const char *args, kv_summary *sum)
{
    char *buf = malloc(strlen(args) + 8), *argv[128];
    if (buf == NULL)
        return KV_EXIT_FAIL;
    snprintf(buf, strlen(args) + 8, "replay %s", args);
    int argc = 0;
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (argc == 127) {
            free(buf);
            return KV_EXIT_USAGE;
        }
        argv[argc++] = t;
    }
    argv[argc] = NULL;
    run_opts o;
    opts_default(&o);
    bool strategy_set = false;
    int rc = KV_EXIT_USAGE;
    if (parse("replay", argc, argv, &o, &strategy_set) == 0 && o.trace && o.out && strategy_set)
        rc = run_one(&o, kv_strategy_name(o.ac.strategy), o.out, sum, NULL);
    free(buf); /* o points into buf: used up by now */
    return rc;
}

int kv_cli_replay_main(int argc, char **argv)
{
    return kv_cli_replay_hooked(argc, argv, NULL);
}

int kv_cli_replay_hooked(int argc, char **argv, const kv_replay_hooks *hooks)
{
    const char *cmd = hooks ? hooks->cmd : "replay";
    run_opts o;
    opts_default(&o);
    bool strategy_set = false;
    int rc = parse(cmd, argc, argv, &o, &strategy_set);
    if (rc == 1) {
        usage_replay(stdout);
        return KV_EXIT_OK;
    }
    if (rc < 0)
        return KV_EXIT_USAGE;
    if (o.trace == NULL || o.out == NULL || !strategy_set) {
        fprintf(stderr, "kvsim %s: TRACE, --strategy and -o DIR are required\n", cmd);
        usage_replay(stderr);
        return KV_EXIT_USAGE;
    }
    kv_summary s;
    rc = run_one(&o, kv_strategy_name(o.ac.strategy), o.out, &s, hooks);
    if (rc == KV_EXIT_OK)
        fprintf(stderr,
                "kvsim %s: %s: %llu done, %llu rejected, %.1f output tokens/s, TTFT p50 %.3f "
                "s p99 %.3f s, %llu preemptions -> %s\n",
                cmd, kv_strategy_name(o.ac.strategy), (unsigned long long)s.done,
                (unsigned long long)s.rejected, s.output_tok_per_s, s.ttft_p50_s, s.ttft_p99_s,
                (unsigned long long)s.preemptions, o.out);
    return rc;
}

typedef struct compare_case {
    const char *label;
    kv_strategy strategy;
    kv_reserve reserve;
} compare_case;

static void print_table(FILE *f, const compare_case *cases, const kv_summary *s, size_t n, bool csv)
{
    if (csv)
        fprintf(f, "strategy,output_tok_per_s,ttft_p50_s,ttft_p99_s,tpot_p50_s,tpot_p99_s,"
                   "batch_mean,batch_peak,preemptions,swap_bytes,token_share,reserved_share,"
                   "internal_frag_share,external_frag_share,free_share,done,rejected\n");
    else
        fprintf(f, "%-22s %9s %8s %8s %8s %8s %6s %5s %7s %9s %6s %6s %6s %6s %6s\n", "strategy",
                "tok/s", "TTFT50", "TTFT99", "TPOT50", "TPOT99", "batch", "peak", "preempt",
                "swap MiB", "token", "resv", "int", "ext", "free");
    for (size_t i = 0; i < n; i++) {
        const kv_summary *x = &s[i];
        if (csv)
            fprintf(f,
                    "%s,%.3f,%.6f,%.6f,%.6f,%.6f,%.3f,%u,%llu,%llu,%.6f,%.6f,%.6f,%.6f,%.6f,"
                    "%llu,%llu\n",
                    cases[i].label, x->output_tok_per_s, x->ttft_p50_s, x->ttft_p99_s,
                    x->tpot_p50_s, x->tpot_p99_s, x->batch_mean_seqs, x->batch_peak_seqs,
                    (unsigned long long)x->preemptions,
                    (unsigned long long)(x->swap_out_bytes + x->swap_in_bytes), x->share_token,
                    x->share_reserved, x->share_internal, x->share_external, x->share_free,
                    (unsigned long long)x->done, (unsigned long long)x->rejected);
        else
            fprintf(f,
                    "%-22s %9.1f %8.3f %8.3f %8.4f %8.4f %6.1f %5u %7llu %9.1f %5.1f%% %5.1f%% "
                    "%5.1f%% %5.1f%% %5.1f%%\n",
                    cases[i].label, x->output_tok_per_s, x->ttft_p50_s, x->ttft_p99_s,
                    x->tpot_p50_s, x->tpot_p99_s, x->batch_mean_seqs, x->batch_peak_seqs,
                    (unsigned long long)x->preemptions,
                    (double)(x->swap_out_bytes + x->swap_in_bytes) / 1048576.0,
                    100 * x->share_token, 100 * x->share_reserved, 100 * x->share_internal,
                    100 * x->share_external, 100 * x->share_free);
    }
}

int kv_cli_compare_main(int argc, char **argv)
{
    run_opts o;
    opts_default(&o);
    bool strategy_set = false;
    int rc = parse("compare", argc, argv, &o, &strategy_set);
    if (rc == 1) {
        usage_compare(stdout);
        return KV_EXIT_OK;
    }
    if (rc < 0)
        return KV_EXIT_USAGE;
    if (o.trace == NULL || strategy_set || (o.plot && o.out == NULL)) {
        fprintf(stderr, "kvsim compare: TRACE is required, --strategy is not (it runs them all), "
                        "and --plot needs -o DIR\n");
        usage_compare(stderr);
        return KV_EXIT_USAGE;
    }
    static const compare_case cases[] = {
        {"contiguous-max", KV_CONTIGUOUS, KV_RESERVE_MAX},
        {"contiguous-pow2", KV_CONTIGUOUS, KV_RESERVE_POW2},
        {"contiguous-oracle", KV_CONTIGUOUS, KV_RESERVE_ORACLE},
        {"chunk-pool", KV_CHUNK_POOL, 0},
        {"paged", KV_PAGED, 0},
        {"compressed-fp8", KV_COMPRESSED, 0},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    kv_summary sums[N];
    char tmp[256] = "";
    if (o.out == NULL) {
        snprintf(tmp, sizeof tmp, "%s/kvsim-compare-%d",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    }
    for (size_t i = 0; i < N; i++) {
        run_opts c = o;
        c.ac.strategy = cases[i].strategy;
        c.ac.contiguous.reserve = cases[i].reserve;
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/%s", o.out ? o.out : tmp, cases[i].label);
        rc = run_one(&c, cases[i].label, dir, &sums[i], NULL);
        if (rc != KV_EXIT_OK)
            return rc;
    }
    printf("kvsim compare: %s, %s on %s, rate scale %g\n", o.trace, o.model, o.gpu,
           o.ec.rate_scale);
    print_table(stdout, cases, sums, N, false);
    if (o.out) {
        char path[1200];
        snprintf(path, sizeof path, "%s/compare.txt", o.out);
        FILE *f = fopen(path, "w");
        if (f) {
            fprintf(f, "kvsim compare: %s, %s on %s, rate scale %g\n", o.trace, o.model, o.gpu,
                    o.ec.rate_scale);
            print_table(f, cases, sums, N, false);
            fclose(f);
        }
        snprintf(path, sizeof path, "%s/compare.csv", o.out);
        f = fopen(path, "w");
        if (f) {
            print_table(f, cases, sums, N, true);
            fclose(f);
        }
        if (!f) {
            fprintf(stderr, "kvsim compare: %s: cannot write\n", path);
            return KV_EXIT_FAIL;
        }
        if (o.plot) {
            char dirs[N][1200], plots[1200];
            const char *runs[N];
            for (size_t i = 0; i < N; i++) {
                snprintf(dirs[i], sizeof dirs[i], "%s/%s", o.out, cases[i].label);
                runs[i] = dirs[i];
            }
            snprintf(plots, sizeof plots, "%s/plots", o.out);
            rc = kv_plot_runs(runs, N, plots);
            if (rc != KV_EXIT_OK)
                return rc;
        }
    } else {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "kvsim compare: could not remove %s\n", tmp);
    }
    return KV_EXIT_OK;
}
