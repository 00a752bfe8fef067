/* alloc.c — the allocator's public interface: config, names, sequence slots, argument checks and
 * one switch per operation over the strategy files (contiguous.c: extents over holes.c or
 * buddy.c; chunk_pool.c: chunk series; paged.c: block tables over block_pool.c with a token
 * layout, layout.c, for paged and compressed alike), the host tier (tier.c) and the effects of
 * every operation (effect.h). See alloc.h for the contract.
 *
 * Adding a strategy: one file with the kv_<s>_* entries of alloc_internal.h, one enum value in
 * alloc.h, one case per switch here.
 */
#include "alloc_internal.h"
#include "hostmem.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------ names --- */

static const char *const strategy_names[] = {"contiguous", "chunk-pool", "paged", "compressed"};
static const char *const reserve_names[] = {"max", "pow2", "oracle", "grow"};
static const char *const fit_names[] = {"first-fit", "best-fit", "buddy"};
static const char *const layout_names[] = {"per-layer", "fused"};
static const char *const policy_names[] = {"none", "window", "budget"};

#define N_OF(x) (sizeof(x) / sizeof((x)[0]))

static kv_status parse_name(const char *name, const char *const *names, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (int)i;
            return KV_OK;
        }
    }
    return KV_ERR_INPUT;
}

const char *kv_strategy_name(kv_strategy s)
{
    return (unsigned)s < N_OF(strategy_names) ? strategy_names[s] : "?";
}
const char *kv_reserve_name(kv_reserve r)
{
    return (unsigned)r < N_OF(reserve_names) ? reserve_names[r] : "?";
}
const char *kv_fit_name(kv_fit f)
{
    return (unsigned)f < N_OF(fit_names) ? fit_names[f] : "?";
}
const char *kv_chunk_layout_name(kv_chunk_layout l)
{
    return (unsigned)l < N_OF(layout_names) ? layout_names[l] : "?";
}
const char *kv_token_policy_name(kv_token_policy p)
{
    return (unsigned)p < N_OF(policy_names) ? policy_names[p] : "?";
}

#define DEFINE_PARSE(fn, type, names)                                                              \
    kv_status fn(const char *name, type *out)                                                      \
    {                                                                                              \
        int v = 0;                                                                                 \
        kv_status st = parse_name(name, names, N_OF(names), &v);                                   \
        if (st == KV_OK)                                                                           \
            *out = (type)v;                                                                        \
        return st;                                                                                 \
    }

DEFINE_PARSE(kv_strategy_parse, kv_strategy, strategy_names)
DEFINE_PARSE(kv_reserve_parse, kv_reserve, reserve_names)
DEFINE_PARSE(kv_fit_parse, kv_fit, fit_names)
DEFINE_PARSE(kv_chunk_layout_parse, kv_chunk_layout, layout_names)
DEFINE_PARSE(kv_token_policy_parse, kv_token_policy, policy_names)

/* ----------------------------------------------------------------------------- config --- */

void kv_alloc_config_default(kv_alloc_config *c, kv_strategy s, const kv_shape *shape,
                             uint64_t pool_bytes)
{
    *c = (kv_alloc_config){
        .strategy = s,
        .shape = *shape,
        .pool_bytes = pool_bytes,
        .host_pool_bytes = 4ull << 30,
        .max_seqs = 1024,
        .max_seq_tokens = 8192,
        .watermark = 0.01,
        .contiguous = {.reserve = KV_RESERVE_MAX, .fit = KV_FIT_FIRST},
        .chunk = {.chunk_bytes = 2ull << 20, .layout = KV_CHUNK_PER_LAYER},
        .paged = {.block_tokens = 16, .prefix_caching = true},
        .compressed = {.elem_bits = 8,
                       .policy = KV_TOKENS_ALL,
                       .sink_tokens = 4,
                       .window_tokens = 1024,
                       .budget_tokens = 1024},
    };
}

/* Layer groups: a partition of the layers in equal parts (one page size), each a valid layout;
 * several only over blocks; prefix caching only where every group keeps every token. Prefix
 * caching with a window group is refused rather than resolved as vLLM does (a hit there needs
 * only the window's blocks, which the chained hash of this prefix index cannot express). */
static kv_status validate_groups(const kv_alloc_config *c, kv_err *err)
{
    if (c->n_groups == 0)
        return KV_OK;
    if (c->n_groups > KV_MAX_GROUPS)
        return kv_errorf(err, KV_ERR_INPUT, "n_groups: %u layer groups, at most %u", c->n_groups,
                         KV_MAX_GROUPS);
    bool blocks = c->strategy == KV_PAGED || c->strategy == KV_COMPRESSED;
    if (!blocks && c->n_groups > 1)
        return kv_errorf(err, KV_ERR_INPUT,
                         "n_groups: %u layer groups need a blocks pool (paged or compressed); %s "
                         "lays out every layer the same way",
                         c->n_groups, kv_strategy_name(c->strategy));
    if (c->strategy == KV_COMPRESSED && c->compressed.policy != KV_TOKENS_ALL)
        return kv_errorf(err, KV_ERR_INPUT,
                         "token_policy: %s with layer groups; give each group its layout "
                         "(groups[g].policy) and leave compressed's policy at none",
                         kv_token_policy_name(c->compressed.policy));
    uint64_t sum = 0;
    for (uint32_t g = 0; g < c->n_groups; g++) {
        const kv_layer_group *lg = &c->groups[g];
        sum += lg->n_layers;
        if (lg->n_layers == 0)
            return kv_errorf(err, KV_ERR_INPUT, "groups[%u].n_layers: must be > 0", g);
        if (lg->n_layers != c->groups[0].n_layers)
            return kv_errorf(err, KV_ERR_INPUT,
                             "groups[%u].n_layers: %u, but groups[0] has %u; every group must "
                             "have the same number of layers so that all groups' blocks have "
                             "one page size",
                             g, lg->n_layers, c->groups[0].n_layers);
        if ((unsigned)lg->policy > KV_TOKENS_BUDGET)
            return kv_errorf(err, KV_ERR_INPUT, "groups[%u].policy: unknown value %d", g,
                             (int)lg->policy);
        if (!blocks && lg->policy != KV_TOKENS_ALL)
            return kv_errorf(err, KV_ERR_INPUT,
                             "groups[%u].policy: %s needs a blocks pool (paged or compressed); "
                             "%s keeps every token",
                             g, kv_token_policy_name(lg->policy), kv_strategy_name(c->strategy));
        if (lg->policy == KV_TOKENS_WINDOW && lg->window_tokens == 0)
            return kv_errorf(err, KV_ERR_INPUT,
                             "groups[%u].window_tokens: must be > 0 with policy window", g);
        if (lg->policy == KV_TOKENS_BUDGET && lg->budget_tokens == 0)
            return kv_errorf(err, KV_ERR_INPUT,
                             "groups[%u].budget_tokens: must be > 0 with policy budget", g);
        if (lg->policy != KV_TOKENS_ALL && c->paged.prefix_caching && blocks)
            return kv_errorf(err, KV_ERR_INPUT,
                             "prefix_caching: groups[%u] keeps only some tokens (policy %s), "
                             "and prefix caching needs every group to keep every token; turn "
                             "it off",
                             g, kv_token_policy_name(lg->policy));
    }
    if (sum != c->shape.n_layers)
        return kv_errorf(err, KV_ERR_INPUT,
                         "groups: layers sum to %llu, the model (shape.n_layers) has %u",
                         (unsigned long long)sum, c->shape.n_layers);
    return KV_OK;
}

kv_status kv_alloc_config_validate(const kv_alloc_config *c, kv_err *err)
{
    if ((unsigned)c->strategy >= KV_N_STRATEGIES)
        return kv_errorf(err, KV_ERR_INPUT, "strategy: unknown value %d", (int)c->strategy);
    kv_status st = kv_shape_validate(&c->shape, err);
    if (st != KV_OK)
        return st;
    if (c->pool_bytes == 0)
        return kv_errorf(err, KV_ERR_INPUT, "pool_bytes: must be > 0");
    if (c->max_seqs == 0 || c->max_seqs >= KV_SEQ_NONE)
        return kv_errorf(err, KV_ERR_INPUT, "max_seqs: must be in 1..%u", KV_SEQ_NONE - 1);
    if (c->max_seq_tokens == 0 || c->max_seq_tokens > (1u << 30))
        return kv_errorf(err, KV_ERR_INPUT, "max_seq_tokens: must be in 1..%u", 1u << 30);
    if (!(c->host_link.h2d_gbps >= 0 && c->host_link.d2h_gbps >= 0 &&
          c->host_link.copy_latency_us >= 0))
        return kv_errorf(err, KV_ERR_INPUT, "host_link: bandwidths and latency must be >= 0");
    if (!(c->watermark >= 0.0 && c->watermark < 1.0))
        return kv_errorf(err, KV_ERR_INPUT, "watermark: must be in [0, 1), got %g", c->watermark);
    switch (c->strategy) {
    case KV_CONTIGUOUS:
        if ((unsigned)c->contiguous.reserve > KV_RESERVE_GROW)
            return kv_errorf(err, KV_ERR_INPUT, "reserve: unknown value");
        if ((unsigned)c->contiguous.fit > KV_FIT_BUDDY)
            return kv_errorf(err, KV_ERR_INPUT, "fit: unknown value");
        break;
    case KV_CHUNK_POOL:
        if (c->chunk.chunk_bytes == 0)
            return kv_errorf(err, KV_ERR_INPUT, "chunk_bytes: must be > 0");
        if ((unsigned)c->chunk.layout > KV_CHUNK_FUSED)
            return kv_errorf(err, KV_ERR_INPUT, "chunk_layout: unknown value");
        break;
    case KV_COMPRESSED:
        if ((unsigned)c->compressed.policy > KV_TOKENS_BUDGET)
            return kv_errorf(err, KV_ERR_INPUT, "token_policy: unknown value");
        if (c->compressed.policy == KV_TOKENS_WINDOW && c->compressed.window_tokens == 0)
            return kv_errorf(err, KV_ERR_INPUT, "window_tokens: must be > 0 with policy window");
        if (c->compressed.policy == KV_TOKENS_BUDGET && c->compressed.budget_tokens == 0)
            return kv_errorf(err, KV_ERR_INPUT, "budget_tokens: must be > 0 with policy budget");
        if (c->compressed.policy != KV_TOKENS_ALL && c->paged.prefix_caching)
            return kv_errorf(err, KV_ERR_INPUT,
                             "prefix_caching: not supported with token policy %s (evicted "
                             "tokens make blocks unshareable); turn it off",
                             kv_token_policy_name(c->compressed.policy));
        /* fall through - compressed is built on paged blocks */
    case KV_PAGED:
        if (c->paged.block_tokens == 0 || c->paged.block_tokens > 65536)
            return kv_errorf(err, KV_ERR_INPUT, "block_tokens: must be in 1..65536");
        break;
    case KV_N_STRATEGIES: break;
    }
    return validate_groups(c, err);
}

kv_shape kv_alloc_config_stored_shape(const kv_alloc_config *c)
{
    kv_shape q = c->shape;
    if (c->strategy == KV_COMPRESSED) {
        q.elem_bits = c->compressed.elem_bits;
        q.scale_group_elems = c->compressed.scale_group_elems;
        q.scale_bytes = c->compressed.scale_bytes;
    }
    return q;
}

/* ------------------------------------------------------------------------------ slots --- */

kv_seq_id kv_alloc_slot_take(kv_alloc *a)
{
    kv_seq_id s = a->free_slot;
    if (s == KV_SEQ_NONE)
        return KV_SEQ_NONE;
    a->free_slot = a->seqs[s].next_free;
    a->seqs[s] =
        (kv_seq){.state = KV_SEQ_RESIDENT, .next_free = KV_SEQ_NONE, .live_idx = a->n_live};
    a->live[a->n_live++] = s;
    a->n_resident++;
    return s;
}

void kv_alloc_slot_give(kv_alloc *a, kv_seq_id s)
{
    if (a->seqs[s].state == KV_SEQ_RESIDENT)
        a->n_resident--;
    else
        a->n_swapped--;
    uint32_t i = a->seqs[s].live_idx, moved = a->live[--a->n_live];
    a->live[i] = moved;
    a->seqs[moved].live_idx = i;
    a->seqs[s] = (kv_seq){.state = KV_SEQ_FREE, .next_free = a->free_slot};
    a->free_slot = s;
}

uint64_t kv_alloc_watermark_bytes(const kv_alloc *a)
{
    return (uint64_t)(a->cfg.watermark * (double)a->cfg.pool_bytes);
}

static bool seq_in(const kv_alloc *a, kv_seq_id s, kv_seq_state state)
{
    return s < a->cfg.max_seqs && a->seqs[s].state == state;
}

static kv_status check_req(const kv_alloc *a, const kv_admit_req *req)
{
    if (req->prompt_tokens == 0 || req->final_tokens < req->prompt_tokens ||
        req->final_tokens > a->cfg.max_seq_tokens)
        return KV_INVALID;
    return KV_OK;
}

/* ------------------------------------------------------------------ create, destroy --- */

/* The most effects one operation can emit. Blocks: an admission, append, copying fork or
 * swap-in touches each table entry at most three times (drop or copy, table write, eviction of
 * the cached block it takes); chunks: a map or unmap per chunk of every series and one copy or
 * transfer; an extent: a copy or a transfer. Not counted in metadata_bytes: it is scratch, as
 * the checkers' arrays are. */
static uint32_t fx_bound(const kv_alloc *a)
{
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: return 8;
    case KV_CHUNK_POOL: return a->u.chunk.stride * a->u.chunk.n_tensors + 8;
    case KV_PAGED:
    case KV_COMPRESSED: return 3 * a->u.paged.stride * a->u.paged.n_groups + 8;
    case KV_N_STRATEGIES: break;
    }
    return 8;
}

kv_status kv_alloc_create(const kv_alloc_config *c, kv_alloc **out, kv_err *err)
{
    *out = NULL;
    kv_status st = kv_alloc_config_validate(c, err);
    if (st != KV_OK)
        return st;
    kv_alloc *a = calloc(1, sizeof *a);
    if (a == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "allocator: out of host memory");
    a->cfg = *c;
    a->native_token_bytes = kv_shape_token_bytes(&c->shape);
    a->token_bytes = a->native_token_bytes;
    a->seqs = kv_hostmem_zalloc(c->max_seqs, sizeof *a->seqs);
    a->live = kv_hostmem_zalloc(c->max_seqs, sizeof *a->live);
    if (a->seqs == NULL || a->live == NULL) {
        free(a->seqs);
        free(a->live);
        free(a);
        return kv_errorf(err, KV_ERR_NOMEM, "allocator: out of host memory for %u slots",
                         c->max_seqs);
    }
    for (uint32_t s = 0; s < c->max_seqs; s++)
        a->seqs[s].next_free = s + 1 < c->max_seqs ? s + 1 : KV_SEQ_NONE;
    a->free_slot = 0;
    a->metadata_bytes = sizeof *a + (uint64_t)c->max_seqs * (sizeof *a->seqs + sizeof *a->live);

    switch (c->strategy) {
    case KV_CONTIGUOUS: st = kv_contiguous_init(a, err); break;
    case KV_CHUNK_POOL: st = kv_chunk_init(a, err); break;
    case KV_PAGED:
    case KV_COMPRESSED: st = kv_paged_init(a, err); break;
    case KV_N_STRATEGIES: st = KV_ERR_INPUT; break;
    }
    if (st == KV_OK) {
        bool blocks = c->strategy == KV_PAGED || c->strategy == KV_COMPRESSED;
        /* Host blocks: swapped sequences never hold more than max_seqs x every group's table
         * length; host extents: one per swapped sequence. */
        st = blocks ? kv_tier_init(&a->host, KV_TIER_BLOCKS, a->u.paged.pool.block_bytes,
                                   c->host_pool_bytes,
                                   (uint64_t)c->max_seqs * a->u.paged.stride *
                                       a->u.paged.n_groups)
                    : kv_tier_init(&a->host, KV_TIER_EXTENTS, a->token_bytes, c->host_pool_bytes,
                                   c->max_seqs);
        if (st == KV_OK && blocks && (a->host_mark = calloc((size_t)a->host.max_ids + 1, 1)) == NULL)
            st = KV_ERR_NOMEM;
        if (st == KV_OK && !blocks &&
            (a->host_extents = calloc((size_t)c->max_seqs + a->host.max_holes,
                                      sizeof *a->host_extents)) == NULL)
            st = KV_ERR_NOMEM;
        a->host.tier = KV_TIER_HOST;
        a->host.link = c->host_link;
        if (st != KV_OK) {
            kv_alloc_destroy(&a);
            return st == KV_ERR_INPUT
                       ? kv_errorf(err, st, "host_pool_bytes: more than 2^32 - 2 host units")
                       : kv_errorf(err, st, "allocator: out of host memory for the host tier");
        }
        a->metadata_bytes += kv_tier_metadata_bytes(&a->host);
        a->fx_cap = fx_bound(a);
        a->fx = malloc((size_t)a->fx_cap * sizeof *a->fx);
        if (a->fx == NULL) {
            kv_alloc_destroy(&a);
            return kv_errorf(err, KV_ERR_NOMEM, "allocator: out of host memory for effects");
        }
    }
    if (st != KV_OK) {
        free(a->seqs);
        free(a->live);
        free(a);
        return st == KV_ERR_NOMEM ? kv_errorf(err, st, "allocator: out of host memory") : st;
    }
    *out = a;
    return KV_OK;
}

void kv_alloc_destroy(kv_alloc **ap)
{
    kv_alloc *a = ap ? *ap : NULL;
    if (a == NULL)
        return;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: kv_contiguous_fini(a); break;
    case KV_CHUNK_POOL: kv_chunk_fini(a); break;
    case KV_PAGED:
    case KV_COMPRESSED: kv_paged_fini(a); break;
    case KV_N_STRATEGIES: break;
    }
    kv_tier_fini(&a->host);
    free(a->host_mark);
    free(a->host_extents);
    free(a->seqs);
    free(a->live);
    free(a->fx);
    free(a);
    *ap = NULL;
}

const kv_alloc_config *kv_alloc_config_of(const kv_alloc *a)
{
    return &a->cfg;
}

uint64_t kv_alloc_token_bytes(const kv_alloc *a)
{
    return a->token_bytes;
}

const kv_alloc_stats *kv_alloc_stats_of(const kv_alloc *a)
{
    return &a->stats;
}

kv_status kv_alloc_growth(const kv_alloc *a, kv_seq_id s, kv_growth *g)
{
    if (!seq_in(a, s, KV_SEQ_RESIDENT))
        return KV_INVALID;
    const kv_seq *q = &a->seqs[s];
    *g = (kv_growth){.tokens = q->tokens, .final_tokens = q->final_tokens};
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: g->capacity = q->u.ext.cap; break;
    case KV_CHUNK_POOL: {
        const kv_chunkpool *c = &a->u.chunk;
        g->capacity = q->u.ch.n_chunks * c->chunk_tokens;
        g->unit_tokens = c->chunk_tokens;
        g->unit_maps = c->n_tensors;
        g->unit_bytes = (uint64_t)c->n_tensors * a->cfg.chunk.chunk_bytes;
        break;
    }
    case KV_PAGED:
    case KV_COMPRESSED: {
        const kv_paged *p = &a->u.paged;
        const kv_block_pool *bp = &p->pool;
        /* A window or budget changes the layout; with several groups, one group's growth is
         * not the sequence's (the fast path takes no jumps: exact, and no group is common). */
        if (p->n_groups > 1 || !kv_layout_shares(&p->layout[0])) {
            g->capacity = q->tokens;
            break;
        }
        uint32_t last = p->tables[(size_t)s * p->stride + q->u.pg.n_blocks - 1]; /* one group */
        g->capacity = q->u.pg.n_blocks * bp->block_tokens;
        g->unit_tokens = bp->block_tokens;
        g->unit_bytes = bp->block_bytes;
        g->copy_next = bp->refcnt[last] > 1 && bp->fill[last] < bp->block_tokens;
        break;
    }
    case KV_N_STRATEGIES: break;
    }
    return KV_OK;
}

void kv_alloc_free_bytes(const kv_alloc *a, uint64_t *free_bytes, uint64_t *cached_free_bytes)
{
    *free_bytes = *cached_free_bytes = 0;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: break; /* extents do not grow in a fast-path jump */
    case KV_CHUNK_POOL: *free_bytes = (uint64_t)a->u.chunk.n_free * a->cfg.chunk.chunk_bytes; break;
    case KV_PAGED:
    case KV_COMPRESSED: {
        const kv_block_pool *bp = &a->u.paged.pool;
        *free_bytes = (uint64_t)kv_block_pool_n_free(bp) * bp->block_bytes;
        *cached_free_bytes = (uint64_t)bp->n_lru * bp->block_bytes;
        break;
    }
    case KV_N_STRATEGIES: break;
    }
}

kv_seq_state kv_alloc_seq_state(const kv_alloc *a, kv_seq_id s)
{
    return s < a->cfg.max_seqs ? (kv_seq_state)a->seqs[s].state : KV_SEQ_FREE;
}

uint32_t kv_alloc_seq_tokens(const kv_alloc *a, kv_seq_id s)
{
    return s < a->cfg.max_seqs ? a->seqs[s].tokens : 0;
}

/* ------------------------------------------------------------------------- operations --- */

bool kv_alloc_can_admit(const kv_alloc *a, const kv_admit_req *req)
{
    if (check_req(a, req) != KV_OK || a->free_slot == KV_SEQ_NONE)
        return false;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: return kv_contiguous_can_admit(a, req);
    case KV_CHUNK_POOL: return kv_chunk_can_admit(a, req);
    case KV_PAGED:
    case KV_COMPRESSED: return kv_paged_can_admit(a, req);
    case KV_N_STRATEGIES: break;
    }
    return false;
}

bool kv_alloc_too_large(const kv_alloc *a, const kv_admit_req *req)
{
    if (check_req(a, req) != KV_OK)
        return false;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: return kv_contiguous_too_large(a, req);
    case KV_CHUNK_POOL: return kv_chunk_too_large(a, req);
    case KV_PAGED:
    case KV_COMPRESSED: return kv_paged_too_large(a, req);
    case KV_N_STRATEGIES: break;
    }
    return false;
}

static kv_status admit_op(kv_alloc *a, const kv_admit_req *req, kv_seq_id *seq,
                          uint32_t *cached_tokens)
{
    *seq = KV_SEQ_NONE;
    if (cached_tokens)
        *cached_tokens = 0;
    if (check_req(a, req) != KV_OK)
        return KV_INVALID;
    kv_seq_id s = kv_alloc_slot_take(a);
    if (s == KV_SEQ_NONE)
        return KV_NO_SPACE;
    a->seqs[s].tokens = req->prompt_tokens;
    a->seqs[s].final_tokens = req->final_tokens;
    uint32_t cached = 0;
    kv_status st = KV_INVALID;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: st = kv_contiguous_admit(a, s, req, &cached); break;
    case KV_CHUNK_POOL: st = kv_chunk_admit(a, s, req, &cached); break;
    case KV_PAGED:
    case KV_COMPRESSED: st = kv_paged_admit(a, s, req, &cached); break;
    case KV_N_STRATEGIES: break;
    }
    if (st != KV_OK) {
        kv_alloc_slot_give(a, s);
        return st;
    }
    a->stats.n_admits++;
    *seq = s;
    if (cached_tokens)
        *cached_tokens = cached;
    return KV_OK;
}

static kv_status append_op(kv_alloc *a, kv_seq_id s, uint32_t n_tokens)
{
    if (!seq_in(a, s, KV_SEQ_RESIDENT) || n_tokens == 0 ||
        (uint64_t)a->seqs[s].tokens + n_tokens > a->cfg.max_seq_tokens)
        return KV_INVALID;
    kv_status st = KV_INVALID;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: st = kv_contiguous_append(a, s, n_tokens); break;
    case KV_CHUNK_POOL: st = kv_chunk_append(a, s, n_tokens); break;
    case KV_PAGED:
    case KV_COMPRESSED: st = kv_paged_append(a, s, n_tokens); break;
    case KV_N_STRATEGIES: break;
    }
    if (st == KV_OK)
        a->stats.n_appends++;
    return st;
}

static kv_status fork_op(kv_alloc *a, kv_seq_id parent, uint32_t child_final_tokens,
                         kv_seq_id *child)
{
    *child = KV_SEQ_NONE;
    if (!seq_in(a, parent, KV_SEQ_RESIDENT) || child_final_tokens < a->seqs[parent].tokens ||
        child_final_tokens > a->cfg.max_seq_tokens)
        return KV_INVALID;
    kv_seq_id c = kv_alloc_slot_take(a);
    if (c == KV_SEQ_NONE)
        return KV_NO_SPACE;
    a->seqs[c].tokens = a->seqs[parent].tokens;
    a->seqs[c].final_tokens = child_final_tokens;
    kv_status st = KV_INVALID;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: st = kv_contiguous_fork(a, parent, c); break;
    case KV_CHUNK_POOL: st = kv_chunk_fork(a, parent, c); break;
    case KV_PAGED:
    case KV_COMPRESSED: st = kv_paged_fork(a, parent, c); break;
    case KV_N_STRATEGIES: break;
    }
    if (st != KV_OK) {
        kv_alloc_slot_give(a, c);
        return st;
    }
    a->stats.n_forks++;
    *child = c;
    return KV_OK;
}

static kv_status free_op(kv_alloc *a, kv_seq_id s)
{
    if (!seq_in(a, s, KV_SEQ_RESIDENT) && !seq_in(a, s, KV_SEQ_SWAPPED))
        return KV_INVALID;
    if (a->seqs[s].state == KV_SEQ_SWAPPED) {
        a->host_used_bytes -= a->seqs[s].host_bytes;
        if (a->host.kind == KV_TIER_BLOCKS)
            kv_paged_host_release(a, s);
        else
            kv_tier_free_extent(&a->host, a->seqs[s].host_start, a->seqs[s].tokens);
    } else {
        switch (a->cfg.strategy) {
        case KV_CONTIGUOUS: kv_contiguous_free(a, s); break;
        case KV_CHUNK_POOL: kv_chunk_free(a, s); break;
        case KV_PAGED:
        case KV_COMPRESSED: kv_paged_free(a, s); break;
        case KV_N_STRATEGIES: break;
        }
    }
    kv_alloc_slot_give(a, s);
    a->stats.n_frees++;
    return KV_OK;
}

static kv_status swap_out_op(kv_alloc *a, kv_seq_id s, kv_swap_stats *st_out)
{
    if (!seq_in(a, s, KV_SEQ_RESIDENT))
        return KV_INVALID;
    kv_swap_stats sw = {0};
    kv_status st = KV_INVALID;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: st = kv_contiguous_swap_out(a, s, &sw); break;
    case KV_CHUNK_POOL: st = kv_chunk_swap_out(a, s, &sw); break;
    case KV_PAGED:
    case KV_COMPRESSED: st = kv_paged_swap_out(a, s, &sw); break;
    case KV_N_STRATEGIES: break;
    }
    if (st != KV_OK)
        return st;
    a->seqs[s].state = KV_SEQ_SWAPPED;
    a->seqs[s].host_bytes = sw.bytes;
    a->host_used_bytes += sw.bytes;
    a->n_resident--;
    a->n_swapped++;
    a->stats.n_swap_outs++;
    a->stats.swap_out_bytes += sw.bytes;
    a->stats.n_swap_copies += sw.n_copies;
    if (st_out)
        *st_out = sw;
    return KV_OK;
}

static kv_status swap_in_op(kv_alloc *a, kv_seq_id s, kv_swap_stats *st_out)
{
    if (!seq_in(a, s, KV_SEQ_SWAPPED))
        return KV_INVALID;
    kv_swap_stats sw = {0};
    kv_status st = KV_INVALID;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: st = kv_contiguous_swap_in(a, s, &sw); break;
    case KV_CHUNK_POOL: st = kv_chunk_swap_in(a, s, &sw); break;
    case KV_PAGED:
    case KV_COMPRESSED: st = kv_paged_swap_in(a, s, &sw); break;
    case KV_N_STRATEGIES: break;
    }
    if (st != KV_OK)
        return st;
    KV_ASSERT(sw.bytes == a->seqs[s].host_bytes);
    a->host_used_bytes -= sw.bytes;
    a->seqs[s].host_bytes = 0;
    a->seqs[s].state = KV_SEQ_RESIDENT;
    a->n_swapped--;
    a->n_resident++;
    a->stats.n_swap_ins++;
    a->stats.swap_in_bytes += sw.bytes;
    a->stats.n_swap_copies += sw.n_copies;
    if (st_out)
        *st_out = sw;
    return KV_OK;
}

/* ------------------------------------------------------- the public operations, observed --- */

const char *kv_op_name(kv_op op)
{
    static const char *const names[] = {"admit", "append", "fork", "free", "swap-out", "swap-in"};
    return (unsigned)op <= KV_OP_SWAP_IN ? names[op] : "?";
}

void kv_alloc_set_listener(kv_alloc *a, kv_op_listener fn, void *ctx)
{
    a->listener = fn;
    a->listener_ctx = ctx;
}

/* Tell the listener about an operation (out of line: most runs have none). */
static void tell(kv_alloc *a, kv_op op, kv_seq_id seq, kv_seq_id parent, uint32_t tokens,
                 kv_status st)
{
    kv_op_record r = {.op = op,
                      .seq = seq,
                      .parent = parent,
                      .tokens = tokens,
                      .status = st,
                      .effects = a->fx,
                      .n_effects = a->n_fx};
    a->listener(a->listener_ctx, a, &r);
}

/* Close an operation: a failed one leaves no effects; add them to the totals; tell the
 * listener. Inline: it closes every append (out of line it cost 5% of a replay). */
static inline kv_status done(kv_alloc *a, kv_op op, kv_seq_id seq, kv_seq_id parent,
                             uint32_t tokens, kv_status st)
{
    if (st != KV_OK) {
        a->n_fx = a->n_fx_tables = a->n_fx_drops = 0;
    } else if (a->n_fx > 0 && a->totals) {
        if (a->n_fx_tables + a->n_fx_drops < a->n_fx) { /* something to price */
            kv_effects_add_totals(a->fx, a->n_fx, a->totals);
        } else { /* only table writes and drops, as most admissions and appends: counted */
            a->totals->n_table_writes += a->n_fx_tables;
            a->totals->n_drops += a->n_fx_drops;
        }
    }
    if (a->listener)
        tell(a, op, seq, parent, tokens, st);
    return st;
}

void kv_alloc_set_totals(kv_alloc *a, kv_effect_totals *totals)
{
    a->totals = totals;
}

const kv_effect *kv_alloc_effects(const kv_alloc *a, uint32_t *n_effects)
{
    *n_effects = a->n_fx;
    return a->fx;
}

kv_status kv_alloc_admit(kv_alloc *a, const kv_admit_req *req, kv_seq_id *seq,
                         uint32_t *cached_tokens)
{
    a->n_fx = a->n_fx_tables = a->n_fx_drops = 0;
    kv_status st = admit_op(a, req, seq, cached_tokens);
    return done(a, KV_OP_ADMIT, *seq, KV_SEQ_NONE, req->prompt_tokens, st);
}

kv_status kv_alloc_append(kv_alloc *a, kv_seq_id s, uint32_t n_tokens)
{
    a->n_fx = a->n_fx_tables = a->n_fx_drops = 0;
    kv_status st = append_op(a, s, n_tokens);
    return done(a, KV_OP_APPEND, s, KV_SEQ_NONE, n_tokens, st);
}

kv_status kv_alloc_fork(kv_alloc *a, kv_seq_id parent, uint32_t child_final_tokens,
                        kv_seq_id *child)
{
    a->n_fx = a->n_fx_tables = a->n_fx_drops = 0;
    kv_status st = fork_op(a, parent, child_final_tokens, child);
    return done(a, KV_OP_FORK, *child, parent, child_final_tokens, st);
}

kv_status kv_alloc_free(kv_alloc *a, kv_seq_id s)
{
    a->n_fx = a->n_fx_tables = a->n_fx_drops = 0;
    kv_status st = free_op(a, s);
    return done(a, KV_OP_FREE, s, KV_SEQ_NONE, 0, st);
}

kv_status kv_alloc_swap_out(kv_alloc *a, kv_seq_id s, kv_swap_stats *st_out)
{
    a->n_fx = a->n_fx_tables = a->n_fx_drops = 0;
    kv_status st = swap_out_op(a, s, st_out);
    return done(a, KV_OP_SWAP_OUT, s, KV_SEQ_NONE, 0, st);
}

kv_status kv_alloc_swap_in(kv_alloc *a, kv_seq_id s, kv_swap_stats *st_out)
{
    a->n_fx = a->n_fx_tables = a->n_fx_drops = 0;
    kv_status st = swap_in_op(a, s, st_out);
    return done(a, KV_OP_SWAP_IN, s, KV_SEQ_NONE, 0, st);
}

uint32_t kv_alloc_n_groups(const kv_alloc *a)
{
    bool blocks = a->cfg.strategy == KV_PAGED || a->cfg.strategy == KV_COMPRESSED;
    return blocks ? a->u.paged.n_groups : 1;
}

kv_status kv_alloc_placement_group(const kv_alloc *a, kv_seq_id s, uint32_t g, kv_placement *out)
{
    if (g >= kv_alloc_n_groups(a) || !seq_in(a, s, KV_SEQ_RESIDENT))
        return KV_INVALID;
    if (kv_alloc_n_groups(a) == 1)
        return kv_alloc_placement(a, s, out);
    *out = (kv_placement){.n_tokens = a->seqs[s].tokens, .token_bytes = a->u.paged.slot_bytes};
    kv_paged_placement_group(a, s, g, out);
    return KV_OK;
}

kv_status kv_alloc_placement(const kv_alloc *a, kv_seq_id s, kv_placement *out)
{
    if (!seq_in(a, s, KV_SEQ_RESIDENT))
        return KV_INVALID;
    *out = (kv_placement){.n_tokens = a->seqs[s].tokens, .token_bytes = a->token_bytes};
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: kv_contiguous_placement(a, s, out); break;
    case KV_CHUNK_POOL: kv_chunk_placement(a, s, out); break;
    case KV_PAGED:
    case KV_COMPRESSED: kv_paged_placement(a, s, out); break;
    case KV_N_STRATEGIES: break;
    }
    return KV_OK;
}

void kv_alloc_breakdown(const kv_alloc *a, const kv_admit_req *waiting, kv_mem_breakdown *out)
{
    *out = (kv_mem_breakdown){.pool_bytes = a->cfg.pool_bytes,
                              .metadata_bytes = a->metadata_bytes,
                              .host_bytes = a->host_used_bytes,
                              .n_resident = a->n_resident,
                              .n_swapped = a->n_swapped};
    if (waiting != NULL && check_req(a, waiting) != KV_OK)
        waiting = NULL;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: kv_contiguous_breakdown(a, waiting, out); break;
    case KV_CHUNK_POOL: kv_chunk_breakdown(a, waiting, out); break;
    case KV_PAGED:
    case KV_COMPRESSED: kv_paged_breakdown(a, waiting, out); break;
    case KV_N_STRATEGIES: break;
    }
    for (LIVE_EACH(a, i, s))
        if (a->seqs[s].state == KV_SEQ_RESIDENT)
            out->uncompressed_token_bytes += (uint64_t)a->seqs[s].tokens * a->native_token_bytes;
}

void kv_alloc_breakdown_group(const kv_alloc *a, uint32_t g, kv_mem_breakdown *out)
{
    KV_ASSERT(g < kv_alloc_n_groups(a));
    kv_alloc_breakdown(a, NULL, out);
    if (a->cfg.strategy == KV_PAGED || a->cfg.strategy == KV_COMPRESSED)
        kv_paged_breakdown_group(a, g, out);
}

/* With several groups, the groups' parts sum to the whole (their token, reserved and internal
 * bytes; the free and external bytes are the pool's). */
static kv_status check_group_breakdowns(const kv_alloc *a, const kv_mem_breakdown *b, kv_err *err)
{
    uint32_t n = kv_alloc_n_groups(a);
    if (n == 1)
        return KV_OK;
    uint64_t tok = 0, res = 0, in = 0, unc = 0;
    for (uint32_t g = 0; g < n; g++) {
        kv_mem_breakdown x;
        kv_alloc_breakdown_group(a, g, &x);
        tok += x.token_bytes;
        res += x.reserved_bytes;
        in += x.internal_frag_bytes;
        unc += x.uncompressed_token_bytes;
    }
    if (tok != b->token_bytes || res != b->reserved_bytes || in != b->internal_frag_bytes ||
        unc != b->uncompressed_token_bytes)
        return kv_errorf(err, KV_CORRUPT,
                         "breakdown: groups sum to token %llu reserved %llu internal %llu "
                         "uncompressed %llu; the pool says %llu %llu %llu %llu",
                         (unsigned long long)tok, (unsigned long long)res, (unsigned long long)in,
                         (unsigned long long)unc, (unsigned long long)b->token_bytes,
                         (unsigned long long)b->reserved_bytes,
                         (unsigned long long)b->internal_frag_bytes,
                         (unsigned long long)b->uncompressed_token_bytes);
    return KV_OK;
}

static int cmp_hole(const void *x, const void *y)
{
    const kv_hole *p = x, *q = y;
    return (p->start > q->start) - (p->start < q->start);
}

/* The extents of swapped sequences and the tier's holes tile the host tier exactly. */
static kv_status check_host_extents(const kv_alloc *a, kv_err *err)
{
    const kv_host_tier *t = &a->host;
    kv_hole *ext = a->host_extents; /* max_seqs + max_holes, made at create */
    uint32_t n = 0;
    for (LIVE_EACH(a, i, s))
        if (a->seqs[s].state == KV_SEQ_SWAPPED)
            ext[n++] = (kv_hole){a->seqs[s].host_start, a->seqs[s].tokens};
    for (uint32_t i = 0; i < t->n_holes; i++)
        ext[n++] = t->holes[i];
    qsort(ext, n, sizeof *ext, cmp_hole);
    uint64_t at = 0;
    kv_status st = KV_OK;
    for (uint32_t i = 0; i < n && st == KV_OK; i++) {
        if (ext[i].start != at)
            st = kv_errorf(err, KV_CORRUPT, "host tier: a gap or overlap at unit %llu (next %u)",
                           (unsigned long long)at, ext[i].start);
        at += ext[i].n_units;
    }
    if (st == KV_OK && at != t->n_units)
        st = kv_errorf(err, KV_CORRUPT, "host tier: extents and holes end at %llu of %llu",
                       (unsigned long long)at, (unsigned long long)t->n_units);
    return st;
}

kv_status kv_alloc_check(const kv_alloc *a, kv_err *err)
{
    uint32_t n_res = 0, n_sw = 0, n_free = 0;
    uint64_t host = 0;
    for (uint32_t s = 0; s < a->cfg.max_seqs; s++) {
        const kv_seq *q = &a->seqs[s];
        switch (q->state) {
        case KV_SEQ_FREE: n_free++; break;
        case KV_SEQ_RESIDENT: n_res++; break;
        case KV_SEQ_SWAPPED:
            n_sw++;
            host += q->host_bytes;
            break;
        default: return kv_errorf(err, KV_CORRUPT, "seq %u: state %u", s, q->state);
        }
        if (q->state != KV_SEQ_FREE && (q->tokens == 0 || q->tokens > a->cfg.max_seq_tokens))
            return kv_errorf(err, KV_CORRUPT, "seq %u: %u tokens", s, q->tokens);
    }
    if (a->n_live != n_res + n_sw)
        return kv_errorf(err, KV_CORRUPT, "live list holds %u, %u sequences live", a->n_live,
                         n_res + n_sw);
    for (uint32_t i = 0; i < a->n_live; i++) {
        uint32_t s = a->live[i];
        if (s >= a->cfg.max_seqs || a->seqs[s].state == KV_SEQ_FREE || a->seqs[s].live_idx != i)
            return kv_errorf(err, KV_CORRUPT, "live list entry %u (seq %u) is stale", i, s);
    }
    uint32_t listed = 0;
    for (uint32_t s = a->free_slot; s != KV_SEQ_NONE; s = a->seqs[s].next_free) {
        if (s >= a->cfg.max_seqs || a->seqs[s].state != KV_SEQ_FREE || ++listed > n_free)
            return kv_errorf(err, KV_CORRUPT, "slot free list broken at %u", s);
    }
    if (listed != n_free || n_res != a->n_resident || n_sw != a->n_swapped)
        return kv_errorf(err, KV_CORRUPT,
                         "slots: %u free (%u listed), %u resident (counter %u), %u swapped "
                         "(counter %u)",
                         n_free, listed, n_res, a->n_resident, n_sw, a->n_swapped);
    if (host != a->host_used_bytes || host > a->cfg.host_pool_bytes ||
        host != a->host.used_units * a->host.unit_bytes)
        return kv_errorf(err, KV_CORRUPT,
                         "host tier: %llu bytes held, counter %llu, %llu units of %llu bytes "
                         "used, cap %llu",
                         (unsigned long long)host, (unsigned long long)a->host_used_bytes,
                         (unsigned long long)a->host.used_units,
                         (unsigned long long)a->host.unit_bytes,
                         (unsigned long long)a->cfg.host_pool_bytes);
    kv_status hst = kv_tier_check(&a->host, a->host_mark, err);
    if (hst == KV_OK)
        hst = a->host.kind == KV_TIER_BLOCKS ? kv_paged_check_host(a, err) : check_host_extents(a, err);
    if (hst != KV_OK)
        return hst;
    kv_status st = KV_OK;
    switch (a->cfg.strategy) {
    case KV_CONTIGUOUS: st = kv_contiguous_check(a, err); break;
    case KV_CHUNK_POOL: st = kv_chunk_check(a, err); break;
    case KV_PAGED:
    case KV_COMPRESSED: st = kv_paged_check(a, err); break;
    case KV_N_STRATEGIES: break;
    }
    if (st != KV_OK)
        return st;
    kv_mem_breakdown b;
    kv_alloc_breakdown(a, NULL, &b);
    uint64_t sum = b.token_bytes + b.reserved_bytes + b.internal_frag_bytes +
                   b.external_frag_bytes + b.free_bytes;
    if (sum != b.pool_bytes)
        return kv_errorf(err, KV_CORRUPT,
                         "breakdown: categories sum to %llu, pool is %llu (token %llu reserved "
                         "%llu internal %llu external %llu free %llu)",
                         (unsigned long long)sum, (unsigned long long)b.pool_bytes,
                         (unsigned long long)b.token_bytes, (unsigned long long)b.reserved_bytes,
                         (unsigned long long)b.internal_frag_bytes,
                         (unsigned long long)b.external_frag_bytes,
                         (unsigned long long)b.free_bytes);
    return check_group_breakdowns(a, &b, err);
}
