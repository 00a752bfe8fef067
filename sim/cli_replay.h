/* cli_replay.h — `kvsim replay` and `kvsim compare` (see cli_replay.c). */
#ifndef KV_CLI_REPLAY_H
#define KV_CLI_REPLAY_H

/* argv[0] is the command name. Return the process exit code. */
int kv_cli_replay_main(int argc, char **argv);
int kv_cli_compare_main(int argc, char **argv);

struct kv_summary;
/* `kvsim replay ARGS` without its closing message, for plan, sweep and the benchmarks: args is
 * replay's command line as one string of space-separated words (no quoting). Fills *sum on
 * success. Returns the exit code (2 also for a line of more than 127 words). */
int kv_cli_replay_line(const char *args, struct kv_summary *sum);

/* What kvgpu adds to a replay (gpu/replay.cu): it runs kvsim's engine with the cost model's
 * clock, so that every decision is kvsim's, and realizes each allocator operation and step on
 * the device. */
struct kv_engine;
struct kv_decision_log;
typedef struct kv_replay_hooks {
    void *ctx;
    const char *cmd; /* for messages, after "kvsim ": "replay (kvgpu)" */
    /* Before the engine exists: wrap the cost model's executor. */
    struct kv_executor (*wrap)(void *ctx, struct kv_executor cost);
    /* Once the engine exists: set up the device and become its allocator listener, writing
     * log (may be NULL) as well. 0 or an exit code. */
    int (*attach)(void *ctx, struct kv_engine *e, struct kv_decision_log *log);
    /* After the run: the measured outputs into dir. 0 or an exit code. */
    int (*finish)(void *ctx, const char *dir);
} kv_replay_hooks;

/* `kvsim replay` with hooks; argv[0] is the command name. */
int kv_cli_replay_hooked(int argc, char **argv, const kv_replay_hooks *h);

#endif
