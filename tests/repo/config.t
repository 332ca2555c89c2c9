#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Configuration files (blobcr.conf(5)): a repository whose metad, node and
# blobcrctl take every setting from their files, the command line and the
# environment beating the file, no file meaning the defaults, and each
# kind of malformed line refused by every program with its FILE:LINE.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/repo/lib.sh
BLOBCRD=$TOP/userspace/blobcrd/blobcrd
PROXYD=$TOP/userspace/proxyd/blobcr-proxyd

provision_keys || exit 1
ETC=$WORK/etc
mkdir -p "$ETC" "$WORK/empty"
export BLOBCR_CONFIG_DIR=$ETC
unset BLOBCR_META BLOBCR_KEY
META=tcp://127.0.0.1:$(free_port)
NODE=tcp://127.0.0.1:$(free_port)
DEAD=tcp://127.0.0.1:$(free_port) # nothing listens there

cat >"$ETC/metad.conf" <<EOF
# the version manager
listen = $META
data=$WORK/meta
	key   =   $KEYS/metad.key
replicas = 1
EOF
cat >"$ETC/noded.conf" <<EOF
listen = $NODE
data = $WORK/node
meta = $META
key = $(key node1 node)
heartbeat-ms = 200
scrub-mb-s = 0
domain = filedomain
EOF
cat >"$ETC/blobcrctl.conf" <<EOF
meta = $META
key = $KEYS/admin.key
timeout = 2000
EOF

# Only the file tells them where to listen, what to use and where to go.
"$METAD" >>"$WORK/metad.log" 2>&1 &
PIDS="$PIDS $!"
"$NODED" --domain clidomain >>"$WORK/node1.log" 2>&1 &
PIDS="$PIDS $!"
live_one() { "$CTL" node list | grep -q ' live '; }
check "metad, the node and blobcrctl run from their files alone" \
	wait_until 20 live_one
check "the command line beats the file (node --domain)" \
	bash -c "'$CTL' node list | awk '\$3 == \"clidomain\" { f = 1 } END { exit !f }'"
check "the file's settings reach the program (metad replicas = 1)" \
	grep -q ' 1 replicas per chunk' "$WORK/metad.log"

# The proxy too: its run directory and pidfile from its file.
cat >"$ETC/proxyd.conf" <<EOF
run-dir = $WORK/run
vsock-port = 0
pidfile = $WORK/proxyd.pid
EOF
"$PROXYD" >>"$WORK/proxyd.log" 2>&1 &
PIDS="$PIDS $!"
check "blobcr-proxyd serves the run directory and pidfile of its file" \
	wait_until 20 test -s "$WORK/proxyd.pid" -a -d "$WORK/run/proxy"

# exit_is WANT CMD...: CMD's exit status is WANT
exit_is() { local want=$1; shift; "$@" >/dev/null 2>&1; [ $? -eq "$want" ]; }
check "blobcrctl --meta beats the file's meta (unreachable: 5)" \
	exit_is 5 "$CTL" --meta "$DEAD" -t 300 node list
check "\$BLOBCR_META beats the file's meta (unreachable: 5)" \
	exit_is 5 env BLOBCR_META="$DEAD" "$CTL" -t 300 node list
out=$(BLOBCR_CONFIG_DIR=$WORK/empty "$CTL" node list 2>&1)
check "no file: the defaults (no version manager: exit 2)" \
	test $? -eq 2 -a -n "$(grep 'no version manager' <<<"$out")"
check "no file, the environment: as before" \
	exit_is 0 env BLOBCR_CONFIG_DIR="$WORK/empty" BLOBCR_KEY="$KEYS/admin.key" \
	BLOBCR_META="$META" "$CTL" node list
check "--config FILE is read instead" \
	exit_is 5 env BLOBCR_CONFIG_DIR="$WORK/empty" "$CTL" \
	--config "$ETC/blobcrctl.conf" --meta "$DEAD" -t 300 node list
check "--config FILE, the file's settings" \
	exit_is 0 env BLOBCR_CONFIG_DIR="$WORK/empty" "$CTL" \
	--config="$ETC/blobcrctl.conf" node list

# refused PROG CONF LINE WHAT CMD...: with CONF as PROG's file, CMD exits 2
# naming FILE:LINE and saying WHAT, and starts nothing.
refused() {
	local prog=$1 conf=$2 line=$3 what=$4 out rc
	shift 4
	mkdir -p "$WORK/bad" && printf '%b' "$conf" >"$WORK/bad/$prog.conf"
	out=$(BLOBCR_CONFIG_DIR=$WORK/bad timeout 20 "$@" 2>&1)
	rc=$?
	if [ $rc -eq 2 ] && grep -qF "$WORK/bad/$prog.conf:$line: " <<<"$out" &&
		grep -qF "$what" <<<"$out"; then
		ok "$prog: $(printf '%b' "$conf" | sed -n "${line}p") (line $line) refused"
	else
		not_ok "$prog: line $line of '$conf' refused"
		diag "exit $rc: $out"
	fi
}
refused metad '# ok\nlisten tcp://x\n' 2 "expected 'option = value'" "$METAD"
refused noded 'listen = tcp://127.0.0.1:1\nsegment-size = 1\nlisten-to = x\n' \
	3 "unknown option 'listen-to'" "$NODED"
refused blobcrd 'verbose = maybe\n' 1 "'verbose' is yes or no" "$BLOBCRD"
refused proxyd '\nrun-dir =\n' 2 "'run-dir' needs a value" "$PROXYD"
refused blobcrctl 'meta = tcp://a:1\n\n# b\nmeta = tcp://b:1\n' 4 \
	"'meta' is already set on line 1" "$CTL" node list
refused blobcrctl 'help = yes\n' 1 "unknown option 'help'" "$CTL" node list
# Internal options are no settings: the resume guard's, deploy's pipe.
refused proxyd 'guard = 0\n' 1 "unknown option 'guard'" "$PROXYD"
refused proxyd 'test-hold = yes\n' 1 "unknown option 'test-hold'" "$PROXYD"
refused blobcrd 'ready-fd = 1\n' 1 "unknown option 'ready-fd'" "$BLOBCRD"
refused metad 'replicas = 0\n' 1 "bad value '0' for --replicas" \
	"$METAD" --listen "$DEAD" --data "$WORK/never"
refused noded 'domain = a b\n' 1 "bad value 'a b' for --domain" \
	"$NODED" --listen "$DEAD" --data "$WORK/never"
refused blobcrd 'lease-ms = 10\n' 1 "bad value '10' for --lease-ms" "$BLOBCRD"
refused blobcrd 'read-ahead = 5000\n' 1 "bad value '5000' for --read-ahead" \
	"$BLOBCRD"
refused blobcrd 'fetch-retry-s = 3601\n' 1 "bad value '3601' for --fetch-retry-s" \
	"$BLOBCRD"
refused proxyd 'quiesce-timeout = 0\n' 1 "bad value '0' for --quiesce-timeout" \
	"$PROXYD"
refused blobcrctl 'timeout = soon\n' 1 "bad value 'soon' for --timeout" \
	"$CTL" node list
check "a program refusing its file created nothing" test ! -e "$WORK/never"
# The files the packages install parse (--help runs after the file).
for f in metad:"$METAD" noded-STORE:"$NODED" blobcrd:"$BLOBCRD" \
	proxyd:"$PROXYD" blobcrctl:"$CTL"; do
	check "conf/${f%%:*}.conf is valid" \
		exit_is 0 "${f#*:}" --config "$TOP/conf/${f%%:*}.conf" --help
done
out=$("$CTL" --config "$WORK/nonexistent.conf" node list 2>&1)
rc=$?
check "--config naming no file: exit 2, the path named" \
	test $rc -eq 2 -a -n "$(grep -F "$WORK/nonexistent.conf" <<<"$out")"

done_testing
