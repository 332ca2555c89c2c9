#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Keys and roles (Documentation/security.rst): well-formed destructive
# requests without a valid key, with a forged tag, replayed, or from a role
# that may not send them are refused, on metad and on a node, with the key
# named, and change nothing; key files are owner-only; keys are rotated and
# revoked while everything runs.
set -u
. "$(dirname "$0")/lib.sh"
FT=$TOP/tests/repo/frametool

check "metad starts" start_metad --replicas 1
check "node starts" start_node 1
check "node live" wait_live 1
make_image "$WORK/img" 8
check "import as admin" "$CTL" -q image import img "$WORK/img"
check "a second version" "$CTL" -q image commit img "$WORK/img"
# What must not change: images, versions, the node's chunks, the bytes.
# The node's counts come from its own STAT: node list's come from the last
# heartbeat, which may predate the manifests metad wrote for the publishes.
state() {
	"$CTL" image list && "$CTL" image versions img && "$CTL" group list &&
		"$CTL" node list | awk '{ print $1, $2, $3, $4 }' &&
		"$CTL" node stat "${NODE_ADDR[1]}" | grep -E '^(chunks|live_bytes)='
}
state >"$WORK/before"
mpid=$METAD_PID npid=${NODE_PID[1]}

# --- no key at all ---
check "metad: every opcode without a key is refused (-ENOKEY)" \
	"$FT" "$META" unauth img
check "node: every opcode without a key is refused (-ENOKEY)" \
	"$FT" "${NODE_ADDR[1]}" unauth
check "node: DELETE of img's chunks without a key, forged, or from admin" \
	"$FT" "${NODE_ADDR[1]}" delete "$META" img
rc=0; BLOBCR_KEY= "$CTL" image delete img 2>"$WORK/err" || rc=$?
check "blobcrctl without a key: exit 6" test $rc -eq 6
check "... saying how to give one" grep -q "give --key FILE or set BLOBCR_KEY" "$WORK/err"

# --- a key of the wrong role ---
HOST=$KEYS/host.key
for verb in "image delete img" "image delete img@1" "gc"; do
	rc=0; BLOBCR_KEY=$HOST "$CTL" $verb 2>"$WORK/err" || rc=$?
	check "host key: $verb refused, exit 6" test $rc -eq 6
done
check "... naming the key, its role and who may" \
	grep -q "key 'host' (role host) may not send GC (admin only)" "$WORK/err"
rc=0; BLOBCR_KEY=$HOST "$CTL" node compact "${NODE_ADDR[1]}" 2>"$WORK/err" || rc=$?
check "host key: node compact refused, exit 6" test $rc -eq 6
check "... naming the key" grep -q "key 'host' (role host) may not send COMPACT" "$WORK/err"
check "metad logged the refusals with the key" \
	grep -q "GC refused: key 'host' (role host)" "$WORK/metad.log"
check "host key: reads work" env BLOBCR_KEY="$HOST" "$CTL" -q image export img "$WORK/out"
check "... byte-exact" cmp "$WORK/img" "$WORK/out"

# --- a key the repository does not list ---
mkdir "$WORK/other"
"$CTL" key create --dir "$WORK/other" intruder admin >/dev/null
"$CTL" key create --dir "$WORK/other" admin admin >/dev/null
cp "$KEYS/keys.pub" "$WORK/other/keys.pub" # they trust our metad
rc=0; BLOBCR_KEY=$WORK/other/intruder.key "$CTL" image delete img 2>"$WORK/err" || rc=$?
check "a key the repository does not list: refused, exit 6" test $rc -eq 6
check "... naming it" grep -q "key 'intruder' is not in the keys.pub of metad" "$WORK/err"
"$CTL" key create --dir "$WORK/other" admin admin >/dev/null
rc=0; BLOBCR_KEY=$WORK/other/admin.key "$CTL" image delete img 2>"$WORK/err" || rc=$?
check "a foreign key named admin, with the right keys.pub: refused, exit 6" test $rc -eq 6
check "... as a bad signature" grep -q "key 'admin': bad signature" "$WORK/err"

# --- replays and forgeries ---
check "metad: a replayed request and a changed opcode are refused" \
	"$FT" "$META" replay img
check "node: a replayed request is refused" "$FT" "${NODE_ADDR[1]}" replay

# --- nothing changed ---
state >"$WORK/after"
check "nothing changed on metad and on the node" cmp "$WORK/before" "$WORK/after"
check "export still byte-exact" \
	bash -c "'$CTL' -q image export img '$WORK/out' && cmp '$WORK/img' '$WORK/out'"

# --- key files ---
chmod 644 "$KEYS/admin.key"
rc=0; "$CTL" image list >/dev/null 2>"$WORK/err" || rc=$?
check "a key file others can read is refused, exit 6" test $rc -eq 6
check "... saying chmod 600" grep -q "chmod 600" "$WORK/err"
chmod 600 "$KEYS/admin.key"
check "keys are created owner-only" \
	test "$(stat -c %a "$KEYS/host.key" "$KEYS/metad.key" "$KEYS/node1.key" | sort -u)" = 600
rc=0; "$CTL" key create --dir "$KEYS" host host >/dev/null 2>&1 || rc=$?
check "key create of an existing name: exit 4" test $rc -eq 4
rc=0; "$CTL" key create --dir "$KEYS" x superuser >/dev/null 2>&1 || rc=$?
check "key create with an unknown role: exit 2" test $rc -eq 2

# --- rotation and revocation while everything runs ---
cp "$KEYS/host.key" "$WORK/host-old.key"
cp "$KEYS/keys.pub" "$WORK/keys.pub.before"
# A client reading through the whole rotation, one command a time.
(
	for i in $(seq 40); do
		BLOBCR_KEY=$HOST "$CTL" -q image info img >/dev/null || echo "fail $i"
		sleep 0.05
	done
) >"$WORK/reader" 2>&1 &
reader=$!
check "rotate the host key" "$CTL" key rotate --dir "$KEYS" host
check "rotate metad's own key while it runs" "$CTL" key rotate --dir "$KEYS" metad
check "rotate the node's key while it runs" "$CTL" key rotate --dir "$KEYS" node1
check "keys.pub lists old and new host keys" test "$(grep -c '^host ' "$KEYS/keys.pub")" -eq 2
sleep 1.2 # servers look at key files once a second
check "the new host key works" env BLOBCR_KEY="$HOST" "$CTL" -q image info img
cp "$WORK/host-old.key" "$WORK/other/host.key"
cp "$KEYS/keys.pub" "$WORK/other/keys.pub"
check "so does the old one, until retired" \
	env BLOBCR_KEY="$WORK/other/host.key" "$CTL" -q image info img
check "retire the old host key" "$CTL" key retire --dir "$KEYS" host
check "retire the old metad and node keys" \
	bash -c "'$CTL' key retire --dir '$KEYS' metad && '$CTL' key retire --dir '$KEYS' node1"
sleep 1.2
rc=0; BLOBCR_KEY=$WORK/other/host.key "$CTL" image info img >/dev/null 2>&1 || rc=$?
check "the retired host key is refused, exit 6" test $rc -eq 6
wait "$reader"
check "a client reading all along never failed" test ! -s "$WORK/reader"
check "metad signs with its new key (clients only list that one now)" \
	"$CTL" -q image info img
check "node live with its new key" wait_live 1
check "node answers with its new key" "$CTL" node stat "${NODE_ADDR[1]}"
check "export after the rotations" \
	bash -c "'$CTL' -q image export img '$WORK/out' && cmp '$WORK/img' '$WORK/out'"
check "no daemon was restarted" kill -0 "$mpid" "$npid"
"$CTL" key create --dir "$KEYS" ops admin >/dev/null
check "a new admin key works without a restart" \
	env BLOBCR_KEY="$KEYS/ops.key" "$CTL" -q image info img
check "revoke it (retire --all)" "$CTL" key retire --dir "$KEYS" --all ops
sleep 1.2
rc=0; BLOBCR_KEY=$KEYS/ops.key "$CTL" image info img >/dev/null 2>&1 || rc=$?
check "the revoked key is refused, exit 6" test $rc -eq 6
check "key list shows one key per name now" \
	test "$("$CTL" key list --dir "$KEYS" | awk 'NR > 1 { print $1 }' | sort | uniq -d)" = ""
done_testing
