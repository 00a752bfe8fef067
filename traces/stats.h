/* stats.h — streaming summary statistics of a request trace (`kvsim trace stats`).
 *
 * Token counts go into exact counting histograms, so quantiles are exact whatever the number of
 * rows, in memory proportional to the largest count, not to the rows. Quantiles use the
 * nearest-rank definition: the p-quantile is the smallest value v with at least ceil(p x rows)
 * rows <= v. Prefix reuse counts, over all prefix-hash references, those whose hash appeared
 * earlier in the trace: the hit rate of an unlimited prefix cache.
 */
#ifndef KV_TRACE_STATS_H
#define KV_TRACE_STATS_H

#include <stdint.h>

#include "reader.h"
#include "status.h"

typedef struct kv_trace_stats kv_trace_stats;

typedef struct kv_len_summary { /* of token counts, in tokens */
    uint64_t min, median, p99, max;
    double mean;
} kv_len_summary;

typedef struct kv_trace_summary {
    uint64_t rows;
    double span_s;     /* last arrival - first arrival */
    double rate_per_s; /* rows / span (0 when the span is 0) */
    kv_len_summary prompt_tokens, output_tokens;
    uint64_t n_samples_total; /* sum of parallel samples */
    uint64_t prefix_refs;     /* prefix-hash references */
    uint64_t prefix_repeats;  /* of those, repeats of an earlier hash */
} kv_trace_summary;

kv_status kv_trace_stats_create(kv_trace_stats **out);
void kv_trace_stats_destroy(kv_trace_stats **s);

/* Account one request. KV_OK or KV_ERR_NOMEM. */
kv_status kv_trace_stats_add(kv_trace_stats *s, const kv_request *r);

void kv_trace_stats_summary(const kv_trace_stats *s, kv_trace_summary *out);

#endif
