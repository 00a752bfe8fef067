/* lengths.h — token-length distributions for synthetic workloads, on GSL random generators.
 *
 *   fixed      always `value`;
 *   uniform    an integer uniform on [min, max];
 *   lognormal  round(exp(N(mu, sigma^2))), clamped to [min, max];
 *   zipf       P(k) proportional to k^-s on [max(min, 1), max], by Walker's alias method
 *              (gsl_ran_discrete);
 *   empirical  a value drawn uniformly from a column: prompt_tokens / output_tokens of any trace
 *              kvsim reads, or a named column of any CSV with a header (e.g. ShareGPT's
 *              num_prefill_tokens in workloads/data/sharegpt_lengths_llama2.csv).
 * Every draw is clamped to [min, max].
 */
#ifndef KV_LENGTHS_H
#define KV_LENGTHS_H

#include <gsl/gsl_rng.h>
#include <stdint.h>

#include "spec.h"
#include "status.h"

typedef struct kv_len_sampler kv_len_sampler;

/* Build a sampler; loads an empirical column now. section names it in messages. KV_OK,
 * KV_ERR_IO or KV_ERR_INPUT ("file:line: column 'x': ..."). */
kv_status kv_len_sampler_create(const kv_len_spec *spec, const char *section, kv_len_sampler **out,
                                kv_err *err);
void kv_len_sampler_destroy(kv_len_sampler **l);

uint32_t kv_len_sample(const kv_len_sampler *l, gsl_rng *r);

/* Empirical samplers: the number of values, and value i clamped (for paired draws of prompt and
 * output from the same row). */
uint64_t kv_len_sampler_rows(const kv_len_sampler *l);
uint32_t kv_len_value_at(const kv_len_sampler *l, uint64_t i);

#endif
