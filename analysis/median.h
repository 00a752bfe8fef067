/* median.h — the one median of kvsim: of a sample of doubles, for host C and for kvgpu's .cu
 * files (include it inside extern "C" { }; it declares only C types).
 *
 * Definition: the element at index n / 2 of the sample sorted ascending — the upper median
 * for an even n, never an average of two samples — the definition kvgpu's bench, calibrate
 * and validate reports have always used, so they keep their numbers. NaN for an empty sample.
 *
 * Algorithm: qsort of the caller's array (n log n); samples here are repeats of one
 * measurement (5 to a few thousand), where selection would save nothing measurable.
 */
#ifndef KV_MEDIAN_H
#define KV_MEDIAN_H

#include <stddef.h>

/* The median of v[0..n) as defined above; NaN when n == 0. Sorts v in place (the caller's
 * array is reordered: pass a copy to keep the order). Precondition: no NaN in v. */
double kv_median(double *v, size_t n);

#endif
