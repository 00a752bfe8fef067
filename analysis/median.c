/* median.c — the median of a sample. See median.h. */
#include "median.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------------------------------ */

double kv_median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}
