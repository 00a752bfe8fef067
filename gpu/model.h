/* model.h — the model executor (model.cu): a preset's transformer with random weights, run
 * over an engine step's tokens, KV through the allocator's placements. */
#ifndef KV_GPU_MODEL_H
#define KV_GPU_MODEL_H

#include "kvgpu.h"

extern "C" {
#include "executor.h"
#include "preset.h"
}

typedef struct kvg_model kvg_model;

/* layers: how many of the model's layers to run (0 = all). max_tokens: tokens in a step
 * (max_num_batched_tokens); max_decode: decode tokens in a step; max_context: the longest
 * sequence. Weights from seed. KV_OK, or KV_ERR_INPUT / KV_ERR_NOMEM with a message. */
kv_status kvg_model_create(const kv_model *m, uint32_t layers, uint32_t max_tokens,
                           uint32_t max_decode, uint32_t max_context, uint64_t seed,
                           kvg_model **out, kv_err *err);
void kvg_model_destroy(kvg_model **m);

uint64_t kvg_model_weight_bytes(const kvg_model *m);

/* Small-batch GEMM shapes timed so far (decode buckets of <= KVG_GEMV_MAX_M rows) and how many
 * of them run kvg_gemv_bf16 rather than cuBLAS. */
void kvg_model_gemv_choices(const kvg_model *m, uint32_t *n_shapes, uint32_t *n_gemv);
uint32_t kvg_model_layers(const kvg_model *m);

/* Run one step: seqs as the engine lists them (kv_step_work.seqs); descs by sequence id, on
 * the device (descs_d) and on the host (descs_h, the same values). *ms: the device time of the
 * whole forward pass (CUDA events), for the layers run. */
kv_status kvg_model_step(kvg_model *m, const kvg_format *f, const kvg_seqdesc *descs_d,
                         const kvg_seqdesc *descs_h, const kv_step_seq *seqs, uint32_t n_seqs,
                         float *ms, kv_err *err);

#endif
