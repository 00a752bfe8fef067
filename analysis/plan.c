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

kv_status kv_plan_fewest(unsigned max_n, kv_feasible_fn feasible, void *ctx,
                         kv_fewest_result *out, kv_err *err)
{
    KV_ASSERT(max_n >= 1);
    *out = (kv_fewest_result){0};
    unsigned fail = 0, pass = 0; /* the bracket: fail < answer <= pass */
    for (unsigned n = 1;; n = n > max_n / 2 ? max_n : 2 * n) {
        bool ok = false;
        kv_status st = feasible(ctx, n, &ok, err);
        out->evaluations++;
        if (st != KV_OK)
            return st;
        if (ok) {
            pass = n;
            break;
        }
        fail = n;
        if (n == max_n)
            return KV_OK; /* not found */
    }
    while (pass - fail > 1) {
        unsigned m = fail + (pass - fail) / 2;
        bool ok = false;
        kv_status st = feasible(ctx, m, &ok, err);
        out->evaluations++;
        if (st != KV_OK)
            return st;
        *(ok ? &pass : &fail) = m;
    }
    out->best = pass;
    out->found = true;
    return KV_OK;
}
