#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Extract from Debian's linux-source-6.1 only what the build uses:
# kselftest's headers and checkpatch.pl with its data files.
set -eu
dest=$1
tarball=$(ls /usr/src/linux-source-6.1.tar.* 2>/dev/null | head -n 1)
[ -n "$tarball" ] || { echo "linux-source-6.1 is not installed (make deps)" >&2; exit 1; }
rm -rf "$dest" && mkdir -p "$dest"
tar -xf "$tarball" -C "$dest" --strip-components=1 --wildcards \
	'linux-source-6.1/tools/testing/selftests/kselftest*.h' \
	'linux-source-6.1/scripts/checkpatch.pl' \
	'linux-source-6.1/scripts/spelling.txt' \
	'linux-source-6.1/scripts/const_structs.checkpatch' \
	'linux-source-6.1/.clang-format'
