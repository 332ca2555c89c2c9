#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A publish of any size (issue 10, item 4): a version of 1,048,576 changed
# extents is staged in parts and applied in one transaction; one that metad
# cannot take fails loudly, and nothing of it is published.
set -u
. "$(dirname "$0")/lib.sh"
BIG=$TOP/tests/repo/bigcommit
N=1048576

latest() { "$CTL" image info "$1" | sed -n 's/^latest=//p'; }

check "metad starts (R=2)" start_metad --replicas 2
for i in 1 2; do check "node $i starts" start_node $i; done
check "two nodes live" wait_live 2
# 1 Mi extents of 4 KiB, every one changed, of 16 contents.
"$BIG" "$META" big $N >"$WORK/big.out" 2>&1
rc=$?
verdicts "$WORK/big.out"
check "the commit of $N changed extents published" test $rc -eq 0
grep -v '^pass\|^FAIL' "$WORK/big.out" | sed 's/^/# /'
check "as version 1" test "$(latest big)" -eq 1
check "metad published it whole" grep -q "published big@1 ($N extents changed)" "$WORK/metad.log"
check "version 1 lists $N changed extents" \
	bash -c "'$CTL' image versions --keys big | grep -q '^changed=$N\$'"

# metad answers a commit once every entry is in its transaction: the
# client waits longer for a bigger version (a second more per 10,000
# entries) than the 10 s a request gets by default, as blobcrd has it.
kill -TERM "$METAD_PID"
wait "$METAD_PID"
check "metad restarts, each publish 11 s in its transaction" \
	start_metad --replicas 2 --test-publish-delay-ms 11000
check "nodes live" wait_live 2
"$BIG" "$META" big 200000 0 >"$WORK/big3.out" 2>&1
check "a commit of 200,000 extents with the default timeout publishes" test $? -eq 0
grep -v '^pass' "$WORK/big3.out" | sed 's/^/# /'
check "as version 2" test "$(latest big)" -eq 2

# A metad with too little room for stages refuses a big version, loudly.
kill -TERM "$METAD_PID"
wait "$METAD_PID"
check "metad restarts with 1 MiB for stages" start_metad --replicas 2 --max-stage-mb 1
check "nodes live" wait_live 2
"$BIG" "$META" big 100000 >"$WORK/big2.out" 2>&1
check "a commit of 100,000 extents fails" test $? -eq 1
check "saying why" grep -q "too large for metad's --max-stage-mb" "$WORK/big2.out"
check "nothing of it published" test "$(latest big)" -eq 2
check "metad logged it" grep -q "would exceed --max-stage-mb 1\$" "$WORK/metad.log"
done_testing
