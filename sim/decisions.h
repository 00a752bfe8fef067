/* decisions.h — the allocator's decision log: one line per operation the engine asked of it,
 * with its result and where the sequence's KV then lives.
 *
 *   <n> <op> seq=<id> [parent=<id>] tokens=<t> -> <status> [<placement>] [| <effect>; ...]
 *   placement:  extent off=<bytes> cap=<bytes> | blocks <n> h=<hash> | chunks <n> h=<hash>
 *   effect:     as kv_effect_fprint prints it (effect.h), in the order they apply
 * (h: kv_hash_ids32 of hash.h over the block or chunk ids in order, so a line stays short
 * whatever the length.)
 * kvsim replay --decision-log and kvgpu replay --decision-log write it for the same trace and
 * settings; equal files mean the GPU realized exactly kvsim's decisions.
 */
#ifndef KV_DECISIONS_H
#define KV_DECISIONS_H

#include "alloc.h"

typedef struct kv_decision_log kv_decision_log;

kv_status kv_decision_log_open(const char *path, kv_decision_log **out, kv_err *err);

/* KV_OK, or KV_ERR_IO when a write failed. Accepts NULL. */
kv_status kv_decision_log_close(kv_decision_log **l, kv_err *err);

/* Write the line of one operation. */
void kv_decision_log_write(kv_decision_log *l, const kv_alloc *a, const kv_op_record *r);

/* A listener for kv_alloc_set_listener with ctx = the log. */
void kv_decision_log_listener(void *ctx, const kv_alloc *a, const kv_op_record *r);

#endif
