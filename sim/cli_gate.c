/* cli_gate.c — `kvsim gate`: fail a build when a run's summary regressed against a baseline.
 * Exit status: 0 nothing regressed, 1 a regression, 2 bad input. */
#include "cli_gate.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "gate.h"

/* ------------------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f, "usage: kvsim gate --baseline A --current B [--rules FILE] [--junit FILE]\n"
               "  Compare summary.json B (or run directory B) with A, metric by metric, under\n"
               "  per-metric tolerance rules (INI: [metric.path] better = higher|lower, relative,\n"
               "  absolute; built-in defaults without --rules). Prints a table of old, new, delta\n"
               "  and verdict; exit 0 when nothing regressed, 1 on a regression, 2 on bad input.\n"
               "  --junit FILE writes JUnit XML for CI systems.\n");
}

/* A directory means its summary.json. */
static const char *summary_path(const char *p, char *buf, size_t cap)
{
    struct stat sb;
    if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(buf, cap, "%s/summary.json", p);
        return buf;
    }
    return p;
}

int kv_cli_gate_main(int argc, char **argv)
{
    const char *base = NULL, *cur = NULL, *rules_path = NULL, *junit = NULL;
    for (int i = 1; i < argc; i++) {
        const char **dst = NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return KV_EXIT_OK;
        } else if (strcmp(argv[i], "--baseline") == 0) {
            dst = &base;
        } else if (strcmp(argv[i], "--current") == 0) {
            dst = &cur;
        } else if (strcmp(argv[i], "--rules") == 0) {
            dst = &rules_path;
        } else if (strcmp(argv[i], "--junit") == 0) {
            dst = &junit;
        } else {
            fprintf(stderr, "kvsim gate: unknown argument %s\n", argv[i]);
            usage(stderr);
            return KV_EXIT_USAGE;
        }
        if ((*dst = kv_cli_value("gate", argc, argv, &i)) == NULL)
            return KV_EXIT_USAGE;
    }
    if (base == NULL || cur == NULL) {
        usage(stderr);
        return KV_EXIT_USAGE;
    }
    kv_gate_rules rules;
    kv_err err = {{0}};
    kv_status st = KV_OK;
    if (rules_path)
        st = kv_gate_load_rules(rules_path, &rules, &err);
    else
        kv_gate_default_rules(&rules);
    char b1[1024], b2[1024];
    const char *bp = summary_path(base, b1, sizeof b1), *cp = summary_path(cur, b2, sizeof b2);
    kv_gate_result res;
    if (st == KV_OK)
        st = kv_gate_compare(bp, cp, &rules, &res, &err);
    if (st == KV_OK && junit)
        st = kv_gate_write_junit(junit, cp, &res, &err);
    if (st != KV_OK) {
        fprintf(stderr, "kvsim gate: %s\n", err.msg);
        return KV_EXIT_USAGE;
    }
    printf("kvsim gate: %s against baseline %s\n", cp, bp);
    kv_gate_print(stdout, &res);
    return res.n_regressed > 0 ? KV_EXIT_FAIL : KV_EXIT_OK;
}
