#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Lists come in pages, and groups can be deleted (issue 10, item 8):
#  - past the 8 MiB of one frame, group list still answers, every group;
#  - with metad's pages cut to a few records (a test hook), image,
#    version and group lists are whole, in order, nothing twice;
#  - group delete forgets a group, its versions stay.
set -u
. "$(dirname "$0")/lib.sh"

check "metad starts (R=1)" start_metad --replicas 1 --repair-interval-s 0
check "node starts" start_node 1
check "node live" wait_live 1

# --- more than a frame of groups
LONG=$(printf 'i%.0s' $(seq 127)) # the longest image name
truncate -s 256K "$WORK/one"
check "import an image with a 127-byte name" "$CTL" -q image import "$LONG" "$WORK/one"
check "3 groups of 30000 members each (12 MB of group records)" \
	"$TOP/tests/repo/grouptool" "$META" big 3 30000 "$LONG@1"
"$CTL" group list >"$WORK/groups" 2>"$WORK/groups.err"
check "group list answers (exit 0)" test $? -eq 0
diag "$(wc -c <"$WORK/groups") bytes listed; $(cat "$WORK/groups.err")"
check "every group is listed" test "$(cut -d' ' -f1 "$WORK/groups" | tr '\n' ' ')" = "big0 big1 big2 "
check "with every member" test "$(head -1 "$WORK/groups" | wc -w)" -eq 30002
check "group delete big1" "$CTL" group delete big1
check "big1 is gone" test "$("$CTL" group list | cut -d' ' -f1 | tr '\n' ' ')" = "big0 big2 "
"$CTL" group delete big1 2>"$WORK/del.err"
check "deleting it again: not found, exit 3" test $? -eq 3
check "the message names it" grep -q "big1: not found" "$WORK/del.err"
check "its image stays" "$CTL" -q image export "$LONG" "$WORK/one.out"
"$CTL" group delete 'bad name!' 2>/dev/null
check "a bad name: exit 2" test $? -eq 2

# --- small pages
kill "$METAD_PID" && wait "$METAD_PID" 2>/dev/null
check "metad restarts with pages of 300 bytes" \
	start_metad --replicas 1 --repair-interval-s 0 --test-list-page-bytes 300
check "node live again" wait_live 1
for i in $(seq 10 29); do "$CTL" -q image import "img$i" "$WORK/one" || break; done
check "20 more images" test "$("$CTL" image list | grep -c '^img')" -eq 20
check "image list: every image once, in order" \
	test "$("$CTL" image list | awk '{print $1}' | grep '^img' | tr '\n' ' ')" = \
	"$(for i in $(seq 10 29); do printf 'img%s ' $i; done)"
for v in $(seq 2 15); do
	head -c 4096 /dev/urandom | dd of="$WORK/one" conv=notrunc status=none
	"$CTL" -q image commit img10 "$WORK/one" || break
done
"$CTL" image versions img10 >"$WORK/versions"
diag "$(wc -l <"$WORK/versions") lines of versions"
check "version list: versions 1 to 15, once each" \
	test "$(awk '$1 ~ /^[0-9]+$/ {print $1}' "$WORK/versions" | tr '\n' ' ')" = "$(seq 1 15 | tr '\n' ' ')"
for g in a b c d e f g h; do "$CTL" group publish "grp-$g" img11@1 img12@1 || break; done
check "group list: the 8 small groups and the 2 big ones, in order" \
	test "$("$CTL" group list | cut -d' ' -f1 | tr '\n' ' ')" = \
	"big0 big2 grp-a grp-b grp-c grp-d grp-e grp-f grp-g grp-h "
check "group delete grp-c" "$CTL" group delete grp-c
check "grp-c is gone from the pages" \
	test "$("$CTL" group list | cut -d' ' -f1 | grep -c grp-)" -eq 7
check "img11@1 stays" "$CTL" -q image export img11 "$WORK/img11.out"
done_testing
