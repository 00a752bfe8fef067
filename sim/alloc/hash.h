/* hash.h — the one 64-bit hash of kvsim: splitmix64's finalizer and a chaining combine.
 *
 * Algorithm: kv_hash_mix64 is the finalizer of splitmix64 (Steele, Lea, Flood, "Fast
 * splittable pseudorandom number generators", OOPSLA 2014; constants from Stafford's "Mix13"
 * variant): a bijection on 64-bit words with full avalanche. kv_hash_combine chains a parent
 * hash with one more word as mix64(mix64(parent) ^ word), the form the paged allocator's prefix
 * cache uses for its chained block hashes (h_i = combine(h_{i-1}, content_i)) and the workload
 * generator uses for its content ids. Both are pure and header-only, so every library (the
 * allocator, traces, workloads, the engine) and kvgpu can use them without a link dependency.
 *
 * Not cryptographic: equal outputs mean equal inputs only with probability 1 - 2^-64 per pair.
 * The values are part of kvsim's outputs' identity (prefix hits, decision logs): changing
 * either function changes results.
 */
#ifndef KV_HASH_H
#define KV_HASH_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */

/* splitmix64's finalizer of x: a bijection, every output bit depends on every input bit. */
static inline uint64_t kv_hash_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* The hash of `word` after `parent`: mix64(mix64(parent) ^ word). Order matters:
 * combine(combine(h, a), b) != combine(combine(h, b), a) in general. */
static inline uint64_t kv_hash_combine(uint64_t parent, uint64_t word)
{
    return kv_hash_mix64(kv_hash_mix64(parent) ^ word);
}

/* The chained hash of n 32-bit ids taken from n_series series, series t at ids + t * stride,
 * starting from `seed`: combine over the ids in order. For n_series == 1 stride is unused. */
static inline uint64_t kv_hash_ids32(uint64_t seed, const uint32_t *ids, uint32_t n_series,
                                     size_t stride, uint32_t n)
{
    uint64_t h = seed;
    for (uint32_t t = 0; t < n_series; t++)
        for (uint32_t i = 0; i < n; i++)
            h = kv_hash_combine(h, ids[(size_t)t * stride + i]);
    return h;
}

#endif
