#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Import then export a 256 MiB image with random content and holes, R=2 over
# three storage nodes: byte-exact; holes stored as nothing; dedup by content;
# the CLI's exit statuses and --help.
set -u
. "$(dirname "$0")/lib.sh"

check "metad starts" start_metad
for i in 1 2 3; do check "node $i starts" start_node $i; done
check "three nodes live" wait_live 3

make_image "$WORK/img" 256
check "import 256 MiB" "$CTL" -q image import big "$WORK/img"
check "export is byte-exact" \
	bash -c "'$CTL' image export big '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
# 192 MiB of data in 256 KiB chunks, two replicas each; holes cost nothing
check "holes stored as nothing, R=2 copies of the rest" \
	test "$(total_chunks 1 2 3)" -eq $((192 * 4 * 2))
check "exported holes are holes" \
	test "$(du -k "$WORK/out" | cut -f1)" -lt $((200 * 1024))

# The same content again: stored once.
before=$(total_chunks 1 2 3)
check "import of identical content" "$CTL" -q image import twin "$WORK/img"
check "dedup: no new chunks" test "$(total_chunks 1 2 3)" -eq "$before"
check "export of an @version" \
	bash -c "'$CTL' image export twin@1 '$WORK/out2' && cmp '$WORK/img' '$WORK/out2'"

# A short last extent round-trips exactly.
head -c 1000000 /dev/urandom >"$WORK/odd"
check "import of a size that is not a multiple of the extent" \
	"$CTL" -q image import odd "$WORK/odd"
check "odd size export is byte-exact" \
	bash -c "'$CTL' image export odd '$WORK/odd.out' && cmp '$WORK/odd' '$WORK/odd.out'"

# Exit statuses a script can rely on.
"$CTL" image export nosuch "$WORK/x" 2>/dev/null; check "missing image: exit 3" test $? -eq 3
"$CTL" -q image import big "$WORK/img" 2>/dev/null; check "existing name: exit 4" test $? -eq 4
"$CTL" image frobnicate 2>/dev/null; check "unknown verb: exit 2" test $? -eq 2
"$CTL" -m tcp://127.0.0.1:1 -t 300 image list 2>/dev/null; check "no metad: exit 5" test $? -eq 5
env -u BLOBCR_META "$CTL" image list 2>/dev/null; check "no address: exit 2" test $? -eq 2
for v in "image import" "image export" "image commit" "image list" "image info" \
	 "image versions" "image clone" "image delete" "group publish" \
	 "group list" gc \
	 "node list" "node repair" "node stat" "node compact" "node drain" \
	 "node undrain" "node remove"; do
	check "$v --help" bash -c "'$CTL' $v --help | grep -q Usage"
done
check "daemon --help" bash -c "'$NODED' --help | grep -q Usage && '$METAD' --help | grep -q Usage"
check "image list shows both" bash -c "'$CTL' image list | grep -q '^twin '"
# A progress bar on a terminal, none otherwise.
check "export draws a progress bar on a terminal" \
	bash -c "script -qec \"'$CTL' image export odd '$WORK/tty.out'\" /dev/null | grep -q '100%'"
check "and none when stderr is not a terminal" \
	bash -c "test -z \"\$('$CTL' image export odd '$WORK/tty.out' 2>&1)\""

# Clean SIGTERM shutdown.
kill -TERM "${NODE_PID[3]}"
check "node exits 0 on SIGTERM" wait "${NODE_PID[3]}"
check "node logged its stop" grep -q stopped "$WORK/node3.log"
kill -TERM "$METAD_PID"
check "metad exits 0 on SIGTERM" wait "$METAD_PID"
check "metad logged its stop" grep -q stopped "$WORK/metad.log"
done_testing
