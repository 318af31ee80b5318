"""The student release: generated from source/, current, and free of solutions."""

import re

import nbformat
import pytest

from alexnet_utils.course import markers
from alexnet_utils.course import release as course

from .conftest import ROOT, source_notebooks

SOURCES = source_notebooks()
IDS = [nb.parent.name for nb in SOURCES]


def _read(path):
    return nbformat.read(path, as_version=4)


def _comparable(nb):
    """A notebook as nbformat would write it, without volatile keys."""
    return nbformat.writes(nb)


def test_every_assignment_has_a_source_notebook():
    assert SOURCES, "source/ holds no notebooks"
    for name in course.assignments(ROOT):  # all of them, whatever make check limits
        assert re.fullmatch(r"\d\d_[a-z_]+", name), f"assignment {name} is not named NN_topic"
        assert (ROOT / "source" / name / f"{name}.ipynb").exists(), f"source/{name}/{name}.ipynb is missing"


@pytest.mark.parametrize("nb_path", SOURCES, ids=IDS)
def test_source_is_stored_without_outputs(nb_path):
    for i, cell in enumerate(_read(nb_path).cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, \
                f"{nb_path.name} cell {i} carries outputs: clear them before committing"


@pytest.mark.parametrize("nb_path", SOURCES, ids=IDS)
def test_committed_release_matches_source(nb_path, fresh):
    name = nb_path.parent.name
    committed = ROOT / "release" / name / nb_path.name
    assert committed.exists(), f"{committed} is missing: run `make release`"
    assert _comparable(_read(committed)) == _comparable(_read(fresh(name) / "release" / name / nb_path.name)), \
        f"{committed} is stale: run `make release` and commit the result"


@pytest.mark.parametrize("nb_path", SOURCES, ids=IDS)
def test_committed_selfstudy_matches_source(nb_path, fresh):
    committed, generated = ROOT / "notebooks" / nb_path.name, fresh(nb_path.parent.name) / "notebooks" / nb_path.name
    assert committed.exists(), f"{committed} is missing: run `make release`"
    assert _comparable(_read(committed)) == _comparable(_read(generated)), \
        f"{committed} is stale: run `make release` and commit the result"


@pytest.mark.parametrize("nb_path", SOURCES, ids=IDS)
def test_release_holds_no_solutions_or_hidden_tests(nb_path):
    release = ROOT / "release" / nb_path.parent.name / nb_path.name
    text = release.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"{release} contains {marker!r}"
    released_code = "\n".join(c.source for c in _read(release).cells if c.cell_type == "code")
    secret, public = [], set()
    for cell in _read(nb_path).cells:
        hidden, shown = markers.split(cell.source)
        secret += [line.strip() for line in hidden]
        public.update(line.strip() for line in shown)
    # lines that also appear outside any region (e.g. `with torch.no_grad():`) give nothing away
    secret = [line for line in secret if len(line) > 12 and not line.startswith("#") and line not in public]
    assert secret, f"{nb_path.name} has no solution or hidden-test lines to check"
    leaked = [line for line in secret if line in released_code]
    assert not leaked, f"{release} leaks solution/hidden lines: {leaked[:3]}"


@pytest.mark.parametrize("nb_path", SOURCES, ids=IDS)
def test_grading_metadata_is_complete(nb_path):
    nb = _read(nb_path)
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), f"{nb_path.name}: duplicate grade_ids"
    assert graded, f"{nb_path.name} has no graded cells"
    for cell in graded:
        meta = cell.metadata["nbgrader"]
        assert meta.get("points", 0) > 0, f"{nb_path.name}: graded cell {meta['grade_id']} has no points"
    written = [c for c in graded if c.cell_type == "markdown" and c.metadata["nbgrader"].get("solution")]
    assert written, f"{nb_path.name} needs at least one manually graded written answer"
    tests = [c for c in graded if c.cell_type == "code"]
    assert any("BEGIN HIDDEN TESTS" in c.source for c in tests), f"{nb_path.name} has no hidden tests"
    assert "Learning goals" in nb.cells[0].source, f"{nb_path.name} opens without its learning goals"
