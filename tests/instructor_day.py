"""The instructor's day, typed as README.md writes it, into a copy of the course as shipped.

The course is copied with every folder the repository ships (source/, release/,
notebooks/, autograded/ with the course's own reference grading), so what an
instructor meets in a fresh private clone is what the day meets. README's
"The instructor's day" block is read and each command run as written, in its
order; the test adds only what README leaves to others: more students in the
class list, a student on the hub who fetches and submits through the exchange,
Colab hand-ins zipped by an LMS, and (for the browser) nothing else.

Used by tests/course/test_instructor_day.py (the command line) and
tests/browser/test_instructor_day.py (the formgrader, on a copy of this day's course).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import nbformat
from nbgrader.utils import get_username

from alexnet_utils.course import release as course
from alexnet_utils.course.sandbox import sandbox_problem

from .repo import ROOT, SHIPPED, assignments, scratch_course

README_ASSIGNMENT = "01_build_alexnet"  # the assignment README's commands name
COURSE_ID = "alexnet"
EXCHANGE_STUDENT = get_username()  # `nbgrader submit` files a hand-in under the OS user's name
REFERENCE_STUDENT, BLANK_STUDENT, NO_SHOW = "ada", "bob", "cy"
EXTRA_STUDENTS = {  # README adds ada; the rest of the class list
    BLANK_STUDENT: {"first_name": "Bob", "last_name": "Babbage"},
    NO_SHOW: {},
    EXCHANGE_STUDENT: {},
}
STUDENTS = [REFERENCE_STUDENT, *EXTRA_STUDENTS]
SUBMITTERS = [EXCHANGE_STUDENT, REFERENCE_STUDENT, BLANK_STUDENT]
FULL_MARKS = [EXCHANGE_STUDENT, REFERENCE_STUDENT]

# Colab hand-ins arrive as <student>_<notebook>.ipynb (alone or zipped); nbgrader has no default pattern.
NAMED_REGEXP = r".*/(?P<student_id>[^/]+?)_(?P<file_id>\d\d_[^/]+\.ipynb)$"

COURSE_SETTINGS = """
# --- the temporary course of tests/instructor_day.py ---
c.Exchange.root = {exchange!r}
c.FileNameCollectorPlugin.named_regexp = {regexp!r}
"""

STUDENT_CONFIG = """c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.Exchange.root = {exchange!r}
"""


@dataclass
class Day:
    root: Path
    course: Path
    exchange: Path
    student_home: Path
    graded: str
    commands: list[list[str]] = field(default_factory=list)  # as run, README's and the test's own
    outputs: dict = field(default_factory=dict, repr=False)  # README command line -> its output
    seconds: dict = field(default_factory=dict)  # command line -> how long it took
    listed: str = ""
    fetched: dict = field(default_factory=dict, repr=False)


def readme_day() -> list[str]:
    """The command lines of README's "The instructor's day" block, in order, without comments."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"### The instructor's day\s*\n\s*```bash\n(.*?)```", text, re.DOTALL)
    assert found, "README.md has no ```bash block under '### The instructor's day'"
    lines = [line.split("#", 1)[0].strip() for line in found.group(1).splitlines()]
    return [line for line in lines if line]


def nb_names(folder: Path) -> list[str]:
    return [p.name for p in course.notebooks(folder)]


def solutions(source_nb: Path) -> dict:
    nb = nbformat.read(source_nb, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def fill_in(path: Path, answers: dict) -> None:
    """What a diligent student does in JupyterLab: write an answer into every answer cell."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
    nbformat.write(nb, path)


def _student(day: Day, *args: str) -> str:
    home = day.student_home
    env = {"HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
           "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter")}
    return course.run_nbgrader(list(args), home, env=env)


def instructor(day: Day, argv: list[str], env: dict | None = None) -> str:
    """Run one instructor command line (``nbgrader ...`` or ``python -m alexnet_utils ...``) in the course."""
    day.commands.append(argv)
    started = time.monotonic()
    try:
        return _run(day, argv, env)
    finally:
        day.seconds[shlex.join(argv)] = time.monotonic() - started


def _run(day: Day, argv: list[str], env: dict | None) -> str:
    if argv[0] == "nbgrader":
        return course.run_nbgrader(argv[1:], day.course, env=env)
    assert argv[:3] == ["python", "-m", "alexnet_utils"], f"README's day runs an unexpected command: {argv}"
    full_env = {**os.environ, **(env or {})}
    full_env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + full_env.get("PATH", "")
    extra = ["--unsafe"] if argv[3] == "grade" and sandbox_problem() else []  # no bubblewrap here: say so, go on
    proc = subprocess.run([sys.executable, *argv[1:], *extra], cwd=day.course, env=full_env,
                          capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"`{shlex.join(argv)}` failed (exit {proc.returncode}):\n{output[-3000:]}"
    return output


def _nbgrader_api(day: Day):
    """nbgrader's own Python API on the course, for the steps README leaves to others.

    In one process: each ``nbgrader`` command line pays 4-8 s of start-up (imports, the
    gradebook's migrations check), which for nine releases was a minute and a half of CI.
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from alexnet_utils.course.release import nbgrader_config

    config = nbgrader_config(day.course)
    config.CourseDirectory.root = str(day.course)
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def _class_list(day: Day) -> None:
    """The students README's commands do not add (README adds one, with `nbgrader db student add`)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{day.course / 'gradebook.db'}") as gb:
        for student, details in EXTRA_STUDENTS.items():
            gb.update_or_create_student(student, **details)


def _hand_ins(day: Day) -> None:
    """Every other assignment released too; a student on the hub lists, fetches, works and submits."""
    api = _nbgrader_api(day)
    for name in assignments():
        if name != day.graded:
            for step in (api.generate_assignment(name, force=True), api.release_assignment(name)):
                assert step["success"], f"releasing {name} through nbgrader's API failed:\n{step['log'][-3000:]}"
    day.listed = _student(day, "list")
    _student(day, "fetch_assignment", day.graded)
    for nb_name in nb_names(day.student_home / day.graded):
        day.fetched[nb_name] = (day.student_home / day.graded / nb_name).read_text()
        fill_in(day.student_home / day.graded / nb_name, solutions(day.course / "source" / day.graded / nb_name))
    _student(day, "submit", day.graded)


def _colab_zip(day: Day) -> None:
    """Students on Colab download their notebooks; the LMS hands the instructor one zip."""
    archive = day.course / "downloaded" / day.graded / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "colab-handins.zip", "w") as z:
        for nb_name in nb_names(day.course / "source" / day.graded):
            z.write(day.course / "source" / day.graded / nb_name, f"{REFERENCE_STUDENT}_{nb_name}")
            z.write(day.course / "release" / day.graded / nb_name, f"{BLANK_STUDENT}_{nb_name}")


def walk(root: Path) -> Day:
    """The whole day in ``root``: README's commands as typed, with the students' part between them."""
    graded = assignments()[0]
    day = Day(root=root, course=root / "course", exchange=root / "exchange",
              student_home=root / "home" / EXCHANGE_STUDENT, graded=graded)
    scratch_course(day.course, *SHIPPED)  # the course as shipped, every folder of it
    with open(day.course / "nbgrader_config.py", "a") as f:
        f.write(COURSE_SETTINGS.format(exchange=str(day.exchange), regexp=NAMED_REGEXP))
    day.exchange.mkdir()
    day.exchange.chmod(0o777)
    day.student_home.mkdir(parents=True)
    (day.student_home / "nbgrader_config.py").write_text(
        STUDENT_CONFIG.format(course_id=COURSE_ID, exchange=str(day.exchange)))

    with mock.patch.dict(os.environ):
        os.environ.pop("ALEXNET_GRADING_PROFILE", None)
        # nbgrader's API, like its command line, shells out to alembic for a new gradebook
        os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
        for line in readme_day():
            argv = [graded if word == README_ASSIGNMENT else word for word in shlex.split(line)]
            if argv[:2] == ["nbgrader", "collect"]:
                _class_list(day)
                _hand_ins(day)
            elif argv[:2] == ["nbgrader", "zip_collect"]:
                _colab_zip(day)
            # the instructor's shell asks for 'quick'; grading must still run 'smoke'
            day.outputs[line] = instructor(day, argv, env={"ALEXNET_PROFILE": "quick"})
    return day
