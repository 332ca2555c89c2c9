#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Failure domains (issue 10, item 11): a chunk's R replicas sit in R
# distinct domains, and the domain of the host writing a checkpoint never
# counts towards R, so that the checkpoint survives that host.
# Nodes 1, 2, 3 in domains a, b, c; node 4 in domain c too.
set -u
. "$(dirname "$0")/lib.sh"

exports_exact() { "$CTL" -t 3000 image export "$1" "$WORK/out" && cmp "$2" "$WORK/out"; }

check "metad starts (R=2)" start_metad --replicas 2 --repair-interval-s 0
check "node 1 starts in domain a" start_node 1 --domain a
check "node 2 starts in domain b" start_node 2 --domain b
check "node 3 starts in domain c" start_node 3 --domain c
check "node 4 starts in domain c" start_node 4 --domain c
check "four nodes live" wait_live 4
check "node list shows the domains" \
	bash -c "'$CTL' node list | awk '\$1 == 4 { exit \$3 != \"c\" }'"
head -c $((8 << 20)) /dev/urandom >"$WORK/img"
n=32 # chunks of 256 KiB

# The writer is a host of domain a: no copy there, one in b, one in c.
check "import from a host of domain a" \
	env BLOBCR_DOMAIN=a "$CTL" -q image import img "$WORK/img"
check "node 1 (the writer's domain) got no copy" test "$(node_chunks 1)" -eq 0
check "domain b holds every chunk once" test "$(node_chunks 2)" -eq $n
check "domain c holds every chunk once, never twice" \
	test "$(total_chunks 3 4)" -eq $n
kill -KILL "${NODE_PID[1]}"
wait "${NODE_PID[1]}" 2>/dev/null
check "the writer's host dies: the checkpoint is whole" exports_exact img "$WORK/img"

# Repairs keep the rule: a copy in c lost, a new one in c, none in a.
check "node 1 back" start_node 1 --domain a
check "four live" wait_live 4
c3=$(node_chunks 3)
kill -KILL "${NODE_PID[3]}"
wait "${NODE_PID[3]}" 2>/dev/null
check "metad declares node 3 dead" wait_live 3
"$CTL" -t 3000 node repair >"$WORK/repair" 2>&1
diag "$(cat "$WORK/repair")"
check "repair copies node 3's chunks" grep -q "repaired=$c3 " "$WORK/repair"
check "to node 4 (domain c), not to the writer's domain" \
	test "$(node_chunks 4)" -eq $n -a "$(node_chunks 1)" -eq 0

# Two domains left, the writer in one of them: R=2 cannot be met.
kill -KILL "${NODE_PID[2]}"
wait "${NODE_PID[2]}" 2>/dev/null
check "metad declares node 2 dead" wait_live 2
head -c $((2 << 20)) /dev/urandom >"$WORK/img2"
env BLOBCR_DOMAIN=a "$CTL" image import two "$WORK/img2" 2>"$WORK/err"
check "import from domain a with only a and c live: exit 5" test $? -eq 5
check "it names failure domains" grep -q "distinct failure domains" "$WORK/err"
check "nothing published" bash -c "! grep -q 'published two@' '$WORK/metad.log'"
# From a host outside the repository's domains, a and c make two.
check "the same import from another host succeeds" \
	env BLOBCR_DOMAIN=elsewhere "$CTL" -q image import two "$WORK/img2"
check "and exports byte-exact" exports_exact two "$WORK/img2"
done_testing
