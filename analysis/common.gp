# common.gp — shared settings of kvsim's figures. Variables set by `kvsim plot` with -e:
#   term  "png" or "svg";  out  the output file;  title  the figure title;
#   runs  run directories, space-separated;  labels  their strategy labels, same order.
if (term eq "svg") {
    set terminal svg size W,H dynamic enhanced font "Helvetica,12" background "white"
} else {
    set terminal pngcairo size W,H enhanced font "Helvetica,11" background "white"
}
set output out
set datafile separator comma
set datafile missing ""
set grid lc rgb "#dddddd"
set border lc rgb "#444444"
set key noenhanced
# one colour per strategy, in compare's order
array C[8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
