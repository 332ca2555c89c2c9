#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Repository benchmark, over loopback, in one run (see
# Documentation/repository.rst, "Performance"):
#  - export of a 1 GiB image (R=1) vs a plain TCP stream of the same bytes
#    between the same two endpoints (socat), both into /dev/null;
#  - import of the same image at R=1 and at R=2;
#  - a batched lookup of 4096 extents and a publish of 4096 changed extents,
#    each against the same request for one extent (its fixed cost);
#  - a gc deleting every chunk of the R=1 image, against that import;
#  - a publish of 1,000,000 changed extents (staged in parts), against the
#    publish of 4096 per extent;
#  - commits of 256 MiB at R=1 and R=2, their uploads overlapped with the
#    next batch's reading and hashing, against the same in line.
# Usage: bench/repo/run.sh [SIZE_MIB]   (from the top of the tree, after make;
# SIZE_MIB at least 1024, the default: the lookup and publish of 4096
# extents of 256 KiB need an image that large)
set -eu
TOP=$(pwd)
MIB=${1:-1024}
if ! [[ $MIB =~ ^[0-9]+$ ]] || [ "$MIB" -lt 1024 ]; then
	echo "bench/repo/run.sh: SIZE_MIB must be a number of MiB, at least 1024" \
		"(4096 extents of 256 KiB), not '$MIB'" >&2
	exit 2
fi
. "$TOP/tests/repo/lib.sh"
CC=${CC:-cc}
# A loaded machine must not see the node as dead in the middle of a run.
export DEAD_AFTER_MS=10000

"$CC" -std=gnu11 -O2 -D_GNU_SOURCE -I"$TOP/userspace/lib" -o "$WORK/repobench" \
	"$TOP/bench/repo/repobench.c" "$TOP/userspace/lib/libblobcr.a" \
	-lnanomsg -llmdb -lcrypto -lisal -pthread

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
# cpu CMD...: user+system CPU seconds of CMD (not of the daemons)
cpu() { /usr/bin/time -f "%U %S" "$@" 2>&1 >/dev/null | tail -n 1 | awk '{print $1 + $2}'; }
rate() { echo "scale=1; $MIB / $1" | bc -l; }

echo "# $MIB MiB of random bytes, $(nproc) cores, $(uname -r)"
head -c $((MIB << 20)) /dev/urandom >"$WORK/img"
sync # no writeback of the image competing with the nodes' syncs
cat "$WORK/img" >/dev/null # page cache, as for every run below

# Baseline: socat from a listening sender to a receiver, the same loopback.
port=$(free_port)
socat -u -b 262144 "FILE:$WORK/img" "TCP-LISTEN:$port,reuseaddr" &
PIDS="$PIDS $!"
sleep 0.3
t_tcp=$(secs socat -u -b 262144 "TCP:127.0.0.1:$port" /dev/null)
# socat's default 8 KiB buffers, a second, more modest baseline
socat -u "FILE:$WORK/img" "TCP-LISTEN:$port,reuseaddr" &
PIDS="$PIDS $!"
sleep 0.3
t_tcp8=$(secs socat -u "TCP:127.0.0.1:$port" /dev/null)

# R=1: one metad, one node.
start_metad --replicas 1
start_node 1
wait_live 1
t_imp1=$(secs "$CTL" -q image import r1 "$WORK/img")
t_exp1=$(secs "$CTL" -q image export r1 /dev/null)
c_exp1=$(cpu "$CTL" -q image export r1 /dev/null)
c_tcp=$(socat -u -b 262144 "FILE:$WORK/img" "TCP-LISTEN:$port,reuseaddr" &
	sleep 0.3; cpu socat -u -b 262144 "TCP:127.0.0.1:$port" /dev/null)
t_exp1f=$(secs "$CTL" -q image export r1 "$WORK/out")
cmp "$WORK/img" "$WORK/out"
rm -f "$WORK/out"
sync

# Lookup and publish timings on the 1 GiB image (4096 extents of 256 KiB).
lookup=$("$WORK/repobench" "$META" r1 lookup)
lookup1=$("$WORK/repobench" "$META" r1 lookup 1)
pub=$("$WORK/repobench" "$META" r1 publish)
pub1=$("$WORK/repobench" "$META" r1 publish 1)
median() { sed -n 's/.*median \([0-9.]*\) ms.*/\1/p' <<<"$1"; }
# Commits of the image's first 256 MiB, each extent made new.
head -c $((256 << 20)) "$WORK/img" >"$WORK/img256"
commit1=$("$WORK/repobench" "$META" r1 commit "$WORK/img256" 5)

# gc of the whole image: its chunks deleted on the node, one index
# transaction per DELETE of 4096 ids.
"$CTL" image delete r1
t_gc=$(secs "$CTL" -t 600000 gc)

# A million changed extents of 4 KiB in one version (16 distinct chunks
# uploaded, the publish staged in parts and applied in one transaction).
"$TOP/tests/repo/bigcommit" "$META" big 1000000 >"$WORK/big.out"
t_big=$(sed -n 's/^publish_ms=//p' "$WORK/big.out")
grep -q FAIL "$WORK/big.out" && { echo "bigcommit failed its checks" >&2; exit 1; }

# R=2: a fresh metad told to keep two copies, two fresh nodes.
kill -TERM "$METAD_PID" "${NODE_PID[1]}"; wait "$METAD_PID" "${NODE_PID[1]}" || true
META_DIR=$WORK/meta2 start_metad --replicas 2
start_node 2
start_node 3
wait_live 2
t_imp2=$(secs "$CTL" -q image import r2 "$WORK/img")
commit2=$("$WORK/repobench" "$META" r2 commit "$WORK/img256" 5)

printf '%-44s %8.2f s %8s MiB/s\n' "socat TCP stream, 256 KiB buffers (baseline)" "$t_tcp" "$(rate "$t_tcp")"
printf '%-44s %8.2f s %8s MiB/s\n' "socat TCP stream, default 8 KiB buffers" "$t_tcp8" "$(rate "$t_tcp8")"
printf '%-44s %8.2f s %8s MiB/s  ratio %.2f (%.2f)\n' "export R=1 to /dev/null" "$t_exp1" \
	"$(rate "$t_exp1")" "$(echo "$t_tcp / $t_exp1" | bc -l)" "$(echo "$t_tcp8 / $t_exp1" | bc -l)"
printf '%-44s %8.2f s (socat receiver: %.2f s)\n' "export R=1 CPU of the client" "$c_exp1" "$c_tcp"
printf '%-44s %8.2f s %8s MiB/s\n' "export R=1 to a file (verified)" "$t_exp1f" "$(rate "$t_exp1f")"
printf '%-44s %8.2f s %8s MiB/s\n' "import R=1" "$t_imp1" "$(rate "$t_imp1")"
printf '%-44s %8.2f s %8s MiB/s\n' "import R=2" "$t_imp2" "$(rate "$t_imp2")"
echo "R=1 $commit1"
echo "R=2 $commit2"
echo "$lookup  (1 extent: $(median "$lookup1") ms, ratio $(echo "scale=1; $(median "$lookup") / $(median "$lookup1")" | bc -l))"
echo "$pub  (1 extent: $(median "$pub1") ms, ratio $(echo "scale=1; $(median "$pub") / $(median "$pub1")" | bc -l))"
printf '%-44s %8.0f ms %8.2f us an extent  ratio to the 4096 publish %.2f\n' \
	"publish of 1,000,000 changed extents" "$t_big" \
	"$(echo "$t_big * 1000 / 1000000" | bc -l)" \
	"$(echo "($t_big / 1000000) / ($(median "$pub") / 4096)" | bc -l)"
printf '%-44s %8.2f s %8.3f ms a chunk  ratio to import R=1 %.3f\n' \
	"gc of the R=1 image ($((MIB * 4)) chunks)" "$t_gc" \
	"$(echo "$t_gc * 1000 / ($MIB * 4)" | bc -l)" "$(echo "$t_gc / $t_imp1" | bc -l)"
