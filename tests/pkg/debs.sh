#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# tests/pkg/debs.sh [DIR]: checks of the Debian packages `make deb` built
# into DIR (default build/deb), run by `make check-pkg` (too slow for
# make check: building the packages, lintian and a module build take
# minutes).  lintian reports nothing that is not overridden with a reason;
# each package holds what it should; DKMS builds dm-blobcr.ko from
# dm-blobcr-dkms's source against Debian's 6.1 headers, in a DKMS tree of
# its own (the system's stays untouched, but for the module signing key
# DKMS makes once in /var/lib/dkms).
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$TOP/build/deb}
. "$TOP/tests/pkg/lib.sh"

changes=$(ls "$dir"/*.changes 2>/dev/null | head -n 1)
if [ -z "$changes" ]; then
	echo "not ok 1 packages built (no .changes in $dir: run make deb)"
	exit 1
fi

out=$(lintian --pedantic --fail-on error,warning,info,pedantic "$changes" 2>&1 |
	grep -v 'running with root privileges')
tap "$([ -z "$out" ]; echo $?)" "lintian --pedantic: nothing left" "$out"

# contents PACKAGE PATH...: PACKAGE's .deb holds each PATH.
contents() {
	local pkg=$1 deb list missing=""
	shift
	deb=$(ls "$dir/${pkg}"_*.deb)
	list=$(dpkg-deb -c "$deb" | awk '{ print $6 }')
	for p in "$@"; do
		grep -qxF "./$p" <<<"$list" || missing+=" $p"
	done
	tap "$([ -z "$missing" ]; echo $?)" "$pkg holds its files" "missing:$missing"
}
contents blobcr-host usr/sbin/blobcrctl usr/sbin/blobcrd usr/sbin/blobcr-proxyd \
	lib/systemd/system/blobcr-proxyd.service lib/systemd/system/blobcrd@.service \
	lib/systemd/system/blobcr-metrics.service lib/systemd/system/blobcr-metrics.timer \
	etc/blobcr/proxyd.conf etc/blobcr/blobcrd.conf etc/blobcr/blobcrctl.conf \
	usr/share/man/man8/blobcrctl.8.gz usr/share/man/man8/blobcrd.8.gz \
	usr/share/man/man8/blobcr-proxyd.8.gz
contents blobcr-repository usr/sbin/blobcr-metad usr/sbin/blobcr-noded \
	lib/systemd/system/blobcr-metad.service \
	lib/systemd/system/blobcr-noded@.service etc/blobcr/metad.conf \
	usr/share/man/man8/blobcr-metad.8.gz usr/share/man/man8/blobcr-noded.8.gz
contents blobcr-guest usr/bin/blobcr-checkpoint \
	usr/share/man/man1/blobcr-checkpoint.1.gz
contents libblobcr-guest-dev usr/include/blobcr-guest.h usr/include/blobcr-mpi.h \
	"usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/libblobcr-mpi-openmpi.a" \
	"usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/libblobcr-mpi-mpich.a" \
	usr/share/man/man3/blobcr-guest.3.gz \
	"usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/libblobcr-guest.a"
contents dm-blobcr-dkms usr/share/man/man4/dm-blobcr.4.gz
contents blobcr-common usr/share/man/man5/blobcr.conf.5.gz

# DKMS, as the package's postinst runs it, but in a tree of our own.
dpkg-deb -x "$(ls "$dir"/dm-blobcr-dkms_*.deb)" "$WORK/root"
src=$(ls -d "$WORK"/root/usr/src/dm-blobcr-*)
ver=${src##*/dm-blobcr-}
kver=$("$TOP/scripts/kver.sh" linux-headers-amd64)
mkdir -p "$WORK/dkms"
dk=(-m dm-blobcr -v "$ver" --sourcetree "$WORK/root/usr/src" --dkmstree "$WORK/dkms")
out=$(timeout 900 dkms add "${dk[@]}" 2>&1 &&
      timeout 900 dkms build "${dk[@]}" -k "$kver" 2>&1)
rc=$?
ko=$(find "$WORK/dkms/dm-blobcr/$ver/$kver" -name dm-blobcr.ko 2>/dev/null)
tap "$([ $rc = 0 ] && [ -n "$ko" ]; echo $?)" "dkms builds dm-blobcr.ko for $kver" "$out"
if [ -n "$ko" ]; then
	info=$(modinfo "$ko")
	grep -q "^vermagic: *$kver " <<<"$info"
	tap $? "the module is for $kver" "$info"
fi

done_testing
