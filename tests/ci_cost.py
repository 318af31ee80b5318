"""Where CI's time goes, from the JUnit report `make test` writes (README's cost table).

    python -m tests.ci_cost test-artifacts/junit.xml

Each test's time (set-up, call and teardown: a shared fixture is paid by the first
test that asks for it) is summed per notebook, over the kinds of test a notebook
brings, and per fixed item. The workers run in parallel, so the wall time of the
run is about the sum divided by the number of workers, plus the tail.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

NOTEBOOK = re.compile(r"\[(\d\d_[a-z_]+)\]")
KINDS = {  # test module -> column of the table
    "test_grading": "graded (reference, blank, validate)",
    "test_wrong_answers": "wrong-answer replay",
    "test_quick_profile": "quick dry run",
    "test_selfstudy_runs": "self-study runs",
    "test_jupyterlab": "browser",
}
OTHER = "other per-notebook tests"
CROSS_CHECK = "test_nbgrader_grades_the_mistakes_as_the_replay_does"


def read(path: Path) -> list[tuple[str, str, float]]:
    """(module as tests.<folder>.<module>, test name, seconds) of every test case in the report."""
    return [(case.get("classname", ""), case.get("name", ""), float(case.get("time", 0)))
            for case in ET.parse(path).getroot().iter("testcase")]


def table(cases: list[tuple[str, str, float]]) -> str:
    per_notebook: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    fixed: dict[str, float] = defaultdict(float)
    for classname, name, seconds in cases:
        folder, module = (classname.split(".") + ["", ""])[1:3]
        found = NOTEBOOK.search(name)
        if name.startswith(CROSS_CHECK):
            fixed["nbgrader's cross-check of the replay"] += seconds
        elif found and folder in ("course", "browser"):
            per_notebook[found.group(1)][KINDS.get(module, OTHER)] += seconds
        elif module == "test_instructor_day":
            fixed["the instructor's day"] += seconds
        elif folder in ("unit", "hostile"):
            fixed[f"{folder} tests"] += seconds
        else:
            fixed[f"{folder}/{module}"] += seconds
    columns = [*KINDS.values(), OTHER]
    lines = ["| notebook | " + " | ".join(columns) + " | total |", "|---" * (len(columns) + 2) + "|"]
    for nb in sorted(per_notebook):
        row = per_notebook[nb]
        lines.append(f"| {nb} | " + " | ".join(f"{row[c]:.0f}" for c in columns) + f" | {sum(row.values()):.0f} |")
    every = sum(sum(r.values()) for r in per_notebook.values())
    lines.append(f"\nper-notebook tests: {every:.0f} s over {len(per_notebook)} notebooks "
                 f"({every / max(1, len(per_notebook)):.0f} s a notebook)")
    big = sorted(fixed.items(), key=lambda kv: -kv[1])
    lines.append("once per run: " + ", ".join(f"{k} {v:.0f} s" for k, v in big[:8])
                 + f"; the rest {sum(v for _, v in big[8:]):.0f} s")
    lines.append(f"all tests: {every + sum(fixed.values()):.0f} s of worker time")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(read(Path(sys.argv[1] if len(sys.argv) > 1 else "test-artifacts/junit.xml"))))
