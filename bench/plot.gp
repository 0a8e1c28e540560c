# Plots bench/bridge.dat (written by bridge-bench) as bench/bridge-scaling.png.
set terminal png size 900,420
set output "bench/bridge-scaling.png"
set multiplot layout 1,2 title "bridge plugin: cost of one container against containers already attached (medians, ms)"
set key top left
set xlabel "containers attached"
set ylabel "ms"
set logscale y
set grid
set title "ADD"
plot "bench/bridge.dat" using 1:2 with linespoints title "netctl-bridge", \
     "" using 1:3 with linespoints title "reference bridge + host-local"
set title "DEL"
plot "bench/bridge.dat" using 1:4 with linespoints title "netctl-bridge", \
     "" using 1:5 with linespoints title "reference bridge + host-local"
unset multiplot
