/* bench.cu — `kvgpu bench [-o DIR] [SECTION...]`: the figures of the kvgpu issues, each against
 * a limit measured in the same run on the same device (no constants of another GPU).
 *
 *   limits     the device's own ceilings: a 1 GiB device-to-device copy (bytes read + written),
 *              pinned host copies of 1 GiB each way and the per-copy latency of 4 KiB, 256 KiB
 *              and 2 MiB copies, CUDA VMM costs per 2 MiB chunk (cuMemCreate, cuMemMap,
 *              cuMemSetAccess, cuMemUnmap, cuMemRelease), cudaMalloc + cudaFree of 2 MiB, and
 *              a bf16 matrix product of 8192^3 through cuBLAS on random data
 *   attention  decode attention of one layer for a batch, KV read through each placement kind
 *              (contiguous extent, paged block table, chunk-pool virtual range, compressed fp8
 *              blocks); bytes = the K and V rows read; layers rotate so L2 holds none of them;
 *              against the measured copy rate
 *   prefill    the fused causal prefill attention of one 2048- and 8192-token prompt (one
 *              layer) through each placement, in TFLOP/s against the measured matrix rate
 *   append     KV append of a decode batch (one token for 256 sequences) and of one 8192-token
 *              prefill; bytes = source read + rows written; against the copy rate
 *   swap       one sequence out and in, per-copy (one cudaMemcpyAsync per block per tensor, as
 *              vLLM) and batched (gather kernel + one copy), for every strategy and paged block
 *              size, over sizes from 2 MiB to 512 MiB; against the pinned rate of its direction
 *   vmm        the pool's map and unmap cost per chunk, from its own counters, against the raw
 *              driver calls measured under limits
 *   model      the model executor (Llama-3-8B, random bf16 weights) at DESIGN.md section 4's
 *              reference points, against the PyTorch times measured there
 * Llama-3-8B's KV shape (32 layers, 8 KV heads, 32 query heads, head_dim 128, 128 KiB a token).
 * Medians of repeated runs timed with CUDA events (time_median, gpu_util.h). Without -o the
 * output folder is results/gpu/<device> (the device's name: h200, h100). Writes bench.csv and
 * bench.log (a copy of stdout) there, model.csv for the model section. */
#include "kvgpu.h"
#include "cuda_check.h"
#include "gpu_util.h"
#include "model.h"

#include <cublas_v2.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <vector>

/* The limits measured by bench_limits, in this run. */
static struct limits {
    double copy_gbps;           /* device to device, read + write */
    double h2d_gbps, d2h_gbps;  /* pinned, 1 GiB */
    double lat4k_us, lat256k_us, lat2m_us; /* pinned copy of that size, H2D */
    double create_us, map_us, access_us, unmap_us, release_us; /* per 2 MiB chunk */
    double malloc_us;           /* cudaMalloc + cudaFree of 2 MiB */
    double gemm_tflops;         /* bf16 8192^3, cuBLAS */
} L;

static FILE *csv, *log_file;

static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (log_file) {
        va_start(ap, fmt);
        vfprintf(log_file, fmt, ap);
        va_end(ap);
    }
    fflush(stdout);
}

static void row(const char *section, const char *config, const char *param, double bytes,
                double seconds, double limit_gbps)
{
    double gbps = bytes / seconds / 1e9;
    out("%-9s %-30s %-26s %10.2f MiB %9.1f us %9.1f GB/s  %5.1f%% of %.0f\n", section, config,
        param, bytes / 1048576.0, seconds * 1e6, gbps, 100 * gbps / limit_gbps, limit_gbps);
    fprintf(csv, "%s,%s,%s,%.0f,%.9f,%.3f,%.1f,%.2f\n", section, config, param, bytes, seconds,
            gbps, limit_gbps, 100 * gbps / limit_gbps);
}

/* A figure that is a time per call (us), against a measured one. */
static void cost_row(const char *section, const char *what, double us, double limit_us)
{
    out("%-9s %-57s %9.1f us   limit %.1f us (%.0f%%)\n", section, what, us, limit_us,
        100 * us / limit_us);
    fprintf(csv, "%s,%s,,,%.9f,,%.3f us,%.1f\n", section, what, us * 1e-6, limit_us,
            100 * us / limit_us);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static kv_alloc_config llama3_8b(kv_strategy s, uint64_t pool_bytes, uint32_t max_tokens)
{
    kv_shape sh = kv_shape_dense(32, 8, 128);
    kv_alloc_config ac;
    kv_alloc_config_default(&ac, s, &sh, pool_bytes);
    ac.watermark = 0;
    ac.max_seqs = 256;
    ac.max_seq_tokens = max_tokens;
    ac.paged.prefix_caching = false;
    ac.contiguous.reserve = KV_RESERVE_ORACLE;
    return ac;
}

/* A pool holding n sequences of len tokens each, with random KV; descs on host. */
typedef struct setup {
    kv_alloc *a = nullptr;
    kvg_pool *p = nullptr;
    kvg_format f;
    std::vector<kv_seq_id> ids;
    std::vector<kvg_seqdesc> descs;
    ~setup()
    {
        kvg_pool_destroy(&p);
        kv_alloc_destroy(&a);
    }
} setup;

static kv_status make_setup(setup *s, kv_alloc_config ac, kvg_dtype dt, uint32_t n, uint32_t len,
                            kv_err *err)
{
    kv_status st = kv_alloc_create(&ac, &s->a, err);
    if (st == KV_OK)
        st = kvg_format_of(&ac, dt, &s->f, err);
    if (st == KV_OK)
        st = kvg_pool_create(s->a, &s->p, err);
    uint32_t nt = kv_shape_n_tensors(&ac.shape);
    for (uint32_t i = 0; i < n && st == KV_OK; i++) {
        kv_admit_req r = {len, len, NULL, 0};
        kv_seq_id id;
        if ((st = kv_alloc_admit(s->a, &r, &id, NULL)) != KV_OK)
            return kv_errorf(err, st, "bench: admit %u of %u x %u tokens: %s", i, n, len,
                             kv_status_str(st));
        kvg_seqdesc d;
        if ((st = kvg_pool_sync(s->p, s->a, id, &d, err)) == KV_OK)
            st = kvg_fill_random(&s->f, &d, nt, i, err);
        s->ids.push_back(id);
        s->descs.push_back(d);
    }
    return st == KV_OK ? cuda_sync(err, "filling KV") : st;
}

/* ---------------------------------------------------------------------------- limits --- */

/* Per-call host time of a driver call over n chunks, in us. */
#define TIME_CALLS(us, n, call)                                                                    \
    do {                                                                                           \
        double t0_ = now_s();                                                                      \
        for (size_t i = 0; i < (n); i++)                                                           \
            CU_TRY(call);                                                                          \
        (us) = (now_s() - t0_) / (n) * 1e6;                                                        \
    } while (0)

static kv_status bench_vmm_raw(kv_err *err)
{
    CU_TRY(cuInit(0));
    CUmemAllocationProp prop = {};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    size_t gran = 0;
    CU_TRY(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    const size_t chunk = 2ull << 20, n = 256;
    if (gran > chunk)
        return kv_errorf(err, KV_ERR_INPUT, "bench: VMM granularity %zu over 2 MiB", gran);
    std::vector<CUmemGenericAllocationHandle> h(n);
    CUdeviceptr va = 0;
    CU_TRY(cuMemAddressReserve(&va, n * chunk, 0, 0, 0));
    CUmemAccessDesc acc = {};
    acc.location = prop.location;
    acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    TIME_CALLS(L.create_us, n, cuMemCreate(&h[i], chunk, &prop, 0));
    TIME_CALLS(L.map_us, n, cuMemMap(va + i * chunk, chunk, 0, h[i], 0));
    TIME_CALLS(L.access_us, n, cuMemSetAccess(va + i * chunk, chunk, &acc, 1));
    TIME_CALLS(L.unmap_us, n, cuMemUnmap(va + i * chunk, chunk));
    TIME_CALLS(L.release_us, n, cuMemRelease(h[i]));
    CU_TRY(cuMemAddressFree(va, n * chunk));
    double t0 = now_s();
    for (int i = 0; i < 64; i++) {
        void *p = NULL;
        CUDA_TRY(cudaMalloc(&p, chunk));
        CUDA_TRY(cudaFree(p));
    }
    L.malloc_us = (now_s() - t0) / 64 * 1e6;
    out("limits    VMM granularity %zu KiB; per 2 MiB chunk: cuMemCreate %.1f us, cuMemMap %.1f us, "
        "cuMemSetAccess %.1f us, cuMemUnmap %.1f us, cuMemRelease %.1f us (%zu chunks)\n",
        gran >> 10, L.create_us, L.map_us, L.access_us, L.unmap_us, L.release_us, n);
    out("limits    cudaMalloc + cudaFree of 2 MiB %.1f us\n", L.malloc_us);
    fprintf(csv, "limits,cuMemCreate per chunk,2 MiB,2097152,%.9f,,,\n", L.create_us * 1e-6);
    fprintf(csv, "limits,cuMemMap per chunk,2 MiB,2097152,%.9f,,,\n", L.map_us * 1e-6);
    fprintf(csv, "limits,cuMemSetAccess per chunk,2 MiB,2097152,%.9f,,,\n", L.access_us * 1e-6);
    fprintf(csv, "limits,cuMemUnmap per chunk,2 MiB,2097152,%.9f,,,\n", L.unmap_us * 1e-6);
    fprintf(csv, "limits,cuMemRelease per chunk,2 MiB,2097152,%.9f,,,\n", L.release_us * 1e-6);
    fprintf(csv, "limits,cudaMalloc+cudaFree,2 MiB,2097152,%.9f,,,\n", L.malloc_us * 1e-6);
    return KV_OK;
}

static kv_status bench_gemm(kv_err *err)
{
    const int N = 8192;
    dev_buf<uint16_t> a((size_t)N * N), b((size_t)N * N), c((size_t)N * N);
    if (!a.p || !b.p || !c.p)
        return kv_errorf(err, KV_ERR_NOMEM, "bench: matrices of %d^2", N);
    kv_status st = kvg_fill_bf16(a.p, a.n, 1, err);
    if (st == KV_OK)
        st = kvg_fill_bf16(b.p, b.n, 2, err);
    if (st != KV_OK)
        return st;
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS)
        return kv_errorf(err, KV_ERR_INPUT, "bench: cublasCreate failed");
    const float one = 1, zero = 0;
    double s = 0;
    st = time_median(0, 3, 10, [&](int) {
        if (cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, N, N, N, &one, a.p, CUDA_R_16BF, N, b.p,
                         CUDA_R_16BF, N, &zero, c.p, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
            return kv_errorf(err, KV_ERR_INPUT, "bench: cublasGemmEx failed");
        return KV_OK;
    }, &s, err);
    cublasDestroy(h);
    if (st != KV_OK)
        return st;
    L.gemm_tflops = 2.0 * N * N * (double)N / s / 1e12;
    out("limits    bf16 matrix product %d^3 (cuBLAS, random data) %.1f ms: %.0f TFLOP/s\n", N,
        s * 1e3, L.gemm_tflops);
    fprintf(csv, "limits,bf16 gemm,%d^3,,%.9f,,%.1f TFLOP/s,\n", N, s, L.gemm_tflops);
    return KV_OK;
}

static kv_status bench_limits(kv_err *err)
{
    const size_t big = 1ull << 30;
    dev_buf<char> d0(big), d1(big);
    pinned_buf h(big);
    if (!d0.p || !d1.p)
        return kv_errorf(err, KV_ERR_NOMEM, "bench: two 1 GiB device buffers");
    kv_status st = h.alloc(err);
    if (st == KV_OK)
        st = kvg_fill_bf16((uint16_t *)d0.p, big / 2, 7, err);
    if (st != KV_OK)
        return st;
    memset(h.p, 0x3c, big);
    double s = 0;
    st = time_median(0, 2, 10, [&](int) {
        CUDA_TRY(cudaMemcpyAsync(d1.p, d0.p, big, cudaMemcpyDeviceToDevice));
        return KV_OK;
    }, &s, err);
    if (st != KV_OK)
        return st;
    L.copy_gbps = 2.0 * big / s / 1e9;
    st = time_median(0, 1, 5, [&](int) {
        CUDA_TRY(cudaMemcpyAsync(d1.p, h.p, big, cudaMemcpyHostToDevice));
        return KV_OK;
    }, &s, err);
    if (st != KV_OK)
        return st;
    L.h2d_gbps = big / s / 1e9;
    st = time_median(0, 1, 5, [&](int) {
        CUDA_TRY(cudaMemcpyAsync(h.p, d0.p, big, cudaMemcpyDeviceToHost));
        return KV_OK;
    }, &s, err);
    if (st != KV_OK)
        return st;
    L.d2h_gbps = big / s / 1e9;
    const size_t small[] = {4096, 256 << 10, 2 << 20};
    double *lat[] = {&L.lat4k_us, &L.lat256k_us, &L.lat2m_us};
    for (int k = 0; k < 3; k++) {
        st = time_median(0, 5, 50, [&](int) {
            CUDA_TRY(cudaMemcpyAsync(d1.p, h.p, small[k], cudaMemcpyHostToDevice));
            return KV_OK;
        }, &s, err);
        if (st != KV_OK)
            return st;
        *lat[k] = s * 1e6;
    }
    out("limits    device copy of 1 GiB: %.0f GB/s (read + write)\n", L.copy_gbps);
    out("limits    pinned host copies of 1 GiB: H2D %.1f GB/s, D2H %.1f GB/s\n", L.h2d_gbps,
        L.d2h_gbps);
    out("limits    one pinned H2D copy: 4 KiB %.1f us, 256 KiB %.1f us, 2 MiB %.1f us\n",
        L.lat4k_us, L.lat256k_us, L.lat2m_us);
    fprintf(csv, "limits,device copy,1 GiB,%.0f,%.9f,%.3f,,\n", 2.0 * big, 2.0 * big / L.copy_gbps / 1e9,
            L.copy_gbps);
    fprintf(csv, "limits,pinned H2D,1 GiB,%.0f,%.9f,%.3f,,\n", (double)big, big / L.h2d_gbps / 1e9,
            L.h2d_gbps);
    fprintf(csv, "limits,pinned D2H,1 GiB,%.0f,%.9f,%.3f,,\n", (double)big, big / L.d2h_gbps / 1e9,
            L.d2h_gbps);
    for (int k = 0; k < 3; k++)
        fprintf(csv, "limits,pinned H2D copy latency,%zu bytes,%zu,%.9f,,,\n", small[k], small[k],
                *lat[k] * 1e-6);
    if ((st = bench_vmm_raw(err)) != KV_OK)
        return st;
    return bench_gemm(err);
}

/* ------------------------------------------------------------------------- kernels --- */

static kv_status bench_attention(kv_err *err)
{
    struct {
        const char *name;
        kv_strategy s;
        kvg_dtype dt;
        kv_chunk_layout layout;
    } cfgs[] = {{"contiguous (extent)", KV_CONTIGUOUS, KVG_BF16, KV_CHUNK_PER_LAYER},
                {"paged-16 (block table)", KV_PAGED, KVG_BF16, KV_CHUNK_PER_LAYER},
                {"chunk-pool (VMM range)", KV_CHUNK_POOL, KVG_BF16, KV_CHUNK_PER_LAYER},
                {"compressed fp8 paged-16", KV_COMPRESSED, KVG_FP8, KV_CHUNK_PER_LAYER}};
    const uint32_t batches[] = {32, 64, 128}, contexts[] = {1024, 4096};
    for (auto &c : cfgs)
        for (uint32_t B : batches)
            for (uint32_t ctx : contexts) {
                if ((uint64_t)B * ctx > 64 * 4096)
                    continue; /* at most 32 GiB of KV */
                uint64_t tb = 128 * 1024;
                uint64_t pool = (uint64_t)B * (ctx + 1024) * tb + (64ull << 20);
                kv_alloc_config ac = llama3_8b(c.s, pool, ctx + 16);
                setup su;
                kv_status st = make_setup(&su, ac, c.dt, B, ctx, err);
                if (st != KV_OK)
                    return st;
                std::vector<uint32_t> qs(B), qp(B, ctx - 1);
                std::vector<uint16_t> q((size_t)B * 32 * 128);
                rng r = {B * 7919u + ctx};
                for (auto &x : q)
                    x = float_to_bf16(rng_normal(&r));
                for (uint32_t i = 0; i < B; i++)
                    qs[i] = i;
                dev_buf<kvg_seqdesc> dd(su.descs);
                dev_buf<uint32_t> qsd(qs), qpd(qp);
                dev_buf<uint16_t> qd(q);
                dev_buf<float> o((size_t)B * 32 * 128);
                dev_buf<char> work(kvg_attention_work_bytes(&su.f, 32, B, ctx));
                double s = 0;
                st = time_median(0, 8, 32, [&](int it) {
                    return kvg_attention(&su.f, 32, it % 32, dd.p, qsd.p, qpd.p, B, ctx, qd.p, o.p,
                                         work.p, err);
                }, &s, err);
                if (st != KV_OK)
                    return st;
                double bytes = (double)B * ctx * 2 * 8 * 128 * (c.dt == KVG_FP8 ? 1 : 2);
                char param[64];
                snprintf(param, sizeof param, "batch %u context %u", B, ctx);
                row("attention", c.name, param, bytes, s, L.copy_gbps);
                /* tokens/s: what fp8 must match bf16 on */
                fprintf(csv, "attention tokens,%s,%s,%.0f,%.9f,%.3f,,\n", c.name, param,
                        (double)B * ctx, s, (double)B * ctx / s / 1e9);
            }
    return KV_OK;
}

/* The fused prefill attention of one 8192-token prompt (one layer, 32 query heads over 8 KV
 * heads), through each placement; FLOPs = 4 x head_dim x heads x the causal pairs; against the
 * measured bf16 matrix rate. */
static kv_status bench_prefill(kv_err *err)
{
    struct {
        const char *name;
        kv_strategy s;
    } cfgs[] = {{"contiguous (extent)", KV_CONTIGUOUS},
                {"paged-16 (block table)", KV_PAGED},
                {"chunk-pool (VMM range)", KV_CHUNK_POOL}};
    const uint32_t lens[] = {2048, 8192};
    for (auto &c : cfgs)
        for (uint32_t n : lens) {
            kv_alloc_config ac = llama3_8b(c.s, (uint64_t)(n + 1024) * 131072 + (64ull << 20), n + 16);
            setup su;
            kv_status st = make_setup(&su, ac, KVG_BF16, 1, n, err);
            if (st != KV_OK)
                return st;
            kvg_prefill_chunk ch = {0, 0, 0, n};
            std::vector<kvg_prefill_tile> tiles(kvg_prefill_max_tiles(n, 1));
            tiles.resize(kvg_prefill_tiles(&ch, 1, tiles.data()));
            std::vector<uint16_t> q((size_t)n * 32 * 128);
            rng r = {n};
            for (auto &x : q)
                x = float_to_bf16(rng_normal(&r));
            dev_buf<kvg_seqdesc> dd(su.descs);
            dev_buf<kvg_prefill_tile> td(tiles);
            dev_buf<uint16_t> qd(q), o(q.size());
            double s = 0;
            st = time_median(0, 3, 10, [&](int it) {
                return kvg_prefill_attention(&su.f, 32, it % 32, dd.p, td.p, (uint32_t)tiles.size(),
                                             qd.p, 32 * 128, o.p, 32 * 128, 0, err);
            }, &s, err);
            if (st != KV_OK)
                return st;
            double flops = 4.0 * 128 * 32 * ((double)n * (n + 1) / 2);
            out("prefill   %-30s %u tokens, one layer       %9.1f us %9.1f TFLOP/s  %5.1f%% of %.0f\n",
                c.name, n, s * 1e6, flops / s / 1e12, 100 * flops / s / 1e12 / L.gemm_tflops,
                L.gemm_tflops);
            fprintf(csv, "prefill attention,%s,%u tokens,%.0f,%.9f,%.3f TFLOP/s,%.1f TFLOP/s,%.2f\n",
                    c.name, n, flops, s, flops / s / 1e12, L.gemm_tflops,
                    100 * flops / s / 1e12 / L.gemm_tflops);
        }
    return KV_OK;
}

static kv_status bench_append(kv_err *err)
{
    struct {
        const char *name;
        kv_strategy s;
    } cfgs[] = {{"contiguous", KV_CONTIGUOUS}, {"paged-16", KV_PAGED}, {"chunk-pool", KV_CHUNK_POOL}};
    for (auto &c : cfgs)
        for (int prefill = 0; prefill < 2; prefill++) {
            uint32_t n = prefill ? 1 : 256, len = prefill ? 8192 : 1024;
            kv_alloc_config ac = llama3_8b(c.s, (uint64_t)n * (len + 1024) * 131072 + (64ull << 20), len + 16);
            setup su;
            kv_status st = make_setup(&su, ac, KVG_BF16, n, len, err);
            if (st != KV_OK)
                return st;
            uint32_t toks = prefill ? len : n;
            std::vector<uint32_t> sq(toks), ps(toks);
            for (uint32_t i = 0; i < toks; i++) {
                sq[i] = prefill ? 0 : i;
                ps[i] = prefill ? i : len - 1;
            }
            std::vector<uint16_t> src((size_t)toks * 32 * 2 * 1024);
            rng r = {toks};
            for (auto &x : src)
                x = float_to_bf16(rng_normal(&r));
            dev_buf<kvg_seqdesc> dd(su.descs);
            dev_buf<uint32_t> sqd(sq), psd(ps);
            dev_buf<uint16_t> srcd(src);
            double s = 0;
            st = time_median(0, 5, 20, [&](int) {
                return kvg_append(&su.f, 64, dd.p, sqd.p, psd.p, toks, srcd.p, err);
            }, &s, err);
            if (st != KV_OK)
                return st;
            char param[64];
            snprintf(param, sizeof param, prefill ? "prefill %u tokens" : "decode %u seqs", toks);
            row("append", c.name, param, 2.0 * toks * 131072, s, L.copy_gbps);
        }
    return KV_OK;
}

static kv_status bench_swap(kv_err *err)
{
    struct {
        const char *name;
        kv_strategy s;
        uint32_t block;
    } cfgs[] = {{"contiguous", KV_CONTIGUOUS, 0},  {"paged-16", KV_PAGED, 16},
                {"paged-64", KV_PAGED, 64},        {"paged-256", KV_PAGED, 256},
                {"chunk-pool per-layer", KV_CHUNK_POOL, 0}};
    const uint32_t sizes[] = {16, 128, 1024, 4096}; /* tokens: 2, 16, 128, 512 MiB */
    kvg_swapper *sw = NULL;
    kv_status st = kvg_swapper_create(600ull << 20, &sw, err);
    pinned_buf host(600ull << 20);
    if (st == KV_OK)
        st = host.alloc(err);
    for (auto &c : cfgs)
        for (uint32_t n : sizes) {
            if (st != KV_OK)
                break;
            kv_alloc_config ac = llama3_8b(c.s, (2ull << 30), 4096 + 256);
            if (c.block)
                ac.paged.block_tokens = c.block;
            setup su;
            if ((st = make_setup(&su, ac, KVG_BF16, 1, n, err)) != KV_OK)
                break;
            kv_placement pl;
            kv_alloc_placement(su.a, su.ids[0], &pl);
            kvg_seqdesc h;
            kvg_host_desc(su.a, su.ids[0], (uint64_t)(uintptr_t)host.p, &h);
            for (int mode = 0; mode < 2 && st == KV_OK; mode++)
                for (int dir = 0; dir < 2 && st == KV_OK; dir++) {
                    std::vector<double> ts; /* kvg_swap times itself with CUDA events */
                    kvg_swap_result res = {0, 0, 0};
                    for (int it = 0; it < 7 && st == KV_OK; it++) {
                        st = kvg_swap(sw, (kvg_swap_mode)mode, dir == 0, &su.descs[0],
                                      pl.kind == KV_PLACE_BLOCKS ? pl.block_table : NULL, &h, 64,
                                      su.f.row_bytes, &res, err);
                        if (it >= 2)
                            ts.push_back(res.seconds);
                    }
                    if (st != KV_OK)
                        break;
                    char name[80], param[64];
                    snprintf(name, sizeof name, "%s %s", c.name, mode ? "batched" : "per-copy");
                    snprintf(param, sizeof param, "%s %u tok %llu copies", dir == 0 ? "out" : "in",
                             n, (unsigned long long)res.copies);
                    row("swap", name, param, (double)res.bytes, median_of(ts),
                        dir == 0 ? L.d2h_gbps : L.h2d_gbps);
                }
        }
    kvg_swapper_destroy(&sw);
    return st;
}

static kv_status bench_vmm(kv_err *err)
{
    kv_alloc_config ac = llama3_8b(KV_CHUNK_POOL, 4ull << 30, 4096);
    kv_alloc *a = NULL;
    kvg_pool *p = NULL;
    kv_status st = kv_alloc_create(&ac, &a, err);
    if (st == KV_OK)
        st = kvg_pool_create(a, &p, err);
    for (int it = 0; it < 8 && st == KV_OK; it++) {
        kv_admit_req r = {4096, 4096, NULL, 0};
        kv_seq_id id;
        kvg_seqdesc d;
        if ((st = kv_alloc_admit(a, &r, &id, NULL)) != KV_OK)
            break;
        if ((st = kvg_pool_sync(p, a, id, &d, err)) != KV_OK)
            break;
        kv_alloc_free(a, id);
        st = kvg_pool_release(p, id, err);
    }
    if (st == KV_OK) {
        const kvg_pool_stats *s = kvg_pool_stats_of(p);
        uint64_t chunks = s->device_bytes / (2ull << 20);
        cost_row("vmm", "pool: cuMemCreate per 2 MiB chunk (creation / chunks)",
                 s->create_s / chunks * 1e6, L.create_us);
        char what[96];
        snprintf(what, sizeof what, "pool: cuMemMap + cuMemSetAccess per chunk (%llu)",
                 (unsigned long long)s->maps);
        cost_row("vmm", what, s->map_s / s->maps * 1e6, L.map_us + L.access_us);
        snprintf(what, sizeof what, "pool: cuMemUnmap per chunk (%llu)",
                 (unsigned long long)s->unmaps);
        cost_row("vmm", what, s->unmap_s / s->unmaps * 1e6, L.unmap_us);
    }
    kvg_pool_destroy(&p);
    kv_alloc_destroy(&a);
    return st;
}

/* --------------------------------------------------------------------------- model --- */

/* DESIGN.md section 4: plain PyTorch on the H200, Llama-3-8B shape, random bf16 weights;
 * decode with contiguous KV and SDPA, the whole step replayed as a CUDA graph; prefill of one
 * sequence with causal SDPA (flash). Targets: decode within 10%, prefill within 15%. */
static const struct ref_point {
    uint32_t batch, context, prefill; /* prefill: tokens of one sequence's prompt (batch 0) */
    double ref_ms, tolerance;
    bool target;
} REFS[] = {
    {1, 1024, 0, 4.72, 0.10, true},    {8, 1024, 0, 5.16, 0.10, true},
    {32, 1024, 0, 5.91, 0.10, true},   {64, 1024, 0, 6.99, 0.10, true},
    {128, 1024, 0, 10.44, 0.10, true}, {32, 4096, 0, 8.74, 0.10, true},
    {256, 512, 0, 11.82, 0.10, true},  {0, 0, 512, 13.2, 0.15, false},
    {0, 0, 2048, 51.5, 0.15, true},    {0, 0, 8192, 231.1, 0.15, true},
};

static kv_status bench_model(const char *dir, uint32_t layers, kv_err *err)
{
    kv_model m;
    kv_status st = kv_model_load("Llama-3-8B", &m, err);
    if (st != KV_OK)
        return st;
    char path[1024];
    snprintf(path, sizeof path, "%s/model.csv", dir);
    FILE *mcsv = fopen(path, "w");
    if (mcsv == NULL)
        return kv_errorf(err, KV_ERR_IO, "bench: %s: cannot write", path);
    fprintf(mcsv, "placement,kind,batch,context,prefill_tokens,measured_ms,reference_ms,ratio,"
                  "tolerance,met\n");
    kvg_model *M = NULL;
    st = kvg_model_create(&m, layers, 8192, 256, 8192, 1, &M, err);
    double scale = M ? (double)m.n_layers / kvg_model_layers(M) : 1;
    if (st == KV_OK)
        out("model     %s, %u of %u layers run (times scaled by %.2f), weights %.2f GiB; "
            "reference: PyTorch on the H200 (DESIGN.md section 4)\n",
            m.name, kvg_model_layers(M), m.n_layers, scale,
            kvg_model_weight_bytes(M) / 1073741824.0);
    struct {
        const char *name;
        kv_strategy s;
    } cfgs[] = {{"contiguous", KV_CONTIGUOUS}, {"paged-16", KV_PAGED}};
    for (auto &c : cfgs) {
        if (st != KV_OK)
            break;
        kv_shape sh = kv_model_shape(&m, 1);
        kv_alloc_config ac;
        kv_alloc_config_default(&ac, c.s, &sh, 20ull << 30);
        ac.watermark = 0;
        ac.max_seqs = 260;
        ac.max_seq_tokens = 8192 + 16;
        ac.paged.prefix_caching = false;
        ac.contiguous.reserve = KV_RESERVE_ORACLE;
        kv_alloc *a = NULL;
        kvg_pool *pool = NULL;
        kvg_format f;
        kvg_seqdesc *descs_d = NULL;
        std::vector<kvg_seqdesc> descs(ac.max_seqs, kvg_seqdesc{});
        st = kv_alloc_create(&ac, &a, err);
        if (st == KV_OK)
            st = kvg_format_of(&ac, KVG_BF16, &f, err);
        if (st == KV_OK)
            st = kvg_pool_create(a, &pool, err);
        if (st == KV_OK && cudaMalloc(&descs_d, descs.size() * sizeof(kvg_seqdesc)) != cudaSuccess)
            st = kv_errorf(err, KV_ERR_NOMEM, "bench: descriptors");
        uint32_t nt = kv_shape_n_tensors(&sh);
        for (const ref_point &R : REFS) {
            if (st != KV_OK)
                break;
            if (R.prefill && c.s != KV_CONTIGUOUS)
                continue;
            std::vector<kv_seq_id> ids;
            std::vector<kv_step_seq> seqs;
            uint32_t n_seqs = R.prefill ? 1 : R.batch;
            for (uint32_t i = 0; i < n_seqs && st == KV_OK; i++) {
                uint32_t n = R.prefill ? R.prefill : R.context;
                kv_admit_req r = {n, R.prefill ? n : n + 1, NULL, 0};
                kv_seq_id id;
                if ((st = kv_alloc_admit(a, &r, &id, NULL)) != KV_OK) {
                    st = kv_errorf(err, st, "bench: admit %u tokens: %s", n, kv_status_str(st));
                    break;
                }
                ids.push_back(id);
                if (!R.prefill && (st = kv_alloc_append(a, id, 1)) != KV_OK) {
                    st = kv_errorf(err, st, "bench: append: %s", kv_status_str(st));
                    break;
                }
                if ((st = kvg_pool_sync(pool, a, id, &descs[id], err)) == KV_OK)
                    st = kvg_fill_random(&f, &descs[id], nt, id, err);
                seqs.push_back(R.prefill ? kv_step_seq{id, 0, R.prefill}
                                         : kv_step_seq{id, R.context, 1});
            }
            if (st == KV_OK)
                CUDA_TRY(cudaMemcpy(descs_d, descs.data(), descs.size() * sizeof(kvg_seqdesc),
                                    cudaMemcpyHostToDevice));
            std::vector<double> ts;
            int warm = R.prefill ? 2 : 5, iters = R.prefill ? 7 : 30;
            for (int it = 0; it < warm + iters && st == KV_OK; it++) {
                float ms = 0;
                st = kvg_model_step(M, &f, descs_d, descs.data(), seqs.data(),
                                    (uint32_t)seqs.size(), &ms, err);
                if (it >= warm)
                    ts.push_back(ms * scale);
            }
            for (kv_seq_id id : ids)
                kv_alloc_free(a, id);
            if (st != KV_OK)
                break;
            double t = median_of(ts), ratio = t / R.ref_ms;
            bool met = ratio <= 1 + R.tolerance;
            char what[64];
            if (R.prefill)
                snprintf(what, sizeof what, "prefill %u tokens", R.prefill);
            else
                snprintf(what, sizeof what, "decode batch %u context %u", R.batch, R.context);
            out("model     %-10s %-30s %8.2f ms  PyTorch %7.2f ms  %5.2fx  %s\n", c.name, what,
                t, R.ref_ms, ratio,
                !R.target ? "(no target)" : met ? (ratio <= 1 ? "met (faster)" : "met") : "MISSED");
            if (R.batch == 1) {
                uint32_t ns = 0, ng = 0;
                kvg_model_gemv_choices(M, &ns, &ng);
                out("model     (batch 1: %u of %u GEMM shapes timed faster as kvg_gemv_bf16 than "
                    "cuBLAS)\n", ng, ns);
            }
            fprintf(mcsv, "%s,%s,%u,%u,%u,%.4f,%.2f,%.4f,%.2f,%s\n", c.name,
                    R.prefill ? "prefill" : "decode", R.batch, R.context, R.prefill, t, R.ref_ms,
                    ratio, R.tolerance, !R.target ? "" : met ? "yes" : "no");
            fflush(mcsv);
        }
        cudaFree(descs_d);
        kvg_pool_destroy(&pool);
        kv_alloc_destroy(&a);
    }
    kvg_model_destroy(&M);
    fclose(mcsv);
    return st;
}

/* ---------------------------------------------------------------------------- main --- */

int kvgpu_bench_main(int argc, char **argv)
{
    const char *dir = NULL;
    static const char *const SECTIONS[] = {"attention", "append", "swap", "vmm", "model", "prefill"};
    bool want[6] = {false, false, false, false, false, false}, any = false;
    uint32_t layers = 0;
    for (int i = 1; i < argc; i++) {
        bool known = false;
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            dir = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--layers") == 0 && i + 1 < argc) {
            layers = (uint32_t)atoi(argv[++i]);
            continue;
        }
        for (int k = 0; k < 6; k++)
            if (strcmp(argv[i], SECTIONS[k]) == 0)
                known = want[k] = any = true;
        if (!known) {
            fprintf(stderr, "usage: kvgpu bench [-o DIR] [--layers K] "
                            "[attention] [prefill] [append] [swap] [vmm] [model]\n"
                            "  (limits are always measured first; no section names: all)\n");
            return 2;
        }
    }
    for (int k = 0; k < 6 && !any; k++)
        want[k] = true;
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        fprintf(stderr, "kvgpu bench: no CUDA device\n");
        return 1;
    }
    char slug[64], dflt[160];
    device_slug(prop.name, slug, sizeof slug);
    if (dir == NULL) {
        snprintf(dflt, sizeof dflt, "results/gpu/%s", slug);
        dir = dflt;
        mkdir("results", 0777);
        mkdir("results/gpu", 0777);
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "kvgpu bench: %s: cannot create\n", dir);
        return 2;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/bench.csv", dir);
    csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/bench.log", dir);
    log_file = fopen(path, "w");
    if (csv == NULL || log_file == NULL) {
        fprintf(stderr, "kvgpu bench: %s: cannot write\n", dir);
        return 2;
    }
    fprintf(csv, "section,config,param,bytes,seconds,gb_per_s,limit_gb_per_s,percent_of_limit\n");
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    out("kvgpu bench on %s (%d SMs, %.1f GiB, L2 %d MiB; driver API %d, runtime %d) -> %s; "
        "Llama-3-8B KV shape\n",
        prop.name, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0,
        prop.l2CacheSize >> 20, drv, rt, dir);
    kv_err err = {{0}};
    kv_status st = bench_limits(&err);
    if (st == KV_OK && want[0])
        st = bench_attention(&err);
    if (st == KV_OK && want[5])
        st = bench_prefill(&err);
    if (st == KV_OK && want[1])
        st = bench_append(&err);
    if (st == KV_OK && want[2])
        st = bench_swap(&err);
    if (st == KV_OK && want[3])
        st = bench_vmm(&err);
    if (st == KV_OK && want[4])
        st = bench_model(dir, layers, &err);
    if (st != KV_OK)
        out("kvgpu bench: %s\n", err.msg);
    fclose(csv);
    fclose(log_file);
    return st != KV_OK;
}
