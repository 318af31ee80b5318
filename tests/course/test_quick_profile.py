"""Every source notebook runs top to bottom in the ``quick`` profile, on the real-data path.

The other notebook tests run in the offline ``smoke`` profile, on stand-in data.
Here the kernel reads a tiny cache in the real on-disk formats
(``tests/realdata.py``), so each notebook goes through the same torchvision
datasets, checksum checks and weights file as a learner's real download.

A dry run proves that the real-data path runs, not that it learns: it keeps
quick's data, image sizes, widths and seeds, but trains DRY_RUN_EPOCHS epochs
instead of quick's five (notebook 04's took 139 s of CI with five).
"""

import shutil
import time

import nbformat
import pytest
from nbclient import NotebookClient

from alexnet_utils.course import release

from ..realdata import patch_source
from ..repo import source_notebooks

ROOT = release.repo_root()
NOTEBOOKS = source_notebooks()
CELL_TIMEOUT = 1800  # seconds per cell: quick trains for real (a few epochs), on the tiny cache
DRY_RUN_EPOCHS = 2  # smoke's: every notebook's code handles it
DRY_RUN = f"""\
# Inserted by tests/course/test_quick_profile.py: a dry run of the quick profile, {DRY_RUN_EPOCHS} epochs.
import dataclasses as _dataclasses
import alexnet_utils.profiles as _profiles
_profiles.PROFILES["quick"] = _dataclasses.replace(_profiles.PROFILES["quick"], epochs={DRY_RUN_EPOCHS})
assert _profiles.run_profile("quick").epochs == {DRY_RUN_EPOCHS}
"""


@pytest.fixture
def fake(fake_cache):
    """The worker's fake cache; the runs a notebook cached there are deleted after its test.

    A dry run's checkpoints are the notebook's real ones (notebook 04's: fifteen fine-tuned
    full-size AlexNets); kept, they would add up across notebooks on CI's disk.
    """
    yield fake_cache
    shutil.rmtree(fake_cache.root / "runs", ignore_errors=True)


def _first_line(cell) -> str:
    return cell.source.strip().splitlines()[0] if cell.source.strip() else "<empty>"


def with_patch_cell(nb, source: str):
    """``nb`` with ``source`` as a new first code cell; returns the notebook and that cell's index."""
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(at, nbformat.v4.new_code_cell(source))
    return nb, at


def errors(nb, patch_at: int) -> list[str]:
    """One line per code cell with an error output, numbered as in the source notebook."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = "the inserted patch cell" if i == patch_at else \
            f"cell {i - (i > patch_at)} ({_first_line(cell)!r})"
        for out in cell.outputs:
            if out.output_type == "error":
                found.append(f"{where} raised {out.ename}: {out.evalue[:500]}")
    return found


def cell_seconds(cell) -> float:
    """Wall time of one executed cell, from the timestamps nbclient records."""
    from datetime import datetime

    timing = cell.metadata.get("execution", {})
    try:
        start, end = timing["iopub.execute_input"], timing["shell.execute_reply"]
    except KeyError:
        return 0.0
    return (datetime.fromisoformat(end.rstrip("Z")) - datetime.fromisoformat(start.rstrip("Z"))).total_seconds()


def test_there_are_source_notebooks():
    assert NOTEBOOKS, f"{ROOT / 'source'} holds no notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_source_notebook_runs_in_quick_profile_on_real_formats(nb_path, fake, tmp_path, monkeypatch):
    # the kernel inherits this process's environment; conftest's session fixture set smoke
    monkeypatch.setenv("ALEXNET_PROFILE", "quick")
    monkeypatch.setenv("ALEXNET_DATA", str(fake.root))
    work = tmp_path / nb_path.parent.name
    shutil.copytree(nb_path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    nb, patch_at = with_patch_cell(nbformat.read(work / nb_path.name, as_version=4),
                                  patch_source(fake) + "\n" + DRY_RUN)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(work)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, work / f"executed-{nb_path.name}")  # kept in tmp_path for a look after a failure
    code = [c for c in nb.cells if c.cell_type == "code"]
    slowest = sorted(((cell_seconds(c), i) for i, c in enumerate(nb.cells) if c in code), reverse=True)[:3]
    print(f"\n{nb_path.relative_to(ROOT)}: {seconds:.1f} s in the quick profile on the fake cache; slowest cells: "
          + ", ".join(f"{i - (i > patch_at)} ({s:.1f} s)" for s, i in slowest))
    assert all(c.execution_count is not None for c in code), "some cells did not run"
    found = errors(nb, patch_at)
    assert not found, f"{nb_path.name} in the quick profile ({seconds:.0f} s):\n" + "\n".join(found)
    printed = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    assert "run profile 'quick'" in printed, "au.start did not report the quick profile"
