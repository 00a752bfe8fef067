/* preset.h — model and GPU presets (data files, not code) and the KV budget they imply.
 *
 * Presets are INI files: sim/presets/models/NAME.ini ([model]) and sim/presets/gpus/NAME.ini
 * ([gpu]), found by path, or by name (case-insensitive) in $KVSIM_PRESETS/{models,gpus} or
 * sim/presets/{models,gpus} under the working directory. Users add their own files.
 *
 * KV budget, as vLLM computes it (vllm/worker: determine_num_available_blocks):
 *   kv_bytes = memory x gpu_memory_utilization - weights - activation peak - non-torch memory
 * per GPU, with tensor parallelism tp dividing weights and KV heads over the GPUs of a replica
 * (KV heads are replicated when tp exceeds them). The activation peak is estimated for a
 * profile run of max_num_batched_tokens tokens:
 *   tokens x (2 x intermediate + 4 x hidden) x 2 bytes / tp   (MLP and attention activations)
 *   + max_num_seqs x vocab x 4 bytes                          (fp32 logits of the sampler)
 * and non-torch memory (CUDA context, NCCL, cuBLAS workspace) as 0.5 GiB.
 */
#ifndef KV_PRESET_H
#define KV_PRESET_H

#include <stdbool.h>
#include <stdint.h>

#include "shape.h"
#include "status.h"

typedef struct kv_model {
    char name[64];
    uint32_t n_layers, n_heads, n_kv_heads, head_dim;
    uint32_t hidden, intermediate, vocab;
    double params_b;        /* total parameters, billions: weight memory */
    double active_params_b; /* parameters used per token (MoE), billions: compute */
    uint32_t max_context;
    uint32_t mla_latent_dim;
    bool gated_mlp;
    uint32_t weight_elem_bytes; /* bytes per weight (INI key weight_bytes) */
    uint32_t kv_elem_bytes;     /* bytes per KV element at the native dtype (INI key kv_bytes) */
} kv_model;

typedef struct kv_gpu {
    char name[64];
    double memory_gib;
    double hbm_tbps;    /* HBM bandwidth, TB/s */
    double bf16_tflops; /* dense bf16 */
    double h2d_gbps, d2h_gbps;
    double copy_latency_us; /* per separate host<->device copy */
    double eff_memory, eff_compute;
    double step_overhead_ms;
    double map_us, unmap_us; /* per chunk map (cuMemMap + cuMemSetAccess) / unmap */
} kv_gpu;

/* Load a preset by path or name. KV_OK, KV_ERR_IO (not found: the message lists where it
 * looked) or KV_ERR_INPUT (file:line: key: what was wrong). */
kv_status kv_model_load(const char *name_or_path, kv_model *m, kv_err *err);
kv_status kv_gpu_load(const char *name_or_path, kv_gpu *g, kv_err *err);

/* The KV shape one GPU of a tp-way replica holds. */
kv_shape kv_model_shape(const kv_model *m, uint32_t tp);

/* Weight bytes on one GPU of a tp-way replica. */
uint64_t kv_model_weight_bytes(const kv_model *m, uint32_t tp);

typedef struct kv_budget {
    uint64_t gpu_bytes, usable_bytes, weight_bytes, activation_bytes, non_torch_bytes;
    int64_t kv_bytes; /* the KV budget on one GPU: may be <= 0, the model does not fit */
} kv_budget;

kv_budget kv_kv_budget(const kv_model *m, const kv_gpu *g, uint32_t tp, double gpu_mem_util,
                       uint32_t max_num_batched_tokens, uint32_t max_num_seqs);

#endif
