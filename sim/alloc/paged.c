/* paged.c — per-sequence block tables over a block pool (vLLM PagedAttention, SGLang); the
 * paged and compressed strategies.
 *
 * Algorithm (Kwon et al., "Efficient Memory Management for Large Language Model Serving with
 * PagedAttention", SOSP 2023): the pool (block_pool.c) carves n_blocks blocks of block_tokens
 * token slots. A sequence's block table lists its blocks in logical order; a sequence of t
 * tokens holds ceil(t / block_tokens) blocks, so at most one block per sequence is partly
 * filled.
 *   - Sharing: blocks carry reference counts. Fork copies the parent's table and bumps the
 *     counts. Appending into a shared, partly filled last block first copies it (copy-on-write,
 *     counted in stats.n_cow and copy_bytes); full shared blocks are never written again.
 *   - Prefix caching: a full prompt block is registered under a chained hash
 *     h_i = mix(h_{i-1}, content_i), so equal hashes mean equal content after an equal prefix
 *     (vLLM's block hash, SGLang's radix tree flattened). Admission walks the prompt's blocks
 *     and shares every leading block found; a freed cached block keeps its hash until evicted.
 *     Freeing returns a table's blocks last-first, so a sequence's tail is evicted before its
 *     head, which other prompts are likelier to share (as vLLM v1 does).
 *   - Watermark: admission leaves watermark x pool free for the running sequences to grow into.
 *   - Layout (layout.c): which tokens are kept and where a sequence's blocks end. Full for
 *     paged; compressed's token policy (window with sinks, budget) drops blocks or stops growth,
 *     over blocks of its quantized token size (kv_alloc_config_stored_shape). This file asks the
 *     layout and never branches on the strategy.
 *   - Swaps go block by block to host blocks of the host tier (tier.c); while swapped, a table
 *     names the host blocks.
 *
 * Invariants (kv_paged_check, then kv_block_pool_check with the references counted here): each
 * table is as long as its stored end asks and names valid blocks; each block's fill is what its
 * position in every table that names it implies; under a window, exactly the entries the window
 * left are dropped; the pool's own invariants hold against these references.
 *
 * Glossary: bt = block_tokens; fill = tokens written in a block; stored end = the logical
 * position up to which a sequence's blocks exist; LRU = the cached free blocks, oldest first.
 */
#include "alloc_internal.h"
#include "hash.h"
#include "hostmem.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */

#define HASH_ROOT 0x6b76736d2d6b7631ull /* "kvsm-kv1" */

/* ------------------------------------------------------------------------------------------ */

static uint32_t stored_end(const kv_alloc *a, uint32_t tokens)
{
    return kv_layout_stored_end(&a->u.paged.layout, tokens);
}

/* Blocks a sequence ever holds at once, over a life that ends at final_tokens. */
static uint32_t peak_blocks(const kv_alloc *a, uint32_t final_tokens)
{
    return kv_layout_peak_blocks(&a->u.paged.layout, final_tokens);
}

static uint32_t blocks_for(const kv_paged *p, uint32_t tokens)
{
    return (uint32_t)(((uint64_t)tokens + p->pool.block_tokens - 1) / p->pool.block_tokens);
}

static uint32_t *table_of(const kv_paged *p, kv_seq_id s)
{
    return p->tables + (size_t)s * p->stride;
}

/* Tokens block i of a sequence holds when its blocks end at `end`. */
static uint32_t fill_at(const kv_paged *p, uint32_t end, uint32_t i)
{
    uint64_t first = (uint64_t)i * p->pool.block_tokens;
    KV_ASSERT(end > first);
    return end - first < p->pool.block_tokens ? (uint32_t)(end - first) : p->pool.block_tokens;
}

static uint32_t n_free(const kv_paged *p)
{
    return kv_block_pool_n_free(&p->pool);
}

/* The prefix hash of a block: its content chained onto its parent's hash (hash.h). */
static uint64_t chain_hash(uint64_t parent, uint64_t content)
{
    return kv_hash_combine(parent, content);
}

/* A free block, referenced once, empty; an evicted cached block says so. Precondition:
 * n_free > 0. */
static uint32_t block_take(kv_alloc *a)
{
    bool evicted;
    uint32_t b = kv_block_pool_take(&a->u.paged.pool, &evicted);
    if (evicted) {
        a->stats.n_evictions++;
        kv_alloc_emit(a, (kv_effect){.kind = KV_FX_DROP,
                                     .cause = KV_CAUSE_EVICT,
                                     .seq = KV_SEQ_NONE,
                                     .src_seq = KV_SEQ_NONE,
                                     .src = b,
                                     .dst = KV_FX_NO_UNIT,
                                     .index = KV_FX_NO_UNIT});
    }
    return b;
}

static void block_incref(kv_paged *p, uint32_t b)
{
    kv_block_pool_incref(&p->pool, b);
}

static void block_decref(kv_paged *p, uint32_t b)
{
    kv_block_pool_decref(&p->pool, b);
}

static void drop_block(kv_alloc *a, kv_seq_id s, uint32_t i);

/* Drop every present block of s, last first. */
static void release_all(kv_alloc *a, kv_seq_id s)
{
    kv_paged *p = &a->u.paged;
    const uint32_t *t = table_of(p, s);
    for (uint32_t i = a->seqs[s].u.pg.n_blocks; i-- > 0;)
        if (t[i] != KV_BLOCK_NONE)
            block_decref(p, t[i]);
}

static uint32_t present_blocks(const kv_seq *q)
{
    return q->u.pg.n_blocks - q->u.pg.n_dropped;
}

/* Entry i of s's table now names block b (KV_BLOCK_NONE: dropped by the layout). */
static void emit_table(kv_alloc *a, kv_seq_id s, uint32_t i, uint32_t b)
{
    kv_alloc_emit(a, (kv_effect){.kind = KV_FX_TABLE,
                                 .seq = s,
                                 .src_seq = s,
                                 .src = KV_FX_NO_UNIT,
                                 .dst = b == KV_BLOCK_NONE ? KV_FX_NO_UNIT : b,
                                 .index = i});
}

/* A device copy of block src into dst (entry i of seq, from from_seq), or a transfer of entry
 * i's block between tiers. */
static kv_effect block_effect(const kv_alloc *a, kv_effect_kind kind, kv_effect_cause cause,
                              kv_seq_id from_seq, kv_seq_id seq, uint32_t i, uint32_t src,
                              uint32_t dst, uint64_t bytes)
{
    return (kv_effect){.kind = (uint8_t)kind,
                       .cause = (uint8_t)cause,
                       .at = KV_AT_BLOCK,
                       .dst_tier = cause == KV_CAUSE_SWAP_OUT ? KV_TIER_HOST : KV_TIER_DEVICE,
                       .seq = seq,
                       .src_seq = from_seq,
                       .src = src,
                       .dst = dst,
                       .index = i,
                       .n_copies =
                           kind == KV_FX_TRANSFER ? kv_shape_n_tensors(&a->cfg.shape) : 1,
                       .bytes = bytes};
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_paged_init(kv_alloc *a, kv_err *err)
{
    kv_paged *p = &a->u.paged;
    const kv_alloc_config *c = &a->cfg;
    kv_shape stored = kv_alloc_config_stored_shape(c);
    kv_status st = kv_shape_validate(&stored, err);
    if (st != KV_OK)
        return st;
    a->token_bytes = kv_shape_token_bytes(&stored);
    uint64_t block_bytes = (uint64_t)c->paged.block_tokens * a->token_bytes;
    uint64_t n = c->pool_bytes / block_bytes;
    if (n >= (1u << 30))
        return kv_errorf(err, KV_ERR_INPUT, "block_tokens: %llu blocks in the pool, at most 2^30",
                         (unsigned long long)n);
    p->layout = kv_layout_of(c);
    st = kv_block_pool_init(&p->pool, (uint32_t)n, c->paged.block_tokens, block_bytes,
                            c->paged.prefix_caching);
    if (st != KV_OK)
        return st;
    p->stride = blocks_for(p, c->max_seq_tokens);
    size_t nb = (size_t)p->pool.n_blocks + 1, table_entries = (size_t)c->max_seqs * p->stride;
    p->tables = kv_hostmem_zalloc(table_entries, sizeof *p->tables);
    p->want = kv_hostmem_zalloc(nb, sizeof *p->want);
    p->touched = kv_hostmem_zalloc(c->max_seqs, sizeof *p->touched);
    p->hits = kv_hostmem_zalloc(p->stride, sizeof *p->hits);
    if (!p->tables || !p->want || !p->touched || !p->hits) {
        kv_paged_fini(a);
        return KV_ERR_NOMEM;
    }
    a->metadata_bytes += kv_block_pool_metadata_bytes(&p->pool) +
                         table_entries * sizeof *p->tables +
                         ((uint64_t)c->max_seqs + p->stride) * sizeof(uint32_t);
    return KV_OK;
}

void kv_paged_fini(kv_alloc *a)
{
    kv_paged *p = &a->u.paged;
    kv_block_pool_fini(&p->pool);
    free(p->tables);
    free(p->want);
    free(p->touched);
    free(p->hits);
    *p = (kv_paged){0};
}

/* Admission plan: which leading prompt blocks are cached, and how many blocks must be new. */
typedef struct admit_plan {
    uint32_t n_table;     /* table length */
    uint32_t n_hits;      /* leading blocks found in the prefix cache */
    uint32_t n_hits_free; /* of those, blocks now on the LRU list */
    uint32_t n_new;       /* blocks to take from the free pool */
    uint32_t n_query;     /* full prompt blocks with a content id */
    uint64_t hash_after_hits;
} admit_plan;

/* Plan admitting req; hit block ids are written to hits[0 .. n_hits). */
static void plan_admit(const kv_alloc *a, const kv_admit_req *req, uint32_t *hits, admit_plan *pl)
{
    const kv_paged *p = &a->u.paged;
    uint32_t end = stored_end(a, req->prompt_tokens);
    *pl = (admit_plan){.n_table = blocks_for(p, end), .hash_after_hits = HASH_ROOT};
    uint32_t first_kept = kv_layout_first_kept_block(&p->layout, req->prompt_tokens);
    uint32_t sink_blocks = kv_layout_sink_blocks(&p->layout);
    uint32_t dropped = first_kept > sink_blocks ? first_kept - sink_blocks : 0;
    if (a->cfg.paged.prefix_caching && req->block_content != NULL) {
        uint32_t n_full = req->prompt_tokens / p->pool.block_tokens;
        pl->n_query = req->n_block_content < n_full ? req->n_block_content : n_full;
        uint64_t h = HASH_ROOT;
        for (uint32_t i = 0; i < pl->n_query; i++) {
            uint64_t next = chain_hash(h, req->block_content[i]);
            uint32_t b = kv_block_pool_lookup(&p->pool, next);
            if (b == KV_INDEX_NONE)
                break;
            hits[pl->n_hits++] = b;
            pl->n_hits_free += p->pool.refcnt[b] == 0;
            h = next;
        }
        pl->hash_after_hits = h;
    }
    pl->n_new = pl->n_table - dropped - pl->n_hits;
}

bool kv_paged_too_large(const kv_alloc *a, const kv_admit_req *req)
{
    return peak_blocks(a, req->final_tokens) > a->u.paged.pool.n_blocks;
}

bool kv_paged_can_admit(const kv_alloc *a, const kv_admit_req *req)
{
    const kv_paged *p = &a->u.paged;
    if (peak_blocks(a, req->final_tokens) > p->pool.n_blocks)
        return false;
    admit_plan pl;
    plan_admit(a, req, p->hits, &pl);
    uint32_t avail = n_free(p) - pl.n_hits_free;
    if (pl.n_new > avail)
        return false;
    return (uint64_t)(avail - pl.n_new) * p->pool.block_bytes >= kv_alloc_watermark_bytes(a);
}

kv_status kv_paged_admit(kv_alloc *a, kv_seq_id s, const kv_admit_req *req, uint32_t *cached_tokens)
{
    kv_paged *p = &a->u.paged;
    if (peak_blocks(a, req->final_tokens) > p->pool.n_blocks)
        return KV_TOO_LARGE;
    uint32_t *t = table_of(p, s);
    admit_plan pl;
    plan_admit(a, req, t, &pl);
    if (pl.n_new > n_free(p) - pl.n_hits_free)
        return KV_NO_SPACE;

    for (uint32_t i = 0; i < pl.n_hits; i++) { /* take the hits before evicting anything */
        block_incref(p, t[i]);
        emit_table(a, s, i, t[i]);
    }
    a->stats.prefix_query_blocks += pl.n_query;
    a->stats.prefix_hit_blocks += pl.n_hits;

    uint32_t end = stored_end(a, req->prompt_tokens);
    uint32_t first_kept = kv_layout_first_kept_block(&p->layout, req->prompt_tokens);
    uint32_t sink_blocks = kv_layout_sink_blocks(&p->layout);
    uint64_t h = pl.hash_after_hits;
    uint32_t n_dropped = 0;
    for (uint32_t i = pl.n_hits; i < pl.n_table; i++) {
        if (i >= sink_blocks && i < first_kept) {
            t[i] = KV_BLOCK_NONE;
            n_dropped++;
            emit_table(a, s, i, KV_BLOCK_NONE);
            continue;
        }
        uint32_t b = block_take(a);
        p->pool.fill[b] = fill_at(p, end, i);
        p->pool.filled_slots += p->pool.fill[b];
        t[i] = b;
        emit_table(a, s, i, b);
        if (i < pl.n_query) {
            h = chain_hash(h, req->block_content[i]);
            kv_block_pool_register(&p->pool, h, b);
        }
    }
    a->seqs[s].u.pg.n_blocks = pl.n_table;
    a->seqs[s].u.pg.n_dropped = n_dropped;
    *cached_tokens = pl.n_hits * p->pool.block_tokens;
    return KV_OK;
}

kv_status kv_paged_append(kv_alloc *a, kv_seq_id s, uint32_t n_tokens)
{
    kv_paged *p = &a->u.paged;
    kv_seq *q = &a->seqs[s];
    uint32_t *t = table_of(p, s);
    uint32_t old_end = stored_end(a, q->tokens), new_end = stored_end(a, q->tokens + n_tokens);
    uint32_t have = q->u.pg.n_blocks, want = blocks_for(p, new_end);
    /* A window moving past blocks frees them before the new tokens need room: the engine
     * writes new tokens and forgets old ones in the same step. Entries [drop_from, drop_to)
     * end up KV_BLOCK_NONE, existing ones freed and new ones never allocated. */
    uint32_t drop_from = kv_layout_sink_blocks(&p->layout) + q->u.pg.n_dropped;
    uint32_t drop_to = kv_layout_first_kept_block(&p->layout, q->tokens + n_tokens);
    if (drop_to < drop_from)
        drop_to = drop_from;
    uint32_t last = have > 0 ? t[have - 1] : KV_BLOCK_NONE;
    bool last_dropped = have > 0 && have - 1 >= drop_from && have - 1 < drop_to;
    bool grows_last = !last_dropped && new_end > old_end && last != KV_BLOCK_NONE &&
                      p->pool.fill[last] < p->pool.block_tokens;
    bool cow = grows_last && p->pool.refcnt[last] > 1;
    uint32_t freed = 0, skipped = 0;
    for (uint32_t i = drop_from; i < drop_to; i++) {
        if (i < have)
            freed += p->pool.refcnt[t[i]] == 1;
        else if (i < want)
            skipped++;
    }
    if ((uint64_t)(want - have - skipped) + cow > (uint64_t)n_free(p) + freed)
        return KV_NO_SPACE;

    for (uint32_t i = drop_from; i < drop_to && i < have; i++)
        drop_block(a, s, i);
    if (cow) {
        uint32_t b = block_take(a);
        p->pool.fill[b] = p->pool.fill[last];
        p->pool.filled_slots += p->pool.fill[b];
        a->stats.n_cow++;
        a->stats.copy_bytes += (uint64_t)p->pool.fill[last] * a->token_bytes;
        kv_alloc_emit(a, block_effect(a, KV_FX_COPY, KV_CAUSE_COW, s, s, have - 1, last, b,
                                      (uint64_t)p->pool.fill[last] * a->token_bytes));
        emit_table(a, s, have - 1, b);
        block_decref(p, last);
        t[have - 1] = last = b;
    }
    if (grows_last) {
        uint32_t add = p->pool.block_tokens - p->pool.fill[last];
        if (add > new_end - old_end)
            add = new_end - old_end;
        p->pool.fill[last] += add;
        p->pool.filled_slots += add;
    }
    for (uint32_t i = have; i < want; i++) {
        if (i >= drop_from && i < drop_to) {
            t[i] = KV_BLOCK_NONE;
            q->u.pg.n_dropped++;
            emit_table(a, s, i, KV_BLOCK_NONE);
            continue;
        }
        uint32_t b = block_take(a);
        p->pool.fill[b] = fill_at(p, new_end, i);
        p->pool.filled_slots += p->pool.fill[b];
        t[i] = b;
        emit_table(a, s, i, b);
    }
    q->u.pg.n_blocks = want;
    q->tokens += n_tokens;
    return KV_OK;
}

static kv_status fork_copy(kv_alloc *a, kv_seq_id parent, kv_seq_id child);

/* A fork shares every block (reference counts; the shared last block is copied on the first
 * write), unless the layout evicts tokens per sequence: then it copies. */
kv_status kv_paged_fork(kv_alloc *a, kv_seq_id parent, kv_seq_id child)
{
    if (!kv_layout_shares(&a->u.paged.layout))
        return fork_copy(a, parent, child);
    kv_paged *p = &a->u.paged;
    const kv_seq *q = &a->seqs[parent];
    const uint32_t *pt = table_of(p, parent);
    uint32_t *ct = table_of(p, child);
    for (uint32_t i = 0; i < q->u.pg.n_blocks; i++) {
        ct[i] = pt[i];
        if (pt[i] != KV_BLOCK_NONE)
            block_incref(p, pt[i]);
        emit_table(a, child, i, pt[i]);
    }
    a->seqs[child].u.pg = q->u.pg;
    return KV_OK;
}

static kv_status fork_copy(kv_alloc *a, kv_seq_id parent, kv_seq_id child)
{
    kv_paged *p = &a->u.paged;
    const kv_seq *q = &a->seqs[parent];
    if (present_blocks(q) > n_free(p))
        return KV_NO_SPACE;
    const uint32_t *pt = table_of(p, parent);
    uint32_t *ct = table_of(p, child);
    for (uint32_t i = 0; i < q->u.pg.n_blocks; i++) {
        ct[i] = KV_BLOCK_NONE;
        if (pt[i] == KV_BLOCK_NONE) {
            emit_table(a, child, i, KV_BLOCK_NONE);
            continue;
        }
        uint32_t b = block_take(a);
        p->pool.fill[b] = p->pool.fill[pt[i]];
        p->pool.filled_slots += p->pool.fill[b];
        a->stats.copy_bytes += (uint64_t)p->pool.fill[b] * a->token_bytes;
        kv_alloc_emit(a, block_effect(a, KV_FX_COPY, KV_CAUSE_FORK, parent, child, i, pt[i], b,
                                      (uint64_t)p->pool.fill[b] * a->token_bytes));
        emit_table(a, child, i, b);
        ct[i] = b;
    }
    a->seqs[child].u.pg = q->u.pg;
    return KV_OK;
}

void kv_paged_free(kv_alloc *a, kv_seq_id s)
{
    release_all(a, s);
}

kv_status kv_paged_swap_out(kv_alloc *a, kv_seq_id s, kv_swap_stats *st)
{
    const kv_paged *p = &a->u.paged;
    uint64_t n = present_blocks(&a->seqs[s]), bytes = n * p->pool.block_bytes;
    uint32_t *host = p->hits; /* scratch of a table's length */
    if (kv_tier_take_blocks(&a->host, (uint32_t)n, host) != KV_OK)
        return KV_NO_SPACE;
    uint32_t *t = table_of(p, s);
    for (uint32_t i = 0, k = 0; i < a->seqs[s].u.pg.n_blocks; i++)
        if (t[i] != KV_BLOCK_NONE)
            kv_alloc_emit(a, block_effect(a, KV_FX_TRANSFER, KV_CAUSE_SWAP_OUT, s, s, i, t[i],
                                          host[k++], p->pool.block_bytes));
    release_all(a, s);
    /* While swapped, the table names host blocks: non-NONE marks a block to bring back. */
    for (uint32_t i = 0, k = 0; i < a->seqs[s].u.pg.n_blocks; i++)
        if (t[i] != KV_BLOCK_NONE)
            t[i] = host[k++];
    *st = (kv_swap_stats){.bytes = bytes, .n_copies = n * kv_shape_n_tensors(&a->cfg.shape)};
    return KV_OK;
}

kv_status kv_paged_swap_in(kv_alloc *a, kv_seq_id s, kv_swap_stats *st)
{
    kv_paged *p = &a->u.paged;
    kv_seq *q = &a->seqs[s];
    uint32_t n = present_blocks(q), end = stored_end(a, q->tokens);
    if (n > n_free(p))
        return KV_NO_SPACE;
    uint32_t *t = table_of(p, s);
    for (uint32_t i = 0; i < q->u.pg.n_blocks; i++) {
        if (t[i] == KV_BLOCK_NONE)
            continue;
        uint32_t b = block_take(a);
        p->pool.fill[b] = fill_at(p, end, i);
        p->pool.filled_slots += p->pool.fill[b];
        emit_table(a, s, i, b);
        kv_alloc_emit(a, block_effect(a, KV_FX_TRANSFER, KV_CAUSE_SWAP_IN, s, s, i, t[i], b,
                                      p->pool.block_bytes));
        t[i] = b;
    }
    uint32_t n_effects;
    const kv_effect *fx = kv_alloc_effects(a, &n_effects);
    for (uint32_t k = n_effects; k-- > 0;) /* last first: the next swap-out takes them in order */
        if (fx[k].kind == KV_FX_TRANSFER)
            kv_tier_give_block(&a->host, fx[k].src);
    *st = (kv_swap_stats){.bytes = (uint64_t)n * p->pool.block_bytes,
                          .n_copies = (uint64_t)n * kv_shape_n_tensors(&a->cfg.shape)};
    return KV_OK;
}

void kv_paged_host_release(kv_alloc *a, kv_seq_id s)
{
    const uint32_t *t = table_of(&a->u.paged, s);
    for (uint32_t i = a->seqs[s].u.pg.n_blocks; i-- > 0;)
        if (t[i] != KV_BLOCK_NONE)
            kv_tier_give_block(&a->host, t[i]);
}

kv_status kv_paged_check_host(const kv_alloc *a, kv_err *err)
{
    const kv_paged *p = &a->u.paged;
    uint8_t *mark = a->host_mark; /* kv_tier_check left 1 on every free id */
    uint64_t held = 0;
    for (uint32_t s = 0; s < a->cfg.max_seqs; s++) {
        const kv_seq *q = &a->seqs[s];
        if (q->state != KV_SEQ_SWAPPED)
            continue;
        const uint32_t *t = table_of(p, s);
        for (uint32_t i = 0; i < q->u.pg.n_blocks; i++) {
            if (t[i] == KV_BLOCK_NONE)
                continue;
            if (t[i] >= a->host.next_fresh || mark[t[i]]++)
                return kv_errorf(err, KV_CORRUPT,
                                 "host tier: swapped seq %u entry %u names host block %u, free "
                                 "or named twice",
                                 s, i, t[i]);
            held++;
        }
    }
    if (held != a->host.used_units)
        return kv_errorf(err, KV_CORRUPT, "host tier: swapped sequences hold %llu blocks, %llu used",
                         (unsigned long long)held, (unsigned long long)a->host.used_units);
    return KV_OK;
}

/* Drop present block i of s: the window moved past it. */
static void drop_block(kv_alloc *a, kv_seq_id s, uint32_t i)
{
    kv_paged *p = &a->u.paged;
    uint32_t *t = table_of(p, s);
    KV_ASSERT(i < a->seqs[s].u.pg.n_blocks && t[i] != KV_BLOCK_NONE);
    kv_alloc_emit(a, (kv_effect){.kind = KV_FX_DROP,
                                 .cause = KV_CAUSE_WINDOW,
                                 .seq = s,
                                 .src_seq = s,
                                 .src = t[i],
                                 .dst = KV_FX_NO_UNIT,
                                 .index = i});
    block_decref(p, t[i]);
    t[i] = KV_BLOCK_NONE;
    a->seqs[s].u.pg.n_dropped++;
    a->stats.n_window_drops++;
}

void kv_paged_placement(const kv_alloc *a, kv_seq_id s, kv_placement *out)
{
    const kv_paged *p = &a->u.paged;
    out->kind = KV_PLACE_BLOCKS;
    out->block_table = table_of(p, s);
    out->n_blocks = a->seqs[s].u.pg.n_blocks;
    out->block_tokens = p->pool.block_tokens;
    out->block_bytes = p->pool.block_bytes;
}

void kv_paged_breakdown(const kv_alloc *a, const kv_admit_req *waiting, kv_mem_breakdown *out)
{
    (void)waiting; /* any free block serves any request: no external fragmentation */
    const kv_paged *p = &a->u.paged;
    uint64_t dead = 0, res = 0;
    uint32_t n_touched = 0;
    for (LIVE_EACH(a, i, s)) {
        const kv_seq *q = &a->seqs[s];
        if (q->state != KV_SEQ_RESIDENT)
            continue;
        /* Slots of present blocks holding tokens the policy no longer keeps (window). */
        uint64_t stored = stored_end(a, q->tokens);
        dead += stored - (uint64_t)q->u.pg.n_dropped * p->pool.block_tokens - kv_layout_kept_tokens(&p->layout, q->tokens);
        /* The last block fills up to where the sequence's stored end will be at its final
         * length; with a shared partial block, the sharer that goes furthest decides. */
        uint32_t li = q->u.pg.n_blocks - 1, b = table_of(p, s)[li];
        uint32_t future_end =
            stored_end(a, q->final_tokens > q->tokens ? q->final_tokens : q->tokens);
        uint32_t w = fill_at(p, future_end > stored ? future_end : (uint32_t)stored, li);
        if (p->want[b] == 0)
            p->touched[n_touched++] = b;
        if (w > p->want[b])
            p->want[b] = w;
    }
    for (uint32_t k = 0; k < n_touched; k++) {
        uint32_t b = p->touched[k];
        res += p->want[b] > p->pool.fill[b] ? p->want[b] - p->pool.fill[b] : 0;
        p->want[b] = 0;
    }
    uint64_t tb = a->token_bytes;
    uint64_t held_slots = (uint64_t)(p->pool.n_blocks - n_free(p)) * p->pool.block_tokens;
    uint64_t token_slots = p->pool.filled_slots - dead;
    out->token_bytes = token_slots * tb;
    out->reserved_bytes = res * tb;
    out->internal_frag_bytes = (held_slots - token_slots - res) * tb;
    out->external_frag_bytes = a->cfg.pool_bytes - (uint64_t)p->pool.n_blocks * p->pool.block_bytes;
    out->free_bytes = (uint64_t)n_free(p) * p->pool.block_bytes;
    out->cached_free_bytes = (uint64_t)p->pool.n_lru * p->pool.block_bytes;
}

kv_status kv_paged_check(const kv_alloc *a, kv_err *err)
{
    const kv_paged *p = &a->u.paged;
    uint32_t *ref = p->pool.check_ref;
    memset(ref, 0, (size_t)p->pool.n_blocks * sizeof *ref);
    for (uint32_t s = 0; s < a->cfg.max_seqs; s++) {
        const kv_seq *q = &a->seqs[s];
        if (q->state == KV_SEQ_FREE)
            continue;
        uint32_t end = stored_end(a, q->tokens);
        if (q->u.pg.n_blocks != blocks_for(p, end) || q->u.pg.n_dropped > q->u.pg.n_blocks)
            return kv_errorf(err, KV_CORRUPT,
                             "paged: seq %u has %u blocks (%u dropped) for %u "
                             "stored tokens",
                             s, q->u.pg.n_blocks, q->u.pg.n_dropped, end);
        const uint32_t *t = table_of(p, s);
        uint32_t n_none = 0;
        for (uint32_t i = 0; i < q->u.pg.n_blocks; i++) {
            if (t[i] == KV_BLOCK_NONE) {
                n_none++;
                continue;
            }
            if (q->state == KV_SEQ_SWAPPED)
                continue; /* stale ids marking blocks to bring back */
            if (t[i] >= p->pool.n_blocks)
                return kv_errorf(err, KV_CORRUPT, "paged: seq %u block %u is %u", s, i, t[i]);
            if (p->pool.fill[t[i]] != fill_at(p, end, i))
                return kv_errorf(err, KV_CORRUPT,
                                 "paged: seq %u block %u (id %u) fill %u, expected %u", s, i, t[i],
                                 p->pool.fill[t[i]], fill_at(p, end, i));
            ref[t[i]]++;
        }
        if (n_none != q->u.pg.n_dropped)
            return kv_errorf(err, KV_CORRUPT, "paged: seq %u has %u dropped entries, counter %u", s,
                             n_none, q->u.pg.n_dropped);
        if (q->u.pg.n_blocks > 0 && t[q->u.pg.n_blocks - 1] == KV_BLOCK_NONE)
            return kv_errorf(err, KV_CORRUPT, "paged: seq %u dropped its last block", s);
        if (q->state == KV_SEQ_SWAPPED &&
            q->host_bytes != (uint64_t)present_blocks(q) * p->pool.block_bytes)
            return kv_errorf(err, KV_CORRUPT, "paged: swapped seq %u holds %llu host bytes", s,
                             (unsigned long long)q->host_bytes);
    }
    for (uint32_t b = 0; b < p->pool.n_blocks; b++)
        if (p->want[b] != 0)
            return kv_errorf(err, KV_CORRUPT, "paged: breakdown scratch dirty at block %u", b);
    if (p->layout.policy == KV_TOKENS_WINDOW) { /* the window dropped exactly what it left */
        uint32_t sink = kv_layout_sink_blocks(&p->layout);
        for (uint32_t s = 0; s < a->cfg.max_seqs; s++) {
            const kv_seq *q = &a->seqs[s];
            if (q->state == KV_SEQ_FREE)
                continue;
            uint32_t first = kv_layout_first_kept_block(&p->layout, q->tokens);
            uint32_t expect = first > sink ? first - sink : 0;
            if (q->u.pg.n_dropped != expect)
                return kv_errorf(err, KV_CORRUPT,
                                 "window: seq %u of %u tokens dropped %u blocks, window says %u",
                                 s, q->tokens, q->u.pg.n_dropped, expect);
            const uint32_t *t = table_of(p, s);
            for (uint32_t i = sink; i < sink + expect; i++)
                if (t[i] != KV_BLOCK_NONE)
                    return kv_errorf(err, KV_CORRUPT,
                                     "window: seq %u keeps block %u outside the window", s, i);
        }
    }
    return kv_block_pool_check(&p->pool, ref, err); /* the pool, against the tables' references */
}
