# SPDX-License-Identifier: GPL-2.0
# MPI jobs across test guests on a tests/vm/netbed bridge: one guest per
# host, each running sshd (tests/mpi/guest-sshd) with the job's key, and
# one of them launching the job (tests/mpi/mpirun).  Source it from a .vmt
# script run from the top of the tree; it puts the script in a bed of its
# own first.
[ -n "${VM_BRIDGE:-}" ] || exec "$TOP/tests/vm/netbed" -- "$0" "$@"

VM=$TOP/tests/vm/run
T_N=0
T_FAILED=0
ok() { T_N=$((T_N + 1)); echo "ok $T_N - $1"; }
not_ok() { T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_N - $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
diag() { echo "# $*"; }
done_testing() { echo "1..$T_N"; [ "$T_FAILED" -eq 0 ]; }

# Guests see the host's files read-only, but not its /tmp: keys, scripts
# and outputs live in a directory under build/.
JOB=$(mktemp -d "$TOP/build/mpi.XXXXXX")
trap 'rm -rf "$JOB"' EXIT
ssh-keygen -q -t ed25519 -N "" -C mpi-test -f "$JOB/key" || exit 1

# host_ip N: the bridge address of host N (N from 1).
host_ip() { echo "$VM_BRIDGE_SUBNET.$((10 + $1))"; }

# rank_host N [vm options...]: boot host N in the background, running
# $JOB/hostN/setup.sh (sh -e) first if it exists, then sshd until
# rank_hosts_stop; its output goes to $JOB/hostN.out, the runner's pid
# is HOST_PID[N] (kill -9 it to lose the host).
RANK_PIDS=""
HOST_PID=()
rank_host() {
	local n=$1
	shift
	mkdir -p "$JOB/host$n"
	"$VM" --bridge "$VM_BRIDGE" --ip "$(host_ip "$n")/24" --name "host$n" \
		--cpus 1 --timeout 900 --outdir "$JOB/host$n" "$@" -- sh -c "
		[ ! -e /run/vm-out/setup.sh ] || sh -e /run/vm-out/setup.sh
		$TOP/tests/mpi/guest-sshd $JOB/key.pub
		while [ ! -e /run/vm-out/stop ]; do sleep 1; done" \
		>"$JOB/host$n.out" 2>&1 &
	HOST_PID[n]=$!
	RANK_PIDS="$RANK_PIDS $!"
}

# rank_hosts_stop: let every rank_host guest power off, and wait for them.
rank_hosts_stop() {
	local d p
	for d in "$JOB"/host*/; do touch "$d/stop"; done
	for p in $RANK_PIDS; do wait "$p"; done
	RANK_PIDS=""
}

# launch N SCRIPT [vm options...]: boot host N as the job's launcher and
# run SCRIPT (sh -e) there, with $MPIRUN naming tests/mpi/mpirun and
# $JOB_OUT its writable directory ($JOB/hostN on the host); its output
# goes to $JOB/hostN.out and is shown as TAP comments.
launch() {
	local n=$1 script=$2 rc
	shift 2
	mkdir -p "$JOB/host$n"
	printf '%s\n' "$script" >"$JOB/host$n/script.sh"
	"$VM" --bridge "$VM_BRIDGE" --ip "$(host_ip "$n")/24" --name "host$n" \
		--cpus 1 --timeout 900 --outdir "$JOB/host$n" \
		--env BLOBCR_SSH_KEY="$JOB/key" \
		--env MPIRUN="$TOP/tests/mpi/mpirun" --env JOB_OUT=/run/vm-out \
		"$@" -- sh -ec "$TOP/tests/mpi/guest-sshd $JOB/key.pub
			. /run/vm-out/script.sh" >"$JOB/host$n.out" 2>&1
	rc=$?
	sed "s/^/# host$n: /" "$JOB/host$n.out"
	return $rc
}
