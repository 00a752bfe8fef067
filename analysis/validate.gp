# validate.gp — kvgpu validate: each GPU step's measured time against the calibrated cost
# model's prediction for the same work, one colour per strategy, log-log, with the y = x line.
# Reads DATA: a TSV of strategy index, predicted ms, measured ms; names: the strategies in order.
W = 800; H = 640
load dir."/common.gp"
set datafile separator tab
set title title noenhanced
set logscale xy
set xlabel "predicted step time (ms)"
set ylabel "measured step time (ms)"
set key top left noenhanced
set size square
n = words(names)
plot for [i=1:n] DATA using (column(1) == i - 1 ? $2 : 1/0):3 with points pt 7 ps 0.4 \
       lc rgb C[i] title word(names, i), \
     x with lines lc rgb "#444444" dt 2 title "measured = predicted"
