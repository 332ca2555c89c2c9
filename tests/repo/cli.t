#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The command line's rough edges (issue 10, item 12): a commit of a file of
# another size, a garbage --meta, a version with a space, a missing image,
# a bad extent size; and a node killed under an export costs one short
# probe, not the whole request timeout.
set -u
. "$(dirname "$0")/lib.sh"

latest() { "$CTL" image info "$1" | sed -n 's/^latest=//p'; }

check "metad starts (R=2)" start_metad --replicas 2 --repair-interval-s 0
for i in 1 2 3; do check "node $i starts" start_node $i; done
check "three nodes live" wait_live 3
make_image "$WORK/img" 16
check "import img (16 MiB)" "$CTL" -q image import img "$WORK/img"

head -c $((12 << 20)) "$WORK/img" >"$WORK/short"
"$CTL" image commit img "$WORK/short" 2>"$WORK/err"
check "commit of a 12 MiB file to a 16 MiB image: exit 2" test $? -eq 2
check "saying the sizes" grep -q "is 12582912 bytes, image img 16777216" "$WORK/err"
check "nothing published" test "$(latest img)" -eq 1

"$CTL" -m garbage image list 2>"$WORK/err"
check "--meta garbage: exit 2" test $? -eq 2
check "saying what an address is" grep -q "not a version manager address (tcp://HOST:PORT)" "$WORK/err"
"$CTL" -m tcp://no-port image list 2>/dev/null
check "--meta without a port: exit 2" test $? -eq 2

"$CTL" image export "img@ 1" "$WORK/out" 2>"$WORK/err"
check "img@' 1' is no version: exit 2" test $? -eq 2
check "saying the form" grep -q "is not NAME or NAME@VERSION" "$WORK/err"

"$CTL" image info nosuch 2>"$WORK/err"
check "a missing image: exit 3" test $? -eq 3
check "reads 'not found', not a file error" \
	bash -c "grep -q 'image nosuch: not found' '$WORK/err' && ! grep -q 'No such file' '$WORK/err'"

"$CTL" image import --extent-size 3000 odd "$WORK/img" 2>"$WORK/err"
check "--extent-size 3000: exit 2" test $? -eq 2
check "saying the rule" grep -q "a power of two from 4K to 4M" "$WORK/err"
"$CTL" image info odd >/dev/null 2>&1
check "and no image made" test $? -eq 3

# Node 1 killed: metad still counts it live for seconds, the export hits
# it.  With a 10-minute request timeout, a dead node must cost one short
# probe: the export ends long before the timeout would.
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
timeout 120 "$CTL" -t 600000 image export img "$WORK/out" 2>"$WORK/err"
check "export right after a node's death, 10-minute timeout, ends within 2 minutes" \
	test $? -eq 0
check "byte-exact" cmp "$WORK/img" "$WORK/out"
check "the node was probed, not waited for" grep -q "refuses connections" "$WORK/err"
done_testing
