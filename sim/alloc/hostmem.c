/* hostmem.c — zeroed, pre-faulted host arrays. See hostmem.h. */
#include "hostmem.h"

#include <stdint.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */

void *kv_hostmem_zalloc(size_t n, size_t size)
{
    if (n == 0)
        n = 1;
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    volatile unsigned char *p = calloc(n, size);
    if (p == NULL)
        return NULL;
    size_t bytes = n * size;
    for (size_t i = 0; i < bytes; i += 4096)
        p[i] = 0;
    return (void *)p;
}
