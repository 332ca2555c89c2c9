# SPDX-License-Identifier: GPL-2.0
# Shared helpers of the repository tests: TAP output, daemons on random free
# loopback ports, a scratch directory, keys, cleanup on exit.  Source it from
# a .t script run from the top of the tree.

TOP=${TOP:-$(pwd)}
NODED=$TOP/userspace/noded/blobcr-noded
METAD=$TOP/userspace/metad/blobcr-metad
CTL=$TOP/tools/blobcrctl
T_N=0
T_FAILED=0
PIDS=""
WORK=$(mktemp -d /tmp/blobcr-test.XXXXXX)

ok() { T_N=$((T_N + 1)); echo "ok $T_N - $1"; }
not_ok() { T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_N - $1"; }
skip() { T_N=$((T_N + 1)); echo "ok $T_N - $1 # SKIP $2"; }
# check NAME CMD...: one TAP line from a command's exit status
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
diag() { echo "# $*"; }

cleanup() {
	local p
	# A caller's set -e must not stop the cleanup at a daemon already gone.
	set +e
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $PIDS; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
	done
	if [ "$T_FAILED" -gt 0 ] && [ -d "$WORK" ]; then
		for f in "$WORK"/*.log; do
			[ -f "$f" ] || continue
			echo "# --- $f (last 20 lines)"; tail -n 20 "$f" | sed 's/^/# /'
		done
	fi
	if [ -n "${KEEP_WORK:-}" ]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# free_port: a TCP port nothing listens on (the daemon's bind is the check)
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"; return 0
		fi
	done
	return 1
}

# wait_until SECONDS CMD...: poll a condition, bounded
wait_until() {
	local t=$1; shift
	local i
	for i in $(seq $((t * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# Keys (Documentation/security.rst): one per entity in $KEYS, made on first
# use: metad, one per node, "admin" (BLOBCR_KEY: what $CTL uses) and
# "host" (what a compute host uses).  A caller may set KEYS first (guests
# must see it: tests/e2e/lib.sh puts it under build/).
KEYS=${KEYS:-$WORK/keyring}
# key NAME ROLE: the path of key NAME, made if missing
key() {
	[ -f "$KEYS/$1.key" ] ||
		"$CTL" key create --dir "$KEYS" "$1" "$2" >/dev/null || return 1
	echo "$KEYS/$1.key"
}
provision_keys() {
	key metad metad >/dev/null && key admin admin >/dev/null &&
		key host host >/dev/null || return 1
	export BLOBCR_KEY=$KEYS/admin.key
}

# start_metad [extra options]: sets META (kept across restarts), METAD_PID,
# exports BLOBCR_META
start_metad() {
	local port
	provision_keys || return 1
	if [ -z "${META:-}" ]; then
		port=$(free_port) || return 1
		META=tcp://127.0.0.1:$port
	fi
	META_DIR=${META_DIR:-$WORK/meta}
	"$METAD" --listen "$META" --data "$META_DIR" --key "$KEYS/metad.key" \
		--dead-after-ms "${DEAD_AFTER_MS:-4000}" --gc-start-wait-s 0 "$@" \
		>>"$WORK/metad.log" 2>&1 &
	METAD_PID=$!
	PIDS="$PIDS $METAD_PID"
	export BLOBCR_META=$META
	wait_until 10 "$CTL" -t 500 node list
}

# start_node I [extra options]: node I on a fresh port, NODE_ADDR[I],
# NODE_PID[I], with key node$I.
# Every node is a host of its own: failure domain nodeI (--domain overrides).
# No background scrub unless asked (--scrub-mb-s): tests count corrupt reads.
declare -a NODE_ADDR NODE_PID
start_node() {
	local i=$1; shift
	local port nkey
	provision_keys && nkey=$(key "node$i" node) || return 1
	if [ -z "${NODE_ADDR[$i]:-}" ]; then
		port=$(free_port) || return 1
		NODE_ADDR[$i]=tcp://127.0.0.1:$port
	fi
	"$NODED" --listen "${NODE_ADDR[$i]}" --data "$WORK/node$i" --meta "$META" \
		--key "$nkey" --heartbeat-ms 200 --domain "node$i" --scrub-mb-s 0 "$@" \
		>>"$WORK/node$i.log" 2>&1 &
	NODE_PID[$i]=$!
	PIDS="$PIDS ${NODE_PID[$i]}"
	wait_until 10 "$CTL" -t 500 node stat "${NODE_ADDR[$i]}"
}

# repo_listing: what a rebuild of metad must give back, as the CLI prints
# it: every image with its versions and keys, and the groups
repo_listing() {
	local i
	"$CTL" image list
	for i in $("$CTL" image list | awk 'NR > 1 { print $1 }'); do
		echo "== $i"
		"$CTL" image info "$i"
		"$CTL" image versions --keys "$i"
	done
	"$CTL" group list
}

# exports_match "IMAGE[@V] FILE"...: each export is byte-exact to $WORK/FILE
exports_match() {
	local spec
	for spec in "$@"; do
		set -- $spec
		"$CTL" -q image export "$1" "$WORK/x" && cmp -s "$WORK/$2" "$WORK/x" || {
			diag "export of $1 differs"; return 1; }
	done
}

# live_nodes: how many nodes metad reports live
live_nodes() { "$CTL" node list | grep -c ' live ' ; }
live_is() { test "$(live_nodes)" -eq "$1"; }
# wait_live N [SECONDS]: until metad reports exactly N live nodes
wait_live() { wait_until "${2:-15}" live_is "$1"; }

# node_chunks I: chunks node I holds
node_chunks() { "$CTL" node stat "${NODE_ADDR[$1]}" | sed -n 's/^chunks=//p'; }
total_chunks() {
	local i s=0
	for i in "$@"; do s=$((s + $(node_chunks "$i"))); done
	echo $s
}

# make_image FILE MIB: random content with holes (every 4th MiB stays a hole)
make_image() {
	local f=$1 mib=$2 i
	truncate -s "${mib}M" "$f"
	for i in $(seq 0 $((mib - 1))); do
		[ $((i % 4)) -eq 3 ] && continue
		echo "$i"
	done | xargs -P 2 -I{} dd if=/dev/urandom of="$f" bs=1M count=1 \
		seek={} conv=notrunc status=none
}

# change_extents SRC DST E...: DST = SRC with its 256 KiB extents E...
# rewritten at random
change_extents() {
	local src=$1 dst=$2 e; shift 2
	cp --sparse=always "$src" "$dst"
	for e in "$@"; do
		dd if=/dev/urandom of="$dst" bs=262144 count=1 seek="$e" \
			conv=notrunc status=none
	done
}

# flip_byte FILE OFFSET: invert one byte in place (overwriting it with a
# constant would leave it unchanged one time in 256)
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' ')
	printf "\\$(printf %03o $((255 - b)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# rot_records FILE: flip a byte in every chunk record of a segment file
# (records of 256 KiB chunks, each behind its 48-byte header)
rot_records() {
	local size off
	size=$(stat -c %s "$1")
	for ((off = 48 + 1000; off < size; off += 48 + 262144)); do
		flip_byte "$1" $off
	done
}

done_testing() {
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ]
}
