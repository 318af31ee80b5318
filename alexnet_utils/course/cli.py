"""The instructor's command line: python -m alexnet_utils doctor | download | release | grade | bench"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path


def doctor(args) -> int:
    """What a helper on a course forum asks first: versions, device, profile, cache."""
    import torch
    import torchvision

    from .. import data, profiles
    from ..runtime import cpu_has_bf16, thread_policy

    print(f"python        {platform.python_version()} ({sys.executable})")
    print(f"torch         {torch.__version__}   torchvision {torchvision.__version__}")
    threads, why = thread_policy()
    print(f"CPU threads   {threads} ({why})   bf16 autocast on CPU: {'yes' if cpu_has_bf16() else 'no'}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            print(f"GPU {i}         {p.name}, {p.total_memory / 2**30:.1f} GiB, "
                  f"bf16: {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    else:
        print("GPU           none (CUDA not available): training runs on the CPU")
    chosen = profiles.default_profile_name()
    how = f"from {profiles.ENV_VAR}" if profiles.ENV_VAR in __import__("os").environ else "automatic"
    try:
        run = profiles.run_profile()
        print(f"profile       {run.name} ({how}): {run.summary}")
    except ValueError as err:
        print(f"profile       {chosen!r} is invalid: {err}")
    print(f"cache         {data.cache_dir()} (set {data.CACHE_ENV} to move it)")
    for name, src in data.SOURCES.items():
        state = "cached" if data.is_cached(name) else f"missing: python -m alexnet_utils download {name}"
        print(f"  {name:<16} {src.title:<40} {state}")
    for line in runs_usage(data.cache_dir() / "runs"):
        print(line)
    try:
        import nbgrader
        print(f"nbgrader      {nbgrader.__version__}")
    except ImportError:
        print("nbgrader      not installed (pip install 'alexnet_utils[lab]' for instructors)")
    return 0


def _size(paths) -> int:
    return sum(f.stat().st_size for f in paths if f.is_file())


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.0f} kB"


def runs_usage(runs: Path) -> list[str]:
    """Disk taken by cached runs, per profile and notebook: what a student deletes when the disk fills."""
    if not runs.is_dir():
        return [f"runs          none cached yet ({runs})"]
    lines = [f"runs          {_mb(_size(runs.rglob('*')))} in {runs}; delete a notebook's folder to retrain it"]
    for profile in sorted(p for p in runs.iterdir() if p.is_dir()):
        for folder in sorted(f for f in profile.iterdir() if f.is_dir()):
            files = list(folder.rglob("*"))
            aside = [f for f in files if f.name.endswith(".previous.pt")]
            note = f", {_mb(_size(aside))} of it earlier runs set aside (*.previous.pt)" if aside else ""
            lines.append(f"  {profile.name}/{folder.name:<24} {_mb(_size(files)):>9}{note}")
    return lines


def download(args) -> int:
    from .. import data

    names = args.names or list(data.SOURCES)
    failed = []
    for name in names:
        print(f"{name}: fetching into {data.cache_dir()} ...")
        try:
            print(f"{name}: ok ({data.download(name, force=args.force)})")
        except (data.DatasetMissingError, data.DatasetCorruptError, ValueError) as err:
            print(f"{name}: FAILED\n{err}", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


def release(args) -> int:
    from . import release as course

    for path in course.release(_course(args), args.assignments or None):
        print(f"wrote {path}")
    return 0


def grade(args) -> int:
    from . import class_report, grading
    from . import release as course

    root = _course(args)
    if args.references:
        scores = course.grade_references(root, args.assignments or None)
        print(course.score_table(scores))
        return 0
    if grading.sandbox_problem() and args.unsafe:
        print("warning: grading WITHOUT a sandbox: students' code runs with your permissions", file=sys.stderr)
    names = args.assignments or None
    try:
        outcomes = _grade(root, names, args)
    except grading.SandboxUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not outcomes:
        print(f"no submissions to grade in {root / 'submitted'} (nbgrader expects "
              f"submitted/<student>/<assignment>/<notebook>.ipynb)")
        return 0
    print(grading.report_table(outcomes))
    print(f"report: {root / grading.REPORT}")
    print(f"class report: {class_report.write(root, sorted({o.assignment for o in outcomes}))}")
    return 0


def _grade(root: Path, names, args):
    """One at a time with --workers 1, else on Dask: an embedded cluster or the one at --scheduler."""
    from . import grading, parallel

    if args.workers is not None and args.workers < 1:
        raise SystemExit("error: --workers needs at least 1")
    address = parallel.scheduler_address(args.scheduler)
    if address is None and args.workers == 1:
        return grading.grade(root, names, unsafe=args.unsafe)
    try:
        import distributed  # noqa: F401
    except ImportError:
        if address:
            raise SystemExit("error: --scheduler needs Dask: pip install distributed") from None
        print("note: Dask is not installed (pip install distributed): grading one submission at a time",
              file=sys.stderr)
        return grading.grade(root, names, unsafe=args.unsafe)
    where = f"the Dask cluster at {address}" if address else \
        f"{args.workers or parallel.default_workers()} local worker processes"
    print(f"grading on {where}", file=sys.stderr)
    return parallel.grade_class(root, names, workers=args.workers, scheduler=args.scheduler, unsafe=args.unsafe,
                                resume=not args.regrade)


def bench(args) -> int:
    from . import report

    if args.grading:  # the grading section alone: it takes minutes, and trains nothing
        results = report.grading_throughput(args.assignments or None, wrong=args.wrong)
        print("\n".join(report.grading_table(results["grading"])).lstrip("\n"))
    else:
        results = report.run(curriculum=args.curriculum, samples=args.samples)
        print(report.table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _course(args) -> Path:
    """--course, else the current folder when it is a course (the instructor's clone), else this repository."""
    from . import release as course

    if args.course:
        return Path(args.course).resolve()
    here = Path.cwd()
    if (here / "nbgrader_config.py").is_file() and (here / "source").is_dir():
        return here.resolve()
    return course.repo_root()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alexnet_utils", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="print torch, CUDA, GPU, profile and cache status").set_defaults(fn=doctor)
    p = sub.add_parser("download", help="fetch datasets and weights into the cache ahead of time")
    p.add_argument("names", nargs="*", help="cifar10 mnist flowers102 oxford_pets alexnet_weights (default: all)")
    p.add_argument("--force", action="store_true", help="fetch again even if a verified copy exists")
    p.set_defaults(fn=download)
    for name, fn, text in (("release", release, "regenerate release/ and notebooks/ from source/"),
                           ("grade", grade, "autograde submissions and print a score table")):
        p = sub.add_parser(name, help=text)
        p.add_argument("assignments", nargs="*", help="assignment names (default: all)")
        p.add_argument("--course", help="course directory (default: the current folder if it holds "
                                        "nbgrader_config.py and source/, else this repository)")
        if name == "grade":
            p.add_argument("--references", action="store_true",
                           help="grade the instructor's solutions and the blank release into autograded/")
            p.add_argument("--unsafe", action="store_true",
                           help="grade submitted/ even when no sandbox (bubblewrap) is available")
            p.add_argument("--workers", type=int, default=None,
                           help="grading processes on this machine (default: one per core, as memory allows); "
                                "1 grades one submission at a time without Dask")
            p.add_argument("--scheduler", default=None,
                           help="address of a running Dask scheduler (tcp://HOST:8786) whose workers grade; "
                                "default: $ALEXNET_DASK_SCHEDULER, else an embedded local cluster")
            p.add_argument("--regrade", action="store_true",
                           help="grade every submission again, even those grading_ledger.jsonl records as done")
        p.set_defaults(fn=fn)
    p = sub.add_parser("bench", help="measure training and loading throughput")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--samples", type=int, default=4096, help="CIFAR-shaped images per measurement")
    p.add_argument("--curriculum", action="store_true",
                   help="also time every notebook (smoke) and the autograding of one submission")
    p.add_argument("--grading", action="store_true",
                   help="only grading throughput: submissions/minute serial vs Dask with 1, 2 and all cores' "
                        "workers on a generated class, and the projection for 200 students x 10 notebooks")
    p.add_argument("--wrong", type=int, default=3, help="with --grading: known wrong answers per assignment")
    p.add_argument("--assignments", nargs="*", help="with --grading: the assignments of the class (default: the first)")
    p.set_defaults(fn=bench)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except Exception as err:  # one readable line instead of a traceback for known failures
        from .release import CourseError
        if isinstance(err, CourseError):
            print(f"error: {err}", file=sys.stderr)
            return 1
        raise

