/* holes.h — first-fit and best-fit placement of variable extents over n_units slots.
 *
 * Algorithm: boundary tags kept outside the managed space (SQLite mem5.c keeps its metadata
 * outside too). The space is a sequence of segments, each free or allocated. A segment's length
 * is recorded at its first unit and its first unit at its last, so both neighbours of a freed
 * segment are found in O(1) and coalesced. Free segments ("holes") are also kept in a dense
 * array so that placement can scan them:
 *   first-fit: the hole with the lowest address that fits;
 *   best-fit:  the smallest hole that fits, lowest address on ties.
 * A scan, not a tree: holes <= allocated extents + 1, so with a few thousand live sequences a
 * placement scans a few thousand 8-byte records (make bench reports the cost).
 *
 * Invariants (kv_holes_check): segments tile [0, n_units) exactly; no two free segments are
 * adjacent; every free segment is in holes[] exactly once, at the index its tag records;
 * free_units is the sum of hole lengths.
 *
 * Glossary: unit = one slot (a token's KV for contiguous); segment = maximal run with one owner.
 */
#ifndef KV_HOLES_H
#define KV_HOLES_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

#define KV_UNIT_NONE UINT32_MAX

typedef struct kv_hole {
    uint32_t start, n_units;
} kv_hole;

typedef struct kv_holes {
    uint32_t n_units;
    uint32_t *head;  /* at a segment's first unit: its length, | HOLE_FREE_BIT when free */
    uint32_t *tail;  /* at a segment's last unit: its first unit */
    uint32_t *owner; /* at an allocated segment's first unit: the owner; free: its index in holes */
    kv_hole *holes;
    uint32_t n_holes;
    uint64_t free_units;
} kv_holes;

/* Manage n_units > 0 units, all free. KV_OK or KV_ERR_NOMEM. */
kv_status kv_holes_init(kv_holes *h, uint32_t n_units);
void kv_holes_fini(kv_holes *h);

/* Place n_units > 0 units for owner; returns the first unit, or KV_UNIT_NONE when no hole
 * fits. O(holes). */
uint32_t kv_holes_alloc(kv_holes *h, uint32_t n_units, bool best_fit, uint32_t owner);

/* Grow the allocated segment at start to new_units in place when the hole right after it is
 * large enough. Returns whether it did; on false nothing changed. O(1). */
bool kv_holes_extend(kv_holes *h, uint32_t start, uint32_t new_units);

/* Free the allocated segment at start, coalescing with free neighbours. O(1). */
void kv_holes_free(kv_holes *h, uint32_t start);

/* Length of the allocated segment at start. */
uint32_t kv_holes_len(const kv_holes *h, uint32_t start);
/* Owner of the allocated segment at start; KV_UNIT_NONE if it is free. */
uint32_t kv_holes_owner(const kv_holes *h, uint32_t start);

/* Whether some hole has at least n_units. O(holes). */
bool kv_holes_fits(const kv_holes *h, uint32_t n_units);

/* Free units in holes shorter than n_units (0 when n_units == 0). O(holes). */
uint64_t kv_holes_free_below(const kv_holes *h, uint32_t n_units);

uint64_t kv_holes_metadata_bytes(const kv_holes *h);

/* Walk every segment and verify the invariants above. KV_OK or KV_CORRUPT. */
kv_status kv_holes_check(const kv_holes *h, kv_err *err);

#endif
