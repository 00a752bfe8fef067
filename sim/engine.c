/* engine.c — the continuous-batching engine. The algorithm and its rules are in engine.h.
 *
 * Structures: requests live in a pool addressed by index (stable across growth). The waiting
 * and swapped queues are binary min-heaps on the arrival sequence number, so re-queued
 * (preempted) requests take their FCFS place; the running set is an array kept in the same
 * order, so the preemption victim, the latest arrival, is found from its end.
 *
 * Glossary: context = tokens a request must have computed before it decodes (its prompt, or
 * prompt + generated after a recompute preemption); computed = how many of those are done;
 * seqno = arrival order; req = request; seqs = its allocator sequences (one per sample).
 */
#include "engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "heap.h"
#include "vec.h"

/* ------------------------------------------------------------------------------------------ */

enum { R_WAITING, R_RUNNING, R_SWAPPED };

enum { JUMP_MAX = 4096 }; /* steps one fast-path jump may take */

typedef struct req {
    uint64_t id, seqno;
    double t_arrival_s, t_admit_s, t_first_token_s, t_finish_s; /* simulated time */
    uint32_t prompt_tokens, output_tokens, n_samples;
    uint32_t context, computed, generated;
    uint32_t cached0, preemptions;
    uint64_t swapped_bytes;
    uint8_t state;
    bool admitted_once;
    uint64_t *content; /* allocator-block content ids of the prompt (prefix caching) */
    uint32_t n_content;
    kv_seq_id *seqs; /* n entries; n_seqs live */
    uint32_t n_seqs;
} req;

/* A prefill chunk scheduled in the current step. */
typedef struct chunk {
    uint32_t r, tokens;
} chunk;

struct kv_engine {
    kv_effect_totals fx; /* what this step's allocator operations required of memory (the
                          * allocator adds every operation's effects: kv_alloc_set_totals) */
    kv_engine_config ec;
    kv_alloc *a;
    kv_executor ex;
    uint32_t block_tokens; /* allocator block size when prefix caching is on, else 0 */

    req *reqs;
    uint32_t n_reqs;
    size_t cap_reqs;
    uint32_t *free_reqs; /* as many slots as reqs */
    uint32_t n_free_reqs;
    size_t cap_free_reqs;

    kv_heap waiting, swapped; /* of uint32_t request indices, by seqno */
    uint32_t *running;
    uint32_t n_running, running_seqs;

    chunk *chunks; /* this step's prefills */
    uint32_t n_chunks;
    uint32_t *decodes; /* this step's decoding requests */
    uint32_t n_decodes;

    double now;
    double t_stop; /* kv_engine_advance's bound, for the fast path */
    bool have_next, src_done;
    kv_request next;
    uint64_t next_id, seqno;
    uint64_t *next_hashes; /* a copy: the source's pointer is borrowed */
    size_t next_hashes_cap;

    kv_step_work work;
    uint32_t preempted_in_step;

    /* fast path: per-step event buckets of one jump */
    uint64_t *ev_bytes;
    int64_t *ev_reserved;
    uint32_t *ev_maps;
    kv_growth *growth; /* one per running sequence */
    kv_step_seq *step_seqs; /* with step_detail */
    bool check_jumps;
    kv_engine_stats st;
};

/* ------------------------------------------------------------------------------- heaps --- */

static bool seqno_less(const void *a, const void *b, void *ctx)
{
    const kv_engine *e = ctx;
    return e->reqs[*(const uint32_t *)a].seqno < e->reqs[*(const uint32_t *)b].seqno;
}

static bool heap_push(kv_heap *h, uint32_t r)
{
    return kv_heap_push(h, &r);
}

static uint32_t heap_top(const kv_heap *h)
{
    return *(const uint32_t *)kv_heap_top(h);
}

/* ------------------------------------------------------------------------- requests --- */

static uint32_t req_new(kv_engine *e)
{
    if (e->n_free_reqs > 0)
        return e->free_reqs[--e->n_free_reqs];
    size_t need = (size_t)e->n_reqs + 1;
    if (!kv_vec_reserve(&e->reqs, &e->cap_reqs, need, sizeof *e->reqs, 1024) ||
        !kv_vec_reserve(&e->free_reqs, &e->cap_free_reqs, need, sizeof *e->free_reqs, 1024))
        return UINT32_MAX;
    return e->n_reqs++;
}

static void req_release(kv_engine *e, uint32_t r)
{
    free(e->reqs[r].content);
    free(e->reqs[r].seqs);
    e->reqs[r].content = NULL;
    e->reqs[r].seqs = NULL;
    e->free_reqs[e->n_free_reqs++] = r;
}

static void running_insert(kv_engine *e, uint32_t r)
{
    uint32_t i = e->n_running++;
    while (i > 0 && e->reqs[e->running[i - 1]].seqno > e->reqs[r].seqno) {
        e->running[i] = e->running[i - 1];
        i--;
    }
    e->running[i] = r;
    e->running_seqs += e->reqs[r].n_samples;
    e->reqs[r].state = R_RUNNING;
}

static void running_remove(kv_engine *e, uint32_t r)
{
    uint32_t i = 0;
    while (i < e->n_running && e->running[i] != r)
        i++;
    KV_ASSERT(i < e->n_running);
    memmove(e->running + i, e->running + i + 1, (e->n_running - i - 1) * sizeof *e->running);
    e->n_running--;
    e->running_seqs -= e->reqs[r].n_samples;
}

static void free_seqs(kv_engine *e, req *q)
{
    for (uint32_t k = 0; k < q->n_seqs; k++)
        KV_ASSERT(kv_alloc_free(e->a, q->seqs[k]) == KV_OK);
    q->n_seqs = 0;
}

static kv_status emit(kv_engine *e, uint32_t r, kv_req_outcome outcome, const char *why,
                      kv_observer *obs, kv_err *err)
{
    req *q = &e->reqs[r];
    kv_req_record rec = {.id = q->id,
                         .outcome = outcome,
                         .reject_reason = why,
                         .t_arrival_s = q->t_arrival_s,
                         .t_admit_s = q->admitted_once ? q->t_admit_s : NAN,
                         .t_first_token_s = q->generated > 0 ? q->t_first_token_s : NAN,
                         .t_finish_s = outcome == KV_REQ_DONE ? q->t_finish_s : NAN,
                         .prompt_tokens = q->prompt_tokens,
                         .output_tokens = q->output_tokens,
                         .n_samples = q->n_samples,
                         .cached_tokens = q->cached0,
                         .preemptions = q->preemptions,
                         .swapped_bytes = q->swapped_bytes};
    if (outcome == KV_REQ_DONE) {
        e->st.requests_done++;
        e->st.output_tokens += (uint64_t)q->output_tokens * q->n_samples;
        if (q->t_finish_s - e->st.first_arrival_s > e->st.makespan_s)
            e->st.makespan_s = q->t_finish_s - e->st.first_arrival_s;
    } else {
        e->st.requests_rejected++;
    }
    req_release(e, r);
    return obs->on_request ? obs->on_request(obs->ctx, &rec, err) : KV_OK;
}

/* Allocator-block content ids from the trace's prefix hashes: block j of bt tokens is named by
 * the hash blocks it overlaps and its offset in the first of them. */
static uint64_t *content_ids(const kv_engine *e, const kv_request *r, uint32_t *n_out)
{
    uint32_t bt = e->block_tokens, hb = r->prefix_block_tokens;
    *n_out = 0;
    if (bt == 0 || hb == 0 || r->n_prefix_hashes == 0)
        return NULL;
    uint32_t n = r->prompt_tokens / bt;
    uint64_t *c = malloc((size_t)(n ? n : 1) * sizeof *c);
    if (c == NULL)
        return NULL;
    uint32_t k = 0;
    for (; k < n; k++) {
        uint64_t first = (uint64_t)k * bt, last = first + bt - 1;
        uint64_t h0 = first / hb, h1 = last / hb;
        if (h1 >= r->n_prefix_hashes)
            break;
        uint64_t x = kv_hash_mix64(first - h0 * hb + 1);
        for (uint64_t h = h0; h <= h1; h++)
            x = kv_hash_combine(x, r->prefix_hashes[h]);
        c[k] = x;
    }
    *n_out = k;
    return c;
}

/* ----------------------------------------------------------------------------- source --- */

static kv_status read_next(kv_engine *e, kv_source *src, kv_err *err)
{
    e->have_next = false;
    if (e->src_done)
        return KV_OK;
    if (e->ec.max_requests && e->next_id >= e->ec.max_requests) {
        e->src_done = true;
        return KV_OK;
    }
    kv_status st = src->next(src->ctx, &e->next, err);
    if (st == KV_EOF) {
        e->src_done = true;
        return KV_OK;
    }
    if (st == KV_AGAIN)
        return KV_OK; /* asked again at the next loop of kv_engine_advance */
    if (st != KV_OK)
        return st;
    if (!kv_vec_reserve(&e->next_hashes, &e->next_hashes_cap, e->next.n_prefix_hashes,
                        sizeof *e->next_hashes, 16))
        return kv_errorf(err, KV_ERR_NOMEM, "engine: out of memory");
    if (e->next.n_prefix_hashes)
        memcpy(e->next_hashes, e->next.prefix_hashes,
               e->next.n_prefix_hashes * sizeof *e->next_hashes);
    e->next.prefix_hashes = e->next_hashes;
    e->have_next = true;
    return KV_OK;
}

static double arrival_s(const kv_engine *e, const kv_request *r)
{
    return (double)r->t_arrival_us / 1e6 / e->ec.rate_scale;
}

/* Move arrived requests into the waiting queue; reject the impossible ones at once. */
static kv_status intake(kv_engine *e, kv_source *src, kv_observer *obs, kv_err *err)
{
    while (e->have_next && arrival_s(e, &e->next) <= e->now) {
        const kv_request *in = &e->next;
        uint32_t r = req_new(e);
        if (r == UINT32_MAX)
            return kv_errorf(err, KV_ERR_NOMEM, "engine: out of memory");
        req *q = &e->reqs[r];
        uint32_t n = in->n_samples > in->beam_width ? in->n_samples : in->beam_width;
        *q = (req){.id = e->next_id++,
                   .seqno = e->seqno++,
                   .t_arrival_s = arrival_s(e, in),
                   .prompt_tokens = in->prompt_tokens,
                   .output_tokens = in->output_tokens ? in->output_tokens : 1,
                   .n_samples = n ? n : 1,
                   .state = R_WAITING};
        if (e->st.requests_in++ == 0)
            e->st.first_arrival_s = q->t_arrival_s;
        q->context = q->prompt_tokens;
        const char *why = NULL;
        if (q->prompt_tokens >= e->ec.max_model_len)
            why = "prompt_tokens >= max_model_len";
        else if (!e->ec.chunked_prefill && q->prompt_tokens > e->ec.max_num_batched_tokens)
            why = "prompt_tokens > max_num_batched_tokens without chunked prefill";
        else if (q->n_samples > e->ec.max_num_seqs)
            why = "more samples than max_num_seqs";
        if ((uint64_t)q->prompt_tokens + q->output_tokens > e->ec.max_model_len)
            q->output_tokens = e->ec.max_model_len - q->prompt_tokens;
        kv_status st;
        if (why) {
            st = emit(e, r, KV_REQ_REJECTED, why, obs, err);
        } else {
            q->seqs = malloc(q->n_samples * sizeof *q->seqs);
            q->content = content_ids(e, in, &q->n_content);
            if (q->seqs == NULL)
                return kv_errorf(err, KV_ERR_NOMEM, "engine: out of memory");
            st = heap_push(&e->waiting, r) ? KV_OK
                                           : kv_errorf(err, KV_ERR_NOMEM, "engine: out of memory");
            e->st.prompt_tokens += q->prompt_tokens;
        }
        if (st == KV_OK)
            st = read_next(e, src, err);
        if (st != KV_OK)
            return st;
    }
    return KV_OK;
}

/* ------------------------------------------------------------------------ preemption --- */

/* The victim when request r needs room: the latest-arrived running request after r that has
 * not reached max_preemptions; else r itself unless it is spared; else the latest. Never an
 * earlier arrival: the oldest running request always makes progress. */
static uint32_t pick_victim(const kv_engine *e, uint32_t r)
{
    for (uint32_t i = e->n_running; i-- > 0;) {
        uint32_t v = e->running[i];
        if (v == r)
            break;
        if (e->reqs[v].preemptions < e->ec.max_preemptions)
            return v;
    }
    if (e->reqs[r].preemptions < e->ec.max_preemptions)
        return r;
    return e->running[e->n_running - 1];
}

/* Swap request q's sequences out (or in), in order, until one fails. Returns how many moved;
 * their bytes and copies are added to *bytes and *copies. */
static uint32_t swap_seqs(kv_engine *e, const req *q, bool out, uint64_t *bytes, uint64_t *copies)
{
    uint32_t k = 0;
    for (; k < q->n_seqs; k++) {
        kv_status st = out ? kv_alloc_swap_out(e->a, q->seqs[k], NULL)
                           : kv_alloc_swap_in(e->a, q->seqs[k], NULL);
        if (st != KV_OK)
            break;
        uint32_t n_fx;
        const kv_effect *fx = kv_alloc_effects(e->a, &n_fx);
        kv_effect_totals t = {0};
        kv_effects_add_totals(fx, n_fx, &t);
        *bytes += out ? t.swap_out_bytes : t.swap_in_bytes;
        *copies += out ? t.swap_out_copies : t.swap_in_copies;
    }
    return k;
}

static kv_status preempt(kv_engine *e, uint32_t v, kv_err *err)
{
    req *q = &e->reqs[v];
    q->preemptions++;
    e->st.preemptions++;
    e->preempted_in_step++;
    running_remove(e, v);
    /* drop it from this step's decodes and prefills */
    for (uint32_t i = 0; i < e->n_decodes; i++)
        if (e->decodes[i] == v) {
            e->decodes[i] = e->decodes[--e->n_decodes];
            break;
        }
    bool decoding = q->computed >= q->context && q->generated > 0;
    if (e->ec.preempt == KV_PREEMPT_SWAP && decoding) {
        uint64_t bytes = 0, copies = 0;
        if (swap_seqs(e, q, true, &bytes, &copies) == q->n_seqs) {
            q->state = R_SWAPPED;
            q->swapped_bytes += bytes;
            e->work.swap_out_bytes += bytes;
            e->work.swap_out_copies += copies;
            e->st.swap_outs++;
            e->st.swap_out_bytes += bytes;
            return heap_push(&e->swapped, v)
                       ? KV_OK
                       : kv_errorf(err, KV_ERR_NOMEM, "engine: out of memory");
        }
        /* the host tier is full: drop everything and recompute (bytes already moved stay
         * counted: the copies happened) */
        e->work.swap_out_bytes += bytes;
        e->work.swap_out_copies += copies;
    }
    free_seqs(e, q);
    e->st.recomputes++;
    q->state = R_WAITING;
    q->context = q->prompt_tokens + q->generated;
    q->computed = 0;
    return heap_push(&e->waiting, v) ? KV_OK
                                     : kv_errorf(err, KV_ERR_NOMEM, "engine: out of memory");
}

/* Append one token to every sequence of running request r, preempting others as needed.
 * Returns KV_OK, KV_NO_SPACE when r itself was preempted, or an error. */
static kv_status grow_decode(kv_engine *e, uint32_t r, kv_err *err)
{
    req *q = &e->reqs[r];
    for (uint32_t k = 0; k < q->n_seqs; k++) {
        kv_status st;
        while ((st = kv_alloc_append(e->a, q->seqs[k], 1)) == KV_NO_SPACE) {
            uint32_t v = pick_victim(e, r);
            if ((st = preempt(e, v, err)) != KV_OK)
                return st;
            if (v == r)
                return KV_NO_SPACE;
        }
        if (st != KV_OK)
            return kv_errorf(err, KV_CORRUPT, "engine: append to request %llu: %s",
                             (unsigned long long)q->id, kv_status_str(st));
    }
    return KV_OK;
}

/* Fork the samples of r after its prefill, preempting others as needed. */
static kv_status fork_samples(kv_engine *e, uint32_t r, kv_err *err)
{
    req *q = &e->reqs[r];
    uint32_t final = q->prompt_tokens + q->output_tokens - 1;
    while (q->n_seqs < q->n_samples) {
        kv_seq_id child;
        kv_status st = kv_alloc_fork(e->a, q->seqs[0], final, &child);
        if (st == KV_OK) {
            q->seqs[q->n_seqs++] = child;
            continue;
        }
        if (st != KV_NO_SPACE)
            return kv_errorf(err, KV_CORRUPT, "engine: fork of request %llu: %s",
                             (unsigned long long)q->id, kv_status_str(st));
        uint32_t v = pick_victim(e, r);
        if ((st = preempt(e, v, err)) != KV_OK)
            return st;
        if (v == r)
            return KV_NO_SPACE;
    }
    return KV_OK;
}

/* ------------------------------------------------------------------------- scheduling --- */

static void add_chunk(kv_engine *e, uint32_t r, uint32_t tokens)
{
    e->chunks[e->n_chunks++] = (chunk){r, tokens};
}

/* The step's compute work, from the final prefill and decode lists (a request preempted after
 * it was scheduled does not compute). */
static void tally_work(kv_engine *e)
{
    for (uint32_t i = 0; i < e->n_chunks; i++) {
        const req *q = &e->reqs[e->chunks[i].r];
        if (q->state != R_RUNNING)
            continue;
        double c = e->chunks[i].tokens;
        e->work.n_prefill++;
        e->work.prefill_tokens += e->chunks[i].tokens;
        e->work.prefill_attn_tokens2 += c * ((double)q->computed + c / 2.0);
        if (e->step_seqs)
            e->step_seqs[e->work.n_seqs++] =
                (kv_step_seq){q->seqs[0], q->computed, e->chunks[i].tokens};
    }
    for (uint32_t i = 0; i < e->n_decodes; i++) { /* context after this step's append */
        const req *q = &e->reqs[e->decodes[i]];
        for (uint32_t k = 0; k < q->n_seqs; k++) {
            uint32_t tokens = kv_alloc_seq_tokens(e->a, q->seqs[k]);
            e->work.decode_context += tokens;
            if (e->step_seqs)
                e->step_seqs[e->work.n_seqs++] = (kv_step_seq){q->seqs[k], tokens - 1, 1};
        }
        e->work.n_decode += q->n_seqs;
    }
    e->work.seqs = e->step_seqs;
}

/* Decodes of running requests, oldest first. */
static kv_status schedule_decodes(kv_engine *e, uint32_t *budget_tok, kv_err *err)
{
    for (uint32_t i = 0; i < e->n_running;) {
        uint32_t r = e->running[i];
        req *q = &e->reqs[r];
        if (q->computed < q->context || q->generated == 0 || *budget_tok < q->n_seqs) {
            i++;
            continue;
        }
        kv_status st = grow_decode(e, r, err);
        if (st == KV_NO_SPACE)
            continue; /* r left the running set: running[i] is the next one */
        if (st != KV_OK)
            return st;
        e->decodes[e->n_decodes++] = r;
        *budget_tok -= q->n_seqs;
        i++;
    }
    return KV_OK;
}

/* Chunks of running prefills, oldest first. */
static void schedule_running_prefills(kv_engine *e, uint32_t *budget_tok)
{
    for (uint32_t i = 0; i<e->n_running && * budget_tok> 0; i++) {
        uint32_t r = e->running[i];
        req *q = &e->reqs[r];
        if (q->computed >= q->context)
            continue;
        uint32_t c = q->context - q->computed;
        if (c > *budget_tok)
            c = *budget_tok;
        add_chunk(e, r, c);
        *budget_tok -= c;
    }
}

/* Swapped requests back, FCFS, while they fit. */
static kv_status schedule_swap_ins(kv_engine *e, uint32_t *budget_tok, kv_err *err)
{
    while (e->swapped.len > 0) {
        uint32_t r = heap_top(&e->swapped);
        req *q = &e->reqs[r];
        if (e->running_seqs + q->n_samples > e->ec.max_num_seqs || *budget_tok < q->n_samples)
            break;
        uint64_t bytes = 0, copies = 0;
        uint32_t k = swap_seqs(e, q, false, &bytes, &copies);
        if (k < q->n_seqs) { /* not all fit: put the ones brought in back */
            for (uint32_t j = 0; j < k; j++)
                KV_ASSERT(kv_alloc_swap_out(e->a, q->seqs[j], NULL) == KV_OK);
            break;
        }
        kv_heap_pop(&e->swapped, NULL);
        e->work.swap_in_bytes += bytes;
        e->work.swap_in_copies += copies;
        e->st.swap_ins++;
        e->st.swap_in_bytes += bytes;
        running_insert(e, r);
        kv_status st = grow_decode(e, r, err); /* it decodes in this very step */
        if (st == KV_NO_SPACE)
            break;
        if (st != KV_OK)
            return st;
        e->decodes[e->n_decodes++] = r;
        *budget_tok -= q->n_seqs;
    }
    return KV_OK;
}

static kv_admit_req admit_req_of(const kv_engine *e, const req *q)
{
    kv_admit_req a = {.prompt_tokens = q->context, .final_tokens = q->prompt_tokens + q->output_tokens - 1};
    if (q->generated == 0 && q->n_content > 0) {
        a.block_content = q->content;
        a.n_block_content = q->n_content;
    }
    (void)e;
    return a;
}

/* The breakdown with the waiting head as the pending allocation (external fragmentation is
 * measured against it). */
static void breakdown_now(const kv_engine *e, kv_mem_breakdown *mem)
{
    kv_admit_req pending;
    bool has = e->waiting.len > 0;
    if (has)
        pending = admit_req_of(e, &e->reqs[heap_top(&e->waiting)]);
    kv_alloc_breakdown(e->a, has ? &pending : NULL, mem);
}

/* Hand the observer the step that just ended at e->now. */
static kv_status report_step(kv_engine *e, kv_observer *obs, double t0, kv_step_time t,
                             uint32_t batch, const kv_mem_breakdown *mem, kv_err *err)
{
    kv_step_record rec = {.step = e->st.steps,
                          .replica = e->ec.replica,
                          .t_start_s = t0,
                          .t_end_s = e->now,
                          .work = e->work,
                          .time = t,
                          .running = e->n_running,
                          .waiting = e->waiting.len,
                          .swapped = e->swapped.len,
                          .batch_seqs = batch,
                          .preempted = e->preempted_in_step,
                          .mem = mem};
    return obs->on_step(obs->ctx, &rec, err);
}

/* Admit waiting requests FCFS. */
static kv_status schedule_admissions(kv_engine *e, uint32_t *budget_tok, kv_observer *obs,
                                     kv_err *err)
{
    while (e->waiting.len > 0 && *budget_tok > 0) {
        uint32_t r = heap_top(&e->waiting);
        req *q = &e->reqs[r];
        if (e->running_seqs + q->n_samples > e->ec.max_num_seqs)
            break;
        bool alone = e->n_running == 0 && e->n_chunks == 0 && e->n_decodes == 0;
        if (!e->ec.chunked_prefill && q->context > *budget_tok && !alone)
            break;
        kv_admit_req ar = admit_req_of(e, q);
        if (kv_alloc_too_large(e->a, &ar)) { /* never fits: reject now, do not block the queue */
            kv_heap_pop(&e->waiting, NULL);
            kv_status rs =
                emit(e, r, KV_REQ_REJECTED, "final length exceeds the KV budget", obs, err);
            if (rs != KV_OK)
                return rs;
            continue;
        }
        if (!alone && !kv_alloc_can_admit(e->a, &ar))
            break;
        kv_seq_id s;
        uint32_t cached = 0;
        kv_status st = kv_alloc_admit(e->a, &ar, &s, &cached);
        if (st == KV_NO_SPACE)
            break;
        kv_heap_pop(&e->waiting, NULL);
        if (st == KV_TOO_LARGE) {
            if ((st = emit(e, r, KV_REQ_REJECTED, "final length exceeds the KV budget", obs,
                           err)) != KV_OK)
                return st;
            continue;
        }
        if (st != KV_OK)
            return kv_errorf(err, KV_CORRUPT, "engine: admit of request %llu: %s",
                             (unsigned long long)q->id, kv_status_str(st));
        q->seqs[0] = s;
        q->n_seqs = 1;
        q->computed = cached < q->context ? cached : q->context - 1;
        if (!q->admitted_once) {
            q->admitted_once = true;
            q->t_admit_s = e->now;
            q->cached0 = q->computed;
            e->st.cached_tokens += q->computed;
        }
        running_insert(e, r);
        uint32_t c = q->context - q->computed;
        if (e->ec.chunked_prefill && c > *budget_tok)
            c = *budget_tok;
        add_chunk(e, r, c);
        *budget_tok = c < *budget_tok ? *budget_tok - c : 0;
    }
    return KV_OK;
}

/* ------------------------------------------------------------------------------ a step --- */

static kv_status finish(kv_engine *e, uint32_t r, kv_observer *obs, kv_err *err)
{
    req *q = &e->reqs[r];
    q->t_finish_s = e->now;
    running_remove(e, r);
    free_seqs(e, q);
    return emit(e, r, KV_REQ_DONE, NULL, obs, err);
}

static kv_status step(kv_engine *e, kv_observer *obs, kv_err *err)
{
    memset(&e->work, 0, sizeof e->work);
    e->n_chunks = e->n_decodes = 0;
    e->preempted_in_step = 0;
    memset(&e->fx, 0, sizeof e->fx);
    uint32_t budget = e->ec.max_num_batched_tokens;
    kv_status st = KV_OK;

    if (e->ec.chunked_prefill) {
        st = schedule_decodes(e, &budget, err);
        if (st == KV_OK)
            schedule_running_prefills(e, &budget);
        if (st == KV_OK && e->preempted_in_step == 0)
            st = schedule_swap_ins(e, &budget, err);
        if (st == KV_OK && e->preempted_in_step == 0)
            st = schedule_admissions(e, &budget, obs, err);
    } else {
        if (e->swapped.len == 0)
            st = schedule_admissions(e, &budget, obs, err);
        if (st == KV_OK && e->n_chunks == 0) {
            st = schedule_decodes(e, &budget, err);
            if (st == KV_OK && e->preempted_in_step == 0)
                st = schedule_swap_ins(e, &budget, err);
        }
    }
    if (st != KV_OK)
        return st;
    tally_work(e);

    /* Maps, unmaps and device copies are priced from the step's effects; swaps were priced
     * above, per request moved. */
    e->work.n_maps = e->fx.n_maps;
    e->work.n_unmaps = e->fx.n_unmaps;
    e->work.copy_bytes = e->fx.copy_bytes;
    kv_step_time t = {0};
    if (e->n_chunks + e->n_decodes > 0 || e->work.swap_out_bytes || e->work.n_unmaps)
        t = e->ex.step(e->ex.ctx, &e->work);
    double t0 = e->now;
    e->now += t.total_s;

    /* results of the step */
    uint32_t batch = e->work.n_decode + e->work.n_prefill;
    for (uint32_t i = 0; i < e->n_chunks && st == KV_OK; i++) {
        uint32_t r = e->chunks[i].r;
        req *q = &e->reqs[r];
        if (q->state != R_RUNNING) /* preempted after its chunk was scheduled */
            continue;
        q->computed += e->chunks[i].tokens;
        e->st.prefill_tokens_computed += e->chunks[i].tokens;
        if (q->computed < q->context)
            continue;
        if (q->generated++ == 0)
            q->t_first_token_s = e->now;
        if (q->generated >= q->output_tokens)
            st = finish(e, r, obs, err);
        else if (q->n_seqs < q->n_samples && (st = fork_samples(e, r, err)) == KV_NO_SPACE)
            st = KV_OK; /* preempted itself: it will prefill again */
    }
    for (uint32_t i = 0; i < e->n_decodes && st == KV_OK; i++) {
        uint32_t r = e->decodes[i];
        req *q = &e->reqs[r];
        if (q->state != R_RUNNING)
            continue;
        if (++q->generated >= q->output_tokens)
            st = finish(e, r, obs, err);
    }
    if (st != KV_OK)
        return st;

    if (e->running_seqs > e->st.peak_running_seqs)
        e->st.peak_running_seqs = e->running_seqs;
    e->st.batch_seqs_sum += batch;
    e->st.steps++;
    if (obs->on_step) {
        kv_mem_breakdown mem;
        breakdown_now(e, &mem);
        st = report_step(e, obs, t0, t, batch, &mem, err);
    }
    return st;
}

/* ------------------------------------------------------------------------- fast path --- */

/* Whether the waiting head would be admitted in a step that decodes n_decode_seqs sequences
 * (the same test schedule_admissions makes, without changing anything). */
static bool head_admissible(const kv_engine *e, uint32_t n_decode_seqs)
{
    if (e->waiting.len == 0)
        return false;
    const req *q = &e->reqs[heap_top(&e->waiting)];
    uint32_t budget = e->ec.max_num_batched_tokens;
    if (e->ec.chunked_prefill)
        budget -= n_decode_seqs;
    if (budget == 0 || e->running_seqs + q->n_samples > e->ec.max_num_seqs)
        return false;
    if (!e->ec.chunked_prefill && q->context > budget)
        return false;
    kv_admit_req ar = admit_req_of(e, q);
    return kv_alloc_too_large(e->a, &ar) || kv_alloc_can_admit(e->a, &ar);
}

/* Take the pure decode steps that are certain to be pure, in O(1) each. A sequence crossing
 * into a new block or chunk is an "event" at a known step: its bytes, reservation change and
 * map calls go into per-step buckets, so the breakdown and the step's work follow exactly. */
static kv_status try_jump(kv_engine *e, kv_observer *obs, uint64_t *jumped, kv_err *err)
{
    *jumped = 0;
    if (!e->ec.fast_path || e->n_running == 0 || e->swapped.len > 0 || e->now >= e->t_stop ||
        (e->have_next && arrival_s(e, &e->next) <= e->now))
        return KV_OK;
    /* An adaptive horizon (twice the last jump, since arrivals cut most jumps short) was
     * tried: it made more, shorter jumps and cost 60% more time on the 1M-request chat bench
     * (7.5 s against 4.6 s), so events are built up to the completion bound. */
    uint64_t k_max = JUMP_MAX, context = 0;
    uint32_t n_seqs = 0;
    for (uint32_t i = 0; i < e->n_running && k_max > 0; i++) {
        const req *q = &e->reqs[e->running[i]];
        if (q->computed < q->context || q->generated == 0 || q->n_seqs < q->n_samples)
            return KV_OK; /* a prefill, or samples still to fork */
        if (q->output_tokens - q->generated - 1 < k_max)
            k_max = q->output_tokens - q->generated - 1;
        for (uint32_t s = 0; s < q->n_seqs; s++) {
            kv_growth *gp = &e->growth[n_seqs + s], g;
            KV_ASSERT(kv_alloc_growth(e->a, q->seqs[s], gp) == KV_OK);
            g = *gp;
            if (g.copy_next)
                return KV_OK;
            if (g.unit_tokens == 0 && g.capacity - g.tokens < k_max)
                k_max = g.capacity - g.tokens;
            if (g.tokens + k_max > e->ec.max_model_len)
                k_max = e->ec.max_model_len - g.tokens;
            context += g.tokens;
        }
        n_seqs += q->n_seqs;
    }
    if (k_max == 0 || n_seqs > e->ec.max_num_batched_tokens || head_admissible(e, n_seqs))
        return KV_OK;

    /* events: step j (1-based) of the jump appends each sequence's (tokens + j)-th token */
    memset(e->ev_bytes, 0, (k_max + 1) * sizeof *e->ev_bytes);
    memset(e->ev_reserved, 0, (k_max + 1) * sizeof *e->ev_reserved);
    memset(e->ev_maps, 0, (k_max + 1) * sizeof *e->ev_maps);
    for (uint32_t i = 0; i < n_seqs; i++) {
        const kv_growth *g = &e->growth[i];
        if (g->unit_tokens == 0)
            continue;
        uint64_t cap = g->capacity, f = g->final_tokens;
        for (uint64_t j = cap - g->tokens + 1; j <= k_max; j += g->unit_tokens) {
            uint64_t grown = cap + g->unit_tokens;
            e->ev_bytes[j] += g->unit_bytes;
            e->ev_maps[j] += g->unit_maps;
            e->ev_reserved[j] += (int64_t)((grown < f ? grown : f) - (cap < f ? cap : f));
            cap = grown;
        }
    }
    uint64_t free_bytes, cached_bytes;
    kv_alloc_free_bytes(e->a, &free_bytes, &cached_bytes);
    uint64_t taken = 0;
    for (uint64_t j = 1; j <= k_max; j++) { /* stop before the pool would run dry */
        if (taken + e->ev_bytes[j] > free_bytes) {
            k_max = j - 1;
            break;
        }
        taken += e->ev_bytes[j];
    }
    if (k_max == 0)
        return KV_OK;

    kv_mem_breakdown mem;
    breakdown_now(e, &mem);
    e->preempted_in_step = 0; /* a pure step preempts nothing */
    uint64_t tb = kv_alloc_token_bytes(e->a);
    uint64_t ntb = kv_shape_token_bytes(&kv_alloc_config_of(e->a)->shape);
    uint64_t uncached0 = free_bytes - cached_bytes;
    uint64_t k = 0;
    taken = 0;
    kv_status st = KV_OK;
    while (k < k_max && st == KV_OK && e->now < e->t_stop &&
           !(e->have_next && arrival_s(e, &e->next) <= e->now)) {
        k++;
        memset(&e->work, 0, sizeof e->work);
        e->work.n_decode = n_seqs;
        e->work.decode_context = context + k * n_seqs;
        e->work.n_maps = e->ev_maps[k];
        kv_step_time t = e->ex.step(e->ex.ctx, &e->work);
        double t0 = e->now;
        e->now += t.total_s;
        e->st.batch_seqs_sum += n_seqs;
        e->st.steps++;
        e->st.steps_jumped++;
        taken += e->ev_bytes[k];
        mem.token_bytes += n_seqs * tb;
        mem.reserved_bytes += (uint64_t)(e->ev_reserved[k] - (int64_t)n_seqs) * tb;
        mem.free_bytes -= e->ev_bytes[k];
        mem.cached_free_bytes =
            taken > uncached0 ? cached_bytes - (taken - uncached0) : cached_bytes;
        mem.internal_frag_bytes = mem.pool_bytes - mem.token_bytes - mem.reserved_bytes -
                                  mem.external_frag_bytes - mem.free_bytes;
        mem.uncompressed_token_bytes += n_seqs * ntb;
        if (obs->on_step)
            st = report_step(e, obs, t0, t, n_seqs, &mem, err);
    }
    for (uint32_t i = 0; i < e->n_running && k > 0; i++) { /* the appends, in bulk */
        req *q = &e->reqs[e->running[i]];
        for (uint32_t s = 0; s < q->n_seqs; s++)
            KV_ASSERT(kv_alloc_append(e->a, q->seqs[s], (uint32_t)k) == KV_OK);
        q->generated += (uint32_t)k;
    }
    *jumped = k;
    if (st == KV_OK && k > 0 && e->check_jumps) { /* the deltas must equal a recount */
        kv_mem_breakdown real;
        breakdown_now(e, &real);
        if (memcmp(&real, &mem, sizeof real) != 0)
            return kv_errorf(
                err, KV_CORRUPT,
                "engine: fast path after %llu steps: breakdown token %llu/%llu "
                "reserved %llu/%llu internal %llu/%llu free %llu/%llu (delta/recount)",
                (unsigned long long)k, (unsigned long long)mem.token_bytes,
                (unsigned long long)real.token_bytes, (unsigned long long)mem.reserved_bytes,
                (unsigned long long)real.reserved_bytes,
                (unsigned long long)mem.internal_frag_bytes,
                (unsigned long long)real.internal_frag_bytes, (unsigned long long)mem.free_bytes,
                (unsigned long long)real.free_bytes);
    }
    return st;
}

/* ------------------------------------------------------------------------------------------ */

void kv_engine_config_default(kv_engine_config *c)
{
    *c = (kv_engine_config){.max_num_seqs = 256,
                            .max_num_batched_tokens = 8192,
                            .chunked_prefill = true,
                            .preempt = KV_PREEMPT_RECOMPUTE,
                            .max_preemptions = 8,
                            .max_model_len = 8192,
                            .rate_scale = 1.0,
                            .fast_path = true};
}

kv_status kv_engine_create(const kv_engine_config *ec, const kv_alloc_config *ac, kv_executor ex,
                           kv_engine **out, kv_err *err)
{
    *out = NULL;
    if (ec->max_num_seqs == 0 || ec->max_num_batched_tokens < ec->max_num_seqs ||
        ec->max_model_len < 2 || !(ec->rate_scale > 0))
        return kv_errorf(err, KV_ERR_INPUT,
                         "engine: need max_num_seqs > 0, max_num_batched_tokens >= max_num_seqs, "
                         "rate_scale > 0 and max_model_len >= 2");
    kv_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "engine: out of memory");
    e->ec = *ec;
    e->ex = ex;
    kv_heap_init(&e->waiting, sizeof(uint32_t), seqno_less, e);
    kv_heap_init(&e->swapped, sizeof(uint32_t), seqno_less, e);
    kv_alloc_config c = *ac;
    c.max_seq_tokens = ec->max_model_len;
    c.max_seqs = 2 * ec->max_num_seqs + 1024; /* running, swapped, and forks in flight */
    kv_status st = kv_alloc_create(&c, &e->a, err);
    if (st == KV_OK)
        kv_alloc_set_totals(e->a, &e->fx);
    e->running = malloc(c.max_seqs * sizeof *e->running);
    e->decodes = malloc(c.max_seqs * sizeof *e->decodes);
    e->chunks = malloc(c.max_seqs * sizeof *e->chunks);
    e->ev_bytes = malloc((JUMP_MAX + 1) * sizeof *e->ev_bytes);
    e->ev_reserved = malloc((JUMP_MAX + 1) * sizeof *e->ev_reserved);
    e->ev_maps = malloc((JUMP_MAX + 1) * sizeof *e->ev_maps);
    e->growth = malloc(c.max_seqs * sizeof *e->growth);
    if (ec->step_detail) {
        e->ec.fast_path = false; /* the fast path prices steps without listing them */
        e->step_seqs = malloc(c.max_seqs * sizeof *e->step_seqs);
        if (e->step_seqs == NULL)
            st = st == KV_OK ? kv_errorf(err, KV_ERR_NOMEM, "engine: out of memory") : st;
    }
    if (st == KV_OK && (!e->running || !e->decodes || !e->chunks || !e->ev_bytes ||
                        !e->ev_reserved || !e->ev_maps || !e->growth))
        st = kv_errorf(err, KV_ERR_NOMEM, "engine: out of memory");
    if (st != KV_OK) {
        kv_engine_destroy(&e);
        return st;
    }
    if ((c.strategy == KV_PAGED || c.strategy == KV_COMPRESSED) && c.paged.prefix_caching)
        e->block_tokens = c.paged.block_tokens;
    *out = e;
    return KV_OK;
}

void kv_engine_destroy(kv_engine **ep)
{
    kv_engine *e = ep ? *ep : NULL;
    if (e == NULL)
        return;
    for (uint32_t i = 0; i < e->n_reqs; i++) { /* requests still held (after an error) */
        bool is_free = false;
        for (uint32_t j = 0; j < e->n_free_reqs && !is_free; j++)
            is_free = e->free_reqs[j] == i;
        if (!is_free) {
            free(e->reqs[i].content);
            free(e->reqs[i].seqs);
        }
    }
    kv_alloc_destroy(&e->a);
    free(e->reqs);
    free(e->free_reqs);
    kv_heap_fini(&e->waiting);
    kv_heap_fini(&e->swapped);
    free(e->running);
    free(e->decodes);
    free(e->chunks);
    free(e->ev_bytes);
    free(e->ev_reserved);
    free(e->ev_maps);
    free(e->growth);
    free(e->step_seqs);
    free(e->next_hashes);
    free(e);
    *ep = NULL;
}

kv_status kv_engine_advance(kv_engine *e, kv_source src, kv_observer obs, double t_stop,
                            bool check_every_step, kv_err *err)
{
    e->check_jumps = check_every_step;
    e->t_stop = t_stop;
    kv_status st = KV_OK;
    while (st == KV_OK) {
        if (!e->have_next && !e->src_done && (st = read_next(e, &src, err)) != KV_OK)
            break;
        if (e->n_running == 0 && e->swapped.len == 0 && e->waiting.len == 0) {
            if (!e->have_next)
                break; /* idle: the source has ended or holds nothing yet */
            double t = arrival_s(e, &e->next);
            if (t > e->now)
                e->now = t;
        }
        if (e->now >= t_stop)
            break;
        st = intake(e, &src, &obs, err);
        if (st != KV_OK || (e->n_running == 0 && e->swapped.len == 0 && e->waiting.len == 0))
            continue;
        uint64_t jumped = 0;
        st = try_jump(e, &obs, &jumped, err);
        if (st == KV_OK && jumped > 0 && check_every_step)
            st = kv_alloc_check(e->a, err);
        if (st != KV_OK || jumped > 0)
            continue;
        st = step(e, &obs, err);
        if (st == KV_OK && check_every_step)
            st = kv_alloc_check(e->a, err);
    }
    return st;
}

kv_status kv_engine_run(kv_engine *e, kv_source src, kv_observer obs, bool check_every_step,
                        kv_err *err)
{
    kv_status st = kv_engine_advance(e, src, obs, INFINITY, check_every_step, err);
    if (st == KV_OK && !kv_engine_finished(e))
        return kv_errorf(err, KV_ERR_INPUT, "engine: the source said KV_AGAIN to kv_engine_run");
    return st;
}

bool kv_engine_finished(const kv_engine *e)
{
    return e->src_done && !e->have_next && e->n_running == 0 && e->swapped.len == 0 &&
           e->waiting.len == 0;
}

double kv_engine_now(const kv_engine *e)
{
    return e->now;
}

void kv_engine_set_listener(kv_engine *e, kv_op_listener fn, void *ctx)
{
    kv_alloc_set_listener(e->a, fn, ctx);
}

const kv_engine_config *kv_engine_config_of(const kv_engine *e)
{
    return &e->ec;
}

const kv_engine_stats *kv_engine_stats_of(const kv_engine *e)
{
    return &e->st;
}

const kv_alloc *kv_engine_alloc(const kv_engine *e)
{
    return e->a;
}
