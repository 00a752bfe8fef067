/* heap.h — the one binary min-heap: items of any fixed size, ordered by a caller's `less`.
 *
 * Algorithm: the textbook array heap (Williams 1964; CLRS ch. 6). Push sifts the new item up
 * while it is less than its parent; pop moves the last item to the root and sifts it down,
 * taking the right child only when it is strictly less than the left one, and stopping when
 * no child is less than it. This exact order of comparisons is a contract: where `less` is not
 * a total order (the router's releases at equal times), callers see the same pops as the
 * hand-written heaps this module replaced, so results stay byte-identical. For FIFO ties, put a
 * sequence number in the key.
 *
 * Ownership: the heap owns its array (kv_heap_fini frees it); items are copied in and out.
 * `ctx` is borrowed and passed to every `less` call (e.g. the array the items index into).
 * Glossary: item = one element, item_bytes its size; len = items held; cap = room.
 */
#ifndef KV_HEAP_H
#define KV_HEAP_H

#include <stdbool.h>
#include <stddef.h>

/* ------------------------------------------------------------------------------------------ */

/* Whether item a must pop before item b. Must be a strict weak order. */
typedef bool (*kv_heap_less_fn)(const void *a, const void *b, void *ctx);

typedef struct kv_heap {
    unsigned char *items; /* len items of item_bytes; items[0] is a least one */
    size_t len, cap;
    size_t item_bytes;
    kv_heap_less_fn less;
    void *ctx;
} kv_heap;

/* ------------------------------------------------------------------------------------------ */

/* An empty heap of items of item_bytes (> 0) ordered by less (with ctx). Allocates nothing. */
void kv_heap_init(kv_heap *h, size_t item_bytes, kv_heap_less_fn less, void *ctx);

/* Free the array; h is empty afterwards and may be reused. Accepts a zeroed heap. */
void kv_heap_fini(kv_heap *h);

/* Copy *item in. Returns true, or false when the array could not grow (nothing changed).
 * item must not point into the heap's own array. */
bool kv_heap_push(kv_heap *h, const void *item);

/* A least item, borrowed until the next push or pop. Precondition: len > 0. */
const void *kv_heap_top(const kv_heap *h);

/* Remove a least item and copy it to *out (out may be NULL). Precondition: len > 0. */
void kv_heap_pop(kv_heap *h, void *out);

#endif
