/* validate_report.c — kvgpu validate's report. See validate_report.h.
 *
 * The formats are those kvgpu validate wrote for results/gpu/h100/validation (the tests
 * regenerate all three committed reports from their run folders, byte for byte), including
 * one quirk kept on purpose: the swap error in report.md's table is the first five characters
 * of "%f" (C++'s std::to_string, which the first writer used), e.g. "12.09" and "0.557".
 */
#include "validate_report.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "median.h"

/* ------------------------------------------------------------------------------------------ */

#define GIB 1073741824.0

/* Each figure's place in summary.json: object, member. */
static const struct {
    const char *name, *obj, *key;
} METRICS[KV_VREPORT_N_METRICS] = {
    {"output tokens/s", "throughput", "output_tokens_per_s"},
    {"TTFT p50 (s)", "ttft_s", "p50"},
    {"TTFT p99 (s)", "ttft_s", "p99"},
    {"TPOT p50 (s)", "tpot_s", "p50"},
    {"TPOT p99 (s)", "tpot_s", "p99"},
    {"token share", "memory", "token_share"},
    {"reserved share", "memory", "reserved_share"},
    {"internal frag share", "memory", "internal_frag_share"},
    {"external frag share", "memory", "external_frag_share"},
    {"free share", "memory", "free_share"},
    {"preemptions", "events", "preemptions"},
    {"swap-outs", "events", "swap_outs"},
};

/* gpu_steps.csv's columns the report reads. */
enum { C_SEQS, C_PRED, C_MEAS, C_SWAP_BYTES, C_SWAP_MS, C_PRED_SWAP_MS, C_DEVICE_USED, N_COLS };
static const char *const COLS[N_COLS] = {
    "seqs", "sim_step_ms", "step_ms", "swap_bytes", "swap_ms", "pred_swap_ms", "device_used_bytes"};

/* ------------------------------------------------------------------------------------------ */

static double jnum(json_t *root, const char *a, const char *b)
{
    json_t *x = json_object_get(root, a);
    if (b)
        x = json_object_get(x, b);
    return json_is_number(x) ? json_number_value(x) : NAN;
}

/* Split line in place at commas into at most cap fields; the count. */
static size_t split(char *line, char **f, size_t cap)
{
    size_t n = 0;
    for (char *p = line; n < cap;) {
        f[n++] = p;
        char *comma = strchr(p, ',');
        if (comma == NULL)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return n;
}

static void chomp(char *line)
{
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
}

static bool push2(double **a, double **b, size_t *n, size_t *cap, double x, double y)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        double *na = realloc(*a, c * sizeof *na);
        if (na == NULL)
            return false;
        *a = na;
        double *nb = realloc(*b, c * sizeof *nb);
        if (nb == NULL)
            return false;
        *b = nb;
        *cap = c;
    }
    (*a)[*n] = x;
    (*b)[*n] = y;
    (*n)++;
    return true;
}

static double err_pct(double pred, double meas)
{
    return (pred - meas) / fabs(meas) * 100;
}

/* ------------------------------------------------------------------------------------------ */

const char *kv_vreport_metric_name(int k)
{
    return k >= 0 && k < KV_VREPORT_N_METRICS ? METRICS[k].name : "?";
}

kv_status kv_vreport_read_summary(const char *path, double v[KV_VREPORT_N_METRICS], kv_err *err)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (j == NULL)
        return kv_errorf(err, KV_ERR_INPUT, "%s: %s", path, je.text);
    for (int k = 0; k < KV_VREPORT_N_METRICS; k++)
        v[k] = jnum(j, METRICS[k].obj, METRICS[k].key);
    json_decref(j);
    return KV_OK;
}

double kv_vreport_peak_predicted(const char *config_json)
{
    json_error_t je;
    json_t *cfg = json_load_file(config_json, 0, &je);
    if (cfg == NULL)
        return NAN;
    json_t *b = json_object_get(cfg, "budget");
    double peak = jnum(b, "weight_bytes", NULL) + jnum(b, "activation_bytes", NULL) +
                  jnum(b, "non_torch_bytes", NULL) + jnum(b, "kv_bytes", NULL);
    json_decref(cfg);
    return peak;
}

void kv_vreport_series_fini(kv_vreport_series *s)
{
    free(s->step_pred_ms);
    free(s->step_meas_ms);
    free(s->swap_pred_ms);
    free(s->swap_meas_ms);
    memset(s, 0, sizeof *s);
}

kv_status kv_vreport_read_steps(const char *path, kv_vreport_series *s, kv_err *err)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return kv_errorf(err, KV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    enum { MAX_FIELDS = 64 };
    char *line = NULL, *fld[MAX_FIELDS];
    size_t cap = 0, lineno = 1, n_fields = 0, cap_steps = 0, cap_swaps = 0;
    int col[N_COLS];
    kv_status st = KV_OK;
    if (getline(&line, &cap, f) < 0) {
        st = kv_errorf(err, KV_ERR_INPUT, "%s: empty, expected a header line", path);
    } else {
        chomp(line);
        n_fields = split(line, fld, MAX_FIELDS);
        for (int c = 0; c < N_COLS && st == KV_OK; c++) {
            col[c] = -1;
            for (size_t k = 0; k < n_fields; k++)
                if (strcmp(fld[k], COLS[c]) == 0)
                    col[c] = (int)k;
            if (col[c] < 0)
                st = kv_errorf(err, KV_ERR_INPUT, "%s:1: no column '%s'", path, COLS[c]);
        }
    }
    while (st == KV_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        chomp(line);
        if (line[0] == '\0')
            continue;
        size_t n = split(line, fld, MAX_FIELDS);
        if (n != n_fields) {
            st = kv_errorf(err, KV_ERR_INPUT, "%s:%zu: %zu columns, the header has %zu", path,
                           lineno, n, n_fields);
            break;
        }
        double v[N_COLS];
        for (int c = 0; c < N_COLS && st == KV_OK; c++) {
            const char *x = fld[col[c]];
            char *end = NULL;
            errno = 0;
            v[c] = strtod(x, &end);
            if (*x == '\0' || *end != '\0' || errno)
                st = kv_errorf(err, KV_ERR_INPUT, "%s:%zu: %s: expected a number, got \"%s\"", path,
                               lineno, COLS[c], x);
        }
        if (st != KV_OK)
            break;
        s->peak_device_bytes = fmax(s->peak_device_bytes, v[C_DEVICE_USED]);
        bool ok = true;
        if (v[C_SEQS] > 0 && v[C_MEAS] > 0)
            ok = push2(&s->step_pred_ms, &s->step_meas_ms, &s->n_steps, &cap_steps, v[C_PRED],
                       v[C_MEAS]);
        if (ok && v[C_SWAP_BYTES] > 0 && v[C_SWAP_MS] > 0)
            ok = push2(&s->swap_pred_ms, &s->swap_meas_ms, &s->n_swaps, &cap_swaps,
                       v[C_PRED_SWAP_MS], v[C_SWAP_MS]);
        if (!ok)
            st = kv_errorf(err, KV_ERR_NOMEM, "%s: out of memory", path);
    }
    if (st == KV_OK && ferror(f))
        st = kv_errorf(err, KV_ERR_IO, "%s: read error", path);
    free(line);
    fclose(f);
    if (st != KV_OK)
        kv_vreport_series_fini(s);
    return st;
}

double kv_vreport_median_abs_pct(const double *pred, const double *meas, size_t n)
{
    if (n == 0)
        return NAN;
    double *e = malloc(n * sizeof *e);
    if (e == NULL)
        return NAN;
    for (size_t i = 0; i < n; i++)
        e[i] = fabs(pred[i] - meas[i]) / meas[i] * 100;
    double m = kv_median(e, n);
    free(e);
    return m;
}

void kv_vreport_run_errors(kv_vreport_run *r, const kv_vreport_series *s)
{
    r->step_err_pct = kv_vreport_median_abs_pct(s->step_pred_ms, s->step_meas_ms, s->n_steps);
    r->swap_err_pct = kv_vreport_median_abs_pct(s->swap_pred_ms, s->swap_meas_ms, s->n_swaps);
    r->n_steps = s->n_steps;
    r->n_swap_steps = s->n_swaps;
    r->peak_meas_bytes = s->peak_device_bytes;
}

void kv_vreport_write_steps(FILE *tsv, int run_index, const kv_vreport_series *s)
{
    for (size_t i = 0; i < s->n_steps; i++)
        fprintf(tsv, "%d\t%.6f\t%.6f\n", run_index, s->step_pred_ms[i], s->step_meas_ms[i]);
}

kv_status kv_vreport_collect(const char *gpu_dir, const char *sim_dir, int run_index, FILE *tsv,
                             kv_vreport_run *r, kv_err *err)
{
    size_t n = strlen(gpu_dir) + strlen(sim_dir) + 32;
    char *path = malloc(n);
    if (path == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "validate: out of memory");
    snprintf(path, n, "%s/summary.json", gpu_dir);
    kv_status st = kv_vreport_read_summary(path, r->measured, err);
    if (st == KV_OK) {
        snprintf(path, n, "%s/summary.json", sim_dir);
        st = kv_vreport_read_summary(path, r->predicted, err);
    }
    if (st == KV_OK) {
        kv_vreport_series s;
        snprintf(path, n, "%s/gpu_steps.csv", gpu_dir);
        if ((st = kv_vreport_read_steps(path, &s, err)) == KV_OK) {
            kv_vreport_run_errors(r, &s);
            kv_vreport_write_steps(tsv, run_index, &s);
            kv_vreport_series_fini(&s);
        }
    }
    if (st == KV_OK) {
        snprintf(path, n, "%s/config.json", sim_dir);
        r->peak_pred_bytes = kv_vreport_peak_predicted(path);
    }
    free(path);
    return st;
}

static void write_md(FILE *f, const kv_vreport_info *info, const kv_vreport_run *runs,
                     size_t n_runs)
{
    fprintf(f, "# Predicted (kvsim, calibrated) against measured (kvgpu, model executor)\n\n");
    fprintf(f, "Trace `%s`, requests %llu..%llu, calibration `%s`.\n\nCommands:\n\n```\n",
            info->trace, info->first, info->end, info->calib);
    for (size_t i = 0; i < info->n_commands; i++)
        fprintf(f, "%s\n", info->commands[i]);
    fprintf(f, "```\n\n");
    fprintf(f, "| strategy | step time: median abs error (target 5%%) | swap time per swap: median "
               "abs error (target 10%%) | throughput error (target 3%%) | peak device memory "
               "predicted / measured |\n| --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < n_runs; i++) {
        const kv_vreport_run *c = &runs[i];
        double tp = (c->predicted[0] - c->measured[0]) / c->measured[0] * 100;
        char swap[128] = "no swaps";
        if (c->n_swap_steps) {
            char pct[64];
            snprintf(pct, sizeof pct, "%f", c->swap_err_pct);
            pct[5] = '\0'; /* see the file's comment */
            snprintf(swap, sizeof swap, "%s%% over %zu steps with swaps%s", pct, c->n_swap_steps,
                     c->swap_err_pct > 10 ? " (missed)" : "");
        }
        fprintf(
            f, "| %s | %.2f%% over %zu steps%s | %s | %+.2f%%%s | %.2f / %.2f GiB (%+.1f%%) |\n",
            c->strategy, c->step_err_pct, c->n_steps, c->step_err_pct > 5 ? " (missed)" : "", swap,
            tp, fabs(tp) > 3 ? " (missed)" : "", c->peak_pred_bytes / GIB, c->peak_meas_bytes / GIB,
            (c->peak_pred_bytes - c->peak_meas_bytes) / c->peak_meas_bytes * 100);
    }
    for (size_t i = 0; i < n_runs; i++) {
        const kv_vreport_run *c = &runs[i];
        fprintf(f,
                "\n## %s\n\n| metric | predicted | measured | error |\n| --- | --- | --- | --- |\n",
                c->strategy);
        for (int k = 0; k < KV_VREPORT_N_METRICS; k++)
            fprintf(f, "| %s | %.6g | %.6g | %+.2f%% |\n", METRICS[k].name, c->predicted[k],
                    c->measured[k], err_pct(c->predicted[k], c->measured[k]));
    }
    fprintf(f, "\n![predicted against measured step time](step_time.png)\n\n"
               "The runs' decisions differ where their clocks do: the GPU run advances by "
               "measured step times, kvsim by predicted ones, so arrivals meet different "
               "batches; the memory breakdowns come from the same allocator code and differ "
               "only through those decisions.\n");
}

static void write_csv(FILE *g, const kv_vreport_run *runs, size_t n_runs)
{
    fprintf(g, "strategy,metric,predicted,measured,error_pct\n");
    for (size_t i = 0; i < n_runs; i++) {
        const kv_vreport_run *c = &runs[i];
        fprintf(g, "%s,step_time_median_abs_pct,,,%.4f\n", c->strategy, c->step_err_pct);
        fprintf(g, "%s,swap_time_median_abs_pct,,,%.4f\n", c->strategy, c->swap_err_pct);
        fprintf(g, "%s,peak_device_bytes,%.0f,%.0f,%.4f\n", c->strategy, c->peak_pred_bytes,
                c->peak_meas_bytes,
                (c->peak_pred_bytes - c->peak_meas_bytes) / c->peak_meas_bytes * 100);
        for (int k = 0; k < KV_VREPORT_N_METRICS; k++)
            fprintf(g, "%s,%s,%.9g,%.9g,%.4f\n", c->strategy, METRICS[k].name, c->predicted[k],
                    c->measured[k], err_pct(c->predicted[k], c->measured[k]));
    }
}

/* Open dir/name for writing, run write, close; KV_ERR_IO naming the file on any failure. */
static kv_status write_file(const char *dir, const char *name, const kv_vreport_info *info,
                            const kv_vreport_run *runs, size_t n_runs, kv_err *err)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (path == NULL)
        return kv_errorf(err, KV_ERR_NOMEM, "validate: out of memory");
    snprintf(path, n, "%s/%s", dir, name);
    kv_status st = KV_OK;
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        st = kv_errorf(err, KV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    } else {
        if (strcmp(name, "report.md") == 0)
            write_md(f, info, runs, n_runs);
        else
            write_csv(f, runs, n_runs);
        bool ok = !ferror(f);
        if (fclose(f) != 0 || !ok)
            st = kv_errorf(err, KV_ERR_IO, "%s: write error", path);
    }
    free(path);
    return st;
}

kv_status kv_vreport_write(const char *dir, const kv_vreport_info *info, const kv_vreport_run *runs,
                           size_t n_runs, kv_err *err)
{
    kv_status st = write_file(dir, "report.md", info, runs, n_runs, err);
    return st == KV_OK ? write_file(dir, "report.csv", info, runs, n_runs, err) : st;
}
