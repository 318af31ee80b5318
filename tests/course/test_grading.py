"""The documented nbgrader flow on every assignment, in the smoke profile."""

import json

import pytest

from alexnet_utils.course import release as course

from .conftest import ROOT, assignments, source_notebooks

NAMES = assignments()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_reference_solution_earns_every_automatic_point(scores, name):
    (ref,) = [s for s in scores if s.assignment == name and s.student == course.REFERENCE]
    assert ref.max_score > 0
    assert ref.score == ref.max_score, f"{name}: the instructor's solution scores {ref.score}/{ref.max_score}"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_untouched_release_scores_zero_without_crashing(scores, name):
    (blank,) = [s for s in scores if s.assignment == name and s.student == course.BLANK]
    assert blank.max_score > 0
    assert blank.score == 0, f"{name}: an untouched release earns {blank.score} points"


@pytest.mark.slow
@pytest.mark.parametrize("nb_path", source_notebooks(), ids=lambda p: p.parent.name)
def test_nbgrader_validate_passes_source_and_fails_release(nb_path, fresh):
    out = course.run_nbgrader(["validate", str(nb_path)], ROOT)
    assert "Success! Your notebook passes all the tests." in out, out[-2000:]
    release = fresh / "release" / nb_path.parent.name / nb_path.name
    out = course.run_nbgrader(["validate", "--invert", str(release)], fresh)
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
