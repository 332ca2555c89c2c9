# SPDX-License-Identifier: GPL-2.0
# The barrier of bench/paper/run's concurrent checkpoints: listens on
# 127.0.0.1:PORT and, each time N connections are there, answers them all
# and closes them (guests connect through QEMU user networking at
# 10.0.2.2:PORT).  Usage: python3 barrier.py PORT N
import socket
import sys

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
while True:
    conns = [s.accept()[0] for _ in range(int(sys.argv[2]))]
    for c in conns:
        c.sendall(b"go\n")
        c.close()
