/* costmodel.c — the roofline executor. Formulas in costmodel.h. */
#include "costmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inifile.h"

/* ------------------------------------------------------------------------------------------ */

static bool on_calib(void *ctx, const char *section, const char *key, const char *v, char *why,
                     size_t why_bytes)
{
    kv_gpu *g = ctx;
    struct {
        const char *key;
        double *dst, lo, hi;
    } keys[] = {
        {"eff_memory", &g->eff_memory, 1e-3, 1},
        {"eff_compute", &g->eff_compute, 1e-3, 1},
        {"step_overhead_ms", &g->step_overhead_ms, 0, 1e6},
        {"copy_latency_us", &g->copy_latency_us, 0, 1e6},
        {"h2d_gbps", &g->h2d_gbps, 1e-3, 1e5},
        {"d2h_gbps", &g->d2h_gbps, 1e-3, 1e5},
        {"map_us", &g->map_us, 0, 1e6},
        {"unmap_us", &g->unmap_us, 0, 1e6},
    };
    if (strcmp(section, "calibration") != 0) /* other sections: fit reports, ignored */
        return true;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(key, keys[i].key) != 0)
            continue;
        if (!kv_inifile_number(v, keys[i].lo, keys[i].hi, keys[i].dst)) {
            snprintf(why, why_bytes, "%s: expected a number in [%g, %g], got \"%s\"", key,
                     keys[i].lo, keys[i].hi, v);
            return false;
        }
        return true;
    }
    snprintf(why, why_bytes, "unknown key '%s' in [calibration]", key);
    return false;
}

/* ------------------------------------------------------------------------------------------ */

void kv_costmodel_init(kv_costmodel *cm, const kv_model *m, const kv_gpu *g, uint32_t tp,
                       uint64_t kv_token_bytes)
{
    *cm = (kv_costmodel){.gpu = *g, .host_link = kv_gpu_host_link(g)};
    cm->active_params = m->active_params_b * 1e9 / tp;
    cm->weight_bytes = (double)kv_model_weight_bytes(m, tp);
    cm->kv_token_bytes = (double)kv_token_bytes;
    uint32_t heads = (m->n_heads + tp - 1) / tp;
    uint32_t dim = m->mla_latent_dim > 0 ? m->mla_latent_dim : m->head_dim;
    cm->attn_flops_per_pair = 4.0 * m->n_layers * heads * dim;
}

kv_status kv_costmodel_calibrate(kv_costmodel *cm, const char *path, kv_err *err)
{
    kv_status st = kv_inifile_load(path, on_calib, &cm->gpu, NULL, err);
    cm->host_link = kv_gpu_host_link(&cm->gpu);
    return st;
}

kv_tier_link kv_gpu_host_link(const kv_gpu *g)
{
    return (kv_tier_link){
        .h2d_gbps = g->h2d_gbps, .d2h_gbps = g->d2h_gbps, .copy_latency_us = g->copy_latency_us};
}

kv_step_time kv_costmodel_step(void *ctx, const kv_step_work *w)
{
    const kv_costmodel *cm = ctx;
    const kv_gpu *g = &cm->gpu;
    double flops = g->bf16_tflops * 1e12 * g->eff_compute;
    double bw = g->hbm_tbps * 1e12 * g->eff_memory;
    kv_step_time t = {0};
    bool prefill = w->n_prefill > 0, decode = w->n_decode > 0;
    if (prefill) {
        double f = 2 * cm->active_params * (double)w->prefill_tokens +
                   cm->attn_flops_per_pair * w->prefill_attn_tokens2;
        double b = cm->weight_bytes + (double)w->prefill_tokens * cm->kv_token_bytes;
        t.compute_s += fmax(f / flops, b / bw);
    }
    if (decode) {
        double f = 2 * cm->active_params * w->n_decode +
                   cm->attn_flops_per_pair * (double)w->decode_context;
        double b =
            cm->weight_bytes + (double)(w->decode_context + w->n_decode) * cm->kv_token_bytes;
        t.compute_s += fmax(f / flops, b / bw);
    }
    if (prefill && decode) /* weights are read once per step */
        t.compute_s -= fmin(cm->weight_bytes / bw, t.compute_s / 2);
    if (prefill || decode)
        t.compute_s += g->step_overhead_ms * 1e-3;
    t.compute_s += 2.0 * (double)w->copy_bytes / bw;
    const kv_tier_link *l = &cm->host_link;
    t.swap_s = (double)(w->swap_out_copies + w->swap_in_copies) * l->copy_latency_us * 1e-6 +
               (double)w->swap_out_bytes / (l->d2h_gbps * 1e9) +
               (double)w->swap_in_bytes / (l->h2d_gbps * 1e9);
    t.map_s = ((double)w->n_maps * g->map_us + (double)w->n_unmaps * g->unmap_us) * 1e-6;
    t.total_s = t.compute_s + t.swap_s + t.map_s;
    return t;
}

kv_executor kv_costmodel_executor(kv_costmodel *cm)
{
    return (kv_executor){.ctx = cm, .step = kv_costmodel_step};
}
