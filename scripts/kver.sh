#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Print the kernel release that a Debian kernel meta-package (default
# linux-headers-amd64; linux-image-amd64 works too) points to,
# e.g. 6.1.0-56-amd64.
set -eu
meta=${1:-linux-headers-amd64}
dpkg-query -W -f='${Depends}\n' "$meta" 2>/dev/null | tr ',' '\n' |
	sed -n 's/^ *linux-\(headers\|image\)-\([^ ]*\).*/\2/p' | head -n 1
