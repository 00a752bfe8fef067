/* status.h — the one status type, the error message carrier and KV_ASSERT.
 *
 * Three kinds of failure, three tools (STYLE.md):
 *   - a bug in kvsim: KV_ASSERT, on in every build, prints file:line and aborts;
 *   - an expected outcome (a full pool): a kv_status return such as KV_NO_SPACE, no message;
 *   - the environment or the user's input: a kv_status plus a message in a caller-owned kv_err,
 *     which the CLI prints before exiting non-zero. Library code never prints.
 *
 * Glossary: err = caller-owned message buffer; may be NULL where the caller wants no text.
 */
#ifndef KV_STATUS_H
#define KV_STATUS_H

#include <stdarg.h>
#include <stddef.h>

/* ------------------------------------------------------------------------------------------ */

typedef enum kv_status {
    KV_OK = 0,
    KV_NO_SPACE,  /* expected: the pool (or host tier) cannot serve it now */
    KV_TOO_LARGE, /* expected: it can never fit, not even in an empty pool */
    KV_INVALID,   /* a caller broke a precondition it could check (zero-length prompt, bad id) */
    KV_CORRUPT,   /* a checker found a broken invariant; the message says which */
    KV_ERR_INPUT, /* bad user input: a file, a flag, a config value */
    KV_ERR_IO,    /* a file could not be opened, read or written */
    KV_ERR_NOMEM, /* host memory allocation failed at create time */
    KV_EOF,       /* expected: a reader reached the end of its input */
    KV_AGAIN,     /* expected: a source has nothing yet; more may come (a router's queue) */
} kv_status;

/* Room for an INI loader's report of several bad lines, each naming what it accepts. */
enum { KV_ERR_MSG_BYTES = 2048 };

/* A message buffer the caller owns. kv_errorf fills it; the first error wins (later calls
 * while msg[0] != 0 keep the original, which names the root cause). */
typedef struct kv_err {
    char msg[KV_ERR_MSG_BYTES];
} kv_err;

/* The name of a status ("ok", "no space", ...). Never NULL. */
const char *kv_status_str(kv_status s);

/* Format a message into err (if err != NULL and empty) and return code. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
kv_status
kv_errorf(kv_err *err, kv_status code, const char *fmt, ...);

/* Print "file:line: assertion failed: expr" to stderr and abort. Never returns. */
#ifdef __cplusplus
[[noreturn]] void kv_assert_fail(const char *expr, const char *file, int line); /* kvgpu (C++) */
#else
_Noreturn void kv_assert_fail(const char *expr, const char *file, int line);
#endif

#define KV_ASSERT(expr) ((expr) ? (void)0 : kv_assert_fail(#expr, __FILE__, __LINE__))

#endif
