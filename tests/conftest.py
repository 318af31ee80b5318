"""Every test session runs offline, in the smoke profile, with one private course cache.

Notebooks executed by different tests (validate, autograde, self-study, the
browser, the wrong-answer replay) share that cache, so an experiment one of
them finished is reloaded by the others instead of trained again; the user's
own cache is never touched. Unit tests swap in an empty cache per test.

``make test`` runs the suite on two pytest-xdist workers, scheduled by group.
Each test is put in a group that one worker runs from start to end: all of a
notebook's tests together (they share its graded run, its replay and its cached
experiments), the tests of the instructor's day together (they share one walk),
and otherwise a module's tests together (they share its module fixtures). So no
expensive fixture is computed twice, and no two workers train the same
notebook's experiments at once. Both workers share the course cache, and each
pins everything it starts to one thread: two workers that each take both cores
spend their time waiting on each other's OpenMP threads.
"""

import os
import re
from unittest import mock

import pytest

INSTRUCTOR_DAY = "instructor-day"


def _xdist_worker() -> str | None:
    return os.environ.get("PYTEST_XDIST_WORKER")


@pytest.fixture(autouse=True, scope="session")
def offline_course_cache(tmp_path_factory):
    env = {"ALEXNET_PROFILE": "smoke"}
    if _xdist_worker():
        # basetemp/popen-gwN per worker: their common parent belongs to this run
        cache = tmp_path_factory.getbasetemp().parent / "alexnet-cache"
        cache.mkdir(exist_ok=True)
        env["ALEXNET_THREADS"] = "1"  # read by au.start in every kernel this worker starts
        import torch

        torch.set_num_threads(1)
    else:
        cache = tmp_path_factory.mktemp("alexnet-cache")
    env["ALEXNET_DATA"] = str(cache)
    with mock.patch.dict(os.environ, env):
        yield cache


@pytest.fixture(scope="session")
def fake_cache(tmp_path_factory):
    """The fake download cache in the real formats (tests/realdata.py), written once per worker.

    Most of its 240 MB is the 61M-weight AlexNet file: one copy per worker, not one per module.
    """
    from .realdata import write_fake_cache

    return write_fake_cache(tmp_path_factory.mktemp("fake-alexnet-cache"))


@pytest.fixture(scope="session")
def instructor_day(tmp_path_factory):
    """README's instructor's day, typed into a copy of the course as shipped (tests/instructor_day.py).

    Shared by the command-line checks (tests/course) and the formgrader walk (tests/browser),
    which works on a copy of its own.
    """
    from .instructor_day import walk

    return walk(tmp_path_factory.mktemp("instructor-day"))


NOTEBOOK_ID = re.compile(r"\[(\d\d_[a-z0-9_]+)\]")


def xdist_group(nodeid: str) -> str:
    """The group of tests one xdist worker runs together (see the module's docstring)."""
    path = nodeid.split("::")[0]
    if path.endswith("/test_instructor_day.py"):
        return INSTRUCTOR_DAY
    notebook = NOTEBOOK_ID.search(nodeid)
    if notebook and path.startswith(("tests/course/", "tests/browser/")):
        return notebook.group(1)
    return path


def pytest_xdist_make_scheduler(config, log):
    """xdist's load-scope scheduler, with our groups as its scopes.

    Not ``--dist loadgroup``: it marks groups by rewriting node ids, which pytest 9 no
    longer lets a plugin do, so every test silently became a group of its own.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return ByGroup(config, log)
