/* validate_report.h — the report of `kvgpu validate`: kvsim's predictions (a calibrated
 * replay) against kvgpu's measurements (the same window replayed on the GPU), per strategy.
 * The host half of kvgpu validate, which runs the replays and hands their output folders here.
 *
 * Inputs, per strategy: the GPU run's folder (summary.json, gpu_steps.csv) and the kvsim run's
 * (summary.json, config.json). From them:
 *   whole run  twelve figures of each summary.json, predicted against measured
 *              (kv_vreport_metric_name: throughput, TTFT/TPOT p50 and p99, memory shares,
 *              preemptions, swap-outs), error = (predicted - measured) / |measured|;
 *   per step   the series of gpu_steps.csv: each step that computed something, its predicted
 *              (sim_step_ms) against measured (step_ms) time; each step that swapped, its
 *              predicted (pred_swap_ms) against measured (swap_ms) swap time; the medians of
 *              |predicted - measured| / measured (kv_median: the upper middle value);
 *   memory     peak device memory, measured (the largest device_used_bytes) against predicted
 *              (weights + activations + non-torch + KV bytes of kvsim's budget).
 * Outputs in DIR: steps.tsv (run index, predicted ms, measured ms per step: the data of the
 * step-time figure, analysis/validate.gp), report.md (a table against the targets: step 5%,
 * swap 10%, throughput 3%; one table per strategy; the commands run) and report.csv
 * (strategy, metric, predicted, measured, error_pct).
 *
 * Glossary: pred = predicted (kvsim), meas = measured (kvgpu); run = one strategy's pair of
 * replays.
 */
#ifndef KV_VALIDATE_REPORT_H
#define KV_VALIDATE_REPORT_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "status.h"

/* ------------------------------------------------------------------------------------------ */

enum { KV_VREPORT_N_METRICS = 12 };

/* One run's per-step series, from gpu_steps.csv. Caller-placed; kv_vreport_read_steps fills
 * it, kv_vreport_series_fini frees its arrays. */
typedef struct kv_vreport_series {
    double *step_pred_ms, *step_meas_ms; /* steps with sequences and a measured time > 0 */
    size_t n_steps;
    double *swap_pred_ms, *swap_meas_ms; /* steps with swap bytes and a measured swap time */
    size_t n_swaps;
    double peak_device_bytes; /* the largest device_used_bytes; 0 without rows */
} kv_vreport_series;

/* One strategy's comparison. */
typedef struct kv_vreport_run {
    const char *strategy;                   /* borrowed: must outlive kv_vreport_write */
    double predicted[KV_VREPORT_N_METRICS]; /* kvsim's summary figures (NAN when absent) */
    double measured[KV_VREPORT_N_METRICS];  /* kvgpu's */
    double step_err_pct, swap_err_pct;      /* median |pred - meas| / meas x 100; NAN if none */
    size_t n_steps, n_swap_steps;           /* the series' lengths */
    double peak_pred_bytes, peak_meas_bytes;
} kv_vreport_run;

/* The report's header. Borrowed strings. */
typedef struct kv_vreport_info {
    const char *trace, *calib;     /* as given on the command line */
    unsigned long long first, end; /* the window's requests first..end (0..0: no window) */
    const char *const *commands;   /* the replays run, one line each, in order */
    size_t n_commands;
} kv_vreport_info;

/* ------------------------------------------------------------------------------------------ */

/* The name of whole-run figure k < KV_VREPORT_N_METRICS ("output tokens/s", "TTFT p50 (s)",
 * ..., "swap-outs"), as report.md and report.csv print it. */
const char *kv_vreport_metric_name(int k);

/* The twelve figures of a summary.json, in kv_vreport_metric_name's order; a figure the file
 * lacks is NAN. KV_OK, or KV_ERR_IO / KV_ERR_INPUT (cannot read, not JSON) with a message. */
kv_status kv_vreport_read_summary(const char *path, double v[KV_VREPORT_N_METRICS], kv_err *err);

/* The peak device memory kvsim predicts from a run's config.json: the budget's weight,
 * activation, non-torch and KV bytes summed; NAN when the file or a field is missing (the
 * report then prints nan). Never fails. */
double kv_vreport_peak_predicted(const char *config_json);

/* Read gpu_steps.csv (kvgpu replay's per-step file; columns found by their header names:
 * seqs, sim_step_ms, step_ms, swap_bytes, swap_ms, pred_swap_ms, device_used_bytes) into
 * *s, which must be zeroed or fini'd. KV_OK, or KV_ERR_IO / KV_ERR_INPUT ("path:line: what")
 * / KV_ERR_NOMEM, with *s left empty. */
kv_status kv_vreport_read_steps(const char *path, kv_vreport_series *s, kv_err *err);

/* Free the series' arrays and zero it. */
void kv_vreport_series_fini(kv_vreport_series *s);

/* Median |pred - meas| / meas x 100 over n pairs; NAN when n == 0. */
double kv_vreport_median_abs_pct(const double *pred, const double *meas, size_t n);

/* Fill r's per-step figures from s: step_err_pct, swap_err_pct, n_steps, n_swap_steps,
 * peak_meas_bytes. */
void kv_vreport_run_errors(kv_vreport_run *r, const kv_vreport_series *s);

/* Append s's steps to steps.tsv: "run_index<TAB>pred_ms<TAB>meas_ms", %.6f, one per step. */
void kv_vreport_write_steps(FILE *tsv, int run_index, const kv_vreport_series *s);

/* One strategy from its two folders: both summaries, the GPU run's step series (its rows
 * appended to tsv under run_index) and the predicted peak. r->strategy is left alone.
 * KV_OK or the first reader's error (the message names the file). */
kv_status kv_vreport_collect(const char *gpu_dir, const char *sim_dir, int run_index, FILE *tsv,
                             kv_vreport_run *r, kv_err *err);

/* Write dir/report.md and dir/report.csv for runs[0..n_runs-1]. KV_OK or KV_ERR_IO naming the
 * file. */
kv_status kv_vreport_write(const char *dir, const kv_vreport_info *info, const kv_vreport_run *runs,
                           size_t n_runs, kv_err *err);

#ifdef __cplusplus
}
#endif

#endif
