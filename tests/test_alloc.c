/* test_alloc.c — the common interface: model shapes, names, config validation, argument
 * checks and placements of every kind. */
#include "test_util.h"

/* ------------------------------------------------------------------------------------------ */

static void test_shape_bytes_of_real_models(void **state)
{
    (void)state;
    kv_shape llama3_8b = kv_shape_dense(32, 8, 128);
    assert_int_equal(kv_shape_validate(&llama3_8b, NULL), KV_OK);
    assert_int_equal(kv_shape_token_bytes(&llama3_8b), 32 * 2 * 8 * 128 * 2); /* 128 KiB */
    assert_int_equal(kv_shape_n_tensors(&llama3_8b), 64);
    assert_int_equal(kv_shape_tensor_token_bytes(&llama3_8b), 2048);
    /* DeepSeek-V3: MLA, one latent of 512 + 64 rope dims per layer, 61 layers */
    kv_shape v3 = {.n_layers = 61, .mla_latent_dim = 576, .elem_bits = 16};
    assert_int_equal(kv_shape_validate(&v3, NULL), KV_OK);
    assert_int_equal(kv_shape_n_tensors(&v3), 61);
    assert_int_equal(kv_shape_token_bytes(&v3), 61 * 576 * 2);
    /* int4 with a 2-byte scale per 32 elements */
    kv_shape q = llama3_8b;
    q.elem_bits = 4;
    q.scale_group_elems = 32;
    q.scale_bytes = 2;
    assert_int_equal(kv_shape_tensor_token_bytes(&q), 1024 / 2 + 32 * 2);
}

static void test_shape_validation_names_the_field(void **state)
{
    (void)state;
    kv_err e = {{0}};
    kv_shape s = kv_shape_dense(0, 8, 128);
    assert_int_equal(kv_shape_validate(&s, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "n_layers"));
    s = kv_shape_dense(2, 1, 3);
    s.elem_bits = 4; /* 3 elements of 4 bits: not whole bytes */
    e.msg[0] = '\0';
    assert_int_equal(kv_shape_validate(&s, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "whole bytes"));
}

static void test_names_round_trip_and_unknown_is_an_error(void **state)
{
    (void)state;
    for (int s = 0; s < KV_N_STRATEGIES; s++) {
        kv_strategy out;
        assert_int_equal(kv_strategy_parse(kv_strategy_name((kv_strategy)s), &out), KV_OK);
        assert_int_equal(out, s);
    }
    assert_string_equal(kv_strategy_name(KV_CHUNK_POOL), "chunk-pool");
    kv_strategy st;
    assert_int_equal(kv_strategy_parse("pagd", &st), KV_ERR_INPUT);
    kv_reserve r;
    assert_int_equal(kv_reserve_parse("oracle", &r), KV_OK);
    assert_int_equal(r, KV_RESERVE_ORACLE);
    kv_fit f;
    assert_int_equal(kv_fit_parse("buddy", &f), KV_OK);
    assert_int_equal(f, KV_FIT_BUDDY);
    kv_chunk_layout l;
    assert_int_equal(kv_chunk_layout_parse("fused", &l), KV_OK);
    kv_token_policy p;
    assert_int_equal(kv_token_policy_parse("window", &p), KV_OK);
    assert_int_equal(p, KV_TOKENS_WINDOW);
}

static void test_config_validation_rejects_bad_values(void **state)
{
    (void)state;
    kv_alloc_config c = t_config(KV_PAGED, 64);
    kv_alloc *a = NULL;
    kv_err e = {{0}};
    c.paged.block_tokens = 0;
    assert_int_equal(kv_alloc_create(&c, &a, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "block_tokens"));
    c = t_config(KV_PAGED, 64);
    c.watermark = 1.5;
    e.msg[0] = '\0';
    assert_int_equal(kv_alloc_create(&c, &a, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "watermark"));
    c = t_config(KV_CHUNK_POOL, 64);
    c.chunk.chunk_bytes = 8; /* less than one 16-byte layer-tensor token */
    e.msg[0] = '\0';
    assert_int_equal(kv_alloc_create(&c, &a, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "chunk_bytes"));
    c = t_config(KV_CONTIGUOUS, 0);
    c.pool_bytes = 10; /* less than one token */
    e.msg[0] = '\0';
    assert_int_equal(kv_alloc_create(&c, &a, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "pool_bytes"));
    assert_null(a);
}

static void test_slots_run_out_then_come_back(void **state)
{
    (void)state;
    kv_alloc_config c = t_config(KV_PAGED, 1024);
    c.max_seqs = 3;
    kv_alloc *a = t_create(&c);
    kv_seq_id s[3];
    for (int i = 0; i < 3; i++)
        s[i] = t_admit(a, 4, 4);
    kv_admit_req r = {.prompt_tokens = 4, .final_tokens = 4};
    kv_seq_id x;
    assert_false(kv_alloc_can_admit(a, &r));
    assert_int_equal(kv_alloc_admit(a, &r, &x, NULL), KV_NO_SPACE);
    assert_int_equal(kv_alloc_fork(a, s[0], 4, &x), KV_NO_SPACE);
    assert_int_equal(kv_alloc_free(a, s[1]), KV_OK);
    assert_int_equal(kv_alloc_free(a, s[1]), KV_INVALID); /* double free */
    assert_int_equal(kv_alloc_admit(a, &r, &x, NULL), KV_OK);
    assert_int_equal(x, s[1]);
    T_CHECK(a);
    kv_alloc_destroy(&a);
}

static void test_placement_kind_follows_strategy(void **state)
{
    (void)state;
    const kv_place_kind expect[] = {KV_PLACE_EXTENT, KV_PLACE_CHUNKS, KV_PLACE_BLOCKS,
                                    KV_PLACE_BLOCKS};
    for (int st = 0; st < KV_N_STRATEGIES; st++) {
        kv_alloc_config c = t_config((kv_strategy)st, 1024);
        c.chunk.chunk_bytes = 256;
        kv_alloc *a = t_create(&c);
        kv_seq_id s = t_admit(a, 9, 20);
        kv_placement p;
        assert_int_equal(kv_alloc_placement(a, s, &p), KV_OK);
        assert_int_equal(p.kind, expect[st]);
        assert_int_equal(p.n_tokens, 9);
        assert_int_equal(p.token_bytes, kv_alloc_token_bytes(a));
        /* stored capacity covers the tokens */
        uint64_t cap_tokens = p.kind == KV_PLACE_EXTENT   ? p.capacity_bytes / p.token_bytes
                              : p.kind == KV_PLACE_BLOCKS ? (uint64_t)p.n_blocks * p.block_tokens
                                                          : (uint64_t)p.n_chunks * p.chunk_tokens;
        assert_true(cap_tokens >= 9);
        assert_int_equal(kv_alloc_seq_state(a, s), KV_SEQ_RESIDENT);
        assert_int_equal(kv_alloc_seq_state(a, 999), KV_SEQ_FREE);
        T_CHECK(a);
        kv_alloc_destroy(&a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_bytes_of_real_models),
        cmocka_unit_test(test_shape_validation_names_the_field),
        cmocka_unit_test(test_names_round_trip_and_unknown_is_an_error),
        cmocka_unit_test(test_config_validation_rejects_bad_values),
        cmocka_unit_test(test_slots_run_out_then_come_back),
        cmocka_unit_test(test_placement_kind_follows_strategy),
    };
    return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
