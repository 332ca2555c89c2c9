#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Bad copies (issue 10, item 3): a reply damaged on the wire is caught by
# its frame CRC and blamed on nobody; a client's report alone drops no
# copy, the node must confirm it; a copy the node confirms bad is dropped
# and re-replicated by metad without any node being dead; a chunk's last
# location is never dropped, so a lost chunk stays visible as lost.
set -u
. "$(dirname "$0")/lib.sh"
CT=$TOP/tests/repo/chunktool
TAP=$TOP/tests/repo/wiretap

exports_exact() { "$CTL" -t 3000 image export "$1" "$WORK/out" 2>>"$WORK/export.err" &&
		  cmp "$2" "$WORK/out"; }
repair() { "$CTL" -t 3000 node repair >"$WORK/repair" 2>&1; diag "$(tail -n 1 "$WORK/repair")"; }
copies() { total_chunks 1 2 3; }
all_copies() { test "$(copies)" -eq 64; }
# corrupt_segments DIR: flip a byte in every record of the node's segments
corrupt_segments() {
	local seg
	for seg in "$1"/seg-*.dat; do rot_records "$seg"; done
}

check "metad starts (R=2, re-replication every second)" \
	start_metad --replicas 2 --repair-interval-s 1
# Node 3 is reached through a relay that damages its first 2 large replies.
port3=$(free_port)
tap=$(free_port)
NODE_ADDR[3]=tcp://127.0.0.1:$port3
"$TAP" "$tap" "$port3" 2 2>"$WORK/wiretap.log" &
tap_pid=$!
PIDS="$PIDS $tap_pid"
for i in 1 2; do check "node $i starts" start_node $i; done
check "node 3 starts behind the relay" start_node 3 --advertise "tcp://127.0.0.1:$tap"
check "three nodes live" wait_live 3
head -c $((8 << 20)) /dev/urandom >"$WORK/img"
check "import 8 MiB at R=2" "$CTL" -q image import img "$WORK/img"

check "export byte-exact through the damaging relay" exports_exact img "$WORK/img"
check "the relay damaged replies" grep -q "flipped a byte" "$WORK/wiretap.log"
check "the client caught them by their CRC" \
	grep -q "GETV reply from node 3 damaged (malformed message)" "$WORK/export.err"
check "nobody reported a bad copy" bash -c "! grep -q 'reported bad' '$WORK/metad.log'"
repair
check "no copy was dropped: nothing under-replicated" \
	grep -q "under_replicated=0 " "$WORK/repair"
# Node 3 moves to its own address, without the relay: same store, same node.
kill -TERM "$tap_pid" "${NODE_PID[3]}"
wait "$tap_pid" "${NODE_PID[3]}" 2>/dev/null
check "node 3 restarts at its own address" start_node 3
check "metad knows it as node 3 at the new address" \
	wait_until 10 grep -q "node 3 is at ${NODE_ADDR[3]}" "$WORK/metad.log"
check "three live" wait_live 3

# A client's word alone: reports of good copies are checked with their
# nodes (the chunk of extent 0, reported bad on every node).
id=$(head -c 262144 "$WORK/img" | sha256sum | cut -d' ' -f1)
for i in 1 2 3; do
	check "a client reports node $i's copy of extent 0's chunk bad" \
		"$CT" "$META" suspect "$id" $i
done
vouched() { test "$(grep -c "checked 1 suspected copies: 1 good" "$WORK/metad.log")" -eq 2; }
check "metad asks the nodes: its two holders vouch for it" wait_until 10 vouched
repair
check "the copies are kept" grep -q "under_replicated=0 " "$WORK/repair"
check "every chunk still has two copies" test "$(copies)" -eq 64
check "export byte-exact" exports_exact img "$WORK/img"

# Copies rotten on node 2's disk: a read finds them, node 2 confirms,
# metad drops them and re-replicates on its own (no node is dead).
n2=$(node_chunks 2)
corrupt_segments "$WORK/node2"
check "export byte-exact despite node 2's rotten copies" exports_exact img "$WORK/img"
check "node 2 found them on read" grep -q "is corrupt in segment" "$WORK/node2.log"
check "node 2 reported them itself" wait_until 10 grep -q "reported .* bad chunks to metad" "$WORK/node2.log"
check "metad dropped those copies" wait_until 10 grep -q "node 2 found .* bad chunks" "$WORK/metad.log"
check "metad re-replicated them by itself" wait_until 30 all_copies
check "node 2 holds only good copies" \
	test "$(node_chunks 2)" -le "$n2"
check "no node was dead meanwhile" bash -c "! grep -q 'is live' <(sed -n '/found .* bad chunks/,\$p' '$WORK/metad.log')"
check "a second export is clean" exports_exact img "$WORK/img"

# The last copy: R=1 on one node, its only copy rots.
kill -TERM $PIDS 2>/dev/null
wait 2>/dev/null
unset META META_DIR NODE_ADDR NODE_PID
declare -a NODE_ADDR NODE_PID
PIDS=""
META_DIR=$WORK/meta-r1
check "a fresh repository at R=1" start_metad --replicas 1 --repair-interval-s 0
rm -rf "$WORK/node1"
check "one node" start_node 1
check "it is live" wait_live 1
head -c $((1 << 20)) /dev/urandom >"$WORK/solo"
check "import 1 MiB (4 chunks, one copy each)" "$CTL" -q image import solo "$WORK/solo"
corrupt_segments "$WORK/node1"
"$CTL" -t 3000 image export solo "$WORK/out" 2>/dev/null
check "the export fails: exit 1 (corrupt)" test $? -eq 1
# the four chunks, each once (a node's report and a client's may both come)
lost_logged() {
	test "$(grep "its last copy, on node 1, is bad or missing; location kept" \
		"$WORK/metad.log" | sed 's/.*chunk \([0-9a-f]*\):.*/\1/' | sort -u | wc -l)" -eq 4
}
check "metad keeps the last locations, of all four" wait_until 10 lost_logged
repair
check "repair sees the 4 chunks, lost: exit 5" \
	grep -q "under_replicated=4 repaired=0 failed=4 lost=4" "$WORK/repair"
done_testing
