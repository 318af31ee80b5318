"""Fixtures that run nbgrader once per test session, in scratch copies of the course."""

import pytest

from alexnet_utils.course import release as course

from ..repo import ROOT, assignments, scratch_course, source_notebooks  # noqa: F401


@pytest.fixture(scope="session")
def fresh(tmp_path_factory):
    """A scratch course whose release/ and notebooks/ were just generated from source/."""
    root = scratch_course(tmp_path_factory.mktemp("fresh-course"), "source")
    course.release(root)
    return root


@pytest.fixture(scope="session")
def scores():
    """Autograde every assignment's reference solution and blank release (nothing written)."""
    return course.grade_references(ROOT, assignments(), write=False)

