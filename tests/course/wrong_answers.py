"""Grading the wrong-answer suite (read by ``alexnet_utils.course.wrong_answers``).

``tests/wrong_answers/<assignment>.yaml`` lists, per notebook, mistakes students
really make, and the graded cells each must lose points in: exactly those, so that
a mistake is caught, and caught in the cell that tests its skill and nowhere else.
``loses: []`` marks an accepted alternative (torchvision's dropout order, say) that
must keep full marks.

Two ways to grade them, which must agree:

* ``Replay`` (every notebook, in CI): one kernel per notebook runs the reference
  once; then, for each mistake, its patched cell and the later cells its change
  can reach: the graded cells that read (directly or through other cells) a name
  the patched cell defines, and the cells that compute what those graded cells
  read. Graded cells cannot depend on long experiments, so this costs seconds
  per mistake, not a notebook run. Mistakes run latest cell first, and each
  patched cell's names are deleted before it runs, so nothing carries over. A
  graded cell loses its points as in nbgrader: an error or any stderr output.
* ``nbgrader_cell_scores``: the mistakes handed in as students of one scratch
  course and autograded in one nbgrader run.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from alexnet_utils.course.wrong_answers import WrongAnswer, _by_id, apply, graded_cells, patched_source, suite

__all__ = ["WrongAnswer", "suite", "graded_cells", "patched_source", "apply", "Replay", "nbgrader_cell_scores"]

CELL_TIMEOUT = 300


def _statements(source: str) -> list[tuple[set[str], set[str]]]:
    """(names read, names written) of each top-level statement; unparsable code reads and writes nothing."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return []
    out = []
    for node in body:
        reads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        writes = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        # loop and comprehension variables are bound before they are read: not read from outside
        bound = {n.id for part in ast.walk(node) if isinstance(part, (ast.For, ast.comprehension))
                 for n in ast.walk(part.target) if isinstance(n, ast.Name)}
        scoped = {n.id for part in ast.walk(node) if isinstance(part, ast.comprehension)
                  for n in ast.walk(part.target) if isinstance(n, ast.Name)}
        reads, writes = reads - bound, writes - scoped
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            local = writes | {a.arg for a in ast.walk(node) if isinstance(a, ast.arg)}
            reads, writes = reads - local, {node.name}  # a body's own names are not read from outside
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            writes = {(a.asname or a.name).split(".")[0] for a in node.names}
        out.append((reads, writes))
    return out


def _defined_names(source: str) -> list[str]:
    """Top-level names a cell defines, so a re-run cannot silently keep an old definition."""
    return sorted({name for _, writes in _statements(source) for name in writes})


def reach(nb, start: int, graded: set[str]) -> list[int]:
    """The cells to re-run after the cell at ``start`` changes: its reach into graded cells.

    A statement is tainted when it reads a tainted name; its writes become tainted
    (and an untainted write clears a name).
    Graded cells with a tainted statement run; so do earlier tainted cells that
    write what a running cell reads.
    """
    tainted = set(_defined_names(nb.cells[start].source))
    affected = {}
    for i in range(start + 1, len(nb.cells)):
        cell = nb.cells[i]
        if cell.cell_type != "code":
            continue
        hit = False
        for reads, writes in _statements(cell.source):
            if reads & tainted:
                hit = True
                tainted |= writes
            else:
                tainted -= writes  # overwritten by something the change cannot reach
        if hit:
            affected[i] = cell
    runs, needed = set(), set()
    for i in sorted(affected, reverse=True):
        cell = affected[i]
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        stmts = _statements(cell.source)
        if gid in graded or any(writes & needed for _, writes in stmts):
            runs.add(i)
            needed |= {n for reads, _ in stmts for n in reads}
    return sorted(runs)


def _lost(cell) -> bool:
    """nbgrader's rule: a graded cell scores zero if it raised or wrote to stderr."""
    return any(o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")
               for o in cell.outputs)


class Replay:
    """One kernel for one notebook: the reference once, then each mistake from its cell onwards."""

    def __init__(self, nb, cwd: Path):
        self.nb = nb
        self.client = NotebookClient(copy.deepcopy(nb), timeout=CELL_TIMEOUT, kernel_name="python3",
                                     allow_errors=True, resources={"metadata": {"path": str(cwd)}})
        self.graded = graded_cells(nb)

    def __enter__(self):
        self._ctx = self.client.setup_kernel()
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)

    def _run(self, cells: list[int], first_source: str | None = None) -> set[str]:
        """Run the code cells at ``cells`` (the first with ``first_source``); return graded cells lost."""
        lost = set()
        for n, i in enumerate(cells):
            cell = copy.deepcopy(self.nb.cells[i])
            if cell.cell_type != "code":
                continue
            if n == 0 and first_source is not None:
                names = _defined_names(self.nb.cells[i].source)
                if names:
                    self._execute(nbformat.v4.new_code_cell(
                        "".join(f"globals().pop({name!r}, None)\n" for name in names)), i)
                cell.source = first_source
            self._execute(cell, i)
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in self.graded and _lost(cell):
                lost.add(gid)
        return lost

    def _execute(self, cell, index: int) -> None:
        cell.outputs = []
        self.client.execute_cell(cell, index)

    def reference(self) -> set[str]:
        """Graded cells the instructor's own notebook loses (must be none)."""
        return self._run(list(range(len(self.nb.cells))))

    def mistakes(self, wrongs: list[WrongAnswer]) -> dict[str, set[str]]:
        """Graded cells each mistake loses; latest patched cell first, so nothing carries over."""
        cells = _by_id(self.nb)
        result = {}
        for wrong in sorted(wrongs, key=lambda w: cells[w.cell], reverse=True):
            start = cells[wrong.cell]
            result[wrong.id] = self._run([start, *reach(self.nb, start, set(self.graded))],
                                         patched_source(self.nb, wrong))
        return result


def nbgrader_cell_scores(course: Path, assignment: str) -> dict[str, dict[str, tuple[float, float]]]:
    """student -> grade_id -> (score, max score) of every autograded code cell in the gradebook."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(assignment):
            out[sub.student.id] = {g.name: (g.score, g.max_score) for nb in sub.notebooks for g in nb.grades
                                   if g.cell_type == "code"}
    return out
