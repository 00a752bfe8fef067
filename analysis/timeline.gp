# timeline.gp — KV memory by category (stacked, GiB) and running sequences over time, one panel
# per strategy, from each run's timeline.csv.
n = words(runs)
rows = (n + 1) / 2
W = 1200; H = 330 * rows
load dir."/common.gp"
set multiplot layout rows, 2 title title noenhanced
set style fill solid 0.85 noborder
set xlabel "simulated time (s)"
set ylabel "KV memory (GiB)"
set y2label "running sequences"
set y2tics
set ytics nomirror
set key top left horizontal font ",9" samplen 2
set offsets 0, 0, graph 0.22, 0  # headroom for the key
G = 2.0**30
do for [i=1:n] {
    f = word(runs, i)."/timeline.csv"
    set title word(labels, i) noenhanced
    plot f using "t_s":(column("token_bytes")+column("reserved_bytes")+column("internal_frag_bytes")+column("external_frag_bytes"))/G with filledcurves x1 lc rgb "#ff7f0e" title "external frag", \
         f using "t_s":(column("token_bytes")+column("reserved_bytes")+column("internal_frag_bytes"))/G with filledcurves x1 lc rgb "#d62728" title "internal frag", \
         f using "t_s":(column("token_bytes")+column("reserved_bytes"))/G with filledcurves x1 lc rgb "#1f77b4" title "reserved", \
         f using "t_s":(column("token_bytes"))/G with filledcurves x1 lc rgb "#2ca02c" title "token states", \
         f using "t_s":"running" axes x1y2 with lines lw 1.2 lc rgb "#000000" title "running"
}
unset multiplot
