#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Every daemon and blobcrctl exit 2 on a usage error (an unknown option, a
# missing required one), with a message, as their man pages and units
# (RestartPreventExitStatus=2) say; 1 is kept for failures at run time.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/pkg/lib.sh"

# usage_error NAME CMD...: CMD exits 2 and says something on stderr
usage_error() {
	local name=$1 err rc
	shift
	err=$(timeout 20 "$@" 2>&1 >/dev/null)
	rc=$?
	if [ $rc -eq 2 ] && [ -n "$err" ]; then
		tap 0 "$name: exit 2"
	else
		tap 1 "$name: exit 2" "exit $rc, stderr: $err"
	fi
}

for p in userspace/metad/blobcr-metad userspace/noded/blobcr-noded \
	userspace/blobcrd/blobcrd userspace/proxyd/blobcr-proxyd tools/blobcrctl; do
	usage_error "$(basename $p) --no-such-option" "$TOP/$p" --no-such-option
done
usage_error "blobcr-metad without --listen" "$TOP/userspace/metad/blobcr-metad" \
	--data "$WORK/d"
usage_error "blobcr-noded without --data" "$TOP/userspace/noded/blobcr-noded" \
	--listen tcp://127.0.0.1:1
usage_error "blobcrd without --cache" "$TOP/userspace/blobcrd/blobcrd" \
	--meta tcp://127.0.0.1:1 --channel x --image a@1
usage_error "blobcrd --threads 0" "$TOP/userspace/blobcrd/blobcrd" \
	--meta tcp://127.0.0.1:1 --channel x --image a@1 --cache /dev/null --threads 0
usage_error "blobcrctl without a verb" "$TOP/tools/blobcrctl"
usage_error "blobcrctl image without its verb" "$TOP/tools/blobcrctl" image
usage_error "blobcrctl image bogus" "$TOP/tools/blobcrctl" image bogus

# A verb group's --help: its verbs with their help, on stdout, exit 0.
for g in image key node group job; do
	out=$("$TOP/tools/blobcrctl" $g --help 2>&1)
	rc=$?
	n=$(grep -c "^$g [a-z]" <<<"$out")
	tap "$([ $rc -eq 0 ] && [ "$n" -ge 2 ] && ! grep -q unknown <<<"$out"; echo $?)" \
		"blobcrctl $g --help: the group's $n verbs" "exit $rc: $out"
done
done_testing
