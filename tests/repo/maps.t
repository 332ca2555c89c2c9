#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# LMDB maps grow when needed (issue 10, item 9): metad and a node started
# with 1 MiB maps take a version of 100,000 extents and 16,384 chunks of
# 4 KiB; their maps double as they fill, nothing fails, every byte reads
# back, and they reopen on their grown files.
set -u
. "$(dirname "$0")/lib.sh"

check "metad starts with a 1 MiB map" start_metad --replicas 1 --repair-interval-s 0 --map-mb 1
check "node starts with 1 MiB maps" start_node 1 --map-mb 1
check "node live" wait_live 1
head -c $((64 << 20)) /dev/urandom >"$WORK/a"
check "import 16,384 chunks of 4 KiB" "$CTL" -q image import --extent-size 4096 a "$WORK/a"
check "a version of 100,000 extents" \
	bash -c "'$TOP/tests/repo/bigcommit' '$META' big 100000 >'$WORK/big.out' 2>&1"
grep -v '^pass' "$WORK/big.out" | sed 's/^/# /'
check "metad's map grew" grep -q "database map grown to" "$WORK/metad.log"
check "the node's index map grew" grep -q "index map of .* grown to" "$WORK/node1.log"
diag "$(grep -h 'grown to' "$WORK/metad.log" "$WORK/node1.log" | tail -n 2 | sed 's/.*info: //')"
check "a exports byte-exact" "$CTL" -q image export a "$WORK/a.out"
check "a's bytes" cmp "$WORK/a" "$WORK/a.out"
kill "$METAD_PID" "${NODE_PID[1]}"
wait "$METAD_PID" "${NODE_PID[1]}" 2>/dev/null
check "metad reopens its grown database with --map-mb 1" \
	start_metad --replicas 1 --repair-interval-s 0 --map-mb 1
check "so does the node" start_node 1 --map-mb 1
check "node live again" wait_live 1
check "a exports byte-exact after the restart" "$CTL" -q image export a "$WORK/a.out2"
check "a's bytes after the restart" cmp "$WORK/a" "$WORK/a.out2"
check "another version after the restart" \
	bash -c "'$TOP/tests/repo/bigcommit' '$META' big 100000 >/dev/null 2>&1"
done_testing
