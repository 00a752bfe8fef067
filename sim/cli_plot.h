/* cli_plot.h — `kvsim plot` (see cli_plot.c). */
#ifndef KV_CLI_PLOT_H
#define KV_CLI_PLOT_H

/* argv[0] is "plot". Returns the process exit code. */
int kv_cli_plot_main(int argc, char **argv);

/* Run `gnuplot -e vars DIR/script`, DIR being $KVSIM_ANALYSIS or analysis/. Returns the
 * process exit code (1 when gnuplot is missing or fails, with a message). */
int kv_plot_gnuplot(const char *script, const char *vars);

/* The directory of the gnuplot scripts: $KVSIM_ANALYSIS or analysis/. */
const char *kv_plot_script_dir(void);

/* Plot run directories into out_dir (created). Returns the process exit code. */
int kv_plot_runs(const char *const *runs, int n_runs, const char *out_dir);

#endif
