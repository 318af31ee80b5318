"""The instructor's day with nbgrader, on a temporary course.

Students are added to the gradebook, every assignment is generated and released to
an exchange, one student fetches and submits through it and the instructor collects,
two students hand in from Colab as files that `zip_collect` files away, one never
hands in. Then `autograde` (always in the smoke profile), a gradebook the formgrader
can open, `generate_feedback` (HTML; hidden tests stay hidden unless the instructor
opts in) and `export` to CSV with one row per student and assignment.

One assignment goes through hand-in, grading and feedback (the steps are the same for
every assignment, and test_grading.py grades all of them); all are released and exported.
"""

import csv
import html
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.utils import get_username

from alexnet_utils.course import release as course

from ..repo import scratch_course
from .conftest import ROOT, assignments

NAMES = assignments()
GRADED = NAMES[0]
COURSE_ID = "alexnet"

EXCHANGE_STUDENT = get_username()  # `nbgrader submit` files a hand-in under the OS user's name
REFERENCE_STUDENT, BLANK_STUDENT, NO_SHOW = "ada", "bob", "cy"
STUDENTS = {
    REFERENCE_STUDENT: ["--first-name=Ada", "--last-name=Lovelace", "--email=ada@example.org"],
    BLANK_STUDENT: ["--first-name=Bob", "--last-name=Babbage"],
    NO_SHOW: [],
    EXCHANGE_STUDENT: [],
}
SUBMITTERS = [EXCHANGE_STUDENT, REFERENCE_STUDENT, BLANK_STUDENT]
FULL_MARKS = [EXCHANGE_STUDENT, REFERENCE_STUDENT]

CSV_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
               "raw_score", "late_submission_penalty", "score", "max_score"]

# Colab hand-ins arrive as <student>_<notebook>.ipynb (alone or zipped); nbgrader has no default pattern.
NAMED_REGEXP = r".*/(?P<student_id>[^/]+?)_(?P<file_id>\d\d_[^/]+\.ipynb)$"

COURSE_SETTINGS = """
# --- the temporary course of tests/course/test_instructor_day.py ---
c.Exchange.root = {exchange!r}
c.FileNameCollectorPlugin.named_regexp = {regexp!r}
"""

STUDENT_CONFIG = """c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.Exchange.root = {exchange!r}
"""

# nbgrader's own feedback pipeline, which shows every test cell as the autograder ran it.
SHOW_HIDDEN_TESTS = """
# --- the instructor opts in: feedback shows the hidden tests ---
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import GetGrades

c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor]
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(EXCHANGE_STUDENT in (REFERENCE_STUDENT, BLANK_STUDENT, NO_SHOW),
                       reason=f"the OS user {EXCHANGE_STUDENT!r} has the name of a test student"),
]


@dataclass
class Day:
    root: Path
    course: Path
    exchange: Path
    student_home: Path
    listed: str = ""
    fetched: dict = field(default_factory=dict, repr=False)


def _nb_names(folder: Path) -> list[str]:
    return [p.name for p in course.notebooks(folder)]


def _solutions(source_nb: Path) -> dict:
    nb = nbformat.read(source_nb, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def _fill_in(path: Path, solutions: dict) -> None:
    """What a diligent student does in JupyterLab: write an answer into every answer cell."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = solutions[meta["grade_id"]]
    nbformat.write(nb, path)


def _student(day: Day, *args: str) -> str:
    home = day.student_home
    env = {"HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
           "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter")}
    return course.run_nbgrader(list(args), home, env=env)


def _instructor(day: Day, *args: str, env: dict | None = None) -> str:
    return course.run_nbgrader(list(args), day.course, env=env)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("instructor-day")
    d = Day(root=root, course=root / "course", exchange=root / "exchange",
            student_home=root / "home" / EXCHANGE_STUDENT)
    # the course: the repository's config and sources, plus where the exchange lives
    scratch_course(d.course, "source")
    with open(d.course / "nbgrader_config.py", "a") as f:
        f.write(COURSE_SETTINGS.format(exchange=str(d.exchange), regexp=NAMED_REGEXP))
    d.exchange.mkdir()
    d.exchange.chmod(0o777)
    d.student_home.mkdir(parents=True)
    (d.student_home / "nbgrader_config.py").write_text(
        STUDENT_CONFIG.format(course_id=COURSE_ID, exchange=str(d.exchange)))

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALEXNET_GRADING_PROFILE", raising=False)

        # morning: the class list, then every assignment generated and released
        for student, details in STUDENTS.items():
            _instructor(d, "db", "student", "add", student, *details)
        for name in NAMES:
            _instructor(d, "generate_assignment", name)
            _instructor(d, "release_assignment", name)

        # a student on the hub: list, fetch, work, submit
        d.listed = _student(d, "list")
        _student(d, "fetch_assignment", GRADED)
        for nb_name in _nb_names(d.student_home / GRADED):
            d.fetched[nb_name] = (d.student_home / GRADED / nb_name).read_text()
            _fill_in(d.student_home / GRADED / nb_name, _solutions(d.course / "source" / GRADED / nb_name))
        _student(d, "submit", GRADED)
        _instructor(d, "collect", GRADED)

        # students on Colab download their notebooks; the LMS hands the instructor one zip
        archive = d.course / "downloaded" / GRADED / "archive"
        archive.mkdir(parents=True)
        with zipfile.ZipFile(archive / "colab-handins.zip", "w") as z:
            for nb_name in _nb_names(d.course / "source" / GRADED):
                z.write(d.course / "source" / GRADED / nb_name, f"{REFERENCE_STUDENT}_{nb_name}")
                z.write(d.course / "release" / GRADED / nb_name, f"{BLANK_STUDENT}_{nb_name}")
        _instructor(d, "zip_collect", GRADED)

        # afternoon: grade (the instructor's shell asks for 'quick'; grading must still run 'smoke')
        _instructor(d, "autograde", GRADED, env={"ALEXNET_PROFILE": "quick"})
        _instructor(d, "generate_feedback", GRADED)
        _instructor(d, "export")
    return d


def _max_scores(name: str) -> tuple[float, float]:
    """(autograded points, written points) of an assignment, from its source metadata."""
    auto = written = 0.0
    for nb_path in course.notebooks(ROOT / "source" / name):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                if cell.cell_type == "code":
                    auto += meta["points"]
                else:
                    written += meta["points"]
    return auto, written


def _hidden_lines(name: str) -> list[str]:
    """Lines of hidden tests that appear nowhere else in the assignment's source."""
    hidden, public = [], set()
    for nb_path in course.notebooks(ROOT / "source" / name):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            inside = False
            for line in cell.source.splitlines():
                if re.fullmatch(r"\s*### BEGIN HIDDEN TESTS\s*", line):
                    inside = True
                elif re.fullmatch(r"\s*### END HIDDEN TESTS\s*", line):
                    inside = False
                elif inside:
                    hidden.append(line.strip())
                else:
                    public.add(line.strip())
    return [line for line in hidden if len(line) > 12 and not line.startswith("#") and line not in public]


def _feedback_text(path: Path) -> str:
    """What a student reads in a feedback page: its text, without markup."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def _feedback_pages(course_dir: Path, student: str) -> list[Path]:
    return sorted((course_dir / "feedback" / student / GRADED).glob("*.html"))


def test_the_class_list_and_every_assignment_are_in_the_gradebook(day):
    with Gradebook(f"sqlite:///{day.course / 'gradebook.db'}", COURSE_ID) as gb:
        assert sorted(s.id for s in gb.students) == sorted(STUDENTS)
        ada = gb.find_student(REFERENCE_STUDENT)
        assert (ada.first_name, ada.last_name, ada.email) == ("Ada", "Lovelace", "ada@example.org")
        assert sorted(a.name for a in gb.assignments) == NAMES


def test_every_assignment_is_released_to_the_exchange_and_listed_for_students(day):
    for name in NAMES:
        released = day.exchange / COURSE_ID / "outbound" / name
        assert _nb_names(released) == _nb_names(day.course / "source" / name), \
            f"`nbgrader release_assignment {name}` did not put its notebooks in {released}"
        assert name in day.listed, f"`nbgrader list` does not show {name} to a student:\n{day.listed}"


def test_a_student_fetches_the_release_without_solutions_or_hidden_tests(day):
    assert day.fetched, f"`nbgrader fetch_assignment {GRADED}` fetched no notebook"
    for nb_name, text in day.fetched.items():
        assert "raise NotImplementedError()" in text, f"{nb_name} as fetched has no stubs"
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
            assert marker not in text, f"{nb_name} as fetched by a student contains {marker!r}"


def test_collect_and_zip_collect_file_every_hand_in_for_grading(day):
    for student in SUBMITTERS:
        folder = day.course / "submitted" / student / GRADED
        assert _nb_names(folder) == _nb_names(day.course / "source" / GRADED), \
            f"{student}'s hand-in is not in {folder}"
    assert (day.course / "submitted" / EXCHANGE_STUDENT / GRADED / "timestamp.txt").exists(), \
        "`nbgrader collect` keeps the time of submission"
    assert not (day.course / "submitted" / NO_SHOW).exists(), "a student who handed in nothing has no submission"


def test_autograde_runs_in_the_grading_profile_whatever_the_shell_says(day):
    for student in SUBMITTERS:
        for nb_name in _nb_names(day.course / "autograded" / student / GRADED):
            text = (day.course / "autograded" / student / GRADED / nb_name).read_text()
            assert "run profile 'smoke'" in text, \
                f"autograded/{student}/{GRADED}/{nb_name} did not run in the smoke profile (ALEXNET_PROFILE=quick)"


def test_the_gradebook_is_ready_for_the_formgrader(day):
    max_auto, max_written = _max_scores(GRADED)
    assert max_auto > 0 and max_written > 0
    with Gradebook(f"sqlite:///{day.course / 'gradebook.db'}", COURSE_ID) as gb:
        assert sorted(s.student.id for s in gb.find_assignment(GRADED).submissions) == sorted(SUBMITTERS)
        for student in FULL_MARKS:
            sub = gb.find_submission(GRADED, student)
            assert (sub.code_score, sub.max_code_score) == (max_auto, max_auto), \
                f"{student} handed in the solutions but scores {sub.code_score}/{sub.max_code_score}"
            assert sub.max_written_score == max_written
            assert sub.needs_manual_grade, f"{student}'s written answers should wait for the instructor"
            written = [g for nb in sub.notebooks for g in nb.grades if g.cell_type == "markdown"]
            assert written and all(g.needs_manual_grade and g.manual_score is None for g in written), \
                f"{student}'s written answers: {[(g.name, g.auto_score, g.manual_score) for g in written]}"
        blank = gb.find_submission(GRADED, BLANK_STUDENT)
        assert blank.code_score == 0 and blank.max_code_score == max_auto
        assert not blank.needs_manual_grade, "untouched written answers score 0 and need no grading"


def test_feedback_is_html_with_the_score_for_every_hand_in(day):
    max_auto, max_written = _max_scores(GRADED)
    expected = {EXCHANGE_STUDENT: max_auto, REFERENCE_STUDENT: max_auto, BLANK_STUDENT: 0.0}
    for student, score in expected.items():
        pages = _feedback_pages(day.course, student)
        assert [p.stem for p in pages] == [Path(n).stem for n in _nb_names(day.course / "source" / GRADED)], \
            f"`nbgrader generate_feedback` wrote {pages} for {student}"
        if len(pages) == 1:
            assert f"Score: {score} / {max_auto + max_written}" in pages[0].read_text(), \
                f"{pages[0]} does not show {student}'s score {score}"
    assert not (day.course / "feedback" / NO_SHOW).exists()


def test_export_writes_one_row_per_student_and_assignment(day):
    max_auto, max_written = _max_scores(GRADED)
    with open(day.course / "grades.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    keys = [(r["student_id"], r["assignment"]) for r in rows]
    assert sorted(keys) == sorted((s, a) for s in STUDENTS for a in NAMES), \
        f"grades.csv should have one row per student and assignment, has {keys}"
    by_key = {(r["student_id"], r["assignment"]): r for r in rows}
    for student in STUDENTS:
        row = by_key[(student, GRADED)]
        assert float(row["max_score"]) == max_auto + max_written
        assert float(row["late_submission_penalty"]) == 0
        want = max_auto if student in FULL_MARKS else 0.0
        assert float(row["score"]) == float(row["raw_score"]) == want, f"{student}: {row}"
    assert by_key[(EXCHANGE_STUDENT, GRADED)]["timestamp"], "a submission through the exchange is timestamped"
    assert by_key[(NO_SHOW, GRADED)]["timestamp"] == "", "no hand-in, no timestamp"
    ada = by_key[(REFERENCE_STUDENT, GRADED)]
    assert (ada["first_name"], ada["last_name"], ada["email"]) == ("Ada", "Lovelace", "ada@example.org")


def test_the_instructor_can_opt_in_to_show_hidden_tests_in_feedback(day, tmp_path):
    hidden = _hidden_lines(GRADED)
    assert hidden, f"{GRADED} has no hidden tests to show"
    opted = tmp_path / "course"
    shutil.copytree(day.course, opted)
    with open(opted / "nbgrader_config.py", "a") as f:
        f.write(SHOW_HIDDEN_TESTS)
    course.run_nbgrader(["generate_feedback", GRADED, "--force"], opted)
    pages = _feedback_pages(opted, EXCHANGE_STUDENT)
    assert pages
    text = "\n".join(_feedback_text(p) for p in pages)
    missing = [line for line in hidden if line not in text]
    assert not missing, f"with the opt-in, feedback should show every hidden test; missing {missing[:3]}"


def test_feedback_does_not_disclose_hidden_tests(day):
    hidden = _hidden_lines(GRADED)
    assert hidden, f"{GRADED} has no hidden tests to keep hidden"
    leaks = []
    for student in SUBMITTERS:
        for page in _feedback_pages(day.course, student):
            text = _feedback_text(page)
            leaked = [line for line in hidden if line in text]
            if leaked or "HIDDEN TESTS" in text:
                leaks.append(f"{page.relative_to(day.course)}: {len(leaked)} hidden-test lines, e.g. {leaked[:2]}")
    assert not leaks, "feedback discloses hidden tests (in test cells or tracebacks):\n" + "\n".join(leaks)
