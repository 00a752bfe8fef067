/* sweep.h — a grid of replays from an INI spec, one CSV row per point.
 *
 *   [sweep]
 *   trace = traces/data/azure2023_conv.csv      ; a trace or a workload spec
 *   strategies = contiguous-max, paged, compressed-fp8   ; named configurations (run.h)
 *   rate_scales = 1, 2, 3
 *   models = Llama-3-8B                          ; optional, default Llama-3-8B
 *   gpus = H100-80GB                             ; optional, default H100-80GB
 *   block_tokens = 16, 32                        ; optional: paged and compressed points
 *   chunk_kib = 2048                             ; optional: chunk-pool points
 *   args = --max-num-seqs 1024                   ; optional: replay options for every point
 *
 * A point's configuration is replay's defaults, then args, then the point's own settings (its
 * named configuration, size, model, GPU and rate scale), which win over args.
 *
 * Points are numbered in a fixed nested order (model, gpu, strategy, size, rate scale), so
 * any partition of them over processes gives the same rows once sorted by number.
 */
#ifndef KV_SWEEP_H
#define KV_SWEEP_H

#include <stdint.h>

#include "run.h"
#include "status.h"

enum { KV_SWEEP_MAX_LIST = 32, KV_SWEEP_WORD = 128 };

typedef struct kv_sweep_list {
    char v[KV_SWEEP_MAX_LIST][KV_SWEEP_WORD];
    int n;
} kv_sweep_list;

typedef struct kv_sweep_spec {
    char path[512];
    char trace[512];
    char args[1024];
    kv_sweep_list strategies, rate_scales, models, gpus, block_tokens, chunk_kib;
} kv_sweep_spec;

/* One point: its label and its replay configuration (without out_dir). cfg's strings point
 * into the spec, which must outlive the point. */
typedef struct kv_sweep_point {
    uint32_t index;
    char label[160];
    char strategy[64], model[KV_SWEEP_WORD], gpu[KV_SWEEP_WORD], size[32];
    double rate_scale;
    kv_run_config cfg;
} kv_sweep_point;

/* Load and check a spec: every key, every strategy name, and args as replay options. KV_OK;
 * KV_ERR_IO; KV_ERR_INPUT with "PATH:LINE: KEY: what is wrong". */
kv_status kv_sweep_load(const char *path, kv_sweep_spec *s, kv_err *err);

uint32_t kv_sweep_n_points(const kv_sweep_spec *s);

/* Point i (0-based) of the grid. Precondition: i < kv_sweep_n_points. */
void kv_sweep_point_at(const kv_sweep_spec *s, uint32_t i, kv_sweep_point *p);

#endif
