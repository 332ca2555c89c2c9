#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Node decommission (drain, then remove) and extra copies trimmed
# (issue 10): a drained node's copies move elsewhere, it can be removed
# only once nothing needs it; copies beyond R (a dead node come back after
# its chunks were re-replicated) are deleted by gc.
set -u
. "$(dirname "$0")/lib.sh"

exports_exact() { "$CTL" -t 3000 image export img "$WORK/out" && cmp "$WORK/img" "$WORK/out"; }
state_of() { "$CTL" node list | awk -v id="$1" '$1 == id { print $2 }'; }
copies() { total_chunks 1 2 3; }
moved_off_2() { test "$(total_chunks 1 3)" -eq 64; }

check "metad starts (R=2, re-replication every second)" \
	start_metad --replicas 2 --repair-interval-s 1
for i in 1 2 3; do check "node $i starts" start_node $i; done
check "three nodes live" wait_live 3
head -c $((8 << 20)) /dev/urandom >"$WORK/img"
check "import 8 MiB at R=2" "$CTL" -q image import img "$WORK/img"
n2=$(node_chunks 2)

"$CTL" node remove 2 2>"$WORK/err"
check "remove before drain: refused, exit 4" test $? -eq 4
check "saying what to do" grep -q "drain it, run node repair" "$WORK/err"
check "node 2 still live" test "$(state_of 2)" = live
check "drain node 2" "$CTL" node drain 2
check "node list shows it draining" test "$(state_of 2)" = draining
check "metad copies node 2's chunks to nodes 1 and 3" wait_until 30 moved_off_2
head -c $((2 << 20)) /dev/urandom >"$WORK/other"
check "import of 2 MiB more while node 2 drains" "$CTL" -q image import other "$WORK/other"
check "a draining node takes no new copy" test "$(node_chunks 2)" -eq "$n2"
check "remove node 2" "$CTL" node remove 2
check "node list shows it removed" test "$(state_of 2)" = removed
check "metad forgets its locations" wait_until 10 \
	grep -q "removed node 2: $n2 locations forgotten" "$WORK/metad.log"
check "node 2's copies all have their two elsewhere" \
	test "$(total_chunks 1 3)" -eq 80
kill -TERM "${NODE_PID[2]}"
wait "${NODE_PID[2]}"
check "export byte-exact without node 2" exports_exact
"$CTL" node undrain 2 2>/dev/null
check "a removed node cannot be undrained: exit 3" test $? -eq 3
check "a removed node restarted is refused" start_node 2
check "it says so" wait_until 10 grep -q "removed from the repository" "$WORK/node2.log"
kill -TERM "${NODE_PID[2]}"
wait "${NODE_PID[2]}"

# Extra copies: node 3 dies, metad restores R on node 1 and a new node 4,
# node 3 comes back with its old copies: gc trims what R does not need.
check "node 4 starts" start_node 4
check "three live" wait_live 3
n3=$(node_chunks 3)
kill -KILL "${NODE_PID[3]}"
wait "${NODE_PID[3]}" 2>/dev/null
# 40 chunks now (img and other), 80 copies.
r1() { test "$(total_chunks 1 4)" -eq 80; }
check "metad restores R on nodes 1 and 4" wait_until 40 r1
check "node 3 comes back with its copies" start_node 3
check "three live" wait_live 3
check "its $n3 copies are extra now" test "$(total_chunks 1 3 4)" -eq $((80 + n3))
"$CTL" gc >"$WORK/gc"
diag "$(cat "$WORK/gc")"
check "gc trims $n3 copies" grep -q "trimmed=$n3 " "$WORK/gc"
check "two copies of every chunk again" test "$(total_chunks 1 3 4)" -eq 80
check "export byte-exact" exports_exact
done_testing
