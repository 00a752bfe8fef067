/* layout.h — how one sequence's tokens lie on a blocks pool: which tokens are kept, and up to
 * where its blocks reach, for one group of layers.
 *
 * Layouts (DESIGN.md §3; alloc.h's kv_token_policy names them on the command line):
 *   full    every token of the history is kept (full attention): the identity;
 *   window  sink_tokens from the start and the most recent window_tokens (StreamingLLM, Xiao et
 *           al. 2024; sliding-window layers). A block wholly outside both is dropped as soon as
 *           the window moves past it; a block straddling the edge stays whole (its evicted tokens
 *           count as internal fragmentation). Admission allocates only the blocks the window
 *           keeps, as vLLM's sliding-window manager does;
 *   budget  budget_tokens per sequence (H2O, SnapKV, PyramidKV keep a fixed number chosen by
 *           attention score). Which tokens go is a quality question this simulator does not
 *           model; for memory, once a sequence reaches its budget each new token takes an evicted
 *           token's slot, so its blocks stop growing at ceil(budget / block_tokens).
 * Under window and budget, forked sequences evict independently, so a fork copies instead of
 * sharing, and prefix caching is refused by config validation.
 *
 * Every function is pure arithmetic on a sequence's length: paged.c asks them, whatever the
 * layout, and never branches on the strategy.
 *
 * Glossary: kept = tokens whose KV the layout keeps; stored end = the logical position up to
 * which blocks exist (budget: min(tokens, budget)); sink blocks = blocks holding a sink token.
 */
#ifndef KV_LAYOUT_H
#define KV_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"

typedef struct kv_layout {
    kv_token_policy policy;
    uint32_t block_tokens;
    uint32_t sink_tokens, window_tokens; /* window */
    uint32_t budget_tokens;              /* budget */
} kv_layout;

/* The layout configuration c asks of its blocks: compressed's token policy, else full. */
kv_layout kv_layout_of(const kv_alloc_config *c);

/* The layout of layer group g: groups[g]'s when c->n_groups > 0, else kv_layout_of(c) (g == 0).
 * Precondition: c validated, g < max(n_groups, 1). */
kv_layout kv_layout_of_group(const kv_alloc_config *c, uint32_t g);

/* Whether forks may share blocks (only when every token is kept). */
static inline bool kv_layout_shares(const kv_layout *l)
{
    return l->policy == KV_TOKENS_ALL;
}

/* Inline: paged.c asks these on every append (out of line they cost 4% of a replay). */

static inline uint32_t kv_layout_min_(uint32_t x, uint32_t y)
{
    return x < y ? x : y;
}

/* Tokens kept, and the stored end, of a sequence of `tokens` logical tokens. */
static inline uint32_t kv_layout_stored_end(const kv_layout *l, uint32_t tokens)
{
    return l->policy == KV_TOKENS_BUDGET ? kv_layout_min_(tokens, l->budget_tokens) : tokens;
}

static inline uint32_t kv_layout_kept_tokens(const kv_layout *l, uint32_t tokens)
{
    switch (l->policy) {
    case KV_TOKENS_ALL: return tokens;
    case KV_TOKENS_BUDGET: return kv_layout_min_(tokens, l->budget_tokens);
    case KV_TOKENS_WINDOW: {
        uint32_t sinks = kv_layout_min_(tokens, l->sink_tokens);
        uint32_t recent_from = tokens > l->window_tokens ? tokens - l->window_tokens : 0;
        if (recent_from < sinks)
            recent_from = sinks;
        return sinks + (tokens - recent_from);
    }
    }
    return tokens;
}

/* Blocks the window never drops (those holding sink tokens); 0 for other layouts. */
static inline uint32_t kv_layout_sink_blocks(const kv_layout *l)
{
    if (l->policy != KV_TOKENS_WINDOW)
        return 0;
    return (l->sink_tokens + l->block_tokens - 1) / l->block_tokens;
}

/* The first block after the sinks still kept at length `tokens` (window); 0 otherwise. Entries
 * [sink blocks, first kept block) are dropped. */
static inline uint32_t kv_layout_first_kept_block(const kv_layout *l, uint32_t tokens)
{
    if (l->policy != KV_TOKENS_WINDOW)
        return 0;
    uint32_t w = l->window_tokens, sink = kv_layout_sink_blocks(l);
    uint32_t first = tokens > w ? (tokens - w) / l->block_tokens : 0;
    return first > sink ? first : sink;
}

/* An upper bound (exact but for at most one block under window) on the blocks a sequence holds
 * at once during a life ending at final_tokens. */
static inline uint32_t kv_layout_peak_blocks(const kv_layout *l, uint32_t final_tokens)
{
    uint32_t bt = l->block_tokens;
    uint32_t all = (uint32_t)(((uint64_t)kv_layout_stored_end(l, final_tokens) + bt - 1) / bt);
    if (l->policy != KV_TOKENS_WINDOW)
        return all;
    uint64_t bound = (uint64_t)kv_layout_sink_blocks(l) + (l->window_tokens + bt - 1) / bt + 1;
    return bound < all ? (uint32_t)bound : all;
}

#endif
