"""A changed experiment is never answered with an old result: checkpoints know what made them."""

from dataclasses import replace

import pytest
import torch
from torch import nn

import alexnet_utils as au


class Tiny(nn.Module):
    """A network whose forward a test can 'fix' the way a student fixes a cell."""

    def __init__(self, bug: bool = False, init=None):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 16), nn.ReLU(), nn.Linear(16, 10))
        self.bug = bug
        if init is not None:
            init(self)

    def forward(self, x):
        x = self.body[0](x)
        h = self.body[1](x)
        h = h if self.bug else self.body[2](h)  # the bug: a missing activation
        return self.body[3](h)


def small_init(model):
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)


def other_init(model):
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.02)


@pytest.fixture
def loaders(train_set, val_set):
    train = au.DeviceLoader(train_set, 64, augment="none", device="cpu")
    val = au.DeviceLoader(val_set, 64, shuffle=False, device="cpu")
    return train, val


def fit(model, loaders, path, **config):
    torch.manual_seed(0)
    cfg = au.TrainConfig(optimizer="adam", lr=config.pop("lr", 1e-3), weight_decay=0.0, epochs=1, precision="fp32")
    return au.fit(model, *loaders, config=cfg, device="cpu", progress=False, checkpoint=path)


def build(**kw):
    torch.manual_seed(0)
    return Tiny(**kw)


def test_an_unchanged_run_reloads(loaders, tmp_path, capsys):
    path = tmp_path / "run.pt"
    first = fit(build(), loaders, path)
    capsys.readouterr()
    again = fit(build(), loaders, path)
    assert "finished run loaded" in capsys.readouterr().out and again.epochs == first.epochs


@pytest.mark.parametrize("change, words", [
    (dict(model=dict(bug=True)), "the model's code or initial weights"),
    (dict(model=dict(init=other_init)), "the model's code or initial weights"),
    (dict(lr=3e-3), "the recipe"),
])
def test_a_changed_forward_init_or_learning_rate_trains_afresh(change, words, loaders, tmp_path, capsys):
    path = tmp_path / "run.pt"
    fit(build(init=small_init), loaders, path)
    capsys.readouterr()
    model_kw = {"init": small_init, **change.get("model", {})}
    fit(build(**model_kw), loaders, path, **{k: v for k, v in change.items() if k != "model"})
    printed = capsys.readouterr().out
    assert "training afresh" in printed and words in printed and "finished run loaded" not in printed
    assert (tmp_path / "run.previous.pt").exists(), "the old run is kept apart, not deleted"


def test_a_changed_optimizer_setting_is_not_overwritten_by_the_saved_state(loaders, tmp_path):
    path = tmp_path / "run.pt"
    model = build()
    au.fit(model, *loaders, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, device="cpu",
           progress=False, checkpoint=path, precision="fp32")
    model = build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    history = au.fit(model, *loaders, optimizer=optimizer, epochs=1, device="cpu", progress=False,
                     checkpoint=path, precision="fp32")
    assert history["lr"] == [0.01] and optimizer.param_groups[0]["lr"] == 0.01


def test_compare_retrains_a_variant_whose_helper_changed(cache, train_set, val_set, capsys):
    au.start("honest_cache_nb")
    recipe = au.TrainConfig(optimizer="adam", lr=1e-3, weight_decay=0.0, epochs=1, precision="fp32", augment="none")
    cell = {"init_helper": small_init}  # the helper the variant calls, as a student's notebook cell defines it

    def run_the_cell():
        return au.compare("helper", {"tiny": lambda: Tiny(init=cell["init_helper"])}, data=(train_set, val_set),
                          train=recipe, seeds=1, progress=False)

    first = run_the_cell()
    assert "finished run loaded" in (run_the_cell(), capsys.readouterr().out)[1]
    cell["init_helper"] = other_init  # the student fixes the helper and runs the experiment cell again
    again = run_the_cell()
    assert "training afresh" in capsys.readouterr().out
    assert again.histories["tiny", 0].epochs != first.histories["tiny", 0].epochs


def test_fit_refuses_a_data_recipe_its_loaders_do_not_apply(loaders):
    model = build()
    with pytest.raises(ValueError, match=r"augment='crop_flip' is part of the data recipe.*loaders use 'none'"):
        au.fit(model, *loaders, config=au.TrainConfig(augment="crop_flip", epochs=1), device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"batch_size=32 .*loaders use 64"):
        au.fit(model, *loaders, config=au.TrainConfig(batch_size=32, epochs=1), device="cpu", progress=False)
    plain = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 3, 32, 32),
                                                                       torch.randint(0, 10, (8,))), batch_size=4)
    with pytest.raises(ValueError, match="do not say theirs"):
        au.fit(model, plain, config=au.TrainConfig(augment="flip", epochs=1), device="cpu", progress=False)
    history = au.fit(model, plain, config=au.TrainConfig(epochs=1, precision="fp32"), device="cpu", progress=False)
    assert len(history) == 1, "fields left unset are the loaders' business"


def test_compare_fills_the_papers_augmentation_when_unset():
    assert au.TrainConfig().augment is None and au.TrainConfig().sized(au.run_profile("smoke")).augment == "crop_flip"
    assert replace(au.TrainConfig(augment="none")).sized(au.run_profile("smoke")).augment == "none"


def test_a_batch_transform_runs_on_zero_to_one_images_before_normalising(train_set):
    seen = {}

    def brighten(x):
        seen["range"] = (x.min().item(), x.max().item())
        return (x + 0.1).clamp(0, 1)

    plain = au.DeviceLoader(train_set, 16, shuffle=False, device="cpu")
    bright = au.DeviceLoader(train_set, 16, shuffle=False, device="cpu", transform=brighten)
    (a, _), (b, _) = next(iter(plain)), next(iter(bright))
    assert 0 <= seen["range"][0] and seen["range"][1] <= 1
    std = torch.tensor(train_set.std).view(1, -1, 1, 1)
    assert ((b - a) * std).max().item() == pytest.approx(0.1, abs=1e-4)
    with pytest.raises(ValueError, match="shape"):
        next(iter(au.DeviceLoader(train_set, 16, device="cpu", transform=lambda x: x[:, :1])))
