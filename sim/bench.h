/* bench.h — `kvsim bench`: benchmark figures printed to stdout (see bench.c for the method). */
#ifndef KV_BENCH_H
#define KV_BENCH_H

/* Run `kvsim bench ARGS...`; argv[0] is "bench". Returns the process exit code. */
int kv_bench_main(int argc, char **argv);

#endif
