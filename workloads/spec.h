/* spec.h — a synthetic workload, as a named INI file in workloads/ describes it.
 *
 * Sections and keys (units in the names; see workloads/README.md for the full reference):
 *   [workload]  name; requests, duration_s (either or both; a duration alone lifts the
 *               default of 1000 requests)
 *   [arrival]   process = poisson | gamma | weibull | onoff | trace;  rate_per_s; cv (gamma);
 *               weibull_shape; on_s, off_s, burst_factor (onoff); trace (a trace whose arrivals
 *               are rescaled to rate_per_s); diurnal_amplitude (0..1), diurnal_period_s,
 *               diurnal_phase_s (a sinusoidal modulation of the rate, applied to any process)
 *   [prompt], [output]  dist = fixed | uniform | lognormal | zipf | empirical;  value (fixed);
 *               min, max (uniform; bounds for all); mu, sigma (lognormal, of ln tokens);
 *               zipf_s (zipf, P(k) ~ k^-s on [min, max]); file, column (empirical: a trace and
 *               prompt_tokens/output_tokens, or any CSV with a header and that column)
 *   [prefix]    groups, tokens (G system prompts of P tokens, one per request drawn
 *               uniformly), block_tokens (the block size of the prefix hashes written)
 *   [sessions]  turns_mean (multi-turn sessions with a geometric number of turns; each turn's
 *               prompt holds every earlier turn), think_s (mean gap between turns)
 *   [sampling]  n (parallel samples), beam_width
 * A session's first turn arrives by the arrival process; the sampled prompt length is the new
 * user text of each turn.
 */
#ifndef KV_SPEC_H
#define KV_SPEC_H

#include <stdint.h>

#include "status.h"

typedef enum kv_arrival_kind {
    KV_ARRIVAL_POISSON,
    KV_ARRIVAL_GAMMA,
    KV_ARRIVAL_WEIBULL,
    KV_ARRIVAL_ONOFF,
    KV_ARRIVAL_TRACE,
} kv_arrival_kind;

typedef enum kv_len_kind {
    KV_LEN_FIXED,
    KV_LEN_UNIFORM,
    KV_LEN_LOGNORMAL,
    KV_LEN_ZIPF,
    KV_LEN_EMPIRICAL,
} kv_len_kind;

enum { KV_SPEC_PATH = 512, KV_SPEC_NAME = 64 };

typedef struct kv_len_spec {
    kv_len_kind kind;
    uint32_t value;    /* fixed */
    uint32_t min, max; /* uniform range; clamp for every kind */
    double mu, sigma;  /* lognormal: of ln(tokens) */
    double zipf_s;     /* zipf exponent */
    char file[KV_SPEC_PATH];
    char column[KV_SPEC_NAME];
} kv_len_spec;

typedef struct kv_workload_spec {
    char name[KV_SPEC_NAME];
    char path[KV_SPEC_PATH]; /* the INI file it came from, for messages */
    uint64_t requests;       /* stop after this many (0 = unset) */
    double duration_s;       /* or at this arrival time (0 = unset) */
    struct {
        kv_arrival_kind kind;
        double rate_per_s;
        double cv;
        double weibull_shape;
        double on_s, off_s, burst_factor;
        char trace[KV_SPEC_PATH];
        double diurnal_amplitude, diurnal_period_s, diurnal_phase_s;
    } arrival;
    kv_len_spec prompt_tokens, output_tokens; /* [prompt], [output] */
    struct {
        uint32_t groups, tokens, block_tokens;
    } prefix;
    struct {
        double turns_mean, think_s;
    } sessions;
    struct {
        uint32_t n, beam_width;
    } sampling;
} kv_workload_spec;

/* Defaults: 1000 Poisson requests at 1/s, prompts and outputs fixed at 128, 16-token hash
 * blocks, no prefixes, no sessions, n = beam_width = 1. */
void kv_spec_default(kv_workload_spec *s);

/* Load path over the defaults. KV_OK, KV_ERR_IO, or KV_ERR_INPUT with "path:line: [section]
 * key: expected ..., got ..." in err. Relative file names inside resolve against the working
 * directory. */
kv_status kv_spec_load(const char *path, kv_workload_spec *s, kv_err *err);

/* Check consistency (rates > 0, min <= max, ...). KV_OK or KV_ERR_INPUT. */
kv_status kv_spec_validate(const kv_workload_spec *s, kv_err *err);

const char *kv_arrival_kind_name(kv_arrival_kind k);
const char *kv_len_kind_name(kv_len_kind k);

#endif
