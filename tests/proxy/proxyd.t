#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# blobcr-proxyd on the build machine, where there is no device-mapper: its
# VM files, sockets and protocol robustness.  A VM whose disk does not
# exist gets clear errors; a connection opens with a HELLO frame; each
# malformed or unknown request gets its error reply and the connection goes
# on; garbage on a VM's socket does not stop the proxy; a bad VM file is refused and
# named; a removed one takes its socket away; the resume guard goes away
# with the proxy.
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

# The first frame on a connection: HELLO (op 128), reply flag, id 0, no
# payload; bytes 24-27 are its CRC.
hello=$(timeout 30 socat -T 2 -u UNIX-CONNECT:"$RUN/proxy/v.sock" - 2>/dev/null |
	head -c 32 | od -An -tx1 | tr -d " \n")
check "a connection opens with a HELLO frame" \
	grep -qE "^4243505801800001(00){16}[0-9a-f]{8}00000000$" <<<"$hello"

# Frame by frame on one connection: each bad request gets its error reply
# and the connection goes on.
out=$(timeout 120 "$TOP/tests/proxy/wireclient" "$RUN/proxy/v.sock" op 9 2 - \
	op 2 3 u32:0 op 3 4 u64:1,u32:5 ckpt 5 "$(printf 'a\tb')" query 6 2>&1)
sed "s/^/# /" <<<"$out"
check "an unknown operation: EOPNOTSUPP, named" \
	grep -qx "id=2 op=9 status=-95 msg=unknown operation 9" <<<"$out"
check "a checkpoint request without its label: EBADMSG" \
	grep -qx "id=3 op=2 status=-74 msg=malformed checkpoint request" <<<"$out"
check "a wait request with bytes left over: EBADMSG" \
	grep -qx "id=4 op=3 status=-74 msg=malformed wait request" <<<"$out"
check "a label with a control character: EBADMSG" \
	grep -q "^id=5 op=2 status=-74 " <<<"$out"
check "the same connection still answers" \
	grep -qiE "^id=6 op=1 status=-(2|19) msg=disk nodev: no such device$" <<<"$out"

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
