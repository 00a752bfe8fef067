/* decisions.c — the allocator's decision log. See decisions.h. */
#include "decisions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct kv_decision_log {
    FILE *f;
    char path[1024];
    uint64_t n;
};

kv_status kv_decision_log_open(const char *path, kv_decision_log **out, kv_err *err)
{
    *out = NULL;
    kv_decision_log *l = calloc(1, sizeof *l);
    if (l == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "decision log: out of memory");
    snprintf(l->path, sizeof l->path, "%s", path);
    if ((l->f = fopen(path, "w")) == NULL) {
        free(l);
        return kv_errorf(err, KV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    *out = l;
    return KV_OK;
}

kv_status kv_decision_log_close(kv_decision_log **lp, kv_err *err)
{
    kv_decision_log *l = lp ? *lp : NULL;
    if (l == NULL)
        return KV_OK;
    kv_status st = KV_OK;
    if (ferror(l->f) | (fclose(l->f) != 0))
        st = kv_errorf(err, KV_ERR_IO, "%s: write failed", l->path);
    free(l);
    *lp = NULL;
    return st;
}

void kv_decision_log_write(kv_decision_log *l, const kv_alloc *a, const kv_op_record *r)
{
    fprintf(l->f, "%llu %s seq=%u", (unsigned long long)l->n++, kv_op_name(r->op), r->seq);
    if (r->op == KV_OP_FORK)
        fprintf(l->f, " parent=%u", r->parent);
    fprintf(l->f, " tokens=%u -> %s", r->tokens, kv_status_str(r->status));
    kv_placement p;
    if (r->status == KV_OK && r->op != KV_OP_FREE && r->op != KV_OP_SWAP_OUT &&
        kv_alloc_placement(a, r->seq, &p) == KV_OK) {
        switch (p.kind) {
        case KV_PLACE_EXTENT:
            fprintf(l->f, " extent off=%llu cap=%llu", (unsigned long long)p.offset_bytes,
                    (unsigned long long)p.capacity_bytes);
            break;
        case KV_PLACE_BLOCKS:
            fprintf(l->f, " blocks %u h=%016llx", p.n_blocks,
                    (unsigned long long)kv_hash_ids32(0, p.block_table, 1, 0, p.n_blocks));
            break;
        case KV_PLACE_CHUNKS:
            fprintf(l->f, " chunks %u h=%016llx", p.n_chunks * p.n_chunk_tensors,
                    (unsigned long long)kv_hash_ids32(0, p.chunk_ids, p.n_chunk_tensors,
                                                      p.chunk_stride, p.n_chunks));
            break;
        }
    }
    for (uint32_t i = 0; i < r->n_effects; i++) {
        fputs(i == 0 ? " | " : "; ", l->f);
        kv_effect_fprint(l->f, &r->effects[i]);
    }
    fputc('\n', l->f);
}

void kv_decision_log_listener(void *ctx, const kv_alloc *a, const kv_op_record *r)
{
    kv_decision_log_write(ctx, a, r);
}
