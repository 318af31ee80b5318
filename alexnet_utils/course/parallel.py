"""Grade a whole class on Dask: one task per (student, assignment), one writer.

nbgrader's ``autograde`` is serial, and two of them in one course clash on the one
SQLite gradebook. Here each task grades one submission in a private scratch course
of its own (the course's config, the assignment's source and release, a copy of the
gradebook, that one submission), in the same sandbox and under the same limits as
the serial path (``grading.autograde_one``), and returns data: the autograded folder
as bytes, the per-cell scores and the flags. Only the caller writes the course: each
result, as it arrives, goes to ``autograded/<student>/<assignment>/`` (built aside,
then swapped in) and into the gradebook by nbgrader's own preprocessors
(``SaveAutoGrades``, ``AssignLatePenalties``) run on the graded notebook, so
``generate_feedback``, ``export`` and the formgrader see what a serial run writes.
Then a line in ``grading_ledger.jsonl`` records it: a run stopped halfway and started
again grades only what the ledger does not hold with the same submission and source.

The engine is Dask distributed: an embedded ``LocalCluster`` (worker processes, one
thread each, a memory limit each) by default, or any running cluster through
``scheduler=`` / ``$ALEXNET_DASK_SCHEDULER`` (``dask scheduler`` + ``dask worker`` by
hand, dask-jobqueue on SLURM/PBS, dask-kubernetes). Dask has no task timeout, so
the task bounds itself (the sandbox kills a kernel after ``Limits.notebook_seconds``,
nbgrader is killed after that plus a minute per notebook). A worker killed mid-task
has its task re-run elsewhere by the scheduler; a submission whose task took down
``ALLOWED_FAILURES + 1`` workers is flagged "autograde failed" instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime import THREADS_ENV
from . import grading
from . import release as course_mod
from .sandbox import Limits, sandbox_problem

SCHEDULER_ENV = "ALEXNET_DASK_SCHEDULER"
LEDGER = "grading_ledger.jsonl"
ALLOWED_FAILURES = 2  # worker deaths a task may cause before the scheduler gives up on it (Dask's default: 3)
WORKER_MEMORY_GB = 4.0  # one grading worker's need: nbgrader, and a kernel that imports torch and runs smoke
SKIP = (".ipynb_checkpoints", "__pycache__")


@dataclass(frozen=True)
class Bundle:
    """An assignment as a worker anywhere needs it: course-relative path -> bytes."""

    name: str
    files: dict
    source_digest: str


@dataclass(frozen=True)
class Task:
    """One student's hand-in of one assignment: path relative to submitted/<student>/<assignment>/ -> bytes."""

    name: str
    student: str
    files: dict
    digest: str


@dataclass
class Result:
    """What a grading task returns; nothing of it has touched the instructor's course yet."""

    name: str
    student: str
    digest: str
    flags: list[str]
    autograded: dict | None  # autograded/<student>/<assignment>/ as nbgrader left it; None when nbgrader removed it
    in_gradebook: bool  # nbgrader registered the submission (it got as far as reading it)
    timestamp: str = ""  # the hand-in's timestamp.txt, as graded
    cells: dict = field(default_factory=dict)  # notebook -> grade_id -> [score, max score], from the scratch gradebook
    seconds: float = 0.0
    peak_rss: int = 0  # bytes: the most the worker and its processes (nbgrader, the kernel) held at once
    worker: str = ""
    handed_in: list = field(default_factory=list)  # the notebooks the hand-in holds


# ---------------------------------------------------------------- files as data

def read_tree(folder: Path) -> dict:
    """Every file below ``folder`` (relative posix path -> bytes), skipping checkpoints and caches."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not set(p.relative_to(folder).parts) & set(SKIP)}


def write_tree(files: dict, folder: Path) -> None:
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def digest(files: dict) -> str:
    """A hash of a folder's files (names and contents), to tell a changed hand-in from the one graded."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
    return h.hexdigest()


def _gradebook_bytes(course: Path) -> bytes:
    """A consistent copy of the course's gradebook (SQLite's backup API, not a copy of a file in use)."""
    with tempfile.TemporaryDirectory(prefix="alexnet-gradebook-") as tmp:
        src, dst = sqlite3.connect(course / "gradebook.db"), sqlite3.connect(Path(tmp) / "gradebook.db")
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        return (Path(tmp) / "gradebook.db").read_bytes()


def bundle(course: Path, name: str) -> Bundle:
    """The config, the assignment's source and release, and the gradebook (it knows the assignment's cells)."""
    files = {"nbgrader_config.py": (course / "nbgrader_config.py").read_bytes(),
             "gradebook.db": _gradebook_bytes(course)}
    for folder in ("source", "release"):
        files.update({f"{folder}/{name}/{rel}": data for rel, data in read_tree(course / folder / name).items()})
    return Bundle(name, files, course_mod.source_digest(course, name))


# ---------------------------------------------------------------- the task (runs on a worker)

class _PeakRSS:
    """The most resident memory this process and all its descendants held at once, sampled every 0.2 s."""

    def __init__(self, every: float = 0.2):
        self.every, self.peak = every, 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            total = 0
            with contextlib.suppress(psutil.Error):
                for proc in [me, *me.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            if self._stop.wait(self.every):
                return

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _scratch_scores(course: Path, name: str, student: str) -> tuple[bool, dict]:
    """Whether the scratch gradebook holds the submission, and its per-cell (score, max score)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        try:
            sub = gb.find_submission(name, student)
        except MissingEntry:
            return False, {}
        return True, {nb.name: {g.name: [g.score, g.max_score] for g in nb.grades} for nb in sub.notebooks}


def grade_task(bundle: Bundle, task: Task, limits: Limits, sandboxed: bool, hide: tuple = (),
               threads: int | None = None, scratch_root: str | None = None) -> Result:
    """Grade one submission in a private scratch course; return the results as data.

    Runs on a Dask worker (or anywhere): it writes nothing outside its scratch folder.
    ``hide``: the instructor's course, whose students' work the jail hides as well.
    ``threads``: torch threads for the kernel, so that the workers on one machine share its cores.
    """
    started = time.perf_counter()
    if sandboxed and sandbox_problem() is not None:
        raise grading.SandboxUnavailable(f"no sandbox on grading worker {socket.gethostname()}: {sandbox_problem()}")
    if scratch_root:
        Path(scratch_root).mkdir(parents=True, exist_ok=True)
    with _PeakRSS() as peak, tempfile.TemporaryDirectory(prefix="alexnet-task-", dir=scratch_root) as tmp:
        tmp = Path(tmp)
        course = tmp / "course"
        write_tree(bundle.files, course)
        folder = course / "submitted" / task.student / task.name
        folder.mkdir(parents=True)
        write_tree(task.files, folder)
        env, extra = grading.autograde_setup(tmp, course, limits, sandboxed, tuple(Path(p) for p in hide))
        if threads and not os.environ.get(THREADS_ENV, "").strip():  # a pin set by the instructor wins
            env = {**env, THREADS_ENV: str(threads), "OMP_NUM_THREADS": str(threads)}
        expected = grading.Expected.of(course, task.name)
        flags = grading.autograde_one(course, task.name, task.student, expected, env, extra,
                                      timeout=grading.notebook_timeout(folder, limits))
        out = course / "autograded" / task.student / task.name
        autograded = read_tree(out) if out.is_dir() else None
        in_gradebook, cells = _scratch_scores(course, task.name, task.student)
    stamp = task.files.get("timestamp.txt", b"").decode(errors="replace").strip()
    return Result(task.name, task.student, task.digest, flags, autograded, in_gradebook, stamp, cells,
                  time.perf_counter() - started, peak.peak, f"{socket.gethostname()}:{os.getpid()}",
                  sorted(rel for rel in task.files if "/" not in rel and rel.endswith(".ipynb")))


# ---------------------------------------------------------------- the one writer (runs in the caller)

def _swap_in(files: dict | None, dest: Path) -> None:
    """Make ``dest`` hold exactly ``files`` (None: no folder), never a half-written folder under its name."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if files is None:
        if dest.exists():
            os.replace(dest, old)
    else:
        new = dest.with_name(f".{dest.name}.new")
        shutil.rmtree(new, ignore_errors=True)
        write_tree(files, new)
        new.mkdir(parents=True, exist_ok=True)  # an assignment with no files still gets its folder
        if dest.exists():
            os.replace(dest, old)
        os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)


def merge(course: Path, result: Result, config=None) -> None:
    """Write one result into the course: its autograded folder, then the gradebook, as ``autograde`` would.

    The gradebook part replays what nbgrader's ``Autograde`` does to the database: the
    student and the submission (with the hand-in's timestamp), zero for notebooks not
    handed in, then ``SaveAutoGrades`` and ``AssignLatePenalties`` on each graded notebook.
    """
    import warnings

    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():  # nbgrader's own autograde logs these away too
        warnings.simplefilter("ignore", SAWarning)
        _merge(course, result, config)


def _merge(course: Path, result: Result, config) -> None:
    import nbformat
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades
    from nbgrader.utils import parse_utc

    name, student = result.name, result.student
    (course / "autograded" / student).mkdir(parents=True, exist_ok=True)
    _swap_in(result.autograded, course / "autograded" / student / name)
    if not result.in_gradebook:
        return
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    timestamp = result.timestamp
    with Gradebook(db_url) as gb:
        gb.update_or_create_student(student)
        if timestamp:
            gb.update_or_create_submission(name, student, timestamp=parse_utc(timestamp))
        else:
            gb.update_or_create_submission(name, student)
        notebooks = [nb.name for nb in gb.find_assignment(name).notebooks]
        for nb_name in notebooks:
            if f"{nb_name}.ipynb" not in result.handed_in:
                for grade in gb.find_submission_notebook(nb_name, name, student).grades:
                    grade.auto_score, grade.needs_manual_grade = 0, False
                gb.db.commit()
    for nb_name in notebooks:
        text = (result.autograded or {}).get(f"{nb_name}.ipynb")
        if text is None:
            continue
        nb = nbformat.reads(text.decode(), as_version=nbformat.NO_CONVERT)
        resources = {"nbgrader": {"notebook": nb_name, "assignment": name, "student": student, "db_url": db_url}}
        try:
            SaveAutoGrades().preprocess(nb, resources)
            AssignLatePenalties(**({"config": config} if config is not None else {})).preprocess(nb, resources)
        except MissingEntry:  # a notebook the gradebook does not know: nbgrader skips it too
            continue


# ---------------------------------------------------------------- the ledger

def read_ledger(course: Path) -> dict:
    """(assignment, student) -> the last entry merged; a line cut short by a crash is ignored."""
    path = course / LEDGER
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
                done[entry["assignment"], entry["student"]] = entry
            except (ValueError, KeyError, TypeError):
                continue
    return done


def _append_ledger(course: Path, entry: dict) -> None:
    with open(course / LEDGER, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _already_merged(course: Path, entry: dict | None, files_digest: str, source_digest: str) -> bool:
    if not entry or entry.get("digest") != files_digest or entry.get("source") != source_digest:
        return False
    folder = course / "autograded" / entry["student"] / entry["assignment"]
    return folder.is_dir() or not entry.get("autograded", True)


# ---------------------------------------------------------------- the cluster

def default_workers() -> int:
    """One worker per usable core, as far as memory allows WORKER_MEMORY_GB each."""
    import psutil

    from ..runtime import usable_cores

    by_memory = int(psutil.virtual_memory().total / 2**30 // WORKER_MEMORY_GB)
    return max(1, min(usable_cores(), by_memory))


def scheduler_address(scheduler: str | None = None) -> str | None:
    return scheduler or os.environ.get(SCHEDULER_ENV, "").strip() or None


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """A Dask client: on the scheduler at ``scheduler`` (or $ALEXNET_DASK_SCHEDULER), else on an embedded
    ``LocalCluster`` of ``workers`` processes (default: ``default_workers()``), one thread each, each
    with an equal share of the machine's memory as its limit."""
    import dask
    import psutil
    from distributed import Client, LocalCluster

    address = scheduler_address(scheduler)
    if address:
        with Client(address) as client:
            yield client
        return
    n = workers or default_workers()
    memory = int(psutil.virtual_memory().total // n)
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                         memory_limit=memory, silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        yield client


def _worker_count(client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


def _failure(err: BaseException) -> str:
    if type(err).__name__ == "KilledWorker":
        return ("autograde failed: KilledWorker (the task took down every grading worker that ran it; "
                "grade by hand)")
    last = str(err).strip().splitlines()[-1:]
    return f"autograde failed: {type(err).__name__}{': ' + last[0] if last else ''}"


def grade_class(course: Path, names: list[str] | None = None, *, workers: int | None = None,
                scheduler: str | None = None, client=None, unsafe: bool = False, limits: Limits = Limits(),
                resume: bool = True, progress: bool = True, on_result=None) -> list[grading.Outcome]:
    """Autograde every submission in ``course/submitted`` on Dask; the same outcomes as ``grading.grade``.

    ``client``: a Dask client to use (tests pass one on a cluster they control); otherwise one on
    ``scheduler`` (or $ALEXNET_DASK_SCHEDULER), else on an embedded LocalCluster of ``workers``.
    ``resume``: skip submissions the ledger records as merged with the same hand-in and source.
    ``on_result(name, student, result)`` is called after each merge (``result`` None when the task failed).
    """
    from tqdm.auto import tqdm

    course = Path(course).resolve()
    names = course_mod.resolve_assignments(course, names)
    pairs = grading.submissions(course, names)
    if not pairs:
        return []
    sandboxed = grading.check_sandbox(unsafe)
    grading.register(course, names)
    sources = {name: course_mod.source_digest(course, name) for name in names}
    ledger = read_ledger(course) if resume else {}
    flags_of: dict = {key: None for key in pairs}  # keeps the order of grading.grade's report
    todo = []
    for name, student in pairs:
        files_digest = digest(read_tree(course / "submitted" / student / name))
        entry = ledger.get((name, student))
        if _already_merged(course, entry, files_digest, sources[name]):
            flags_of[name, student] = entry["flags"]
        else:
            todo.append((name, student))
    config = course_mod.nbgrader_config(course, strict=False)
    bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), unit="submission", desc="grading",
               disable=not progress or None, dynamic_ncols=True)
    try:
        if todo:
            with tempfile.TemporaryDirectory(prefix="alexnet-class-") as scratch, \
                    (contextlib.nullcontext(client) if client is not None else dask_client(workers, scheduler)) as c:
                local = client is None and scheduler_address(scheduler) is None
                _run(c, course, todo, sources, flags_of, limits, sandboxed, config, bar, on_result,
                     scratch_root=str(Path(scratch) / "tasks") if local else None)
    finally:
        bar.close()
    outcomes = grading.outcomes_from_gradebook(course, {k: v for k, v in flags_of.items() if v is not None})
    grading.write_report(course, outcomes)
    return outcomes


def _identity(x):
    return x


def _run(client, course, todo, sources, flags_of, limits, sandboxed, config, bar, on_result, scratch_root):
    """Keep a window of tasks in flight; merge each result as it arrives, in this thread only."""
    from distributed import as_completed

    n = _worker_count(client)
    # a cluster of our own shares this machine's cores: each kernel gets its share (one worker: the serial policy)
    threads = max(1, (os.cpu_count() or 1) // n) if scratch_root and n > 1 else None
    bundles = {}
    pending = list(reversed(todo))
    key_of = {}

    def submit():
        name, student = pending.pop()
        if name not in bundles:
            # a task, not scattered data: when the worker holding it dies, the scheduler computes it again
            bundles[name] = client.submit(_identity, bundle(course, name), key=f"bundle-{name}-{os.urandom(4).hex()}")
        files = read_tree(course / "submitted" / student / name)
        task = Task(name, student, files, digest(files))
        future = client.submit(grade_task, bundles[name], task, limits, sandboxed, (str(course),), threads,
                               scratch_root, key=f"grade-{name}-{student}-{task.digest[:12]}", retries=1, pure=False)
        key_of[future.key] = (name, student)
        return future

    window = max(2, 2 * n)
    running = as_completed([submit() for _ in range(min(window, len(pending)))])
    for future in running:
        name, student = key_of.pop(future.key)
        try:
            result = future.result()
        except Exception as err:  # KilledWorker, a sandbox missing on a worker, a bug: flagged, not merged
            result = None
            flags_of[name, student] = [_failure(err)]
        else:
            merge(course, result, config)
            _append_ledger(course, {"assignment": name, "student": student, "digest": result.digest,
                                    "source": sources[name], "flags": result.flags,
                                    "autograded": result.autograded is not None,
                                    "seconds": round(result.seconds, 2), "peak_rss": result.peak_rss,
                                    "worker": result.worker})
            flags_of[name, student] = result.flags
        future.release()
        bar.update(1)
        if on_result is not None:
            on_result(name, student, result)
        if pending:
            running.add(submit())


def ledger_stats(course: Path) -> list[dict]:
    """The ledger's entries (seconds, peak memory, worker per merged submission), for the benchmark."""
    return list(read_ledger(course).values())

