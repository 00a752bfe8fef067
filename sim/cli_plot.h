/* cli_plot.h — `kvsim plot` (see cli_plot.c). */
#ifndef KV_CLI_PLOT_H
#define KV_CLI_PLOT_H

/* argv[0] is "plot". Returns the process exit code. */
int kv_cli_plot_main(int argc, char **argv);

/* Plot run directories into out_dir (created). Returns the process exit code. */
int kv_plot_runs(const char *const *runs, int n_runs, const char *out_dir);

#endif
