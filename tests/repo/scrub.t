#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The background scrubber (issue 10): every node re-reads and verifies its
# chunks at a bounded rate, so rot is found before any read needs the
# chunk; the bad copies are reported, dropped and re-replicated by metad.
set -u
. "$(dirname "$0")/lib.sh"

copies() { total_chunks 1 2 3; }
all_copies() { test "$(copies)" -eq 64; }
stat_of() { "$CTL" node stat "${NODE_ADDR[$1]}" | sed -n "s/^$2=//p"; }
# the counters start again with the process: node 3's since its restart
scrubbed_all() { test "$(stat_of 3 scrubbed)" -ge "$n3"; }

check "metad starts (R=2, re-replication every second)" \
	start_metad --replicas 2 --repair-interval-s 1
for i in 1 2; do check "node $i starts" start_node $i; done
check "node 3 starts, scrubbing at 64 MiB/s" start_node 3 --scrub-mb-s 64
check "three nodes live" wait_live 3
head -c $((8 << 20)) /dev/urandom >"$WORK/img"
check "import 8 MiB at R=2" "$CTL" -q image import img "$WORK/img"
n3=$(node_chunks 3)
check "the scrubber reads all node 3's chunks" wait_until 30 scrubbed_all
check "and finds them sound" test "$(stat_of 3 corrupt)" -eq 0

# Rot on node 3's disk, nobody reads: the scrubber finds it.  (Node 3 is
# stopped while its bytes flip, so that no scrub reads a record half way.)
kill -TERM "${NODE_PID[3]}"
wait "${NODE_PID[3]}"
rot_records "$(ls "$WORK"/node3/seg-*.dat | head -n 1)"
check "node 3 restarts, scrubbing at 64 MiB/s" start_node 3 --scrub-mb-s 64
# (a copy found by two readers at once counts twice: at least n3)
found() { test "$(stat_of 3 corrupt)" -ge "$n3"; }
check "the scrubber finds every rotten copy" wait_until 60 found
check "node 3 reports them to metad" wait_until 10 \
	grep -q "node 3 found .* bad chunks" "$WORK/metad.log"
check "metad re-replicates them by itself" wait_until 30 all_copies
check "without any client reading them" \
	bash -c "! grep -q 'reported bad' '$WORK/metad.log'"
exports_exact() { "$CTL" -t 3000 image export img "$WORK/out" && cmp "$WORK/img" "$WORK/out"; }
check "export byte-exact" exports_exact
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
check "node 1 dies: export byte-exact from nodes 2 and 3" exports_exact
corrupt=$(stat_of 3 corrupt)
passes=$(stat_of 3 scrub_passes)
another_pass() { test "$(stat_of 3 scrub_passes)" -gt "$passes"; }
check "another scrub pass" wait_until 30 another_pass
check "finds node 3's new copies sound" test "$(stat_of 3 corrupt)" -eq "$corrupt"
done_testing
