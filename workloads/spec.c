/* spec.c — loading and checking workload specs (inih). See spec.h. */
#include "spec.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inifile.h"

/* ------------------------------------------------------------------------------------------ */

static const char *const arrival_names[] = {"poisson", "gamma", "weibull", "onoff", "trace"};
static const char *const len_names[] = {"fixed", "uniform", "lognormal", "zipf", "empirical"};

#define N_OF(x) (sizeof(x) / sizeof((x)[0]))

/* The spec being loaded, and where the key handler at hand says what is wrong (the loader's
 * buffer; kv_inifile_load adds the line). */
typedef struct load_ctx {
    kv_workload_spec *s;
    bool requests_set, duration_set;
    char *why;
    size_t why_bytes;
} load_ctx;

/* ------------------------------------------------------------------------------------------ */

const char *kv_arrival_kind_name(kv_arrival_kind k)
{
    return (unsigned)k < N_OF(arrival_names) ? arrival_names[k] : "?";
}

const char *kv_len_kind_name(kv_len_kind k)
{
    return (unsigned)k < N_OF(len_names) ? len_names[k] : "?";
}

void kv_spec_default(kv_workload_spec *s)
{
    *s = (kv_workload_spec){0};
    snprintf(s->name, sizeof s->name, "unnamed");
    s->requests = 1000;
    s->arrival.kind = KV_ARRIVAL_POISSON;
    s->arrival.rate_per_s = 1.0;
    s->arrival.cv = 1.0;
    s->arrival.weibull_shape = 1.0;
    s->arrival.on_s = 10;
    s->arrival.off_s = 10;
    s->arrival.burst_factor = 1.5;
    s->arrival.diurnal_period_s = 86400;
    kv_len_spec l = {.kind = KV_LEN_FIXED,
                     .value = 128,
                     .min = 1,
                     .max = 1u << 20,
                     .mu = log(128),
                     .sigma = 1.0,
                     .zipf_s = 1.1};
    s->prompt_tokens = l;
    s->output_tokens = l;
    s->prefix.block_tokens = 16;
    s->sampling.n = 1;
    s->sampling.beam_width = 1;
}

static bool set_double(load_ctx *c, const char *key, const char *v, double lo, double hi,
                       double *out)
{
    if (kv_inifile_number(v, lo, hi, out))
        return true;
    snprintf(c->why, c->why_bytes, "%s: expected a number in [%g, %g], got \"%s\"", key, lo, hi, v);
    return false;
}

static bool set_u64(load_ctx *c, const char *key, const char *v, uint64_t lo, uint64_t hi,
                    uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long u = strtoull(v, &end, 10);
    if (*v == '\0' || *v == '-' || *end != '\0' || errno != 0 || u < lo || u > hi) {
        snprintf(c->why, c->why_bytes, "%s: expected an integer in %llu..%llu, got \"%s\"", key,
                 (unsigned long long)lo, (unsigned long long)hi, v);
        return false;
    }
    *out = u;
    return true;
}

static bool set_u32(load_ctx *c, const char *key, const char *v, uint32_t lo, uint32_t hi,
                    uint32_t *out)
{
    uint64_t u;
    if (!set_u64(c, key, v, lo, hi, &u))
        return false;
    *out = (uint32_t)u;
    return true;
}

static bool set_str(load_ctx *c, const char *key, const char *v, char *out, size_t cap)
{
    if (strlen(v) >= cap || v[0] == '\0') {
        snprintf(c->why, c->why_bytes, "%s: expected a non-empty value of < %zu bytes", key, cap);
        return false;
    }
    memcpy(out, v, strlen(v) + 1);
    return true;
}

static bool set_enum(load_ctx *c, const char *key, const char *v, const char *const *names,
                     size_t n, int *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v, names[i]) == 0) {
            *out = (int)i;
            return true;
        }
    }
    int len = snprintf(c->why, c->why_bytes, "%s: expected one of", key);
    for (size_t i = 0; i < n && len > 0 && (size_t)len < c->why_bytes; i++)
        len += snprintf(c->why + len, c->why_bytes - (size_t)len, "%s %s", i ? "," : "", names[i]);
    if (len > 0 && (size_t)len < c->why_bytes)
        snprintf(c->why + len, c->why_bytes - (size_t)len, ", got \"%s\"", v);
    return false;
}

static bool len_key(load_ctx *c, kv_len_spec *l, const char *k, const char *v)
{
    int e = 0;
    if (strcmp(k, "dist") == 0) {
        if (!set_enum(c, k, v, len_names, N_OF(len_names), &e))
            return false;
        l->kind = (kv_len_kind)e;
        return true;
    }
    if (strcmp(k, "value") == 0)
        return set_u32(c, k, v, 1, 1u << 24, &l->value);
    if (strcmp(k, "min") == 0)
        return set_u32(c, k, v, 0, 1u << 24, &l->min);
    if (strcmp(k, "max") == 0)
        return set_u32(c, k, v, 0, 1u << 24, &l->max);
    if (strcmp(k, "mu") == 0)
        return set_double(c, k, v, -10, 20, &l->mu);
    if (strcmp(k, "sigma") == 0)
        return set_double(c, k, v, 0, 10, &l->sigma);
    if (strcmp(k, "zipf_s") == 0)
        return set_double(c, k, v, 0.01, 10, &l->zipf_s);
    if (strcmp(k, "file") == 0)
        return set_str(c, k, v, l->file, sizeof l->file);
    if (strcmp(k, "column") == 0)
        return set_str(c, k, v, l->column, sizeof l->column);
    snprintf(c->why, c->why_bytes,
             "unknown key '%s' (dist, value, min, max, mu, sigma, zipf_s, file, column)", k);
    return false;
}

static bool on_key(void *ctx, const char *section, const char *k, const char *v, char *why,
                   size_t why_bytes)
{
    load_ctx *c = ctx;
    kv_workload_spec *s = c->s;
    c->why = why;
    c->why_bytes = why_bytes;
    char key[160];
    snprintf(key, sizeof key, "[%s] %s", section, k);
    int e = 0;
    bool ok = false;
    if (strcmp(section, "workload") == 0) {
        if (strcmp(k, "name") == 0)
            ok = set_str(c, key, v, s->name, sizeof s->name);
        else if (strcmp(k, "requests") == 0)
            ok = c->requests_set = set_u64(c, key, v, 0, UINT64_C(1) << 40, &s->requests);
        else if (strcmp(k, "duration_s") == 0)
            ok = c->duration_set = set_double(c, key, v, 0, 1e9, &s->duration_s);
        else
            snprintf(c->why, c->why_bytes, "%s: unknown key (name, requests, duration_s)", key);
    } else if (strcmp(section, "arrival") == 0) {
        if (strcmp(k, "process") == 0) {
            ok = set_enum(c, key, v, arrival_names, N_OF(arrival_names), &e);
            s->arrival.kind = (kv_arrival_kind)e;
        } else if (strcmp(k, "rate_per_s") == 0) {
            ok = set_double(c, key, v, 1e-9, 1e9, &s->arrival.rate_per_s);
        } else if (strcmp(k, "cv") == 0) {
            ok = set_double(c, key, v, 0.01, 100, &s->arrival.cv);
        } else if (strcmp(k, "weibull_shape") == 0) {
            ok = set_double(c, key, v, 0.05, 100, &s->arrival.weibull_shape);
        } else if (strcmp(k, "on_s") == 0) {
            ok = set_double(c, key, v, 1e-6, 1e9, &s->arrival.on_s);
        } else if (strcmp(k, "off_s") == 0) {
            ok = set_double(c, key, v, 1e-6, 1e9, &s->arrival.off_s);
        } else if (strcmp(k, "burst_factor") == 0) {
            ok = set_double(c, key, v, 1, 1e6, &s->arrival.burst_factor);
        } else if (strcmp(k, "trace") == 0) {
            ok = set_str(c, key, v, s->arrival.trace, sizeof s->arrival.trace);
        } else if (strcmp(k, "diurnal_amplitude") == 0) {
            ok = set_double(c, key, v, 0, 1, &s->arrival.diurnal_amplitude);
        } else if (strcmp(k, "diurnal_period_s") == 0) {
            ok = set_double(c, key, v, 1e-3, 1e9, &s->arrival.diurnal_period_s);
        } else if (strcmp(k, "diurnal_phase_s") == 0) {
            ok = set_double(c, key, v, -1e9, 1e9, &s->arrival.diurnal_phase_s);
        } else {
            snprintf(c->why, c->why_bytes,
                     "%s: unknown key (process, rate_per_s, cv, weibull_shape, on_s, off_s, "
                     "burst_factor, trace, diurnal_amplitude, diurnal_period_s, "
                     "diurnal_phase_s)",
                     key);
        }
    } else if (strcmp(section, "prompt") == 0 || strcmp(section, "output") == 0) {
        ok = len_key(c, section[0] == 'p' ? &s->prompt_tokens : &s->output_tokens, k, v);
        if (!ok) {
            char inner[KV_ERR_MSG_BYTES];
            snprintf(inner, sizeof inner, "%s", c->why);
            snprintf(c->why, c->why_bytes, "[%s] %.400s", section, inner);
        }
    } else if (strcmp(section, "prefix") == 0) {
        if (strcmp(k, "groups") == 0)
            ok = set_u32(c, key, v, 0, 1u << 20, &s->prefix.groups);
        else if (strcmp(k, "tokens") == 0)
            ok = set_u32(c, key, v, 0, 1u << 20, &s->prefix.tokens);
        else if (strcmp(k, "block_tokens") == 0)
            ok = set_u32(c, key, v, 1, 1u << 16, &s->prefix.block_tokens);
        else
            snprintf(c->why, c->why_bytes, "%s: unknown key (groups, tokens, block_tokens)", key);
    } else if (strcmp(section, "sessions") == 0) {
        if (strcmp(k, "turns_mean") == 0)
            ok = set_double(c, key, v, 0, 1e4, &s->sessions.turns_mean);
        else if (strcmp(k, "think_s") == 0)
            ok = set_double(c, key, v, 0, 1e7, &s->sessions.think_s);
        else
            snprintf(c->why, c->why_bytes, "%s: unknown key (turns_mean, think_s)", key);
    } else if (strcmp(section, "sampling") == 0) {
        if (strcmp(k, "n") == 0)
            ok = set_u32(c, key, v, 1, 1024, &s->sampling.n);
        else if (strcmp(k, "beam_width") == 0)
            ok = set_u32(c, key, v, 1, 1024, &s->sampling.beam_width);
        else
            snprintf(c->why, c->why_bytes, "%s: unknown key (n, beam_width)", key);
    } else {
        snprintf(c->why, c->why_bytes,
                 "unknown section [%s] (workload, arrival, prompt, output, prefix, sessions, "
                 "sampling)",
                 section);
    }
    return ok;
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_spec_load(const char *path, kv_workload_spec *s, kv_err *err)
{
    load_ctx c = {.s = s};
    snprintf(s->path, sizeof s->path, "%s", path);
    kv_status st = kv_inifile_load(path, on_key, &c, NULL, err);
    if (st != KV_OK)
        return st;
    if (c.duration_set && !c.requests_set) /* a duration alone decides when to stop */
        s->requests = 0;
    return kv_spec_validate(s, err);
}

static kv_status validate_len(const kv_workload_spec *s, const char *sec, const kv_len_spec *l,
                              bool allow_zero, kv_err *err)
{
    if (l->max < l->min)
        return kv_errorf(err, KV_ERR_INPUT, "%s: [%s] max %u is below min %u", s->path, sec, l->max,
                         l->min);
    if (!allow_zero && l->max == 0)
        return kv_errorf(err, KV_ERR_INPUT, "%s: [%s] max must be >= 1", s->path, sec);
    if (l->kind == KV_LEN_ZIPF && (uint64_t)l->max - l->min > (1u << 22))
        return kv_errorf(err, KV_ERR_INPUT, "%s: [%s] zipf range %u..%u is wider than 2^22",
                         s->path, sec, l->min, l->max);
    if (l->kind == KV_LEN_EMPIRICAL && (l->file[0] == '\0' || l->column[0] == '\0'))
        return kv_errorf(err, KV_ERR_INPUT, "%s: [%s] dist = empirical needs file and column",
                         s->path, sec);
    return KV_OK;
}

kv_status kv_spec_validate(const kv_workload_spec *s, kv_err *err)
{
    if (s->requests == 0 && s->duration_s <= 0)
        return kv_errorf(err, KV_ERR_INPUT, "%s: [workload] set requests or duration_s", s->path);
    if (s->arrival.kind == KV_ARRIVAL_TRACE && s->arrival.trace[0] == '\0')
        return kv_errorf(err, KV_ERR_INPUT, "%s: [arrival] process = trace needs trace = FILE",
                         s->path);
    if (s->arrival.kind == KV_ARRIVAL_ONOFF) {
        double cycle = s->arrival.on_s + s->arrival.off_s;
        if (s->arrival.burst_factor * s->arrival.on_s > cycle)
            return kv_errorf(err, KV_ERR_INPUT,
                             "%s: [arrival] burst_factor %g too large: at most (on_s + off_s) / "
                             "on_s = %g keeps the mean rate",
                             s->path, s->arrival.burst_factor, cycle / s->arrival.on_s);
    }
    kv_status st = validate_len(s, "prompt", &s->prompt_tokens, false, err);
    if (st == KV_OK)
        st = validate_len(s, "output", &s->output_tokens, true, err);
    if (st != KV_OK)
        return st;
    if (s->prefix.groups > 0 && s->prefix.tokens == 0)
        return kv_errorf(err, KV_ERR_INPUT, "%s: [prefix] groups set but tokens is 0", s->path);
    if (s->sessions.turns_mean != 0 && s->sessions.turns_mean < 1)
        return kv_errorf(err, KV_ERR_INPUT, "%s: [sessions] turns_mean must be 0 (off) or >= 1",
                         s->path);
    return KV_OK;
}
