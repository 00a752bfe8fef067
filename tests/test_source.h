/* test_source.h — hand-written requests for the engine tests: a request at a time, a source over
 * a fixed array of them, and an executor whose every step takes a fixed time. */
#ifndef KV_TEST_SOURCE_H
#define KV_TEST_SOURCE_H

#include "engine.h"

/* One sample, arriving at t_s seconds. */
static inline kv_request t_req(double t_s, uint32_t prompt, uint32_t output)
{
    return (kv_request){.t_arrival_us = (int64_t)(t_s * 1e6),
                        .prompt_tokens = prompt,
                        .output_tokens = output,
                        .n_samples = 1,
                        .beam_width = 1};
}

/* A source over a fixed array of requests: (kv_source){&src, t_list_next}. */
typedef struct t_list_src {
    const kv_request *r;
    size_t n, i;
} t_list_src;

static inline kv_status t_list_next(void *ctx, kv_request *out, kv_err *err)
{
    (void)err;
    t_list_src *s = ctx;
    if (s->i == s->n)
        return KV_EOF;
    *out = s->r[s->i++];
    return KV_OK;
}

/* An executor whose every step takes *(const double *)ctx seconds. */
static inline kv_step_time t_fixed_step(void *ctx, const kv_step_work *w)
{
    (void)w;
    double s = *(const double *)ctx;
    return (kv_step_time){.compute_s = s, .total_s = s};
}

#endif
