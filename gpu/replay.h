/* replay.h — `kvgpu replay` as a call: one kvsim replay (run.h) with every allocator decision
 * and step realized on the GPU (replay.cu says how). */
#ifndef KVG_REPLAY_H
#define KVG_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

extern "C" {
#include "run.h"
}

/* kvgpu's own knobs, beside the replay's configuration. */
typedef struct kvgpu_replay_opts {
    uint32_t attn_layers; /* layers of attention run per step (>= 1; default 1) */
    uint32_t q_per_kv;    /* query heads per KV head (default 4, Llama-3-8B's grouping) */
    bool model_exec;      /* the model executor: the clock advances by measured time */
    bool swap_batched;    /* swaps as gather + one copy, not a copy per block */
    uint32_t layers;      /* model executor: layers run (0 = all) */
} kvgpu_replay_opts;

void kvgpu_replay_opts_default(kvgpu_replay_opts *o);

/* Replay cfg on the GPU into cfg->out_dir (kvsim's files plus gpu_steps.csv and
 * gpu_summary.json); *out (may be NULL) gets the headline figures. KV_OK or kv_run's statuses,
 * with a message in err. One replay at a time per process. */
kv_status kvgpu_replay_run(const kv_run_config *cfg, const kvgpu_replay_opts *o, kv_summary *out,
                           kv_err *err);

/* `kvgpu replay`: argv[0] is "replay". Returns the process exit code. */
int kvgpu_replay_main(int argc, char **argv);

#endif
