/* contiguous.c — one extent of token slots per sequence (FasterTransformer, Orca, HF cache).
 *
 * Algorithm: the pool is n_units = pool_bytes / token_bytes token slots. Admission reserves an
 * extent whose length the reservation policy picks:
 *   max     the model's context (max_seq_tokens): never grows, wastes the most;
 *   pow2    the final length rounded up to a power of two (a size-class allocator);
 *   oracle  exactly the final length (the trace knows it; a lower bound on waste);
 *   grow    the prompt; when full, an extent twice as large (as a vector or HF's cache does).
 * Placement is first-fit or best-fit over boundary-tagged holes (holes.c), or buddy (buddy.c,
 * which rounds every extent up to a power of two). An append beyond the extent grows it: in
 * place when the space after it is free (as realloc does), otherwise by reallocate-and-copy:
 * the new extent is placed while the old one is still held, the tokens are copied (counted in
 * stats.copy_bytes and n_moves), and the old extent is freed. Fork places a fresh extent and
 * copies the parent's tokens: nothing is shareable in a contiguous layout.
 *
 * Swap moves the filled tokens in one copy (one extent); swap-in re-places the same capacity.
 *
 * Invariants (kv_contiguous_check): the placement structure's own; every resident sequence owns
 * exactly one allocated extent whose length is its capacity and holds its tokens; allocated
 * extents and free units add up to the pool.
 *
 * Glossary: unit = one token slot of token_bytes; cap = units of a sequence's extent.
 */
#include "alloc_internal.h"

/* ------------------------------------------------------------------------------------------ */

static bool use_buddy(const kv_alloc *a)
{
    return a->cfg.contiguous.fit == KV_FIT_BUDDY;
}

/* The placement structure, whichever it is. */
static uint32_t place(kv_alloc *a, uint32_t n_units, kv_seq_id owner)
{
    kv_contig *c = &a->u.contig;
    return use_buddy(a)
               ? kv_buddy_alloc(&c->buddy, n_units, owner)
               : kv_holes_alloc(&c->holes, n_units, a->cfg.contiguous.fit == KV_FIT_BEST, owner);
}

static bool extend(kv_alloc *a, uint32_t start, uint32_t n_units)
{
    kv_contig *c = &a->u.contig;
    return use_buddy(a) ? kv_buddy_extend(&c->buddy, start, n_units)
                        : kv_holes_extend(&c->holes, start, n_units);
}

static void release(kv_alloc *a, uint32_t start)
{
    kv_contig *c = &a->u.contig;
    if (use_buddy(a))
        kv_buddy_free(&c->buddy, start);
    else
        kv_holes_free(&c->holes, start);
}

static uint32_t extent_len(const kv_alloc *a, uint32_t start)
{
    const kv_contig *c = &a->u.contig;
    return use_buddy(a) ? kv_buddy_len(&c->buddy, start) : kv_holes_len(&c->holes, start);
}

static bool fits(const kv_alloc *a, uint32_t n_units)
{
    const kv_contig *c = &a->u.contig;
    return use_buddy(a) ? kv_buddy_fits(&c->buddy, n_units) : kv_holes_fits(&c->holes, n_units);
}

/* Units an extent for n_units really takes (buddy rounds up). */
static uint64_t taken_units(const kv_alloc *a, uint32_t n_units)
{
    return use_buddy(a) ? 1ull << kv_buddy_order_for(n_units) : n_units;
}

static uint64_t free_units(const kv_alloc *a)
{
    const kv_contig *c = &a->u.contig;
    return use_buddy(a) ? c->buddy.free_units : c->holes.free_units;
}

static uint32_t max_units(const kv_alloc *a)
{
    const kv_contig *c = &a->u.contig;
    return use_buddy(a) ? kv_buddy_max_units(&c->buddy) : c->n_units;
}

/* The reservation for a sequence holding `tokens` that will reach `final_tokens`. */
static uint32_t reservation(const kv_alloc *a, uint32_t tokens, uint32_t final_tokens)
{
    uint32_t max = a->cfg.max_seq_tokens, r = tokens;
    switch (a->cfg.contiguous.reserve) {
    case KV_RESERVE_MAX: r = max; break;
    case KV_RESERVE_POW2: {
        uint64_t p = 1;
        while (p < final_tokens)
            p <<= 1;
        r = p < max ? (uint32_t)p : max;
        break;
    }
    case KV_RESERVE_ORACLE: r = final_tokens; break;
    case KV_RESERVE_GROW: r = tokens; break;
    }
    return r > tokens ? r : tokens;
}

/* A copy or transfer of the first n_tokens token slots of an extent (token-major). */
static kv_effect extent_effect(const kv_alloc *a, kv_effect_kind kind, kv_effect_cause cause,
                               kv_seq_id from, kv_seq_id to, uint32_t src_start,
                               uint32_t dst_start, uint32_t n_tokens)
{
    return kv_alloc_run_effect(a, kind, cause, KV_AT_EXTENT, from, to,
                               (uint64_t)src_start * a->token_bytes,
                               (uint64_t)dst_start * a->token_bytes, n_tokens, 1);
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_contiguous_init(kv_alloc *a, kv_err *err)
{
    kv_contig *c = &a->u.contig;
    uint64_t n = a->cfg.pool_bytes / a->token_bytes;
    if (n == 0)
        return kv_errorf(err, KV_ERR_INPUT, "pool_bytes: %llu is less than one token (%llu bytes)",
                         (unsigned long long)a->cfg.pool_bytes, (unsigned long long)a->token_bytes);
    if (n >= (1u << 30))
        return kv_errorf(err, KV_ERR_INPUT, "pool_bytes: %llu token slots, at most 2^30",
                         (unsigned long long)n);
    c->n_units = (uint32_t)n;
    kv_status st =
        use_buddy(a) ? kv_buddy_init(&c->buddy, c->n_units) : kv_holes_init(&c->holes, c->n_units);
    if (st != KV_OK)
        return st;
    a->metadata_bytes +=
        use_buddy(a) ? kv_buddy_metadata_bytes(&c->buddy) : kv_holes_metadata_bytes(&c->holes);
    return KV_OK;
}

void kv_contiguous_fini(kv_alloc *a)
{
    if (use_buddy(a))
        kv_buddy_fini(&a->u.contig.buddy);
    else
        kv_holes_fini(&a->u.contig.holes);
}

bool kv_contiguous_too_large(const kv_alloc *a, const kv_admit_req *req)
{
    uint32_t need = reservation(a, req->prompt_tokens, req->final_tokens);
    return need > max_units(a) || req->final_tokens > max_units(a);
}

bool kv_contiguous_can_admit(const kv_alloc *a, const kv_admit_req *req)
{
    uint32_t need = reservation(a, req->prompt_tokens, req->final_tokens);
    if (!fits(a, need))
        return false;
    uint64_t left = (free_units(a) - taken_units(a, need)) * a->token_bytes;
    return left >= kv_alloc_watermark_bytes(a);
}

kv_status kv_contiguous_admit(kv_alloc *a, kv_seq_id s, const kv_admit_req *req,
                              uint32_t *cached_tokens)
{
    (void)cached_tokens; /* no prefix sharing across extents */
    if (kv_contiguous_too_large(a, req))
        return KV_TOO_LARGE;
    uint32_t start = place(a, reservation(a, req->prompt_tokens, req->final_tokens), s);
    if (start == KV_UNIT_NONE)
        return KV_NO_SPACE;
    a->seqs[s].u.ext.start = start;
    a->seqs[s].u.ext.cap = extent_len(a, start);
    return KV_OK;
}

kv_status kv_contiguous_append(kv_alloc *a, kv_seq_id s, uint32_t n_tokens)
{
    kv_seq *q = &a->seqs[s];
    uint32_t want = q->tokens + n_tokens;
    if (want > q->u.ext.cap) {
        uint64_t cap = q->u.ext.cap;
        while (cap < want)
            cap *= 2;
        if (cap > a->cfg.max_seq_tokens)
            cap = a->cfg.max_seq_tokens > want ? a->cfg.max_seq_tokens : want;
        if (extend(a, q->u.ext.start, (uint32_t)cap)) {
            q->u.ext.cap = extent_len(a, q->u.ext.start);
        } else {
            uint32_t start = place(a, (uint32_t)cap, s);
            if (start == KV_UNIT_NONE)
                return KV_NO_SPACE;
            a->stats.n_moves++;
            a->stats.copy_bytes += (uint64_t)q->tokens * a->token_bytes;
            kv_alloc_emit(a, extent_effect(a, KV_FX_COPY, KV_CAUSE_MOVE, s, s, q->u.ext.start,
                                           start, q->tokens));
            release(a, q->u.ext.start);
            q->u.ext.start = start;
            q->u.ext.cap = extent_len(a, start);
        }
    }
    q->tokens = want;
    return KV_OK;
}

kv_status kv_contiguous_fork(kv_alloc *a, kv_seq_id parent, kv_seq_id child)
{
    kv_seq *p = &a->seqs[parent], *c = &a->seqs[child];
    uint32_t start = place(a, reservation(a, p->tokens, c->final_tokens), child);
    if (start == KV_UNIT_NONE)
        return KV_NO_SPACE;
    c->u.ext.start = start;
    c->u.ext.cap = extent_len(a, start);
    a->stats.copy_bytes += (uint64_t)p->tokens * a->token_bytes;
    kv_alloc_emit(a, extent_effect(a, KV_FX_COPY, KV_CAUSE_FORK, parent, child, p->u.ext.start,
                                   start, p->tokens));
    return KV_OK;
}

void kv_contiguous_free(kv_alloc *a, kv_seq_id s)
{
    release(a, a->seqs[s].u.ext.start);
}

kv_status kv_contiguous_swap_out(kv_alloc *a, kv_seq_id s, kv_swap_stats *st)
{
    kv_seq *q = &a->seqs[s];
    uint64_t bytes = (uint64_t)q->tokens * a->token_bytes;
    uint32_t host_start;
    if (kv_tier_alloc_extent(&a->host, q->tokens, &host_start) != KV_OK)
        return KV_NO_SPACE;
    q->host_start = host_start;
    kv_alloc_emit(a, extent_effect(a, KV_FX_TRANSFER, KV_CAUSE_SWAP_OUT, s, s, q->u.ext.start,
                                   host_start, q->tokens));
    release(a, q->u.ext.start);
    q->u.ext.start = KV_UNIT_NONE;
    *st = (kv_swap_stats){.bytes = bytes, .n_copies = 1};
    return KV_OK;
}

kv_status kv_contiguous_swap_in(kv_alloc *a, kv_seq_id s, kv_swap_stats *st)
{
    kv_seq *q = &a->seqs[s];
    uint32_t start = place(a, q->u.ext.cap, s);
    if (start == KV_UNIT_NONE)
        return KV_NO_SPACE;
    q->u.ext.start = start;
    kv_alloc_emit(a, extent_effect(a, KV_FX_TRANSFER, KV_CAUSE_SWAP_IN, s, s, q->host_start,
                                   start, q->tokens));
    kv_tier_free_extent(&a->host, q->host_start, q->tokens);
    *st = (kv_swap_stats){.bytes = (uint64_t)q->tokens * a->token_bytes, .n_copies = 1};
    return KV_OK;
}

void kv_contiguous_placement(const kv_alloc *a, kv_seq_id s, kv_placement *out)
{
    const kv_seq *q = &a->seqs[s];
    out->kind = KV_PLACE_EXTENT;
    out->offset_bytes = (uint64_t)q->u.ext.start * a->token_bytes;
    out->capacity_bytes = (uint64_t)q->u.ext.cap * a->token_bytes;
}

void kv_contiguous_breakdown(const kv_alloc *a, const kv_admit_req *waiting, kv_mem_breakdown *out)
{
    const kv_contig *c = &a->u.contig;
    uint64_t tb = a->token_bytes, tok = 0, res = 0, intl = 0;
    for (LIVE_EACH(a, i, s)) {
        const kv_seq *q = &a->seqs[s];
        if (q->state != KV_SEQ_RESIDENT)
            continue;
        uint64_t cap = q->u.ext.cap, t = q->tokens;
        uint64_t fill_to = q->final_tokens < cap ? q->final_tokens : cap;
        tok += t;
        res += fill_to > t ? fill_to - t : 0;
        intl += cap - (fill_to > t ? fill_to : t);
    }
    uint32_t want = 0;
    if (waiting != NULL)
        want = reservation(a, waiting->prompt_tokens, waiting->final_tokens);
    uint64_t unusable =
        use_buddy(a) ? kv_buddy_free_below(&c->buddy, want) : kv_holes_free_below(&c->holes, want);
    uint64_t slack = a->cfg.pool_bytes - (uint64_t)c->n_units * tb;
    out->token_bytes = tok * tb;
    out->reserved_bytes = res * tb;
    out->internal_frag_bytes = intl * tb;
    out->external_frag_bytes = unusable * tb + slack;
    out->free_bytes = (free_units(a) - unusable) * tb;
}

kv_status kv_contiguous_check(const kv_alloc *a, kv_err *err)
{
    const kv_contig *c = &a->u.contig;
    kv_status st = use_buddy(a) ? kv_buddy_check(&c->buddy, err) : kv_holes_check(&c->holes, err);
    if (st != KV_OK)
        return st;
    uint64_t held = 0;
    for (uint32_t s = 0; s < a->cfg.max_seqs; s++) {
        const kv_seq *q = &a->seqs[s];
        if (q->state == KV_SEQ_SWAPPED && q->host_bytes != (uint64_t)q->tokens * a->token_bytes)
            return kv_errorf(err, KV_CORRUPT, "contiguous: swapped seq %u holds %llu host bytes", s,
                             (unsigned long long)q->host_bytes);
        if (q->state != KV_SEQ_RESIDENT)
            continue;
        uint32_t start = q->u.ext.start;
        if (start >= c->n_units)
            return kv_errorf(err, KV_CORRUPT, "contiguous: seq %u extent at %u", s, start);
        uint32_t owner =
            use_buddy(a) ? kv_buddy_owner(&c->buddy, start) : kv_holes_owner(&c->holes, start);
        if (owner != s || extent_len(a, start) != q->u.ext.cap || q->tokens > q->u.ext.cap)
            return kv_errorf(
                err, KV_CORRUPT,
                "contiguous: seq %u extent %u+%u (owner %u, length %u) holds %u tokens", s, start,
                q->u.ext.cap, owner, extent_len(a, start), q->tokens);
        held += q->u.ext.cap;
    }
    if (held + free_units(a) != c->n_units)
        return kv_errorf(err, KV_CORRUPT,
                         "contiguous: %llu units held + %llu free != %u in the pool",
                         (unsigned long long)held, (unsigned long long)free_units(a), c->n_units);
    return KV_OK;
}
