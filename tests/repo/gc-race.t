#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Garbage collection never fails a commit: a commit that found a garbage
# chunk still on the nodes (dedup, no upload) before a gc keeps it, and
# publishes.
set -u
. "$(dirname "$0")/lib.sh"

check "metad starts" start_metad --replicas 2
for i in 1 2; do check "node $i starts" start_node $i; done
check "two nodes live" wait_live 2
head -c $((32 << 20)) /dev/urandom >"$WORK/src"
check "import the source" "$CTL" -q image import src "$WORK/src"
truncate -s 32M "$WORK/empty"
check "import an empty target" "$CTL" -q image import dst "$WORK/empty"
check "delete the source: its chunks become garbage" "$CTL" image delete src
head -c 262144 "$WORK/src" >"$WORK/ext0"
"$TOP/tests/repo/gcrace" "$META" src dst <"$WORK/ext0" >"$WORK/gcrace.out" 2>&1
while read -r verdict what; do
	case $verdict in
	pass:) ok "$what" ;;
	\#) diag "$what" ;;
	*) not_ok "$what" ;;
	esac
done <"$WORK/gcrace.out"
check "gcrace checked three things" test "$(grep -c '^pass:' "$WORK/gcrace.out")" -eq 3
done_testing
