/* cli_gen.c — `kvsim gen SPEC -o OUT`: write a synthetic workload as a native trace. */
#include "cli_gen.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gen.h"
#include "spec.h"
#include "writer.h"

/* ------------------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: kvsim gen SPEC -o OUT [--requests N | --duration S] [--seed S]\n"
               "  Generate the workload SPEC (an INI file, or the name of one in workloads/, e.g.\n"
               "  chat-sharegpt) as a native trace OUT (.gz compresses). --requests and\n"
               "  --duration override the spec's stopping rule; --seed (default 1) seeds the GSL\n"
               "  generator: the same spec and seed give byte-identical output.\n");
}

/* SPEC as given if it is a file, else workloads/SPEC.ini. */
static bool resolve(const char *spec, char *path, size_t cap)
{
    FILE *f = fopen(spec, "r");
    if (f) {
        fclose(f);
        snprintf(path, cap, "%s", spec);
        return true;
    }
    snprintf(path, cap, "workloads/%s.ini", spec);
    f = fopen(path, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

int kv_cli_gen_main(int argc, char **argv)
{
    const char *cmd = "gen", *spec_arg = NULL, *out = NULL;
    uint64_t requests = 0, seed = 1;
    double duration = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return KV_EXIT_OK;
        } else if (strcmp(argv[i], "-o") == 0) {
            if (!(out = kv_cli_value(cmd, argc, argv, &i)))
                return KV_EXIT_USAGE;
        } else if (strcmp(argv[i], "--requests") == 0) {
            if (!(v = kv_cli_value(cmd, argc, argv, &i)) ||
                !kv_cli_u64(cmd, "--requests", v, 1, UINT64_C(1) << 40, &requests))
                return KV_EXIT_USAGE;
        } else if (strcmp(argv[i], "--duration") == 0) {
            if (!(v = kv_cli_value(cmd, argc, argv, &i)) ||
                !kv_cli_double(cmd, "--duration", v, 1e-6, 1e9, &duration))
                return KV_EXIT_USAGE;
        } else if (strcmp(argv[i], "--seed") == 0) {
            if (!(v = kv_cli_value(cmd, argc, argv, &i)) ||
                !kv_cli_u64(cmd, "--seed", v, 0, UINT32_MAX, &seed))
                return KV_EXIT_USAGE;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kvsim gen: unknown option %s\n", argv[i]);
            return KV_EXIT_USAGE;
        } else if (spec_arg == NULL) {
            spec_arg = argv[i];
        } else {
            fprintf(stderr, "kvsim gen: unexpected argument %s\n", argv[i]);
            return KV_EXIT_USAGE;
        }
    }
    if (spec_arg == NULL || out == NULL || (requests && duration > 0)) {
        if (requests && duration > 0)
            fprintf(stderr, "kvsim gen: give --requests or --duration, not both\n");
        usage(stderr);
        return KV_EXIT_USAGE;
    }
    char path[KV_SPEC_PATH];
    if (!resolve(spec_arg, path, sizeof path)) {
        fprintf(stderr, "kvsim gen: no spec file %s, nor workloads/%s.ini\n", spec_arg, spec_arg);
        return KV_EXIT_USAGE;
    }
    kv_workload_spec spec;
    kv_spec_default(&spec);
    kv_err err = {{0}};
    kv_status st = kv_spec_load(path, &spec, &err);
    if (requests) {
        spec.requests = requests;
        spec.duration_s = 0;
    } else if (duration > 0) {
        spec.duration_s = duration;
        spec.requests = 0;
    }
    kv_gen *g = NULL;
    kv_trace_writer *w = NULL;
    if (st == KV_OK)
        st = kv_gen_create(&spec, seed, &g, &err);
    if (st == KV_OK)
        st = kv_trace_writer_open(out, kv_gen_fields(g), &w, &err);
    kv_request r;
    uint64_t n = 0;
    while (st == KV_OK && (st = kv_gen_next(g, &r, &err)) == KV_OK) {
        st = kv_trace_write(w, &r, &err);
        n++;
    }
    if (st == KV_EOF)
        st = KV_OK;
    kv_status cst = kv_trace_writer_close(&w, &err);
    if (st == KV_OK)
        st = cst;
    kv_gen_destroy(&g);
    if (st != KV_OK) {
        fprintf(stderr, "kvsim gen: %s\n", err.msg[0] ? err.msg : kv_status_str(st));
        if (w == NULL)
            remove(out);
        return st == KV_ERR_INPUT ? KV_EXIT_USAGE : KV_EXIT_FAIL;
    }
    fprintf(stderr, "kvsim gen: %s: wrote %llu requests to %s (seed %llu)\n", spec.name,
            (unsigned long long)n, out, (unsigned long long)seed);
    return KV_EXIT_OK;
}
