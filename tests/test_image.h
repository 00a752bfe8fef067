/* test_image.h — a shadow image of KV memory, driven only by the allocator's effects.
 *
 * The image holds one tag per token slot of the device pool (per chunk series for chunk pools)
 * and of the host tier (its blocks, or its token slots with every series side by side). The test writes each new
 * token's tag where the sequence's KV lives, as kvgpu writes KV; every other change to memory
 * comes from applying the effects the allocator returned: block-table writes and chunk maps
 * build the image's own view of each sequence (never read back from the allocator), copies and
 * transfers move tags. After each operation every resident sequence must read back the tags it
 * was given, through that view; slots no resident sequence holds, and host units no swapped
 * sequence was given by its swap-out's transfers, are overwritten with garbage, so a missing or
 * misdirected copy or transfer shows. Tags of full prompt blocks with content ids are derived
 * from the content chain (so a prefix-cache hit must find them) and are never scrubbed.
 *
 * Layer groups: over blocks, each group has its own view of each sequence (the series index is
 * the group), built from the TABLE and DROP effects that name the group; a token is written to
 * its slot in every group that keeps it, and must read back from every one.
 *
 * Glossary: tag = what a token slot holds; view = the image's table (blocks) or map (chunks)
 * of each sequence, from effects, per layer group or chunk series; stored = tokens whose KV the
 * layout keeps.
 */
#ifndef KV_TEST_IMAGE_H
#define KV_TEST_IMAGE_H

#include "test_util.h"

#define IMG_CONTENT (1ull << 63) /* a content-derived tag: never scrubbed */
#define IMG_NONE    UINT32_MAX

typedef struct image {
    kv_alloc_config cfg;
    kv_place_kind kind;
    uint64_t token_bytes;
    uint32_t unit_tokens; /* block or chunk tokens; 1 for extents */
    uint32_t n_units, n_series, stride, max_tokens, max_seqs; /* blocks: series = layer group */
    uint64_t *dev;    /* n_units x unit_tokens */
    uint32_t *view;   /* [seq][series][stride]: unit ids from effects */
    uint64_t *host;   /* host tier: n_host_units x unit_tokens (blocks) or x n_series (tokens) */
    uint32_t n_host_units, host_slot_tags;
    uint32_t *host_rec; /* [seq][series][stride] + 2: host block per table entry, or
                         * {start, tokens} */
    uint8_t *host_held; /* per host unit, scratch */
    uint64_t *expect; /* [seq][max_tokens] */
    uint8_t *held;    /* per unit, scratch */
    uint64_t next_tag;
} image;

/* ------------------------------------------------------------------------------------------ */

static inline uint64_t img_mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ull;
    x ^= x >> 29;
    return x;
}

static inline void img_init(image *m, const kv_alloc *a)
{
    const kv_alloc_config *c = kv_alloc_config_of(a);
    *m = (image){.cfg = *c, .token_bytes = kv_alloc_token_bytes(a), .n_series = 1,
                 .max_tokens = c->max_seq_tokens, .max_seqs = c->max_seqs, .next_tag = 1};
    switch (c->strategy) {
    case KV_CONTIGUOUS:
        m->kind = KV_PLACE_EXTENT;
        m->unit_tokens = 1;
        m->n_units = (uint32_t)(c->pool_bytes / m->token_bytes);
        break;
    case KV_CHUNK_POOL: {
        m->kind = KV_PLACE_CHUNKS;
        bool fused = c->chunk.layout == KV_CHUNK_FUSED;
        m->n_series = fused ? 1 : kv_shape_n_tensors(&c->shape);
        uint64_t series_tb = fused ? m->token_bytes : kv_shape_tensor_token_bytes(&c->shape);
        uint64_t ct = c->chunk.chunk_bytes / series_tb;
        m->unit_tokens = ct > c->max_seq_tokens ? c->max_seq_tokens : (uint32_t)ct;
        m->n_units = (uint32_t)(c->pool_bytes / c->chunk.chunk_bytes);
        break;
    }
    default: /* a block is a page of one group: its layers' share of a token */
        m->kind = KV_PLACE_BLOCKS;
        m->n_series = kv_alloc_n_groups(a);
        m->unit_tokens = c->paged.block_tokens;
        m->n_units = (uint32_t)(c->pool_bytes /
                                ((uint64_t)m->unit_tokens * m->token_bytes / m->n_series));
        break;
    }
    m->stride = (m->max_tokens + m->unit_tokens - 1) / m->unit_tokens;
    bool host_blocks = m->kind == KV_PLACE_BLOCKS;
    uint64_t host_unit_bytes = host_blocks
                                   ? (uint64_t)m->unit_tokens * m->token_bytes / m->n_series
                                   : m->token_bytes;
    m->n_host_units = (uint32_t)(c->host_pool_bytes / host_unit_bytes);
    m->host_slot_tags = host_blocks ? m->unit_tokens : m->n_series;
    m->host_rec =
        malloc((size_t)m->max_seqs * (m->n_series * m->stride + 2) * sizeof *m->host_rec);
    m->host_held = calloc((size_t)m->n_host_units + 1, 1);
    assert_non_null(m->host_rec);
    assert_non_null(m->host_held);
    size_t views = (size_t)m->max_seqs * m->n_series * m->stride;
    m->dev = calloc((size_t)m->n_units * m->unit_tokens, sizeof *m->dev);
    m->view = malloc(views * sizeof *m->view);
    m->host = calloc(((size_t)m->n_host_units + 1) * m->host_slot_tags, sizeof *m->host);
    m->expect = calloc((size_t)m->max_seqs * m->max_tokens, sizeof *m->expect);
    m->held = calloc(m->n_units, 1);
    assert_non_null(m->dev);
    assert_non_null(m->view);
    assert_non_null(m->host);
    assert_non_null(m->expect);
    assert_non_null(m->held);
    memset(m->view, 0xff, views * sizeof *m->view);
}

static inline void img_fini(image *m)
{
    free(m->dev);
    free(m->view);
    free(m->host);
    free(m->expect);
    free(m->held);
    free(m->host_rec);
    free(m->host_held);
}

static inline uint32_t *img_view(image *m, kv_seq_id s, uint32_t series)
{
    return m->view + ((size_t)s * m->n_series + series) * m->stride;
}

static inline uint64_t *img_expect(image *m, kv_seq_id s)
{
    return m->expect + (size_t)s * m->max_tokens;
}

static inline uint32_t *img_host_rec(image *m, kv_seq_id s)
{
    return m->host_rec + (size_t)s * (m->n_series * m->stride + 2);
}

/* The token policy and budget of layer group g (blocks). */
static inline kv_token_policy img_policy(const image *m, uint32_t g, uint32_t *budget)
{
    if (m->cfg.n_groups > 0) {
        *budget = m->cfg.groups[g].budget_tokens;
        return m->cfg.groups[g].policy;
    }
    *budget = m->cfg.compressed.budget_tokens;
    return m->cfg.strategy == KV_COMPRESSED ? m->cfg.compressed.policy : KV_TOKENS_ALL;
}

/* Whether group g's window has dropped block i of a sequence of `tokens` tokens: the image's
 * own arithmetic (layout.h's rule: blocks wholly between the sinks and the window go). */
static inline bool img_window_dropped(const image *m, uint32_t g, uint32_t tokens, uint32_t i)
{
    const kv_alloc_config *c = &m->cfg;
    uint32_t sink, window, bt = m->unit_tokens;
    if (c->n_groups > 0 && c->groups[g].policy == KV_TOKENS_WINDOW)
        sink = c->groups[g].sink_tokens, window = c->groups[g].window_tokens;
    else if (c->n_groups == 0 && c->strategy == KV_COMPRESSED &&
             c->compressed.policy == KV_TOKENS_WINDOW)
        sink = c->compressed.sink_tokens, window = c->compressed.window_tokens;
    else
        return false;
    uint32_t sink_blocks = (sink + bt - 1) / bt;
    uint32_t first_kept = tokens > window ? (tokens - window) / bt : 0;
    return i >= sink_blocks && i < first_kept;
}

/* Whether token t of resident s is stored, and where (the slot index in dev). */
static inline bool img_slot(image *m, const kv_alloc *a, kv_seq_id s, uint32_t series, uint32_t t,
                            size_t *slot)
{
    uint32_t budget = 0;
    if (m->kind == KV_PLACE_BLOCKS && img_policy(m, series, &budget) == KV_TOKENS_BUDGET &&
        t >= budget)
        return false; /* beyond the budget a token takes an evicted one's slot: not modelled */
    if (m->kind == KV_PLACE_EXTENT) {
        kv_placement p;
        assert_int_equal(kv_alloc_placement(a, s, &p), KV_OK);
        *slot = p.offset_bytes / m->token_bytes + t;
        return true;
    }
    uint32_t u = img_view(m, s, series)[t / m->unit_tokens];
    if (u == IMG_NONE) {
        if (m->kind == KV_PLACE_BLOCKS && img_window_dropped(m, series, kv_alloc_seq_tokens(a, s),
                                                             t / m->unit_tokens))
            return false; /* dropped by the window */
        fail_msg("seq %u token %u: no unit in the image's view of group/series %u, entry %u (an "
                 "effect is missing)",
                 s, t, series, t / m->unit_tokens);
    }
    assert_true(u < m->n_units);
    *slot = (size_t)u * m->unit_tokens + t % m->unit_tokens;
    return true;
}

/* Give tokens [from, to) of s the tags they must hold, and write them (a prefill or decode). */
static inline void img_write(image *m, const kv_alloc *a, kv_seq_id s, uint32_t from, uint32_t to)
{
    uint64_t *x = img_expect(m, s);
    for (uint32_t t = from; t < to; t++)
        for (uint32_t j = 0; j < m->n_series; j++) {
            size_t slot;
            if (img_slot(m, a, s, j, t, &slot))
                m->dev[slot] = x[t];
        }
}

/* New tags for tokens [from, to) of s; those in full prompt blocks with content ids are
 * derived from the content chain. */
static inline void img_tag(image *m, kv_seq_id s, uint32_t from, uint32_t to,
                           const uint64_t *content, uint32_t n_content, uint32_t bt)
{
    uint64_t *x = img_expect(m, s), chain = 0x1234;
    uint32_t b_done = 0;
    for (uint32_t t = from; t < to; t++) {
        uint32_t b = bt ? t / bt : 0;
        if (content && bt && b < n_content) {
            for (; b_done <= b; b_done++)
                chain = img_mix(chain ^ content[b_done]);
            x[t] = IMG_CONTENT | (img_mix(chain + t % bt) >> 1);
        } else {
            x[t] = m->next_tag++;
        }
    }
}

/* Apply one operation's effects. */
static inline void img_apply(image *m, const kv_alloc *a, const kv_effect *fx, uint32_t n)
{
    uint32_t ut = m->unit_tokens;
    kv_seq_id recorded = KV_SEQ_NONE; /* the sequence whose host record this swap-out rewrites */
    for (uint32_t i = 0; i < n; i++) {
        const kv_effect *e = &fx[i];
        switch ((kv_effect_kind)e->kind) {
        case KV_FX_MAP: img_view(m, e->seq, e->series)[e->index] = e->dst; break;
        case KV_FX_UNMAP:
            assert_int_equal(img_view(m, e->seq, e->series)[e->index], e->dst);
            img_view(m, e->seq, e->series)[e->index] = IMG_NONE;
            break;
        case KV_FX_TABLE:
            img_view(m, e->seq, e->group)[e->index] = e->dst == KV_FX_NO_UNIT ? IMG_NONE : e->dst;
            break;
        case KV_FX_DROP:
            if (e->cause == KV_CAUSE_WINDOW) {
                assert_int_equal(img_view(m, e->seq, e->group)[e->index], e->src);
                img_view(m, e->seq, e->group)[e->index] = IMG_NONE;
            }
            break;
        case KV_FX_COPY:
            if (e->at == KV_AT_BLOCK) {
                memmove(&m->dev[(size_t)e->dst * ut], &m->dev[(size_t)e->src * ut],
                        ut * sizeof *m->dev);
            } else if (e->at == KV_AT_EXTENT) {
                memmove(&m->dev[e->dst_offset_bytes / m->token_bytes],
                        &m->dev[e->src_offset_bytes / m->token_bytes],
                        e->n_tokens * sizeof *m->dev);
            } else { /* a range: through both views */
                for (uint32_t j = 0; j < m->n_series; j++)
                    for (uint32_t t = 0; t < e->n_tokens; t++) {
                        uint32_t us = img_view(m, e->src_seq, j)[t / ut];
                        uint32_t ud = img_view(m, e->seq, j)[t / ut];
                        assert_true(us != IMG_NONE && ud != IMG_NONE);
                        m->dev[(size_t)ud * ut + t % ut] = m->dev[(size_t)us * ut + t % ut];
                    }
            }
            break;
        case KV_FX_TRANSFER: {
            bool out = e->cause == KV_CAUSE_SWAP_OUT;
            uint32_t *rec = img_host_rec(m, e->seq);
            if (out && recorded != e->seq) {
                memset(rec, 0xff, (m->n_series * m->stride + 2) * sizeof *rec);
                recorded = e->seq;
            }
            if (e->at == KV_AT_BLOCK) {
                uint32_t dev_u = out ? e->src : e->dst, host_u = out ? e->dst : e->src;
                uint32_t at = e->group * m->stride + e->index;
                assert_true(host_u < m->n_host_units);
                if (out)
                    rec[at] = host_u;
                else
                    assert_int_equal(rec[at], host_u);
                uint64_t *h = &m->host[(size_t)host_u * ut];
                uint64_t *d = &m->dev[(size_t)dev_u * ut];
                memcpy(out ? h : d, out ? d : h, ut * sizeof *m->dev);
                break;
            }
            uint64_t host_first = (out ? e->dst_offset_bytes : e->src_offset_bytes) / m->token_bytes;
            assert_true(host_first + e->n_tokens <= m->n_host_units);
            if (out)
                rec[0] = (uint32_t)host_first, rec[1] = e->n_tokens;
            for (uint32_t j = 0; j < m->n_series; j++)
                for (uint32_t t = 0; t < e->n_tokens; t++) {
                    uint64_t *d;
                    if (e->at == KV_AT_EXTENT) {
                        d = &m->dev[(out ? e->src_offset_bytes : e->dst_offset_bytes) /
                                        m->token_bytes +
                                    t];
                    } else {
                        uint32_t u = img_view(m, e->seq, j)[t / ut];
                        assert_true(u != IMG_NONE);
                        d = &m->dev[(size_t)u * ut + t % ut];
                    }
                    uint64_t *h = &m->host[(host_first + t) * m->n_series + j];
                    if (out)
                        *h = *d;
                    else
                        *d = *h;
                }
            break;
        }
        case KV_FX_N_KINDS: break;
        }
    }
    (void)a;
}

/* Overwrite every slot no resident sequence holds (content-derived tags apart), then check that
 * every resident sequence reads back its tags. ids[0 .. n) are the live sequences. */
static inline void img_verify(image *m, const kv_alloc *a, const kv_seq_id *ids, uint32_t n,
                              const char *what, uint64_t step)
{
    memset(m->held, 0, m->n_units);
    for (uint32_t k = 0; k < n; k++) {
        kv_seq_id s = ids[k];
        if (kv_alloc_seq_state(a, s) != KV_SEQ_RESIDENT)
            continue;
        if (m->kind == KV_PLACE_EXTENT) {
            kv_placement p;
            assert_int_equal(kv_alloc_placement(a, s, &p), KV_OK);
            uint64_t first = p.offset_bytes / m->token_bytes;
            memset(m->held + first, 1, p.capacity_bytes / m->token_bytes);
            continue;
        }
        kv_placement p;
        assert_int_equal(kv_alloc_placement(a, s, &p), KV_OK);
        uint32_t units = m->kind == KV_PLACE_BLOCKS ? p.n_blocks : p.n_chunks;
        for (uint32_t j = 0; j < m->n_series; j++) {
            if (m->kind == KV_PLACE_BLOCKS) { /* each group's own table */
                assert_int_equal(kv_alloc_placement_group(a, s, j, &p), KV_OK);
                units = p.n_blocks;
            }
            for (uint32_t i = 0; i < units; i++) {
                uint32_t u = img_view(m, s, j)[i];
                if (u != IMG_NONE)
                    m->held[u] = 1;
            }
        }
    }
    memset(m->host_held, 0, m->n_host_units);
    for (uint32_t k = 0; k < n; k++) {
        kv_seq_id s = ids[k];
        if (kv_alloc_seq_state(a, s) != KV_SEQ_SWAPPED)
            continue;
        const uint32_t *rec = img_host_rec(m, s);
        if (m->kind == KV_PLACE_BLOCKS) {
            uint32_t n_idx = (kv_alloc_seq_tokens(a, s) + m->unit_tokens - 1) / m->unit_tokens;
            for (uint32_t j = 0; j < m->n_series; j++)
                for (uint32_t i = 0; i < n_idx; i++)
                    if (rec[j * m->stride + i] != IMG_NONE)
                        m->host_held[rec[j * m->stride + i]] = 1;
        } else {
            memset(m->host_held + rec[0], 1, rec[1]);
        }
    }
    for (uint32_t u = 0; u < m->n_host_units; u++)
        if (!m->host_held[u])
            for (uint32_t o = 0; o < m->host_slot_tags; o++)
                m->host[(size_t)u * m->host_slot_tags + o] = 0xbad0000000000000ull + m->next_tag++;
    for (uint32_t u = 0; u < m->n_units; u++)
        if (!m->held[u])
            for (uint32_t o = 0; o < m->unit_tokens; o++) {
                uint64_t *d = &m->dev[(size_t)u * m->unit_tokens + o];
                if (!(*d & IMG_CONTENT))
                    *d = 0xdead000000000000ull + m->next_tag++;
            }
    for (uint32_t k = 0; k < n; k++) {
        kv_seq_id s = ids[k];
        if (kv_alloc_seq_state(a, s) != KV_SEQ_RESIDENT)
            continue;
        const uint64_t *x = img_expect(m, s);
        uint32_t tokens = kv_alloc_seq_tokens(a, s);
        for (uint32_t j = 0; j < m->n_series; j++)
            for (uint32_t t = 0; t < tokens; t++) {
                size_t slot;
                if (img_slot(m, a, s, j, t, &slot) && m->dev[slot] != x[t])
                    fail_msg("%s step %llu: seq %u token %u series %u holds %llx, expected "
                             "%llx",
                             what, (unsigned long long)step, s, t, j,
                             (unsigned long long)m->dev[slot], (unsigned long long)x[t]);
            }
    }
}

#endif
