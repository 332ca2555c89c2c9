#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Confidentiality (Documentation/security.rst): the node is reached through
# a socat relay that records both directions.  In plain sessions an
# image's bytes cross the wire as they are (authenticated only); with
# blobcrctl --encrypt, or a node started with --encrypt, they never do,
# and exports stay byte-exact.
set -u
. "$(dirname "$0")/lib.sh"

# An image whose every 64 KiB holds a marker, random bytes around it.
make_image "$WORK/img" 4
marker=SECRET-CHECKPOINT-BYTES-$RANDOM$RANDOM
for i in $(seq 0 63); do
	printf '%s' "$marker" | dd of="$WORK/img" bs=1 seek=$((i * 65536)) \
		conv=notrunc status=none
done
seen() { grep -a -c -- "$marker" "$1" 2>/dev/null || true; }

relay_port=$(free_port)
# relay NODE_PORT: records requests in $WORK/up, replies in $WORK/down
relay() {
	socat -r "$WORK/up" -R "$WORK/down" \
		"TCP-LISTEN:$relay_port,reuseaddr,fork,bind=127.0.0.1" \
		"TCP:127.0.0.1:$1" 2>>"$WORK/socat.log" &
	PIDS="$PIDS $!"
}
rewind() { : >"$WORK/up"; : >"$WORK/down"; }

check "metad starts" start_metad --replicas 1
node_port=$(free_port)
NODE_ADDR[1]=tcp://127.0.0.1:$node_port
relay "$node_port"
check "node starts, advertising the relay" \
	start_node 1 --advertise "tcp://127.0.0.1:$relay_port"
check "node live" wait_live 1

rewind
check "import in plain sessions" "$CTL" -q image import plain "$WORK/img"
check "the image's bytes crossed the wire in clear" test "$(seen "$WORK/up")" -gt 0
rewind
check "export in plain sessions, byte-exact" \
	bash -c "'$CTL' -q image export plain '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
check "... its bytes in clear in the replies" test "$(seen "$WORK/down")" -gt 0

rewind
check "export with --encrypt, byte-exact" \
	bash -c "'$CTL' -q --encrypt image export plain '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
check "... the replies carried chunks" test "$(stat -c %s "$WORK/down")" -gt 3000000
check "... never the image's bytes" test "$(seen "$WORK/down")" -eq 0
rewind
check "import with BLOBCR_ENCRYPT=1 (new bytes)" \
	bash -c "tr 'A-Z' 'a-z' <'$WORK/img' >'$WORK/img2' && BLOBCR_ENCRYPT=1 '$CTL' -q image import enc '$WORK/img2'"
check "... the requests carried chunks" test "$(stat -c %s "$WORK/up")" -gt 3000000
check "... never those bytes" \
	test "$(grep -a -c -- "$(echo "$marker" | tr 'A-Z' 'a-z')" "$WORK/up" || true)" -eq 0

# A node that encrypts every session, whatever the client asks.
kill -TERM "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
check "node restarts with --encrypt" \
	start_node 1 --advertise "tcp://127.0.0.1:$relay_port" --encrypt
check "node live again" wait_live 1
rewind
check "a plain client's export from it, byte-exact" \
	bash -c "'$CTL' -q image export plain '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
check "... encrypted all the same" test "$(seen "$WORK/down")" -eq 0
done_testing
