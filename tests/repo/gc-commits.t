#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# gc and commits at once (issue 10, items 6 and 7), stopped at its worst
# moments by metad's --test-gc-pause hook:
#  - a version published between the gc's mark and its sweep keeps every
#    chunk (the mark did not see it);
#  - a commit that finds chunks a gc is deleting waits, then uploads them
#    afresh: it never fails;
#  - chunks of a commit that never publishes (strays) are collected once
#    the grace period is over, not before.
set -u
. "$(dirname "$0")/lib.sh"

PAUSE=$WORK/pause
check "metad starts (R=2)" start_metad --replicas 2 --repair-interval-s 0 \
	--reconcile-interval-s 1 --gc-grace-s 20 --test-gc-pause "$PAUSE"
for i in 1 2; do check "node $i starts" start_node $i; done
check "two nodes live" wait_live 2

paused_at() { test "$(grep -c "gc: paused at $1" "$WORK/metad.log")" -ge "$2"; }

# --- a publish between the mark and the sweep
head -c $((4 << 20)) /dev/urandom >"$WORK/a"
check "import a" "$CTL" -q image import a "$WORK/a"
check "delete a: its 16 chunks become garbage" "$CTL" image delete a
touch "$PAUSE.mark"
"$CTL" -t 600000 gc >"$WORK/gc1" 2>&1 &
gc_pid=$!
check "gc stops after its mark" wait_until 60 paused_at mark 1
check "import the same bytes as b (dedup against the garbage)" \
	"$CTL" -q image import b "$WORK/a"
rm -f "$PAUSE.mark"
check "gc ends" wait "$gc_pid"
diag "$(cat "$WORK/gc1")"
check "gc deleted none of b's chunks" grep -q '^deleted=0 ' "$WORK/gc1"
check "b exports byte-exact" "$CTL" -q image export b "$WORK/b.out"
check "b's bytes" cmp "$WORK/a" "$WORK/b.out"
check "a second gc deletes nothing either" \
	bash -c "'$CTL' gc | grep -q '^deleted=0 '"
check "b exports byte-exact again" "$CTL" -q image export b "$WORK/b.out2"
check "b's bytes again" cmp "$WORK/a" "$WORK/b.out2"

# --- a commit meets chunks a gc is deleting
head -c $((4 << 20)) /dev/urandom >"$WORK/c"
check "import c" "$CTL" -q image import c "$WORK/c"
check "delete c" "$CTL" image delete c
touch "$PAUSE.delete"
"$CTL" -t 600000 gc >"$WORK/gc2" 2>&1 &
gc_pid=$!
check "gc stops before its deletes" wait_until 60 paused_at delete 1
"$CTL" -q image import d "$WORK/c" 2>"$WORK/d.err" &
imp_pid=$!
sleep 1
check "the import of the same bytes waits for the gc" kill -0 "$imp_pid"
rm -f "$PAUSE.delete"
check "gc ends" wait "$gc_pid"
diag "$(cat "$WORK/gc2")"
check "gc deleted c's 16 chunks" grep -q '^deleted=16 ' "$WORK/gc2"
check "the import succeeds (exit 0)" wait "$imp_pid"
check "d exports byte-exact" "$CTL" -q image export d "$WORK/d.out"
check "d's bytes" cmp "$WORK/c" "$WORK/d.out"
check "two copies of d's 16 chunks and b's 16 on the nodes" \
	test "$(total_chunks 1 2)" -eq 64

# --- a commit that never publishes
truncate -s 32M "$WORK/empty"
check "import an empty image e" "$CTL" -q image import e "$WORK/empty"
before=$(total_chunks 1 2)
check "a commit uploads 128 chunks to e and dies unpublished" \
	"$TOP/tests/repo/gcrace" "$META" --abandon e
check "its 256 copies are on the nodes" \
	test "$(total_chunks 1 2)" -eq $((before + 256))
"$CTL" gc >"$WORK/gc3"
diag "$(cat "$WORK/gc3")"
check "a gc within the grace period spares them" \
	grep -q ' strays=0 ' "$WORK/gc3"
check "and they stay" test "$(total_chunks 1 2)" -eq $((before + 256))
strays_seen() { grep -q "256 strays\|128 strays" "$WORK/metad.log"; }
check "the inventories report them as strays" wait_until 60 strays_seen
sleep 21 # past --gc-grace-s 20 since the strays were seen
"$CTL" gc >"$WORK/gc4"
diag "$(cat "$WORK/gc4")"
check "a gc after the grace period deletes their 256 copies" \
	grep -q ' strays=256 ' "$WORK/gc4"
check "the nodes hold what they held before the commit" \
	test "$(total_chunks 1 2)" -eq "$before"
check "b exports byte-exact after all that" "$CTL" -q image export b "$WORK/b.out3"
check "b's bytes at the end" cmp "$WORK/a" "$WORK/b.out3"
check "d exports byte-exact after all that" "$CTL" -q image export d "$WORK/d.out3"
check "d's bytes at the end" cmp "$WORK/c" "$WORK/d.out3"
done_testing
