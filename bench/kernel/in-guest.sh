#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the guest (bench/kernel/run).  /dev/vda is the cache device,
# /dev/vdb the reference helper's "remote".
#  1. fio, same boot, same device: dm-blobcr all_present vs dm-linear, with
#     a second dm-linear as a control; 4k random read/write at iodepth 32,
#     1M sequential read/write.  bench/kernel/run boots this part with a
#     deterministic clock (QEMU -icount): rates count guest instructions.
#  2. Cold sequential read through kblobcr vs reading its source directly.
#  3. Commit pause at 10 MB and 500 MB dirty, idle and under random writes.
set -eu
cd "$(dirname "$0")"
top=$(cd ../.. && pwd)
kb=$top/tests/kernel/kblobcr
cache=/dev/vda
remote=/dev/vdb
rt=${BENCH_RUNTIME:-3}
rounds=${BENCH_ROUNDS:-3}
jobs=${BENCH_JOBS:-1}
res=${VM_OUT:-/tmp}/results.txt
touch "$res"
say() { echo "$*" | tee -a "$res"; }

# fio_run DEV RW BS DEPTH -> IOPS for 4k, MiB/s otherwise (all jobs)
fio_run() {
	fio --name=b --filename="$1" --rw="$2" --bs="$3" --iodepth="$4" \
		--ioengine=libaio --direct=1 --runtime="$rt" --time_based \
		--numjobs="$jobs" --group_reporting \
		--ramp_time=1 --randrepeat=0 --norandommap --output-format=json |
	python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.1f" % (d["iops"] if sys.argv[1] == "4k" else d["bw_bytes"] / 1048576))' "$3"
}

# summarize LABEL: medians of /tmp/{linear,blobcr,control}, the ratio of
# the medians, and the spread of the per-round ratios.
summarize() {
	python3 - "$1" <<'PY' | tee -a "$res"
import statistics as st, sys
col = {n: [float(x) for x in open("/tmp/" + n)]
       for n in ("linear", "blobcr", "control")}
m = {n: st.median(v) for n, v in col.items()}
r = [b / l for l, b in zip(col["linear"], col["blobcr"])]
print("%-24s %9.1f %9.1f %7.1f%% %8.1f%%  %3.0f%%-%.0f%%" % (sys.argv[1],
      m["linear"], m["blobcr"], 100 * m["blobcr"] / m["linear"],
      100 * m["control"] / m["linear"], 100 * min(r), 100 * max(r)))
PY
}

# compare DEV: part 1 over one device; rounds rotate the order of the three.
compare() {
	dev=$1
	sectors=$(blockdev --getsz "$dev")
	dmsetup create bench-linear --table "0 $sectors linear $dev 0"
	dmsetup create bench-control --table "0 $sectors linear $dev 0"
	if [ "${BENCH_BLOBCR:-1}" = 1 ]; then
		dmsetup create bench-blobcr --table "0 $sectors blobcr $dev 512 bench 1 all_present"
	else
		# The same soak without the module: a third dm-linear.
		dmsetup create bench-blobcr --table "0 $sectors linear $dev 0"
	fi
	say "# 1. fio over $dev: dm-blobcr (all_present) vs dm-linear, and a second"
	say "#    dm-linear (control: what the method cannot tell apart); $rounds rounds"
	say "#    of ${rt}s per device after a warm-up, order rotated; medians"
	say "$(printf '%-24s %9s %9s %8s %9s  %s' workload linear blobcr ratio control 'ratio range')"
	for wl in "randread 4k 32" "randwrite 4k 32" "read 1M 4" "write 1M 4"; do
		# shellcheck disable=SC2086
		set -- $wl
		for d in linear blobcr control; do
			: >/tmp/$d
			fio_run /dev/mapper/bench-$d "$1" "$2" "$3" >/dev/null
		done
		round=0
		while [ $round -lt "$rounds" ]; do
			case $((round % 3)) in
			0) order="linear blobcr control" ;;
			1) order="blobcr control linear" ;;
			*) order="control linear blobcr" ;;
			esac
			for d in $order; do
				fio_run "/dev/mapper/bench-$d" "$1" "$2" "$3" >>"/tmp/$d"
			done
			round=$((round + 1))
		done
		if [ "$2" = 4k ]; then unit=IOPS; else unit=MiB/s; fi
		summarize "$1 $2 qd$3 ($unit)"
	done
	dmsetup remove bench-blobcr bench-control bench-linear
}

parts=${BENCH_PARTS:-1 2 3}
want() { case " $parts " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

clock=wall-clock
[ -n "${BENCH_ICOUNT:-}" ] && clock="deterministic clock, -icount shift=$BENCH_ICOUNT"
say "# dm-blobcr benchmark, $(uname -r), $(nproc) vCPU (TCG, $clock), ${rt}s per fio job, $jobs fio job(s) per run, host load ${HOST_LOAD:-?}"
mod=$(grep -o 'blobcr.module=[^ ]*' /proc/cmdline | cut -d= -f2)
[ ! -r "$mod" ] || mod="$mod (sha256 $(sha256sum "$mod" | cut -c1-12))"
say "# module: $mod"
if want 1; then
	compare $cache
	# null_blk: no data, no host I/O; what is left is the targets' CPU cost.
	# Its parameters are on the command line (bench/kernel/run), where a
	# null_blk built in (the debug kernel) takes them too.
	if [ -b /dev/nullb0 ]; then
		compare /dev/nullb0
	else
		modprobe null_blk
		compare /dev/nullb0
		modprobe -r null_blk
	fi
fi

if want 2; then
say "# 2. cold sequential read (dd bs=1M iflag=direct, 256 MiB) through kblobcr -t 4"
fio --name=fill --filename=$remote --rw=write --bs=1M --size=256M \
	--ioengine=libaio --iodepth=4 --direct=1 --buffer_pattern=0x5a \
	>/dev/null
dmsetup create bench-cold --table "0 524288 blobcr $cache 512 cold"
$kb serve -t 4 -c cold -d $cache -r $remote 2>/tmp/kb-cold.log &
kbpid=$!
sleep 0.5
t0=$(date +%s.%N)
dd if=/dev/mapper/bench-cold of=/dev/null bs=1M count=256 iflag=direct 2>/dev/null
t1=$(date +%s.%N)
dd if=$remote of=/dev/null bs=1M count=256 iflag=direct 2>/dev/null
t2=$(date +%s.%N)
dmsetup remove bench-cold
wait $kbpid || true
reqs=$(sed -n 's/^kblobcr: \([0-9]*\) fetch requests.*/\1/p' /tmp/kb-cold.log)
python3 - "$t0" "$t1" "$t2" "$reqs" <<'PY' | tee -a "$res"
import sys
t0, t1, t2, reqs = map(float, sys.argv[1:])
cold, direct = t1 - t0, t2 - t1
print("cold read via kblobcr: %.1f MiB/s; source read directly: %.1f MiB/s;"
      " ratio %.1f%%" % (256 / cold, 256 / direct, 100 * direct / cold))
print("FETCH round trips: %d in %.2f s = %.0f/s (%.1f extents each)"
      % (reqs, cold, reqs / cold, 1024 / reqs))
PY
fi

if want 3; then
say "# 3. commit pause (ioctl start to writes accepted again), microseconds;"
say "#    under load: 3 commits while fio 4k randwrite qd32 runs elsewhere"
sectors=$(blockdev --getsz $cache)
dmsetup create bench-commit --table "0 $sectors blobcr $cache 512 commit 1 all_present"
$kb serve -c commit -d $cache -u 2>/tmp/kb-commit.log &
kbpid=$!
sleep 0.5
$kb commit commit >/dev/null		# start from a clean dirty set
pause() { sed 's/.*extents \([0-9]*\) pause_us \([0-9]*\).*/\2 (\1 extents)/'; }
for mb in 10 500; do
	dd if=/dev/zero of=/dev/mapper/bench-commit bs=1M count=$mb \
		oflag=direct 2>/dev/null
	idle=$($kb commit commit | pause)
	busy=""
	for _ in 1 2 3; do
		dd if=/dev/zero of=/dev/mapper/bench-commit bs=1M count=$mb \
			oflag=direct 2>/dev/null
		fio --name=load --filename=/dev/mapper/bench-commit \
			--rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio \
			--direct=1 --runtime=60 --time_based --offset=600M \
			--size=300M >/tmp/fio-load.log 2>&1 &
		fpid=$!
		# Commit once the load is writing (more dirty than the dd).
		j=0
		while [ $j -lt 100 ]; do
			dirty=$($kb info commit | sed 's/.* dirty \([0-9]*\) .*/\1/')
			[ "$dirty" -gt $((mb * 4 + 64)) ] && break
			sleep 0.2
			j=$((j + 1))
		done
		busy="$busy $($kb commit commit | pause)"
		kill -INT $fpid 2>/dev/null || true
		wait $fpid 2>/dev/null || true
		$kb commit commit >/dev/null	# what the load wrote after it
	done
	say "$mb MB dirty: idle: $idle; under load:$busy"
done
dmsetup remove bench-commit
wait $kbpid || true
fi
