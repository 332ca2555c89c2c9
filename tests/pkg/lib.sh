# SPDX-License-Identifier: GPL-2.0
# Shared by the tests/pkg scripts: TAP lines with their diagnostics, a
# scratch directory removed on exit, the final plan.  Source it with TOP
# set to the top of the tree.

T_N=0
T_FAILED=0
WORK=$(mktemp -d /tmp/blobcr-test.pkg.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# tap STATUS NAME [DIAG]: "ok" when STATUS is 0, else "not ok" and DIAG
tap() {
	T_N=$((T_N + 1))
	if [ "$1" = 0 ]; then
		echo "ok $T_N $2"
	else
		echo "not ok $T_N $2"
		T_FAILED=$((T_FAILED + 1))
		[ -z "${3:-}" ] || sed 's/^/# /' <<<"$3"
	fi
}

done_testing() {
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ]
}
