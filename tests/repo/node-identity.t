#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Node identity and truth (issue 10, item 2): a node wiped and restarted at
# the same address is a new, empty node (its store has a new UUID, sent in
# every heartbeat), so its lost copies are re-replicated and the death of
# the other replica loses nothing.  And metad's locations are reconciled
# with what a node really holds (its inventory).
set -u
. "$(dirname "$0")/lib.sh"
CT=$TOP/tests/repo/chunktool

exports_exact() { "$CTL" -t 3000 image export "$1" "$WORK/out" && cmp "$2" "$WORK/out"; }
repair() { "$CTL" -t 3000 node repair 2>&1 | tee "$WORK/repair"; diag "$(cat "$WORK/repair")"; }
state_of() { "$CTL" node list | awk -v id="$1" '$1 == id { print $2 }'; }
state_is() { test "$(state_of "$1")" = "$2"; }

check "metad starts (R=2, re-replication on request only)" \
	start_metad --replicas 2 --repair-interval-s 0
for i in 1 2 3; do check "node $i starts" start_node $i; done
check "three nodes live" wait_live 3
head -c $((8 << 20)) /dev/urandom >"$WORK/img"
check "import 8 MiB" "$CTL" -q image import img "$WORK/img"
n2=$(node_chunks 2)
check "node 2 holds some chunks" test "$n2" -gt 0

# Wipe node 2 and start it again at the same address.
kill -TERM "${NODE_PID[2]}"
wait "${NODE_PID[2]}"
rm -rf "$WORK/node2"
check "node 2 restarts wiped, same address" start_node 2
check "metad takes it for a new node" \
	wait_until 10 grep -q "came back with another store" "$WORK/metad.log"
check "the old node 2 is removed" test "$(state_of 2)" = removed
check "the wiped store is node 4, live" wait_until 10 state_is 4 live
repair >/dev/null
check "repair finds node 2's chunks under-replicated and copies them" \
	grep -q "under_replicated=$n2 repaired=$n2 failed=0" "$WORK/repair"
check "two copies of every chunk again" test "$(total_chunks 1 3 2)" -eq 64
check "an import of the same bytes (dedup) publishes" \
	"$CTL" -q image import twin "$WORK/img"
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
check "node 1 dies: img exports byte-exact" exports_exact img "$WORK/img"
check "and twin too" exports_exact twin "$WORK/img"
check "node 1 restarts" start_node 1
check "three live" wait_live 3

# Chunks deleted on node 3 behind metad's back, in the few seconds it was
# stopped: when it starts again (a new incarnation, even before metad
# missed it) metad compares its inventory with the locations, drops the
# copies the node confirms it lacks, and re-replication restores R.
mapfile -t ids < <("$CT" "${NODE_ADDR[3]}" list)
check "node 3 lists its chunks" test "${#ids[@]}" -eq "$(node_chunks 3)"
kill -TERM "${NODE_PID[3]}"
wait "${NODE_PID[3]}"
"$NODED" --listen "${NODE_ADDR[3]}" --data "$WORK/node3" --domain node3 \
	--key "$KEYS/node3.key" >>"$WORK/node3-alone.log" 2>&1 &
alone=$!
wait_until 10 "$CTL" node stat "${NODE_ADDR[3]}"
check "delete 5 of them on node 3, metad unaware" \
	env BLOBCR_KEY="$KEYS/metad.key" "$CT" "${NODE_ADDR[3]}" delete "${ids[@]:0:5}"
kill -TERM $alone
wait $alone
check "node 3 rejoins" start_node 3
check "metad checks its inventory and drops the 5 copies it lacks" \
	wait_until 15 grep -q "inventory of node 3: 5 copies missing (5 dropped)" \
	"$WORK/metad.log"
repair >/dev/null
check "repair copies those 5 chunks" \
	grep -q "under_replicated=5 repaired=5 failed=0" "$WORK/repair"
check "two copies of every chunk" test "$(total_chunks 1 2 3)" -eq 64
kill -KILL "${NODE_PID[3]}"
wait "${NODE_PID[3]}" 2>/dev/null
check "node 3 dies: img exports byte-exact" exports_exact img "$WORK/img"
done_testing
