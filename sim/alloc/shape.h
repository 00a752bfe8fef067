/* shape.h — bytes of KV per token, from a model's shape.
 *
 * A transformer layer stores, per token, a key and a value vector for each KV head
 * (n_kv_heads x head_dim elements each), or with multi-head latent attention (MLA, DeepSeek-V2/V3)
 * one compressed latent vector of mla_latent_dim elements. Each such per-layer array is a
 * "layer tensor": 2 per layer (K, V), or 1 with MLA. Elements take elem_bits bits; quantized
 * formats add one scale of scale_bytes per group of scale_group_elems elements of a token's
 * layer tensor (0 = no per-group scales, e.g. per-tensor FP8).
 *
 * Glossary: tensor = one layer's K (or V, or MLA latent) array; token_bytes = one token over all
 * layer tensors; tensor_token_bytes = one token in one layer tensor.
 */
#ifndef KV_SHAPE_H
#define KV_SHAPE_H

#include <stdint.h>

#include "status.h"

/* The representable range, checked by kv_shape_validate so that every product below fits:
 * elements of one layer tensor per token (n_kv_heads x head_dim, or the MLA latent) and layers.
 * A 2^24-element tensor row is 128x the largest real one (128 heads x 1024). */
#define KV_SHAPE_MAX_TENSOR_ELEMS (1u << 24)
#define KV_SHAPE_MAX_LAYERS       16384u

typedef struct kv_shape {
    uint32_t n_layers;
    uint32_t n_kv_heads;        /* per GPU, after tensor parallelism; unused with MLA */
    uint32_t head_dim;          /* elements per head; unused with MLA */
    uint32_t mla_latent_dim;    /* > 0: MLA, one latent tensor per layer of this many elements */
    uint32_t elem_bits;         /* 16 (bf16/fp16), 8 (fp8/int8), 4 (int4), 2 (2-bit) */
    uint32_t scale_group_elems; /* 0 = no per-group scales */
    uint32_t scale_bytes; /* bytes per scale group (2 for an fp16 scale, 4 with a zero point) */
} kv_shape;

/* A shape of n_layers x n_kv_heads x head_dim at 16 bits, no scales. */
kv_shape kv_shape_dense(uint32_t n_layers, uint32_t n_kv_heads, uint32_t head_dim);

/* KV_OK, or KV_ERR_INPUT with a message naming the bad field. */
kv_status kv_shape_validate(const kv_shape *s, kv_err *err);

/* Layer tensors per layer: 2 (K and V), or 1 with MLA. */
uint32_t kv_shape_tensors_per_layer(const kv_shape *s);

/* Layer tensors in the model: n_layers x tensors per layer. */
uint32_t kv_shape_n_tensors(const kv_shape *s);

/* Elements of one token in one layer tensor. */
uint32_t kv_shape_tensor_token_elems(const kv_shape *s);

/* Bytes of one token in one layer tensor, scales included. Precondition: validated. */
uint64_t kv_shape_tensor_token_bytes(const kv_shape *s);

/* Bytes of one token over all layer tensors, scales included. Precondition: validated. */
uint64_t kv_shape_token_bytes(const kv_shape *s);

#endif
