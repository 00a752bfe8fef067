# memory.gp — time-averaged KV memory breakdown, one stacked bar per strategy.
# Reads DATA: a TSV of label, token, reserved, internal, external, free shares (written by
# `kvsim plot` from each run's summary.json).
W = 900; H = 520
load dir."/common.gp"
set datafile separator tab
set title title noenhanced
set style data histograms
set style histogram rowstacked
set style fill solid 0.9 border lc rgb "#ffffff"
set boxwidth 0.7
set ylabel "share of the KV pool, time-averaged (%)"
set yrange [0:100]
set xtics rotate by -25 noenhanced
set key outside right top title "memory category"
plot DATA using (100*$2):xtic(1) title "token states" lc rgb "#2ca02c", \
     ''   using (100*$3) title "reserved" lc rgb "#1f77b4", \
     ''   using (100*$4) title "internal fragmentation" lc rgb "#d62728", \
     ''   using (100*$5) title "external fragmentation" lc rgb "#ff7f0e", \
     ''   using (100*$6) title "free" lc rgb "#cccccc"
