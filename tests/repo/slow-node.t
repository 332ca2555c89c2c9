#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A node that is alive but does not answer for a while (stopped with
# SIGSTOP for 5 s: longer than a probe's 3 s, shorter than the request
# timeout) is slow, not dead: an import with requests in flight on it, and
# an export that must open its session with it, succeed whole through it,
# the only node, and the client says why it waited.  A killed node is still
# given up on after one short probe.
set -u
. "$(dirname "$0")/lib.sh"
export DEAD_AFTER_MS=60000 # metad must not take the stopped node for dead

check "metad starts" start_metad --replicas 1
check "node starts" start_node 1
check "node live" wait_live 1
make_image "$WORK/img" 256
node_bytes() { du -sb "$WORK/node1" | cut -f1; }

# Requests in flight: the node stops once it holds 16 MiB of the 192.
before=$(node_bytes)
"$CTL" -q -t 60000 image import img "$WORK/img" 2>"$WORK/import.err" &
ipid=$!
while [ $(($(node_bytes) - before)) -lt $((16 << 20)) ] && kill -0 $ipid 2>/dev/null; do
	sleep 0.05
done
kill -STOP "${NODE_PID[1]}"
sleep 5
kill -CONT "${NODE_PID[1]}"
rc=0; wait $ipid || rc=$?
sed 's/^/# /' "$WORK/import.err"
check "an import whose node stops for 5 s mid-way succeeds" test $rc -eq 0
check "... the client waited: the node was slow, not dead" \
	grep -q "is slow: no answer in" "$WORK/import.err"

# A session to open: the node is stopped before the export starts.
kill -STOP "${NODE_PID[1]}"
"$CTL" -q -t 60000 image export img "$WORK/out" 2>"$WORK/export.err" &
epid=$!
sleep 5
kill -CONT "${NODE_PID[1]}"
rc=0; wait $epid || rc=$?
sed 's/^/# /' "$WORK/export.err"
check "an export whose node is stopped for its first 5 s succeeds" test $rc -eq 0
check "... byte-exact" cmp "$WORK/img" "$WORK/out"
check "... the client waited: the node was slow, not dead" \
	grep -q "is slow: no answer in" "$WORK/export.err"

# A killed node refuses connections: given up on after one short probe,
# not after the 60 s request timeout.
kill -9 "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
rc=0; timeout 50 "$CTL" -q -t 60000 image export img "$WORK/out" 2>"$WORK/dead.err" || rc=$?
sed 's/^/# /' "$WORK/dead.err"
check "an export from a killed node fails well before its 60 s timeout" \
	test $rc -ne 0 -a $rc -ne 124
done_testing
