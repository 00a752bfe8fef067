/* test_reader.c — trace readers and the native writer: bundled real traces, every field of
 * every format on small handwritten files, and every kind of bad input. */
#include "test_util.h"

#include <unistd.h>
#include <zlib.h>

#include "reader.h"
#include "stats.h"
#include "writer.h"

/* ------------------------------------------------------------------------------------------ */

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    return t_mkdtemp(tmpdir, sizeof tmpdir, "test-reader");
}

static int teardown(void **state)
{
    (void)state;
    return t_rm_rf(tmpdir);
}

/* Write bytes to tmpdir/name; returns the path (static buffer, one at a time). */
static const char *put(const char *name, const char *bytes)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(bytes, 1, strlen(bytes), f);
    fclose(f);
    return path;
}

static kv_trace *open_ok(const char *path, bool skip)
{
    kv_trace_opts o = {.skip_bad_rows = skip};
    kv_trace *t = NULL;
    kv_err e = {{0}};
    kv_status st = kv_trace_open(path, &o, &t, &e);
    if (st != KV_OK)
        fail_msg("open %s: %s", path, e.msg);
    return t;
}

/* Read every row; returns the final status and leaves the message in e. */
static kv_status drain(kv_trace *t, uint64_t *rows, kv_err *e)
{
    kv_request r;
    kv_status st;
    *rows = 0;
    int64_t last = -1;
    while ((st = kv_trace_next(t, &r, e)) == KV_OK) {
        assert_true(r.t_arrival_us >= last);
        assert_true(r.prompt_tokens >= 1);
        last = r.t_arrival_us;
        (*rows)++;
    }
    return st;
}

/* Open path and read to the end; the error message must contain every needle. */
static void expect_error(const char *path, const char *n1, const char *n2, const char *n3)
{
    kv_trace_opts o = {0};
    kv_trace *t = NULL;
    kv_err e = {{0}};
    kv_status st = kv_trace_open(path, &o, &t, &e);
    if (st == KV_OK) {
        uint64_t rows;
        st = drain(t, &rows, &e);
        kv_trace_close(&t);
    }
    if (st == KV_OK || st == KV_EOF)
        fail_msg("%s: read without error, expected \"%s\"", path, n1);
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i] && strstr(e.msg, needles[i]) == NULL)
            fail_msg("error \"%s\" lacks \"%s\"", e.msg, needles[i]);
}

/* ------------------------------------------------------------------------------------------ */

static void test_bundled_azure_traces_read_whole(void **state)
{
    (void)state;
    const char *files[] = {"traces/data/azure2023_conv.csv", "traces/data/azure2023_code.csv"};
    const uint64_t rows_want[] = {19366, 8819};
    for (int i = 0; i < 2; i++) {
        kv_trace *t = open_ok(files[i], false);
        assert_int_equal(kv_trace_format_of(t), KV_TRACE_AZURE);
        kv_request r;
        kv_err e = {{0}};
        assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
        assert_int_equal(r.t_arrival_us, 0); /* the first row is the origin */
        uint64_t rows;
        assert_int_equal(drain(t, &rows, &e), KV_EOF);
        assert_int_equal(rows + 1, rows_want[i]);
        kv_trace_close(&t);
    }
    kv_trace *t = open_ok("traces/data/azure2023_conv.csv", false);
    kv_request r;
    kv_err e = {{0}};
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(r.prompt_tokens, 374); /* 2023-11-16 18:15:46.6805900,374,44 */
    assert_int_equal(r.output_tokens, 44);
    assert_int_equal(r.n_samples, 1);
    kv_trace_close(&t);
}

static void test_bundled_mooncake_trace_has_consistent_hashes(void **state)
{
    (void)state;
    kv_trace *t = open_ok("traces/data/mooncake_synthetic_trace.jsonl", false);
    assert_int_equal(kv_trace_format_of(t), KV_TRACE_MOONCAKE);
    kv_request r;
    kv_err e = {{0}};
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(r.prompt_tokens, 40160);
    assert_int_equal(r.output_tokens, 6);
    assert_int_equal(r.prefix_block_tokens, 512);
    assert_int_equal(r.n_prefix_hashes, 79);
    for (uint32_t i = 0; i < 79; i++)
        assert_int_equal(r.prefix_hashes[i], i);
    uint64_t rows = 1;
    kv_trace_stats *s;
    assert_int_equal(kv_trace_stats_create(&s), KV_OK);
    kv_trace_stats_add(s, &r);
    while (kv_trace_next(t, &r, &e) == KV_OK) {
        assert_int_equal(r.n_prefix_hashes, (r.prompt_tokens + 511) / 512);
        kv_trace_stats_add(s, &r);
        rows++;
    }
    assert_int_equal(rows, 3993);
    kv_trace_summary m;
    kv_trace_stats_summary(s, &m);
    /* SOURCES.md: 64% of block references repeat an earlier block */
    assert_true(fabs(100.0 * (double)m.prefix_repeats / (double)m.prefix_refs - 64.0) < 0.5);
    kv_trace_stats_destroy(&s);
    kv_trace_close(&t);
}

static void test_native_reads_every_field(void **state)
{
    (void)state;
    const char *p = put("all.csv", "arrival_us,prompt_tokens,output_tokens,session_id,n,"
                                   "beam_width,priority,prefix_block_tokens,prefix_hashes\n"
                                   "0,1200,85,7,2,3,-4,512,11;12;13\n"
                                   "250000,640,0,0,1,1,0,512,\n");
    kv_trace *t = open_ok(p, false);
    assert_int_equal(kv_trace_format_of(t), KV_TRACE_NATIVE);
    assert_int_equal(kv_trace_fields(t), KV_FIELD_SESSION | KV_FIELD_N | KV_FIELD_BEAM |
                                             KV_FIELD_PRIORITY | KV_FIELD_PREFIX);
    kv_request r;
    kv_err e = {{0}};
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(r.t_arrival_us, 0);
    assert_int_equal(r.prompt_tokens, 1200);
    assert_int_equal(r.output_tokens, 85);
    assert_int_equal(r.session_id, 7);
    assert_int_equal(r.n_samples, 2);
    assert_int_equal(r.beam_width, 3);
    assert_int_equal(r.priority, -4);
    assert_int_equal(r.prefix_block_tokens, 512);
    assert_int_equal(r.n_prefix_hashes, 3);
    assert_int_equal(r.prefix_hashes[2], 13);
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(r.t_arrival_us, 250000);
    assert_int_equal(r.output_tokens, 0);
    assert_int_equal(r.n_prefix_hashes, 0);
    assert_int_equal(kv_trace_next(t, &r, &e), KV_EOF);
    assert_int_equal(kv_trace_rows(t), 2);
    kv_trace_close(&t);
}

static void test_crlf_bom_and_blank_lines_keep_line_numbers(void **state)
{
    (void)state;
    const char *p = put("crlf.csv", "\xEF\xBB\xBF"
                                    "arrival_us,prompt_tokens,output_tokens\r\n"
                                    "10,5,1\r\n"
                                    "\r\n"
                                    "20,6,2\r\n"
                                    "30,x,3\r\n");
    kv_trace *t = open_ok(p, false);
    kv_request r;
    kv_err e = {{0}};
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(r.prompt_tokens, 5);
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(r.prompt_tokens, 6);
    assert_int_equal(kv_trace_next(t, &r, &e), KV_ERR_INPUT);
    assert_non_null(strstr(e.msg, "crlf.csv:5: column 'prompt_tokens'"));
    kv_trace_close(&t);
}

static void test_burstgpt_reads_seconds_and_zero_responses(void **state)
{
    (void)state;
    const char *p = put("burst.csv", "Timestamp,Model,Request tokens,Response tokens,Total "
                                     "tokens,Log Type\n"
                                     "5,ChatGPT,472,18,490,Conversation log\n"
                                     "45.25,GPT-4,1087,0,1087,API log\n");
    kv_trace *t = open_ok(p, false);
    assert_int_equal(kv_trace_format_of(t), KV_TRACE_BURSTGPT);
    kv_request r;
    kv_err e = {{0}};
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(r.t_arrival_us, 5000000);
    assert_int_equal(r.prompt_tokens, 472);
    assert_int_equal(r.output_tokens, 18);
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(r.t_arrival_us, 45250000);
    assert_int_equal(r.output_tokens, 0);
    kv_trace_close(&t);
}

static void test_azure_fraction_and_day_boundary(void **state)
{
    (void)state;
    const char *p = put("az.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                                  "2023-12-31 23:59:59.9999999,10,1\n"
                                  "2024-01-01 00:00:00.5,20,2\n");
    kv_trace *t = open_ok(p, false);
    kv_request r;
    kv_err e = {{0}};
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(r.t_arrival_us, 500001); /* 0.5 s - 0.999999 s + 1 s */
    kv_trace_close(&t);
}

static void test_writer_round_trips_plain_and_gzip(void **state)
{
    (void)state;
    const char *names[] = {"rt.csv", "rt.csv.gz"};
    for (int k = 0; k < 2; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[k]);
        kv_trace_writer *w;
        kv_err e = {{0}};
        uint32_t fields = KV_FIELD_SESSION | KV_FIELD_N | KV_FIELD_PREFIX | KV_FIELD_PRIORITY;
        assert_int_equal(kv_trace_writer_open(path, fields, &w, &e), KV_OK);
        t_rng g = {7};
        uint64_t hashes[8];
        for (int i = 0; i < 5000; i++) {
            uint32_t nh = t_range(&g, 0, 8);
            for (uint32_t j = 0; j < nh; j++)
                hashes[j] = t_next(&g);
            kv_request r = {.t_arrival_us = i * 1000,
                            .prompt_tokens = t_range(&g, 1, 9000),
                            .output_tokens = t_range(&g, 0, 900),
                            .n_samples = t_range(&g, 1, 4),
                            .beam_width = 1,
                            .priority = (int32_t)t_range(&g, 0, 4) - 2,
                            .session_id = t_next(&g),
                            .prefix_block_tokens = 16,
                            .n_prefix_hashes = nh,
                            .prefix_hashes = hashes};
            assert_int_equal(kv_trace_write(w, &r, &e), KV_OK);
        }
        assert_int_equal(kv_trace_writer_close(&w, &e), KV_OK);
        kv_trace *t = open_ok(path, false);
        assert_int_equal(kv_trace_fields(t), fields);
        g = (t_rng){7};
        kv_request r;
        for (int i = 0; i < 5000; i++) {
            assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
            uint32_t nh = t_range(&g, 0, 8);
            assert_int_equal(r.n_prefix_hashes, nh);
            for (uint32_t j = 0; j < nh; j++)
                assert_int_equal(r.prefix_hashes[j], t_next(&g));
            assert_int_equal(r.t_arrival_us, i * 1000);
            assert_int_equal(r.prompt_tokens, t_range(&g, 1, 9000));
            assert_int_equal(r.output_tokens, t_range(&g, 0, 900));
            assert_int_equal(r.n_samples, t_range(&g, 1, 4));
            assert_int_equal(r.priority, (int32_t)t_range(&g, 0, 4) - 2);
            assert_int_equal(r.session_id, t_next(&g));
        }
        assert_int_equal(kv_trace_next(t, &r, &e), KV_EOF);
        kv_trace_close(&t);
    }
}

static void test_bad_csv_rows_name_file_line_and_column(void **state)
{
    (void)state;
    const char *h = "arrival_us,prompt_tokens,output_tokens\n";
    char buf[256];
    snprintf(buf, sizeof buf, "%s0,5,1\n10,5\n", h);
    expect_error(put("missing.csv", buf), "missing.csv:3", "'output_tokens' missing", NULL);
    snprintf(buf, sizeof buf, "%s0,5,1,9\n", h);
    expect_error(put("extra.csv", buf), "extra.csv:2", "extra column", NULL);
    snprintf(buf, sizeof buf, "%s0,abc,1\n", h);
    expect_error(put("nan.csv", buf), "nan.csv:2: column 'prompt_tokens'", "got \"abc\"", NULL);
    snprintf(buf, sizeof buf, "%s0,5,-3\n", h);
    expect_error(put("neg.csv", buf), "neg.csv:2: column 'output_tokens'", "non-negative",
                 "\"-3\"");
    snprintf(buf, sizeof buf, "%s0,0,3\n", h);
    expect_error(put("zero.csv", buf), "column 'prompt_tokens'", "positive", NULL);
    /* regression: 1000 + 4294966296 wrapped to 0 in the engine and aborted the replay */
    snprintf(buf, sizeof buf, "%s0,1000,4294966296\n", h);
    expect_error(put("wrap.csv", buf), "wrap.csv:2: column 'output_tokens'", "at most 2^30",
                 "\"4294966296\"");
    snprintf(buf, sizeof buf, "%s0,1073741825,1\n", h);
    expect_error(put("big.csv", buf), "big.csv:2: column 'prompt_tokens'", "at most 2^30", NULL);
    /* regression: 9223372036854.8 s overflowed int64 microseconds (UBSan) and the row was lost */
    expect_error(put("late.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,"
                                 "Log Type\n9223372036854.8,ChatGPT,10,5,15,Conversation log\n"),
                 "late.csv:2: column 'Timestamp'", "at most 2^62", "9223372036854.8");
    snprintf(buf, sizeof buf, "%s4611686018427387905,5,1\n", h);
    expect_error(put("late2.csv", buf), "late2.csv:2: column 'arrival_us'", "at most 2^62", NULL);
    snprintf(buf, sizeof buf, "%s100,5,1\n50,5,1\n", h);
    expect_error(put("back.csv", buf), "back.csv:3: column 'arrival_us'", "backwards", NULL);
    expect_error(put("az.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15,3,4\n"),
                 "az.csv:2: column 'TIMESTAMP'", "YYYY-MM-DD", NULL);
    expect_error(put("hdr.csv", "time,prompt,output\n1,2,3\n"), "hdr.csv:1", "not a", NULL);
    expect_error(put("unk.csv", "arrival_us,prompt_tokens,output_tokens,color\n"),
                 "unknown column 'color'", NULL, NULL);
    expect_error(put("empty.csv", ""), "empty.csv", "empty file", NULL);
    expect_error(put("blank.csv", "\n\r\n  \n"), "blank.csv", "empty file", NULL);
}

static void test_bad_json_lines_name_line_and_key(void **state)
{
    (void)state;
    expect_error(put("bad.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1}\n"
                                  "{\"timestamp\": 1, \"input_length\": \n"),
                 "bad.jsonl:2", "invalid JSON", NULL);
    expect_error(put("hash.jsonl", "{\"timestamp\": 0, \"input_length\": 1025, "
                                   "\"output_length\": 1, \"hash_ids\": [1, 2]}\n"),
                 "hash.jsonl:1", "'hash_ids'", "ceil(1025 / 512) = 3");
    expect_error(put("miss.jsonl", "{\"timestamp\": 0, \"input_length\": 5}\n"),
                 "'output_length' missing", NULL, NULL);
    expect_error(put("neg.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": -1}"),
                 "neg.jsonl:1: key 'output_length'", "non-negative", NULL);
    expect_error(put("key.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, "
                                  "\"color\": 3}\n"),
                 "unknown key 'color'", NULL, NULL);
    expect_error(put("back.jsonl",
                     "{\"timestamp\": 9, \"input_length\": 5, \"output_length\": 1}\n"
                     "{\"timestamp\": 3, \"input_length\": 5, \"output_length\": 1}\n"),
                 "back.jsonl:2", "backwards", NULL);
}

static void test_truncated_gzip_is_an_error(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/trunc.csv.gz", tmpdir);
    gzFile gz = gzopen(path, "wb");
    gzprintf(gz, "arrival_us,prompt_tokens,output_tokens\n");
    t_rng g = {3};
    for (int i = 0; i < 20000; i++)
        gzprintf(gz, "%d,%u,%u\n", i, t_range(&g, 1, 5000), t_range(&g, 0, 500));
    gzclose(gz);
    FILE *f = fopen(path, "rb+");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    assert_int_equal(truncate(path, size / 2), 0);
    expect_error(path, "trunc.csv.gz", "truncated", NULL);
}

static void test_skip_bad_rows_counts_and_keeps_reading(void **state)
{
    (void)state;
    const char *p = put("skip.csv", "arrival_us,prompt_tokens,output_tokens\n"
                                    "0,5,1\n"
                                    "1,x,1\n"
                                    "2,5\n"
                                    "3,7,1\n");
    kv_trace *t = open_ok(p, true);
    uint64_t rows;
    kv_err e = {{0}};
    assert_int_equal(drain(t, &rows, &e), KV_EOF);
    assert_int_equal(rows, 2);
    assert_int_equal(kv_trace_skipped(t), 2);
    assert_non_null(strstr(kv_trace_first_skip(t), "skip.csv:3: column 'prompt_tokens'"));
    kv_trace_close(&t);
}

static void test_rows_before_an_error_come_first(void **state)
{
    (void)state;
    const char *p = put("late.csv", "arrival_us,prompt_tokens,output_tokens\n"
                                    "0,5,1\n1,6,1\n2,-1,1\n");
    kv_trace *t = open_ok(p, false);
    kv_request r;
    kv_err e = {{0}};
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(kv_trace_next(t, &r, &e), KV_OK);
    assert_int_equal(r.prompt_tokens, 6);
    assert_int_equal(kv_trace_next(t, &r, &e), KV_ERR_INPUT);
    assert_int_equal(kv_trace_next(t, &r, &e), KV_ERR_INPUT); /* it stays */
    kv_trace_close(&t);
}

static void test_stats_quantiles_are_nearest_rank(void **state)
{
    (void)state;
    kv_trace_stats *s;
    assert_int_equal(kv_trace_stats_create(&s), KV_OK);
    for (uint32_t i = 1; i <= 100; i++) {
        kv_request r = {
            .t_arrival_us = i * 10000, .prompt_tokens = i, .output_tokens = 2 * i, .n_samples = 1};
        assert_int_equal(kv_trace_stats_add(s, &r), KV_OK);
    }
    kv_trace_summary m;
    kv_trace_stats_summary(s, &m);
    assert_int_equal(m.rows, 100);
    assert_int_equal(m.prompt_tokens.min, 1);
    assert_int_equal(m.prompt_tokens.median, 50);
    assert_int_equal(m.prompt_tokens.p99, 99);
    assert_int_equal(m.prompt_tokens.max, 100);
    assert_int_equal(m.output_tokens.median, 100);
    assert_true(fabs(m.span_s - 0.99) < 1e-12);
    assert_true(fabs(m.rate_per_s - 100 / 0.99) < 1e-9);
    kv_trace_stats_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bundled_azure_traces_read_whole),
        cmocka_unit_test(test_bundled_mooncake_trace_has_consistent_hashes),
        cmocka_unit_test(test_native_reads_every_field),
        cmocka_unit_test(test_crlf_bom_and_blank_lines_keep_line_numbers),
        cmocka_unit_test(test_burstgpt_reads_seconds_and_zero_responses),
        cmocka_unit_test(test_azure_fraction_and_day_boundary),
        cmocka_unit_test(test_writer_round_trips_plain_and_gzip),
        cmocka_unit_test(test_bad_csv_rows_name_file_line_and_column),
        cmocka_unit_test(test_bad_json_lines_name_line_and_key),
        cmocka_unit_test(test_truncated_gzip_is_an_error),
        cmocka_unit_test(test_skip_bad_rows_counts_and_keeps_reading),
        cmocka_unit_test(test_rows_before_an_error_come_first),
        cmocka_unit_test(test_stats_quantiles_are_nearest_rank),
    };
    return cmocka_run_group_tests_name("reader", tests, setup, teardown);
}
