#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# blobcrctl metrics: the Prometheus text a real repository gives, parsed
# and checked against what was done to it.  Two nodes, two replicas; an
# import puts chunks on both; a node killed is dead and every chunk is
# short of a replica until it comes back; a chunk rotted on disk is found
# by the scrubber and counted; --textfile replaces DIR/blobcr.prom whole.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/repo/lib.sh

DEAD_AFTER_MS=1500
check "metad starts" start_metad --replicas 2 --repair-interval-s 0
check "node 1 starts" start_node 1
check "node 2 starts" start_node 2
check "both nodes live" wait_live 2

# metric NAME [LABEL-MATCH]: the value of the first sample of NAME whose
# labels contain LABEL-MATCH, from $WORK/m (the last scrape)
metric() {
	awk -v n="$1" -v l="${2:-}" '
		/^#/ { next }
		{ split($1, a, "{"); if (a[1] == n && index($1, l)) { print $2; exit } }
	' "$WORK/m"
}
scrape() { "$CTL" metrics >"$WORK/m" 2>"$WORK/m.err"; }
# is NAME LABEL-MATCH VALUE: the sample has that value
is() { [ "$(metric "$1" "$2")" = "$3" ]; }

check "metrics, exit 0" scrape
# Every line a comment or "name{labels} number": what Prometheus parses.
check "the output is Prometheus text" awk '
	/^# (HELP|TYPE) blobcr_[a-z_]+ / { next }
	/^blobcr_[a-z_]+(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? -?[0-9.e+]+$/ { next }
	{ print "bad line: " $0; bad = 1 } END { exit bad }' "$WORK/m"
check "2 nodes live, 0 dead" is blobcr_nodes 'state="live"' 2
check "0 images, 0 chunks short" is blobcr_under_replicated_chunks "" 0
check "node 1 up" is blobcr_node_up 'node="1"' 1

make_image "$WORK/img" 4
check "import" "$CTL" -q image import t1 "$WORK/img"
check "metrics after the import" scrape
check "1 image" is blobcr_images "" 1
# The nodes' chunk counts reach metad with their next heartbeats.
both_hold() {
	scrape && chunks1=$(metric blobcr_node_chunks 'node="1"') &&
		chunks2=$(metric blobcr_node_chunks 'node="2"') &&
		[ "$chunks1" -gt 0 ] && [ "$chunks1" = "$chunks2" ]
}
check "each node holds a copy of every chunk" wait_until 20 both_hold
chunks2=$(metric blobcr_node_chunks 'node="2"')
check "the nodes' request counters moved" \
	test "$(metric blobcr_node_requests_total 'node="1"')" -gt 0
check "no chunk short of replicas" is blobcr_under_replicated_chunks "" 0

kill -KILL "${NODE_PID[2]}"
check "node 2 dead at metad" wait_live 1 30
check "metrics with node 2 dead" scrape
check "1 live, 1 dead" is blobcr_nodes 'state="dead"' 1
check "node 2 down" is blobcr_node_up 'node="2"' 0
check "every chunk of node 2 short of a replica ($chunks2)" \
	is blobcr_under_replicated_chunks "" "$chunks2"
check "node 2 not scraped (dead)" \
	test -z "$(metric blobcr_node_scrape_ok 'node="2"')"

# Node 2 back, scrubbing fast, with its chunks rotted on disk.
NODE_PID[2]=
for f in "$WORK"/node2/seg-*; do rot_records "$f"; done
check "node 2 comes back, scrubbing" start_node 2 --scrub-mb-s 64
check "both live again" wait_live 2 30
found() { scrape && [ "$(metric blobcr_node_corrupt_chunks_total 'node="2"')" -gt 0 ]; }
check "the scrubber's corrupt chunks counted on node 2" wait_until 60 found
check "node 1 has none" is blobcr_node_corrupt_chunks_total 'node="1"' 0
check "node 2's scrubbed counter moved" \
	test "$(metric blobcr_node_scrubbed_chunks_total 'node="2"')" -gt 0

mkdir "$WORK/textfile"
check "metrics --textfile" "$CTL" metrics --textfile "$WORK/textfile"
check "only blobcr.prom left in the directory" \
	test "$(ls -A "$WORK/textfile")" = blobcr.prom
check "blobcr.prom holds the metrics" \
	grep -q '^blobcr_nodes{state="live"} 2$' "$WORK/textfile/blobcr.prom"
out=$("$CTL" metrics --textfile "$WORK/nowhere" 2>&1)
check "--textfile into a missing directory: exit 1, said" \
	test $? -eq 1 -a -n "$(grep -F "$WORK/nowhere" <<<"$out")"
"$CTL" -m tcp://127.0.0.1:1 -t 300 metrics >/dev/null 2>&1
check "metrics with no version manager: exit 5" test $? -eq 5

done_testing
