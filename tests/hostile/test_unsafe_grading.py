"""Without a sandbox, grading needs --unsafe, and then still grades correctly."""

import json
import shutil

import nbformat
import pytest

from alexnet_utils.course import grading
from alexnet_utils.course import release as course_mod

from ..repo import scratch_course
from .test_hostile_submissions import NAME, source_notebook


@pytest.fixture
def tiny_course(tmp_path):
    scratch_course(tmp_path)
    (tmp_path / "source" / NAME).mkdir(parents=True)
    nbformat.write(source_notebook(), tmp_path / "source" / NAME / f"{NAME}.ipynb")
    (tmp_path / "submitted" / "ada" / NAME).mkdir(parents=True)
    nbformat.write(source_notebook(), tmp_path / "submitted" / "ada" / NAME / f"{NAME}.ipynb")
    return tmp_path


@pytest.fixture
def no_sandbox(monkeypatch):
    monkeypatch.setattr(grading, "sandbox_problem", lambda: "bubblewrap (bwrap) is not installed")


def test_without_a_sandbox_grading_refuses_and_names_the_fix(tiny_course, no_sandbox):
    with pytest.raises(grading.SandboxUnavailable, match="--unsafe"):
        grading.grade(tiny_course)
    assert not (tiny_course / "autograded").exists()


@pytest.mark.slow
def test_unsafe_grading_without_a_sandbox_still_scores(tiny_course, no_sandbox):
    (outcome,) = grading.grade(tiny_course, unsafe=True)
    assert (outcome.student, outcome.score, outcome.max_score, outcome.flags) == ("ada", 4, 4, [])
    assert [s.student for s in course_mod.read_scores(tiny_course)] == ["ada"]
    # the written answer waits for a human: counted apart, listed in the report
    assert (outcome.written_max, outcome.manual_points) == (1, 1)
    assert outcome.to_grade == [{"notebook": NAME, "cell": "why", "points": 1.0, "kind": "written answer"}]
    table = grading.report_table([outcome])
    assert "4/4 auto" in table and "1 manual point to grade" in table and "0 flagged" in table
    assert "to grade by hand in the formgrader: 1 answer in 1 submission, 1 point" in table
    (row,) = json.loads((tiny_course / grading.REPORT).read_text())
    assert row["to_grade"] == outcome.to_grade and row["written_max"] == 1


def test_an_empty_submitted_folder_grades_nothing(tiny_course):
    shutil.rmtree(tiny_course / "submitted")
    (tiny_course / "submitted").mkdir()
    assert grading.grade(tiny_course) == []
