#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest side of bench/mpi/run, in test guests host1..hostN on a
# tests/vm/netbed bridge (one MPI rank per guest).  Roles:
#
#   prepare I RANKS   on host I, before its sshd: for each job size P of
#                     RANKS with P >= I, a dm-blobcr deployment bP-I (VM
#                     bP-I of job mpiP, its proxy freezes /mnt/bP) and a
#                     qcow2 overlay of the same base image served by
#                     qemu-nbd at /mnt/qP; then blobcr-proxyd
#   driver RANKS XFER CELLS STEPS COUNT
#                     on host1: for each P, LAMMPS on hosts 1..P, with
#                     dm-blobcr's checkpoints, then with qcow2-disk's
#   rank MODE P XFER CELLS STEPS COUNT
#                     one rank of LAMMPS (run by mpirun on each host)
#
# Caches and overlays live on the guest's own disk (/dev/vda, ext4): the
# "local disk" of both approaches.  Results: "res KEY=VALUE" lines in
# /run/vm-out/res of each guest (bench/mpi/ckpt.py) and on the driver's
# stdout.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${BENCH_BASE:-}

vm_sock() { echo "unix:/run/blobcr/proxy/$1.sock"; }

# ready VM: the proxy serves VM's socket (bounded)
ready() {
	for _ in $(seq 600); do
		blobcr-checkpoint --status -c "$(vm_sock "$1")" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "in-guest: the proxy never served $1" >&2
	return 1
}

role_prepare() {
	local i=$1 p a rc nbd=0 vms=()
	mkfs.ext4 -q -F /dev/vda
	mkdir -p /mnt/local
	mount /dev/vda /mnt/local
	modprobe nbd nbds_max=8
	for p in $2; do
		[ "$p" -ge "$i" ] || continue
		# A guest starved under load can miss even a minute's timeout
		# (exit 5: nothing was made); it tries again.
		for a in 1 2 3; do
			rc=0
			blobcrctl -t 60000 deploy base --cache "/mnt/local/b$p-$i.cache" --as "b$p-$i" \
				--commit-to "mpi$p-$i" --vm "b$p-$i" --quiesce fsfreeze \
				--mount "/mnt/b$p" --job "mpi$p" >/dev/null || rc=$?
			[ "$rc" = 5 ] && [ "$a" -lt 3 ] || break
		done
		[ "$rc" = 0 ] || return 1
		mkdir -p "/mnt/b$p"
		mount "/dev/mapper/b$p-$i" "/mnt/b$p"
		vms+=("b$p-$i")
		qemu-img create -q -f qcow2 -b "$BASE" -F raw "/mnt/local/q$p-$i.qcow2"
		qemu-nbd -f qcow2 -c "/dev/nbd$nbd" "/mnt/local/q$p-$i.qcow2"
		for _ in $(seq 100); do
			[ "$(blockdev --getsize64 "/dev/nbd$nbd" 2>/dev/null || echo 0)" -gt 0 ] && break
			sleep 0.1
		done
		mkdir -p "/mnt/q$p"
		mount "/dev/nbd$nbd" "/mnt/q$p"
		nbd=$((nbd + 1))
	done
	blobcr-proxyd --quiesce-timeout 60000 >/run/vm-out/proxyd.log 2>&1 &
	for v in "${vms[@]}"; do ready "$v"; done
}

# used: bytes the storage nodes hold, summed (the guests are slow under load:
# a generous timeout)
used() { blobcrctl -t 60000 node list | awk 'NR > 1 { s += $NF } END { print s + 0 }'; }

role_driver() {
	local ranks=$1 xfer=$2 p i hosts mode u0
	shift 2
	for p in $ranks; do
		hosts=""
		for i in $(seq 1 "$p"); do hosts="$hosts${hosts:+,}$BENCH_SUBNET.$((10 + i))"; done
		for mode in blobcr qcow2; do
			echo "in-guest: $p rank(s), $mode, on $hosts" >&2
			u0=$(used)
			echo "res run_${p}_${mode}_start=$(date +%s)"
			# A failed run (a guest too slow to answer, under load) is
			# reported and the others go on.
			"$MPIRUN" "$hosts" "$HERE/in-guest.sh" rank "$mode" "$p" "$xfer" "$@" ||
				echo "res run_${p}_${mode}_failed=$?"
			echo "res run_${p}_${mode}_end=$(date +%s)"
			[ "$mode" = qcow2 ] || echo "res stored_${p}=$(($(used) - u0))"
		done
	done
}

role_rank() {
	local mode=$1 p=$2 xfer=$3 cells=$4 steps=$5 count=$6 r i
	r=${OMPI_COMM_WORLD_RANK:?run by mpirun}
	i=$((r + 1))
	export BENCH_MODE=$mode BENCH_RES=/run/vm-out/res.$mode.$p
	if [ "$mode" = blobcr ]; then
		export BLOBCR_CHANNEL
		BLOBCR_CHANNEL=$(vm_sock "b$p-$i")
		export BLOBCR_MPI_LIB=$HERE/../../userspace/guest/libblobcr-mpi-openmpi.so
		cd "/mnt/b$p"
	else
		export BENCH_OVERLAY=/mnt/local/q$p-$i.qcow2 BENCH_NAME=q$p-$i BENCH_XFER=$xfer
		cd "/mnt/q$p"
	fi
	exec lmp -in "$HERE/lj.lmp" -var cells "$cells" -var ranks "$p" \
		-var steps "$steps" -var count "$count" -var ckpt "$HERE/ckpt.py" \
		-log "/run/vm-out/lammps.$mode.$p.log" -screen none
}

role=${1:-}
shift || true
case $role in
prepare) role_prepare "$@" ;;
driver) role_driver "$@" ;;
rank) role_rank "$@" ;;
*) echo "in-guest.sh: unknown role '$role'" >&2; exit 2 ;;
esac
