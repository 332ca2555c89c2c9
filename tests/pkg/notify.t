#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Readiness notification (Type=notify units): blobcr-metad, blobcr-noded
# and blobcr-proxyd send READY=1 to $NOTIFY_SOCKET (a datagram socket this
# test binds, as systemd does) only once they serve: at that moment their
# port accepts a connection on the first try and answers a real request.
# A daemon that cannot serve (its port taken, a key of the wrong role)
# exits without READY=1; SIGTERM brings STOPPING=1 and a clean exit.
# blobcrd needs the kernel target: tests/e2e covers its serving.
import os
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import plan, tap  # noqa: E402

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CTL = os.path.join(TOP, "tools/blobcrctl")
METAD = os.path.join(TOP, "userspace/metad/blobcr-metad")
NODED = os.path.join(TOP, "userspace/noded/blobcr-noded")
PROXYD = os.path.join(TOP, "userspace/proxyd/blobcr-proxyd")
WAIT_S = 60  # generous: the machine may be loaded


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def key(work, name, role):
    subprocess.run([CTL, "key", "create", "--dir", work, name, role],
                   check=True, stdout=subprocess.DEVNULL)
    return os.path.join(work, name + ".key")


class Notified:
    """A daemon started with $NOTIFY_SOCKET on a socket of its own."""

    def __init__(self, work, name, argv):
        self.path = os.path.join(work, name + ".notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.log = open(os.path.join(work, name + ".log"), "w")
        env = dict(os.environ, NOTIFY_SOCKET=self.path)
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def message(self, timeout=WAIT_S):
        """The next datagram as a dict, or None if the daemon exited first."""
        self.sock.settimeout(0.2)
        for _ in range(int(timeout / 0.2)):
            try:
                data = self.sock.recv(4096).decode()
                return dict(l.split("=", 1) for l in data.splitlines() if "=" in l)
            except socket.timeout:
                if self.proc.poll() is not None:
                    return None
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()
        self.log.close()


def connects(port):
    """One connection attempt, no retry: is the port served now?"""
    with socket.socket() as s:
        s.settimeout(5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ready_then_serving(d, what, port, request):
    msg = d.message()
    now = connects(port)  # before anything else: right at READY=1
    tap(msg is not None and msg.get("READY") == "1" and now,
        "%s: READY=1 once its port accepts connections" % what,
        "message %r, port %d accepting: %s" % (msg, port, now))
    r = subprocess.run(request, capture_output=True, text=True, timeout=120)
    tap(r.returncode == 0, "%s: serves a request right after READY=1" % what,
        r.stdout + r.stderr)
    tap(msg is not None and ("127.0.0.1:%d" % port) in msg.get("STATUS", ""),
        "%s: STATUS names the address it serves" % what, repr(msg))


def stops(d, what):
    rc = d.stop()
    msg = d.message(timeout=1)
    tap(rc == 0 and msg is not None and msg.get("STOPPING") == "1",
        "%s: SIGTERM, STOPPING=1, exit 0" % what,
        "exit %s, message %r" % (rc, msg))


def never_ready(d, what, want_rc):
    msg = d.message()
    rc = d.stop()
    tap(msg is None and rc == want_rc,
        "%s: exits %d without READY=1" % (what, want_rc),
        "message %r, exit %s" % (msg, rc))


def session(work):
    mport, nport = free_port(), free_port()
    meta = "tcp://127.0.0.1:%d" % mport
    node = "tcp://127.0.0.1:%d" % nport
    os.environ["BLOBCR_KEY"] = key(work, "admin", "admin")
    os.environ["BLOBCR_CONFIG_DIR"] = os.path.join(work, "no-config")
    daemons = []
    try:
        md = Notified(work, "metad", [
            METAD, "--listen", meta, "--data", work + "/meta",
            "--key", key(work, "metad", "metad")])
        daemons.append(md)
        ready_then_serving(md, "blobcr-metad", mport,
                           [CTL, "-m", meta, "-t", "5000", "node", "list"])

        nd = Notified(work, "noded", [
            NODED, "--listen", node, "--data", work + "/node", "--meta", meta,
            "--key", key(work, "node1", "node"), "--domain", "d1"])
        daemons.append(nd)
        ready_then_serving(nd, "blobcr-noded", nport,
                           [CTL, "-t", "5000", "node", "stat", node])

        # Its port taken by the node above: bind fails, no READY=1.
        busy = Notified(work, "busy", [
            NODED, "--listen", node, "--data", work + "/node2",
            "--key", key(work, "node2", "node")])
        daemons.append(busy)
        never_ready(busy, "blobcr-noded on a port in use", 1)
        wrong = Notified(work, "wrongkey", [
            METAD, "--listen", "tcp://127.0.0.1:%d" % free_port(),
            "--data", work + "/meta2", "--key", key(work, "node3", "node")])
        daemons.append(wrong)
        never_ready(wrong, "blobcr-metad with a node's key", 1)

        run = os.path.join(work, "run")
        pd = Notified(work, "proxyd", [PROXYD, "--run-dir", run,
                                       "--vsock-port", "0"])
        daemons.append(pd)
        msg = pd.message()
        dirs = all(os.path.isdir(os.path.join(run, d)) for d in ("vm", "proxy"))
        tap(msg is not None and msg.get("READY") == "1" and dirs,
            "blobcr-proxyd: READY=1 once its run directory is watched",
            "message %r, directories there: %s" % (msg, dirs))
        stops(pd, "blobcr-proxyd")
        stops(nd, "blobcr-noded")
        stops(md, "blobcr-metad")
    finally:
        for d in daemons:
            d.close()


def main():
    with tempfile.TemporaryDirectory(prefix="blobcr-test.pkg.") as work:
        session(work)
    return plan()


sys.exit(main())
