/* calib.c — the cost model fitted to measured steps and swaps. See calib.h.
 *
 * The step fit is GSL's trust-region nonlinear least squares (Levenberg-Marquardt by default)
 * with a finite-difference Jacobian, 200 iterations at most, tolerances 1e-10: the settings
 * `kvgpu calibrate` used when it made results/gpu/h100/calibration (tests/test_calib.c refits
 * that file's measurements and gets its coefficients back). Bounds are kept by clamping
 * inside the residual function, so past a bound a parameter's residuals are flat: GSL stops
 * there and the clamped value is the bound itself, which is what at_bound reports.
 */
#include "calib.h"

#include <errno.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_vector.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "median.h"

/* ------------------------------------------------------------------------------------------ */

#define EFF_MIN   1e-3
#define EFF_MAX   1.0
#define BOUND_TOL 1e-6 /* in each parameter's own unit: an efficiency, ms, us */
#define FIT_TOL   1e-10
enum { FIT_MAX_ITER = 200, STEP_PARAMS = 3 };

/* ------------------------------------------------------------------------------------------ */

typedef struct step_rec {
    kv_calib_step s;
    kv_step_work work; /* the cost model's view of the step */
    double pred_s;     /* the latest prediction (NAN before any) */
} step_rec;

struct kv_calib {
    kv_costmodel start;
    step_rec *steps;
    size_t n_steps, cap_steps;
    kv_calib_swap *swaps;
    size_t n_swaps, cap_swaps;
    double map_s, unmap_s;
    uint64_t maps, unmaps;
};

static const char *const PHASE_NAMES[KV_CALIB_N_PHASES] = {"decode", "prefill", "mixed"};

static const char *const PARAM_NAMES[KV_CALIB_N_PARAMS] = {
    "eff_memory",         "eff_compute", "step_overhead_ms", "copy_latency_out_us",
    "copy_latency_in_us", "d2h_gbps",    "h2d_gbps"};

/* ------------------------------------------------------------------------------------------ */

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (q == NULL)
        return false;
    *p = q;
    *cap = n;
    return true;
}

/* Step parameters from the solver's vector, held in their bounds. */
static void set_step_params(kv_gpu *g, const gsl_vector *x)
{
    g->eff_memory = fmin(EFF_MAX, fmax(EFF_MIN, gsl_vector_get(x, 0)));
    g->eff_compute = fmin(EFF_MAX, fmax(EFF_MIN, gsl_vector_get(x, 1)));
    g->step_overhead_ms = fmax(0.0, gsl_vector_get(x, 2));
}

static int step_residuals(const gsl_vector *x, void *data, gsl_vector *f)
{
    const kv_calib *c = data;
    kv_costmodel cm = c->start;
    set_step_params(&cm.gpu, x);
    for (size_t i = 0; i < c->n_steps; i++) {
        double pred = kv_costmodel_step(&cm, &c->steps[i].work).compute_s;
        gsl_vector_set(f, i, (pred - c->steps[i].s.measured_s) / c->steps[i].s.measured_s);
    }
    return GSL_SUCCESS;
}

/* Append one line to fit->bound_msg. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
bound_say(kv_calib_fit *fit, const char *fmt, ...)
{
    size_t used = strlen(fit->bound_msg);
    if (used + 1 >= sizeof fit->bound_msg)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fit->bound_msg + used, sizeof fit->bound_msg - used, fmt, ap);
    va_end(ap);
}

static void flag_bound(kv_calib_fit *fit, kv_calib_param p, double value, const char *side,
                       double bound, const char *why)
{
    fit->at_bound[p] = true;
    bound_say(fit, "%s = %g is at its %s bound %g: %s\n", PARAM_NAMES[p], value, side, bound, why);
}

static kv_status fit_steps(kv_calib *c, kv_calib_fit *fit, kv_err *err)
{
    if (c->n_steps < STEP_PARAMS)
        return kv_errorf(err, KV_ERR_INPUT,
                         "calibrate: %zu steps measured; the step fit needs at least %d",
                         c->n_steps, STEP_PARAMS);
    gsl_multifit_nlinear_fdf fdf = {.f = step_residuals,
                                    .df = NULL,
                                    .fvv = NULL,
                                    .n = c->n_steps,
                                    .p = STEP_PARAMS,
                                    .params = c};
    gsl_multifit_nlinear_parameters fp = gsl_multifit_nlinear_default_parameters();
    gsl_error_handler_t *old = gsl_set_error_handler_off(); /* statuses, not abort() */
    gsl_multifit_nlinear_workspace *w =
        gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &fp, c->n_steps, STEP_PARAMS);
    gsl_vector *x = gsl_vector_alloc(STEP_PARAMS);
    if (w == NULL || x == NULL) {
        gsl_multifit_nlinear_free(w);
        gsl_vector_free(x);
        gsl_set_error_handler(old);
        return kv_errorf(err, KV_ERR_NOMEM, "calibrate: the step fit's workspace");
    }
    gsl_vector_set(x, 0, c->start.gpu.eff_memory);
    gsl_vector_set(x, 1, c->start.gpu.eff_compute);
    gsl_vector_set(x, 2, c->start.gpu.step_overhead_ms);
    int info = 0, status = gsl_multifit_nlinear_init(x, &fdf, w);
    if (status == GSL_SUCCESS)
        status = gsl_multifit_nlinear_driver(FIT_MAX_ITER, FIT_TOL, FIT_TOL, FIT_TOL, NULL, NULL,
                                             &info, w);
    double raw[STEP_PARAMS];
    for (int k = 0; k < STEP_PARAMS; k++)
        raw[k] = gsl_vector_get(w->x, k);
    set_step_params(&fit->gpu, w->x);
    fit->iterations = gsl_multifit_nlinear_niter(w);
    fit->gsl_status = status;
    gsl_multifit_nlinear_free(w);
    gsl_vector_free(x);
    gsl_set_error_handler(old);
    if (status != GSL_SUCCESS && status != GSL_EMAXITER)
        return kv_errorf(err, KV_ERR_INPUT, "calibrate: the step fit failed (GSL: %s)",
                         gsl_strerror(status));

    const char *why = "the fit pushed it there, so it is a limit, not a measurement; the other "
                      "coefficients absorbed the rest (see the per-phase errors)";
    const double lo[STEP_PARAMS] = {EFF_MIN, EFF_MIN, 0.0};
    const double hi[STEP_PARAMS] = {EFF_MAX, EFF_MAX, INFINITY};
    for (int k = 0; k < STEP_PARAMS; k++) {
        if (raw[k] <= lo[k] + BOUND_TOL)
            flag_bound(fit, (kv_calib_param)k, fmax(lo[k], raw[k]), "lower", lo[k], why);
        else if (raw[k] >= hi[k] - BOUND_TOL)
            flag_bound(fit, (kv_calib_param)k, fmin(hi[k], raw[k]), "upper", hi[k], why);
    }
    return KV_OK;
}

/* t = latency x copies + bytes / bandwidth for one direction, weighted 1 / t^2 (relative
 * error, as the targets are stated). *lat_s clamped at >= 0; *gbps as fitted. */
static kv_status fit_swap_dir(const kv_calib *c, bool out, double *lat_s, double *gbps,
                              double *inv_bw_s_per_byte, kv_err *err)
{
    size_t n = 0;
    for (size_t k = 0; k < c->n_swaps; k++)
        n += c->swaps[k].out == out;
    if (n < 2)
        return kv_errorf(err, KV_ERR_INPUT,
                         "calibrate: %zu swaps %s measured; the swap fit needs at least 2 per "
                         "direction",
                         n, out ? "out" : "in");
    gsl_matrix *X = gsl_matrix_alloc(n, 2), *cov = gsl_matrix_alloc(2, 2);
    gsl_vector *y = gsl_vector_alloc(n), *wt = gsl_vector_alloc(n), *coef = gsl_vector_alloc(2);
    gsl_multifit_linear_workspace *w = gsl_multifit_linear_alloc(n, 2);
    kv_status st = KV_OK;
    if (!X || !cov || !y || !wt || !coef || !w) {
        st = kv_errorf(err, KV_ERR_NOMEM, "calibrate: the swap fit's workspace");
    } else {
        size_t i = 0;
        for (size_t k = 0; k < c->n_swaps; k++) {
            const kv_calib_swap *s = &c->swaps[k];
            if (s->out != out)
                continue;
            gsl_matrix_set(X, i, 0, (double)s->copies);
            gsl_matrix_set(X, i, 1, (double)s->bytes);
            gsl_vector_set(y, i, s->measured_s);
            gsl_vector_set(wt, i, 1.0 / (s->measured_s * s->measured_s));
            i++;
        }
        double chisq;
        gsl_error_handler_t *old = gsl_set_error_handler_off();
        int status = gsl_multifit_wlinear(X, wt, y, coef, cov, &chisq, w);
        gsl_set_error_handler(old);
        if (status != GSL_SUCCESS) {
            st = kv_errorf(err, KV_ERR_INPUT, "calibrate: the swap fit (%s) failed (GSL: %s)",
                           out ? "out" : "in", gsl_strerror(status));
        } else {
            *lat_s = gsl_vector_get(coef, 0);
            *inv_bw_s_per_byte = gsl_vector_get(coef, 1);
            *gbps = 1.0 / *inv_bw_s_per_byte / 1e9;
        }
    }
    gsl_multifit_linear_free(w);
    gsl_matrix_free(X);
    gsl_matrix_free(cov);
    gsl_vector_free(y);
    gsl_vector_free(wt);
    gsl_vector_free(coef);
    return st;
}

static kv_status fit_swaps(const kv_calib *c, kv_calib_fit *fit, kv_err *err)
{
    fit->n_swaps = c->n_swaps;
    fit->copy_latency_out_us = fit->copy_latency_in_us = fit->gpu.copy_latency_us;
    fit->median_abs_pct_err_swaps = NAN;
    if (c->n_swaps == 0)
        return KV_OK;
    double lat_s[2], gbps[2], inv_bw[2];
    kv_status st = KV_OK;
    for (int dir = 0; dir < 2 && st == KV_OK; dir++) /* 0: out, 1: in */
        st = fit_swap_dir(c, dir == 0, &lat_s[dir], &gbps[dir], &inv_bw[dir], err);
    if (st != KV_OK)
        return st;
    const char *why_lat = "swap time did not grow with the number of copies; the latency is a "
                          "limit, not a measurement";
    const char *why_bw = "swap time did not grow with bytes, so no bandwidth could be fitted";
    for (int dir = 0; dir < 2; dir++) {
        kv_calib_param pl = dir == 0 ? KV_CALIB_COPY_LATENCY_OUT_US : KV_CALIB_COPY_LATENCY_IN_US;
        kv_calib_param pb = dir == 0 ? KV_CALIB_D2H_GBPS : KV_CALIB_H2D_GBPS;
        if (lat_s[dir] * 1e6 <= BOUND_TOL)
            flag_bound(fit, pl, 0.0, "lower", 0.0, why_lat);
        lat_s[dir] = fmax(0.0, lat_s[dir]);
        if (!(inv_bw[dir] > 0) || !isfinite(gbps[dir]))
            flag_bound(fit, pb, gbps[dir], "lower", 0.0, why_bw);
    }
    fit->copy_latency_out_us = lat_s[0] * 1e6;
    fit->copy_latency_in_us = lat_s[1] * 1e6;
    fit->gpu.copy_latency_us = (lat_s[0] + lat_s[1]) / 2 * 1e6;
    fit->gpu.d2h_gbps = gbps[0];
    fit->gpu.h2d_gbps = gbps[1];
    double *e = malloc(c->n_swaps * sizeof *e);
    if (e == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "calibrate: swap errors");
    for (size_t k = 0; k < c->n_swaps; k++) {
        double pred = kv_calib_swap_predicted_s(fit, &c->swaps[k]);
        e[k] = fabs(pred - c->swaps[k].measured_s) / c->swaps[k].measured_s * 100;
    }
    fit->median_abs_pct_err_swaps = kv_median(e, c->n_swaps);
    free(e);
    return KV_OK;
}

static double r2(const kv_calib *c)
{
    double mean = 0, ss_tot = 0, ss_res = 0;
    for (size_t i = 0; i < c->n_steps; i++)
        mean += c->steps[i].s.measured_s / (double)c->n_steps;
    for (size_t i = 0; i < c->n_steps; i++) {
        double m = c->steps[i].s.measured_s, p = c->steps[i].pred_s;
        ss_tot += (m - mean) * (m - mean);
        ss_res += (m - p) * (m - p);
    }
    return c->n_steps ? 1 - ss_res / ss_tot : NAN;
}

/* Median |error| % of the steps of one phase, or of all (phase < 0). */
static double med_abs_pct(const kv_calib *c, int phase, size_t *count)
{
    size_t n = 0;
    double *e = malloc((c->n_steps ? c->n_steps : 1) * sizeof *e);
    if (e == NULL) {
        *count = 0;
        return NAN;
    }
    for (size_t i = 0; i < c->n_steps; i++)
        if (phase < 0 || (int)c->steps[i].s.phase == phase)
            e[n++] = fabs(c->steps[i].pred_s - c->steps[i].s.measured_s) /
                     c->steps[i].s.measured_s * 100;
    double m = kv_median(e, n);
    free(e);
    *count = n;
    return m;
}

static kv_status parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno)
        return KV_ERR_INPUT;
    *out = v;
    return KV_OK;
}

static kv_status parse_double(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno || !isfinite(v))
        return KV_ERR_INPUT;
    *out = v;
    return KV_OK;
}

/* One data row of FILE.csv, split in place at commas: region and six numbers. */
static kv_status load_row(kv_calib *c, char *line, const char *path, size_t lineno, kv_err *err)
{
    char *f[8];
    int n = 0;
    for (char *p = line; n < 8;) {
        f[n++] = p;
        char *comma = strchr(p, ',');
        if (comma == NULL)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    if (n != 7)
        return kv_errorf(err, KV_ERR_INPUT, "%s:%zu: expected 7 columns, got %d", path, lineno, n);
    uint64_t u[4];
    double measured_ms;
    for (int k = 0; k < 4; k++)
        if (parse_u64(f[1 + k], &u[k]) != KV_OK)
            return kv_errorf(err, KV_ERR_INPUT, "%s:%zu: column %d: expected a count, got \"%s\"",
                             path, lineno, 2 + k, f[1 + k]);
    if (parse_double(f[5], &measured_ms) != KV_OK)
        return kv_errorf(err, KV_ERR_INPUT, "%s:%zu: measured_ms: expected a number, got \"%s\"",
                         path, lineno, f[5]);
    if (strcmp(f[0], "swap-out") == 0 || strcmp(f[0], "swap-in") == 0) {
        kv_calib_swap s = {strcmp(f[0], "swap-out") == 0, u[0], u[1], measured_ms * 1e-3};
        kv_err e = {{0}};
        kv_status st = kv_calib_add_swap(c, &s, &e);
        return st == KV_OK ? KV_OK : kv_errorf(err, st, "%s:%zu: %s", path, lineno, e.msg);
    }
    for (int p = 0; p < KV_CALIB_N_PHASES; p++) {
        if (strcmp(f[0], PHASE_NAMES[p]) != 0)
            continue;
        for (int k = 0; k < 4; k++)
            if (u[k] > UINT32_MAX)
                return kv_errorf(err, KV_ERR_INPUT, "%s:%zu: column %d: %" PRIu64 " is too large",
                                 path, lineno, 2 + k, u[k]);
        kv_calib_step s = {(kv_calib_phase)p, (uint32_t)u[0], (uint32_t)u[1],
                           (uint32_t)u[2],    (uint32_t)u[3], measured_ms * 1e-3};
        kv_err e = {{0}};
        kv_status st = kv_calib_add_step(c, &s, &e);
        return st == KV_OK ? KV_OK : kv_errorf(err, st, "%s:%zu: %s", path, lineno, e.msg);
    }
    return kv_errorf(err, KV_ERR_INPUT,
                     "%s:%zu: region \"%s\": expected decode, prefill, mixed, swap-out or swap-in",
                     path, lineno, f[0]);
}

/* ------------------------------------------------------------------------------------------ */

const char *kv_calib_phase_name(kv_calib_phase p)
{
    return (unsigned)p < KV_CALIB_N_PHASES ? PHASE_NAMES[p] : "?";
}

const char *kv_calib_param_name(kv_calib_param p)
{
    return (unsigned)p < KV_CALIB_N_PARAMS ? PARAM_NAMES[p] : "?";
}

kv_step_work kv_calib_step_work(const kv_calib_step *s)
{
    kv_step_work w = {0};
    w.n_decode = s->batch;
    w.decode_context = (uint64_t)s->batch * ((uint64_t)s->context_tokens + 1);
    w.n_prefill = s->chunk_tokens > 0;
    w.prefill_tokens = s->chunk_tokens;
    w.prefill_attn_tokens2 =
        (double)s->chunk_tokens * (s->chunk_context_tokens + s->chunk_tokens / 2.0);
    return w;
}

kv_status kv_calib_create(const kv_costmodel *start, kv_calib **out, kv_err *err)
{
    kv_calib *c = calloc(1, sizeof *c);
    if (c == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "calibrate: out of memory");
    c->start = *start;
    *out = c;
    return KV_OK;
}

void kv_calib_destroy(kv_calib **pc)
{
    if (pc == NULL || *pc == NULL)
        return;
    kv_calib *c = *pc;
    free(c->steps);
    free(c->swaps);
    free(c);
    *pc = NULL;
}

kv_status kv_calib_add_step(kv_calib *c, const kv_calib_step *s, kv_err *err)
{
    if (!(s->measured_s > 0) || !isfinite(s->measured_s))
        return kv_errorf(err, KV_ERR_INPUT, "calibrate: a step's measured time %g s is not > 0",
                         s->measured_s);
    if ((unsigned)s->phase >= KV_CALIB_N_PHASES || (s->batch == 0 && s->chunk_tokens == 0))
        return kv_errorf(err, KV_ERR_INPUT, "calibrate: a step with no phase or no work");
    if (!grow((void **)&c->steps, &c->cap_steps, c->n_steps + 1, sizeof *c->steps))
        return kv_errorf(err, KV_ERR_NOMEM, "calibrate: out of memory for steps");
    c->steps[c->n_steps++] = (step_rec){*s, kv_calib_step_work(s), NAN};
    return KV_OK;
}

kv_status kv_calib_add_swap(kv_calib *c, const kv_calib_swap *s, kv_err *err)
{
    if (!(s->measured_s > 0) || !isfinite(s->measured_s) || s->bytes == 0)
        return kv_errorf(err, KV_ERR_INPUT,
                         "calibrate: a swap of %" PRIu64 " bytes measured %g s: expected bytes "
                         "and a time > 0",
                         s->bytes, s->measured_s);
    if (!grow((void **)&c->swaps, &c->cap_swaps, c->n_swaps + 1, sizeof *c->swaps))
        return kv_errorf(err, KV_ERR_NOMEM, "calibrate: out of memory for swaps");
    c->swaps[c->n_swaps++] = *s;
    return KV_OK;
}

void kv_calib_set_maps(kv_calib *c, double map_s, uint64_t maps, double unmap_s, uint64_t unmaps)
{
    c->map_s = map_s;
    c->maps = maps;
    c->unmap_s = unmap_s;
    c->unmaps = unmaps;
}

size_t kv_calib_n_steps(const kv_calib *c)
{
    return c->n_steps;
}

size_t kv_calib_n_swaps(const kv_calib *c)
{
    return c->n_swaps;
}

kv_status kv_calib_load_csv(kv_calib *c, const char *path, kv_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return kv_errorf(err, KV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    kv_status st = KV_OK;
    while (st == KV_OK && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || (lineno == 1 && strncmp(line, "region,", 7) == 0))
            continue;
        st = load_row(c, line, path, lineno, err);
    }
    if (st == KV_OK && ferror(f))
        st = kv_errorf(err, KV_ERR_IO, "%s: read error", path);
    free(line);
    fclose(f);
    return st;
}

void kv_calib_evaluate(kv_calib *c, const kv_costmodel *cm, kv_calib_fit *fit)
{
    for (size_t i = 0; i < c->n_steps; i++)
        c->steps[i].pred_s = kv_costmodel_step((void *)cm, &c->steps[i].work).compute_s;
    fit->n_steps = c->n_steps;
    fit->r2_steps = r2(c);
    fit->median_abs_pct_err_all = med_abs_pct(c, -1, &fit->n_steps);
    for (int p = 0; p < KV_CALIB_N_PHASES; p++)
        fit->median_abs_pct_err_phase[p] = med_abs_pct(c, p, &fit->n_phase_steps[p]);
}

kv_status kv_calib_fit_all(kv_calib *c, kv_calib_fit *fit, kv_err *err)
{
    memset(fit, 0, sizeof *fit);
    fit->gpu = c->start.gpu;
    kv_status st = fit_steps(c, fit, err);
    if (st != KV_OK)
        return st;
    kv_costmodel cm = c->start;
    cm.gpu.eff_memory = fit->gpu.eff_memory;
    cm.gpu.eff_compute = fit->gpu.eff_compute;
    cm.gpu.step_overhead_ms = fit->gpu.step_overhead_ms;
    kv_calib_evaluate(c, &cm, fit);
    if ((st = fit_swaps(c, fit, err)) != KV_OK)
        return st;
    if (c->maps > 0)
        fit->gpu.map_us = c->map_s / (double)c->maps * 1e6;
    if (c->unmaps > 0)
        fit->gpu.unmap_us = c->unmap_s / (double)c->unmaps * 1e6;
    return KV_OK;
}

double kv_calib_swap_predicted_s(const kv_calib_fit *fit, const kv_calib_swap *s)
{
    return (double)s->copies * fit->gpu.copy_latency_us * 1e-6 +
           (double)s->bytes / ((s->out ? fit->gpu.d2h_gbps : fit->gpu.h2d_gbps) * 1e9);
}

kv_status kv_calib_write(const kv_calib *c, const kv_calib_fit *fit, const kv_calib_info *info,
                         const char *path, kv_err *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return kv_errorf(err, KV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    const kv_gpu *g = &fit->gpu;
    fprintf(f,
            "# kvgpu calibrate --model %s --gpu %s%s: measured on %s; kvsim --calib reads\n"
            "# [calibration]; [fit] says how well the cost model fits the measured steps.\n"
            "[calibration]\n"
            "eff_memory = %.6f\neff_compute = %.6f\nstep_overhead_ms = %.6f\n"
            "copy_latency_us = %.4f\nd2h_gbps = %.4f\nh2d_gbps = %.4f\n"
            "map_us = %.3f\nunmap_us = %.3f\n\n[fit]\n"
            "steps = %zu\nr2_steps = %.5f\nmedian_abs_pct_err_all = %.3f\n"
            "median_abs_pct_err_decode = %.3f\nmedian_abs_pct_err_prefill = %.3f\n"
            "median_abs_pct_err_mixed = %.3f\nswaps = %zu\nmedian_abs_pct_err_swaps = %.3f\n"
            "copy_latency_out_us = %.4f\ncopy_latency_in_us = %.4f\nlayers_run = %u\n"
            "layers = %u\n",
            info->model, info->gpu, info->layers_arg ? " --layers K" : "", info->device,
            g->eff_memory, g->eff_compute, g->step_overhead_ms, g->copy_latency_us, g->d2h_gbps,
            g->h2d_gbps, g->map_us, g->unmap_us, fit->n_steps, fit->r2_steps,
            fit->median_abs_pct_err_all, fit->median_abs_pct_err_phase[KV_CALIB_DECODE],
            fit->median_abs_pct_err_phase[KV_CALIB_PREFILL],
            fit->median_abs_pct_err_phase[KV_CALIB_MIXED], fit->n_swaps,
            fit->median_abs_pct_err_swaps, fit->copy_latency_out_us, fit->copy_latency_in_us,
            info->layers_run, info->layers);
    /* a parameter at its bound: one comment line each, ignored by the INI reader */
    for (const char *m = fit->bound_msg; *m;) {
        const char *nl = strchr(m, '\n');
        int len = nl ? (int)(nl - m) : (int)strlen(m);
        fprintf(f, "# at a bound: %.*s\n", len, m);
        m += len + (nl != NULL);
    }
    bool ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok)
        return kv_errorf(err, KV_ERR_IO, "%s: write error", path);

    size_t n = strlen(path) + 5;
    char *csv = malloc(n);
    if (csv == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "calibrate: out of memory");
    snprintf(csv, n, "%s.csv", path);
    if ((f = fopen(csv, "w")) == NULL) {
        kv_status st = kv_errorf(err, KV_ERR_IO, "%s: cannot create: %s", csv, strerror(errno));
        free(csv);
        return st;
    }
    fprintf(f, "region,batch,context,chunk,chunk_context,measured_ms,predicted_ms\n");
    for (size_t i = 0; i < c->n_steps; i++) {
        const kv_calib_step *s = &c->steps[i].s;
        fprintf(f, "%s,%u,%u,%u,%u,%.6f,%.6f\n", PHASE_NAMES[s->phase], s->batch, s->context_tokens,
                s->chunk_tokens, s->chunk_context_tokens, s->measured_s * 1e3,
                c->steps[i].pred_s * 1e3);
    }
    for (size_t k = 0; k < c->n_swaps; k++) {
        const kv_calib_swap *s = &c->swaps[k];
        fprintf(f, "swap-%s,%" PRIu64 ",%" PRIu64 ",0,0,%.6f,%.6f\n", s->out ? "out" : "in",
                s->copies, s->bytes, s->measured_s * 1e3, kv_calib_swap_predicted_s(fit, s) * 1e3);
    }
    ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    kv_status st = ok ? KV_OK : kv_errorf(err, KV_ERR_IO, "%s: write error", csv);
    free(csv);
    return st;
}

void kv_calib_print_summary(FILE *f, const kv_calib_fit *fit, const char *path)
{
    const kv_gpu *g = &fit->gpu;
    fprintf(f,
            "kvgpu calibrate: eff_memory %.3f, eff_compute %.3f, step overhead %.3f ms; R^2 "
            "%.4f, median |error| %.2f%% (decode %.2f%%, prefill %.2f%%, mixed %.2f%%); swaps: "
            "%.2f us a copy, %.1f GB/s out, %.1f GB/s in (median |error| %.2f%%); maps %.1f us, "
            "unmaps %.1f us -> %s\n",
            g->eff_memory, g->eff_compute, g->step_overhead_ms, fit->r2_steps,
            fit->median_abs_pct_err_all, fit->median_abs_pct_err_phase[KV_CALIB_DECODE],
            fit->median_abs_pct_err_phase[KV_CALIB_PREFILL],
            fit->median_abs_pct_err_phase[KV_CALIB_MIXED], g->copy_latency_us, g->d2h_gbps,
            g->h2d_gbps, fit->median_abs_pct_err_swaps, g->map_us, g->unmap_us, path);
}
