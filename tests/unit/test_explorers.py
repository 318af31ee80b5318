"""Schedules come from torch's schedulers; the explorers redraw when a control moves."""

import matplotlib
import pytest
import torch

from alexnet_utils import data, models, train, viz

matplotlib.use("Agg")


def test_every_schedule_starts_at_the_given_rate_except_warmup():
    for name in train.SCHEDULES:
        rates = train.lr_curve(name, 0.1, 300)
        assert len(rates) == 300
        if name == "warmup_cosine":  # always warms up, one step at least
            assert rates[0] < 0.1 and max(rates) == pytest.approx(0.1, rel=1e-3)
        else:
            assert rates[0] == pytest.approx(0.1)


def test_warmup_ramps_every_schedule_up_to_the_given_rate():
    for name in train.SCHEDULES:
        rates = train.lr_curve(name, 0.1, 300, warmup_steps=30)
        assert rates[0] == pytest.approx(0.1 / 30), name
        assert rates[30] == pytest.approx(0.1), name
        assert all(a < b for a, b in zip(rates[:30], rates[1:31], strict=True)), f"{name} rises during warm-up"


def test_schedules_end_where_they_should():
    assert train.lr_curve("constant", 0.1, 100)[-1] == pytest.approx(0.1)
    assert train.lr_curve("step", 0.1, 90)[-1] == pytest.approx(0.1 * 0.01)  # two drops by 10 in 90 steps
    assert train.lr_curve("exponential", 0.1, 100)[-1] == pytest.approx(0.1 * 0.01, rel=0.05)
    assert train.lr_curve("cosine", 0.1, 100)[-1] < 0.001


def test_unknown_schedule_and_bad_warmup_are_clear_errors():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="warmup_cosine"):
        train.schedule("triangle", opt, 100)
    with pytest.raises(ValueError, match="warmup_steps"):
        train.schedule("warmup_cosine", opt, 100, warmup_steps=100)


def test_plot_lr_schedules_draws_one_line_per_schedule():
    fig = viz.plot_lr_schedules(show=False, total_steps=200, warmup_steps=10)
    assert len(fig.axes[0].lines) == len(train.SCHEDULES)
    assert fig.axes[0].get_xlabel() == "training step"


def test_lr_schedule_explorer_redraws_on_change():
    box = viz.lr_schedule_explorer(total_steps=200)
    name, lr, warmup = box.children[0].children
    picture = box.children[1]
    first = bytes(picture.value)
    assert first.startswith(b"\x89PNG"), "the first curve is drawn at once"
    name.value = "step"
    assert bytes(picture.value).startswith(b"\x89PNG") and bytes(picture.value) != first


def test_feature_browser_shows_the_chosen_layer():
    model = models.mini_alexnet(width=0.25).train()
    shapes = data.shapes(8)
    box = viz.feature_browser(model, shapes, n=4)
    layer, index = box.children[0].children
    image, maps = box.children[1].children
    assert list(layer.options) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    before_maps, before_image = bytes(maps.value), bytes(image.value)
    layer.value = "conv3"
    assert bytes(maps.value) != before_maps and bytes(image.value) == before_image
    index.value = 5
    assert bytes(image.value) != before_image
    assert model.training, "browsing leaves the model in the mode it was in"


def test_feature_browser_needs_conv_layers():
    with pytest.raises(ValueError, match="Conv2d"):
        viz.feature_browser(torch.nn.Sequential(torch.nn.Linear(2, 2)), data.shapes(2))
