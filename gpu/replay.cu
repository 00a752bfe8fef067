/* replay.cu — `kvgpu replay`: kvsim's engine and allocator, every decision realized on the GPU.
 *
 * The engine runs exactly as in `kvsim replay` (same options, same cost-model clock), so its
 * decisions and output files are kvsim's; `--decision-log FILE` writes the same log, line for
 * line. kvgpu listens to every allocator operation and applies its effects (effect.h) on the
 * device, in their order; it never compares placements to find out what changed:
 *   map / unmap      a chunk into / out of the sequence slot's virtual range (timed)
 *   table            a block-table entry, into a host mirror uploaded once per operation
 *   copy             copy-on-write of a block, an extent that moved, a fork's own rows
 *   transfer         swap-out / swap-in between device rows and the host blocks or extent the
 *                    allocator's host tier chose, in pinned memory (per copy, or batched:
 *                    gather + one copy), one kvg_swap per run of consecutive blocks, timed
 *   drop             a block the window left (its table entry), an eviction (nothing)
 * and every step writes the KV of every computing token (all layers) and runs attention for
 * every computing token over --attn-layers layers (default 1: a prefill chunk attends to its
 * whole context, which costs as much as all its rows once per layer), with --q-per-kv query
 * heads per KV head (4, Llama-3-8B's grouping).
 * Measured, per step, in gpu_steps.csv: the device time of the step's KV writes and attention
 * (CUDA events), swaps (bytes, time), device memory in use (cudaMemGetInfo) and mapped chunks.
 */
#include "kvgpu.h"
#include "cuda_check.h"
#include "gpu_util.h"
#include "model.h"
#include "replay.h"

extern "C" {
#include "cli.h"
#include "cli_replay.h"
#include "decisions.h"
#include "engine.h"
#include "executor.h"
#include "preset.h"
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

enum { QUERY_BATCH = 512 };

struct gpu_replay {
    kv_executor cost;
    kv_engine *e = nullptr;
    const kv_alloc *a = nullptr;
    kv_decision_log *log = nullptr;
    kvg_pool *pool = nullptr;
    kvg_swapper *swapper = nullptr;
    kvg_format f;
    uint32_t nt = 0, n_qh = 0, q_per_kv = 4, attn_layers = 1, max_tokens = 0;
    std::vector<kvg_seqdesc> descs; /* by sequence id */
    kvg_seqdesc *descs_d = nullptr;
    std::vector<uint32_t> xfer_ids; /* a swap's block ids by table index */
    /* the host tier: pinned memory of host_pool_bytes, placed by the allocator's tier */
    void *host = nullptr;
    /* step buffers */
    uint16_t *src = nullptr;
    size_t src_tokens = 0;
    uint16_t *q = nullptr;
    float *out = nullptr;
    void *work = nullptr;
    uint32_t *qseq = nullptr, *qpos = nullptr;
    cudaEvent_t e0, e1;
    bool event0 = false, event1 = false; /* e0, e1 created */
    /* measured */
    FILE *steps = nullptr;
    char steps_path[1100];
    uint64_t step = 0, swap_bytes = 0, n_swaps = 0;
    double step_swap_s = 0;
    uint64_t step_swap_bytes = 0;
    double swap_s = 0;
    kv_status st = KV_OK; /* the first device error; the run stops at the next step */
    kv_err err = {{0}};
    const char *out_dir = nullptr;
    /* the model executor (--model-exec): the clock advances by measured time */
    bool model_exec = false, swap_batched = false;
    const char *model_name = "Llama-3-8B";
    uint32_t layers = 0; /* 0 = all */
    kvg_model *model = nullptr;
    double layer_scale = 1;
    double maps_s_before = 0;
};

static void fail(gpu_replay *g, kv_status st)
{
    if (g->st == KV_OK)
        g->st = st;
}

/* ------------------------------------------------------------------- the decisions --- */

static void cuda_ok(gpu_replay *g, cudaError_t ce, const char *what)
{
    if (ce != cudaSuccess)
        fail(g, kv_errorf(&g->err, KV_ERR_INPUT, "kvgpu: %s: %s", what, cudaGetErrorString(ce)));
}

/* The host-tier rows of n_tokens tokens at host_base (kvgpu.h, "Host tier"): blocks one after
 * another with the device's inner layout; a chunk series' rows tensor after tensor; an extent's
 * token-major. */
static void host_desc(const gpu_replay *g, kv_effect_at at, uint32_t n_tokens, uint64_t host_base, kvg_seqdesc *d)
{
    const kv_alloc_config *ac = kv_alloc_config_of(g->a);
    uint64_t tb = kv_alloc_token_bytes(g->a), rb = g->f.row_bytes;
    *d = kvg_seqdesc{};
    d->base = host_base;
    d->n_tokens = n_tokens;
    if (at == KV_AT_BLOCK) {
        d->unit_tokens = ac->paged.block_tokens;
        d->unit_bytes = (uint64_t)ac->paged.block_tokens * tb;
        d->tensor_stride = (uint64_t)ac->paged.block_tokens * rb;
        d->token_stride = rb;
        return;
    }
    d->unit_tokens = KVG_EXTENT_UNIT;
    if (at == KV_AT_RANGE && ac->chunk.layout == KV_CHUNK_PER_LAYER) {
        d->tensor_stride = (uint64_t)n_tokens * rb;
        d->token_stride = rb;
    } else {
        d->tensor_stride = rb;
        d->token_stride = tb;
    }
}

static void swap_one(gpu_replay *g, bool out, const kvg_seqdesc *dev, const uint32_t *dev_ids,
                     const kvg_seqdesc *host)
{
    kvg_swap_result res;
    fail(g, kvg_swap(g->swapper, g->swap_batched ? KVG_SWAP_BATCHED : KVG_SWAP_PER_COPY, out, dev,
                  dev_ids, host, g->nt, g->f.row_bytes, &res, &g->err));
    g->step_swap_s += res.seconds;
    g->step_swap_bytes += res.bytes;
    g->swap_s += res.seconds;
    g->swap_bytes += res.bytes;
}

/* Apply the transfers fx[0 .. n) of one swap of sequence s, both sides named by the effects:
 * device blocks and the host blocks the tier gave them (one kvg_swap per run of consecutive
 * entries and host blocks), or a device extent or virtual range and a host offset. */
static void transfer(gpu_replay *g, kv_seq_id s, const kv_effect *fx, uint32_t n)
{
    bool out = fx[0].cause == KV_CAUSE_SWAP_OUT;
    kv_effect_at at = (kv_effect_at)fx[0].at;
    uint64_t host = (uint64_t)(uintptr_t)g->host;
    g->n_swaps++;
    if (at == KV_AT_BLOCK) {
        const kv_alloc_config *ac = kv_alloc_config_of(g->a);
        uint32_t bt = ac->paged.block_tokens, n_tokens = kv_alloc_seq_tokens(g->a, s);
        uint64_t bb = (uint64_t)bt * kv_alloc_token_bytes(g->a);
        std::vector<uint32_t> &ids = g->xfer_ids;
        ids.assign((n_tokens + bt - 1) / bt, KV_BLOCK_NONE);
        for (uint32_t k = 0; k < n; k++)
            ids[fx[k].index] = out ? fx[k].src : fx[k].dst;
        for (uint32_t k = 0; k < n && g->st == KV_OK;) {
            uint32_t run = 1;
            auto host_of = [&](uint32_t j) { return out ? fx[j].dst : fx[j].src; };
            while (k + run < n && fx[k + run].index == fx[k].index + run &&
                   host_of(k + run) == host_of(k) + run)
                run++;
            uint32_t i0 = fx[k].index, first_token = i0 * bt;
            kvg_seqdesc dev = kvg_seqdesc{}, h;
            dev.base = kvg_pool_arena(g->pool);
            dev.table = kvg_pool_table(g->pool, s) + i0; /* swap-in: flushed before this call */
            dev.n_tokens = std::min(run * bt, n_tokens - first_token);
            dev.unit_tokens = bt;
            dev.unit_bytes = bb;
            dev.tensor_stride = (uint64_t)bt * g->f.row_bytes;
            dev.token_stride = g->f.row_bytes;
            host_desc(g, at, dev.n_tokens, host + (uint64_t)host_of(k) * bb, &h);
            swap_one(g, out, &dev, ids.data() + i0, &h);
            k += run;
        }
        return;
    }
    kvg_seqdesc dev = kvg_seqdesc{}, h;
    if (at == KV_AT_EXTENT) {
        dev.base = kvg_pool_arena(g->pool) + (out ? fx[0].src_offset_bytes : fx[0].dst_offset_bytes);
        dev.unit_tokens = KVG_EXTENT_UNIT;
        dev.tensor_stride = g->f.row_bytes;
        dev.token_stride = kv_alloc_token_bytes(g->a);
    } else if (out) { /* the slot's virtual range, still mapped: the unmaps come after */
        dev = g->descs[s];
    } else { /* mapped again by the maps before this transfer */
        fail(g, kvg_pool_describe(g->pool, g->a, s, &dev, &g->err));
        if (g->st != KV_OK)
            return;
    }
    dev.n_tokens = fx[0].n_tokens;
    host_desc(g, at, fx[0].n_tokens, host + (out ? fx[0].dst_offset_bytes : fx[0].src_offset_bytes),
              &h);
    swap_one(g, out, &dev, NULL, &h);
}

/* Apply one device-to-device copy. */
static void copy(gpu_replay *g, const kv_effect *e)
{
    uint64_t arena = kvg_pool_arena(g->pool);
    switch ((kv_effect_at)e->at) {
    case KV_AT_BLOCK: { /* copy-on-write, or a fork's own copy: the whole block, every tensor */
        uint64_t bb = (uint64_t)kv_alloc_config_of(g->a)->paged.block_tokens *
                      kv_alloc_token_bytes(g->a);
        cuda_ok(g, cudaMemcpyAsync((void *)(arena + (uint64_t)e->dst * bb),
                                (void *)(arena + (uint64_t)e->src * bb), bb,
                                cudaMemcpyDeviceToDevice),
                "block copy");
        break;
    }
    case KV_AT_EXTENT: /* token-major: the first n_tokens slots are one run of bytes */
        cuda_ok(g, cudaMemcpyAsync((void *)(arena + e->dst_offset_bytes),
                                (void *)(arena + e->src_offset_bytes),
                                (uint64_t)e->n_tokens * kv_alloc_token_bytes(g->a),
                                cudaMemcpyDeviceToDevice),
                "extent copy");
        break;
    case KV_AT_RANGE: { /* a fork on chunks: the child's range is mapped by now */
        kvg_seqdesc from = g->descs[e->src_seq], to;
        fail(g, kvg_pool_describe(g->pool, g->a, e->seq, &to, &g->err));
        from.n_tokens = e->n_tokens;
        if (g->st == KV_OK)
            fail(g, kvg_copy_rows(&from, &to, g->nt, g->f.row_bytes, &g->err));
        break;
    }
    }
}

/* Every operation's effects, in their order: maps, unmaps and table writes through the pool,
 * copies on the device, transfers through the swap engine; then the sequence's descriptor. */
static void on_op(void *ctx, const kv_alloc *a, const kv_op_record *r)
{
    gpu_replay *g = (gpu_replay *)ctx;
    if (g->log)
        kv_decision_log_write(g->log, a, r);
    if (g->st != KV_OK || r->status != KV_OK)
        return;
    bool copied = false;
    for (uint32_t i = 0; i < r->n_effects && g->st == KV_OK;) {
        const kv_effect *e = &r->effects[i];
        if (e->kind == KV_FX_TRANSFER) { /* the run of transfers of one sequence is one swap */
            uint32_t n = 1;
            while (i + n < r->n_effects && r->effects[i + n].kind == KV_FX_TRANSFER &&
                   r->effects[i + n].seq == e->seq)
                n++;
            fail(g, kvg_pool_flush(g->pool, &g->err));
            if (g->st == KV_OK)
                transfer(g, e->seq, e, n);
            i += n;
            continue;
        }
        if (e->kind == KV_FX_COPY) {
            copy(g, e);
            copied = true;
        }
        else
            fail(g, kvg_pool_apply(g->pool, e, &g->err));
        i++;
    }
    if (g->st == KV_OK)
        fail(g, kvg_pool_flush(g->pool, &g->err));
    if (g->st == KV_OK && copied) /* the copies are on the legacy stream: done before any other */
        cuda_ok(g, cudaStreamSynchronize(0), "device copies");
    if (g->st == KV_OK && kv_alloc_seq_state(a, r->seq) == KV_SEQ_RESIDENT)
        fail(g, kvg_pool_describe(g->pool, a, r->seq, &g->descs[r->seq], &g->err));
}

/* ------------------------------------------------------------------------ the steps --- */

static kv_status run_step(gpu_replay *g, const kv_step_work *w, float *ms)
{
    kv_err *err = &g->err;
    *ms = 0;
    if (w->n_seqs == 0)
        return KV_OK;
    CUDA_TRY(cudaMemcpy(g->descs_d, g->descs.data(), g->descs.size() * sizeof(kvg_seqdesc),
                        cudaMemcpyHostToDevice));
    std::vector<uint32_t> sq, ps;
    for (uint32_t i = 0; i < w->n_seqs; i++)
        for (uint32_t k = 0; k < w->seqs[i].n; k++) {
            sq.push_back(w->seqs[i].seq);
            ps.push_back(w->seqs[i].first + k);
        }
    CUDA_TRY(cudaEventRecord(g->e0));
    for (size_t at = 0; at < sq.size(); at += QUERY_BATCH) {
        uint32_t n = (uint32_t)std::min<size_t>(QUERY_BATCH, sq.size() - at);
        CUDA_TRY(cudaMemcpyAsync(g->qseq, &sq[at], n * 4, cudaMemcpyHostToDevice));
        CUDA_TRY(cudaMemcpyAsync(g->qpos, &ps[at], n * 4, cudaMemcpyHostToDevice));
        kv_status st = kvg_append(&g->f, g->nt, g->descs_d, g->qseq, g->qpos, n, g->src, err);
        for (uint32_t l = 0; st == KV_OK && l < g->attn_layers; l++)
            st = kvg_attention(&g->f, g->n_qh, l, g->descs_d, g->qseq, g->qpos, n, g->max_tokens, g->q,
                               g->out, g->work, err);
        if (st != KV_OK)
            return st;
    }
    CUDA_TRY(cudaEventRecord(g->e1));
    CUDA_TRY(cudaEventSynchronize(g->e1));
    CUDA_TRY(cudaEventElapsedTime(ms, g->e0, g->e1));
    return KV_OK;
}

#define CUDA_OK(call)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            fail(g, kv_errorf(&g->err, KV_ERR_INPUT, "%s: %s", #call, cudaGetErrorString(e_)));       \
    } while (0)

static kv_step_time gpu_step(void *ctx, const kv_step_work *w)
{
    gpu_replay *g = (gpu_replay *)ctx;
    kv_step_time t = g->cost.step(g->cost.ctx, w); /* the clock stays kvsim's */
    if (g->steps == NULL && g->st == KV_OK) { /* the report has made the folder by now */
        snprintf(g->steps_path, sizeof g->steps_path, "%s/gpu_steps.csv", g->out_dir);
        if ((g->steps = fopen(g->steps_path, "w")) == NULL) {
            fail(g, kv_errorf(&g->err, KV_ERR_IO, "%s: cannot create", g->steps_path));
            return t;
        }
        fputs("step,sim_step_ms,gpu_ms,seqs,tokens,swap_bytes,swap_ms,device_used_bytes,"
              "mapped_chunks,prefill_tokens,decode_seqs,decode_context,pred_compute_ms,"
              "pred_swap_ms,pred_map_ms,step_ms\n",
              g->steps);
    }
    if (g->steps == NULL)
        return t;
    float ms = 0;
    kv_step_time predicted = t;
    if (g->st == KV_OK && g->model) {
        CUDA_OK(cudaMemcpy(g->descs_d, g->descs.data(), g->descs.size() * sizeof(kvg_seqdesc),
                           cudaMemcpyHostToDevice));
        if (g->st == KV_OK)
            fail(g, kvg_model_step(g->model, &g->f, g->descs_d, g->descs.data(), w->seqs, w->n_seqs, &ms,
                                &g->err));
        const kvg_pool_stats *ps = kvg_pool_stats_of(g->pool);
        double maps_s = ps->map_s + ps->unmap_s;
        /* the measured step: the forward pass (scaled to all layers), the swaps and the chunk
         * maps this step made */
        t.compute_s = ms * 1e-3 * g->layer_scale;
        t.swap_s = g->step_swap_s;
        t.map_s = maps_s - g->maps_s_before;
        t.total_s = t.compute_s + t.swap_s + t.map_s;
        g->maps_s_before = maps_s;
    } else if (g->st == KV_OK) {
        fail(g, run_step(g, w, &ms));
    }
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    uint64_t toks = 0;
    for (uint32_t i = 0; i < w->n_seqs; i++)
        toks += w->seqs[i].n;
    fprintf(g->steps, "%llu,%.6f,%.6f,%u,%llu,%llu,%.6f,%llu,%llu,%llu,%u,%llu,%.6f,%.6f,%.6f,%.6f\n",
            (unsigned long long)g->step++, predicted.total_s * 1e3, ms * g->layer_scale, w->n_seqs,
            (unsigned long long)toks, (unsigned long long)g->step_swap_bytes, g->step_swap_s * 1e3,
            (unsigned long long)(total_b - free_b),
            (unsigned long long)kvg_pool_stats_of(g->pool)->mapped_chunks,
            (unsigned long long)w->prefill_tokens, w->n_decode,
            (unsigned long long)w->decode_context, predicted.compute_s * 1e3,
            predicted.swap_s * 1e3, predicted.map_s * 1e3, t.total_s * 1e3);
    g->step_swap_s = 0;
    g->step_swap_bytes = 0;
    return t;
}

/* ------------------------------------------------------------------------- the hooks --- */

static kv_executor wrap(void *ctx, kv_executor cost)
{
    gpu_replay *g = (gpu_replay *)ctx;
    g->cost = cost;
    return kv_executor{g, gpu_step};
}

static kv_status attach(gpu_replay *g, kv_engine *e, kv_decision_log *log)
{
    kv_err *err = &g->err;
    g->e = e;
    g->a = kv_engine_alloc(e);
    g->log = log;
    const kv_alloc_config *ac = kv_alloc_config_of(g->a);
    kvg_dtype dt = ac->strategy == KV_COMPRESSED && ac->compressed.elem_bits == 4 ? KVG_INT4
                   : ac->strategy == KV_COMPRESSED && ac->compressed.scale_group_elems
                       ? KVG_INT8
                       : KVG_FP8;
    kv_status st = kvg_format_of(ac, dt, &g->f, err);
    if (st == KV_OK)
        st = kvg_pool_create(g->a, &g->pool, err);
    if (st != KV_OK)
        return st;
    g->nt = kv_shape_n_tensors(&ac->shape);
    g->n_qh = g->f.n_heads * g->q_per_kv;
    g->max_tokens = ac->max_seq_tokens;
    g->descs.assign(ac->max_seqs, kvg_seqdesc{});
    size_t staging = (size_t)ac->max_seq_tokens * kv_alloc_token_bytes(g->a) + (1u << 20);
    st = kvg_swapper_create(staging, &g->swapper, err);
    g->src_tokens = QUERY_BATCH;
    size_t src_n = g->src_tokens * g->nt * g->f.n_heads * 128;
    cudaError_t ce = cudaSuccess;
    if (st == KV_OK) {
        ce = cudaHostAlloc(&g->host, std::max<uint64_t>(ac->host_pool_bytes, 1),
                           cudaHostAllocDefault);
        if (ce == cudaSuccess)
            ce = cudaMalloc(&g->descs_d, g->descs.size() * sizeof(kvg_seqdesc));
        if (ce == cudaSuccess)
            ce = cudaMalloc(&g->src, src_n * 2);
        if (ce == cudaSuccess)
            ce = cudaMalloc(&g->q, (size_t)QUERY_BATCH * g->n_qh * 128 * 2);
        if (ce == cudaSuccess)
            ce = cudaMalloc(&g->out, (size_t)QUERY_BATCH * g->n_qh * 128 * 4);
        if (ce == cudaSuccess)
            ce = cudaMalloc(&g->work, kvg_attention_work_bytes(&g->f, g->n_qh, QUERY_BATCH, g->max_tokens));
        if (ce == cudaSuccess)
            ce = cudaMalloc(&g->qseq, QUERY_BATCH * 4);
        if (ce == cudaSuccess)
            ce = cudaMalloc(&g->qpos, QUERY_BATCH * 4);
        if (ce == cudaSuccess && (ce = cudaEventCreate(&g->e0)) == cudaSuccess)
            g->event0 = true;
        if (ce == cudaSuccess && (ce = cudaEventCreate(&g->e1)) == cudaSuccess)
            g->event1 = true;
        if (ce != cudaSuccess)
            st = kv_errorf(err, KV_ERR_NOMEM, "kvgpu replay: device buffers: %s",
                           cudaGetErrorString(ce));
    }
    if (st == KV_OK && g->model_exec) {
        kv_model m;
        const kv_engine_config *ec = kv_engine_config_of(e);
        st = kv_model_load(g->model_name, &m, err);
        if (st == KV_OK)
            st = kvg_model_create(&m, g->layers, ec->max_num_batched_tokens, ec->max_num_seqs,
                                  ac->max_seq_tokens, 1, &g->model, err);
        if (st == KV_OK) {
            g->layer_scale = (double)m.n_layers / kvg_model_layers(g->model);
            fprintf(stderr,
                    "kvgpu replay: model executor %s, %u of %u layers run%s, %.1f GiB of weights\n",
                    m.name, kvg_model_layers(g->model), m.n_layers,
                    g->layer_scale > 1 ? " (step times scaled by layers / layers run)" : "",
                    kvg_model_weight_bytes(g->model) / 1073741824.0);
        }
    }
    if (st == KV_OK)
        st = kvg_fill_bf16(g->src, src_n, 1, err);
    if (st == KV_OK)
        st = kvg_fill_bf16(g->q, (size_t)QUERY_BATCH * g->n_qh * 128, 2, err);
    if (st != KV_OK)
        return st;
    kv_engine_set_listener(e, on_op, g);
    return KV_OK;
}

/* The measured outputs into dir. */
static kv_status finish(gpu_replay *g, const char *dir)
{
    if (g->steps && fclose(g->steps) != 0)
        fail(g, kv_errorf(&g->err, KV_ERR_IO, "%s: write failed", g->steps_path));
    g->steps = nullptr;
    if (g->st != KV_OK)
        return g->st;
    const kvg_pool_stats *ps = kvg_pool_stats_of(g->pool);
    char path[1100];
    snprintf(path, sizeof path, "%s/gpu_summary.json", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return kv_errorf(&g->err, KV_ERR_IO, "%s: cannot create", path);
    fprintf(f,
            "{\n  \"device_pool_bytes\": %llu,\n  \"pool_create_s\": %.6f,\n  \"chunk_maps\": %llu,\n"
            "  \"chunk_map_s\": %.6f,\n  \"chunk_unmaps\": %llu,\n  \"chunk_unmap_s\": %.6f,\n"
            "  \"swaps\": %llu,\n  \"swap_bytes\": %llu,\n  \"swap_s\": %.6f,\n  \"steps\": %llu,\n"
            "  \"attention_layers\": %u,\n  \"model_executor\": %s,\n  \"layers_run\": %u,\n"
            "  \"layer_scale\": %.6f,\n  \"swap_mode\": \"%s\"\n}\n",
            (unsigned long long)ps->device_bytes, ps->create_s, (unsigned long long)ps->maps,
            ps->map_s, (unsigned long long)ps->unmaps, ps->unmap_s, (unsigned long long)g->n_swaps,
            (unsigned long long)g->swap_bytes, g->swap_s, (unsigned long long)g->step, g->attn_layers,
            g->model ? "true" : "false", g->model ? kvg_model_layers(g->model) : 0, g->layer_scale,
            g->swap_batched ? "batched" : "per-copy");
    if (ferror(f) | (fclose(f) != 0))
        return kv_errorf(&g->err, KV_ERR_IO, "%s: write failed", path);
    fprintf(stderr, "kvgpu replay: %llu steps on the GPU, %llu chunk maps, %llu swaps (%.1f MiB, %.3f s)\n",
            (unsigned long long)g->step, (unsigned long long)ps->maps, (unsigned long long)g->n_swaps,
            g->swap_bytes / 1048576.0, g->swap_s);
    return KV_OK;
}

/* Everything the replay holds on the device and the host, whether it ran or failed. */
static void release(gpu_replay *g)
{
    if (g->steps)
        fclose(g->steps);
    kvg_model_destroy(&g->model);
    kvg_pool_destroy(&g->pool);
    kvg_swapper_destroy(&g->swapper);
    cudaFreeHost(g->host);
    cudaFree(g->descs_d);
    cudaFree(g->src);
    cudaFree(g->q);
    cudaFree(g->out);
    cudaFree(g->work);
    cudaFree(g->qseq);
    cudaFree(g->qpos);
    if (g->event0)
        cudaEventDestroy(g->e0);
    if (g->event1)
        cudaEventDestroy(g->e1);
}

/* The hooks as kv_run takes them (run.h): the device's message goes on in err. */
static kv_status hook_attach(void *ctx, kv_engine *e, kv_decision_log *log, kv_err *err)
{
    gpu_replay *g = (gpu_replay *)ctx;
    kv_status st = attach(g, e, log);
    return st == KV_OK ? KV_OK : kv_errorf(err, st, "device set-up: %s", g->err.msg);
}

static kv_status hook_finish(void *ctx, const char *dir, kv_err *err)
{
    gpu_replay *g = (gpu_replay *)ctx;
    kv_status st = finish(g, dir);
    return st == KV_OK ? KV_OK : kv_errorf(err, st, "the GPU run: %s", g->err.msg);
}

void kvgpu_replay_opts_default(kvgpu_replay_opts *o)
{
    *o = kvgpu_replay_opts{};
    o->attn_layers = 1;
    o->q_per_kv = 4;
}

kv_status kvgpu_replay_run(const kv_run_config *cfg, const kvgpu_replay_opts *o, kv_summary *out,
                           kv_err *err)
{
    if (o->attn_layers == 0)
        return kv_errorf(err, KV_ERR_INPUT, "--attn-layers must be at least 1");
    gpu_replay *g = new gpu_replay(); /* one per replay: kvgpu validate runs several */
    g->attn_layers = o->attn_layers;
    g->q_per_kv = o->q_per_kv;
    g->model_exec = o->model_exec;
    g->swap_batched = o->swap_batched;
    g->layers = o->layers;
    g->model_name = cfg->model;
    g->out_dir = cfg->out_dir;
    kv_run_hooks h = {g, wrap, hook_attach, hook_finish};
    kv_status st = kv_run(cfg, &h, out, err);
    release(g);
    delete g;
    return st;
}

int kvgpu_replay_main(int argc, char **argv)
{
    /* kvgpu's own options; the rest are kvsim replay's */
    kvgpu_replay_opts o;
    kvgpu_replay_opts_default(&o);
    std::vector<char *> args;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--attn-layers") == 0 && i + 1 < argc) {
            o.attn_layers = (uint32_t)atoi(argv[++i]);
            continue;
        }
        if (strcmp(argv[i], "--q-per-kv") == 0 && i + 1 < argc) {
            o.q_per_kv = (uint32_t)atoi(argv[++i]);
            continue;
        }
        if (strcmp(argv[i], "--model-exec") == 0) {
            o.model_exec = true;
            continue;
        }
        if (strcmp(argv[i], "--swap-batched") == 0) {
            o.swap_batched = true;
            continue;
        }
        if (strcmp(argv[i], "--layers") == 0 && i + 1 < argc) {
            o.layers = (uint32_t)atoi(argv[++i]);
            continue;
        }
        args.push_back(argv[i]);
    }
    if (o.attn_layers == 0) {
        fprintf(stderr, "kvgpu replay: --attn-layers must be at least 1\n");
        return 2;
    }
    args.push_back(nullptr);
    const char *cmd = "replay (kvgpu)";
    kv_run_config cfg;
    kv_run_config_default(&cfg);
    cfg.progress = kv_cli_progress();
    kv_cli_replay_flags flags;
    int rc = kv_cli_replay_parse(cmd, (int)args.size() - 1, args.data(), &cfg, &flags);
    if (rc == 1) {
        kv_cli_replay_usage(stdout);
        return 0;
    }
    if (rc != 0)
        return 2;
    if (cfg.trace == NULL || cfg.out_dir == NULL || !flags.strategy_set) {
        fprintf(stderr, "kvsim %s: TRACE, --strategy and -o DIR are required\n", cmd);
        kv_cli_replay_usage(stderr);
        return 2;
    }
    kv_summary s;
    kv_err err = {{0}};
    kv_status st = kvgpu_replay_run(&cfg, &o, &s, &err);
    if (st != KV_OK) {
        fprintf(stderr, "kvsim %s: %s\n", cmd, err.msg[0] ? err.msg : kv_status_str(st));
        return st == KV_ERR_INPUT ? 2 : 1;
    }
    fprintf(stderr,
            "kvsim %s: %s: %llu done, %llu rejected, %.1f output tokens/s, TTFT p50 %.3f "
            "s p99 %.3f s, %llu preemptions -> %s\n",
            cmd, kv_strategy_name(cfg.alloc.strategy), (unsigned long long)s.done,
            (unsigned long long)s.rejected, s.output_tok_per_s, s.ttft_p50_s, s.ttft_p99_s,
            (unsigned long long)s.preemptions, cfg.out_dir);
    return 0;
}
