#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/proxy/run's part in the test guest, which plays the VM's host: the
# VM (tests/vm/nested, under QEMU) runs from two dm-blobcr disks, its
# operating system (vmA-root) and a raw data disk (vmA-data), and
# blobcr-proxyd serves it.  For each quiesce mode (qmp, qga), each size
# and each round, twice:
#   proxy  SIZE MB of fresh random data written into vmA-data through
#          QEMU (HMP qemu-io), then a checkpoint request on the VM's
#          channel socket: the proxy's answer gives the VM's pause
#          (paused_ms, QMP stop to cont) or freeze window (frozen_ms, the
#          agent's freeze to thaw) and the time to the versions published;
#   paper  the same amount of fresh data, then bench/proxy/pausebench:
#          quiesce, commit, wait for the versions, resume (the VM stays
#          suspended for the whole upload), timed the same way.
# Which goes first alternates from round to round.  Writes one line per
# pair to $VM_OUT/raw.txt: MODE MB ROUND PROXY_MS PROXY_PUBLISHED_MS
# PAPER_MS PAPER_UPLOAD_MS.
set -euo pipefail
shopt -s inherit_errexit

out=$VM_OUT
sizes=$BENCH_SIZES rounds=$BENCH_ROUNDS
sock=unix:/run/blobcr/proxy/vmA.sock
monitor=/tmp/bench.qmp

# hmp COMMAND: an HMP command through the bench's own QMP monitor.
hmp() {
	printf '{"execute":"qmp_capabilities"}\n{"execute":"human-monitor-command","arguments":{"command-line":"%s"}}\n' \
		"$1" | socat -t 600 - UNIX-CONNECT:$monitor | tail -n 1 | tr -d '\r'
}

# dirty MB: MB of fresh random data at the start of vmA-data, written by
# QEMU's block layer (the device the VM sees), in pieces of at most 50 MB.
dirty() {
	local left=$1 off=0 n r
	while [ "$left" -gt 0 ]; do
		n=$((left > 50 ? 50 : left))
		head -c "${n}M" /dev/urandom >/tmp/piece
		# qemu-io prints its report on QEMU's stdout: the HMP
		# answer is empty when the write succeeded.
		r=$(hmp "qemu-io -d $qdev \\\"write -s /tmp/piece ${off}M ${n}M\\\"")
		[ "$r" = '{"return": ""}' ] ||
			{ echo "bench: qemu-io write failed: $r" >&2; return 1; }
		off=$((off + n)) left=$((left - n))
	done
	rm -f /tmp/piece
}

# setmode MODE: the VM's quiesce mode, as an operator changes it; returns
# once the proxy serves the VM that way.
setmode() {
	sed "s/^quiesce .*/quiesce $1/" /run/blobcr/vm/vmA.vm >/tmp/vmA.vm
	mv /tmp/vmA.vm /run/blobcr/vm/vmA.vm
	for _ in $(seq 600); do
		blobcr-checkpoint -c $sock --status 2>/dev/null | grep -qx "mode=$1" && return
		sleep 0.5
	done
	echo "bench: the proxy does not serve mode $1" >&2
	return 1
}

key() { sed -n "s/^$1=//p" "$2"; }

proxy_run() {	# proxy_run MODE MB: prints PROXY_MS PUBLISHED_MS
	dirty "$2"
	blobcr-checkpoint -c $sock --no-sync --keys --timeout 1800 >/tmp/ck
	[ "$(key disks /tmp/ck)" = 2 ] || { cat /tmp/ck >&2; return 1; }
	if [ "$1" = qmp ]; then
		echo "$(key paused_ms /tmp/ck) $(key published_ms /tmp/ck)"
	else
		echo "$(key frozen_ms /tmp/ck) $(key published_ms /tmp/ck)"
	fi
}

paper_run() {	# paper_run MODE MB: prints PAPER_MS UPLOAD_MS
	dirty "$2"
	pausebench "$1" "/run/blobcr/vm/vmA.$1" vmA-root vmA-data >/tmp/pb
	sed 's/.*window_ms=\([0-9.]*\) upload_ms=\([0-9.]*\).*/\1 \2/' /tmp/pb
}

blobcrctl deploy os --cache /dev/vda --as vmA-root --commit-to bench-os \
	--vm vmA --quiesce qmp >/dev/null
blobcrctl deploy data --cache /dev/vdb --as vmA-data --commit-to bench-data \
	--vm vmA >/dev/null
blobcr-proxyd --quiesce-timeout 60000 >"$out/proxyd.log" 2>&1 &
proxy=$!
boot-vm vmA /tmp/console bench -qmp unix:$monitor,server=on,wait=off \
	>"$out/qemu.log" 2>&1 &
qemu=$!
finish() {
	hmp quit >/dev/null 2>&1 || kill "$qemu" 2>/dev/null || true
	wait "$qemu" 2>/dev/null || true
	kill "$proxy" 2>/dev/null || true
	wait "$proxy" 2>/dev/null || true
	cp /tmp/console "$out/console.log" 2>/dev/null || true
	blobcrctl undeploy vmA-data || true
	blobcrctl undeploy vmA-root || true
}
trap finish EXIT

for _ in $(seq 3000); do
	grep -q "bench=ready" /tmp/console 2>/dev/null && break
	sleep 0.2
done
grep -q "bench=ready" /tmp/console || { echo "bench: the VM did not start" >&2; exit 1; }
echo "bench: VM up after $(sed -n 's/^nested: init after //p' /tmp/console) (its clock)"
# The data disk's device, for qemu-io: "info block" says where each
# node is attached ("blobcr-vmA-data: ...\r\n    Attached to: QDEV").
qdev=$(hmp "info block" | sed 's/\\r\\n/\n/g' |
	sed -n '/^.*blobcr-vmA-data: /{n;s/^ *Attached to: *//p}')
[ -n "$qdev" ] || { echo "bench: no device for vmA-data" >&2; exit 1; }

for mode in qmp qga; do
	setmode $mode
	for mb in $sizes; do
		for r in $(seq "$rounds"); do
			if [ $((r % 2)) = 1 ]; then
				p=$(proxy_run $mode "$mb") b=$(paper_run $mode "$mb")
			else
				b=$(paper_run $mode "$mb") p=$(proxy_run $mode "$mb")
			fi
			echo "$mode $mb $r $p $b" | tee -a "$out/raw.txt"
		done
	done
done
