# plan.gp — kvsim plan's answer per configuration, as bars: the highest sustainable request
# rate (rate, block) or the fewest replicas (replicas, with ylab and fmt set by the caller).
# Reads DATA: a TSV of label and value.
W = 900; H = 520
load dir."/common.gp"
set datafile separator tab
set title title noenhanced
set style fill solid 0.85 border lc rgb "#ffffff"
set boxwidth 0.65
if (!exists("ylab")) ylab = "highest sustainable rate (requests/s)"
if (!exists("fmt")) fmt = "%.1f"
set ylabel ylab
set yrange [0:*]
set xtics rotate by 30 right noenhanced
set offsets 0.5, 0.5, graph 0.1, 0
set lmargin 16
unset key
plot DATA using 0:2:xtic(1) with boxes lc rgb "#1f77b4", \
     '' using 0:2:(sprintf(fmt, $2)) with labels offset 0,0.8 notitle
