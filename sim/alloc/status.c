/* status.c — status names, error formatting, assertion failure. See status.h. */
#include "status.h"

#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */

const char *kv_status_str(kv_status s)
{
    switch (s) {
    case KV_OK: return "ok";
    case KV_NO_SPACE: return "no space";
    case KV_TOO_LARGE: return "too large for the pool";
    case KV_INVALID: return "invalid argument";
    case KV_CORRUPT: return "invariant broken";
    case KV_ERR_INPUT: return "bad input";
    case KV_ERR_IO: return "i/o error";
    case KV_ERR_NOMEM: return "out of host memory";
    case KV_EOF: return "end of input";
    case KV_AGAIN: return "nothing yet";
    }
    return "unknown status";
}

kv_status kv_errorf(kv_err *err, kv_status code, const char *fmt, ...)
{
    if (err != NULL && err->msg[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

_Noreturn void kv_assert_fail(const char *expr, const char *file, int line)
{
    fflush(stdout);
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}
