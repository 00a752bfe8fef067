/* preset.c — loading model and GPU presets, the KV budget. See preset.h. */
#include "preset.h"

#include <dirent.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "inifile.h"

/* ------------------------------------------------------------------------------------------ */

typedef enum field_type { F_U32, F_DOUBLE, F_BOOL, F_NAME } field_type;

typedef struct field {
    const char *key;
    field_type type;
    size_t offset;
    double lo, hi;
    bool required;
} field;

#define MODEL_FIELD(k, t, lo, hi)                                                                  \
    {                                                                                              \
#k, t, offsetof(kv_model, k), lo, hi, true                                                 \
    }
/* A model field whose INI key differs from its name (the files keep their established keys). */
#define MODEL_FIELD_KEY(key, k, t, lo, hi)                                                         \
    {                                                                                              \
#key, t, offsetof(kv_model, k), lo, hi, true                                               \
    }
#define GPU_FIELD(k, t, lo, hi)                                                                    \
    {                                                                                              \
#k, t, offsetof(kv_gpu, k), lo, hi, true                                                   \
    }

static const field model_fields[] = {
    MODEL_FIELD(name, F_NAME, 0, 0),
    MODEL_FIELD(n_layers, F_U32, 1, 10000),
    MODEL_FIELD(n_heads, F_U32, 1, 100000),
    MODEL_FIELD(n_kv_heads, F_U32, 1, 100000),
    MODEL_FIELD(head_dim, F_U32, 1, 100000),
    MODEL_FIELD(hidden, F_U32, 1, 10000000),
    MODEL_FIELD(intermediate, F_U32, 1, 100000000),
    MODEL_FIELD(vocab, F_U32, 1, 100000000),
    MODEL_FIELD(params_b, F_DOUBLE, 1e-6, 1e6),
    MODEL_FIELD(active_params_b, F_DOUBLE, 1e-6, 1e6),
    MODEL_FIELD(max_context, F_U32, 1, 1u << 30),
    MODEL_FIELD(mla_latent_dim, F_U32, 0, 1000000),
    MODEL_FIELD(gated_mlp, F_BOOL, 0, 1),
    MODEL_FIELD_KEY(weight_bytes, weight_elem_bytes, F_U32, 1, 8),
    MODEL_FIELD_KEY(kv_bytes, kv_elem_bytes, F_U32, 1, 8),
};

static const field gpu_fields[] = {
    GPU_FIELD(name, F_NAME, 0, 0),
    GPU_FIELD(memory_gib, F_DOUBLE, 0.1, 1e6),
    GPU_FIELD(hbm_tbps, F_DOUBLE, 1e-3, 1e4),
    GPU_FIELD(bf16_tflops, F_DOUBLE, 1e-3, 1e7),
    GPU_FIELD(h2d_gbps, F_DOUBLE, 1e-3, 1e5),
    GPU_FIELD(d2h_gbps, F_DOUBLE, 1e-3, 1e5),
    GPU_FIELD(copy_latency_us, F_DOUBLE, 0, 1e6),
    GPU_FIELD(eff_memory, F_DOUBLE, 1e-3, 1),
    GPU_FIELD(eff_compute, F_DOUBLE, 1e-3, 1),
    GPU_FIELD(step_overhead_ms, F_DOUBLE, 0, 1e6),
    GPU_FIELD(map_us, F_DOUBLE, 0, 1e6),
    GPU_FIELD(unmap_us, F_DOUBLE, 0, 1e6),
};

typedef struct load_ctx {
    const char *section;
    const field *fields;
    size_t n_fields;
    void *out;
    bool seen[32];
} load_ctx;

#define N_OF(x) (sizeof(x) / sizeof((x)[0]))

/* ------------------------------------------------------------------------------------------ */

static bool on_key(void *ctx, const char *section, const char *key, const char *v, char *why,
                   size_t why_bytes)
{
    load_ctx *c = ctx;
    if (strcmp(section, c->section) != 0) {
        snprintf(why, why_bytes, "unknown section [%s] (expected [%s])", section, c->section);
        return false;
    }
    for (size_t i = 0; i < c->n_fields; i++) {
        const field *f = &c->fields[i];
        if (strcmp(key, f->key) != 0)
            continue;
        c->seen[i] = true;
        char *p = (char *)c->out + f->offset;
        if (f->type == F_NAME) {
            if (strlen(v) == 0 || strlen(v) >= 64) {
                snprintf(why, why_bytes, "%s: expected a name of 1..63 bytes", key);
                return false;
            }
            memcpy(p, v, strlen(v) + 1);
            return true;
        }
        double d = 0;
        if (!kv_inifile_number(v, f->lo, f->hi, &d) || (f->type != F_DOUBLE && d != floor(d))) {
            snprintf(why, why_bytes, "%s: expected %s in [%g, %g], got \"%s\"", key,
                     f->type == F_DOUBLE ? "a number" : "an integer", f->lo, f->hi, v);
            return false;
        }
        if (f->type == F_DOUBLE)
            *(double *)p = d;
        else if (f->type == F_U32)
            *(uint32_t *)p = (uint32_t)d;
        else
            *(bool *)p = d != 0;
        return true;
    }
    snprintf(why, why_bytes, "unknown key '%s' in [%s]", key, c->section);
    return false;
}

/* Find a preset: a path, or NAME(.ini) in the preset directories (case-insensitive). */
static bool find_preset(const char *name, const char *kind, char *path, size_t cap)
{
    FILE *f = fopen(name, "r");
    if (f != NULL) {
        fclose(f);
        snprintf(path, cap, "%s", name);
        return true;
    }
    const char *roots[] = {getenv("KVSIM_PRESETS"), "sim/presets"};
    for (size_t r = 0; r < N_OF(roots); r++) {
        if (roots[r] == NULL)
            continue;
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", roots[r], kind);
        DIR *d = opendir(dir);
        if (d == NULL)
            continue;
        struct dirent *e;
        bool found = false;
        while (!found && (e = readdir(d)) != NULL) {
            size_t n = strlen(e->d_name), m = strlen(name);
            if (n == m + 4 && strcasecmp(e->d_name + m, ".ini") == 0 &&
                strncasecmp(e->d_name, name, m) == 0) {
                snprintf(path, cap, "%s/%s", dir, e->d_name);
                found = true;
            }
        }
        closedir(d);
        if (found)
            return true;
    }
    return false;
}

static kv_status load(const char *name, const char *kind, const char *section, const field *fields,
                      size_t n_fields, void *out, char *path, size_t path_bytes, kv_err *err)
{
    if (!find_preset(name, kind, path, path_bytes))
        return kv_errorf(err, KV_ERR_IO,
                         "%s preset '%s' not found (a path, or a name in $KVSIM_PRESETS/%s or "
                         "sim/presets/%s)",
                         section, name, kind, kind);
    load_ctx c = {.section = section, .fields = fields, .n_fields = n_fields, .out = out};
    kv_status st = kv_inifile_load(path, on_key, &c, NULL, err);
    if (st != KV_OK)
        return st;
    for (size_t i = 0; i < n_fields; i++)
        if (fields[i].required && !c.seen[i])
            return kv_errorf(err, KV_ERR_INPUT, "%s: [%s] key '%s' missing", path, section,
                             fields[i].key);
    return KV_OK;
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_model_load(const char *name, kv_model *m, kv_err *err)
{
    *m = (kv_model){0};
    char path[1024];
    kv_status st =
        load(name, "models", "model", model_fields, N_OF(model_fields), m, path, sizeof path, err);
    /* Each field is in its range; their products must be too (shape.h's representable range):
     * 65536 x 65536 once wrapped to 0 bytes a token and divided by it. */
    uint64_t elems = m->mla_latent_dim > 0 ? m->mla_latent_dim
                                           : (uint64_t)m->n_kv_heads * m->head_dim;
    if (st == KV_OK && (elems > KV_SHAPE_MAX_TENSOR_ELEMS || m->n_layers > KV_SHAPE_MAX_LAYERS))
        st = kv_errorf(err, KV_ERR_INPUT,
                       "%s: [model] %s = %llu elements per token per layer tensor and n_layers %u: "
                       "at most %u and %u",
                       path, m->mla_latent_dim > 0 ? "mla_latent_dim" : "n_kv_heads x head_dim",
                       (unsigned long long)elems, m->n_layers, KV_SHAPE_MAX_TENSOR_ELEMS,
                       KV_SHAPE_MAX_LAYERS);
    if (st == KV_OK && m->n_heads % m->n_kv_heads != 0)
        st = kv_errorf(err, KV_ERR_INPUT, "model %s: n_heads %u is not a multiple of n_kv_heads %u",
                       m->name, m->n_heads, m->n_kv_heads);
    return st;
}

kv_status kv_gpu_load(const char *name, kv_gpu *g, kv_err *err)
{
    *g = (kv_gpu){0};
    char path[1024];
    return load(name, "gpus", "gpu", gpu_fields, N_OF(gpu_fields), g, path, sizeof path, err);
}

kv_shape kv_model_shape(const kv_model *m, uint32_t tp)
{
    if (m->mla_latent_dim > 0) /* MLA's latent is shared by all heads: every GPU holds it */
        return (kv_shape){.n_layers = m->n_layers,
                          .mla_latent_dim = m->mla_latent_dim,
                          .elem_bits = 8 * m->kv_elem_bytes};
    uint32_t heads = (m->n_kv_heads + tp - 1) / tp;
    kv_shape s = kv_shape_dense(m->n_layers, heads, m->head_dim);
    s.elem_bits = 8 * m->kv_elem_bytes;
    return s;
}

uint64_t kv_model_weight_bytes(const kv_model *m, uint32_t tp)
{
    return (uint64_t)(m->params_b * 1e9 * m->weight_elem_bytes / tp);
}

kv_budget kv_kv_budget(const kv_model *m, const kv_gpu *g, uint32_t tp, double gpu_mem_util,
                       uint32_t max_num_batched_tokens, uint32_t max_num_seqs)
{
    kv_budget b = {0};
    b.gpu_bytes = (uint64_t)(g->memory_gib * (double)(1ull << 30));
    b.usable_bytes = (uint64_t)((double)b.gpu_bytes * gpu_mem_util);
    b.weight_bytes = kv_model_weight_bytes(m, tp);
    b.activation_bytes =
        (uint64_t)max_num_batched_tokens * (2ull * m->intermediate + 4ull * m->hidden) * 2 / tp +
        (uint64_t)max_num_seqs * m->vocab * 4;
    b.non_torch_bytes = 1ull << 29;
    b.kv_bytes = (int64_t)b.usable_bytes - (int64_t)b.weight_bytes - (int64_t)b.activation_bytes -
                 (int64_t)b.non_torch_bytes;
    return b;
}
