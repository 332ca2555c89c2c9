#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Shadowing, cloning, version deletes and garbage collection: a version that
# changes 3 extents grows storage by 3 chunks; a clone shares every chunk;
# gc removes exactly the chunks no remaining version needs.
set -u
. "$(dirname "$0")/lib.sh"
R=2

chunks() { total_chunks 1 2 3; }
exports_as() { "$CTL" image export "$1" "$WORK/x" && cmp "$2" "$WORK/x"; }

check "metad starts" start_metad --replicas $R
for i in 1 2 3; do check "node $i starts" start_node $i; done
check "three nodes live" wait_live 3

make_image "$WORK/v1" 32
check "import v1" "$CTL" -q image import img "$WORK/v1"
c1=$(chunks)
change_extents "$WORK/v1" "$WORK/v2" 5 17 40
check "commit of 3 changed extents" \
	bash -c "'$CTL' image commit img '$WORK/v2' | grep -q 'img@2: 3 extents changed'"
c2=$(chunks)
check "v2 grew storage by exactly 3 chunks (x R)" test $((c2 - c1)) -eq $((3 * R))
check "v1 still exports as v1" exports_as img@1 "$WORK/v1"
check "v2 exports as v2" exports_as img@2 "$WORK/v2"

check "clone img@1 as c" "$CTL" image clone img@1 c
check "a clone adds no chunk" test "$(chunks)" -eq "$c2"
check "clone exports as its source" exports_as c "$WORK/v1"
change_extents "$WORK/v1" "$WORK/c1" 1 2 3
check "commit to the clone" "$CTL" -q image commit c "$WORK/c1"
check "clone's commit grew storage by 3 chunks" test $(($(chunks) - c2)) -eq $((3 * R))
check "source unaffected by the clone's commit" exports_as img "$WORK/v2"
check "clone@1 exports" exports_as c@1 "$WORK/c1"
"$CTL" image clone img@2 c/bad 2>/dev/null; check "bad clone name: exit 1" test $? -eq 1

# v3 changes other extents; deleting v2 must keep v2's changes visible in v3.
change_extents "$WORK/v2" "$WORK/v3" 60 61
check "commit v3" "$CTL" -q image commit img "$WORK/v3"
c3=$(chunks)
check "gc with nothing to collect" bash -c "'$CTL' gc | grep -q '^deleted=0 '"
check "delete img@2 (a middle version)" "$CTL" image delete img@2
check "v3 still exports as v3 after v2 is gone" exports_as img@3 "$WORK/v3"
check "v1 still exports as v1" exports_as img@1 "$WORK/v1"
"$CTL" image export img@2 "$WORK/x" 2>/dev/null; check "deleted version: exit 3" test $? -eq 3
check "gc keeps v2's chunks that v3 inherits" bash -c "'$CTL' gc | grep -q '^deleted=0 '"
check "versions lists 1 and 3" \
	bash -c "test \"\$('$CTL' image versions img | awk 'NR>1{print \$1}' | xargs)\" = '1 3'"
"$CTL" image versions --keys img >"$WORK/keys"
check "versions --keys: one block per version" \
	test "$(grep -c '^version=' "$WORK/keys")" = 2
check "versions --keys: v3's block, key by key" \
	test "$(awk -v RS= -F'\n' 'NR == 2 { print $1, $2, $4, $5, $6 }' "$WORK/keys")" = \
	"version=3 base=2 changed=2 label=commit group="
check "versions --keys: a UTC time" \
	grep -Eq '^time=[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$' "$WORK/keys"
"$CTL" image versions --keys 2>/dev/null; check "versions --keys without NAME: exit 2" test $? -eq 2

check "delete the latest version img@3" "$CTL" image delete img@3
check "latest is v1 again" exports_as img "$WORK/v1"
check "gc deletes v2+v3's 5 chunks" bash -c "'$CTL' gc | grep -q '^deleted=5 '"
check "storage shrank by 5 chunks (x R)" test $((c3 - $(chunks))) -eq $((5 * R))

"$CTL" image delete img 2>/dev/null; check "image with a clone: busy, exit 4" test $? -eq 4
check "delete the clone" "$CTL" image delete c
check "gc deletes the clone's 3 chunks" bash -c "'$CTL' gc | grep -q '^deleted=3 '"
check "delete the image" "$CTL" image delete img
check "gc deletes the rest" bash -c "'$CTL' gc | grep -q '^deleted=$((c1 / R)) '"
check "nodes hold no chunk" test "$(chunks)" -eq 0
used() { "$CTL" node stat "${NODE_ADDR[$1]}" | sed -n 's/^used_bytes=//p'; }
check "segments still hold the dead bytes" test "$(used 1)" -gt 0
for i in 1 2 3; do
	check "node $i compaction reclaims every byte" \
		bash -c "'$CTL' node compact ${NODE_ADDR[$i]} >/dev/null && test \$('$CTL' node stat ${NODE_ADDR[$i]} | sed -n 's/^used_bytes=//p') -eq 0"
done
check "no segment file left" test -z "$(ls "$WORK"/node*/seg-* 2>/dev/null)"
check "images gone" bash -c "test \$('$CTL' image list | wc -l) -eq 1"

# A checkpoint group names versions of several images atomically.
check "import a" "$CTL" -q image import a "$WORK/v1"
check "import b" "$CTL" -q image import b "$WORK/v2"
check "group publish" "$CTL" group publish g1 a@1 b@1
check "versions name their group" \
	bash -c "'$CTL' image versions b | awk 'NR==2 {exit \$NF != \"g1\"}'"
check "group list shows it" bash -c "'$CTL' group list | grep -q '^g1 [0-9TZ:-]* a@1 b@1\$'"
"$CTL" group publish g2 a@1 b@7 2>/dev/null; check "group with a missing version: exit 3" test $? -eq 3
"$CTL" group publish g1 a@1 2>/dev/null; check "group name reused: exit 4" test $? -eq 4
done_testing
