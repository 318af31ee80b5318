"""The documented nbgrader flow on every assignment, in the smoke profile."""

import json

import pytest

from alexnet_utils.course import grading
from alexnet_utils.course import release as course

from .conftest import ROOT, assignments, source_notebooks

NAMES = assignments()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_reference_solution_earns_every_automatic_point(scores, name):
    (ref,) = [s for s in scores(name) if s.student == course.REFERENCE]
    assert ref.max_score > 0
    assert ref.score == ref.max_score, f"{name}: the instructor's solution scores {ref.score}/{ref.max_score}"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_untouched_release_scores_zero_without_crashing(scores, name):
    (blank,) = [s for s in scores(name) if s.student == course.BLANK]
    assert blank.max_score > 0
    assert blank.score == 0, f"{name}: an untouched release earns {blank.score} points"


@pytest.mark.slow
@pytest.mark.parametrize("nb_path", source_notebooks(), ids=lambda p: p.parent.name)
def test_nbgrader_validate_fails_the_untouched_release(nb_path, fresh):
    """A student's Validate button tells the truth about an unsolved notebook.

    That the solved notebook passes every test is what the reference autograde above checks
    (same tests, same smoke profile); running `nbgrader validate` on the source too would
    execute the whole notebook once more for nothing new.
    """
    name = nb_path.parent.name
    release = fresh(name) / "release" / name / nb_path.name
    out = course.run_nbgrader(["validate", "--invert", str(release)], fresh(name))
    assert "Success! The notebook does not pass any tests." in out, out[-2000:]


def test_committed_autograded_copies_are_current():
    manifest_path = ROOT / "autograded" / course.MANIFEST
    assert manifest_path.exists(), "autograded/ is missing: run `make grade`"
    manifest = json.loads(manifest_path.read_text())
    for name in NAMES:
        assert name in manifest, f"autograded/ has no results for {name}: run `make grade`"
        assert manifest[name]["source_sha256"] == course.source_digest(ROOT, name), \
            f"autograded/ for {name} predates the current source: run `make grade` and commit"
        ref, ref_max = manifest[name]["scores"][course.REFERENCE]
        blank, _ = manifest[name]["scores"][course.BLANK]
        assert ref == ref_max > 0 and blank == 0, f"{name}: recorded scores {manifest[name]['scores']}"
        for student in (course.REFERENCE, course.BLANK):
            assert list((ROOT / "autograded" / student / name).glob("*.ipynb")), \
                f"autograded/{student}/{name} holds no notebook"


def test_the_review_table_keeps_automatic_and_manual_points_apart():
    written = [{"notebook": "nb", "cell": "q1", "points": 3.0, "kind": "written answer"},
               {"notebook": "nb", "cell": "q2", "points": 2.0, "kind": "written answer"}]
    outcomes = [
        grading.Outcome("01_x", "ada", 19, 19, [], written_score=0, written_max=5, to_grade=written),
        grading.Outcome("01_x", "bob", 0, 19, [], written_score=0, written_max=5),
        grading.Outcome("01_x", "cy", 12, 19, ["nb: cell t hit the time limit"], written_score=4, written_max=5),
        grading.Outcome("01_x", "dan", None, None, ["autograde failed: DeadKernelError"]),
    ]
    rows = {line.split()[1]: line for line in grading.report_table(outcomes).splitlines()
            if line.startswith("01_x")}
    assert "19/19 auto" in rows["ada"] and "5 manual points to grade" in rows["ada"] and rows["ada"].endswith("no")
    assert "0/19 auto" in rows["bob"] and "0/5 written" in rows["bob"]
    assert "12/19 auto" in rows["cy"] and "4/5 written" in rows["cy"] and "time limit" in rows["cy"]
    assert rows["dan"].split()[2] == "-" and "DeadKernelError" in rows["dan"]
    summary = grading.report_table(outcomes).splitlines()[-2:]
    assert summary == ["4 submissions graded, 2 flagged for manual review",
                       "to grade by hand in the formgrader: 2 answers in 1 submission, 5 points "
                       f"(listed in {grading.REPORT})"]
