/* report.c — a run's output files. See report.h. */
#include "report.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "qhist.h"

/* ------------------------------------------------------------------------------------------ */

struct kv_report {
    kv_report_opts o;
    char dir[1024];
    FILE *requests, *timeline, *trace;
    bool trace_first;
    kv_qhist ttft, tpot, e2e;
    uint64_t slo_ok, done;
    /* time-integrated memory (byte-seconds) */
    double mem_s[5], total_s;
    uint64_t pool_bytes;
    struct sampler { /* one per replica */
        double next_s;
        uint64_t swap_out, swap_in; /* traffic since the replica's last timeline row */
    } *samplers;
    uint64_t peak_used_bytes;
};

/* ------------------------------------------------------------------------------------------ */

static FILE *open_in(kv_report *r, const char *name, kv_err *err)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        kv_errorf(err, KV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return f;
}

/* A row being formatted by hand: printf's float conversion was a fifth of a replay's time. */
typedef struct row_buf {
    char b[512];
    size_t n;
} row_buf;

static void put_u64(row_buf *r, uint64_t v)
{
    char t[20];
    int k = 0;
    do {
        t[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (k)
        r->b[r->n++] = t[--k];
}

/* ",x" with x in seconds to the microsecond (round half away from zero), or "," for NAN. */
static void put_s(row_buf *r, double x)
{
    r->b[r->n++] = ',';
    if (isnan(x))
        return;
    long long us = llround(x * 1e6);
    if (us < 0) {
        r->b[r->n++] = '-';
        us = -us;
    }
    put_u64(r, (uint64_t)us / 1000000);
    r->b[r->n++] = '.';
    uint64_t frac = (uint64_t)us % 1000000;
    for (uint64_t d = 100000; d > 0; d /= 10)
        r->b[r->n++] = (char)('0' + frac / d % 10);
}

static void put_str(row_buf *r, const char *s)
{
    size_t n = strlen(s);
    memcpy(r->b + r->n, s, n);
    r->n += n;
}

static void trace_event(kv_report *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void trace_event(kv_report *r, const char *fmt, ...)
{
    if (!r->trace)
        return;
    if (!r->trace_first)
        fputs(",\n", r->trace);
    r->trace_first = false;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->trace, fmt, ap);
    va_end(ap);
}

static void trace_span(kv_report *r, const char *name, uint64_t id, double t0, double t1)
{
    if (isnan(t0) || isnan(t1))
        return;
    trace_event(r,
                "{\"name\":\"%s\",\"cat\":\"request\",\"ph\":\"b\",\"id\":%llu,\"pid\":1,"
                "\"tid\":1,\"ts\":%.3f,\"args\":{\"request\":%llu}}",
                name, (unsigned long long)id, t0 * 1e6, (unsigned long long)id);
    trace_event(r,
                "{\"name\":\"%s\",\"cat\":\"request\",\"ph\":\"e\",\"id\":%llu,\"pid\":1,"
                "\"tid\":1,\"ts\":%.3f}",
                name, (unsigned long long)id, t1 * 1e6);
}

static kv_status on_request(void *ctx, const kv_req_record *q, kv_err *err)
{
    kv_report *r = ctx;
    double ttft = q->t_first_token_s - q->t_arrival_s;
    double e2e = q->t_finish_s - q->t_arrival_s;
    double tpot =
        q->output_tokens > 1 ? (q->t_finish_s - q->t_first_token_s) / (q->output_tokens - 1) : NAN;
    FILE *f = r->requests;
    row_buf b = {.n = 0};
    put_u64(&b, q->id);
    put_s(&b, q->t_arrival_s);
    put_s(&b, q->t_admit_s);
    put_s(&b, q->t_first_token_s);
    put_s(&b, q->t_finish_s);
    put_s(&b, ttft);
    put_s(&b, tpot);
    put_s(&b, e2e);
    const uint64_t ints[] = {q->prompt_tokens, q->output_tokens, q->n_samples,
                             q->cached_tokens, q->preemptions,   q->swapped_bytes};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        b.b[b.n++] = ',';
        put_u64(&b, ints[i]);
    }
    put_str(&b, q->outcome == KV_REQ_DONE ? ",done," : ",rejected,");
    put_str(&b, q->reject_reason ? q->reject_reason : "");
    b.b[b.n++] = '\n';
    fwrite(b.b, 1, b.n, f);
    if (q->outcome == KV_REQ_DONE) {
        r->done++;
        kv_qhist_add(&r->ttft, ttft);
        kv_qhist_add(&r->e2e, e2e);
        if (!isnan(tpot))
            kv_qhist_add(&r->tpot, tpot);
        r->slo_ok += ttft <= r->o.slo_ttft_s && (isnan(tpot) || tpot <= r->o.slo_tpot_s);
        trace_span(r, "queued", q->id, q->t_arrival_s, q->t_admit_s);
        trace_span(r, "prefill", q->id, q->t_admit_s, q->t_first_token_s);
        trace_span(r, "decode", q->id, q->t_first_token_s, q->t_finish_s);
    }
    if (ferror(f))
        return kv_errorf(err, KV_ERR_IO, "%s/requests.csv: write failed", r->dir);
    return KV_OK;
}

static kv_status on_step(void *ctx, const kv_step_record *s, kv_err *err)
{
    kv_report *r = ctx;
    const kv_mem_breakdown *m = s->mem;
    double dt = s->t_end_s - s->t_start_s;
    uint64_t cat[5] = {m->token_bytes, m->reserved_bytes, m->internal_frag_bytes,
                       m->external_frag_bytes, m->free_bytes};
    for (int i = 0; i < 5; i++)
        r->mem_s[i] += (double)cat[i] * dt;
    r->total_s += dt;
    r->pool_bytes = m->pool_bytes;
    uint64_t used = m->token_bytes + m->reserved_bytes + m->internal_frag_bytes;
    if (used > r->peak_used_bytes)
        r->peak_used_bytes = used;
    KV_ASSERT(s->replica < r->o.replicas);
    struct sampler *sp = &r->samplers[s->replica];
    sp->swap_out += s->work.swap_out_bytes;
    sp->swap_in += s->work.swap_in_bytes;
    if (r->o.timeline_interval_s > 0 && s->t_end_s < sp->next_s)
        return KV_OK;
    if (r->o.timeline_interval_s > 0)
        sp->next_s = (floor(s->t_end_s / r->o.timeline_interval_s) + 1) * r->o.timeline_interval_s;
    fprintf(r->timeline,
            "%.6f,%llu,%.6f,%u,%u,%u,%u,%llu,%u,%u,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%u\n",
            s->t_end_s, (unsigned long long)s->step, dt * 1e3, s->running, s->waiting, s->swapped,
            s->batch_seqs, (unsigned long long)s->work.prefill_tokens, s->work.n_decode,
            s->preempted, (unsigned long long)m->token_bytes, (unsigned long long)m->reserved_bytes,
            (unsigned long long)m->internal_frag_bytes, (unsigned long long)m->external_frag_bytes,
            (unsigned long long)m->free_bytes, (unsigned long long)m->cached_free_bytes,
            (unsigned long long)m->host_bytes, (unsigned long long)sp->swap_out,
            (unsigned long long)sp->swap_in, s->replica);
    double ts = s->t_end_s * 1e6;
    unsigned pid = 2 + s->replica;
    trace_event(r,
                "{\"name\":\"KV memory (MiB)\",\"ph\":\"C\",\"pid\":%u,\"ts\":%.3f,\"args\":{"
                "\"token\":%.1f,\"reserved\":%.1f,\"internal frag\":%.1f,\"external frag\":%.1f,"
                "\"free\":%.1f}}",
                pid, ts, m->token_bytes / 1048576.0, m->reserved_bytes / 1048576.0,
                m->internal_frag_bytes / 1048576.0, m->external_frag_bytes / 1048576.0,
                m->free_bytes / 1048576.0);
    trace_event(r,
                "{\"name\":\"requests\",\"ph\":\"C\",\"pid\":%u,\"ts\":%.3f,\"args\":{"
                "\"running\":%u,\"waiting\":%u,\"swapped\":%u}}",
                pid, ts, s->running, s->waiting, s->swapped);
    trace_event(r,
                "{\"name\":\"swap (MiB since last sample)\",\"ph\":\"C\",\"pid\":%u,\"ts\":%.3f,"
                "\"args\":{\"out\":%.1f,\"in\":%.1f}}",
                pid, ts, sp->swap_out / 1048576.0, sp->swap_in / 1048576.0);
    sp->swap_out = sp->swap_in = 0;
    if (ferror(r->timeline))
        return kv_errorf(err, KV_ERR_IO, "%s/timeline.csv: write failed", r->dir);
    return KV_OK;
}

/* ------------------------------------------------------------------------------------------ */

kv_status kv_report_open(const kv_report_opts *o, kv_report **out, kv_err *err)
{
    *out = NULL;
    kv_status st = kv_fs_mkdirs(o->dir, err);
    if (st != KV_OK)
        return st;
    kv_report *r = calloc(1, sizeof *r);
    if (r == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "report: out of memory");
    r->o = *o;
    if (r->o.replicas == 0)
        r->o.replicas = 1;
    r->samplers = calloc(r->o.replicas, sizeof *r->samplers);
    snprintf(r->dir, sizeof r->dir, "%s", o->dir);
    r->trace_first = true;
    if (r->samplers == NULL || kv_qhist_init(&r->ttft) || kv_qhist_init(&r->tpot) || kv_qhist_init(&r->e2e)) {
        kv_report_close(&r, NULL, NULL, NULL, 0, NULL, NULL);
        return kv_errorf(err, KV_ERR_NOMEM, "report: out of memory");
    }
    r->requests = open_in(r, "requests.csv", err);
    r->timeline = r->requests ? open_in(r, "timeline.csv", err) : NULL;
    if (r->timeline && o->perfetto)
        r->trace = open_in(r, "trace.json", err);
    if (!r->requests || !r->timeline || (o->perfetto && !r->trace)) {
        kv_report_close(&r, NULL, NULL, NULL, 0, NULL, NULL);
        return KV_ERR_IO;
    }
    fputs("id,arrival_s,admit_s,first_token_s,finish_s,ttft_s,tpot_s,e2e_s,prompt_tokens,"
          "output_tokens,n_samples,cached_tokens,preemptions,swapped_bytes,outcome,"
          "reject_reason\n",
          r->requests);
    fputs("t_s,step,step_ms,running,waiting,swapped,batch_seqs,prefill_tokens,decode_seqs,"
          "preempted,token_bytes,reserved_bytes,internal_frag_bytes,external_frag_bytes,"
          "free_bytes,cached_free_bytes,host_bytes,swap_out_bytes,swap_in_bytes,replica\n",
          r->timeline);
    if (r->trace)
        fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", r->trace);
    *out = r;
    return KV_OK;
}

kv_observer kv_report_observer(kv_report *r)
{
    return (kv_observer){.ctx = r, .on_request = on_request, .on_step = on_step};
}

static json_t *quantiles(const kv_qhist *h)
{
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)h->n));
    json_object_set_new(o, "mean", json_real(h->n ? h->sum / (double)h->n : 0));
    const double ps[] = {0.5, 0.9, 0.99};
    const char *names[] = {"p50", "p90", "p99"};
    for (int i = 0; i < 3; i++) {
        double lo, hi;
        kv_qhist_ci(h, ps[i], 0.95, &lo, &hi);
        double q = kv_qhist_quantile(h, ps[i]);
        json_object_set_new(o, names[i], json_real(isnan(q) ? 0 : q));
        char key[16];
        snprintf(key, sizeof key, "%s_ci95", names[i]);
        json_t *ci = json_array();
        json_array_append_new(ci, json_real(isnan(lo) ? 0 : lo));
        json_array_append_new(ci, json_real(isnan(hi) ? 0 : hi));
        json_object_set_new(o, key, ci);
    }
    json_object_set_new(o, "max", json_real(h->n ? h->max : 0));
    return o;
}

kv_status kv_report_close(kv_report **rp, const kv_engine_stats *es, const kv_alloc_stats *as,
                          const char *meta_json, double wall_s, kv_summary *sum, kv_err *err)
{
    kv_report *r = rp ? *rp : NULL;
    if (r == NULL)
        return KV_OK;
    kv_status st = KV_OK;
    if (es != NULL) {
        double span = es->makespan_s > 0 ? es->makespan_s : 1e-9;
        kv_summary s = {.done = es->requests_done,
                        .rejected = es->requests_rejected,
                        .preemptions = es->preemptions,
                        .swap_out_bytes = es->swap_out_bytes,
                        .swap_in_bytes = es->swap_in_bytes,
                        .output_tok_per_s = (double)es->output_tokens / span,
                        .requests_per_s = (double)es->requests_done / span,
                        .goodput_share = r->done ? (double)r->slo_ok / (double)r->done : 0,
                        .ttft_p50_s = kv_qhist_quantile(&r->ttft, 0.5),
                        .ttft_p99_s = kv_qhist_quantile(&r->ttft, 0.99),
                        .tpot_p50_s = kv_qhist_quantile(&r->tpot, 0.5),
                        .tpot_p99_s = kv_qhist_quantile(&r->tpot, 0.99),
                        .batch_mean_seqs = es->steps ? es->batch_seqs_sum / (double)es->steps : 0,
                        .batch_peak_seqs = es->peak_running_seqs,
                        .wall_s = wall_s,
                        .sim_s = es->makespan_s,
                        .requests_in = es->requests_in,
                        .steps = es->steps,
                        .steps_jumped = es->steps_jumped};
        double tot = r->total_s * (double)r->pool_bytes;
        double *shares[5] = {&s.share_token, &s.share_reserved, &s.share_internal,
                             &s.share_external, &s.share_free};
        for (int i = 0; i < 5; i++)
            *shares[i] = tot > 0 ? r->mem_s[i] / tot : 0;
        if (sum)
            *sum = s;

        json_t *j = json_object();
        json_error_t je;
        json_t *meta = meta_json ? json_loads(meta_json, 0, &je) : NULL;
        if (meta)
            json_object_update(j, meta);
        json_decref(meta);
        json_t *req = json_object();
        json_object_set_new(req, "arrived", json_integer((json_int_t)es->requests_in));
        json_object_set_new(req, "done", json_integer((json_int_t)es->requests_done));
        json_object_set_new(req, "rejected", json_integer((json_int_t)es->requests_rejected));
        json_object_set_new(j, "requests", req);
        json_t *tp = json_object();
        json_object_set_new(tp, "output_tokens_per_s", json_real(s.output_tok_per_s));
        json_object_set_new(tp, "total_tokens_per_s",
                            json_real((double)(es->output_tokens + es->prompt_tokens) / span));
        json_object_set_new(tp, "requests_per_s", json_real(s.requests_per_s));
        json_object_set_new(tp, "makespan_s", json_real(es->makespan_s));
        json_object_set_new(j, "throughput", tp);
        json_t *gp = json_object();
        json_object_set_new(gp, "slo_ttft_s", json_real(r->o.slo_ttft_s));
        json_object_set_new(gp, "slo_tpot_s", json_real(r->o.slo_tpot_s));
        json_object_set_new(gp, "requests_meeting_slo", json_integer((json_int_t)r->slo_ok));
        json_object_set_new(gp, "share", json_real(s.goodput_share));
        json_object_set_new(gp, "requests_per_s", json_real((double)r->slo_ok / span));
        json_object_set_new(j, "goodput", gp);
        json_object_set_new(j, "ttft_s", quantiles(&r->ttft));
        json_object_set_new(j, "tpot_s", quantiles(&r->tpot));
        json_object_set_new(j, "e2e_s", quantiles(&r->e2e));
        json_t *mem = json_object();
        json_object_set_new(mem, "pool_bytes", json_integer((json_int_t)r->pool_bytes));
        json_object_set_new(mem, "token_share", json_real(s.share_token));
        json_object_set_new(mem, "reserved_share", json_real(s.share_reserved));
        json_object_set_new(mem, "internal_frag_share", json_real(s.share_internal));
        json_object_set_new(mem, "external_frag_share", json_real(s.share_external));
        json_object_set_new(mem, "free_share", json_real(s.share_free));
        json_object_set_new(mem, "peak_used_bytes", json_integer((json_int_t)r->peak_used_bytes));
        json_object_set_new(j, "memory", mem);
        json_t *ev = json_object();
        json_object_set_new(ev, "preemptions", json_integer((json_int_t)es->preemptions));
        json_object_set_new(ev, "recomputes", json_integer((json_int_t)es->recomputes));
        json_object_set_new(ev, "swap_outs", json_integer((json_int_t)es->swap_outs));
        json_object_set_new(ev, "swap_ins", json_integer((json_int_t)es->swap_ins));
        json_object_set_new(ev, "swap_out_bytes", json_integer((json_int_t)es->swap_out_bytes));
        json_object_set_new(ev, "swap_in_bytes", json_integer((json_int_t)es->swap_in_bytes));
        json_object_set_new(ev, "prefix_cached_tokens",
                            json_integer((json_int_t)es->cached_tokens));
        json_object_set_new(ev, "prefill_tokens_computed",
                            json_integer((json_int_t)es->prefill_tokens_computed));
        json_object_set_new(ev, "device_copy_bytes", json_integer((json_int_t)as->copy_bytes));
        json_object_set_new(ev, "chunk_maps", json_integer((json_int_t)as->n_maps));
        json_object_set_new(ev, "chunk_unmaps", json_integer((json_int_t)as->n_unmaps));
        json_object_set_new(j, "events", ev);
        json_t *b = json_object();
        json_object_set_new(b, "steps", json_integer((json_int_t)es->steps));
        json_object_set_new(b, "mean_seqs", json_real(s.batch_mean_seqs));
        json_object_set_new(b, "peak_running_seqs", json_integer(es->peak_running_seqs));
        json_object_set_new(j, "batch", b);
        if (!r->o.no_wall_time) {
            json_t *w = json_object();
            json_object_set_new(w, "wall_s", json_real(wall_s));
            json_object_set_new(w, "simulated_requests_per_s",
                                json_real(wall_s > 0 ? (double)es->requests_in / wall_s : 0));
            json_object_set_new(w, "steps_per_s",
                                json_real(wall_s > 0 ? (double)es->steps / wall_s : 0));
            json_object_set_new(w, "fast_path_steps", json_integer((json_int_t)es->steps_jumped));
            json_object_set_new(j, "wall", w);
        }
        char path[1200];
        snprintf(path, sizeof path, "%s/summary.json", r->dir);
        if (json_dump_file(j, path,
                           JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) != 0)
            st = kv_errorf(err, KV_ERR_IO, "%s: write failed", path);
        json_decref(j);
    }
    if (r->trace) {
        fputs("\n]}\n", r->trace);
        if (fclose(r->trace) != 0 && st == KV_OK)
            st = kv_errorf(err, KV_ERR_IO, "%s/trace.json: write failed", r->dir);
    }
    if (r->requests && fclose(r->requests) != 0 && st == KV_OK)
        st = kv_errorf(err, KV_ERR_IO, "%s/requests.csv: write failed", r->dir);
    if (r->timeline && fclose(r->timeline) != 0 && st == KV_OK)
        st = kv_errorf(err, KV_ERR_IO, "%s/timeline.csv: write failed", r->dir);
    kv_qhist_fini(&r->ttft);
    kv_qhist_fini(&r->tpot);
    kv_qhist_fini(&r->e2e);
    free(r->samplers);
    free(r);
    *rp = NULL;
    return st;
}
