/* kernels.cu — KV append (with quantization), attention through any placement, and the swap
 * engine. See kvgpu.h for the row layout these kernels share. */
#include "kvgpu.h"
#include "cuda_check.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { HEAD_DIM = 128, LANES = 16, ELEMS = HEAD_DIM / LANES, SPLIT_TOKENS = 256, WARPS = 4 };

/* ------------------------------------------------------------------------------------------ */

kv_status kvg_format_of(const kv_alloc_config *c, kvg_dtype dtype, kvg_format *out, kv_err *err)
{
    const kv_shape *s = &c->shape;
    memset(out, 0, sizeof *out);
    if (s->mla_latent_dim > 0 || s->head_dim != HEAD_DIM)
        return kv_errorf(err, KV_ERR_INPUT, "kvgpu: kernels need head_dim %d and no MLA (got %u)",
                         HEAD_DIM, s->head_dim);
    uint32_t bits = c->strategy == KV_COMPRESSED ? c->compressed.elem_bits : s->elem_bits;
    uint32_t group = c->strategy == KV_COMPRESSED ? c->compressed.scale_group_elems : 0;
    uint32_t sb = c->strategy == KV_COMPRESSED ? c->compressed.scale_bytes : 0;
    if (bits == 16)
        dtype = KVG_BF16;
    else if (c->strategy != KV_COMPRESSED)
        return kv_errorf(err, KV_ERR_INPUT, "kvgpu: %u-bit KV needs the compressed strategy", bits);
    static const uint32_t want_bits[] = {16, 8, 8, 4};
    static const char *const names[] = {"bf16", "fp8", "int8", "int4"};
    if (want_bits[dtype] != bits)
        return kv_errorf(err, KV_ERR_INPUT, "kvgpu: --kv-dtype %s stores %u bits, kv_bits is %u",
                         names[dtype], want_bits[dtype], bits);
    if ((dtype == KVG_INT8 || dtype == KVG_INT4) && group == 0)
        return kv_errorf(err, KV_ERR_INPUT,
                         "kvgpu: %s needs per-group scales (--scale-group N --scale-bytes 2)",
                         names[dtype]);
    if (group && (group % ELEMS != 0 || group > ELEMS * 32 || (group & (group - 1)) != 0 ||
                  HEAD_DIM % group != 0 || (sb != 2 && sb != 4)))
        return kv_errorf(err, KV_ERR_INPUT,
                         "kvgpu: scale groups must be a power of two in %d..%d dividing %d, with "
                         "2- or 4-byte scales (got %u elements, %u bytes)",
                         ELEMS, HEAD_DIM, HEAD_DIM, group, sb);
    out->dtype = dtype;
    out->n_heads = s->n_kv_heads;
    out->head_dim = HEAD_DIM;
    out->group = group;
    out->scale_bytes = group ? sb : 0;
    uint64_t elems = (uint64_t)s->n_kv_heads * HEAD_DIM;
    out->row_bytes = elems * bits / 8 + (group ? elems / group * sb : 0);
    kv_shape stored = *s; /* as the allocator counts a row */
    stored.elem_bits = bits;
    stored.scale_group_elems = group;
    stored.scale_bytes = sb;
    if (out->row_bytes != kv_shape_tensor_token_bytes(&stored))
        return kv_errorf(err, KV_CORRUPT, "kvgpu: row of %llu bytes, the allocator's is %llu",
                         (unsigned long long)out->row_bytes,
                         (unsigned long long)kv_shape_tensor_token_bytes(&stored));
    return KV_OK;
}

/* ------------------------------------------------------------------------ addressing --- */

struct fmt_dev {
    int dtype;
    uint32_t elems, group, scale_bytes;
    uint64_t data_bytes, row_bytes;
};

static fmt_dev fmt_dev_of(const kvg_format *f)
{
    fmt_dev d;
    d.dtype = f->dtype;
    d.elems = f->n_heads * f->head_dim;
    d.group = f->group;
    d.scale_bytes = f->scale_bytes;
    d.row_bytes = f->row_bytes;
    d.data_bytes = f->row_bytes - (f->group ? (uint64_t)d.elems / f->group * f->scale_bytes : 0);
    return d;
}

/* The row of token t in tensor j, or 0 where its block was evicted. */
__device__ __forceinline__ uint64_t row_of(const kvg_seqdesc &d, uint32_t t, uint32_t j)
{
    uint32_t u = t / d.unit_tokens;
    uint32_t unit = d.table ? __ldg(d.table + u) : u;
    if (unit == KV_BLOCK_NONE)
        return 0;
    return d.base + (uint64_t)unit * d.unit_bytes + (uint64_t)j * d.tensor_stride +
           (uint64_t)(t % d.unit_tokens) * d.token_stride;
}

__device__ __forceinline__ float scale_at(const fmt_dev &f, const unsigned char *row, uint32_t e)
{
    const unsigned char *p = row + f.data_bytes + (uint64_t)(e / f.group) * f.scale_bytes;
    return f.scale_bytes == 2 ? __half2float(*(const __half *)p) : *(const float *)p;
}

/* Elements e..e+7 of a row, as floats. */
template <int DT>
__device__ __forceinline__ void load8(const fmt_dev &f, const unsigned char *row, uint32_t e,
                                      float v[ELEMS])
{
    if (DT == KVG_BF16) {
        uint4 w = __ldg((const uint4 *)(row + (uint64_t)e * 2));
        const __nv_bfloat162 *h = (const __nv_bfloat162 *)&w;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 x = __bfloat1622float2(h[i]);
            v[2 * i] = x.x;
            v[2 * i + 1] = x.y;
        }
        return;
    }
    float s = f.group ? scale_at(f, row, e) : 1.0f;
    if (DT == KVG_FP8 || DT == KVG_INT8) {
        uint2 w = __ldg((const uint2 *)(row + e));
        const unsigned char *b = (const unsigned char *)&w;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            if (DT == KVG_FP8) {
                __nv_fp8_e4m3 x;
                x.__x = b[i];
                v[i] = (float)x * s;
            } else {
                v[i] = (float)(signed char)b[i] * s;
            }
        }
    } else { /* int4, low nibble first, two's complement */
        uint32_t w = __ldg((const uint32_t *)(row + e / 2));
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int q = (int)((w >> (4 * i)) & 0xf);
            v[i] = (float)(q >= 8 ? q - 16 : q) * s;
        }
    }
}

/* ---------------------------------------------------------------------------- append --- */

/* One thread per 8 elements of a row; block (token, tensor). Quantized groups of g elements
 * span g / 8 neighbouring lanes, which agree on the group's scale by shuffles. */
__global__ void append_kernel(fmt_dev f, const kvg_seqdesc *descs, const uint32_t *seq,
                              const uint32_t *pos, const uint16_t *src, uint32_t tensor0,
                              uint64_t src_stride)
{
    uint32_t tok = blockIdx.x, j = blockIdx.y, e = threadIdx.x * ELEMS;
    bool on = e < f.elems; /* lanes past the row still take part in the shuffles */
    uint4 w = make_uint4(0, 0, 0, 0);
    if (on)
        w = *(const uint4 *)(src + (uint64_t)tok * src_stride + (uint64_t)j * f.elems + e);
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&w;
    unsigned char *out =
        on ? (unsigned char *)row_of(descs[seq[tok]], pos[tok], tensor0 + j) : NULL;
    if (f.dtype == KVG_BF16) {
        if (on)
            *(uint4 *)(out + (uint64_t)e * 2) = w;
        return;
    }
    float v[ELEMS];
    float amax = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 x = __bfloat1622float2(h[i]);
        v[2 * i] = x.x;
        v[2 * i + 1] = x.y;
        amax = fmaxf(amax, fmaxf(fabsf(x.x), fabsf(x.y)));
    }
    float s = 1.0f;
    if (f.group) {
        for (uint32_t off = 1; off < f.group / ELEMS; off <<= 1)
            amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
        float qmax = f.dtype == KVG_FP8 ? 448.0f : f.dtype == KVG_INT8 ? 127.0f : 7.0f;
        s = amax > 0 ? amax / qmax : 1.0f;
        if (f.scale_bytes == 2) /* quantize with the scale as stored */
            s = __half2float(__float2half_rn(s));
        if (on && e % f.group == 0) {
            unsigned char *sp = out + f.data_bytes + (uint64_t)(e / f.group) * f.scale_bytes;
            if (f.scale_bytes == 2)
                *(__half *)sp = __float2half_rn(s);
            else
                *(float *)sp = s;
        }
    }
    if (!on)
        return;
    if (f.dtype == KVG_FP8 || f.dtype == KVG_INT8) {
        uint2 o;
        unsigned char *b = (unsigned char *)&o;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            if (f.dtype == KVG_FP8)
                b[i] = __nv_fp8_e4m3(v[i] / s).__x;
            else
                b[i] = (unsigned char)(signed char)max(-127, min(127, __float2int_rn(v[i] / s)));
        }
        *(uint2 *)(out + e) = o;
    } else {
        uint32_t o = 0;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            int q = max(-7, min(7, __float2int_rn(v[i] / s)));
            o |= (uint32_t)(q & 0xf) << (4 * i);
        }
        *(uint32_t *)(out + e / 2) = o;
    }
}

kv_status kvg_append_strided(const kvg_format *f, uint32_t tensor0, uint32_t n_tensors,
                             uint64_t src_stride, const kvg_seqdesc *descs, const uint32_t *seq,
                             const uint32_t *pos, uint32_t n, const uint16_t *src, kv_err *err)
{
    if (n == 0)
        return KV_OK;
    fmt_dev d = fmt_dev_of(f);
    uint32_t threads = (d.elems / ELEMS + 31) / 32 * 32;
    append_kernel<<<dim3(n, n_tensors), threads>>>(d, descs, seq, pos, src, tensor0, src_stride);
    LAUNCH_CHECK("append_kernel");
    return KV_OK;
}

kv_status kvg_append(const kvg_format *f, uint32_t n_tensors, const kvg_seqdesc *descs,
                     const uint32_t *seq, const uint32_t *pos, uint32_t n, const uint16_t *src,
                     kv_err *err)
{
    uint64_t elems = (uint64_t)f->n_heads * f->head_dim;
    return kvg_append_strided(f, 0, n_tensors, n_tensors * elems, descs, seq, pos, n, src, err);
}

/* Layer l's K and V rows of tokens 0..n-1, dequantized to bf16: k[t][elems], v[t][elems]. */
template <int DT>
__global__ void gather_kernel(fmt_dev f, kvg_seqdesc d, uint32_t layer, __nv_bfloat16 *k,
                              __nv_bfloat16 *v)
{
    uint32_t t = blockIdx.x, kv = blockIdx.y, e = threadIdx.x * ELEMS;
    if (e >= f.elems)
        return;
    uint64_t r = row_of(d, t, 2 * layer + kv);
    __nv_bfloat16 *out = (kv ? v : k) + (uint64_t)t * f.elems + e;
    float x[ELEMS];
    if (r == 0) {
#pragma unroll
        for (int i = 0; i < ELEMS; i++)
            x[i] = 0;
    } else {
        load8<DT>(f, (const unsigned char *)r, e, x);
    }
#pragma unroll
    for (int i = 0; i < ELEMS; i++)
        out[i] = __float2bfloat16(x[i]);
}

kv_status kvg_gather_layer(const kvg_format *f, const kvg_seqdesc *d, uint32_t layer,
                           void *k, void *v, kv_err *err)
{
    if (d->n_tokens == 0)
        return KV_OK;
    fmt_dev fd = fmt_dev_of(f);
    dim3 grid(d->n_tokens, 2);
    uint32_t threads = (fd.elems / ELEMS + 31) / 32 * 32;
    __nv_bfloat16 *kb = (__nv_bfloat16 *)k, *vb = (__nv_bfloat16 *)v;
    switch (f->dtype) {
    case KVG_BF16: gather_kernel<KVG_BF16><<<grid, threads>>>(fd, *d, layer, kb, vb); break;
    case KVG_FP8: gather_kernel<KVG_FP8><<<grid, threads>>>(fd, *d, layer, kb, vb); break;
    case KVG_INT8: gather_kernel<KVG_INT8><<<grid, threads>>>(fd, *d, layer, kb, vb); break;
    default: gather_kernel<KVG_INT4><<<grid, threads>>>(fd, *d, layer, kb, vb); break;
    }
    LAUNCH_CHECK("gather_kernel");
    return KV_OK;
}

/* ------------------------------------------------------------------------- attention --- */

/* Block (query, KV head, split of SPLIT_TOKENS tokens); 8 half-warps, each lane 8 of the
 * head's 128 dimensions, so every K or V row is one coalesced 256-byte read (bf16). G query
 * heads share each read (grouped-query attention). Two passes over the split: scores (K rows,
 * a 16-lane reduction per head) into shared memory; then the split's max, the weights and
 * their sum; then the weighted V rows. Each pass takes two tokens per half-warp at a time, so
 * loads overlap. The split's (max, sum, accumulator) per query head go to combine_kernel,
 * which merges the splits (flash-decoding). Softmax in base 2. */
template <int G, int DT>
__global__ void __launch_bounds__(WARPS * 32)
    attention_kernel(fmt_dev f, uint32_t layer, const kvg_seqdesc *descs, const uint32_t *qseq,
                     const uint32_t *qpos, const uint16_t *q, uint32_t n_kv_heads,
                     uint32_t splits, float *part_m, float *part_l, float *part_acc)
{
    const uint32_t qi = blockIdx.x / n_kv_heads, h = blockIdx.x % n_kv_heads, split = blockIdx.y;
    const uint32_t lane = threadIdx.x % LANES, hw = threadIdx.x / LANES;
    const uint32_t n_q_heads = n_kv_heads * G;
    const kvg_seqdesc d = descs[qseq[qi]];
    const uint32_t n = qpos[qi] + 1;
    const uint32_t t0 = split * SPLIT_TOKENS, t1 = min(n, t0 + SPLIT_TOKENS);
    const float qscale = 1.4426950408889634f / sqrtf((float)HEAD_DIM); /* log2(e) / sqrt(D) */
    if (t0 >= n) { /* a split past this query's context (prefill queries share the grid) */
        for (uint32_t x = threadIdx.x; x < G * HEAD_DIM; x += blockDim.x) {
            uint64_t slot = ((uint64_t)qi * n_q_heads + h * G + x / HEAD_DIM) * splits + split;
            part_acc[slot * HEAD_DIM + x % HEAD_DIM] = 0;
            if (x % HEAD_DIM == 0) {
                part_m[slot] = -INFINITY;
                part_l[slot] = 0;
            }
        }
        return;
    }
    __shared__ float sp[G][SPLIT_TOKENS]; /* scores, then weights; -inf where no token */
    __shared__ float sm[G], sl[G];
    __shared__ float sacc[2 * WARPS][G][HEAD_DIM];

    float qv[G][ELEMS];
#pragma unroll
    for (int g = 0; g < G; g++) {
        const uint16_t *qp = q + ((uint64_t)qi * n_q_heads + h * G + g) * HEAD_DIM + lane * ELEMS;
        uint4 w = *(const uint4 *)qp;
        const __nv_bfloat162 *b = (const __nv_bfloat162 *)&w;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 x = __bfloat1622float2(b[i]);
            qv[g][2 * i] = x.x * qscale;
            qv[g][2 * i + 1] = x.y * qscale;
        }
    }
    const uint32_t e = h * HEAD_DIM + lane * ELEMS;
    /* pass 1: scores. Both halves of a warp run the same trips (shuffles see all lanes). */
    for (uint32_t base = t0 + (hw & ~1u); base < t0 + SPLIT_TOKENS; base += 4 * WARPS) {
        uint32_t ta = base + (hw & 1u), tb = ta + 2 * WARPS;
        uint64_t ra = ta < t1 ? row_of(d, ta, 2 * layer) : 0;
        uint64_t rb = tb < t1 ? row_of(d, tb, 2 * layer) : 0;
        float ka[ELEMS], kb[ELEMS];
#pragma unroll
        for (int i = 0; i < ELEMS; i++)
            ka[i] = kb[i] = 0;
        if (ra)
            load8<DT>(f, (const unsigned char *)ra, e, ka);
        if (rb)
            load8<DT>(f, (const unsigned char *)rb, e, kb);
#pragma unroll
        for (int g = 0; g < G; g++) {
            float xa = 0, xb = 0;
#pragma unroll
            for (int i = 0; i < ELEMS; i++) {
                xa = fmaf(qv[g][i], ka[i], xa);
                xb = fmaf(qv[g][i], kb[i], xb);
            }
#pragma unroll
            for (int off = LANES / 2; off > 0; off >>= 1) {
                xa += __shfl_xor_sync(0xffffffffu, xa, off);
                xb += __shfl_xor_sync(0xffffffffu, xb, off);
            }
            if (lane == 0) {
                if (ta < t0 + SPLIT_TOKENS)
                    sp[g][ta - t0] = ra ? xa : -INFINITY;
                if (tb < t0 + SPLIT_TOKENS)
                    sp[g][tb - t0] = rb ? xb : -INFINITY;
            }
        }
    }
    __syncthreads();
    /* the split's max and the weights: one warp per query head */
    const uint32_t warp = threadIdx.x / 32, wl = threadIdx.x % 32;
    for (uint32_t g = warp; g < G; g += WARPS) {
        float m = -INFINITY;
        for (uint32_t i = wl; i < SPLIT_TOKENS; i += 32)
            m = fmaxf(m, sp[g][i]);
        for (int off = 16; off > 0; off >>= 1)
            m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
        float l = 0;
        for (uint32_t i = wl; i < SPLIT_TOKENS; i += 32) {
            float p = m == -INFINITY ? 0.0f : exp2f(sp[g][i] - m);
            sp[g][i] = p;
            l += p;
        }
        for (int off = 16; off > 0; off >>= 1)
            l += __shfl_xor_sync(0xffffffffu, l, off);
        if (wl == 0) {
            sm[g] = m;
            sl[g] = l;
        }
    }
    __syncthreads();
    /* pass 2: the weighted V rows */
    float acc[G][ELEMS];
#pragma unroll
    for (int g = 0; g < G; g++)
#pragma unroll
        for (int i = 0; i < ELEMS; i++)
            acc[g][i] = 0;
    for (uint32_t ta = t0 + hw; ta < t1; ta += 4 * WARPS) {
        uint32_t tb = ta + 2 * WARPS;
        uint64_t ra = row_of(d, ta, 2 * layer + 1);
        uint64_t rb = tb < t1 ? row_of(d, tb, 2 * layer + 1) : 0;
        float va[ELEMS], vb[ELEMS];
#pragma unroll
        for (int i = 0; i < ELEMS; i++)
            va[i] = vb[i] = 0;
        if (ra)
            load8<DT>(f, (const unsigned char *)ra, e, va);
        if (rb)
            load8<DT>(f, (const unsigned char *)rb, e, vb);
#pragma unroll
        for (int g = 0; g < G; g++) {
            float pa = ra ? sp[g][ta - t0] : 0.0f, pb = rb ? sp[g][tb - t0] : 0.0f;
#pragma unroll
            for (int i = 0; i < ELEMS; i++)
                acc[g][i] = fmaf(pb, vb[i], fmaf(pa, va[i], acc[g][i]));
        }
    }
#pragma unroll
    for (int g = 0; g < G; g++)
#pragma unroll
        for (int i = 0; i < ELEMS; i++)
            sacc[hw][g][lane * ELEMS + i] = acc[g][i];
    __syncthreads();
    for (uint32_t x = threadIdx.x; x < G * HEAD_DIM; x += blockDim.x) {
        uint32_t g = x / HEAD_DIM, dim = x % HEAD_DIM;
        float A = 0;
        for (int w = 0; w < 2 * WARPS; w++)
            A += sacc[w][g][dim];
        uint64_t slot = ((uint64_t)qi * n_q_heads + h * G + g) * splits + split;
        part_acc[slot * HEAD_DIM + dim] = A;
        if (dim == 0) {
            part_m[slot] = sm[g];
            part_l[slot] = sl[g];
        }
    }
}

__global__ void combine_kernel(const float *part_m, const float *part_l, const float *part_acc,
                               uint32_t splits, float *out)
{
    uint64_t qh = blockIdx.x; /* query x query head */
    uint32_t dim = threadIdx.x;
    const float *pm = part_m + qh * splits, *pl = part_l + qh * splits;
    float M = -INFINITY;
    for (uint32_t s = 0; s < splits; s++)
        M = fmaxf(M, pm[s]);
    float L = 0, A = 0;
    for (uint32_t s = 0; s < splits; s++) {
        if (pm[s] == -INFINITY)
            continue;
        float c = exp2f(pm[s] - M);
        L += pl[s] * c;
        A += part_acc[(qh * splits + s) * HEAD_DIM + dim] * c;
    }
    out[qh * HEAD_DIM + dim] = L > 0 ? A / L : 0.0f;
}

static uint32_t n_splits(uint32_t max_context)
{
    return (max_context + SPLIT_TOKENS - 1) / SPLIT_TOKENS;
}

size_t kvg_attention_work_bytes(const kvg_format *f, uint32_t n_q_heads, uint32_t n_queries,
                                uint32_t max_context)
{
    (void)f;
    return (size_t)n_queries * n_q_heads * n_splits(max_context) * (HEAD_DIM + 2) * sizeof(float);
}

template <int G>
static void launch_attention(dim3 grid, const fmt_dev &d, uint32_t layer,
                             const kvg_seqdesc *descs, const uint32_t *qseq, const uint32_t *qpos,
                             const uint16_t *q, uint32_t n_kv_heads, uint32_t splits, float *pm,
                             float *pl, float *pa)
{
    switch (d.dtype) {
    case KVG_BF16:
        attention_kernel<G, KVG_BF16><<<grid, WARPS * 32>>>(d, layer, descs, qseq, qpos, q,
                                                            n_kv_heads, splits, pm, pl, pa);
        break;
    case KVG_FP8:
        attention_kernel<G, KVG_FP8><<<grid, WARPS * 32>>>(d, layer, descs, qseq, qpos, q,
                                                           n_kv_heads, splits, pm, pl, pa);
        break;
    case KVG_INT8:
        attention_kernel<G, KVG_INT8><<<grid, WARPS * 32>>>(d, layer, descs, qseq, qpos, q,
                                                            n_kv_heads, splits, pm, pl, pa);
        break;
    default:
        attention_kernel<G, KVG_INT4><<<grid, WARPS * 32>>>(d, layer, descs, qseq, qpos, q,
                                                            n_kv_heads, splits, pm, pl, pa);
        break;
    }
}

kv_status kvg_attention(const kvg_format *f, uint32_t n_q_heads, uint32_t layer,
                        const kvg_seqdesc *descs, const uint32_t *qseq, const uint32_t *qpos,
                        uint32_t n_queries, uint32_t max_context, const uint16_t *q, float *out,
                        void *work, kv_err *err)
{
    if (n_queries == 0)
        return KV_OK;
    uint32_t g = n_q_heads / f->n_heads;
    if (g * f->n_heads != n_q_heads || (g != 1 && g != 2 && g != 4 && g != 8))
        return kv_errorf(err, KV_ERR_INPUT,
                         "kvgpu: %u query heads over %u KV heads: groups of 1, 2, 4 or 8 only",
                         n_q_heads, f->n_heads);
    fmt_dev d = fmt_dev_of(f);
    uint32_t splits = n_splits(max_context);
    uint64_t slots = (uint64_t)n_queries * n_q_heads * splits;
    float *pm = (float *)work, *pl = pm + slots, *pa = pl + slots;
    dim3 grid(n_queries * f->n_heads, splits);
    switch (g) {
    case 1: launch_attention<1>(grid, d, layer, descs, qseq, qpos, q, f->n_heads, splits, pm, pl, pa); break;
    case 2: launch_attention<2>(grid, d, layer, descs, qseq, qpos, q, f->n_heads, splits, pm, pl, pa); break;
    case 4: launch_attention<4>(grid, d, layer, descs, qseq, qpos, q, f->n_heads, splits, pm, pl, pa); break;
    default: launch_attention<8>(grid, d, layer, descs, qseq, qpos, q, f->n_heads, splits, pm, pl, pa); break;
    }
    LAUNCH_CHECK("attention_kernel");
    combine_kernel<<<n_queries * n_q_heads, HEAD_DIM>>>(pm, pl, pa, splits, out);
    LAUNCH_CHECK("combine_kernel");
    return KV_OK;
}

/* ------------------------------------------------------------------------------ swaps --- */

struct kvg_swapper {
    void *staging;
    size_t staging_bytes;
    cudaStream_t stream;
    cudaEvent_t t0, t1;
};

kv_status kvg_swapper_create(size_t staging_bytes, kvg_swapper **out, kv_err *err)
{
    *out = NULL;
    kvg_swapper *s = (kvg_swapper *)calloc(1, sizeof *s);
    if (s == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "kvgpu: out of host memory");
    *out = s;
    s->staging_bytes = staging_bytes;
    CUDA_TRY(cudaMalloc(&s->staging, staging_bytes));
    CUDA_TRY(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    CUDA_TRY(cudaEventCreate(&s->t0));
    CUDA_TRY(cudaEventCreate(&s->t1));
    return KV_OK;
}

void kvg_swapper_destroy(kvg_swapper **sp)
{
    kvg_swapper *s = sp ? *sp : NULL;
    if (s == NULL)
        return;
    cudaFree(s->staging);
    if (s->stream)
        cudaStreamDestroy(s->stream);
    if (s->t0)
        cudaEventDestroy(s->t0);
    if (s->t1)
        cudaEventDestroy(s->t1);
    free(s);
    *sp = NULL;
}

/* Copy every row (token, tensor) from one layout to another, 16 bytes per thread. */
__global__ void rows_kernel(kvg_seqdesc from, kvg_seqdesc to, uint64_t row_bytes)
{
    uint32_t t = blockIdx.x, j = blockIdx.y;
    uint64_t a = row_of(from, t, j), b = row_of(to, t, j);
    if (a == 0 || b == 0)
        return;
    for (uint64_t x = threadIdx.x * 16ull; x < row_bytes; x += blockDim.x * 16ull)
        *(uint4 *)(b + x) = *(const uint4 *)(a + x);
}

kv_status kvg_swap(kvg_swapper *s, kvg_swap_mode mode, bool out, const kvg_seqdesc *dev,
                   const uint32_t *host_table, const kvg_seqdesc *host, uint32_t n_tensors,
                   uint64_t row_bytes, kvg_swap_result *res, kv_err *err)
{
    memset(res, 0, sizeof *res);
    if (row_bytes % 16 != 0)
        return kv_errorf(err, KV_ERR_INPUT, "kvgpu: swap rows of %llu bytes (need 16-byte rows)",
                         (unsigned long long)row_bytes);
    cudaMemcpyKind kind = out ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice;
    uint32_t n = dev->n_tokens;
    /* the slabs: per block per tensor; per tensor (per-layer chunks); or one */
    bool blocks = dev->table != NULL;
    bool per_tensor = !blocks && dev->token_stride == row_bytes;
    uint64_t span = blocks ? (uint64_t)((n + dev->unit_tokens - 1) / dev->unit_tokens) *
                                 dev->unit_bytes
                           : (uint64_t)n * row_bytes * n_tensors;
    CUDA_TRY(cudaEventRecord(s->t0, s->stream));
    if (mode == KVG_SWAP_PER_COPY) {
        if (blocks) {
            uint32_t nb = (n + dev->unit_tokens - 1) / dev->unit_tokens;
            uint64_t slab = dev->tensor_stride; /* block_tokens rows of one tensor */
            for (uint32_t b = 0; b < nb; b++) {
                if (host_table[b] == KV_BLOCK_NONE)
                    continue;
                for (uint32_t j = 0; j < n_tensors; j++) {
                    uint64_t d = dev->base + (uint64_t)host_table[b] * dev->unit_bytes +
                                 j * dev->tensor_stride;
                    uint64_t h = host->base + (uint64_t)b * host->unit_bytes + j * host->tensor_stride;
                    CUDA_TRY(cudaMemcpyAsync((void *)(out ? h : d), (void *)(out ? d : h), slab,
                                             kind, s->stream));
                    res->bytes += slab;
                    res->copies++;
                }
            }
        } else if (per_tensor) {
            for (uint32_t j = 0; j < n_tensors; j++) {
                uint64_t d = dev->base + j * dev->tensor_stride, h = host->base + j * host->tensor_stride;
                uint64_t len = (uint64_t)n * row_bytes;
                CUDA_TRY(cudaMemcpyAsync((void *)(out ? h : d), (void *)(out ? d : h), len, kind,
                                         s->stream));
                res->bytes += len;
                res->copies++;
            }
        } else {
            uint64_t len = (uint64_t)n * dev->token_stride;
            CUDA_TRY(cudaMemcpyAsync((void *)(out ? host->base : dev->base),
                                     (void *)(out ? dev->base : host->base), len, kind, s->stream));
            res->bytes = len;
            res->copies = 1;
        }
    } else {
        if (span > s->staging_bytes)
            return kv_errorf(err, KV_ERR_INPUT,
                             "kvgpu: a swap of %llu bytes exceeds the %zu-byte staging buffer",
                             (unsigned long long)span, s->staging_bytes);
        kvg_seqdesc stage = *host;
        stage.base = (uint64_t)(uintptr_t)s->staging;
        if (out) {
            rows_kernel<<<dim3(n, n_tensors), 128, 0, s->stream>>>(*dev, stage, row_bytes);
            LAUNCH_CHECK("rows_kernel (gather)");
            CUDA_TRY(cudaMemcpyAsync((void *)host->base, s->staging, span, kind, s->stream));
        } else {
            CUDA_TRY(cudaMemcpyAsync(s->staging, (void *)host->base, span, kind, s->stream));
            rows_kernel<<<dim3(n, n_tensors), 128, 0, s->stream>>>(stage, *dev, row_bytes);
            LAUNCH_CHECK("rows_kernel (scatter)");
        }
        res->bytes = span;
        res->copies = 1;
    }
    CUDA_TRY(cudaEventRecord(s->t1, s->stream));
    CUDA_TRY(cudaEventSynchronize(s->t1));
    float ms = 0;
    CUDA_TRY(cudaEventElapsedTime(&ms, s->t0, s->t1));
    res->seconds = ms * 1e-3;
    return KV_OK;
}

/* ------------------------------------------------------------------- test and bench aids --- */

__global__ void fill_kernel(kvg_seqdesc d, uint64_t row_bytes)
{
    uint64_t r = row_of(d, blockIdx.x, blockIdx.y);
    if (r == 0)
        return;
    for (uint64_t x = threadIdx.x * 4ull; x < row_bytes; x += blockDim.x * 4ull)
        *(uint32_t *)(r + x) = 0x5a5a5a5au;
}

kv_status fill_garbage(const kvg_seqdesc *d, uint32_t n_tensors, uint64_t row_bytes, kv_err *err)
{
    if (d->n_tokens == 0)
        return KV_OK;
    fill_kernel<<<dim3(d->n_tokens, n_tensors), 128>>>(*d, row_bytes);
    LAUNCH_CHECK("fill_kernel");
    return cuda_sync(err, "filling rows");
}

/* Random KV of a format, from a hash of (token, tensor, element): bench data, never zeros. */
__global__ void random_kernel(fmt_dev f, kvg_seqdesc d, uint32_t seed)
{
    uint32_t t = blockIdx.x, j = blockIdx.y;
    unsigned char *row = (unsigned char *)row_of(d, t, j);
    if (row == NULL)
        return;
    for (uint32_t e = threadIdx.x; e < f.elems; e += blockDim.x) {
        uint32_t h = (t * 0x9e3779b1u) ^ (j * 0x85ebca6bu) ^ (e * 0xc2b2ae35u) ^ seed;
        h ^= h >> 15;
        h *= 0x2c1b3c6du;
        h ^= h >> 12;
        float v = ((h & 0xffff) / 32768.0f - 1.0f) * 2.0f;
        if (f.dtype == KVG_BF16)
            ((__nv_bfloat16 *)row)[e] = __float2bfloat16(v);
        else
            row[e] = __nv_fp8_e4m3(v).__x;
    }
}

kv_status kvg_fill_random(const kvg_format *f, const kvg_seqdesc *d, uint32_t n_tensors,
                          uint32_t seed, kv_err *err)
{
    if (f->dtype != KVG_BF16 && !(f->dtype == KVG_FP8 && f->group == 0))
        return kv_errorf(err, KV_ERR_INPUT, "kvgpu: random fill is for bf16 and plain fp8");
    if (d->n_tokens == 0)
        return KV_OK;
    random_kernel<<<dim3(d->n_tokens, n_tensors), 256>>>(fmt_dev_of(f), *d, seed);
    LAUNCH_CHECK("random_kernel");
    return KV_OK;
}

kv_status kvg_copy_rows(const kvg_seqdesc *from, const kvg_seqdesc *to, uint32_t n_tensors,
                        uint64_t row_bytes, kv_err *err)
{
    if (from->n_tokens == 0)
        return KV_OK;
    if (row_bytes % 16 != 0)
        return kv_errorf(err, KV_ERR_INPUT, "kvgpu: rows of %llu bytes (need 16-byte rows)",
                         (unsigned long long)row_bytes);
    rows_kernel<<<dim3(from->n_tokens, n_tensors), 128>>>(*from, *to, row_bytes);
    LAUNCH_CHECK("rows_kernel (copy)");
    return KV_OK;
}

__global__ void bf16_random_kernel(uint16_t *p, size_t n, uint32_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 0x9e3779b1u ^ seed;
        h ^= h >> 15;
        h *= 0x2c1b3c6du;
        h ^= h >> 12;
        __nv_bfloat16 v = __float2bfloat16(((h & 0xffff) / 32768.0f - 1.0f) * 2.0f);
        p[i] = *(uint16_t *)&v;
    }
}

kv_status kvg_fill_bf16(uint16_t *p, size_t n, uint32_t seed, kv_err *err)
{
    bf16_random_kernel<<<1024, 256>>>(p, n, seed);
    LAUNCH_CHECK("bf16_random_kernel");
    return KV_OK;
}
