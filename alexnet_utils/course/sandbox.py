"""A jail for one student's kernel during autograding (bubblewrap).

nbgrader starts the kernel through a kernelspec whose command is this
module; it execs ``bwrap`` so that the student's code gets no network, sees
the course read-only with other students' work and the gradebook hidden, can
write only its own working folder, and runs under a memory cap and a
wall-clock limit. The kernel talks to nbgrader over Unix sockets (ZMQ's ipc
transport), the one channel a private network namespace leaves.

    python -m alexnet_utils.course.sandbox --course DIR [--hide DIR] --memory-mb N --seconds S CONNECTION_FILE [...]

``--hide`` names another course whose students' work and gradebook the jail must hide
too: a grading worker grades in a private scratch course, not in the instructor's.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HIDDEN_DIRS = ("submitted", "autograded", "feedback", "exchange")
HIDDEN_FILES = ("gradebook.db",)


@dataclass(frozen=True)
class Limits:
    """What one student's notebook may use while it is graded."""

    memory_mb: int = 8192       # address space; torch alone reserves about 3.5 GB of it
    notebook_seconds: int = 900  # the whole kernel's life
    cell_seconds: int = 180      # nbgrader's per-cell timeout


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def sandbox_problem() -> str | None:
    """Why no jail can be made here (None when bubblewrap works), e.g. user namespaces disabled."""
    bwrap = bwrap_path()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    probe = subprocess.run([bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                            "--unshare-net", "--unshare-pid", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"bubblewrap cannot create a sandbox on this machine: {probe.stderr.strip() or probe.returncode}"
    return None


def write_kernelspec(jupyter_dir: Path, course: Path, limits: Limits, hide: tuple[Path, ...] = ()) -> Path:
    """A ``python3`` kernelspec that starts every kernel inside the jail (put ``jupyter_dir`` on JUPYTER_PATH).

    ``hide``: other course folders whose hidden parts (students' work, the gradebook) the jail hides too.
    """
    spec_dir = jupyter_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "alexnet_utils.course.sandbox", "--course", str(course),
                 *[arg for other in hide for arg in ("--hide", str(other))],
                 "--memory-mb", str(limits.memory_mb), "--seconds", str(limits.notebook_seconds),
                 "{connection_file}"],
        "display_name": "Python 3 (grading sandbox)",
        "language": "python",
        # signals stop at bwrap's border; interrupt a runaway cell with a message instead
        "interrupt_mode": "message",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


def bwrap_command(connection_file: Path, workdir: Path, course: Path, limits: Limits,
                  kernel_args: list[str] = (), hide: tuple[Path, ...] = ()) -> list[str]:
    """The full command line: bwrap around prlimit around timeout around the ipykernel."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    home = Path.home()
    runtime = connection_file.parent
    cmd = [bwrap, "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid", "--unshare-ipc",
           "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
           "--tmpfs", "/tmp", "--tmpfs", str(home)]
    # /tmp and the home folder are blanked; give back, read-only, what the kernel needs from them
    for path in _needed_paths(course):
        cmd += ["--ro-bind", str(path), str(path)]
    bound = _needed_paths(course)
    for folder in (course, *hide):
        if folder != course and _blanked(folder, bound):
            continue  # under the blanked /tmp or home folder: not visible in the jail at all
        for name in HIDDEN_DIRS:
            if (folder / name).is_dir():
                cmd += ["--tmpfs", str(folder / name)]
        for name in HIDDEN_FILES:
            if (folder / name).exists():
                cmd += ["--ro-bind", "/dev/null", str(folder / name)]
    cmd += ["--bind", str(workdir), str(workdir), "--bind", str(runtime), str(runtime),
            "--dir", "/tmp/home", "--dir", "/tmp/matplotlib", "--chdir", str(workdir),
            "--setenv", "HOME", "/tmp/home", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
            "--setenv", "TMPDIR", "/tmp",
            "--", "prlimit", f"--as={limits.memory_mb * 2**20}",
            "--", "timeout", "--signal=KILL", str(limits.notebook_seconds),
            sys.executable, "-m", "ipykernel_launcher", "-f", str(connection_file), *kernel_args]
    return cmd


def _blanked(path: Path, bound: list[Path]) -> bool:
    """Whether ``path`` lies under /tmp or the home folder (blanked in the jail) and under no path bound back."""
    path = path.resolve()
    under = lambda p: p == path or p in path.parents  # noqa: E731
    return any(under(b) for b in (Path("/tmp").resolve(), Path.home().resolve())) and not any(map(under, bound))


def _needed_paths(course: Path) -> list[Path]:
    """Of the course, the interpreter and sys.path, what lives under /tmp or the home folder.

    Everything else stays visible through the read-only bind of ``/``.
    """
    blanked = (Path("/tmp").resolve(), Path.home().resolve())
    wanted = {course.resolve(), Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    wanted |= {Path(p).resolve() for p in sys.path if p and Path(p).exists()}
    # an editable install imports the package through a finder, not a sys.path entry
    wanted.add(Path(__file__).resolve().parents[1])
    inside = [p for p in wanted if any(b in p.parents for b in blanked)]
    # bind parents before children, and skip children already covered by a bound parent
    result: list[Path] = []
    for p in sorted(inside, key=lambda q: len(q.parts)):
        if not any(r in p.parents for r in result):
            result.append(p)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--course", required=True)
    parser.add_argument("--hide", action="append", default=[], help="another course folder to hide the parts of")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb)
    parser.add_argument("--seconds", type=int, default=Limits.notebook_seconds)
    parser.add_argument("connection_file")
    args, kernel_args = parser.parse_known_args(argv)  # nbgrader adds kernel options
    limits = Limits(memory_mb=args.memory_mb, notebook_seconds=args.seconds)
    connection, course = Path(args.connection_file).resolve(), Path(args.course).resolve()
    runtime = connection.parent
    if runtime in (Path("/"), Path("/tmp"), Path.home()) or runtime in course.parents or runtime == course:
        sys.exit(f"refusing to sandbox: the kernel's runtime folder {runtime} would expose the course; "
                 f"set JUPYTER_RUNTIME_DIR to a private folder")
    hide = tuple(Path(p).resolve() for p in args.hide)
    cmd = bwrap_command(connection, Path.cwd().resolve(), course, limits, kernel_args, hide)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
