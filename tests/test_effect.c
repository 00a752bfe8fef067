/* test_effect.c — effect lists (effect.h): growth, totals by kind and direction, the printed
 * form the decision log uses; and what a paged allocator's operations return. */
#include "test_util.h"

/* ------------------------------------------------------------------------------------------ */

static void print(const kv_effect *e, char *buf, size_t n)
{
    FILE *f = fmemopen(buf, n, "w");
    assert_non_null(f);
    kv_effect_fprint(f, e);
    fclose(f);
}

/* ------------------------------------------------------------------------------------------ */

static void test_effects_list_grows_and_totals_sum_by_kind_and_direction(void **state)
{
    (void)state;
    kv_effects l = {0};
    for (uint32_t i = 0; i < 200; i++) {
        kv_effect e = {.kind = (uint8_t)(i % KV_FX_N_KINDS), .bytes = 10, .n_copies = 2};
        e.cause = e.kind == KV_FX_TRANSFER ? (i % 2 ? KV_CAUSE_SWAP_OUT : KV_CAUSE_SWAP_IN) : 0;
        assert_int_equal(kv_effects_push(&l, &e), KV_OK);
    }
    assert_int_equal(l.n, 200);
    kv_effect_totals t = {0};
    kv_effects_add_totals(l.v, l.n, &t);
    /* 200 effects over 6 kinds: kinds 0..1 get 34, 2..5 get 33 */
    assert_int_equal(t.n_maps, 34);
    assert_int_equal(t.n_unmaps, 34);
    assert_int_equal(t.n_table_writes, 33);
    assert_int_equal(t.n_copies, 33);
    assert_int_equal(t.copy_bytes, 330);
    assert_int_equal(t.n_drops, 33);
    assert_int_equal(t.swap_out_copies + t.swap_in_copies, 66);
    assert_int_equal(t.swap_out_bytes + t.swap_in_bytes, 330);
    kv_effects_truncate(&l, 5);
    assert_int_equal(l.n, 5);
    kv_effects_fini(&l);
    assert_null(l.v);
}

static void test_effect_printed_forms(void **state)
{
    (void)state;
    char buf[128];
    kv_effect cow = {.kind = KV_FX_COPY, .cause = KV_CAUSE_COW, .at = KV_AT_BLOCK, .src = 12,
                     .dst = 40, .bytes = 4096};
    print(&cow, buf, sizeof buf);
    assert_string_equal(buf, "copy:cow b12->b40 4096B");
    kv_effect map = {.kind = KV_FX_MAP, .series = 3, .index = 2, .dst = 77};
    print(&map, buf, sizeof buf);
    assert_string_equal(buf, "map t3 i2 c77");
    kv_effect out = {.kind = KV_FX_TRANSFER, .cause = KV_CAUSE_SWAP_OUT, .at = KV_AT_BLOCK,
                     .src = 5, .dst = 0, .index = 1, .bytes = 32768, .n_copies = 64};
    print(&out, buf, sizeof buf);
    assert_string_equal(buf, "xfer:swap-out b5->h0@i1 32768B x64");
    kv_effect in = {.kind = KV_FX_TRANSFER, .cause = KV_CAUSE_SWAP_IN, .at = KV_AT_EXTENT,
                    .src_offset_bytes = 128, .dst_offset_bytes = 640, .bytes = 64, .n_copies = 1};
    print(&in, buf, sizeof buf);
    assert_string_equal(buf, "xfer:swap-in h@128->@640 64B x1");
}

/* A paged allocator of 4-token blocks: a fork shares by table writes, the first append to the
 * shared partial block copies it first, a swap-out moves each present block to a host block. */
static void test_paged_operations_return_their_effects_in_order(void **state)
{
    (void)state;
    kv_alloc_config c = t_config(KV_PAGED, 64);
    c.paged.block_tokens = 4;
    c.paged.prefix_caching = false;
    kv_alloc *a = t_create(&c);
    uint32_t n;
    kv_seq_id p = t_admit(a, 6, 10); /* blocks 0, 1 */
    const kv_effect *fx = kv_alloc_effects(a, &n);
    assert_int_equal(n, 2);
    assert_int_equal(fx[0].kind, KV_FX_TABLE);
    assert_int_equal(fx[1].index, 1);
    kv_seq_id ch;
    assert_int_equal(kv_alloc_fork(a, p, 10, &ch), KV_OK);
    fx = kv_alloc_effects(a, &n);
    assert_int_equal(n, 2);
    assert_int_equal(fx[0].seq, ch);
    assert_int_equal(fx[1].dst, 1); /* shares block 1 */
    assert_int_equal(kv_alloc_append(a, ch, 1), KV_OK);
    fx = kv_alloc_effects(a, &n);
    assert_int_equal(n, 2);
    assert_int_equal(fx[0].kind, KV_FX_COPY);
    assert_int_equal(fx[0].cause, KV_CAUSE_COW);
    assert_int_equal(fx[0].src, 1);
    assert_int_equal(fx[0].bytes, 2 * T_TOKEN_BYTES); /* the 2 tokens written so far */
    assert_int_equal(fx[1].kind, KV_FX_TABLE);
    assert_int_equal(fx[1].dst, fx[0].dst);
    assert_int_equal(kv_alloc_swap_out(a, p, NULL), KV_OK);
    fx = kv_alloc_effects(a, &n);
    assert_int_equal(n, 2);
    for (uint32_t i = 0; i < 2; i++) {
        assert_int_equal(fx[i].kind, KV_FX_TRANSFER);
        assert_int_equal(fx[i].cause, KV_CAUSE_SWAP_OUT);
        assert_int_equal(fx[i].index, i);
        assert_int_equal(fx[i].dst, i); /* a fresh host tier: host blocks 0, 1 */
        assert_int_equal(fx[i].n_copies, T_N_TENSORS);
    }
    assert_int_equal(kv_alloc_append(a, p, 1), KV_INVALID); /* not resident: no effects */
    fx = kv_alloc_effects(a, &n);
    assert_int_equal(n, 0);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_effects_list_grows_and_totals_sum_by_kind_and_direction),
        cmocka_unit_test(test_effect_printed_forms),
        cmocka_unit_test(test_paged_operations_return_their_effects_in_order),
    };
    return cmocka_run_group_tests_name("effect", tests, NULL, NULL);
}
