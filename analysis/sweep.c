/* sweep.c — sweep specs and their grid of points. See sweep.h. */
#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inifile.h"

/* ------------------------------------------------------------------------------------------ */

/* compare's labels and the replay arguments they stand for */
static const struct {
    const char *label, *args;
    char sizes; /* 'b' block sizes apply, 'c' chunk sizes apply, 0 none */
} strategies[] = {
    {"contiguous-max", "--strategy contiguous --reserve max", 0},
    {"contiguous-pow2", "--strategy contiguous --reserve pow2", 0},
    {"contiguous-oracle", "--strategy contiguous --reserve oracle", 0},
    {"contiguous-grow", "--strategy contiguous --reserve grow", 0},
    {"chunk-pool", "--strategy chunk-pool", 'c'},
    {"chunk-pool-fused", "--strategy chunk-pool --layout fused", 'c'},
    {"paged", "--strategy paged", 'b'},
    {"compressed-fp8", "--strategy compressed --kv-bits 8", 'b'},
    {"compressed-int4", "--strategy compressed --kv-bits 4 --scale-group 32 --scale-bytes 2", 'b'},
};

#define N_OF(x) (sizeof(x) / sizeof((x)[0]))

/* ------------------------------------------------------------------------------------------ */

static int strategy_index(const char *label)
{
    for (size_t i = 0; i < N_OF(strategies); i++)
        if (strcmp(label, strategies[i].label) == 0)
            return (int)i;
    return -1;
}

/* Split "a, b, c" into l. */
static bool split(const char *v, kv_sweep_list *l, char *why, size_t cap, const char *key)
{
    l->n = 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t')
            t++;
        size_t n = strlen(t);
        while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
            t[--n] = '\0';
        if (n == 0 || n >= KV_SWEEP_WORD || l->n == KV_SWEEP_MAX_LIST) {
            snprintf(why, cap, "%s: expected a comma-separated list of at most %d words", key,
                     KV_SWEEP_MAX_LIST);
            return false;
        }
        memcpy(l->v[l->n++], t, n + 1);
    }
    if (l->n == 0)
        snprintf(why, cap, "%s: empty list", key);
    return l->n > 0;
}

static bool numbers(const kv_sweep_list *l, double lo, double hi, char *why, size_t cap,
                    const char *key)
{
    for (int i = 0; i < l->n; i++) {
        char *end = NULL;
        double d = strtod(l->v[i], &end);
        if (*end != '\0' || !(d >= lo && d <= hi)) {
            snprintf(why, cap, "%s: expected numbers in [%g, %g], got \"%s\"", key, lo, hi,
                     l->v[i]);
            return false;
        }
    }
    return true;
}

static bool on_key(void *ctx, const char *section, const char *key, const char *v, char *why,
                   size_t why_bytes)
{
    kv_sweep_spec *s = ctx;
    if (strcmp(section, "sweep") != 0) {
        snprintf(why, why_bytes, "unknown section [%s] (expected [sweep])", section);
        return false;
    }
    if (strcmp(key, "trace") == 0) {
        snprintf(s->trace, sizeof s->trace, "%s", v);
        return true;
    }
    if (strcmp(key, "args") == 0) {
        snprintf(s->args, sizeof s->args, "%s", v);
        if (strchr(v, '\'') == NULL && strchr(v, '"') == NULL)
            return true;
        snprintf(why, why_bytes, "args: no quotes allowed, got \"%s\"", v);
        return false;
    }
    struct {
        const char *key;
        kv_sweep_list *l;
    } lists[] = {{"strategies", &s->strategies},
                 {"rate_scales", &s->rate_scales},
                 {"models", &s->models},
                 {"gpus", &s->gpus},
                 {"block_tokens", &s->block_tokens},
                 {"chunk_kib", &s->chunk_kib}};
    for (size_t i = 0; i < N_OF(lists); i++) {
        if (strcmp(key, lists[i].key) != 0)
            continue;
        if (!split(v, lists[i].l, why, why_bytes, key))
            return false;
        if (lists[i].l == &s->rate_scales)
            return numbers(lists[i].l, 1e-6, 1e6, why, why_bytes, key);
        if (lists[i].l == &s->block_tokens)
            return numbers(lists[i].l, 1, 65536, why, why_bytes, key);
        if (lists[i].l == &s->chunk_kib)
            return numbers(lists[i].l, 1, 1 << 20, why, why_bytes, key);
        if (lists[i].l == &s->strategies) {
            for (int k = 0; k < s->strategies.n; k++) {
                if (strategy_index(s->strategies.v[k]) < 0) {
                    snprintf(why, why_bytes,
                             "strategies: unknown \"%s\" (contiguous-max, contiguous-pow2, "
                             "contiguous-oracle, contiguous-grow, chunk-pool, chunk-pool-fused, "
                             "paged, compressed-fp8, compressed-int4)",
                             s->strategies.v[k]);
                    return false;
                }
            }
        }
        return true;
    }
    snprintf(why, why_bytes,
             "unknown key '%s' (trace, strategies, rate_scales, models, gpus, block_tokens, "
             "chunk_kib, args)",
             key);
    return false;
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_sweep_load(const char *path, kv_sweep_spec *s, kv_err *err)
{
    *s = (kv_sweep_spec){0};
    snprintf(s->path, sizeof s->path, "%s", path);
    kv_status st = kv_inifile_load(path, on_key, s, NULL, err);
    if (st != KV_OK)
        return st;
    if (s->trace[0] == '\0' || s->strategies.n == 0 || s->rate_scales.n == 0)
        return kv_errorf(err, KV_ERR_INPUT, "%s: [sweep] needs trace, strategies and rate_scales",
                         path);
    char why[KV_ERR_MSG_BYTES];
    if (s->models.n == 0)
        split("Llama-3-8B", &s->models, why, sizeof why, "models");
    if (s->gpus.n == 0)
        split("H100-80GB", &s->gpus, why, sizeof why, "gpus");
    return KV_OK;
}

/* Sizes that apply to strategy k: the spec's list, or one default entry. */
static int n_sizes(const kv_sweep_spec *s, int k)
{
    char kind = strategies[k].sizes;
    int n = kind == 'b' ? s->block_tokens.n : kind == 'c' ? s->chunk_kib.n : 0;
    return n > 0 ? n : 1;
}

uint32_t kv_sweep_n_points(const kv_sweep_spec *s)
{
    uint32_t per = 0;
    for (int i = 0; i < s->strategies.n; i++)
        per +=
            (uint32_t)n_sizes(s, strategy_index(s->strategies.v[i])) * (uint32_t)s->rate_scales.n;
    return per * (uint32_t)s->models.n * (uint32_t)s->gpus.n;
}

void kv_sweep_point_at(const kv_sweep_spec *s, uint32_t idx, kv_sweep_point *p)
{
    uint32_t i = 0;
    for (int m = 0; m < s->models.n; m++)
        for (int g = 0; g < s->gpus.n; g++)
            for (int st = 0; st < s->strategies.n; st++) {
                int k = strategy_index(s->strategies.v[st]);
                char kind = strategies[k].sizes;
                for (int z = 0; z < n_sizes(s, k); z++)
                    for (int r = 0; r < s->rate_scales.n; r++, i++) {
                        if (i != idx)
                            continue;
                        *p = (kv_sweep_point){.index = idx};
                        const kv_sweep_list *sz = kind == 'b'   ? &s->block_tokens
                                                  : kind == 'c' ? &s->chunk_kib
                                                                : NULL;
                        bool has = sz && sz->n > 0;
                        snprintf(p->strategy, sizeof p->strategy, "%s", strategies[k].label);
                        snprintf(p->model, sizeof p->model, "%s", s->models.v[m]);
                        snprintf(p->gpu, sizeof p->gpu, "%s", s->gpus.v[g]);
                        snprintf(p->size, sizeof p->size, "%s", has ? sz->v[z] : "");
                        p->rate_scale = strtod(s->rate_scales.v[r], NULL);
                        char knob[64] = "";
                        if (has && kind == 'b')
                            snprintf(knob, sizeof knob, " --block-tokens %s", sz->v[z]);
                        else if (has)
                            snprintf(knob, sizeof knob, " --chunk-mib %.9g",
                                     strtod(sz->v[z], NULL) / 1024);
                        snprintf(p->label, sizeof p->label, "%s%s%s", strategies[k].label,
                                 has ? (kind == 'b' ? "-b" : "-c") : "", has ? sz->v[z] : "");
                        snprintf(p->args, sizeof p->args,
                                 "%s %s%s --model %s --gpu %s --rate-scale %s %s", s->trace,
                                 strategies[k].args, knob, s->models.v[m], s->gpus.v[g],
                                 s->rate_scales.v[r], s->args);
                        return;
                    }
            }
    KV_ASSERT(!"sweep point out of range");
}
