/* cli_plot.h — `kvsim plot` (see cli_plot.c). */
#ifndef KV_CLI_PLOT_H
#define KV_CLI_PLOT_H

#include <stddef.h>

/* argv[0] is "plot". Returns the process exit code. */
int kv_cli_plot_main(int argc, char **argv);

/* Run `gnuplot -e vars DIR/script`, DIR being $KVSIM_ANALYSIS or analysis/. Returns the
 * process exit code (1 when gnuplot is missing or fails, with a message). */
int kv_plot_gnuplot(const char *script, const char *vars);

/* s as the inside of a gnuplot single-quoted string, into dst (cap bytes, truncated): a quote
 * doubled (gnuplot's only escape there), a control character as a space. Every string from
 * input goes through this before it reaches a gnuplot -e command; returns dst. */
const char *kv_plot_quote(const char *s, char *dst, size_t cap);

/* The directory of the gnuplot scripts: $KVSIM_ANALYSIS or analysis/. */
const char *kv_plot_script_dir(void);

/* Plot run directories into out_dir (created). Returns the process exit code. */
int kv_plot_runs(const char *const *runs, int n_runs, const char *out_dir);

#endif
