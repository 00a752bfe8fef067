/* kvgpu.h — the allocator's decisions realized on a CUDA device: the pool, the addressing of
 * every placement kind, the KV kernels and the swap engine.
 *
 * Memory. Contiguous, paged and compressed KV live in one cudaMalloc arena of the allocator's
 * pool_bytes: byte offset x of the allocator is arena + x. Chunk-pool KV lives in physical
 * chunks created up front with cuMemCreate (one per allocator chunk id) and mapped with
 * cuMemMap + cuMemSetAccess into a virtual range per sequence slot when the allocator grows a
 * sequence, unmapped when it frees; every map and unmap call is counted and timed.
 *
 * Rows. The unit of KV is a row: one token of one layer tensor (K or V of a layer), that is
 * n_kv_heads x head_dim elements followed, for quantized formats, by one scale per group of
 * scale_group_elems elements (fp16 when scale_bytes is 2, fp32 when 4). A row of a token t and
 * tensor j of a sequence is at
 *     row(t, j) = base + unit(t) * unit_bytes + j * tensor_stride + (t % unit_tokens) * token_stride
 *     unit(t)   = table ? table[t / unit_tokens] : t / unit_tokens
 * which covers every placement kind:
 *     extent (contiguous)    base = arena + offset, one unit, tensor_stride = row bytes,
 *                            token_stride = token bytes (token-major, as the allocator lays it)
 *     blocks (paged, compr.) base = arena, table = block ids, unit = one block laid out
 *                            [tensor][token in block][row]: each (block, tensor) is one
 *                            contiguous slab, the unit of vLLM's per-block swaps
 *     chunks, per-layer      base = the slot's virtual range, unit = a chunk of one tensor,
 *                            tensor_stride = the virtual span reserved per tensor
 *     chunks, fused          base = the slot's virtual range, token-major like an extent
 * Kernels read and write KV through this formula only.
 *
 * Host tier. A swapped-out sequence is kept in pinned host memory in the same layout with no
 * table (blocks one after another; chunks of a tensor one after another), so that every
 * per-block-per-tensor (or per-tensor, or per-extent) copy is one contiguous cudaMemcpyAsync,
 * and the batched path's gather kernel writes exactly the bytes the copies would.
 */
#ifndef KV_GPU_H
#define KV_GPU_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "alloc.h"
#ifdef __cplusplus
}
#endif

/* Element formats of a row. */
typedef enum kvg_dtype { KVG_BF16, KVG_FP8, KVG_INT8, KVG_INT4 } kvg_dtype;

typedef struct kvg_format {
    kvg_dtype dtype;
    uint32_t n_heads, head_dim; /* KV heads per layer tensor; head_dim is 128 */
    uint32_t group;             /* elements per scale; 0 = none (bf16, per-tensor fp8) */
    uint32_t scale_bytes;       /* 2 (fp16) or 4 (fp32) */
    uint64_t row_bytes;
} kvg_format;

/* Where one sequence's rows are (see the formula above). table is a device pointer. */
typedef struct kvg_seqdesc {
    uint64_t base;
    const uint32_t *table;
    uint32_t n_tokens;
    uint32_t unit_tokens;
    uint64_t unit_bytes, tensor_stride, token_stride;
} kvg_seqdesc;

#define KVG_EXTENT_UNIT 0x7fffffffu /* unit_tokens of an extent: one unit */

/* A token's sequence index that means "no sequence": a padding row of a decode step replayed
 * as a CUDA graph for a larger batch. Append writes nothing for it; attention gives zeros. */
#define KVG_NO_SEQ 0xffffffffu

static inline uint64_t kvg_row(const kvg_seqdesc *d, uint32_t t, uint32_t j)
{
    uint32_t u = t / d->unit_tokens;
    return d->base + (uint64_t)(d->table ? d->table[u] : u) * d->unit_bytes +
           (uint64_t)j * d->tensor_stride + (uint64_t)(t % d->unit_tokens) * d->token_stride;
}

/* The format the allocator's configuration stores: bf16 for 16-bit shapes, else dtype (fp8,
 * int8 or int4, which must match elem_bits). KV_OK or KV_ERR_INPUT with a message. */
kv_status kvg_format_of(const kv_alloc_config *c, kvg_dtype dtype, kvg_format *out, kv_err *err);

/* ------------------------------------------------------------------------------ pool --- */

typedef struct kvg_pool kvg_pool;

typedef struct kvg_pool_stats {
    uint64_t maps, unmaps;       /* cuMemMap + cuMemSetAccess pairs, cuMemUnmap calls */
    double map_s, unmap_s;       /* host time inside those calls */
    double create_s;             /* creating the pool (all chunks, the arena) */
    uint64_t mapped_chunks;      /* now */
    uint64_t device_bytes;       /* arena, or physical chunks, held */
} kvg_pool_stats;

/* The device memory for allocator a (its configuration, max_seqs slots). KV_OK, or
 * KV_ERR_INPUT / KV_ERR_NOMEM with a message naming the CUDA call. */
kv_status kvg_pool_create(const kv_alloc *a, kvg_pool **out, kv_err *err);
void kvg_pool_destroy(kvg_pool **p);

/* Make the device match the allocator's placement of resident sequence s (map or unmap the
 * chunks that differ, upload its block table) and fill *d. KV_OK or an error. */
kv_status kvg_pool_sync(kvg_pool *p, const kv_alloc *a, kv_seq_id s, kvg_seqdesc *d,
                        kv_err *err);

/* Apply one pool-level effect of an allocator operation (effect.h): a chunk map or unmap (timed
 * and counted), a block-table write or a window drop (into a host mirror of the tables; see
 * kvg_pool_flush), an eviction (nothing). Copies and transfers are the caller's. */
kv_status kvg_pool_apply(kvg_pool *p, const kv_effect *e, kv_err *err);

/* Upload the block-table entries written since the last flush: one copy per sequence; the
 * device tables are current when it returns (it waits for the copies). */
kv_status kvg_pool_flush(kvg_pool *p, kv_err *err);

/* Sequence slot s's block table on the device, and its host mirror (NULL without tables). */
const uint32_t *kvg_pool_table(const kvg_pool *p, kv_seq_id s);
const uint32_t *kvg_pool_mirror(const kvg_pool *p, kv_seq_id s);

/* The descriptor of resident sequence s where the allocator places it now; no device work (the
 * effects have made the device match). KV_OK or an error. */
kv_status kvg_pool_describe(const kvg_pool *p, const kv_alloc *a, kv_seq_id s, kvg_seqdesc *d,
                            kv_err *err);

/* Unmap every chunk of slot s (after the allocator freed or swapped it out). */
kv_status kvg_pool_release(kvg_pool *p, kv_seq_id s, kv_err *err);

/* Time chunk maps and unmaps: rounds times, admit one sequence of seq_tokens into a (an
 * empty allocator over p), make the device match (maps), free it and release its chunks
 * (unmaps). The calls add to p's counts and times (kvg_pool_stats_of: map_s / maps is the cost
 * of one map). kvgpu calibrate and kvgpu bench measure map costs this way. KV_OK, the
 * allocator's status when it cannot admit (with a message), or a CUDA error. */
kv_status kvg_pool_time_maps(kv_alloc *a, kvg_pool *p, uint32_t seq_tokens, uint32_t rounds,
                             kv_err *err);

const kvg_pool_stats *kvg_pool_stats_of(const kvg_pool *p);
uint64_t kvg_pool_arena(const kvg_pool *p); /* device address of the arena (0 for chunks) */

/* The host-tier layout of s as it is placed now (no table), at base host_base; its bytes. */
uint64_t kvg_host_desc(const kv_alloc *a, kv_seq_id s, uint64_t host_base, kvg_seqdesc *d);

/* ---------------------------------------------------------------------------- kernels --- */

/* Write n new tokens: token i's values src[i][tensor][n_heads * head_dim] (bf16 bits, device)
 * go to row(pos[i], tensor) of descs[seq[i]] (device arrays), quantized to the format. */
kv_status kvg_append(const kvg_format *f, uint32_t n_tensors, const kvg_seqdesc *descs,
                     const uint32_t *seq, const uint32_t *pos, uint32_t n,
                     const uint16_t *src, kv_err *err);

/* The same for n_tensors tensors from tensor0 on, token i's values at src + i * src_stride
 * (elements; the model executor's QKV rows hold K and V side by side). */
kv_status kvg_append_strided(const kvg_format *f, uint32_t tensor0, uint32_t n_tensors,
                             uint64_t src_stride, const kvg_seqdesc *descs, const uint32_t *seq,
                             const uint32_t *pos, uint32_t n, const uint16_t *src, kv_err *err);

/* kvg_append_strided on a stream (kernels of one step on the model executor's stream). */
kv_status kvg_append_strided_on(const kvg_format *f, uint32_t tensor0, uint32_t n_tensors,
                                uint64_t src_stride, const kvg_seqdesc *descs, const uint32_t *seq,
                                const uint32_t *pos, uint32_t n, const uint16_t *src,
                                cudaStream_t stream, kv_err *err);

/* Layer's K and V rows of tokens 0..d->n_tokens-1 of a sequence, dequantized into bf16
 * arrays k[t][n_heads * head_dim] and v[...] on the device (prefill attention by GEMMs). */
kv_status kvg_gather_layer(const kvg_format *f, const kvg_seqdesc *d, uint32_t layer, void *k,
                           void *v, kv_err *err);

/* Attention of queries over a layer's K (tensor 2 layer) and V (2 layer + 1). Query i
 * (device arrays): sequence qseq[i], position qpos[i] (it sees tokens 0..qpos[i]), values
 * q[i][n_q_heads][head_dim] (bf16 bits); out[i][n_q_heads][head_dim] in float. Decode is one
 * query per sequence at its last position, prefill a run of positions. work: device scratch of
 * kvg_attention_work_bytes (enough for any n_queries up to the one it was asked for). */
size_t kvg_attention_work_bytes(const kvg_format *f, uint32_t n_q_heads, uint32_t n_queries,
                                uint32_t max_context);
kv_status kvg_attention(const kvg_format *f, uint32_t n_q_heads, uint32_t layer,
                        const kvg_seqdesc *descs, const uint32_t *qseq, const uint32_t *qpos,
                        uint32_t n_queries, uint32_t max_context, const uint16_t *q, float *out,
                        void *work, kv_err *err);

/* kvg_attention on a stream; the output in bf16 bits when out_bf16 is not NULL (then out is
 * unused), else in float. */
kv_status kvg_attention_on(const kvg_format *f, uint32_t n_q_heads, uint32_t layer,
                           const kvg_seqdesc *descs, const uint32_t *qseq, const uint32_t *qpos,
                           uint32_t n_queries, uint32_t max_context, const uint16_t *q, float *out,
                           uint16_t *out_bf16, void *work, cudaStream_t stream, kv_err *err);

/* Fused causal prefill attention (FlashAttention-style tiles over the placement). A chunk is
 * n query rows of sequence seq at positions first..first+n-1, its queries at rows row0.. of q
 * (row r, query head h at q + r * q_stride + h * head_dim, bf16 bits), seeing tokens
 * 0..position of its sequence's layer K/V (already appended). kvg_prefill_tiles cuts chunks
 * (host) into tiles of up to 64 rows, longest context first, into tiles (room for
 * kvg_prefill_max_tiles); the tiles go to the device and kvg_prefill_attention runs them all in
 * one launch, writing bf16 rows of out the same way (out_stride). */
typedef struct kvg_prefill_chunk {
    uint32_t seq, row0, first, n;
} kvg_prefill_chunk;
typedef struct kvg_prefill_tile {
    uint32_t seq, row0, pos0, n_rows;
} kvg_prefill_tile;
uint32_t kvg_prefill_max_tiles(uint32_t n_tokens, uint32_t n_chunks);
uint32_t kvg_prefill_tiles(const kvg_prefill_chunk *chunks, uint32_t n_chunks,
                           kvg_prefill_tile *tiles);
kv_status kvg_prefill_attention(const kvg_format *f, uint32_t n_q_heads, uint32_t layer,
                                const kvg_seqdesc *descs, const kvg_prefill_tile *tiles,
                                uint32_t n_tiles, const uint16_t *q, uint64_t q_stride,
                                uint16_t *out, uint64_t out_stride, cudaStream_t stream,
                                kv_err *err);

/* y[m][n] = x[m][k] W^T (+ y when accumulate), W stored [n][k] (an nn.Linear weight), bf16
 * bits, fp32 accumulation, for 1..KVG_GEMV_MAX_M rows (decode at batch <= 4); k % 8 == 0. */
#define KVG_GEMV_MAX_M 4
kv_status kvg_gemv_bf16(const uint16_t *x, const uint16_t *w, uint16_t *y, uint32_t m, uint32_t n,
                        uint32_t k, bool accumulate, cudaStream_t stream, kv_err *err);

/* Copy every row of from (its n_tokens) to the same rows of to: fork copies, extent moves. */
kv_status kvg_copy_rows(const kvg_seqdesc *from, const kvg_seqdesc *to, uint32_t n_tensors,
                        uint64_t row_bytes, kv_err *err);

/* n random bf16 values (never zero as a whole), from a hash of the index and seed. */
kv_status kvg_fill_bf16(uint16_t *p, size_t n, uint32_t seed, kv_err *err);

/* ----------------------------------------------------------------------------- swaps --- */

typedef enum kvg_swap_mode {
    KVG_SWAP_PER_COPY, /* one cudaMemcpyAsync per block per tensor (per tensor, per extent) */
    KVG_SWAP_BATCHED,  /* gather into a device staging buffer, one large copy */
} kvg_swap_mode;

typedef struct kvg_swap_result {
    uint64_t bytes, copies;
    double seconds; /* CUDA events around the whole swap */
} kvg_swap_result;

typedef struct kvg_swapper kvg_swapper;

/* staging_bytes: the batched path's device buffer (larger swaps go in pieces). */
kv_status kvg_swapper_create(size_t staging_bytes, kvg_swapper **out, kv_err *err);
void kvg_swapper_destroy(kvg_swapper **s);

/* Copy a sequence between its device rows (dev, a device descriptor with a host-readable
 * table copy in host_table for blocks) and its host-tier rows (host, from kvg_host_desc over
 * pinned memory): out = device to host. */
kv_status kvg_swap(kvg_swapper *s, kvg_swap_mode mode, bool out, const kvg_seqdesc *dev,
                   const uint32_t *host_table, const kvg_seqdesc *host, uint32_t n_tensors,
                   uint64_t row_bytes, kvg_swap_result *res, kv_err *err);

#endif
