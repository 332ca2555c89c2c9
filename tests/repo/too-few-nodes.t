#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fewer live storage nodes than R: import and commit fail with exit status 5
# and publish nothing, whether metad has noticed the dead nodes yet or not
# (issue 10, item 1: they used to exit 0 and publish a version of zeros).
set -u
. "$(dirname "$0")/lib.sh"

latest() { "$CTL" image info "$1" | sed -n 's/^latest=//p'; }
published() { grep -c "published $1@" "$WORK/metad.log"; }

check "metad starts (R=2)" start_metad --replicas 2 --repair-interval-s 0
for i in 1 2 3; do check "node $i starts" start_node $i; done
check "three nodes live" wait_live 3
head -c $((2 << 20)) /dev/urandom >"$WORK/base"
check "import of base while all live" "$CTL" -q image import base "$WORK/base"
# Fresh bytes from here on: no dedup against copies on the nodes killed.
head -c $((2 << 20)) /dev/urandom >"$WORK/img"

# Two of three killed: metad still counts them live for a few seconds.
for i in 1 2; do kill -KILL "${NODE_PID[$i]}"; wait "${NODE_PID[$i]}" 2>/dev/null; done
"$CTL" -t 3000 image import lone "$WORK/img" 2>"$WORK/err"
check "import with 1 of 3 nodes alive, before metad noticed: exit 5" test $? -eq 5
diag "$(tail -n 1 "$WORK/err")"
check "it says why" grep -q "not enough live storage nodes" "$WORK/err"
"$CTL" image info lone >/dev/null 2>&1
check "no image lone left behind" test $? -eq 3
check "metad published nothing for it" test "$(published lone)" -eq 0
head -c $((2 << 20)) /dev/urandom >"$WORK/img2"
"$CTL" -t 3000 image commit base "$WORK/img2" 2>/dev/null
check "commit to base: exit 5" test $? -eq 5
check "base still at version 1" test "$(latest base)" -eq 1

# Once metad has declared them dead, the same.
check "metad declares the two dead" wait_live 1
"$CTL" image import lone "$WORK/img" 2>/dev/null
check "import after metad noticed: exit 5" test $? -eq 5
"$CTL" image commit base "$WORK/img2" 2>/dev/null
check "commit after metad noticed: exit 5" test $? -eq 5
check "base still at version 1" test "$(latest base)" -eq 1
check "and no publish of either reached metad" \
	test "$(published lone)" -eq 0 -a "$(published base)" -eq 1

# A node comes back: R=2 can be met again.
check "node 1 restarts" start_node 1
check "two live" wait_live 2
check "the import succeeds now" "$CTL" -q image import lone "$WORK/img"
check "and exports byte-exact" \
	bash -c "'$CTL' image export lone '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
done_testing
