"""Each self-study notebook runs: its folded solutions pass every check, its stubs are real.

A lone learner replaces each stub with the solution folded under "Show solution" and
expects every check below it to pass, in a fresh kernel, on a machine without Colab.
"""

import copy
import re

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from alexnet_utils.course import stubs

from .conftest import ROOT, source_notebooks

NOTEBOOKS = [ROOT / "notebooks" / nb.name for nb in source_notebooks()]
STUB = stubs.STUB_CALL  # every stub starts so; it goes on to name its task
SOLUTION_HEAD = "<details><summary><b>Show solution</b></summary>"
PYTHON_FENCE = re.compile(r"^```python\n(.*?)\n```$", re.DOTALL | re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CELL_TIMEOUT = 300  # seconds per cell; a whole notebook takes seconds in the smoke profile


def _is_stub(cell) -> bool:
    return cell.cell_type == "code" and STUB in cell.source


def _first_line(cell) -> str:
    return cell.source.strip().splitlines()[0] if cell.source.strip() else "<empty>"


def with_folded_solutions(nb):
    """A copy of ``nb`` in which every stub code cell holds the solution folded right after it."""
    nb = copy.deepcopy(nb)
    replaced = 0
    for i, cell in enumerate(nb.cells):
        if not _is_stub(cell):
            continue
        assert i + 1 < len(nb.cells), f"cell {i} ({_first_line(cell)!r}) is a stub with no solution after it"
        folded = nb.cells[i + 1]
        assert folded.cell_type == "markdown" and folded.source.startswith(SOLUTION_HEAD), \
            f"cell {i} ({_first_line(cell)!r}) is a stub but cell {i + 1} is not a folded solution"
        code = PYTHON_FENCE.findall(folded.source)
        assert len(code) == 1, f"the solution after cell {i} ({_first_line(cell)!r}) has no ```python block"
        cell.source = code[0]
        replaced += 1
    fenced = sum(1 for c in nb.cells
                 if c.cell_type == "markdown" and c.source.startswith(SOLUTION_HEAD) and PYTHON_FENCE.search(c.source))
    assert replaced, "the notebook has no stubs to replace"
    assert replaced == fenced, f"{fenced} folded code solutions but only {replaced} follow a stub"
    return nb


def execute(nb, cwd, allow_errors):
    """Run ``nb`` in place in a fresh python3 kernel whose working directory is ``cwd``."""
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def problems(nb) -> list[str]:
    """One line per code cell that raised or wrote to stderr."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            if out.output_type == "error":
                found.append(f"cell {i} ({_first_line(cell)!r}) raised {out.ename}: {out.evalue[:300]}")
            elif out.output_type == "stream" and out.name == "stderr":
                found.append(f"cell {i} ({_first_line(cell)!r}) wrote to stderr: {out.text.strip()[:300]}")
    return found


def first_code_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


def test_there_are_self_study_notebooks():
    assert NOTEBOOKS, f"{ROOT / 'notebooks'} holds no notebooks: run `make release`"


@pytest.mark.slow
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_folded_solutions_pass_every_check(nb_path, tmp_path):
    nb = execute(with_folded_solutions(nbformat.read(nb_path, as_version=4)), tmp_path, allow_errors=True)
    setup = first_code_cell(nb)
    assert setup.execution_count is not None, "the set-up cell did not run"
    found = problems(nb)
    assert not found, f"{nb_path.name} with its folded solutions filled in:\n" + "\n".join(found)


@pytest.mark.slow
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_untouched_notebook_stops_at_its_first_stub(nb_path, tmp_path):
    nb = nbformat.read(nb_path, as_version=4)
    stubs = [i for i, c in enumerate(nb.cells) if _is_stub(c)]
    assert stubs, f"{nb_path.name} has no stub"
    # a stub that defines a function raises when a check calls it: before the next stub runs
    first, next_stub = stubs[0], (stubs[1:] or [len(nb.cells)])[0]
    with pytest.raises(CellExecutionError) as stopped:
        execute(nb, tmp_path, allow_errors=False)
    assert stopped.value.ename == "NotImplementedError", \
        f"{nb_path.name} stopped on {stopped.value.ename}: {stopped.value.evalue[:300]}"
    failed = [i for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)]
    assert len(failed) == 1 and first <= failed[0] < next_stub, \
        f"{nb_path.name} should stop on its first stub (cell {first}, before cell {next_stub}); errors in {failed}"
    error = next(o for o in nb.cells[failed[0]].outputs if o.output_type == "error")
    traceback = ANSI.sub("", "\n".join(error.traceback))
    assert STUB in traceback, f"{nb_path.name}: the NotImplementedError does not come from a stub:\n{traceback}"
    assert re.search(r"complete \w+|task above", error.evalue), \
        f"{nb_path.name}: the first stub's error does not say what to complete: {error.evalue!r}"
    skipped = [i for i, c in enumerate(nb.cells[:failed[0]]) if c.cell_type == "code" and c.execution_count is None]
    assert not skipped, f"{nb_path.name}: cells {skipped} before the first stub did not run"
    assert first_code_cell(nb).execution_count is not None, "the set-up cell did not run"
