/* hostmem.h — zeroed host arrays for allocator metadata, touched at creation.
 *
 * calloc returns untouched pages for large sizes, so the first write to each page faults
 * (about a microsecond) — on the hot path, the first time a sequence slot or a block is used.
 * `kvsim bench alloc` measured paged fork at 1378 ns/op on untouched tables against 103 ns
 * once they were warm, so metadata is touched once here, at create time, instead.
 */
#ifndef KV_HOSTMEM_H
#define KV_HOSTMEM_H

#include <stddef.h>

/* n x size zeroed bytes with every page touched, or NULL. Free with free(). */
void *kv_hostmem_zalloc(size_t n, size_t size);

#endif
