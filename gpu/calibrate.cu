/* calibrate.cu — `kvgpu calibrate [--model M] [--gpu G] [--layers K] -o FILE`: measure a
 * designed set of steps on the GPU and fit kvsim's cost model to them.
 *
 * Steps, each run through the model executor over KV placed by a paged allocator (block 16)
 * with random contents, the median of 5 runs after one warm-up:
 *   decode   batch 1..256 x context 128..8000 (as much as the KV pool holds)
 *   prefill  chunks of 64..8192 tokens, from an empty context and after 2048 tokens
 *   mixed    a prefill chunk and a decode batch in one step
 * Swaps: 16..4096 tokens out and in, one copy per block per tensor (vLLM's way, what the
 * paged allocator counts), one per tensor (chunk-pool) and one for all (an extent), so that
 * the per-copy latency and the bandwidth can be told apart. Chunk maps: a chunk-pool sequence
 * of 4096 tokens mapped and unmapped 8 times (kvg_pool_time_maps).
 * This file only measures. The fits, their statistics (R^2, median |error| overall and per
 * phase), the flags of parameters that end at a bound, and the files (FILE: the [calibration]
 * section kvsim --calib reads and a [fit] section; FILE.csv: every measured point with its
 * prediction) are host code in analysis/calib.h, tested on the recorded H100 measurements.
 */
#include "kvgpu.h"
#include "cuda_check.h"
#include "gpu_util.h"
#include "model.h"

extern "C" {
#include "calib.h"
#include "costmodel.h"
#include "median.h"
#include "preset.h"
}

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

struct calib {
    kv_model m;
    kv_gpu g;
    kv_costmodel cm;
    kv_alloc *a = nullptr;
    kvg_pool *pool = nullptr;
    kvg_model *model = nullptr;
    kvg_format f;
    double layer_scale = 1;
    std::vector<kvg_seqdesc> descs;
    kvg_seqdesc *descs_d = nullptr;
    kv_calib *meas = nullptr; /* the measured steps and swaps */
};

/* One designed step: batch decoding sequences of context tokens, plus a chunk of c tokens after
 * c0 tokens of one more sequence. */
static kv_status run_point(calib *C, kv_calib_phase phase, uint32_t batch, uint32_t context,
                           uint32_t c, uint32_t c0, kv_err *err)
{
    std::vector<kv_seq_id> ids;
    std::vector<kv_step_seq> seqs;
    kv_status st = KV_OK;
    uint32_t nt = kv_shape_n_tensors(&kv_alloc_config_of(C->a)->shape);
    for (uint32_t i = 0; i < batch + (c > 0) && st == KV_OK; i++) {
        bool pre = i == batch;
        uint32_t n = pre ? c0 + c : context;
        kv_admit_req r = {n, pre ? n : n + 1, NULL, 0};
        kv_seq_id id;
        if ((st = kv_alloc_admit(C->a, &r, &id, NULL)) != KV_OK)
            return kv_errorf(err, st, "calibrate: admit %u tokens: %s", n, kv_status_str(st));
        ids.push_back(id);
        if (!pre && (st = kv_alloc_append(C->a, id, 1)) != KV_OK)
            return kv_errorf(err, st, "calibrate: append: %s", kv_status_str(st));
        if ((st = kvg_pool_sync(C->pool, C->a, id, &C->descs[id], err)) == KV_OK)
            st = kvg_fill_random(&C->f, &C->descs[id], nt, id, err);
        seqs.push_back(pre ? kv_step_seq{id, c0, c} : kv_step_seq{id, context, 1});
    }
    CUDA_TRY(cudaMemcpy(C->descs_d, C->descs.data(), C->descs.size() * sizeof(kvg_seqdesc),
                        cudaMemcpyHostToDevice));
    std::vector<double> ts;
    for (int it = 0; it < 6 && st == KV_OK; it++) {
        float ms = 0;
        st = kvg_model_step(C->model, &C->f, C->descs_d, C->descs.data(), seqs.data(),
                            (uint32_t)seqs.size(), &ms, err);
        if (it > 0)
            ts.push_back(ms * 1e-3 * C->layer_scale);
    }
    for (kv_seq_id id : ids)
        kv_alloc_free(C->a, id);
    if (st != KV_OK)
        return st;
    kv_calib_step p = {phase, batch, context, c, c0, kv_median(ts.data(), ts.size())};
    if ((st = kv_calib_add_step(C->meas, &p, err)) != KV_OK)
        return st;
    printf("  %-8s batch %3u context %5u chunk %5u after %5u: %8.3f ms\n",
           kv_calib_phase_name(phase), batch, context, c, c0, p.measured_s * 1e3);
    fflush(stdout);
    return KV_OK;
}

/* ----------------------------------------------------------------------------- main --- */

int kvgpu_calibrate_main(int argc, char **argv)
{
    const char *model = "Llama-3-8B", *gpu = "H100-80GB", *out = NULL;
    uint32_t layers = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else if (strcmp(argv[i], "--gpu") == 0 && i + 1 < argc)
            gpu = argv[++i];
        else if (strcmp(argv[i], "--layers") == 0 && i + 1 < argc)
            layers = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            out = argv[++i];
        else {
            fprintf(stderr, "usage: kvgpu calibrate [--model M] [--gpu G] [--layers K] -o FILE\n");
            return 2;
        }
    }
    if (out == NULL) {
        fprintf(stderr, "kvgpu calibrate: -o FILE is required\n");
        return 2;
    }
    calib C;
    kv_err e = {{0}}, *err = &e;
    kv_status st = kv_model_load(model, &C.m, err);
    if (st == KV_OK)
        st = kv_gpu_load(gpu, &C.g, err);
    if (st != KV_OK) {
        fprintf(stderr, "kvgpu calibrate: %s\n", e.msg);
        return 2;
    }
    kv_budget b = kv_kv_budget(&C.m, &C.g, 1, 0.9, 8192, 256);
    kv_shape sh = kv_model_shape(&C.m, 1);
    kv_alloc_config ac;
    kv_alloc_config_default(&ac, KV_PAGED, &sh, (uint64_t)b.kv_bytes);
    ac.watermark = 0;
    ac.max_seqs = 512;
    ac.max_seq_tokens = 8192;
    ac.paged.prefix_caching = false;
    kv_costmodel_init(&C.cm, &C.m, &C.g, 1, kv_shape_token_bytes(&sh));
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        fprintf(stderr, "kvgpu calibrate: no CUDA device\n");
        return 1;
    }
    st = kv_calib_create(&C.cm, &C.meas, err);
    if (st == KV_OK)
        st = kv_alloc_create(&ac, &C.a, err);
    if (st == KV_OK)
        st = kvg_format_of(&ac, KVG_BF16, &C.f, err);
    if (st == KV_OK)
        st = kvg_pool_create(C.a, &C.pool, err);
    if (st == KV_OK)
        st = kvg_model_create(&C.m, layers, 8192, 256, 8192, 1, &C.model, err);
    if (st == KV_OK) {
        C.layer_scale = (double)C.m.n_layers / kvg_model_layers(C.model);
        C.descs.assign(ac.max_seqs, kvg_seqdesc{});
        if (cudaMalloc(&C.descs_d, C.descs.size() * sizeof(kvg_seqdesc)) != cudaSuccess)
            st = kv_errorf(err, KV_ERR_NOMEM, "calibrate: descriptors");
    }
    printf("kvgpu calibrate: %s on %s (%s), %u of %u layers run, KV pool %.1f GiB\n", C.m.name,
           C.g.name, prop.name, C.model ? kvg_model_layers(C.model) : 0, C.m.n_layers,
           (double)b.kv_bytes / 1073741824.0);
    uint64_t pool_tokens = (uint64_t)b.kv_bytes / kv_shape_token_bytes(&sh);
    const uint32_t batches[] = {1, 4, 16, 32, 64, 128, 256}, contexts[] = {128, 512, 2048, 8000};
    for (uint32_t B : batches)
        for (uint32_t ctx : contexts)
            if (st == KV_OK && (uint64_t)B * (ctx + 32) < pool_tokens * 9 / 10)
                st = run_point(&C, KV_CALIB_DECODE, B, ctx, 0, 0, err);
    const uint32_t chunks[] = {64, 256, 1024, 2048, 4096, 8192};
    for (uint32_t c : chunks)
        for (uint32_t c0 : {0u, 2048u})
            if (st == KV_OK && c + c0 <= 8192)
                st = run_point(&C, KV_CALIB_PREFILL, 0, 0, c, c0, err);
    for (uint32_t c : {512u, 2048u})
        for (uint32_t B : {32u, 128u})
            if (st == KV_OK)
                st = run_point(&C, KV_CALIB_MIXED, B, 1024, c, 0, err);

    /* swaps: paged-16, one copy per block per tensor */
    kvg_swapper *sw = NULL;
    pinned_buf host(600ull << 20);
    if (st == KV_OK)
        st = kvg_swapper_create(64ull << 20, &sw, err);
    if (st == KV_OK)
        st = host.alloc(err);
    for (uint32_t n : {16u, 64u, 256u, 1024u, 4096u}) {
        if (st != KV_OK)
            break;
        kv_admit_req r = {n, n, NULL, 0};
        kv_seq_id id;
        if ((st = kv_alloc_admit(C.a, &r, &id, NULL)) != KV_OK)
            break;
        kvg_seqdesc d, h;
        if ((st = kvg_pool_sync(C.pool, C.a, id, &d, err)) != KV_OK)
            break;
        kv_placement pl;
        kv_alloc_placement(C.a, id, &pl);
        kvg_host_desc(C.a, id, (uint64_t)(uintptr_t)host.p, &h);
        /* three copy sizes, so that latency and bandwidth separate: one copy per block per
         * tensor (paged), one per tensor (chunk-pool per-layer), one for all (an extent) */
        uint32_t nt = kv_shape_n_tensors(&sh);
        uint64_t rb = C.f.row_bytes, arena = kvg_pool_arena(C.pool), hb = (uint64_t)(uintptr_t)host.p;
        kvg_seqdesc per_tensor = {arena, NULL, n, KVG_EXTENT_UNIT, 0, (uint64_t)n * rb, rb};
        kvg_seqdesc extent = {arena, NULL, n, KVG_EXTENT_UNIT, 0, rb, rb * nt};
        kvg_seqdesc per_tensor_h = per_tensor, extent_h = extent;
        per_tensor_h.base = extent_h.base = hb;
        const kvg_seqdesc *devs[] = {&d, &per_tensor, &extent}, *hosts[] = {&h, &per_tensor_h, &extent_h};
        for (int kind = 0; kind < 3; kind++)
            for (int dir = 0; dir < 2 && st == KV_OK; dir++) {
                std::vector<double> ts;
                kvg_swap_result res = {0, 0, 0};
                for (int it = 0; it < 6 && st == KV_OK; it++) {
                    st = kvg_swap(sw, KVG_SWAP_PER_COPY, dir == 0, devs[kind],
                                  kind == 0 ? pl.block_table : NULL, hosts[kind], nt, rb, &res, err);
                    if (it > 0)
                        ts.push_back(res.seconds);
                }
                kv_calib_swap m = {dir == 0, res.copies, res.bytes, kv_median(ts.data(), ts.size())};
                if (st == KV_OK)
                    st = kv_calib_add_swap(C.meas, &m, err);
            }
        kv_alloc_free(C.a, id);
    }
    kvg_swapper_destroy(&sw);

    /* chunk maps: a chunk-pool allocator over 4 GiB */
    if (st == KV_OK) {
        kv_alloc_config cc;
        kv_alloc_config_default(&cc, KV_CHUNK_POOL, &sh, 4ull << 30);
        cc.watermark = 0;
        cc.max_seqs = 16;
        cc.max_seq_tokens = 4096;
        kv_alloc *ca = NULL;
        kvg_pool *cp = NULL;
        st = kv_alloc_create(&cc, &ca, err);
        if (st == KV_OK)
            st = kvg_pool_create(ca, &cp, err);
        if (st == KV_OK)
            st = kvg_pool_time_maps(ca, cp, 4096, 8, err);
        if (st == KV_OK) {
            const kvg_pool_stats *ps = kvg_pool_stats_of(cp);
            kv_calib_set_maps(C.meas, ps->map_s, ps->maps, ps->unmap_s, ps->unmaps);
        }
        kvg_pool_destroy(&cp);
        kv_alloc_destroy(&ca);
    }

    /* the fits and the files (analysis/calib.h) */
    kv_calib_fit fit;
    if (st == KV_OK)
        st = kv_calib_fit_all(C.meas, &fit, err);
    kv_calib_info info = {C.m.name, C.g.name, prop.name, layers != 0,
                          C.model ? kvg_model_layers(C.model) : 0, C.m.n_layers};
    if (st == KV_OK)
        st = kv_calib_write(C.meas, &fit, &info, out, err);
    if (st == KV_OK) {
        kv_calib_print_summary(stdout, &fit, out);
        for (const char *m = fit.bound_msg; *m;) { /* one line per parameter at a bound */
            const char *nl = strchr(m, '\n');
            int len = nl ? (int)(nl - m) : (int)strlen(m);
            fprintf(stderr, "kvgpu calibrate: warning: %.*s\n", len, m);
            m += len + (nl != NULL);
        }
    }
    kvg_model_destroy(&C.model);
    kvg_pool_destroy(&C.pool);
    kv_alloc_destroy(&C.a);
    kv_calib_destroy(&C.meas);
    cudaFree(C.descs_d);
    if (st != KV_OK) {
        fprintf(stderr, "kvgpu calibrate: %s\n", e.msg);
        return 1;
    }
    return 0;
}
