#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The application of tests/e2e/qemu-vm.vmt, in the nested guest (its
# /app/run.sh): it saves its state into files on its disk and asks for
# checkpoints over its channels, with the host switching quiesce modes and
# killing the proxy in between (the host waits for the "phase=" lines).
# Versions 1, 2 and 3 are its first three checkpoints; the proxy killed
# during the fourth request had cut version 4, the restarted one answers
# that request with version 5, and the fifth gets version 6.
# Prints key=value lines on the console.
ck() { blobcr-checkpoint --timeout 900 "$@"; }
# wait_mode MODE: until the proxy serves this VM with quiesce MODE.
wait_mode() {
	i=0
	until ck --status 2>/dev/null | grep -qx "mode=$1"; do
		i=$((i + 1)); [ $i -lt 600 ] || return 1; sleep 1
	done
}
case $1 in
first)
	head -c 2000000 /dev/urandom > /app/state
	echo "step 1" > /app/log
	echo "state_sha=$(sha256sum < /app/state | cut -d' ' -f1)"
	sync	# the cost counts what is on the disk
	echo "cost=$(ck --cost)"
	ck --label first --keys > /tmp/ck1 && echo ck1_ok=1
	sed 's/^/ck1_/' /tmp/ck1
	# After the checkpoint: not in it.
	echo "step 2" >> /app/log
	head -c 300000 /dev/urandom > /app/after
	echo "ck2=$(ck -c vsock:2:7350 --keys | grep -E '^(disk0|paused_ms)=' | tr '\n' ' ')"
	echo "phase=qga"
	wait_mode qga
	echo "ck3=$(ck --keys | grep -E '^(disk0|paused_ms|frozen_ms)=' | tr '\n' ' ')"
	echo "qga=$(pidof qemu-ga || echo not running) $(tr '\n' ' ' < /run/qga.log 2>/dev/null)"
	echo "phase=kill"
	wait_mode qmp
	# In flight when the proxy is killed: sent again to the next one.
	rc=0; ck --timeout 300 > /tmp/ck4 2> /tmp/ck4.err || rc=$?
	echo "ck4=$rc $(tr '\n' ' ' < /tmp/ck4)"
	echo "ck4_err=$(tr '\n' ' ' < /tmp/ck4.err)"
	echo "ck5=$(ck | tr '\n' ' ')"
	;;
restart)
	echo "state_sha=$(sha256sum < /app/state | cut -d' ' -f1)"
	echo "log=$(tr '\n' ' ' < /app/log)"
	[ -e /app/after ] && echo after=present || echo after=absent
	echo "ck=$(ck --label restarted | tr '\n' ' ')"
	;;
esac
