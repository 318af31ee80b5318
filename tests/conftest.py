"""Every test session runs offline, in the smoke profile, with one private course cache.

Notebooks executed by different tests (validate, autograde, self-study, the
browser, the wrong-answer replay) share that cache, so an experiment one of
them finished is reloaded by the others instead of trained again; the user's
own cache is never touched. Unit tests swap in an empty cache per test.
"""

import os
from unittest import mock

import pytest


@pytest.fixture(autouse=True, scope="session")
def offline_course_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("alexnet-cache")
    with mock.patch.dict(os.environ, {"ALEXNET_PROFILE": "smoke", "ALEXNET_DATA": str(cache)}):
        yield cache


@pytest.fixture(scope="session")
def instructor_day(tmp_path_factory):
    """README's instructor's day, typed into a copy of the course as shipped (tests/instructor_day.py).

    Shared by the command-line checks (tests/course) and the formgrader walk (tests/browser),
    which works on a copy of its own.
    """
    from .instructor_day import walk

    return walk(tmp_path_factory.mktemp("instructor-day"))
