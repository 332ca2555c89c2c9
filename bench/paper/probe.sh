#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Where a dm-blobcr commit's time goes inside a TCG guest (the guest side of
# bench/paper/run --probe): the same MB of random bytes
#   - hashed with sha256sum (what the commit path does to every extent),
#   - sent raw over the emulated network with socat (qcow2-disk's copy),
#   - imported with blobcrctl image import (libblobcr's hash + upload, no
#     target, no blobcrd).
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
t0=$(now); blobcrctl -q image import probe /tmp/buf; res probe_import_ms $(($(now) - t0))
echo "res done=1"
