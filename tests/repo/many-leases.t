#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Many holders of one version (issue 10): 40 deployments of img@1, more
# than any small table would hold, each with its own lease.  metad keeps
# them all in LMDB, one key per holder: the version stays undeletable until
# the very last holder lets go, whichever holders went first, and the
# holders released or killed before do not take the others' leases with
# them.
set -u
. "$(dirname "$0")/lib.sh"
LT=$TOP/tests/repo/leasetool
HOLDERS=40
declare -a LT_PIDS

busy() {
	local rc=0
	"$CTL" image delete img@1 2>>"$WORK/delete.err" || rc=$?
	[ $rc -eq 4 ]
}

check "metad starts" start_metad --replicas 2
for i in 1 2; do check "node $i starts" start_node $i; done
check "two nodes live" wait_live 2
make_image "$WORK/v1" 2
check "import img" "$CTL" -q image import img "$WORK/v1"

held=0
for h in $(seq 1 $HOLDERS); do
	"$LT" "$META" "host-$h:dm0" img@1 60000 >"$WORK/lt-$h.out" 2>&1 &
	LT_PIDS[$h]=$!
	PIDS="$PIDS $!"
done
for h in $(seq 1 $HOLDERS); do
	wait_until 60 grep -q held "$WORK/lt-$h.out" && held=$((held + 1))
done
check "$HOLDERS holders each took a lease on img@1" test $held -eq $HOLDERS

# Holders 1 to 39 release theirs (SIGTERM), the odd ones first, then the
# even ones: whichever go, the others' leases stay.
for h in $(seq 1 2 $((HOLDERS - 1))); do kill -TERM "${LT_PIDS[$h]}"; done
for h in $(seq 1 2 $((HOLDERS - 1))); do wait "${LT_PIDS[$h]}"; done
check "the odd holders released theirs: still busy (exit 4)" busy
for h in $(seq 2 2 $((HOLDERS - 1))); do kill -TERM "${LT_PIDS[$h]}"; done
rc=0
for h in $(seq 2 2 $((HOLDERS - 1))); do wait "${LT_PIDS[$h]}" || rc=1; done
check "39 holders released cleanly" test $rc -eq 0
check "the 40th lease alone keeps img@1 (exit 4)" busy
check "metad names the last holder" \
	bash -c "grep 'img@1 is deployed' '$WORK/metad.log' | tail -n 1 | grep -q 'host-$HOLDERS:dm0 holds'"
check "img@1 still exports byte-exact" \
	bash -c "'$CTL' image export img@1 '$WORK/x' && cmp '$WORK/v1' '$WORK/x'"

# metad restarted: every lease is in its database, none in a table.
kill -KILL "$METAD_PID"
wait "$METAD_PID" 2>/dev/null
check "metad restarts after kill -9" start_metad --replicas 2
check "the lease outlived metad" busy
kill -TERM "${LT_PIDS[$HOLDERS]}"
wait "${LT_PIDS[$HOLDERS]}"
check "the last holder released: img@1 can be deleted" "$CTL" image delete img@1
done_testing
