/* effect.h — what an allocator operation requires of memory, as data.
 *
 * The allocator decides; it never touches KV bytes. Every operation that changes where KV lives
 * appends to a list what must now happen to memory for its decision to hold, in the order it
 * must happen:
 *   MAP / UNMAP  a physical chunk into / out of a sequence's virtual range (chunk pools on VMM)
 *   TABLE        entry `index` of a sequence's block table now names block `dst` (blocks pools;
 *                KV_BLOCK_NONE for an entry whose tokens the layout dropped)
 *   COPY         device to device: a shared partial block before a write (cow), an extent that
 *                moved to grow (move), a child's own copy of its parent's rows (fork)
 *   TRANSFER     between tiers: swap-out (device -> host) and swap-in (host -> device)
 *   DROP         a block's tokens are forgotten: the window moved past it (window), or a cached
 *                free block was reused and its prefix is gone (evict); no bytes move
 * Nobody learns an operation's effects by comparing state before and after it: the engine's
 * cost model prices them (kv_effect_totals), kvgpu applies them to device memory, the decision
 * log prints them, and tests apply them to a shadow image of memory and check that every
 * sequence still reads back its own tokens (tests/test_image.h, run by tests/test_stress.c).
 *
 * Locations. A unit is a block or chunk id of the pool (src / dst); an extent is a byte offset
 * (src_offset_bytes / dst_offset_bytes) of the pool, token-major. Rows copied by COPY fork or
 * move are the first n_tokens tokens of the sequence, every layer tensor. A TRANSFER names both
 * sides, src on the tier it leaves and dst on the tier it reaches (tier.h): a device block and a
 * host block, with the table index (blocks pools); a device extent offset and a host byte
 * offset (extents); the sequence's virtual range and a host byte offset (chunk series), where
 * the host copy is laid out tensor after tensor. Its bytes and separate copies are priced.
 *
 * Glossary: fx = effect(s); src / dst = where bytes come from / go to; index = position in the
 * sequence's block table or chunk series; series = which layer tensor's chunk series.
 */
#ifndef KV_EFFECT_H
#define KV_EFFECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

/* ------------------------------------------------------------------------------ types --- */

typedef enum kv_effect_kind {
    KV_FX_MAP,
    KV_FX_UNMAP,
    KV_FX_TABLE,
    KV_FX_COPY,
    KV_FX_TRANSFER,
    KV_FX_DROP,
    KV_FX_N_KINDS
} kv_effect_kind;

typedef enum kv_effect_cause {
    KV_CAUSE_NONE,
    KV_CAUSE_COW,      /* COPY: copy-on-write of a shared partial block */
    KV_CAUSE_MOVE,     /* COPY: an extent moved to grow (reallocate-and-copy) */
    KV_CAUSE_FORK,     /* COPY: a fork that cannot share gets its own rows */
    KV_CAUSE_SWAP_OUT, /* TRANSFER: device -> host */
    KV_CAUSE_SWAP_IN,  /* TRANSFER: host -> device */
    KV_CAUSE_WINDOW,   /* DROP: the token window moved past a block */
    KV_CAUSE_EVICT,    /* DROP: a cached free block was taken for new data */
    KV_CAUSE_N
} kv_effect_cause;

typedef enum kv_tier { KV_TIER_DEVICE, KV_TIER_HOST } kv_tier;

/* Where the bytes of a COPY or TRANSFER are on the device side. */
typedef enum kv_effect_at {
    KV_AT_BLOCK,  /* one block of a blocks pool: src / dst ids, table entry index */
    KV_AT_EXTENT, /* the first n_tokens token slots of an extent at src/dst_offset_bytes */
    KV_AT_RANGE,  /* the first n_tokens tokens of a sequence's virtual range (chunk series) */
} kv_effect_at;

#define KV_FX_NO_UNIT UINT32_MAX

typedef struct kv_effect {
    uint8_t kind;  /* kv_effect_kind */
    uint8_t cause; /* kv_effect_cause */
    uint8_t at;    /* kv_effect_at, for COPY and TRANSFER */
    uint8_t dst_tier; /* TRANSFER: the tier the bytes go to (kv_tier) */
    uint8_t group;    /* the layer group whose table, blocks or tokens it concerns */
    uint8_t grouped;  /* 1 when the allocator has more than one group: the group is printed */
    uint32_t seq;     /* the sequence served (COPY fork: the child) */
    uint32_t src_seq; /* COPY fork: the parent; else seq */
    uint32_t src, dst; /* block / chunk ids; KV_FX_NO_UNIT where a side has none */
    uint32_t index;    /* table entry or chunk index in the series */
    uint32_t series;   /* MAP / UNMAP: layer tensor of the chunk series */
    uint32_t n_tokens; /* COPY fork / move, TRANSFER of an extent or range: tokens moved */
    uint32_t n_copies; /* TRANSFER: separate copies the layout forces */
    uint64_t src_offset_bytes, dst_offset_bytes; /* extents */
    uint64_t bytes; /* COPY, TRANSFER: bytes moved and priced */
} kv_effect;

/* A caller-owned, growable list, for a caller that keeps effects beyond one operation (the
 * allocator itself keeps each operation's in a fixed array: kv_alloc_effects). Zero-initialized
 * is empty and valid. */
typedef struct kv_effects {
    kv_effect *v;
    size_t n, cap;
} kv_effects;

/* What a list of effects costs, summed. */
typedef struct kv_effect_totals {
    uint64_t n_maps, n_unmaps, n_table_writes, n_drops;
    uint64_t copy_bytes, n_copies;
    uint64_t swap_out_bytes, swap_out_copies, swap_in_bytes, swap_in_copies;
} kv_effect_totals;

/* ---------------------------------------------------------------------------- functions --- */

/* Append e. KV_OK or KV_ERR_NOMEM (the list is unchanged). Amortized O(1). */
kv_status kv_effects_push(kv_effects *l, const kv_effect *e);

/* Keep the first n effects (n <= l->n). */
static inline void kv_effects_truncate(kv_effects *l, size_t n)
{
    l->n = n < l->n ? n : l->n;
}

/* Free the list's memory; the list is empty and valid afterwards. */
void kv_effects_fini(kv_effects *l);

/* Sum effects fx[0 .. n) into *t (added to what *t holds). */
void kv_effects_add_totals(const kv_effect *fx, size_t n, kv_effect_totals *t);

const char *kv_effect_kind_name(kv_effect_kind k);
const char *kv_effect_cause_name(kv_effect_cause c);

/* One effect as the decision log prints it, e.g. "copy:cow b12->b40 4096B",
 * "map t3 i2 c77", "xfer:swap-out b5->h0@i0 32768B x64"; with several layer groups the group
 * follows the kind, "table g1 i3 b7" (a single group prints as before groups existed). */
void kv_effect_fprint(FILE *f, const kv_effect *e);

#endif
