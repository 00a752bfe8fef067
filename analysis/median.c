/* median.c — the one median. See median.h. */
#include "median.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    if (isnan(a) || isnan(b))
        return isnan(a) - isnan(b); /* NaN last, so that finite values keep their order */
    return (a > b) - (a < b);
}

/* ------------------------------------------------------------------------------------------ */

double kv_median(const double *v, size_t n)
{
    if (n == 0)
        return NAN;
    double *s = malloc(n * sizeof *s);
    if (s == NULL)
        return NAN;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double m = s[n / 2];
    free(s);
    return m;
}
