/* prefix_index.c — open-addressing hash map for the prefix cache. See prefix_index.h. */
#include "prefix_index.h"

#include "hostmem.h"

#include <stdbool.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */

static uint32_t home_of(const kv_prefix_index *x, uint64_t key)
{
    return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> x->shift);
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_prefix_index_init(kv_prefix_index *x, uint32_t max_entries)
{
    uint32_t log2 = 4;
    while ((1ull << log2) < 2ull * max_entries)
        log2++;
    KV_ASSERT(log2 < 32);
    uint32_t cap = 1u << log2;
    *x = (kv_prefix_index){.mask = cap - 1, .shift = 64 - log2};
    x->keys = kv_hostmem_zalloc(cap, sizeof *x->keys);
    x->vals = kv_hostmem_zalloc(cap, sizeof *x->vals);
    if (!x->keys || !x->vals) {
        kv_prefix_index_fini(x);
        return KV_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < cap; i++)
        x->vals[i] = KV_INDEX_NONE;
    return KV_OK;
}

void kv_prefix_index_fini(kv_prefix_index *x)
{
    free(x->keys);
    free(x->vals);
    *x = (kv_prefix_index){0};
}

uint32_t kv_prefix_index_find(const kv_prefix_index *x, uint64_t key)
{
    for (uint32_t i = home_of(x, key);; i = (i + 1) & x->mask) {
        if (x->vals[i] == KV_INDEX_NONE)
            return KV_INDEX_NONE;
        if (x->keys[i] == key)
            return x->vals[i];
    }
}

void kv_prefix_index_insert(kv_prefix_index *x, uint64_t key, uint32_t val)
{
    KV_ASSERT(val != KV_INDEX_NONE && 2ull * (x->n_used + 1) <= (uint64_t)x->mask + 1);
    uint32_t i = home_of(x, key);
    while (x->vals[i] != KV_INDEX_NONE) {
        KV_ASSERT(x->keys[i] != key);
        i = (i + 1) & x->mask;
    }
    x->keys[i] = key;
    x->vals[i] = val;
    x->n_used++;
}

void kv_prefix_index_remove(kv_prefix_index *x, uint64_t key)
{
    uint32_t i = home_of(x, key);
    while (x->keys[i] != key || x->vals[i] == KV_INDEX_NONE) {
        KV_ASSERT(x->vals[i] != KV_INDEX_NONE);
        i = (i + 1) & x->mask;
    }
    /* Backward shift: pull later entries of the cluster into the hole when their home slot
     * does not lie cyclically in (hole, j]. */
    for (uint32_t j = (i + 1) & x->mask; x->vals[j] != KV_INDEX_NONE; j = (j + 1) & x->mask) {
        uint32_t home = home_of(x, x->keys[j]);
        bool stays = ((j - home) & x->mask) < ((j - i) & x->mask);
        if (stays)
            continue;
        x->keys[i] = x->keys[j];
        x->vals[i] = x->vals[j];
        i = j;
    }
    x->vals[i] = KV_INDEX_NONE;
    x->n_used--;
}

uint64_t kv_prefix_index_metadata_bytes(const kv_prefix_index *x)
{
    return ((uint64_t)x->mask + 1) * (sizeof *x->keys + sizeof *x->vals);
}

kv_status kv_prefix_index_check(const kv_prefix_index *x, kv_err *err)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i <= x->mask; i++) {
        if (x->vals[i] == KV_INDEX_NONE)
            continue;
        n++;
        for (uint32_t p = home_of(x, x->keys[i]); p != i; p = (p + 1) & x->mask)
            if (x->vals[p] == KV_INDEX_NONE)
                return kv_errorf(err, KV_CORRUPT,
                                 "prefix index: entry %u unreachable (empty slot %u on its probe)",
                                 i, p);
    }
    if (n != x->n_used)
        return kv_errorf(err, KV_CORRUPT, "prefix index: %u entries, counter says %u", n,
                         x->n_used);
    return KV_OK;
}
