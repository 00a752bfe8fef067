/* costmodel.h — kvsim's executor: a per-iteration roofline.
 *
 * For one GPU of a tp-way replica (weights, heads and KV divided by tp):
 *   prefill  F_p = 2 P_a T_p + 4 L H_q d A_p          B_p = W + T_p k
 *   decode   F_d = 2 P_a N_d + 4 L H_q d C_d          B_d = W + C_d k + N_d k
 *   t_x      = max(F_x / (peak x eff_compute), B_x / (hbm x eff_memory))   for x = p, d
 *   step     = overhead + t_p + t_d - (W / (hbm x eff_memory) when both run: weights are read
 *              once per step)
 * with P_a active parameters per GPU, T_p prefill tokens, A_p attention pairs of the prefill
 * chunks (sum of c (context + c/2)), N_d decoding sequences, C_d their summed context, L layers,
 * H_q query heads per GPU, d head dim, W weight bytes per GPU, k KV bytes per token per GPU.
 * Swaps (transfer effects between the device and the host tier): copies x copy_latency + bytes /
 * link bandwidth, per direction, over the host tier's link (kv_tier_link, tier.h), which is the
 * GPU preset's host link unless a calibration file replaces it. Device copies (grow
 * moves, CoW): bytes x 2 / (hbm x eff_memory) (read and write). Chunk maps: map_us and
 * unmap_us per call. Coefficients come from the GPU preset, or a calibration file (--calib,
 * written by `kvgpu calibrate`): an INI [calibration] section with any of eff_memory,
 * eff_compute, step_overhead_ms, copy_latency_us, h2d_gbps, d2h_gbps, map_us, unmap_us.
 */
#ifndef KV_COSTMODEL_H
#define KV_COSTMODEL_H

#include "executor.h"
#include "preset.h"
#include "tier.h"

typedef struct kv_costmodel {
    kv_gpu gpu;           /* coefficients, possibly calibrated */
    kv_tier_link host_link; /* the host tier's link: the GPU's, possibly calibrated */
    double active_params; /* per GPU */
    double weight_bytes;  /* per GPU */
    double kv_token_bytes;
    double attn_flops_per_pair; /* 4 x layers x query heads per GPU x head dim */
} kv_costmodel;

void kv_costmodel_init(kv_costmodel *cm, const kv_model *m, const kv_gpu *g, uint32_t tp,
                       uint64_t kv_token_bytes);

/* Override coefficients from a calibration file. KV_OK, KV_ERR_IO or KV_ERR_INPUT. */
kv_status kv_costmodel_calibrate(kv_costmodel *cm, const char *path, kv_err *err);

kv_step_time kv_costmodel_step(void *cm, const kv_step_work *w);

kv_executor kv_costmodel_executor(kv_costmodel *cm);

/* The host tier's link as the GPU preset and calibration give it. */
kv_tier_link kv_gpu_host_link(const kv_gpu *g);

#endif
