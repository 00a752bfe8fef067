/* tier.c — the host tier's pool: block ids or first-fit extents over a sorted hole list.
 * See tier.h. */
#include "tier.h"
#include "hostmem.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */

kv_status kv_tier_init(kv_host_tier *t, kv_tier_kind kind, uint64_t unit_bytes,
                       uint64_t capacity_bytes, uint64_t max_held)
{
    *t = (kv_host_tier){.kind = kind, .unit_bytes = unit_bytes};
    KV_ASSERT(unit_bytes > 0);
    t->n_units = capacity_bytes / unit_bytes;
    if (t->n_units >= UINT32_MAX - 1)
        return KV_ERR_INPUT;
    uint64_t held = max_held < t->n_units ? max_held : t->n_units;
    if (kind == KV_TIER_BLOCKS) {
        t->max_ids = (uint32_t)held;
        t->free_ids = kv_hostmem_zalloc((size_t)t->max_ids + 1, sizeof *t->free_ids);
        if (t->free_ids == NULL)
            return KV_ERR_NOMEM;
        return KV_OK;
    }
    t->max_holes = (uint32_t)held + 1;
    t->holes = kv_hostmem_zalloc(t->max_holes, sizeof *t->holes);
    if (t->holes == NULL)
        return KV_ERR_NOMEM;
    if (t->n_units > 0)
        t->holes[t->n_holes++] = (kv_hole){0, (uint32_t)t->n_units};
    return KV_OK;
}

void kv_tier_fini(kv_host_tier *t)
{
    free(t->free_ids);
    free(t->holes);
    *t = (kv_host_tier){0};
}

/* ------------------------------------------------------------------------------ blocks --- */

bool kv_tier_has_blocks(const kv_host_tier *t, uint32_t n)
{
    return t->used_units + n <= t->n_units;
}

kv_status kv_tier_take_blocks(kv_host_tier *t, uint32_t n, uint32_t *ids)
{
    KV_ASSERT(t->kind == KV_TIER_BLOCKS);
    if (!kv_tier_has_blocks(t, n))
        return KV_NO_SPACE;
    for (uint32_t i = 0; i < n; i++) {
        if (t->n_free_ids > 0) {
            ids[i] = t->free_ids[--t->n_free_ids];
        } else {
            KV_ASSERT(t->next_fresh < t->max_ids); /* max_held was a true bound */
            ids[i] = t->next_fresh++;
        }
    }
    t->used_units += n;
    return KV_OK;
}

void kv_tier_give_block(kv_host_tier *t, uint32_t id)
{
    KV_ASSERT(t->kind == KV_TIER_BLOCKS && id < t->next_fresh && t->used_units > 0);
    t->free_ids[t->n_free_ids++] = id;
    t->used_units--;
}

/* ----------------------------------------------------------------------------- extents --- */

kv_status kv_tier_alloc_extent(kv_host_tier *t, uint32_t n_units, uint32_t *start)
{
    KV_ASSERT(t->kind == KV_TIER_EXTENTS && n_units > 0);
    for (uint32_t i = 0; i < t->n_holes; i++) {
        kv_hole *h = &t->holes[i];
        if (h->n_units < n_units)
            continue;
        *start = h->start;
        h->start += n_units;
        h->n_units -= n_units;
        if (h->n_units == 0) {
            memmove(h, h + 1, (t->n_holes - i - 1) * sizeof *h);
            t->n_holes--;
        }
        t->used_units += n_units;
        return KV_OK;
    }
    return KV_NO_SPACE;
}

void kv_tier_free_extent(kv_host_tier *t, uint32_t start, uint32_t n_units)
{
    KV_ASSERT(t->kind == KV_TIER_EXTENTS && n_units > 0 && t->used_units >= n_units);
    uint32_t i = 0; /* the first hole after the extent */
    while (i < t->n_holes && t->holes[i].start < start)
        i++;
    bool join_prev = i > 0 && t->holes[i - 1].start + t->holes[i - 1].n_units == start;
    bool join_next = i < t->n_holes && start + n_units == t->holes[i].start;
    if (join_prev && join_next) {
        t->holes[i - 1].n_units += n_units + t->holes[i].n_units;
        memmove(&t->holes[i], &t->holes[i + 1], (t->n_holes - i - 1) * sizeof *t->holes);
        t->n_holes--;
    } else if (join_prev) {
        t->holes[i - 1].n_units += n_units;
    } else if (join_next) {
        t->holes[i].start = start;
        t->holes[i].n_units += n_units;
    } else {
        KV_ASSERT(t->n_holes < t->max_holes);
        memmove(&t->holes[i + 1], &t->holes[i], (t->n_holes - i) * sizeof *t->holes);
        t->holes[i] = (kv_hole){start, n_units};
        t->n_holes++;
    }
    t->used_units -= n_units;
}

/* ------------------------------------------------------------------------------------------ */

void kv_tier_free_split(const kv_host_tier *t, uint32_t want_units, uint64_t *usable_bytes,
                        uint64_t *unusable_bytes)
{
    uint64_t free_units = t->n_units - t->used_units, below = 0;
    if (t->kind == KV_TIER_EXTENTS && want_units > 0)
        for (uint32_t i = 0; i < t->n_holes; i++)
            if (t->holes[i].n_units < want_units)
                below += t->holes[i].n_units;
    *unusable_bytes = below * t->unit_bytes;
    *usable_bytes = (free_units - below) * t->unit_bytes;
}

uint64_t kv_tier_metadata_bytes(const kv_host_tier *t)
{
    return sizeof *t + ((uint64_t)t->max_ids + 1) * sizeof *t->free_ids * (t->free_ids != NULL) +
           (uint64_t)t->max_holes * sizeof *t->holes;
}

kv_status kv_tier_check(const kv_host_tier *t, uint8_t *mark, kv_err *err)
{
    if (t->used_units > t->n_units)
        return kv_errorf(err, KV_CORRUPT, "host tier: %llu units used of %llu",
                         (unsigned long long)t->used_units, (unsigned long long)t->n_units);
    if (t->kind == KV_TIER_BLOCKS) {
        if (t->next_fresh > t->max_ids || t->n_free_ids > t->next_fresh ||
            t->used_units != (uint64_t)(t->next_fresh - t->n_free_ids))
            return kv_errorf(err, KV_CORRUPT,
                             "host tier: %u ids handed out, %u returned, %llu used (ids up to %u)",
                             t->next_fresh, t->n_free_ids, (unsigned long long)t->used_units,
                             t->max_ids);
        if (mark) {
            memset(mark, 0, t->next_fresh);
            for (uint32_t i = 0; i < t->n_free_ids; i++) {
                uint32_t id = t->free_ids[i];
                if (id >= t->next_fresh || mark[id]++)
                    return kv_errorf(err, KV_CORRUPT, "host tier: free id %u at %u", id, i);
            }
        }
        return KV_OK;
    }
    uint64_t free_units = 0;
    for (uint32_t i = 0; i < t->n_holes; i++) {
        const kv_hole *h = &t->holes[i];
        uint64_t end = (uint64_t)h->start + h->n_units;
        if (h->n_units == 0 || end > t->n_units ||
            (i > 0 && t->holes[i - 1].start + t->holes[i - 1].n_units >= h->start))
            return kv_errorf(err, KV_CORRUPT, "host tier: hole %u (%u+%u) out of order", i,
                             h->start, h->n_units);
        free_units += h->n_units;
    }
    if (free_units + t->used_units != t->n_units)
        return kv_errorf(err, KV_CORRUPT, "host tier: %llu free + %llu used != %llu units",
                         (unsigned long long)free_units, (unsigned long long)t->used_units,
                         (unsigned long long)t->n_units);
    return KV_OK;
}
