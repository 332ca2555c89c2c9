#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# kill -9 during `blobcr-metad --rebuild` (issue 10): at the first step
# (one node read), half way through the manifests and at the last step
# before the end, counted by steps (--test-rebuild-pause), not by time.
# Started again, with --rebuild or without it, metad does the rebuild
# again and serves only once it is complete: every list as before, every
# export byte-exact.  (A metad that served the part it had would let gc
# take the chunks of the versions not yet back for strays.)
set -u
. "$(dirname "$0")/lib.sh"

snapshot() { repo_listing >"$1" 2>&1; }
exports_all() { exports_match "a@1 v1" "a@3 v3" "c@1 c1" "c c1" "b b1"; }
kill_metad() { kill -KILL "$METAD_PID"; wait "$METAD_PID" 2>/dev/null; }
rebuilds() { grep -c "rebuilt from 3 nodes" "$WORK/metad.log"; }
rebuilt_n() { test "$(rebuilds)" -ge "$1"; }
paused_at() { grep -q "rebuild: paused after $1 steps" "$WORK/metad.log"; }

check "metad starts (R=2)" start_metad --replicas 2
for i in 1 2 3; do check "node $i starts" start_node $i; done
check "three nodes live" wait_live 3
make_image "$WORK/v1" 8
change_extents "$WORK/v1" "$WORK/v2" 1 2
change_extents "$WORK/v2" "$WORK/v3" 2 9
change_extents "$WORK/v1" "$WORK/c1" 5
make_image "$WORK/b1" 4
check "import a" "$CTL" -q image import a "$WORK/v1"
check "a@2" "$CTL" -q image commit a "$WORK/v2"
check "a@3" "$CTL" -q image commit a "$WORK/v3"
check "delete a@2" "$CTL" image delete a@2
check "clone a@1 as c" "$CTL" image clone a@1 c
check "c@1" "$CTL" -q image commit c "$WORK/c1"
check "import b" "$CTL" -q image import b "$WORK/b1"
check "group g names a@3 and c@1" "$CTL" group publish g a@3 c@1
check "every export as written" exports_all
snapshot "$WORK/before"
check "metad's manifests are all on the nodes" \
	wait_until 20 bash -c "! grep -q 'not on the nodes yet' '$WORK/metad.log'"

# A whole rebuild first: how many steps it takes.
kill_metad
rm -rf "$WORK/meta"
check "a rebuild into an empty directory" start_metad --replicas 2 --rebuild
check "completes" wait_until 60 rebuilt_n 1
steps=$(grep "rebuilt from 3 nodes" "$WORK/metad.log" | tail -n 1 |
	sed -n 's/.*, \([0-9]*\) steps).*/\1/p')
diag "a rebuild takes ${steps:-?} steps"
check "of at least 8 (3 nodes, the manifests, the images' fix)" \
	test "${steps:-0}" -ge 8

n=1
for at in 1 $((steps / 2)) $((steps - 1)); do
	for restart in "--rebuild" "" ; do
		kill_metad
		rm -rf "$WORK/meta"
		start_metad --replicas 2 --rebuild --test-rebuild-pause "$at"
		check "rebuild killed -9 after step $at of $steps" wait_until 60 paused_at "$at"
		kill_metad
		sed -i "s/rebuild: paused after/(was) paused after/" "$WORK/metad.log"
		n=$((n + 1))
		# shellcheck disable=SC2086
		check "metad restarts${restart:+ with $restart}" start_metad --replicas 2 $restart
		check "and does the rebuild again, to its end" wait_until 60 rebuilt_n $n
		check "every export byte-exact" exports_all
		snapshot "$WORK/after"
		check "images, versions, groups as before" cmp -s "$WORK/before" "$WORK/after"
		diff "$WORK/before" "$WORK/after" | head -n 10 | sed 's/^/# /'
	done
done
check "an interrupted rebuild is named in the log" \
	grep -q "a rebuild was interrupted" "$WORK/metad.log"
check "a gc after it all deletes nothing a version needs" \
	bash -c "'$CTL' gc >/dev/null"
check "every export still byte-exact" exports_all
done_testing
