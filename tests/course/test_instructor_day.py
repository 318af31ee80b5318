"""The instructor's day with nbgrader, as README.md types it, on a copy of the course as shipped.

tests/instructor_day.py runs README's "The instructor's day" command by command, in
its order, in a course with every folder the repository ships (autograded/ with the
course's own reference grading included). Students are added to the gradebook, every
assignment is generated and released to an exchange, one student fetches and submits
through it and the instructor collects, two students hand in from Colab as files that
`zip_collect` files away, one never hands in. Then `python -m alexnet_utils grade`
(sandboxed, always in the smoke profile), a gradebook the formgrader can open,
`generate_feedback` (HTML; hidden tests stay hidden unless the instructor opts in) and
`export` to CSV with one row per student and assignment.

One assignment goes through hand-in, grading and feedback (the steps are the same for
every assignment, and test_grading.py grades all of them); all are released and exported.
"""

import csv
import html
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from alexnet_utils.course import class_report, grading, stubs
from alexnet_utils.course import release as course

from ..instructor_day import (
    BLANK_STUDENT,
    COURSE_ID,
    EXCHANGE_STUDENT,
    FULL_MARKS,
    NO_SHOW,
    REFERENCE_STUDENT,
    STUDENTS,
    SUBMITTERS,
    nb_names,
    readme_day,
)
from .conftest import ROOT, assignments

NAMES = assignments()
GRADED = NAMES[0]

CSV_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
               "raw_score", "late_submission_penalty", "score", "max_score"]

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


@pytest.fixture(scope="module")
def day(instructor_day):
    return instructor_day


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


def _written_answers(name: str) -> list[dict]:
    """The manually graded cells of an assignment, as grading_report.json lists them."""
    return [{"notebook": nb_path.stem, "cell": c.metadata["nbgrader"]["grade_id"],
             "points": float(c.metadata["nbgrader"]["points"]), "kind": "written answer"}
            for nb_path in course.notebooks(ROOT / "source" / name)
            for c in nbformat.read(nb_path, as_version=4).cells
            if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]


def _line(day, command: str) -> str:
    (line,) = [line for line in day.outputs if line.startswith(command)]
    return line


def test_readmes_day_runs_as_typed_in_its_order(day):
    print("the instructor's day, seconds per command:\n" + "\n".join(f"{t:6.1f}  {c}" for c, t in day.seconds.items()))
    lines = readme_day()
    assert list(day.outputs) == lines, "every command of README's day ran, as written, in its order"
    steps = ["nbgrader db student add", "nbgrader generate_assignment", "nbgrader release_assignment",
             "nbgrader collect", "nbgrader zip_collect", "python -m alexnet_utils grade",
             "nbgrader generate_feedback", "nbgrader export"]
    order = [next(i for i, line in enumerate(lines) if line.startswith(step)) for step in steps]
    assert order == sorted(order), f"README's day should run {steps} in this order: {lines}"


def test_generate_assignment_registers_it_and_writes_the_release_as_committed(day):
    out = day.outputs[_line(day, "nbgrader generate_assignment")]
    assert "Skipping existing assignment" not in out, out[-2000:]
    for nb_name in nb_names(ROOT / "source" / GRADED):
        written = nbformat.read(day.course / "release" / GRADED / nb_name, as_version=4)
        committed = nbformat.read(ROOT / "release" / GRADED / nb_name, as_version=4)
        assert nbformat.writes(written) == nbformat.writes(committed), \
            f"`nbgrader generate_assignment {GRADED} --force` writes a release that differs from the committed one"


def test_the_shipped_reference_grading_is_not_taken_for_students(day):
    """autograded/reference and autograded/blank ship with the course; nbgrader's commands leave them be."""
    for student in (course.REFERENCE, course.BLANK):
        assert not (day.course / "feedback" / student).exists(), f"feedback was generated for {student!r}"
        shipped = ROOT / "autograded" / student / GRADED
        assert nb_names(day.course / "autograded" / student / GRADED) == nb_names(shipped)
    with Gradebook(f"sqlite:///{day.course / 'gradebook.db'}", COURSE_ID) as gb:
        assert not {course.REFERENCE, course.BLANK} & {s.id for s in gb.students}
    out = day.outputs[_line(day, "nbgrader generate_feedback")]
    assert "Traceback" not in out and "ERROR" not in out, out[-3000:]


def test_the_grade_summary_counts_written_answers_apart(day):
    """`python -m alexnet_utils grade`: automatic points, the written ones to grade by hand, and the report."""
    max_auto, max_written = _max_scores(GRADED)
    written = _written_answers(GRADED)
    assert written and sum(w["points"] for w in written) == max_written
    out = day.outputs[_line(day, "python -m alexnet_utils grade")]
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith(GRADED)}
    assert sorted(rows) == sorted(SUBMITTERS), out
    for student in FULL_MARKS:
        assert f"{max_auto:g}/{max_auto:g} auto" in rows[student], rows[student]
        assert f"{max_written:g} manual points to grade" in rows[student], rows[student]
    assert f"0/{max_auto:g} auto" in rows[BLANK_STUDENT] and f"0/{max_written:g} written" in rows[BLANK_STUDENT]
    assert (f"to grade by hand in the formgrader: {len(written) * len(FULL_MARKS)} answers in "
            f"{len(FULL_MARKS)} submissions, {max_written * len(FULL_MARKS):g} points") in out, out
    assert f"{len(SUBMITTERS)} submissions graded, 0 flagged for manual review" in out, out
    report = {r["student"]: r for r in json.loads((day.course / grading.REPORT).read_text())}
    for student in FULL_MARKS:
        r = report[student]
        assert (r["score"], r["max_score"], r["written_max"], r["flags"]) == (max_auto, max_auto, max_written, [])
        assert r["to_grade"] == written, f"{student}: the report lists {r['to_grade']}"
    blank = report[BLANK_STUDENT]
    assert (blank["score"], blank["written_score"], blank["to_grade"]) == (0, 0, []), blank


def test_the_class_report_shows_what_share_of_the_class_lost_each_cell(day):
    """After the table, `grade` writes class_report.html: scores per assignment, and per graded cell who lost it."""
    out = day.outputs[_line(day, "python -m alexnet_utils grade")]
    path = day.course / class_report.REPORT
    assert f"class report: {path.resolve()}" in out, out[-1500:]
    text = path.read_text()
    assert f"<h2>{GRADED}</h2>" in text and text.count("data:image/png;base64,") == 1, "one figure per assignment"
    rows = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td><td>[^<]*</td><td>([^<]*)</td>"
                      r"<td>(\d+) of (\d+)</td><td>(\d+)</td></tr>", text)
    code = {cell: (share, lost, of) for cell, kind, share, lost, of, _ in rows if kind == "code"}
    tests = [c.metadata["nbgrader"]["grade_id"] for nb in course.notebooks(ROOT / "source" / GRADED)
             for c in nbformat.read(nb, as_version=4).cells
             if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    assert sorted(code) == sorted(tests), f"one row per graded code cell: {rows}"
    # the blank release loses every test cell; the two who handed in the solutions lose none
    assert set(code.values()) == {("33%", "1", str(len(SUBMITTERS)))}, code
    written = {cell: int(waiting) for cell, kind, *_, waiting in rows if kind == "written answer"}
    assert written and all(w == len(FULL_MARKS) for w in written.values()), f"waiting for a hand grade: {written}"


def test_the_class_list_and_every_assignment_are_in_the_gradebook(day):
    with Gradebook(f"sqlite:///{day.course / 'gradebook.db'}", COURSE_ID) as gb:
        assert sorted(s.id for s in gb.students) == sorted(STUDENTS)
        ada = gb.find_student(REFERENCE_STUDENT)
        assert (ada.first_name, ada.last_name, ada.email) == ("Ada", "Lovelace", "ada@example.org")
        assert sorted(a.name for a in gb.assignments) == NAMES


def test_every_assignment_is_released_to_the_exchange_and_listed_for_students(day):
    for name in NAMES:
        released = day.exchange / COURSE_ID / "outbound" / name
        assert nb_names(released) == nb_names(day.course / "source" / name), \
            f"`nbgrader release_assignment {name}` did not put its notebooks in {released}"
        assert name in day.listed, f"`nbgrader list` does not show {name} to a student:\n{day.listed}"


def test_a_student_fetches_the_release_without_solutions_or_hidden_tests(day):
    assert day.fetched, f"`nbgrader fetch_assignment {GRADED}` fetched no notebook"
    for nb_name, text in day.fetched.items():
        assert stubs.STUB_CALL in text, f"{nb_name} as fetched has no stubs"
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"):
            assert marker not in text, f"{nb_name} as fetched by a student contains {marker!r}"


def test_collect_and_zip_collect_file_every_hand_in_for_grading(day):
    for student in SUBMITTERS:
        folder = day.course / "submitted" / student / GRADED
        assert nb_names(folder) == nb_names(day.course / "source" / GRADED), \
            f"{student}'s hand-in is not in {folder}"
    assert (day.course / "submitted" / EXCHANGE_STUDENT / GRADED / "timestamp.txt").exists(), \
        "`nbgrader collect` keeps the time of submission"
    assert not (day.course / "submitted" / NO_SHOW).exists(), "a student who handed in nothing has no submission"


def test_autograde_runs_in_the_grading_profile_whatever_the_shell_says(day):
    for student in SUBMITTERS:
        for nb_name in nb_names(day.course / "autograded" / student / GRADED):
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
        assert [p.stem for p in pages] == [Path(n).stem for n in nb_names(day.course / "source" / GRADED)], \
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
