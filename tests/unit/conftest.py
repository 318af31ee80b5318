"""Fixtures shared by the package's unit tests.

Every test runs in the offline ``smoke`` profile with an empty, private data
cache, so nothing here can touch the network or a user's real cache.
"""

import matplotlib

matplotlib.use("Agg")  # no windows, no plt.show() blocking: figures are only inspected

import pytest
import torch

import alexnet_utils as au


@pytest.fixture(autouse=True)
def offline_smoke_profile(monkeypatch, tmp_path):
    """Smoke profile and a fresh, empty ALEXNET_DATA cache for every test."""
    cache = tmp_path / "alexnet_cache"
    cache.mkdir()
    monkeypatch.setenv("ALEXNET_PROFILE", "smoke")
    monkeypatch.setenv("ALEXNET_DATA", str(cache))
    return cache


@pytest.fixture
def cache(offline_smoke_profile):
    """The empty data cache directory the current test runs against."""
    return offline_smoke_profile


@pytest.fixture(autouse=True)
def close_figures():
    """Close every matplotlib figure a test opened, so figures never pile up."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# The 61M-parameter networks take about a second each to build: build each
# variant once per session and never mutate it in a test.

@pytest.fixture(scope="session")
def paper_alexnet():
    """alexnet_2012() with the two-tower grouping, in eval mode. Read-only."""
    torch.manual_seed(0)
    return au.alexnet_2012().eval()


@pytest.fixture(scope="session")
def one_tower_alexnet():
    """alexnet_2012(two_tower=False), in eval mode. Read-only."""
    torch.manual_seed(0)
    return au.alexnet_2012(two_tower=False).eval()


@pytest.fixture(scope="module")
def train_set():
    """256 generated 32x32 images: enough for a training loop to learn something in seconds."""
    return au.data.shapes(256, seed=0)


@pytest.fixture(scope="module")
def val_set():
    return au.data.shapes(128, seed=1)
