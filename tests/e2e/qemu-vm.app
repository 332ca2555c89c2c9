#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The application of tests/e2e/qemu-vm.vmt, in the nested guest (its
# /app/run.sh): it saves its state into files on its disk and asks for
# checkpoints over its channels, with the host switching quiesce modes and
# killing the proxy in between (the host waits for the "phase=" lines).
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
	echo "phase=kill"
	wait_mode qmp
	rc=0; ck > /tmp/ck4 2>&1 || rc=$?
	echo "ck4_rc=$rc $(cat /tmp/ck4)"
	wait_mode qmp
	echo "ck5=$(ck | tr '\n' ' ')"
	;;
restart)
	echo "state_sha=$(sha256sum < /app/state | cut -d' ' -f1)"
	echo "log=$(tr '\n' ' ' < /app/log)"
	[ -e /app/after ] && echo after=present || echo after=absent
	echo "ck=$(ck --label restarted | tr '\n' ' ')"
	;;
esac
