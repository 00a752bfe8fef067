/* buddy.h — binary buddy placement of extents over n_units slots (Knowlton 1965; Knuth TAOCP
 * vol. 1 §2.5).
 *
 * Algorithm: a request of n units takes a block of 2^k >= n units, k = ceil(log2 n). Free blocks
 * of each order sit on a doubly linked free list (links kept outside the space, in per-unit
 * arrays). Allocation splits the smallest free block of order >= k down to k; freeing merges a
 * block with its buddy (start ^ 2^k) while the buddy is free and of the same order.
 * n_units need not be a power of two: the space is cut into maximal aligned power-of-two "top"
 * blocks (one per set bit of n_units, largest first), and merging stops at a top block's order.
 *
 * Invariants (kv_buddy_check): blocks tile [0, n_units); each block is aligned to its size and
 * lies inside one top block; every free block is on the list of its order exactly once; no free
 * block has a free buddy of the same order (it would have merged).
 *
 * Glossary: order k = a block of 2^k units; top block = a root of the buddy tree.
 */
#ifndef KV_BUDDY_H
#define KV_BUDDY_H

#include <stdbool.h>
#include <stdint.h>

#include "holes.h" /* KV_UNIT_NONE */
#include "status.h"

enum { KV_BUDDY_MAX_ORDER = 31 };

typedef struct kv_buddy {
    uint32_t n_units;
    uint8_t *order;        /* at a block's first unit: its order */
    uint8_t *is_free;      /* at a block's first unit */
    uint32_t *owner;       /* at an allocated block's first unit */
    uint32_t *next, *prev; /* free-list links at a free block's first unit */
    uint32_t list_head[KV_BUDDY_MAX_ORDER + 1];
    uint32_t list_len[KV_BUDDY_MAX_ORDER + 1];
    uint64_t free_units;
} kv_buddy;

/* Order of the smallest block holding n_units (n_units >= 1). */
uint32_t kv_buddy_order_for(uint32_t n_units);

kv_status kv_buddy_init(kv_buddy *b, uint32_t n_units);
void kv_buddy_fini(kv_buddy *b);

/* Place a block of 2^order_for(n) units for owner; returns its first unit or KV_UNIT_NONE.
 * O(orders). */
uint32_t kv_buddy_alloc(kv_buddy *b, uint32_t n_units, uint32_t owner);

/* Grow the block at start in place to hold new_units, merging it with free right-hand buddies
 * of equal order. Returns whether it did; on false nothing changed. */
bool kv_buddy_extend(kv_buddy *b, uint32_t start, uint32_t new_units);

/* Free the block at start and merge with free buddies up to the top block. O(orders). */
void kv_buddy_free(kv_buddy *b, uint32_t start);

/* Units of the allocated block at start (a power of two). */
uint32_t kv_buddy_len(const kv_buddy *b, uint32_t start);
/* Owner of the allocated block at start; KV_UNIT_NONE if it is free. */
uint32_t kv_buddy_owner(const kv_buddy *b, uint32_t start);

/* Whether a block for n_units is free now. O(orders). */
bool kv_buddy_fits(const kv_buddy *b, uint32_t n_units);

/* Free units in blocks too small for n_units (0 when n_units == 0). O(orders). */
uint64_t kv_buddy_free_below(const kv_buddy *b, uint32_t n_units);

/* Units of the largest top block: the largest request that can ever be served. */
uint32_t kv_buddy_max_units(const kv_buddy *b);

uint64_t kv_buddy_metadata_bytes(const kv_buddy *b);

kv_status kv_buddy_check(const kv_buddy *b, kv_err *err);

#endif
