/* fs.h — the few file-system operations kvsim needs, done in C (no shell): create a directory
 * with its parents, remove a tree, compare two files byte for byte.
 *
 * Paths are used as given: spaces, quotes and backslashes are ordinary characters, since no
 * command line is ever formatted from them.
 */
#ifndef KV_FS_H
#define KV_FS_H

#include <stdbool.h>

#include "status.h"

/* Create dir and every missing parent (mode 0777 before the umask), one mkdir per component,
 * like `mkdir -p`. KV_OK when it exists afterwards (already existing is fine); KV_ERR_IO with
 * "PATH: cannot create: REASON" naming the component that failed; KV_ERR_NOMEM. */
kv_status kv_fs_mkdirs(const char *dir, kv_err *err);

/* Remove path and, for a directory, everything under it, without following symbolic links
 * (nftw with FTW_DEPTH | FTW_PHYS), like `rm -rf`. A path that does not exist is KV_OK.
 * KV_ERR_IO with "PATH: cannot remove: REASON" for the first entry that could not go. */
kv_status kv_fs_remove_tree(const char *path, kv_err *err);

/* Whether files a and b both open and hold the same bytes (like `cmp -s`). */
bool kv_fs_same_bytes(const char *a, const char *b);

#endif
