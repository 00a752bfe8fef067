# plan.gp — the highest sustainable request rate per configuration (kvsim plan), as bars.
# Reads DATA: a TSV of label and requests/s.
W = 900; H = 520
load dir."/common.gp"
set datafile separator tab
set title title noenhanced
set style fill solid 0.85 border lc rgb "#ffffff"
set boxwidth 0.65
set ylabel "highest sustainable rate (requests/s)"
set yrange [0:*]
set xtics rotate by -25 noenhanced
unset key
plot DATA using 0:2:xtic(1) with boxes lc rgb "#1f77b4", \
     '' using 0:2:(sprintf("%.1f", $2)) with labels offset 0,0.8 notitle
