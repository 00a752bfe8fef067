/* inifile.c — the INI loader over libinih. The contract is in inifile.h.
 *
 * libinih's ini_parse_stream pulls lines through read_line below. read_line counts them, so the
 * handler trampoline knows the line it runs for; it also classifies each line the way libinih
 * will (blank or comment, section, key), so that a line libinih rejects without calling the
 * handler (no '=' or ':', a '[' without ']') is recorded as bad too: a key line after which
 * the handler did not run. libinih's own return value (the first line it rejected) is a safety
 * net for any line this classification misses.
 */
#include "inifile.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */

enum {
    MORE_BYTES = 48, /* room kept at the end of the message for "... and N more" */
    WHY_BYTES = 100, /* of one line's why in the message, so that several lines fit in a kv_err */
    PATH_BYTES = 40, /* a longer path is named in full on the first line, by base name after */
};

typedef struct loader {
    FILE *f;
    const char *path;
    kv_inifile_handler on_key;
    void *ctx;
    int line;         /* lines handed to libinih so far: the current line's number */
    bool expect_key;  /* the current line is a key line: libinih will call the handler */
    bool handler_ran; /* ... and it did */
    kv_inifile_report rep;
    char msg[KV_ERR_MSG_BYTES];
    size_t msg_len;
    int n_listed; /* bad lines written into msg */
} loader;

/* ------------------------------------------------------------------------------------------ */

static bool is_recorded(const loader *L, int line)
{
    for (int i = 0; i < L->rep.n_bad && i < KV_INIFILE_MAX_RECORDED; i++)
        if (L->rep.bad[i].line == line)
            return true;
    return false;
}

/* Count a bad line, keep it in the report while there is room, list it in the message while
 * it fits (whole lines only, leaving room for the closing "... and N more"). */
static void record(loader *L, int line, const char *section, const char *key, const char *why)
{
    if (L->rep.n_bad < KV_INIFILE_MAX_RECORDED) {
        kv_inifile_bad *b = &L->rep.bad[L->rep.n_bad];
        b->line = line;
        if (key != NULL)
            snprintf(b->field, sizeof b->field, "[%.40s] %.40s", section, key);
        else
            b->field[0] = '\0';
    }
    L->rep.n_bad++;
    char one[KV_ERR_MSG_BYTES];
    size_t why_len = strlen(why);
    const char *name = L->path, *slash = strrchr(name, '/');
    if (L->n_listed > 0 && strlen(name) > PATH_BYTES && slash != NULL)
        name = slash + 1;
    int n = snprintf(one, sizeof one, "%s%s:%d: %.*s%s", L->n_listed ? "\n" : "", name, line,
                     (int)(why_len > WHY_BYTES ? WHY_BYTES - 3 : why_len), why,
                     why_len > WHY_BYTES ? "..." : "");
    size_t room = sizeof L->msg - L->msg_len;
    bool first = L->n_listed == 0;
    if (n > 0 && (first || (size_t)n + MORE_BYTES < room)) {
        snprintf(L->msg + L->msg_len, room, "%s", one); /* the first is kept even if cut */
        L->msg_len += strlen(L->msg + L->msg_len);
        L->n_listed++;
    }
}

/* A key line whose handler never ran was rejected by libinih. */
static void settle_line(loader *L)
{
    if (L->expect_key && !L->handler_ran)
        record(L, L->line, "", NULL, "not a valid INI line (expected [section] or key = value)");
    L->expect_key = false;
}

/* libinih's reader (fgets-like). Reads one whole physical line; a line longer than the bound is
 * recorded as bad and handed on as an empty line, so libinih never sees a piece of it. */
static char *read_line(char *str, int num, void *stream)
{
    loader *L = stream;
    settle_line(L);
    size_t cap = (size_t)num - 3; /* libinih's buffer holds the line, "\r\n" and '\0' */
    if (cap > KV_INIFILE_MAX_LINE_BYTES)
        cap = KV_INIFILE_MAX_LINE_BYTES;
    size_t n = 0;
    bool any = false, too_long = false;
    int c;
    while ((c = getc(L->f)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (c == '\r')
            continue;
        if (n < cap)
            str[n++] = (char)c;
        else
            too_long = true;
    }
    if (!any)
        return NULL;
    L->line++;
    str[n] = '\0';
    if (too_long) {
        char why[64];
        snprintf(why, sizeof why, "line longer than %zu bytes", cap);
        record(L, L->line, "", NULL, why);
        str[0] = '\0';
        return str;
    }
    const char *s = str;
    if (L->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 BOM, as libinih */
        s += 3;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0' || *s == ';' || *s == '#')
        return str;
    if (*s == '[') {
        if (strchr(s, ']') == NULL)
            record(L, L->line, "", NULL, "not a valid INI line ('[' without ']')");
        return str;
    }
    L->expect_key = true;
    L->handler_ran = false;
    return str;
}

static int on_ini_key(void *user, const char *section, const char *key, const char *value)
{
    loader *L = user;
    L->handler_ran = true;
    char why[KV_ERR_MSG_BYTES] = "";
    if (!L->on_key(L->ctx, section, key, value, why, sizeof why)) {
        if (why[0] == '\0')
            snprintf(why, sizeof why, "[%s] %s: invalid value \"%s\"", section, key, value);
        record(L, L->line, section, key, why);
    }
    return 1; /* keep going: every bad key is reported */
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_inifile_load(const char *path, kv_inifile_handler on_key, void *ctx,
                          kv_inifile_report *report, kv_err *err)
{
    if (report != NULL)
        *report = (kv_inifile_report){0};
    loader L = {.path = path, .on_key = on_key, .ctx = ctx};
    L.f = fopen(path, "r");
    if (L.f == NULL)
        return kv_errorf(err, KV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int first_bad = ini_parse_stream(read_line, &L, on_ini_key, &L);
    settle_line(&L);
    bool read_failed = ferror(L.f) != 0;
    fclose(L.f);
    if (read_failed)
        return kv_errorf(err, KV_ERR_IO, "%s: read error", path);
    if (first_bad > 0 && !is_recorded(&L, first_bad)) /* a line our classification missed */
        record(&L, first_bad, "", NULL, "not a valid INI line");
    if (first_bad < 0)
        return kv_errorf(err, KV_ERR_NOMEM, "%s: out of memory", path);
    if (report != NULL)
        *report = L.rep;
    if (L.rep.n_bad == 0)
        return KV_OK;
    if (L.rep.n_bad > L.n_listed)
        snprintf(L.msg + L.msg_len, sizeof L.msg - L.msg_len, "\n... and %d more bad lines",
                 L.rep.n_bad - L.n_listed);
    return kv_errorf(err, KV_ERR_INPUT, "%s", L.msg);
}

bool kv_inifile_number(const char *v, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || errno != 0 || !isfinite(d) || d < lo || d > hi)
        return false;
    *out = d;
    return true;
}
