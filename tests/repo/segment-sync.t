#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A node that starts a new segment file syncs the store directory (the
# file's name) before any record in it is acknowledged: a put whose data
# and index entry are durable must not lose its file to a crash.  The
# node runs under strace; each segment file it creates must be followed by
# an fsync of the store directory before the first sync of the segment.
set -u
. "$(dirname "$0")/lib.sh"

command -v strace >/dev/null || { not_ok "strace is installed (make deps)"; done_testing; exit 1; }
TRACE=$WORK/noded.trace
cat >"$WORK/noded-traced" <<EOF
#!/bin/sh
exec strace -f -qq -o "$TRACE" -e trace=openat,fsync,fdatasync,close "$NODED" "\$@"
EOF
chmod +x "$WORK/noded-traced"

check "metad starts (R=1)" start_metad --replicas 1
real_noded=$NODED NODED=$WORK/noded-traced
check "node starts under strace, 1 MiB segments" start_node 1 --segment-size 1048576
NODED=$real_noded
check "node live" wait_live 1
head -c $((4 << 20)) /dev/urandom >"$WORK/img"
check "import 4 MiB (16 chunks, 4 segments or more)" "$CTL" -q image import x "$WORK/img"
check "exports byte-exact" bash -c "'$CTL' -q image export x '$WORK/x.out' && cmp '$WORK/img' '$WORK/x.out'"

# The node itself stopped (strace then ends, its trace whole).
kill -TERM "$(pgrep -P "${NODE_PID[1]}")" 2>/dev/null
check "node stops" wait_until 20 bash -c "! kill -0 ${NODE_PID[1]} 2>/dev/null"

# For each segment created (chunks' and manifests'): its directory's fsync
# after the create, before the segment's first fdatasync.
verdict=$(python3 - "$TRACE" "$WORK/node1" <<'EOF'
import re, sys
trace, store = sys.argv[1], sys.argv[2]
whole = re.compile(r'^(\d+) +(openat|fsync|fdatasync|close)\((.*)\) += (-?\d+)')
begun = re.compile(r'^(\d+) +(openat|fsync|fdatasync|close)\((.*) <unfinished \.\.\.>$')
ended = re.compile(r'^(\d+) +<\.\.\. (\w+) resumed>(.*)\) += (-?\d+)')
fds = {}        # fd -> ("dir", path) or ("seg", path)
pending = {}    # a segment's path -> created, its name not yet synced
created = bad = 0
started = {}    # thread -> the arguments of its call in progress
def calls():
    """Each call whole, at its end; an fdatasync at its start too."""
    for line in open(trace):
        m = begun.match(line)
        if m:
            started[m.group(1)] = m.group(3)
            if m.group(2) == "fdatasync":
                yield "fdatasync", m.group(3), 0
            continue
        m = ended.match(line)
        if m:
            args = started.pop(m.group(1), "") + m.group(3)
            if m.group(2) != "fdatasync":
                yield m.group(2), args, int(m.group(4))
            continue
        m = whole.match(line)
        if m:
            yield m.group(2), m.group(3), int(m.group(4))
for op, args, ret in calls():
    if op == "openat" and ret >= 0:
        path = re.search(r'"([^"]*)"', args).group(1).rstrip("/")
        if "O_DIRECTORY" in args and path.startswith(store):
            fds[ret] = ("dir", path)
        elif path.rsplit("/", 1)[-1].startswith("seg-") and path.startswith(store + "/"):
            fds[ret] = ("seg", path)
            if "O_CREAT" in args:
                created += 1
                pending[path] = True
    elif op == "fsync" and ret == 0 and fds.get(int(args), ("",))[0] == "dir":
        d = fds[int(args)][1]
        for path in pending:
            if path.rsplit("/", 1)[0] == d:
                pending[path] = False
    elif op == "fdatasync":
        kind, path = fds.get(int(args), ("", ""))
        if kind == "seg" and pending.get(path):
            print("%s synced before its name" % path[len(store) + 1:])
            bad += 1
            pending[path] = False
    elif op == "close" and ret == 0:
        fds.pop(int(args), None)
print("created=%d bad=%d" % (created, bad))
EOF
)
while read -r line; do diag "$line"; done <<<"$verdict"
check "the node created segment files" grep -Eq 'created=([4-9]|[1-9][0-9])' <<<"$verdict"
check "each one's name synced before its data" grep -q 'bad=0$' <<<"$verdict"
done_testing
