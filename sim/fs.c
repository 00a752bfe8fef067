/* fs.c — mkdir -p, rm -rf and cmp -s in C. See fs.h.
 *
 * Removal walks the tree with nftw(FTW_DEPTH | FTW_PHYS): children before their directory, and
 * a symbolic link is removed as a link, never followed. nftw's callback has no context
 * argument, so the first failure is kept in a file-scope variable for the duration of one walk;
 * kvsim removes trees from one thread at a time (the sweep's workers are processes).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fs.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */

enum { COMPARE_BYTES = 8192, WALK_FDS = 32 };

static struct {
    char path[1024];
    int errnum;
} walk_failure; /* the first entry nftw could not remove, during one kv_fs_remove_tree */

/* ------------------------------------------------------------------------------------------ */

static kv_status make_one(const char *p, kv_err *err)
{
    if (mkdir(p, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
            return KV_OK;
        return kv_errorf(err, KV_ERR_IO, "%s: cannot create: %s", p,
                         errno == EEXIST ? "not a directory" : strerror(errno));
    }
    return kv_errorf(err, KV_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    int rc = type == FTW_DP ? rmdir(path) : unlink(path);
    if (rc != 0 && errno != ENOENT && walk_failure.errnum == 0) {
        walk_failure.errnum = errno;
        snprintf(walk_failure.path, sizeof walk_failure.path, "%s", path);
    }
    return 0; /* keep going: remove what can be removed */
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_fs_mkdirs(const char *dir, kv_err *err)
{
    size_t n = strlen(dir);
    if (n == 0)
        return kv_errorf(err, KV_ERR_IO, "(empty path): cannot create a directory");
    char *p = malloc(n + 1);
    if (p == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "%s: out of memory", dir);
    memcpy(p, dir, n + 1);
    kv_status st = KV_OK;
    for (char *s = p + 1; *s && st == KV_OK; s++) {
        if (*s != '/' || s[-1] == '/')
            continue;
        *s = '\0';
        st = make_one(p, err);
        *s = '/';
    }
    if (st == KV_OK)
        st = make_one(p, err);
    free(p);
    return st;
}

kv_status kv_fs_remove_tree(const char *path, kv_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT
                   ? KV_OK
                   : kv_errorf(err, KV_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    walk_failure.errnum = 0;
    walk_failure.path[0] = '\0';
    if (nftw(path, remove_entry, WALK_FDS, FTW_DEPTH | FTW_PHYS) != 0 && walk_failure.errnum == 0)
        return kv_errorf(err, KV_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    if (walk_failure.errnum != 0)
        return kv_errorf(err, KV_ERR_IO, "%s: cannot remove: %s", walk_failure.path,
                         strerror(walk_failure.errnum));
    return KV_OK;
}

bool kv_fs_same_bytes(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa != NULL && fb != NULL;
    char ba[COMPARE_BYTES], bb[COMPARE_BYTES];
    while (same) {
        size_t na = fread(ba, 1, sizeof ba, fa), nb = fread(bb, 1, sizeof bb, fb);
        same = na == nb && memcmp(ba, bb, na) == 0 && !ferror(fa) && !ferror(fb);
        if (na < sizeof ba)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}
