# SPDX-License-Identifier: GPL-2.0
# bench/scale's figure: completion time, aggregate throughput and link use
# against the number of hosts, dm-blobcr (per R) and the central copy.
# gnuplot -e "dat='results/DATE/scale.dat'; out='scale.png'; rate='40'; size='32'" plot.gp
set terminal pngcairo size 1500,520 font ",10"
set output out
set multiplot layout 1,3 title sprintf("%s MiB per host, links of %s Mbit/s each way (bench/scale/run)", size, rate)
set key top left
set grid
set xlabel "hosts committing (N)"
set logscale x 2
set xrange [0.8:*]
r1(c) = ($1 == 1 ? column(c) : 1/0)
r2(c) = ($1 == 2 ? column(c) : 1/0)

set title "completion time"
set ylabel "s"
set yrange [0:*]
plot dat u 2:(r1(3)) w lp pt 7 lc 1 t "dm-blobcr R=1", \
     dat u 2:(r2(3)) w lp pt 5 lc 2 t "dm-blobcr R=2", \
     dat u 2:(r1(4)) w lp pt 6 lc 3 dt 2 t "central copy (R=1 rounds)", \
     dat u 2:(r2(4)) w lp pt 4 lc 4 dt 2 t "central copy (R=2 rounds)"

set title "aggregate throughput (N x size / completion)"
set ylabel "MB/s"
plot dat u 2:(r1(5)) w lp pt 7 lc 1 t "dm-blobcr R=1", \
     dat u 2:(r2(5)) w lp pt 5 lc 2 t "dm-blobcr R=2", \
     dat u 2:(r1(6)) w lp pt 6 lc 3 dt 2 t "central copy (R=1 rounds)", \
     dat u 2:(r2(6)) w lp pt 4 lc 4 dt 2 t "central copy (R=2 rounds)"

set title "link use (bytes sent / (time x rate))"
set ylabel "share of the link's rate"
set key bottom left
set yrange [0:1.05]
plot dat u 2:(r1(7)) w lp pt 7 lc 1 t "dm-blobcr R=1, a host's uplink", \
     dat u 2:(r2(7)) w lp pt 5 lc 2 t "dm-blobcr R=2, a host's uplink", \
     dat u 2:(r1(8)) w lp pt 6 lc 3 dt 2 t "central copy, a host's uplink", \
     dat u 2:(r1(9)) w lp pt 8 lc 7 dt 3 t "central copy, the server's downlink", \
     dat u 2:(r2(12)) w lp pt 4 lc 2 dt 3 t "dm-blobcr R=2, its own bytes (goodput)", \
     0.85 w l lc 0 dt 4 t "goal 0.85"
unset multiplot
