#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the guest (bench/kernel/run).  /dev/vda is the cache device,
# /dev/vdb the reference helper's "remote".
#  1. fio, same boot, same cache device: dm-linear vs dm-blobcr all_present,
#     4k random read/write at iodepth 32, 1M sequential read/write; the
#     two targets alternate, BENCH_ROUNDS rounds (5), medians reported.
#  2. Cold sequential read through kblobcr vs reading its source directly.
#  3. Commit pause at 10 MB and 500 MB dirty, idle and under random writes.
set -eu
cd "$(dirname "$0")"
top=$(cd ../.. && pwd)
kb=$top/tests/kernel/kblobcr
cache=/dev/vda
remote=/dev/vdb
rt=${BENCH_RUNTIME:-5}
res=${VM_OUT:-/tmp}/results.txt
: >"$res"
say() { echo "$*" | tee -a "$res"; }


# fio_run DEV RW BS DEPTH -> prints "<iops> <MiB/s>"
fio_run() {
	fio --name=b --filename="$1" --rw="$2" --bs="$3" --iodepth="$4" \
		--ioengine=libaio --direct=1 --runtime="$rt" --time_based \
		--ramp_time=1 --randrepeat=0 --norandommap --output-format=json |
	python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.0f %.1f" % (d["iops"], d["bw_bytes"] / 1048576))'
}

# fio_pair RW BS DEPTH -> "<linear> <blobcr>" (IOPS or MiB/s): both devices
# at once, one job each, so that host noise hits both alike.
fio_pair() {
	fio --ioengine=libaio --direct=1 --runtime="$rt" --time_based \
		--ramp_time=1 --randrepeat=0 --norandommap --rw="$1" --bs="$2" \
		--iodepth="$3" --output-format=json \
		--name=lin --filename=/dev/mapper/bench-linear \
		--name=bc --filename=/dev/mapper/bench-blobcr |
	python3 -c '
import json, sys
out = []
for j in json.load(sys.stdin)["jobs"]:
    d = j["read"] if j["read"]["io_bytes"] else j["write"]
    out.append(d["iops"] if sys.argv[1] == "1" else d["bw_bytes"] / 1048576)
print("%.1f %.1f" % tuple(out))' "$4"
}

rounds=${BENCH_ROUNDS:-5}

# summarize LABEL: one line for the sequential runs, one for the pairs.
summarize() {
	python3 - "$1" <<'PY' | tee -a "$res"
import statistics as st, sys
lin = [float(x) for x in open("/tmp/lin")]
bc = [float(x) for x in open("/tmp/bc")]
ratio = [float(x) for x in open("/tmp/ratio")]
print("%-26s %10.1f %10.1f %7.1f%%  %s" % (sys.argv[1], st.median(lin),
      st.median(bc), 100 * st.median(ratio),
      " ".join("%.0f%%" % (100 * r) for r in ratio)))
pair = [[float(v) for v in x.split()] for x in open("/tmp/pair")]
pr = [b / l for l, b in pair]
print("%-26s %10.1f %10.1f %7.1f%%  %s" % ("  same time, one job each",
      st.median(p[0] for p in pair), st.median(p[1] for p in pair),
      100 * st.median(pr), " ".join("%.0f%%" % (100 * r) for r in pr)))
PY
}

# compare CACHE_DEV LABEL: part 1 over one cache device.
compare() {
	dev=$1
	say "# 1$2. fio: dm-linear vs dm-blobcr (all_present), both over $dev;"
	sectors=$(blockdev --getsz "$dev")
	dmsetup create bench-linear --table "0 $sectors linear $dev 0"
	dmsetup create bench-blobcr --table "0 $sectors blobcr $dev 512 bench 1 all_present"
	say "#    $rounds rounds; each round runs the two one after the other (order"
	say "#    flipped every round), then both at the same time (one job each);"
	say "#    medians, and the median of the per-round ratios"
	say "$(printf '%-26s %10s %10s %8s  %s' workload linear blobcr ratio 'per-round ratios')"
	for wl in "randread 4k 32" "randwrite 4k 32" "read 1M 4" "write 1M 4"; do
		# shellcheck disable=SC2086
		set -- $wl
		if [ "$2" = 4k ]; then col=1; unit=IOPS; else col=2; unit=MiB/s; fi
		: >/tmp/lin; : >/tmp/bc; : >/tmp/ratio; : >/tmp/pair
		round=0
		while [ $round -lt $rounds ]; do
			if [ $((round % 2)) = 0 ]; then
				l=$(fio_run /dev/mapper/bench-linear "$1" "$2" "$3")
				b=$(fio_run /dev/mapper/bench-blobcr "$1" "$2" "$3")
			else
				b=$(fio_run /dev/mapper/bench-blobcr "$1" "$2" "$3")
				l=$(fio_run /dev/mapper/bench-linear "$1" "$2" "$3")
			fi
			l=$(echo "$l" | cut -d' ' -f$col)
			b=$(echo "$b" | cut -d' ' -f$col)
			echo "$l" >>/tmp/lin
			echo "$b" >>/tmp/bc
			python3 -c "print('%.3f' % ($b / $l))" >>/tmp/ratio
			fio_pair "$1" "$2" "$3" $col >>/tmp/pair
			round=$((round + 1))
		done
		summarize "$1 $2 qd$3 ($unit)"
	done
	dmsetup remove bench-blobcr
	dmsetup remove bench-linear
}

parts=${BENCH_PARTS:-1 2 3}
want() { case " $parts " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

say "# dm-blobcr benchmark, $(uname -r), $(nproc) vCPU (TCG), ${rt}s per fio job, host load ${HOST_LOAD:-?}"
if want 1; then
	compare $cache a
	# null_blk: no data, no host I/O; what is left is the targets' CPU cost.
	modprobe null_blk nr_devices=1 gb=1 queue_mode=2 irqmode=0 hw_queue_depth=64
	compare /dev/nullb0 b
	modprobe -r null_blk
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
	for i in 1 2 3; do
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
