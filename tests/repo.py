"""The course on disk as the tests see it: where it is, which notebooks to test, throw-away copies."""

import os
import shutil
from pathlib import Path

from alexnet_utils.course.release import assignments as all_assignments
from alexnet_utils.course.release import notebooks, repo_root

ROOT = repo_root()
CONFIG_FILES = ("nbgrader_config.py", "pyproject.toml")
SHIPPED = ("source", "release", "notebooks", "autograded")
ONLY = "ALEXNET_TEST_ASSIGNMENTS"  # e.g. "01_build_alexnet": what `make check` limits the course tests to


def assignments() -> list[str]:
    """Every assignment in source/, or only those named (comma-separated) in $ALEXNET_TEST_ASSIGNMENTS."""
    names = all_assignments(ROOT)
    wanted = [n.strip() for n in os.environ.get(ONLY, "").split(",") if n.strip()]
    unknown = set(wanted) - set(names)
    assert not unknown, f"{ONLY} names unknown assignments {sorted(unknown)}; available: {names}"
    return [n for n in names if n in wanted] if wanted else names


def source_notebooks() -> list[Path]:
    return [nb for name in assignments() for nb in notebooks(ROOT / "source" / name)]


def scratch_course(dest: Path, *folders: str) -> Path:
    """Copy the course's config files and ``folders`` (e.g. "source", or ``*SHIPPED``) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in CONFIG_FILES:
        shutil.copy2(ROOT / name, dest / name)
    for folder in folders:
        shutil.copytree(ROOT / folder, dest / folder,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return dest
