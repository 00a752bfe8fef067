# latency.gp — TTFT and TPOT cumulative distributions, one line per strategy, from each run's
# requests.csv (rejected requests have no TTFT and are left out).
W = 1200; H = 480
load dir."/common.gp"
n = words(runs)
set multiplot layout 1, 2 title title noenhanced
set logscale x
set format x "10^{%L}"
set ylabel "share of requests"
set yrange [0:1]
set key bottom right font ",10"
set xlabel "time to first token (s)"
set title "TTFT"
plot for [i=1:n] word(runs, i)."/requests.csv" using "ttft_s":(1) smooth cnormal \
     with lines lw 2 lc rgb C[(i-1)%8+1] title word(labels, i)
set xlabel "time per output token (s)"
set title "TPOT"
plot for [i=1:n] word(runs, i)."/requests.csv" using "tpot_s":(1) smooth cnormal \
     with lines lw 2 lc rgb C[(i-1)%8+1] title word(labels, i)
unset multiplot
