#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# kill -9 during a scrub (issue 10), at moments counted in chunks
# (--test-scrub-pause), not in time: a node in the middle of a sound pass;
# a node that has just dropped a rotten chunk from its index and not yet
# told metad; metad once it was told, before it re-replicated.  After each
# restart no copy is lost for good: every chunk is back on two nodes and
# every export is byte-exact.
#
# Nodes 1 and 2 share a failure domain, so node 3 holds a copy of every
# chunk, before and after each re-replication: the rounds below always
# find the chunks they count on it.
set -u
. "$(dirname "$0")/lib.sh"

stat_of() { "$CTL" node stat "${NODE_ADDR[$1]}" | sed -n "s/^$2=//p"; }
all_copies() { test "$(total_chunks 1 2 3)" -eq 64; }
holds_all() { test "$(node_chunks 3)" -eq 32; }
exports_exact() { "$CTL" -t 3000 image export img "$WORK/out" && cmp -s "$WORK/img" "$WORK/out"; }
paused_at() { grep -q "scrub: paused after $1 chunks$2" "$WORK/node3.log"; }
kill_node3() { kill -KILL "${NODE_PID[3]}"; wait "${NODE_PID[3]}" 2>/dev/null; }
kill_metad() { kill -KILL "$METAD_PID"; wait "$METAD_PID" 2>/dev/null; }
# the log of node 3's round k only: earlier rounds' pauses do not count
new_round() { mv "$WORK/node3.log" "$WORK/node3.log.$1"; }

check "metad starts (R=2, re-replication every second)" \
	start_metad --replicas 2 --repair-interval-s 1
check "node 1 starts" start_node 1 --domain pair
check "node 2 starts" start_node 2 --domain pair
check "node 3 starts" start_node 3
check "three nodes live" wait_live 3
# metad numbers nodes in the order they register
node3_id() {
	sed -n 's/.* registered with .* as node \([0-9]*\) in .*/\1/p' \
		"$WORK/node3.log" | tail -n 1
}
registered() { test -n "$(node3_id)"; }
check "node 3 registered" wait_until 10 registered
id3=$(node3_id)
head -c $((8 << 20)) /dev/urandom >"$WORK/img"
check "import 8 MiB at R=2: 64 copies" "$CTL" -q image import img "$WORK/img"
check "64 copies" all_copies
n3=$(node_chunks 3)
check "node 3 holds a copy of each of the 32 chunks" holds_all

# --- node 3 killed in the middle of a sound pass, at its first chunk and
# half way through
for at in 1 $((n3 / 2)); do
	kill -TERM "${NODE_PID[3]}"
	wait "${NODE_PID[3]}"
	new_round "sound$at"
	start_node 3 --scrub-mb-s 64 --test-scrub-pause "$at"
	check "node 3's scrub stops after $at of $n3 chunks" wait_until 60 paused_at "$at" ""
	kill_node3
	check "node 3 restarts after kill -9, scrubbing" start_node 3 --scrub-mb-s 64
	check "three nodes live" wait_live 3
	check "node 3 still holds its $n3 chunks" test "$(node_chunks 3)" -eq "$n3"
	passed() { test "$(stat_of 3 scrub_passes)" -ge 1; }
	check "a whole pass" wait_until 60 passed
	check "finds them sound" test "$(stat_of 3 corrupt)" -eq 0
	check "export byte-exact" exports_exact
done

# --- rot on node 3, killed after it dropped a bad copy, before it told
# metad: metad learns it from node 3's inventory when it comes back.
for at in 1 $((n3 / 2)); do
	kill -TERM "${NODE_PID[3]}"
	wait "${NODE_PID[3]}"
	for f in "$WORK"/node3/seg-*.dat; do rot_records "$f"; done
	new_round "rot$at"
	start_node 3 --scrub-mb-s 64 --test-scrub-pause "$at"
	check "node 3 drops its bad chunk $at and stops, not reporting it" \
		wait_until 60 paused_at "$at" ", a bad one dropped, not reported"
	kill_node3
	check "node 3 restarts after kill -9, scrubbing" start_node 3 --scrub-mb-s 64
	check "every chunk back on two nodes" wait_until 60 all_copies
	check "export byte-exact" exports_exact
	check "node 3 holds its $n3 chunks again" wait_until 60 holds_all
done

# --- metad killed once node 3 reported its bad copies, before any
# re-replication (metad runs none by itself meanwhile).
kill_metad
check "metad restarts, re-replicating only on request" \
	start_metad --replicas 2 --repair-interval-s 0
check "three nodes live" wait_live 3
kill -TERM "${NODE_PID[3]}"
wait "${NODE_PID[3]}"
for f in "$WORK"/node3/seg-*.dat; do rot_records "$f"; done
new_round report
reports() { grep -c "node $id3 found .* bad chunks" "$WORK/metad.log"; }
before=$(reports)
reported() { test "$(reports)" -gt "$before"; }
check "node 3 restarts, scrubbing" start_node 3 --scrub-mb-s 64
check "node 3 reports its bad copies" wait_until 60 reported
check "which metad has not copied yet" test "$(total_chunks 1 2 3)" -lt 64
kill_metad
check "metad restarts after kill -9, re-replicating every second" \
	start_metad --replicas 2 --repair-interval-s 1
check "every chunk back on two nodes" wait_until 60 all_copies
check "export byte-exact" exports_exact
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
check "node 1 dies: export byte-exact from nodes 2 and 3" exports_exact
done_testing
