/* calib.h — fitting kvsim's cost model to measured steps and swaps: the host half of
 * `kvgpu calibrate`, which measures on the GPU and hands its measurements here.
 *
 * Measurements. A step is a batch of decoding sequences (batch x context tokens each) plus at
 * most one prefill chunk (chunk tokens after chunk_context tokens of its sequence), with its
 * measured seconds; its phase (decode, prefill, mixed) groups the errors. A swap is one
 * sequence copied out (device to host) or in: copies, bytes, measured seconds. Map and unmap
 * costs are the measured totals over a number of calls.
 *
 * Fits (GNU Scientific Library):
 *   steps   eff_memory, eff_compute and step_overhead_ms by nonlinear least squares
 *           (gsl_multifit_nlinear, trust region, finite differences) of the relative error
 *           (predicted - measured) / measured of the cost model's own step formula
 *           (costmodel.h) over every step, from the starting model's values; the parameters
 *           are held in their bounds (efficiencies in [1e-3, 1], overhead >= 0) by clamping.
 *   swaps   t = copy_latency x copies + bytes / bandwidth, per direction, by linear least
 *           squares weighted 1 / t^2 (relative error again); copy_latency_us is the mean of the
 *           two directions' latencies (the cost model has one), clamped at >= 0.
 *   maps    map_us and unmap_us: measured totals / calls.
 *
 * Bounds. A parameter that ends at a bound, or within 1e-6 of it in its own unit (an
 * efficiency, ms, us), is flagged in kv_calib_fit.at_bound and explained in bound_msg: its
 * value is the bound, not a measurement, and the other coefficients have absorbed what it
 * could not. kvgpu calibrate prints a warning per flagged parameter and the calibration file
 * keeps a comment line for each. (On the H200 the step fit put step_overhead_ms at exactly 0
 * and nothing said so: issue 13 item 4.) Flagging is all this module does about it: refitting
 * with another model shape (separate decode and prefill efficiencies, a per-sequence term) is
 * the calibration work of issue 13.
 *
 * Statistics: R^2 of step times, the median absolute % error over every step and per phase,
 * over every swap. Medians are kv_median (median.h: the upper middle value).
 *
 * Files. kv_calib_write writes the calibration file kvsim --calib reads ([calibration] and a
 * [fit] report) and FILE.csv, every measured point with its prediction; kv_calib_load_csv
 * reads such a FILE.csv back, so that a recorded calibration can be refitted without a GPU.
 *
 * Glossary: pct = percent; phase = decode | prefill | mixed step; out = device to host.
 */
#ifndef KV_CALIB_H
#define KV_CALIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "costmodel.h"
#include "status.h"

/* ------------------------------------------------------------------------------------------ */

typedef enum kv_calib_phase {
    KV_CALIB_DECODE,  /* decoding sequences only */
    KV_CALIB_PREFILL, /* one prefill chunk only */
    KV_CALIB_MIXED,   /* a chunk and decoding sequences in one step */
    KV_CALIB_N_PHASES
} kv_calib_phase;

/* The fitted parameters, in the order of kv_calib_fit.at_bound. */
typedef enum kv_calib_param {
    KV_CALIB_EFF_MEMORY,
    KV_CALIB_EFF_COMPUTE,
    KV_CALIB_STEP_OVERHEAD_MS,
    KV_CALIB_COPY_LATENCY_OUT_US,
    KV_CALIB_COPY_LATENCY_IN_US,
    KV_CALIB_D2H_GBPS, /* "at its bound" here: swap time did not grow with bytes */
    KV_CALIB_H2D_GBPS,
    KV_CALIB_N_PARAMS
} kv_calib_param;

enum { KV_CALIB_MSG_BYTES = 1024 };

typedef struct kv_calib_step {
    kv_calib_phase phase;
    uint32_t batch;                /* decoding sequences */
    uint32_t context_tokens;       /* each decoding sequence's context before the step */
    uint32_t chunk_tokens;         /* the prefill chunk; 0 when none */
    uint32_t chunk_context_tokens; /* tokens of the chunk's sequence before it */
    double measured_s;
} kv_calib_step;

typedef struct kv_calib_swap {
    bool out; /* device to host; false: host to device */
    uint64_t copies, bytes;
    double measured_s;
} kv_calib_swap;

typedef struct kv_calib_fit {
    /* The starting GPU coefficients with every fitted one replaced: eff_memory, eff_compute,
     * step_overhead_ms, copy_latency_us, d2h_gbps, h2d_gbps, map_us, unmap_us (a group with
     * no measurements keeps the starting values). */
    kv_gpu gpu;
    double copy_latency_out_us, copy_latency_in_us; /* per direction, before the mean */
    size_t n_steps, n_phase_steps[KV_CALIB_N_PHASES], n_swaps;
    double r2_steps;                                    /* of step times; NAN without steps */
    double median_abs_pct_err_all;                      /* over every step; NAN if none */
    double median_abs_pct_err_phase[KV_CALIB_N_PHASES]; /* NAN for a phase with no step */
    double median_abs_pct_err_swaps;                    /* NAN without swaps */
    int gsl_status;                                     /* the step fit's driver status */
    size_t iterations;                                  /* of the step fit */
    bool at_bound[KV_CALIB_N_PARAMS];
    char bound_msg[KV_CALIB_MSG_BYTES]; /* one line per parameter at a bound, "" when none */
} kv_calib_fit;

/* What the calibration file's header and [fit] section name. Borrowed strings. */
typedef struct kv_calib_info {
    const char *model, *gpu; /* preset names */
    const char *device;      /* the device measured on (cudaDeviceProp.name) */
    bool layers_arg;         /* --layers K was given */
    uint32_t layers_run, layers;
} kv_calib_info;

typedef struct kv_calib kv_calib; /* the measurements and their latest predictions */

/* ------------------------------------------------------------------------------------------ */

/* "decode", "prefill", "mixed" (the region column of FILE.csv); the parameter's key in the
 * calibration file ("eff_memory", ..., "copy_latency_out_us", "d2h_gbps"). Never NULL. */
const char *kv_calib_phase_name(kv_calib_phase p);
const char *kv_calib_param_name(kv_calib_param p);

/* The cost model's view of a step: n_decode = batch, decode_context = batch x (context + 1)
 * (the new token's KV is read too), one prefill of chunk tokens with attention pairs
 * chunk x (chunk_context + chunk / 2). */
kv_step_work kv_calib_step_work(const kv_calib_step *s);

/* An empty set of measurements; start is copied: its model constants price every step, its
 * coefficients are where the fits start. KV_OK or KV_ERR_NOMEM. */
kv_status kv_calib_create(const kv_costmodel *start, kv_calib **out, kv_err *err);

/* Frees c (NULL is fine) and sets *c = NULL. */
void kv_calib_destroy(kv_calib **c);

/* Record one measurement (copied). KV_OK, KV_ERR_INPUT (measured time not > 0 and finite, a
 * phase out of range, a step with no work, a swap with no bytes) or KV_ERR_NOMEM. */
kv_status kv_calib_add_step(kv_calib *c, const kv_calib_step *s, kv_err *err);
kv_status kv_calib_add_swap(kv_calib *c, const kv_calib_swap *s, kv_err *err);

/* The measured map and unmap totals: map_s seconds over maps calls, likewise unmaps. With
 * maps (unmaps) == 0 the fit keeps the starting map_us (unmap_us). */
void kv_calib_set_maps(kv_calib *c, double map_s, uint64_t maps, double unmap_s, uint64_t unmaps);

size_t kv_calib_n_steps(const kv_calib *c);
size_t kv_calib_n_swaps(const kv_calib *c);

/* Add every step and swap row of a FILE.csv written by kv_calib_write (its predicted column is
 * ignored). KV_OK, KV_ERR_IO (cannot open), KV_ERR_INPUT ("path:line: what") or
 * KV_ERR_NOMEM. */
kv_status kv_calib_load_csv(kv_calib *c, const char *path, kv_err *err);

/* Price every step with cm (no fitting) and fill fit's step statistics (n_steps, per phase
 * counts, r2_steps, the medians); the predictions are kept for kv_calib_write. Other fields
 * of fit are left alone. */
void kv_calib_evaluate(kv_calib *c, const kv_costmodel *cm, kv_calib_fit *fit);

/* Run every fit (steps, swaps, maps) and fill *fit whole, bound flags and message included.
 * Needs at least 3 steps, and for swaps none or at least 2 per direction. KV_OK, or
 * KV_ERR_INPUT with a message (too few points, the step fit failed) and *fit unusable.
 * A parameter at its bound is not an error: it is flagged and the fit returns KV_OK. */
kv_status kv_calib_fit_all(kv_calib *c, kv_calib_fit *fit, kv_err *err);

/* The prediction of swap s under fit: copies x copy_latency_us + bytes / the direction's
 * bandwidth, in seconds. */
double kv_calib_swap_predicted_s(const kv_calib_fit *fit, const kv_calib_swap *s);

/* Write path (the calibration file: a header naming info, [calibration], [fit], and a
 * comment line per parameter at its bound) and path.csv (region, batch, context, chunk,
 * chunk_context, measured_ms, predicted_ms for every step, then every swap with copies and
 * bytes in the batch and context columns). fit must come from kv_calib_fit_all on c.
 * KV_OK or KV_ERR_IO naming the file. */
kv_status kv_calib_write(const kv_calib *c, const kv_calib_fit *fit, const kv_calib_info *info,
                         const char *path, kv_err *err);

/* The one-line summary `kvgpu calibrate` prints: coefficients, R^2, the errors per phase,
 * swaps and maps, "-> path". */
void kv_calib_print_summary(FILE *f, const kv_calib_fit *fit, const char *path);

#ifdef __cplusplus
}
#endif

#endif
