/* layout.c — token layouts over blocks: full, window with sinks, budget. See layout.h. */
#include "layout.h"

/* ------------------------------------------------------------------------------------------ */

static uint32_t min_u32(uint32_t x, uint32_t y)
{
    return x < y ? x : y;
}

/* ------------------------------------------------------------------------------------------ */

kv_layout kv_layout_of(const kv_alloc_config *c)
{
    kv_layout l = {.policy = KV_TOKENS_ALL, .block_tokens = c->paged.block_tokens};
    if (c->strategy == KV_COMPRESSED) {
        l.policy = c->compressed.policy;
        l.sink_tokens = c->compressed.sink_tokens;
        l.window_tokens = c->compressed.window_tokens;
        l.budget_tokens = c->compressed.budget_tokens;
    }
    return l;
}

kv_layout kv_layout_of_group(const kv_alloc_config *c, uint32_t g)
{
    if (c->n_groups == 0)
        return kv_layout_of(c);
    const kv_layer_group *lg = &c->groups[g];
    return (kv_layout){.policy = lg->policy,
                       .block_tokens = c->paged.block_tokens,
                       .sink_tokens = lg->sink_tokens,
                       .window_tokens = lg->window_tokens,
                       .budget_tokens = lg->budget_tokens};
}

uint32_t kv_layout_stored_end(const kv_layout *l, uint32_t tokens)
{
    return l->policy == KV_TOKENS_BUDGET ? min_u32(tokens, l->budget_tokens) : tokens;
}

uint32_t kv_layout_kept_tokens(const kv_layout *l, uint32_t tokens)
{
    switch (l->policy) {
    case KV_TOKENS_ALL: return tokens;
    case KV_TOKENS_BUDGET: return min_u32(tokens, l->budget_tokens);
    case KV_TOKENS_WINDOW: {
        uint32_t sinks = min_u32(tokens, l->sink_tokens);
        uint32_t recent_from = tokens > l->window_tokens ? tokens - l->window_tokens : 0;
        if (recent_from < sinks)
            recent_from = sinks;
        return sinks + (tokens - recent_from);
    }
    }
    return tokens;
}

uint32_t kv_layout_sink_blocks(const kv_layout *l)
{
    if (l->policy != KV_TOKENS_WINDOW)
        return 0;
    return (l->sink_tokens + l->block_tokens - 1) / l->block_tokens;
}

uint32_t kv_layout_first_kept_block(const kv_layout *l, uint32_t tokens)
{
    if (l->policy != KV_TOKENS_WINDOW)
        return 0;
    uint32_t w = l->window_tokens, sink = kv_layout_sink_blocks(l);
    uint32_t first = tokens > w ? (tokens - w) / l->block_tokens : 0;
    return first > sink ? first : sink;
}

uint32_t kv_layout_peak_blocks(const kv_layout *l, uint32_t final_tokens)
{
    uint32_t bt = l->block_tokens;
    uint32_t all = (uint32_t)(((uint64_t)kv_layout_stored_end(l, final_tokens) + bt - 1) / bt);
    if (l->policy != KV_TOKENS_WINDOW)
        return all;
    uint64_t bound = (uint64_t)kv_layout_sink_blocks(l) + (l->window_tokens + bt - 1) / bt + 1;
    return bound < all ? (uint32_t)bound : all;
}
