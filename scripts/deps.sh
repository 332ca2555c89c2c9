#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Install what the build and the tests need, from Debian's packages.
# Idempotent and quiet: does nothing when everything is already there.
set -eu

PACKAGES="
	build-essential pkg-config
	linux-image-amd64 linux-headers-amd64 linux-headers-6.12-amd64
	linux-image-6.12-amd64
	linux-source-6.1 sparse flex bison libelf-dev
	qemu-system-x86 qemu-utils qemu-guest-agent busybox-static kmod
	dmsetup libdevmapper-dev libaio-dev libnanomsg-dev nanomsg-utils
	liblmdb-dev lmdb-utils libssl-dev libisal-dev
	fio e2fsprogs socat cpio iproute2 procps psmisc xz-utils bc time
	gnuplot-nox
	clang libclang-rt-14-dev
	lammps openmpi-bin openssh-client openssh-server criu
	libopenmpi-dev libmpich-dev mpich
	python3-docutils groff-base man-db systemd strace debhelper dh-dkms dkms
	lintian
	libsystemd-dev libjson-c-dev
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	     grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: need root to install packages (run: sudo $0)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/blobcr-deps.XXXXXX)
# A fresh machine has no package lists yet; refresh them once per run.
if ! apt-get update -q -o DPkg::Lock::Timeout=600 >"$log" 2>&1 ||
   ! apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 $missing >>"$log" 2>&1; then
	tail -n 30 "$log" >&2
	echo "deps: apt-get failed, full log in $log" >&2
	exit 1
fi
rm -f "$log"
echo "deps: done" >&2
