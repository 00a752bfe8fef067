/* router.c — replicas behind a router on one simulated clock. See router.h. */
#include "router.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "vec.h"

/* ------------------------------------------------------------------------------------------ */

/* A replica's queue of routed requests, read by its engine as its source. A request's prefix
 * hashes live in its slot's own buffer: the engine copies them when it reads the request. */
typedef struct slot {
    kv_request req;
    uint64_t *hashes;
    size_t hashes_cap;
} slot;

typedef struct replica {
    kv_router *router;
    uint32_t index;
    kv_engine *e;
    slot *q;
    uint32_t head, len;
    size_t cap;
    bool closed;
    uint64_t *ids; /* trace row of the k-th request routed here */
    size_t n_ids, cap_ids;
    double outstanding; /* least-tokens: tokens of routed, unfinished requests */
    kv_observer inner;     /* the caller's observer */
    kv_source src;         /* the queue, as the engine's source */
    kv_observer obs;       /* the shim, as the engine's observer */
} replica;

/* A finished request whose tokens leave its replica's load at time t. */
typedef struct release {
    double t;
    double tokens;
    uint32_t replica;
} release;

struct kv_router {
    kv_engine_config ec;
    kv_route_policy policy;
    uint32_t n;
    replica *reps;
    double *weight; /* least-tokens: tokens of each routed request, by trace row */
    size_t cap_weight;
    kv_heap releases; /* of release, by t */
};

static const char *const policy_names[] = {"round-robin", "least-tokens"};

const char *kv_route_policy_name(kv_route_policy p)
{
    return p <= KV_ROUTE_LEAST_TOKENS ? policy_names[p] : "?";
}

kv_status kv_route_policy_parse(const char *s, kv_route_policy *out)
{
    for (int i = 0; i <= KV_ROUTE_LEAST_TOKENS; i++)
        if (strcmp(s, policy_names[i]) == 0) {
            *out = (kv_route_policy)i;
            return KV_OK;
        }
    return KV_ERR_INPUT;
}

/* ------------------------------------------------------------------------- the queues --- */

static kv_status queue_next(void *ctx, kv_request *out, kv_err *err)
{
    (void)err;
    replica *rp = ctx;
    if (rp->head == rp->len)
        return rp->closed ? KV_EOF : KV_AGAIN;
    *out = rp->q[rp->head].req;
    out->prefix_hashes = rp->q[rp->head].hashes;
    if (++rp->head == rp->len)
        rp->head = rp->len = 0; /* empty: the slots are free again */
    return KV_OK;
}

static kv_status queue_push(replica *rp, const kv_request *in, uint64_t trace_row, kv_err *err)
{
    if (!kv_vec_reserve_zeroed(&rp->q, &rp->cap, (size_t)rp->len + 1, sizeof *rp->q, 64) ||
        !kv_vec_reserve(&rp->ids, &rp->cap_ids, rp->n_ids + 1, sizeof *rp->ids, 64))
        return kv_errorf(err, KV_ERR_NOMEM, "router: out of memory");
    slot *s = &rp->q[rp->len];
    if (!kv_vec_reserve(&s->hashes, &s->hashes_cap, in->n_prefix_hashes, sizeof *s->hashes, 16))
        return kv_errorf(err, KV_ERR_NOMEM, "router: out of memory");
    if (in->n_prefix_hashes)
        memcpy(s->hashes, in->prefix_hashes, in->n_prefix_hashes * sizeof *s->hashes);
    s->req = *in;
    s->req.prefix_hashes = NULL;
    rp->len++;
    rp->ids[rp->n_ids++] = trace_row;
    return KV_OK;
}

/* ---------------------------------------------------------------------- the releases --- */

/* Earlier release first; equal times pop in the heap's fixed order (heap.h), as always. */
static bool release_before(const void *a, const void *b, void *ctx)
{
    (void)ctx;
    return ((const release *)a)->t < ((const release *)b)->t;
}

/* ------------------------------------------------------------------ the observer shim --- */

/* A replica's records, with its local request ids turned back into rows of the trace. */
static kv_status shim_request(void *ctx, const kv_req_record *q, kv_err *err)
{
    replica *rp = ctx;
    kv_router *r = rp->router;
    KV_ASSERT(q->id < rp->n_ids);
    kv_req_record rec = *q;
    rec.id = rp->ids[q->id];
    if (r->policy == KV_ROUTE_LEAST_TOKENS) {
        double w = r->weight[rec.id];
        if (isnan(q->t_finish_s)) /* rejected: never load */
            rp->outstanding -= w;
        else if (!kv_heap_push(&r->releases, &(release){q->t_finish_s, w, rp->index}))
            return kv_errorf(err, KV_ERR_NOMEM, "router: out of memory");
    }
    return rp->inner.on_request ? rp->inner.on_request(rp->inner.ctx, &rec, err) : KV_OK;
}

static kv_status shim_step(void *ctx, const kv_step_record *s, kv_err *err)
{
    replica *rp = ctx;
    return rp->inner.on_step ? rp->inner.on_step(rp->inner.ctx, s, err) : KV_OK;
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_router_create(const kv_engine_config *ec, const kv_alloc_config *ac, kv_executor ex,
                           uint32_t n_replicas, kv_route_policy policy, kv_router **out,
                           kv_err *err)
{
    *out = NULL;
    if (n_replicas == 0 || policy > KV_ROUTE_LEAST_TOKENS)
        return kv_errorf(err, KV_ERR_INPUT, "router: need at least one replica and a policy");
    kv_router *r = calloc(1, sizeof *r);
    if (r == NULL || (r->reps = calloc(n_replicas, sizeof *r->reps)) == NULL) {
        free(r);
        return kv_errorf(err, KV_ERR_NOMEM, "router: out of memory");
    }
    r->ec = *ec;
    r->policy = policy;
    kv_heap_init(&r->releases, sizeof(release), release_before, NULL);
    r->n = n_replicas;
    for (uint32_t i = 0; i < n_replicas; i++) {
        kv_engine_config c = *ec;
        c.replica = i;
        c.max_requests = 0; /* the router counts */
        r->reps[i].router = r;
        r->reps[i].index = i;
        kv_status st = kv_engine_create(&c, ac, ex, &r->reps[i].e, err);
        if (st != KV_OK) {
            kv_router_destroy(&r);
            return st;
        }
    }
    *out = r;
    return KV_OK;
}

void kv_router_destroy(kv_router **rp)
{
    kv_router *r = rp ? *rp : NULL;
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < r->n; i++) {
        replica *p = &r->reps[i];
        kv_engine_destroy(&p->e);
        for (uint32_t k = 0; k < p->cap; k++)
            free(p->q[k].hashes);
        free(p->q);
        free(p->ids);
    }
    free(r->reps);
    free(r->weight);
    kv_heap_fini(&r->releases);
    free(r);
    *rp = NULL;
}

static uint32_t pick(kv_router *r, uint64_t row, double t)
{
    if (r->policy == KV_ROUTE_ROUND_ROBIN)
        return (uint32_t)(row % r->n);
    while (r->releases.len > 0 && ((const release *)kv_heap_top(&r->releases))->t <= t) {
        release x;
        kv_heap_pop(&r->releases, &x);
        r->reps[x.replica].outstanding -= x.tokens;
    }
    uint32_t best = 0;
    for (uint32_t i = 1; i < r->n; i++)
        if (r->reps[i].outstanding < r->reps[best].outstanding)
            best = i;
    return best;
}

kv_status kv_router_run(kv_router *r, kv_source src, kv_observer obs, bool check_every_step,
                        kv_err *err)
{
    for (uint32_t i = 0; i < r->n; i++) {
        replica *p = &r->reps[i];
        p->inner = obs;
        p->src = (kv_source){.ctx = p, .next = queue_next};
        p->obs = (kv_observer){.ctx = p, .on_request = shim_request, .on_step = shim_step};
    }
    kv_status st = KV_OK;
    for (uint64_t row = 0; st == KV_OK && !(r->ec.max_requests && row >= r->ec.max_requests);
         row++) {
        kv_request q;
        st = src.next(src.ctx, &q, err);
        if (st == KV_EOF) {
            st = KV_OK;
            break;
        }
        if (st != KV_OK)
            break;
        double t = (double)q.t_arrival_us / 1e6 / r->ec.rate_scale;
        for (uint32_t i = 0; i < r->n && st == KV_OK; i++)
            st = kv_engine_advance(r->reps[i].e, r->reps[i].src, r->reps[i].obs, t,
                                   check_every_step, err);
        if (st != KV_OK)
            break;
        uint32_t to = pick(r, row, t);
        if (r->policy == KV_ROUTE_LEAST_TOKENS) {
            if (!kv_vec_reserve(&r->weight, &r->cap_weight, row + 1, sizeof *r->weight, 64)) {
                st = kv_errorf(err, KV_ERR_NOMEM, "router: out of memory");
                break;
            }
            uint32_t n = q.n_samples > q.beam_width ? q.n_samples : q.beam_width;
            r->weight[row] = q.prompt_tokens + (double)(q.output_tokens ? q.output_tokens : 1) *
                                                   (n ? n : 1);
            r->reps[to].outstanding += r->weight[row];
        }
        st = queue_push(&r->reps[to], &q, row, err);
    }
    for (uint32_t i = 0; i < r->n && st == KV_OK; i++) {
        r->reps[i].closed = true;
        st = kv_engine_advance(r->reps[i].e, r->reps[i].src, r->reps[i].obs, INFINITY,
                               check_every_step, err);
        KV_ASSERT(st != KV_OK || kv_engine_finished(r->reps[i].e));
    }
    return st;
}

uint32_t kv_router_replicas(const kv_router *r)
{
    return r->n;
}

const kv_engine *kv_router_engine(const kv_router *r, uint32_t i)
{
    KV_ASSERT(i < r->n);
    return r->reps[i].e;
}

uint64_t kv_router_routed(const kv_router *r, uint32_t i)
{
    KV_ASSERT(i < r->n);
    return r->reps[i].n_ids;
}

void kv_router_stats(const kv_router *r, kv_engine_stats *es, kv_alloc_stats *as)
{
    *es = (kv_engine_stats){0};
    *as = (kv_alloc_stats){0};
    double first = INFINITY, last = -INFINITY;
    for (uint32_t i = 0; i < r->n; i++) {
        const kv_engine_stats *s = kv_engine_stats_of(r->reps[i].e);
        es->steps += s->steps;
        es->requests_in += s->requests_in;
        es->requests_done += s->requests_done;
        es->requests_rejected += s->requests_rejected;
        es->steps_jumped += s->steps_jumped;
        es->preemptions += s->preemptions;
        es->recomputes += s->recomputes;
        es->swap_outs += s->swap_outs;
        es->swap_ins += s->swap_ins;
        es->swap_out_bytes += s->swap_out_bytes;
        es->swap_in_bytes += s->swap_in_bytes;
        es->prompt_tokens += s->prompt_tokens;
        es->output_tokens += s->output_tokens;
        es->prefill_tokens_computed += s->prefill_tokens_computed;
        es->cached_tokens += s->cached_tokens;
        if (s->peak_running_seqs > es->peak_running_seqs)
            es->peak_running_seqs = s->peak_running_seqs;
        es->batch_seqs_sum += s->batch_seqs_sum;
        if (s->requests_in > 0) {
            first = fmin(first, s->first_arrival_s);
            last = fmax(last, s->first_arrival_s + s->makespan_s);
        }
        /* every field of kv_alloc_stats is a uint64_t counter */
        _Static_assert(sizeof(kv_alloc_stats) % sizeof(uint64_t) == 0, "counters only");
        const kv_alloc_stats *a = kv_alloc_stats_of(kv_engine_alloc(r->reps[i].e));
        uint64_t *dst = (uint64_t *)as;
        const uint64_t *src = (const uint64_t *)a;
        for (size_t k = 0; k < sizeof *as / sizeof(uint64_t); k++)
            dst[k] += src[k];
    }
    es->first_arrival_s = isinf(first) ? 0 : first;
    es->makespan_s = isinf(first) ? 0 : last - first;
}
