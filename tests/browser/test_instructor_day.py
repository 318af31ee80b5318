"""The instructor's and the self-learner's path in a real browser, once, on the course as shipped.

tests/instructor_day.py typed README's instructor's day into a copy of the course with
every folder the repository ships (autograded/reference and autograded/blank included);
this test copies what that day left (gradebook, submissions, autograded work) and serves
it with JupyterLab, as `make lab` does in a private clone. Headless Chromium then:

1. opens the self-study edition of the first notebook, untouched, and clicks nbgrader's
   Validate: it must fail, and say which task to complete (a stub names its task);
2. opens Nbgrader > Formgrader from JupyterLab's menu;
3. grades a written answer by hand (Manual Grading > assignment > notebook > Show All Names >
   the student > the answer's score box);
4. clicks the assignment's "Generate Feedback": it must succeed, although
   autograded/reference and autograded/blank are in the course;
5. `nbgrader export` lists the grade, automatic and manual points together.

One walk for the whole course: the steps do not depend on the notebook.
"""

import csv
import re
import shutil
import time

import nbformat
import pytest
from nbgrader.api import Gradebook

from alexnet_utils.course import release as course

from ..instructor_day import BLANK_STUDENT, COURSE_ID, EXCHANGE_STUDENT, NO_SHOW, REFERENCE_STUDENT
from .conftest import serve
from .test_jupyterlab import _open, _toasts, _validate

FEEDBACK_TIMEOUT = 120  # s: nbgrader converts every submission to HTML
FRAME_TIMEOUT = 30  # s


def _written_answer(course_dir, name: str) -> tuple[str, str, float]:
    """(notebook, grade_id, points) of the assignment's first manually graded written answer."""
    for nb_path in course.notebooks(course_dir / "source" / name):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type == "markdown" and meta.get("grade"):
                return nb_path.stem, meta["grade_id"], float(meta["points"])
    raise AssertionError(f"{name} has no written answer to grade by hand")


def _formgrader_frame(page):
    deadline = time.monotonic() + FRAME_TIMEOUT
    while time.monotonic() < deadline:
        for frame in page.frames:
            if "/formgrader" in frame.url:
                return frame
        page.wait_for_timeout(250)
    pytest.fail(f"Nbgrader > Formgrader opened no formgrader frame; frames {[f.url for f in page.frames]}, "
                f"notifications {_toasts(page)}")


def _auto_points(gb, name: str, student: str) -> float:
    return gb.find_submission(name, student).code_score


@pytest.mark.browser
@pytest.mark.skipif(EXCHANGE_STUDENT in (REFERENCE_STUDENT, BLANK_STUDENT, NO_SHOW),
                    reason=f"the OS user {EXCHANGE_STUDENT!r} has the name of a test student")
def test_the_instructors_day_in_the_formgrader(instructor_day, browser, artifacts, tmp_path_factory):
    name = instructor_day.graded
    root = tmp_path_factory.mktemp("formgrader")
    course_dir = root / "course"
    shutil.copytree(instructor_day.course, course_dir, symlinks=True)
    notebook, answer, points = _written_answer(course_dir, name)
    given = points - 1  # a partial mark, so that the export shows it came from the grader
    timings = {}
    with serve(course_dir, root / "jupyter-home") as lab:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            # 1. the self-learner: Validate on an untouched self-study notebook must not say "Success"
            started = time.monotonic()
            rel = f"notebooks/{name}.ipynb"
            _open(page, lab, rel, len(nbformat.read(course_dir / rel, as_version=4).cells))
            verdict, text = _validate(page, rel)
            timings["self-study validate"] = time.monotonic() - started
            assert verdict == "validation-failed", \
                f"{rel}: Validate on an unsolved self-study notebook says {verdict}: {text[:1500]}"
            assert re.search(r"NotImplementedError: Task \S+: complete \w+", text), \
                f"{rel}: Validate fails, but does not say which task to complete: {text[:1500]}"

            # 2. the instructor: Nbgrader > Formgrader, from JupyterLab's menu
            started = time.monotonic()
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Nbgrader$")).first.click()
            page.locator(".lm-Menu-item:not(.lm-mod-disabled)", has_text=re.compile(r"^Formgrader$")).first.click()
            frame = _formgrader_frame(page)
            row = frame.locator("#main-table tr", has=frame.locator("td.name", has_text=name))
            row.wait_for(timeout=FRAME_TIMEOUT * 1000)

            # 3. a written answer graded by hand
            frame.locator("a", has_text=re.compile(r"^Manual Grading$")).first.click()
            frame.locator("#main-table a", has_text=re.compile(rf"^{re.escape(name)}$")).first.click()
            frame.locator("#main-table a", has_text=re.compile(rf"^{re.escape(notebook)}$")).first.click()
            ada = frame.locator("#main-table a.name-shown", has_text="Lovelace, Ada")
            ada.wait_for(state="attached")  # the table fills in after the page loads
            frame.locator("#toggle_names").click()
            ada.click()
            score = frame.locator(f"input.score#{answer}")
            score.wait_for(timeout=FRAME_TIMEOUT * 1000)
            from playwright.sync_api import TimeoutError as PlaywrightTimeout

            try:  # the formgrader adds the class once its grades request returns
                frame.locator(f"input.score.needs_manual_grade#{answer}").wait_for(timeout=FRAME_TIMEOUT * 1000)
            except PlaywrightTimeout:
                pytest.fail(f"the formgrader does not mark {answer!r} as waiting for a grade")
            score.fill(f"{given:g}")
            with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT"):
                score.evaluate("el => el.blur()")
            page.screenshot(path=str(artifacts / "formgrader-manual-grade.png"))
            with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}", COURSE_ID) as gb:
                grade = gb.find_grade(answer, notebook, name, REFERENCE_STUDENT)
                assert grade.manual_score == given, f"the formgrader saved {grade.manual_score} for {answer}"
                auto = _auto_points(gb, name, REFERENCE_STUDENT)

            # 4. Generate Feedback for the assignment, with autograded/reference and /blank in the course
            frame.locator("a", has_text=re.compile(r"^Manual Grading$")).first.click()
            frame.locator("a", has_text=re.compile(r"^Manage Assignments$")).first.click()
            link = frame.locator("#main-table tr", has=frame.locator("td.name", has_text=name)) \
                .locator("td.generate-feedback a")
            link.click()
            modal = frame.locator("#success-modal, #error-modal")
            modal.first.wait_for(state="visible", timeout=FEEDBACK_TIMEOUT * 1000)
            outcome = modal.first.get_attribute("id")
            message = modal.first.inner_text()
            page.screenshot(path=str(artifacts / "formgrader-generate-feedback.png"))
            assert outcome == "success-modal", f"Generate Feedback failed:\n{message[:3000]}"
            timings["formgrader"] = time.monotonic() - started
        finally:
            context.close()

    # the feedback carries the hand grade; nobody is given feedback for the course's reference grading
    pages = sorted((course_dir / "feedback" / REFERENCE_STUDENT / name).glob("*.html"))
    assert pages and f"Score: {auto + given}" in pages[0].read_text(), \
        f"feedback for {REFERENCE_STUDENT} does not show {auto} automatic + {given} manual points"
    assert not {course.REFERENCE, course.BLANK} & {p.name for p in (course_dir / "feedback").iterdir()}

    # 5. the export lists the grade: automatic and manual points
    course.run_nbgrader(["export"], course_dir)
    with open(course_dir / "grades.csv", newline="") as f:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(f)}
    assert float(rows[REFERENCE_STUDENT, name]["score"]) == auto + given, rows[REFERENCE_STUDENT, name]
    print("instructor's day in the browser: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
