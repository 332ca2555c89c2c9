#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# node compact reclaims every dead byte (issue 10, item 6): the open
# segment's too, and segments still more than half live, not only the
# mostly dead ones the background compaction picks.
set -u
. "$(dirname "$0")/lib.sh"

check "metad starts (R=1)" start_metad --replicas 1 --repair-interval-s 0
check "node starts" start_node 1
check "node live" wait_live 1
stat_of() { "$CTL" node stat "${NODE_ADDR[1]}" | sed -n "s/^$1=//p"; }
REC=$((262144 + 48)) # a 256 KiB chunk's record

head -c $((8 << 20)) /dev/urandom >"$WORK/x"
head -c $((4 << 20)) /dev/urandom >"$WORK/y"
check "import x (32 chunks)" "$CTL" -q image import x "$WORK/x"
check "import y (16 chunks)" "$CTL" -q image import y "$WORK/y"
check "delete y" "$CTL" image delete y
check "gc deletes y's 16 chunks" bash -c "'$CTL' gc | grep -q '^deleted=16 '"
used=$(stat_of used_bytes) live=$(stat_of live_bytes)
diag "before compaction: used_bytes=$used live_bytes=$live"
check "the node holds 32 live chunks" test "$live" -eq $((32 * REC))
check "and 16 dead ones" test "$used" -eq $((48 * REC))
check "node compact" "$CTL" node compact "${NODE_ADDR[1]}"
used=$(stat_of used_bytes)
diag "after compaction: used_bytes=$used"
check "compaction reclaimed every dead byte" test "$used" -eq $((32 * REC))
check "x exports byte-exact" "$CTL" -q image export x "$WORK/x.out"
check "x's bytes" cmp "$WORK/x" "$WORK/x.out"
check "a new import after compaction" "$CTL" -q image import y2 "$WORK/y"
check "y2 exports byte-exact" "$CTL" -q image export y2 "$WORK/y.out"
check "y2's bytes" cmp "$WORK/y" "$WORK/y.out"
done_testing
