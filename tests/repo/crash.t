#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Crash safety: kill -9 blobcr-metad in the middle of a publish, restart:
# the version is wholly absent (and wholly there when the publish had
# returned); kill -9 storage nodes after acknowledged PUTs, restart: every
# chunk is there; kill -9 a node during an import: the import fails over.
set -u
. "$(dirname "$0")/lib.sh"

exports_as() { "$CTL" -t 3000 image export "$1" "$WORK/x" && cmp "$2" "$WORK/x"; }
latest() { "$CTL" image info "$1" | sed -n 's/^latest=//p'; }

check "metad starts, publishes stall 3 s before commit" \
	start_metad --replicas 2 --test-publish-delay-ms 3000
for i in 1 2 3; do check "node $i starts" start_node $i; done
check "three nodes live" wait_live 3
make_image "$WORK/img" 32

"$CTL" -q -t 3000 image import img "$WORK/img" 2>"$WORK/import.err" &
imp=$!
check "the publish reached metad" wait_until 30 grep -q "test delay" "$WORK/metad.log"
kill -KILL "$METAD_PID"
wait "$METAD_PID" 2>/dev/null
wait $imp; check "the import fails when metad dies" test $? -ne 0
check "metad restarts on its database" start_metad --replicas 2
check "nodes heartbeat again" wait_live 3
check "the image exists (created before the publish)" bash -c "'$CTL' image info img >/dev/null"
check "but no version of it: the publish left no trace" test "$(latest img)" -eq 0
check "no version listed" test "$("$CTL" image versions img | wc -l)" -eq 1
check "the same content publishes now" "$CTL" -q image commit img "$WORK/img"
check "it is version 1, whole" exports_as img@1 "$WORK/img"

kill -KILL "$METAD_PID"
wait "$METAD_PID" 2>/dev/null
check "metad restarts after kill -9 once more" start_metad --replicas 2
check "nodes live" wait_live 3
check "the published version survived, whole" exports_as img@1 "$WORK/img"

# Acknowledged PUTs are durable: kill -9 every node, restart them.
for i in 1 2 3; do kill -KILL "${NODE_PID[$i]}"; wait "${NODE_PID[$i]}" 2>/dev/null; done
for i in 1 2 3; do check "node $i restarts after kill -9" start_node $i; done
check "nodes live" wait_live 3
check "every chunk survived" exports_as img "$WORK/img"

# kill -9 a node in the middle of an import: PUTs fail over to the others.
make_image "$WORK/img2" 128
"$CTL" -q -t 2000 image import img2 "$WORK/img2" 2>"$WORK/import2.err" &
imp=$!
sleep 0.5
kill -KILL "${NODE_PID[3]}"
wait "${NODE_PID[3]}" 2>/dev/null
wait $imp; rc=$?
check "the import survives a node killed under it" test $rc -eq 0
check "and exports byte-exact" exports_as img2 "$WORK/img2"
done_testing
