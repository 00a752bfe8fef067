/* gen.c — synthetic request streams. See gen.h. */
#include "gen.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_roots.h>
#include <gsl/gsl_sf_gamma.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "heap.h"
#include "vec.h"
#include "lengths.h"

/* ------------------------------------------------------------------------------------------ */

#define KV_PI 3.14159265358979323846

/* A session turn waiting for its time. */
typedef struct turn {
    double t_s;   /* wall-clock arrival */
    uint64_t seq; /* scheduling order: breaks ties */
    uint64_t session_id;
    uint32_t group;      /* system prompt group + 1; 0 = none */
    uint64_t history;    /* tokens of earlier turns (system prompt included) */
    uint32_t turns_left; /* after this one */
} turn;

struct kv_gen {
    kv_workload_spec spec;
    gsl_rng *rng;
    gsl_root_fsolver *root;
    kv_len_sampler *prompt, *output;
    bool paired; /* prompt and output drawn from the same row of one file */
    uint32_t fields;

    /* base arrivals, in operational time */
    double tau;       /* last operational arrival */
    double onoff_pos; /* position inside the on/off cycle */
    kv_trace *trace;  /* process = trace */
    double trace_factor, trace_offset, trace_span, trace_gap;
    int64_t trace_last_us;
    bool next_base_ready;
    double next_base_t; /* wall time of the next base arrival */
    uint64_t next_base_seq;

    /* sessions */
    kv_heap turns; /* of turn, by turn_before */
    uint64_t seq, n_sessions;

    /* output */
    uint64_t emitted, uid;
    int64_t last_us; /* arrivals never go backwards, even by a rounding microsecond */
    uint64_t *hashes;
    size_t hashes_cap;
};

/* ------------------------------------------------------------------------------ hashing --- */

/* A content id for block `index` of kind (1 group, 2 session, 3 request) and owner id:
 * mix64(mix64(mix64(kind) ^ owner) ^ index), the values generated traces have always had. */
static uint64_t content_id(uint64_t kind, uint64_t owner, uint64_t index)
{
    return kv_hash_mix64(kv_hash_combine(kind, owner) ^ index);
}

/* ---------------------------------------------------------------------------- the heap --- */

static bool turn_before(const turn *a, const turn *b)
{
    return a->t_s < b->t_s || (a->t_s == b->t_s && a->seq < b->seq);
}

static bool turn_less(const void *a, const void *b, void *ctx)
{
    (void)ctx;
    return turn_before(a, b);
}

/* ------------------------------------------------------------------------ arrivals --- */

typedef struct diurnal {
    double a, period, phase, target;
} diurnal;

static double cumulative_rate(double t, void *p)
{
    const diurnal *d = p;
    double w = 2 * KV_PI / d->period;
    return t + d->a / w * (cos(w * d->phase) - cos(w * (t + d->phase))) - d->target;
}

/* Wall time whose cumulative modulated rate equals operational time tau. */
static double to_wall(kv_gen *g, double tau)
{
    const kv_workload_spec *s = &g->spec;
    double a = s->arrival.diurnal_amplitude;
    if (a == 0)
        return tau;
    diurnal d = {a, s->arrival.diurnal_period_s, s->arrival.diurnal_phase_s, tau};
    double span = a * s->arrival.diurnal_period_s / KV_PI; /* |L(t) - t| <= A P / pi */
    double lo = tau - span - 1, hi = tau + span + 1;
    if (lo < 0)
        lo = 0;
    gsl_function f = {cumulative_rate, &d};
    if (cumulative_rate(lo, &d) >= 0)
        return lo;
    gsl_root_fsolver_set(g->root, &f, lo, hi);
    double x = lo;
    for (int it = 0; it < 200; it++) {
        gsl_root_fsolver_iterate(g->root);
        x = gsl_root_fsolver_root(g->root);
        double l = gsl_root_fsolver_x_lower(g->root), u = gsl_root_fsolver_x_upper(g->root);
        if (gsl_root_test_interval(l, u, 1e-9, 1e-12) == GSL_SUCCESS)
            break;
    }
    return x;
}

/* The next operational-time gap of the on/off process: a unit-rate exponential walked through
 * the piecewise-constant rate (on: rate x burst, off: what keeps the mean). */
static double onoff_gap(kv_gen *g)
{
    const kv_workload_spec *s = &g->spec;
    double on = s->arrival.on_s, off = s->arrival.off_s, cycle = on + off;
    double r_on = s->arrival.rate_per_s * s->arrival.burst_factor;
    double r_off = (s->arrival.rate_per_s * cycle - r_on * on) / off;
    if (r_off < 0)
        r_off = 0;
    double e = gsl_ran_exponential(g->rng, 1.0), gap = 0;
    for (;;) {
        bool in_on = g->onoff_pos < on;
        double left = in_on ? on - g->onoff_pos : cycle - g->onoff_pos;
        double rate = in_on ? r_on : r_off;
        if (rate * left >= e) {
            double dt = e / rate;
            g->onoff_pos += dt;
            return gap + dt;
        }
        e -= rate * left;
        gap += left;
        g->onoff_pos += left;
        if (g->onoff_pos >= cycle)
            g->onoff_pos -= cycle;
    }
}

static kv_status trace_open(kv_gen *g, kv_err *err)
{
    kv_trace_close(&g->trace);
    return kv_trace_open(g->spec.arrival.trace, NULL, &g->trace, err);
}

/* The next base arrival in operational time. */
static kv_status next_tau(kv_gen *g, double *tau, kv_err *err)
{
    const kv_workload_spec *s = &g->spec;
    double rate = s->arrival.rate_per_s, gap = 0;
    switch (s->arrival.kind) {
    case KV_ARRIVAL_POISSON: gap = gsl_ran_exponential(g->rng, 1.0 / rate); break;
    case KV_ARRIVAL_GAMMA: {
        double k = 1.0 / (s->arrival.cv * s->arrival.cv);
        gap = gsl_ran_gamma(g->rng, k, 1.0 / (rate * k));
        break;
    }
    case KV_ARRIVAL_WEIBULL: {
        double k = s->arrival.weibull_shape;
        gap = gsl_ran_weibull(g->rng, 1.0 / (rate * gsl_sf_gamma(1.0 + 1.0 / k)), k);
        break;
    }
    case KV_ARRIVAL_ONOFF: gap = onoff_gap(g); break;
    case KV_ARRIVAL_TRACE: {
        kv_request r;
        kv_status st = kv_trace_next(g->trace, &r, err);
        if (st == KV_EOF) { /* replay the trace again after one mean gap */
            g->trace_offset += g->trace_span + g->trace_gap;
            if ((st = trace_open(g, err)) == KV_OK)
                st = kv_trace_next(g->trace, &r, err);
        }
        if (st != KV_OK)
            return st;
        *tau = (g->trace_offset + (double)r.t_arrival_us / 1e6) * g->trace_factor;
        return KV_OK;
    }
    }
    *tau = g->tau + gap;
    return KV_OK;
}

/* Scan the arrival trace once for its rows and span, to scale it to the target rate. */
static kv_status trace_prepare(kv_gen *g, kv_err *err)
{
    kv_status st = trace_open(g, err);
    uint64_t rows = 0;
    int64_t first = 0, last = 0;
    kv_request r;
    while (st == KV_OK && (st = kv_trace_next(g->trace, &r, err)) == KV_OK) {
        if (rows++ == 0)
            first = r.t_arrival_us;
        last = r.t_arrival_us;
    }
    if (st != KV_EOF)
        return st;
    if (rows < 2 || last == first)
        return kv_errorf(err, KV_ERR_INPUT,
                         "%s: [arrival] trace %s needs two or more distinct arrival times",
                         g->spec.path, g->spec.arrival.trace);
    g->trace_span = (double)(last - first) / 1e6;
    g->trace_gap = g->trace_span / (double)(rows - 1);
    g->trace_factor = (1.0 / g->spec.arrival.rate_per_s) / g->trace_gap;
    g->trace_offset = -(double)first / 1e6;
    return trace_open(g, err);
}

/* ------------------------------------------------------------------------ requests --- */

/* Fill the prefix hashes of a prompt of `prompt` tokens. */
static kv_status fill_hashes(kv_gen *g, kv_request *r, uint32_t group, uint64_t session,
                             uint64_t shared_tokens, kv_err *err)
{
    uint32_t bt = g->spec.prefix.block_tokens;
    size_t n = ((size_t)r->prompt_tokens + bt - 1) / bt;
    if (!kv_vec_reserve(&g->hashes, &g->hashes_cap, n, sizeof *g->hashes, 64))
        return kv_errorf(err, KV_ERR_NOMEM, "generator: out of memory");
    uint64_t uid = ++g->uid;
    for (size_t i = 0; i < n; i++) {
        uint64_t end = (uint64_t)(i + 1) * bt;
        if (group && end <= g->spec.prefix.tokens)
            g->hashes[i] = content_id(1, group, i);
        else if (session && end <= shared_tokens)
            g->hashes[i] = content_id(2, session, i);
        else
            g->hashes[i] = content_id(3, uid, i);
    }
    r->prefix_block_tokens = bt;
    r->n_prefix_hashes = (uint32_t)n;
    r->prefix_hashes = g->hashes;
    return KV_OK;
}

static void draw_lengths(kv_gen *g, uint32_t *prompt, uint32_t *output)
{
    if (g->paired) {
        uint64_t i = gsl_rng_uniform_int(g->rng, (unsigned long)kv_len_sampler_rows(g->prompt));
        *prompt = kv_len_value_at(g->prompt, i);
        *output = kv_len_value_at(g->output, i);
        return;
    }
    *prompt = kv_len_sample(g->prompt, g->rng);
    *output = kv_len_sample(g->output, g->rng);
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_gen_create(const kv_workload_spec *spec, uint64_t seed, kv_gen **out, kv_err *err)
{
    *out = NULL;
    kv_status st = kv_spec_validate(spec, err);
    if (st != KV_OK)
        return st;
    kv_gen *g = calloc(1, sizeof *g);
    if (g == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "generator: out of memory");
    g->spec = *spec;
    kv_heap_init(&g->turns, sizeof(turn), turn_less, NULL);
    g->rng = gsl_rng_alloc(gsl_rng_mt19937);
    g->root = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
    if (g->rng == NULL || g->root == NULL) {
        kv_gen_destroy(&g);
        return kv_errorf(err, KV_ERR_NOMEM, "generator: out of memory");
    }
    gsl_rng_set(g->rng, (unsigned long)seed);
    st = kv_len_sampler_create(&spec->prompt_tokens, "prompt", &g->prompt, err);
    if (st == KV_OK)
        st = kv_len_sampler_create(&spec->output_tokens, "output", &g->output, err);
    if (st == KV_OK && spec->arrival.kind == KV_ARRIVAL_TRACE)
        st = trace_prepare(g, err);
    if (st != KV_OK) {
        kv_gen_destroy(&g);
        return st;
    }
    g->paired = spec->prompt_tokens.kind == KV_LEN_EMPIRICAL &&
                spec->output_tokens.kind == KV_LEN_EMPIRICAL &&
                strcmp(spec->prompt_tokens.file, spec->output_tokens.file) == 0 &&
                kv_len_sampler_rows(g->prompt) == kv_len_sampler_rows(g->output);
    if (spec->sessions.turns_mean >= 1)
        g->fields |= KV_FIELD_SESSION | KV_FIELD_PREFIX;
    if (spec->prefix.groups > 0)
        g->fields |= KV_FIELD_PREFIX;
    if (spec->sampling.n > 1)
        g->fields |= KV_FIELD_N;
    if (spec->sampling.beam_width > 1)
        g->fields |= KV_FIELD_BEAM;
    *out = g;
    return KV_OK;
}

void kv_gen_destroy(kv_gen **gp)
{
    kv_gen *g = gp ? *gp : NULL;
    if (g == NULL)
        return;
    if (g->rng)
        gsl_rng_free(g->rng);
    if (g->root)
        gsl_root_fsolver_free(g->root);
    kv_len_sampler_destroy(&g->prompt);
    kv_len_sampler_destroy(&g->output);
    kv_trace_close(&g->trace);
    kv_heap_fini(&g->turns);
    free(g->hashes);
    free(g);
    *gp = NULL;
}

uint32_t kv_gen_fields(const kv_gen *g)
{
    return g->fields;
}

kv_status kv_gen_next(kv_gen *g, kv_request *out, kv_err *err)
{
    const kv_workload_spec *s = &g->spec;
    if (s->requests > 0 && g->emitted >= s->requests)
        return KV_EOF;
    if (!g->next_base_ready) {
        double tau;
        kv_status st = next_tau(g, &tau, err);
        if (st != KV_OK)
            return st;
        g->tau = tau;
        g->next_base_t = to_wall(g, tau);
        g->next_base_seq = g->seq++;
        g->next_base_ready = true;
    }
    turn base = {.t_s = g->next_base_t, .seq = g->next_base_seq};
    bool sessions = s->sessions.turns_mean >= 1;
    turn cur;
    if (sessions && g->turns.len > 0 && turn_before(kv_heap_top(&g->turns), &base)) {
        kv_heap_pop(&g->turns, &cur);
    } else {
        g->next_base_ready = false;
        cur = base;
        if (s->prefix.groups > 0)
            cur.group = 1 + (uint32_t)gsl_rng_uniform_int(g->rng, s->prefix.groups);
        cur.history = cur.group ? s->prefix.tokens : 0;
        if (sessions) {
            cur.session_id = ++g->n_sessions;
            cur.turns_left = gsl_ran_geometric(g->rng, 1.0 / s->sessions.turns_mean) - 1;
        }
    }
    if (s->duration_s > 0 && cur.t_s >= s->duration_s)
        return KV_EOF;

    uint32_t fresh, output;
    draw_lengths(g, &fresh, &output);
    if (fresh == 0 && cur.history == 0)
        fresh = 1; /* a request has at least one prompt token */
    uint64_t prompt = cur.history + fresh;
    if (prompt > UINT32_MAX)
        prompt = UINT32_MAX;
    int64_t t_us = (int64_t)llround(cur.t_s * 1e6);
    if (t_us < g->last_us)
        t_us = g->last_us;
    g->last_us = t_us;
    *out = (kv_request){.t_arrival_us = t_us,
                        .prompt_tokens = (uint32_t)prompt,
                        .output_tokens = output,
                        .n_samples = s->sampling.n,
                        .beam_width = s->sampling.beam_width,
                        .session_id = cur.session_id};
    if (g->fields & KV_FIELD_PREFIX) {
        kv_status st = fill_hashes(g, out, cur.group, cur.session_id, prompt, err);
        if (st != KV_OK)
            return st;
    }
    if (sessions && cur.turns_left > 0) {
        turn next = cur;
        next.t_s =
            cur.t_s +
            (s->sessions.think_s > 0 ? gsl_ran_exponential(g->rng, s->sessions.think_s) : 0.0);
        next.seq = g->seq++;
        next.history = prompt + output;
        next.turns_left--;
        if (!kv_heap_push(&g->turns, &next))
            return kv_errorf(err, KV_ERR_NOMEM, "generator: out of memory");
    }
    g->emitted++;
    return KV_OK;
}
