#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# installed.sh [DEBDIR]: the packages of `make deb` (default build/deb),
# installed in a guest and used there (tests/pkg/installed-guest.sh): the
# guest boots systemd as PID 1 on a writable overlay of the host's root
# (tests/vm/run --systemd), dpkg installs the packages, DKMS builds the
# module for the guest's kernel, the repository's daemons start from their
# units and /etc/blobcr, and an image is deployed (blobcrd under its unit),
# committed and deployed again with the installed programs.  Prints TAP.
#
# Run by `make check-pkg`, not `make check`: under TCG at load 20 the
# guest took 30 minutes, 17 of them in dpkg (DKMS compiling the module,
# then depmod reading every module of the kernel over 9p).
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP" || exit 1
debs=$(cd "${1:-build/deb}" 2>/dev/null && pwd) || debs=""
if [ -z "$debs" ] || ! ls "$debs"/dm-blobcr-dkms_*.deb >/dev/null 2>&1; then
	echo "not ok 1 packages to install: none in ${1:-build/deb} (make deb)"
	exit 1
fi
# Generous: 30 minutes at load 20 (the DKMS build under TCG), more when
# loaded further.
tests/vm/run --systemd --no-module --mem 2048 --cpus 2 --timeout 3600 \
	--name installed --disk 256M --disk 256M -- \
	bash tests/pkg/installed-guest.sh "$debs"
rc=$?
case $rc in
124) echo "not ok - the guest timed out" ;;
125) echo "not ok - the guest did not start or report" ;;
esac
exit $rc
