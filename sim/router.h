/* router.h — several engine replicas behind a request router, co-simulated on one clock.
 *
 * The router reads the source in arrival order. For each request it first advances every
 * replica to the request's arrival time (kv_engine_advance), so that the replicas' state is
 * what a router would see at that moment, then picks a replica and puts the request in that
 * replica's queue. After the last request the replicas run to the end. Policies:
 *   round-robin    request i goes to replica i mod N;
 *   least-tokens   the replica with the fewest outstanding tokens: prompt + output x samples
 *                  of every request routed to it that has not finished by the arrival time
 *                  (ties to the lowest index), the load signal of llm-d's and AIBrix's
 *                  token-aware routers.
 * Every replica is a full engine over its own allocator with the same configuration; the
 * observer gets every replica's requests (ids are rows of the trace, as without a router) and
 * steps (kv_step_record.replica says whose). With one replica the outputs are exactly those of
 * kv_engine_run.
 */
#ifndef KV_ROUTER_H
#define KV_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

typedef enum kv_route_policy { KV_ROUTE_ROUND_ROBIN, KV_ROUTE_LEAST_TOKENS } kv_route_policy;

const char *kv_route_policy_name(kv_route_policy p);
/* "round-robin" or "least-tokens": KV_OK, or KV_ERR_INPUT. */
kv_status kv_route_policy_parse(const char *s, kv_route_policy *out);

typedef struct kv_router kv_router;

/* n_replicas engines of configuration ec/ac, priced by ex (shared: it must not keep per-step
 * state). ec->max_requests limits the requests routed. */
kv_status kv_router_create(const kv_engine_config *ec, const kv_alloc_config *ac, kv_executor ex,
                           uint32_t n_replicas, kv_route_policy policy, kv_router **out,
                           kv_err *err);
void kv_router_destroy(kv_router **r);

/* Route the source to the end and run every replica to completion. */
kv_status kv_router_run(kv_router *r, kv_source src, kv_observer obs, bool check_every_step,
                        kv_err *err);

uint32_t kv_router_replicas(const kv_router *r);
const kv_engine *kv_router_engine(const kv_router *r, uint32_t i);
uint64_t kv_router_routed(const kv_router *r, uint32_t i); /* requests sent to replica i */

/* Statistics over all replicas: counts summed, peaks the largest, first arrival the earliest,
 * makespan from it to the last finish anywhere. Allocator statistics likewise summed. */
void kv_router_stats(const kv_router *r, kv_engine_stats *es, kv_alloc_stats *as);

#endif
