#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Replication by forwarding (PUT_FWD): the client sends each chunk once, to
# one node, which sends it on to the other replicas.  At R=2 and R=3 every
# chunk is on R nodes (each node's own listing) and the client sent each
# byte once (the nodes' counters of bytes received and sent on); a second
# replica stopped or killed, or a first one killed while it forwards: the
# import still publishes, every chunk on R nodes; forward lists that are
# malformed are refused and store nothing.
set -u
. "$(dirname "$0")/lib.sh"
TOOL=$TOP/tests/repo/chunktool
EXT=262144

stat_of() { "$CTL" node stat "${NODE_ADDR[$1]}" | sed -n "s/^$2=//p"; }
sum_stat() {
	local f=$1 i s=0; shift
	for i in "$@"; do s=$((s + $(stat_of "$i" "$f"))); done
	echo $s
}
# client_bytes NODES...: chunk bytes the clients sent to these nodes
client_bytes() {
	echo $(($(sum_stat put_bytes "$@") + $(sum_stat put_fwd_bytes "$@") -
		$(sum_stat forwarded_bytes "$@")))
}
# ids_of FILE: the chunk ids of FILE's extents, one a line
ids_of() {
	rm -rf "$WORK/pieces" && mkdir "$WORK/pieces" &&
		split -b $EXT -a 4 "$1" "$WORK/pieces/p." &&
		sha256sum "$WORK"/pieces/p.* | awk '{ print $1 }'
}
# on_r_nodes R FILE NODES...: every chunk of FILE is in R or more of the
# NODES' own listings
on_r_nodes() {
	local r=$1 f=$2 i; shift 2
	for i in "$@"; do "$TOOL" "${NODE_ADDR[$i]}" list; done | sort >"$WORK/held"
	ids_of "$f" | sort -u >"$WORK/ids"
	join "$WORK/ids" <(uniq -c "$WORK/held" | awk '{ print $2, $1 }') |
		awk -v r="$r" '$2 >= r { n++ } END { print n + 0 }' >"$WORK/count"
	test "$(cat "$WORK/count")" -eq "$(wc -l <"$WORK/ids")" || {
		diag "$(cat "$WORK/count") of $(wc -l <"$WORK/ids") chunks on $r nodes"
		return 1; }
}
exports_exact() { "$CTL" -q image export "$1" "$WORK/out" && cmp "$2" "$WORK/out"; }
# restart_and_check I IMG: node I back on its data, then every chunk of
# IMG (from $WORK/IMG) in 2 nodes' own listings and the export whole
restart_and_check() {
	check "node $1 restarts on its data" start_node "$1"
	check "three nodes live" wait_live 3
	check "every chunk on 2 nodes" on_r_nodes 2 "$WORK/$2" 1 2 3
	check "export byte-exact" exports_exact "$2" "$WORK/$2"
}
node_id() { "$CTL" node list | awk -v a="${NODE_ADDR[$1]}" '$0 ~ a { print $1 }'; }

check "metad starts (R=2)" start_metad --replicas 2 --repair-interval-s 0
for i in 1 2 3; do check "node $i starts" start_node $i; done
check "three nodes live" wait_live 3

# R=2: 16 MiB of random bytes, 64 chunks, sent once.
head -c $((16 << 20)) /dev/urandom >"$WORK/a"
check "import at R=2" env BLOBCR_KEY="$KEYS/host.key" "$CTL" -q image import a "$WORK/a"
check "every chunk on 2 nodes, by their own listings" on_r_nodes 2 "$WORK/a" 1 2 3
check "128 copies in all" test "$(sum_stat chunks 1 2 3)" -eq 128
sent=$(client_bytes 1 2 3)
diag "R=2: the client sent $sent bytes for 16 MiB; nodes sent on $(sum_stat forwarded_bytes 1 2 3)"
check "the client sent each byte once" test "$sent" -eq $((16 << 20))
check "the nodes sent the second copies" test "$(sum_stat forwarded_bytes 1 2 3)" -eq $((16 << 20))
check "export byte-exact" exports_exact a "$WORK/a"

# R=3: every node holds every chunk; the client still sends each byte once.
kill -TERM "$METAD_PID"; wait "$METAD_PID"
check "metad restarts at R=3" start_metad --replicas 3 --repair-interval-s 0
check "three nodes live" wait_live 3
head -c $((8 << 20)) /dev/urandom >"$WORK/b"
before=$(client_bytes 1 2 3)
for i in 1 2 3; do c0[$i]=$(stat_of $i chunks); done
check "import at R=3" env BLOBCR_KEY="$KEYS/host.key" "$CTL" -q image import b "$WORK/b"
for i in 1 2 3; do
	check "node $i's STAT: 32 chunks more" test "$(stat_of $i chunks)" -eq $((c0[i] + 32))
done
check "every chunk on 3 nodes, by their own listings" on_r_nodes 3 "$WORK/b" 1 2 3
check "the client sent each byte once at R=3" \
	test $(($(client_bytes 1 2 3) - before)) -eq $((8 << 20))
check "export byte-exact" exports_exact b "$WORK/b"
kill -TERM "$METAD_PID"; wait "$METAD_PID"
check "metad back at R=2" start_metad --replicas 2 --repair-interval-s 0
check "three nodes live" wait_live 3

# Malformed forward lists: refused, with the reason in the node's log,
# and nothing stored anywhere.
head -c $EXT /dev/urandom >"$WORK/one"
id1=$(node_id 1) id2=$(node_id 2) id3=$(node_id 3)
total=$(sum_stat chunks 1 2 3)
refused() {
	local want=$1; shift
	"$TOOL" "${NODE_ADDR[1]}" put-fwd "$@" 2>"$WORK/err" && return 1
	grep -q "($want)" "$WORK/err" || { diag "$(cat "$WORK/err")"; return 1; }
}
check "a node named twice: -EINVAL" refused -22 1 5000 - "$WORK/one" "$id2" "$id2"
check "the node itself: -EINVAL" refused -22 1 5000 - "$WORK/one" "$id1"
check "an unknown node: -ENXIO" refused -6 1 5000 - "$WORK/one" 4242
check "no other node: -EINVAL" refused -22 1 5000 - "$WORK/one"
check "8 other nodes (R at most 8): -EINVAL" \
	refused -22 1 5000 - "$WORK/one" "$id2" "$id3" 11 12 13 14 15 16
check "a wait of 0 ms: -EINVAL" refused -22 1 0 - "$WORK/one" "$id2"
check "format 2: -EPROTO" refused -71 2 5000 - "$WORK/one" "$id2"
check "bytes that are not their id: -EINVAL" \
	refused -22 1 5000 "$(printf '%064d' 0)" "$WORK/one" "$id2"
check "the node says why" grep -q "PUT_FWD refused: node .* is named twice" "$WORK/node1.log"
check "and names the unknown node" grep -q "node 4242 is unknown" "$WORK/node1.log"
check "nothing stored by the refusals" test "$(sum_stat chunks 1 2 3)" -eq "$total"
"$TOOL" "${NODE_ADDR[1]}" put-fwd 1 5000 - "$WORK/one" "$id3" >"$WORK/reply"
check "a sound PUT_FWD: node 3's copy reported durable" grep -qx "$id3 0" "$WORK/reply"
check "and nodes 1 and 3 hold it" on_r_nodes 2 "$WORK/one" 1 3

# The second replica stopped mid-import for longer than a node waits for
# it (half the client's 10 s timeout): its copies are placed elsewhere.
head -c $((48 << 20)) /dev/urandom >"$WORK/c"
has_started() { test "$(client_bytes 1 2 3)" -gt "$1"; }
start=$(client_bytes 1 2 3)
env BLOBCR_KEY="$KEYS/host.key" "$CTL" -q image import c "$WORK/c" 2>"$WORK/c.err" &
imp=$!
wait_until 60 has_started "$start"
kill -STOP "${NODE_PID[2]}"
sleep 7
kill -CONT "${NODE_PID[2]}"
wait $imp
check "import with node 2 stopped 7 s: published" test $? -eq 0
check "every chunk on 2 nodes" on_r_nodes 2 "$WORK/c" 1 2 3
# How many forwards to node 2 waited it out depends on the timing: said, not checked.
diag "forwards that waited for node 2: $(cat "$WORK/node1.log" "$WORK/node3.log" | grep -c "no reply")"
check "export byte-exact" exports_exact c "$WORK/c"

# The second replica killed (-9) mid-import: the nodes find it dead and the
# client places its copies elsewhere.
head -c $((48 << 20)) /dev/urandom >"$WORK/d"
start=$(client_bytes 1 2 3)
env BLOBCR_KEY="$KEYS/host.key" "$CTL" -q image import d "$WORK/d" 2>"$WORK/d.err" &
imp=$!
wait_until 60 has_started "$start"
kill -KILL "${NODE_PID[3]}"
wait "${NODE_PID[3]}" 2>/dev/null
wait $imp
st=$?
check "import with node 3 killed: published on the two left" test $st -eq 0
restart_and_check 3 d

# The first replica killed while it forwards: node 2 stopped so that
# node 1's forwards to it wait, node 1 killed then.  The client sends
# every copy node 1 had anywhere to its nodes directly.
head -c $((16 << 20)) /dev/urandom >"$WORK/e"
kill -STOP "${NODE_PID[2]}"
env BLOBCR_KEY="$KEYS/host.key" "$CTL" -q -t 20000 image import e "$WORK/e" \
	2>"$WORK/e.err" &
imp=$!
# node 1 has a connection to node 2: its forwards to it are waiting
forwarding() {
	ss -Htnp state established "dport = :${NODE_ADDR[2]##*:}" |
		grep -q "pid=${NODE_PID[1]},"
}
wait_until 60 forwarding
sleep 1
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
kill -CONT "${NODE_PID[2]}"
wait $imp
st=$?
check "import with node 1 killed mid-forward: published" test $st -eq 0
restart_and_check 1 e
done_testing
