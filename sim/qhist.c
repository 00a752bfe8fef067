/* qhist.c — log-bucketed streaming quantiles. See qhist.h. */
#include "qhist.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */

#define QH_MIN   1e-7
#define QH_MAX   1e6
#define QH_RATIO 1.001

static uint32_t bucket_of(double x)
{
    if (!(x > QH_MIN))
        return 0;
    return 1 + (uint32_t)(log(x / QH_MIN) / log(QH_RATIO));
}

/* The value a bucket stands for: its geometric middle (bucket 0: zero and tiny values). */
static double value_of(const kv_qhist *h, uint32_t b)
{
    if (b == 0)
        return h->min < QH_MIN ? h->min : 0.0;
    double v = QH_MIN * pow(QH_RATIO, (double)b - 0.5);
    return v < h->min ? h->min : (v > h->max ? h->max : v);
}

/* Value at 1-based rank k. */
static double at_rank(const kv_qhist *h, uint64_t k)
{
    uint64_t seen = 0;
    for (uint32_t b = 0; b < h->n_buckets; b++) {
        seen += h->count[b];
        if (seen >= k)
            return value_of(h, b);
    }
    return h->max;
}

/* ------------------------------------------------------------------------------------------ */

int kv_qhist_init(kv_qhist *h)
{
    *h = (kv_qhist){.n_buckets = bucket_of(QH_MAX) + 2, .min = INFINITY, .max = -INFINITY};
    h->count = calloc(h->n_buckets, sizeof *h->count);
    return h->count ? 0 : -1;
}

void kv_qhist_fini(kv_qhist *h)
{
    free(h->count);
    h->count = NULL;
}

void kv_qhist_add(kv_qhist *h, double x)
{
    uint32_t b = bucket_of(x);
    if (b >= h->n_buckets)
        b = h->n_buckets - 1;
    h->count[b]++;
    h->n++;
    h->sum += x;
    if (x < h->min)
        h->min = x;
    if (x > h->max)
        h->max = x;
}

double kv_qhist_quantile(const kv_qhist *h, double p)
{
    if (h->n == 0)
        return NAN;
    double r = ceil(p * (double)h->n);
    return at_rank(h, r < 1 ? 1 : (uint64_t)r);
}

void kv_qhist_ci(const kv_qhist *h, double p, double level, double *lo, double *hi)
{
    if (h->n == 0) {
        *lo = *hi = NAN;
        return;
    }
    double n = (double)h->n, z = gsl_cdf_ugaussian_Pinv(0.5 + level / 2);
    double half = z * sqrt(n * p * (1 - p));
    double rl = floor(n * p - half), rh = ceil(n * p + half) + 1;
    *lo = at_rank(h, rl < 1 ? 1 : (uint64_t)rl);
    *hi = at_rank(h, rh > n ? (uint64_t)n : (uint64_t)rh);
}
