/* run.h — one replay as one library call: kv_run(config, hooks, summary).
 *
 * A replay reads a trace (or generates a workload spec), drives the engine (or N engines
 * behind a router) with the cost model as its clock, and writes one output folder:
 * config.json (the kv_run_config below, resolved, printed whole), requests.csv, timeline.csv,
 * summary.json and optionally trace.json and a decision log. Everything a replay depends on is
 * in kv_run_config; `kvsim replay` and `kvsim compare` fill it from argv, and plan, sweep, bench,
 * the tests and kvgpu fill it directly. No caller formats a command line.
 *
 * Named configurations ("contiguous-max", "paged", "compressed-fp8", ...) are the one table of
 * allocator settings that compare, plan, sweep and bench share (kv_named_config_*).
 *
 * Glossary: cfg = a run's configuration; hooks = what kvgpu adds (an executor around the cost
 * model, a device behind the allocator, files after the run); named = a named configuration.
 */
#ifndef KV_RUN_H
#define KV_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc.h"
#include "engine.h"
#include "executor.h"
#include "reader.h"
#include "report.h"
#include "router.h"
#include "status.h"

struct kv_decision_log;

/* ------------------------------------------------------------------------------------------ */

/* Everything one replay needs. Strings are borrowed: they must outlive the kv_run call. */
typedef struct kv_run_config {
    const char *trace;        /* a trace file, or a workload spec (.ini) generated with seed */
    const char *out_dir;      /* the output folder, created with its parents */
    const char *label;        /* for messages and summary.json; NULL = the strategy's name */
    const char *model, *gpu;  /* preset names or files (preset.h) */
    const char *calib;        /* cost-model coefficients from `kvgpu calibrate`; NULL = none */
    const char *decision_log; /* write every allocator operation here; NULL = none */
    uint64_t seed;            /* of a workload spec's generator */
    uint64_t tp;              /* tensor-parallel GPUs */
    uint64_t limit;           /* requests replayed (generated, for a spec); 0 = all */
    uint64_t skip;            /* the first requests not replayed */
    double gpu_mem_util;      /* vLLM's gpu_memory_utilization */
    double swap_space_gib;    /* the host tier's capacity */
    kv_engine_config engine;  /* max_model_len 0 = the model's context; max_requests, replica
                                 and step_detail are set by kv_run */
    kv_alloc_config alloc;    /* strategy and knobs; shape, pool and host tier are set by
                                 kv_run from the model, GPU and budget */
    kv_report_opts report;    /* dir and replicas are set by kv_run */
    kv_trace_opts trace_opts;
    bool routed;       /* run `replicas` engines behind a router */
    uint64_t replicas; /* 1 unless routed */
    kv_route_policy router;
    bool check;    /* the allocator's checker after every step */
    bool progress; /* a progress line on stderr (not printed into config.json) */
} kv_run_config;

/* kvsim replay's defaults: Llama-3-8B on one H100-80GB at gpu_memory_utilization 0.9, seed 1,
 * 4 GiB of swap space, the engine's and allocator's defaults (strategy paged), a timeline row
 * per simulated second, SLOs TTFT 2 s and TPOT 0.1 s; trace and out_dir NULL. */
void kv_run_config_default(kv_run_config *cfg);

/* How many values replay option opt ("--max-num-seqs", "-o") takes: 0 (a flag such as
 * "--perfetto") or 1; -1 when opt is not a replay option. */
int kv_run_option_arity(const char *opt);

/* Set option opt, spelt as on kvsim replay's command line, to value (NULL for a flag). KV_OK;
 * KV_ERR_INPUT with "option --x: expected ..., got "..."" or "unknown option --x". value is
 * borrowed where the option names a file or preset (-o, --model, --gpu, --calib,
 * --decision-log). The trace is not an option: set cfg->trace. */
kv_status kv_run_config_set(kv_run_config *cfg, const char *opt, const char *value, kv_err *err);

/* Apply n words of options ("--max-num-seqs", "1024", "--perfetto", ...) in order, as
 * kv_run_config_set does; a word that is not an option is KV_ERR_INPUT "unexpected argument". */
kv_status kv_run_config_args(kv_run_config *cfg, int n, char *const *words, kv_err *err);

/* ------------------------------------------------------------------------------------------ */

/* What kvgpu adds to a replay (gpu/replay.cu): it runs kvsim's engine with the cost model's
 * clock, so that every decision is kvsim's, and realizes each allocator operation and step on
 * the device. With hooks, a replay runs one engine (no router) and fills step details. */
typedef struct kv_run_hooks {
    void *ctx;
    /* Before the engine exists: wrap the cost model's executor. */
    kv_executor (*wrap)(void *ctx, kv_executor cost);
    /* Once the engine exists: set up the device and become its allocator listener, writing
     * log (may be NULL) as well. KV_OK or a status with a message in err. */
    kv_status (*attach)(void *ctx, kv_engine *e, struct kv_decision_log *log, kv_err *err);
    /* After a successful run: the measured outputs into dir. KV_OK or a status. */
    kv_status (*finish)(void *ctx, const char *dir, kv_err *err);
} kv_run_hooks;

/* Replay cfg (hooks may be NULL) into cfg->out_dir; *out (may be NULL) gets the headline
 * figures. KV_OK; KV_ERR_INPUT for a configuration that cannot run (unknown model or GPU, a
 * model that leaves no KV memory, bad allocator knobs, a trace that does not parse, a decision
 * log with replicas); KV_ERR_IO for files; KV_ERR_NOMEM. The message in err names the file,
 * line or field. cfg is not modified. */
kv_status kv_run(const kv_run_config *cfg, const kv_run_hooks *hooks, kv_summary *out, kv_err *err);

/* ------------------------------------------------------------------------------------------ */

/* Which size list of a sweep or plan applies to a named configuration. */
typedef enum kv_named_sizes {
    KV_NAMED_NO_SIZE,
    KV_NAMED_BLOCK_TOKENS, /* paged and compressed: --block-tokens */
    KV_NAMED_CHUNK_BYTES,  /* chunk-pool: --chunk-mib */
} kv_named_sizes;

/* Which commands list a named configuration by default. */
enum { KV_NAMED_IN_COMPARE = 1, KV_NAMED_IN_BENCH = 2 };

/* A named configuration: a strategy and the knobs its name fixes; every other knob is left as
 * the caller has it. */
typedef struct kv_named_config {
    const char *name;
    kv_strategy strategy;
    unsigned in; /* KV_NAMED_IN_* bits */
    kv_named_sizes sizes;
    int reserve;        /* kv_reserve, or -1 to leave */
    int fit;            /* kv_fit, or -1 */
    int layout;         /* kv_chunk_layout, or -1 */
    int policy;         /* kv_token_policy, or -1; a policy other than all-tokens also turns
                           prefix caching off */
    uint32_t elem_bits; /* compressed: bits per element, or 0 to leave */
    uint32_t scale_group_elems, scale_bytes; /* compressed: group scales, or 0 to leave both */
} kv_named_config;

/* The table, in a fixed order: compare's six first (contiguous-max, contiguous-pow2,
 * contiguous-oracle, chunk-pool, paged, compressed-fp8), then the others. */
size_t kv_named_config_count(void);
const kv_named_config *kv_named_config_at(size_t i); /* i < count */

/* The configuration called name, or NULL. */
const kv_named_config *kv_named_config_find(const char *name);

/* Set ac's strategy and the knobs n fixes. */
void kv_named_config_apply(const kv_named_config *n, kv_alloc_config *ac);

/* The names, comma-separated, into buf (for messages). */
void kv_named_config_list(char *buf, size_t cap);

#endif
