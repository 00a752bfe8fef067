/* alloc_internal.h — the allocator's state, shared by alloc.c (dispatch) and the strategy files.
 * Nothing outside sim/alloc/ includes this.
 *
 * One struct kv_alloc holds the common part (config, sequence slots, counters) and a union of
 * the strategy states. Layer groups live in the blocks state (kv_paged): a table per sequence
 * and group, group 0's counts in kv_seq (so that one group's memory is laid out as before
 * groups existed), the others' beside it. Each strategy file defines kv_<strategy>_<op> functions; alloc.c calls
 * them from one switch per operation.
 */
#ifndef KV_ALLOC_INTERNAL_H
#define KV_ALLOC_INTERNAL_H

#include "alloc.h"
#include "block_pool.h"
#include "buddy.h"
#include "effect.h"
#include "holes.h"
#include "layout.h"
#include "prefix_index.h"
#include "tier.h"

/* ------------------------------------------------------------------------------------------ */

/* A sequence's block table of one layer group: its length and its dropped entries. */
typedef struct kv_pg_counts {
    uint32_t n_blocks;  /* table length (logical blocks, dropped ones included) */
    uint32_t n_dropped; /* entries set to KV_BLOCK_NONE by the window */
} kv_pg_counts;

typedef struct kv_seq {
    uint8_t state;         /* kv_seq_state */
    uint32_t tokens;       /* logical tokens */
    uint32_t final_tokens; /* expected final length, for the breakdown */
    uint32_t next_free;    /* slot free list, while KV_SEQ_FREE */
    uint32_t live_idx;     /* index in kv_alloc.live, while live */
    uint64_t host_bytes;   /* bytes in the host tier, while KV_SEQ_SWAPPED */
    uint32_t host_start;   /* first host unit of its extent (extents tier), while swapped */
    union {
        struct {
            uint32_t start, cap; /* token slots [start, start + cap) */
        } ext;
        struct {
            uint32_t n_chunks; /* per tensor */
        } ch;
        kv_pg_counts pg; /* layer group 0's table (the others: kv_paged.more) */
    } u;
} kv_seq;

typedef struct kv_contig {
    uint32_t n_units; /* token slots in the pool */
    kv_holes holes;   /* first-fit and best-fit */
    kv_buddy buddy;   /* buddy */
} kv_contig;

typedef struct kv_chunkpool {
    uint32_t n_chunks;     /* physical chunks in the pool */
    uint32_t n_tensors;    /* chunk series per sequence */
    uint32_t chunk_tokens; /* tokens one chunk holds for one series */
    uint32_t stride;       /* max chunks per series */
    uint64_t series_token_bytes;
    uint32_t *free_stack, n_free;
    uint32_t *lists; /* seq s, series t, index i: lists[(s * n_tensors + t) * stride + i] */
    uint8_t *mark;   /* checker scratch, one per chunk */
} kv_chunkpool;

/* Block tables over a block pool, one per sequence and layer group, each group with its token
 * layout (layout.h): paged and compressed. A block is a page of one group: block_tokens tokens
 * of that group's layers; every group's page has the same size. */
typedef struct kv_paged {
    kv_block_pool pool;
    /* what an append reads, together after the pool (the layouts array last: one group reads
     * layout[0] only) */
    uint32_t *tables;     /* seq s, group g: tables[(s * n_groups + g) * stride ...] */
    uint32_t stride;      /* max blocks per sequence and group */
    uint32_t n_groups;    /* >= 1 */
    bool grouped;         /* n_groups > 1: effects name their group */
    bool one_fast;        /* n_groups == 1: appends take the one-group path (paged.c); tests
                           * clear it to run one group through the general path */
    uint64_t slot_bytes;  /* one token of one group's layers, as stored */
    kv_pg_counts *more;   /* seq s, group g >= 1: more[s * (n_groups - 1) + g - 1]; NULL if one */
    uint8_t *block_group; /* the group whose tables a referenced block belongs to (grouped) */
    uint64_t native_slot_bytes; /* one token of one group's layers at the native dtype */
    uint32_t group_tensors;     /* layer tensors of one group */
    uint32_t *want;       /* breakdown scratch, one per block */
    uint32_t *touched;    /* breakdown scratch, one per sequence slot and group */
    uint32_t *hits;       /* admission and swap scratch, one per table entry of every group */
    kv_layout layout[KV_MAX_GROUPS]; /* group g's layout */
} kv_paged;

struct kv_alloc {
    kv_alloc_config cfg;
    uint64_t token_bytes;        /* one token as stored */
    uint64_t native_token_bytes; /* one token at the model's native dtype */
    kv_seq *seqs;
    uint32_t free_slot; /* head of the free slot list */
    uint32_t *live;     /* ids of live (resident or swapped) sequences, in no order */
    uint32_t n_live;
    uint32_t n_resident, n_swapped;
    uint64_t host_used_bytes;
    kv_host_tier host; /* the host tier's pool (tier.h) */
    uint8_t *host_mark;     /* checker scratch, one per host block id */
    kv_hole *host_extents;  /* checker scratch: swapped extents and holes (extents tier) */
    uint64_t metadata_bytes;
    kv_alloc_stats stats;
    kv_op_listener listener; /* kv_alloc_set_listener */
    void *listener_ctx;
    kv_effect_totals *totals; /* kv_alloc_set_totals */
    /* The effects of the operation in progress (or the last one), in fx[0 .. n_fx); room for
     * the most one operation can emit, sized at create, so that no operation allocates. */
    kv_effect *fx;
    uint32_t n_fx, fx_cap;
    uint32_t n_fx_tables, n_fx_drops; /* of those, table writes and drops (no bytes move) */
    union {
        kv_contig contig;
        kv_chunkpool chunk;
        kv_paged paged; /* paged and compressed */
    } u;
};

/* ------------------------------------------------------------------ common helpers --- */

/* Take a free sequence slot (KV_SEQ_NONE when none) / give one back. */
kv_seq_id kv_alloc_slot_take(kv_alloc *a);
void kv_alloc_slot_give(kv_alloc *a, kv_seq_id s);

/* Iterate over live sequences: for (LIVE_EACH(a, i, s)) { ... } */
#define LIVE_EACH(a, i, s)                                                                         \
    uint32_t i = 0, s = (a)->n_live ? (a)->live[0] : 0;                                            \
    i < (a)->n_live;                                                                               \
    s = ++i < (a)->n_live ? (a)->live[i] : 0

/* Record an effect of the operation in progress. */
static inline void kv_alloc_emit(kv_alloc *a, kv_effect e)
{
    KV_ASSERT(a->n_fx < a->fx_cap);
    a->fx[a->n_fx++] = e;
    a->n_fx_tables += e.kind == KV_FX_TABLE;
    a->n_fx_drops += e.kind == KV_FX_DROP;
}

/* A copy or transfer of n_tokens token slots laid out token-major, at the byte offsets given
 * (an extent's slots; a host extent's) or, at KV_AT_RANGE, of a sequence's virtual range. The
 * tier reached follows the cause. Used by contiguous.c and chunk_pool.c. */
static inline kv_effect kv_alloc_run_effect(const kv_alloc *a, kv_effect_kind kind,
                                            kv_effect_cause cause, kv_effect_at at,
                                            kv_seq_id from, kv_seq_id to, uint64_t src_offset_bytes,
                                            uint64_t dst_offset_bytes, uint32_t n_tokens,
                                            uint32_t n_copies)
{
    return (kv_effect){.kind = (uint8_t)kind,
                       .cause = (uint8_t)cause,
                       .at = (uint8_t)at,
                       .dst_tier = cause == KV_CAUSE_SWAP_OUT ? KV_TIER_HOST : KV_TIER_DEVICE,
                       .seq = to,
                       .src_seq = from,
                       .src = KV_FX_NO_UNIT,
                       .dst = KV_FX_NO_UNIT,
                       .n_tokens = n_tokens,
                       .n_copies = n_copies,
                       .src_offset_bytes = src_offset_bytes,
                       .dst_offset_bytes = dst_offset_bytes,
                       .bytes = (uint64_t)n_tokens * a->token_bytes};
}

/* Bytes the watermark keeps free. */
uint64_t kv_alloc_watermark_bytes(const kv_alloc *a);

/* ------------------------------------------------------------------ strategy entries --- */
/* Preconditions checked by alloc.c before the call: ids are in range and in the right state,
 * n_tokens > 0, lengths within max_seq_tokens. Each returns KV_OK or KV_NO_SPACE / KV_TOO_LARGE
 * and leaves the allocator unchanged when it fails. */

#define KV_STRATEGY_OPS(p)                                                                         \
    kv_status kv_##p##_init(kv_alloc *a, kv_err *err);                                             \
    void kv_##p##_fini(kv_alloc *a);                                                               \
    bool kv_##p##_can_admit(const kv_alloc *a, const kv_admit_req *req);                           \
    kv_status kv_##p##_admit(kv_alloc *a, kv_seq_id s, const kv_admit_req *req,                    \
                             uint32_t *cached_tokens);                                             \
    kv_status kv_##p##_append(kv_alloc *a, kv_seq_id s, uint32_t n_tokens);                        \
    kv_status kv_##p##_fork(kv_alloc *a, kv_seq_id parent, kv_seq_id child);                       \
    void kv_##p##_free(kv_alloc *a, kv_seq_id s);                                                  \
    kv_status kv_##p##_swap_out(kv_alloc *a, kv_seq_id s, kv_swap_stats *st);                      \
    kv_status kv_##p##_swap_in(kv_alloc *a, kv_seq_id s, kv_swap_stats *st);                       \
    void kv_##p##_placement(const kv_alloc *a, kv_seq_id s, kv_placement *out);                    \
    void kv_##p##_breakdown(const kv_alloc *a, const kv_admit_req *waiting,                        \
                            kv_mem_breakdown *out);                                                \
    kv_status kv_##p##_check(const kv_alloc *a, kv_err *err);

KV_STRATEGY_OPS(contiguous)
KV_STRATEGY_OPS(chunk)
KV_STRATEGY_OPS(paged) /* paged and compressed: block tables over a block pool */

/* Whether a request can never fit, even in an empty pool. */
bool kv_contiguous_too_large(const kv_alloc *a, const kv_admit_req *req);
bool kv_chunk_too_large(const kv_alloc *a, const kv_admit_req *req);
bool kv_paged_too_large(const kv_alloc *a, const kv_admit_req *req);

/* Blocks pools: group g's placement, and its part of the breakdown (alloc.h). */
void kv_paged_placement_group(const kv_alloc *a, kv_seq_id s, uint32_t g, kv_placement *out);
void kv_paged_breakdown_group(const kv_alloc *a, uint32_t g, kv_mem_breakdown *out);

/* Give back the host units of swapped sequence s (it is being freed while swapped). */
void kv_paged_host_release(kv_alloc *a, kv_seq_id s);
/* Paged: check that swapped sequences hold exactly the host tier's used block ids. */
kv_status kv_paged_check_host(const kv_alloc *a, kv_err *err);

#endif
