# throughput-latency.gp — p99 TTFT against output throughput from a kvsim sweep CSV, one line
# per label (strategy and size), points in rate order.
W = 900; H = 560
load dir."/common.gp"
set title title noenhanced
set xlabel "output throughput (tokens/s)"
set ylabel "p99 time to first token (s)"
set logscale y
set key top left font ",10"
n = words(labels)
plot for [i=1:n] DATA using "output_tok_per_s":(strcol("label") eq word(labels, i) ? column("ttft_p99_s") : NaN) \
     with linespoints lw 2 pt 7 ps 0.8 lc rgb C[(i-1)%8+1] title word(labels, i)
