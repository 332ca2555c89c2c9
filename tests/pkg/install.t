#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make install / make uninstall into a scratch root: the expected files,
# programs that run from where they were installed, configuration kept on
# a reinstall, `systemd-analyze verify` clean on every unit (templates
# through an instance), blobcrd@'s command line, and nothing left by
# uninstall but the settings.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/pkg/lib.sh"

# make install builds the tree's programs for its SYSCONFDIR: the end of
# this test builds them again for the one they had.
built_for=$(cat "$TOP/userspace/lib/sysconfdir" 2>/dev/null || echo /etc)
# Paths inside $WORK, so that the units name programs that exist here.
dirs=(PREFIX="$WORK/usr" SYSCONFDIR="$WORK/etc"
      UNITDIR="$WORK/lib/systemd/system")
out=$(make -s -C "$TOP" install "${dirs[@]}" 2>&1)
tap $? "make install" "$out"

expected="etc/blobcr/blobcrctl.conf
etc/blobcr/blobcrd.conf
etc/blobcr/metad.conf
etc/blobcr/proxyd.conf
lib/systemd/system/blobcr-metad.service
lib/systemd/system/blobcr-metrics.service
lib/systemd/system/blobcr-metrics.timer
lib/systemd/system/blobcr-noded@.service
lib/systemd/system/blobcr-proxyd.service
lib/systemd/system/blobcrd@.service
usr/bin/blobcr-checkpoint
usr/include/blobcr-guest.h
usr/include/blobcr-mpi.h
usr/lib/libblobcr-guest.a
usr/lib/libblobcr-mpi-mpich.a
usr/lib/libblobcr-mpi-openmpi.a
usr/sbin/blobcr-metad
usr/sbin/blobcr-noded
usr/sbin/blobcr-proxyd
usr/sbin/blobcrctl
usr/sbin/blobcrd
usr/share/man/man1/blobcr-checkpoint.1
usr/share/man/man3/blobcr-guest.3
usr/share/man/man4/dm-blobcr.4
usr/share/man/man5/blobcr.conf.5
usr/share/man/man8/blobcr-metad.8
usr/share/man/man8/blobcr-noded.8
usr/share/man/man8/blobcr-proxyd.8
usr/share/man/man8/blobcrctl.8
usr/share/man/man8/blobcrd.8"
got=$(cd "$WORK" && find . -type f | sed 's|^\./||' | sort)
tap "$([ "$got" = "$expected" ]; echo $?)" "installed files" \
	"$(diff <(echo "$expected") <(echo "$got"))"

bad=""
for p in "$WORK"/usr/sbin/* "$WORK"/usr/bin/*; do
	"$p" --help 2>&1 | grep -q "^Usage: $(basename "$p")" || bad+=" $p"
done
tap "$([ -z "$bad" ]; echo $?)" "installed programs print their usage" "$bad"

# They read SYSCONFDIR/blobcr, as make install was given it, not /etc/blobcr:
# a bad setting in its PROGRAM.conf is reported, their --help names it.
bad=""
for p in blobcr-metad:metad blobcr-noded:noded blobcrd:blobcrd \
	blobcr-proxyd:proxyd blobcrctl:blobcrctl; do
	prog=${p%%:*} conf=$WORK/etc/blobcr/${p#*:}.conf
	saved=""
	[ ! -e "$conf" ] || saved=$(cat "$conf")
	echo 'no-such-option = 1' >>"$conf"
	out=$(env -u BLOBCR_CONFIG_DIR "$WORK/usr/sbin/$prog" --help 2>&1)
	grep -qF "$prog: $conf:" <<<"$out" && grep -q "unknown option 'no-such-option'" <<<"$out" ||
		bad+=" $prog read no $conf: $(head -n 1 <<<"$out");"
	if [ -n "$saved" ]; then echo "$saved" >"$conf"; else rm "$conf"; fi
	env -u BLOBCR_CONFIG_DIR "$WORK/usr/sbin/$prog" --help 2>&1 | grep -qF " $conf)" ||
		bad+=" $prog --help names no $conf;"
done
tap "$([ -z "$bad" ]; echo $?)" "the programs read make install's SYSCONFDIR/blobcr" "$bad"
# blobcrctl key create puts its keys there unless told otherwise (not run
# by programs that read /etc/blobcr: it would write there).
out="not run: the programs ignore SYSCONFDIR"
[ -n "$bad" ] || out=$(cd "$WORK" && env -u BLOBCR_CONFIG_DIR -u BLOBCR_KEY \
	"$WORK/usr/sbin/blobcrctl" key create host1 host 2>&1)
tap "$([ -s "$WORK/etc/blobcr/host1.key" ] &&
	grep -q host1 "$WORK/etc/blobcr/keys.pub"; echo $?)" \
	"blobcrctl key create: in SYSCONFDIR/blobcr" "$out $(ls "$WORK/etc/blobcr")"
rm -f "$WORK"/etc/blobcr/{host1.key,keys.pub,.keys.lock}

bad=""
for m in "$WORK"/usr/share/man/man*/*; do
	man -l "$m" 2>&1 | grep -q '^NAME' || bad+=" $m"
done
tap "$([ -z "$bad" ]; echo $?)" "man opens every installed page" "$bad"

echo '# the operator was here' >>"$WORK/etc/blobcr/metad.conf"
out=$(make -s -C "$TOP" install "${dirs[@]}" 2>&1)
tap "$(grep -q 'operator was here' "$WORK/etc/blobcr/metad.conf"; echo $?)" \
	"a reinstall keeps the settings" "$out"

units=$WORK/lib/systemd/system
ln -s blobcr-noded@.service "$units/blobcr-noded@store1.service"
ln -s blobcrd@.service "$units/blobcrd@vm1.service"
out=$(cd "$units" && systemd-analyze verify --man=no blobcr-metad.service \
	blobcr-noded@store1.service blobcr-proxyd.service blobcrd@vm1.service \
	blobcr-metrics.service blobcr-metrics.timer 2>&1)
rc=$?
tap "$([ $rc = 0 ] && [ -z "$out" ]; echo $?)" "systemd-analyze verify: no complaint" "$out"
rm "$units/blobcr-noded@store1.service" "$units/blobcrd@vm1.service"

# blobcrd@NAME runs blobcrd with the arguments deploy saved in
# /run/blobcr/NAME.args: run its ExecStart as systemd would (after its
# unescaping of $$ and %I), with the installed blobcrd swapped for a
# program that prints its arguments, one per line.  A device name may hold
# quotes and blanks.
name="pkg test'$$"
args="/run/blobcr/$name.args"
[ -d /run/blobcr ] || { mkdir /run/blobcr && made_run_dir=1; }
trap 'rm -rf "$WORK" "$args"; [ -z "${made_run_dir:-}" ] || rmdir /run/blobcr 2>/dev/null' EXIT
printf '%s\n' /elsewhere/blobcrd --meta tcp://10.0.2.2:7000 --label-file \
	'/run/blobcr/a b.label' >"$args"
cp "$WORK/usr/sbin/blobcrd" "$WORK/blobcrd.real"
printf '#!/bin/sh\nprintf "%%s\\n" "$@"\n' >"$WORK/usr/sbin/blobcrd"
line=$(sed -n "s/^ExecStart=\/bin\/sh -c '\(.*\)' %I\$/\1/p" "$units/blobcrd@.service")
# systemd would substitute a lone $VAR itself: every $ for sh is $$.
tap "$([ -n "$line" ] && ! sed 's/\$\$//g' <<<"$line" | grep -q '[$%]'; echo $?)" \
	"blobcrd@'s command escapes each \$ for systemd, takes the name as \$0" "$line"
script=$(sed -e 's/\$\$/$/g' <<<"$line")
got=$(/bin/sh -c "$script" "$name" 2>&1)
want="--meta
tcp://10.0.2.2:7000
--label-file
/run/blobcr/a b.label
--pidfile
/run/blobcr/$name.pid"
tap "$([ "$got" = "$want" ]; echo $?)" "blobcrd@NAME passes deploy's saved arguments" \
	"$(diff <(echo "$want") <(echo "$got"))"
rm -f "$args"
mv "$WORK/blobcrd.real" "$WORK/usr/sbin/blobcrd"

out=$(make -s -C "$TOP" uninstall "${dirs[@]}" 2>&1)
tap $? "make uninstall" "$out"
left=$(cd "$WORK" && find . -type f | sed 's|^\./||' | sort)
tap "$([ "$left" = "$(grep '^etc/' <<<"$expected")" ]; echo $?)" \
	"uninstall leaves only the settings" "$left"

out=$(make -s -C "$TOP" progs SYSCONFDIR="$built_for" 2>&1)
tap "$([ $? = 0 ] && "$TOP/tools/blobcrctl" --help | grep -qF " $built_for/blobcr/blobcrctl.conf)"; echo $?)" \
	"the tree's programs built again for $built_for" "$out"

done_testing
