/* buddy.c — binary buddy placement. See buddy.h. */
#include "buddy.h"

#include "hostmem.h"

#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */

/* Order of the top block holding unit u: top blocks are laid out largest first, one per set bit
 * of n_units, so the top block holding u is found by walking the set bits from the highest. */
static uint32_t top_order(const kv_buddy *b, uint32_t u)
{
    uint32_t base = 0;
    for (int k = KV_BUDDY_MAX_ORDER; k >= 0; k--) {
        if (!(b->n_units & (1u << k)))
            continue;
        if (u < base + (1u << k))
            return (uint32_t)k;
        base += 1u << k;
    }
    KV_ASSERT(!"unit outside the space");
    return 0;
}

static void list_push(kv_buddy *b, uint32_t start, uint32_t k)
{
    b->order[start] = (uint8_t)k;
    b->is_free[start] = 1;
    b->prev[start] = KV_UNIT_NONE;
    b->next[start] = b->list_head[k];
    if (b->list_head[k] != KV_UNIT_NONE)
        b->prev[b->list_head[k]] = start;
    b->list_head[k] = start;
    b->list_len[k]++;
    b->free_units += 1u << k;
}

static void list_remove(kv_buddy *b, uint32_t start)
{
    uint32_t k = b->order[start];
    KV_ASSERT(b->is_free[start]);
    if (b->prev[start] != KV_UNIT_NONE)
        b->next[b->prev[start]] = b->next[start];
    else
        b->list_head[k] = b->next[start];
    if (b->next[start] != KV_UNIT_NONE)
        b->prev[b->next[start]] = b->prev[start];
    b->is_free[start] = 0;
    b->list_len[k]--;
    b->free_units -= 1u << k;
}

/* ------------------------------------------------------------------------------------------ */

uint32_t kv_buddy_order_for(uint32_t n_units)
{
    KV_ASSERT(n_units > 0);
    uint32_t k = 0;
    while ((1ull << k) < n_units)
        k++;
    return k;
}

kv_status kv_buddy_init(kv_buddy *b, uint32_t n_units)
{
    KV_ASSERT(n_units > 0 && n_units < (1u << KV_BUDDY_MAX_ORDER));
    *b = (kv_buddy){.n_units = n_units};
    b->order = kv_hostmem_zalloc(n_units, 1);
    b->is_free = kv_hostmem_zalloc(n_units, 1);
    b->owner = kv_hostmem_zalloc(n_units, sizeof *b->owner);
    b->next = kv_hostmem_zalloc(n_units, sizeof *b->next);
    b->prev = kv_hostmem_zalloc(n_units, sizeof *b->prev);
    if (!b->order || !b->is_free || !b->owner || !b->next || !b->prev) {
        kv_buddy_fini(b);
        return KV_ERR_NOMEM;
    }
    for (int k = 0; k <= KV_BUDDY_MAX_ORDER; k++)
        b->list_head[k] = KV_UNIT_NONE;
    uint32_t base = 0;
    for (int k = KV_BUDDY_MAX_ORDER; k >= 0; k--) {
        if (n_units & (1u << k)) {
            list_push(b, base, (uint32_t)k);
            base += 1u << k;
        }
    }
    return KV_OK;
}

void kv_buddy_fini(kv_buddy *b)
{
    free(b->order);
    free(b->is_free);
    free(b->owner);
    free(b->next);
    free(b->prev);
    *b = (kv_buddy){0};
}

uint32_t kv_buddy_alloc(kv_buddy *b, uint32_t n_units, uint32_t owner)
{
    uint32_t k = kv_buddy_order_for(n_units), j = k;
    while (j <= KV_BUDDY_MAX_ORDER && b->list_head[j] == KV_UNIT_NONE)
        j++;
    if (j > KV_BUDDY_MAX_ORDER)
        return KV_UNIT_NONE;
    uint32_t start = b->list_head[j];
    list_remove(b, start);
    while (j > k) { /* split: keep the left half, free the right */
        j--;
        list_push(b, start + (1u << j), j);
    }
    b->order[start] = (uint8_t)k;
    b->owner[start] = owner;
    return start;
}

bool kv_buddy_extend(kv_buddy *b, uint32_t start, uint32_t new_units)
{
    KV_ASSERT(!b->is_free[start]);
    uint32_t k = b->order[start], want = kv_buddy_order_for(new_units), top = top_order(b, start);
    if (want <= k)
        return true;
    if (want > top || (start & ((1u << want) - 1)) != 0)
        return false; /* a larger block at start would not be aligned: we are a right buddy */
    for (uint32_t j = k; j < want; j++) { /* every right buddy on the way must be free, whole */
        uint32_t buddy = start + (1u << j);
        if (!b->is_free[buddy] || b->order[buddy] != j)
            return false;
    }
    for (uint32_t j = k; j < want; j++)
        list_remove(b, start + (1u << j));
    b->order[start] = (uint8_t)want;
    return true;
}

void kv_buddy_free(kv_buddy *b, uint32_t start)
{
    KV_ASSERT(start < b->n_units && !b->is_free[start]);
    uint32_t k = b->order[start], top = top_order(b, start);
    while (k < top) {
        uint32_t buddy = start ^ (1u << k);
        if (!b->is_free[buddy] || b->order[buddy] != k)
            break;
        list_remove(b, buddy);
        start = start < buddy ? start : buddy;
        k++;
    }
    list_push(b, start, k);
}

uint32_t kv_buddy_len(const kv_buddy *b, uint32_t start)
{
    return 1u << b->order[start];
}

uint32_t kv_buddy_owner(const kv_buddy *b, uint32_t start)
{
    return b->is_free[start] ? KV_UNIT_NONE : b->owner[start];
}

bool kv_buddy_fits(const kv_buddy *b, uint32_t n_units)
{
    for (uint32_t j = kv_buddy_order_for(n_units); j <= KV_BUDDY_MAX_ORDER; j++)
        if (b->list_head[j] != KV_UNIT_NONE)
            return true;
    return false;
}

uint64_t kv_buddy_free_below(const kv_buddy *b, uint32_t n_units)
{
    if (n_units == 0)
        return 0;
    uint64_t sum = 0;
    for (uint32_t j = 0; j < kv_buddy_order_for(n_units); j++)
        sum += (uint64_t)b->list_len[j] << j;
    return sum;
}

uint32_t kv_buddy_max_units(const kv_buddy *b)
{
    return 1u << top_order(b, 0);
}

uint64_t kv_buddy_metadata_bytes(const kv_buddy *b)
{
    return (uint64_t)b->n_units * (2 + 3 * sizeof(uint32_t));
}

kv_status kv_buddy_check(const kv_buddy *b, kv_err *err)
{
    uint32_t n_free[KV_BUDDY_MAX_ORDER + 1] = {0};
    uint64_t free_units = 0;
    for (uint32_t u = 0; u < b->n_units;) {
        uint32_t k = b->order[u], size = 1u << k;
        if (k > top_order(b, u) || (u & (size - 1)) != 0 || u + size > b->n_units)
            return kv_errorf(err, KV_CORRUPT, "buddy: block at %u of order %u misplaced", u, k);
        if (b->is_free[u]) {
            n_free[k]++;
            free_units += size;
            if (k < top_order(b, u)) {
                uint32_t buddy = u ^ size;
                if (b->is_free[buddy] && b->order[buddy] == k)
                    return kv_errorf(err, KV_CORRUPT,
                                     "buddy: free blocks %u and %u of order %u did not merge", u,
                                     buddy, k);
            }
        }
        u += size;
    }
    for (uint32_t k = 0; k <= KV_BUDDY_MAX_ORDER; k++) {
        uint32_t n = 0;
        for (uint32_t s = b->list_head[k], p = KV_UNIT_NONE; s != KV_UNIT_NONE;
             p = s, s = b->next[s]) {
            if (++n > b->list_len[k] || b->prev[s] != p || !b->is_free[s] || b->order[s] != k)
                return kv_errorf(err, KV_CORRUPT, "buddy: free list %u broken at %u", k, s);
        }
        if (n != b->list_len[k] || n != n_free[k])
            return kv_errorf(err, KV_CORRUPT,
                             "buddy: order %u: %u listed, counter %u, %u free blocks found", k, n,
                             b->list_len[k], n_free[k]);
    }
    if (free_units != b->free_units)
        return kv_errorf(err, KV_CORRUPT, "buddy: free units %llu, counter says %llu",
                         (unsigned long long)free_units, (unsigned long long)b->free_units);
    return KV_OK;
}
