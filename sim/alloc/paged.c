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
 *   - Layer groups (vLLM's hybrid manager: a BlockPool shared by one manager per attention
 *     kind under a coordinator): each group of layers has its own layout and its own block
 *     table per sequence over the one pool, a block being a page of one group's layers. Every
 *     operation plans every group first, checks the sum against the pool, and only then
 *     commits, group after group (blocks an operation frees in any group are freed before any
 *     group takes new ones), so that a failure in one group changes no group. Prefix caching
 *     (every group full) salts each group's hash chain with its group, and admission shares
 *     the leading blocks every group found: a hit is a hit only where all groups hold it. One
 *     group (every existing configuration) runs the same code with the loops of length one,
 *     and its effects and decisions are those of before groups existed.
 *
 * Invariants (kv_paged_check, then kv_block_pool_check with the references counted here): each
 * table is as long as its stored end asks and names valid blocks; each block's fill is what its
 * position in every table that names it implies; under a window, exactly the entries the window
 * left are dropped; a group's tables name only blocks taken for that group; the pool's own
 * invariants hold against these references.
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

static uint32_t stored_end(const kv_paged *p, uint32_t g, uint32_t tokens)
{
    return kv_layout_stored_end(&p->layout[g], tokens);
}

/* Blocks a sequence ever holds at once over every group, over a life ending at final_tokens. */
static uint64_t peak_blocks(const kv_paged *p, uint32_t final_tokens)
{
    uint64_t n = 0;
    for (uint32_t g = 0; g < p->n_groups; g++)
        n += kv_layout_peak_blocks(&p->layout[g], final_tokens);
    return n;
}

static uint32_t blocks_for(const kv_paged *p, uint32_t tokens)
{
    return (uint32_t)(((uint64_t)tokens + p->pool.block_tokens - 1) / p->pool.block_tokens);
}

static uint32_t *table_of(const kv_paged *p, kv_seq_id s, uint32_t g)
{
    return p->tables + ((size_t)s * p->n_groups + g) * p->stride;
}

/* Group g's table counts of sequence s. */
static kv_pg_counts *counts_of(kv_alloc *a, kv_seq_id s, uint32_t g)
{
    return g == 0 ? &a->seqs[s].u.pg : &a->u.paged.more[(size_t)s * (a->u.paged.n_groups - 1) + g - 1];
}

static const kv_pg_counts *ccounts_of(const kv_alloc *a, kv_seq_id s, uint32_t g)
{
    return g == 0 ? &a->seqs[s].u.pg : &a->u.paged.more[(size_t)s * (a->u.paged.n_groups - 1) + g - 1];
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

/* The root of group g's hash chains: group 0 keeps the root of before groups existed. */
static uint64_t hash_root(uint32_t g)
{
    return g == 0 ? HASH_ROOT : kv_hash_combine(HASH_ROOT, g);
}

/* A free block, referenced once, empty; an evicted cached block says so. Precondition:
 * n_free > 0. */
static uint32_t block_take(kv_alloc *a)
{
    kv_paged *p = &a->u.paged;
    bool evicted;
    uint32_t b = kv_block_pool_take(&p->pool, &evicted);
    if (evicted) {
        a->stats.n_evictions++;
        kv_alloc_emit(a, (kv_effect){.kind = KV_FX_DROP,
                                     .cause = KV_CAUSE_EVICT,
                                     .group = p->block_group[b],
                                     .grouped = p->grouped,
                                     .seq = KV_SEQ_NONE,
                                     .src_seq = KV_SEQ_NONE,
                                     .src = b,
                                     .dst = KV_FX_NO_UNIT,
                                     .index = KV_FX_NO_UNIT});
    }
    return b;
}

/* A free block for group g (block_take, and the block-to-group map that only several groups
 * keep). The group as a parameter of block_take cost 8 instructions per block taken, 14% more
 * per admission of one group. */
static inline uint32_t block_take_for(kv_alloc *a, uint32_t g)
{
    uint32_t b = block_take(a);
    if (a->u.paged.grouped)
        a->u.paged.block_group[b] = (uint8_t)g;
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

static void drop_block(kv_alloc *a, kv_seq_id s, uint32_t g, uint32_t i);

/* Drop every present block of s, group after group, each last first. */
static void release_all(kv_alloc *a, kv_seq_id s)
{
    kv_paged *p = &a->u.paged;
    for (uint32_t g = 0; g < p->n_groups; g++) {
        const uint32_t *t = table_of(p, s, g);
        for (uint32_t i = ccounts_of(a, s, g)->n_blocks; i-- > 0;)
            if (t[i] != KV_BLOCK_NONE)
                block_decref(p, t[i]);
    }
}

static uint32_t present_blocks(const kv_pg_counts *c)
{
    return c->n_blocks - c->n_dropped;
}

/* Present blocks of s over every group. */
static uint32_t present_all(const kv_alloc *a, kv_seq_id s)
{
    uint32_t n = 0;
    for (uint32_t g = 0; g < a->u.paged.n_groups; g++)
        n += present_blocks(ccounts_of(a, s, g));
    return n;
}

/* Entry i of s's group-g table now names block b (KV_BLOCK_NONE: dropped by the layout). */
static inline void emit_table(kv_alloc *a, kv_seq_id s, uint32_t g, uint32_t i, uint32_t b)
{
    kv_alloc_emit(a, (kv_effect){.kind = KV_FX_TABLE,
                                 .group = (uint8_t)g,
                                 .grouped = a->u.paged.grouped,
                                 .seq = s,
                                 .src_seq = s,
                                 .src = KV_FX_NO_UNIT,
                                 .dst = b == KV_BLOCK_NONE ? KV_FX_NO_UNIT : b,
                                 .index = i});
}

/* A device copy of block src into dst (entry i of seq's group g, from from_seq), or a transfer
 * of entry i's block between tiers. */
static kv_effect block_effect(const kv_alloc *a, kv_effect_kind kind, kv_effect_cause cause,
                              kv_seq_id from_seq, kv_seq_id seq, uint32_t g, uint32_t i,
                              uint32_t src, uint32_t dst, uint64_t bytes)
{
    const kv_paged *p = &a->u.paged;
    return (kv_effect){.kind = (uint8_t)kind,
                       .cause = (uint8_t)cause,
                       .at = KV_AT_BLOCK,
                       .dst_tier = cause == KV_CAUSE_SWAP_OUT ? KV_TIER_HOST : KV_TIER_DEVICE,
                       .group = (uint8_t)g,
                       .grouped = p->grouped,
                       .seq = seq,
                       .src_seq = from_seq,
                       .src = src,
                       .dst = dst,
                       .index = i,
                       .n_copies = kind == KV_FX_TRANSFER ? p->group_tensors : 1,
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
    p->n_groups = c->n_groups > 0 ? c->n_groups : 1;
    p->grouped = p->n_groups > 1;
    p->one_fast = p->n_groups == 1;
    for (uint32_t g = 0; g < p->n_groups; g++)
        p->layout[g] = kv_layout_of_group(c, g);
    /* One page: block_tokens tokens of one group's layers (validation made groups equal). */
    kv_shape gs = stored, gn = c->shape;
    gs.n_layers = gn.n_layers = c->shape.n_layers / p->n_groups;
    p->slot_bytes = kv_shape_token_bytes(&gs);
    p->native_slot_bytes = kv_shape_token_bytes(&gn);
    p->group_tensors = kv_shape_n_tensors(&gs);
    uint64_t block_bytes = (uint64_t)c->paged.block_tokens * p->slot_bytes;
    uint64_t n = c->pool_bytes / block_bytes;
    if (n >= (1u << 30))
        return kv_errorf(err, KV_ERR_INPUT, "block_tokens: %llu blocks in the pool, at most 2^30",
                         (unsigned long long)n);
    st = kv_block_pool_init(&p->pool, (uint32_t)n, c->paged.block_tokens, block_bytes,
                            c->paged.prefix_caching);
    if (st != KV_OK)
        return st;
    p->stride = blocks_for(p, c->max_seq_tokens);
    size_t nb = (size_t)p->pool.n_blocks + 1;
    size_t table_entries = (size_t)c->max_seqs * p->n_groups * p->stride;
    size_t n_more = (size_t)c->max_seqs * (p->n_groups - 1);
    p->tables = kv_hostmem_zalloc(table_entries, sizeof *p->tables);
    p->want = kv_hostmem_zalloc(nb, sizeof *p->want);
    p->touched = kv_hostmem_zalloc((size_t)c->max_seqs * p->n_groups, sizeof *p->touched);
    p->hits = kv_hostmem_zalloc((size_t)p->stride * p->n_groups, sizeof *p->hits);
    p->block_group = kv_hostmem_zalloc(nb, sizeof *p->block_group);
    p->more = n_more ? kv_hostmem_zalloc(n_more, sizeof *p->more) : NULL;
    if (!p->tables || !p->want || !p->touched || !p->hits || !p->block_group ||
        (n_more && !p->more)) {
        kv_paged_fini(a);
        return KV_ERR_NOMEM;
    }
    /* Metadata as before groups existed, plus what more groups add (the block-to-group map is
     * checker and breakdown bookkeeping, counted with the scratch arrays: not at all). */
    a->metadata_bytes += kv_block_pool_metadata_bytes(&p->pool) +
                         table_entries * sizeof *p->tables + n_more * sizeof *p->more +
                         ((uint64_t)c->max_seqs + p->stride) * p->n_groups * sizeof(uint32_t);
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
    free(p->block_group);
    free(p->more);
    *p = (kv_paged){0};
}

/* ----------------------------------------------------------------------------- admit --- */

/* Admission plan of one group: which leading prompt blocks are cached, and how many blocks
 * must be new. */
typedef struct admit_plan {
    uint32_t n_table;     /* table length */
    uint32_t n_hits;      /* leading blocks found in the prefix cache */
    uint32_t n_hits_free; /* of those, blocks now on the LRU list */
    uint32_t n_new;       /* blocks to take from the free pool */
    uint32_t n_query;     /* full prompt blocks with a content id */
    uint64_t hash_after_hits;
} admit_plan;

/* Plan admitting req into group g, taking at most max_hits hits; hit block ids are written to
 * hits[0 .. n_hits). */
static void plan_admit(const kv_paged *p, bool prefix, uint32_t g, const kv_admit_req *req,
                       uint32_t max_hits, uint32_t *hits, admit_plan *pl)
{
    const kv_layout *l = &p->layout[g];
    uint32_t end = stored_end(p, g, req->prompt_tokens);
    *pl = (admit_plan){.n_table = blocks_for(p, end), .hash_after_hits = hash_root(g)};
    uint32_t first_kept = kv_layout_first_kept_block(l, req->prompt_tokens);
    uint32_t sink_blocks = kv_layout_sink_blocks(l);
    uint32_t dropped = first_kept > sink_blocks ? first_kept - sink_blocks : 0;
    if (prefix && req->block_content != NULL) {
        uint32_t n_full = req->prompt_tokens / p->pool.block_tokens;
        pl->n_query = req->n_block_content < n_full ? req->n_block_content : n_full;
        uint64_t h = pl->hash_after_hits;
        for (uint32_t i = 0; i < pl->n_query && i < max_hits; i++) {
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

/* Plan every group; hits of group g go to hits + g * hits_stride. A prefix hit counts only
 * where every group found it (a group cannot run a prompt block whose KV another group lacks):
 * groups are replanned with the common number of hits. *need gets the new blocks and *avail the
 * free blocks once the hits are taken. */
static void plan_admit_all(const kv_alloc *a, const kv_admit_req *req, uint32_t *hits,
                           size_t hits_stride, admit_plan *pl, uint64_t *need, uint64_t *avail)
{
    const kv_paged *p = &a->u.paged;
    bool prefix = a->cfg.paged.prefix_caching;
    if (p->n_groups == 1) { /* no common hit to find */
        plan_admit(p, prefix, 0, req, UINT32_MAX, hits, &pl[0]);
        *need = pl[0].n_new;
        *avail = n_free(p) - pl[0].n_hits_free;
        return;
    }
    uint32_t common = UINT32_MAX;
    for (uint32_t g = 0; g < p->n_groups; g++) {
        plan_admit(p, prefix, g, req, UINT32_MAX, hits + g * hits_stride, &pl[g]);
        if (pl[g].n_hits < common)
            common = pl[g].n_hits;
    }
    uint64_t n_new = 0, n_hits_free = 0;
    for (uint32_t g = 0; g < p->n_groups; g++) {
        if (pl[g].n_hits > common)
            plan_admit(p, prefix, g, req, common, hits + g * hits_stride, &pl[g]);
        n_new += pl[g].n_new;
        n_hits_free += pl[g].n_hits_free;
    }
    *need = n_new;
    *avail = n_free(p) - n_hits_free;
}

bool kv_paged_too_large(const kv_alloc *a, const kv_admit_req *req)
{
    return peak_blocks(&a->u.paged, req->final_tokens) > a->u.paged.pool.n_blocks;
}

bool kv_paged_can_admit(const kv_alloc *a, const kv_admit_req *req)
{
    const kv_paged *p = &a->u.paged;
    if (peak_blocks(p, req->final_tokens) > p->pool.n_blocks)
        return false;
    admit_plan pl[KV_MAX_GROUPS];
    uint64_t need, avail;
    plan_admit_all(a, req, p->hits, p->stride, pl, &need, &avail);
    if (need > avail)
        return false;
    return (avail - need) * p->pool.block_bytes >= kv_alloc_watermark_bytes(a);
}

kv_status kv_paged_admit(kv_alloc *a, kv_seq_id s, const kv_admit_req *req, uint32_t *cached_tokens)
{
    kv_paged *p = &a->u.paged;
    if (peak_blocks(p, req->final_tokens) > p->pool.n_blocks)
        return KV_TOO_LARGE;
    admit_plan pl[KV_MAX_GROUPS];
    uint64_t need, avail;
    plan_admit_all(a, req, table_of(p, s, 0), p->stride, pl, &need, &avail);
    if (need > avail)
        return KV_NO_SPACE;

    for (uint32_t g = 0; g < p->n_groups; g++) { /* take every hit before evicting anything */
        uint32_t *t = table_of(p, s, g);
        for (uint32_t i = 0; i < pl[g].n_hits; i++) {
            block_incref(p, t[i]);
            emit_table(a, s, g, i, t[i]);
        }
    }
    a->stats.prefix_query_blocks += pl[0].n_query;
    a->stats.prefix_hit_blocks += pl[0].n_hits;

    for (uint32_t g = 0; g < p->n_groups; g++) {
        const kv_layout *l = &p->layout[g];
        uint32_t *t = table_of(p, s, g);
        uint32_t end = stored_end(p, g, req->prompt_tokens);
        uint32_t first_kept = kv_layout_first_kept_block(l, req->prompt_tokens);
        uint32_t sink_blocks = kv_layout_sink_blocks(l);
        uint64_t h = pl[g].hash_after_hits;
        uint32_t n_dropped = 0;
        for (uint32_t i = pl[g].n_hits; i < pl[g].n_table; i++) {
            if (i >= sink_blocks && i < first_kept) {
                t[i] = KV_BLOCK_NONE;
                n_dropped++;
                emit_table(a, s, g, i, KV_BLOCK_NONE);
                continue;
            }
            uint32_t b = block_take_for(a, g);
            p->pool.fill[b] = fill_at(p, end, i);
            p->pool.filled_slots += p->pool.fill[b];
            t[i] = b;
            emit_table(a, s, g, i, b);
            if (i < pl[g].n_query) {
                h = chain_hash(h, req->block_content[i]);
                kv_block_pool_register(&p->pool, h, b);
            }
        }
        *counts_of(a, s, g) = (kv_pg_counts){.n_blocks = pl[g].n_table, .n_dropped = n_dropped};
    }
    *cached_tokens = pl[0].n_hits * p->pool.block_tokens;
    return KV_OK;
}

/* ---------------------------------------------------------------------------- append --- */

/* An append's plan for one group. */
typedef struct append_plan {
    uint32_t old_end, new_end, have, want;
    uint32_t drop_from, drop_to; /* entries [drop_from, drop_to) end up KV_BLOCK_NONE */
    uint32_t last;               /* the last present entry's block before the append */
    bool grows_last, cow;
    uint32_t freed, skipped; /* blocks the drops free; new entries never allocated */
} append_plan;

static void plan_append(const kv_alloc *a, kv_seq_id s, uint32_t g, uint32_t n_tokens,
                        append_plan *ap)
{
    const kv_paged *p = &a->u.paged;
    const kv_layout *l = &p->layout[g];
    const kv_seq *q = &a->seqs[s];
    const kv_pg_counts *c = ccounts_of(a, s, g);
    const uint32_t *t = table_of(p, s, g);
    ap->old_end = stored_end(p, g, q->tokens);
    ap->new_end = stored_end(p, g, q->tokens + n_tokens);
    ap->have = c->n_blocks;
    ap->want = blocks_for(p, ap->new_end);
    /* A window moving past blocks frees them before the new tokens need room: the engine
     * writes new tokens and forgets old ones in the same step. Entries [drop_from, drop_to)
     * end up KV_BLOCK_NONE, existing ones freed and new ones never allocated. */
    ap->drop_from = kv_layout_sink_blocks(l) + c->n_dropped;
    ap->drop_to = kv_layout_first_kept_block(l, q->tokens + n_tokens);
    if (ap->drop_to < ap->drop_from)
        ap->drop_to = ap->drop_from;
    uint32_t have = ap->have;
    ap->last = have > 0 ? t[have - 1] : KV_BLOCK_NONE;
    bool last_dropped = have > 0 && have - 1 >= ap->drop_from && have - 1 < ap->drop_to;
    ap->grows_last = !last_dropped && ap->new_end > ap->old_end && ap->last != KV_BLOCK_NONE &&
                     p->pool.fill[ap->last] < p->pool.block_tokens;
    ap->cow = ap->grows_last && p->pool.refcnt[ap->last] > 1;
    ap->freed = ap->skipped = 0;
    for (uint32_t i = ap->drop_from; i < ap->drop_to; i++) {
        if (i < have)
            ap->freed += p->pool.refcnt[t[i]] == 1;
        else if (i < ap->want)
            ap->skipped++;
    }
}

/* Commit group g's plan after every group's drops were made. */
static void commit_append(kv_alloc *a, kv_seq_id s, uint32_t g, const append_plan *ap)
{
    kv_paged *p = &a->u.paged;
    kv_pg_counts *c = counts_of(a, s, g);
    uint32_t *t = table_of(p, s, g);
    uint32_t have = ap->have, last = ap->last;
    if (ap->cow) {
        uint32_t b = block_take_for(a, g);
        p->pool.fill[b] = p->pool.fill[last];
        p->pool.filled_slots += p->pool.fill[b];
        a->stats.n_cow++;
        a->stats.copy_bytes += (uint64_t)p->pool.fill[last] * p->slot_bytes;
        kv_alloc_emit(a, block_effect(a, KV_FX_COPY, KV_CAUSE_COW, s, s, g, have - 1, last, b,
                                      (uint64_t)p->pool.fill[last] * p->slot_bytes));
        emit_table(a, s, g, have - 1, b);
        block_decref(p, last);
        t[have - 1] = last = b;
    }
    if (ap->grows_last) {
        uint32_t add = p->pool.block_tokens - p->pool.fill[last];
        if (add > ap->new_end - ap->old_end)
            add = ap->new_end - ap->old_end;
        p->pool.fill[last] += add;
        p->pool.filled_slots += add;
    }
    for (uint32_t i = have; i < ap->want; i++) {
        if (i >= ap->drop_from && i < ap->drop_to) {
            t[i] = KV_BLOCK_NONE;
            c->n_dropped++;
            emit_table(a, s, g, i, KV_BLOCK_NONE);
            continue;
        }
        uint32_t b = block_take_for(a, g);
        p->pool.fill[b] = fill_at(p, ap->new_end, i);
        p->pool.filled_slots += p->pool.fill[b];
        t[i] = b;
        emit_table(a, s, g, i, b);
    }
    c->n_blocks = ap->want;
}

/* The append of one group (every configuration without layer groups), in one function: the
 * same steps as plan_append + commit_append for g = 0; several groups go to
 * kv_paged_append_groups below (external, so that it is not inlined here). The general path
 * through the plans cost 30% more per append (12 -> 16 ns, best of 35 runs of 200 rounds of
 * 1,024 appends with Llama-3-8B's shape, 16-token blocks) for the calls and the plan it stores.
 * test_groups.c runs both on the same operations and compares their effects and states. */
kv_status kv_paged_append_groups(kv_alloc *a, kv_seq_id s, uint32_t n_tokens);

kv_status kv_paged_append(kv_alloc *a, kv_seq_id s, uint32_t n_tokens)
{
    kv_paged *p = &a->u.paged;
    if (!p->one_fast)
        return kv_paged_append_groups(a, s, n_tokens);
    const kv_layout *l = &p->layout[0];
    kv_seq *q = &a->seqs[s];
    uint32_t *t = p->tables + (size_t)s * p->stride;
    uint32_t old_end = stored_end(p, 0, q->tokens);
    uint32_t new_end = stored_end(p, 0, q->tokens + n_tokens);
    uint32_t have = q->u.pg.n_blocks, want = blocks_for(p, new_end);
    uint32_t drop_from = 0, drop_to = 0; /* only a window drops blocks */
    if (l->policy == KV_TOKENS_WINDOW) {
        drop_from = kv_layout_sink_blocks(l) + q->u.pg.n_dropped;
        drop_to = kv_layout_first_kept_block(l, q->tokens + n_tokens);
        if (drop_to < drop_from)
            drop_to = drop_from;
    }
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
        drop_block(a, s, 0, i);
    if (cow) {
        uint32_t b = block_take(a);
        p->pool.fill[b] = p->pool.fill[last];
        p->pool.filled_slots += p->pool.fill[b];
        a->stats.n_cow++;
        a->stats.copy_bytes += (uint64_t)p->pool.fill[last] * p->slot_bytes;
        kv_alloc_emit(a, block_effect(a, KV_FX_COPY, KV_CAUSE_COW, s, s, 0, have - 1, last, b,
                                      (uint64_t)p->pool.fill[last] * p->slot_bytes));
        emit_table(a, s, 0, have - 1, b);
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
            emit_table(a, s, 0, i, KV_BLOCK_NONE);
            continue;
        }
        uint32_t b = block_take(a);
        p->pool.fill[b] = fill_at(p, new_end, i);
        p->pool.filled_slots += p->pool.fill[b];
        t[i] = b;
        emit_table(a, s, 0, i, b);
    }
    q->u.pg.n_blocks = want;
    q->tokens += n_tokens;
    return KV_OK;
}

/* Every group planned, the sum checked against the pool, then every group's drops, then every
 * group's growth: nothing changes unless all of it fits. */
kv_status kv_paged_append_groups(kv_alloc *a, kv_seq_id s, uint32_t n_tokens)
{
    kv_paged *p = &a->u.paged;
    uint32_t n_groups = p->n_groups;
    append_plan ap[KV_MAX_GROUPS];
    uint64_t need = 0, freed = 0;
    for (uint32_t g = 0; g < n_groups; g++) {
        plan_append(a, s, g, n_tokens, &ap[g]);
        need += (uint64_t)(ap[g].want - ap[g].have - ap[g].skipped) + ap[g].cow;
        freed += ap[g].freed;
    }
    if (need > (uint64_t)n_free(p) + freed)
        return KV_NO_SPACE;
    for (uint32_t g = 0; g < n_groups; g++) /* every group's drops first: they make the room */
        for (uint32_t i = ap[g].drop_from; i < ap[g].drop_to && i < ap[g].have; i++)
            drop_block(a, s, g, i);
    for (uint32_t g = 0; g < n_groups; g++)
        commit_append(a, s, g, &ap[g]);
    a->seqs[s].tokens += n_tokens;
    return KV_OK;
}

/* ------------------------------------------------------------------------------ fork --- */

/* A fork shares every block of a group (reference counts; the shared last block is copied on
 * the first write), unless the group's layout evicts tokens per sequence: then it copies. */
static void fork_share(kv_alloc *a, kv_seq_id parent, kv_seq_id child, uint32_t g)
{
    kv_paged *p = &a->u.paged;
    const kv_pg_counts *c = ccounts_of(a, parent, g);
    const uint32_t *pt = table_of(p, parent, g);
    uint32_t *ct = table_of(p, child, g);
    for (uint32_t i = 0; i < c->n_blocks; i++) {
        ct[i] = pt[i];
        if (pt[i] != KV_BLOCK_NONE)
            block_incref(p, pt[i]);
        emit_table(a, child, g, i, pt[i]);
    }
    *counts_of(a, child, g) = *c;
}

static void fork_copy(kv_alloc *a, kv_seq_id parent, kv_seq_id child, uint32_t g)
{
    kv_paged *p = &a->u.paged;
    const kv_pg_counts *c = ccounts_of(a, parent, g);
    const uint32_t *pt = table_of(p, parent, g);
    uint32_t *ct = table_of(p, child, g);
    for (uint32_t i = 0; i < c->n_blocks; i++) {
        ct[i] = KV_BLOCK_NONE;
        if (pt[i] == KV_BLOCK_NONE) {
            emit_table(a, child, g, i, KV_BLOCK_NONE);
            continue;
        }
        uint32_t b = block_take_for(a, g);
        p->pool.fill[b] = p->pool.fill[pt[i]];
        p->pool.filled_slots += p->pool.fill[b];
        a->stats.copy_bytes += (uint64_t)p->pool.fill[b] * p->slot_bytes;
        kv_alloc_emit(a, block_effect(a, KV_FX_COPY, KV_CAUSE_FORK, parent, child, g, i, pt[i], b,
                                      (uint64_t)p->pool.fill[b] * p->slot_bytes));
        emit_table(a, child, g, i, b);
        ct[i] = b;
    }
    *counts_of(a, child, g) = *c;
}

kv_status kv_paged_fork(kv_alloc *a, kv_seq_id parent, kv_seq_id child)
{
    kv_paged *p = &a->u.paged;
    uint64_t need = 0;
    for (uint32_t g = 0; g < p->n_groups; g++)
        if (!kv_layout_shares(&p->layout[g]))
            need += present_blocks(ccounts_of(a, parent, g));
    if (need > n_free(p))
        return KV_NO_SPACE;
    for (uint32_t g = 0; g < p->n_groups; g++) {
        if (kv_layout_shares(&p->layout[g]))
            fork_share(a, parent, child, g);
        else
            fork_copy(a, parent, child, g);
    }
    return KV_OK;
}

void kv_paged_free(kv_alloc *a, kv_seq_id s)
{
    release_all(a, s);
}

/* ----------------------------------------------------------------------------- swaps --- */

kv_status kv_paged_swap_out(kv_alloc *a, kv_seq_id s, kv_swap_stats *st)
{
    const kv_paged *p = &a->u.paged;
    uint64_t n = present_all(a, s), bytes = n * p->pool.block_bytes;
    uint32_t *host = p->hits; /* scratch of every group's table length */
    if (kv_tier_take_blocks(&a->host, (uint32_t)n, host) != KV_OK)
        return KV_NO_SPACE;
    uint32_t k = 0;
    for (uint32_t g = 0; g < p->n_groups; g++) {
        const uint32_t *t = table_of(p, s, g);
        for (uint32_t i = 0; i < ccounts_of(a, s, g)->n_blocks; i++)
            if (t[i] != KV_BLOCK_NONE)
                kv_alloc_emit(a, block_effect(a, KV_FX_TRANSFER, KV_CAUSE_SWAP_OUT, s, s, g, i,
                                              t[i], host[k++], p->pool.block_bytes));
    }
    release_all(a, s);
    /* While swapped, the tables name host blocks: non-NONE marks a block to bring back. */
    k = 0;
    for (uint32_t g = 0; g < p->n_groups; g++) {
        uint32_t *t = table_of(p, s, g);
        for (uint32_t i = 0; i < ccounts_of(a, s, g)->n_blocks; i++)
            if (t[i] != KV_BLOCK_NONE)
                t[i] = host[k++];
    }
    *st = (kv_swap_stats){.bytes = bytes, .n_copies = n * p->group_tensors};
    return KV_OK;
}

kv_status kv_paged_swap_in(kv_alloc *a, kv_seq_id s, kv_swap_stats *st)
{
    kv_paged *p = &a->u.paged;
    const kv_seq *q = &a->seqs[s];
    uint32_t n = present_all(a, s);
    if (n > n_free(p))
        return KV_NO_SPACE;
    /* Every block first (table writes and evictions), then every transfer: a consumer applies
     * the tables once and the transfers of the sequence as one swap (runs of consecutive host
     * blocks). hits[k] keeps the host block of the k-th present entry. */
    uint32_t *host = p->hits, k = 0;
    for (uint32_t g = 0; g < p->n_groups; g++) {
        uint32_t *t = table_of(p, s, g), end = stored_end(p, g, q->tokens);
        for (uint32_t i = 0; i < ccounts_of(a, s, g)->n_blocks; i++) {
            if (t[i] == KV_BLOCK_NONE)
                continue;
            uint32_t b = block_take_for(a, g);
            p->pool.fill[b] = fill_at(p, end, i);
            p->pool.filled_slots += p->pool.fill[b];
            emit_table(a, s, g, i, b);
            host[k++] = t[i];
            t[i] = b;
        }
    }
    k = 0;
    for (uint32_t g = 0; g < p->n_groups; g++) {
        const uint32_t *t = table_of(p, s, g);
        for (uint32_t i = 0; i < ccounts_of(a, s, g)->n_blocks; i++)
            if (t[i] != KV_BLOCK_NONE)
                kv_alloc_emit(a, block_effect(a, KV_FX_TRANSFER, KV_CAUSE_SWAP_IN, s, s, g, i,
                                              host[k++], t[i], p->pool.block_bytes));
    }
    while (k-- > 0) /* last first: the next swap-out takes them in order */
        kv_tier_give_block(&a->host, host[k]);
    *st = (kv_swap_stats){.bytes = (uint64_t)n * p->pool.block_bytes,
                          .n_copies = (uint64_t)n * p->group_tensors};
    return KV_OK;
}

void kv_paged_host_release(kv_alloc *a, kv_seq_id s)
{
    for (uint32_t g = 0; g < a->u.paged.n_groups; g++) {
        const uint32_t *t = table_of(&a->u.paged, s, g);
        for (uint32_t i = ccounts_of(a, s, g)->n_blocks; i-- > 0;)
            if (t[i] != KV_BLOCK_NONE)
                kv_tier_give_block(&a->host, t[i]);
    }
}

kv_status kv_paged_check_host(const kv_alloc *a, kv_err *err)
{
    const kv_paged *p = &a->u.paged;
    uint8_t *mark = a->host_mark; /* kv_tier_check left 1 on every free id */
    uint64_t held = 0;
    for (uint32_t s = 0; s < a->cfg.max_seqs; s++) {
        if (a->seqs[s].state != KV_SEQ_SWAPPED)
            continue;
        for (uint32_t g = 0; g < p->n_groups; g++) {
            const uint32_t *t = table_of(p, s, g);
            for (uint32_t i = 0; i < ccounts_of(a, s, g)->n_blocks; i++) {
                if (t[i] == KV_BLOCK_NONE)
                    continue;
                if (t[i] >= a->host.next_fresh || mark[t[i]]++)
                    return kv_errorf(err, KV_CORRUPT,
                                     "host tier: swapped seq %u group %u entry %u names host "
                                     "block %u, free or named twice",
                                     s, g, i, t[i]);
                held++;
            }
        }
    }
    if (held != a->host.used_units)
        return kv_errorf(err, KV_CORRUPT, "host tier: swapped sequences hold %llu blocks, %llu used",
                         (unsigned long long)held, (unsigned long long)a->host.used_units);
    return KV_OK;
}

/* Drop present block i of s's group g: the window moved past it. */
static void drop_block(kv_alloc *a, kv_seq_id s, uint32_t g, uint32_t i)
{
    kv_paged *p = &a->u.paged;
    uint32_t *t = table_of(p, s, g);
    kv_pg_counts *c = counts_of(a, s, g);
    KV_ASSERT(i < c->n_blocks && t[i] != KV_BLOCK_NONE);
    kv_alloc_emit(a, (kv_effect){.kind = KV_FX_DROP,
                                 .cause = KV_CAUSE_WINDOW,
                                 .group = (uint8_t)g,
                                 .grouped = p->grouped,
                                 .seq = s,
                                 .src_seq = s,
                                 .src = t[i],
                                 .dst = KV_FX_NO_UNIT,
                                 .index = i});
    block_decref(p, t[i]);
    t[i] = KV_BLOCK_NONE;
    c->n_dropped++;
    a->stats.n_window_drops++;
}

/* ------------------------------------------------------------------ placement, memory --- */

void kv_paged_placement_group(const kv_alloc *a, kv_seq_id s, uint32_t g, kv_placement *out)
{
    const kv_paged *p = &a->u.paged;
    out->kind = KV_PLACE_BLOCKS;
    out->block_table = table_of(p, s, g);
    out->n_blocks = ccounts_of(a, s, g)->n_blocks;
    out->block_tokens = p->pool.block_tokens;
    out->block_bytes = p->pool.block_bytes;
}

void kv_paged_placement(const kv_alloc *a, kv_seq_id s, kv_placement *out)
{
    kv_paged_placement_group(a, s, 0, out);
}

/* One resident sequence's table of one group (layout l, counts c, table t): add the slots its
 * present blocks hold for tokens the layout no longer keeps to *dead, and raise the fill its
 * last block will reach (want[], listed once in touched[]). */
static inline void seq_slots(const kv_paged *p, const kv_seq *q, const kv_layout *l,
                             const kv_pg_counts *c, const uint32_t *t, uint64_t *dead,
                             uint32_t *n_touched)
{
    /* Slots of present blocks holding tokens the policy no longer keeps (window). */
    uint64_t stored = kv_layout_stored_end(l, q->tokens);
    *dead += stored - (uint64_t)c->n_dropped * p->pool.block_tokens -
             kv_layout_kept_tokens(l, q->tokens);
    /* The last block fills up to where the sequence's stored end will be at its final length;
     * with a shared partial block, the sharer that goes furthest decides. */
    uint32_t li = c->n_blocks - 1, b = t[li];
    uint32_t future_end =
        kv_layout_stored_end(l, q->final_tokens > q->tokens ? q->final_tokens : q->tokens);
    uint32_t w = fill_at(p, future_end > stored ? future_end : (uint32_t)stored, li);
    if (p->want[b] == 0)
        p->touched[(*n_touched)++] = b;
    if (w > p->want[b])
        p->want[b] = w;
}

/* Token slots of groups [g_lo, g_hi) of resident sequences: held by tokens the layout no longer
 * keeps (*dead), and reserved for tokens still to come (*res). Every group's slot has one size,
 * so slots of different groups add up. One group loops without the inner loop: the breakdown
 * runs every engine step, and the inner loop cost it 22% more instructions on a replay
 * (azure2023_conv, paged, rate-scale 3: 423 M against 345 M; 351 M without it). */
static void group_slots(const kv_alloc *a, uint32_t g_lo, uint32_t g_hi, uint64_t *dead_out,
                        uint64_t *res_out)
{
    const kv_paged *p = &a->u.paged;
    uint64_t dead = 0, res = 0;
    uint32_t n_touched = 0;
    if (p->n_groups == 1) {
        for (LIVE_EACH(a, i, s)) {
            const kv_seq *q = &a->seqs[s];
            if (q->state == KV_SEQ_RESIDENT)
                seq_slots(p, q, &p->layout[0], &q->u.pg, p->tables + (size_t)s * p->stride,
                          &dead, &n_touched);
        }
    } else {
        for (LIVE_EACH(a, i, s)) {
            const kv_seq *q = &a->seqs[s];
            if (q->state != KV_SEQ_RESIDENT)
                continue;
            for (uint32_t g = g_lo; g < g_hi; g++)
                seq_slots(p, q, &p->layout[g], ccounts_of(a, s, g), table_of(p, s, g), &dead,
                          &n_touched);
        }
    }
    for (uint32_t k = 0; k < n_touched; k++) {
        uint32_t b = p->touched[k];
        res += p->want[b] > p->pool.fill[b] ? p->want[b] - p->pool.fill[b] : 0;
        p->want[b] = 0;
    }
    *dead_out = dead;
    *res_out = res;
}

void kv_paged_breakdown(const kv_alloc *a, const kv_admit_req *waiting, kv_mem_breakdown *out)
{
    (void)waiting; /* any free block serves any request: no external fragmentation */
    const kv_paged *p = &a->u.paged;
    uint64_t dead, res;
    group_slots(a, 0, p->n_groups, &dead, &res);
    uint64_t tb = p->slot_bytes;
    uint64_t held_slots = (uint64_t)(p->pool.n_blocks - n_free(p)) * p->pool.block_tokens;
    uint64_t token_slots = p->pool.filled_slots - dead;
    out->token_bytes = token_slots * tb;
    out->reserved_bytes = res * tb;
    out->internal_frag_bytes = (held_slots - token_slots - res) * tb;
    out->external_frag_bytes = a->cfg.pool_bytes - (uint64_t)p->pool.n_blocks * p->pool.block_bytes;
    out->free_bytes = (uint64_t)n_free(p) * p->pool.block_bytes;
    out->cached_free_bytes = (uint64_t)p->pool.n_lru * p->pool.block_bytes;
}

void kv_paged_breakdown_group(const kv_alloc *a, uint32_t g, kv_mem_breakdown *out)
{
    const kv_paged *p = &a->u.paged;
    kv_paged_breakdown(a, NULL, out); /* the pool-wide fields, and one group's whole */
    if (!p->grouped)
        return;
    uint64_t dead, res, filled = 0, held = 0;
    group_slots(a, g, g + 1, &dead, &res);
    for (uint32_t b = 0; b < p->pool.n_blocks; b++)
        if (p->pool.refcnt[b] > 0 && p->block_group[b] == g) {
            held += p->pool.block_tokens;
            filled += p->pool.fill[b];
        }
    uint64_t tb = p->slot_bytes, token_slots = filled - dead;
    out->token_bytes = token_slots * tb;
    out->reserved_bytes = res * tb;
    out->internal_frag_bytes = (held - token_slots - res) * tb;
    out->uncompressed_token_bytes = 0;
    for (LIVE_EACH(a, i, s))
        if (a->seqs[s].state == KV_SEQ_RESIDENT)
            out->uncompressed_token_bytes += (uint64_t)a->seqs[s].tokens * p->native_slot_bytes;
}

/* ----------------------------------------------------------------------------- check --- */

/* Group g's tables of s: lengths, fills, dropped entries; references counted into ref. */
static kv_status check_tables(const kv_alloc *a, kv_seq_id s, uint32_t g, uint32_t *ref,
                              kv_err *err)
{
    const kv_paged *p = &a->u.paged;
    const kv_seq *q = &a->seqs[s];
    const kv_pg_counts *c = ccounts_of(a, s, g);
    uint32_t end = stored_end(p, g, q->tokens);
    if (c->n_blocks != blocks_for(p, end) || c->n_dropped > c->n_blocks)
        return kv_errorf(err, KV_CORRUPT,
                         "paged: seq %u group %u has %u blocks (%u dropped) for %u stored tokens",
                         s, g, c->n_blocks, c->n_dropped, end);
    const uint32_t *t = table_of(p, s, g);
    uint32_t n_none = 0;
    for (uint32_t i = 0; i < c->n_blocks; i++) {
        if (t[i] == KV_BLOCK_NONE) {
            n_none++;
            continue;
        }
        if (q->state == KV_SEQ_SWAPPED)
            continue; /* stale ids marking blocks to bring back */
        if (t[i] >= p->pool.n_blocks)
            return kv_errorf(err, KV_CORRUPT, "paged: seq %u group %u block %u is %u", s, g, i,
                             t[i]);
        if (p->pool.fill[t[i]] != fill_at(p, end, i))
            return kv_errorf(err, KV_CORRUPT,
                             "paged: seq %u group %u block %u (id %u) fill %u, expected %u", s, g,
                             i, t[i], p->pool.fill[t[i]], fill_at(p, end, i));
        if (p->grouped && p->block_group[t[i]] != g)
            return kv_errorf(err, KV_CORRUPT,
                             "paged: seq %u group %u block %u (id %u) belongs to group %u", s, g,
                             i, t[i], p->block_group[t[i]]);
        ref[t[i]]++;
    }
    if (n_none != c->n_dropped)
        return kv_errorf(err, KV_CORRUPT, "paged: seq %u group %u has %u dropped entries, counter %u",
                         s, g, n_none, c->n_dropped);
    if (c->n_blocks > 0 && t[c->n_blocks - 1] == KV_BLOCK_NONE)
        return kv_errorf(err, KV_CORRUPT, "paged: seq %u group %u dropped its last block", s, g);
    const kv_layout *l = &p->layout[g];
    if (l->policy == KV_TOKENS_WINDOW) { /* the window dropped exactly what it left */
        uint32_t sink = kv_layout_sink_blocks(l);
        uint32_t first = kv_layout_first_kept_block(l, q->tokens);
        uint32_t expect = first > sink ? first - sink : 0;
        if (c->n_dropped != expect)
            return kv_errorf(err, KV_CORRUPT,
                             "window: seq %u group %u of %u tokens dropped %u blocks, window "
                             "says %u",
                             s, g, q->tokens, c->n_dropped, expect);
        for (uint32_t i = sink; i < sink + expect; i++)
            if (t[i] != KV_BLOCK_NONE)
                return kv_errorf(err, KV_CORRUPT,
                                 "window: seq %u group %u keeps block %u outside the window", s,
                                 g, i);
    }
    return KV_OK;
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
        for (uint32_t g = 0; g < p->n_groups; g++) {
            kv_status st = check_tables(a, s, g, ref, err);
            if (st != KV_OK)
                return st;
        }
        if (q->state == KV_SEQ_SWAPPED &&
            q->host_bytes != (uint64_t)present_all(a, s) * p->pool.block_bytes)
            return kv_errorf(err, KV_CORRUPT, "paged: swapped seq %u holds %llu host bytes", s,
                             (unsigned long long)q->host_bytes);
    }
    for (uint32_t b = 0; b < p->pool.n_blocks; b++)
        if (p->want[b] != 0)
            return kv_errorf(err, KV_CORRUPT, "paged: breakdown scratch dirty at block %u", b);
    return kv_block_pool_check(&p->pool, ref, err); /* the pool, against the tables' references */
}
