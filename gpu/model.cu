/* model.cu — the model executor: a decoder-only transformer with a preset's real layer shapes,
 * random bf16 weights made on the device from a seed, run over the engine's batch so that a
 * step's time responds to its composition as a serving engine's does.
 *
 * Per layer: RMSNorm; QKV projection (cuBLAS bf16 GEMM, fp32 accumulate); RoPE on Q and K;
 * K and V appended at the allocator's placement (kvg_append, quantized for compressed KV);
 * attention through the placement (decode tokens: kvg_attention, split-K; prefill chunks:
 * kvg_prefill_attention, one fused FlashAttention-style launch for every chunk of the step);
 * output projection added to the residual by the GEMM (beta = 1); RMSNorm; the gated MLP (one
 * GEMM for gate and up, SiLU(gate) x up, the down GEMM added to the residual). Then the final
 * norm of the last token of every sequence (rows gathered on the device) and the LM head.
 * With --layers K < L only K layers run and the step's time is scaled by L / K (stated in the
 * outputs).
 *
 * Serving-engine mechanics, as vLLM: everything runs on one non-blocking stream of the
 * executor; a step's inputs (token rows' sequences and positions, the rows whose logits are
 * needed, the prefill tiles) go up in one copy from pinned memory; a decode-only step of B
 * sequences is padded to a batch-size bucket (1, 2, 4, 8, 16, 24, ... 512, as vLLM's
 * cudagraph_capture_sizes) with rows of no sequence (KVG_NO_SEQ: no KV written, zero
 * attention) and replayed as a CUDA graph captured on the bucket's first use (cuBLAS with a
 * fixed workspace, so that capture allocates nothing). Steps with a prefill chunk run eagerly
 * on the same stream. The captured graphs hold the device descriptor array and the format; a
 * step with others recaptures.
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
#include <algorithm>
#include <vector>

enum { HEAD_DIM = 128, LM_ROWS = 256, N_BUCKETS = 67 };

/* vLLM's capture sizes: 1, 2, 4, then multiples of 8 up to 512. */
static uint32_t bucket_size(uint32_t k)
{
    return k < 3 ? 1u << k : 8 * (k - 2);
}

static int bucket_of(uint32_t batch)
{
    for (int k = 0; k < N_BUCKETS; k++)
        if (bucket_size(k) >= batch)
            return k;
    return -1;
}

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
    /* activations, for rows_cap token rows */
    uint32_t rows_cap, max_decode, max_tiles;
    bf16 *x, *xn, *qkv, *qc, *attn, *gu, *h, *logits_in;
    bf16 *logits;
    void *attn_work;
    /* a step's inputs: [tseq rows_cap][tpos rows_cap][last rows_cap][tiles], pinned and device */
    uint32_t *in_h, *in_d;
    size_t in_bytes;
    void *blas_ws;
    cublasHandle_t blas;
    cudaStream_t stream;
    cudaEvent_t e0, e1, ready;
    /* small-batch GEMMs: per shape, whether kvg_gemv_bf16 beat cuBLAS (timed before a decode
     * bucket of <= KVG_GEMV_MAX_M rows is captured, while tuning is set) */
    struct gemm_choice {
        int m, n, k;
        bool acc, gemv;
    };
    std::vector<gemm_choice> choices;
    bool tuning;
    cudaEvent_t t0, t1;
    /* decode graphs per bucket, valid for graph_descs and graph_fmt */
    cudaGraphExec_t graph[N_BUCKETS];
    const kvg_seqdesc *graph_descs;
    kvg_format graph_fmt;
};

static const size_t BLAS_WS_BYTES = 32u << 20; /* PyTorch's cuBLAS workspace on Hopper */

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

/* y[i] = x[rows[i]] / rms(x[rows[i]]) * g: the final norm of the rows whose logits are needed,
 * gathered on the device (one block per output row). */
__global__ void norm_rows_kernel(const bf16 *x, const uint32_t *rows, const bf16 *g, bf16 *y,
                                 uint32_t dim)
{
    const bf16 *xr = x + (size_t)rows[blockIdx.x] * dim;
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

/* ------------------------------------------------------------------------ helpers --- */

/* Row-major C[m x n] = A[m x k] W^T (+ C when accumulate), W stored [n][k] as a PyTorch
 * nn.Linear weight [out][in]; bf16 in and out, fp32 accumulate. The same cuBLAS call as
 * F.linear (transa T, transb N). With weights stored [k][n] (transa N) a decode step at batch
 * 1 / context 1k took 6.12 ms on the H200, with this layout 5.13-5.27 ms (PyTorch 4.72); the
 * attention, also changed between those runs, is under 2% of such a step. */
static kv_status cublas_gemm(kvg_model *M, const bf16 *a, const bf16 *w, bf16 *c, int m, int n,
                             int k, bool accumulate, kv_err *err)
{
    const float one = 1, zero = 0;
    CUBLAS_TRY(cublasGemmEx(M->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, CUDA_R_16BF, k,
                            a, CUDA_R_16BF, k, accumulate ? &one : &zero, c, CUDA_R_16BF, n,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return KV_OK;
}

/* Row-major C[m x n] = A[m x k] W^T (+ C when accumulate), W stored [n][k] as a PyTorch
 * nn.Linear weight [out][in]; bf16 in and out, fp32 accumulate. The same cuBLAS call as
 * F.linear (transa T, transb N). With weights stored [k][n] (transa N) a decode step at batch
 * 1 / context 1k took 6.12 ms on the H200, with this layout 5.13-5.27 ms (PyTorch 4.72); the
 * attention, also changed between those runs, is under 2% of such a step. For m <= KVG_GEMV_MAX_M the shape's faster of cuBLAS
 * and kvg_gemv_bf16 is used, as timed once (median of 5 on the executor's stream) while
 * M->tuning is set; untimed shapes use cuBLAS. */
static kv_status gemm(kvg_model *M, const bf16 *a, const bf16 *w, bf16 *c, int m, int n, int k,
                      bool accumulate, kv_err *err)
{
    if (m > KVG_GEMV_MAX_M || k % 8 != 0)
        return cublas_gemm(M, a, w, c, m, n, k, accumulate, err);
    for (const auto &ch : M->choices)
        if (ch.m == m && ch.n == n && ch.k == k && ch.acc == accumulate)
            return ch.gemv ? kvg_gemv_bf16((const uint16_t *)a, (const uint16_t *)w,
                                           (uint16_t *)c, m, n, k, accumulate, M->stream, err)
                           : cublas_gemm(M, a, w, c, m, n, k, accumulate, err);
    if (!M->tuning)
        return cublas_gemm(M, a, w, c, m, n, k, accumulate, err);
    double med[2];
    for (int v = 0; v < 2; v++) {
        std::vector<float> ts;
        for (int it = 0; it < 6; it++) {
            CUDA_TRY(cudaEventRecord(M->t0, M->stream));
            kv_status st = v ? kvg_gemv_bf16((const uint16_t *)a, (const uint16_t *)w,
                                             (uint16_t *)c, m, n, k, accumulate, M->stream, err)
                             : cublas_gemm(M, a, w, c, m, n, k, accumulate, err);
            if (st != KV_OK)
                return st;
            CUDA_TRY(cudaEventRecord(M->t1, M->stream));
            CUDA_TRY(cudaEventSynchronize(M->t1));
            float ms = 0;
            CUDA_TRY(cudaEventElapsedTime(&ms, M->t0, M->t1));
            if (it > 0)
                ts.push_back(ms);
        }
        std::sort(ts.begin(), ts.end());
        med[v] = ts[ts.size() / 2];
    }
    M->choices.push_back({m, n, k, accumulate, med[1] < med[0]});
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
    /* room for a step's rows and for the largest decode bucket */
    int kb = bucket_of(M->max_decode);
    M->rows_cap = max_tokens;
    if (kb >= 0 && bucket_size(kb) > M->rows_cap)
        M->rows_cap = bucket_size(kb);
    M->max_tiles = kvg_prefill_max_tiles(max_tokens, max_tokens);
    size_t T = M->rows_cap;
    M->in_bytes = 3 * T * 4 + (size_t)M->max_tiles * sizeof(kvg_prefill_tile);
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
        {(void **)&M->gu, T * 2 * I * 2, "gate/up"},
        {(void **)&M->h, T * I * 2, "mlp hidden"},
        {(void **)&M->logits_in, T * H * 2, "lm head input"},
        {(void **)&M->logits, (size_t)LM_ROWS * m->vocab * 2, "logits"},
        {(void **)&M->in_d, M->in_bytes, "step inputs"},
        {&M->blas_ws, BLAS_WS_BYTES, "cuBLAS workspace"},
    };
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0] && st == KV_OK; i++)
        st = alloc_dev(bufs[i].p, bufs[i].bytes, bufs[i].what, err);
    /* decode attention runs for at most the largest bucket's rows (or max_decode eagerly);
     * sizing its partials for every step row took 4.4 GB at 8192 rows and 8192 tokens */
    uint32_t decode_rows = kb >= 0 && bucket_size(kb) > M->max_decode ? bucket_size(kb)
                                                                       : M->max_decode;
    if (st == KV_OK)
        st = alloc_dev(&M->attn_work,
                       kvg_attention_work_bytes(NULL, M->hq, decode_rows, max_context),
                       "attention work", err);
    if (st == KV_OK)
        CUDA_TRY(cudaHostAlloc((void **)&M->in_h, M->in_bytes, cudaHostAllocDefault));
    if (st == KV_OK && cublasCreate(&M->blas) != CUBLAS_STATUS_SUCCESS)
        st = kv_errorf(err, KV_ERR_INPUT, "kvgpu model: cublasCreate failed");
    if (st == KV_OK) {
        CUDA_TRY(cudaStreamCreateWithFlags(&M->stream, cudaStreamNonBlocking));
        CUBLAS_TRY(cublasSetStream(M->blas, M->stream));
        CUBLAS_TRY(cublasSetWorkspace(M->blas, M->blas_ws, BLAS_WS_BYTES));
        CUDA_TRY(cudaEventCreate(&M->e0));
        CUDA_TRY(cudaEventCreate(&M->e1));
        CUDA_TRY(cudaEventCreateWithFlags(&M->ready, cudaEventDisableTiming));
        CUDA_TRY(cudaEventCreate(&M->t0));
        CUDA_TRY(cudaEventCreate(&M->t1));
        st = cuda_sync(err, "making the model's weights");
    }
    return st;
}

static void drop_graphs(kvg_model *M)
{
    for (int k = 0; k < N_BUCKETS; k++)
        if (M->graph[k]) {
            cudaGraphExecDestroy(M->graph[k]);
            M->graph[k] = NULL;
        }
    M->graph_descs = NULL;
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
    drop_graphs(M);
    void *bufs[] = {M->final_norm, M->lm_head, M->embed, M->x,      M->xn,     M->qkv,
                    M->qc,         M->attn,    M->gu,    M->h,      M->logits_in, M->logits,
                    M->in_d,       M->blas_ws, M->attn_work};
    for (void *b : bufs)
        cudaFree(b);
    cudaFreeHost(M->in_h);
    if (M->blas)
        cublasDestroy(M->blas);
    if (M->stream)
        cudaStreamDestroy(M->stream);
    cudaEvent_t evs[] = {M->e0, M->e1, M->ready, M->t0, M->t1};
    for (cudaEvent_t e : evs)
        if (e)
            cudaEventDestroy(e);
    delete M;
    *mp = NULL;
}

uint64_t kvg_model_weight_bytes(const kvg_model *M)
{
    return M->weight_bytes;
}

void kvg_model_gemv_choices(const kvg_model *M, uint32_t *n_shapes, uint32_t *n_gemv)
{
    *n_shapes = (uint32_t)M->choices.size();
    *n_gemv = 0;
    for (const auto &c : M->choices)
        *n_gemv += c.gemv;
}

uint32_t kvg_model_layers(const kvg_model *M)
{
    return M->layers;
}

/* --------------------------------------------------------------------------- step --- */

/* The forward pass over T rows on M's stream (eager, or being captured): n_decode decode rows
 * first (their sequences and positions in the step inputs; padding rows have KVG_NO_SEQ), then
 * the prefill chunks' rows (n_tiles tiles in the inputs); logits for n_last rows. */
static kv_status forward(kvg_model *M, const kvg_format *f, const kvg_seqdesc *descs_d, uint32_t T,
                         uint32_t n_decode, uint32_t n_tiles, uint32_t n_last, kv_err *err)
{
    uint32_t H = M->m.hidden, I = M->m.intermediate, R = M->rows_cap;
    const uint32_t *tseq = M->in_d, *tpos = M->in_d + R, *last = M->in_d + 2 * R;
    const kvg_prefill_tile *tiles = (const kvg_prefill_tile *)(M->in_d + 3 * R);
    cudaStream_t S = M->stream;
    uint64_t qstride = (uint64_t)M->hq * HEAD_DIM;
    CUDA_TRY(cudaMemcpyAsync(M->x, M->embed, (size_t)T * H * 2, cudaMemcpyDeviceToDevice, S));
    kv_status st = KV_OK;
    for (uint32_t l = 0; l < M->layers && st == KV_OK; l++) {
        const layer_w *w = &M->w[l];
        rmsnorm_kernel<<<T, 256, 0, S>>>(M->x, w->norm1, M->xn, H);
        LAUNCH_CHECK("rmsnorm_kernel");
        if ((st = gemm(M, M->xn, w->qkv, M->qkv, T, M->qkv_dim, H, false, err)) != KV_OK)
            break;
        rope_kernel<<<dim3(T, M->hq + M->hkv), 64, 0, S>>>(M->qkv, M->qc, tpos, M->hq, M->hkv);
        LAUNCH_CHECK("rope_kernel");
        st = kvg_append_strided_on(f, 2 * l, 2, M->qkv_dim, descs_d, tseq, tpos, T,
                                   (const uint16_t *)(M->qkv + M->hq * HEAD_DIM), S, err);
        if (st == KV_OK && n_decode > 0)
            st = kvg_attention_on(f, M->hq, l, descs_d, tseq, tpos, n_decode, M->max_context,
                                  (const uint16_t *)M->qc, NULL, (uint16_t *)M->attn,
                                  M->attn_work, S, err);
        if (st == KV_OK && n_tiles > 0)
            st = kvg_prefill_attention(f, M->hq, l, descs_d, tiles, n_tiles,
                                       (const uint16_t *)M->qc, qstride, (uint16_t *)M->attn,
                                       qstride, S, err);
        if (st != KV_OK)
            break;
        if ((st = gemm(M, M->attn, w->o, M->x, T, H, M->hq * HEAD_DIM, true, err)) != KV_OK)
            break;
        rmsnorm_kernel<<<T, 256, 0, S>>>(M->x, w->norm2, M->xn, H);
        LAUNCH_CHECK("rmsnorm_kernel");
        if ((st = gemm(M, M->xn, w->gu, M->gu, T, 2 * I, H, false, err)) != KV_OK)
            break;
        silu_mul_kernel<<<1024, 256, 0, S>>>(M->gu, M->h, I, (size_t)T * I);
        LAUNCH_CHECK("silu_mul_kernel");
        st = gemm(M, M->h, w->down, M->x, T, H, I, true, err);
    }
    if (st != KV_OK)
        return st;
    /* the last token of every sequence: final norm of the gathered rows, LM head */
    norm_rows_kernel<<<n_last, 256, 0, S>>>(M->x, last, M->final_norm, M->logits_in, H);
    LAUNCH_CHECK("norm_rows_kernel");
    for (uint32_t r0 = 0; r0 < n_last && st == KV_OK; r0 += LM_ROWS) {
        uint32_t rows = n_last - r0 < (uint32_t)LM_ROWS ? n_last - r0 : (uint32_t)LM_ROWS;
        st = gemm(M, M->logits_in + (size_t)r0 * H, M->lm_head, M->logits, rows, M->m.vocab, H,
                  false, err);
    }
    return st;
}

kv_status kvg_model_step(kvg_model *M, const kvg_format *f, const kvg_seqdesc *descs_d,
                         const kvg_seqdesc *descs_h, const kv_step_seq *seqs, uint32_t n_seqs,
                         float *ms, kv_err *err)
{
    (void)descs_h;
    *ms = 0;
    /* rows: every decode token (n == 1) first, then the prefill chunks */
    uint32_t R = M->rows_cap, n_decode = 0, T = 0;
    for (uint32_t i = 0; i < n_seqs; i++) {
        n_decode += seqs[i].n == 1;
        T += seqs[i].n;
    }
    if (T == 0)
        return KV_OK;
    if (T > M->max_tokens || n_decode > M->max_decode)
        return kv_errorf(err, KV_ERR_INPUT,
                         "kvgpu model: %u tokens (%u decoding) in a step, room for %u (%u)", T,
                         n_decode, M->max_tokens, M->max_decode);
    bool decode_only = n_decode == n_seqs;
    int kb = decode_only ? bucket_of(n_decode) : -1;
    if (kb >= 0 && bucket_size(kb) > R)
        kb = -1; /* no room to pad: run it eagerly */
    uint32_t rows = kb >= 0 ? bucket_size(kb) : T;
    uint32_t *tseq = M->in_h, *tpos = M->in_h + R, *last = M->in_h + 2 * R;
    kvg_prefill_tile *tiles = (kvg_prefill_tile *)(M->in_h + 3 * R);
    uint32_t r = 0;
    for (uint32_t i = 0; i < n_seqs; i++)
        if (seqs[i].n == 1) {
            tseq[r] = seqs[i].seq;
            tpos[r] = seqs[i].first;
            last[r] = r;
            r++;
        }
    for (; r < rows && decode_only; r++) { /* padding rows of the bucket */
        tseq[r] = KVG_NO_SEQ;
        tpos[r] = 0;
        last[r] = r;
    }
    std::vector<kvg_prefill_chunk> chunks;
    uint32_t n_last = n_decode;
    for (uint32_t i = 0; i < n_seqs; i++)
        if (seqs[i].n != 1) {
            chunks.push_back({seqs[i].seq, r, seqs[i].first, seqs[i].n});
            for (uint32_t k = 0; k < seqs[i].n; k++, r++) {
                tseq[r] = seqs[i].seq;
                tpos[r] = seqs[i].first + k;
            }
            last[n_last++] = r - 1;
        }
    uint32_t n_tiles = chunks.empty()
                           ? 0
                           : kvg_prefill_tiles(chunks.data(), (uint32_t)chunks.size(), tiles);
    if (decode_only)
        n_last = rows;
    /* after the caller's work on the legacy stream (descriptor and table uploads) */
    CUDA_TRY(cudaEventRecord(M->ready, 0));
    CUDA_TRY(cudaStreamWaitEvent(M->stream, M->ready, 0));
    kv_status st = KV_OK;
    if (kb >= 0 && (M->graph_descs != descs_d || memcmp(&M->graph_fmt, f, sizeof *f) != 0)) {
        drop_graphs(M);
        M->graph_descs = descs_d;
        M->graph_fmt = *f;
    }
    size_t in_used = 3 * (size_t)R * 4 + (size_t)n_tiles * sizeof(kvg_prefill_tile);
    if (kb >= 0 && M->graph[kb] == NULL && rows <= KVG_GEMV_MAX_M) {
        /* time the small GEMMs' two ways in an eager run first (its KV writes are the ones
         * the graph makes again) */
        CUDA_TRY(cudaMemcpyAsync(M->in_d, M->in_h, in_used, cudaMemcpyHostToDevice, M->stream));
        M->tuning = true;
        st = forward(M, f, descs_d, rows, rows, 0, rows, err);
        M->tuning = false;
        if (st != KV_OK)
            return st;
        CUDA_TRY(cudaStreamSynchronize(M->stream));
    }
    if (kb >= 0 && M->graph[kb] == NULL) { /* capture this bucket's decode step */
        cudaGraph_t g = NULL;
        CUDA_TRY(cudaStreamBeginCapture(M->stream, cudaStreamCaptureModeThreadLocal));
        st = forward(M, f, descs_d, rows, rows, 0, rows, err);
        cudaError_t e = cudaStreamEndCapture(M->stream, &g);
        if (st != KV_OK) {
            if (g)
                cudaGraphDestroy(g);
            return st;
        }
        if (e != cudaSuccess)
            return kv_errorf(err, KV_ERR_INPUT, "kvgpu model: capturing a decode step of %u: %s",
                             rows, cudaGetErrorString(e));
        e = cudaGraphInstantiate(&M->graph[kb], g, 0);
        cudaGraphDestroy(g);
        if (e != cudaSuccess)
            return kv_errorf(err, KV_ERR_INPUT, "kvgpu model: instantiating a decode graph: %s",
                             cudaGetErrorString(e));
        CUDA_TRY(cudaGraphUpload(M->graph[kb], M->stream));
    }
    CUDA_TRY(cudaEventRecord(M->e0, M->stream));
    CUDA_TRY(cudaMemcpyAsync(M->in_d, M->in_h, in_used, cudaMemcpyHostToDevice, M->stream));
    if (kb >= 0)
        CUDA_TRY(cudaGraphLaunch(M->graph[kb], M->stream));
    else
        st = forward(M, f, descs_d, T, n_decode, n_tiles, n_last, err);
    CUDA_TRY(cudaEventRecord(M->e1, M->stream));
    CUDA_TRY(cudaEventSynchronize(M->e1));
    if (st != KV_OK)
        return st;
    CUDA_TRY(cudaEventElapsedTime(ms, M->e0, M->e1));
    CUDA_TRY(cudaGetLastError());
    return KV_OK;
}
