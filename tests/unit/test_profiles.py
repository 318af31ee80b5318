"""Run profiles: one place decides how big every experiment is."""

import dataclasses

import pytest
import torch

import alexnet_utils as au
from alexnet_utils import profiles


def test_smoke_profile_is_small_offline_and_two_epochs():
    p = au.run_profile("smoke")
    assert (p.name, p.epochs, p.train_samples, p.val_samples, p.batch_size, p.offline) == (
        "smoke", 2, 512, 256, 64, True)


def test_quick_profile_uses_real_data_at_laptop_size():
    p = au.run_profile("quick")
    assert (p.name, p.epochs, p.train_samples, p.val_samples, p.batch_size, p.offline) == (
        "quick", 5, 10_000, 2_000, 128, False)


def test_full_profile_uses_whole_datasets():
    p = au.run_profile("full")
    assert (p.name, p.epochs, p.train_samples, p.val_samples, p.batch_size, p.offline) == (
        "full", 30, None, None, 256, False)


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        au.run_profile("smoke").epochs = 100


@pytest.mark.parametrize("name", ["smoke", "quick", "full"])
def test_environment_variable_chooses_the_profile(monkeypatch, name):
    monkeypatch.setenv("ALEXNET_PROFILE", name)
    assert au.run_profile().name == name


def test_environment_variable_ignores_case_and_spaces(monkeypatch):
    monkeypatch.setenv("ALEXNET_PROFILE", "  Quick \n")
    assert au.run_profile().name == "quick"


def test_explicit_name_wins_over_environment(monkeypatch):
    monkeypatch.setenv("ALEXNET_PROFILE", "smoke")
    assert au.run_profile("full").name == "full"


def test_unknown_name_raises_value_error_listing_valid_names():
    with pytest.raises(ValueError) as err:
        au.run_profile("huge")
    message = str(err.value)
    assert "huge" in message
    for valid in ("smoke", "quick", "full"):
        assert valid in message


def test_unknown_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("ALEXNET_PROFILE", "tiny")
    with pytest.raises(ValueError, match="ALEXNET_PROFILE") as err:
        au.run_profile()
    assert "tiny" in str(err.value) and "smoke" in str(err.value)


def test_auto_choice_is_quick_without_cuda(monkeypatch):
    monkeypatch.delenv("ALEXNET_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profiles.default_profile_name() == "quick"
    assert au.run_profile().name == "quick"


def test_auto_choice_is_full_with_cuda(monkeypatch):
    monkeypatch.delenv("ALEXNET_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert au.run_profile().name == "full"


def test_empty_environment_variable_means_auto(monkeypatch):
    monkeypatch.setenv("ALEXNET_PROFILE", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert au.run_profile().name == "quick"


def test_limit_caps_each_split_at_the_profile_size():
    smoke = au.run_profile("smoke")
    assert smoke.limit(50_000, "train") == 512
    assert smoke.limit(10_000, "test") == 256
    assert smoke.limit(100, "train") == 100  # never more than there is


def test_limit_of_full_profile_keeps_everything():
    assert au.run_profile("full").limit(50_000, "train") == 50_000
    assert au.run_profile("full").limit(10_000, "test") == 10_000


def test_pick_sizes_a_notebook_experiment_by_profile():
    assert [au.run_profile(n).pick(smoke=2, quick=5, full=30) for n in ("smoke", "quick", "full")] == [2, 5, 30]
