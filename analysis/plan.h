/* plan.h — capacity-planning search: the largest load a monotone "meets the SLO" test passes.
 *
 * kv_plan_bisect finds the largest x in [lo, hi] with feasible(x), assuming feasibility only
 * falls as x grows (a higher request rate never helps latency). It first checks the ends, then
 * halves the bracket geometrically (x = sqrt(a b): rates span orders of magnitude) until
 * b / a <= 1 + rel_tol. The answer a is feasible; b is not (unless hi itself passed). The
 * number of evaluations is about log2(log(hi/lo) / log(1 + rel_tol)) + 2.
 */
#ifndef KV_PLAN_H
#define KV_PLAN_H

#include <stdbool.h>

#include "status.h"

/* The test: KV_OK with *ok set, or an error that ends the search. */
typedef kv_status (*kv_feasible_fn)(void *ctx, double x, bool *ok, kv_err *err);

typedef struct kv_bisect_result {
    double best;       /* largest feasible x found; 0 when even lo failed */
    double infeasible; /* smallest infeasible x tried; 0 when hi passed */
    bool below_lo, at_hi;
    int evaluations;
} kv_bisect_result;

/* Precondition: 0 < lo < hi, rel_tol > 0. KV_OK or the test's error. */
kv_status kv_plan_bisect(double lo, double hi, double rel_tol, kv_feasible_fn feasible, void *ctx,
                         kv_bisect_result *out, kv_err *err);

/* kv_plan_fewest finds the smallest integer n in [1, max_n] with feasible(n), assuming
 * feasibility only rises with n (more replicas never hurt latency): it doubles n from 1 until
 * the test passes, then bisects between the last failure and the first pass. *found is false
 * (and *best 0) when even max_n fails. Evaluations: about 2 log2(answer) + 1. */
typedef struct kv_fewest_result {
    unsigned best;
    bool found;
    int evaluations;
} kv_fewest_result;

kv_status kv_plan_fewest(unsigned max_n, kv_feasible_fn feasible, void *ctx,
                         kv_fewest_result *out, kv_err *err);

#endif
