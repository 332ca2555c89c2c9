#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Job-level operations on the repository, with real daemons: a job's
# latest complete checkpoint group (numbered, never a partial or broken
# one), and the restart plan that says where each rank goes.
TOP=$(pwd)
. tests/repo/lib.sh

# failed_with RC WANT PATTERN: RC is WANT and stderr ($WORK/err) says PATTERN.
failed_with() { [ "$1" = "$2" ] && grep -q "$3" "$WORK/err"; }

start_metad || { not_ok "metad started"; done_testing; exit 1; }
start_node 1 && start_node 2 && wait_live 2 || { not_ok "nodes started"; done_testing; exit 1; }

# Two VMs' images, three versions each.
for vm in vm0 vm1; do
	make_image "$WORK/$vm.img" 4
	"$CTL" -q image import "$vm" "$WORK/$vm.img" >/dev/null
	for v in 2 3; do
		dd if=/dev/urandom of="$WORK/$vm.img" bs=64K count=1 conv=notrunc status=none
		"$CTL" -q image commit "$vm" "$WORK/$vm.img" >/dev/null
	done
done
"$CTL" group publish md.1 vm0@1 vm1@1 &&
	"$CTL" group publish md.2 vm0@2 vm1@2 &&
	"$CTL" group publish other.7 vm0@3 vm1@3
check "groups published" [ $? = 0 ]
check "latest of md is md.2" [ "$("$CTL" job latest md)" = "md.2 vm0@2 vm1@2" ]

# A group naming a version that does not exist is refused whole.
rc=0; "$CTL" group publish md.3 vm0@3 vm1@9 2>"$WORK/err" || rc=$?
sed "s/^/# /" "$WORK/err"
check "a group with a missing member is refused (exit 3)" [ $rc = 3 ]
check "... and leaves no trace" [ -z "$("$CTL" group list | grep '^md\.3 ')" ]
check "... and md.2 stays the latest" [ "$("$CTL" job latest md)" = "md.2 vm0@2 vm1@2" ]

# Numbered, not sorted as text: md.10 comes after md.9.
"$CTL" group publish md.9 vm0@2 vm1@3 && "$CTL" group publish md.10 vm0@3 vm1@3
check "md.10 is later than md.9" [ "$("$CTL" job latest md)" = "md.10 vm0@3 vm1@3" ]
# Only JOB.N with N a plain decimal: md.1K is not md.1024, nor md.011 md.11.
"$CTL" group publish md.1K vm0@1 vm1@1 && "$CTL" group publish md.011 vm0@1 vm1@1
check "md.1K and md.011 are no groups of job md" [ "$("$CTL" job latest md)" = "md.10 vm0@3 vm1@3" ]

# A group that lost a member is skipped, and says so.
"$CTL" image delete vm1@3
latest=$("$CTL" job latest md 2>"$WORK/err")
sed "s/^/# /" "$WORK/err"
check "a group with a deleted member is not the latest" [ "$latest" = "md.2 vm0@2 vm1@2" ]
check "... and job latest names the groups it skipped" \
	[ "$(grep -c 'skipping md\.\(10\|9\): vm1@3 no longer exists' "$WORK/err")" = 2 ]
rc=0; "$CTL" job latest nosuchjob 2>/dev/null || rc=$?
check "no group of a job: exit 3" [ $rc = 3 ]
rc=0; "$CTL" job plan md.10 --hosts h1 --as r 2>"$WORK/err" || rc=$?
check "a plan from a broken group is refused (exit 3)" \
	failed_with $rc 3 'md.10 is incomplete' 

# The restart plan: member i is rank i, round-robin over the hosts.
"$CTL" job plan md --hosts h1,h2 --as run1 >"$WORK/plan" 2>/dev/null
check "plan of md's latest group on two hosts" [ $? = 0 ]
sed 's/^/# /' "$WORK/plan"
check "rank 0 on h1 from vm0@2, rank 1 on h2 from vm1@2, fresh names" \
	[ "$(awk -F= '{ printf "%s ", $2 }' "$WORK/plan")" = \
	  "md.2 0 h1 vm0@2 run1-0 run1-0  md.2 1 h2 vm1@2 run1-1 run1-1 " ]
check "both ranks on one host when there is one" \
	[ "$("$CTL" job plan md.1 --hosts h9 --as run1 2>/dev/null | grep -c '^host=h9$')" = 2 ]
"$CTL" image clone vm0@1 taken-0
rc=0; "$CTL" job plan md --hosts h1 --as taken 2>"$WORK/err" || rc=$?
check "a plan whose clone name is taken is refused (exit 4)" \
	failed_with $rc 4 'image taken-0 exists' 
rc=0; "$CTL" job plan md --hosts , --as r 2>/dev/null || rc=$?
check "a plan without hosts is a usage error" [ $rc = 2 ]

# apply refuses what it cannot use before deploying anything.
printf 'rank=0\nhost=h1\nfrom=vm0@2\n' >"$WORK/bad.plan"
rc=0; "$CTL" job apply "$WORK/bad.plan" --host h1 --cache-dir "$WORK" 2>"$WORK/err" || rc=$?
sed "s/^/# /" "$WORK/err"
check "a plan rank without image and device is refused (exit 2)" \
	failed_with $rc 2 'line 3: the rank ending here needs' 
printf 'rank 0\n' >"$WORK/bad.plan"
rc=0; "$CTL" job apply "$WORK/bad.plan" --host h1 --cache-dir "$WORK" 2>/dev/null || rc=$?
check "a plan line that is not key=value is refused (exit 2)" [ $rc = 2 ]
rc=0; "$CTL" job apply "$WORK/plan" --host h7 --cache-dir "$WORK" 2>"$WORK/err" || rc=$?
check "a host the plan does not name: exit 3" \
	failed_with $rc 3 'no rank for host h7' 
helps() { "$CTL" job "$1" --help | grep -q "^Usage: blobcrctl .*job $1 "; }
check "job plan --help" helps plan
check "job apply --help" helps apply
check "job latest --help" helps latest
done_testing
