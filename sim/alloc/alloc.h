/* alloc.h — the KV-cache allocator: one interface over four strategies.
 *
 * The allocator decides where every sequence's KV lives in a device pool of pool_bytes, as
 * vLLM's block manager or vAttention's mapper do on the host. It manages ids and offsets only:
 * it never touches KV bytes, and all its metadata lives in host memory outside the pool.
 * kvsim and kvgpu both link it; kvgpu turns placements into device addresses.
 *
 * Strategies (DESIGN.md §3), names used by the CLI and every output:
 *   contiguous  one extent of token slots per sequence, reserved at admission;
 *   chunk-pool  fixed physical chunks (2 MiB) mapped into a per-sequence virtual range;
 *   paged       fixed blocks of block_tokens, block tables, refcounts, copy-on-write, prefix cache;
 *   compressed  paged blocks holding quantized KV and/or only a subset of the tokens.
 *
 * Life of a sequence: admit (reserve the whole prompt) -> append (decode tokens) ... ->
 * free; optionally fork (parallel samples), swap_out / swap_in (host tier). Every operation is
 * atomic: when it returns anything but KV_OK, the allocator is as it was.
 *
 * Layer groups (kv_layer_group, blocks pools only): the model's layers split into equal groups,
 * each with its own token layout (full, window with sinks, budget) and its own block table per
 * sequence over the one block pool, as vLLM's hybrid KV cache manager does for models that mix
 * sliding-window and full attention. Every operation plans every group before it changes any,
 * so it stays atomic across groups; effects name their group; placement and breakdown are per
 * group (kv_alloc_placement_group, kv_alloc_breakdown_group). Without groups in the
 * configuration the allocator is one group of every layer, exactly as before groups existed.
 *
 * Memory accounting: every byte of the pool is in exactly one category at any instant
 * (kv_mem_breakdown), computed from each sequence's final length given at admission.
 *
 * Cost: no operation allocates host memory after kv_alloc_create; append, free and fork are
 * O(blocks or chunks touched); admission with contiguous placement scans the free holes.
 *
 * Glossary: seq = sequence (one request's KV, or one fork of it); slot = room for one token's KV;
 * final = the length a sequence will reach (prompt + output); stored = tokens whose KV is kept;
 * group = layer group; page = one block of one group (block_tokens tokens of its layers).
 */
#ifndef KV_ALLOC_H
#define KV_ALLOC_H

#include <stdbool.h>
#include <stdint.h>

#include "effect.h"
#include "shape.h"
#include "status.h"
#include "tier.h"

/* ----------------------------------------------------------------- constants and enums --- */

typedef uint32_t kv_seq_id;
#define KV_SEQ_NONE   UINT32_MAX
#define KV_BLOCK_NONE UINT32_MAX /* a block-table entry whose tokens were evicted */

typedef enum kv_strategy {
    KV_CONTIGUOUS,
    KV_CHUNK_POOL,
    KV_PAGED,
    KV_COMPRESSED,
    KV_N_STRATEGIES
} kv_strategy;

typedef enum kv_reserve {
    KV_RESERVE_MAX,    /* the model's max context */
    KV_RESERVE_POW2,   /* the final length rounded up to a power of two */
    KV_RESERVE_ORACLE, /* exactly the final length */
    KV_RESERVE_GROW,   /* the prompt; when full, move to an extent twice as large */
} kv_reserve;

typedef enum kv_fit { KV_FIT_FIRST, KV_FIT_BEST, KV_FIT_BUDDY } kv_fit;

typedef enum kv_chunk_layout {
    KV_CHUNK_PER_LAYER, /* every layer tensor (K, V of each layer) owns a chunk series */
    KV_CHUNK_FUSED,     /* one chunk series per sequence holds all layers */
} kv_chunk_layout;

typedef enum kv_token_policy {
    KV_TOKENS_ALL,    /* keep every token */
    KV_TOKENS_WINDOW, /* sink tokens + the most recent window (StreamingLLM) */
    KV_TOKENS_BUDGET, /* a fixed number of tokens per sequence (H2O, SnapKV) */
} kv_token_policy;

typedef enum kv_seq_state { KV_SEQ_FREE = 0, KV_SEQ_RESIDENT, KV_SEQ_SWAPPED } kv_seq_state;

/* Layer groups (DESIGN.md §3, as vLLM's hybrid KV cache manager): the layers of a model that
 * share one token layout, e.g. Gemma 3's sliding-window layers and its full-attention layers.
 * Each group lays its sequences onto the one block pool with its own block table per sequence;
 * a block holds block_tokens tokens of one group's layers (a page). Every group has the same
 * number of layers, so every group's page has one size and any free block serves any group
 * (vLLM requires equal page sizes too, and splits layers into equal groups to get them; here
 * the configuration states the split). */
#define KV_MAX_GROUPS 8

typedef struct kv_layer_group {
    uint32_t n_layers;                   /* layers of the model in this group */
    kv_token_policy policy;              /* full (KV_TOKENS_ALL), window or budget */
    uint32_t sink_tokens, window_tokens; /* KV_TOKENS_WINDOW */
    uint32_t budget_tokens;              /* KV_TOKENS_BUDGET */
} kv_layer_group;

/* --------------------------------------------------------------------------- config --- */

typedef struct kv_alloc_config {
    kv_strategy strategy;
    kv_shape shape;           /* the model's KV geometry at its native dtype */
    uint64_t pool_bytes;      /* device bytes given to KV */
    uint64_t host_pool_bytes; /* host tier capacity; 0 = no host tier */
    kv_tier_link host_link;   /* the host tier's link (tier.h); kv_run fills it from the GPU
                               * preset and --calib, the cost model prices transfers over it;
                               * zero where nobody prices them (the allocator never does) */
    uint32_t max_seqs;        /* sequence slots, resident and swapped together */
    uint32_t max_seq_tokens;  /* the model's context: longest sequence, and the `max` reservation */
    double watermark;         /* fraction of the pool admission must leave free (vLLM: 0.01) */
    struct {
        kv_reserve reserve;
        kv_fit fit;
    } contiguous;
    struct {
        uint64_t chunk_bytes; /* default 2 MiB, the CUDA VMM granularity */
        kv_chunk_layout layout;
    } chunk;
    struct {
        uint32_t block_tokens; /* default 16 */
        bool prefix_caching;
    } paged; /* also used by compressed */
    struct {
        uint32_t elem_bits;         /* 8 (fp8/int8) or 4 (int4); 16 keeps the native size */
        uint32_t scale_group_elems; /* 0 = per-tensor scale, no per-token overhead */
        uint32_t scale_bytes;
        kv_token_policy policy;
        uint32_t sink_tokens, window_tokens; /* KV_TOKENS_WINDOW */
        uint32_t budget_tokens;              /* KV_TOKENS_BUDGET */
    } compressed;
    /* Layer groups. 0: one group of every layer with the strategy's layout (compressed's token
     * policy, else full), as before groups existed. > 0: groups[0 .. n_groups) partition the
     * model's layers in equal parts, each with its own layout; more than one group only over a
     * blocks pool (paged, compressed), compressed's own policy then left at none, and prefix
     * caching only when every group keeps every token. */
    uint32_t n_groups;
    kv_layer_group groups[KV_MAX_GROUPS];
} kv_alloc_config;

/* Defaults for strategy s: contiguous max/first-fit, 2 MiB per-layer chunks, 16-token blocks with
 * prefix caching, fp8 with no group scales and every token kept; watermark 0.01; 1024 slots
 * (max_seqs); host tier of 4 GiB (vLLM's swap_space); max_seq_tokens 8192. */
void kv_alloc_config_default(kv_alloc_config *c, kv_strategy s, const kv_shape *shape,
                             uint64_t pool_bytes);

/* The KV shape as configuration c stores it: the model's, with compressed's element bits and
 * scales. One token's bytes in the pool are kv_shape_token_bytes of it; the cost model reads
 * and kvgpu lays out KV at this size. */
kv_shape kv_alloc_config_stored_shape(const kv_alloc_config *c);

/* KV_OK, or KV_ERR_INPUT with a message naming the bad field. */
kv_status kv_alloc_config_validate(const kv_alloc_config *c, kv_err *err);

/* Names as the CLI and outputs spell them; parse returns KV_ERR_INPUT on an unknown name. */
const char *kv_strategy_name(kv_strategy s);
const char *kv_reserve_name(kv_reserve r);
const char *kv_fit_name(kv_fit f);
const char *kv_chunk_layout_name(kv_chunk_layout l);
const char *kv_token_policy_name(kv_token_policy p);
kv_status kv_strategy_parse(const char *name, kv_strategy *out);
kv_status kv_reserve_parse(const char *name, kv_reserve *out);
kv_status kv_fit_parse(const char *name, kv_fit *out);
kv_status kv_chunk_layout_parse(const char *name, kv_chunk_layout *out);
kv_status kv_token_policy_parse(const char *name, kv_token_policy *out);

/* --------------------------------------------------------------------------- types --- */

typedef struct kv_alloc kv_alloc;

/* What admission needs to know about a request. */
typedef struct kv_admit_req {
    uint32_t prompt_tokens; /* > 0 */
    uint32_t final_tokens;  /* prompt + expected output, >= prompt_tokens, <= max_seq_tokens */
    /* Optional (paged, compressed with prefix caching): the content id of each full prompt
     * block, in block_tokens units. Equal ids at equal positions after equal prefixes mean the
     * same KV; the allocator chains them into prefix hashes. NULL / 0 when unknown. */
    const uint64_t *block_content;
    uint32_t n_block_content;
} kv_admit_req;

/* Bytes and copies one swap moved. */
typedef struct kv_swap_stats {
    uint64_t bytes;
    uint64_t n_copies; /* separate copies the layout forces: one per extent or virtual range,
                        * one per block per layer tensor */
} kv_swap_stats;

/* Bytes of the pool by category; token + reserved + internal + external + free == pool. */
typedef struct kv_mem_breakdown {
    uint64_t pool_bytes;
    uint64_t token_bytes;         /* KV of tokens that exist now (and are kept) */
    uint64_t reserved_bytes;      /* allocated slots their sequence will fill later */
    uint64_t internal_frag_bytes; /* allocated slots never filled (or holding evicted tokens) */
    uint64_t external_frag_bytes; /* free bytes that cannot serve the waiting allocation, and the
                                   * pool's tail too small for one unit */
    uint64_t free_bytes;          /* usable free bytes (cached prefix blocks included) */
    uint64_t cached_free_bytes;   /* of free_bytes, held by evictable prefix-cache blocks */
    uint64_t metadata_bytes;      /* host memory of the allocator's own structures */
    uint64_t host_bytes;          /* swap tier in use */
    uint64_t uncompressed_token_bytes; /* every token's KV at the native dtype, none evicted */
    uint32_t n_resident, n_swapped;
} kv_mem_breakdown;

/* Counters since create. */
typedef struct kv_alloc_stats {
    uint64_t n_admits, n_appends, n_forks, n_frees, n_swap_outs, n_swap_ins;
    uint64_t n_moves;          /* contiguous: extents moved to grow (reallocate-and-copy) */
    uint64_t n_cow;            /* paged: copy-on-write copies of a shared partial block */
    uint64_t copy_bytes;       /* device-to-device bytes copied: moves, CoW, fork copies */
    uint64_t n_maps, n_unmaps; /* chunk-pool: chunk map and unmap calls */
    uint64_t prefix_query_blocks, prefix_hit_blocks;
    uint64_t n_evictions;    /* cached free blocks reused for new data */
    uint64_t n_window_drops; /* compressed: blocks freed because they left the window */
    uint64_t swap_out_bytes, swap_in_bytes, n_swap_copies;
} kv_alloc_stats;

typedef enum kv_place_kind { KV_PLACE_EXTENT, KV_PLACE_BLOCKS, KV_PLACE_CHUNKS } kv_place_kind;

/* Where a resident sequence's KV lives. Pointers borrow the allocator's tables and stay valid
 * until the next operation that changes this sequence. */
typedef struct kv_placement {
    kv_place_kind kind;
    uint32_t n_tokens;    /* logical tokens of the sequence */
    uint64_t token_bytes; /* bytes of one token over all layer tensors (as stored) */
    /* KV_PLACE_EXTENT: slots [offset, offset + capacity) of the pool, token-major */
    uint64_t offset_bytes, capacity_bytes;
    /* KV_PLACE_BLOCKS: block ids in logical order; KV_BLOCK_NONE where evicted */
    const uint32_t *block_table;
    uint32_t n_blocks, block_tokens;
    uint64_t block_bytes;
    /* KV_PLACE_CHUNKS: chunk ids of tensor t at chunk_ids[t * chunk_stride + i], i < n_chunks */
    const uint32_t *chunk_ids;
    uint32_t n_chunk_tensors, n_chunks, chunk_stride, chunk_tokens;
    uint64_t chunk_bytes;
} kv_placement;

/* ------------------------------------------------------------------------ functions --- */

/* Create an allocator. Allocates all host metadata now. Returns KV_OK with *out set, or
 * KV_ERR_INPUT (bad config, message in err) or KV_ERR_NOMEM. The caller owns *out. */
kv_status kv_alloc_create(const kv_alloc_config *c, kv_alloc **out, kv_err *err);

/* Free everything; accepts NULL. *a is NULL afterwards. */
void kv_alloc_destroy(kv_alloc **a);

const kv_alloc_config *kv_alloc_config_of(const kv_alloc *a);

/* Bytes of one token as this strategy stores it (compressed: quantized, scales included), over
 * every layer (every group). */
uint64_t kv_alloc_token_bytes(const kv_alloc *a);

/* Whether admit(req) would succeed now and leave at least watermark x pool free. */
bool kv_alloc_can_admit(const kv_alloc *a, const kv_admit_req *req);

/* Whether req can never be admitted, not even into an empty pool (admit would return
 * KV_TOO_LARGE): the scheduler rejects it instead of letting it block the queue. */
bool kv_alloc_too_large(const kv_alloc *a, const kv_admit_req *req);

/* Reserve room for the whole prompt (and, for contiguous, the reservation policy's length) and
 * make a new sequence holding prompt_tokens tokens. *seq gets its id; *cached_tokens (may be
 * NULL) the prompt tokens found in the prefix cache.
 * Returns KV_OK, KV_NO_SPACE (no room now, or no free sequence slot), KV_TOO_LARGE (the final
 * length cannot fit even an empty pool: reject the request), or KV_INVALID (zero-length prompt,
 * final < prompt, final > max_seq_tokens). Does not apply the watermark: see can_admit. */
kv_status kv_alloc_admit(kv_alloc *a, const kv_admit_req *req, kv_seq_id *seq,
                         uint32_t *cached_tokens);

/* Add n_tokens > 0 tokens to resident seq. KV_OK, KV_NO_SPACE, or KV_INVALID (beyond
 * max_seq_tokens, not resident). */
kv_status kv_alloc_append(kv_alloc *a, kv_seq_id seq, uint32_t n_tokens);

/* A new sequence sharing parent's tokens (copy-on-write where the strategy can share, a copy
 * where it cannot), expected to reach child_final_tokens. KV_OK, KV_NO_SPACE, KV_INVALID. */
kv_status kv_alloc_fork(kv_alloc *a, kv_seq_id parent, uint32_t child_final_tokens,
                        kv_seq_id *child);

/* Release seq, resident or swapped. KV_OK or KV_INVALID (not live). */
kv_status kv_alloc_free(kv_alloc *a, kv_seq_id seq);

/* Move resident seq's KV to the host tier and release its device memory. KV_OK, KV_NO_SPACE
 * (host tier full), KV_INVALID. *st (may be NULL) gets the bytes and copies. */
kv_status kv_alloc_swap_out(kv_alloc *a, kv_seq_id seq, kv_swap_stats *st);

/* Bring swapped seq back to fresh device memory. KV_OK, KV_NO_SPACE, KV_INVALID. */
kv_status kv_alloc_swap_in(kv_alloc *a, kv_seq_id seq, kv_swap_stats *st);

/* Where resident seq's KV lives (layer group 0's blocks when there are several groups: see
 * kv_alloc_placement_group). KV_OK or KV_INVALID. */
kv_status kv_alloc_placement(const kv_alloc *a, kv_seq_id seq, kv_placement *out);

/* Layer groups the allocator lays out: 1 when the configuration gives none. */
uint32_t kv_alloc_n_groups(const kv_alloc *a);

/* Where resident seq's KV of layer group g lives: its own block table; token_bytes and
 * block_bytes are the group's (its layers only). With one group this is kv_alloc_placement;
 * with several, kv_alloc_placement names group 0's table but its token_bytes are every layer's.
 * KV_OK, or KV_INVALID (not resident, g >= kv_alloc_n_groups). */
kv_status kv_alloc_placement_group(const kv_alloc *a, kv_seq_id seq, uint32_t g,
                                   kv_placement *out);

/* How resident seq grows, for the engine's fast path: appends fill `capacity - tokens` slots in
 * place; after that each unit of unit_tokens more slots takes unit_bytes of the pool (and
 * unit_maps chunk map calls), one append of k tokens leaving the same state, block ids apart, as
 * k appends of one. unit_tokens is 0 where growth changes the layout (contiguous moves,
 * compressed token policies) and with several layer groups (capacity is then the tokens: no
 * jump), and copy_next is set when the next append must copy a shared
 * block: no jump past either. */
typedef struct kv_growth {
    uint32_t tokens, capacity, final_tokens;
    uint32_t unit_tokens, unit_maps;
    uint64_t unit_bytes;
    bool copy_next;
} kv_growth;

kv_status kv_alloc_growth(const kv_alloc *a, kv_seq_id seq, kv_growth *out);

/* Free pool bytes, and of those the bytes still holding evictable prefix-cache blocks (taken
 * last). */
void kv_alloc_free_bytes(const kv_alloc *a, uint64_t *free_bytes, uint64_t *cached_free_bytes);

kv_seq_state kv_alloc_seq_state(const kv_alloc *a, kv_seq_id seq);
uint32_t kv_alloc_seq_tokens(const kv_alloc *a, kv_seq_id seq);

/* The exact breakdown now. waiting (may be NULL) is the request the scheduler cannot admit:
 * free space that cannot hold its reservation counts as external fragmentation. O(live seqs)
 * for paged and chunk-pool, O(live seqs + holes) for contiguous. */
void kv_alloc_breakdown(const kv_alloc *a, const kv_admit_req *waiting, kv_mem_breakdown *out);

/* Layer group g's part of the breakdown: its token, reserved and internal fragmentation bytes
 * (the blocks its tables hold) and its uncompressed token bytes; pool-wide fields (pool, free,
 * cached free, external fragmentation, metadata, host, sequence counts) are the pool's, shared
 * by every group, so that summing token + reserved + internal over the groups and adding free
 * and external once gives the pool. O(pool blocks + live seqs). Precondition: g <
 * kv_alloc_n_groups(a). */
void kv_alloc_breakdown_group(const kv_alloc *a, uint32_t g, kv_mem_breakdown *out);

const kv_alloc_stats *kv_alloc_stats_of(const kv_alloc *a);

/* Recompute every counter and structure from scratch and compare. KV_OK, or KV_CORRUPT with
 * what broke in err. O(pool units + sequences): for tests and debug builds. */
kv_status kv_alloc_check(const kv_alloc *a, kv_err *err);

/* ------------------------------------------------------------------- decision events --- */

/* Every admit, append, fork, free, swap-out and swap-in can be observed: the listener is called
 * after the operation with its status and its effects (effect.h), in the order they must be
 * applied. This is how kvgpu realizes each decision on the device and how both tools write the
 * decision log. */
typedef enum kv_op {
    KV_OP_ADMIT,
    KV_OP_APPEND,
    KV_OP_FORK,
    KV_OP_FREE,
    KV_OP_SWAP_OUT,
    KV_OP_SWAP_IN
} kv_op;

typedef struct kv_op_record {
    kv_op op;
    kv_seq_id seq;    /* the sequence (fork: the child; KV_SEQ_NONE when admit or fork failed) */
    kv_seq_id parent; /* fork: the parent */
    uint32_t tokens;  /* admit: prompt tokens; append: tokens added; fork: the child's final */
    kv_status status; /* the operation's result */
    const kv_effect *effects; /* what it requires of memory (none when it failed); borrowed */
    uint32_t n_effects;
} kv_op_record;

typedef void (*kv_op_listener)(void *ctx, const kv_alloc *a, const kv_op_record *r);

/* The effects of the last admit, append, fork, free, swap-out or swap-in, in the order they
 * must be applied: none when it failed. Borrowed: valid until the next operation. */
const kv_effect *kv_alloc_effects(const kv_alloc *a, uint32_t *n_effects);

/* Add the effects of every operation to *totals as it completes (NULL to stop): how the engine
 * prices a step's maps, unmaps and copies without a listener call per operation. */
void kv_alloc_set_totals(kv_alloc *a, kv_effect_totals *totals);

/* One listener (NULL to remove). */
void kv_alloc_set_listener(kv_alloc *a, kv_op_listener fn, void *ctx);

const char *kv_op_name(kv_op op);

#endif
