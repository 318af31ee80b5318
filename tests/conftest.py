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
