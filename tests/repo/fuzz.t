#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Short libFuzzer runs: the frame decoder (fuzz_frame.c), then the whole
# request handling of metad and of a node (fuzz_metad.c, fuzz_noded.c):
# frames anyone could send, requests in valid sessions of every role,
# changed frames and replays (fuzz_server.h), each bounded by a count of
# inputs (not by time: a loaded machine runs the same inputs, slower) from
# a fixed seed, so that a failure can be run again.
set -u
work=$(mktemp -d /tmp/blobcr-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
n=0 failed=0

# seed DIR NAME HEX: a corpus file from hex digits
seed() { mkdir -p "$1"; printf "$(echo "$3" | sed 's/../\\x&/g')" >"$1/$2"; }
# str TEXT: a wire string (u16 length, bytes) in hex
str() { printf '%04x' ${#1}; printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

# fuzz NAME RUNS WHAT: RUNS inputs of tests/repo/NAME from corpus $work/NAME
fuzz() {
	local bin=tests/repo/$1 log=$work/$1.log
	n=$((n + 1))
	if [ ! -x "$bin" ]; then
		echo "ok $n - fuzz $3 # SKIP clang (Debian package clang) not installed"
		return
	fi
	mkdir -p "$work/$1"
	if "$bin" -runs="$2" -seed=1 -rss_limit_mb=2048 -artifact_prefix="$work/" \
		"$work/$1" >"$log" 2>&1 && grep -q "^Done [0-9]* runs" "$log"; then
		echo "ok $n - fuzz $3: $(grep -o '^Done [0-9]* runs in [0-9]* second(s)' "$log")"
	else
		sed 's/^/# /' "$log" | tail -n 40
		echo "not ok $n - fuzz $3"
		failed=$((failed + 1))
	fi
}

# A PING frame (header fields big-endian, CRCs left to the fuzzer).
seed "$work/fuzz_frame" ping-nocrc 424c4352010100000000000000000000000000010000000000000000000000000000
fuzz fuzz_frame 200000 "the frame decoder"

# metad: mode 1 (sealed), session 2 (admin) or 0 (node), opcode, payload.
m=$work/fuzz_metad
seed "$m" create 010220"$(str a)"0000000000100000""00040000
seed "$m" heartbeat 01001e"$(str tcp://h:1)"11111111111111111111111111111111"$(str d)"0000000000000000000000000000000000000000000000000000000000000000
seed "$m" publish 010227"$(str a)"00000000"$(str l)""$(str w)"0000000000000000""00000001""0000000000000000""00
seed "$m" lookup 010225"$(str a)"00000000""00000001""0000000000000000
seed "$m" locate 01022600000000
seed "$m" clone 010221"$(str a)"00000000"$(str b)"
seed "$m" group 01022e"$(str g)"00000001"$(str a)"00000001
seed "$m" access 010230"$(str a)"00000001000000010000000000000000
seed "$m" versions 010224"$(str a)"
seed "$m" vdelete 010228"$(str a)"00000001
seed "$m" gc 01022a
seed "$m" host-gc 01012a
seed "$m" changed 020220"$(str a)"0000000000100000""00040000
seed "$m" replay 030224"$(str a)"
fuzz fuzz_metad 40000 "metad's request handling"

# A node: a 4-byte chunk and its SHA-256 id.
id=$(printf 'data' | sha256sum | cut -d' ' -f1)
d=$work/fuzz_noded
seed "$d" put 01020a"$id"0000000464617461
seed "$d" get 01020b"$id"
seed "$d" getv 01021000000001"$id"
seed "$d" has 01020c00000001"$id"
seed "$d" delete 01030d00000001"$id"
seed "$d" host-delete 01010d00000001"$id"
seed "$d" stat 01020e
seed "$d" compact 01020f
seed "$d" changed 02020b"$id"
seed "$d" replay 03020e
fuzz fuzz_noded 40000 "a node's request handling"

echo "1..$n"
[ "$failed" -eq 0 ]
