"""Students' code runs on the grader's machine: every hostile or broken hand-in
is graded or flagged, and nobody else's work or grade is touched.

A tiny two-function assignment keeps each autograde run to seconds; every
case is a real notebook handed in to a real nbgrader course.
"""

import copy
import hashlib
import shutil

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from alexnet_utils.course import grading
from alexnet_utils.course import release as course_mod
from alexnet_utils.course.sandbox import Limits, sandbox_problem

from ..repo import scratch_course

ROOT = course_mod.repo_root()
NAME = "90_hostile"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox: {sandbox_problem()}")]


def _cell(kind, source, **nbgrader):
    cell = new_code_cell(source) if kind == "code" else new_markdown_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = {"schema_version": 3, "task": False, "solution": False, "grade": False,
                                     "locked": False, **nbgrader}
    return cell


def source_notebook():
    cells = [
        _cell("md", "# A tiny assignment\n\nLearning goals: add and multiply."),
        _cell("code", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
              grade_id="add", solution=True),
        _cell("code", "assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n"
                      "### END HIDDEN TESTS", grade_id="test_add", grade=True, locked=True, points=2),
        _cell("code", "def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION",
              grade_id="mul", solution=True),
        _cell("code", "assert mul(2, 3) == 6", grade_id="test_mul", grade=True, locked=True, points=2),
        _cell("md", "Why? YOUR ANSWER HERE", grade_id="why", solution=True, grade=True, points=1),
    ]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    for i, c in enumerate(nb.cells):
        c["id"] = f"c{i}"
    return nb


def _insert_after(nb, index, source):
    nb.cells.insert(index + 1, new_code_cell(source))
    return nb


def hostile_cases(course):
    """student -> (notebook, what the grader must conclude)."""
    ref = source_notebook()
    other = course / "submitted" / "ref" / NAME / f"{NAME}.ipynb"

    def variant(edit):
        nb = copy.deepcopy(ref)
        edit(nb)
        for i, c in enumerate(nb.cells):
            c["id"] = f"c{i}"
        return nb

    def set_source(i, text):
        return lambda nb: nb.cells[i].__setitem__("source", text)

    def change_type(nb):
        nb.cells[3] = new_markdown_cell(nb.cells[3].source, metadata=nb.cells[3].metadata)

    return {
        "ref": (ref, dict(score=4, flag=None)),
        "loop": (variant(set_source(1, "while True:\n    pass")), dict(score=2, flag="time limit")),
        "syntax": (variant(set_source(1, "def add(a, b) return a + b")), dict(score=2, flag=None)),
        "deleted": (variant(lambda nb: nb.cells.pop(2)), dict(score=None, flag="was deleted")),
        "edited": (variant(set_source(2, "assert True")), dict(score=4, flag="was edited")),
        "celltype": (variant(change_type), dict(score=None, flag="changed type")),
        "network": (variant(lambda nb: _insert_after(nb, 1, (
            "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3)\n"
            "    print('NETWORK REACHED')\nexcept OSError as err:\n    print('network blocked:', err)"))),
            dict(score=4, flag=None, output="network blocked", not_output="NETWORK REACHED")),
        "escape": (variant(lambda nb: _insert_after(nb, 1, (
            "import os\n"
            f"for target in [{str(course / 'source' / 'pwned.txt')!r}, {str(other.parent / 'pwned.txt')!r},\n"
            f"               {str(course / 'gradebook.db')!r}, {str(course / 'pwned.txt')!r}]:\n"
            "    try:\n        open(target, 'a').write('pwned')\n        print('WROTE', target)\n"
            "    except OSError as err:\n        print('blocked:', type(err).__name__)\n"
            f"os.system('touch {course / 'pwned_by_shell.txt'} 2>/dev/null')"))),
            dict(score=4, flag=None, output="blocked", not_output="WROTE")),
        "snoop": (variant(lambda nb: _insert_after(nb, 1, (
            f"try:\n    print('READ OTHER', len(open({str(other)!r}).read()))\n"
            "except OSError as err:\n    print('no access to other students:', type(err).__name__)\n"
            f"try:\n    seen = len(open({str(course / 'gradebook.db')!r}, 'rb').read())\n"
            "except OSError:\n    seen = 0\n"
            "print('gradebook bytes visible:', seen)"))),
            dict(score=4, flag=None, output="gradebook bytes visible: 0", not_output="READ OTHER")),
        "memory": (variant(lambda nb: _insert_after(nb, 1, "hog = bytearray(64 * 2**30)")),
                   dict(score=4, flag="out of memory")),
        "stderr": (variant(set_source(3, "import sys\n\ndef mul(a, b):\n    print('debugging', file=sys.stderr)\n"
                                         "    return a * b")), dict(score=2, flag="stderr")),
        "suicide": (variant(lambda nb: _insert_after(nb, 1, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")),
                    dict(score=None, flag="autograde failed")),
    }


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = scratch_course(tmp_path_factory.mktemp("hostile-course"))
    (course / "source" / NAME).mkdir(parents=True)
    nbformat.write(source_notebook(), course / "source" / NAME / f"{NAME}.ipynb")
    cases = hostile_cases(course)
    for student, (nb, _) in cases.items():
        (course / "submitted" / student / NAME).mkdir(parents=True)
        nbformat.write(nb, course / "submitted" / student / NAME / f"{NAME}.ipynb")
    # the blank release is a student too: it must score zero without crashing
    course_mod.run_nbgrader(["generate_assignment", NAME, "--force"], course)
    (course / "submitted" / "blank" / NAME).mkdir(parents=True)
    shutil.copy2(course / "release" / NAME / f"{NAME}.ipynb", course / "submitted" / "blank" / NAME)
    before = _digest(course / "submitted")
    outcomes = grading.grade(course, [NAME], limits=Limits(memory_mb=8192, notebook_seconds=120, cell_seconds=10))
    return course, cases, {o.student: o for o in outcomes}, before


def test_the_whole_batch_completes(graded):
    course, cases, outcomes, _ = graded
    assert set(outcomes) == set(cases) | {"blank"}


@pytest.mark.parametrize("student", ["ref", "loop", "syntax", "deleted", "edited", "celltype", "network",
                                     "escape", "snoop", "memory", "stderr", "suicide"])
def test_each_case_is_graded_or_flagged_with_a_reason(graded, student):
    course, cases, outcomes, _ = graded
    check_case(course, student, outcomes[student], cases[student][1])


def check_case(course, student, outcome, expect):
    """The grader concluded what ``expect`` (from hostile_cases) says: flag, score, what the kernel printed."""
    if expect["flag"] is None:
        assert not outcome.flags, f"{student}: unexpected flags {outcome.flags}"
    else:
        assert any(expect["flag"] in f for f in outcome.flags), f"{student}: flags {outcome.flags}"
    if expect["score"] is not None:
        assert outcome.score == expect["score"], f"{student}: scored {outcome.score}, flags {outcome.flags}"
    if "output" in expect:
        nb = nbformat.read(course / "autograded" / student / NAME / f"{NAME}.ipynb", as_version=4)
        printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        assert expect["output"] in printed and expect["not_output"] not in printed, printed


def test_blank_release_scores_zero_unflagged(graded):
    _, _, outcomes, _ = graded
    assert outcomes["blank"].score == 0 and not outcomes["blank"].flags


def test_nobody_elses_files_or_the_course_were_touched(graded):
    course, _, _, before = graded
    assert _digest(course / "submitted") == before, "a submission changed during grading"
    for name in ("pwned.txt", "pwned_by_shell.txt"):
        assert not (course / name).exists() and not (course / "source" / name).exists()
    assert not (course / "submitted" / "ref" / NAME / "pwned.txt").exists()


def test_gradebook_stays_consistent_and_report_lists_every_flag(graded):
    course, _, outcomes, _ = graded
    scores = {s.student: s for s in course_mod.read_scores(course)}  # nbgrader's own API reads it
    assert scores["ref"].score == 4 and scores["blank"].score == 0
    out = course_mod.run_nbgrader(["db", "student", "list"], course)
    assert "ref" in out and "suicide" in out
    import json
    report = json.loads((course / grading.REPORT).read_text())
    flagged = {r["student"]: r["flags"] for r in report if r["flags"]}
    assert flagged == {o.student: o.flags for o in outcomes.values() if o.flags}
