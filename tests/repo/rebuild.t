#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# metad loss is not data loss (issue 10, item 10): every image, version,
# clone, group and access order has a manifest on the storage nodes;
# with its database deleted, `blobcr-metad --rebuild` makes it again from
# the nodes, and every export is byte-exact, every list as it was.
set -u
. "$(dirname "$0")/lib.sh"
CT=$TOP/tests/repo/chunktool
BIG=$TOP/tests/repo/bigcommit

# snapshot FILE: what a rebuild must give back, as the CLI prints it
snapshot() {
	{
		repo_listing
		"$CT" "$META" access-get a@1
		"$CT" "$META" access-get c@1
	} >"$1" 2>&1
}
exports_all() {
	exports_match "a@1 v1" "a@3 v3" "b v1" "c@1 c1" "c c1" "d@1 d1" "d d2" \
		"big@1 big"
}

check "metad starts (R=2, re-replication every second)" \
	start_metad --replicas 2 --repair-interval-s 1
for i in 1 2 3 4; do check "node $i starts" start_node $i; done
check "four nodes live" wait_live 4

# A history: versions, a middle one deleted, a clone and its commit, a
# group, access orders, a deleted image, a big version.
make_image "$WORK/v1" 16
change_extents "$WORK/v1" "$WORK/v2" 3 9 20
change_extents "$WORK/v2" "$WORK/v3" 9 40 41
check "import a" "$CTL" -q image import a "$WORK/v1"
check "a@2" "$CTL" -q image commit a "$WORK/v2"
check "a@3" "$CTL" -q image commit a "$WORK/v3"
check "delete a@2 (its extents move to a@3)" "$CTL" image delete a@2
check "import b (the same bytes as a@1)" "$CTL" -q image import b "$WORK/v1"
check "clone a@1 as c" "$CTL" image clone a@1 c
change_extents "$WORK/v1" "$WORK/c1" 1 2
check "c@1" "$CTL" -q image commit c "$WORK/c1"
check "group g1 names a@3 and c@1" "$CTL" group publish g1 a@3 c@1
check "group g2 names a@1" "$CTL" group publish g2 a@1
check "group g3 names c@1" "$CTL" group publish g3 c@1
check "group g3 deleted (its manifest becomes a tombstone)" "$CTL" group delete g3
check "access order of a@1" "$CT" "$META" access-put a@1 5 3 60 2
check "access order of c@1" "$CT" "$META" access-put c@1 1 2
check "import gone, then delete it" \
	bash -c "'$CTL' -q image import gone '$WORK/v1' && '$CTL' image delete gone"
check "a version of 100,000 extents, in parts" \
	bash -c "'$BIG' '$META' big 100000 >/dev/null"
"$CTL" -q image export big "$WORK/big"
make_image "$WORK/d1" 4
change_extents "$WORK/d1" "$WORK/d2" 0
check "import d" "$CTL" -q image import d "$WORK/d1"
check "d@2" "$CTL" -q image commit d "$WORK/d2"
check "every export as written" exports_all
snapshot "$WORK/before"
check "metad's manifests are all on the nodes" \
	wait_until 20 bash -c "! grep -q 'not on the nodes yet' '$WORK/metad.log'"

# Lose metad's disk.
kill -KILL "$METAD_PID"
wait "$METAD_PID" 2>/dev/null
rm -rf "$WORK/meta"
check "metad rebuilds into an empty directory" \
	start_metad --replicas 2 --repair-interval-s 1 --rebuild --rebuild-wait-s 30
rebuilt() { grep -q "rebuilt from 4 nodes" "$WORK/metad.log"; }
check "from the four nodes" wait_until 60 rebuilt
diag "$(grep 'rebuilt from' "$WORK/metad.log" | sed 's/.*info: //')"
check "every export byte-exact" exports_all
snapshot "$WORK/after"
check "images, versions, groups, access orders as they were" \
	cmp "$WORK/before" "$WORK/after"
diff "$WORK/before" "$WORK/after" | head -n 20 | sed 's/^/# /'
check "the big version reads back" \
	bash -c "'$CTL' image versions --keys big | grep -q '^changed=100000\$'"
check "the deleted image stays deleted" \
	bash -c "! '$CTL' image info gone 2>/dev/null"
check "a@2 stays deleted" bash -c "! '$CTL' image export a@2 '$WORK/x' 2>/dev/null"
check "gc after the rebuild deletes nothing a version needs" \
	bash -c "'$CTL' gc >/dev/null"
check "every export still byte-exact" exports_all
change_extents "$WORK/v3" "$WORK/v4" 7
check "a new commit after the rebuild" "$CTL" -q image commit a "$WORK/v4"
check "is a@4: numbers are not reused" \
	bash -c "'$CTL' image export a@4 '$WORK/x' && cmp -s '$WORK/v4' '$WORK/x'"

# Two nodes die one after the other; metad restores R, of the data and
# of the manifests, each time; then it loses its disk again: a rebuild of
# the rebuilt repository, from the two nodes left.
manifests_on() {
	local i s=0
	for i in "$@"; do
		s=$((s + $("$CTL" node stat "${NODE_ADDR[$i]}" | sed -n 's/^manifests=//p')))
	done
	echo $s
}
# every manifest on two nodes again, and nothing under-replicated (asked
# once a second: a repair is no light question)
all_kept() {
	local t
	for t in $(seq 60); do
		test "$(manifests_on "$@")" -eq "$copies" &&
			"$CTL" -t 3000 node repair 2>/dev/null |
			grep -q "under_replicated=0 " && return 0
		sleep 1
	done
	return 1
}
copies=$(manifests_on 1 2 3 4)
check "the manifests are on the nodes, two copies each" test $((copies % 2)) -eq 0
for i in 4 3; do
	kill -KILL "${NODE_PID[$i]}"
	wait "${NODE_PID[$i]}" 2>/dev/null
	check "node $i dies" wait_live $((i - 1))
	check "metad copies its chunks and manifests elsewhere" \
		all_kept $(seq 1 $((i - 1)))
done
check "manifests were copied" grep -q "manifest .* copied to" "$WORK/metad.log"
kill -KILL "$METAD_PID"
wait "$METAD_PID" 2>/dev/null
rm -rf "$WORK/meta"
check "metad rebuilds again" start_metad --replicas 2 --rebuild --rebuild-wait-s 30
rebuilt2() { grep -q "rebuilt from 2 nodes" "$WORK/metad.log"; }
check "from the two nodes left" wait_until 60 rebuilt2
check "a@4 is there" \
	bash -c "'$CTL' image export a@4 '$WORK/x' && cmp -s '$WORK/v4' '$WORK/x'"
check "and the rest" exports_all
"$CTL" image import x "$WORK/v1" 2>/dev/null
check "a rebuild into a database that holds images is refused" \
	bash -c "! '$METAD' --listen tcp://127.0.0.1:1 --data '$WORK/meta' --key '$KEYS/metad.key' --rebuild 2>'$WORK/refused'"
check "saying why" grep -q "rebuild into an empty directory" "$WORK/refused"
done_testing
