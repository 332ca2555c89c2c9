#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A reply lost on the way (metad's --test-drop-reply leaves it unsent, as a
# connection that breaks after the request would): a request that changes
# nothing is asked again on a new connection and the operation succeeds,
# with a line saying so; one that may not be asked again (a second
# IMAGE_CLONE would fail on the first) fails after its timeout, naming the
# request that went unanswered.
set -u
. "$(dirname "$0")/lib.sh"

# The node must be live again (its next heartbeat) before an import.
restart_metad() {
	kill "$METAD_PID" && wait "$METAD_PID" 2>/dev/null
	start_metad --replicas 1 "$@" && wait_live 1
}

check "metad starts" start_metad --replicas 1
check "node starts" start_node 1
check "node live" wait_live 1
make_image "$WORK/img" 8

# CHUNK_LOCATE: every import asks it once per batch.
check "metad restarts, to lose one CHUNK_LOCATE reply" \
	restart_metad --test-drop-reply CHUNK_LOCATE:1
rc=0; "$CTL" -q -t 60000 image import img "$WORK/img" 2>"$WORK/import.err" || rc=$?
sed 's/^/# /' "$WORK/import.err"
check "an import whose CHUNK_LOCATE reply is lost succeeds" test $rc -eq 0
check "... it asked again, and said so" \
	grep -q "CHUNK_LOCATE to $META: no reply in 2500 ms: asking again on a new connection" \
	"$WORK/import.err"
check "... the reply was lost indeed" grep -q "the reply to CHUNK_LOCATE not sent" "$WORK/metad.log"
rc=0; "$CTL" -q image export img "$WORK/out" || rc=$?
check "... and the image reads back byte-exact" test $rc -eq 0 -a -n "$(cmp "$WORK/img" "$WORK/out" && echo same)"

# AUTH: a new session's first reply lost.  metad is started by hand (the
# wait of start_metad would take the lost reply itself), and the node is
# stopped meanwhile (its own new session would).
kill "$METAD_PID" && wait "$METAD_PID" 2>/dev/null
kill -STOP "${NODE_PID[1]}"
"$METAD" --listen "$META" --data "$META_DIR" --key "$KEYS/metad.key" \
	--test-drop-reply AUTH:1 >>"$WORK/metad.log" 2>&1 &
METAD_PID=$!
PIDS="$PIDS $METAD_PID"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/${META##*:}") 2>/dev/null; }
check "metad restarts, to lose one AUTH reply" wait_until 10 port_open
rc=0; out=$("$CTL" -t 60000 image info img 2>"$WORK/info.err") || rc=$?
sed 's/^/# /' "$WORK/info.err"
check "a client whose AUTH reply is lost gets its answer" \
	test $rc -eq 0 -a -n "$(grep '^size=' <<<"$out")"
check "... it asked again, and said so" \
	grep -q "AUTH to $META: no reply in 2500 ms: asking again on a new connection" \
	"$WORK/info.err"
kill -CONT "${NODE_PID[1]}"

# IMAGE_CLONE is not asked again: the caller learns which request failed.
check "metad restarts, to lose one IMAGE_CLONE reply" \
	restart_metad --test-drop-reply IMAGE_CLONE:1
rc=0; "$CTL" -t 4000 image clone img@1 once 2>"$WORK/create.err" || rc=$?
sed 's/^/# /' "$WORK/create.err"
check "a clone whose reply is lost fails" test $rc -ne 0
check "... naming the request and its timeout" \
	grep -q "IMAGE_CLONE to $META: no reply in 4000 ms" "$WORK/create.err"
asked_again() { grep -q "IMAGE_CLONE to .*asking again" "$WORK/create.err"; }
check "... without asking it again" eval '! asked_again'
check "... though metad made the clone (a second clone would fail)" \
	"$CTL" -q image info once >/dev/null
done_testing
