/* inifile.h — the one INI loader: libinih underneath, every bad line reported with its line.
 *
 * kv_inifile_load parses a whole file and calls the caller's handler once per `key = value`
 * (libinih's syntax: [section] headers, `;`/`#` comments, inline `;` comments after white
 * space, continuation lines indented under a key). Unlike a bare ini_parse, which returns only
 * the first bad line's number while its handler's last message wins, it keeps going and
 * records EVERY bad line: a key the handler rejects, a line that is not INI, a line longer than
 * KV_INIFILE_MAX_LINE_BYTES. The error message lists them, one per line, each as
 * "path:line: why" with the handler's why (which names the key; cut to 100 bytes; a path over
 * 40 bytes by its base name after the first line), as many as fit in a kv_err, then
 * "... and N more bad lines".
 *
 * How: libinih's ini_parse_stream reads through our line reader, which counts lines (so the
 * handler knows the line it is called for), rejects over-long lines whole instead of letting
 * libinih split them, and checks each line's shape before libinih sees it.
 *
 * Glossary: bad line = a line that the handler rejected or that is not valid INI.
 */
#ifndef KV_INIFILE_H
#define KV_INIFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* ------------------------------------------------------------------------------------------ */

enum {
    KV_INIFILE_MAX_LINE_BYTES = 196, /* bytes of one line without its end; longer lines are bad
                                      * (libinih's buffer is 200 with "\r\n\0") */
    KV_INIFILE_MAX_RECORDED = 16,    /* bad lines kept in a kv_inifile_report; all are counted */
    KV_INIFILE_FIELD_BYTES = 96,
};

/* Accept one key: store the value and return true, or write why it is wrong into why
 * (why_bytes bytes, starting empty; name the key in it) and return false.
 * section is "" before the first [section]. All strings are borrowed for the call only. */
typedef bool (*kv_inifile_handler)(void *ctx, const char *section, const char *key,
                                   const char *value, char *why, size_t why_bytes);

/* One bad line: where, which field ("[section] key", or "" for a line that is not a key). */
typedef struct kv_inifile_bad {
    int line;
    char field[KV_INIFILE_FIELD_BYTES];
} kv_inifile_bad;

/* Every bad line of one load: n_bad counts all, bad[] holds the first ones. */
typedef struct kv_inifile_report {
    int n_bad;
    kv_inifile_bad bad[KV_INIFILE_MAX_RECORDED];
} kv_inifile_report;

/* ------------------------------------------------------------------------------------------ */

/* Parse the INI file at path, calling on_key(ctx, ...) for every key in file order, to the end
 * of the file even after bad lines. Returns KV_OK when no line was bad; KV_ERR_IO when the file
 * cannot be opened or read ("path: cannot open: reason"); KV_ERR_INPUT when lines were bad,
 * the message listing them ("path:line: ..." one per line, first first). report (may be NULL)
 * receives the bad lines either way. */
kv_status kv_inifile_load(const char *path, kv_inifile_handler on_key, void *ctx,
                          kv_inifile_report *report, kv_err *err);

/* A value as a number: true and *out when all of v is a finite number (strtod's syntax) in
 * [lo, hi]; false otherwise, *out unchanged. For handlers, which then say why. */
bool kv_inifile_number(const char *v, double lo, double hi, double *out);

#endif
