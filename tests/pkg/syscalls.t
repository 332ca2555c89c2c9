#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# The repository daemons stay inside their units' SystemCallFilter: run
# blobcr-metad and blobcr-noded under strace through a real session (with
# keys: an import, an export compared byte for byte, a delete, gc, a
# compaction, heartbeats and the repair loop), and check every system call
# they made against the filter of systemd/blobcr-metad.service.in and
# blobcr-noded@.service.in (groups expanded by systemd-analyze).
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import plan, tap  # noqa: E402

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CTL = os.path.join(TOP, "tools/blobcrctl")


def syscall_groups():
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager"],
                         capture_output=True, text=True, check=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.split()[0], [])
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.append(line.strip())
    return groups


def expand(groups, names):
    calls = set()
    for name in names:
        calls |= expand(groups, groups[name]) if name.startswith("@") else {name}
    return calls


def unit_filter(groups, unit):
    """(allowed, denied) system calls of @unit's SystemCallFilter lines."""
    allowed, denied = set(), set()
    with open(os.path.join(TOP, "systemd", unit)) as f:
        for line in f:
            m = re.match(r"SystemCallFilter=(~?)(.*)", line.strip())
            if m:
                (denied if m.group(1) else allowed).update(
                    expand(groups, m.group(2).split()))
    return allowed, denied


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def traced(log, argv):
    return subprocess.Popen(["strace", "-f", "-qq", "-o", log] + argv,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def stop(tracer):
    """SIGTERM to the daemon strace runs (strace passes it on), then wait."""
    kids = subprocess.run(["pgrep", "-P", str(tracer.pid)],
                          capture_output=True, text=True).stdout.split()
    for pid in kids:
        os.kill(int(pid), signal.SIGTERM)
    return tracer.wait(timeout=60)


def ctl(meta, *args):
    r = subprocess.run([CTL, "-q", "-m", meta] + list(args),
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def main():
    groups = syscall_groups()
    with tempfile.TemporaryDirectory(prefix="blobcr-test.pkg.") as work:
        return session(groups, work)


def key(work, name, role):
    subprocess.run([CTL, "key", "create", "--dir", work, name, role],
                   check=True, stdout=subprocess.DEVNULL)
    return os.path.join(work, name + ".key")


def session(groups, work):
    meta = "tcp://127.0.0.1:%d" % free_port()
    node = "tcp://127.0.0.1:%d" % free_port()
    os.environ["BLOBCR_DOMAIN"] = "client"  # not the node's domain
    os.environ["BLOBCR_KEY"] = key(work, "admin", "admin")  # blobcrctl's
    # Their readiness notification, as under systemd (Type=notify).
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(work + "/notify")
    os.environ["NOTIFY_SOCKET"] = work + "/notify"
    md = traced(work + "/metad.st", [
        os.path.join(TOP, "userspace/metad/blobcr-metad"), "--listen", meta,
        "--data", work + "/meta", "--key", key(work, "metad", "metad"),
        "--replicas", "1",
        "--repair-interval-s", "1"])
    nd = traced(work + "/noded.st", [
        os.path.join(TOP, "userspace/noded/blobcr-noded"), "--listen", node,
        "--data", work + "/node", "--key", key(work, "node1", "node"),
        "--meta", meta, "--domain", "d1",
        "--compact-s", "1", "--scrub-mb-s", "64"])
    try:
        for _ in range(150):  # the node is live once metad lists it
            if " live " in ctl(meta, "node", "list")[1]:
                break
            time.sleep(0.2)
        img = os.path.join(work, "img")
        with open(img, "wb") as f:
            f.write(os.urandom(3 << 20))
        steps = [("image", "import", "t1", img),
                 ("image", "export", "t1", work + "/out"),
                 ("image", "delete", "t1"), ("gc",),
                 ("node", "compact", node)]
        bad = [" ".join(s) + ": " + out for s in steps
               for rc, out in [ctl(meta, *s)] if rc]
        with open(img, "rb") as a, open(work + "/out", "rb") as b:
            same = a.read() == b.read()
        tap(not bad and same, "a session: import, export byte-exact, delete, gc, compact",
            "\n".join(bad))
        time.sleep(2)  # heartbeats, a repair round, a compaction pass
    finally:
        rcs = [stop(nd), stop(md)]
    tap(rcs == [0, 0], "both stop cleanly on SIGTERM", "exit statuses %s" % rcs)
    for name, unit in (("metad", "blobcr-metad.service.in"),
                       ("noded", "blobcr-noded@.service.in")):
        allowed, denied = unit_filter(groups, unit)
        with open("%s/%s.st" % (work, name)) as f:
            calls = {m.group(1) for m in
                     (re.match(r"\d+ +(\w+)\(", l) for l in f) if m}
        outside = sorted(calls - allowed) + sorted(calls & denied)
        tap(calls and not outside,
            "blobcr-%s: %d system calls, all allowed by %s" % (name, len(calls), unit),
            "refused by the unit's filter: " + " ".join(outside))
    return plan()


if __name__ == "__main__":
    sys.exit(main())
