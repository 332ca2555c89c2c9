#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The VM runner refuses bad invocations before starting anything.
run=tests/vm/run
n=0
check() {
	local want=$1 name=$2 rc
	shift 2
	n=$((n + 1))
	"$@" >/dev/null 2>&1
	rc=$?
	if [ "$rc" -eq "$want" ]; then echo "ok $n $name"; else echo "not ok $n $name (exit $rc, want $want)"; fi
}
echo "1..16"
check 0 help $run --help
check 2 no_command $run
check 2 unknown_option $run --frobnicate -- true
check 125 bad_accel env VM_ACCEL=xen $run -- true
check 125 icount_bad_shift $run --cpus 1 --icount 11 -- true
check 125 icount_needs_one_cpu $run --icount 4 -- true
check 125 icount_needs_tcg $run --kvm --cpus 1 --icount 4 -- true
check 125 bridge_needs_ip $run --bridge blobcr0 -- true
check 125 ip_needs_bridge $run --ip 10.77.0.2/24 -- true
check 125 bridge_excludes_net $run --net --bridge blobcr0 --ip 10.77.0.2/24 -- true
check 125 bridge_must_exist $run --bridge no-such-bridge --ip 10.77.0.2/24 -- true
check 125 bridge_ip_needs_prefix tests/vm/netbed -- $run --bridge blobcr0 --ip 10.77.0.2 -- true
check 125 bridge_name_is_hostname tests/vm/netbed -- $run --bridge blobcr0 --ip 10.77.0.2/24 --name a_b -- true
check 2 netbed_bad_subnet tests/vm/netbed --subnet 10.77 -- true
check 125 kernel_not_installed $run --kernel 0.0.0-none -- true
check 125 kernel_dir_not_built $run --kernel tests -- true
