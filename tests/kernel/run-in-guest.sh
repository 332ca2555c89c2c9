#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the test guest: the kselftest binaries of tests/kernel named as
# arguments (default: all), then a check that the kernel logged no splat
# while they ran (tests/vm/splat-patterns).
cd "$(dirname "$0")" || exit 1
# Report tasks blocked for 2 minutes: no test blocks that long on purpose,
# even on a loaded machine under a debug kernel.
echo 120 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null || true
status=0
for t in ${*:-./*_test}; do
	[ -x "$t" ] || continue
	echo "# === $t"
	"./${t#./}" || status=1
done

echo "# === dmesg check"
if dmesg | grep -E -f ../vm/splat-patterns; then
	echo "not ok 1 dmesg_clean"
	status=1
else
	echo "ok 1 dmesg_clean"
fi
exit $status
