#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The cost of authentication, in one run (Documentation/repository.rst,
# "Performance"; security.rst): the tree as built (every frame sealed),
# the same tree built again with -DBLOBCR_BENCH_NO_AUTH (frames unsealed:
# the baseline) and the tree as built with encrypted sessions, each round
# running the three in a rotated order, each on a fresh metad and node
# (R=1) on loopback:
#  - import and export (into /dev/null) of SIZE MiB of random bytes: wall
#    time, and the CPU seconds of the client, the node and metad together;
#  - a lookup of 4096 extents and a publish of 4096 changed extents
#    (repobench: the median and the minimum of 21 each; a publish
#    includes metad's durable LMDB commit).
# Prints each figure's median over the rounds and the median of the
# per-round ratios to the baseline.
# Usage: bench/repo/auth.sh [SIZE_MIB] [ROUNDS]   (from the top, after make;
# SIZE_MIB at least 1024: the lookup and publish need 4096 extents)
set -eu -o pipefail
TOP=$(pwd)
MIB=${1:-1024}
ROUNDS=${2:-5}
[ "$MIB" -ge 1024 ] || { echo "auth.sh: SIZE_MIB must be at least 1024" >&2; exit 2; }
. "$TOP/tests/repo/lib.sh"
export DEAD_AFTER_MS=10000
CC=${CC:-cc}
AUTH_BIN=$TOP
BASE_BIN=$WORK/baseline
VARIANTS=(baseline sealed encrypted)

echo "# building the baseline (-DBLOBCR_BENCH_NO_AUTH) in $BASE_BIN" >&2
mkdir -p "$BASE_BIN"
tar -C "$TOP" --exclude='*.o' --exclude='*.a' --exclude='*.d' \
	-cf - include userspace tools | tar -C "$BASE_BIN" -xf -
flags="-std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -I$BASE_BIN/include \
-I$BASE_BIN/userspace/lib -DBLOBCR_BENCH_NO_AUTH"
for d in userspace tools; do
	make -s -C "$BASE_BIN/$d" TOP="$BASE_BIN" USER_CFLAGS="$flags" >&2
done
for v in "$AUTH_BIN" "$BASE_BIN"; do
	"$CC" -std=gnu11 -O2 -D_GNU_SOURCE -I"$v/userspace/lib" \
		-o "$v/repobench.$$" "$TOP/bench/repo/repobench.c" \
		"$v/userspace/lib/libblobcr.a" -lnanomsg -llmdb -lcrypto -lisal -pthread
done
trap 'rm -f "$AUTH_BIN/repobench.$$"; cleanup' EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# ticks PID: user + system CPU of a live process, in clock ticks
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# timed OUT CMD...: wall seconds into OUT.wall, CPU seconds of CMD, metad
# and the node into OUT.cpu
timed() {
	local out=$1 m0 n0 t
	shift
	m0=$(ticks "$METAD_PID") n0=$(ticks "${NODE_PID[1]}")
	/usr/bin/time -o "$out.time" -f "%e %U %S" "$@" >/dev/null 2>"$out.err" ||
		{ cat "$out.err" >&2; return 1; }
	t=$(cat "$out.time")
	echo "$t" | awk '{ print $1 }' >"$out.wall"
	echo "$t $(( $(ticks "$METAD_PID") - m0 + $(ticks "${NODE_PID[1]}") - n0 ))" |
		awk -v hz="$HZ" '{ print $2 + $3 + $4 / hz }' >"$out.cpu"
}

echo "# $MIB MiB of random bytes, $ROUNDS rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
head -c $((MIB << 20)) /dev/urandom >"$WORK/img"
sync
cat "$WORK/img" >/dev/null

# one VARIANT ROUND: fresh daemons of the variant, every measurement
one() {
	local variant=$1 r=$2 bin=$AUTH_BIN out=$WORK/$1.$2
	[ "$variant" = baseline ] && bin=$BASE_BIN
	METAD=$bin/userspace/metad/blobcr-metad
	NODED=$bin/userspace/noded/blobcr-noded
	CTL=$bin/tools/blobcrctl
	if [ "$variant" = encrypted ]; then export BLOBCR_ENCRYPT=1; else unset BLOBCR_ENCRYPT; fi
	META="" META_DIR=$WORK/meta.$variant.$r NODE_ADDR=()
	start_metad --replicas 1 2>/dev/null
	start_node 1
	wait_live 1
	timed "$out.import" "$CTL" -q image import img "$WORK/img"
	timed "$out.export" "$CTL" -q image export img /dev/null
	for op in lookup publish; do
		"$bin/repobench.$$" "$META" img $op >"$out.$op.txt"
		sed 's/.*median \([0-9.]*\) ms.*/\1/' "$out.$op.txt" >"$out.$op"
		sed 's/.*min \([0-9.]*\) ms.*/\1/' "$out.$op.txt" >"$out.$op.min"
	done
	kill -TERM "$METAD_PID" "${NODE_PID[1]}"
	wait "$METAD_PID" "${NODE_PID[1]}" 2>/dev/null || true
	rm -rf "$META_DIR" "$WORK/node1"
}

for r in $(seq "$ROUNDS"); do
	for i in 0 1 2; do
		variant=${VARIANTS[$(( (r + i) % 3 ))]}
		echo "# round $r: $variant" >&2
		one "$variant" "$r"
	done
done

# row NAME FILE-SUFFIX: medians and the median per-round ratio
row() {
	local b a e ra re
	b=$(cat "$WORK"/baseline.*."$2" | median)
	a=$(cat "$WORK"/sealed.*."$2" | median)
	e=$(cat "$WORK"/encrypted.*."$2" | median)
	ra=$(for r in $(seq "$ROUNDS"); do echo "$(cat "$WORK/sealed.$r.$2") / $(cat "$WORK/baseline.$r.$2")" | bc -l; done | median)
	re=$(for r in $(seq "$ROUNDS"); do echo "$(cat "$WORK/encrypted.$r.$2") / $(cat "$WORK/baseline.$r.$2")" | bc -l; done | median)
	printf '%-40s %9.2f %9.2f %7.3f %9.2f %7.3f\n' "$1" "$b" "$a" "$ra" "$e" "$re"
}
printf '%-40s %9s %9s %7s %9s %7s\n' measurement baseline sealed ratio encrypted ratio
row "import of $MIB MiB, R=1, wall (s)" import.wall
row "import, CPU of client+node+metad (s)" import.cpu
row "export of $MIB MiB, R=1, wall (s)" export.wall
row "export, CPU of client+node+metad (s)" export.cpu
row "lookup of 4096 extents, median (ms)" lookup
row "lookup of 4096 extents, minimum (ms)" lookup.min
row "publish of 4096 extents, median (ms)" publish
row "publish of 4096 extents, minimum (ms)" publish.min
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
