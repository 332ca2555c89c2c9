#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# R=2 over three nodes: kill -9 one node, the export is still byte-exact;
# re-replication restores R.  Flipped bytes in a segment file: detected,
# served from the other replica, reported (metad drops the location, repair
# makes a new copy).
set -u
. "$(dirname "$0")/lib.sh"

repair_field() { "$CTL" -t 3000 node repair | sed -n "s/.*$1=\([0-9]*\).*/\1/p"; }
exports_exact() { "$CTL" -t 3000 image export img "$WORK/out" && cmp "$WORK/img" "$WORK/out"; }

check "metad starts (re-replication on request only)" \
	start_metad --replicas 2 --repair-interval-s 0
for i in 1 2 3; do check "node $i starts" start_node $i; done
check "three nodes live" wait_live 3
make_image "$WORK/img" 64
check "import 64 MiB at R=2" "$CTL" -q image import img "$WORK/img"
n2=$(node_chunks 2)

kill -KILL "${NODE_PID[2]}"
wait "${NODE_PID[2]}" 2>/dev/null
check "export byte-exact with node 2 killed (-9)" exports_exact
check "metad declares node 2 dead" wait_live 2
check "repair copies node 2's chunks" test "$(repair_field repaired)" -eq "$n2"
check "nothing under-replicated any more" test "$(repair_field under_replicated)" -eq 0
check "two live copies of every chunk" test "$(total_chunks 1 3)" -eq $((48 * 4 * 2))
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
check "export byte-exact from node 3 alone" exports_exact

# Node 2 comes back with its old data: it serves again.
check "node 2 restarts on its data" start_node 2
check "node 2 live again" wait_live 2
check "node 2 kept its chunks over kill -9" test "$(node_chunks 2)" -eq "$n2"

# Corrupt every record of node 3's first segment (one byte each, past the
# 48-byte record header): reads detect it, fail over to node 2 or 1.
check "node 1 restarts" start_node 1
check "three live" wait_live 3
rot_records "$(ls "$WORK"/node3/seg-*.dat | head -n 1)"
check "export byte-exact despite corruption" exports_exact
corrupt=$("$CTL" node stat "${NODE_ADDR[3]}" | sed -n 's/^corrupt=//p')
check "node 3 counted corrupt reads" test "$corrupt" -gt 0
check "node 3 logged them" grep -q "is corrupt in segment" "$WORK/node3.log"
check "metad recorded the reports" grep -q "reported bad on node 3" "$WORK/metad.log"
rep=$("$CTL" -t 3000 node repair 2>&1)
diag "node 3 corrupt reads: $corrupt; repair: $rep"
check "repair re-replicates the dropped copies" \
	bash -c "echo '$rep' | grep -q 'failed=0'"
check "nothing under-replicated after repair" test "$(repair_field under_replicated)" -eq 0
check "a second export is clean too" exports_exact

check "no corrupt copy is read again" test \
	"$("$CTL" node stat "${NODE_ADDR[3]}" | sed -n 's/^corrupt=//p')" -eq "$corrupt"
# Without an operator: metad re-replicates by itself once a node is dead
# (node 3, whose other corrupt records would otherwise be the last copies).
kill -TERM "$METAD_PID"; wait "$METAD_PID"
check "metad restarts with re-replication every second" \
	start_metad --replicas 2 --repair-interval-s 1
check "three live" wait_live 3
kill -KILL "${NODE_PID[3]}"
wait "${NODE_PID[3]}" 2>/dev/null
fully_replicated() { test "$(total_chunks 1 2)" -eq $((48 * 4 * 2)); }
check "metad restores R=2 on nodes 1 and 2 by itself" wait_until 30 fully_replicated
check "metad logged it" wait_until 10 grep -q "re-replication: .* repaired" "$WORK/metad.log"
check "and the export is byte-exact" exports_exact
done_testing
