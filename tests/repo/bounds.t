#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Bounds and fairness (Documentation/security.rst): four gc at once leave
# heartbeats and lookups served and run one at a time; a flood of
# heartbeats, without a key or with a node's key and 4097 addresses,
# leaves metad serving and able to restart; node addresses, DELETE sizes
# and labels are checked; escape sequences never reach a log.
set -u
. "$(dirname "$0")/lib.sh"
FT=$TOP/tests/repo/frametool
export DEAD_AFTER_MS=3000

check "metad starts (gc stalls 6 s: a test hook)" \
	start_metad --replicas 1 --test-gc-delay-ms 6000
check "node 1 starts" start_node 1
check "node 2 starts" start_node 2
check "both live" wait_live 2
make_image "$WORK/img" 8
check "import" "$CTL" -q image import img "$WORK/img"

# --- four gc at once: one runs, three are refused at once; nothing starves ---
gcs=""
for i in 1 2 3 4; do
	( rc=0; "$CTL" gc >"$WORK/gc$i.out" 2>&1 || rc=$?; echo "$rc" >"$WORK/gc$i.rc" ) &
	gcs="$gcs $!"
done
sleep 0.5
slow=0 notlive=0
for i in $(seq 12); do # 6 s: the whole time the gc holds its worker
	t0=$(date +%s%N)
	n=$("$CTL" -t 3000 node list 2>/dev/null | grep -c ' live ')
	t1=$(date +%s%N)
	[ "$n" = 2 ] || notlive=$((notlive + 1))
	[ $(( (t1 - t0) / 1000000 )) -lt 3000 ] || slow=$((slow + 1))
	sleep 0.5
done
check "during the gc, node list always answered" test $slow -eq 0
check "... and both nodes stayed live (heartbeats served)" test $notlive -eq 0
check "an export during the gc is byte-exact" \
	bash -c "'$CTL' -q image export img '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
wait $gcs
check "exactly one gc ran" test "$(cat "$WORK"/gc*.rc | sort | tr '\n' ' ')" = "0 4 4 4 "
check "the others were told one is running" \
	test "$(grep -l "a garbage collection is running already" "$WORK"/gc*.out | wc -l)" -eq 3

# --- sizes, addresses, labels ---
check "node: a DELETE of 4097 ids is refused (-EMSGSIZE)" \
	env BLOBCR_KEY="$KEYS/metad.key" "$FT" "${NODE_ADDR[1]}" delete-too-many
nkey=$(key flood node)
check "metad: heartbeats from addresses clients cannot use are refused" \
	env BLOBCR_KEY="$nkey" "$FT" "$META" bad-addresses
check "metad: escape sequences in a label are refused, in a name not found" \
	"$FT" "$META" escapes img
check "no escape sequence reached metad's log" \
	bash -c "! grep -q \$'\\x1b' '$WORK/metad.log'"
check "... it logged the name escaped" grep -q 'img\\x1b\[31m' "$WORK/metad.log"

# --- heartbeat floods ---
check "4097 heartbeats without a key: all refused" \
	"$FT" "$META" heartbeats 4097 unauth
check "... no node registered" test "$("$CTL" node list | tail -n +2 | wc -l)" -eq 2
env BLOBCR_KEY="$nkey" "$FT" "$META" heartbeats 4097 >"$WORK/flood" 2>&1
check "4097 heartbeats with a node key: metad takes 4094 (4096 in all), refuses 3" \
	grep -q "taken=4094 refused=3" "$WORK/flood"
check "metad still serves" test "$("$CTL" node list | tail -n +2 | wc -l)" -eq 4096
check "... exports" \
	bash -c "'$CTL' -q image export img '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
kill -TERM "$METAD_PID"
wait "$METAD_PID" 2>/dev/null
check "metad restarts after the flood" start_metad --replicas 1
check "... with the 4096 nodes" test "$("$CTL" node list | tail -n +2 | wc -l)" -eq 4096
check "... the real nodes live again" wait_until 15 bash -c \
	"[ \$('$CTL' node list | grep -c ' live ') -ge 2 ]"
check "... and the export is byte-exact" \
	bash -c "'$CTL' -q image export img '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
done_testing
