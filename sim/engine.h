/* engine.h — iteration-level continuous batching over a KV allocator (vLLM's scheduler).
 *
 * Every iteration ("step"):
 *   1. requests whose arrival time has come join the waiting queue (FCFS by arrival);
 *   2. running requests that are decoding get one KV slot per sequence; when the pool cannot
 *      serve one, the latest-arrived running request is preempted (recompute: its KV is dropped
 *      and it waits to prefill prompt + generated tokens again; swap: its KV moves to the host
 *      tier, falling back to recompute when that is full), repeatedly, until the slot fits or
 *      the request itself was the victim. A request preempted max_preemptions times is never
 *      chosen again while another candidate exists, so no request can starve;
 *   3. with chunked prefill, running prefills continue in chunks; swapped requests come back
 *      (FCFS) when they fit; then waiting requests are admitted FCFS while max_num_seqs,
 *      max_num_batched_tokens and the allocator's can_admit (whole prompt, watermark) allow,
 *      stopping at the first that does not fit. No admission in a step that preempted.
 *      Without chunked prefill a step runs either whole-prompt prefills (preferred when nothing
 *      is swapped out) or decodes, as vLLM v0 does;
 *   4. the executor prices the step; the clock advances; prefills that completed produce their
 *      first token; decodes produce one token per sequence; finished requests free their KV.
 * Prefix-cache hits (paged, compressed) skip the prefill of the cached tokens. Parallel samples
 * (n, and beam width treated as n) share the prompt: the request is admitted as one sequence
 * and forked after its prefill; samples decode in lockstep. A request's KV at its end holds
 * prompt + output - 1 tokens (the last token is never fed back). Output 0 counts as 1.
 * Rejected, with a reason, and counted: a prompt at or beyond the model context, a prompt
 * above max_num_batched_tokens without chunked prefill, a request whose final length cannot
 * fit the whole pool. When nothing runs, the clock jumps to the next arrival.
 *
 * Fast path: when every running request is decoding, nothing is swapped out, the waiting head
 * cannot be admitted, and every sequence has room for more tokens without a new block, chunk or
 * extent, the following steps differ only in token counts until the next arrival, completion
 * or allocation boundary. The engine then prices those steps one by one (O(1) each: the same
 * executor call, the breakdown moved by exact integer deltas) and applies the appends in bulk
 * at the end. Its outputs are byte-identical to stepping (tests/test_engine.c checks it on every
 * bundled trace and strategy).
 */
#ifndef KV_ENGINE_H
#define KV_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"
#include "executor.h"
#include "reader.h"
#include "status.h"

typedef enum kv_preempt_mode { KV_PREEMPT_RECOMPUTE, KV_PREEMPT_SWAP } kv_preempt_mode;

typedef struct kv_engine_config {
    uint32_t max_num_seqs;           /* sequences running at once (vLLM default 256) */
    uint32_t max_num_batched_tokens; /* tokens per step (vLLM default with chunking 8192) */
    bool chunked_prefill;
    kv_preempt_mode preempt;
    uint32_t max_preemptions; /* per request, before it is spared */
    uint32_t max_model_len;   /* context limit: longer prompts are rejected, outputs capped */
    double rate_scale;        /* arrival times are divided by this (2 = twice the rate) */
    uint64_t max_requests;    /* stop reading the source after this many (0 = all) */
    bool fast_path;           /* jump over runs of pure decode steps (exact; see engine.c) */
    uint32_t replica;         /* this engine's index behind a router (router.h); 0 alone */
    bool step_detail;         /* list the computing sequences in kv_step_work (no fast path) */
} kv_engine_config;

void kv_engine_config_default(kv_engine_config *c);

typedef enum kv_req_outcome { KV_REQ_DONE, KV_REQ_REJECTED } kv_req_outcome;

/* One finished or rejected request, handed to the observer. Times in seconds of simulated
 * time from the trace's origin; NAN where a phase never happened. */
typedef struct kv_req_record {
    uint64_t id; /* row of the trace, from 0 */
    kv_req_outcome outcome;
    const char *reject_reason;
    double t_arrival_s, t_admit_s, t_first_token_s, t_finish_s;
    uint32_t prompt_tokens, output_tokens, n_samples;
    uint32_t cached_tokens; /* prompt tokens found in the prefix cache at first admission */
    uint32_t preemptions;
    uint64_t swapped_bytes;
} kv_req_record;

/* One step, handed to the observer after the clock advanced. */
typedef struct kv_step_record {
    uint64_t step;
    uint32_t replica; /* kv_engine_config.replica */
    double t_start_s, t_end_s;
    kv_step_work work;
    kv_step_time time;
    uint32_t running, waiting, swapped; /* requests, after the step */
    uint32_t batch_seqs;                /* sequences that computed in the step */
    uint32_t preempted;                 /* requests preempted in the step */
    const kv_mem_breakdown *mem;        /* after the step, waiting head as the pending request */
} kv_step_record;

typedef struct kv_observer {
    void *ctx;
    kv_status (*on_request)(void *ctx, const kv_req_record *r, kv_err *err);
    kv_status (*on_step)(void *ctx, const kv_step_record *s, kv_err *err);
} kv_observer;

/* Requests in arrival order: KV_OK, KV_EOF, or an error with err set. A source fed while the
 * engine runs (a router's queue) returns KV_AGAIN when it holds nothing yet. */
typedef struct kv_source {
    void *ctx;
    kv_status (*next)(void *ctx, kv_request *out, kv_err *err);
} kv_source;

typedef struct kv_engine_stats {
    uint64_t steps, requests_in, requests_done, requests_rejected;
    uint64_t steps_jumped; /* steps taken by the fast path */
    uint64_t preemptions, recomputes, swap_outs, swap_ins;
    uint64_t swap_out_bytes, swap_in_bytes;
    uint64_t prompt_tokens, output_tokens, prefill_tokens_computed, cached_tokens;
    uint32_t peak_running_seqs;
    double batch_seqs_sum; /* sum over steps of sequences computed, for the mean batch */
    double first_arrival_s; /* of the first request read */
    double makespan_s;      /* first arrival to last finish */
} kv_engine_stats;

typedef struct kv_engine kv_engine;

/* Create an engine over a new allocator of config ac (its max_seq_tokens and max_seqs are set
 * from ec). KV_OK, or KV_ERR_INPUT / KV_ERR_NOMEM with err. */
kv_status kv_engine_create(const kv_engine_config *ec, const kv_alloc_config *ac, kv_executor ex,
                           kv_engine **out, kv_err *err);
void kv_engine_destroy(kv_engine **e);

/* Replay the source to the end. KV_OK, or the first error of the source or the observer.
 * With check_every_step the allocator's checker runs after every step (debug; slow). */
kv_status kv_engine_run(kv_engine *e, kv_source src, kv_observer obs, bool check_every_step,
                        kv_err *err);

/* Run steps while the clock is before t_stop (a step that starts before t_stop may end after
 * it), or until the engine is idle and the source has nothing yet (KV_AGAIN) or has ended.
 * Repeated calls with a growing t_stop and the same source and observer give exactly the
 * outputs of one kv_engine_run: a router advances each replica to an arrival time, routes
 * the request into that replica's queue, and goes on. */
kv_status kv_engine_advance(kv_engine *e, kv_source src, kv_observer obs, double t_stop,
                            bool check_every_step, kv_err *err);

/* True when nothing is queued, running or swapped out and the source has ended. */
bool kv_engine_finished(const kv_engine *e);

/* The simulated clock, in seconds from the trace's origin. */
double kv_engine_now(const kv_engine *e);

/* Observe the engine's allocator operations (alloc.h: kv_alloc_set_listener). */
void kv_engine_set_listener(kv_engine *e, kv_op_listener fn, void *ctx);

const kv_engine_stats *kv_engine_stats_of(const kv_engine *e);
const kv_engine_config *kv_engine_config_of(const kv_engine *e);
const kv_alloc *kv_engine_alloc(const kv_engine *e);

#endif
