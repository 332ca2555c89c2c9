#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# One simulated host's part of a bench/scale round, run inside the host's
# network namespace: wait until GOFILE exists (at most 10 minutes), run
# CMD, then write "START END TX_BYTES RX_BYTES STATUS CPU" to OUT (times
# in seconds of the real-time clock; bytes of the host's link eth0 during
# CMD, as its shaper counts them; CPU seconds of CMD and its children)
# and CMD's output to OUT.log.  CMD may be an exported shell function.
# Usage: host.sh GOFILE OUT CMD...
set -u
go=$1 out=$2
shift 2
for _ in $(seq 30000); do
	[ -e "$go" ] && break
	sleep 0.02
done
[ -e "$go" ] || { echo "- - - - timeout -" >"$out"; exit 1; }
link=/sys/class/net/eth0/statistics
tx0=$(<"$link/tx_bytes") rx0=$(<"$link/rx_bytes")
t0=$(date +%s.%N)
/usr/bin/time -f "%U %S" -o "$out.cpu" bash -c '"$@"' cmd "$@" >"$out.log" 2>&1
rc=$?
t1=$(date +%s.%N)
tx1=$(<"$link/tx_bytes") rx1=$(<"$link/rx_bytes")
cpu=$(awk 'END { print $1 + $2 }' "$out.cpu")
echo "$t0 $t1 $((tx1 - tx0)) $((rx1 - rx0)) $rc $cpu" >"$out"
exit "$rc"
