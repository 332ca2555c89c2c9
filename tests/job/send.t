#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# blobcrctl group send between two repositories with real daemons: the
# target ends up with byte-identical versions and the group, a later group
# moves only the chunks the target lacks, and a send that fails leaves no
# group at the target.
TOP=$(pwd)
. tests/repo/lib.sh

failed_with() { [ "$1" = "$2" ] && grep -q "$3" "$WORK/err"; }
# export_sha META IMAGE@V: the sha256 of an export.
export_sha() {
	"$CTL" -q --meta "$1" image export "$2" "$WORK/x.img" &&
		sha256sum <"$WORK/x.img" | cut -d' ' -f1
}

# Source: metad and nodes 1, 2.  Target: another metad and nodes 3, 4.
start_metad && start_node 1 && start_node 2 && wait_live 2 ||
	{ not_ok "source repository"; done_testing; exit 1; }
SRC=$META
META="" META_DIR=$WORK/meta-target
start_metad && start_node 3 && start_node 4 && wait_live 2 ||
	{ not_ok "target repository"; done_testing; exit 1; }
DST=$META
export BLOBCR_META=$SRC

for vm in vm0 vm1; do
	make_image "$WORK/$vm.img" 8
	"$CTL" -q image import "$vm" "$WORK/$vm.img" >/dev/null
	# Version 2: extents 1 and 5 changed, extent 2 zeroed (a new hole).
	dd if=/dev/urandom of="$WORK/$vm.img" bs=64K seek=4 count=1 conv=notrunc status=none
	dd if=/dev/urandom of="$WORK/$vm.img" bs=64K seek=20 count=1 conv=notrunc status=none
	dd if=/dev/zero of="$WORK/$vm.img" bs=256K seek=2 count=1 conv=notrunc status=none
	"$CTL" -q image commit "$vm" "$WORK/$vm.img" >/dev/null
done
"$CTL" group publish md.1 vm0@1 vm1@1 && "$CTL" group publish md.2 vm0@2 vm1@2
check "groups md.1 and md.2 at the source" [ $? = 0 ]

out=$("$CTL" group send md.1 --to "$DST" 2>"$WORK/err")
sed 's/^/# /' "$WORK/err"
check "md.1 sent" [ "$out" = "md.1 vm0@1 vm1@1" ]
check "every extent but the holes of a new image is read" \
	[ "$(grep -c ': 24 of 32 extents differed, 24 read$' "$WORK/err")" = 2 ]
for ref in vm0@1 vm1@1; do
	check "$ref is byte-identical at the target" \
		[ "$(export_sha "$DST" "$ref")" = "$(export_sha "$SRC" "$ref")" ]
done

# A target that cannot store the chunks: no group there, nothing to restart.
before=$(total_chunks 3 4)
kill -9 "${NODE_PID[4]}"
wait_until 15 sh -c "[ \$('$CTL' --meta '$DST' node list | grep -c ' live ') = 1 ]"
rc=0; "$CTL" group send md.2 --to "$DST" 2>"$WORK/err" || rc=$?
sed 's/^/# /' "$WORK/err"
check "a send to a target with too few live nodes fails (exit 5)" [ $rc = 5 ]
check "... and publishes no group there" \
	[ "$("$CTL" --meta "$DST" job latest md)" = "md.1 vm0@1 vm1@1" ]

start_node 4
wait_until 15 sh -c "[ \$('$CTL' --meta '$DST' node list | grep -c ' live ') = 2 ]"
out=$("$CTL" group send md.2 --to "$DST" 2>"$WORK/err")
sed 's/^/# /' "$WORK/err"
after=$(total_chunks 3 4)
diag "target nodes: $before chunks before, $after after"
check "md.2 sent" [ "$out" = "md.2 vm0@2 vm1@2" ]
check "only the three differing extents of each image were read" \
	[ "$(grep -c ': 3 of 32 extents differed, 2 read$' "$WORK/err")" = 2 ]
# (counted from before the failed send, which may have left copies)
check "only the four new chunks were stored, twice each (R=2)" [ $((after - before)) = 8 ]
for i in 0 1; do
	tv=$(sed -n "s/.* vm$i@\([0-9]*\).*/\1/p" <<<"$out")
	check "vm$i@2 is byte-identical at the target (vm$i@$tv)" \
		[ "$(export_sha "$DST" "vm$i@$tv")" = "$(export_sha "$SRC" "vm$i@2")" ]
done
check "md.2 is the target's latest group of md" \
	[ "$("$CTL" --meta "$DST" job latest md | cut -d' ' -f1)" = md.2 ]

rc=0; "$CTL" group send md.2 --to "$DST" 2>"$WORK/err" || rc=$?
check "a group the target has is refused (exit 4)" \
	failed_with $rc 4 'target already has a group md.2'
rc=0; "$CTL" group send md.9 --to "$DST" 2>/dev/null || rc=$?
check "an unknown group: exit 3" [ $rc = 3 ]
rc=0; "$CTL" -t 1000 group send md.1 --to tcp://127.0.0.1:1 2>"$WORK/err" || rc=$?
check "an unreachable target: exit 5" [ $rc = 5 ]
done_testing
