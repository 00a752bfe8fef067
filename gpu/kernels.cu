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
    kv_shape stored = kv_alloc_config_stored_shape(c); /* as the allocator counts a row */
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
    if (seq[tok] == KVG_NO_SEQ) /* a padding row of a replayed decode graph */
        return;
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

kv_status kvg_append_strided_on(const kvg_format *f, uint32_t tensor0, uint32_t n_tensors,
                                uint64_t src_stride, const kvg_seqdesc *descs, const uint32_t *seq,
                                const uint32_t *pos, uint32_t n, const uint16_t *src,
                                cudaStream_t stream, kv_err *err)
{
    if (n == 0)
        return KV_OK;
    fmt_dev d = fmt_dev_of(f);
    uint32_t threads = (d.elems / ELEMS + 31) / 32 * 32;
    append_kernel<<<dim3(n, n_tensors), threads, 0, stream>>>(d, descs, seq, pos, src, tensor0,
                                                               src_stride);
    LAUNCH_CHECK("append_kernel");
    return KV_OK;
}

kv_status kvg_append_strided(const kvg_format *f, uint32_t tensor0, uint32_t n_tensors,
                             uint64_t src_stride, const kvg_seqdesc *descs, const uint32_t *seq,
                             const uint32_t *pos, uint32_t n, const uint16_t *src, kv_err *err)
{
    return kvg_append_strided_on(f, tensor0, n_tensors, src_stride, descs, seq, pos, n, src, 0,
                                 err);
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
    const uint32_t n = qpos[qi] + 1;
    const uint32_t t0 = split * SPLIT_TOKENS, t1 = min(n, t0 + SPLIT_TOKENS);
    const float qscale = 1.4426950408889634f / sqrtf((float)HEAD_DIM); /* log2(e) / sqrt(D) */
    /* A padding query of a decode graph, or a split past this query's context (the grid is
     * sized for the longest): nothing to do, and combine_kernel reads only the splits a
     * query's context covers. Writing empty partials here instead cost 125 MB of stores per
     * layer at batch 256 with room for 8192 tokens (32 splits, 2 used). */
    if (qseq[qi] == KVG_NO_SEQ || t0 >= n)
        return;
    const kvg_seqdesc d = descs[qseq[qi]];
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

/* Merge a query head's splits (those its context covers); out in float or bf16 (whichever is
 * not NULL). A padding query writes zeros. */
__global__ void combine_kernel(const float *part_m, const float *part_l, const float *part_acc,
                               const uint32_t *qseq, const uint32_t *qpos, uint32_t n_q_heads,
                               uint32_t splits, uint32_t split_tokens, float *out,
                               __nv_bfloat16 *out_bf16)
{
    uint64_t qh = blockIdx.x; /* query x query head */
    uint32_t dim = threadIdx.x, qi = (uint32_t)(qh / n_q_heads);
    /* splits of split_tokens each (those the context covers), or all (split_tokens 0) */
    uint32_t used = qseq[qi] == KVG_NO_SEQ ? 0
                    : split_tokens   ? min(splits, qpos[qi] / split_tokens + 1)
                                     : splits;
    const float *pm = part_m + qh * splits, *pl = part_l + qh * splits;
    float M = -INFINITY;
    for (uint32_t s = 0; s < used; s++)
        M = fmaxf(M, pm[s]);
    float L = 0, A = 0;
    for (uint32_t s = 0; s < used; s++) {
        if (pm[s] == -INFINITY)
            continue;
        float c = exp2f(pm[s] - M);
        L += pl[s] * c;
        A += part_acc[(qh * splits + s) * HEAD_DIM + dim] * c;
    }
    float o = L > 0 ? A / L : 0.0f;
    if (out_bf16)
        out_bf16[qh * HEAD_DIM + dim] = __float2bfloat16(o);
    else
        out[qh * HEAD_DIM + dim] = o;
}

/* ----------------------------------------------------------------- prefill attention --- */

/* Causal attention of prefill chunks over the placement, FlashAttention-2 style. Block (tile of
 * up to 128 query rows of one chunk, query head), 4 warps of 32 query rows each. The block walks
 * the chunk's context in tiles of 32 tokens: K and V rows of its KV head are read through the
 * placement (row_of: extent, block table or virtual range) into shared memory, two stages deep
 * (cp.async for bf16, so the next tile loads while this one is computed; other formats are
 * dequantized to bf16 on the way in); S = Q K^T and O += P V run on the tensor cores
 * (mma.sync m16n8k16, bf16 in, fp32 accumulate), with the online softmax in base 2 in
 * registers; P goes from the S accumulators straight into the A operand of P V. Tokens of an
 * evicted block (row 0) and past a query's position are masked. Output: bf16.
 * Replaces gathering the context into a contiguous buffer and batched cuBLAS GEMMs around a
 * materialized fp32 score matrix (454 ms for the 8192-token prefill on the H200 at 217dedd;
 * 281-297 ms with this kernel, results/gpu/h200/README.md). Shared-memory rows are padded by 16 bytes (272-byte rows) so that
 * the 8 row addresses of an ldmatrix fall in distinct banks. */
enum { PF_MT = 2, PF_BM = 64 * PF_MT, PF_BN = 32, PF_LD = HEAD_DIM + 8, PF_THREADS = 128 };
static const size_t PF_SMEM = (size_t)(PF_BM + 4 * PF_BN) * PF_LD * 2;

__device__ __forceinline__ uint32_t smem_u32(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool on)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(on ? 16 : 0));
}

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

/* c += a b, m16n8k16, bf16 in, fp32 accumulate */
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&v;
}

/* Tile j of the context (tokens j*PF_BN..) into stage buffers k, v; valid[t]: the token's row
 * exists (inside the context, not evicted). Each thread's rows are looked up first (table
 * loads in flight together), then its copies are issued. */
template <int DT>
__device__ __forceinline__ void pf_load_kv(const fmt_dev &f, const kvg_seqdesc &d, uint32_t layer,
                                           uint32_t kvh, uint32_t j, uint32_t n_ctx,
                                           __nv_bfloat16 *k, __nv_bfloat16 *v, uint8_t *valid,
                                           const void *dummy)
{
    enum { PER = PF_BN * (HEAD_DIM / 8) / PF_THREADS };
    const uint32_t x = threadIdx.x % (HEAD_DIM / 8), e = kvh * HEAD_DIM + x * 8;
    uint64_t rk[PER];
#pragma unroll
    for (int i = 0; i < PER; i++) {
        uint32_t t = j * PF_BN + threadIdx.x / (HEAD_DIM / 8) + i * (PF_THREADS / (HEAD_DIM / 8));
        rk[i] = t < n_ctx ? row_of(d, t, 2 * layer) : 0;
    }
#pragma unroll
    for (int i = 0; i < PER; i++) {
        uint32_t r = threadIdx.x / (HEAD_DIM / 8) + i * (PF_THREADS / (HEAD_DIM / 8));
        if (x == 0)
            valid[r] = rk[i] != 0;
        if (DT == KVG_BF16) {
            const void *sk = rk[i] ? (const void *)(rk[i] + e * 2) : dummy;
            const void *sv = rk[i] ? (const void *)(rk[i] + d.tensor_stride + e * 2) : dummy;
            cp_async16(k + r * PF_LD + x * 8, sk, rk[i] != 0);
            cp_async16(v + r * PF_LD + x * 8, sv, rk[i] != 0);
        } else {
            float a[ELEMS], b[ELEMS];
#pragma unroll
            for (int u = 0; u < ELEMS; u++)
                a[u] = b[u] = 0;
            if (rk[i]) {
                load8<DT>(f, (const unsigned char *)rk[i], e, a);
                load8<DT>(f, (const unsigned char *)(rk[i] + d.tensor_stride), e, b);
            }
            uint4 wa, wb;
            uint32_t *pa = (uint32_t *)&wa, *pb = (uint32_t *)&wb;
#pragma unroll
            for (int u = 0; u < 4; u++) {
                pa[u] = pack_bf16(a[2 * u], a[2 * u + 1]);
                pb[u] = pack_bf16(b[2 * u], b[2 * u + 1]);
            }
            *(uint4 *)(k + r * PF_LD + x * 8) = wa;
            *(uint4 *)(v + r * PF_LD + x * 8) = wb;
        }
    }
    asm volatile("cp.async.commit_group;\n" ::);
}

/* Each warp owns PF_MT row tiles of 16 (32 query rows), so that every K and V fragment read
 * from shared memory feeds PF_MT tensor-core products: with one row tile a warp (64-row
 * blocks, 64-token tiles) the kernel was bound by ldmatrix, 152 TFLOP/s on the 8192-token
 * prefill (18.7% of the matrix rate). */
template <int DT>
__global__ void __launch_bounds__(PF_THREADS)
    prefill_attention_kernel(fmt_dev f, uint32_t layer, const kvg_seqdesc *descs,
                             const kvg_prefill_tile *tiles, uint32_t group, const uint16_t *q,
                             uint64_t q_stride, uint16_t *out, uint64_t out_stride)
{
    extern __shared__ uint4 pf_smem[];
    __nv_bfloat16 *sq = (__nv_bfloat16 *)pf_smem;
    __nv_bfloat16 *sk = sq + PF_BM * PF_LD, *sv = sk + 2 * PF_BN * PF_LD;
    __shared__ uint8_t valid[2][PF_BN];

    const kvg_prefill_tile tile = tiles[blockIdx.x];
    const uint32_t qh = blockIdx.y, kvh = qh / group;
    const kvg_seqdesc d = descs[tile.seq];
    const uint32_t n_ctx = tile.pos0 + tile.n_rows, n_tiles = (n_ctx + PF_BN - 1) / PF_BN;
    const uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const uint32_t g = lane >> 2, t4 = lane & 3, mi = lane >> 3;

    /* the query tile (rows past the chunk: zeros) */
    for (uint32_t c = threadIdx.x; c < PF_BM * (HEAD_DIM / 8); c += PF_THREADS) {
        uint32_t r = c / (HEAD_DIM / 8), x = c % (HEAD_DIM / 8);
        const uint16_t *src = q + (uint64_t)(tile.row0 + r) * q_stride + qh * HEAD_DIM + x * 8;
        cp_async16(sq + r * PF_LD + x * 8, r < tile.n_rows ? (const void *)src : (const void *)q,
                   r < tile.n_rows);
    }
    pf_load_kv<DT>(f, d, layer, kvh, 0, n_ctx, sk, sv, valid[0], q);

    const float scale = 1.4426950408889634f / sqrtf((float)HEAD_DIM);
    const uint32_t row_w = warp * 16 * PF_MT;              /* the warp's first row */
    const uint32_t warp_last = tile.pos0 + row_w + 16 * PF_MT - 1; /* its last position */
    float o[PF_MT][HEAD_DIM / 8][4];
    float m[PF_MT][2], l[PF_MT][2];
#pragma unroll
    for (int mt = 0; mt < PF_MT; mt++) {
#pragma unroll
        for (int i = 0; i < HEAD_DIM / 8; i++)
            o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0;
    }
    uint32_t qf[PF_MT][HEAD_DIM / 16][4];

    for (uint32_t j = 0; j < n_tiles; j++) {
        const uint32_t st = j & 1;
        if (j + 1 < n_tiles)
            pf_load_kv<DT>(f, d, layer, kvh, j + 1, n_ctx, sk + (st ^ 1) * PF_BN * PF_LD,
                           sv + (st ^ 1) * PF_BN * PF_LD, valid[st ^ 1], q);
        else
            asm volatile("cp.async.commit_group;\n" ::);
        asm volatile("cp.async.wait_group 1;\n" ::);
        __syncthreads();
        if (j == 0) {
#pragma unroll
            for (int mt = 0; mt < PF_MT; mt++)
#pragma unroll
                for (int kc = 0; kc < HEAD_DIM / 16; kc++)
                    ldsm_x4(qf[mt][kc], sq + (row_w + mt * 16 + (lane & 7) + (mi & 1) * 8) * PF_LD +
                                            kc * 16 + (mi >> 1) * 8);
        }
        const __nv_bfloat16 *K = sk + st * PF_BN * PF_LD, *V = sv + st * PF_BN * PF_LD;
        if (j * PF_BN <= warp_last) { /* else every token of the tile is after the warp's rows */
            float s[PF_MT][PF_BN / 8][4];
#pragma unroll
            for (int mt = 0; mt < PF_MT; mt++)
#pragma unroll
                for (int i = 0; i < PF_BN / 8; i++)
                    s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0;
#pragma unroll
            for (int kc = 0; kc < HEAD_DIM / 16; kc++)
#pragma unroll
                for (int np = 0; np < PF_BN / 16; np++) {
                    uint32_t b[4];
                    ldsm_x4(b, K + (np * 16 + (lane & 7) + (mi >> 1) * 8) * PF_LD + kc * 16 +
                                   (mi & 1) * 8);
#pragma unroll
                    for (int mt = 0; mt < PF_MT; mt++) {
                        mma_bf16(s[mt][2 * np], qf[mt][kc], b[0], b[1]);
                        mma_bf16(s[mt][2 * np + 1], qf[mt][kc], b[2], b[3]);
                    }
                }
            /* mask, scale, each row's running max, the weights. (Skipping the mask on tiles
             * wholly below the diagonal, by a vote over the tile's valid flags, made the
             * 8192-token prefill slower: 177.7 -> 158.5 TFLOP/s, 60 bytes of spills.) */
            uint32_t a[PF_MT][PF_BN / 16][4];
#pragma unroll
            for (int mt = 0; mt < PF_MT; mt++) {
                const uint32_t p0 = tile.pos0 + row_w + mt * 16 + g, p1 = p0 + 8;
                float mx0 = m[mt][0], mx1 = m[mt][1];
#pragma unroll
                for (int nt = 0; nt < PF_BN / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        uint32_t r = nt * 8 + t4 * 2 + (e & 1), t = j * PF_BN + r;
                        bool ok = t <= (e < 2 ? p0 : p1) && valid[st][r];
                        s[mt][nt][e] = ok ? s[mt][nt][e] * scale : -INFINITY;
                        if (e < 2)
                            mx0 = fmaxf(mx0, s[mt][nt][e]);
                        else
                            mx1 = fmaxf(mx1, s[mt][nt][e]);
                    }
#pragma unroll
                for (int off = 1; off < 4; off <<= 1) {
                    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
                    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
                }
                /* a row with nothing seen yet keeps 0 as its reference: no inf - inf */
                const float r0 = mx0 == -INFINITY ? 0.0f : mx0, r1 = mx1 == -INFINITY ? 0.0f : mx1;
                const float c0 = exp2f(m[mt][0] - r0), c1 = exp2f(m[mt][1] - r1);
                m[mt][0] = mx0;
                m[mt][1] = mx1;
                l[mt][0] *= c0;
                l[mt][1] *= c1;
#pragma unroll
                for (int i = 0; i < HEAD_DIM / 8; i++) {
                    o[mt][i][0] *= c0;
                    o[mt][i][1] *= c0;
                    o[mt][i][2] *= c1;
                    o[mt][i][3] *= c1;
                }
#pragma unroll
                for (int nt = 0; nt < PF_BN / 8; nt++) {
                    s[mt][nt][0] = exp2f(s[mt][nt][0] - r0);
                    s[mt][nt][1] = exp2f(s[mt][nt][1] - r0);
                    s[mt][nt][2] = exp2f(s[mt][nt][2] - r1);
                    s[mt][nt][3] = exp2f(s[mt][nt][3] - r1);
                    l[mt][0] += s[mt][nt][0] + s[mt][nt][1];
                    l[mt][1] += s[mt][nt][2] + s[mt][nt][3];
                }
                /* P's accumulators are the A operand, two 8-token tiles per k step */
#pragma unroll
                for (int kc = 0; kc < PF_BN / 16; kc++) {
                    a[mt][kc][0] = pack_bf16(s[mt][2 * kc][0], s[mt][2 * kc][1]);
                    a[mt][kc][1] = pack_bf16(s[mt][2 * kc][2], s[mt][2 * kc][3]);
                    a[mt][kc][2] = pack_bf16(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
                    a[mt][kc][3] = pack_bf16(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
                }
            }
            /* O += P V */
#pragma unroll
            for (int kc = 0; kc < PF_BN / 16; kc++)
#pragma unroll
                for (int dp = 0; dp < HEAD_DIM / 16; dp++) {
                    uint32_t b[4];
                    ldsm_x4_t(b, V + (kc * 16 + (lane & 7) + (mi & 1) * 8) * PF_LD + dp * 16 +
                                     (mi >> 1) * 8);
#pragma unroll
                    for (int mt = 0; mt < PF_MT; mt++) {
                        mma_bf16(o[mt][2 * dp], a[mt][kc], b[0], b[1]);
                        mma_bf16(o[mt][2 * dp + 1], a[mt][kc], b[2], b[3]);
                    }
                }
        }
        __syncthreads(); /* the stage is overwritten by the load after next */
    }
    asm volatile("cp.async.wait_group 0;\n" ::);
#pragma unroll
    for (int mt = 0; mt < PF_MT; mt++) {
        float l0 = l[mt][0], l1 = l[mt][1];
#pragma unroll
        for (int off = 1; off < 4; off <<= 1) {
            l0 += __shfl_xor_sync(0xffffffffu, l0, off);
            l1 += __shfl_xor_sync(0xffffffffu, l1, off);
        }
        const float i0 = l0 > 0 ? 1.0f / l0 : 0.0f, i1 = l1 > 0 ? 1.0f / l1 : 0.0f;
        const uint32_t ra = row_w + mt * 16 + g, rb = ra + 8;
#pragma unroll
        for (int i = 0; i < HEAD_DIM / 8; i++) {
            uint32_t col = qh * HEAD_DIM + i * 8 + t4 * 2;
            if (ra < tile.n_rows)
                *(uint32_t *)(out + (uint64_t)(tile.row0 + ra) * out_stride + col) =
                    pack_bf16(o[mt][i][0] * i0, o[mt][i][1] * i0);
            if (rb < tile.n_rows)
                *(uint32_t *)(out + (uint64_t)(tile.row0 + rb) * out_stride + col) =
                    pack_bf16(o[mt][i][2] * i1, o[mt][i][3] * i1);
        }
    }
}

uint32_t kvg_prefill_tiles(const kvg_prefill_chunk *chunks, uint32_t n_chunks,
                           kvg_prefill_tile *tiles)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < n_chunks; i++)
        for (uint32_t r = 0; r < chunks[i].n; r += PF_BM)
            tiles[n++] = {chunks[i].seq, chunks[i].row0 + r, chunks[i].first + r,
                          chunks[i].n - r < (uint32_t)PF_BM ? chunks[i].n - r : (uint32_t)PF_BM};
    /* longest context first: the causal triangle's long tiles do not finish last */
    for (uint32_t i = 1; i < n; i++) { /* insertion sort, stable; tiles of a step are few */
        kvg_prefill_tile t = tiles[i];
        uint32_t k = i;
        for (; k > 0 && tiles[k - 1].pos0 + tiles[k - 1].n_rows < t.pos0 + t.n_rows; k--)
            tiles[k] = tiles[k - 1];
        tiles[k] = t;
    }
    return n;
}

uint32_t kvg_prefill_max_tiles(uint32_t n_tokens, uint32_t n_chunks)
{
    return n_tokens / PF_BM + n_chunks;
}

template <int DT>
static cudaError_t launch_prefill(dim3 grid, cudaStream_t stream, const fmt_dev &d, uint32_t layer,
                                  const kvg_seqdesc *descs, const kvg_prefill_tile *tiles,
                                  uint32_t group, const uint16_t *q, uint64_t q_stride,
                                  uint16_t *out, uint64_t out_stride)
{
    static bool raised = false; /* more than 48 KB of shared memory needs asking for */
    if (!raised) {
        cudaError_t e = cudaFuncSetAttribute(prefill_attention_kernel<DT>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)PF_SMEM);
        if (e != cudaSuccess)
            return e;
        raised = true;
    }
    prefill_attention_kernel<DT><<<grid, PF_THREADS, PF_SMEM, stream>>>(
        d, layer, descs, tiles, group, q, q_stride, out, out_stride);
    return cudaSuccess;
}

kv_status kvg_prefill_attention(const kvg_format *f, uint32_t n_q_heads, uint32_t layer,
                                const kvg_seqdesc *descs, const kvg_prefill_tile *tiles,
                                uint32_t n_tiles, const uint16_t *q, uint64_t q_stride,
                                uint16_t *out, uint64_t out_stride, cudaStream_t stream,
                                kv_err *err)
{
    if (n_tiles == 0)
        return KV_OK;
    uint32_t g = n_q_heads / f->n_heads;
    if (g == 0 || g * f->n_heads != n_q_heads)
        return kv_errorf(err, KV_ERR_INPUT, "kvgpu: %u query heads over %u KV heads", n_q_heads,
                         f->n_heads);
    fmt_dev d = fmt_dev_of(f);
    dim3 grid(n_tiles, n_q_heads);
    cudaError_t e;
    switch (f->dtype) {
    case KVG_BF16: e = launch_prefill<KVG_BF16>(grid, stream, d, layer, descs, tiles, g, q, q_stride, out, out_stride); break;
    case KVG_FP8: e = launch_prefill<KVG_FP8>(grid, stream, d, layer, descs, tiles, g, q, q_stride, out, out_stride); break;
    case KVG_INT8: e = launch_prefill<KVG_INT8>(grid, stream, d, layer, descs, tiles, g, q, q_stride, out, out_stride); break;
    default: e = launch_prefill<KVG_INT4>(grid, stream, d, layer, descs, tiles, g, q, q_stride, out, out_stride); break;
    }
    if (e != cudaSuccess)
        return kv_errorf(err, KV_ERR_INPUT, "kvgpu: prefill attention shared memory: %s",
                         cudaGetErrorString(e));
    LAUNCH_CHECK("prefill_attention_kernel");
    return KV_OK;
}

/* ---------------------------------------------------------- decode attention, bf16 --- */

/* Decode attention for bf16 KV at the copy rate. Block (query, KV head, split); a split is an
 * even share, in whole 64-token tiles, of the query's context, and the number of splits is
 * chosen from the batch so that the grid fills the GPU about twice (dec_splits): no blocks sit
 * idle past short contexts. K and V tiles stream into shared memory through cp.async, three
 * stages deep (up to 64 KiB in flight per block, two blocks an SM). The G query heads of the
 * KV head are the rows of an m16n8k16 tensor-core product (rows G..15 zero): each warp takes
 * 16 tokens of a tile, S = Q K^T, an online softmax per warp, then O += P V with P split into
 * a bf16 high part and a bf16 remainder (two products), so that the result keeps fp32 accuracy
 * (the test's 1e-4 bound) for no extra bytes. The warps' (max, sum, O) merge in shared memory
 * into the split's partial; combine_kernel merges the splits.
 * The split-per-256-tokens kernel above (two passes over the split, half-warp per token) read
 * 33-56% of the H200's copy rate; it stays for the quantized formats. This one reads 60-81%
 * (contiguous), 54-72% (paged-16) at batch 32-128, context 1024-4096 (results/gpu/h200).
 * Tried and rejected (same bench): looking up a thread's 8 rows before issuing its copies
 * (no change, 58.6-80.7%); blocks of 4 KV heads x 16-token tiles, so that each token's K is
 * one 1 KiB read instead of 256 bytes, with the output written directly when there is one
 * split (worse: 50-64%; the model's decode steps 5-15% slower). */
enum { DC_BN = 64, DC_STAGES = 3, DC_THREADS = 128 };
static const size_t DC_SMEM = (size_t)(16 + 2 * DC_STAGES * DC_BN) * PF_LD * 2;

static uint32_t dec_splits(uint32_t n_queries, uint32_t n_kv_heads)
{
    static int sms = 0;
    if (sms <= 0) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            sms <= 0)
            sms = 132;
    }
    uint32_t pairs = n_queries * (n_kv_heads ? n_kv_heads : 1);
    uint32_t s = (2u * sms + pairs - 1) / pairs;
    return s < 1 ? 1 : s > 32 ? 32 : s;
}

__device__ __forceinline__ void dc_load_kv(const kvg_seqdesc &d, uint32_t layer, uint32_t kvh,
                                           uint32_t t0, uint32_t t_end, __nv_bfloat16 *k,
                                           __nv_bfloat16 *v, uint8_t *valid, const void *dummy)
{
    for (uint32_t c = threadIdx.x; c < DC_BN * (HEAD_DIM / 8); c += DC_THREADS) {
        uint32_t r = c / (HEAD_DIM / 8), x = c % (HEAD_DIM / 8), t = t0 + r;
        uint64_t rk = t < t_end ? row_of(d, t, 2 * layer) : 0;
        uint64_t off = (uint64_t)(kvh * HEAD_DIM + x * 8) * 2;
        if (x == 0)
            valid[r] = rk != 0;
        cp_async16(k + r * PF_LD + x * 8, rk ? (const void *)(rk + off) : dummy, rk != 0);
        cp_async16(v + r * PF_LD + x * 8, rk ? (const void *)(rk + d.tensor_stride + off) : dummy,
                   rk != 0);
    }
}

template <int G>
__global__ void __launch_bounds__(DC_THREADS)
    decode_attention_kernel(uint32_t layer, const kvg_seqdesc *descs, const uint32_t *qseq,
                            const uint32_t *qpos, const uint16_t *q, uint32_t n_kv_heads,
                            uint32_t splits, float *part_m, float *part_l, float *part_acc,
                            float *out, __nv_bfloat16 *out_bf16)
{
    extern __shared__ uint4 pf_smem[];
    __nv_bfloat16 *sq = (__nv_bfloat16 *)pf_smem;
    __nv_bfloat16 *sk = sq + 16 * PF_LD, *sv = sk + DC_STAGES * DC_BN * PF_LD;
    __shared__ uint8_t valid[DC_STAGES][DC_BN];
    __shared__ float wm[4][G], wl[4][G];

    const uint32_t qi = blockIdx.x / n_kv_heads, h = blockIdx.x % n_kv_heads, split = blockIdx.y;
    const uint32_t n_q_heads = n_kv_heads * G;
    /* one split: the block writes the query heads' output itself (no combine_kernel) */
    const bool direct = splits == 1;
    if (qseq[qi] == KVG_NO_SEQ) { /* a padding query: zeros (else combine_kernel writes them) */
        if (direct)
            for (uint32_t x = threadIdx.x; x < G * HEAD_DIM; x += blockDim.x) {
                uint64_t k = ((uint64_t)qi * n_q_heads + h * G) * HEAD_DIM + x;
                if (out_bf16)
                    out_bf16[k] = __float2bfloat16(0.0f);
                else
                    out[k] = 0;
            }
        return;
    }
    const uint32_t n = qpos[qi] + 1, n_tiles_all = (n + DC_BN - 1) / DC_BN;
    const uint32_t per = (n_tiles_all + splits - 1) / splits;
    const uint32_t t_begin = min(n, split * per * DC_BN), t_end = min(n, t_begin + per * DC_BN);
    const uint64_t slot0 = ((uint64_t)qi * n_q_heads + h * G) * splits + split;
    if (t_begin >= t_end) { /* an empty split: a partial that weighs nothing */
        for (uint32_t x = threadIdx.x; x < G * HEAD_DIM; x += blockDim.x) {
            uint64_t slot = slot0 + (uint64_t)(x / HEAD_DIM) * splits;
            part_acc[slot * HEAD_DIM + x % HEAD_DIM] = 0;
            if (x % HEAD_DIM == 0) {
                part_m[slot] = -INFINITY;
                part_l[slot] = 0;
            }
        }
        return;
    }
    const kvg_seqdesc d = descs[qseq[qi]];
    const uint32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const uint32_t g = lane >> 2, t4 = lane & 3, mi = lane >> 3;
    const uint32_t n_t = (t_end - t_begin + DC_BN - 1) / DC_BN;

    for (uint32_t c = threadIdx.x; c < 16 * (HEAD_DIM / 8); c += DC_THREADS) {
        uint32_t r = c / (HEAD_DIM / 8), x = c % (HEAD_DIM / 8);
        const uint16_t *src = q + ((uint64_t)qi * n_q_heads + h * G + r) * HEAD_DIM + x * 8;
        cp_async16(sq + r * PF_LD + x * 8, r < G ? (const void *)src : (const void *)q, r < G);
    }
#pragma unroll
    for (uint32_t st = 0; st < DC_STAGES - 1; st++) {
        if (st < n_t)
            dc_load_kv(d, layer, h, t_begin + st * DC_BN, t_end, sk + st * DC_BN * PF_LD,
                       sv + st * DC_BN * PF_LD, valid[st], q);
        asm volatile("cp.async.commit_group;\n" ::);
    }
    const float scale = 1.4426950408889634f / sqrtf((float)HEAD_DIM);
    float o[HEAD_DIM / 8][4];
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 8; i++)
        o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0;
    float m0 = -INFINITY, l0 = 0;
    uint32_t qf[HEAD_DIM / 16][4];
    for (uint32_t j = 0; j < n_t; j++) {
        uint32_t nx = j + DC_STAGES - 1;
        if (nx < n_t)
            dc_load_kv(d, layer, h, t_begin + nx * DC_BN, t_end,
                       sk + (nx % DC_STAGES) * DC_BN * PF_LD, sv + (nx % DC_STAGES) * DC_BN * PF_LD,
                       valid[nx % DC_STAGES], q);
        asm volatile("cp.async.commit_group;\n" ::);
        asm volatile("cp.async.wait_group %0;\n" ::"n"(DC_STAGES - 1));
        __syncthreads();
        if (j == 0) {
#pragma unroll
            for (int kc = 0; kc < HEAD_DIM / 16; kc++)
                ldsm_x4(qf[kc], sq + ((lane & 7) + (mi & 1) * 8) * PF_LD + kc * 16 + (mi >> 1) * 8);
        }
        const uint32_t st = j % DC_STAGES;
        const __nv_bfloat16 *K = sk + st * DC_BN * PF_LD + warp * 16 * PF_LD;
        const __nv_bfloat16 *V = sv + st * DC_BN * PF_LD + warp * 16 * PF_LD;
        float s[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
#pragma unroll
        for (int kc = 0; kc < HEAD_DIM / 16; kc++) {
            uint32_t b[4];
            ldsm_x4(b, K + ((lane & 7) + (mi >> 1) * 8) * PF_LD + kc * 16 + (mi & 1) * 8);
            mma_bf16(s[0], qf[kc], b[0], b[1]);
            mma_bf16(s[1], qf[kc], b[2], b[3]);
        }
        /* rows g (the query heads; g + 8 is padding): mask, scale, running max */
        float mx = m0;
#pragma unroll
        for (int nt = 0; nt < 2; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                uint32_t r = warp * 16 + nt * 8 + t4 * 2 + e;
                bool ok = t_begin + j * DC_BN + r < t_end && valid[st][r];
                s[nt][e] = ok ? s[nt][e] * scale : -INFINITY;
                mx = fmaxf(mx, s[nt][e]);
            }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float ref = mx == -INFINITY ? 0.0f : mx, corr = exp2f(m0 - ref);
        m0 = mx;
        l0 *= corr;
#pragma unroll
        for (int i = 0; i < HEAD_DIM / 8; i++) {
            o[i][0] *= corr;
            o[i][1] *= corr;
        }
        float p[2][2];
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
            p[nt][0] = exp2f(s[nt][0] - ref);
            p[nt][1] = exp2f(s[nt][1] - ref);
            l0 += p[nt][0] + p[nt][1];
        }
        /* P = hi + lo, both bf16: O += hi V + lo V keeps P's fp32 accuracy */
        __nv_bfloat162 h0 = __floats2bfloat162_rn(p[0][0], p[0][1]);
        __nv_bfloat162 h1 = __floats2bfloat162_rn(p[1][0], p[1][1]);
        float2 f0 = __bfloat1622float2(h0), f1 = __bfloat1622float2(h1);
        uint32_t ahi[4] = {*(uint32_t *)&h0, 0u, *(uint32_t *)&h1, 0u};
        uint32_t alo[4] = {pack_bf16(p[0][0] - f0.x, p[0][1] - f0.y), 0u,
                           pack_bf16(p[1][0] - f1.x, p[1][1] - f1.y), 0u};
#pragma unroll
        for (int dp = 0; dp < HEAD_DIM / 16; dp++) {
            uint32_t b[4];
            ldsm_x4_t(b, V + ((lane & 7) + (mi & 1) * 8) * PF_LD + dp * 16 + (mi >> 1) * 8);
            mma_bf16(o[2 * dp], ahi, b[0], b[1]);
            mma_bf16(o[2 * dp + 1], ahi, b[2], b[3]);
            mma_bf16(o[2 * dp], alo, b[0], b[1]);
            mma_bf16(o[2 * dp + 1], alo, b[2], b[3]);
        }
        __syncthreads(); /* this stage is loaded again DC_STAGES - 1 iterations on */
    }
    asm volatile("cp.async.wait_group 0;\n" ::);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    /* merge the 4 warps' (max, sum, O) of rows 0..G-1 through shared memory (the K stages) */
    float *so = (float *)sk; /* [4][G][HEAD_DIM] */
    if (g < G && t4 == 0) {
        wm[warp][g] = m0;
        wl[warp][g] = l0;
    }
    __syncthreads();
    if (g < G) {
        float M = fmaxf(fmaxf(wm[0][g], wm[1][g]), fmaxf(wm[2][g], wm[3][g]));
        float c = m0 == -INFINITY ? 0.0f : exp2f(m0 - M);
#pragma unroll
        for (int i = 0; i < HEAD_DIM / 8; i++) {
            float *dst = so + ((uint64_t)warp * G + g) * HEAD_DIM + i * 8 + t4 * 2;
            dst[0] = o[i][0] * c;
            dst[1] = o[i][1] * c;
        }
    }
    __syncthreads();
    for (uint32_t x = threadIdx.x; x < G * HEAD_DIM; x += blockDim.x) {
        uint32_t gg = x / HEAD_DIM, dim = x % HEAD_DIM;
        float A = 0;
#pragma unroll
        for (int w = 0; w < 4; w++)
            A += so[((uint64_t)w * G + gg) * HEAD_DIM + dim];
        if (direct) { /* as combine_kernel computes it for one split */
            float M = fmaxf(fmaxf(wm[0][gg], wm[1][gg]), fmaxf(wm[2][gg], wm[3][gg])), L = 0;
            for (int w = 0; w < 4; w++)
                L += wm[w][gg] == -INFINITY ? 0.0f : wl[w][gg] * exp2f(wm[w][gg] - M);
            float o = M == -INFINITY ? 0.0f : (L > 0 ? A / L : 0.0f);
            uint64_t k = ((uint64_t)qi * n_q_heads + h * G + gg) * HEAD_DIM + dim;
            if (out_bf16)
                out_bf16[k] = __float2bfloat16(o);
            else
                out[k] = o;
            continue;
        }
        uint64_t slot = slot0 + (uint64_t)gg * splits;
        part_acc[slot * HEAD_DIM + dim] = A;
        if (dim == 0) {
            float M = fmaxf(fmaxf(wm[0][gg], wm[1][gg]), fmaxf(wm[2][gg], wm[3][gg])), L = 0;
            for (int w = 0; w < 4; w++)
                L += wm[w][gg] == -INFINITY ? 0.0f : wl[w][gg] * exp2f(wm[w][gg] - M);
            part_m[slot] = M;
            part_l[slot] = L;
        }
    }
}

template <int G>
static cudaError_t launch_decode(dim3 grid, cudaStream_t stream, uint32_t layer,
                                 const kvg_seqdesc *descs, const uint32_t *qseq,
                                 const uint32_t *qpos, const uint16_t *q, uint32_t n_kv_heads,
                                 uint32_t splits, float *pm, float *pl, float *pa, float *out,
                                 __nv_bfloat16 *out_bf16)
{
    static bool raised = false;
    if (!raised) {
        cudaError_t e = cudaFuncSetAttribute(decode_attention_kernel<G>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)DC_SMEM);
        if (e != cudaSuccess)
            return e;
        raised = true;
    }
    decode_attention_kernel<G><<<grid, DC_THREADS, DC_SMEM, stream>>>(
        layer, descs, qseq, qpos, q, n_kv_heads, splits, pm, pl, pa, out, out_bf16);
    return cudaSuccess;
}

/* ------------------------------------------------------------ attention dispatch --- */

static uint32_t n_splits(uint32_t max_context)
{
    return (max_context + SPLIT_TOKENS - 1) / SPLIT_TOKENS;
}

/* Room for any number of queries up to n_queries: the bf16 kernel's split count grows as the
 * batch shrinks, so a smaller batch can need more partials (without f, one KV head: the most
 * splits). */
size_t kvg_attention_work_bytes(const kvg_format *f, uint32_t n_q_heads, uint32_t n_queries,
                                uint32_t max_context)
{
    uint64_t most = (uint64_t)n_queries * n_splits(max_context);
    for (uint32_t q = 1; q <= n_queries; q++) {
        uint64_t need = (uint64_t)q * dec_splits(q, f ? f->n_heads : 1);
        most = need > most ? need : most;
    }
    return (size_t)most * n_q_heads * (HEAD_DIM + 2) * sizeof(float);
}

template <int G>
static void launch_attention(dim3 grid, cudaStream_t st, const fmt_dev &d, uint32_t layer,
                             const kvg_seqdesc *descs, const uint32_t *qseq, const uint32_t *qpos,
                             const uint16_t *q, uint32_t n_kv_heads, uint32_t splits, float *pm,
                             float *pl, float *pa)
{
    switch (d.dtype) {
    case KVG_BF16:
        attention_kernel<G, KVG_BF16><<<grid, WARPS * 32, 0, st>>>(d, layer, descs, qseq, qpos, q,
                                                                   n_kv_heads, splits, pm, pl, pa);
        break;
    case KVG_FP8:
        attention_kernel<G, KVG_FP8><<<grid, WARPS * 32, 0, st>>>(d, layer, descs, qseq, qpos, q,
                                                                  n_kv_heads, splits, pm, pl, pa);
        break;
    case KVG_INT8:
        attention_kernel<G, KVG_INT8><<<grid, WARPS * 32, 0, st>>>(d, layer, descs, qseq, qpos, q,
                                                                   n_kv_heads, splits, pm, pl, pa);
        break;
    default:
        attention_kernel<G, KVG_INT4><<<grid, WARPS * 32, 0, st>>>(d, layer, descs, qseq, qpos, q,
                                                                   n_kv_heads, splits, pm, pl, pa);
        break;
    }
}

kv_status kvg_attention(const kvg_format *f, uint32_t n_q_heads, uint32_t layer,
                        const kvg_seqdesc *descs, const uint32_t *qseq, const uint32_t *qpos,
                        uint32_t n_queries, uint32_t max_context, const uint16_t *q, float *out,
                        void *work, kv_err *err)
{
    return kvg_attention_on(f, n_q_heads, layer, descs, qseq, qpos, n_queries, max_context, q, out,
                            NULL, work, 0, err);
}

kv_status kvg_attention_on(const kvg_format *f, uint32_t n_q_heads, uint32_t layer,
                           const kvg_seqdesc *descs, const uint32_t *qseq, const uint32_t *qpos,
                           uint32_t n_queries, uint32_t max_context, const uint16_t *q, float *out,
                           uint16_t *out_bf16, void *work, cudaStream_t stream, kv_err *err)
{
    if (n_queries == 0)
        return KV_OK;
    uint32_t g = n_q_heads / f->n_heads;
    if (g * f->n_heads != n_q_heads || (g != 1 && g != 2 && g != 4 && g != 8))
        return kv_errorf(err, KV_ERR_INPUT,
                         "kvgpu: %u query heads over %u KV heads: groups of 1, 2, 4 or 8 only",
                         n_q_heads, f->n_heads);
    fmt_dev d = fmt_dev_of(f);
    const uint32_t nh = f->n_heads;
    const bool fast = f->dtype == KVG_BF16;
    uint32_t splits = fast ? dec_splits(n_queries, nh) : n_splits(max_context);
    uint64_t slots = (uint64_t)n_queries * n_q_heads * splits;
    float *pm = (float *)work, *pl = pm + slots, *pa = pl + slots;
    dim3 grid(n_queries * f->n_heads, splits);
    if (fast) {
        cudaError_t e;
        __nv_bfloat16 *ob = (__nv_bfloat16 *)out_bf16;
        switch (g) {
        case 1: e = launch_decode<1>(grid, stream, layer, descs, qseq, qpos, q, nh, splits, pm, pl, pa, out, ob); break;
        case 2: e = launch_decode<2>(grid, stream, layer, descs, qseq, qpos, q, nh, splits, pm, pl, pa, out, ob); break;
        case 4: e = launch_decode<4>(grid, stream, layer, descs, qseq, qpos, q, nh, splits, pm, pl, pa, out, ob); break;
        default: e = launch_decode<8>(grid, stream, layer, descs, qseq, qpos, q, nh, splits, pm, pl, pa, out, ob); break;
        }
        if (e != cudaSuccess)
            return kv_errorf(err, KV_ERR_INPUT, "kvgpu: decode attention shared memory: %s",
                             cudaGetErrorString(e));
        LAUNCH_CHECK("decode_attention_kernel");
        if (splits == 1) /* the kernel wrote the output */
            return KV_OK;
        combine_kernel<<<n_queries * n_q_heads, HEAD_DIM, 0, stream>>>(
            pm, pl, pa, qseq, qpos, n_q_heads, splits, 0, out, ob);
        LAUNCH_CHECK("combine_kernel");
        return KV_OK;
    }
    switch (g) {
    case 1: launch_attention<1>(grid, stream, d, layer, descs, qseq, qpos, q, nh, splits, pm, pl, pa); break;
    case 2: launch_attention<2>(grid, stream, d, layer, descs, qseq, qpos, q, nh, splits, pm, pl, pa); break;
    case 4: launch_attention<4>(grid, stream, d, layer, descs, qseq, qpos, q, nh, splits, pm, pl, pa); break;
    default: launch_attention<8>(grid, stream, d, layer, descs, qseq, qpos, q, nh, splits, pm, pl, pa); break;
    }
    LAUNCH_CHECK("attention_kernel");
    combine_kernel<<<n_queries * n_q_heads, HEAD_DIM, 0, stream>>>(
        pm, pl, pa, qseq, qpos, n_q_heads, splits, SPLIT_TOKENS, out, (__nv_bfloat16 *)out_bf16);
    LAUNCH_CHECK("combine_kernel");
    return KV_OK;
}

/* ------------------------------------------------------------------ small-batch GEMV --- */

/* y[m][n] = x[m][k] W^T (+ y), W stored [n][k] (nn.Linear), for m <= 4 decode rows: a warp per
 * output row streams the row's weights with 16-byte loads, 8 in flight per lane (4 KiB a warp),
 * bypassing L1; x is re-read through L1. fp32 accumulation, bf16 out. Memory-bound: the time of
 * a decode step at batch 1 is the weights' bytes over the read rate. The executor times it
 * against cuBLAS per shape and keeps the faster (model.cu). */
enum { GV_UNROLL = 8, GV_WARPS = 8 };

template <int M>
__global__ void __launch_bounds__(GV_WARPS * 32)
    gemv_kernel(const __nv_bfloat16 *x, const __nv_bfloat16 *w, __nv_bfloat16 *y, uint32_t n,
                uint32_t k, int accumulate)
{
    const uint32_t row = blockIdx.x * GV_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= n)
        return;
    const uint4 *wr = (const uint4 *)(w + (uint64_t)row * k);
    const uint32_t nvec = k / 8;
    float sum[M];
#pragma unroll
    for (int r = 0; r < M; r++)
        sum[r] = 0;
    for (uint32_t base = lane; base < nvec; base += 32 * GV_UNROLL) {
        uint4 wv[GV_UNROLL];
#pragma unroll
        for (int u = 0; u < GV_UNROLL; u++) {
            uint32_t i = base + u * 32;
            wv[u] = i < nvec ? __ldcs(wr + i) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < GV_UNROLL; u++) {
            uint32_t i = base + u * 32;
            if (i >= nvec)
                break;
            const __nv_bfloat162 *wb = (const __nv_bfloat162 *)&wv[u];
            float2 wf[4];
#pragma unroll
            for (int e = 0; e < 4; e++)
                wf[e] = __bfloat1622float2(wb[e]);
#pragma unroll
            for (int r = 0; r < M; r++) {
                uint4 xv = __ldg((const uint4 *)(x + (uint64_t)r * k) + i);
                const __nv_bfloat162 *xb = (const __nv_bfloat162 *)&xv;
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float2 xf = __bfloat1622float2(xb[e]);
                    sum[r] = fmaf(wf[e].x, xf.x, fmaf(wf[e].y, xf.y, sum[r]));
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < M; r++) {
        float v = sum[r];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1)
            v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == 0) {
            __nv_bfloat16 *yp = y + (uint64_t)r * n + row;
            *yp = __float2bfloat16(accumulate ? v + __bfloat162float(*yp) : v);
        }
    }
}

kv_status kvg_gemv_bf16(const uint16_t *x, const uint16_t *w, uint16_t *y, uint32_t m, uint32_t n,
                        uint32_t k, bool accumulate, cudaStream_t stream, kv_err *err)
{
    if (m == 0 || m > KVG_GEMV_MAX_M || k % 8 != 0)
        return kv_errorf(err, KV_ERR_INPUT, "kvgpu: gemv of %u rows, k %u (1..%d rows, k %% 8 == 0)",
                         m, k, KVG_GEMV_MAX_M);
    dim3 grid((n + GV_WARPS - 1) / GV_WARPS);
    const __nv_bfloat16 *xb = (const __nv_bfloat16 *)x, *wb = (const __nv_bfloat16 *)w;
    __nv_bfloat16 *yb = (__nv_bfloat16 *)y;
    int acc = accumulate ? 1 : 0;
    switch (m) {
    case 1: gemv_kernel<1><<<grid, GV_WARPS * 32, 0, stream>>>(xb, wb, yb, n, k, acc); break;
    case 2: gemv_kernel<2><<<grid, GV_WARPS * 32, 0, stream>>>(xb, wb, yb, n, k, acc); break;
    case 3: gemv_kernel<3><<<grid, GV_WARPS * 32, 0, stream>>>(xb, wb, yb, n, k, acc); break;
    default: gemv_kernel<4><<<grid, GV_WARPS * 32, 0, stream>>>(xb, wb, yb, n, k, acc); break;
    }
    LAUNCH_CHECK("gemv_kernel");
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
