"""The self-study edition for Colab and lone learners."""

import nbformat
import pytest

from alexnet_utils.course import markers, selfstudy, stubs

from .conftest import ROOT, source_notebooks

SOURCES = source_notebooks()


@pytest.mark.parametrize("nb_path", SOURCES, ids=lambda p: p.parent.name)
def test_selfstudy_notebook_opens_with_badge_and_safe_install(nb_path):
    nb = nbformat.read(ROOT / "notebooks" / nb_path.name, as_version=4)
    settings = selfstudy.course_settings(ROOT)
    badge, setup = nb.cells[0], nb.cells[1]
    assert selfstudy.colab_url(settings, nb_path.name) in badge.source
    assert "colab-badge.svg" in badge.source
    assert setup.cell_type == "code"
    assert 'find_spec("alexnet_utils") is None' in setup.source, "install only when the package is missing"
    assert 'os.path.exists("/content")' in setup.source, "install only on Colab"
    install_line = next(line for line in setup.source.splitlines() if "pip" in line)
    assert "torch" not in install_line and "numpy" not in install_line, "never reinstall torch or numpy"
    assert "torch.cuda.is_available()" in setup.source, "tell the learner when no GPU is attached"


@pytest.mark.parametrize("nb_path", SOURCES, ids=lambda p: p.parent.name)
def test_selfstudy_folds_every_solution_and_keeps_every_hidden_test(nb_path):
    src = nbformat.read(nb_path, as_version=4)
    out = nbformat.read(ROOT / "notebooks" / nb_path.name, as_version=4)
    text = "\n".join(c.source for c in out.cells)
    solutions = [c for c in src.cells if c.metadata.get("nbgrader", {}).get("solution")]
    folded = [c for c in out.cells if c.source.startswith("<details><summary><b>Show solution")]
    assert len(folded) == len(solutions)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    for cell in src.cells:
        if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code":
            for line in cell.source.splitlines():
                if line.strip() and "###" not in line:
                    assert line in text, f"hidden check missing from the self-study edition: {line}"


@pytest.mark.parametrize("nb_path", SOURCES, ids=lambda p: p.parent.name)
def test_selfstudy_keeps_the_grading_metadata_so_validate_checks_every_test(nb_path):
    """nbgrader's Validate checks only cells with grade metadata: without it, an unsolved notebook "passes".

    Every test cell keeps the source's metadata (grade, points, locked) and no checksum (its text
    now includes the hidden tests, so the release's checksum would call it "changed"); each stub
    keeps its solution cell's metadata. The release's stubs fail every test (test_grading's
    `validate --invert`), so Validate fails on an unsolved self-study notebook;
    tests/browser/test_instructor_day.py clicks it to see.
    """
    src = nbformat.read(nb_path, as_version=4)
    out = nbformat.read(ROOT / "notebooks" / nb_path.name, as_version=4)
    kept = {c.metadata["nbgrader"]["grade_id"]: c for c in out.cells if "nbgrader" in c.metadata}
    for cell in src.cells:
        meta = cell.metadata.get("nbgrader")
        if not meta:
            continue
        assert meta["grade_id"] in kept, f"cell {meta['grade_id']!r} lost its nbgrader metadata in self-study"
        mine = kept[meta["grade_id"]]
        assert mine.metadata["nbgrader"] == {k: v for k, v in meta.items() if k != "checksum"}
        assert mine.cell_type == cell.cell_type
        if meta.get("grade") and cell.cell_type == "code":
            assert mine.source == markers.strip(cell.source, markers.HIDDEN), "a test cell holds all its tests"
        if meta.get("solution") and cell.cell_type == "code":
            assert stubs.STUB_CALL in mine.source and "BEGIN SOLUTION" not in mine.source
    ids = [c.metadata["nbgrader"]["grade_id"] for c in out.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)) == len(kept)


@pytest.mark.parametrize("nb_path", SOURCES, ids=lambda p: p.parent.name)
def test_selfstudy_says_nothing_of_hidden_tests_but_that_all_are_shown(nb_path):
    out = nbformat.read(ROOT / "notebooks" / nb_path.name, as_version=4)
    header, *rest = [c for c in out.cells if c.cell_type == "markdown"]
    assert selfstudy.HEADER_NOTE in header.source
    told = [c.source for c in rest if selfstudy.HIDDEN_TESTS.search(c.source)]
    assert not told, f"the self-study edition has no hidden tests, yet says: {told}"


def test_sentences_about_hidden_tests_are_dropped_and_nothing_else():
    text = ("**How this works.** Write your code, then run the\ntest cell under it. Each test cell checks one "
            "skill. Hidden tests check more than the\nvisible ones, so read closely.\n\nPart 2 · $n = 5$.")
    assert selfstudy.without_hidden_test_sentences(text) == (
        "**How this works.** Write your code, then run the\ntest cell under it. Each test cell checks one "
        "skill.\n\nPart 2 · $n = 5$.")
    assert selfstudy.without_hidden_test_sentences("Hidden tests: more.\n\nNext.") == "Next."
    untouched = "No such claim.\n\n\nKeep  this   spacing, e.g. 0.71 GFLOPs."
    assert selfstudy.without_hidden_test_sentences(untouched) == untouched
