#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Leases (issue 10, item 5): a version a deployment serves cannot be
# deleted, nor its image, so gc keeps its chunks, while its holder renews
# the lease; the lease lapses when the holder dies, ends when it stops
# cleanly, and outlives a metad restart.  (leasetool renews as blobcrd
# does; tests/e2e/lease.vmt has blobcrd itself do it.)
set -u
. "$(dirname "$0")/lib.sh"
LT=$TOP/tests/repo/leasetool
EXT=262144

exports_as() { "$CTL" image export "$1" "$WORK/x" && cmp "$2" "$WORK/x"; }
# hold NAME IMAGE@V TTL: a leasetool in the background, LT_PID
hold() {
	"$LT" "$META" "$1" "$2" "$3" >"$WORK/lt-$1.out" 2>&1 &
	LT_PID=$!
	PIDS="$PIDS $LT_PID"
	wait_until 10 grep -q held "$WORK/lt-$1.out"
}

check "metad starts" start_metad --replicas 2
for i in 1 2; do check "node $i starts" start_node $i; done
check "two nodes live" wait_live 2
make_image "$WORK/v1" 8
check "import img" "$CTL" -q image import img "$WORK/v1"
cp "$WORK/v1" "$WORK/v2"
dd if=/dev/urandom of="$WORK/v2" bs=$EXT count=3 conv=notrunc status=none
check "commit img@2" "$CTL" -q image commit img "$WORK/v2"

check "host-a:dm0 takes a lease on img@1 (2 s, renewed)" hold host-a:dm0 img@1 2000
"$CTL" image delete img@1 2>"$WORK/err"
check "delete of the leased img@1: busy, exit 4" test $? -eq 4
check "saying it may be deployed" grep -q "deployed" "$WORK/err"
check "metad names the holder" grep -q "img@1 is deployed: host-a:dm0 holds a lease" "$WORK/metad.log"
"$CTL" image delete img 2>/dev/null
check "delete of its image: busy, exit 4" test $? -eq 4
check "img@2, not leased, can go" "$CTL" image delete img@2
check "gc deletes v2's 3 chunks, keeps the leased version's" \
	bash -c "'$CTL' gc | grep -q '^deleted=3 '"
sleep 3
check "renewed past its 2 s, the lease still holds" \
	bash -c "! '$CTL' image delete img@1 2>/dev/null"
check "img@1 exports byte-exact" exports_as img@1 "$WORK/v1"

kill -KILL "$LT_PID"
wait "$LT_PID" 2>/dev/null
check "its holder killed, the lease holds until it lapses" \
	bash -c "! '$CTL' image delete img@1 2>/dev/null"
check "once lapsed, img@1 can be deleted" \
	wait_until 10 "$CTL" image delete img@1

# A clean stop releases at once.
check "import img2" "$CTL" -q image import img2 "$WORK/v1"
check "host-b:dm1 takes a lease on img2@1 (60 s)" hold host-b:dm1 img2@1 60000
check "the holder stops cleanly" kill -TERM "$LT_PID"
wait "$LT_PID"
check "and released it" test $? -eq 0
check "img2@1 can be deleted at once" "$CTL" image delete img2@1

# Leases survive a metad restart.
check "import img3" "$CTL" -q image import img3 "$WORK/v1"
check "host-c:dm2 takes a lease on img3@1 (60 s)" hold host-c:dm2 img3@1 60000
kill -KILL "$LT_PID" "$METAD_PID"
wait "$LT_PID" "$METAD_PID" 2>/dev/null
check "metad restarts after kill -9" start_metad --replicas 2
"$CTL" image delete img3 2>/dev/null
check "the lease still protects img3" test $? -eq 4
check "a lease longer than an hour is refused" \
	bash -c "! '$LT' '$META' host-d:dm3 img3@1 3600001 2>/dev/null"
done_testing
