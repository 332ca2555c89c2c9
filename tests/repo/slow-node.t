#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A node that is alive but does not answer for a while is slow, not dead:
# an import with requests in flight on it, and an export that must open its
# session with it, succeed whole through it, the only node, and the client
# says why it waited.  Twice: the node stopped (SIGSTOP) for 5 s, longer
# than a probe's 3 s, while its kernel still completes TCP handshakes; then
# stopped for 8 s with its accept queue full, so that no handshake completes
# either (what a client in a starved guest sees, its own network stack not
# running, or a client of an overloaded host).  Both stay well under the
# request timeout.  A killed node, whose port refuses, is still given up on
# after one short probe.
set -u
. "$(dirname "$0")/lib.sh"
export DEAD_AFTER_MS=60000 # metad must not take the stopped node for dead

check "metad starts" start_metad --replicas 1
check "node starts" start_node 1
check "node live" wait_live 1
node_bytes() { du -sb "$WORK/node1" | cut -f1; }

# hold MODE: stop node 1; MODE "full" also fills its accept queue until a
# connection is not accepted within 1 s (at most 300 tries).
hold() {
	local port=${NODE_ADDR[1]##*:}

	kill -STOP "${NODE_PID[1]}"
	[ "$1" = stop ] && return 0
	for _ in $(seq 300); do
		# Accepted by the kernel, then closed: it stays queued.
		timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null ||
			return 0
	done
	return 1
}

# slow MODE SECONDS: an import, then an export, each with node 1 held
slow() {
	local mode=$1 s=$2 before rc ipid epid

	# Requests in flight: the node is held once it holds 16 MiB of the
	# 192, so that most of the import is still to come however late this
	# loop sees it (with 48 MiB, a loaded machine once let the whole
	# import through before the hold).
	make_image "$WORK/img" 256
	before=$(node_bytes)
	"$CTL" -q -t 60000 image import "img$mode" "$WORK/img" 2>"$WORK/import.err" &
	ipid=$!
	while [ $(($(node_bytes) - before)) -lt $((16 << 20)) ] && kill -0 $ipid 2>/dev/null; do
		sleep 0.05
	done
	check "[$mode] the node is held mid-import" hold "$mode"
	check "[$mode] ... with chunks still to come" \
		test $(($(node_bytes) - before)) -lt $((192 << 20))
	sleep "$s"
	kill -CONT "${NODE_PID[1]}"
	rc=0; wait $ipid || rc=$?
	sed 's/^/# /' "$WORK/import.err"
	check "[$mode] an import whose node is held for $s s mid-way succeeds" \
		test $rc -eq 0
	check "[$mode] ... the client waited: the node was slow, not dead" \
		grep -q "is slow: no answer in" "$WORK/import.err"

	# A session to open: the node is held before the export starts.
	check "[$mode] the node is held" hold "$mode"
	"$CTL" -q -t 60000 image export "img$mode" "$WORK/out" 2>"$WORK/export.err" &
	epid=$!
	sleep "$s"
	kill -CONT "${NODE_PID[1]}"
	rc=0; wait $epid || rc=$?
	sed 's/^/# /' "$WORK/export.err"
	check "[$mode] an export whose node is held for its first $s s succeeds" \
		test $rc -eq 0
	check "[$mode] ... byte-exact" cmp "$WORK/img" "$WORK/out"
	check "[$mode] ... the client waited: the node was slow, not dead" \
		grep -q "is slow: no answer in" "$WORK/export.err"
}

slow stop 5
slow full 8
check "... and said it had no TCP handshake either" \
	grep -q "nor a TCP handshake" "$WORK/export.err"

# A killed node refuses connections: given up on after one short probe,
# not after the 60 s request timeout.
kill -9 "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
rc=0; timeout 50 "$CTL" -q -t 60000 image export imgstop "$WORK/out" 2>"$WORK/dead.err" || rc=$?
sed 's/^/# /' "$WORK/dead.err"
check "an export from a killed node fails well before its 60 s timeout" \
	test $rc -ne 0 -a $rc -ne 124
check "... saying the node refuses connections" \
	grep -q "refuses connections" "$WORK/dead.err"
done_testing
