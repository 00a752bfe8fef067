/* cli_plan.c — `kvsim plan rate|block|replicas`: capacity planning by search.
 *
 *   plan rate TRACE      the highest sustainable request rate of each strategy under the SLOs;
 *   plan block TRACE     the same for each block (paged, compressed) or chunk (chunk-pool)
 *                        size, and which size sustains the most;
 *   plan replicas TRACE  the fewest engine replicas behind a router (round-robin,
 *                        least-tokens; router.h) that serve the trace, at its own rate times
 *                        --rate-scale, within the SLOs, per strategy and router.
 * "Sustainable" means the replay meets every SLO given: p99 TTFT <= --slo-ttft-p99, p99 TPOT <=
 * --slo-tpot-p99, goodput share >= --goodput (requests meeting --slo-ttft and --slo-tpot). The
 * load is the trace's own arrival process sped up by a rate scale, searched geometrically
 * (analysis/plan.h) between --lo and --hi to a relative tolerance --tol. Options this command
 * does not know are replay's (model, GPU, engine knobs): they fill one kv_run_config that every
 * case starts from; the case then sets its named configuration (run.h), size or router, and
 * each evaluation its rate scale or replicas, and calls kv_run.
 */
#include "cli_plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_plot.h"
#include "fs.h"
#include "plan.h"
#include "reader.h"
#include "report.h"
#include "run.h"
#include "spec.h"
#include "stats.h"

/* ------------------------------------------------------------------------------------------ */

enum { MAX_PASS = 48, MAX_CASES = 16 };

typedef struct plan_case {
    char label[64];
    kv_run_config cfg; /* the replay options, then the case's strategy, knobs and router */
} plan_case;

typedef struct plan_ctx {
    const char *trace, *tmp;
    char *pass[MAX_PASS];
    int n_pass;
    const plan_case *c;
    double slo_ttft_p99, slo_tpot_p99, goodput;
    double rate_scale; /* replicas: the load */
} plan_ctx;

/* ------------------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: kvsim plan rate TRACE [plan options] [replay options]   (TRACE first)\n"
        "       kvsim plan block TRACE [--sizes LIST] [--strategy paged|compressed|chunk-pool]\n"
        "                        [plan options] [replay options]\n"
        "       kvsim plan replicas TRACE [--rate-scale X] [--max-replicas N] [--strategy S]\n"
        "                        [--router round-robin|least-tokens] [plan options] [replay options]\n"
        "  rate: the highest arrival rate each strategy sustains under the SLOs.\n"
        "  block: the same per block size (paged, compressed; tokens, default\n"
        "         8,16,32,64,128) or chunk size (chunk-pool; KiB, default 64,256,1024,2048),\n"
        "         and the best size.\n"
        "  replicas: the fewest replicas behind each router (both unless --router) that serve\n"
        "         the trace at --rate-scale X (1) within the SLOs, per strategy (all six unless\n"
        "         --strategy); searched by doubling then bisection up to --max-replicas (64).\n"
        "  plan options:\n"
        "    --slo-ttft-p99 S (2)  --slo-tpot-p99 S (0.2)  --goodput SHARE (off; with\n"
        "    replay's --slo-ttft/--slo-tpot)  --lo X (0.25)  --hi X (32): rate scales searched\n"
        "    --tol T (0.02): relative precision  -o DIR: plan.txt, plan.csv, plan.png/svg\n"
        "  Every other option is passed to kvsim replay (e.g. --model, --gpu, --max-num-seqs).\n");
}

/* x: the rate scale (rate, block) or the replicas (replicas, when p->rate_scale > 0). */
static kv_status feasible(void *ctx_, double x, bool *ok, kv_err *err)
{
    plan_ctx *p = ctx_;
    bool replicas = p->rate_scale > 0;
    kv_run_config c = p->c->cfg;
    c.engine.rate_scale = replicas ? p->rate_scale : x;
    c.out_dir = p->tmp;
    c.report.no_wall_time = true;
    c.report.timeline_interval_s = 1000000;
    if (replicas) {
        c.routed = true;
        c.replicas = (uint64_t)x;
    }
    kv_summary s;
    kv_err e = {{0}};
    kv_status st = kv_run(&c, NULL, &s, &e);
    if (st != KV_OK)
        return kv_errorf(err, st, "replay of %s at %s %g failed: %s", p->c->label,
                         replicas ? "replicas" : "rate scale", x, e.msg);
    *ok = s.done > 0 && !(s.ttft_p99_s > p->slo_ttft_p99) && !(s.tpot_p99_s > p->slo_tpot_p99) &&
          s.goodput_share >= p->goodput;
    fprintf(stderr, "  %-26s %s%-9.4g p99 TTFT %8.3f s, p99 TPOT %.4f s, goodput %5.1f%%: %s\n",
            p->c->label, replicas ? "n=" : "x", x, s.ttft_p99_s, s.tpot_p99_s,
            100 * s.goodput_share, *ok ? "meets the SLOs" : "misses");
    return KV_OK;
}

/* Requests per second at rate scale 1 of what the replays see: the spec's rate, or the trace's
 * over the window [skip, skip + limit) (limit 0: to the end). */
static double base_rate(const char *trace, uint64_t skip, uint64_t limit)
{
    size_t n = strlen(trace);
    if (n > 4 && strcmp(trace + n - 4, ".ini") == 0) {
        kv_workload_spec s;
        kv_spec_default(&s);
        kv_err e = {{0}};
        return kv_spec_load(trace, &s, &e) == KV_OK ? s.arrival.rate_per_s : NAN;
    }
    kv_trace *t = NULL;
    kv_trace_stats *st = NULL;
    kv_err e = {{0}};
    kv_request r;
    double rate = NAN;
    if (kv_trace_open(trace, NULL, &t, &e) == KV_OK && kv_trace_stats_create(&st) == KV_OK) {
        for (uint64_t k = 0; (limit == 0 || k < skip + limit) &&
                                       kv_trace_next(t, &r, &e) == KV_OK;
             k++)
            if (k >= skip && kv_trace_stats_add(st, &r) != KV_OK)
                break;
        kv_trace_summary m;
        kv_trace_stats_summary(st, &m);
        rate = m.rate_per_s;
    }
    kv_trace_stats_destroy(&st);
    kv_trace_close(&t);
    return rate;
}

/* s as the body of a gnuplot single-quoted string (a quote is written twice), into dst. */
/* plan.png and plan.svg in out, by gnuplot (no shell: any character in out or title is fine). */
static int draw(const char *out, const char *title, bool replicas)
{
    static const char *const terms[] = {"png", "svg"};
    char dir_q[1100], out_q[1100], title_q[1300];
    kv_plot_quote(kv_plot_script_dir(), dir_q, sizeof dir_q);
    kv_plot_quote(out, out_q, sizeof out_q);
    kv_plot_quote(title, title_q, sizeof title_q);
    for (int t = 0; t < 2; t++) {
        char vars[5000];
        snprintf(vars, sizeof vars,
                 "dir='%s'; term='%s'; out='%s/plan.%s'; title='%s'; DATA='%s/plan.tsv'%s", dir_q,
                 terms[t], out_q, terms[t], title_q, out_q,
                 replicas ? "; ylab='fewest replicas meeting the SLOs'; fmt='%.0f'" : "");
        int rc = kv_plot_gnuplot("plan.gp", vars);
        if (rc != KV_EXIT_OK)
            return rc;
    }
    return KV_EXIT_OK;
}

/* The configurations a question compares, each from base; returns how many, or -1 after a
 * message. */
static int make_cases(int q, const char *strategy, const char *sizes, const char *router,
                      const kv_run_config *base, plan_case *cases)
{
    int n = 0;
    if (q == 0) {
        for (size_t i = 0; i < kv_named_config_count() && n < MAX_CASES; i++) {
            const kv_named_config *nc = kv_named_config_at(i);
            if (!(nc->in & KV_NAMED_IN_COMPARE))
                continue;
            snprintf(cases[n].label, sizeof cases[n].label, "%s", nc->name);
            cases[n].cfg = *base;
            kv_named_config_apply(nc, &cases[n].cfg.alloc);
            n++;
        }
    } else if (q == 1) {
        const char *s = strategy ? strategy : "paged";
        bool chunk = strcmp(s, "chunk-pool") == 0;
        if (!chunk && strcmp(s, "paged") != 0 && strcmp(s, "compressed") != 0) {
            fprintf(stderr, "kvsim plan block: --strategy: paged, compressed or chunk-pool\n");
            return -1;
        }
        char list[256];
        snprintf(list, sizeof list, "%s",
                 sizes   ? sizes
                 : chunk ? "64,256,1024,2048"
                         : "8,16,32,64,128");
        for (char *t = strtok(list, ","); t && n < MAX_CASES; t = strtok(NULL, ",")) {
            uint64_t v;
            if (!kv_cli_u64("plan block", "--sizes", t, 1, chunk ? 1u << 20 : 65536, &v))
                return -1;
            plan_case *c = &cases[n++];
            c->cfg = *base;
            KV_ASSERT(kv_strategy_parse(s, &c->cfg.alloc.strategy) == KV_OK);
            if (chunk) {
                snprintf(c->label, sizeof c->label, "chunk %lluKiB", (unsigned long long)v);
                c->cfg.alloc.chunk.chunk_bytes = v * 1024;
            } else {
                snprintf(c->label, sizeof c->label, "%s block %llu", s, (unsigned long long)v);
                c->cfg.alloc.paged.block_tokens = (uint32_t)v;
            }
        }
    } else {
        static const kv_route_policy routers[] = {KV_ROUTE_ROUND_ROBIN, KV_ROUTE_LEAST_TOKENS};
        kv_route_policy only = KV_ROUTE_ROUND_ROBIN;
        if (router && kv_route_policy_parse(router, &only) != KV_OK) {
            fprintf(stderr, "kvsim plan replicas: --router: round-robin or least-tokens\n");
            return -1;
        }
        for (size_t i = 0; i < kv_named_config_count(); i++) {
            const kv_named_config *nc = kv_named_config_at(i);
            bool all = strategy == NULL;
            if (!(nc->in & KV_NAMED_IN_COMPARE) ||
                (!all && strcmp(strategy, nc->name) != 0 &&
                 strcmp(strategy, kv_strategy_name(nc->strategy)) != 0))
                continue;
            for (int k = 0; k < 2 && n < MAX_CASES; k++) {
                if (router && routers[k] != only)
                    continue;
                snprintf(cases[n].label, sizeof cases[n].label, "%s %s", nc->name,
                         kv_route_policy_name(routers[k]));
                cases[n].cfg = *base;
                kv_named_config_apply(nc, &cases[n].cfg.alloc);
                cases[n].cfg.router = routers[k];
                cases[n].cfg.routed = true;
                n++;
            }
            if (!all) /* "contiguous" names the first reservation policy only */
                break;
        }
        if (n == 0) {
            fprintf(stderr, "kvsim plan replicas: --strategy: unknown \"%s\"\n", strategy);
            return -1;
        }
    }
    return n;
}

int kv_cli_plan_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? KV_EXIT_USAGE : KV_EXIT_OK;
    }
    static const char *const questions[] = {"rate", "block", "replicas"};
    int q = 0;
    while (q < 3 && strcmp(argv[1], questions[q]) != 0)
        q++;
    if (q == 3) {
        fprintf(stderr, "kvsim plan: unknown question '%s' (rate, block, replicas)\n", argv[1]);
        return KV_EXIT_USAGE;
    }
    bool block = q == 1, replicas = q == 2;
    char cmd[32];
    snprintf(cmd, sizeof cmd, "plan %s", questions[q]);
    plan_ctx p = {.slo_ttft_p99 = 2.0, .slo_tpot_p99 = 0.2, .goodput = 0};
    double lo = 0.25, hi = 32, tol = 0.02, rate_scale = 1, max_replicas = 64;
    const char *out = NULL, *sizes = NULL, *strategy = NULL, *router = NULL;
    if (argc < 3 || argv[2][0] == '-') {
        fprintf(stderr, "kvsim %s: TRACE comes first, right after '%s'\n", cmd, argv[1]);
        return KV_EXIT_USAGE;
    }
    p.trace = argv[2];
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return KV_EXIT_OK;
        }
#define OPT_D(name, dst, lo_, hi_, when)                                                           \
    if ((when) && strcmp(a, name) == 0) {                                                          \
        if (!(v = kv_cli_value(cmd, argc, argv, &i)) ||                                            \
            !kv_cli_double(cmd, a, v, lo_, hi_, &(dst)))                                           \
            return KV_EXIT_USAGE;                                                                  \
        continue;                                                                                  \
    }
        OPT_D("--slo-ttft-p99", p.slo_ttft_p99, 0, 1e9, true)
        OPT_D("--slo-tpot-p99", p.slo_tpot_p99, 0, 1e9, true)
        OPT_D("--goodput", p.goodput, 0, 1, true)
        OPT_D("--lo", lo, 1e-6, 1e6, !replicas)
        OPT_D("--hi", hi, 1e-6, 1e6, !replicas)
        OPT_D("--tol", tol, 1e-4, 1, !replicas)
        OPT_D("--rate-scale", rate_scale, 1e-6, 1e6, replicas)
        OPT_D("--max-replicas", max_replicas, 1, 4096, replicas)
#undef OPT_D
        const char **dst = strcmp(a, "-o") == 0                                ? &out
                           : block && strcmp(a, "--sizes") == 0                ? &sizes
                           : (block || replicas) && strcmp(a, "--strategy") == 0 ? &strategy
                           : replicas && strcmp(a, "--router") == 0            ? &router
                                                                               : NULL;
        if (dst) {
            if (!(*dst = kv_cli_value(cmd, argc, argv, &i)))
                return KV_EXIT_USAGE;
        } else if (strcmp(a, "--strategy") == 0 || strcmp(a, "--rate-scale") == 0 ||
                   strcmp(a, "--replicas") == 0 || strcmp(a, "--router") == 0) {
            fprintf(stderr, "kvsim %s: %s is what the plan chooses; leave it out\n", cmd, a);
            return KV_EXIT_USAGE;
        } else if (p.n_pass < MAX_PASS) {
            p.pass[p.n_pass++] = argv[i]; /* a replay option (its value follows as the next word) */
        } else {
            fprintf(stderr, "kvsim %s: too many options\n", cmd);
            return KV_EXIT_USAGE;
        }
    }
    if (!(hi > lo)) {
        fprintf(stderr, "kvsim %s: --hi must exceed --lo\n", cmd);
        return KV_EXIT_USAGE;
    }
    kv_run_config base;
    kv_run_config_default(&base);
    base.trace = p.trace;
    base.progress = kv_cli_progress();
    kv_err err = {{0}};
    if (kv_run_config_args(&base, p.n_pass, p.pass, &err) != KV_OK) {
        fprintf(stderr, "kvsim %s: %s\n", cmd, err.msg);
        return KV_EXIT_USAGE;
    }
    static plan_case cases[MAX_CASES];
    int n_cases = make_cases(q, strategy, sizes, router, &base, cases);
    if (n_cases < 0)
        return KV_EXIT_USAGE;

    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/kvsim-plan-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    p.tmp = tmp;
    p.rate_scale = replicas ? rate_scale : 0;
    double rate1 = base_rate(p.trace, base.skip, base.limit);
    kv_bisect_result res[MAX_CASES];
    kv_fewest_result few[MAX_CASES];
    for (int i = 0; i < n_cases; i++) {
        p.c = &cases[i];
        fprintf(stderr, "kvsim %s: %s\n", cmd, cases[i].label);
        kv_status st = replicas ? kv_plan_fewest((unsigned)max_replicas, feasible, &p, &few[i], &err)
                                : kv_plan_bisect(lo, hi, tol, feasible, &p, &res[i], &err);
        if (st != KV_OK) {
            fprintf(stderr, "kvsim %s: %s\n", cmd, err.msg);
            return KV_EXIT_USAGE;
        }
    }
    if (kv_fs_remove_tree(tmp, &err) != KV_OK)
        fprintf(stderr, "kvsim %s: %s\n", cmd, err.msg);

    int best = -1;
    for (int i = 0; i < n_cases; i++) {
        if (replicas ? few[i].found && (best < 0 || few[i].best < few[best].best)
                     : !res[i].below_lo && (best < 0 || res[i].best > res[best].best))
            best = i;
    }
    char how[512], slos[200];
    snprintf(slos, sizeof slos, "p99 TTFT <= %g s, p99 TPOT <= %g s%s", p.slo_ttft_p99,
             p.slo_tpot_p99, p.goodput > 0 ? " and the goodput share is met" : "");
    if (replicas)
        snprintf(how, sizeof how,
                 "How: replicas doubled from 1 until a replay of every replica behind the router "
                 "on one clock met %s, then bisected between the last failure and the first "
                 "pass (exact, assuming more replicas never hurt); at most %g replicas.",
                 slos, max_replicas);
    else
        snprintf(how, sizeof how,
                 "How: geometric bisection over the rate scale in [%g, %g] to within %.1f%%; a "
                 "scale passes when %s.",
                 lo, hi, 100 * tol, slos);
    FILE *outs[3] = {stdout, NULL, NULL};
    if (out) {
        char path[600];
        if (kv_fs_mkdirs(out, &err) != KV_OK) {
            fprintf(stderr, "kvsim %s: %s\n", cmd, err.msg);
            return KV_EXIT_FAIL;
        }
        snprintf(path, sizeof path, "%s/plan.txt", out);
        outs[1] = fopen(path, "w");
        snprintf(path, sizeof path, "%s/plan.tsv", out);
        outs[2] = fopen(path, "w");
        if (!outs[1] || !outs[2]) {
            fprintf(stderr, "kvsim %s: cannot write in %s\n", cmd, out);
            return KV_EXIT_FAIL;
        }
    }
    for (int k = 0; k < 2; k++) {
        FILE *f = outs[k];
        if (f == NULL)
            continue;
        if (replicas) {
            fprintf(f, "kvsim %s: %s at rate scale %g (%.3f requests/s)\n", cmd, p.trace,
                    rate_scale, rate1 * rate_scale);
            fprintf(f, "%-32s %9s %8s %s\n", "configuration", "replicas", "evals", "note");
            for (int i = 0; i < n_cases; i++)
                fprintf(f, "%-32s %9u %8d %s\n", cases[i].label, few[i].best,
                        few[i].evaluations,
                        !few[i].found ? "misses the SLOs even at --max-replicas"
                        : i == best   ? "fewest"
                                      : "");
        } else {
            fprintf(f, "kvsim %s: %s (%.3f requests/s at scale 1)\n", cmd, p.trace, rate1);
            fprintf(f, "%-22s %12s %14s %8s %s\n", "configuration", "max scale", "requests/s",
                    "evals", "note");
            for (int i = 0; i < n_cases; i++)
                fprintf(f, "%-22s %12.4g %14.3f %8d %s\n", cases[i].label, res[i].best,
                        res[i].best * rate1, res[i].evaluations,
                        res[i].below_lo ? "fails even at --lo"
                        : res[i].at_hi  ? "meets the SLOs even at --hi"
                        : i == best     ? "best"
                                        : "");
        }
        fprintf(f, "%s\n", how);
    }
    if (out) {
        for (int i = 0; i < n_cases; i++)
            fprintf(outs[2], "%s\t%.6f\n", cases[i].label,
                    replicas ? (double)few[i].best : res[i].best * rate1);
        fclose(outs[1]);
        fclose(outs[2]);
        char title[600];
        const char *slash = strrchr(p.trace, '/');
        const char *name = slash ? slash + 1 : p.trace;
        if (replicas)
            snprintf(title, sizeof title, "%s x%g: fewest replicas for p99 TTFT <= %gs, TPOT <= %gs",
                     name, rate_scale, p.slo_ttft_p99, p.slo_tpot_p99);
        else
            snprintf(title, sizeof title,
                     "%s: highest rate meeting p99 TTFT <= %gs, p99 TPOT <= %gs", name,
                     p.slo_ttft_p99, p.slo_tpot_p99);
        return draw(out, title, replicas);
    }
    return KV_EXIT_OK;
}
