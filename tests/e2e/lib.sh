# SPDX-License-Identifier: GPL-2.0
# End-to-end tests: a repository (blobcr-metad and storage nodes) on the
# host's loopback, guests as the compute hosts.  Guests reach the services
# at 10.0.2.2 (QEMU user networking); nodes registered with loopback
# addresses are reached through the same host (see repository.rst).
# Builds on the repository tests' helpers (TAP, daemons, cleanup).
. "$TOP/tests/repo/lib.sh"

VM=$TOP/tests/vm/run
# Guests see the host's files read-only, but not its /tmp: their scripts
# and outputs go through a per-guest shared directory under build/.
GUESTS=$(mktemp -d "$TOP/build/e2e.XXXXXX")
trap 'cleanup; rm -rf "$GUESTS"' EXIT
# Keys where guests see them; guests are compute hosts: key "host".
KEYS=$GUESTS/keys

# guest_meta: the version manager's address as a guest sees it.
guest_meta() { echo "tcp://10.0.2.2:${META##*:}"; }

# start_repo N: metad and N storage nodes, all live.
start_repo() {
	local i
	start_metad || return 1
	for i in $(seq 1 "$1"); do start_node "$i" || return 1; done
	wait_live "$1"
}

# make_ext4 FILE MIB DIR: an ext4 image holding DIR's files.
make_ext4() {
	truncate -s "${2}M" "$1" &&
	mkfs.ext4 -q -F -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 \
		-d "$3" "$1"
}

# in_guest NAME SCRIPT [vm options...]: run SCRIPT (sh -e) in a guest with
# networking and one scratch disk of $GUEST_DISK (default 512M: /dev/vda,
# the cache); its output
# goes to $WORK/NAME.out and is shown as TAP comments.
in_guest() {
	local name=$1 script=$2 rc
	shift 2
	mkdir -p "$GUESTS/$name"
	printf '%s\n' "$script" >"$GUESTS/$name/script.sh"
	"$VM" --net --name "$name" --timeout 600 --disk "${GUEST_DISK:-512M}" \
		--outdir "$GUESTS/$name" \
		--env BLOBCR_META="$(guest_meta)" --env PATH="$TOP/tools:$PATH" \
		--env BLOBCR_KEY="$KEYS/host.key" \
		"$@" -- sh -e /run/vm-out/script.sh >"$WORK/$name.out" 2>&1
	rc=$?
	sed "s/^/# $name: /" "$WORK/$name.out"
	return $rc
}

# out_value NAME KEY: the value of a "KEY=value" line the guest printed.
out_value() { sed -n "s/^$2=//p" "$WORK/$1.out" | tail -n 1; }

# Device contents are read with O_DIRECT: a mounted file system's block
# device page cache can hold journal blocks that never reach the disk.

# same A B: A and B are equal and not empty.
same() { [ -n "$1" ] && [ "$1" = "$2" ]; }

# lt A B: A and B are integers and A < B.  (check runs one command: put
# compound conditions in such a predicate, never after it with &&.)
lt() {
	[[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] && [ "$1" -lt "$2" ]
}

# versions IMAGE: its version numbers, one per line.
versions() { "$CTL" image versions "$1" | awk 'NR > 1 { print $1 }'; }
