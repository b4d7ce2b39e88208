#!/usr/bin/env python3
"""Print one closing line for `./dev test`: every automake test result in the
given build directories, as 'N passed, N failed'."""

import glob
import os
import sys

counts = {"PASS": 0, "FAIL": 0, "ERROR": 0, "XFAIL": 0, "XPASS": 0, "SKIP": 0}
for builddir in sys.argv[1:]:
    for trs in glob.glob(os.path.join(builddir, "tests", "**", "*.trs"), recursive=True):
        with open(trs) as f:
            for line in f:
                if line.startswith(":test-result:"):
                    counts[line.split()[1]] += 1
failed = counts["FAIL"] + counts["ERROR"] + counts["XPASS"]
line = f"{counts['PASS']} passed, {failed} failed"
if counts["SKIP"]:
    line += f", {counts['SKIP']} skipped"
print(line)
sys.exit(1 if failed else 0)
