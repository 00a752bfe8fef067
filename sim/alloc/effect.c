/* effect.c — effect lists: growth, totals, names and the printed form. See effect.h. */
#include "effect.h"

#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */

static const char *const kind_names[] = {"map", "unmap", "table", "copy", "xfer", "drop"};
static const char *const cause_names[] = {"",        "cow",     "move",   "fork",
                                          "swap-out", "swap-in", "window", "evict"};

#define N_OF(x) (sizeof(x) / sizeof((x)[0]))

/* ------------------------------------------------------------------------------------------ */

kv_status kv_effects_push(kv_effects *l, const kv_effect *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        kv_effect *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return KV_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *e;
    return KV_OK;
}

void kv_effects_fini(kv_effects *l)
{
    free(l->v);
    *l = (kv_effects){0};
}

void kv_effects_add_totals(const kv_effect *fx, size_t n, kv_effect_totals *t)
{
    for (size_t i = 0; i < n; i++) {
        const kv_effect *e = &fx[i];
        switch ((kv_effect_kind)e->kind) {
        case KV_FX_MAP: t->n_maps++; break;
        case KV_FX_UNMAP: t->n_unmaps++; break;
        case KV_FX_TABLE: t->n_table_writes++; break;
        case KV_FX_DROP: t->n_drops++; break;
        case KV_FX_COPY:
            t->copy_bytes += e->bytes;
            t->n_copies++;
            break;
        case KV_FX_TRANSFER:
            if (e->cause == KV_CAUSE_SWAP_OUT) {
                t->swap_out_bytes += e->bytes;
                t->swap_out_copies += e->n_copies;
            } else {
                t->swap_in_bytes += e->bytes;
                t->swap_in_copies += e->n_copies;
            }
            break;
        case KV_FX_N_KINDS: break;
        }
    }
}

const char *kv_effect_kind_name(kv_effect_kind k)
{
    return (unsigned)k < N_OF(kind_names) ? kind_names[k] : "?";
}

const char *kv_effect_cause_name(kv_effect_cause c)
{
    return (unsigned)c < N_OF(cause_names) ? cause_names[c] : "?";
}

/* A unit id, or "-" for none. */
static void unit(FILE *f, char prefix, uint32_t id)
{
    if (id == KV_FX_NO_UNIT)
        fputc('-', f);
    else
        fprintf(f, "%c%u", prefix, id);
}

void kv_effect_fprint(FILE *f, const kv_effect *e)
{
    fputs(kv_effect_kind_name((kv_effect_kind)e->kind), f);
    if (e->cause != KV_CAUSE_NONE)
        fprintf(f, ":%s", kv_effect_cause_name((kv_effect_cause)e->cause));
    if (e->grouped)
        fprintf(f, " g%u", e->group);
    switch ((kv_effect_kind)e->kind) {
    case KV_FX_MAP:
    case KV_FX_UNMAP: fprintf(f, " t%u i%u c%u", e->series, e->index, e->dst); break;
    case KV_FX_TABLE:
        fprintf(f, " i%u ", e->index);
        unit(f, 'b', e->dst);
        break;
    case KV_FX_DROP:
        if (e->cause == KV_CAUSE_EVICT)
            fprintf(f, " b%u", e->src);
        else
            fprintf(f, " i%u b%u", e->index, e->src);
        break;
    case KV_FX_COPY:
        if (e->at == KV_AT_BLOCK)
            fprintf(f, " b%u->b%u", e->src, e->dst);
        else if (e->at == KV_AT_EXTENT)
            fprintf(f, " @%llu->@%llu", (unsigned long long)e->src_offset_bytes,
                    (unsigned long long)e->dst_offset_bytes);
        else
            fprintf(f, " s%u->s%u", e->src_seq, e->seq);
        fprintf(f, " %lluB", (unsigned long long)e->bytes);
        break;
    case KV_FX_TRANSFER: {
        bool out = e->cause == KV_CAUSE_SWAP_OUT;
        if (e->at == KV_AT_BLOCK)
            fprintf(f, out ? " b%u->h%u@i%u" : " h%u->b%u@i%u", e->src, e->dst, e->index);
        else if (e->at == KV_AT_EXTENT)
            fprintf(f, out ? " @%llu->h@%llu" : " h@%llu->@%llu",
                    (unsigned long long)e->src_offset_bytes,
                    (unsigned long long)e->dst_offset_bytes);
        else if (out)
            fprintf(f, " s%u->h@%llu", e->seq, (unsigned long long)e->dst_offset_bytes);
        else
            fprintf(f, " h@%llu->s%u", (unsigned long long)e->src_offset_bytes, e->seq);
        fprintf(f, " %lluB x%u", (unsigned long long)e->bytes, e->n_copies);
        break;
    }
    case KV_FX_N_KINDS: break;
    }
}
