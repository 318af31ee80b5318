"""Figures and tables: every plot returns its Figure with show=False."""

import html as html_mod
import re

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from alexnet_utils import viz
from alexnet_utils.train import History


def images_drawn(fig):
    return sum(len(ax.images) for ax in fig.axes)


def titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def history(*rows):
    return History(epochs=[{"epoch": i + 1, **row} for i, row in enumerate(rows)], steps=[])


@pytest.fixture
def two_runs():
    return {
        "baseline": history({"train_loss": 2.0, "train_acc": 0.3, "val_loss": 2.1, "val_acc": 0.25},
                            {"train_loss": 1.5, "train_acc": 0.5, "val_loss": 1.7, "val_acc": 0.45}),
        "sigmoid": history({"train_loss": 2.3, "train_acc": 0.1, "val_loss": 2.3, "val_acc": 0.1},
                           {"train_loss": 2.2, "train_acc": 0.15, "val_loss": 2.3, "val_acc": 0.12}),
    }


# --------------------------------------------------------------------------- image grids

def test_show_images_draws_one_titled_image_per_sample():
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    fig = viz.show_images(images, labels=torch.tensor([0, 1, 2, 0, 1, 2]), classes=("cat", "dog", "ship"),
                          show=False, title="samples")
    assert isinstance(fig, Figure)
    assert images_drawn(fig) == 6
    assert titles(fig) == ["cat", "dog", "ship", "cat", "dog", "ship"]
    assert fig._suptitle.get_text() == "samples"


def test_show_images_shows_at_most_n_images():
    fig = viz.show_images(torch.rand(40, 1, 28, 28), n=10, ncols=5, show=False)
    assert images_drawn(fig) == 10
    assert len(fig.axes) == 10  # 2 rows of 5


def test_show_images_without_classes_titles_with_label_numbers():
    fig = viz.show_images(torch.rand(3, 1, 8, 8), labels=[4, 5, 6], show=False)
    assert titles(fig) == ["4", "5", "6"]


def test_show_images_stretches_each_image_to_0_1():
    fig = viz.show_images(torch.full((1, 3, 4, 4), 200, dtype=torch.uint8).index_fill_(2, torch.tensor([0]), 10),
                          show=False)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (4, 4, 3)
    assert shown.min() == 0 and shown.max() == 1


def test_show_images_with_show_true_returns_none():
    assert viz.show_images(torch.rand(2, 3, 8, 8), show=True) is None


def test_show_images_rejects_images_without_a_channel_axis():
    with pytest.raises(ValueError, match="N, C, H, W"):
        viz.show_images(torch.zeros(4, 28, 28, dtype=torch.uint8), show=False)


def test_show_images_rejects_channels_last_images():
    with pytest.raises(ValueError, match="N, C, H, W"):
        viz.show_images(torch.zeros(4, 28, 28, 3, dtype=torch.uint8), show=False)


def test_filter_grid_draws_every_filter_sixteen_to_a_row():
    fig = viz.filter_grid(torch.randn(96, 3, 11, 11), show=False)
    assert images_drawn(fig) == 96
    assert len(fig.axes) == 96  # 6 rows of 16
    assert "(3, 11, 11)" in fig._suptitle.get_text()
    assert fig.axes[0].images[0].get_array().shape == (11, 11, 3)


def test_filter_grid_shows_the_first_input_channel_of_deep_filters():
    fig = viz.filter_grid(torch.randn(8, 64, 3, 3), show=False)
    assert images_drawn(fig) == 8
    assert fig.axes[0].images[0].get_array().shape == (3, 3)


def test_filter_grid_rejects_non_conv_weights():
    with pytest.raises(ValueError, match="out, in, kH, kW"):
        viz.filter_grid(torch.randn(96, 3 * 11 * 11), show=False)


def test_feature_maps_draws_the_first_n_channels():
    fig = viz.feature_maps(torch.randn(1, 32, 13, 13), n=12, show=False, title="conv5")
    assert images_drawn(fig) == 12
    assert titles(fig) == [f"ch {i}" for i in range(12)]
    assert fig._suptitle.get_text() == "conv5 (13x13)"


def test_feature_maps_can_pick_channels_and_title_them_by_their_numbers():
    activation = torch.randn(32, 13, 13)
    fig = viz.feature_maps(activation, channels=[7, 2, 30], show=False)
    assert images_drawn(fig) == 3 and titles(fig) == ["ch 7", "ch 2", "ch 30"]
    drawn = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert (drawn[0] == activation[7].numpy()).all()
    with pytest.raises(ValueError, match="channels must be in 0..31"):
        viz.feature_maps(activation, channels=[32], show=False)


def test_feature_maps_accepts_unbatched_activations_with_few_channels():
    fig = viz.feature_maps(torch.randn(5, 6, 6), n=16, show=False)
    assert images_drawn(fig) == 5


@pytest.mark.parametrize("shape", [(32,), (32, 13), (2, 2, 32, 13, 13)])
def test_feature_maps_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="C, H, W"):
        viz.feature_maps(torch.randn(*shape), show=False)


def test_image_plots_emit_no_warnings():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        viz.show_images(torch.rand(2, 3, 8, 8), show=False)
        viz.filter_grid(torch.randn(4, 3, 5, 5), show=False)
        viz.feature_maps(torch.randn(4, 6, 6), show=False)
    assert [str(w.message) for w in caught] == []


# --------------------------------------------------------------------------- curves and bars

def test_plot_curves_draws_train_and_val_per_run_per_metric(two_runs):
    fig = viz.plot_curves(two_runs, show=False, title="ablation")
    assert len(fig.axes) == 2
    assert [ax.get_ylabel() for ax in fig.axes] == ["cross-entropy loss", "accuracy"]
    for ax in fig.axes:
        assert len(ax.lines) == 4
    assert list(fig.axes[0].lines[0].get_ydata()) == [2.0, 1.5]
    assert list(fig.axes[1].lines[1].get_ydata()) == [0.25, 0.45]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["baseline, training", "baseline, validation", "sigmoid, training", "sigmoid, validation"]
    assert fig._suptitle.get_text() == "ablation"


def test_plot_curves_accepts_a_single_history_without_validation():
    run = history({"train_loss": 2.0, "train_acc": 0.3}, {"train_loss": 1.0, "train_acc": 0.6})
    fig = viz.plot_curves(run, metrics=("loss",), show=False)
    assert len(fig.axes) == 1
    assert len(fig.axes[0].lines) == 1
    assert list(fig.axes[0].lines[0].get_xdata()) == [1, 2]


def test_bar_chart_draws_one_bar_per_value():
    values = {"features.0": 2.0, "features.3": 6.0, "classifier.1": 2.0}
    fig = viz.bar_chart(values, "FLOPs by layer", "FLOPs", log=True, show=False)
    (ax,) = fig.axes
    assert [p.get_height() for p in ax.patches] == [2.0, 6.0, 2.0]
    assert ax.get_title() == "FLOPs by layer" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.texts] == ["20%", "60%", "20%"]


def test_bar_chart_colours_bars_by_layer_family():
    fig = viz.bar_chart({"conv1": 1, "conv2": 2, "fc6": 3, "fc7": 4}, "params", "count", show=False)
    colours = [p.get_facecolor() for p in fig.axes[0].patches]
    assert colours[0] == colours[1] and colours[2] == colours[3]
    assert colours[0] != colours[2]



# --------------------------------------------------------------------------- what a student sees first (issue 15)

def test_plot_step_losses_labels_what_is_plotted():
    fig = viz.plot_step_losses([2.3, 1.1, 0.4, 0.05], title="one batch", show=False)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "cross-entropy loss"
    (line,) = ax.lines
    assert list(line.get_xdata()) == [1, 2, 3, 4] and line.get_linestyle() == "-" and line.get_alpha() in (None, 1)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training loss"]
    assert "epoch" not in " ".join([ax.get_xlabel(), ax.get_title()]) and "(train)" not in line.get_label()


def test_claims_html_is_a_table_a_person_reads():
    from alexnet_utils.claims import AGREES, DISAGREES, NOT_MEASURABLE

    literature = "torchvision docs: 0.71 'GFLOPS' are multiply-adds, not FLOPs; " * 3
    frame = pd.DataFrame([
        {"claim": "torchvision's AlexNet costs 0.71 GFLOPS", "source": literature, "verdict": AGREES},
        {"claim": "<b>60M</b> & more", "source": "paper", "verdict": DISAGREES},
        {"claim": "six days on two GPUs", "source": "paper", "verdict": NOT_MEASURABLE},
    ])
    html = viz.claims_html(frame)
    assert html.count("<tr>") == 4 and html.count("<thead>") == 1, "one header row, then one row per claim"
    assert re.findall(r"<th[^>]*>([^<]*)</th>", html) == ["claim", "source", "verdict"]
    cells = re.findall(r"<t[hd] ([^>]*)>", html)
    assert len(cells) == 12 and all("text-align:left" in c for c in cells), "text is left-aligned, not pandas' right"
    assert all("white-space:normal" in c for c in re.findall(r"<td ([^>]*)>", html)), "long cells wrap, in full"
    assert html_mod.escape(literature) in html and "..." not in html, "no cell is cut short"
    assert "&lt;b&gt;60M&lt;/b&gt; &amp; more" in html, "cell text is escaped"
    colours = re.findall(r'<b style="color:(#[0-9a-f]{6})">([^<]*)</b>', html)
    assert colours == [(viz.VERDICT_COLOURS[v], v) for v in (AGREES, DISAGREES, NOT_MEASURABLE)]
    assert len({c for c, _ in colours}) == 3, "each verdict has its own colour"
