/* lengths.c — token-length samplers. See lengths.h. */
#include "lengths.h"

#include <csv.h>
#include <errno.h>
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"
#include "vec.h"

/* ------------------------------------------------------------------------------------------ */

struct kv_len_sampler {
    kv_len_spec spec;
    gsl_ran_discrete_t *zipf; /* zipf: alias table over k = lo .. max */
    uint32_t zipf_lo;
    uint32_t *values; /* empirical */
    uint64_t n_values;
};

/* State of the plain-CSV column loader. */
typedef struct column_load {
    kv_len_sampler *l;
    const char *path, *column;
    int64_t col; /* index of the column, -1 until the header is read */
    uint32_t field;
    uint64_t n_lf;
    size_t cap;
    bool header_done;
    char why[KV_ERR_MSG_BYTES];
} column_load;

/* ------------------------------------------------------------------------------------------ */

static uint32_t clamp(const kv_len_spec *s, double v)
{
    if (!(v >= s->min))
        return s->min;
    if (v > s->max)
        return s->max;
    return (uint32_t)v;
}

static bool push_value(kv_len_sampler *l, size_t *cap, uint32_t v)
{
    if (!kv_vec_reserve(&l->values, cap, l->n_values + 1, sizeof *l->values, 4096))
        return false;
    l->values[l->n_values++] = v;
    return true;
}

static void col_field(void *s, size_t len, void *data)
{
    column_load *c = data;
    uint32_t f = c->field++;
    if (c->why[0])
        return;
    if (!c->header_done) {
        if (strlen(c->column) == len && memcmp(s, c->column, len) == 0)
            c->col = f;
        return;
    }
    if ((int64_t)f != c->col)
        return;
    char buf[32];
    if (len == 0 || len >= sizeof buf) {
        snprintf(c->why, sizeof c->why,
                 "%s:%llu: column '%s': expected a token count, got \"%.*s\"", c->path,
                 (unsigned long long)c->n_lf + 1, c->column, (int)(len > 32 ? 32 : len),
                 (const char *)s);
        return;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end = NULL;
    double v = strtod(buf, &end);
    if (*end != '\0' || !(v >= 0) || v > 1e9) {
        snprintf(c->why, sizeof c->why,
                 "%s:%llu: column '%s': expected a non-negative token count, got \"%s\"", c->path,
                 (unsigned long long)c->n_lf + 1, c->column, buf);
        return;
    }
    if (!push_value(c->l, &c->cap, (uint32_t)(v + 0.5)))
        snprintf(c->why, sizeof c->why, "%s: out of memory", c->path);
}

static void col_row(int ch, void *data)
{
    column_load *c = data;
    uint64_t line = c->n_lf + 1;
    if (ch == '\n')
        c->n_lf++;
    if (c->field == 0)
        return; /* a blank line */
    if (!c->header_done) {
        c->header_done = true;
        if (c->col < 0 && !c->why[0])
            snprintf(c->why, sizeof c->why, "%s:1: no column '%s' in the header", c->path,
                     c->column);
    } else if ((int64_t)c->field <= c->col && !c->why[0]) {
        snprintf(c->why, sizeof c->why, "%s:%llu: column '%s' missing", c->path,
                 (unsigned long long)line, c->column);
    }
    c->field = 0;
}

/* Load a column of a plain CSV file with a header. */
static kv_status load_csv_column(kv_len_sampler *l, const char *path, const char *column,
                                 kv_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return kv_errorf(err, KV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct csv_parser p;
    csv_init(&p, CSV_REPALL_NL);
    column_load c = {.l = l, .path = path, .column = column, .col = -1};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0 && !c.why[0])
        csv_parse(&p, buf, n, col_field, col_row, &c);
    csv_fini(&p, col_field, col_row, &c);
    csv_free(&p);
    fclose(f);
    if (c.why[0])
        return kv_errorf(err, KV_ERR_INPUT, "%s", c.why);
    if (l->n_values == 0)
        return kv_errorf(err, KV_ERR_INPUT, "%s: column '%s' has no values", path, column);
    return KV_OK;
}

/* Load prompt_tokens or output_tokens of a trace. Returns KV_EOF when path is no trace. */
static kv_status load_trace_column(kv_len_sampler *l, const char *path, const char *column,
                                   kv_err *err)
{
    bool prompt = strcmp(column, "prompt_tokens") == 0;
    if (!prompt && strcmp(column, "output_tokens") != 0)
        return KV_EOF;
    kv_trace *t = NULL;
    kv_err probe = {{0}};
    if (kv_trace_open(path, NULL, &t, &probe) != KV_OK)
        return KV_EOF;
    kv_request r;
    kv_status st;
    size_t cap = 0;
    while ((st = kv_trace_next(t, &r, err)) == KV_OK)
        if (!push_value(l, &cap, prompt ? r.prompt_tokens : r.output_tokens)) {
            st = kv_errorf(err, KV_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
    kv_trace_close(&t);
    if (st != KV_EOF)
        return st;
    if (l->n_values == 0)
        return kv_errorf(err, KV_ERR_INPUT, "%s: the trace has no rows", path);
    return KV_OK;
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_len_sampler_create(const kv_len_spec *spec, const char *section, kv_len_sampler **out,
                                kv_err *err)
{
    *out = NULL;
    kv_len_sampler *l = calloc(1, sizeof *l);
    if (l == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "[%s]: out of memory", section);
    l->spec = *spec;
    kv_status st = KV_OK;
    if (spec->kind == KV_LEN_ZIPF) {
        l->zipf_lo = spec->min > 0 ? spec->min : 1;
        size_t n = spec->max >= l->zipf_lo ? spec->max - l->zipf_lo + 1 : 0;
        double *w = n ? malloc(n * sizeof *w) : NULL;
        if (w == NULL) {
            st = kv_errorf(err, KV_ERR_INPUT, "[%s] zipf: empty range", section);
        } else {
            for (size_t i = 0; i < n; i++)
                w[i] = pow((double)(l->zipf_lo + i), -spec->zipf_s);
            l->zipf = gsl_ran_discrete_preproc(n, w);
            free(w);
            if (l->zipf == NULL)
                st = kv_errorf(err, KV_ERR_NOMEM, "[%s] zipf: out of memory", section);
        }
    } else if (spec->kind == KV_LEN_EMPIRICAL) {
        st = load_trace_column(l, spec->file, spec->column, err);
        if (st == KV_EOF)
            st = load_csv_column(l, spec->file, spec->column, err);
    }
    if (st != KV_OK) {
        kv_len_sampler_destroy(&l);
        return st;
    }
    *out = l;
    return KV_OK;
}

void kv_len_sampler_destroy(kv_len_sampler **lp)
{
    kv_len_sampler *l = lp ? *lp : NULL;
    if (l == NULL)
        return;
    if (l->zipf)
        gsl_ran_discrete_free(l->zipf);
    free(l->values);
    free(l);
    *lp = NULL;
}

uint32_t kv_len_sample(const kv_len_sampler *l, gsl_rng *r)
{
    const kv_len_spec *s = &l->spec;
    switch (s->kind) {
    case KV_LEN_FIXED: return clamp(s, s->value);
    case KV_LEN_UNIFORM:
        return s->min + (uint32_t)gsl_rng_uniform_int(r, (unsigned long)(s->max - s->min) + 1);
    case KV_LEN_LOGNORMAL: return clamp(s, floor(gsl_ran_lognormal(r, s->mu, s->sigma) + 0.5));
    case KV_LEN_ZIPF: return l->zipf_lo + (uint32_t)gsl_ran_discrete(r, l->zipf);
    case KV_LEN_EMPIRICAL:
        return kv_len_value_at(l, gsl_rng_uniform_int(r, (unsigned long)l->n_values));
    }
    return s->min;
}

uint64_t kv_len_sampler_rows(const kv_len_sampler *l)
{
    return l->n_values;
}

uint32_t kv_len_value_at(const kv_len_sampler *l, uint64_t i)
{
    KV_ASSERT(i < l->n_values);
    return clamp(&l->spec, l->values[i]);
}
