/* holes.c — boundary-tag extent placement, first-fit and best-fit. See holes.h. */
#include "holes.h"

#include "hostmem.h"

#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */

#define HOLE_FREE_BIT 0x80000000u
#define HOLE_LEN_MASK 0x7fffffffu

/* ------------------------------------------------------------------------------------------ */

static bool seg_is_free(const kv_holes *h, uint32_t start)
{
    return (h->head[start] & HOLE_FREE_BIT) != 0;
}

static uint32_t seg_len(const kv_holes *h, uint32_t start)
{
    return h->head[start] & HOLE_LEN_MASK;
}

/* Write the tags of a segment [start, start + n). */
static void seg_set(kv_holes *h, uint32_t start, uint32_t n, bool is_free)
{
    KV_ASSERT(n > 0 && start + n <= h->n_units);
    h->head[start] = n | (is_free ? HOLE_FREE_BIT : 0);
    h->tail[start + n - 1] = start;
}

static void hole_push(kv_holes *h, uint32_t start, uint32_t n)
{
    seg_set(h, start, n, true);
    h->holes[h->n_holes] = (kv_hole){start, n};
    h->owner[start] = h->n_holes++;
    h->free_units += n;
}

static void hole_remove(kv_holes *h, uint32_t start)
{
    uint32_t i = h->owner[start];
    KV_ASSERT(i < h->n_holes && h->holes[i].start == start);
    h->free_units -= h->holes[i].n_units;
    h->holes[i] = h->holes[--h->n_holes];
    if (i < h->n_holes)
        h->owner[h->holes[i].start] = i;
}

/* Take n units from the front of the hole at start; the rest stays a hole in the same slot. */
static void hole_take_front(kv_holes *h, uint32_t start, uint32_t n)
{
    uint32_t i = h->owner[start], len = h->holes[i].n_units;
    KV_ASSERT(n <= len);
    if (n == len) {
        hole_remove(h, start);
        return;
    }
    uint32_t rest = start + n;
    h->holes[i] = (kv_hole){rest, len - n};
    seg_set(h, rest, len - n, true);
    h->owner[rest] = i;
    h->free_units -= n;
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_holes_init(kv_holes *h, uint32_t n_units)
{
    KV_ASSERT(n_units > 0 && n_units <= HOLE_LEN_MASK);
    *h = (kv_holes){.n_units = n_units};
    h->head = kv_hostmem_zalloc(n_units, sizeof *h->head);
    h->tail = kv_hostmem_zalloc(n_units, sizeof *h->tail);
    h->owner = kv_hostmem_zalloc(n_units, sizeof *h->owner);
    /* holes <= allocated segments + 1 <= n_units / 2 + 1 */
    h->holes = kv_hostmem_zalloc(n_units / 2 + 1, sizeof *h->holes);
    if (!h->head || !h->tail || !h->owner || !h->holes) {
        kv_holes_fini(h);
        return KV_ERR_NOMEM;
    }
    hole_push(h, 0, n_units);
    return KV_OK;
}

void kv_holes_fini(kv_holes *h)
{
    free(h->head);
    free(h->tail);
    free(h->owner);
    free(h->holes);
    *h = (kv_holes){0};
}

uint32_t kv_holes_alloc(kv_holes *h, uint32_t n_units, bool best_fit, uint32_t owner)
{
    KV_ASSERT(n_units > 0);
    uint32_t pick = KV_UNIT_NONE, pick_len = 0;
    for (uint32_t i = 0; i < h->n_holes; i++) {
        kv_hole c = h->holes[i];
        if (c.n_units < n_units)
            continue;
        bool better;
        if (pick == KV_UNIT_NONE)
            better = true;
        else if (best_fit)
            better = c.n_units < pick_len || (c.n_units == pick_len && c.start < pick);
        else
            better = c.start < pick;
        if (better) {
            pick = c.start;
            pick_len = c.n_units;
        }
    }
    if (pick == KV_UNIT_NONE)
        return KV_UNIT_NONE;
    hole_take_front(h, pick, n_units);
    seg_set(h, pick, n_units, false);
    h->owner[pick] = owner;
    return pick;
}

bool kv_holes_extend(kv_holes *h, uint32_t start, uint32_t new_units)
{
    KV_ASSERT(!seg_is_free(h, start));
    uint32_t len = seg_len(h, start), next = start + len;
    if (new_units <= len)
        return true;
    if (next >= h->n_units || !seg_is_free(h, next) || seg_len(h, next) < new_units - len)
        return false;
    hole_take_front(h, next, new_units - len);
    seg_set(h, start, new_units, false);
    return true;
}

void kv_holes_free(kv_holes *h, uint32_t start)
{
    KV_ASSERT(start < h->n_units && !seg_is_free(h, start));
    uint32_t first = start, n = seg_len(h, start);
    if (first > 0) {
        uint32_t left = h->tail[first - 1];
        if (seg_is_free(h, left)) {
            n += seg_len(h, left);
            hole_remove(h, left);
            first = left;
        }
    }
    uint32_t next = start + seg_len(h, start);
    if (next < h->n_units && seg_is_free(h, next)) {
        n += seg_len(h, next);
        hole_remove(h, next);
    }
    hole_push(h, first, n);
}

uint32_t kv_holes_len(const kv_holes *h, uint32_t start)
{
    return seg_len(h, start);
}

uint32_t kv_holes_owner(const kv_holes *h, uint32_t start)
{
    return seg_is_free(h, start) ? KV_UNIT_NONE : h->owner[start];
}

bool kv_holes_fits(const kv_holes *h, uint32_t n_units)
{
    for (uint32_t i = 0; i < h->n_holes; i++)
        if (h->holes[i].n_units >= n_units)
            return true;
    return false;
}

uint64_t kv_holes_free_below(const kv_holes *h, uint32_t n_units)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < h->n_holes; i++)
        if (h->holes[i].n_units < n_units)
            sum += h->holes[i].n_units;
    return sum;
}

uint64_t kv_holes_metadata_bytes(const kv_holes *h)
{
    return (uint64_t)h->n_units * 3 * sizeof(uint32_t) + (h->n_units / 2 + 1) * sizeof(kv_hole);
}

kv_status kv_holes_check(const kv_holes *h, kv_err *err)
{
    uint64_t free_units = 0;
    uint32_t n_free_segs = 0;
    bool prev_free = false;
    for (uint32_t u = 0; u < h->n_units;) {
        uint32_t n = seg_len(h, u);
        bool is_free = seg_is_free(h, u);
        if (n == 0 || u + n > h->n_units)
            return kv_errorf(err, KV_CORRUPT, "holes: segment at %u has length %u (space %u)", u, n,
                             h->n_units);
        if (h->tail[u + n - 1] != u)
            return kv_errorf(err, KV_CORRUPT, "holes: tail of segment %u+%u names %u", u, n,
                             h->tail[u + n - 1]);
        if (is_free) {
            if (prev_free)
                return kv_errorf(err, KV_CORRUPT, "holes: free segment at %u follows a free one",
                                 u);
            uint32_t i = h->owner[u];
            if (i >= h->n_holes || h->holes[i].start != u || h->holes[i].n_units != n)
                return kv_errorf(err, KV_CORRUPT, "holes: free segment %u+%u not at holes[%u]", u,
                                 n, i);
            free_units += n;
            n_free_segs++;
        }
        prev_free = is_free;
        u += n;
    }
    if (n_free_segs != h->n_holes)
        return kv_errorf(err, KV_CORRUPT, "holes: %u free segments but %u holes listed",
                         n_free_segs, h->n_holes);
    if (free_units != h->free_units)
        return kv_errorf(err, KV_CORRUPT, "holes: free units %llu, counter says %llu",
                         (unsigned long long)free_units, (unsigned long long)h->free_units);
    return KV_OK;
}
