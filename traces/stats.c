/* stats.c — streaming trace statistics. See stats.h. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "vec.h"

/* ------------------------------------------------------------------------------------------ */

typedef struct histogram {
    uint64_t *count; /* count[v] = rows with value v */
    size_t cap;
    uint64_t n;
    double sum;
    uint64_t max;
} histogram;

struct kv_trace_stats {
    histogram prompt, output;
    uint64_t rows, n_samples;
    int64_t first_us, last_us;
    uint64_t *set; /* open-addressing set of seen prefix hashes; 0 marks empty (hash+1 stored) */
    uint64_t set_cap, set_n;
    uint64_t refs, repeats;
};

/* ------------------------------------------------------------------------------------------ */

static bool hist_add(histogram *h, uint64_t v)
{
    if (v == UINT64_MAX ||
        !kv_vec_reserve_zeroed(&h->count, &h->cap, (size_t)v + 1, sizeof *h->count, 4096))
        return false;
    h->count[v]++;
    h->n++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
    return true;
}

/* Nearest-rank quantile: smallest v with at least ceil(p * n) values <= v. */
static uint64_t hist_quantile(const histogram *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)h->n);
    if ((double)rank < p * (double)h->n)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (uint64_t v = 0; v <= h->max; v++) {
        seen += h->count[v];
        if (seen >= rank)
            return v;
    }
    return h->max;
}

static kv_len_summary hist_summary(const histogram *h)
{
    kv_len_summary s = {0};
    if (h->n == 0)
        return s;
    s.min = hist_quantile(h, 0.0);
    s.median = hist_quantile(h, 0.5);
    s.p99 = hist_quantile(h, 0.99);
    s.max = h->max;
    s.mean = h->sum / (double)h->n;
    return s;
}

/* Insert key; returns 1 if it was new, 0 if present, -1 out of memory. */
static int set_insert(kv_trace_stats *s, uint64_t key)
{
    if (2 * (s->set_n + 1) > s->set_cap) {
        uint64_t cap = s->set_cap ? s->set_cap * 2 : 1 << 16;
        uint64_t *n = calloc(cap, sizeof *n);
        if (n == NULL)
            return -1;
        for (uint64_t i = 0; i < s->set_cap; i++) {
            if (s->set[i] == 0)
                continue;
            uint64_t j = kv_hash_mix64(s->set[i] - 1) & (cap - 1);
            while (n[j] != 0)
                j = (j + 1) & (cap - 1);
            n[j] = s->set[i];
        }
        free(s->set);
        s->set = n;
        s->set_cap = cap;
    }
    uint64_t j = kv_hash_mix64(key) & (s->set_cap - 1);
    while (s->set[j] != 0) {
        if (s->set[j] == key + 1)
            return 0;
        j = (j + 1) & (s->set_cap - 1);
    }
    s->set[j] = key + 1;
    s->set_n++;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_trace_stats_create(kv_trace_stats **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? KV_OK : KV_ERR_NOMEM;
}

void kv_trace_stats_destroy(kv_trace_stats **sp)
{
    kv_trace_stats *s = sp ? *sp : NULL;
    if (s == NULL)
        return;
    free(s->prompt.count);
    free(s->output.count);
    free(s->set);
    free(s);
    *sp = NULL;
}

kv_status kv_trace_stats_add(kv_trace_stats *s, const kv_request *r)
{
    if (s->rows == 0)
        s->first_us = r->t_arrival_us;
    s->last_us = r->t_arrival_us;
    s->rows++;
    s->n_samples += r->n_samples;
    if (!hist_add(&s->prompt, r->prompt_tokens) || !hist_add(&s->output, r->output_tokens))
        return KV_ERR_NOMEM;
    for (uint32_t i = 0; i < r->n_prefix_hashes; i++) {
        /* a hash of UINT64_MAX would collide with the empty marker after +1: fold it */
        uint64_t h = r->prefix_hashes[i] == UINT64_MAX ? UINT64_MAX - 1 : r->prefix_hashes[i];
        int fresh = set_insert(s, h);
        if (fresh < 0)
            return KV_ERR_NOMEM;
        s->refs++;
        s->repeats += fresh == 0;
    }
    return KV_OK;
}

void kv_trace_stats_summary(const kv_trace_stats *s, kv_trace_summary *out)
{
    *out = (kv_trace_summary){.rows = s->rows,
                              .n_samples_total = s->n_samples,
                              .prefix_refs = s->refs,
                              .prefix_repeats = s->repeats};
    out->span_s = s->rows ? (double)(s->last_us - s->first_us) / 1e6 : 0.0;
    out->rate_per_s = out->span_s > 0 ? (double)s->rows / out->span_s : 0.0;
    out->prompt_tokens = hist_summary(&s->prompt);
    out->output_tokens = hist_summary(&s->output);
}
