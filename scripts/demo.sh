#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The end-to-end demo (make demo): a small repository on loopback, an
# application that checkpoints through dm-blobcr in one guest and dies,
# and its restart from the last checkpoint in a second guest.
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
CTL=$TOP/tools/blobcrctl
VM=$TOP/tests/vm/run
STEPS=12 CRASH_AT=10 EVERY=3

work=$(mktemp -d "$TOP/build/demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {
	for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "demo: timed out waiting for: $*" >&2
	return 1
}
ms() { date +%s%3N; }

say "Keys: one per entity (Documentation/security.rst), in $work/keys"
keys=$work/keys
for k in "metad metad" "admin admin" "host host" "node1 node" "node2 node" \
	 "node3 node"; do
	"$CTL" key create --dir "$keys" $k >/dev/null
done
"$CTL" key list --dir "$keys"
export BLOBCR_KEY=$keys/admin.key # this shell is the operator

say "Starting a repository on loopback: blobcr-metad and 3 storage nodes (2 replicas)"
mport=$(free_port)
export BLOBCR_META=tcp://127.0.0.1:$mport
"$TOP/userspace/metad/blobcr-metad" --listen "$BLOBCR_META" --data "$work/meta" \
	--key "$keys/metad.key" >"$work/metad.log" 2>&1 &
pids+=($!)
wait_for "$CTL" -t 500 node list
for i in 1 2 3; do
	# Three nodes on one machine stand for three hosts: a domain each.
	"$TOP/userspace/noded/blobcr-noded" --listen "tcp://127.0.0.1:$(free_port)" \
		--data "$work/node$i" --meta "$BLOBCR_META" --domain "node$i" \
		--key "$keys/node$i.key" \
		>"$work/node$i.log" 2>&1 &
	pids+=($!)
done
wait_for sh -c "[ \$('$CTL' node list | grep -c ' live ') = 3 ]"
"$CTL" node list

say "Importing a 256 MiB ext4 image that holds the application"
mkdir -p "$work/root/app"
cat >"$work/root/app/run.sh" <<'APP'
#!/bin/sh
# A toy solver. Its state is an iteration count and a value, plus 8 MiB of
# bulk data per step; every EVERY steps it saves the state, syncs and asks
# for a checkpoint of its disk ($CHECKPOINT), the paper's protocol.
dir=$(dirname "$0")
i=0 v=1
if [ -f "$dir/state" ]; then
	. "$dir/state"
	echo "app: resuming from the checkpoint of step $i (value $v)"
fi
while [ "$i" -lt "$STEPS" ]; do
	i=$((i + 1)) v=$(( (v * 31 + i) % 1000003 ))
	head -c 8M /dev/urandom >"$dir/data.$((i % EVERY))"
	echo "step $i value $v" >>"$dir/log"
	if [ $((i % EVERY)) = 0 ]; then
		echo "i=$i v=$v" >"$dir/state"
		sync
		$CHECKPOINT
	fi
	if [ "$i" = "$CRASH_AT" ]; then
		echo "app: *** the node fails during step $i ***"
		exit 1
	fi
done
echo "app: done, final value $v"
APP
truncate -s 256M "$work/app.img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 -d "$work/root" "$work/app.img"
t0=$(ms)
"$CTL" -q image import demo "$work/app.img"
echo "imported in $(( $(ms) - t0 )) ms"

# What the guest runs to checkpoint: freeze the file system (the VM pause),
# commit the disk, thaw as soon as the snapshot is taken (the upload goes on
# while the application runs); one line per checkpoint for the summary.
cat >"$work/checkpoint.sh" <<'CKPT'
#!/bin/sh
t0=$(date +%s%3N)
v=$(blobcrctl commit --freeze /mnt/app vm 2>/run/vm-out/commit.err)
t1=$(date +%s%3N)
echo "checkpoint: version $v in $((t1 - t0)) ms ($(sed 's/^blobcrctl: vm: //' /run/vm-out/commit.err | paste -sd';' | sed 's/;/; /g'))"
echo "$v" >>/run/vm-out/versions
CKPT

guest() {	# guest NAME IMAGE_REF CRASH_AT
	mkdir -p "$work/$1"
	cp "$work/checkpoint.sh" "$work/$1/"
	cat >"$work/$1/script.sh" <<EOF
set -e
t0=\$(date +%s%3N)
blobcrctl deploy $2 --cache /dev/vda --as vm --commit-to demo-run >/dev/null
mkdir -p /mnt/app && mount /dev/mapper/vm /mnt/app
echo "deployed $2 and mounted it in \$((\$(date +%s%3N) - t0)) ms"
export STEPS=$STEPS CRASH_AT=$3 EVERY=$EVERY CHECKPOINT="sh /run/vm-out/checkpoint.sh"
sh /mnt/app/app/run.sh || true
blobcrctl status vm | sed 's/^/status: /'
umount /mnt/app
blobcrctl undeploy vm
sed -n 's/.*stopping: /helper: /p' /run/blobcr/vm.log
EOF
	"$VM" --net --name "demo-$1" --disk 512M --outdir "$work/$1" \
		--env BLOBCR_META="tcp://10.0.2.2:$mport" --env PATH="$TOP/tools:$PATH" \
		--env BLOBCR_KEY="$keys/host.key" \
		-- sh /run/vm-out/script.sh | tee "$work/$1.out"
}

say "Guest A (a compute host): deploy demo, run the application; it checkpoints every $EVERY steps and dies at step $CRASH_AT"
guest A demo "$CRASH_AT"
last=$(tail -n 1 "$work/A/versions")

say "Guest B (another host): restart from demo-run@$last, the last checkpoint"
guest B "demo-run@$last" 0

say "What happened"
"$CTL" image versions demo-run
expect=1
for i in $(seq 1 $STEPS); do expect=$(( (expect * 31 + i) % 1000003 )); done
echo "image size: 256 MiB ($((256 * 4)) extents of 256 KiB)"
echo "checkpoints taken by guest A:"
sed -n 's/^checkpoint: /  /p' "$work/A.out"
sed -n 's/^helper: \([0-9]*\) misses, \([0-9]*\) extents fetched, \([0-9]*\) zero.*/restart: \1 misses; fetched \2 extents with data (\3 holes, no traffic) of 1024/p' "$work/B.out"
echo "restarted run: $(grep 'final value' "$work/B.out" | sed 's/^app: //')"
echo "expected final value (a run without failure): $expect"
echo
echo "Everything ran on this machine: the repository on 127.0.0.1, the two"
echo "hosts in QEMU guests; the guests and daemons are stopped now."
