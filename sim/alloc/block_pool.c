/* block_pool.c — fixed blocks, reference counts, a free stack and an LRU of cached free blocks.
 * See block_pool.h. */
#include "block_pool.h"
#include "hostmem.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */

#define REF_MARK_FREE 0x80000000u
#define REF_MARK_LRU  0x40000000u
#define NO_BLOCK      UINT32_MAX

/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------ */

kv_status kv_block_pool_init(kv_block_pool *p, uint32_t n_blocks, uint32_t block_tokens,
                             uint64_t block_bytes, bool prefix_caching)
{
    *p = (kv_block_pool){.n_blocks = n_blocks,
                         .block_tokens = block_tokens,
                         .block_bytes = block_bytes,
                         .lru_head = NO_BLOCK,
                         .lru_tail = NO_BLOCK};
    size_t nb = (size_t)n_blocks + 1;
    p->refcnt = kv_hostmem_zalloc(nb, sizeof *p->refcnt);
    p->fill = kv_hostmem_zalloc(nb, sizeof *p->fill);
    p->hash = kv_hostmem_zalloc(nb, sizeof *p->hash);
    p->cached = kv_hostmem_zalloc(nb, 1);
    p->free_stack = kv_hostmem_zalloc(nb, sizeof *p->free_stack);
    p->lru_prev = kv_hostmem_zalloc(nb, sizeof *p->lru_prev);
    p->lru_next = kv_hostmem_zalloc(nb, sizeof *p->lru_next);
    p->check_ref = kv_hostmem_zalloc(nb, sizeof *p->check_ref);
    kv_status st = KV_ERR_NOMEM;
    if (p->refcnt && p->fill && p->hash && p->cached && p->free_stack && p->lru_prev &&
        p->lru_next && p->check_ref)
        st = kv_prefix_index_init(&p->index, prefix_caching ? n_blocks : 1);
    if (st != KV_OK) {
        kv_block_pool_fini(p);
        return st;
    }
    /* Block 0 on top of the stack: the first sequence gets blocks 0, 1, 2, ... */
    for (uint32_t i = 0; i < n_blocks; i++)
        p->free_stack[i] = n_blocks - 1 - i;
    p->n_free_stack = n_blocks;
    return KV_OK;
}

void kv_block_pool_fini(kv_block_pool *p)
{
    free(p->refcnt);
    free(p->fill);
    free(p->hash);
    free(p->cached);
    free(p->free_stack);
    free(p->lru_prev);
    free(p->lru_next);
    free(p->check_ref);
    kv_prefix_index_fini(&p->index);
    *p = (kv_block_pool){0};
}

/* The per-block arrays (refcnt, fill, free stack, LRU links: four of 4 bytes; hash: 8; cached:
 * 1) and the prefix index; the checker's scratch is not counted. */
uint64_t kv_block_pool_metadata_bytes(const kv_block_pool *p)
{
    return ((uint64_t)p->n_blocks + 1) * (4 * sizeof(uint32_t) + sizeof(uint64_t) + 1) +
           kv_prefix_index_metadata_bytes(&p->index);
}

void kv_block_pool_register(kv_block_pool *p, uint64_t hash, uint32_t b)
{
    if (kv_prefix_index_find(&p->index, hash) != KV_INDEX_NONE)
        return;
    kv_prefix_index_insert(&p->index, hash, b);
    p->hash[b] = hash;
    p->cached[b] = 1;
}

kv_status kv_block_pool_check(const kv_block_pool *p, uint32_t *ref, kv_err *err)
{
    uint64_t filled = 0;
    uint32_t n_cached = 0;
    for (uint32_t b = 0; b < p->n_blocks; b++) {
        if (ref[b] != p->refcnt[b])
            return kv_errorf(err, KV_CORRUPT, "paged: block %u refcount %u, tables name it %u times",
                             b, p->refcnt[b], ref[b]);
        if (ref[b] > 0)
            filled += p->fill[b];
        if (p->cached[b]) {
            n_cached++;
            if (kv_prefix_index_find(&p->index, p->hash[b]) != b)
                return kv_errorf(err, KV_CORRUPT, "paged: cached block %u not in the index", b);
        }
    }
    if (filled != p->filled_slots)
        return kv_errorf(err, KV_CORRUPT, "paged: filled slots %llu, counter %llu",
                         (unsigned long long)filled, (unsigned long long)p->filled_slots);
    if (n_cached != p->index.n_used)
        return kv_errorf(err, KV_CORRUPT, "paged: %u cached blocks, index holds %u", n_cached,
                         p->index.n_used);
    if (p->n_free_stack + p->n_lru > p->n_blocks)
        return kv_errorf(err, KV_CORRUPT, "paged: %u + %u free of %u blocks", p->n_free_stack,
                         p->n_lru, p->n_blocks);
    for (uint32_t i = 0; i < p->n_free_stack; i++) {
        uint32_t b = p->free_stack[i];
        if (b >= p->n_blocks || ref[b] != 0 || p->cached[b])
            return kv_errorf(err, KV_CORRUPT,
                             "paged: free stack entry %u = block %u (refs %u, cached %u)", i, b,
                             b < p->n_blocks ? ref[b] : 0, b < p->n_blocks ? p->cached[b] : 0);
        ref[b] = REF_MARK_FREE;
    }
    uint32_t n = 0;
    for (uint32_t b = p->lru_head, prev = NO_BLOCK; b != NO_BLOCK; prev = b, b = p->lru_next[b]) {
        if (b >= p->n_blocks || ++n > p->n_lru || p->lru_prev[b] != prev || ref[b] != 0 ||
            !p->cached[b])
            return kv_errorf(err, KV_CORRUPT, "paged: LRU list broken at block %u", b);
        ref[b] = REF_MARK_LRU;
        if (p->lru_next[b] == NO_BLOCK && p->lru_tail != b)
            return kv_errorf(err, KV_CORRUPT, "paged: LRU tail is %u, list ends at %u", p->lru_tail,
                             b);
    }
    if (n != p->n_lru)
        return kv_errorf(err, KV_CORRUPT, "paged: LRU holds %u, counter %u", n, p->n_lru);
    for (uint32_t b = 0; b < p->n_blocks; b++)
        if (ref[b] == 0)
            return kv_errorf(err, KV_CORRUPT, "paged: block %u is neither used nor free", b);
    return kv_prefix_index_check(&p->index, err);
}
