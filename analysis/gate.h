/* gate.h — the performance regression gate: compare a run's summary.json with a baseline.
 *
 * A rule names a metric by its dotted path in summary.json (e.g. "ttft_s.p99"), which way is
 * better (higher or lower), and a tolerance: relative (a fraction of the baseline), absolute,
 * or both (the larger applies). A metric regressed when it moved the wrong way by more than its
 * tolerance, improved when it moved the right way by more. Rules come from an INI file, one
 * section per metric:
 *
 *   [ttft_s.p99]
 *   better = lower
 *   relative = 0.10
 *   absolute = 0.001
 *
 * or from the built-in defaults (kv_gate_default_rules) when no file is given.
 */
#ifndef KV_GATE_H
#define KV_GATE_H

#include <stdbool.h>
#include <stdio.h>

#include "status.h"

enum { KV_GATE_MAX_RULES = 64 };

typedef struct kv_gate_rule {
    char metric[96];
    bool higher_is_better;
    double relative, absolute;
} kv_gate_rule;

typedef struct kv_gate_rules {
    kv_gate_rule r[KV_GATE_MAX_RULES];
    int n;
} kv_gate_rules;

typedef enum kv_verdict { KV_VERDICT_OK, KV_VERDICT_IMPROVED, KV_VERDICT_REGRESSED } kv_verdict;

typedef struct kv_gate_row {
    const kv_gate_rule *rule;
    double baseline, current, allowed;
    kv_verdict verdict;
} kv_gate_row;

typedef struct kv_gate_result {
    kv_gate_row rows[KV_GATE_MAX_RULES];
    int n, n_regressed, n_improved;
} kv_gate_result;

void kv_gate_default_rules(kv_gate_rules *out);

/* Load rules from an INI file. KV_OK, KV_ERR_IO or KV_ERR_INPUT ("file:line: ..."). */
kv_status kv_gate_load_rules(const char *path, kv_gate_rules *out, kv_err *err);

/* Compare two summary.json files under the rules. KV_OK (whatever the verdicts), or KV_ERR_IO /
 * KV_ERR_INPUT naming the file and the metric that is missing or not a number. */
kv_status kv_gate_compare(const char *baseline, const char *current, const kv_gate_rules *rules,
                          kv_gate_result *out, kv_err *err);

/* The readable table: metric, old, new, delta, allowed, verdict. */
void kv_gate_print(FILE *f, const kv_gate_result *r);

/* JUnit XML: one test case per metric, a failure per regression. KV_OK or KV_ERR_IO. */
kv_status kv_gate_write_junit(const char *path, const char *suite, const kv_gate_result *r,
                              kv_err *err);

#endif
