"""Fixtures that run nbgrader once per test session, in scratch copies of the course."""

import os
import shutil

import pytest

from alexnet_utils import course

ROOT = course.repo_root()


@pytest.fixture(autouse=True, scope="session")
def smoke_profile():
    """Notebooks executed by tests run offline in seconds."""
    old = os.environ.get("ALEXNET_PROFILE")
    os.environ["ALEXNET_PROFILE"] = "smoke"
    yield
    if old is None:
        os.environ.pop("ALEXNET_PROFILE", None)
    else:
        os.environ["ALEXNET_PROFILE"] = old


@pytest.fixture(scope="session")
def fresh(tmp_path_factory):
    """A scratch course whose release/ and notebooks/ were just generated from source/."""
    root = tmp_path_factory.mktemp("fresh-course")
    shutil.copy2(ROOT / "nbgrader_config.py", root)
    shutil.copy2(ROOT / "pyproject.toml", root)
    shutil.copytree(ROOT / "source", root / "source")
    course.release(root)
    return root


@pytest.fixture(scope="session")
def scores():
    """Autograde every assignment's reference solution and blank release (nothing written)."""
    return course.grade_references(ROOT, write=False)


def source_notebooks():
    return [nb for name in course.assignments(ROOT) for nb in course.notebooks(ROOT / "source" / name)]
