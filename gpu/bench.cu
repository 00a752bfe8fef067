/* bench.cu — `kvgpu bench [-o DIR]`: the figures of the kvgpu issue, each against the measured
 * limit of DESIGN.md §4 (H100 80GB: device copy 3.0 TB/s read + write; pinned host copies
 * 55 GB/s; cuMemMap + cuMemSetAccess 38.2 us and cuMemUnmap 24.5 us per 2 MiB chunk).
 *
 *   attention  decode attention of one layer for a batch, KV read through each placement kind
 *              (contiguous extent, paged block table, chunk-pool virtual range, compressed fp8
 *              blocks); bytes = the K and V rows read; layers rotate so L2 holds none of them
 *   append     KV append of a decode batch (one token for 256 sequences) and of one 8192-token
 *              prefill; bytes = source read + rows written
 *   swap       one sequence out and in, per-copy (one cudaMemcpyAsync per block per tensor, as
 *              vLLM) and batched (gather kernel + one copy), for every strategy and paged block
 *              size, over sizes from 2 MiB to 512 MiB
 *   vmm        map and unmap cost per chunk, from the pool's own counters
 * Llama-3-8B's KV shape (32 layers, 8 KV heads, 32 query heads, head_dim 128, 128 KiB a token).
 * Medians of repeated runs timed with CUDA events. */
#include "kvgpu.h"
#include "cuda_check.h"
#include "gpu_util.h"

#include <algorithm>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <vector>

static const double COPY_TBPS = 3.0, HOST_GBPS = 55.0, MAP_US = 38.2, UNMAP_US = 24.5;

static FILE *csv;

static void row(const char *section, const char *config, const char *param, double bytes,
                double seconds, double limit_gbps)
{
    double gbps = bytes / seconds / 1e9;
    printf("%-9s %-30s %-26s %10.2f MiB %9.1f us %9.1f GB/s  %5.1f%% of %.0f\n", section, config,
           param, bytes / 1048576.0, seconds * 1e6, gbps, 100 * gbps / limit_gbps, limit_gbps);
    fprintf(csv, "%s,%s,%s,%.0f,%.9f,%.3f,%.1f,%.2f\n", section, config, param, bytes, seconds,
            gbps, limit_gbps, 100 * gbps / limit_gbps);
}

static double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
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
                dev_buf<float> out((size_t)B * 32 * 128);
                dev_buf<char> work(kvg_attention_work_bytes(&su.f, 32, B, ctx));
                cudaEvent_t e0, e1;
                CUDA_TRY(cudaEventCreate(&e0));
                CUDA_TRY(cudaEventCreate(&e1));
                std::vector<double> ts;
                for (int it = 0; it < 40; it++) {
                    CUDA_TRY(cudaEventRecord(e0));
                    st = kvg_attention(&su.f, 32, it % 32, dd.p, qsd.p, qpd.p, B, ctx, qd.p, out.p,
                                       work.p, err);
                    if (st != KV_OK)
                        return st;
                    CUDA_TRY(cudaEventRecord(e1));
                    CUDA_TRY(cudaEventSynchronize(e1));
                    float ms;
                    CUDA_TRY(cudaEventElapsedTime(&ms, e0, e1));
                    if (it >= 8)
                        ts.push_back(ms * 1e-3);
                }
                cudaEventDestroy(e0);
                cudaEventDestroy(e1);
                double bytes = (double)B * ctx * 2 * 8 * 128 * (c.dt == KVG_FP8 ? 1 : 2);
                char param[64];
                snprintf(param, sizeof param, "batch %u context %u", B, ctx);
                row("attention", c.name, param, bytes, median(ts), COPY_TBPS * 1000);
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
            cudaEvent_t e0, e1;
            CUDA_TRY(cudaEventCreate(&e0));
            CUDA_TRY(cudaEventCreate(&e1));
            std::vector<double> ts;
            for (int it = 0; it < 25; it++) {
                CUDA_TRY(cudaEventRecord(e0));
                if ((st = kvg_append(&su.f, 64, dd.p, sqd.p, psd.p, toks, srcd.p, err)) != KV_OK)
                    return st;
                CUDA_TRY(cudaEventRecord(e1));
                CUDA_TRY(cudaEventSynchronize(e1));
                float ms;
                CUDA_TRY(cudaEventElapsedTime(&ms, e0, e1));
                if (it >= 5)
                    ts.push_back(ms * 1e-3);
            }
            cudaEventDestroy(e0);
            cudaEventDestroy(e1);
            char param[64];
            snprintf(param, sizeof param, prefill ? "prefill %u tokens" : "decode %u seqs", toks);
            row("append", c.name, param, 2.0 * toks * 131072, median(ts), COPY_TBPS * 1000);
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
                    std::vector<double> ts;
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
                    row("swap", name, param, (double)res.bytes, median(ts), HOST_GBPS);
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
        printf("vmm       cuMemCreate per 2 MiB chunk (pool creation / chunks) %8.1f us\n",
               s->create_s / chunks * 1e6);
        printf("vmm       cuMemMap + cuMemSetAccess per chunk %8.1f us (limit %.1f), %llu maps\n",
               s->map_s / s->maps * 1e6, MAP_US, (unsigned long long)s->maps);
        printf("vmm       cuMemUnmap per chunk                %8.1f us (limit %.1f), %llu unmaps\n",
               s->unmap_s / s->unmaps * 1e6, UNMAP_US, (unsigned long long)s->unmaps);
        fprintf(csv, "vmm,create per chunk,%llu chunks,%.0f,%.9f,,,\n", (unsigned long long)chunks,
                2097152.0, s->create_s / chunks);
        fprintf(csv, "vmm,map+setaccess per chunk,%llu maps,%.0f,%.9f,,%.1f us,%.1f\n",
                (unsigned long long)s->maps, 2097152.0, s->map_s / s->maps, MAP_US,
                100 * MAP_US / (s->map_s / s->maps * 1e6));
        fprintf(csv, "vmm,unmap per chunk,%llu unmaps,%.0f,%.9f,,%.1f us,%.1f\n",
                (unsigned long long)s->unmaps, 2097152.0, s->unmap_s / s->unmaps, UNMAP_US,
                100 * UNMAP_US / (s->unmap_s / s->unmaps * 1e6));
    }
    kvg_pool_destroy(&p);
    kv_alloc_destroy(&a);
    return st;
}

int kvgpu_bench_main(int argc, char **argv)
{
    const char *dir = ".";
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            dir = argv[++i];
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "kvgpu bench: %s: cannot create\n", dir);
        return 2;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/bench.csv", dir);
    csv = fopen(path, "w");
    if (csv == NULL) {
        fprintf(stderr, "kvgpu bench: %s: cannot write\n", path);
        return 2;
    }
    fprintf(csv, "section,config,param,bytes,seconds,gb_per_s,limit_gb_per_s,percent_of_limit\n");
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        fprintf(stderr, "kvgpu bench: no CUDA device\n");
        return 1;
    }
    printf("kvgpu bench on %s (%d SMs), Llama-3-8B KV shape\n", prop.name,
           prop.multiProcessorCount);
    kv_err err = {{0}};
    kv_status st = bench_attention(&err);
    if (st == KV_OK)
        st = bench_append(&err);
    if (st == KV_OK)
        st = bench_swap(&err);
    if (st == KV_OK)
        st = bench_vmm(&err);
    fclose(csv);
    if (st != KV_OK) {
        fprintf(stderr, "kvgpu bench: %s\n", err.msg);
        return 1;
    }
    return 0;
}
