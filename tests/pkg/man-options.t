#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
#
# Each command's man page (Documentation/man/*.rst, sections 1 and 8) lists
# exactly the long options the command's --help prints: the page's option
# lists (docutils parses them) against the option column of --help.
# blobcrctl is compared verb by verb: one page section per verb, against
# the options `blobcrctl VERB --help` names but the global ones; and its
# verbs against the ones `blobcrctl --help` lists.  The pages must also
# render without groff warnings.  Runs the programs of the build tree, or
# of $BLOBCR_BINDIR (e.g. an installed /usr/sbin) if set.
import glob
import os
import re
import subprocess
import sys

import docutils.core
import docutils.nodes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import plan, tap  # noqa: E402

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILT = {
    "blobcr-metad": "userspace/metad/blobcr-metad",
    "blobcr-noded": "userspace/noded/blobcr-noded",
    "blobcrd": "userspace/blobcrd/blobcrd",
    "blobcr-proxyd": "userspace/proxyd/blobcr-proxyd",
    "blobcr-checkpoint": "userspace/guest/blobcr-checkpoint",
    "blobcrctl": "tools/blobcrctl",
}
LONG = re.compile(r"--[a-z][a-z0-9-]*")
# An option line of --help: indented, starting with -x, or --long.
OPT_LINE = re.compile(r"^\s+(?:-[A-Za-z0-9], )?(--[a-z][a-z0-9-]*)")


def program(cmd):
    d = os.environ.get("BLOBCR_BINDIR")
    return os.path.join(d, cmd) if d else os.path.join(TOP, BUILT[cmd])


def run_help(argv):
    r = subprocess.run(argv + ["--help"], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("%s --help exited with %d: %s"
                           % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r.stdout


def help_table(text):
    return {m.group(1) for m in map(OPT_LINE.match, text.splitlines()) if m}


def title(section):
    return section.next_node(docutils.nodes.title).astext().strip()


def options_in(node, stop_at_subsections=False):
    """Long options of the option lists under @node."""
    found = set()
    for s in node.findall(docutils.nodes.option_string):
        if stop_at_subsections:
            sec = next(a for a in ancestors(s)
                       if isinstance(a, docutils.nodes.section))
            if sec is not node:
                continue
        found.update(LONG.findall(s.astext()))
    return found


def ancestors(node):
    while node.parent is not None:
        node = node.parent
        yield node


def doctree(path):
    with open(path) as f:
        return docutils.core.publish_doctree(
            f.read(), source_path=path,
            settings_overrides={"report_level": 2, "halt_level": 2})


def compare(name, page, helped):
    tap(page == helped, name,
        "only in the page: %s\nonly in --help: %s"
        % (" ".join(sorted(page - helped)) or "-",
           " ".join(sorted(helped - page)) or "-"))


def check_blobcrctl(tree):
    ctl = program("blobcrctl")
    text = run_help([ctl])
    sections = {title(s): s for s in tree.findall(docutils.nodes.section)}
    global_opts = help_table(text)
    compare("blobcrctl.8: global options",
            options_in(sections["GLOBAL OPTIONS"]), global_opts)
    verbs = []
    in_verbs = False
    for line in text.splitlines():
        if line.startswith("Verbs:"):
            in_verbs = True
        elif in_verbs and not line.strip():
            break
        elif in_verbs:  # "  image import     ARGS" or "  gc         ARGS"
            verbs.append(re.match(r"\s+(\w+(?: \w+)?)(?=\s\s|\s*$)",
                                  line).group(1))
    page_verbs = {t for t, s in sections.items()
                  if t == t.lower() and isinstance(s.parent,
                                                   docutils.nodes.section)}
    tap(set(verbs) == page_verbs, "blobcrctl.8: a section per verb",
        "verbs without a section: %s\nsections of no verb: %s"
        % (" ".join(sorted(set(verbs) - page_verbs)) or "-",
           " ".join(sorted(page_verbs - set(verbs))) or "-"))
    for v in verbs:
        if v not in sections:
            continue
        # A verb's help may name a global option; the page has those once.
        helped = set(LONG.findall(run_help([ctl] + v.split()))) - global_opts
        compare("blobcrctl.8: %s" % v, options_in(sections[v], True), helped)


def main():
    pages = sorted(glob.glob(os.path.join(TOP, "Documentation/man/*.rst")))
    if not pages:
        tap(False, "man pages found in Documentation/man")
    for path in pages:
        base = os.path.basename(path)[:-len(".rst")]
        cmd, section = base.rsplit(".", 1)
        try:
            tree = doctree(path)
        except Exception as e:  # docutils' SystemMessage on a bad page
            tap(False, "%s parses" % base, str(e))
            continue
        man = subprocess.run(["rst2man", "--halt=warning", path],
                             capture_output=True, text=True, timeout=60)
        groff = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8"],
                               input=man.stdout, capture_output=True,
                               text=True, timeout=60)
        tap(man.returncode == 0 and not groff.stderr, "%s renders" % base,
            man.stderr + groff.stderr)
        if section not in ("1", "8"):  # the library's, the target's
            continue
        if cmd not in BUILT:
            tap(False, "%s: a page of a known command" % base,
                "add %s to BUILT in %s" % (cmd, __file__))
            continue
        try:
            if cmd == "blobcrctl":
                check_blobcrctl(tree)
            else:
                compare(base, options_in(tree), help_table(
                    run_help([program(cmd)])))
        except (RuntimeError, OSError, KeyError) as e:
            tap(False, "%s: options" % base, repr(e))
    missing = set(BUILT) - {os.path.basename(p).rsplit(".", 2)[0]
                            for p in pages}
    tap(not missing, "every command has a page",
        "no page: " + " ".join(sorted(missing)))
    return plan()


sys.exit(main())
