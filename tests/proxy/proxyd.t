#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# blobcr-proxyd on the build machine, where there is no device-mapper: its
# VM files, sockets and protocol robustness.  A VM whose disk does not
# exist gets clear errors; garbage on a VM's socket does not stop the
# proxy; a bad VM file is refused and named; a removed one takes its
# socket away; the resume guard goes away with the proxy.
TOP=$(pwd)
. tests/repo/lib.sh
PROXYD=$TOP/userspace/proxyd/blobcr-proxyd
CK=$TOP/userspace/guest/blobcr-checkpoint
RUN=$WORK/run
same() { [ -n "$1" ] && [ "$1" = "$2" ]; }
mkdir -p "$RUN/vm"
printf "disk nodev\nquiesce none\n" >"$RUN/vm/v.vm"
"$PROXYD" --run-dir "$RUN" --vsock-port 0 >"$WORK/proxyd.log" 2>&1 &
P=$!
PIDS="$PIDS $P"
S=unix:$RUN/proxy/v.sock
wait_until 10 test -S "$RUN/proxy/v.sock"
check "the VM's socket is there" test -S "$RUN/proxy/v.sock"

rc=0; "$CK" -c "$S" --status 2>"$WORK/err" || rc=$?
check "status of a VM whose disk is missing: fails, names the disk" \
	grep -qiE "^[15] .*disk nodev: no such device" <<<"$rc $(cat "$WORK/err")"
rc=0; "$CK" -c "$S" --no-sync 2>"$WORK/err" || rc=$?
check "a checkpoint of it fails the same way" \
	grep -qiE "^[15] .*disk nodev: no such device" <<<"$rc $(cat "$WORK/err")"
rc=0; "$CK" -c "$S" --label "$(printf 'a\tb')" 2>"$WORK/err" || rc=$?
check "a label with a control character is refused before sending" \
	grep -q "^1 .*printable" <<<"$rc $(cat "$WORK/err")"
rc=0; "$CK" -c nowhere:x --status 2>/dev/null || rc=$?
check "a channel that cannot be parsed: usage error" same "$rc" 2

head -c 65536 /dev/urandom | socat -t 2 - UNIX-CONNECT:"$RUN/proxy/v.sock" >/dev/null 2>&1
printf 'BCPX%.0s' $(seq 200) | socat -t 2 - UNIX-CONNECT:"$RUN/proxy/v.sock" >/dev/null 2>&1
rc=0; "$CK" -c "$S" --status 2>"$WORK/err" || rc=$?
check "after garbage on its socket the proxy still answers" \
	grep -qiE "^[15] .*no such device" <<<"$rc $(cat "$WORK/err")"

printf "disk ok\nbogus line\n" >"$RUN/vm/bad.vm"
wait_until 10 grep -q "bad.vm: line 2: cannot use 'bogus line'" "$WORK/proxyd.log"
check "a bad VM file is refused, naming its line" \
	grep -q "bad.vm: line 2: cannot use 'bogus line'" "$WORK/proxyd.log"
check "and gets no socket" test ! -e "$RUN/proxy/bad.sock"
rm "$RUN/vm/v.vm"
wait_until 10 test ! -e "$RUN/proxy/v.sock"
check "a removed VM file takes its socket away" test ! -e "$RUN/proxy/v.sock"

guard=$(pgrep -f "blobcr-proxyd --guard" -P "$P")
check "the resume guard runs" test -n "$guard"
kill -9 "$P"
wait_until 10 sh -c "! kill -0 $guard 2>/dev/null"
check "the guard exits with the proxy (nothing held)" sh -c "! kill -0 $guard 2>/dev/null"
done_testing
