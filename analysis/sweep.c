/* sweep.c — sweep specs and their grid of points. See sweep.h. */
#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inifile.h"

/* ------------------------------------------------------------------------------------------ */

enum { MAX_ARGS = 512 }; /* words in args: its 1024 characters hold at most 512 */

#define N_OF(x) (sizeof(x) / sizeof((x)[0]))

/* ------------------------------------------------------------------------------------------ */

/* Split the spec's args into words (spaces and tabs) in buf; returns how many (at most cap). */
static int words_of(const char *args, char *buf, size_t buf_bytes, char **words, int cap)
{
    snprintf(buf, buf_bytes, "%s", args);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t && n < cap;
         t = strtok_r(NULL, " \t", &save))
        words[n++] = t;
    return n;
}

/* Apply the spec's args to cfg. */
static kv_status apply_args(const char *args, kv_run_config *cfg, kv_err *err)
{
    char buf[1024], *words[MAX_ARGS];
    int n = words_of(args, buf, sizeof buf, words, MAX_ARGS);
    return kv_run_config_args(cfg, n, words, err);
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
        kv_run_config scratch;
        kv_run_config_default(&scratch);
        kv_err e = {{0}};
        if (apply_args(s->args, &scratch, &e) != KV_OK) {
            snprintf(why, why_bytes, "args: %.480s", e.msg);
            return false;
        }
        return true;
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
                if (kv_named_config_find(s->strategies.v[k]) == NULL) {
                    char names[400];
                    kv_named_config_list(names, sizeof names);
                    snprintf(why, why_bytes, "strategies: unknown \"%s\" (%s)",
                             s->strategies.v[k], names);
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

/* The size list that applies to a named configuration, or NULL. */
static const kv_sweep_list *sizes_of(const kv_sweep_spec *s, const kv_named_config *nc)
{
    return nc->sizes == KV_NAMED_BLOCK_TOKENS  ? &s->block_tokens
           : nc->sizes == KV_NAMED_CHUNK_BYTES ? &s->chunk_kib
                                               : NULL;
}

/* Sizes that apply to a named configuration: the spec's list, or one default entry. */
static int n_sizes(const kv_sweep_spec *s, const kv_named_config *nc)
{
    const kv_sweep_list *l = sizes_of(s, nc);
    return l && l->n > 0 ? l->n : 1;
}

uint32_t kv_sweep_n_points(const kv_sweep_spec *s)
{
    uint32_t per = 0;
    for (int i = 0; i < s->strategies.n; i++)
        per += (uint32_t)n_sizes(s, kv_named_config_find(s->strategies.v[i])) *
               (uint32_t)s->rate_scales.n;
    return per * (uint32_t)s->models.n * (uint32_t)s->gpus.n;
}

void kv_sweep_point_at(const kv_sweep_spec *s, uint32_t idx, kv_sweep_point *p)
{
    uint32_t i = 0;
    for (int m = 0; m < s->models.n; m++)
        for (int g = 0; g < s->gpus.n; g++)
            for (int st = 0; st < s->strategies.n; st++) {
                const kv_named_config *nc = kv_named_config_find(s->strategies.v[st]);
                KV_ASSERT(nc != NULL); /* checked by kv_sweep_load */
                const kv_sweep_list *sz = sizes_of(s, nc);
                bool has = sz && sz->n > 0, block = nc->sizes == KV_NAMED_BLOCK_TOKENS;
                for (int z = 0; z < n_sizes(s, nc); z++)
                    for (int r = 0; r < s->rate_scales.n; r++, i++) {
                        if (i != idx)
                            continue;
                        *p = (kv_sweep_point){.index = idx};
                        snprintf(p->strategy, sizeof p->strategy, "%s", nc->name);
                        snprintf(p->model, sizeof p->model, "%s", s->models.v[m]);
                        snprintf(p->gpu, sizeof p->gpu, "%s", s->gpus.v[g]);
                        snprintf(p->size, sizeof p->size, "%s", has ? sz->v[z] : "");
                        p->rate_scale = strtod(s->rate_scales.v[r], NULL);
                        snprintf(p->label, sizeof p->label, "%s%s%s", nc->name,
                                 has ? (block ? "-b" : "-c") : "", has ? sz->v[z] : "");
                        kv_run_config *c = &p->cfg;
                        kv_run_config_default(c);
                        kv_err e = {{0}};
                        KV_ASSERT(apply_args(s->args, c, &e) == KV_OK); /* checked at load */
                        c->trace = s->trace;
                        kv_named_config_apply(nc, &c->alloc);
                        if (has && block)
                            c->alloc.paged.block_tokens = (uint32_t)strtoul(sz->v[z], NULL, 10);
                        else if (has)
                            c->alloc.chunk.chunk_bytes = (uint64_t)(strtod(sz->v[z], NULL) * 1024);
                        c->model = s->models.v[m];
                        c->gpu = s->gpus.v[g];
                        c->engine.rate_scale = p->rate_scale;
                        return;
                    }
            }
    KV_ASSERT(!"sweep point out of range");
}
