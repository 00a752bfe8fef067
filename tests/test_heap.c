/* test_heap.c — the binary min-heap: order, stability of its tie rule, growth, random stress. */
#include "test_util.h"

#include "heap.h"

/* ------------------------------------------------------------------------------------------ */

typedef struct item {
    double key;
    uint32_t tag;
} item;

static bool key_less(const void *a, const void *b, void *ctx)
{
    (void)ctx;
    return ((const item *)a)->key < ((const item *)b)->key;
}

static bool u32_less_by_table(const void *a, const void *b, void *ctx)
{
    const uint64_t *rank = ctx;
    return rank[*(const uint32_t *)a] < rank[*(const uint32_t *)b];
}

/* The textbook heap the module replaced (router.c's), as the oracle for the order of pops. */
typedef struct ref_heap {
    item v[4096];
    size_t n;
} ref_heap;

static void ref_push(ref_heap *h, item x)
{
    size_t i = h->n++;
    while (i > 0 && h->v[(i - 1) / 2].key > x.key) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = x;
}

static item ref_pop(ref_heap *h)
{
    item top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1].key < h->v[c].key)
            c++;
        if (!(h->v[c].key < x.key))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0)
        h->v[i] = x;
    return top;
}

/* ------------------------------------------------------------------------------------------ */

static void test_heap_pops_in_ascending_order(void **state)
{
    (void)state;
    kv_heap h;
    kv_heap_init(&h, sizeof(item), key_less, NULL);
    double keys[] = {5, 1, 4, 1.5, 9, 2, 6, 0.5};
    for (uint32_t i = 0; i < 8; i++)
        assert_true(kv_heap_push(&h, &(item){keys[i], i}));
    assert_int_equal(h.len, 8);
    assert_true(((const item *)kv_heap_top(&h))->key == 0.5);
    double last = -1;
    while (h.len > 0) {
        item x;
        kv_heap_pop(&h, &x);
        assert_true(x.key >= last);
        last = x.key;
    }
    kv_heap_fini(&h);
    assert_null(h.items);
}

static void test_heap_breaks_ties_exactly_as_the_hand_written_heaps_did(void **state)
{
    (void)state;
    t_rng r = {7};
    kv_heap h;
    kv_heap_init(&h, sizeof(item), key_less, NULL);
    static ref_heap ref;
    ref.n = 0;
    for (uint32_t step = 0; step < 20000; step++) {
        bool push = ref.n == 0 || (ref.n < 4096 && t_range(&r, 0, 2) > 0);
        if (push) {
            item x = {(double)t_range(&r, 0, 20), step}; /* many equal keys */
            ref_push(&ref, x);
            assert_true(kv_heap_push(&h, &x));
        } else {
            item want = ref_pop(&ref), got;
            kv_heap_pop(&h, &got);
            assert_true(got.key == want.key);
            assert_int_equal(got.tag, want.tag);
        }
        assert_int_equal(h.len, ref.n);
    }
    kv_heap_fini(&h);
}

static void test_heap_compares_through_the_callers_context(void **state)
{
    (void)state;
    uint64_t rank[6] = {50, 10, 40, 20, 30, 0};
    kv_heap h;
    kv_heap_init(&h, sizeof(uint32_t), u32_less_by_table, rank);
    for (uint32_t i = 0; i < 6; i++)
        assert_true(kv_heap_push(&h, &i));
    uint32_t want[] = {5, 1, 3, 4, 2, 0};
    for (int i = 0; i < 6; i++) {
        uint32_t got = 99;
        kv_heap_pop(&h, &got);
        assert_int_equal(got, want[i]);
    }
    kv_heap_fini(&h);
}

static void test_heap_pop_with_null_out_discards_the_top(void **state)
{
    (void)state;
    kv_heap h;
    kv_heap_init(&h, sizeof(item), key_less, NULL);
    for (uint32_t i = 0; i < 300; i++) /* past the first growth */
        assert_true(kv_heap_push(&h, &(item){(double)(300 - i), i}));
    kv_heap_pop(&h, NULL);
    assert_true(((const item *)kv_heap_top(&h))->key == 2);
    kv_heap_fini(&h);
    kv_heap_fini(&h); /* a finished heap may be finished again */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_pops_in_ascending_order),
        cmocka_unit_test(test_heap_breaks_ties_exactly_as_the_hand_written_heaps_did),
        cmocka_unit_test(test_heap_compares_through_the_callers_context),
        cmocka_unit_test(test_heap_pop_with_null_out_discards_the_top),
    };
    return cmocka_run_group_tests_name("heap", tests, NULL, NULL);
}
