#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# installed-guest.sh DEBDIR: what tests/pkg/installed.sh runs in a guest
# that booted systemd on a writable overlay of the host's root.  Installs
# the packages of DEBDIR, lets DKMS build the module for the guest's
# kernel, checks the installed units and man pages, starts the repository
# from its units and configuration, and deploys, commits and restarts an
# image with the installed programs, blobcrd under its systemd unit.
# Prints TAP.
set -u
TOP=$(pwd)
. tests/pkg/lib.sh
debs=$1
kver=$(uname -r)
export SYSTEMD_PAGER="" PAGER=cat
# The installed programs only: never the build tree's.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset BLOBCR_CONFIG_DIR BLOBCR_META BLOBCR_KEY

tap "$([ "$(cat /proc/1/comm)" = systemd ]; echo $?)" "systemd is PID 1" \
	"PID 1 is $(cat /proc/1/comm)"

# dpkg runs the maintainer scripts: DKMS builds the module for this kernel,
# blobcr-proxyd is enabled and started.  DKMS would also build for the
# newest kernel installed (6.12 on the host, whose build make check
# covers): its config goes, in this guest's overlay only, which halves
# the run (the first try took over 40 minutes under TCG at load 15-20).
for c in /boot/config-*; do
	[ "$c" = "/boot/config-$kver" ] || rm -f "$c"
done
# The host's root may be a docker image's, whose policy-rc.d forbids
# maintainer scripts to start services: no machine the packages are
# installed on has it (and this overlay goes with the guest).
rm -f /usr/sbin/policy-rc.d
# man-db's trigger would index every page on the system, over 9p, for
# many minutes: off, in this overlay only (man finds pages without it).
rm -f /var/lib/man-db/auto-update
export DEBIAN_FRONTEND=noninteractive
# Its output goes to the runner's directory as it comes (VM_KEEP=1 keeps it).
start=$SECONDS
dpkg -i $(ls "$debs"/*.deb | grep -v -- -dbgsym_) >"$VM_OUT/dpkg.log" 2>&1
tap $? "dpkg -i the packages ($((SECONDS - start)) s)" "$(tail -n 30 "$VM_OUT/dpkg.log")"
out=$(dkms status dm-blobcr 2>&1)
tap "$(grep -q "^dm-blobcr/[^,]*, $kver, x86_64: installed" <<<"$out"; echo $?)" \
	"DKMS built and installed dm-blobcr for $kver" "$out"
out=$(modprobe dm-blobcr 2>&1 && modinfo -n dm-blobcr)
tap "$(grep -q '^dm_blobcr ' /proc/modules &&
	[[ $out == /lib/modules/$kver/updates/dkms/dm-blobcr.ko* ]]; echo $?)" \
	"modprobe dm-blobcr loads DKMS's build" "$out"

bad=""
for p in blobcrctl blobcrd blobcr-proxyd blobcr-metad blobcr-noded; do
	[ "$(command -v $p)" = /usr/sbin/$p ] || bad+=" $p:$(command -v $p)"
done
[ "$(command -v blobcr-checkpoint)" = /usr/bin/blobcr-checkpoint ] ||
	bad+=" blobcr-checkpoint:$(command -v blobcr-checkpoint)"
tap "$([ -z "$bad" ]; echo $?)" "the programs are the installed ones" "$bad"

# Every page the packages installed opens, by name, from man's own path.
pages=$(dpkg -L blobcr-common blobcr-host blobcr-repository blobcr-guest \
	libblobcr-guest-dev dm-blobcr-dkms | grep '^/usr/share/man/man./.*\.gz$')
bad=""
for p in $pages; do
	name=$(basename "$p" .gz)
	out=$(MANWIDTH=80 man "${name##*.}" "${name%.*}" 2>&1)
	grep -q '^NAME' <<<"$out" || bad+=" $name"
done
tap "$([ -n "$pages" ] && [ -z "$bad" ]; echo $?)" \
	"man opens each installed page ($(wc -w <<<"$pages") pages)" "${bad:-no pages}"

# Each unit as installed; a template through an instance of it.
mkdir "$WORK/units"
units=""
for u in $(dpkg -L blobcr-host blobcr-repository | grep '^/lib/systemd/system/.*\.\(service\|timer\)$'); do
	name=$(basename "$u" | sed 's/@\.service$/@one.service/')
	ln -s "$u" "$WORK/units/$name"
	units+=" $name"
done
out=$(cd "$WORK/units" && systemd-analyze verify --man=no $units 2>&1)
tap "$([ $? = 0 ] && [ -n "$units" ] && [ -z "$out" ]; echo $?)" \
	"systemd-analyze verify the installed units:$units" "$out"
out=$(systemctl is-active blobcr-proxyd.service 2>&1)
tap "$([ "$out" = active ]; echo $?)" "blobcr-proxyd runs from its unit, as installed" \
	"$out: $(journalctl -b -u blobcr-proxyd.service --no-pager 2>&1 | tail -n 20)"

# The repository as an operator sets it up: keys, one conf per node, units.
(
	cd /etc/blobcr &&
	blobcrctl key create --dir /etc/blobcr metad metad &&
	blobcrctl key create --dir /etc/blobcr s1 node &&
	blobcrctl key create --dir /etc/blobcr s2 node &&
	blobcrctl key create --dir /etc/blobcr host1 host
) >"$WORK/keys.out" 2>&1
tap $? "blobcrctl key create: metad, two nodes, a host" "$(cat "$WORK/keys.out")"
example=/usr/share/doc/blobcr-repository/examples/noded-STORE.conf
for i in 1 2; do
	sed -e "s/^listen = .*/listen = tcp:\/\/127.0.0.1:710$i/" \
		-e "s/STORE\.key/s$i.key/" -e "s/^#domain = .*/domain = d$i/" \
		"$example" >/etc/blobcr/noded-s$i.conf
done
printf 'meta = tcp://127.0.0.1:7000\nkey = /etc/blobcr/host1.key\n' >>/etc/blobcr/blobcrctl.conf
out=$(systemctl start blobcr-metad.service blobcr-noded@s1.service \
	blobcr-noded@s2.service 2>&1)
tap $? "systemctl start blobcr-metad blobcr-noded@s1 blobcr-noded@s2" \
	"$out $(journalctl -b -u 'blobcr-*' --no-pager 2>&1 | tail -n 30)"
for i in $(seq 120); do
	[ "$(blobcrctl node list 2>/dev/null | grep -c ' live ')" = 2 ] && break
	sleep 1
done
out=$(blobcrctl node list 2>&1)
tap "$([ "$(grep -c ' live ' <<<"$out")" = 2 ]; echo $?)" "both nodes live" "$out"

# An image, deployed: blobcrd runs as blobcrd@app1.service.
mkdir -p "$WORK/root" /mnt/app
echo hello >"$WORK/root/hello"
truncate -s 64M "$WORK/app.img"
mkfs.ext4 -q -F -b 4096 -d "$WORK/root" "$WORK/app.img"
out=$(blobcrctl -q image import app "$WORK/app.img" 2>&1)
tap $? "image import" "$out"
# -t: blobcrd may take three times as long to attach (a slow guest).
blobcrctl -t 60000 deploy app --cache /dev/vda --as app1 >"$WORK/deploy.out" 2>&1
tap $? "deploy app as app1" "$(cat "$WORK/deploy.out")"
tap "$(grep -qx 'blobcrctl: app1: blobcrd runs as blobcrd@app1.service (its log: journalctl -u blobcrd@app1.service)' \
	"$WORK/deploy.out"; echo $?)" "deploy says blobcrd runs under systemd" "$(cat "$WORK/deploy.out")"
pid=$(systemctl show -P MainPID blobcrd@app1.service)
status=$(blobcrctl status app1 2>&1)
tap "$([ "$(systemctl is-active blobcrd@app1.service)" = active ] &&
	[ "$(cat /proc/$pid/comm)" = blobcrd ] &&
	grep -q " blobcrd=$pid unit=blobcrd@app1.service\$" <<<"$status"; echo $?)" \
	"blobcrd@app1.service is active and status shows it" "MainPID $pid; $status"
tap "$(journalctl -b -u blobcrd@app1.service --no-pager | grep -q 'serving app@1'; echo $?)" \
	"its log is in the journal" "$(journalctl -b -u blobcrd@app1.service --no-pager | tail -n 10)"

mount /dev/mapper/app1 /mnt/app &&
head -c 3M /dev/urandom >/mnt/app/data &&
umount /mnt/app
want=$(dd if=/dev/mapper/app1 bs=1M iflag=direct status=none | sha256sum)
v=$(blobcrctl commit app1 2>"$WORK/commit.err")
tap "$([ "$v" = 2 ]; echo $?)" "commit app1: version 2" "$v $(cat "$WORK/commit.err")"

# Supervised: killed, systemd starts it again, and it serves.
kill -9 "$pid"
for i in $(seq 120); do
	new=$(systemctl show -P MainPID blobcrd@app1.service)
	[ "$new" != 0 ] && [ "$new" != "$pid" ] &&
		[ "$(systemctl is-active blobcrd@app1.service)" = active ] && break
	sleep 1
done
mount /dev/mapper/app1 /mnt/app && echo again >/mnt/app/again && umount /mnt/app
v3=$(blobcrctl commit app1 2>"$WORK/commit.err")
tap "$([ "$new" != "$pid" ] && [ "$v3" = 3 ]; echo $?)" \
	"blobcrd killed: systemd restarts it, commit gives version 3" \
	"MainPID $pid then $new; $v3 $(cat "$WORK/commit.err")"

out=$(blobcrctl undeploy app1 2>&1)
tap "$([ $? = 0 ] && ! systemctl is-active -q blobcrd@app1.service &&
	[ ! -e /run/blobcr/app1.unit ] && [ ! -e /dev/mapper/app1 ]; echo $?)" \
	"undeploy stops the unit and removes the device" \
	"$out $(systemctl is-active blobcrd@app1.service)"

# The restart: version 2 on a fresh cache, byte for byte what was committed.
blobcrctl -t 60000 deploy app@2 --cache /dev/vdb --as app2 >"$WORK/deploy2.out" 2>&1
got=$(dd if=/dev/mapper/app2 bs=1M iflag=direct status=none | sha256sum)
tap "$([ -n "$want" ] && [ "$got" = "$want" ]; echo $?)" \
	"app@2 deployed again on a fresh cache: the committed bytes" \
	"$(cat "$WORK/deploy2.out") want $want got $got"
out=$(blobcrctl undeploy app2 2>&1)
tap $? "undeploy app2" "$out"

out=$(systemctl stop blobcr-noded@s1.service blobcr-noded@s2.service \
	blobcr-metad.service blobcr-proxyd.service 2>&1)
failed=$(systemctl list-units --failed --plain --no-legend 'blobcr*' 2>&1)
tap "$([ -z "$out" ] && [ -z "$failed" ]; echo $?)" "the daemons stop cleanly" \
	"$out $failed"
done_testing
