#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# After a start, gc deletes nothing for --gc-start-wait-s (default: the
# grace period, an hour): a commit from before the start may still count
# on what it found.  A gc meanwhile says so, in metad's log, rather than
# leaving the operator to wonder why the garbage stays; once metad runs
# without that wait, the same gc deletes it.
set -u
. "$(dirname "$0")/lib.sh"

check "metad starts with the default wait of an hour" \
	start_metad --replicas 1 --gc-start-wait-s 3600
check "node 1 starts" start_node 1
check "node live" wait_live 1
head -c $((4 << 20)) /dev/urandom >"$WORK/g"
check "import g (16 chunks), delete it" \
	bash -c "'$CTL' -q image import g '$WORK/g' && '$CTL' image delete g"
"$CTL" gc >"$WORK/gc1"
diag "$(cat "$WORK/gc1")"
check "gc deletes nothing yet: 16 spared" grep -q '^deleted=0 .* spared=16$' "$WORK/gc1"
check "and metad says why" grep -q "gc: metad started [0-9]* s ago: what no version needs stays until --gc-start-wait-s (3600 s) is over" "$WORK/metad.log"
kill -TERM "$METAD_PID"
wait "$METAD_PID"
check "metad restarts without the wait" start_metad --replicas 1
check "node live" wait_live 1
"$CTL" gc >"$WORK/gc2"
diag "$(cat "$WORK/gc2")"
check "gc deletes the 16 chunks" grep -q '^deleted=16 ' "$WORK/gc2"
check "node 1 holds none" test "$(node_chunks 1)" -eq 0
done_testing
