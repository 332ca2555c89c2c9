#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Where a dm-blobcr commit's time goes inside a TCG guest (the guest side of
# bench/paper/run --probe): the same MB of random bytes
#   - hashed with sha256sum (what the commit path does to every extent),
#   - sent raw over the emulated network with socat (qcow2-disk's copy),
#   - imported with blobcrctl image import (libblobcr's hash + upload, no
#     target, no blobcrd);
# and where a restart's time goes: the same bytes
#   - fetched raw with socat (qcow2-disk's copy back),
#   - exported with blobcrctl image export into /dev/null (libblobcr's
#     fetch + verification, no target, no blobcrd).
# The import's and the export's CPU time (user + system, both vCPUs) are
# reported too: under TCG the guest's CPU, not the network, can be the
# limit.
# Environment: PROBE_MB, XPORT (bench/paper/xfer.sh on the host).
set -euo pipefail
now() { date +%s%3N; }
res() { echo "res $1=$2"; }
head -c "${PROBE_MB}M" /dev/urandom >/tmp/buf
t0=$(now); sha256sum /tmp/buf >/dev/null; res probe_sha_ms $(($(now) - t0))
t0=$(now)
r=$({ echo "PUT probe"; cat /tmp/buf; } | socat -b 262144 -t 600 - "TCP:10.0.2.2:$XPORT")
res probe_socat_ms $(($(now) - t0))
[ "${r%% *}" = OK ]
# timed KEY CMD...: run CMD, its output discarded; KEY_ms is its wall
# time, KEY_cpu_ms its CPU time (user + system).
timed() {
	local key=$1 t0 t TIMEFORMAT='%U %S'
	shift
	t0=$(now)
	t=$({ time "$@" >/dev/null 2>/tmp/probe.err; } 2>&1) || { cat /tmp/probe.err >&2; return 1; }
	res "${key}_ms" $(($(now) - t0))
	res "${key}_cpu_ms" "$(awk -v u="${t% *}" -v s="${t#* }" 'BEGIN { printf "%d", (u + s) * 1000 }')"
}
timed probe_import blobcrctl -q image import probe /tmp/buf
t0=$(now)
echo "GET probe" | socat -b 262144 -t 600 - "TCP:10.0.2.2:$XPORT" >/dev/null
res probe_socat_get_ms $(($(now) - t0))
timed probe_export blobcrctl -q image export probe /dev/null
echo "res done=1"
