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
 * This file runs the replays and draws the figure; reading the runs' outputs, the errors and
 * the report files are host code in analysis/validate_report.h, tested on the recorded H100
 * validations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <vector>

#include "replay.h"

extern "C" {
#include "cli_plot.h"
#include "fs.h"
#include "report.h"
#include "run.h"
#include "validate_report.h"
}

struct run_cmp {
    std::string strategy;
    kv_vreport_run r; /* the figures, without the name */
};

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
        kv_err e = {{0}};
        if (kv_vreport_collect(gdir.c_str(), sdir.c_str(), (int)runs.size(), tsv, &c.r, &e) !=
            KV_OK) {
            fprintf(stderr, "kvgpu validate: %s: outputs missing: %s\n", s.c_str(), e.msg);
            return 1;
        }
        runs.push_back(c);
    }
    fclose(tsv);

    /* the report */
    std::vector<kv_vreport_run> rs;
    for (auto &c : runs) {
        rs.push_back(c.r);
        rs.back().strategy = c.strategy.c_str(); /* runs outlives rs */
    }
    std::vector<const char *> lines;
    for (auto &c : cmds)
        lines.push_back(c.c_str());
    kv_vreport_info info = {trace, calib, a, b, lines.data(), lines.size()};
    kv_err e = {{0}};
    if (kv_vreport_write(out, &info, rs.data(), rs.size(), &e) != KV_OK) {
        fprintf(stderr, "kvgpu validate: cannot write the report: %s\n", e.msg);
        return 1;
    }
    /* the figure */
    std::string names;
    for (auto &c : runs)
        names += (names.empty() ? "" : " ") + c.strategy;
    char dir_q[1100], out_q[2100], trace_q[2100], tsv_q[2100], names_q[1100];
    kv_plot_quote(kv_plot_script_dir(), dir_q, sizeof dir_q);
    kv_plot_quote(out, out_q, sizeof out_q);
    kv_plot_quote(trace, trace_q, sizeof trace_q);
    kv_plot_quote(tsv_path.c_str(), tsv_q, sizeof tsv_q);
    kv_plot_quote(names.c_str(), names_q, sizeof names_q);
    for (const char *term : {"png", "svg"}) {
        char vars[10000];
        snprintf(vars, sizeof vars,
                 "dir='%s'; term='%s'; out='%s/step_time.%s'; title='%s: predicted and measured "
                 "step time'; DATA='%s'; names='%s'",
                 dir_q, term, out_q, term, trace_q, tsv_q, names_q);
        if (kv_plot_gnuplot("validate.gp", vars) != 0)
            fprintf(stderr, "kvgpu validate: the figure failed (gnuplot); the report stands\n");
    }
    fprintf(stderr, "kvgpu validate: report in %s/report.md\n", out);
    return 0;
}
