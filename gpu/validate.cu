/* validate.cu — `kvgpu validate TRACE [--window A:B] --calib FILE -o DIR [--strategies LIST]
 * [replay options]`: the window of the trace through kvgpu replay with the model executor (the
 * clock advances by measured time) and through kvsim replay with the calibration, per strategy,
 * and a report of predicted against measured:
 *   per step    each GPU step's measured time against the calibrated cost model's price of the
 *               same work (median absolute % error; target 5%)
 *   per swap    each step's measured swap time against its price (median; target 10%)
 *   whole run   throughput (target 3%), TTFT and TPOT p50/p99, memory shares, peak device
 *               memory (cudaMemGetInfo against weights + activations + KV pool)
 * DIR gets report.md, report.csv, steps.tsv and step_time.png/svg (predicted against measured
 * step time), and both runs' folders (S-gpu/, S-sim/).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <string>
#include <vector>

#include "replay.h"

extern "C" {
#include "cli_plot.h"
#include "fs.h"
#include "report.h"
#include "run.h"
}

static double median(std::vector<double> v)
{
    if (v.empty())
        return NAN;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

static double jget(json_t *root, const char *a, const char *b)
{
    json_t *x = json_object_get(root, a);
    if (b)
        x = json_object_get(x, b);
    return json_is_number(x) ? json_number_value(x) : NAN;
}

struct run_cmp {
    std::string strategy;
    double sim[12], gpu[12];
    double step_err, swap_err, peak_pred, peak_meas;
    size_t steps, swap_steps;
};

static const char *const METRICS[] = {"output tokens/s", "TTFT p50 (s)", "TTFT p99 (s)",
                                      "TPOT p50 (s)",    "TPOT p99 (s)", "token share",
                                      "reserved share",  "internal frag share",
                                      "external frag share", "free share", "preemptions",
                                      "swap-outs"};

static bool read_summary(const std::string &dir, double v[12])
{
    json_error_t je;
    json_t *j = json_load_file((dir + "/summary.json").c_str(), 0, &je);
    if (j == NULL)
        return false;
    v[0] = jget(j, "throughput", "output_tokens_per_s");
    v[1] = jget(j, "ttft_s", "p50");
    v[2] = jget(j, "ttft_s", "p99");
    v[3] = jget(j, "tpot_s", "p50");
    v[4] = jget(j, "tpot_s", "p99");
    v[5] = jget(j, "memory", "token_share");
    v[6] = jget(j, "memory", "reserved_share");
    v[7] = jget(j, "memory", "internal_frag_share");
    v[8] = jget(j, "memory", "external_frag_share");
    v[9] = jget(j, "memory", "free_share");
    v[10] = jget(j, "events", "preemptions");
    v[11] = jget(j, "events", "swap_outs");
    json_decref(j);
    return true;
}

/* Per-step and per-swap errors from gpu_steps.csv; steps.tsv rows appended. */
static bool read_steps(const std::string &dir, int idx, FILE *tsv, run_cmp *c)
{
    FILE *f = fopen((dir + "/gpu_steps.csv").c_str(), "r");
    if (f == NULL)
        return false;
    char line[1024];
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return false;
    }
    std::vector<double> se, we;
    double peak = 0;
    while (fgets(line, sizeof line, f)) {
        double v[16];
        int n = 0;
        for (char *s = strtok(line, ","); s && n < 16; s = strtok(NULL, ","))
            v[n++] = atof(s);
        if (n < 16)
            continue;
        /* step,sim_step_ms,gpu_ms,seqs,tokens,swap_bytes,swap_ms,device_used_bytes,
         * mapped_chunks,prefill_tokens,decode_seqs,decode_context,pred_compute_ms,
         * pred_swap_ms,pred_map_ms,step_ms */
        double pred = v[1], meas = v[15];
        peak = fmax(peak, v[7]);
        if (v[3] > 0 && meas > 0) {
            se.push_back(fabs(pred - meas) / meas * 100);
            fprintf(tsv, "%d\t%.6f\t%.6f\n", idx, pred, meas);
        }
        if (v[5] > 0 && v[6] > 0)
            we.push_back(fabs(v[13] - v[6]) / v[6] * 100);
    }
    fclose(f);
    c->step_err = median(se);
    c->swap_err = median(we);
    c->steps = se.size();
    c->swap_steps = we.size();
    c->peak_meas = peak;
    return true;
}

int kvgpu_validate_main(int argc, char **argv)
{
    const char *trace = NULL, *calib = NULL, *out = NULL, *strategies = "contiguous,chunk-pool,paged,compressed";
    unsigned long long a = 0, b = 0;
    std::vector<std::string> pass;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) {
            if (sscanf(argv[++i], "%llu:%llu", &a, &b) != 2 || b <= a) {
                fprintf(stderr, "kvgpu validate: --window A:B with A < B (requests)\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--calib") == 0 && i + 1 < argc) {
            calib = argv[++i];
        } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--strategies") == 0 && i + 1 < argc) {
            strategies = argv[++i];
        } else if (trace == NULL && argv[i][0] != '-') {
            trace = argv[i];
        } else {
            pass.push_back(argv[i]);
        }
    }
    if (!trace || !calib || !out) {
        fprintf(stderr, "usage: kvgpu validate TRACE [--window A:B] --calib FILE -o DIR "
                        "[--strategies LIST] [replay options]\n");
        return 2;
    }
    kv_err err = {{0}};
    if (kv_fs_mkdirs(out, &err) != KV_OK) {
        fprintf(stderr, "kvgpu validate: %s\n", err.msg);
        return 1;
    }
    /* the replays' common configuration: the window, the calibration, then the options given */
    kv_run_config base;
    kv_run_config_default(&base);
    base.trace = trace;
    base.calib = calib;
    base.report.no_wall_time = true;
    if (b > a) {
        base.skip = a;
        base.limit = b - a;
    }
    std::vector<char *> pass_words;
    for (auto &p : pass)
        pass_words.push_back((char *)p.c_str());
    if (kv_run_config_args(&base, (int)pass_words.size(), pass_words.data(), &err) != KV_OK) {
        fprintf(stderr, "kvgpu validate: %s\n", err.msg);
        return 2;
    }
    std::string tsv_path = std::string(out) + "/steps.tsv";
    FILE *tsv = fopen(tsv_path.c_str(), "w");
    if (tsv == NULL) {
        fprintf(stderr, "kvgpu validate: %s: cannot create\n", tsv_path.c_str());
        return 1;
    }
    std::vector<run_cmp> runs;
    std::string list = strategies, common;
    char window[128] = "";
    if (b > a)
        snprintf(window, sizeof window, " --skip %llu --limit %llu", a, b - a);
    for (auto &p : pass)
        common += " " + p;
    std::vector<std::string> cmds;
    for (size_t pos = 0; pos <= list.size();) {
        size_t comma = list.find(',', pos);
        std::string s = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        pos = comma == std::string::npos ? list.size() + 1 : comma + 1;
        run_cmp c;
        c.strategy = s;
        std::string gdir = std::string(out) + "/" + s + "-gpu", sdir = std::string(out) + "/" + s + "-sim";
        std::string args = std::string(trace) + " --strategy " + s + window + " --calib " + calib +
                           " --no-wall-time" + common;
        std::string gcmd = "replay " + args + " --model-exec -o " + gdir;
        std::string scmd = args + " -o " + sdir;
        cmds.push_back("kvgpu " + gcmd);
        cmds.push_back("kvsim replay " + scmd);
        /* the GPU run, in this process, then kvsim's; the commands above are for the report */
        kv_run_config gc = base, sc = base;
        if (kv_strategy_parse(s.c_str(), &gc.alloc.strategy) != KV_OK) {
            fprintf(stderr, "kvgpu validate: --strategies: unknown strategy \"%s\"\n", s.c_str());
            return 2;
        }
        sc.alloc.strategy = gc.alloc.strategy;
        gc.out_dir = gdir.c_str();
        sc.out_dir = sdir.c_str();
        kvgpu_replay_opts go;
        kvgpu_replay_opts_default(&go);
        go.model_exec = true;
        fprintf(stderr, "kvgpu validate: %s on the GPU\n", s.c_str());
        kv_summary sum;
        kv_status st = kvgpu_replay_run(&gc, &go, &sum, &err);
        if (st == KV_OK) {
            fprintf(stderr, "kvgpu validate: %s in kvsim\n", s.c_str());
            st = kv_run(&sc, NULL, &sum, &err);
        }
        if (st != KV_OK) {
            fprintf(stderr, "kvgpu validate: %s: %s\n", s.c_str(), err.msg);
            return st == KV_ERR_INPUT ? 2 : 1;
        }
        if (!read_summary(gdir, c.gpu) || !read_summary(sdir, c.sim) ||
            !read_steps(gdir, (int)runs.size(), tsv, &c)) {
            fprintf(stderr, "kvgpu validate: %s: outputs missing\n", s.c_str());
            return 1;
        }
        json_error_t je;
        json_t *cfg = json_load_file((sdir + "/config.json").c_str(), 0, &je);
        c.peak_pred = cfg ? jget(json_object_get(cfg, "budget"), "weight_bytes", NULL) +
                                jget(json_object_get(cfg, "budget"), "activation_bytes", NULL) +
                                jget(json_object_get(cfg, "budget"), "non_torch_bytes", NULL) +
                                jget(json_object_get(cfg, "budget"), "kv_bytes", NULL)
                          : NAN;
        json_decref(cfg);
        runs.push_back(c);
    }
    fclose(tsv);

    /* the report */
    std::string md = std::string(out) + "/report.md", csv = std::string(out) + "/report.csv";
    FILE *f = fopen(md.c_str(), "w"), *g = fopen(csv.c_str(), "w");
    if (!f || !g) {
        fprintf(stderr, "kvgpu validate: cannot write the report in %s\n", out);
        return 1;
    }
    fprintf(f, "# Predicted (kvsim, calibrated) against measured (kvgpu, model executor)\n\n");
    fprintf(f, "Trace `%s`, requests %llu..%llu, calibration `%s`.\n\nCommands:\n\n```\n", trace,
            a, b, calib);
    for (auto &c : cmds)
        fprintf(f, "%s\n", c.c_str());
    fprintf(f, "```\n\n");
    fprintf(f, "| strategy | step time: median abs error (target 5%%) | swap time per swap: median "
               "abs error (target 10%%) | throughput error (target 3%%) | peak device memory "
               "predicted / measured |\n| --- | --- | --- | --- | --- |\n");
    fprintf(g, "strategy,metric,predicted,measured,error_pct\n");
    for (auto &c : runs) {
        double tp = (c.sim[0] - c.gpu[0]) / c.gpu[0] * 100;
        fprintf(f, "| %s | %.2f%% over %zu steps%s | %s | %+.2f%%%s | %.2f / %.2f GiB (%+.1f%%) |\n",
                c.strategy.c_str(), c.step_err, c.steps, c.step_err > 5 ? " (missed)" : "",
                c.swap_steps ? (std::to_string(c.swap_err).substr(0, 5) + "% over " +
                                std::to_string(c.swap_steps) + " steps with swaps" +
                                (c.swap_err > 10 ? " (missed)" : ""))
                                   .c_str()
                             : "no swaps",
                tp, fabs(tp) > 3 ? " (missed)" : "", c.peak_pred / 1073741824.0,
                c.peak_meas / 1073741824.0, (c.peak_pred - c.peak_meas) / c.peak_meas * 100);
        fprintf(g, "%s,step_time_median_abs_pct,,,%.4f\n", c.strategy.c_str(), c.step_err);
        fprintf(g, "%s,swap_time_median_abs_pct,,,%.4f\n", c.strategy.c_str(), c.swap_err);
        fprintf(g, "%s,peak_device_bytes,%.0f,%.0f,%.4f\n", c.strategy.c_str(), c.peak_pred,
                c.peak_meas, (c.peak_pred - c.peak_meas) / c.peak_meas * 100);
        for (int k = 0; k < 12; k++)
            fprintf(g, "%s,%s,%.9g,%.9g,%.4f\n", c.strategy.c_str(), METRICS[k], c.sim[k],
                    c.gpu[k], (c.sim[k] - c.gpu[k]) / fabs(c.gpu[k]) * 100);
    }
    for (auto &c : runs) {
        fprintf(f, "\n## %s\n\n| metric | predicted | measured | error |\n| --- | --- | --- | --- |\n",
                c.strategy.c_str());
        for (int k = 0; k < 12; k++)
            fprintf(f, "| %s | %.6g | %.6g | %+.2f%% |\n", METRICS[k], c.sim[k], c.gpu[k],
                    (c.sim[k] - c.gpu[k]) / fabs(c.gpu[k]) * 100);
    }
    fprintf(f, "\n![predicted against measured step time](step_time.png)\n\n"
               "The runs' decisions differ where their clocks do: the GPU run advances by "
               "measured step times, kvsim by predicted ones, so arrivals meet different "
               "batches; the memory breakdowns come from the same allocator code and differ "
               "only through those decisions.\n");
    fclose(f);
    fclose(g);
    /* the figure */
    std::string names;
    for (auto &c : runs)
        names += (names.empty() ? "" : " ") + c.strategy;
    for (const char *term : {"png", "svg"}) {
        char vars[4096];
        snprintf(vars, sizeof vars,
                 "dir='%s'; term='%s'; out='%s/step_time.%s'; title='%s: predicted and measured "
                 "step time'; DATA='%s'; names='%s'",
                 kv_plot_script_dir(), term, out, term, trace, tsv_path.c_str(), names.c_str());
        if (kv_plot_gnuplot("validate.gp", vars) != 0)
            fprintf(stderr, "kvgpu validate: the figure failed (gnuplot); the report stands\n");
    }
    fprintf(stderr, "kvgpu validate: report in %s/report.md\n", out);
    return 0;
}
