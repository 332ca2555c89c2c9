#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A commit reads and hashes its next batch while the previous one uploads
# (blobcr_commit_overlap(), which image import and blobcrd use): with the
# only node stopped, an import of 96 MiB (72 MiB of data: batches of
# 32 MiB fill at 43 and 85 MiB of the file) reads past 64 MiB while its
# first upload waits; the import then succeeds, byte-exact, with an extent
# of the third batch deduplicated against one of the first.  An upload that
# fails while the next batch is read fails the import, and nothing is
# published.  Bounded by bytes read, not by time: the waits only end a
# failing run.
set -u
. "$(dirname "$0")/lib.sh"
export DEAD_AFTER_MS=600000 # metad must not take the stopped node for dead
MIB=$((1 << 20))

check "metad starts" start_metad --replicas 1
check "node starts" start_node 1
check "node live" wait_live 1
make_image "$WORK/img" 96
# Extent 330 (MiB 82, data) becomes a copy of extent 0.
dd if="$WORK/img" of="$WORK/img" bs=262144 count=1 skip=0 seek=330 \
	conv=notrunc status=none
read_bytes() { sed -n 's/^rchar: //p' "/proc/$1/io" 2>/dev/null; }
# read_past PID BYTES: PID (alive) has read more than BYTES
read_past() { kill -0 "$1" && [ "$(read_bytes "$1")" -gt "$2" ]; }

kill -STOP "${NODE_PID[1]}"
"$CTL" -q -t 600000 image import img "$WORK/img" 2>"$WORK/import.err" &
ipid=$!
check "with the node stopped, the import reads past 64 MiB (the second batch)" \
	wait_until 300 read_past $ipid $((64 * MIB))
diag "read $(read_bytes $ipid) bytes while the first upload waited"
kill -CONT "${NODE_PID[1]}"
rc=0; wait $ipid || rc=$?
sed 's/^/# /' "$WORK/import.err"
check "... then the import succeeds" test $rc -eq 0
check "... byte-exact" "$CTL" -q image export img "$WORK/out"
check "... the same bytes" cmp "$WORK/img" "$WORK/out"
# 72 MiB of random data in 288 extents, one of them a copy of another.
check "... the third batch's copy of the first's extent is not stored again" \
	test "$(node_chunks 1)" -eq 287

# The node dies while the first upload waits on it: the import fails,
# and the image it created goes with it (nothing was published).
kill -STOP "${NODE_PID[1]}"
make_image "$WORK/img2" 96
"$CTL" -q -t 600000 image import img2 "$WORK/img2" 2>"$WORK/fail.err" &
ipid=$!
check "with the node stopped, the second import reads past 64 MiB" \
	wait_until 300 read_past $ipid $((64 * MIB))
kill -KILL "${NODE_PID[1]}"
kill -CONT "${NODE_PID[1]}" 2>/dev/null
wait "${NODE_PID[1]}" 2>/dev/null
rc=0; wait $ipid || rc=$?
sed 's/^/# /' "$WORK/fail.err"
check "an upload failing during the next batch fails the import" test $rc -ne 0
check "... and publishes nothing (the image is gone)" \
	sh -c "! '$CTL' image info img2 >/dev/null 2>&1"
check "... the first image is still whole" \
	sh -c "'$CTL' image list | grep -qw img"
done_testing
