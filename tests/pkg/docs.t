#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Every page of Documentation/ (man pages included) is well-formed
reStructuredText: docutils reports no warning or error (a malformed table
or a short title underline renders wrong, or not at all)."""
import glob
import io
import os
import sys

import docutils.core

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import plan, tap  # noqa: E402

top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
pages = sorted(glob.glob(os.path.join(top, "Documentation", "**", "*.rst"),
                         recursive=True))
tap(len(pages) >= 10, "Documentation/ has its pages", "%d found" % len(pages))
for page in pages:
    name = os.path.relpath(page, top)
    warnings = io.StringIO()
    with open(page, encoding="utf-8") as f:
        docutils.core.publish_string(
            f.read(), source_path=name, writer_name="null",
            settings_overrides={"warning_stream": warnings,
                                "report_level": 2, "halt_level": 5})
    tap(not warnings.getvalue(), "%s is well-formed" % name, warnings.getvalue())
sys.exit(plan())
