/* test_inifile.c — the INI loader: every bad line reported with its line, bounded lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "inifile.h"

/* ------------------------------------------------------------------------------------------ */

static char path[256];

static const char *write_ini(const char *text)
{
    snprintf(path, sizeof path, "%s/kvsim-inifile-%d.ini",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Accepts keys whose value is "ok"; records every call. */
typedef struct seen {
    int n;
    char keys[16][64];
} seen;

static bool only_ok(void *ctx, const char *section, const char *key, const char *value, char *why,
                    size_t why_bytes)
{
    seen *s = ctx;
    if (s->n < 16)
        snprintf(s->keys[s->n++], sizeof s->keys[0], "%s.%s=%s", section, key, value);
    if (strcmp(value, "ok") == 0)
        return true;
    snprintf(why, why_bytes, "%s: expected ok, got \"%s\"", key, value);
    return false;
}

/* ------------------------------------------------------------------------------------------ */

static void test_ini_calls_the_handler_for_every_key_in_file_order(void **state)
{
    (void)state;
    seen s = {0};
    kv_err e = {{0}};
    kv_inifile_report r;
    write_ini("; comment\n[a]\nx = ok\n\n# other\ny=ok ; inline\n[b]\nz = ok\n");
    assert_int_equal(kv_inifile_load(path, only_ok, &s, &r, &e), KV_OK);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.keys[0], "a.x=ok");
    assert_string_equal(s.keys[1], "a.y=ok");
    assert_string_equal(s.keys[2], "b.z=ok");
    assert_int_equal(r.n_bad, 0);
    assert_string_equal(e.msg, "");
    remove(path);
}

static void test_ini_reports_every_bad_key_with_its_line(void **state)
{
    (void)state;
    seen s = {0};
    kv_err e = {{0}};
    kv_inifile_report r;
    write_ini("[a]\nx = bad1\ny = ok\nz = bad2\n[b]\nw = bad3\n");
    assert_int_equal(kv_inifile_load(path, only_ok, &s, &r, &e), KV_ERR_INPUT);
    assert_int_equal(s.n, 4); /* it went on after the first bad key */
    assert_int_equal(r.n_bad, 3);
    assert_int_equal(r.bad[0].line, 2);
    assert_string_equal(r.bad[0].field, "[a] x");
    assert_int_equal(r.bad[1].line, 4);
    assert_string_equal(r.bad[1].field, "[a] z");
    assert_int_equal(r.bad[2].line, 6);
    assert_string_equal(r.bad[2].field, "[b] w");
    char want[1024];
    snprintf(want, sizeof want,
             "%s:2: x: expected ok, got \"bad1\"\n%s:4: z: expected ok, got \"bad2\"\n"
             "%s:6: w: expected ok, got \"bad3\"",
             path, path, path);
    assert_string_equal(e.msg, want);
    remove(path);
}

static void test_ini_reports_lines_that_are_not_ini_among_bad_keys(void **state)
{
    (void)state;
    seen s = {0};
    kv_err e = {{0}};
    kv_inifile_report r;
    write_ini("[a]\njust words\nx = bad\n[unclosed\ny = ok\nmore words\n");
    assert_int_equal(kv_inifile_load(path, only_ok, &s, &r, &e), KV_ERR_INPUT);
    assert_int_equal(r.n_bad, 4);
    int want_lines[] = {2, 3, 4, 6};
    for (int i = 0; i < 4; i++)
        assert_int_equal(r.bad[i].line, want_lines[i]);
    assert_string_equal(r.bad[0].field, "");
    assert_string_equal(r.bad[1].field, "[a] x");
    assert_non_null(strstr(e.msg, ":2: not a valid INI line"));
    assert_non_null(strstr(e.msg, ":4: not a valid INI line ('[' without ']')"));
    assert_non_null(strstr(e.msg, ":6: not a valid INI line"));
    remove(path);
}

static void test_ini_rejects_a_line_longer_than_the_bound_whole(void **state)
{
    (void)state;
    char text[1024], longv[400];
    memset(longv, 'v', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    snprintf(text, sizeof text, "[a]\nx = %s\ny = ok\n", longv);
    seen s = {0};
    kv_err e = {{0}};
    kv_inifile_report r;
    write_ini(text);
    assert_int_equal(kv_inifile_load(path, only_ok, &s, &r, &e), KV_ERR_INPUT);
    assert_int_equal(s.n, 1); /* y only: no piece of the long line reached the handler */
    assert_string_equal(s.keys[0], "a.y=ok");
    assert_int_equal(r.n_bad, 1);
    assert_int_equal(r.bad[0].line, 2);
    assert_non_null(strstr(e.msg, ":2: line longer than"));
    remove(path);
}

static void test_ini_counts_bad_lines_beyond_what_the_message_holds(void **state)
{
    (void)state;
    char text[4096] = "[a]\n";
    for (int i = 0; i < 40; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "k%d = no\n", i);
    seen s = {0};
    kv_err e = {{0}};
    kv_inifile_report r;
    write_ini(text);
    assert_int_equal(kv_inifile_load(path, only_ok, &s, &r, &e), KV_ERR_INPUT);
    assert_int_equal(r.n_bad, 40);
    assert_int_equal(r.bad[KV_INIFILE_MAX_RECORDED - 1].line, KV_INIFILE_MAX_RECORDED + 1);
    assert_non_null(strstr(e.msg, "more bad lines"));
    assert_true(strlen(e.msg) < KV_ERR_MSG_BYTES);
    remove(path);
}

static void test_ini_missing_file_is_an_io_error_naming_the_path(void **state)
{
    (void)state;
    seen s = {0};
    kv_err e = {{0}};
    assert_int_equal(kv_inifile_load("/nonexistent/x.ini", only_ok, &s, NULL, &e), KV_ERR_IO);
    assert_non_null(strstr(e.msg, "/nonexistent/x.ini: cannot open"));
}

static void test_ini_number_accepts_whole_finite_values_in_range_only(void **state)
{
    (void)state;
    double d = -1;
    assert_true(kv_inifile_number("2.5", 0, 10, &d));
    assert_true(d == 2.5);
    assert_true(kv_inifile_number("1e3", 0, 1e3, &d));
    assert_false(kv_inifile_number("", 0, 10, &d));
    assert_false(kv_inifile_number("3x", 0, 10, &d));
    assert_false(kv_inifile_number("11", 0, 10, &d));
    assert_false(kv_inifile_number("inf", 0, INFINITY, &d));
    assert_false(kv_inifile_number("nan", 0, 10, &d));
    assert_true(d == 1e3); /* unchanged by the failures */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ini_calls_the_handler_for_every_key_in_file_order),
        cmocka_unit_test(test_ini_reports_every_bad_key_with_its_line),
        cmocka_unit_test(test_ini_reports_lines_that_are_not_ini_among_bad_keys),
        cmocka_unit_test(test_ini_rejects_a_line_longer_than_the_bound_whole),
        cmocka_unit_test(test_ini_counts_bad_lines_beyond_what_the_message_holds),
        cmocka_unit_test(test_ini_missing_file_is_an_io_error_naming_the_path),
        cmocka_unit_test(test_ini_number_accepts_whole_finite_values_in_range_only),
    };
    return cmocka_run_group_tests_name("inifile", tests, NULL, NULL);
}
