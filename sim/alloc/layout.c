/* layout.c — which layout a configuration (or one of its layer groups) asks for. The per-token
 * arithmetic is inline in layout.h. */
#include "layout.h"

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

