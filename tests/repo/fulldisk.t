#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A full disk on a storage node: its PUTs fail cleanly (ENOSPC), nothing is
# published, the node goes on serving, and the commit succeeds once there
# is room elsewhere.
set -u
. "$(dirname "$0")/lib.sh"

check "metad starts (R=2)" start_metad --replicas 2
check "node 1 starts" start_node 1
check "node 2 starts with 4 MiB of room" start_node 2 --capacity 4M
check "two nodes live" wait_live 2
make_image "$WORK/img" 32

"$CTL" -q image import img "$WORK/img" 2>"$WORK/err"
rc=$?
check "import fails" test $rc -ne 0
check "with a clear message" grep -q "No space left on device" "$WORK/err"
"$CTL" image info img >/dev/null 2>&1
check "nothing published: the import took its empty image back" test $? -eq 3
used=$("$CTL" node stat "${NODE_ADDR[2]}" | sed -n 's/^used_bytes=//p')
check "the full node stayed within its capacity" test "$used" -le $((4 << 20))
check "the full node still serves" bash -c "'$CTL' node stat ${NODE_ADDR[2]} >/dev/null"
check "a node with room joins" start_node 3
check "three nodes live" wait_live 3
check "the import now succeeds" "$CTL" -q image import img "$WORK/img"
check "and exports byte-exact" \
	bash -c "'$CTL' image export img '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
done_testing
