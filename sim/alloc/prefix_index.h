/* prefix_index.h — the prefix cache's map from a block's chained content hash to its block id.
 *
 * Algorithm: open addressing with linear probing over a power-of-two table at most half full,
 * and backward-shift deletion (no tombstones, so probe lengths stay short under the constant
 * insert/evict churn of a prefix cache). Keys are 64-bit chained hashes (see paged.c); the
 * probe start is the key's high bits after a multiplicative mix.
 *
 * Invariants (kv_prefix_index_check): n_used entries are occupied; every occupied entry is
 * reachable from its home slot without crossing an empty one.
 */
#ifndef KV_PREFIX_INDEX_H
#define KV_PREFIX_INDEX_H

#include <stdint.h>

#include "status.h"

#define KV_INDEX_NONE UINT32_MAX

typedef struct kv_prefix_index {
    uint64_t *keys;
    uint32_t *vals; /* KV_INDEX_NONE marks an empty slot */
    uint32_t mask;  /* capacity - 1 */
    uint32_t shift; /* 64 - log2(capacity) */
    uint32_t n_used;
} kv_prefix_index;

/* Room for max_entries keys (table of the next power of two >= 2 x max_entries). */
kv_status kv_prefix_index_init(kv_prefix_index *x, uint32_t max_entries);
void kv_prefix_index_fini(kv_prefix_index *x);

/* The value under key, or KV_INDEX_NONE. */
uint32_t kv_prefix_index_find(const kv_prefix_index *x, uint64_t key);

/* Insert key -> val. Precondition: key absent, val != KV_INDEX_NONE, room left. */
void kv_prefix_index_insert(kv_prefix_index *x, uint64_t key, uint32_t val);

/* Remove key. Precondition: present. */
void kv_prefix_index_remove(kv_prefix_index *x, uint64_t key);

uint64_t kv_prefix_index_metadata_bytes(const kv_prefix_index *x);

kv_status kv_prefix_index_check(const kv_prefix_index *x, kv_err *err);

#endif
