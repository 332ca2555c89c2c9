#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Malformed and truncated frames and random bytes at every service, and
# random payloads in valid sessions: each gets an error reply, and the
# service goes on serving.
set -u
. "$(dirname "$0")/lib.sh"
FT=$TOP/tests/repo/frametool

check "metad starts" start_metad --replicas 1
check "node starts" start_node 1
check "node live" wait_live 1
make_image "$WORK/img" 8
check "import before the abuse" "$CTL" -q image import img "$WORK/img"
for svc in metad node; do
	if [ $svc = metad ]; then a=$META; else a=${NODE_ADDR[1]}; fi
	for c in random truncated header payloads unauth; do
		check "$svc: $c frames get error replies, service alive" "$FT" "$a" $c
	done
done
check "node: PUT whose bytes do not match the id is refused" "$FT" "${NODE_ADDR[1]}" put-mismatch
check "node counted the malformed frames" \
	test "$("$CTL" node stat "${NODE_ADDR[1]}" | sed -n 's/^malformed=//p')" -gt 300
check "the repository still works: export byte-exact" \
	bash -c "'$CTL' image export img '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
check "both daemons still running" kill -0 "$METAD_PID" "${NODE_PID[1]}"
check "metad: PUBLISH to an unknown image is refused" "$FT" "$META" publish-unknown
check "metad's log names the image it refused" \
	grep -q "publish of no-such-image refused" "$WORK/metad.log"
done_testing
