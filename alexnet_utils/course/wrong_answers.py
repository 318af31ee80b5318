"""Known wrong answers: plausible student mistakes, each a small patch of one solution region.

``tests/wrong_answers/<assignment>.yaml`` lists them per notebook: the solution cell a
mistake patches (its grade_id), the text it replaces inside that cell's
``### BEGIN SOLUTION`` region, and the graded cells that must lose points
(``loses: []``: an accepted alternative that keeps full marks). The tests replay them
against the grading; the grading benchmark hands them in as a class with known scores.
"""

from __future__ import annotations

__all__ = ["WrongAnswer", "suite", "graded_cells", "patched_source", "apply"]

import copy
from dataclasses import dataclass
from pathlib import Path

from . import markers
from .release import repo_root


def suites_dir() -> Path:
    return repo_root() / "tests" / "wrong_answers"


@dataclass(frozen=True)
class WrongAnswer:
    id: str
    why: str
    cell: str  # grade_id of the solution cell it patches
    patches: tuple[tuple[str, str], ...]
    loses: frozenset[str]  # graded cells that must lose points; empty: an accepted alternative

    @property
    def accepted(self) -> bool:
        return not self.loses


def suite(assignment: str) -> list[WrongAnswer]:
    """The wrong answers written for ``assignment`` (empty when it has none yet)."""
    import yaml

    path = suites_dir() / f"{assignment}.yaml"
    if not path.exists():
        return []
    out = []
    for entry in yaml.safe_load(path.read_text()):
        patches = entry.get("patches") or [{"replace": entry["replace"], "with": entry["with"]}]
        out.append(WrongAnswer(entry["id"], entry["why"], entry["cell"],
                               tuple((p["replace"], p["with"]) for p in patches), frozenset(entry["loses"])))
    ids = [w.id for w in out]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path}: duplicate ids")
    return out


def _by_id(nb) -> dict[str, int]:
    return {c.metadata["nbgrader"]["grade_id"]: i for i, c in enumerate(nb.cells)
            if "grade_id" in c.get("metadata", {}).get("nbgrader", {})}


def graded_cells(nb) -> dict[str, float]:
    """grade_id -> points of every graded code cell."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}


def patched_source(nb, wrong: WrongAnswer) -> str:
    """The solution cell's source with the mistake put in (inside its solution region only)."""
    cells = _by_id(nb)
    if wrong.cell not in cells:
        raise ValueError(f"{wrong.id}: no cell {wrong.cell!r}")
    cell = nb.cells[cells[wrong.cell]]
    if not cell.metadata["nbgrader"].get("solution"):
        raise ValueError(f"{wrong.id}: {wrong.cell!r} is not a solution cell")
    source = cell.source
    for old, new in wrong.patches:
        source = markers.replace_in(source, markers.SOLUTION, old, new)
    return source


def apply(nb, wrong: WrongAnswer):
    """A copy of ``nb`` with the mistake in place: what that student hands in."""
    nb = copy.deepcopy(nb)
    nb.cells[_by_id(nb)[wrong.cell]].source = patched_source(nb, wrong)
    return nb
