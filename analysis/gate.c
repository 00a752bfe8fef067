/* gate.c — rules, comparison, table and JUnit output of the regression gate. See gate.h. */
#include "gate.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inifile.h"

/* ------------------------------------------------------------------------------------------ */

/* Defaults: what a KV-manager change should not move. Latency tails get more room than
 * medians (they rest on fewer requests); shares of the pool get absolute room. */
static const kv_gate_rule defaults[] = {
    {"throughput.output_tokens_per_s", true, 0.02, 0},
    {"throughput.requests_per_s", true, 0.02, 0},
    {"goodput.share", true, 0, 0.01},
    {"ttft_s.p50", false, 0.05, 0.001},
    {"ttft_s.p99", false, 0.10, 0.001},
    {"tpot_s.p50", false, 0.05, 0.0001},
    {"tpot_s.p99", false, 0.10, 0.0001},
    {"e2e_s.p99", false, 0.10, 0.001},
    {"memory.token_share", true, 0, 0.01},
    {"memory.internal_frag_share", false, 0, 0.01},
    {"memory.external_frag_share", false, 0, 0.01},
    {"events.preemptions", false, 0.10, 2},
    {"requests.rejected", false, 0, 0},
    {"batch.mean_seqs", true, 0.05, 0},
};

typedef struct rules_ctx {
    kv_gate_rules *out;
    bool seen_better[KV_GATE_MAX_RULES];
} rules_ctx;

/* ------------------------------------------------------------------------------------------ */

void kv_gate_default_rules(kv_gate_rules *out)
{
    out->n = (int)(sizeof defaults / sizeof defaults[0]);
    memcpy(out->r, defaults, sizeof defaults);
}

static bool on_rule(void *ctx, const char *section, const char *key, const char *v, char *why,
                    size_t why_bytes)
{
    rules_ctx *c = ctx;
    kv_gate_rules *rs = c->out;
    int i = 0;
    while (i < rs->n && strcmp(rs->r[i].metric, section) != 0)
        i++;
    if (i == rs->n) {
        if (rs->n == KV_GATE_MAX_RULES || strlen(section) >= sizeof rs->r[0].metric ||
            section[0] == '\0') {
            snprintf(why, why_bytes, "[%s]: too many rules or an empty/long metric name", section);
            return false;
        }
        rs->r[rs->n++] = (kv_gate_rule){.higher_is_better = true};
        snprintf(rs->r[i].metric, sizeof rs->r[i].metric, "%s", section);
    }
    kv_gate_rule *r = &rs->r[i];
    if (strcmp(key, "better") == 0) {
        if (strcmp(v, "higher") != 0 && strcmp(v, "lower") != 0) {
            snprintf(why, why_bytes, "[%s] better: expected higher or lower, got \"%s\"", section,
                     v);
            return false;
        }
        r->higher_is_better = v[0] == 'h';
        c->seen_better[i] = true;
        return true;
    }
    if (strcmp(key, "relative") == 0 || strcmp(key, "absolute") == 0) {
        double d = 0;
        if (!kv_inifile_number(v, 0, INFINITY, &d)) {
            snprintf(why, why_bytes, "[%s] %s: expected a number >= 0, got \"%s\"", section, key,
                     v);
            return false;
        }
        if (key[0] == 'r')
            r->relative = d;
        else
            r->absolute = d;
        return true;
    }
    snprintf(why, why_bytes, "[%s]: unknown key '%s' (better, relative, absolute)", section, key);
    return false;
}

kv_status kv_gate_load_rules(const char *path, kv_gate_rules *out, kv_err *err)
{
    *out = (kv_gate_rules){.n = 0};
    rules_ctx c = {.out = out};
    kv_status st = kv_inifile_load(path, on_rule, &c, NULL, err);
    if (st != KV_OK)
        return st;
    for (int i = 0; i < out->n; i++)
        if (!c.seen_better[i])
            return kv_errorf(err, KV_ERR_INPUT, "%s: [%s]: 'better = higher|lower' missing", path,
                             out->r[i].metric);
    if (out->n == 0)
        return kv_errorf(err, KV_ERR_INPUT, "%s: no rules", path);
    return KV_OK;
}

/* The number at a dotted path. */
static bool lookup(json_t *root, const char *path, double *out)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *j = root;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = json_is_object(j) ? json_object_get(j, k) : NULL;
    if (!json_is_number(j))
        return false;
    *out = json_number_value(j);
    return true;
}

static kv_status load_json(const char *path, json_t **out, kv_err *err)
{
    json_error_t je;
    *out = json_load_file(path, 0, &je);
    if (*out == NULL) {
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return kv_errorf(err, KV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        fclose(f);
        return kv_errorf(err, KV_ERR_INPUT, "%s:%d: invalid JSON: %s", path, je.line, je.text);
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL; /* the caller decrefs what it gets: leave nothing dangling */
        return kv_errorf(err, KV_ERR_INPUT, "%s: expected a JSON object (a summary.json)", path);
    }
    return KV_OK;
}

kv_status kv_gate_compare(const char *baseline, const char *current, const kv_gate_rules *rules,
                          kv_gate_result *out, kv_err *err)
{
    *out = (kv_gate_result){.n = 0};
    json_t *b = NULL, *c = NULL;
    kv_status st = load_json(baseline, &b, err);
    if (st == KV_OK)
        st = load_json(current, &c, err);
    for (int i = 0; st == KV_OK && i < rules->n; i++) {
        const kv_gate_rule *r = &rules->r[i];
        kv_gate_row *row = &out->rows[out->n++];
        row->rule = r;
        if (!lookup(b, r->metric, &row->baseline))
            st = kv_errorf(err, KV_ERR_INPUT, "%s: metric '%s' missing or not a number", baseline,
                           r->metric);
        else if (!lookup(c, r->metric, &row->current))
            st = kv_errorf(err, KV_ERR_INPUT, "%s: metric '%s' missing or not a number", current,
                           r->metric);
        if (st != KV_OK)
            break;
        row->allowed = fmax(r->relative * fabs(row->baseline), r->absolute);
        double gain =
            r->higher_is_better ? row->current - row->baseline : row->baseline - row->current;
        row->verdict = gain < -row->allowed  ? KV_VERDICT_REGRESSED
                       : gain > row->allowed ? KV_VERDICT_IMPROVED
                                             : KV_VERDICT_OK;
        out->n_regressed += row->verdict == KV_VERDICT_REGRESSED;
        out->n_improved += row->verdict == KV_VERDICT_IMPROVED;
    }
    json_decref(b);
    json_decref(c);
    return st;
}

static const char *verdict_name(kv_verdict v)
{
    return v == KV_VERDICT_REGRESSED ? "REGRESSED" : v == KV_VERDICT_IMPROVED ? "improved" : "ok";
}

void kv_gate_print(FILE *f, const kv_gate_result *r)
{
    fprintf(f, "%-32s %14s %14s %10s %9s %12s  %s\n", "metric", "baseline", "current", "delta",
            "delta%", "allowed", "verdict");
    for (int i = 0; i < r->n; i++) {
        const kv_gate_row *x = &r->rows[i];
        double d = x->current - x->baseline;
        char pct[16] = "-";
        if (x->baseline != 0)
            snprintf(pct, sizeof pct, "%+.2f%%", 100.0 * d / fabs(x->baseline));
        fprintf(f, "%-32s %14.6g %14.6g %+10.4g %9s %12.4g  %s (%s is better)\n", x->rule->metric,
                x->baseline, x->current, d, pct, x->allowed, verdict_name(x->verdict),
                x->rule->higher_is_better ? "higher" : "lower");
    }
    fprintf(f, "%d metrics: %d regressed, %d improved, %d within tolerance\n", r->n, r->n_regressed,
            r->n_improved, r->n - r->n_regressed - r->n_improved);
}

/* s as XML attribute or text content: the five markup characters as entities, other control
 * characters (not allowed in XML 1.0) as spaces. */
static void xml_put(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default: fputc(c < 0x20 && c != '\t' && c != '\n' ? ' ' : (int)c, f); break;
        }
    }
}

kv_status kv_gate_write_junit(const char *path, const char *suite, const kv_gate_result *r,
                              kv_err *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return kv_errorf(err, KV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fputs("<testsuite name=\"", f);
    xml_put(f, suite);
    fprintf(f, "\" tests=\"%d\" failures=\"%d\">\n", r->n, r->n_regressed);
    for (int i = 0; i < r->n; i++) {
        const kv_gate_row *x = &r->rows[i];
        fputs("  <testcase classname=\"kvsim.gate\" name=\"", f);
        xml_put(f, x->rule->metric);
        fputs("\">", f);
        if (x->verdict == KV_VERDICT_REGRESSED) {
            fputs("\n    <failure message=\"", f);
            xml_put(f, x->rule->metric);
            fprintf(f,
                    " regressed\">baseline %.9g, current %.9g, allowed %.9g (%s is better)"
                    "</failure>\n  ",
                    x->baseline, x->current, x->allowed,
                    x->rule->higher_is_better ? "higher" : "lower");
        }
        fprintf(f, "</testcase>\n");
    }
    fprintf(f, "</testsuite>\n");
    if (ferror(f) | (fclose(f) != 0))
        return kv_errorf(err, KV_ERR_IO, "%s: write failed", path);
    return KV_OK;
}
