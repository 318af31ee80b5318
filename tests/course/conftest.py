"""Fixtures that run nbgrader once per notebook and test session, in scratch copies of the course.

Each is a function of the assignment's name, computed the first time a test asks
for that notebook: the tests of one notebook run on one xdist worker (see
tests/conftest.py), so each notebook is released and graded once per run.
"""

import functools

import pytest

from alexnet_utils.course import release as course

from ..repo import ROOT, assignments, scratch_course, source_notebooks  # noqa: F401


@pytest.fixture(scope="session")
def fresh(tmp_path_factory):
    """name -> a scratch course whose release/ and notebooks/ for ``name`` were just generated from source/."""
    @functools.cache
    def released(name: str):
        root = scratch_course(tmp_path_factory.mktemp(f"fresh-{name}"), "source")
        course.release(root, [name])
        return root
    return released


@pytest.fixture(scope="session")
def scores():
    """name -> the autograde scores of its reference solution and blank release (nothing written)."""
    @functools.cache
    def graded(name: str):
        return course.grade_references(ROOT, [name], write=False)
    return graded
