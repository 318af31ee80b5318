"""Autograde students' submissions one at a time, each kernel in the sandbox.

Every (student, assignment) gets its own ``nbgrader autograde`` run, so one
hostile or broken notebook cannot stop the batch. Whatever nbgrader cannot
score on its own (a dead kernel, a timeout, a test cell that wrote to
stderr, cells tampered with) is flagged for manual review with a reason.
Written answers, which no machine scores, are listed apart: automatic and
manual points are never added up into one score that looks final.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from . import release as course_mod
from .sandbox import Limits, sandbox_problem, write_kernelspec

REPORT = "grading_report.json"


class SandboxUnavailable(RuntimeError):
    """No sandbox on this machine, and the caller did not accept grading without one."""


@dataclass
class Outcome:
    """One submission: automatic points (``score`` of ``max_score``), written points, and what needs a human.

    ``to_grade`` lists the answers that wait for a grade by hand in the formgrader
    (notebook, cell, points); ``flags`` the problems a human should look at.
    """

    assignment: str
    student: str
    score: float | None
    max_score: float | None
    flags: list[str] = field(default_factory=list)
    written_score: float | None = None
    written_max: float | None = None
    to_grade: list[dict] = field(default_factory=list)

    @property
    def needs_review(self) -> bool:
        return bool(self.flags)

    @property
    def manual_points(self) -> float:
        """Points that wait for a human grade."""
        return sum(item["points"] for item in self.to_grade)


def submissions(course: Path, names: list[str]) -> list[tuple[str, str]]:
    """(assignment, student) pairs present in submitted/, sorted."""
    pairs = []
    for student_dir in sorted((course / "submitted").glob("*")):
        for name in names:
            if (student_dir / name).is_dir():
                pairs.append((name, student_dir.name))
    return pairs


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file below ``folder``: cheap enough to take per student."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _changed_students(before: dict, after: dict, student: str) -> set[str]:
    """Students other than ``student`` whose submitted files differ between two snapshots."""
    paths = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    return {Path(p).parts[0] for p in paths} - {student}


@dataclass(frozen=True)
class Expected:
    """An assignment's graded and locked cells as the instructor wrote them and as students got them."""

    cells: dict  # grade_id -> source cell
    accepted: dict  # grade_id -> the texts a locked cell may hold (with or without hidden tests)

    @classmethod
    def of(cls, course: Path, name: str) -> Expected:
        def by_id(folder):
            return {c.metadata["nbgrader"]["grade_id"]: c for nb in course_mod.notebooks(folder)
                    for c in nbformat.read(nb, as_version=4).cells if "nbgrader" in c.metadata}

        cells, released = by_id(course / "source" / name), by_id(course / "release" / name)
        accepted = {gid: {_strip(c.source), _strip(released[gid].source if gid in released else c.source)}
                    for gid, c in cells.items()}
        return cls(cells, accepted)


def _tampering(course: Path, name: str, student: str, expected: Expected) -> list[str]:
    """What a student changed that nbgrader will quietly undo or cannot grade: say so for review."""
    flags = []
    for path in course_mod.notebooks(course / "submitted" / student / name):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as err:  # not JSON, not a notebook
            flags.append(f"{path.name} is not a readable notebook ({type(err).__name__})")
            continue
        seen = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
                if "grade_id" in c.get("metadata", {}).get("nbgrader", {})}
        for gid, cell in expected.cells.items():
            meta = cell.metadata["nbgrader"]
            if gid not in seen:
                if meta.get("grade") or meta.get("locked"):
                    flags.append(f"{path.name}: graded/locked cell {gid!r} was deleted")
            elif seen[gid].cell_type != cell.cell_type:
                flags.append(f"{path.name}: cell {gid!r} changed type to {seen[gid].cell_type}")
            elif meta.get("locked") and not meta.get("solution") and \
                    _strip(seen[gid].source) not in expected.accepted[gid]:
                flags.append(f"{path.name}: locked cell {gid!r} was edited (nbgrader restores it)")
    return flags


def _strip(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _output_flags(course: Path, name: str, student: str) -> list[str]:
    """Reasons in the autograded notebook that a human should look at."""
    flags = []
    for path in course_mod.notebooks(course / "autograded" / student / name):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            gid = meta.get("grade_id", "?")
            for out in cell.get("outputs", []):
                if out.output_type == "error" and out.ename in ("CellTimeoutError", "TimeoutError"):
                    flags.append(f"{path.name}: cell {gid} hit the time limit")
                elif out.output_type == "error" and out.ename == "MemoryError" or (
                        out.output_type == "error" and "can't allocate memory" in out.get("evalue", "")):
                    flags.append(f"{path.name}: cell {gid} ran out of memory")
                elif meta.get("grade") and out.output_type == "stream" and out.name == "stderr":
                    flags.append(f"{path.name}: test cell {gid} wrote to stderr, which nbgrader scores 0")
    return flags


def _nbgrader_error(err: course_mod.CourseError) -> str:
    text = str(err)
    for key in ("DeadKernelError", "Kernel died", "kernel became unresponsive", "UnresponsiveKernelError",
                "CellTimeoutError", "Timeout"):
        if key in text:
            return f"autograde failed: {key} (the kernel died or hung; grade by hand)"
    last = [line for line in text.splitlines() if line.strip()][-1:]
    return f"autograde failed: {last[0].strip() if last else 'unknown error'}"


def check_sandbox(unsafe: bool) -> bool:
    """Whether kernels run in the sandbox; raise when there is none and the caller did not accept that."""
    problem = sandbox_problem()
    if problem is not None and not unsafe:
        raise SandboxUnavailable(
            f"no sandbox: {problem}. The sandbox runs students' code without network, with the course "
            "read-only and memory and time limits; pass --unsafe to grade with none of that")
    return problem is None


def autograde_setup(tmp: Path, course: Path, limits: Limits, sandboxed: bool,
                    hide: tuple[Path, ...] = ()) -> tuple[dict, list[str]]:
    """The environment and extra nbgrader options that run ``autograde`` with our kernelspec and limits.

    ``tmp`` is a private folder that outlives the runs (the kernelspec and the kernels' sockets live there).
    """
    # every hand-in in submitted/ is graded, whatever nbgrader_config.py excludes from nbgrader's own runs
    env, extra = {}, [f"--Execute.timeout={limits.cell_seconds}", course_mod.EVERY_STUDENT]
    if sandboxed:
        write_kernelspec(tmp / "jupyter", course, limits, hide)
        (tmp / "runtime").mkdir(exist_ok=True)
        # kernels' connection files and ipc sockets go to a private folder the jail can share
        runtime = str(tmp / "runtime")
        env = {"JUPYTER_PATH": str(tmp / "jupyter"), "JUPYTER_RUNTIME_DIR": runtime, "TMPDIR": runtime}
        # an absolute socket prefix: nbgrader and the kernel run in different folders
        extra += ["--KernelManager.transport=ipc", f"--KernelManager.ip={runtime}/kernel-ipc"]
    return env, extra


def autograde_one(course: Path, name: str, student: str, expected: Expected, env: dict, extra: list[str],
                  timeout: float | None = None) -> list[str]:
    """``nbgrader autograde`` of one submission in ``course``; the flags a human should look at.

    The serial path runs it in the instructor's course, a grading worker in a scratch course
    (alexnet_utils.course.parallel); both flag the same things the same way.
    """
    flags = _tampering(course, name, student, expected)
    try:
        course_mod.run_nbgrader(["autograde", name, "--student", student, "--force", *extra], course, env,
                                timeout=timeout)
    except course_mod.CourseError as err:
        flags.append(_nbgrader_error(err))
    return flags + _output_flags(course, name, student)


def outcomes_from_gradebook(course: Path, flags_of: dict) -> list[Outcome]:
    """One Outcome per (assignment, student) key of ``flags_of``, its points read from the gradebook."""
    scores = {(s.assignment, s.student): s for s in course_mod.read_scores(course)}  # one read of the gradebook
    outcomes = []
    for key, flags in flags_of.items():
        score = scores.get(key)
        outcome = Outcome(*key, score.score if score else None, score.max_score if score else None, list(flags))
        if score:
            outcome.written_score, outcome.written_max = score.written_score, score.written_max
            outcome.to_grade = score.to_grade
        outcomes.append(outcome)
    return outcomes


def register(course: Path, names: list[str]) -> None:
    """``generate_assignment`` each name: the gradebook learns each assignment's cells from it."""
    for name in names:
        course_mod.run_nbgrader(["generate_assignment", name, "--force"], course)


def grade(course: Path, names: list[str] | None = None, *, unsafe: bool = False,
          limits: Limits = Limits()) -> list[Outcome]:
    """Autograde every submission in ``course/submitted``, one at a time, in place.

    Always in the sandbox when bubblewrap is installed; without it, only when
    the caller passes ``unsafe=True``. ``alexnet_utils.course.parallel.grade_class``
    grades the same submissions on Dask workers with the same results.
    """
    course = Path(course).resolve()
    names = course_mod.resolve_assignments(course, names)
    pairs = submissions(course, names)
    if not pairs:
        return []
    sandboxed = check_sandbox(unsafe)
    register(course, names)
    with tempfile.TemporaryDirectory(prefix="alexnet-grading-") as tmp:
        env, extra = autograde_setup(Path(tmp), course, limits, sandboxed)
        snapshot = _snapshot(course / "submitted")
        expected = {name: Expected.of(course, name) for name in names}
        flags_of = {}
        for name, student in pairs:
            flags = autograde_one(course, name, student, expected[name], env, extra,
                                  timeout=notebook_timeout(course / "submitted" / student / name, limits))
            after = _snapshot(course / "submitted")
            for other in sorted(_changed_students(snapshot, after, student)):
                flags.append(f"files of student {other} changed while grading {student}")
            snapshot = after
            flags_of[name, student] = flags
    outcomes = outcomes_from_gradebook(course, flags_of)
    write_report(course, outcomes)
    return outcomes


def notebook_timeout(folder: Path, limits: Limits) -> float:
    """How long one ``nbgrader autograde`` of the notebooks in ``folder`` may take before it is killed.

    Each kernel is killed by the sandbox after ``limits.notebook_seconds``; this bounds nbgrader itself
    (and kernels outside a sandbox) with a minute per notebook to spare.
    """
    return (limits.notebook_seconds + 60) * max(1, len(course_mod.notebooks(folder)))


def write_report(course: Path, outcomes: list[Outcome]) -> None:
    path = course / REPORT
    path.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")


def _n(count: float, word: str) -> str:
    return f"{count:g} {word}{'' if count == 1 else 's'}"


def _by_hand(o: Outcome) -> str:
    if o.to_grade:
        return f"{_n(o.manual_points, 'manual point')} to grade"
    if not o.written_max:
        return "-"
    return f"{o.written_score or 0:g}/{o.written_max:g} written"


def report_table(outcomes: list[Outcome]) -> str:
    """One row per submission, automatic and manual points apart, then what is left to do by hand."""
    lines = [f"{'assignment':<22} {'student':<12} {'automatic':>13}  {'written answers':<26} review"]
    for o in outcomes:
        score = "-" if o.score is None else f"{o.score:g}/{o.max_score:g} auto"
        lines.append(f"{o.assignment:<22} {o.student:<12} {score:>13}  {_by_hand(o):<26} "
                     f"{'; '.join(o.flags) or 'no'}")
    flagged = sum(o.needs_review for o in outcomes)
    waiting = [o for o in outcomes if o.to_grade]
    lines.append(f"{_n(len(outcomes), 'submission')} graded, {flagged} flagged for manual review")
    if waiting:
        answers = sum(len(o.to_grade) for o in waiting)
        lines.append(f"to grade by hand in the formgrader: {_n(answers, 'answer')} in "
                     f"{_n(len(waiting), 'submission')}, {_n(sum(o.manual_points for o in waiting), 'point')} "
                     f"(listed in {REPORT})")
    return "\n".join(lines)
