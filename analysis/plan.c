/* plan.c — geometric bisection for capacity planning. See plan.h. */
#include "plan.h"

#include <math.h>

/* ------------------------------------------------------------------------------------------ */

kv_status kv_plan_bisect(double lo, double hi, double rel_tol, kv_feasible_fn feasible, void *ctx,
                         kv_bisect_result *out, kv_err *err)
{
    KV_ASSERT(lo > 0 && hi > lo && rel_tol > 0);
    *out = (kv_bisect_result){0};
    bool ok = false;
    kv_status st = feasible(ctx, lo, &ok, err);
    out->evaluations++;
    if (st != KV_OK)
        return st;
    if (!ok) {
        out->below_lo = true;
        out->infeasible = lo;
        return KV_OK;
    }
    if ((st = feasible(ctx, hi, &ok, err)) != KV_OK)
        return st;
    out->evaluations++;
    if (ok) {
        out->at_hi = true;
        out->best = hi;
        return KV_OK;
    }
    double a = lo, b = hi;
    while (b / a > 1 + rel_tol) {
        double m = sqrt(a * b);
        if ((st = feasible(ctx, m, &ok, err)) != KV_OK)
            return st;
        out->evaluations++;
        if (ok)
            a = m;
        else
            b = m;
    }
    out->best = a;
    out->infeasible = b;
    return KV_OK;
}
