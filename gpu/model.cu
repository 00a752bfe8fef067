/* model.cu — the model executor: a decoder-only transformer with a preset's real layer shapes,
 * random bf16 weights made on the device from a seed, run over the engine's batch so that a
 * step's time responds to its composition as a serving engine's does.
 *
 * Per layer: RMSNorm; QKV projection (cuBLAS bf16 GEMM, fp32 accumulate); RoPE on Q and K;
 * K and V appended at the allocator's placement (kvg_append, quantized for compressed KV);
 * attention through the placement (decode tokens: kvg_attention; a prefill chunk of c > 1
 * tokens: its context gathered from the placement, dequantized, into a contiguous buffer, then
 * per query head S = Q K^T and O = P V as batched GEMMs around a causal softmax, in blocks of
 * queries); output projection added to the residual by the GEMM (beta = 1); RMSNorm; the gated
 * MLP (one GEMM for gate and up, SiLU(gate) x up, the down GEMM added to the residual). Then the
 * final norm and the LM head for the last token of every sequence. With --layers K < L only K
 * layers run and the step's time is scaled by L / K (stated in the outputs).
 */
#include "kvgpu.h"
#include "cuda_check.h"
#include "model.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

enum { HEAD_DIM = 128, Q_BLOCK = 512 };

#define CUBLAS_TRY(call)                                                                           \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return kv_errorf(err, KV_ERR_INPUT, "%s:%d: %s: cuBLAS status %d", __FILE__,          \
                             __LINE__, #call, (int)s_);                                            \
    } while (0)

typedef __nv_bfloat16 bf16;

struct layer_w {
    bf16 *qkv, *o, *gu, *down, *norm1, *norm2;
};

struct kvg_model {
    kv_model m;
    uint32_t layers, hq, hkv, qkv_dim, max_tokens, max_context;
    std::vector<layer_w> w;
    bf16 *final_norm, *lm_head, *embed;
    uint64_t weight_bytes;
    /* activations */
    bf16 *x, *xn, *qkv, *qc, *attn, *gu, *h, *logits_in;
    float *attn_f;
    bf16 *logits;
    uint32_t max_decode;
    void *attn_work;
    bf16 *kbuf, *vbuf, *p;
    float *s;
    uint32_t *tseq, *tpos, *last_rows;
    const void **ptrs; /* batched GEMM pointer arrays (device) */
    cublasHandle_t blas;
    cudaEvent_t e0, e1;
};

/* ------------------------------------------------------------------------- kernels --- */

__global__ void init_kernel(bf16 *p, size_t n, uint64_t seed, float scale)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        float u = (float)(z >> 40) / 16777216.0f * 2.0f - 1.0f; /* uniform in [-1, 1) */
        p[i] = __float2bfloat16(u * scale);
    }
}

/* y = x / rms(x) * g, one block per row */
__global__ void rmsnorm_kernel(const bf16 *x, const bf16 *g, bf16 *y, uint32_t dim)
{
    const bf16 *xr = x + (size_t)blockIdx.x * dim;
    bf16 *yr = y + (size_t)blockIdx.x * dim;
    float ss = 0;
    for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = __bfloat162float(xr[i]);
        ss += v * v;
    }
    __shared__ float red[32];
    for (int o = 16; o > 0; o >>= 1)
        ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (threadIdx.x % 32 == 0)
        red[threadIdx.x / 32] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        ss = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0;
        for (int o = 16; o > 0; o >>= 1)
            ss += __shfl_xor_sync(0xffffffffu, ss, o);
        if (threadIdx.x == 0)
            red[0] = rsqrtf(ss / dim + 1e-5f);
    }
    __syncthreads();
    float r = red[0];
    for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
        yr[i] = __float2bfloat16(__bfloat162float(xr[i]) * r * __bfloat162float(g[i]));
}

/* RoPE (theta 500000) on row t's Q and K heads in place; Q also copied to qc[t][hq][d]. */
__global__ void rope_kernel(bf16 *qkv, bf16 *qc, const uint32_t *pos, uint32_t hq, uint32_t hkv)
{
    uint32_t t = blockIdx.x, head = blockIdx.y, i = threadIdx.x; /* i < 64: a pair (i, i+64) */
    bool is_q = head < hq;
    if (head >= hq + hkv)
        return;
    bf16 *v = qkv + (size_t)t * (hq + 2 * hkv) * HEAD_DIM + (size_t)head * HEAD_DIM;
    float inv = powf(500000.0f, -2.0f * i / HEAD_DIM);
    float s, c;
    sincosf(pos[t] * inv, &s, &c);
    float a = __bfloat162float(v[i]), b = __bfloat162float(v[i + 64]);
    bf16 ra = __float2bfloat16(a * c - b * s), rb = __float2bfloat16(b * c + a * s);
    v[i] = ra;
    v[i + 64] = rb;
    if (is_q) {
        bf16 *q = qc + ((size_t)t * hq + head) * HEAD_DIM;
        q[i] = ra;
        q[i + 64] = rb;
    }
}

__global__ void silu_mul_kernel(const bf16 *gu, bf16 *h, uint32_t inter, size_t n)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n;
         k += (size_t)gridDim.x * blockDim.x) {
        size_t t = k / inter, j = k % inter;
        float g = __bfloat162float(gu[t * 2 * inter + j]);
        float u = __bfloat162float(gu[t * 2 * inter + inter + j]);
        h[k] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
    }
}

__global__ void to_bf16_kernel(const float *a, bf16 *b, size_t n)
{
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n;
         k += (size_t)gridDim.x * blockDim.x)
        b[k] = __float2bfloat16(a[k]);
}

/* Causal softmax of S rows (query block rows q0.., context ctx, queries at pos0 + row) into P,
 * scaled by 1/sqrt(d). One block per (row, head). */
__global__ void softmax_kernel(const float *s, bf16 *p, uint32_t rows, uint32_t ctx, uint32_t pos0)
{
    uint32_t r = blockIdx.x, h = blockIdx.y;
    const float *sr = s + ((size_t)h * rows + r) * ctx;
    bf16 *pr = p + ((size_t)h * rows + r) * ctx;
    uint32_t n = min(ctx, pos0 + r + 1);
    const float scale = rsqrtf((float)HEAD_DIM);
    __shared__ float red[32];
    float m = -INFINITY;
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
        m = fmaxf(m, sr[i] * scale);
    for (int o = 16; o > 0; o >>= 1)
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (threadIdx.x % 32 == 0)
        red[threadIdx.x / 32] = m;
    __syncthreads();
    m = -INFINITY;
    for (uint32_t k = 0; k < blockDim.x / 32; k++)
        m = fmaxf(m, red[k]);
    __syncthreads();
    float l = 0;
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x)
        l += __expf(sr[i] * scale - m);
    for (int o = 16; o > 0; o >>= 1)
        l += __shfl_xor_sync(0xffffffffu, l, o);
    if (threadIdx.x % 32 == 0)
        red[threadIdx.x / 32] = l;
    __syncthreads();
    l = 0;
    for (uint32_t k = 0; k < blockDim.x / 32; k++)
        l += red[k];
    for (uint32_t i = threadIdx.x; i < ctx; i += blockDim.x)
        pr[i] = __float2bfloat16(i < n ? __expf(sr[i] * scale - m) / l : 0.0f);
}

/* ------------------------------------------------------------------------ helpers --- */

/* Row-major C[m x n] = A[m x k] B[k x n] (+ C when accumulate), bf16 in and out. */
static kv_status gemm(kvg_model *M, const bf16 *a, const bf16 *b, bf16 *c, int m, int n, int k,
                      bool accumulate, kv_err *err)
{
    const float one = 1, zero = 0;
    CUBLAS_TRY(cublasGemmEx(M->blas, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, b, CUDA_R_16BF, n,
                            a, CUDA_R_16BF, k, accumulate ? &one : &zero, c, CUDA_R_16BF, n,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return KV_OK;
}

static kv_status alloc_dev(void **p, size_t bytes, const char *what, kv_err *err)
{
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess)
        return kv_errorf(err, KV_ERR_NOMEM, "kvgpu model: %s (%.1f MiB): %s", what,
                         bytes / 1048576.0, cudaGetErrorString(e));
    return KV_OK;
}

static kv_status init_w(bf16 **p, size_t n, uint64_t seed, float scale, kvg_model *M, kv_err *err)
{
    kv_status st = alloc_dev((void **)p, n * sizeof(bf16), "weights", err);
    if (st != KV_OK)
        return st;
    init_kernel<<<1024, 256>>>(*p, n, seed, scale);
    LAUNCH_CHECK("init_kernel");
    M->weight_bytes += n * sizeof(bf16);
    return KV_OK;
}

/* ------------------------------------------------------------------------- create --- */

kv_status kvg_model_create(const kv_model *m, uint32_t layers, uint32_t max_tokens,
                           uint32_t max_decode, uint32_t max_context, uint64_t seed,
                           kvg_model **out, kv_err *err)
{
    *out = NULL;
    if (m->head_dim != HEAD_DIM || m->mla_latent_dim || !m->gated_mlp)
        return kv_errorf(err, KV_ERR_INPUT,
                         "kvgpu model: %s: needs head_dim %d, no MLA and a gated MLP", m->name,
                         HEAD_DIM);
    kvg_model *M = new kvg_model();
    *out = M;
    M->m = *m;
    M->layers = layers ? (layers < m->n_layers ? layers : m->n_layers) : m->n_layers;
    M->hq = m->n_heads;
    M->hkv = m->n_kv_heads;
    M->qkv_dim = (M->hq + 2 * M->hkv) * HEAD_DIM;
    M->max_tokens = max_tokens;
    M->max_context = max_context;
    M->max_decode = max_decode < max_tokens ? max_decode : max_tokens;
    uint32_t H = m->hidden, I = m->intermediate;
    float ws = 1.0f / sqrtf((float)H), ds = 1.0f / sqrtf((float)I);
    kv_status st = KV_OK;
    M->w.resize(M->layers);
    for (uint32_t l = 0; l < M->layers && st == KV_OK; l++) {
        layer_w *w = &M->w[l];
        uint64_t s = seed * 1000 + l * 8;
        st = init_w(&w->qkv, (size_t)H * M->qkv_dim, s + 1, ws, M, err);
        if (st == KV_OK)
            st = init_w(&w->o, (size_t)M->hq * HEAD_DIM * H, s + 2, ws, M, err);
        if (st == KV_OK)
            st = init_w(&w->gu, (size_t)H * 2 * I, s + 3, ws, M, err);
        if (st == KV_OK)
            st = init_w(&w->down, (size_t)I * H, s + 4, ds, M, err);
        if (st == KV_OK)
            st = init_w(&w->norm1, H, s + 5, 1.0f, M, err);
        if (st == KV_OK)
            st = init_w(&w->norm2, H, s + 6, 1.0f, M, err);
    }
    if (st == KV_OK)
        st = init_w(&M->final_norm, H, seed + 7, 1.0f, M, err);
    if (st == KV_OK)
        st = init_w(&M->lm_head, (size_t)H * m->vocab, seed + 8, ws, M, err);
    if (st == KV_OK)
        st = init_w(&M->embed, (size_t)max_tokens * H, seed + 9, 1.0f, M, err);
    size_t T = max_tokens;
    struct {
        void **p;
        size_t bytes;
        const char *what;
    } bufs[] = {
        {(void **)&M->x, T * H * 2, "x"},
        {(void **)&M->xn, T * H * 2, "xn"},
        {(void **)&M->qkv, T * M->qkv_dim * 2, "qkv"},
        {(void **)&M->qc, T * M->hq * HEAD_DIM * 2, "q"},
        {(void **)&M->attn, T * M->hq * HEAD_DIM * 2, "attention out"},
        {(void **)&M->attn_f, T * M->hq * HEAD_DIM * 4, "attention out (f32)"},
        {(void **)&M->gu, T * 2 * I * 2, "gate/up"},
        {(void **)&M->h, T * I * 2, "mlp hidden"},
        {(void **)&M->logits_in, T * H * 2, "lm head input"},
        {(void **)&M->logits, (size_t)256 * m->vocab * 2, "logits"},
        {(void **)&M->kbuf, (size_t)max_context * M->hkv * HEAD_DIM * 2, "K context"},
        {(void **)&M->vbuf, (size_t)max_context * M->hkv * HEAD_DIM * 2, "V context"},
        {(void **)&M->s, (size_t)Q_BLOCK * max_context * M->hq * 4, "scores"},
        {(void **)&M->p, (size_t)Q_BLOCK * max_context * M->hq * 2, "weights"},
        {(void **)&M->tseq, T * 4, "token sequences"},
        {(void **)&M->tpos, T * 4, "token positions"},
        {(void **)&M->last_rows, T * 4, "last rows"},
        {(void **)&M->ptrs, (size_t)5 * M->hq * sizeof(void *), "pointer arrays"},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0] && st == KV_OK; i++)
        st = alloc_dev(bufs[i].p, bufs[i].bytes, bufs[i].what, err);
    if (st == KV_OK)
        st = alloc_dev(&M->attn_work, kvg_attention_work_bytes(NULL, M->hq, M->max_decode, max_context),
                       "attention work", err);
    if (st == KV_OK && cublasCreate(&M->blas) != CUBLAS_STATUS_SUCCESS)
        st = kv_errorf(err, KV_ERR_INPUT, "kvgpu model: cublasCreate failed");
    if (st == KV_OK) {
        CUDA_TRY(cudaEventCreate(&M->e0));
        CUDA_TRY(cudaEventCreate(&M->e1));
        st = cuda_sync(err, "making the model's weights");
    }
    return st;
}

void kvg_model_destroy(kvg_model **mp)
{
    kvg_model *M = mp ? *mp : NULL;
    if (M == NULL)
        return;
    for (auto &w : M->w) {
        cudaFree(w.qkv);
        cudaFree(w.o);
        cudaFree(w.gu);
        cudaFree(w.down);
        cudaFree(w.norm1);
        cudaFree(w.norm2);
    }
    void *bufs[] = {M->final_norm, M->lm_head, M->embed,  M->x,         M->xn,     M->qkv,
                    M->qc,         M->attn,    M->attn_f, M->gu,        M->h,      M->logits_in,
                    M->logits,     M->kbuf,    M->vbuf,   M->s,         M->p,      M->tseq,
                    M->tpos,       M->last_rows, (void *)M->ptrs, M->attn_work};
    for (void *b : bufs)
        cudaFree(b);
    if (M->blas)
        cublasDestroy(M->blas);
    delete M;
    *mp = NULL;
}

uint64_t kvg_model_weight_bytes(const kvg_model *M)
{
    return M->weight_bytes;
}

uint32_t kvg_model_layers(const kvg_model *M)
{
    return M->layers;
}

/* --------------------------------------------------------------------------- step --- */

/* Attention of one prefill chunk (seq, positions first..first+c-1) for layer l, through
 * gathered K/V and batched GEMMs, into M->attn rows row0... */
static kv_status prefill_attention(kvg_model *M, const kvg_format *f, const kvg_seqdesc *host_desc,
                                   uint32_t layer, uint32_t row0, uint32_t first, uint32_t c,
                                   kv_err *err)
{
    uint32_t ctx = first + c, G = M->hq / M->hkv, kvd = M->hkv * HEAD_DIM;
    kvg_seqdesc d = *host_desc;
    d.n_tokens = ctx;
    kv_status st = kvg_gather_layer(f, &d, layer, M->kbuf, M->vbuf, err);
    if (st != KV_OK)
        return st;
    const float one = 1, zero = 0;
    for (uint32_t q0 = 0; q0 < c; q0 += Q_BLOCK) {
        uint32_t rows = c - q0 < (uint32_t)Q_BLOCK ? c - q0 : (uint32_t)Q_BLOCK;
        /* S_h[rows x ctx] = Q_h K_kh^T; O_h = P_h V_kh */
        std::vector<const void *> ptr(5 * M->hq);
        for (uint32_t h = 0; h < M->hq; h++) {
            ptr[h] = M->kbuf + (size_t)(h / G) * HEAD_DIM;
            ptr[M->hq + h] = M->qc + ((size_t)(row0 + q0) * M->hq + h) * HEAD_DIM;
            ptr[2 * M->hq + h] = M->s + (size_t)h * rows * ctx;
            ptr[3 * M->hq + h] = M->vbuf + (size_t)(h / G) * HEAD_DIM;
            ptr[4 * M->hq + h] = M->p + (size_t)h * rows * ctx;
        }
        CUDA_TRY(cudaMemcpyAsync(M->ptrs, ptr.data(), ptr.size() * sizeof(void *),
                                 cudaMemcpyHostToDevice));
        const void **P = M->ptrs;
        CUBLAS_TRY(cublasGemmBatchedEx(M->blas, CUBLAS_OP_T, CUBLAS_OP_N, ctx, rows, HEAD_DIM, &one,
                                       P, CUDA_R_16BF, kvd, P + M->hq, CUDA_R_16BF,
                                       M->hq * HEAD_DIM, &zero, (void *const *)(P + 2 * M->hq),
                                       CUDA_R_32F, ctx, M->hq, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
        softmax_kernel<<<dim3(rows, M->hq), 256>>>(M->s, M->p, rows, ctx, first + q0);
        LAUNCH_CHECK("softmax_kernel");
        /* O_h (rows x d, ld hq*d) = P_h (rows x ctx) V_kh (ctx x d, ld kvd) */
        std::vector<const void *> optr(M->hq);
        for (uint32_t h = 0; h < M->hq; h++)
            optr[h] = M->attn + ((size_t)(row0 + q0) * M->hq + h) * HEAD_DIM;
        CUDA_TRY(cudaMemcpyAsync(M->ptrs + 2 * M->hq, optr.data(), M->hq * sizeof(void *),
                                 cudaMemcpyHostToDevice));
        CUBLAS_TRY(cublasGemmBatchedEx(M->blas, CUBLAS_OP_N, CUBLAS_OP_N, HEAD_DIM, rows, ctx, &one,
                                       P + 3 * M->hq, CUDA_R_16BF, kvd, P + 4 * M->hq, CUDA_R_16BF,
                                       ctx, &zero, (void *const *)(P + 2 * M->hq), CUDA_R_16BF,
                                       M->hq * HEAD_DIM, M->hq, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT));
        /* the pointer arrays are rewritten next block: wait for this one's GEMMs */
        CUDA_TRY(cudaStreamSynchronize(0));
    }
    return KV_OK;
}

kv_status kvg_model_step(kvg_model *M, const kvg_format *f, const kvg_seqdesc *descs_d,
                         const kvg_seqdesc *descs_h, const kv_step_seq *seqs, uint32_t n_seqs,
                         float *ms, kv_err *err)
{
    *ms = 0;
    /* rows: every decode token (n == 1) first, then the prefill chunks */
    std::vector<uint32_t> tseq, tpos, last;
    std::vector<uint32_t> chunk_idx;
    for (uint32_t i = 0; i < n_seqs; i++)
        if (seqs[i].n == 1) {
            tseq.push_back(seqs[i].seq);
            tpos.push_back(seqs[i].first);
            last.push_back((uint32_t)tseq.size() - 1);
        } else {
            chunk_idx.push_back(i);
        }
    uint32_t n_decode = (uint32_t)tseq.size();
    std::vector<uint32_t> chunk_row;
    for (uint32_t i : chunk_idx) {
        chunk_row.push_back((uint32_t)tseq.size());
        for (uint32_t k = 0; k < seqs[i].n; k++) {
            tseq.push_back(seqs[i].seq);
            tpos.push_back(seqs[i].first + k);
        }
        last.push_back((uint32_t)tseq.size() - 1);
    }
    uint32_t T = (uint32_t)tseq.size();
    if (T == 0)
        return KV_OK;
    if (T > M->max_tokens || n_decode > M->max_decode)
        return kv_errorf(err, KV_ERR_INPUT,
                         "kvgpu model: %u tokens (%u decoding) in a step, room for %u (%u)", T,
                         n_decode, M->max_tokens, M->max_decode);
    uint32_t H = M->m.hidden, I = M->m.intermediate;
    CUDA_TRY(cudaEventRecord(M->e0));
    CUDA_TRY(cudaMemcpyAsync(M->tseq, tseq.data(), T * 4, cudaMemcpyHostToDevice));
    CUDA_TRY(cudaMemcpyAsync(M->tpos, tpos.data(), T * 4, cudaMemcpyHostToDevice));
    CUDA_TRY(cudaMemcpyAsync(M->x, M->embed, (size_t)T * H * 2, cudaMemcpyDeviceToDevice));
    kv_status st = KV_OK;
    for (uint32_t l = 0; l < M->layers && st == KV_OK; l++) {
        const layer_w *w = &M->w[l];
        rmsnorm_kernel<<<T, 256>>>(M->x, w->norm1, M->xn, H);
        LAUNCH_CHECK("rmsnorm_kernel");
        if ((st = gemm(M, M->xn, w->qkv, M->qkv, T, M->qkv_dim, H, false, err)) != KV_OK)
            break;
        rope_kernel<<<dim3(T, M->hq + M->hkv), 64>>>(M->qkv, M->qc, M->tpos, M->hq, M->hkv);
        LAUNCH_CHECK("rope_kernel");
        st = kvg_append_strided(f, 2 * l, 2, M->qkv_dim, descs_d, M->tseq, M->tpos, T,
                                (const uint16_t *)(M->qkv + M->hq * HEAD_DIM), err);
        if (st == KV_OK && n_decode > 0) {
            st = kvg_attention(f, M->hq, l, descs_d, M->tseq, M->tpos, n_decode, M->max_context,
                               (const uint16_t *)M->qc, M->attn_f, M->attn_work, err);
            size_t n = (size_t)n_decode * M->hq * HEAD_DIM;
            to_bf16_kernel<<<256, 256>>>(M->attn_f, M->attn, n);
            LAUNCH_CHECK("to_bf16_kernel");
        }
        for (size_t k = 0; k < chunk_idx.size() && st == KV_OK; k++) {
            const kv_step_seq *c = &seqs[chunk_idx[k]];
            st = prefill_attention(M, f, &descs_h[c->seq], l, chunk_row[k], c->first, c->n, err);
        }
        if (st != KV_OK)
            break;
        if ((st = gemm(M, M->attn, w->o, M->x, T, H, M->hq * HEAD_DIM, true, err)) != KV_OK)
            break;
        rmsnorm_kernel<<<T, 256>>>(M->x, w->norm2, M->xn, H);
        LAUNCH_CHECK("rmsnorm_kernel");
        if ((st = gemm(M, M->xn, w->gu, M->gu, T, 2 * I, H, false, err)) != KV_OK)
            break;
        silu_mul_kernel<<<1024, 256>>>(M->gu, M->h, I, (size_t)T * I);
        LAUNCH_CHECK("silu_mul_kernel");
        st = gemm(M, M->h, w->down, M->x, T, H, I, true, err);
    }
    if (st != KV_OK)
        return st;
    /* the last token of every sequence: final norm, LM head (256 rows at a time) */
    uint32_t n_last = (uint32_t)last.size();
    CUDA_TRY(cudaMemcpyAsync(M->last_rows, last.data(), n_last * 4, cudaMemcpyHostToDevice));
    for (uint32_t i = 0; i < n_last; i++) /* gather rows: small, a copy each */
        CUDA_TRY(cudaMemcpyAsync(M->logits_in + (size_t)i * H, M->x + (size_t)last[i] * H, H * 2,
                                 cudaMemcpyDeviceToDevice));
    rmsnorm_kernel<<<n_last, 256>>>(M->logits_in, M->final_norm, M->logits_in, H);
    LAUNCH_CHECK("rmsnorm_kernel (final)");
    for (uint32_t r0 = 0; r0 < n_last && st == KV_OK; r0 += 256) {
        uint32_t rows = n_last - r0 < 256 ? n_last - r0 : 256;
        st = gemm(M, M->logits_in + (size_t)r0 * H, M->lm_head, M->logits, rows,
                  M->m.vocab, H, false, err);
    }
    CUDA_TRY(cudaEventRecord(M->e1));
    CUDA_TRY(cudaEventSynchronize(M->e1));
    CUDA_TRY(cudaEventElapsedTime(ms, M->e0, M->e1));
    CUDA_TRY(cudaGetLastError());
    return st;
}
