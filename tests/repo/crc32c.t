#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# CRC32C, which every stored record and unsealed frame carries: the
# library's (ISA-L's crc32_iscsi) against the definition, bit by bit, and
# against the library's code before it, so that stores written before
# read the same.
set -u
. "$(dirname "$0")/lib.sh"
"$TOP/tests/repo/crccheck" >"$WORK/crc.out" 2>&1
rc=$?
verdicts "$WORK/crc.out"
check "crccheck exits 0" test $rc -eq 0
done_testing
