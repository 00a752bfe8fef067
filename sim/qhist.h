/* qhist.h — streaming quantiles in bounded memory: a log-bucketed histogram.
 *
 * Values in [1e-7, 1e6] (seconds, here) fall in buckets of relative width 0.1%, so a quantile
 * is within 0.05% of the exact order statistic, in about 30,000 counters whatever the number of
 * samples — the simulator's memory stays bounded by the running set, not the trace length.
 * Quantiles use the nearest-rank definition. A confidence interval for the p-quantile takes the
 * order statistics at ranks n p -+ z sqrt(n p (1 - p)) (the normal approximation to the binomial
 * distribution of the number of samples below the true quantile): distribution-free and
 * deterministic, no resampling.
 */
#ifndef KV_QHIST_H
#define KV_QHIST_H

#include <stdint.h>

typedef struct kv_qhist {
    uint64_t *count;
    uint32_t n_buckets;
    uint64_t n;
    double sum, min, max;
} kv_qhist;

int kv_qhist_init(kv_qhist *h); /* 0, or -1 out of memory */
void kv_qhist_fini(kv_qhist *h);
void kv_qhist_add(kv_qhist *h, double x);
double kv_qhist_quantile(const kv_qhist *h, double p); /* NAN when empty */
/* Two-sided interval at confidence `level` (e.g. 0.95). */
void kv_qhist_ci(const kv_qhist *h, double p, double level, double *lo, double *hi);

#endif
