/* heap.c — the binary min-heap. The algorithm and its contract are in heap.h. */
#include "heap.h"

#include <string.h>

#include "status.h"
#include "vec.h"

/* ------------------------------------------------------------------------------------------ */

enum { HEAP_FIRST_CAP = 64 };

static unsigned char *at(const kv_heap *h, size_t i)
{
    return h->items + i * h->item_bytes;
}

/* ------------------------------------------------------------------------------------------ */

void kv_heap_init(kv_heap *h, size_t item_bytes, kv_heap_less_fn less, void *ctx)
{
    KV_ASSERT(item_bytes > 0 && less != NULL);
    *h = (kv_heap){.item_bytes = item_bytes, .less = less, .ctx = ctx};
}

void kv_heap_fini(kv_heap *h)
{
    free(h->items);
    h->items = NULL;
    h->len = h->cap = 0;
}

bool kv_heap_push(kv_heap *h, const void *item)
{
    if (!kv_vec_reserve(&h->items, &h->cap, h->len + 1, h->item_bytes, HEAP_FIRST_CAP))
        return false;
    size_t i = h->len++;
    while (i > 0 && h->less(item, at(h, (i - 1) / 2), h->ctx)) {
        memcpy(at(h, i), at(h, (i - 1) / 2), h->item_bytes);
        i = (i - 1) / 2;
    }
    memcpy(at(h, i), item, h->item_bytes);
    return true;
}

const void *kv_heap_top(const kv_heap *h)
{
    KV_ASSERT(h->len > 0);
    return h->items;
}

void kv_heap_pop(kv_heap *h, void *out)
{
    KV_ASSERT(h->len > 0);
    if (out != NULL)
        memcpy(out, h->items, h->item_bytes);
    /* The last item stays in its slot (index len after the decrement) while it sifts down:
     * only slots below len are written. */
    const unsigned char *last = at(h, --h->len);
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && h->less(at(h, c + 1), at(h, c), h->ctx))
            c++;
        if (!h->less(at(h, c), last, h->ctx))
            break;
        memcpy(at(h, i), at(h, c), h->item_bytes);
        i = c;
    }
    if (h->len > 0)
        memcpy(at(h, i), last, h->item_bytes);
}
