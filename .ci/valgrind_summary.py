"""Counts memcheck errors in valgrind XML files, by kind, split by whether a frame of the stack
lies in lstm_core's compiled module.  Exit status 1 if any does.

    python .ci/valgrind_summary.py memcheck.*.xml
"""

import collections
import re
import sys
import xml.etree.ElementTree as ET

OURS = "lstm_core/_lstm"


def main(paths):
    ours, others = collections.Counter(), collections.Counter()
    examples = {}
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        # every complete <error> block (a process killed mid-run leaves a truncated file)
        for block in re.findall(r"<error>.*?</error>", text, re.S):
            error = ET.fromstring(block)
            kind = error.findtext("kind")
            objs = [f.findtext("obj") or "" for f in error.iter("frame")]
            fns = [f.findtext("fn") or "?" for f in error.iter("frame")]
            if any(OURS in o for o in objs):
                ours[kind] += 1
                examples.setdefault(kind, " <- ".join(fns[:8]))
            else:
                others[kind] += 1
    print(f"memcheck errors with an lstm_core frame: {sum(ours.values())} {dict(ours)}")
    for kind, stack in examples.items():
        print(f"  {kind}: {stack}")
    print(f"memcheck errors elsewhere (CPython, numpy, BLAS): {sum(others.values())} "
          f"{dict(others)}")
    invalid = ours["InvalidRead"] + ours["InvalidWrite"]
    print(f"invalid reads/writes in lstm_core frames: {invalid}")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
