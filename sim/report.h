/* report.h — a run's output folder (DESIGN.md §6), written by an engine observer.
 *
 *   config.json    the resolved configuration (written by the caller, see cli_replay.c)
 *   requests.csv   one row per request as it finishes or is rejected
 *   timeline.csv   the state every timeline_interval_s of simulated time (every step if 0),
 *                  per replica behind a router (rows of one replica in time order)
 *   summary.json   throughput, goodput under the SLO, TTFT/TPOT/E2E quantiles with 95%
 *                  confidence intervals, time-averaged memory shares, preemptions, swaps,
 *                  rejections, batch sizes, and (unless no_wall_time) simulator wall time
 *   trace.json     with perfetto: Chrome/Perfetto trace events — a span per request phase
 *                  (queued, prefill, decode) and counter tracks (memory by category, batch,
 *                  waiting, swap traffic)
 * Columns carry units in their names. Every file is a pure function of the inputs and seed,
 * except summary.json's "wall" object.
 */
#ifndef KV_REPORT_H
#define KV_REPORT_H

#include <stdbool.h>

#include "engine.h"
#include "status.h"

typedef struct kv_report_opts {
    const char *dir;
    double timeline_interval_s;
    double slo_ttft_s, slo_tpot_s;
    bool perfetto;
    bool no_wall_time;
    uint32_t replicas; /* engines feeding this report (a router's); 0 or 1 = one */
} kv_report_opts;

typedef struct kv_report kv_report;

/* Create dir (and parents) and open the streaming files. KV_OK or KV_ERR_IO. */
kv_status kv_report_open(const kv_report_opts *o, kv_report **out, kv_err *err);

kv_observer kv_report_observer(kv_report *r);

/* Headline figures, also what `kvsim compare` tabulates. */
typedef struct kv_summary {
    uint64_t done, rejected, preemptions, swap_out_bytes, swap_in_bytes;
    double output_tok_per_s, requests_per_s, goodput_share;
    double ttft_p50_s, ttft_p99_s, tpot_p50_s, tpot_p99_s;
    double batch_mean_seqs; /* running sequences per step, mean over steps */
    uint32_t batch_peak_seqs;
    double share_token, share_reserved, share_internal, share_external, share_free;
    double wall_s, sim_s;
    uint64_t requests_in, steps, steps_jumped;
} kv_summary;

/* Write summary.json (when es is not NULL: the engine's statistics, or the sum over a
 * router's replicas, with as the allocator's) and close every file. meta (may be NULL) is a
 * JSON object of labels (trace, strategy, model, gpu, router) copied into the summary. Fills
 * *sum when not NULL. Accepts NULL report. */
kv_status kv_report_close(kv_report **r, const kv_engine_stats *es, const kv_alloc_stats *as,
                          const char *meta_json, double wall_s, kv_summary *sum, kv_err *err);

#endif
