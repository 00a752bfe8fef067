/* chunk_pool.c — physical chunks mapped into per-sequence virtual ranges (vAttention, GMLake,
 * PyTorch expandable segments).
 *
 * Algorithm: the pool is n_chunks = pool_bytes / chunk_bytes physical chunks (2 MiB, the CUDA
 * VMM granularity, by default), all created up front and kept on a free stack: freeing a
 * sequence unmaps its chunks and returns them to the stack for reuse, never to the driver.
 * A sequence owns one chunk series per layer tensor (per-layer layout: the K and V of every
 * layer grow as separate virtual tensors, as vAttention maps them) or one series for all of
 * its KV (fused layout). A series of n chunks holds n * chunk_tokens tokens, chunk_tokens =
 * chunk_bytes / (bytes of one token in the series). Growth maps one more chunk into every
 * series at once, since every layer gains the same tokens. Every chunk mapped or unmapped is
 * counted (stats.n_maps / n_unmaps): on CUDA each costs cuMemMap + cuMemSetAccess or
 * cuMemUnmap, tens of microseconds (DESIGN.md §4).
 *
 * Nothing is shared between sequences: fork maps fresh chunks and copies the parent's tokens.
 * Swap copies each series' filled range in one copy (the virtual range is contiguous).
 *
 * Invariants (kv_chunk_check): every chunk is on the free stack or in exactly one series; a
 * resident sequence's series each hold exactly ceil(tokens / chunk_tokens) chunks.
 *
 * Glossary: series = the chunks of one (sequence, layer tensor) or of one fused sequence,
 * in virtual-address order.
 */
#include "alloc_internal.h"
#include "hostmem.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */

static uint32_t chunks_for(const kv_chunkpool *c, uint32_t tokens)
{
    return (uint32_t)(((uint64_t)tokens + c->chunk_tokens - 1) / c->chunk_tokens);
}

static uint32_t *series(const kv_chunkpool *c, kv_seq_id s, uint32_t t)
{
    return c->lists + ((size_t)s * c->n_tensors + t) * c->stride;
}

/* Chunk `id` mapped into (or unmapped from) index i of series t of s's virtual range. */
static kv_effect chunk_effect(kv_effect_kind kind, kv_seq_id s, uint32_t t, uint32_t i,
                              uint32_t id)
{
    return (kv_effect){.kind = (uint8_t)kind,
                       .seq = s,
                       .src_seq = s,
                       .src = KV_FX_NO_UNIT,
                       .dst = id,
                       .index = i,
                       .series = t};
}

/* Map chunks [from, to) of every series of s. Precondition: enough free chunks. */
static void map_range(kv_alloc *a, kv_seq_id s, uint32_t from, uint32_t to)
{
    kv_chunkpool *c = &a->u.chunk;
    KV_ASSERT(to <= c->stride && (uint64_t)(to - from) * c->n_tensors <= c->n_free);
    for (uint32_t t = 0; t < c->n_tensors; t++) {
        uint32_t *ids = series(c, s, t);
        for (uint32_t i = from; i < to; i++) {
            ids[i] = c->free_stack[--c->n_free];
            kv_alloc_emit(a, chunk_effect(KV_FX_MAP, s, t, i, ids[i]));
        }
    }
    a->stats.n_maps += (uint64_t)(to - from) * c->n_tensors;
}

/* Unmap every chunk of s, last mapped first back on the stack. */
static void unmap_all(kv_alloc *a, kv_seq_id s)
{
    kv_chunkpool *c = &a->u.chunk;
    uint32_t n = a->seqs[s].u.ch.n_chunks;
    for (uint32_t t = c->n_tensors; t-- > 0;) {
        const uint32_t *ids = series(c, s, t);
        for (uint32_t i = n; i-- > 0;) {
            c->free_stack[c->n_free++] = ids[i];
            kv_alloc_emit(a, chunk_effect(KV_FX_UNMAP, s, t, i, ids[i]));
        }
    }
    a->stats.n_unmaps += (uint64_t)n * c->n_tensors;
    a->seqs[s].u.ch.n_chunks = 0;
}

/* A copy or transfer of the first n_tokens tokens of a sequence's virtual range; a host copy
 * is an extent of the host tier at host_start. */
static kv_effect range_effect(const kv_alloc *a, kv_effect_kind kind, kv_effect_cause cause,
                              kv_seq_id from, kv_seq_id to, uint32_t n_tokens, uint32_t host_start)
{
    uint64_t host_offset = (uint64_t)host_start * a->token_bytes;
    return kv_alloc_run_effect(a, kind, cause, KV_AT_RANGE, from, to,
                               cause == KV_CAUSE_SWAP_IN ? host_offset : 0,
                               cause == KV_CAUSE_SWAP_OUT ? host_offset : 0, n_tokens,
                               kind == KV_FX_TRANSFER ? a->u.chunk.n_tensors : 1);
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_chunk_init(kv_alloc *a, kv_err *err)
{
    kv_chunkpool *c = &a->u.chunk;
    const kv_alloc_config *cfg = &a->cfg;
    bool fused = cfg->chunk.layout == KV_CHUNK_FUSED;
    c->n_tensors = fused ? 1 : kv_shape_n_tensors(&cfg->shape);
    c->series_token_bytes = fused ? a->token_bytes : kv_shape_tensor_token_bytes(&cfg->shape);
    uint64_t per_chunk = cfg->chunk.chunk_bytes / c->series_token_bytes;
    if (per_chunk == 0)
        return kv_errorf(err, KV_ERR_INPUT,
                         "chunk_bytes: %llu cannot hold one token of a %s series (%llu bytes)",
                         (unsigned long long)cfg->chunk.chunk_bytes,
                         kv_chunk_layout_name(cfg->chunk.layout),
                         (unsigned long long)c->series_token_bytes);
    c->chunk_tokens = per_chunk > cfg->max_seq_tokens ? cfg->max_seq_tokens : (uint32_t)per_chunk;
    uint64_t n = cfg->pool_bytes / cfg->chunk.chunk_bytes;
    if (n >= UINT32_MAX)
        return kv_errorf(err, KV_ERR_INPUT, "chunk_bytes: %llu chunks in the pool, too many",
                         (unsigned long long)n);
    c->n_chunks = (uint32_t)n;
    c->stride = chunks_for(c, cfg->max_seq_tokens);
    size_t list_entries = (size_t)cfg->max_seqs * c->n_tensors * c->stride;
    c->free_stack = kv_hostmem_zalloc(((size_t)c->n_chunks + 1), sizeof *c->free_stack);
    c->lists = kv_hostmem_zalloc(list_entries, sizeof *c->lists);
    c->mark = kv_hostmem_zalloc((size_t)c->n_chunks + 1, 1);
    if (!c->free_stack || !c->lists || !c->mark) {
        kv_chunk_fini(a);
        return KV_ERR_NOMEM;
    }
    /* Chunk 0 on top of the stack: the first sequence maps chunks 0, 1, 2, ... */
    for (uint32_t i = 0; i < c->n_chunks; i++)
        c->free_stack[i] = c->n_chunks - 1 - i;
    c->n_free = c->n_chunks;
    a->metadata_bytes += ((uint64_t)c->n_chunks + 1) * (sizeof *c->free_stack + 1) +
                         (uint64_t)list_entries * sizeof *c->lists;
    return KV_OK;
}

void kv_chunk_fini(kv_alloc *a)
{
    kv_chunkpool *c = &a->u.chunk;
    free(c->free_stack);
    free(c->lists);
    free(c->mark);
    *c = (kv_chunkpool){0};
}

bool kv_chunk_too_large(const kv_alloc *a, const kv_admit_req *req)
{
    const kv_chunkpool *c = &a->u.chunk;
    return (uint64_t)chunks_for(c, req->final_tokens) * c->n_tensors > c->n_chunks;
}

bool kv_chunk_can_admit(const kv_alloc *a, const kv_admit_req *req)
{
    const kv_chunkpool *c = &a->u.chunk;
    uint64_t need = (uint64_t)chunks_for(c, req->prompt_tokens) * c->n_tensors;
    if ((uint64_t)chunks_for(c, req->final_tokens) * c->n_tensors > c->n_chunks || need > c->n_free)
        return false;
    return (c->n_free - need) * a->cfg.chunk.chunk_bytes >= kv_alloc_watermark_bytes(a);
}

kv_status kv_chunk_admit(kv_alloc *a, kv_seq_id s, const kv_admit_req *req, uint32_t *cached_tokens)
{
    (void)cached_tokens;
    kv_chunkpool *c = &a->u.chunk;
    if ((uint64_t)chunks_for(c, req->final_tokens) * c->n_tensors > c->n_chunks)
        return KV_TOO_LARGE;
    uint32_t n = chunks_for(c, req->prompt_tokens);
    if ((uint64_t)n * c->n_tensors > c->n_free)
        return KV_NO_SPACE;
    map_range(a, s, 0, n);
    a->seqs[s].u.ch.n_chunks = n;
    return KV_OK;
}

kv_status kv_chunk_append(kv_alloc *a, kv_seq_id s, uint32_t n_tokens)
{
    kv_chunkpool *c = &a->u.chunk;
    kv_seq *q = &a->seqs[s];
    uint32_t have = q->u.ch.n_chunks, need = chunks_for(c, q->tokens + n_tokens);
    if (need > have) {
        if ((uint64_t)(need - have) * c->n_tensors > c->n_free)
            return KV_NO_SPACE;
        map_range(a, s, have, need);
        q->u.ch.n_chunks = need;
    }
    q->tokens += n_tokens;
    return KV_OK;
}

kv_status kv_chunk_fork(kv_alloc *a, kv_seq_id parent, kv_seq_id child)
{
    kv_chunkpool *c = &a->u.chunk;
    uint32_t n = a->seqs[parent].u.ch.n_chunks;
    if ((uint64_t)n * c->n_tensors > c->n_free)
        return KV_NO_SPACE;
    map_range(a, child, 0, n);
    a->seqs[child].u.ch.n_chunks = n;
    a->stats.copy_bytes += (uint64_t)a->seqs[parent].tokens * a->token_bytes;
    kv_alloc_emit(a, range_effect(a, KV_FX_COPY, KV_CAUSE_FORK, parent, child,
                                  a->seqs[parent].tokens, 0));
    return KV_OK;
}

void kv_chunk_free(kv_alloc *a, kv_seq_id s)
{
    unmap_all(a, s);
}

kv_status kv_chunk_swap_out(kv_alloc *a, kv_seq_id s, kv_swap_stats *st)
{
    uint64_t bytes = (uint64_t)a->seqs[s].tokens * a->token_bytes;
    uint32_t host_start;
    if (kv_tier_alloc_extent(&a->host, a->seqs[s].tokens, &host_start) != KV_OK)
        return KV_NO_SPACE;
    a->seqs[s].host_start = host_start;
    kv_alloc_emit(a, range_effect(a, KV_FX_TRANSFER, KV_CAUSE_SWAP_OUT, s, s, a->seqs[s].tokens,
                                  host_start));
    unmap_all(a, s); /* after the transfer has read the range */
    *st = (kv_swap_stats){.bytes = bytes, .n_copies = a->u.chunk.n_tensors};
    return KV_OK;
}

kv_status kv_chunk_swap_in(kv_alloc *a, kv_seq_id s, kv_swap_stats *st)
{
    kv_chunkpool *c = &a->u.chunk;
    kv_seq *q = &a->seqs[s];
    uint32_t n = chunks_for(c, q->tokens);
    if ((uint64_t)n * c->n_tensors > c->n_free)
        return KV_NO_SPACE;
    map_range(a, s, 0, n);
    q->u.ch.n_chunks = n;
    kv_alloc_emit(a, range_effect(a, KV_FX_TRANSFER, KV_CAUSE_SWAP_IN, s, s, q->tokens,
                                  q->host_start));
    kv_tier_free_extent(&a->host, q->host_start, q->tokens);
    *st = (kv_swap_stats){.bytes = (uint64_t)q->tokens * a->token_bytes, .n_copies = c->n_tensors};
    return KV_OK;
}

void kv_chunk_placement(const kv_alloc *a, kv_seq_id s, kv_placement *out)
{
    const kv_chunkpool *c = &a->u.chunk;
    out->kind = KV_PLACE_CHUNKS;
    out->chunk_ids = series(c, s, 0);
    out->n_chunk_tensors = c->n_tensors;
    out->n_chunks = a->seqs[s].u.ch.n_chunks;
    out->chunk_stride = c->stride;
    out->chunk_tokens = c->chunk_tokens;
    out->chunk_bytes = a->cfg.chunk.chunk_bytes;
}

void kv_chunk_breakdown(const kv_alloc *a, const kv_admit_req *waiting, kv_mem_breakdown *out)
{
    (void)waiting; /* physical chunks are interchangeable: a free chunk can serve anyone */
    const kv_chunkpool *c = &a->u.chunk;
    uint64_t tb = a->token_bytes, cb = a->cfg.chunk.chunk_bytes;
    uint64_t tok = 0, res = 0, held = 0;
    for (LIVE_EACH(a, i, s)) {
        const kv_seq *q = &a->seqs[s];
        if (q->state != KV_SEQ_RESIDENT)
            continue;
        uint64_t cap = (uint64_t)q->u.ch.n_chunks * c->chunk_tokens, t = q->tokens;
        uint64_t fill_to = q->final_tokens < cap ? q->final_tokens : cap;
        tok += t;
        res += fill_to > t ? fill_to - t : 0;
        held += (uint64_t)q->u.ch.n_chunks * c->n_tensors;
    }
    out->token_bytes = tok * tb;
    out->reserved_bytes = res * tb;
    out->internal_frag_bytes = held * cb - out->token_bytes - out->reserved_bytes;
    out->external_frag_bytes = a->cfg.pool_bytes - (uint64_t)c->n_chunks * cb;
    out->free_bytes = (uint64_t)c->n_free * cb;
}

kv_status kv_chunk_check(const kv_alloc *a, kv_err *err)
{
    const kv_chunkpool *c = &a->u.chunk;
    memset(c->mark, 0, c->n_chunks);
    if (c->n_free > c->n_chunks)
        return kv_errorf(err, KV_CORRUPT, "chunk-pool: %u free of %u chunks", c->n_free,
                         c->n_chunks);
    for (uint32_t i = 0; i < c->n_free; i++) {
        uint32_t id = c->free_stack[i];
        if (id >= c->n_chunks || c->mark[id]++)
            return kv_errorf(err, KV_CORRUPT, "chunk-pool: free stack entry %u = chunk %u", i, id);
    }
    uint64_t mapped = 0;
    for (uint32_t s = 0; s < a->cfg.max_seqs; s++) {
        const kv_seq *q = &a->seqs[s];
        if (q->state == KV_SEQ_SWAPPED &&
            (q->u.ch.n_chunks != 0 || q->host_bytes != (uint64_t)q->tokens * a->token_bytes))
            return kv_errorf(err, KV_CORRUPT, "chunk-pool: swapped seq %u still maps %u chunks", s,
                             q->u.ch.n_chunks);
        if (q->state != KV_SEQ_RESIDENT)
            continue;
        if (q->u.ch.n_chunks != chunks_for(c, q->tokens))
            return kv_errorf(err, KV_CORRUPT, "chunk-pool: seq %u maps %u chunks for %u tokens", s,
                             q->u.ch.n_chunks, q->tokens);
        for (uint32_t t = 0; t < c->n_tensors; t++) {
            const uint32_t *ids = series(c, s, t);
            for (uint32_t i = 0; i < q->u.ch.n_chunks; i++) {
                if (ids[i] >= c->n_chunks || c->mark[ids[i]]++)
                    return kv_errorf(
                        err, KV_CORRUPT, "chunk-pool: seq %u series %u index %u: chunk %u is %s", s,
                        t, i, ids[i], ids[i] >= c->n_chunks ? "out of range" : "mapped twice");
            }
        }
        mapped += (uint64_t)q->u.ch.n_chunks * c->n_tensors;
    }
    if (mapped + c->n_free != c->n_chunks)
        return kv_errorf(err, KV_CORRUPT, "chunk-pool: %llu mapped + %u free != %u chunks",
                         (unsigned long long)mapped, c->n_free, c->n_chunks);
    return KV_OK;
}
