#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A short libFuzzer run of the frame decoder (tests/repo/fuzz_frame.c).
set -u
FUZZ=tests/repo/fuzz_frame
if [ ! -x "$FUZZ" ]; then
	echo "ok 1 - fuzz the frame decoder # SKIP clang (Debian package clang) not installed"
	echo "1..1"
	exit 0
fi
work=$(mktemp -d /tmp/blobcr-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
# Seeds: a valid PING frame and a valid GET frame, header fields big-endian.
printf 'BLCR\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00' >"$work/corpus/ping-nocrc"
if "$FUZZ" -max_total_time=20 -runs=5000000 -rss_limit_mb=1024 \
	-artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1; then
	echo "ok 1 - fuzz the frame decoder for 20 s: $(grep -o 'Done [0-9]* runs' "$work/log")"
else
	sed 's/^/# /' "$work/log" | tail -n 30
	echo "not ok 1 - fuzz the frame decoder"
fi
echo "1..1"
