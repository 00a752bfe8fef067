/* median.h — the one median, shared by kvgpu's calibration and validation reports.
 *
 * The median here is the element at index n / 2 of the sorted values: the upper of the two
 * middle values when n is even, never their mean. Every committed kvgpu figure
 * (results/gpu/h100/calibration and validation) was computed that way, and reproducing them
 * byte for byte is what the tests hold.
 */
#ifndef KV_MEDIAN_H
#define KV_MEDIAN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The median of v[0..n-1] as above; v is not modified (sorted in a heap copy). NAN when
 * n == 0, or when the copy cannot be allocated. NaN inputs sort last. */
double kv_median(const double *v, size_t n);

#ifdef __cplusplus
}
#endif

#endif
