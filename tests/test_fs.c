/* test_fs.c — mkdir -p, rm -rf and cmp -s in C (fs.h), on paths with spaces and quotes. */
#include "test_util.h"

#include <sys/stat.h>

#include "fs.h"

/* ------------------------------------------------------------------------------------------ */

static char root[256];

static int setup(void **state)
{
    (void)state;
    return t_mkdtemp(root, sizeof root, "fs");
}

static int teardown(void **state)
{
    (void)state;
    return t_rm_rf(root);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ------------------------------------------------------------------------------------------ */

static void test_mkdirs_creates_every_missing_component_of_an_odd_path(void **state)
{
    (void)state;
    char dir[700];
    snprintf(dir, sizeof dir, "%s/it's a \"dir\"//with spaces/and $(no shell)/", root);
    kv_err e = {{0}};
    assert_int_equal(kv_fs_mkdirs(dir, &e), KV_OK);
    assert_true(is_dir(dir));
    assert_int_equal(kv_fs_mkdirs(dir, &e), KV_OK); /* existing is fine */
}

static void test_mkdirs_over_a_file_names_the_component(void **state)
{
    (void)state;
    char file[600], dir[700];
    snprintf(file, sizeof file, "%s/plain-file", root);
    write_file(file, "x");
    snprintf(dir, sizeof dir, "%s/sub", file);
    kv_err e = {{0}};
    assert_int_equal(kv_fs_mkdirs(dir, &e), KV_ERR_IO);
    assert_non_null(strstr(e.msg, "plain-file"));
    assert_non_null(strstr(e.msg, "cannot create"));
}

static void test_remove_tree_removes_everything_and_follows_no_link(void **state)
{
    (void)state;
    char tree[600], sub[700], f[800], outside[600], link[800];
    snprintf(tree, sizeof tree, "%s/tree 'q' \"dq\"", root);
    snprintf(sub, sizeof sub, "%s/a/b", tree);
    kv_err e = {{0}};
    assert_int_equal(kv_fs_mkdirs(sub, &e), KV_OK);
    snprintf(f, sizeof f, "%s/file one", sub);
    write_file(f, "one");
    snprintf(outside, sizeof outside, "%s/outside", root);
    assert_int_equal(kv_fs_mkdirs(outside, &e), KV_OK);
    snprintf(f, sizeof f, "%s/keep", outside);
    write_file(f, "keep");
    snprintf(link, sizeof link, "%s/a/link", tree);
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(kv_fs_remove_tree(tree, &e), KV_OK);
    assert_false(exists(tree));
    assert_true(exists(f)); /* the link went, not what it pointed to */
    assert_int_equal(kv_fs_remove_tree(tree, &e), KV_OK); /* absent is fine */
}

static void test_same_bytes_compares_whole_files(void **state)
{
    (void)state;
    char a[600], b[600], c[600], big1[600], big2[600];
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(b, sizeof b, "%s/b", root);
    snprintf(c, sizeof c, "%s/c", root);
    write_file(a, "same text");
    write_file(b, "same text");
    write_file(c, "same texT");
    assert_true(kv_fs_same_bytes(a, b));
    assert_false(kv_fs_same_bytes(a, c));
    snprintf(c, sizeof c, "%s/missing", root);
    assert_false(kv_fs_same_bytes(a, c));
    /* past one read buffer: equal prefixes, a difference far in, and a longer file */
    snprintf(big1, sizeof big1, "%s/big1", root);
    snprintf(big2, sizeof big2, "%s/big2", root);
    FILE *f1 = fopen(big1, "w"), *f2 = fopen(big2, "w");
    for (int i = 0; i < 50000; i++) {
        fputc('a' + i % 26, f1);
        fputc(i == 40000 ? '#' : 'a' + i % 26, f2);
    }
    fclose(f1);
    fclose(f2);
    assert_false(kv_fs_same_bytes(big1, big2));
    f2 = fopen(big2, "w");
    for (int i = 0; i < 50001; i++)
        fputc('a' + i % 26, f2);
    fclose(f2);
    assert_false(kv_fs_same_bytes(big1, big2));
    assert_true(kv_fs_same_bytes(big1, big1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkdirs_creates_every_missing_component_of_an_odd_path),
        cmocka_unit_test(test_mkdirs_over_a_file_names_the_component),
        cmocka_unit_test(test_remove_tree_removes_everything_and_follows_no_link),
        cmocka_unit_test(test_same_bytes_compares_whole_files),
    };
    return cmocka_run_group_tests_name("fs", tests, setup, teardown);
}
