/* gpu_util.h — small helpers of kvgpu's test and bench programs: bf16 bits, a seeded normal
 * generator, device and pinned buffers that free themselves, CUDA-event timing (a pair of events
 * that destroy themselves, a median over repeats), the device's short name for result folders,
 * a garbage fill of a sequence's rows. */
#ifndef KV_GPU_UTIL_H
#define KV_GPU_UTIL_H

#include <algorithm>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <vector>

#include "cuda_check.h"
#include "kvgpu.h"

static inline float bf16_to_float(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t float_to_bf16(float f) /* round to nearest even; no NaN inputs */
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

typedef struct rng {
    uint64_t s;
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float rng_normal(rng *r) /* Box-Muller */
{
    double u1 = ((rng_next(r) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (rng_next(r) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A device array that frees itself. */
template <typename T> struct dev_buf {
    T *p = nullptr;
    size_t n = 0;
    explicit dev_buf(size_t n_) : n(n_) { cudaMalloc(&p, (n ? n : 1) * sizeof(T)); }
    explicit dev_buf(const std::vector<T> &v) : n(v.size())
    {
        cudaMalloc(&p, (n ? n : 1) * sizeof(T));
        if (p && n)
            cudaMemcpy(p, v.data(), n * sizeof(T), cudaMemcpyHostToDevice);
    }
    ~dev_buf() { cudaFree(p); }
    dev_buf(const dev_buf &) = delete;
    dev_buf &operator=(const dev_buf &) = delete;
    kv_status get(std::vector<T> *out, kv_err *err) const
    {
        out->resize(n);
        CUDA_TRY(cudaMemcpy(out->data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
        return KV_OK;
    }
};

/* Pinned host memory (the host tier). */
struct pinned_buf {
    void *p = nullptr;
    size_t n;
    explicit pinned_buf(size_t n_) : n(n_) {}
    kv_status alloc(kv_err *err)
    {
        CUDA_TRY(cudaHostAlloc(&p, n ? n : 1, cudaHostAllocDefault));
        return KV_OK;
    }
    ~pinned_buf() { cudaFreeHost(p); }
    pinned_buf(const pinned_buf &) = delete;
    pinned_buf &operator=(const pinned_buf &) = delete;
};

/* Two CUDA events, destroyed with the struct on every path (no leak on an error return). */
struct event_pair {
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    event_pair() = default;
    ~event_pair()
    {
        if (e0)
            cudaEventDestroy(e0);
        if (e1)
            cudaEventDestroy(e1);
    }
    event_pair(const event_pair &) = delete;
    event_pair &operator=(const event_pair &) = delete;
    kv_status init(kv_err *err)
    {
        if (e0 == nullptr)
            CUDA_TRY(cudaEventCreate(&e0));
        if (e1 == nullptr)
            CUDA_TRY(cudaEventCreate(&e1));
        return KV_OK;
    }
};

static inline double median_of(std::vector<double> v)
{
    if (v.empty())
        return NAN;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

/* Run fn(it) n_warm + n_iter times on stream, each run between two CUDA events; the median of
 * the last n_iter runs' device times in *median_s. fn returns a kv_status; its first failure
 * is returned (the events are freed either way). */
template <typename F>
static kv_status time_median(cudaStream_t stream, int n_warm, int n_iter, F fn, double *median_s,
                             kv_err *err)
{
    event_pair ev;
    kv_status st = ev.init(err);
    std::vector<double> ts;
    for (int it = 0; it < n_warm + n_iter && st == KV_OK; it++) {
        CUDA_TRY(cudaEventRecord(ev.e0, stream));
        if ((st = fn(it)) != KV_OK)
            break;
        CUDA_TRY(cudaEventRecord(ev.e1, stream));
        CUDA_TRY(cudaEventSynchronize(ev.e1));
        float ms = 0;
        CUDA_TRY(cudaEventElapsedTime(&ms, ev.e0, ev.e1));
        if (it >= n_warm)
            ts.push_back(ms * 1e-3);
    }
    *median_s = median_of(ts);
    return st;
}

/* The device's short name for result folders: the model without the vendor, its first word,
 * lower case ("NVIDIA H200" -> "h200", "NVIDIA H100 80GB HBM3" -> "h100"). */
static inline void device_slug(const char *name, char *out, size_t out_bytes)
{
    if (strncmp(name, "NVIDIA ", 7) == 0)
        name += 7;
    size_t n = 0;
    for (; name[n] && name[n] != ' ' && n + 1 < out_bytes; n++)
        out[n] = isalnum((unsigned char)name[n]) ? (char)tolower((unsigned char)name[n]) : '-';
    out[n] = 0;
    if (n == 0)
        snprintf(out, out_bytes, "gpu");
}

/* Overwrite every row of a sequence with 0x5a bytes (swap tests). */
kv_status fill_garbage(const kvg_seqdesc *d, uint32_t n_tensors, uint64_t row_bytes, kv_err *err);

/* Random values in every row (bf16 or plain fp8), from a hash: bench data, never zeros. */
kv_status kvg_fill_random(const kvg_format *f, const kvg_seqdesc *d, uint32_t n_tensors,
                          uint32_t seed, kv_err *err);

#endif
