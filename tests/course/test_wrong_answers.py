"""Plausible wrong answers are caught, each once, in the cell that tests its skill.

Every notebook in source/ needs a suite of at least MIN_MISTAKES in
tests/wrong_answers/. The replay grades them all in one kernel per notebook;
for notebook 01, nbgrader itself grades them too, and the two must agree.
"""

import functools

import nbformat
import pytest

from alexnet_utils.course import release as course

from ..repo import scratch_course
from .conftest import ROOT, assignments
from .wrong_answers import Replay, apply, graded_cells, nbgrader_cell_scores, suite

NAMES = assignments()
MIN_MISTAKES = 10
CROSS_CHECKED = "01_build_alexnet"  # graded by nbgrader too, to keep the replay honest


def _source(name):
    (path,) = course.notebooks(ROOT / "source" / name)
    return nbformat.read(path, as_version=4)


@pytest.mark.parametrize("name", NAMES)
def test_every_notebook_has_a_suite_of_wrong_answers(name):
    mistakes = [w for w in suite(name) if not w.accepted]
    assert len(mistakes) >= MIN_MISTAKES, \
        f"tests/wrong_answers/{name}.yaml holds {len(mistakes)} wrong answers; write at least {MIN_MISTAKES}"
    graded = graded_cells(_source(name))
    for wrong in suite(name):
        assert wrong.loses <= set(graded), f"{wrong.id}: {sorted(wrong.loses - set(graded))} are not graded cells"
        apply(_source(name), wrong)  # every patch applies inside its solution region


@pytest.fixture(scope="session")
def replayed(tmp_path_factory):
    """name -> (graded cells the reference loses, {mistake id: graded cells it loses}), replayed once."""
    @functools.cache
    def replay_of(name: str):
        with Replay(_source(name), tmp_path_factory.mktemp(f"replay-{name}")) as replay:
            return replay.reference(), replay.mistakes(suite(name))
    return replay_of


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_each_mistake_loses_points_exactly_where_its_skill_is_tested(name, replayed):
    reference_lost, lost = replayed(name)
    assert not reference_lost, f"{name}: the reference itself loses {sorted(reference_lost)}"
    problems = []
    for wrong in suite(name):
        if lost[wrong.id] != wrong.loses:
            what = "an accepted alternative" if wrong.accepted else "a mistake"
            problems.append(f"{wrong.id} ({what}: {wrong.why}) loses {sorted(lost[wrong.id]) or 'nothing'}, "
                            f"expected {sorted(wrong.loses) or 'nothing'}")
    assert not problems, f"{name}:\n" + "\n".join(problems)


def sample(wrongs, mistakes: int = 3):
    """What nbgrader re-grades: an accepted alternative and a few mistakes aimed at different cells.

    nbgrader runs each student's whole notebook in a fresh kernel (about 20 s for
    notebook 01), so CI affords a sample; the replay grades the whole suite.
    """
    picked = [w for w in wrongs if w.accepted][:1]
    seen = set()
    for wrong in wrongs:
        if not wrong.accepted and not wrong.loses & seen and len(picked) < mistakes + 1:
            picked.append(wrong)
            seen |= wrong.loses
    return picked


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if n == CROSS_CHECKED])  # beside its replay, on one worker
def test_nbgrader_grades_the_mistakes_as_the_replay_does(name, tmp_path, replayed):
    scratch = scratch_course(tmp_path / "course", "source")
    course.run_nbgrader(["generate_assignment", name, "--force"], scratch)
    (path,) = course.notebooks(scratch / "source" / name)
    wrongs = sample(suite(name))
    for wrong in wrongs:
        folder = scratch / "submitted" / wrong.id / name
        folder.mkdir(parents=True)
        nbformat.write(apply(_source(name), wrong), folder / path.name)
    course.run_nbgrader(["autograde", name, "--force"], scratch)
    scores = nbgrader_cell_scores(scratch, name)
    _, replay_lost = replayed(name)
    for wrong in wrongs:
        lost = {gid for gid, (score, top) in scores[wrong.id].items() if score < top}
        assert lost == replay_lost[wrong.id], f"{wrong.id}: nbgrader takes points in {sorted(lost)}, " \
                                              f"the replay in {sorted(replay_lost[wrong.id])}"


@pytest.mark.parametrize("name", NAMES)
def test_readme_reports_the_size_of_each_suite(name):
    mistakes = sum(not w.accepted for w in suite(name))
    accepted = sum(w.accepted for w in suite(name))
    row = f"| {name} | {mistakes} | {mistakes} | {accepted} |"
    assert row in (ROOT / "README.md").read_text(), f"README's wrong-answer table needs the row {row}"
