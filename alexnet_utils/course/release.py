"""The nbgrader round trip: source/ -> release/, reference submissions -> autograded/.

Every nbgrader command runs in a scratch copy of the course, so the
repository never collects a gradebook, a submitted/ folder or half a release.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

REFERENCE, BLANK = "reference", "blank"
MANIFEST = "manifest.json"
# nbgrader_config.py excludes the reference grading's two "students" from nbgrader's commands
# (autograded/reference and autograded/blank are not students); our own runs lift that.
EVERY_STUDENT = "--CourseDirectory.student_id_exclude="


class CourseError(RuntimeError):
    """An nbgrader step failed; the message carries the end of its output."""


def repo_root() -> Path:
    """The course directory this package was installed from (the repository)."""
    return Path(__file__).resolve().parents[2]


def assignments(course: Path) -> list[str]:
    return sorted(p.name for p in (course / "source").iterdir() if p.is_dir() and not p.name.startswith("."))


def notebooks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def resolve_assignments(course: Path, names: list[str] | None) -> list[str]:
    """The named assignments (checked to exist), or all of them."""
    available = assignments(course)
    for name in names or []:
        if name not in available:
            raise CourseError(f"no assignment {name!r} in {course / 'source'}; available: {', '.join(available)}")
    return names or available


def _parent_death_hook():
    """A function for the child to call before exec: be killed when its parent dies (Linux; else None).

    Resolved here, in the parent: the child of a threaded process (a Dask worker) must not import.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_nbgrader(args: list[str], course: Path, env: dict | None = None, timeout: float | None = None) -> str:
    """Run one nbgrader command in ``course``; nbgrader shells out to alembic, so put our bin/ on PATH.

    With ``timeout`` (seconds), nbgrader and every process it started are killed when it runs
    longer, and the failure says "Timeout". nbgrader dies with the process that started it (a
    grading worker killed mid-task leaves no autograde running behind it).
    """
    bindir = str(Path(sys.executable).parent)
    full_env = {**os.environ, **(env or {})}
    full_env["PATH"] = bindir + os.pathsep + full_env.get("PATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "nbgrader", *args], cwd=course, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=timeout is not None, preexec_fn=_parent_death_hook())
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise CourseError(f"`nbgrader {' '.join(args)}` ran past its Timeout of {timeout:g} s and was killed") from None
    output = stdout + stderr
    if proc.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-30:])
        raise CourseError(f"`nbgrader {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return output


def nbgrader_config(course: Path, strict: bool = True):
    """The course's nbgrader_config.py as a traitlets Config, for nbgrader's Python API in this process.

    ``strict=False``: ``None`` (nbgrader's defaults) for a config that loads only inside nbgrader's apps.
    """
    from traitlets.config.loader import PyFileConfigLoader

    try:
        return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    except Exception:
        if strict:
            raise
        return None


@contextlib.contextmanager
def scratch_course(course: Path):
    """A throw-away copy of the course's config and sources to run nbgrader in."""
    with tempfile.TemporaryDirectory(prefix="alexnet-course-") as tmp:
        scratch = Path(tmp)
        shutil.copy2(course / "nbgrader_config.py", scratch / "nbgrader_config.py")
        shutil.copytree(course / "source", scratch / "source",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        yield scratch


def _replace_tree(src: Path, dst: Path) -> None:
    """Swap ``dst`` for ``src`` with the new copy complete before the old one goes."""
    tmp = dst.with_name(f".{dst.name}.new")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def generate_release(course: Path, names: list[str], into: Path) -> None:
    """``nbgrader generate_assignment`` for each name, then copy release/ into ``into``."""
    for name in names:
        run_nbgrader(["generate_assignment", name, "--force"], course)
    for name in names:
        _replace_tree(course / "release" / name, into / "release" / name)


def release(course: Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Regenerate release/ and the self-study notebooks/ from source/."""
    from . import selfstudy

    course = Path(course or repo_root())
    names = resolve_assignments(course, names)
    written = []
    with scratch_course(course) as scratch:
        generate_release(scratch, names, course)
    for name in names:
        for src in notebooks(course / "source" / name):
            written.append(course / "release" / name / src.name)
            written.append(selfstudy.write(src, course / "release" / name / src.name, course))
    return written


def source_digest(course: Path, name: str) -> str:
    """A hash of an assignment's source notebooks, to tell when generated copies are stale."""
    h = hashlib.sha256()
    for nb in notebooks(course / "source" / name):
        h.update(nb.name.encode())
        h.update(nb.read_bytes())
    return h.hexdigest()


@dataclass
class Score:
    assignment: str
    student: str
    score: float
    max_score: float
    written_max: float
    needs_manual_grade: bool
    written_score: float = 0.0
    to_grade: list = field(default_factory=list)  # the answers waiting for a grade by hand


def without_outputs(nb):
    """``nb`` with every code cell's outputs and execution count cleared (in place; returned)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def _strip_outputs(src: Path, dst: Path) -> None:
    nb = without_outputs(nbformat.read(src, as_version=4))
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst)


def read_scores(course: Path) -> list[Score]:
    """Every (assignment, student) score in the course's gradebook, with what waits for a grade by hand."""
    from nbgrader.api import Gradebook

    scores = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for assignment in gb.assignments:
            for sub in assignment.submissions:
                to_grade = [{"notebook": nb.name, "cell": grade.name, "points": grade.max_score,
                             "kind": "written answer" if grade.cell_type == "markdown" else "code"}
                            for nb in sub.notebooks for grade in nb.grades if grade.needs_manual_grade]
                scores.append(Score(assignment.name, sub.student.id, sub.code_score, sub.max_code_score,
                                    sub.max_written_score, sub.needs_manual_grade, sub.written_score, to_grade))
    return sorted(scores, key=lambda s: (s.assignment, s.student))


def grade_references(course: Path | None = None, names: list[str] | None = None,
                     write: bool = True) -> list[Score]:
    """Autograde the instructor's solutions ("reference") and the untouched release ("blank").

    The reference must earn every automatic point, the blank none; with
    ``write`` the autograded notebooks and their feedback land in autograded/
    (without, no feedback is generated).
    """
    course = Path(course or repo_root())
    names = resolve_assignments(course, names)
    with scratch_course(course) as scratch:
        _hand_in(scratch, names, {REFERENCE: "source", BLANK: "release"})
        for name in names:
            run_nbgrader(["autograde", name, "--force", EVERY_STUDENT], scratch)
            if write:  # feedback is only kept in autograded/
                run_nbgrader(["generate_feedback", name, "--force", EVERY_STUDENT], scratch)
        scores = [s for s in read_scores(scratch) if s.assignment in names]
        if write:
            _write_autograded(course, scratch, names, scores)
    return scores


def _hand_in(scratch: Path, names: list[str], students: dict[str, str]) -> None:
    """Generate each release, then file student -> folder ("source" or "release") as submissions."""
    for name in names:
        run_nbgrader(["generate_assignment", name, "--force"], scratch)
        for student, folder in students.items():
            for nb in notebooks(scratch / folder / name):
                _strip_outputs(nb, scratch / "submitted" / student / name / nb.name)


def _write_autograded(course: Path, scratch: Path, names: list[str], scores: list[Score]) -> None:
    out = course / "autograded"
    out.mkdir(exist_ok=True)
    for student in (REFERENCE, BLANK):
        for name in names:
            _replace_tree(scratch / "autograded" / student / name, out / student / name)
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest = {name: entry for name, entry in manifest.items() if (course / "source" / name).is_dir()}
    for name in names:
        manifest[name] = {
            "source_sha256": source_digest(course, name),
            "scores": {s.student: [s.score, s.max_score] for s in scores if s.assignment == name},
        }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def score_table(scores: list[Score]) -> str:
    """Autograded points per submission; written answers wait for a human."""
    lines = [f"{'assignment':<22} {'student':<10} {'auto score':>10} {'of':>5}  {'written (manual)':>16}"]
    for s in scores:
        lines.append(f"{s.assignment:<22} {s.student:<10} {s.score:>10.1f} {s.max_score:>5.1f}  "
                     f"{s.written_max:>10.1f} pts{' to grade' if s.needs_manual_grade else ''}")
    return "\n".join(lines)


def time_autograde_one_submission(course: Path | None = None) -> float:
    """Seconds nbgrader takes to autograde one student's complete submission (every assignment)."""
    import time

    course = Path(course or repo_root())
    names = assignments(course)
    with scratch_course(course) as scratch:
        _hand_in(scratch, names, {REFERENCE: "source"})
        t0 = time.perf_counter()
        for name in names:
            run_nbgrader(["autograde", name, "--student", REFERENCE, "--force", EVERY_STUDENT], scratch)
        return time.perf_counter() - t0
