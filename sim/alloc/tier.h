/* tier.h — a lower tier of KV memory (pinned host DRAM): its own pool, occupancy and checker.
 *
 * The device pool lives in the strategy files; a sequence swapped out of it moves to the host
 * tier, which is a real allocator, not a byte counter: KV that leaves the device lands in units
 * the tier hands out, and comes back from them. Two kinds, matching the device pool's:
 *   blocks   blocks pools swap block by block (vLLM's per-block swap): each device block goes
 *            to a host block of the same size, taken from a LIFO stack of returned ids, fresh
 *            ids counting up after them, so a swap of a fresh tier lands in one ascending run;
 *   extents  extents and chunk series swap a sequence's tokens as one run: first-fit over a
 *            sorted list of holes (SQLite's mem5 keeps its metadata outside the memory too).
 * Metadata grows with what is swapped, never with the tier's capacity: ids up to the most
 * blocks ever held at once, holes up to the extents held + 1, both bounded at init so that no
 * operation allocates.
 *
 * Invariants (kv_tier_check): used + free units == capacity; the free ids are distinct and
 * below the fresh counter; holes are sorted, disjoint, not adjacent, inside the tier, and sum
 * to the free units of the extents kind. The coordinator (alloc.c) adds that every swapped
 * sequence's units are exactly the used ones.
 *
 * Glossary: unit = one block (blocks kind) or one token's KV as stored (extents kind); fresh =
 * an id never handed out; hole = a maximal free run.
 */
#ifndef KV_TIER_H
#define KV_TIER_H

#include <stdbool.h>
#include <stdint.h>

#include "holes.h" /* kv_hole, KV_UNIT_NONE */
#include "status.h"

/* ------------------------------------------------------------------------------ types --- */

typedef enum kv_tier_kind { KV_TIER_BLOCKS, KV_TIER_EXTENTS } kv_tier_kind;

/* A tier's link to the device: bandwidth per direction and the fixed cost of one copy. The
 * allocator only carries it; the cost model prices every transfer effect over it. */
typedef struct kv_tier_link {
    double h2d_gbps, d2h_gbps; /* GB/s (1e9 bytes) into and out of the device */
    double copy_latency_us;    /* per separate copy */
} kv_tier_link;

typedef struct kv_host_tier {
    uint8_t tier;       /* kv_tier (effect.h): KV_TIER_HOST */
    kv_tier_kind kind;
    kv_tier_link link;
    uint64_t unit_bytes;  /* a block, or a token as stored */
    uint64_t n_units;     /* capacity: capacity_bytes / unit_bytes */
    uint64_t used_units;
    /* blocks */
    uint32_t *free_ids, n_free_ids, next_fresh, max_ids;
    /* extents */
    kv_hole *holes;
    uint32_t n_holes, max_holes;
} kv_host_tier;

/* ------------------------------------------------------------------------ functions --- */

/* A tier of capacity_bytes in units of unit_bytes > 0. max_held bounds what is ever held at
 * once: blocks (blocks kind) or extents (extents kind); metadata is sized by
 * min(max_held, capacity). KV_OK, KV_ERR_INPUT (2^32 - 2 units or more) or KV_ERR_NOMEM. */
kv_status kv_tier_init(kv_host_tier *t, kv_tier_kind kind, uint64_t unit_bytes,
                       uint64_t capacity_bytes, uint64_t max_held);
void kv_tier_fini(kv_host_tier *t);

/* Blocks kind: take n block ids into ids[0 .. n), all or none. KV_OK or KV_NO_SPACE. O(n). */
kv_status kv_tier_take_blocks(kv_host_tier *t, uint32_t n, uint32_t *ids);

/* Blocks kind: whether n blocks can be taken now. */
bool kv_tier_has_blocks(const kv_host_tier *t, uint32_t n);

/* Blocks kind: give block id back (it was taken). O(1). */
void kv_tier_give_block(kv_host_tier *t, uint32_t id);

/* Extents kind: place n_units > 0 units first-fit; *start gets the first. KV_OK or
 * KV_NO_SPACE. O(holes). */
kv_status kv_tier_alloc_extent(kv_host_tier *t, uint32_t n_units, uint32_t *start);

/* Extents kind: free the extent [start, start + n_units), coalescing. O(holes). */
void kv_tier_free_extent(kv_host_tier *t, uint32_t start, uint32_t n_units);

/* Free bytes that cannot serve an extent of want_units (0: none), and the rest. */
void kv_tier_free_split(const kv_host_tier *t, uint32_t want_units, uint64_t *usable_bytes,
                        uint64_t *unusable_bytes);

/* Host memory of the tier's own structures. */
uint64_t kv_tier_metadata_bytes(const kv_host_tier *t);

/* Recompute the invariants above. mark: scratch of max_ids bytes (blocks kind) or NULL. */
kv_status kv_tier_check(const kv_host_tier *t, uint8_t *mark, kv_err *err);

#endif
