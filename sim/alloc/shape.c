/* shape.c — KV bytes per token from a model shape. See shape.h. */
#include "shape.h"

/* ------------------------------------------------------------------------------------------ */

kv_shape kv_shape_dense(uint32_t n_layers, uint32_t n_kv_heads, uint32_t head_dim)
{
    return (kv_shape){
        .n_layers = n_layers, .n_kv_heads = n_kv_heads, .head_dim = head_dim, .elem_bits = 16};
}

kv_status kv_shape_validate(const kv_shape *s, kv_err *err)
{
    if (s->n_layers == 0)
        return kv_errorf(err, KV_ERR_INPUT, "shape: n_layers must be > 0");
    if (s->mla_latent_dim == 0 && (s->n_kv_heads == 0 || s->head_dim == 0))
        return kv_errorf(err, KV_ERR_INPUT,
                         "shape: n_kv_heads and head_dim must be > 0 (or set mla_latent_dim)");
    if (s->n_layers > KV_SHAPE_MAX_LAYERS)
        return kv_errorf(err, KV_ERR_INPUT, "shape: n_layers %u is more than %u", s->n_layers,
                         KV_SHAPE_MAX_LAYERS);
    uint64_t elems = s->mla_latent_dim > 0 ? s->mla_latent_dim
                                           : (uint64_t)s->n_kv_heads * s->head_dim;
    if (elems > KV_SHAPE_MAX_TENSOR_ELEMS)
        return kv_errorf(err, KV_ERR_INPUT,
                         "shape: %llu elements per token per layer tensor (%s), at most %u",
                         (unsigned long long)elems,
                         s->mla_latent_dim > 0 ? "mla_latent_dim" : "n_kv_heads x head_dim",
                         KV_SHAPE_MAX_TENSOR_ELEMS);
    if (s->scale_group_elems > KV_SHAPE_MAX_TENSOR_ELEMS || s->scale_bytes > 64)
        return kv_errorf(err, KV_ERR_INPUT,
                         "shape: scale groups of %u elements and %u bytes (at most %u and 64)",
                         s->scale_group_elems, s->scale_bytes, KV_SHAPE_MAX_TENSOR_ELEMS);
    if (s->elem_bits != 16 && s->elem_bits != 8 && s->elem_bits != 4 && s->elem_bits != 2)
        return kv_errorf(err, KV_ERR_INPUT, "shape: elem_bits must be 16, 8, 4 or 2, got %u",
                         s->elem_bits);
    uint64_t bits = (uint64_t)kv_shape_tensor_token_elems(s) * s->elem_bits;
    if (bits % 8 != 0)
        return kv_errorf(err, KV_ERR_INPUT, "shape: %u elements of %u bits do not fill whole bytes",
                         kv_shape_tensor_token_elems(s), s->elem_bits);
    if (s->scale_group_elems > 0 && s->scale_bytes == 0)
        return kv_errorf(err, KV_ERR_INPUT, "shape: scale_group_elems set but scale_bytes is 0");
    return KV_OK;
}

uint32_t kv_shape_tensors_per_layer(const kv_shape *s)
{
    return s->mla_latent_dim > 0 ? 1 : 2;
}

uint32_t kv_shape_n_tensors(const kv_shape *s)
{
    return s->n_layers * kv_shape_tensors_per_layer(s);
}

uint32_t kv_shape_tensor_token_elems(const kv_shape *s)
{
    uint64_t elems =
        s->mla_latent_dim > 0 ? s->mla_latent_dim : (uint64_t)s->n_kv_heads * s->head_dim;
    return elems > KV_SHAPE_MAX_TENSOR_ELEMS ? KV_SHAPE_MAX_TENSOR_ELEMS + 1u : (uint32_t)elems;
}

uint64_t kv_shape_tensor_token_bytes(const kv_shape *s)
{
    uint64_t elems = kv_shape_tensor_token_elems(s);
    uint64_t bytes = elems * s->elem_bits / 8;
    if (s->scale_group_elems > 0)
        bytes += (elems + s->scale_group_elems - 1) / s->scale_group_elems * s->scale_bytes;
    return bytes;
}

uint64_t kv_shape_token_bytes(const kv_shape *s)
{
    return kv_shape_tensor_token_bytes(s) * kv_shape_n_tensors(s);
}
