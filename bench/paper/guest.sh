#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest side of bench/paper/run (runs inside a tests/vm/run guest; see
# Documentation/benchmarks.rst).  One role per guest:
#
#   ckpt-blobcr, ckpt-qcow2        one checkpoint of SMALL MB on a fresh
#                                  deployment, then COUNT successive
#                                  checkpoints of LARGE MB on another one
#   restart-blobcr, restart-qcow2  restart both from their checkpoints and
#                                  read the state back (sha256 verified)
#   conc-blobcr, conc-qcow2        one deployment of several started at
#                                  once: CONC MB, a barrier, a checkpoint
#
# The "application" keeps its state in a buffer in RAM (/tmp is tmpfs),
# dumps it into a file on the deployed disk, syncs, and asks for a
# checkpoint.  Results are "res KEY=VALUE" lines on stdout.
#
# Environment (from bench/paper/run): SMALL LARGE COUNT CONC (MB),
# XPORT (the qcow2 copies' receiver on the host), BPORT (the barrier),
# BASE (the raw base image, on the host's file system shared over 9p),
# DELETE_OLD, IDX (conc: this guest's index), and for the restarts S1_REF S1_SHA
# S2_REF S2_SHA (dm-blobcr: IMAGE@VERSION; qcow2: the copy's name).
set -euo pipefail

HOST=10.0.2.2
now() { date +%s%3N; }
res() { echo "res $1=$2"; }
log() { echo "guest: $*" >&2; }

# The app's buffer: SIZE MB of fresh random data, in RAM.
fill() { head -c "${1}M" /dev/urandom >/tmp/buf; }
buf_sha() { sha256sum /tmp/buf | cut -d' ' -f1; }

# dump FILE PREFIX: write the buffer into FILE and sync (the app's dump).
dump() {
	local t0
	t0=$(now)
	cp /tmp/buf "$1"
	sync
	res "$2_write_ms" $(($(now) - t0))
}

# used: bytes the storage nodes use, summed (blobcrctl node list's USED).
used() { blobcrctl node list | awk 'NR > 1 { s += $NF } END { print s + 0 }'; }

# barrier: wait until every guest of this round is there (a host service
# that answers when all have connected).
barrier() { socat -u "TCP:$HOST:$BPORT" - >/dev/null; }

# ---- dm-blobcr --------------------------------------------------------

# bc_ckpt MNT DMNAME PREFIX: the checkpoint request.  blobcrctl commit
# --freeze freezes the file system (what a checkpointing proxy does to the
# VM), has the target take the dirty set and thaws it at once; the upload
# goes on behind.  The app is paused from the freeze to the thaw, both
# timed by blobcrctl.  Completion is when the version is published.
bc_ckpt() {
	local mnt=$1 dm=$2 p=$3 t0 t1 v err
	t0=$(now)
	if ! v=$(blobcrctl commit --freeze "$mnt" "$dm" 2>/tmp/commit.err); then
		cat /tmp/commit.err >&2
		return 1
	fi
	t1=$(now)
	err=$(cat /tmp/commit.err)
	log "$err"
	res "${p}_version" "$v"
	res "${p}_ckpt_ms" $((t1 - t0))
	res "${p}_freeze_ms" "$(sed -n 's/.* in \([0-9.]*\) ms, thawed.*/\1/p' <<<"$err")"
	res "${p}_pause_ms" "$(sed -n 's/.* in \([0-9.]*\) ms, thawed \([0-9.]*\) ms later/\1 \2/p' <<<"$err" |
		awk '{ printf "%.0f", $1 + $2 }')"
	res "${p}_kpause_ms" "$(sed -n 's/.*writes paused \([0-9.]*\) ms.*/\1/p' <<<"$err")"
	res "${p}_extents" "$(sed -n 's/.*, \([0-9]*\) extents,.*/\1/p' <<<"$err")"
}

# bc_deploy REF CACHE DMNAME MNT [--commit-to IMAGE]
bc_deploy() {
	local ref=$1 cache=$2 dm=$3 mnt=$4
	shift 4
	blobcrctl deploy "$ref" --cache "$cache" --as "$dm" "$@" >/dev/null
	mkdir -p "$mnt"
	mount "/dev/mapper/$dm" "$mnt"
}

# bc_undeploy DMNAME MNT; blobcrd's log goes to the run's outputs.
bc_undeploy() {
	umount "$2"
	blobcrctl undeploy "$1" >/dev/null
	cp "/run/blobcr/$1.log" "$VM_OUT/blobcrd-$1.log" 2>/dev/null || true
}

# ---- qcow2-disk (the paper's baseline) --------------------------------

# The overlays live on an ext4 of the guest's own disk (its "local disk");
# qemu-nbd serves them as /dev/nbdN.
q_setup() {
	modprobe nbd nbds_max=4
	mkfs.ext4 -q -F /dev/vda
	mkdir -p /mnt/local
	mount /dev/vda /mnt/local
}

# q_attach OVERLAY NBD MNT
q_attach() {
	qemu-nbd -f qcow2 -c "$2" "$1"
	# the size shows up once the client has negotiated
	for _ in $(seq 100); do
		[ "$(blockdev --getsize64 "$2" 2>/dev/null || echo 0)" -gt 0 ] && break
		sleep 0.1
	done
	mkdir -p "$3"
	mount "$2" "$3"
}

q_detach() { umount "$2"; qemu-nbd -d "$1" >/dev/null; }

# q_put FILE NAME: copy FILE whole to the host; the host fsyncs it and
# answers "OK SIZE".
q_put() {
	local r
	r=$({ echo "PUT $2"; cat "$1"; } | socat -b 262144 -t 600 - "TCP:$HOST:$XPORT")
	[ "${r%% *}" = OK ] || { log "PUT $2: '$r'"; return 1; }
	echo "${r#OK }"
}

# q_get NAME FILE
q_get() {
	echo "GET $1" | socat -b 262144 -t 600 - "TCP:$HOST:$XPORT" >"$2"
	[ -s "$2" ]
}

# q_ckpt MNT OVERLAY NAME PREFIX: freeze, copy the overlay whole, thaw.
# The guest stays frozen for the whole copy (the paper's baseline).
q_ckpt() {
	local mnt=$1 ov=$2 name=$3 p=$4 t0 t1 size
	t0=$(now)
	fsfreeze -f "$mnt"
	res "${p}_freeze_ms" $(($(now) - t0))
	if ! size=$(q_put "$ov" "$name"); then
		fsfreeze -u "$mnt"
		return 1
	fi
	fsfreeze -u "$mnt"
	t1=$(now)
	res "${p}_ckpt_ms" $((t1 - t0))
	res "${p}_pause_ms" $((t1 - t0))
	res "${p}_copied" "$size"
}

# ---- roles ------------------------------------------------------------

# successive MNT CKPT_FN...: COUNT checkpoints of LARGE MB.  Step k fills
# the buffer anew, dumps it into state.k, syncs and checkpoints: the
# paper's figure 5, where every checkpoint file stays on the disk.  With
# DELETE_OLD=1 the app deletes state.(k-1) once state.k is on disk (it
# keeps only its latest checkpoint; ext4 then reuses freed blocks).
successive() {
	local mnt=$1 k
	shift
	for k in $(seq 1 "$COUNT"); do
		fill "$LARGE"
		dump "$mnt/state.$k" "s2_$k"
		res "s2_${k}_sha" "$(buf_sha)"
		if [ "${DELETE_OLD:-0}" = 1 ] && [ "$k" -gt 1 ]; then
			rm -f "$mnt/state.$((k - 1))"
			sync
		fi
		"$@" "s2_$k"
	done
}

role_ckpt_blobcr() {
	local u0
	bc_deploy base /dev/vda s1 /mnt/s1 --commit-to s1run
	fill "$SMALL"
	dump /mnt/s1/state.1 s1
	res s1_sha "$(buf_sha)"
	u0=$(used)
	bc_ckpt /mnt/s1 s1 s1
	res s1_stored $(($(used) - u0))
	bc_undeploy s1 /mnt/s1

	bc_deploy base /dev/vdb s2 /mnt/s2 --commit-to s2run
	bc_succ() {
		local u0
		u0=$(used)
		bc_ckpt /mnt/s2 s2 "$1"
		res "$1_stored" $(($(used) - u0))
	}
	successive /mnt/s2 bc_succ
	blobcrctl status s2 >&2
	bc_undeploy s2 /mnt/s2
}

role_ckpt_qcow2() {
	q_setup
	qemu-img create -q -f qcow2 -b "$BASE" -F raw /mnt/local/s1.qcow2
	q_attach /mnt/local/s1.qcow2 /dev/nbd0 /mnt/s1
	fill "$SMALL"
	dump /mnt/s1/state.1 s1
	res s1_sha "$(buf_sha)"
	q_ckpt /mnt/s1 /mnt/local/s1.qcow2 s1 s1
	q_detach /dev/nbd0 /mnt/s1

	qemu-img create -q -f qcow2 -b "$BASE" -F raw /mnt/local/s2.qcow2
	q_attach /mnt/local/s2.qcow2 /dev/nbd1 /mnt/s2
	q_succ() { q_ckpt /mnt/s2 /mnt/local/s2.qcow2 "$1" "$1"; }
	successive /mnt/s2 q_succ
	q_detach /dev/nbd1 /mnt/s2
}

# restored PREFIX FILE EXPECTED_SHA T0: the state is back in the buffer.
restored() {
	local p=$1 t1
	res "${p}_mounted_ms" $(($(now) - $4))
	cp "$2" /tmp/buf
	t1=$(now)
	res "${p}_restart_ms" $((t1 - $4))
	if [ "$(buf_sha)" = "$3" ]; then res "${p}_verified" yes; else res "${p}_verified" NO; fi
}

role_restart_blobcr() {
	local t0
	t0=$(now)
	bc_deploy "$S1_REF" /dev/vda r1 /mnt/r1 --commit-to r1run
	restored r1 /mnt/r1/state.1 "$S1_SHA" "$t0"
	res r1_present "$(blobcrctl status r1 | sed -n 's/.* present=\([0-9]*\/[0-9]*\).*/\1/p')"
	bc_undeploy r1 /mnt/r1

	t0=$(now)
	bc_deploy "$S2_REF" /dev/vdb r2 /mnt/r2 --commit-to r2run
	restored r2 /mnt/r2/state.1 "$S2_SHA" "$t0"
	res r2_present "$(blobcrctl status r2 | sed -n 's/.* present=\([0-9]*\/[0-9]*\).*/\1/p')"
	bc_undeploy r2 /mnt/r2
}

role_restart_qcow2() {
	local t0
	q_setup
	t0=$(now)
	q_get "$S1_REF" /mnt/local/r1.qcow2
	res r1_copy_ms $(($(now) - t0))
	q_attach /mnt/local/r1.qcow2 /dev/nbd0 /mnt/r1
	restored r1 /mnt/r1/state.1 "$S1_SHA" "$t0"
	q_detach /dev/nbd0 /mnt/r1

	t0=$(now)
	q_get "$S2_REF" /mnt/local/r2.qcow2
	res r2_copy_ms $(($(now) - t0))
	q_attach /mnt/local/r2.qcow2 /dev/nbd1 /mnt/r2
	restored r2 /mnt/r2/state.1 "$S2_SHA" "$t0"
	q_detach /dev/nbd1 /mnt/r2
}

role_conc_blobcr() {
	bc_deploy base /dev/vda c /mnt/c --commit-to "c$IDX"
	fill "$CONC"
	dump /mnt/c/state.1 c
	barrier
	bc_ckpt /mnt/c c c
	bc_undeploy c /mnt/c
}

role_conc_qcow2() {
	q_setup
	qemu-img create -q -f qcow2 -b "$BASE" -F raw /mnt/local/c.qcow2
	q_attach /mnt/local/c.qcow2 /dev/nbd0 /mnt/c
	fill "$CONC"
	dump /mnt/c/state.1 c
	barrier
	q_ckpt /mnt/c /mnt/local/c.qcow2 "c$IDX" c
	q_detach /dev/nbd0 /mnt/c
}

# Seconds from the guest kernel's start to here: the boot a restart pays
# on top of restoring the state (the same for both approaches here: the
# guest's OS comes from the host over 9p, not from the benchmarked disk).
res boot_ms "$(awk '{ printf "%d", $1 * 1000 }' /proc/uptime)"
case ${1:-} in
ckpt-blobcr) role_ckpt_blobcr ;;
ckpt-qcow2) role_ckpt_qcow2 ;;
restart-blobcr) role_restart_blobcr ;;
restart-qcow2) role_restart_qcow2 ;;
conc-blobcr) role_conc_blobcr ;;
conc-qcow2) role_conc_qcow2 ;;
*) echo "guest.sh: unknown role '${1:-}'" >&2; exit 2 ;;
esac
echo "res done=1"
