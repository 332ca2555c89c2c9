#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# kill -9 at the worst moments of a gc (issue 10): metad after the mark,
# metad with chunks doomed but not yet deleted, a node while the gc
# deletes.  No version loses a chunk, and the garbage goes in the end.
set -u
. "$(dirname "$0")/lib.sh"

PAUSE=$WORK/pause
metad() { start_metad --replicas 2 --repair-interval-s 0 --test-gc-pause "$PAUSE"; }
check "metad starts (R=2)" metad
for i in 1 2; do check "node $i starts" start_node $i; done
check "two nodes live" wait_live 2
paused_at() { test "$(grep -c "gc: paused at $1" "$WORK/metad.log")" -ge "$2"; }
kill_metad() { kill -KILL "$METAD_PID"; wait "$METAD_PID" 2>/dev/null; }
keep_exact() { "$CTL" -q image export keep "$WORK/keep.out" && cmp -s "$WORK/keep" "$WORK/keep.out"; }
garbage() { # garbage NAME: import 4 MiB (16 chunks) as NAME, delete it
	head -c $((4 << 20)) /dev/urandom >"$WORK/$1"
	"$CTL" -q image import "$1" "$WORK/$1" && "$CTL" image delete "$1"
}

make_image "$WORK/keep" 8
check "import keep" "$CTL" -q image import keep "$WORK/keep"
kept=$(total_chunks 1 2)

# --- metad dies after the mark
check "garbage g1" garbage g1
touch "$PAUSE.mark"
"$CTL" -t 600000 gc >/dev/null 2>&1 &
gc_pid=$!
check "gc stops after its mark" wait_until 60 paused_at mark 1
kill_metad
kill "$gc_pid" 2>/dev/null # its request has no one to answer it
wait "$gc_pid" 2>/dev/null
rm -f "$PAUSE.mark"
check "metad restarts" metad
check "nodes live" wait_live 2
check "keep byte-exact after the crash" keep_exact
check "a gc deletes g1's 16 chunks" bash -c "'$CTL' gc | grep -q '^deleted=16 '"
check "the nodes hold keep's chunks alone" test "$(total_chunks 1 2)" -eq "$kept"
check "keep byte-exact after the gc" keep_exact

# --- metad dies with chunks doomed, not yet deleted
check "garbage g2" garbage g2
touch "$PAUSE.delete"
"$CTL" -t 600000 gc >/dev/null 2>&1 &
gc_pid=$!
check "gc stops before its deletes" wait_until 60 paused_at delete 1
kill_metad
kill "$gc_pid" 2>/dev/null # its request has no one to answer it
wait "$gc_pid" 2>/dev/null
rm -f "$PAUSE.delete"
check "metad restarts" metad
finished() { grep -q "finishing the gc a crash interrupted" "$WORK/metad.log"; }
check "and finishes the interrupted gc" wait_until 30 finished
check "nodes live" wait_live 2
check "keep byte-exact after the crash" keep_exact
"$CTL" gc >"$WORK/gc2"
diag "$(cat "$WORK/gc2")"
check "the next gc ends (exit 0)" test $? -eq 0
check "the nodes hold keep's chunks alone" test "$(total_chunks 1 2)" -eq "$kept"
check "g2 is not listed" bash -c "! '$CTL' image info g2 2>/dev/null"

# --- a node dies while the gc deletes
check "garbage g3" garbage g3
touch "$PAUSE.delete"
"$CTL" -t 600000 gc >"$WORK/gc3" 2>&1 &
gc_pid=$!
check "gc stops before its deletes" wait_until 60 paused_at delete 2
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
rm -f "$PAUSE.delete"
check "gc ends (exit 0)" wait "$gc_pid"
diag "$(cat "$WORK/gc3")"
check "node 1's 16 deletes are deferred" grep -q ' deferred=16 ' "$WORK/gc3"
check "keep byte-exact with node 1 dead" keep_exact
check "node 1 restarts" start_node 1
check "two nodes live" wait_live 2
check "the next gc retries node 1's deletes" bash -c "'$CTL' gc | grep -q ' deferred=0 '"
check "the nodes hold keep's chunks alone" test "$(total_chunks 1 2)" -eq "$kept"
check "keep byte-exact at the end" keep_exact
done_testing
