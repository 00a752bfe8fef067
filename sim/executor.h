/* executor.h — where the engine gets time from.
 *
 * The engine describes each iteration (a batch of prefill chunks and decode tokens, plus the
 * swaps and chunk maps the allocator forced) and asks an executor how long it took. kvsim's
 * executor is the cost model (costmodel.h); kvgpu's runs the step on a GPU and returns the
 * measured time. The engine never knows which.
 */
#ifndef KV_EXECUTOR_H
#define KV_EXECUTOR_H

#include <stdint.h>

/* A sequence computing in a step: tokens [first, first + n) get their KV written and attend
 * to every token before them (a prefill chunk, or one decode token). */
typedef struct kv_step_seq {
    uint32_t seq; /* the allocator's sequence id */
    uint32_t first, n;
} kv_step_seq;

/* One iteration's work. Context = tokens already in the KV cache before this step. */
typedef struct kv_step_work {
    uint32_t n_prefill;          /* sequences with a prefill chunk this step */
    uint64_t prefill_tokens;     /* tokens computed in those chunks */
    double prefill_attn_tokens2; /* sum over chunks of c x (context + c / 2): attention pairs */
    uint32_t n_decode;           /* sequences decoding one token */
    uint64_t decode_context;     /* sum of their contexts (tokens read from KV) */
    uint64_t swap_out_bytes, swap_out_copies;
    uint64_t swap_in_bytes, swap_in_copies;
    uint64_t n_maps, n_unmaps; /* chunk-pool map / unmap calls */
    uint64_t copy_bytes;       /* device-to-device copies (moves, CoW, fork copies) */
    /* with kv_engine_config.step_detail (kvgpu), the computing sequences; else NULL */
    const kv_step_seq *seqs;
    uint32_t n_seqs;
} kv_step_work;

typedef struct kv_step_time {
    double compute_s; /* the forward pass */
    double swap_s;    /* host <-> device copies */
    double map_s;     /* chunk map / unmap calls */
    double total_s;
} kv_step_time;

typedef struct kv_executor {
    void *ctx;
    /* The time of one iteration. */
    kv_step_time (*step)(void *ctx, const kv_step_work *w);
} kv_executor;

#endif
