# Training curve of a trm::fit run (generated; run: gnuplot curve.gp)
set terminal pngcairo size 900,640 font 'sans,10'
set output 'docs/img/.maze9_30min_curve.png.tmp-15730'
set datafile separator ','
set datafile missing ''
tr = "< grep ^train, '/tmp/maze9-fixed/metrics.csv'"
ev = "< grep ^eval, '/tmp/maze9-fixed/metrics.csv'"
set multiplot layout 2,1 title '9x9 maze, TRM-MLP hidden 64, 2 layers, prefix 4, n=2 T=2 N_{sup}=8'
set key bottom right
set grid
set ylabel 'accuracy (%)'
set yrange [0:100]
set xlabel 'training time (minutes)'
plot ev using ($3/60):(100*$13) with linespoints lw 2 pt 7 title 'held-out exact (all N_{sup} steps)', \
     ev using ($3/60):(100*$21) with linespoints lw 2 pt 9 title 'held-out valid answers (all steps)', \
     ev using ($3/60):(100*$15) with linespoints lw 2 pt 5 title 'held-out exact (early exit)', \
     tr using ($3/60):(100*$9) with lines lc rgb '#999999' title 'train exact (finished rows)', \
     tr using ($3/60):(100*$8) with lines lc rgb '#cccccc' title 'train cell accuracy'
set yrange [*:*]
set logscale y
set format y '%g'
set ylabel 'train loss'
set key top right
set xlabel 'step'
plot tr using 2:5 with lines lw 1.5 title 'total loss', \
     tr using 2:7 with lines lw 1 title 'q-halt loss'
unset multiplot
set output
