"""The self-study edition for Colab and lone learners."""

import nbformat
import pytest

from alexnet_utils.course import selfstudy

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
    assert all("nbgrader" not in c.metadata for c in out.cells), "self-study cells carry no grading metadata"
