/* cuda_check.h — every CUDA runtime and driver call checked, its failure turned into a kv_err
 * naming the call, the file and the line. */
#ifndef KV_CUDA_CHECK_H
#define KV_CUDA_CHECK_H

#include <cuda.h>
#include <cuda_runtime.h>

extern "C" {
#include "status.h"
}

#define CUDA_TRY(call)                                                                             \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return kv_errorf(err, KV_ERR_INPUT, "%s:%d: %s: %s", __FILE__, __LINE__, #call,        \
                             cudaGetErrorString(e_));                                              \
    } while (0)

#define CU_TRY(call)                                                                               \
    do {                                                                                           \
        CUresult r_ = (call);                                                                      \
        if (r_ != CUDA_SUCCESS) {                                                                  \
            const char *s_ = "?";                                                                  \
            cuGetErrorString(r_, &s_);                                                             \
            return kv_errorf(err, KV_ERR_INPUT, "%s:%d: %s: %s", __FILE__, __LINE__, #call, s_);   \
        }                                                                                          \
    } while (0)

/* After a kernel launch: the launch error, named. */
#define LAUNCH_CHECK(what)                                                                         \
    do {                                                                                           \
        cudaError_t e_ = cudaGetLastError();                                                       \
        if (e_ != cudaSuccess)                                                                     \
            return kv_errorf(err, KV_ERR_INPUT, "%s:%d: launch of %s: %s", __FILE__, __LINE__,     \
                             what, cudaGetErrorString(e_));                                        \
    } while (0)

static inline kv_status cuda_sync(kv_err *err, const char *what)
{
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
        return kv_errorf(err, KV_ERR_INPUT, "CUDA error while %s: %s", what,
                         cudaGetErrorString(e));
    return KV_OK;
}

#endif
