/* reader.c — streaming trace reader over zlib, libcsv and jansson. See reader.h.
 *
 * Algorithm: input is read through gzread in READ_CHUNK pieces. For CSV formats each piece goes
 * to csv_parse, whose per-field callback converts the field at once by the role its header gave
 * the column, and whose end-of-row callback validates the row and appends a request to a queue;
 * kv_trace_next pops the queue and refills it one piece at a time, so memory is bounded by one
 * piece's rows. libcsv runs with CSV_REPALL_NL, so every line end is reported and line numbers
 * stay exact across CRLF and blank lines. JSON Lines are split here and each line parsed by
 * jansson into the same queue. Prefix hashes live in an arena beside the queue, referenced by
 * offset until a request is handed out.
 *
 * Errors found inside callbacks are kept "pending": the rows queued before the bad row are
 * handed out first, then the error (or, with skip_bad_rows, the row is counted and dropped).
 */
#include "reader.h"

#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "vec.h"

/* ------------------------------------------------------------------------------------------ */

enum {
    READ_CHUNK = 64 * 1024,
    MAX_COLS = 16,
    MAX_NAME = 64,
    MOONCAKE_BLOCK_TOKENS = 512,
};

typedef enum role {
    R_IGNORE,
    R_ARRIVAL_US,
    R_PROMPT,
    R_OUTPUT,
    R_SESSION,
    R_N,
    R_BEAM,
    R_PRIORITY,
    R_PREFIX_BT,
    R_PREFIX_HASHES,
    R_AZURE_TIME,
    R_BURST_TIME,
} role;

/* A request in the queue: hashes by offset into the arena. */
typedef struct queued {
    kv_request req;
    size_t hash_off;
} queued;

/* The row being assembled by the CSV callbacks. */
typedef struct row {
    uint32_t n_fields;
    bool bad; /* a field failed; msg holds why */
    char msg[KV_ERR_MSG_BYTES];
    kv_request req;
    size_t hash_off;
} row;

struct kv_trace {
    char *path;
    gzFile gz;
    kv_trace_opts opts;
    kv_trace_format format;
    uint32_t fields;
    bool input_done;
    unsigned char *pre; /* the first piece, read by open to detect the format */
    size_t pre_len;

    /* CSV */
    struct csv_parser csv;
    bool csv_ready;
    bool header_done;
    bool header_bad; /* the pending error is about the header: open fails */
    uint32_t n_cols;
    char names[MAX_COLS][MAX_NAME];
    role roles[MAX_COLS];
    uint64_t n_lf; /* line feeds seen: the current line is n_lf + 1 */
    row cur;

    /* JSON Lines */
    char *jbuf;
    size_t jlen, jcap;

    /* output queue */
    queued *q;
    size_t q_head, q_len, q_cap;
    uint64_t *hashes;
    size_t h_len, h_cap;

    /* time */
    bool have_origin;
    int64_t origin_us, last_us;

    /* accounting and errors */
    uint64_t rows, skipped;
    char first_skip[KV_ERR_MSG_BYTES];
    kv_status pending; /* an error to report once the queue drains */
    kv_err pending_err;
    bool stop; /* stop converting: a fatal error is pending */
};

/* ------------------------------------------------------------------------------------------ */

static const char *const format_names[] = {"auto", "native", "azure", "burstgpt", "mooncake"};

static const char *const native_optional[] = {
    "session_id", "n", "beam_width", "priority", "prefix_block_tokens", "prefix_hashes"};
static const role native_optional_roles[] = {R_SESSION,  R_N,         R_BEAM,
                                             R_PRIORITY, R_PREFIX_BT, R_PREFIX_HASHES};
static const uint32_t native_optional_fields[] = {KV_FIELD_SESSION, KV_FIELD_N,
                                                  KV_FIELD_BEAM,    KV_FIELD_PRIORITY,
                                                  KV_FIELD_PREFIX,  KV_FIELD_PREFIX};

static const char *const azure_cols[] = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"};
static const role azure_roles[] = {R_AZURE_TIME, R_PROMPT, R_OUTPUT};
static const char *const burst_cols[] = {"Timestamp",       "Model",        "Request tokens",
                                         "Response tokens", "Total tokens", "Log Type"};
static const role burst_roles[] = {R_BURST_TIME, R_IGNORE, R_PROMPT, R_OUTPUT, R_IGNORE, R_IGNORE};

#define N_OF(x) (sizeof(x) / sizeof((x)[0]))

/* ------------------------------------------------------------------------------------------ */

const char *kv_trace_format_name(kv_trace_format f)
{
    return (unsigned)f < N_OF(format_names) ? format_names[f] : "?";
}

static uint64_t line_now(const kv_trace *t)
{
    return t->n_lf + 1;
}

/* Record a fatal error to report after the queued rows. */
static void set_pending(kv_trace *t, kv_status st, const char *msg)
{
    if (t->pending != KV_OK)
        return;
    t->pending = st;
    snprintf(t->pending_err.msg, sizeof t->pending_err.msg, "%s", msg);
    t->stop = true;
}

/* A bad row: skip and count it, or make it the pending error. */
static void bad_row(kv_trace *t, const char *msg)
{
    if (t->opts.skip_bad_rows) {
        if (t->skipped++ == 0)
            snprintf(t->first_skip, sizeof t->first_skip, "%s", msg);
        return;
    }
    set_pending(t, KV_ERR_INPUT, msg);
}

/* Parse an unsigned decimal integer of len bytes. Returns false on anything else. */
static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Up to 6 fraction digits as microseconds; further digits are checked and truncated. */
static bool parse_frac_us(const char *s, size_t len, int64_t *out)
{
    if (len == 0)
        return false;
    int64_t frac = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return false;
        if (i < 6)
            frac = frac * 10 + d;
    }
    for (size_t i = len; i < 6; i++)
        frac *= 10;
    *out = frac;
    return true;
}

/* A decimal number of seconds ("12", "12.5", "0.000001") as microseconds. */
static bool parse_seconds_us(const char *s, size_t len, int64_t *out)
{
    size_t dot = 0;
    while (dot < len && s[dot] != '.')
        dot++;
    uint64_t whole;
    int64_t frac = 0;
    if (!parse_u64(s, dot, &whole) || whole > (uint64_t)KV_TRACE_MAX_US / 1000000)
        return false;
    if (dot < len && !parse_frac_us(s + dot + 1, len - dot - 1, &frac))
        return false;
    *out = (int64_t)whole * 1000000 + frac; /* < 2^62 + 10^6: no overflow */
    return *out <= KV_TRACE_MAX_US;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* "YYYY-MM-DD HH:MM:SS[.fraction]" as microseconds since the epoch (no time zone). */
static bool parse_azure_time(const char *s, size_t len, int64_t *out)
{
    if (len < 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':')
        return false;
    uint64_t y, mo, d, h, mi, sec;
    if (!parse_u64(s, 4, &y) || !parse_u64(s + 5, 2, &mo) || !parse_u64(s + 8, 2, &d) ||
        !parse_u64(s + 11, 2, &h) || !parse_u64(s + 14, 2, &mi) || !parse_u64(s + 17, 2, &sec))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    int64_t frac_us = 0;
    if (len > 19 && (s[19] != '.' || !parse_frac_us(s + 20, len - 20, &frac_us)))
        return false;
    int64_t days = days_from_civil((int64_t)y, (unsigned)mo, (unsigned)d);
    *out = ((days * 24 + (int64_t)h) * 60 + (int64_t)mi) * 60 * 1000000 + (int64_t)sec * 1000000 +
           frac_us;
    return true;
}

static bool hashes_reserve(kv_trace *t, size_t more)
{
    return kv_vec_reserve(&t->hashes, &t->h_cap, t->h_len + more, sizeof *t->hashes, 1024);
}

static bool queue_push(kv_trace *t, const kv_request *req, size_t hash_off)
{
    if (!kv_vec_reserve(&t->q, &t->q_cap, t->q_head + t->q_len + 1, sizeof *t->q, 4096))
        return false;
    t->q[t->q_head + t->q_len++] = (queued){*req, hash_off};
    return true;
}

/* Validate time order, make arrival relative to the origin, queue the request. The message
 * prefix names the file and line. Returns false when the row was bad. */
static bool accept(kv_trace *t, kv_request *req, size_t hash_off, int64_t abs_us, uint64_t line,
                   const char *time_col)
{
    char msg[KV_ERR_MSG_BYTES];
    if (t->have_origin && abs_us < t->last_us) {
        snprintf(msg, sizeof msg,
                 "%s:%llu: column '%s': timestamp goes backwards (%.6f s before the previous row)",
                 t->path, (unsigned long long)line, time_col, (double)(t->last_us - abs_us) / 1e6);
        bad_row(t, msg);
        return false;
    }
    if (!t->have_origin) {
        t->have_origin = true;
        t->origin_us = t->format == KV_TRACE_AZURE ? abs_us : 0;
    }
    t->last_us = abs_us;
    req->t_arrival_us = abs_us - t->origin_us;
    if (!queue_push(t, req, hash_off)) {
        set_pending(t, KV_ERR_NOMEM, "trace reader: out of memory");
        return false;
    }
    t->rows++;
    return true;
}

static kv_request default_request(void)
{
    return (kv_request){.n_samples = 1, .beam_width = 1};
}

/* ---------------------------------------------------------------------- CSV header --- */

static bool header_is(const kv_trace *t, const char *const *cols, size_t n)
{
    if (t->n_cols != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t->names[i], cols[i]) != 0)
            return false;
    return true;
}

/* Give every column its role; detect the format when asked to. */
static void resolve_header(kv_trace *t)
{
    char msg[KV_ERR_MSG_BYTES];
    kv_trace_format want = t->opts.format;
    if ((want == KV_TRACE_AUTO || want == KV_TRACE_AZURE) &&
        header_is(t, azure_cols, N_OF(azure_cols))) {
        t->format = KV_TRACE_AZURE;
        memcpy(t->roles, azure_roles, sizeof azure_roles);
        return;
    }
    if ((want == KV_TRACE_AUTO || want == KV_TRACE_BURSTGPT) &&
        header_is(t, burst_cols, N_OF(burst_cols))) {
        t->format = KV_TRACE_BURSTGPT;
        memcpy(t->roles, burst_roles, sizeof burst_roles);
        return;
    }
    if ((want == KV_TRACE_AUTO || want == KV_TRACE_NATIVE) && t->n_cols >= 3 &&
        strcmp(t->names[0], "arrival_us") == 0 && strcmp(t->names[1], "prompt_tokens") == 0 &&
        strcmp(t->names[2], "output_tokens") == 0) {
        t->format = KV_TRACE_NATIVE;
        t->roles[0] = R_ARRIVAL_US;
        t->roles[1] = R_PROMPT;
        t->roles[2] = R_OUTPUT;
        for (uint32_t c = 3; c < t->n_cols; c++) {
            size_t k = 0;
            while (k < N_OF(native_optional) && strcmp(t->names[c], native_optional[k]) != 0)
                k++;
            if (k == N_OF(native_optional)) {
                snprintf(msg, sizeof msg,
                         "%s:1: column %u: unknown column '%s' (native optional columns: "
                         "session_id, n, beam_width, priority, prefix_block_tokens, "
                         "prefix_hashes)",
                         t->path, c + 1, t->names[c]);
                set_pending(t, KV_ERR_INPUT, msg);
                return;
            }
            for (uint32_t d = 3; d < c; d++) {
                if (t->roles[d] == native_optional_roles[k]) {
                    snprintf(msg, sizeof msg, "%s:1: column %u: '%s' appears twice", t->path, c + 1,
                             t->names[c]);
                    set_pending(t, KV_ERR_INPUT, msg);
                    return;
                }
            }
            t->roles[c] = native_optional_roles[k];
            t->fields |= native_optional_fields[k];
        }
        bool has_bt = false, has_h = false;
        for (uint32_t c = 3; c < t->n_cols; c++) {
            has_bt |= t->roles[c] == R_PREFIX_BT;
            has_h |= t->roles[c] == R_PREFIX_HASHES;
        }
        if (has_bt != has_h) {
            snprintf(msg, sizeof msg,
                     "%s:1: prefix_block_tokens and prefix_hashes go together; found only '%s'",
                     t->path, has_bt ? "prefix_block_tokens" : "prefix_hashes");
            set_pending(t, KV_ERR_INPUT, msg);
        }
        return;
    }
    char got[256] = "";
    for (uint32_t c = 0; c < t->n_cols; c++) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof got - l, "%s%s", c ? "," : "", t->names[c]);
    }
    snprintf(msg, sizeof msg,
             "%s:1: header \"%s\" is not a%s trace header: expected native "
             "(arrival_us,prompt_tokens,output_tokens[,...]), Azure "
             "(TIMESTAMP,ContextTokens,GeneratedTokens) or BurstGPT (Timestamp,Model,Request "
             "tokens,Response tokens,Total tokens,Log Type)",
             t->path, got,
             want == KV_TRACE_AUTO ? "" : (want == KV_TRACE_NATIVE ? " native" : " known"));
    set_pending(t, KV_ERR_INPUT, msg);
}

/* ------------------------------------------------------------------------ CSV rows --- */

static void field_error(kv_trace *t, uint32_t col, const char *expected, const char *s, size_t len)
{
    row *r = &t->cur;
    if (r->bad)
        return;
    r->bad = true;
    snprintf(r->msg, sizeof r->msg, "%s:%llu: column '%s': expected %s, got \"%.*s\"", t->path,
             (unsigned long long)line_now(t), t->names[col], expected, (int)(len > 40 ? 40 : len),
             s);
}

static void on_field(void *s_, size_t len, void *data)
{
    kv_trace *t = data;
    const char *s = s_ ? s_ : "";
    if (t->stop)
        return;
    row *r = &t->cur;
    uint32_t col = r->n_fields++;
    if (!t->header_done) {
        if (col < MAX_COLS) {
            size_t n = len < MAX_NAME - 1 ? len : MAX_NAME - 1;
            memcpy(t->names[col], s, n);
            t->names[col][n] = '\0';
        }
        return;
    }
    if (col >= t->n_cols || r->bad)
        return;
    uint64_t v = 0;
    int64_t us = 0;
    bool neg = len > 0 && s[0] == '-';
    switch (t->roles[col]) {
    case R_IGNORE: break;
    case R_ARRIVAL_US:
        if (!parse_u64(s, len, &v) || v > (uint64_t)KV_TRACE_MAX_US)
            field_error(t, col, "a non-negative integer number of microseconds, at most 2^62",
                        s, len);
        r->req.t_arrival_us = (int64_t)v;
        break;
    case R_PROMPT:
        if (!parse_u64(s, len, &v) || v == 0 || v > KV_TRACE_MAX_TOKENS)
            field_error(t, col,
                        neg ? "a positive token count"
                            : "a positive integer token count of at most 2^30",
                        s, len);
        r->req.prompt_tokens = (uint32_t)v;
        break;
    case R_OUTPUT:
        if (!parse_u64(s, len, &v) || v > KV_TRACE_MAX_TOKENS)
            field_error(t, col, "a non-negative integer token count of at most 2^30", s, len);
        r->req.output_tokens = (uint32_t)v;
        break;
    case R_SESSION:
        if (!parse_u64(s, len, &v))
            field_error(t, col, "a non-negative integer session id", s, len);
        r->req.session_id = v;
        break;
    case R_N:
    case R_BEAM:
        if (!parse_u64(s, len, &v) || v == 0 || v > 1024)
            field_error(t, col, "an integer in 1..1024", s, len);
        if (t->roles[col] == R_N)
            r->req.n_samples = (uint32_t)v;
        else
            r->req.beam_width = (uint32_t)v;
        break;
    case R_PRIORITY:
        if (!parse_u64(s + neg, len - neg, &v) || v > INT32_MAX)
            field_error(t, col, "an integer priority", s, len);
        r->req.priority = neg ? -(int32_t)v : (int32_t)v;
        break;
    case R_PREFIX_BT:
        if (!parse_u64(s, len, &v) || v > UINT32_MAX)
            field_error(t, col, "a non-negative integer block size in tokens", s, len);
        r->req.prefix_block_tokens = (uint32_t)v;
        break;
    case R_PREFIX_HASHES: {
        /* ';'-separated decimal ids, possibly none */
        size_t i = 0;
        while (i < len) {
            size_t j = i;
            while (j < len && s[j] != ';')
                j++;
            if (!parse_u64(s + i, j - i, &v)) {
                field_error(t, col, "';'-separated non-negative integer hash ids", s, len);
                break;
            }
            if (!hashes_reserve(t, 1)) {
                set_pending(t, KV_ERR_NOMEM, "trace reader: out of memory");
                return;
            }
            t->hashes[t->h_len++] = v;
            r->req.n_prefix_hashes++;
            i = j + 1;
            if (j + 1 == len) /* a trailing ';' */
                field_error(t, col, "';'-separated non-negative integer hash ids", s, len);
        }
        break;
    }
    case R_AZURE_TIME:
        if (!parse_azure_time(s, len, &us))
            field_error(t, col, "a time \"YYYY-MM-DD HH:MM:SS.fffffff\"", s, len);
        r->req.t_arrival_us = us;
        break;
    case R_BURST_TIME:
        if (!parse_seconds_us(s, len, &us))
            field_error(t, col, "a non-negative number of seconds, at most 2^62 microseconds", s,
                        len);
        r->req.t_arrival_us = us;
        break;
    }
}

static void reset_row(kv_trace *t)
{
    t->cur.n_fields = 0;
    t->cur.bad = false;
    t->cur.req = default_request();
    t->cur.hash_off = t->h_len;
}

static void on_row(int c, void *data)
{
    kv_trace *t = data;
    row *r = &t->cur;
    uint64_t line = line_now(t);
    if (c == '\n')
        t->n_lf++;
    if (t->stop || r->n_fields == 0) { /* a blank line, or stopped */
        reset_row(t);
        return;
    }
    char msg[KV_ERR_MSG_BYTES];
    if (!t->header_done) {
        t->header_done = true;
        t->n_cols = r->n_fields;
        if (t->n_cols > MAX_COLS) {
            snprintf(msg, sizeof msg, "%s:1: header has %u columns, at most %d expected", t->path,
                     t->n_cols, MAX_COLS);
            set_pending(t, KV_ERR_INPUT, msg);
        } else {
            resolve_header(t);
        }
        t->header_bad = t->pending != KV_OK;
        reset_row(t);
        return;
    }
    if (r->n_fields != t->n_cols) {
        if (r->n_fields < t->n_cols)
            snprintf(msg, sizeof msg, "%s:%llu: column '%s' missing: expected %u columns, found %u",
                     t->path, (unsigned long long)line, t->names[r->n_fields], t->n_cols,
                     r->n_fields);
        else
            snprintf(msg, sizeof msg, "%s:%llu: extra column: expected %u columns, found %u",
                     t->path, (unsigned long long)line, t->n_cols, r->n_fields);
        t->h_len = r->hash_off;
        bad_row(t, msg);
    } else if (r->bad) {
        t->h_len = r->hash_off;
        bad_row(t, r->msg);
    } else {
        if (r->req.n_prefix_hashes > 0 && r->req.prefix_block_tokens == 0) {
            snprintf(msg, sizeof msg,
                     "%s:%llu: column 'prefix_block_tokens': expected a positive block size for "
                     "%u prefix hashes, got 0",
                     t->path, (unsigned long long)line, r->req.n_prefix_hashes);
            t->h_len = r->hash_off;
            bad_row(t, msg);
        } else {
            int64_t abs_us = r->req.t_arrival_us;
            const char *time_col = t->names[0];
            if (!accept(t, &r->req, r->hash_off, abs_us, line, time_col))
                t->h_len = r->hash_off;
        }
    }
    reset_row(t);
}

/* ---------------------------------------------------------------------- JSON Lines --- */

static void json_row(kv_trace *t, const char *s, size_t len, uint64_t line)
{
    char msg[KV_ERR_MSG_BYTES];
    json_error_t je;
    json_t *o = json_loadb(s, len, 0, &je);
    if (o == NULL || !json_is_object(o)) {
        if (o == NULL)
            snprintf(msg, sizeof msg, "%s:%llu: invalid JSON at character %d: %s", t->path,
                     (unsigned long long)line, je.position, je.text);
        else
            snprintf(msg, sizeof msg, "%s:%llu: expected a JSON object", t->path,
                     (unsigned long long)line);
        json_decref(o);
        bad_row(t, msg);
        return;
    }
    kv_request req = default_request();
    size_t hash_off = t->h_len;
    int64_t abs_us = 0;
    bool seen[4] = {false, false, false, false};
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "timestamp") == 0) {
            seen[0] = true;
            double ms = json_is_number(v) ? json_number_value(v) : -1;
            if (!json_is_number(v) || !(ms >= 0 && ms <= (double)(KV_TRACE_MAX_US / 1000))) {
                snprintf(msg, sizeof msg,
                         "%s:%llu: key 'timestamp': expected a non-negative number of "
                         "milliseconds",
                         t->path, (unsigned long long)line);
                goto bad;
            }
            abs_us = json_is_integer(v) ? (int64_t)json_integer_value(v) * 1000
                                        : (int64_t)(ms * 1000.0 + 0.5);
        } else if (strcmp(key, "input_length") == 0 || strcmp(key, "output_length") == 0) {
            bool in = key[0] == 'i';
            seen[in ? 1 : 2] = true;
            json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
            if (n < (in ? 1 : 0) || n > (json_int_t)KV_TRACE_MAX_TOKENS) {
                snprintf(msg, sizeof msg, "%s:%llu: key '%s': expected a %s integer of at most 2^30",
                         t->path, (unsigned long long)line, key, in ? "positive" : "non-negative");
                goto bad;
            }
            if (in)
                req.prompt_tokens = (uint32_t)n;
            else
                req.output_tokens = (uint32_t)n;
        } else if (strcmp(key, "hash_ids") == 0) {
            seen[3] = true;
            if (!json_is_array(v)) {
                snprintf(msg, sizeof msg, "%s:%llu: key 'hash_ids': expected an array", t->path,
                         (unsigned long long)line);
                goto bad;
            }
            size_t n = json_array_size(v);
            if (!hashes_reserve(t, n)) {
                set_pending(t, KV_ERR_NOMEM, "trace reader: out of memory");
                json_decref(o);
                return;
            }
            for (size_t i = 0; i < n; i++) {
                json_t *h = json_array_get(v, i);
                if (!json_is_integer(h) || json_integer_value(h) < 0) {
                    snprintf(msg, sizeof msg,
                             "%s:%llu: key 'hash_ids': element %zu: expected a non-negative "
                             "integer",
                             t->path, (unsigned long long)line, i);
                    goto bad;
                }
                t->hashes[t->h_len++] = (uint64_t)json_integer_value(h);
            }
            req.n_prefix_hashes = (uint32_t)n;
            req.prefix_block_tokens = MOONCAKE_BLOCK_TOKENS;
        } else {
            snprintf(msg, sizeof msg,
                     "%s:%llu: unknown key '%s' (expected timestamp, input_length, "
                     "output_length, hash_ids)",
                     t->path, (unsigned long long)line, key);
            goto bad;
        }
    }
    static const char *const required[] = {"timestamp", "input_length", "output_length"};
    for (int k = 0; k < 3; k++) {
        if (!seen[k]) {
            snprintf(msg, sizeof msg, "%s:%llu: key '%s' missing", t->path,
                     (unsigned long long)line, required[k]);
            goto bad;
        }
    }
    if (seen[3]) {
        uint64_t want = (req.prompt_tokens + MOONCAKE_BLOCK_TOKENS - 1) / MOONCAKE_BLOCK_TOKENS;
        if (req.n_prefix_hashes != want) {
            snprintf(msg, sizeof msg,
                     "%s:%llu: key 'hash_ids': %u ids for input_length %u, expected "
                     "ceil(%u / 512) = %llu",
                     t->path, (unsigned long long)line, req.n_prefix_hashes, req.prompt_tokens,
                     req.prompt_tokens, (unsigned long long)want);
            goto bad;
        }
    }
    json_decref(o);
    if (!accept(t, &req, hash_off, abs_us, line, "timestamp"))
        t->h_len = hash_off;
    return;
bad:
    json_decref(o);
    t->h_len = hash_off;
    bad_row(t, msg);
}

/* Split complete lines out of jbuf; at end of input the last line needs no '\n'. */
static void json_lines(kv_trace *t, bool final)
{
    size_t start = 0;
    for (;;) {
        if (t->stop)
            break;
        char *nl = memchr(t->jbuf + start, '\n', t->jlen - start);
        if (nl == NULL && !(final && start < t->jlen))
            break;
        size_t end = nl ? (size_t)(nl - t->jbuf) : t->jlen;
        size_t len = end - start;
        if (len > 0 && t->jbuf[start + len - 1] == '\r')
            len--;
        uint64_t line = line_now(t);
        t->n_lf += nl != NULL;
        size_t k = 0;
        while (k < len && (t->jbuf[start + k] == ' ' || t->jbuf[start + k] == '\t'))
            k++;
        if (k < len)
            json_row(t, t->jbuf + start, len, line);
        start = nl ? end + 1 : t->jlen;
    }
    memmove(t->jbuf, t->jbuf + start, t->jlen - start);
    t->jlen -= start;
}

/* --------------------------------------------------------------------- input pump --- */

/* Read one piece of input into chunk. Returns its length, or -1 with a pending error; *done
 * tells whether the input is exhausted. */
static int read_piece(kv_trace *t, unsigned char *chunk, bool *done)
{
    char msg[KV_ERR_MSG_BYTES];
    int n = gzread(t->gz, chunk, READ_CHUNK);
    int zerr = Z_OK;
    const char *what = gzerror(t->gz, &zerr);
    if (n < 0 || zerr == Z_BUF_ERROR || zerr == Z_DATA_ERROR) {
        if (zerr == Z_BUF_ERROR || zerr == Z_DATA_ERROR)
            snprintf(msg, sizeof msg, "%s: %s gzip stream (%s)", t->path,
                     zerr == Z_BUF_ERROR ? "truncated" : "corrupt", what);
        else
            snprintf(msg, sizeof msg, "%s: read failed: %s", t->path,
                     zerr == Z_ERRNO ? strerror(errno) : what);
        set_pending(t, zerr == Z_ERRNO ? KV_ERR_IO : KV_ERR_INPUT, msg);
        t->input_done = true;
        return -1;
    }
    *done = n < READ_CHUNK && gzeof(t->gz);
    if (n == 0)
        *done = true;
    return n;
}

/* Turn one piece of input into queued rows (or a pending error). */
static void pump(kv_trace *t)
{
    unsigned char buf[READ_CHUNK];
    const unsigned char *chunk = buf;
    bool done = false;
    int n;
    char msg[KV_ERR_MSG_BYTES];
    if (t->pre != NULL) {
        chunk = t->pre;
        n = (int)t->pre_len;
        done = t->input_done;
    } else {
        n = read_piece(t, buf, &done);
        if (n < 0)
            return;
    }
    size_t off = 0;
    if (t->format == KV_TRACE_MOONCAKE) {
        size_t len = (size_t)n - off;
        if (!kv_vec_reserve(&t->jbuf, &t->jcap, t->jlen + len, 1, READ_CHUNK)) {
            set_pending(t, KV_ERR_NOMEM, "trace reader: out of memory");
            return;
        }
        memcpy(t->jbuf + t->jlen, chunk + off, len);
        t->jlen += len;
        json_lines(t, done);
    } else {
        if (csv_parse(&t->csv, chunk + off, (size_t)n - off, on_field, on_row, t) !=
            (size_t)n - off) {
            snprintf(msg, sizeof msg, "%s:%llu: CSV parse error: %s", t->path,
                     (unsigned long long)line_now(t), csv_strerror(csv_error(&t->csv)));
            set_pending(t, KV_ERR_INPUT, msg);
        }
        if (done)
            csv_fini(&t->csv, on_field, on_row, t);
    }
    if (done)
        t->input_done = true;
    free(t->pre);
    t->pre = NULL;
}

/* ---------------------------------------------------------------------- public API --- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

kv_status kv_trace_open(const char *path, const kv_trace_opts *opts, kv_trace **out, kv_err *err)
{
    *out = NULL;
    kv_trace *t = calloc(1, sizeof *t);
    if (t == NULL || (t->path = strdup(path)) == NULL) {
        free(t);
        return kv_errorf(err, KV_ERR_NOMEM, "%s: out of memory", path);
    }
    t->opts = opts ? *opts : (kv_trace_opts){0};
    t->gz = gzopen(path, "rb");
    if (t->gz == NULL) {
        kv_status st = kv_errorf(err, KV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        kv_trace_close(&t);
        return st;
    }
    gzbuffer(t->gz, 256 * 1024);
    reset_row(t);

    /* Read the first piece: strip a byte order mark, find the first character. */
    bool json = ends_with(path, ".jsonl") || ends_with(path, ".json") ||
                ends_with(path, ".jsonl.gz") || ends_with(path, ".json.gz");
    bool done = false;
    t->pre = malloc(READ_CHUNK);
    int n = t->pre ? read_piece(t, t->pre, &done) : -1;
    if (n < 0) {
        kv_status st = t->pre ? kv_errorf(err, t->pending, "%s", t->pending_err.msg)
                              : kv_errorf(err, KV_ERR_NOMEM, "%s: out of memory", path);
        kv_trace_close(&t);
        return st;
    }
    t->pre_len = (size_t)n;
    t->input_done = done;
    if (n >= 3 && t->pre[0] == 0xEF && t->pre[1] == 0xBB && t->pre[2] == 0xBF) {
        memmove(t->pre, t->pre + 3, t->pre_len - 3);
        t->pre_len -= 3;
    }
    size_t k = 0;
    while (k < t->pre_len && strchr(" \t\r\n", t->pre[k]) != NULL)
        k++;
    int c = k < t->pre_len ? t->pre[k] : -1;
    if (c == -1 && done) {
        kv_trace_close(&t);
        return kv_errorf(err, KV_ERR_INPUT, "%s: empty file: expected a trace header or JSON lines",
                         path);
    }
    kv_trace_format want = t->opts.format;
    if (want == KV_TRACE_MOONCAKE || (want == KV_TRACE_AUTO && (json || c == '{'))) {
        t->format = KV_TRACE_MOONCAKE;
        t->fields = KV_FIELD_PREFIX;
        return *out = t, KV_OK;
    }
    if (csv_init(&t->csv, CSV_REPALL_NL) != 0) {
        kv_trace_close(&t);
        return kv_errorf(err, KV_ERR_NOMEM, "%s: out of memory", path);
    }
    t->csv_ready = true;
    pump(t);
    while (!t->header_done && !t->input_done && t->pending == KV_OK)
        pump(t);
    if (t->pending == KV_OK && !t->header_done)
        set_pending(t, KV_ERR_INPUT, "");
    if (t->pending != KV_OK && (!t->header_done || t->header_bad)) {
        kv_status st = t->pending_err.msg[0] ? kv_errorf(err, t->pending, "%s", t->pending_err.msg)
                                             : kv_errorf(err, KV_ERR_INPUT,
                                                         "%s: empty file: expected a header", path);
        kv_trace_close(&t);
        return st;
    }
    *out = t;
    return KV_OK;
}

kv_status kv_trace_next(kv_trace *t, kv_request *req, kv_err *err)
{
    while (t->q_len == 0) {
        if (t->pending != KV_OK)
            return kv_errorf(err, t->pending, "%s", t->pending_err.msg);
        if (t->input_done && t->pre == NULL)
            return KV_EOF;
        /* Every handed-out row's hashes are dead now; keep those of a CSV row still being
         * assembled across the piece boundary. */
        t->q_head = 0;
        size_t keep = t->format == KV_TRACE_MOONCAKE ? 0 : t->h_len - t->cur.hash_off;
        if (keep > 0)
            memmove(t->hashes, t->hashes + (t->h_len - keep), keep * sizeof *t->hashes);
        t->h_len = keep;
        t->cur.hash_off = 0;
        pump(t);
    }
    queued *q = &t->q[t->q_head++];
    t->q_len--;
    *req = q->req;
    req->prefix_hashes = req->n_prefix_hashes ? t->hashes + q->hash_off : NULL;
    return KV_OK;
}

kv_trace_format kv_trace_format_of(const kv_trace *t)
{
    return t->format;
}

uint32_t kv_trace_fields(const kv_trace *t)
{
    return t->fields;
}

uint64_t kv_trace_rows(const kv_trace *t)
{
    return t->rows;
}

uint64_t kv_trace_skipped(const kv_trace *t)
{
    return t->skipped;
}

const char *kv_trace_first_skip(const kv_trace *t)
{
    return t->first_skip;
}

void kv_trace_close(kv_trace **tp)
{
    kv_trace *t = tp ? *tp : NULL;
    if (t == NULL)
        return;
    if (t->gz)
        gzclose(t->gz);
    if (t->csv_ready)
        csv_free(&t->csv);
    free(t->path);
    free(t->pre);
    free(t->jbuf);
    free(t->q);
    free(t->hashes);
    free(t);
    *tp = NULL;
}
