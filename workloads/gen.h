/* gen.h — a synthetic request stream from a workload spec, deterministic for a seed.
 *
 * Arrivals: a renewal process in "operational time" at the spec's mean rate (Poisson:
 * exponential gaps; Gamma with a coefficient of variation; Weibull; on/off bursts, a piecewise
 * constant rate whose mean is the spec's; or a real trace's arrivals scaled to the rate), then
 * mapped to wall time through the inverse of the cumulative diurnal rate
 * L(t) = t + A P / 2pi (cos(2pi phase / P) - cos(2pi (t + phase) / P)), solved with GSL's Brent
 * root finder (Cinlar's time change: it turns any rate-1 process into one of rate m(t)).
 *
 * Requests: the prompt is the system prompt of a uniformly drawn group (if any) plus the
 * sampled prompt length; with sessions, each arrival opens a session of geometric(1/turns_mean)
 * turns, later turns following after exponential think times and holding every earlier turn's
 * prompt and output before their new text. Prefix hashes (one per block_tokens block of the
 * prompt, the last partial block included as Mooncake does) name content: a full block inside a
 * group's system prompt gets the group's id for that position, any other full block of a session
 * the session's id for that position, everything else ids no other request shares.
 *
 * All randomness comes from one gsl_rng (MT19937) seeded by the caller; turns due at the same
 * instant are ordered by when they were scheduled, so the output is byte-identical per seed.
 */
#ifndef KV_GEN_H
#define KV_GEN_H

#include <stdint.h>

#include "reader.h"
#include "spec.h"
#include "status.h"

typedef struct kv_gen kv_gen;

/* KV_OK, or an error loading an empirical length file or the arrival trace. */
kv_status kv_gen_create(const kv_workload_spec *spec, uint64_t seed, kv_gen **out, kv_err *err);
void kv_gen_destroy(kv_gen **g);

/* The next request in arrival order: KV_OK, KV_EOF once requests or duration_s is reached,
 * KV_ERR_* on a failure reading the arrival trace. prefix_hashes is borrowed until the next
 * call. */
kv_status kv_gen_next(kv_gen *g, kv_request *out, kv_err *err);

/* The optional native-format fields this stream fills (KV_FIELD_* bits). */
uint32_t kv_gen_fields(const kv_gen *g);

#endif
