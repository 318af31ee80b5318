"""start(): one line that seeds, names the notebook and says what runs where."""

import random

import torch

import alexnet_utils as au


def test_start_seeds_prints_profile_device_and_stand_ins(cache, capsys):
    profile = au.start("02_ablation", seed=3, data=("cifar10", "mnist", "shapes"))
    out = capsys.readouterr().out
    assert profile.name == "smoke"
    assert "02_ablation: run profile 'smoke'" in out and "device: cpu" in out
    assert "stand-in: shapes replaces CIFAR-10" in out and "stand-in: mnist5k replaces MNIST" in out
    assert "data: shapes (ships with the course" in out
    first = torch.rand(1), random.random()
    au.start("02_ablation", seed=3)
    assert (torch.rand(1), random.random()) == first
    assert au.session.notebook_dir() == cache / "runs" / "smoke" / "02_ablation"


def test_outside_smoke_start_says_where_the_real_data_comes_from(cache, capsys, monkeypatch):
    monkeypatch.setenv("ALEXNET_PROFILE", "quick")
    au.start("04_transfer_learning", data=("flowers102",))
    out = capsys.readouterr().out
    assert "data: Oxford Flowers-102 from" in out and "not cached yet: fetched on first use" in out


def _nesting(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        deepest = max(deepest, depth)
    return deepest


def test_the_profile_line_reads_without_nested_parentheses(cache, capsys, monkeypatch):
    for name in ("smoke", "quick", "full"):
        monkeypatch.setenv("ALEXNET_PROFILE", name)
        au.start("01_build_alexnet")
        first = capsys.readouterr().out.splitlines()[0]
        assert first.startswith(f"01_build_alexnet: run profile '{name}', "), first
        assert _nesting(first) <= 1, f"nested parentheses in {first!r}"
