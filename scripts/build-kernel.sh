#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Build a kernel of our own from Debian's linux-source-6.1: a base
# configuration (tinyconfig, defconfig, ...) plus config fragments. Cached:
# nothing is rebuilt while the source package, the base, the fragments and
# this script stay the same, so the first `make check` on a machine pays for
# the build and later ones do not.
#
# Usage: scripts/build-kernel.sh OUTDIR BASE FRAGMENT...
#
# Leaves OUTDIR/bzImage and OUTDIR/vmlinux, and keeps the build tree in
# OUTDIR/obj, usable as KDIR for out-of-tree modules when the configuration
# has CONFIG_MODULES. A changed fragment rebuilds in that tree, so only
# what the changed options touch is compiled again (Kbuild tracks each
# file's CONFIG_ dependencies); a changed source package or source tree
# starts from an empty one. Every option a fragment sets must survive `make
# olddefconfig` (an option whose dependencies are missing is dropped
# silently by Kconfig): the build fails, naming the options, otherwise.
# Concurrent runs on one OUTDIR wait for each other.
set -eu

die() { echo "build-kernel: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 OUTDIR BASE FRAGMENT..."
out=$1 base=$2
shift 2
TOP=$(cd "$(dirname "$0")/.." && pwd)
tarball=$(ls /usr/src/linux-source-6.1.tar.* 2>/dev/null | head -n 1)
[ -n "$tarball" ] || die "linux-source-6.1 is not installed (make deps)"
for f in "$@"; do [ -r "$f" ] || die "no such fragment: $f"; done

mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 9>"$out/.lock"
flock 9

# The key covers everything the result depends on.
key=$( { ls -l --time-style=+%s "$tarball"; echo "$base"; cat "$0" "$@"; } |
	sha256sum | cut -d' ' -f1)
if [ -f "$out/bzImage" ] && [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ]; then
	exit 0
fi

# One extracted source tree per build directory, shared by every
# configuration (each builds out of tree, in its own OUTDIR/obj).
src=$TOP/build/kernel-src
srckey=$(ls -l --time-style=+%s "$tarball" | sha256sum | cut -d' ' -f1)
(
	flock 8
	if [ "$(cat "$src/.key" 2>/dev/null)" != "$srckey" ]; then
		echo "build-kernel: extracting $tarball" >&2
		rm -rf "$src" && mkdir -p "$src"
		tar -xf "$tarball" -C "$src" --strip-components=1
		echo "$srckey" >"$src/.key"
	fi
) 8>"$TOP/build/.kernel-src.lock"

start=$(date +%s)
obj=$out/obj
rm -f "$out/bzImage" "$out/vmlinux" "$out/.key"
[ "$(cat "$obj/.src" 2>/dev/null)" = "$src $srckey" ] || rm -rf "$obj"
mkdir -p "$obj"
echo "$src $srckey" >"$obj/.src"
log=$out/build.log
echo "build-kernel: building $out ($base + $*), log in $log" >&2
{
	make -C "$src" O="$obj" "$base" &&
	"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$@" &&
	make -C "$src" O="$obj" olddefconfig
} >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "configuration failed"; }

# Every line a fragment sets must be in the final .config as written.
lost=$(cat "$@" | sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=\(.*\)$/\1=\2/p' |
	while IFS= read -r line; do
		opt=${line%%=*}
		case $line in
		*=n) grep -q "^$opt=" "$obj/.config" && echo "$opt" ;;
		*) grep -qxF "$line" "$obj/.config" || echo "$opt" ;;
		esac
	done)
[ -z "$lost" ] || die "options not set as asked (missing dependencies?):" $lost

targets="bzImage"
grep -q '^CONFIG_MODULES=y' "$obj/.config" && targets="$targets modules_prepare"
grep -q '=m$' "$obj/.config" && targets="$targets modules"
make -C "$src" O="$obj" -j"$(nproc)" $targets >>"$log" 2>&1 ||
	{ tail -n 30 "$log" >&2; die "build failed"; }

cp "$obj/arch/x86/boot/bzImage" "$out/bzImage"
ln -sfn obj/vmlinux "$out/vmlinux"
echo "$key" >"$out/.key"
echo "build-kernel: $out built in $(( $(date +%s) - start )) s" >&2
