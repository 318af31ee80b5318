"""What the class has not got yet: a one-page HTML report after grading (``class_report.html``).

For each assignment: the distribution of automatic scores over its submissions, and for
every graded cell the share of students who lost (some of) its points, worst first, so
the instructor sees which skill the class has not got. Written answers count once a
human graded them in the formgrader; until then they are listed as waiting. nbgrader
has no such view. Read from the gradebook, so it also covers submissions graded in an
earlier (resumed) run.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

REPORT = "class_report.html"


@dataclass
class CellStats:
    notebook: str
    cell: str
    kind: str  # "code" or "written answer"
    points: float
    graded: int = 0  # submissions with a score for this cell
    lost: int = 0  # of those, how many scored below full points
    waiting: int = 0  # written answers not graded by hand yet

    @property
    def share_lost(self) -> float | None:
        return self.lost / self.graded if self.graded else None


@dataclass
class AssignmentStats:
    name: str
    max_score: float
    scores: dict = field(default_factory=dict)  # student -> automatic score
    cells: list = field(default_factory=list)


def collect(course: Path, names: list[str] | None = None) -> list[AssignmentStats]:
    """Per assignment (those named, else every one with submissions): scores and per-cell losses."""
    from nbgrader.api import Gradebook

    out = []
    with Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            if (names and assignment.name not in names) or not assignment.submissions:
                continue
            stats = AssignmentStats(assignment.name, assignment.max_code_score)
            cells: dict = {}
            for sub in assignment.submissions:
                stats.scores[sub.student.id] = sub.code_score
                for nb in sub.notebooks:
                    for grade in nb.grades:
                        key = (nb.name, grade.name)
                        if key not in cells:
                            kind = "written answer" if grade.cell_type == "markdown" else "code"
                            cells[key] = CellStats(nb.name, grade.name, kind, grade.max_score)
                        cell = cells[key]
                        if grade.score is None or (grade.cell_type == "markdown" and grade.needs_manual_grade):
                            cell.waiting += 1
                            continue
                        cell.graded += 1
                        cell.lost += grade.score < grade.max_score
            stats.cells = sorted(cells.values(), key=lambda c: (-(c.share_lost or 0), c.notebook, c.cell))
            out.append(stats)
    return out


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _plots(stats: AssignmentStats) -> str:
    """A histogram of automatic scores and a bar per graded cell: the share of students who lost its points."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    scored = [c for c in stats.cells if c.share_lost is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, max(3.0, 0.3 * len(scored) + 1.5)),
                                      gridspec_kw={"width_ratios": [1, 1.3]})
    top = stats.max_score or 1
    whole = top <= 40 and all(float(v).is_integer() for v in stats.scores.values())
    bins = [b - 0.5 for b in range(int(top) + 2)] if whole else 20  # one bar per whole point where scores are whole
    left.hist(list(stats.scores.values()), bins=bins, range=None if whole else (0, top), color="tab:blue",
              edgecolor="white")
    if whole:
        left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel(f"automatic score (of {stats.max_score:g})")
    left.set_ylabel("students")
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_title(f"{stats.name}: scores of {len(stats.scores)} submissions")
    labels = [f"{c.cell} ({c.points:g} pt{'s' * (c.points != 1)})" for c in scored][::-1]
    shares = [c.share_lost for c in scored][::-1]
    colours = ["tab:red" if c.kind == "code" else "tab:orange" for c in scored][::-1]
    right.barh(labels, shares, color=colours)
    right.set_xlim(0, 1)
    right.xaxis.set_major_formatter(PercentFormatter(1.0))
    right.set_xlabel("students who lost the cell's points (red: tests, orange: written, graded by hand)")
    right.set_title("which skill the class has not got")
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return f'<img alt="{html.escape(stats.name)} score distribution and cells lost" src="data:image/png;base64,{data}">'


def _table(stats: AssignmentStats) -> str:
    rows = []
    for c in stats.cells:
        share = "-" if c.share_lost is None else f"{c.share_lost:.0%}"
        rows.append(f"<tr><td>{html.escape(c.notebook)}</td><td>{html.escape(c.cell)}</td><td>{c.kind}</td>"
                    f"<td>{c.points:g}</td><td>{share}</td><td>{c.lost} of {c.graded}</td><td>{c.waiting}</td></tr>")
    return ("<table><tr><th>notebook</th><th>cell</th><th>kind</th><th>points</th><th>lost by</th>"
            "<th>students</th><th>waiting for a hand grade</th></tr>" + "".join(rows) + "</table>")


def write(course: Path, names: list[str] | None = None, path: Path | None = None, plots: bool = True) -> Path:
    """Write the class report (HTML, plots inline) and return its path."""
    course = Path(course)
    path = Path(path or course / REPORT)
    parts = ["<!doctype html><meta charset='utf-8'><title>Class report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}img{max-width:100%}</style>",
             "<h1>Class report</h1>",
             "<p>Automatic scores from the gradebook; written answers count once graded by hand in the "
             "formgrader. A cell is <em>lost</em> by a student who scored less than its full points.</p>"]
    for stats in collect(course, names):
        scores = sorted(stats.scores.values())
        median = scores[len(scores) // 2] if scores else 0
        parts.append(f"<h2>{html.escape(stats.name)}</h2><p>{len(scores)} submissions, median "
                     f"{median:g} of {stats.max_score:g} automatic points, "
                     f"{sum(s == stats.max_score for s in scores)} with full marks.</p>")
        if plots:
            parts.append(_plots(stats))
        parts.append(_table(stats))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts) + "\n")
    tmp.replace(path)
    return path
