/* block_pool.h — a pool of fixed-size blocks with reference counts and a prefix cache.
 *
 * The pool carves pool bytes into n_blocks blocks of block_tokens token slots; it knows nothing
 * of sequences (paged.c's block tables do). Free blocks: a stack of blocks holding nothing
 * reusable, and an LRU list of free blocks still holding a cached prefix. Taking a block pops
 * the stack first and evicts the least recently freed cached block only when the stack is
 * empty (vLLM's BlockPool does the same with its free queue). Both O(1). A block registered
 * under a chained prefix hash keeps it while free, until evicted.
 *
 * Invariants (kv_block_pool_check, given the references the tables hold): reference counts
 * equal the references; every block is referenced, on the free stack or on the LRU list,
 * exactly one of them; cached blocks and the prefix index agree both ways; filled_slots sums
 * the fill of referenced blocks.
 *
 * Glossary: fill = tokens written in a block; LRU = the cached free blocks, oldest first.
 */
#ifndef KV_BLOCK_POOL_H
#define KV_BLOCK_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "prefix_index.h"
#include "status.h"

typedef struct kv_block_pool {
    uint32_t block_tokens, n_blocks;
    uint64_t block_bytes;
    uint32_t *refcnt;
    uint32_t *fill;                     /* tokens written in the block */
    uint64_t *hash;                     /* chained prefix hash, when cached[b] */
    uint8_t *cached;                    /* registered in the prefix index */
    uint32_t *free_stack, n_free_stack; /* free blocks holding no cached prefix */
    uint32_t *lru_prev, *lru_next;      /* free blocks holding a cached prefix, LRU first */
    uint32_t lru_head, lru_tail, n_lru;
    kv_prefix_index index;
    uint64_t filled_slots; /* sum of fill over referenced blocks */
    uint32_t *check_ref;   /* checker scratch, one per block */
} kv_block_pool;

/* n_blocks blocks of block_tokens slots of block_bytes; a prefix index when prefix_caching.
 * KV_OK or KV_ERR_NOMEM (the pool is then empty and fini-able). */
kv_status kv_block_pool_init(kv_block_pool *p, uint32_t n_blocks, uint32_t block_tokens,
                             uint64_t block_bytes, bool prefix_caching);
void kv_block_pool_fini(kv_block_pool *p);
uint64_t kv_block_pool_metadata_bytes(const kv_block_pool *p);

static inline uint32_t kv_block_pool_n_free(const kv_block_pool *p)
{
    return p->n_free_stack + p->n_lru;
}

/* Inline below: the hot path of every append (out of line, 3% of a replay). */

#define KV_BLOCK_POOL_NONE UINT32_MAX

static inline void kv_block_pool_lru_remove_(kv_block_pool *p, uint32_t b)
{
    if (p->lru_prev[b] != KV_BLOCK_POOL_NONE)
        p->lru_next[p->lru_prev[b]] = p->lru_next[b];
    else
        p->lru_head = p->lru_next[b];
    if (p->lru_next[b] != KV_BLOCK_POOL_NONE)
        p->lru_prev[p->lru_next[b]] = p->lru_prev[b];
    else
        p->lru_tail = p->lru_prev[b];
    p->n_lru--;
}

static inline void kv_block_pool_lru_push_tail_(kv_block_pool *p, uint32_t b)
{
    p->lru_next[b] = KV_BLOCK_POOL_NONE;
    p->lru_prev[b] = p->lru_tail;
    if (p->lru_tail != KV_BLOCK_POOL_NONE)
        p->lru_next[p->lru_tail] = b;
    else
        p->lru_head = b;
    p->lru_tail = b;
    p->n_lru++;
}

/* A free block, referenced once, empty. *evicted is set when it was a cached block whose
 * prefix is now gone. Precondition: a free block exists. */
static inline uint32_t kv_block_pool_take(kv_block_pool *p, bool *evicted)
{
    uint32_t b;
    *evicted = false;
    if (p->n_free_stack > 0) {
        b = p->free_stack[--p->n_free_stack];
    } else {
        b = p->lru_head;
        KV_ASSERT(b != KV_BLOCK_POOL_NONE);
        kv_block_pool_lru_remove_(p, b);
        kv_prefix_index_remove(&p->index, p->hash[b]);
        p->cached[b] = 0;
        *evicted = true;
    }
    KV_ASSERT(p->refcnt[b] == 0);
    p->refcnt[b] = 1;
    p->fill[b] = 0;
    return b;
}

/* One more reference to b; a cached free block comes back into use. */
static inline void kv_block_pool_incref(kv_block_pool *p, uint32_t b)
{
    if (p->refcnt[b] == 0) { /* a cached free block comes back into use */
        KV_ASSERT(p->cached[b]);
        kv_block_pool_lru_remove_(p, b);
        p->filled_slots += p->fill[b];
    }
    p->refcnt[b]++;
}

/* One reference fewer; at zero b goes to the LRU list if cached, else to the free stack. */
static inline void kv_block_pool_decref(kv_block_pool *p, uint32_t b)
{
    KV_ASSERT(p->refcnt[b] > 0);
    if (--p->refcnt[b] > 0)
        return;
    p->filled_slots -= p->fill[b];
    if (p->cached[b])
        kv_block_pool_lru_push_tail_(p, b);
    else
        p->free_stack[p->n_free_stack++] = b;
}


/* The block registered under hash, or KV_INDEX_NONE. */
static inline uint32_t kv_block_pool_lookup(const kv_block_pool *p, uint64_t hash)
{
    return kv_prefix_index_find(&p->index, hash);
}

/* Register referenced block b under hash, unless some block already is. */
void kv_block_pool_register(kv_block_pool *p, uint64_t hash, uint32_t b);

/* Check the invariants; refs[b] holds the references the tables make to b (it is
 * overwritten). KV_OK or KV_CORRUPT. */
kv_status kv_block_pool_check(const kv_block_pool *p, uint32_t *refs, kv_err *err);

#endif
