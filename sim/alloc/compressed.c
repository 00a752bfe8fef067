/* compressed.c — fewer bytes per token and/or fewer tokens, on paged blocks.
 *
 * Bytes: every element is stored in elem_bits (8: vLLM's fp8 kv_cache_dtype or int8; 4: int4;
 * 2: KIVI's 2-bit), plus one scale of scale_bytes per scale_group_elems elements of a token's
 * layer tensor (0 = one scale per tensor, no per-token overhead). A block of block_tokens holds
 * that many quantized tokens, so the same pool holds more blocks than plain paged.
 *
 * Tokens, the token policy:
 *   none    keep every token;
 *   window  keep sink_tokens from the start and the most recent window_tokens (StreamingLLM,
 *           Xiao et al. 2024). A block wholly outside both is freed as soon as the window moves
 *           past it; a block straddling the edge stays whole (its evicted tokens count as
 *           internal fragmentation). Admission allocates only the blocks the window keeps, as
 *           vLLM's sliding-window block manager does;
 *   budget  keep budget_tokens per sequence (H2O, SnapKV, PyramidKV keep a fixed number chosen
 *           by attention score). Which tokens go is a quality question this simulator does not
 *           model; for memory, once a sequence reaches its budget each new token takes an
 *           evicted token's slot, so its blocks stop growing at ceil(budget / block_tokens).
 * Under window and budget, forked sequences evict independently, so fork copies instead of
 * sharing, and prefix caching is refused by config validation.
 *
 * Everything else (free lists, refcounts, swap, placement, the breakdown) is paged.c's.
 * The breakdown's uncompressed_token_bytes gives every logical token at the native dtype,
 * to set against token_bytes.
 *
 * Invariants (kv_compressed_check): paged's, plus: under window, a sequence's dropped table
 * entries are exactly [sink blocks, first kept block) for its current length.
 *
 * Glossary: kept = tokens whose KV the policy keeps; stored end = logical position up to which
 * blocks exist (budget: min(tokens, budget)); sink blocks = blocks holding a sink token.
 */
#include "alloc_internal.h"

/* ------------------------------------------------------------------------------------------ */

static kv_token_policy policy(const kv_alloc *a)
{
    return a->cfg.compressed.policy;
}

static uint32_t min_u32(uint32_t x, uint32_t y)
{
    return x < y ? x : y;
}

/* ------------------------------------------------------------------------------------------ */

uint32_t kv_compressed_stored_end(const kv_alloc *a, uint32_t tokens)
{
    return policy(a) == KV_TOKENS_BUDGET ? min_u32(tokens, a->cfg.compressed.budget_tokens)
                                         : tokens;
}

uint32_t kv_compressed_kept_tokens(const kv_alloc *a, uint32_t tokens)
{
    const kv_alloc_config *c = &a->cfg;
    switch (policy(a)) {
    case KV_TOKENS_ALL: return tokens;
    case KV_TOKENS_BUDGET: return min_u32(tokens, c->compressed.budget_tokens);
    case KV_TOKENS_WINDOW: {
        uint32_t sinks = min_u32(tokens, c->compressed.sink_tokens);
        uint32_t recent_from =
            tokens > c->compressed.window_tokens ? tokens - c->compressed.window_tokens : 0;
        if (recent_from < sinks)
            recent_from = sinks;
        return sinks + (tokens - recent_from);
    }
    }
    return tokens;
}

uint32_t kv_compressed_sink_blocks(const kv_alloc *a)
{
    if (policy(a) != KV_TOKENS_WINDOW)
        return 0;
    uint32_t bt = a->cfg.paged.block_tokens;
    return (a->cfg.compressed.sink_tokens + bt - 1) / bt;
}

uint32_t kv_compressed_first_kept_block(const kv_alloc *a, uint32_t tokens)
{
    if (policy(a) != KV_TOKENS_WINDOW)
        return 0;
    uint32_t w = a->cfg.compressed.window_tokens, sink = kv_compressed_sink_blocks(a);
    uint32_t first = tokens > w ? (tokens - w) / a->cfg.paged.block_tokens : 0;
    return first > sink ? first : sink;
}

uint32_t kv_compressed_peak_blocks(const kv_alloc *a, uint32_t final_tokens)
{
    uint32_t bt = a->cfg.paged.block_tokens;
    uint32_t all = (kv_compressed_stored_end(a, final_tokens) + bt - 1) / bt;
    if (policy(a) != KV_TOKENS_WINDOW)
        return all;
    uint32_t w = a->cfg.compressed.window_tokens;
    uint64_t bound = (uint64_t)kv_compressed_sink_blocks(a) + (w + bt - 1) / bt + 1;
    return bound < all ? (uint32_t)bound : all;
}

kv_status kv_compressed_init(kv_alloc *a, kv_err *err)
{
    const kv_alloc_config *c = &a->cfg;
    kv_shape q = c->shape;
    q.elem_bits = c->compressed.elem_bits;
    q.scale_group_elems = c->compressed.scale_group_elems;
    q.scale_bytes = c->compressed.scale_bytes;
    kv_status st = kv_shape_validate(&q, err);
    if (st != KV_OK)
        return st;
    return kv_paged_init_blocks(a, kv_shape_token_bytes(&q), err);
}

void kv_compressed_fini(kv_alloc *a)
{
    kv_paged_fini(a);
}

bool kv_compressed_can_admit(const kv_alloc *a, const kv_admit_req *req)
{
    return kv_paged_can_admit(a, req);
}

kv_status kv_compressed_admit(kv_alloc *a, kv_seq_id s, const kv_admit_req *req,
                              uint32_t *cached_tokens)
{
    return kv_paged_admit(a, s, req, cached_tokens);
}

kv_status kv_compressed_append(kv_alloc *a, kv_seq_id s, uint32_t n_tokens)
{
    return kv_paged_append(a, s, n_tokens); /* paged.c slides the window */
}

kv_status kv_compressed_fork(kv_alloc *a, kv_seq_id parent, kv_seq_id child)
{
    return policy(a) == KV_TOKENS_ALL ? kv_paged_fork(a, parent, child)
                                      : kv_paged_fork_copy(a, parent, child);
}

void kv_compressed_free(kv_alloc *a, kv_seq_id s)
{
    kv_paged_free(a, s);
}

kv_status kv_compressed_swap_out(kv_alloc *a, kv_seq_id s, kv_swap_stats *st)
{
    return kv_paged_swap_out(a, s, st);
}

kv_status kv_compressed_swap_in(kv_alloc *a, kv_seq_id s, kv_swap_stats *st)
{
    return kv_paged_swap_in(a, s, st);
}

void kv_compressed_placement(const kv_alloc *a, kv_seq_id s, kv_placement *out)
{
    kv_paged_placement(a, s, out);
}

void kv_compressed_breakdown(const kv_alloc *a, const kv_admit_req *waiting, kv_mem_breakdown *out)
{
    kv_paged_breakdown(a, waiting, out);
}

kv_status kv_compressed_check(const kv_alloc *a, kv_err *err)
{
    kv_status st = kv_paged_check(a, err);
    if (st != KV_OK || policy(a) != KV_TOKENS_WINDOW)
        return st;
    uint32_t sink = kv_compressed_sink_blocks(a);
    for (uint32_t s = 0; s < a->cfg.max_seqs; s++) {
        const kv_seq *q = &a->seqs[s];
        if (q->state == KV_SEQ_FREE)
            continue;
        uint32_t first = kv_compressed_first_kept_block(a, q->tokens);
        uint32_t expect = first > sink ? first - sink : 0;
        if (q->u.pg.n_dropped != expect)
            return kv_errorf(err, KV_CORRUPT,
                             "compressed: seq %u of %u tokens dropped %u blocks, window says %u", s,
                             q->tokens, q->u.pg.n_dropped, expect);
        const uint32_t *t = a->u.paged.tables + (size_t)s * a->u.paged.stride;
        for (uint32_t i = sink; i < sink + expect; i++)
            if (t[i] != KV_BLOCK_NONE)
                return kv_errorf(err, KV_CORRUPT,
                                 "compressed: seq %u keeps block %u outside the window", s, i);
    }
    return KV_OK;
}
