/* vec.h — the one growable array: reserve room in a caller-owned buffer by doubling.
 *
 * A caller keeps its own typed pointer and capacity (`req *reqs; size_t cap_reqs;`) and asks
 * for room before it writes: kv_vec_reserve(&reqs, &cap_reqs, n_reqs + 1, sizeof *reqs, 64).
 * Capacity doubles from `first_cap` until it holds `need`, so n appends cost O(n) copies.
 * Header-only (static inline) so that every library, the fuzz targets (which link only the
 * trace reader) and kvgpu can use it.
 *
 * Ownership: the buffer is the caller's; free() it. On failure nothing changed: the old
 * pointer and capacity stay valid. On success the old pointer is no longer valid.
 */
#ifndef KV_VEC_H
#define KV_VEC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */

/* items is the address of the caller's typed pointer (T **), passed as void *. Make *items (of
 * *cap_items items of item_bytes each) hold at least need_items, doubling from max(*cap_items,
 * first_cap). Returns true, or false when realloc failed or the size overflows (then nothing
 * changed). Never shrinks. Precondition: item_bytes > 0, first_cap > 0. */
static inline bool kv_vec_reserve(void *items, size_t *cap_items, size_t need_items,
                                  size_t item_bytes, size_t first_cap)
{
    if (need_items <= *cap_items)
        return true;
    size_t cap = *cap_items ? *cap_items : first_cap;
    while (cap < need_items) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    if (cap > SIZE_MAX / item_bytes)
        return false;
    void *old, *q; /* through memcpy: items is a T **, not a void ** (strict aliasing) */
    memcpy(&old, items, sizeof old);
    q = realloc(old, cap * item_bytes);
    if (q == NULL)
        return false;
    memcpy(items, &q, sizeof q);
    *cap_items = cap;
    return true;
}

/* As kv_vec_reserve, and zero the items added between the old and the new capacity. */
static inline bool kv_vec_reserve_zeroed(void *items, size_t *cap_items, size_t need_items,
                                         size_t item_bytes, size_t first_cap)
{
    size_t old = *cap_items;
    if (!kv_vec_reserve(items, cap_items, need_items, item_bytes, first_cap))
        return false;
    char *base;
    memcpy(&base, items, sizeof base);
    memset(base + old * item_bytes, 0, (*cap_items - old) * item_bytes);
    return true;
}

#endif
