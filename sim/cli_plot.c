/* cli_plot.c — `kvsim plot RUN_DIR... -o OUT`: figures from runs' output files, drawn by the
 * gnuplot scripts in analysis/ (PNG and SVG of each):
 *   memory      the time-averaged memory breakdown, a stacked bar per run (summary.json);
 *   timeline    KV memory by category and running sequences over time, a panel per run
 *               (timeline.csv);
 *   latency     TTFT and TPOT CDFs, a line per run (requests.csv).
 *   throughput-latency  p99 TTFT against throughput, a line per label (--sweep CSV).
 * This file only gathers labels and the breakdown table and runs gnuplot; the scripts read the
 * CSVs themselves. Scripts are found in $KVSIM_ANALYSIS or analysis/ under the working directory.
 */
#include "cli_plot.h"

#include <errno.h>
#include <jansson.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cli.h"

extern char **environ;

/* ------------------------------------------------------------------------------------------ */

enum { MAX_RUNS = 32, TEXT = 4096 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kvsim plot RUN_DIR... -o OUT_DIR\n"
            "       kvsim plot --sweep SWEEP.csv -o OUT_DIR\n"
            "       kvsim plot --validate VALIDATE_DIR   (kvgpu validate's step-time figure)\n"
            "  Figures (PNG and SVG) from runs written by kvsim replay or compare: memory\n"
            "  (breakdown per strategy), timeline (memory and batch over time), latency (TTFT\n"
            "  and TPOT CDFs). With --sweep: throughput-latency curves (p99 TTFT against output\n"
            "  throughput, a line per label) from kvsim sweep's CSV. Needs gnuplot (make deps\n"
            "  installs gnuplot-nox).\n");
}

static bool safe(const char *s)
{
    return strchr(s, '\'') == NULL && strchr(s, '"') == NULL && strchr(s, ' ') == NULL &&
           strchr(s, '\\') == NULL;
}

const char *kv_plot_quote(const char *s, char *dst, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 3 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\'')
            dst[n++] = '\'';
        dst[n++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    dst[n] = '\0';
    return dst;
}

const char *kv_plot_script_dir(void)
{
    return getenv("KVSIM_ANALYSIS") ? getenv("KVSIM_ANALYSIS") : "analysis";
}

int kv_plot_gnuplot(const char *script, const char *vars)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", kv_plot_script_dir(), script);
    char *argv[] = {"gnuplot", "-e", (char *)vars, path, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
    if (rc != 0) {
        fprintf(stderr, "kvsim plot: cannot run gnuplot: %s (make deps installs gnuplot-nox)\n",
                strerror(rc));
        return KV_EXIT_FAIL;
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "kvsim plot: gnuplot failed on %s\n", path);
        return KV_EXIT_FAIL;
    }
    return KV_EXIT_OK;
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

static double share(json_t *o, const char *key)
{
    json_t *m = json_object_get(o, "memory");
    json_t *v = m ? json_object_get(m, key) : NULL;
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* ------------------------------------------------------------------------------------------ */

int kv_plot_runs(const char *const *runs, int n_runs, const char *out_dir)
{
    if (n_runs < 1 || n_runs > MAX_RUNS) {
        fprintf(stderr, "kvsim plot: give 1 to %d run directories\n", MAX_RUNS);
        return KV_EXIT_USAGE;
    }
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "kvsim plot: %s: cannot create: %s\n", out_dir, strerror(errno));
        return KV_EXIT_FAIL;
    }
    char tsv[1100];
    snprintf(tsv, sizeof tsv, "%s/memory.tsv", out_dir);
    FILE *f = fopen(tsv, "w");
    if (f == NULL) {
        fprintf(stderr, "kvsim plot: %s: cannot create: %s\n", tsv, strerror(errno));
        return KV_EXIT_FAIL;
    }
    char runs_s[TEXT] = "", labels_s[TEXT] = "", title[512] = "";
    int rc = KV_EXIT_OK;
    for (int i = 0; i < n_runs && rc == KV_EXIT_OK; i++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/summary.json", runs[i]);
        json_error_t je;
        json_t *j = json_load_file(path, 0, &je);
        if (j == NULL) {
            fprintf(stderr, "kvsim plot: %s: %s\n", path, je.text);
            rc = KV_EXIT_USAGE;
            break;
        }
        const char *label = str_or(j, "label", str_or(j, "strategy", "run"));
        if (!safe(runs[i]) || !safe(label)) {
            fprintf(stderr, "kvsim plot: %s: paths and labels must not hold spaces or quotes\n",
                    runs[i]);
            rc = KV_EXIT_USAGE;
        } else {
            fprintf(f, "%s\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\n", label, share(j, "token_share"),
                    share(j, "reserved_share"), share(j, "internal_frag_share"),
                    share(j, "external_frag_share"), share(j, "free_share"));
            size_t n = strlen(runs_s), m = strlen(labels_s);
            snprintf(runs_s + n, sizeof runs_s - n, "%s%s", i ? " " : "", runs[i]);
            snprintf(labels_s + m, sizeof labels_s - m, "%s%s", i ? " " : "", label);
            if (i == 0) {
                const char *trace = str_or(j, "trace", "?"), *slash = strrchr(trace, '/');
                json_t *rs = json_object_get(j, "rate_scale");
                snprintf(title, sizeof title, "%s, %s on %s, %gx rate", slash ? slash + 1 : trace,
                         str_or(j, "model", "?"), str_or(j, "gpu", "?"),
                         json_is_number(rs) ? json_number_value(rs) : 1.0);
            }
        }
        json_decref(j);
    }
    if (fclose(f) != 0 && rc == KV_EXIT_OK)
        rc = KV_EXIT_FAIL;
    const char *dir = kv_plot_script_dir();
    static const char *const figs[] = {"memory", "timeline", "latency"};
    static const char *const terms[] = {"png", "svg"};
    char dir_q[1100], out_q[2100], title_q[1030], tsv_q[2200];
    kv_plot_quote(dir, dir_q, sizeof dir_q);
    kv_plot_quote(out_dir, out_q, sizeof out_q);
    kv_plot_quote(title, title_q, sizeof title_q);
    kv_plot_quote(tsv, tsv_q, sizeof tsv_q);
    for (size_t k = 0; k < 3 && rc == KV_EXIT_OK; k++) {
        for (size_t t = 0; t < 2 && rc == KV_EXIT_OK; t++) {
            char vars[3 * TEXT + 6000], script[64];
            snprintf(vars, sizeof vars,
                     "dir='%s'; term='%s'; out='%s/%s.%s'; title='%s'; runs='%s'; labels='%s'; "
                     "DATA='%s'",
                     dir_q, terms[t], out_q, figs[k], terms[t], title_q, runs_s, labels_s, tsv_q);
            snprintf(script, sizeof script, "%s.gp", figs[k]);
            rc = kv_plot_gnuplot(script, vars);
        }
    }
    if (rc == KV_EXIT_OK)
        fprintf(stderr, "kvsim plot: memory, timeline, latency (.png, .svg) in %s\n", out_dir);
    return rc;
}

/* throughput-latency.png/svg from a sweep CSV: one line per label, in order of appearance. */
static int plot_sweep(const char *csv, const char *out_dir)
{
    FILE *f = fopen(csv, "r");
    if (f == NULL) {
        fprintf(stderr, "kvsim plot: %s: cannot open: %s\n", csv, strerror(errno));
        return KV_EXIT_USAGE;
    }
    char line[2048], labels[TEXT] = "", trace_title[256] = "sweep";
    int n = 0;
    bool header = true;
    while (fgets(line, sizeof line, f)) {
        if (header) {
            header = false;
            if (strncmp(line, "point,label,", 12) != 0) {
                fprintf(stderr,
                        "kvsim plot: %s:1: not a kvsim sweep CSV (expected point,label,...)\n",
                        csv);
                fclose(f);
                return KV_EXIT_USAGE;
            }
            continue;
        }
        char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        const char *label = c1 + 1;
        char padded[300];
        snprintf(padded, sizeof padded, " %s ", label);
        char hay[TEXT + 2];
        snprintf(hay, sizeof hay, " %s ", labels);
        if (strstr(hay, padded) == NULL && safe(label) &&
            strlen(labels) + strlen(label) + 2 < TEXT) {
            size_t m = strlen(labels);
            snprintf(labels + m, sizeof labels - m, "%s%s", n++ ? " " : "", label);
        }
    }
    fclose(f);
    if (n == 0 || !safe(csv)) {
        fprintf(stderr, "kvsim plot: %s: no rows (or a path with spaces or quotes)\n", csv);
        return KV_EXIT_USAGE;
    }
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "kvsim plot: %s: cannot create: %s\n", out_dir, strerror(errno));
        return KV_EXIT_FAIL;
    }
    const char *slash = strrchr(csv, '/');
    snprintf(trace_title, sizeof trace_title, "throughput and tail latency, %s",
             slash ? slash + 1 : csv);
    const char *dir = kv_plot_script_dir();
    static const char *const terms[] = {"png", "svg"};
    for (int t = 0; t < 2; t++) {
        char vars[3 * TEXT + 6000], dir_q[1100], out_q[2100], title_q[520], csv_q[2100];
        snprintf(vars, sizeof vars,
                 "dir='%s'; term='%s'; out='%s/throughput-latency.%s'; title='%s'; labels='%s'; "
                 "DATA='%s'",
                 kv_plot_quote(dir, dir_q, sizeof dir_q), terms[t],
                 kv_plot_quote(out_dir, out_q, sizeof out_q), terms[t],
                 kv_plot_quote(trace_title, title_q, sizeof title_q), labels,
                 kv_plot_quote(csv, csv_q, sizeof csv_q));
        int rc = kv_plot_gnuplot("throughput-latency.gp", vars);
        if (rc != KV_EXIT_OK)
            return rc;
    }
    fprintf(stderr, "kvsim plot: throughput-latency (.png, .svg) in %s\n", out_dir);
    return KV_EXIT_OK;
}

/* kvgpu validate's figure, from its steps.tsv and report.csv (strategy names, in order): for
 * reports made on a GPU machine without gnuplot. */
static int plot_validate(const char *dir)
{
    char path[1024], names[512] = "", line[512];
    snprintf(path, sizeof path, "%s/report.csv", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "kvsim plot: %s: cannot open\n", path);
        return KV_EXIT_USAGE;
    }
    while (fgets(line, sizeof line, f)) {
        char *comma = strchr(line, ',');
        if (comma == NULL || strncmp(line, "strategy,", 9) == 0)
            continue;
        *comma = '\0';
        char word[528];
        snprintf(word, sizeof word, " %s ", line);
        char padded[520];
        snprintf(padded, sizeof padded, " %s ", names);
        size_t len = strlen(names), add = strlen(line);
        if (strstr(padded, word) == NULL && len + add + 2 < sizeof names) {
            if (len)
                names[len++] = ' ';
            memcpy(names + len, line, add + 1);
        }
    }
    fclose(f);
    static const char *const terms[] = {"png", "svg"};
    for (int t = 0; t < 2; t++) {
        char vars[6000], sdir_q[1100], dir_q[2100], names_q[1100];
        kv_plot_quote(dir, dir_q, sizeof dir_q);
        snprintf(vars, sizeof vars,
                 "dir='%s'; term='%s'; out='%s/step_time.%s'; title='predicted and measured "
                 "step time'; DATA='%s/steps.tsv'; names='%s'",
                 kv_plot_quote(kv_plot_script_dir(), sdir_q, sizeof sdir_q), terms[t], dir_q,
                 terms[t], dir_q, kv_plot_quote(names, names_q, sizeof names_q));
        int rc = kv_plot_gnuplot("validate.gp", vars);
        if (rc != KV_EXIT_OK)
            return rc;
    }
    return KV_EXIT_OK;
}

int kv_cli_plot_main(int argc, char **argv)
{
    const char *runs[MAX_RUNS], *out = NULL, *sweep = NULL, *validate = NULL;
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return KV_EXIT_OK;
        } else if (strcmp(argv[i], "-o") == 0) {
            if ((out = kv_cli_value("plot", argc, argv, &i)) == NULL)
                return KV_EXIT_USAGE;
        } else if (strcmp(argv[i], "--sweep") == 0) {
            if ((sweep = kv_cli_value("plot", argc, argv, &i)) == NULL)
                return KV_EXIT_USAGE;
        } else if (strcmp(argv[i], "--validate") == 0) {
            if ((validate = kv_cli_value("plot", argc, argv, &i)) == NULL)
                return KV_EXIT_USAGE;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kvsim plot: unknown option %s\n", argv[i]);
            return KV_EXIT_USAGE;
        } else if (n < MAX_RUNS) {
            runs[n++] = argv[i];
        } else {
            fprintf(stderr, "kvsim plot: at most %d run directories\n", MAX_RUNS);
            return KV_EXIT_USAGE;
        }
    }
    if (validate)
        return plot_validate(validate);
    if ((n == 0 && sweep == NULL) || out == NULL) {
        usage(stderr);
        return KV_EXIT_USAGE;
    }
    int rc = sweep ? plot_sweep(sweep, out) : KV_EXIT_OK;
    return rc == KV_EXIT_OK && n > 0 ? kv_plot_runs(runs, n, out) : rc;
}
