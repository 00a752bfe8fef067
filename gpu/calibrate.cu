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
 * the per-copy latency and the bandwidth can be told apart. Chunk maps: a chunk-pool sequence of 4096 tokens mapped and
 * unmapped 8 times.
 * Fits (GNU Scientific Library): eff_memory, eff_compute and step_overhead_ms by nonlinear
 * least squares of the relative error of the cost model's own step formula (costmodel.h) over
 * every step; copy_latency_us, d2h_gbps and h2d_gbps by linear least squares of swap time on
 * (copies, bytes) per direction, weighted for relative error; map_us and unmap_us as means. FILE gets the [calibration]
 * section kvsim --calib reads and a [fit] section with R^2 and the median absolute error by
 * region; FILE.csv every measured point with the fitted prediction.
 */
#include "kvgpu.h"
#include "cuda_check.h"
#include "gpu_util.h"
#include "model.h"

extern "C" {
#include "costmodel.h"
#include "preset.h"
}

#include <algorithm>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_multifit.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_vector.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

struct point {
    const char *region;
    uint32_t batch, context, chunk, chunk_context;
    kv_step_work w;
    double measured_s, predicted_s;
};

struct swap_point {
    bool out;
    uint64_t copies, bytes;
    double seconds;
};

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
    std::vector<point> pts;
    std::vector<swap_point> swaps;
};

static double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.empty() ? NAN : v[v.size() / 2];
}

/* One designed step: batch decoding sequences of context tokens, plus a chunk of c tokens after
 * c0 tokens of one more sequence. */
static kv_status run_point(calib *C, const char *region, uint32_t batch, uint32_t context,
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
    point p = {region, batch, context, c, c0, {}, median(ts), 0};
    p.w.n_decode = batch;
    p.w.decode_context = (uint64_t)batch * (context + 1);
    p.w.n_prefill = c > 0;
    p.w.prefill_tokens = c;
    p.w.prefill_attn_tokens2 = (double)c * (c0 + c / 2.0);
    C->pts.push_back(p);
    printf("  %-8s batch %3u context %5u chunk %5u after %5u: %8.3f ms\n", region, batch, context,
           c, c0, p.measured_s * 1e3);
    fflush(stdout);
    return KV_OK;
}

/* ------------------------------------------------------------------------ the fits --- */

struct fit_ctx {
    calib *C;
};

static void set_params(kv_costmodel *cm, const gsl_vector *x)
{
    cm->gpu.eff_memory = fmin(1.0, fmax(1e-3, gsl_vector_get(x, 0)));
    cm->gpu.eff_compute = fmin(1.0, fmax(1e-3, gsl_vector_get(x, 1)));
    cm->gpu.step_overhead_ms = fmax(0.0, gsl_vector_get(x, 2));
}

static int residuals(const gsl_vector *x, void *data, gsl_vector *f)
{
    calib *C = ((fit_ctx *)data)->C;
    kv_costmodel cm = C->cm;
    set_params(&cm, x);
    for (size_t i = 0; i < C->pts.size(); i++) {
        double pred = kv_costmodel_step(&cm, &C->pts[i].w).compute_s;
        gsl_vector_set(f, i, (pred - C->pts[i].measured_s) / C->pts[i].measured_s);
    }
    return GSL_SUCCESS;
}

static kv_status fit_steps(calib *C, kv_err *err)
{
    size_t n = C->pts.size();
    const size_t p = 3;
    gsl_multifit_nlinear_fdf fdf;
    fit_ctx ctx = {C};
    fdf.f = residuals;
    fdf.df = NULL; /* finite differences */
    fdf.fvv = NULL;
    fdf.n = n;
    fdf.p = p;
    fdf.params = &ctx;
    gsl_multifit_nlinear_parameters fp = gsl_multifit_nlinear_default_parameters();
    gsl_multifit_nlinear_workspace *w =
        gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &fp, n, p);
    gsl_vector *x = gsl_vector_alloc(p);
    gsl_vector_set(x, 0, C->cm.gpu.eff_memory);
    gsl_vector_set(x, 1, C->cm.gpu.eff_compute);
    gsl_vector_set(x, 2, C->cm.gpu.step_overhead_ms);
    gsl_multifit_nlinear_init(x, &fdf, w);
    int info = 0;
    int status = gsl_multifit_nlinear_driver(200, 1e-10, 1e-10, 1e-10, NULL, NULL, &info, w);
    set_params(&C->cm, w->x);
    gsl_multifit_nlinear_free(w);
    gsl_vector_free(x);
    if (status != GSL_SUCCESS && status != GSL_EMAXITER)
        return kv_errorf(err, KV_ERR_INPUT, "calibrate: the step fit failed (GSL status %d)",
                         status);
    for (auto &pt : C->pts)
        pt.predicted_s = kv_costmodel_step(&C->cm, &pt.w).compute_s;
    return KV_OK;
}

/* t = latency x copies + bytes / bandwidth, for one direction. */
static void fit_swaps(const std::vector<swap_point> &v, bool out, double *lat_s, double *gbps)
{
    size_t n = 0;
    for (auto &s : v)
        n += s.out == out;
    gsl_matrix *X = gsl_matrix_alloc(n, 2);
    gsl_vector *y = gsl_vector_alloc(n), *c = gsl_vector_alloc(2);
    gsl_matrix *cov = gsl_matrix_alloc(2, 2);
    size_t i = 0;
    for (auto &s : v)
        if (s.out == out) {
            gsl_matrix_set(X, i, 0, (double)s.copies);
            gsl_matrix_set(X, i, 1, (double)s.bytes);
            gsl_vector_set(y, i, s.seconds);
            i++;
        }
    /* weights 1 / t^2: the relative error, as the targets are stated */
    gsl_vector *wt = gsl_vector_alloc(n);
    for (size_t k = 0; k < n; k++)
        gsl_vector_set(wt, k, 1.0 / (gsl_vector_get(y, k) * gsl_vector_get(y, k)));
    double chisq;
    gsl_multifit_linear_workspace *w = gsl_multifit_linear_alloc(n, 2);
    gsl_multifit_wlinear(X, wt, y, c, cov, &chisq, w);
    gsl_vector_free(wt);
    *lat_s = fmax(0.0, gsl_vector_get(c, 0));
    *gbps = 1.0 / gsl_vector_get(c, 1) / 1e9;
    gsl_multifit_linear_free(w);
    gsl_matrix_free(X);
    gsl_matrix_free(cov);
    gsl_vector_free(y);
    gsl_vector_free(c);
}

static double med_abs_pct(const std::vector<point> &pts, const char *region)
{
    std::vector<double> e;
    for (auto &p : pts)
        if (region == NULL || strcmp(p.region, region) == 0)
            e.push_back(fabs(p.predicted_s - p.measured_s) / p.measured_s * 100);
    return median(e);
}

static double r2(const std::vector<point> &pts)
{
    double mean = 0, ss_tot = 0, ss_res = 0;
    for (auto &p : pts)
        mean += p.measured_s / pts.size();
    for (auto &p : pts) {
        ss_tot += (p.measured_s - mean) * (p.measured_s - mean);
        ss_res += (p.measured_s - p.predicted_s) * (p.measured_s - p.predicted_s);
    }
    return 1 - ss_res / ss_tot;
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
                st = run_point(&C, "decode", B, ctx, 0, 0, err);
    const uint32_t chunks[] = {64, 256, 1024, 2048, 4096, 8192};
    for (uint32_t c : chunks)
        for (uint32_t c0 : {0u, 2048u})
            if (st == KV_OK && c + c0 <= 8192)
                st = run_point(&C, "prefill", 0, 0, c, c0, err);
    for (uint32_t c : {512u, 2048u})
        for (uint32_t B : {32u, 128u})
            if (st == KV_OK)
                st = run_point(&C, "mixed", B, 1024, c, 0, err);

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
                C.swaps.push_back({dir == 0, res.copies, res.bytes, median(ts)});
            }
        kv_alloc_free(C.a, id);
    }
    kvg_swapper_destroy(&sw);

    /* chunk maps: a chunk-pool allocator over 4 GiB */
    double map_us = NAN, unmap_us = NAN;
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
        for (int it = 0; it < 8 && st == KV_OK; it++) {
            kv_admit_req r = {4096, 4096, NULL, 0};
            kv_seq_id id;
            kvg_seqdesc d;
            if ((st = kv_alloc_admit(ca, &r, &id, NULL)) != KV_OK)
                break;
            if ((st = kvg_pool_sync(cp, ca, id, &d, err)) == KV_OK) {
                kv_alloc_free(ca, id);
                st = kvg_pool_release(cp, id, err);
            }
        }
        if (st == KV_OK) {
            const kvg_pool_stats *ps = kvg_pool_stats_of(cp);
            map_us = ps->map_s / ps->maps * 1e6;
            unmap_us = ps->unmap_s / ps->unmaps * 1e6;
        }
        kvg_pool_destroy(&cp);
        kv_alloc_destroy(&ca);
    }
    if (st == KV_OK)
        st = fit_steps(&C, err);
    if (st != KV_OK) {
        fprintf(stderr, "kvgpu calibrate: %s\n", e.msg);
        return 1;
    }
    double lat_out, lat_in, d2h, h2d;
    fit_swaps(C.swaps, true, &lat_out, &d2h);
    fit_swaps(C.swaps, false, &lat_in, &h2d);
    double lat_us = (lat_out + lat_in) / 2 * 1e6;
    std::vector<double> swap_err;
    for (auto &s : C.swaps) {
        double pred = s.copies * lat_us * 1e-6 + s.bytes / ((s.out ? d2h : h2d) * 1e9);
        swap_err.push_back(fabs(pred - s.seconds) / s.seconds * 100);
    }
    FILE *f = fopen(out, "w");
    if (f == NULL) {
        fprintf(stderr, "kvgpu calibrate: %s: cannot create\n", out);
        return 1;
    }
    fprintf(f,
            "# kvgpu calibrate --model %s --gpu %s%s: measured on %s; kvsim --calib reads\n"
            "# [calibration]; [fit] says how well the cost model fits the measured steps.\n"
            "[calibration]\n"
            "eff_memory = %.6f\neff_compute = %.6f\nstep_overhead_ms = %.6f\n"
            "copy_latency_us = %.4f\nd2h_gbps = %.4f\nh2d_gbps = %.4f\n"
            "map_us = %.3f\nunmap_us = %.3f\n\n[fit]\n"
            "steps = %zu\nr2_steps = %.5f\nmedian_abs_pct_err_all = %.3f\n"
            "median_abs_pct_err_decode = %.3f\nmedian_abs_pct_err_prefill = %.3f\n"
            "median_abs_pct_err_mixed = %.3f\nswaps = %zu\nmedian_abs_pct_err_swaps = %.3f\n"
            "copy_latency_out_us = %.4f\ncopy_latency_in_us = %.4f\nlayers_run = %u\n"
            "layers = %u\n",
            C.m.name, C.g.name, layers ? " --layers K" : "", prop.name, C.cm.gpu.eff_memory,
            C.cm.gpu.eff_compute, C.cm.gpu.step_overhead_ms, lat_us, d2h, h2d, map_us, unmap_us,
            C.pts.size(), r2(C.pts), med_abs_pct(C.pts, NULL), med_abs_pct(C.pts, "decode"),
            med_abs_pct(C.pts, "prefill"), med_abs_pct(C.pts, "mixed"), C.swaps.size(),
            median(swap_err), lat_out * 1e6, lat_in * 1e6, kvg_model_layers(C.model),
            C.m.n_layers);
    fclose(f);
    char csv[1100];
    snprintf(csv, sizeof csv, "%s.csv", out);
    if ((f = fopen(csv, "w")) != NULL) {
        fprintf(f, "region,batch,context,chunk,chunk_context,measured_ms,predicted_ms\n");
        for (auto &p : C.pts)
            fprintf(f, "%s,%u,%u,%u,%u,%.6f,%.6f\n", p.region, p.batch, p.context, p.chunk,
                    p.chunk_context, p.measured_s * 1e3, p.predicted_s * 1e3);
        for (auto &s : C.swaps)
            fprintf(f, "swap-%s,%llu,%llu,0,0,%.6f,%.6f\n", s.out ? "out" : "in",
                    (unsigned long long)s.copies, (unsigned long long)s.bytes, s.seconds * 1e3,
                    (s.copies * lat_us * 1e-6 + s.bytes / ((s.out ? d2h : h2d) * 1e9)) * 1e3);
        fclose(f);
    }
    printf("kvgpu calibrate: eff_memory %.3f, eff_compute %.3f, step overhead %.3f ms; R^2 %.4f, "
           "median |error| %.2f%% (decode %.2f%%, prefill %.2f%%, mixed %.2f%%); swaps: %.2f us "
           "a copy, %.1f GB/s out, %.1f GB/s in (median |error| %.2f%%); maps %.1f us, unmaps "
           "%.1f us -> %s\n",
           C.cm.gpu.eff_memory, C.cm.gpu.eff_compute, C.cm.gpu.step_overhead_ms, r2(C.pts),
           med_abs_pct(C.pts, NULL), med_abs_pct(C.pts, "decode"), med_abs_pct(C.pts, "prefill"),
           med_abs_pct(C.pts, "mixed"), lat_us, d2h, h2d, median(swap_err), map_us, unmap_us, out);
    kvg_model_destroy(&C.model);
    kvg_pool_destroy(&C.pool);
    kv_alloc_destroy(&C.a);
    cudaFree(C.descs_d);
    return 0;
}
