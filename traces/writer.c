/* writer.c — native trace writer. See writer.h. */
#include "writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ------------------------------------------------------------------------------------------ */

enum { BUF_BYTES = 1 << 20, ROW_MAX = 64 * 1024 };

struct kv_trace_writer {
    char *path;
    FILE *f;   /* plain output, or */
    gzFile gz; /* compressed output */
    uint32_t fields;
    char *buf;
    size_t len;
};

/* ------------------------------------------------------------------------------------------ */

static kv_status flush(kv_trace_writer *w, kv_err *err)
{
    if (w->len == 0)
        return KV_OK;
    bool ok = w->gz ? gzwrite(w->gz, w->buf, (unsigned)w->len) == (int)w->len
                    : fwrite(w->buf, 1, w->len, w->f) == w->len;
    w->len = 0;
    if (!ok)
        return kv_errorf(err, KV_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    return KV_OK;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return put_u64(p, (uint64_t)v);
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_trace_writer_open(const char *path, uint32_t fields, kv_trace_writer **out,
                               kv_err *err)
{
    *out = NULL;
    kv_trace_writer *w = calloc(1, sizeof *w);
    if (w == NULL || (w->path = strdup(path)) == NULL || (w->buf = malloc(BUF_BYTES)) == NULL) {
        if (w)
            free(w->path);
        free(w);
        return kv_errorf(err, KV_ERR_NOMEM, "%s: out of memory", path);
    }
    w->fields = fields;
    size_t n = strlen(path);
    if (n > 3 && strcmp(path + n - 3, ".gz") == 0)
        w->gz = gzopen(path, "wb6");
    else
        w->f = fopen(path, "wb");
    if (w->gz == NULL && w->f == NULL) {
        kv_status st = kv_errorf(err, KV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        free(w->buf);
        free(w->path);
        free(w);
        return st;
    }
    w->len = (size_t)snprintf(
        w->buf, BUF_BYTES, "arrival_us,prompt_tokens,output_tokens%s%s%s%s%s\n",
        fields & KV_FIELD_SESSION ? ",session_id" : "", fields & KV_FIELD_N ? ",n" : "",
        fields & KV_FIELD_BEAM ? ",beam_width" : "", fields & KV_FIELD_PRIORITY ? ",priority" : "",
        fields & KV_FIELD_PREFIX ? ",prefix_block_tokens,prefix_hashes" : "");
    *out = w;
    return KV_OK;
}

kv_status kv_trace_write(kv_trace_writer *w, const kv_request *r, kv_err *err)
{
    size_t need = 128 + (size_t)r->n_prefix_hashes * 21;
    if (w->len + need > BUF_BYTES) {
        kv_status st = flush(w, err);
        if (st != KV_OK)
            return st;
    }
    if (need > BUF_BYTES)
        return kv_errorf(err, KV_ERR_INPUT, "%s: a row of %u prefix hashes is too long", w->path,
                         r->n_prefix_hashes);
    char *p = w->buf + w->len;
    p = put_i64(p, r->t_arrival_us);
    *p++ = ',';
    p = put_u64(p, r->prompt_tokens);
    *p++ = ',';
    p = put_u64(p, r->output_tokens);
    if (w->fields & KV_FIELD_SESSION)
        *p++ = ',', p = put_u64(p, r->session_id);
    if (w->fields & KV_FIELD_N)
        *p++ = ',', p = put_u64(p, r->n_samples);
    if (w->fields & KV_FIELD_BEAM)
        *p++ = ',', p = put_u64(p, r->beam_width);
    if (w->fields & KV_FIELD_PRIORITY)
        *p++ = ',', p = put_i64(p, r->priority);
    if (w->fields & KV_FIELD_PREFIX) {
        *p++ = ',';
        p = put_u64(p, r->prefix_block_tokens);
        *p++ = ',';
        for (uint32_t i = 0; i < r->n_prefix_hashes; i++) {
            if (i)
                *p++ = ';';
            p = put_u64(p, r->prefix_hashes[i]);
        }
    }
    *p++ = '\n';
    w->len = (size_t)(p - w->buf);
    return KV_OK;
}

kv_status kv_trace_writer_close(kv_trace_writer **wp, kv_err *err)
{
    kv_trace_writer *w = wp ? *wp : NULL;
    if (w == NULL)
        return KV_OK;
    kv_status st = flush(w, err);
    if (w->gz) {
        if (gzclose(w->gz) != Z_OK && st == KV_OK)
            st = kv_errorf(err, KV_ERR_IO, "%s: closing the gzip stream failed", w->path);
    } else if (fclose(w->f) != 0 && st == KV_OK) {
        st = kv_errorf(err, KV_ERR_IO, "%s: close failed: %s", w->path, strerror(errno));
    }
    free(w->buf);
    free(w->path);
    free(w);
    *wp = NULL;
    return st;
}
