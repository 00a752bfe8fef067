/* pool.cu — device memory for the allocator's pool: a cudaMalloc arena, or CUDA VMM chunks
 * mapped into per-slot virtual ranges. See kvgpu.h. */
#include "kvgpu.h"
#include "cuda_check.h"

#include <cuda.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------ */

struct kvg_pool {
    kv_alloc_config cfg;
    kvg_pool_stats st;
    uint64_t row_bytes, token_bytes;
    /* arena */
    void *arena;
    /* block tables: max_seqs x max_blocks on the device, a host mirror written by TABLE effects
     * and the entries [dirty_lo, dirty_hi) of each sequence written since the last flush */
    uint32_t *tables;
    uint32_t *mirror, *dirty_lo, *dirty_hi, *dirty, n_dirty;
    uint32_t max_blocks;
    /* VMM */
    CUmemGenericAllocationHandle *chunks;
    uint32_t n_chunks, n_tensors, stride; /* stride: chunk places per series */
    CUdeviceptr va;
    uint64_t va_bytes, slot_bytes;
    uint32_t *mapped; /* max_seqs x n_tensors x stride: chunk id at each place, or NONE */
    CUmemAccessDesc access;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t kvg_pool_arena(const kvg_pool *p)
{
    return (uint64_t)(uintptr_t)p->arena;
}

const kvg_pool_stats *kvg_pool_stats_of(const kvg_pool *p)
{
    return &p->st;
}

static kv_status chunks_create(kvg_pool *p, kv_err *err)
{
    CUdevice dev;
    int ord = 0;
    CUDA_TRY(cudaGetDevice(&ord));
    CU_TRY(cuDeviceGet(&dev, ord));
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = ord;
    size_t gran = 0;
    CU_TRY(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    uint64_t cb = p->cfg.chunk.chunk_bytes;
    if (cb % gran != 0)
        return kv_errorf(err, KV_ERR_INPUT,
                         "chunk-pool on CUDA VMM: chunk_bytes %llu is not a multiple of the "
                         "device's granularity %zu",
                         (unsigned long long)cb, gran);
    p->n_tensors = p->cfg.chunk.layout == KV_CHUNK_PER_LAYER ? kv_shape_n_tensors(&p->cfg.shape)
                                                            : 1;
    uint64_t series_token = p->n_tensors == 1 ? p->token_bytes : p->row_bytes;
    if (cb % p->row_bytes != 0)
        return kv_errorf(err, KV_ERR_INPUT,
                         "chunk-pool on CUDA VMM: chunk_bytes %llu is not a multiple of a row "
                         "(%llu bytes)",
                         (unsigned long long)cb, (unsigned long long)p->row_bytes);
    uint64_t chunk_tokens = cb / series_token;
    p->stride = (uint32_t)((p->cfg.max_seq_tokens + chunk_tokens - 1) / chunk_tokens);
    p->n_chunks = (uint32_t)(p->cfg.pool_bytes / cb);
    p->chunks = (CUmemGenericAllocationHandle *)calloc(p->n_chunks, sizeof *p->chunks);
    size_t places = (size_t)p->cfg.max_seqs * p->n_tensors * p->stride;
    p->mapped = (uint32_t *)malloc(places * sizeof *p->mapped);
    if (!p->chunks || !p->mapped)
        return kv_errorf(err, KV_ERR_NOMEM, "kvgpu: out of host memory");
    memset(p->mapped, 0xff, places * sizeof *p->mapped);
    for (uint32_t i = 0; i < p->n_chunks; i++)
        CU_TRY(cuMemCreate(&p->chunks[i], cb, &prop, 0));
    p->slot_bytes = (uint64_t)p->n_tensors * p->stride * cb;
    p->va_bytes = p->slot_bytes * p->cfg.max_seqs;
    CU_TRY(cuMemAddressReserve(&p->va, p->va_bytes, cb, 0, 0));
    p->access.location = prop.location;
    p->access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    p->st.device_bytes = (uint64_t)p->n_chunks * cb;
    return KV_OK;
}

kv_status kvg_pool_create(const kv_alloc *a, kvg_pool **out, kv_err *err)
{
    *out = NULL;
    if (kv_alloc_n_groups(a) > 1) /* one block table per sequence is all the device side has */
        return kv_errorf(err, KV_ERR_INPUT,
                         "kvgpu: %u layer groups: kvgpu realizes one layer group only (one block "
                         "table per sequence); replay layer groups with kvsim",
                         kv_alloc_n_groups(a));
    kvg_pool *p = (kvg_pool *)calloc(1, sizeof *p);
    if (p == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "kvgpu: out of host memory");
    p->cfg = *kv_alloc_config_of(a);
    p->token_bytes = kv_alloc_token_bytes(a);
    p->row_bytes = p->token_bytes / kv_shape_n_tensors(&p->cfg.shape);
    double t0 = now_s();
    kv_status st = KV_OK;
    if (p->cfg.strategy == KV_CHUNK_POOL) {
        st = chunks_create(p, err);
    } else {
        cudaError_t e = cudaMalloc(&p->arena, p->cfg.pool_bytes);
        if (e != cudaSuccess)
            st = kv_errorf(err, KV_ERR_NOMEM, "cudaMalloc of the %llu-byte pool: %s",
                           (unsigned long long)p->cfg.pool_bytes, cudaGetErrorString(e));
        p->st.device_bytes = p->cfg.pool_bytes;
        if (st == KV_OK && p->cfg.strategy != KV_CONTIGUOUS) {
            p->max_blocks = p->cfg.max_seq_tokens / p->cfg.paged.block_tokens + 2;
            e = cudaMalloc(&p->tables,
                           (size_t)p->cfg.max_seqs * p->max_blocks * sizeof *p->tables);
            if (e != cudaSuccess)
                st = kv_errorf(err, KV_ERR_NOMEM, "cudaMalloc of block tables: %s",
                               cudaGetErrorString(e));
            size_t n = (size_t)p->cfg.max_seqs * p->max_blocks;
            p->mirror = (uint32_t *)malloc(n * sizeof *p->mirror);
            p->dirty_lo = (uint32_t *)malloc(p->cfg.max_seqs * sizeof *p->dirty_lo);
            p->dirty_hi = (uint32_t *)calloc(p->cfg.max_seqs, sizeof *p->dirty_hi);
            p->dirty = (uint32_t *)malloc(p->cfg.max_seqs * sizeof *p->dirty);
            if (st == KV_OK && (!p->mirror || !p->dirty_lo || !p->dirty_hi || !p->dirty))
                st = kv_errorf(err, KV_ERR_NOMEM, "kvgpu: out of host memory");
        }
    }
    if (st == KV_OK)
        st = cuda_sync(err, "creating the pool");
    p->st.create_s = now_s() - t0;
    if (st != KV_OK) {
        kvg_pool_destroy(&p);
        return st;
    }
    *out = p;
    return KV_OK;
}

void kvg_pool_destroy(kvg_pool **pp)
{
    kvg_pool *p = pp ? *pp : NULL;
    if (p == NULL)
        return;
    if (p->va) {
        for (uint32_t s = 0; s < p->cfg.max_seqs; s++)
            kvg_pool_release(p, s, NULL);
        cuMemAddressFree(p->va, p->va_bytes);
    }
    for (uint32_t i = 0; p->chunks && i < p->n_chunks; i++)
        if (p->chunks[i])
            cuMemRelease(p->chunks[i]);
    cudaFree(p->arena);
    cudaFree(p->tables);
    free(p->mirror);
    free(p->dirty_lo);
    free(p->dirty_hi);
    free(p->dirty);
    free(p->chunks);
    free(p->mapped);
    free(p);
    *pp = NULL;
}

/* ------------------------------------------------------------------------------------------ */

static CUdeviceptr place_va(const kvg_pool *p, kv_seq_id s, uint32_t t, uint32_t i)
{
    return p->va + s * p->slot_bytes + ((uint64_t)t * p->stride + i) * p->cfg.chunk.chunk_bytes;
}

static kv_status unmap_place(kvg_pool *p, kv_seq_id s, uint32_t t, uint32_t i, kv_err *err)
{
    uint32_t *m = &p->mapped[((size_t)s * p->n_tensors + t) * p->stride + i];
    if (*m == UINT32_MAX)
        return KV_OK;
    double t0 = now_s();
    CU_TRY(cuMemUnmap(place_va(p, s, t, i), p->cfg.chunk.chunk_bytes));
    p->st.unmap_s += now_s() - t0;
    p->st.unmaps++;
    p->st.mapped_chunks--;
    *m = UINT32_MAX;
    return KV_OK;
}

static kv_status map_place(kvg_pool *p, kv_seq_id s, uint32_t t, uint32_t i, uint32_t id,
                           kv_err *err)
{
    uint32_t *m = &p->mapped[((size_t)s * p->n_tensors + t) * p->stride + i];
    if (*m == id)
        return KV_OK;
    kv_status st = unmap_place(p, s, t, i, err);
    if (st != KV_OK)
        return st;
    if (id >= p->n_chunks)
        return kv_errorf(err, KV_CORRUPT, "kvgpu: chunk id %u of %u", id, p->n_chunks);
    CUdeviceptr va = place_va(p, s, t, i);
    double t0 = now_s();
    CU_TRY(cuMemMap(va, p->cfg.chunk.chunk_bytes, 0, p->chunks[id], 0));
    CU_TRY(cuMemSetAccess(va, p->cfg.chunk.chunk_bytes, &p->access, 1));
    p->st.map_s += now_s() - t0;
    p->st.maps++;
    p->st.mapped_chunks++;
    *m = id;
    return KV_OK;
}

kv_status kvg_pool_release(kvg_pool *p, kv_seq_id s, kv_err *err)
{
    if (p->va == 0)
        return KV_OK;
    for (uint32_t t = 0; t < p->n_tensors; t++)
        for (uint32_t i = 0; i < p->stride; i++) {
            kv_status st = unmap_place(p, s, t, i, err);
            if (st != KV_OK)
                return st;
        }
    return KV_OK;
}

kv_status kvg_pool_sync(kvg_pool *p, const kv_alloc *a, kv_seq_id s, kvg_seqdesc *d,
                        kv_err *err)
{
    kv_placement pl;
    kv_status st = kv_alloc_placement(a, s, &pl);
    if (st != KV_OK)
        return kv_errorf(err, st, "kvgpu: no placement for sequence %u", s);
    if (pl.kind == KV_PLACE_BLOCKS) {
        if (pl.n_blocks > p->max_blocks)
            return kv_errorf(err, KV_CORRUPT, "kvgpu: %u blocks, table holds %u", pl.n_blocks,
                             p->max_blocks);
        CUDA_TRY(cudaMemcpy(p->tables + (size_t)s * p->max_blocks, pl.block_table,
                            pl.n_blocks * sizeof *p->tables, cudaMemcpyHostToDevice));
    } else if (pl.kind == KV_PLACE_CHUNKS) {
        for (uint32_t t = 0; t < pl.n_chunk_tensors; t++)
            for (uint32_t i = 0; i < p->stride; i++) {
                st = i < pl.n_chunks
                         ? map_place(p, s, t, i, pl.chunk_ids[(size_t)t * pl.chunk_stride + i], err)
                         : unmap_place(p, s, t, i, err);
                if (st != KV_OK)
                    return st;
            }
    }
    return kvg_pool_describe(p, a, s, d, err);
}

kv_status kvg_pool_time_maps(kv_alloc *a, kvg_pool *p, uint32_t seq_tokens, uint32_t rounds,
                             kv_err *err)
{
    for (uint32_t it = 0; it < rounds; it++) {
        kv_admit_req r = {seq_tokens, seq_tokens, NULL, 0};
        kv_seq_id id;
        kvg_seqdesc d;
        kv_status st = kv_alloc_admit(a, &r, &id, NULL);
        if (st != KV_OK)
            return kv_errorf(err, st, "map timing: admit %u tokens: %s", seq_tokens,
                             kv_status_str(st));
        st = kvg_pool_sync(p, a, id, &d, err); /* maps */
        kv_alloc_free(a, id);
        if (st == KV_OK)
            st = kvg_pool_release(p, id, err); /* unmaps */
        if (st != KV_OK)
            return st;
    }
    return KV_OK;
}

uint64_t kvg_host_desc(const kv_alloc *a, kv_seq_id s, uint64_t host_base, kvg_seqdesc *d)
{
    kv_placement pl;
    KV_ASSERT(kv_alloc_placement(a, s, &pl) == KV_OK);
    uint64_t tb = kv_alloc_token_bytes(a);
    uint32_t n_tensors = kv_shape_n_tensors(&kv_alloc_config_of(a)->shape);
    uint64_t rb = tb / n_tensors;
    memset(d, 0, sizeof *d);
    d->base = host_base;
    d->n_tokens = pl.n_tokens;
    if (pl.kind == KV_PLACE_BLOCKS) { /* blocks one after another, same inner layout */
        d->unit_tokens = pl.block_tokens;
        d->unit_bytes = pl.block_bytes;
        d->tensor_stride = (uint64_t)pl.block_tokens * rb;
        d->token_stride = rb;
        return (uint64_t)pl.n_blocks * pl.block_bytes;
    }
    d->unit_tokens = KVG_EXTENT_UNIT;
    if (pl.kind == KV_PLACE_CHUNKS && pl.n_chunk_tensors > 1) { /* tensor after tensor */
        d->tensor_stride = (uint64_t)pl.n_tokens * rb;
        d->token_stride = rb;
    } else { /* token-major */
        d->tensor_stride = rb;
        d->token_stride = tb;
    }
    return (uint64_t)pl.n_tokens * tb;
}

/* ------------------------------------------------------------------- effects applied --- */

static kv_status table_write(kvg_pool *p, kv_seq_id s, uint32_t i, uint32_t b, kv_err *err)
{
    if (p->mirror == NULL || s >= p->cfg.max_seqs || i >= p->max_blocks)
        return kv_errorf(err, KV_CORRUPT, "kvgpu: table entry %u of sequence %u out of range", i,
                         s);
    p->mirror[(size_t)s * p->max_blocks + i] = b == KV_FX_NO_UNIT ? KV_BLOCK_NONE : b;
    if (p->dirty_hi[s] == 0) { /* clean until now */
        p->dirty[p->n_dirty++] = s;
        p->dirty_lo[s] = i;
        p->dirty_hi[s] = i + 1;
    } else {
        p->dirty_lo[s] = i < p->dirty_lo[s] ? i : p->dirty_lo[s];
        p->dirty_hi[s] = i + 1 > p->dirty_hi[s] ? i + 1 : p->dirty_hi[s];
    }
    return KV_OK;
}

kv_status kvg_pool_apply(kvg_pool *p, const kv_effect *e, kv_err *err)
{
    switch ((kv_effect_kind)e->kind) {
    case KV_FX_MAP:
        if (p->va == 0)
            return kv_errorf(err, KV_CORRUPT, "kvgpu: a chunk map on a pool without chunks");
        return map_place(p, e->seq, e->series, e->index, e->dst, err);
    case KV_FX_UNMAP:
        if (p->va == 0)
            return kv_errorf(err, KV_CORRUPT, "kvgpu: a chunk unmap on a pool without chunks");
        return unmap_place(p, e->seq, e->series, e->index, err);
    case KV_FX_TABLE: return table_write(p, e->seq, e->index, e->dst, err);
    case KV_FX_DROP: /* the window left a block: its entry is gone; an eviction moves nothing */
        return e->cause == KV_CAUSE_WINDOW ? table_write(p, e->seq, e->index, KV_FX_NO_UNIT, err)
                                           : KV_OK;
    case KV_FX_COPY:
    case KV_FX_TRANSFER:
    case KV_FX_N_KINDS: break;
    }
    return KV_OK; /* copies and transfers are the caller's (they need streams and the host tier) */
}

kv_status kvg_pool_flush(kvg_pool *p, kv_err *err)
{
    if (p->n_dirty == 0)
        return KV_OK;
    for (uint32_t k = 0; k < p->n_dirty; k++) {
        kv_seq_id s = p->dirty[k];
        size_t at = (size_t)s * p->max_blocks + p->dirty_lo[s];
        CUDA_TRY(cudaMemcpyAsync(p->tables + at, p->mirror + at,
                                 (p->dirty_hi[s] - p->dirty_lo[s]) * sizeof *p->tables,
                                 cudaMemcpyHostToDevice));
        p->dirty_hi[s] = 0;
    }
    p->n_dirty = 0;
    /* From pageable memory on the legacy stream, the copies may still be in flight when the
     * calls return, and the swap engine's and the executor's streams do not wait for that
     * stream: finish them here, so that every later kernel reads the tables as written. */
    CUDA_TRY(cudaStreamSynchronize(0));
    return KV_OK;
}

const uint32_t *kvg_pool_table(const kvg_pool *p, kv_seq_id s)
{
    return p->tables ? p->tables + (size_t)s * p->max_blocks : NULL;
}

const uint32_t *kvg_pool_mirror(const kvg_pool *p, kv_seq_id s)
{
    return p->mirror ? p->mirror + (size_t)s * p->max_blocks : NULL;
}

kv_status kvg_pool_describe(const kvg_pool *p, const kv_alloc *a, kv_seq_id s, kvg_seqdesc *d,
                            kv_err *err)
{
    kv_placement pl;
    kv_status st = kv_alloc_placement(a, s, &pl);
    if (st != KV_OK)
        return kv_errorf(err, st, "kvgpu: no placement for sequence %u", s);
    memset(d, 0, sizeof *d);
    d->n_tokens = pl.n_tokens;
    switch (pl.kind) {
    case KV_PLACE_EXTENT:
        d->base = (uint64_t)(uintptr_t)p->arena + pl.offset_bytes;
        d->unit_tokens = KVG_EXTENT_UNIT;
        d->tensor_stride = p->row_bytes;
        d->token_stride = p->token_bytes;
        return KV_OK;
    case KV_PLACE_BLOCKS:
        if (pl.n_blocks > p->max_blocks)
            return kv_errorf(err, KV_CORRUPT, "kvgpu: %u blocks, table holds %u", pl.n_blocks,
                             p->max_blocks);
        d->base = (uint64_t)(uintptr_t)p->arena;
        d->table = kvg_pool_table(p, s);
        d->unit_tokens = pl.block_tokens;
        d->unit_bytes = pl.block_bytes;
        d->tensor_stride = (uint64_t)pl.block_tokens * p->row_bytes;
        d->token_stride = p->row_bytes;
        return KV_OK;
    case KV_PLACE_CHUNKS:
        d->base = place_va(p, s, 0, 0);
        d->unit_tokens = pl.chunk_tokens;
        d->unit_bytes = pl.chunk_bytes;
        if (pl.n_chunk_tensors == 1) { /* fused: token-major */
            d->tensor_stride = p->row_bytes;
            d->token_stride = p->token_bytes;
        } else {
            d->tensor_stride = (uint64_t)p->stride * pl.chunk_bytes;
            d->token_stride = p->row_bytes;
        }
        return KV_OK;
    }
    return kv_errorf(err, KV_CORRUPT, "kvgpu: unknown placement kind");
}
