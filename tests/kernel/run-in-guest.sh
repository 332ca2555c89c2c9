#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the test guest: every kselftest binary of tests/kernel, then a
# check that the kernel logged no splat while they ran.
cd "$(dirname "$0")" || exit 1
# Report tasks blocked for 30 s (the tests never block that long on purpose).
echo 30 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null || true
status=0
for t in ./*_test; do
	[ -x "$t" ] || continue
	echo "# === $t"
	"$t" || status=1
done

echo "# === dmesg check"
if dmesg | grep -E 'BUG:|WARNING:|Oops|KASAN|UBSAN|lockdep|possible .* deadlock|hung_task|blocked for more than' ; then
	echo "not ok 1 dmesg_clean"
	status=1
else
	echo "ok 1 dmesg_clean"
fi
exit $status
