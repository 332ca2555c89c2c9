# SPDX-License-Identifier: GPL-2.0
"""TAP output for the Python tests of tests/pkg: tap() prints one result,
plan() the plan line and returns the exit status."""

_count = 0
_failed = False


def tap(ok, name, diag=""):
    global _count, _failed
    _count += 1
    print(("ok %d %s" if ok else "not ok %d %s") % (_count, name))
    if not ok:
        _failed = True
        for line in diag.splitlines():
            print("# " + line)


def plan():
    print("1..%d" % _count)
    return 1 if _failed else 0
