"""Grading a class on Dask (alexnet_utils.course.parallel) on a real 2-worker LocalCluster.

* the same class graded serially (grading.grade) and in parallel gives the same scores,
  flags and gradebook rows;
* a worker SIGKILLed mid-task: the run completes, each submission is merged once, nothing
  in autograded/ is half-written, nothing the dead worker started is left running;
* a run interrupted after two results and started again grades only the rest;
* the hostile suite graded in parallel: every case graded or flagged as in the serial
  suite, nobody else's files touched.

Classes are small: the tiny two-function assignment of tests/hostile and a twin of it
under another name, whose autograde takes seconds.
"""

import copy
import os
import signal
import threading
import time

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell
from nbgrader.api import Gradebook

from alexnet_utils.course import grading, parallel
from alexnet_utils.course import release as course_mod
from alexnet_utils.course.sandbox import Limits, sandbox_problem

from ..hostile.test_hostile_submissions import NAME as TINY
from ..hostile.test_hostile_submissions import _digest, check_case, hostile_cases, source_notebook
from ..repo import scratch_course

pytest.importorskip("distributed")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox: {sandbox_problem()}")]

TWIN = "91_hostile_twin"  # a second assignment of the same class
HOSTILE_LIMITS = Limits(memory_mb=8192, notebook_seconds=120, cell_seconds=10)  # as tests/hostile


@pytest.fixture(scope="module")
def client():
    with parallel.dask_client(workers=2) as c:
        yield c


def _tiny_course(dest, names=(TINY,)):
    course = scratch_course(dest)
    for name in names:
        (course / "source" / name).mkdir(parents=True)
        nbformat.write(source_notebook(), course / "source" / name / f"{name}.ipynb")
    return course


def _hand_in(course, student, name, nb):
    folder = course / "submitted" / student / name
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def _class_course(dest):
    """Two tiny assignments, several students each: full marks, a syntax error, stderr in a test cell,
    an edited locked cell, a hand-in with a timestamp, and a student who handed in only one of them.

    Notebook 01 is graded on the parallel path, reference and blank, by tests/course/test_instructor_day.py
    (README's `grade` uses the local cluster): here each notebook would be graded twice for nothing new.
    """
    course = _tiny_course(dest, (TINY, TWIN))
    cases = hostile_cases(course)
    for student in ("ref", "syntax", "stderr", "edited"):
        _hand_in(course, student, TINY, cases[student][0])
    for student in ("ref", "stderr"):
        _hand_in(course, student, TWIN, source_notebook() if student == "ref" else cases[student][0])
    (course / "submitted" / "ref" / TINY / "timestamp.txt").write_text("2026-01-05 10:00:00.000000 UTC")
    return course


def _rows(course):
    """Every gradebook row a serial autograde writes, keyed so that two gradebooks compare."""
    rows = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                key = (assignment.name, sub.student.id)
                rows[key] = {"timestamp": sub.timestamp, "code": (sub.code_score, sub.max_code_score),
                             "written": (sub.written_score, sub.max_written_score),
                             "needs_manual_grade": sub.needs_manual_grade}
                for nb in sub.notebooks:
                    rows[key][nb.name] = {
                        "late_penalty": nb.late_submission_penalty,
                        "grades": sorted((g.name, g.auto_score, g.manual_score, g.needs_manual_grade, g.max_score)
                                         for g in nb.grades),
                        "comments": sorted((c.name, c.auto_comment, c.manual_comment) for c in nb.comments)}
    return rows


def _clean_autograded(course):
    """No half-written folder: none of the merge's .new/.old names, every notebook readable."""
    leftovers = [p for p in (course / "autograded").rglob(".*") if p.name.endswith((".new", ".old"))]
    assert not leftovers, f"half-written folders left in autograded/: {leftovers}"
    for nb in (course / "autograded").rglob("*.ipynb"):
        nbformat.read(nb, as_version=4)


def test_parallel_grading_equals_the_serial_path(tmp_path, client):
    serial = _class_course(tmp_path / "serial")
    par = _class_course(tmp_path / "parallel")
    expected = grading.grade(serial, [TINY, TWIN], limits=HOSTILE_LIMITS)
    got = parallel.grade_class(par, [TINY, TWIN], client=client, limits=HOSTILE_LIMITS, progress=False)
    assert [o.__dict__ for o in got] == [o.__dict__ for o in expected]
    by = {(o.assignment, o.student): o for o in got}
    assert by[TWIN, "ref"].score == by[TINY, "ref"].score == by[TINY, "ref"].max_score > 0
    assert by[TINY, "ref"].max_score > by[TINY, "syntax"].score and by[TWIN, "stderr"].flags
    assert (TWIN, "syntax") not in by, "a student who handed in nothing has no outcome"
    assert _rows(par) == _rows(serial)
    assert _rows(par)[TINY, "ref"]["timestamp"] is not None, "the hand-in's timestamp.txt reached the gradebook"
    for student, name in [("ref", TINY), ("syntax", TINY), ("stderr", TWIN)]:
        assert sorted(os.listdir(par / "autograded" / student / name)) == \
            sorted(os.listdir(serial / "autograded" / student / name))
    _clean_autograded(par)
    # nbgrader's own next step reads what the merge wrote
    out = course_mod.run_nbgrader(["generate_feedback", TWIN, "--force", course_mod.EVERY_STUDENT], par)
    assert "ERROR" not in out and list((par / "feedback" / "stderr" / TWIN).glob("*.html"))


def _watch_and_kill(client, killed: dict, stop: threading.Event):
    """SIGKILL the first worker seen running an nbgrader autograde; note its pid and its children."""
    workers = set(client.run(os.getpid).values())
    while not stop.is_set():
        for pid in workers:
            with _quiet():
                children = psutil.Process(pid).children(recursive=True)
                if any("autograde" in " ".join(c.cmdline()) for c in children):
                    time.sleep(1.0)  # well inside the task: its kernel is running
                    killed["children"] = [c.pid for c in psutil.Process(pid).children(recursive=True)]
                    os.kill(pid, signal.SIGKILL)
                    killed["pid"] = pid
                    return
        time.sleep(0.1)


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        return kind is not None and issubclass(kind, psutil.Error)


def test_a_worker_killed_mid_task_loses_nothing_and_grades_each_submission_once(tmp_path, client):
    course = _tiny_course(tmp_path / "course")
    slow = copy.deepcopy(source_notebook())
    slow.cells.insert(2, new_code_cell("import time\ntime.sleep(4)"))
    students = ["s1", "s2", "s3", "slow"]
    for student in students:
        _hand_in(course, student, TINY, slow if student == "slow" else source_notebook())
    killed, stop, merged = {}, threading.Event(), []
    watcher = threading.Thread(target=_watch_and_kill, args=(client, killed, stop), daemon=True)
    watcher.start()
    try:
        outcomes = parallel.grade_class(course, [TINY], client=client, limits=HOSTILE_LIMITS, progress=False,
                                        on_result=lambda n, s, r: merged.append(s))
    finally:
        stop.set()
        watcher.join()
    assert "pid" in killed, "no worker was caught running a task"
    assert sorted(merged) == students, "each submission merged exactly once"
    assert [(o.student, o.score, o.flags) for o in outcomes] == [(s, 4, []) for s in students]
    assert sorted(parallel.read_ledger(course)) == [(TINY, s) for s in students]
    assert len((course / parallel.LEDGER).read_text().splitlines()) == len(students)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert sorted(s.student.id for s in gb.find_assignment(TINY).submissions) == students
    _clean_autograded(course)
    time.sleep(0.5)
    alive = [p for p in killed["children"] if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"processes of the killed worker still run: {alive}"


def test_an_interrupted_run_resumes_with_only_what_is_missing(tmp_path, client):
    course = _tiny_course(tmp_path / "course")
    students = ["a", "b", "c", "d"]
    for student in students:
        _hand_in(course, student, TINY, source_notebook())
    first = []

    def stop_after_two(name, student, result):
        first.append(student)
        if len(first) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        parallel.grade_class(course, [TINY], client=client, limits=HOSTILE_LIMITS, progress=False,
                             on_result=stop_after_two)
    assert sorted(parallel.read_ledger(course)) == [(TINY, s) for s in sorted(first)]
    second = []
    outcomes = parallel.grade_class(course, [TINY], client=client, limits=HOSTILE_LIMITS, progress=False,
                                    on_result=lambda n, s, r: second.append(s))
    assert sorted(second) == sorted(set(students) - set(first)), "the second run grades only what is missing"
    assert [(o.student, o.score) for o in outcomes] == [(s, 4) for s in students]
    # a changed hand-in is graded again, an unchanged one is not
    _hand_in(course, "a", TINY, hostile_cases(course)["syntax"][0])
    third = []
    outcomes = parallel.grade_class(course, [TINY], client=client, limits=HOSTILE_LIMITS, progress=False,
                                    on_result=lambda n, s, r: third.append(s))
    assert third == ["a"] and outcomes[0].score == 2


def test_the_hostile_suite_graded_in_parallel_harms_no_other_submission(tmp_path, client):
    course = _tiny_course(tmp_path / "course")
    cases = hostile_cases(course)
    for student, (nb, _) in cases.items():
        _hand_in(course, student, TINY, nb)
    course_mod.run_nbgrader(["generate_assignment", TINY, "--force"], course)
    _hand_in(course, "blank", TINY, nbformat.read(course / "release" / TINY / f"{TINY}.ipynb", as_version=4))
    before = _digest(course / "submitted")
    outcomes = {o.student: o for o in parallel.grade_class(course, [TINY], client=client, limits=HOSTILE_LIMITS,
                                                           progress=False)}
    assert set(outcomes) == set(cases) | {"blank"}
    assert outcomes["blank"].score == 0 and not outcomes["blank"].flags
    for student, (_, expect) in cases.items():
        check_case(course, student, outcomes[student], expect)
    assert _digest(course / "submitted") == before, "a submission changed during grading"
    for name in ("pwned.txt", "pwned_by_shell.txt"):
        assert not (course / name).exists() and not (course / "source" / name).exists()
    scores = {s.student: s.score for s in course_mod.read_scores(course)}
    assert scores["ref"] == 4 and scores["blank"] == 0
    _clean_autograded(course)
