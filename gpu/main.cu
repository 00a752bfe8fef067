/* main.cu — kvgpu: the allocator's decisions realized on a CUDA GPU.
 *
 *   kvgpu test    kernels and swaps against CPU float64 references (make gpu-test)
 *   kvgpu bench   the device's limits, then bandwidths, costs and executor times against them
 *   kvgpu replay     kvsim replay with every allocator decision and step run on the GPU
 *   kvgpu calibrate  fit kvsim's cost model to measured steps, swaps and maps
 *   kvgpu validate   a trace on the GPU and in calibrated kvsim, side by side
 */
#include <stdio.h>
#include <string.h>

int kvgpu_check_main(int argc, char **argv);
int kvgpu_bench_main(int argc, char **argv);
int kvgpu_replay_main(int argc, char **argv);
int kvgpu_calibrate_main(int argc, char **argv);
int kvgpu_validate_main(int argc, char **argv);

static void usage(FILE *f)
{
    fprintf(f, "usage: kvgpu test | bench [-o DIR] [SECTION...] | replay TRACE --strategy S [kvsim replay\n"
               "       options] [--attn-layers K (1)] [--q-per-kv G (4)] -o DIR\n"
               "  test    every kernel and swap path against a CPU float64 reference\n"
               "  bench   the device's limits, then attention, prefill, append, swap, vmm and\n"
               "          model figures against them (-o DIR; default results/gpu/<device>)\n"
               "  replay  kvsim's engine, every decision realized on the GPU; kvsim's outputs\n"
               "          plus gpu_steps.csv and gpu_summary.json; --decision-log FILE;\n"
               "          --model-exec: the model executor runs every step and its measured\n"
               "          time drives the clock (--layers K, --swap-batched)\n"
               "  calibrate [--model M] [--gpu G] [--layers K] -o FILE\n"
               "  validate TRACE [--window A:B] --calib FILE -o DIR [--strategies LIST]\n"
               "          [replay options]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "test") == 0)
        return kvgpu_check_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "calibrate") == 0)
        return kvgpu_calibrate_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "validate") == 0)
        return kvgpu_validate_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "replay") == 0)
        return kvgpu_replay_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "bench") == 0)
        return kvgpu_bench_main(argc - 1, argv + 1);
    fprintf(stderr, "kvgpu: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
