"""Pictures and tables a person would rather look at than read as numbers.

Every plotting function draws one figure and shows it; pass ``show=False``
to get the matplotlib Figure back instead (for tests or further edits).
"""

from __future__ import annotations

__all__ = [
    "show_images", "filter_grid", "feature_maps", "plot_curves", "plot_step_losses", "plot_comparison",
    "plot_final", "bar_chart", "claims_html", "plot_lr_schedules", "lr_schedule_explorer", "feature_browser",
    "integer_axis", "table_formatters", "Table",
]

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import torch

from .models import paper_names
from .train import SCHEDULES, lr_curve


def _finish(fig, show: bool):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    if show:
        plt.show()
        return None
    return fig


def integer_axis(ax, axis: str = "x"):
    """Whole-number ticks on a count axis (epochs, steps, filters): no tick at epoch 1.5."""
    from matplotlib.ticker import MaxNLocator

    for name in axis:
        getattr(ax, f"{name}axis").set_major_locator(MaxNLocator(integer=True))
    return ax


def table_formatters(columns) -> dict:
    """How the course prints a table's numbers, by column name: accuracies to 3 places, seconds to 1.

    A missing value (one seed has no spread, a target never reached) prints as a dash.
    """
    def fmt(spec):
        return lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    out = {}
    for col in columns:
        name = str(col)
        if name.endswith(("_s", "seconds", "seconds_to_target", "time")) or "seconds" in name:
            out[col] = fmt(".1f")
        elif "epoch" in name or "step" in name:
            out[col] = fmt(".3g")
        elif any(k in name for k in ("acc", "loss", "gap", "vs_", "sd", "error")):
            out[col] = fmt(".3f")
        else:
            out[col] = fmt(".4g")
    return out


class Table(pd.DataFrame):
    """A DataFrame that shows itself with the course's number formats (``table_formatters``)."""

    @property
    def _constructor(self):
        return Table

    def _formatters(self):
        return table_formatters(self.select_dtypes("number").columns)

    def _repr_html_(self) -> str:
        return self.to_html(formatters=self._formatters(), na_rep="—")

    def __repr__(self) -> str:
        return self.to_string(formatters=self._formatters(), na_rep="—")


def _grid(n: int, ncols: int | None):
    ncols = ncols or min(n, max(1, math.ceil(math.sqrt(n * 1.6))))
    return math.ceil(n / ncols), ncols


def _to_display(img: torch.Tensor):
    """(C, H, W) in any range -> a numpy (H, W, C) or (H, W) array in [0, 1] for imshow."""
    img = img.detach().float().cpu()
    lo, hi = img.min(), img.max()
    img = (img - lo) / (hi - lo) if hi > lo else torch.zeros_like(img)
    return (img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)).numpy()


def show_images(images: torch.Tensor, labels=None, classes: Sequence[str] | None = None, n: int = 16,
                ncols: int | None = None, title: str = "", show: bool = True):
    """A grid of images (uint8 or float, ``(N, C, H, W)``) with their class names."""
    import matplotlib.pyplot as plt

    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images shaped (N, C, H, W) with 1 or 3 channels; got {tuple(images.shape)} "
                         "(add a channel axis with images.unsqueeze(1), or move it with images.permute(0, 3, 1, 2))")
    n = min(n, len(images))
    if n < 1:
        raise ValueError("no images to show: the batch is empty")
    rows, cols = _grid(n, ncols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(_to_display(images[i]), cmap="gray", interpolation="nearest")
        if labels is not None:
            label = int(labels[i])
            ax.set_title(classes[label] if classes else str(label), fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, show)


def filter_grid(weight: torch.Tensor, ncols: int | None = None, title: str = "first-layer filters",
                show: bool = True):
    """Each conv filter ``(out, in, kH, kW)`` as a small image, contrast-stretched on its own."""
    import matplotlib.pyplot as plt

    if weight.dim() != 4:
        raise ValueError(f"expected conv weights shaped (out, in, kH, kW); got {tuple(weight.shape)}")
    w = weight if weight.shape[1] in (1, 3) else weight[:, :1]
    rows, cols = _grid(len(w), ncols or (16 if len(w) >= 48 else None))
    fig, axes = plt.subplots(rows, cols, figsize=(0.6 * cols + 1, 0.6 * rows + 0.6), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(w):
            ax.imshow(_to_display(w[i]), cmap="gray", interpolation="nearest")
    fig.suptitle(f"{title} ({tuple(weight.shape[1:])} each)")
    return _finish(fig, show)


def feature_maps(activation: torch.Tensor, n: int = 16, ncols: int | None = None, title: str = "feature maps",
                 show: bool = True, channels: Sequence[int] | None = None):
    """The first ``n`` channels of one image's activation ``(C, H, W)`` (or ``(1, C, H, W)``).

    ``channels`` picks which ones instead (e.g. the most active), titled by their own numbers.
    """
    import matplotlib.pyplot as plt

    a = activation.detach().float().cpu()
    if a.dim() == 4:
        a = a[0]
    if a.dim() != 3:
        raise ValueError(f"expected an activation shaped (C, H, W); got {tuple(activation.shape)}")
    picked = list(range(a.shape[0]))[:n] if channels is None else [int(c) for c in channels][:n]
    if any(not 0 <= c < a.shape[0] for c in picked):
        raise ValueError(f"channels must be in 0..{a.shape[0] - 1}; got {picked}")
    n = len(picked)
    if n < 1:
        raise ValueError("no feature maps to show: the activation has no channels")
    rows, cols = _grid(n, ncols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(a[picked[i]].numpy(), cmap="viridis", interpolation="nearest")
            ax.set_title(f"ch {picked[i]}", fontsize=7)
    fig.suptitle(f"{title} ({a.shape[1]}x{a.shape[2]})")
    return _finish(fig, show)


METRIC_LABELS = {"train_loss": "training loss", "val_loss": "validation loss", "train_acc": "training accuracy",
                 "val_acc": "validation accuracy", "lr": "learning rate", "time_s": "seconds per epoch"}


def plot_curves(histories, metrics: Sequence[str] = ("loss", "acc"), title: str = "",
                show: bool = True):
    """Train (dashed) and validation (solid) curves per epoch for one run or a dict of runs."""
    import matplotlib.pyplot as plt

    single = not isinstance(histories, Mapping)
    if single:
        histories = {"": histories}
    labels = {"loss": "cross-entropy loss", "acc": "accuracy"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=True):
        for i, (name, hist) in enumerate(histories.items()):
            color = f"C{i}"
            epochs = hist["epoch"]
            prefix = f"{name}, " if name else ""
            ax.plot(epochs, hist[f"train_{metric}"], "--", color=color, label=f"{prefix}training")
            if hist.epochs and f"val_{metric}" in hist.epochs[0]:
                ax.plot(epochs, hist[f"val_{metric}"], "-o", color=color, ms=3, label=f"{prefix}validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(labels.get(metric, metric))
        integer_axis(ax)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title or "training curves")
    return _finish(fig, show)


def bar_chart(values: Mapping[str, float], title: str, ylabel: str, log: bool = False, show: bool = True):
    """One bar per named quantity, with each bar's share of the total printed on it.

    Bars whose names share a leading word (``conv1``, ``conv2``; ``fc6``) share a colour.
    """
    import re

    import matplotlib.pyplot as plt

    names, vals = list(values), [float(v) for v in values.values()]
    total = sum(vals) or 1.0
    family = [re.match(r"[^\d.]*", n).group() for n in names]
    first_seen = list(dict.fromkeys(family))
    colors = [f"C{first_seen.index(f) % 10}" for f in family]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.75 * len(names) + 2), 3.6))
    bars = ax.bar(names, vals, color=colors)
    for bar, v in zip(bars, vals, strict=True):
        ax.annotate(f"{100 * v / total:.0f}%", (bar.get_x() + bar.get_width() / 2, v),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.tick_params(axis="x", rotation=45)
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, show)


VERDICT_COLOURS = {"agrees": "#1a7f37", "disagrees": "#cf222e", "not measurable in this profile": "#6e7781",
                   "not distinguishable from noise": "#9a6700"}


def claims_html(frame) -> str:
    """A claims table that reads like a table: text left-aligned, cells in full, verdicts in colour."""
    from html import escape

    head = "".join(f'<th style="text-align:left">{escape(str(c))}</th>' for c in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for col, value in row.items():
            text = escape(str(value))
            if col == "verdict":
                colour = VERDICT_COLOURS.get(str(value), "inherit")
                text = f'<b style="color:{colour}">{text}</b>'
            cells.append(f'<td style="text-align:left; vertical-align:top; white-space:normal">{text}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="alexnet-claims"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def plot_comparison(frame, metrics: Sequence[str] = ("train_loss", "val_acc"), title: str = "",
                    show: bool = True):
    """One panel per metric, one line per variant over epochs: mean over seeds, band = their spread."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if frame.empty:
        raise ValueError("nothing to plot: the comparison has no finished epochs")
    several_seeds = frame["seed"].nunique() > 1
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=True):
        sns.lineplot(frame, x="epoch", y=metric, hue="variant", marker="o", ax=ax,
                     errorbar="sd" if several_seeds else None)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        epochs = sorted(frame["epoch"].unique())  # whole numbers: no tick at epoch 1.5
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            integer_axis(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title=None)
    seeds = frame["seed"].nunique()
    fig.suptitle(f"{title} ({seeds} seed{'s' if seeds > 1 else ''}"
                 f"{', band: ±1 sd' if several_seeds else ''})")
    return _finish(fig, show)


def plot_final(frame, metric: str = "val_acc", title: str = "", show: bool = True):
    """The last epoch's ``metric`` per variant: a bar for the mean over seeds, a dot for each seed."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if frame.empty:
        raise ValueError("nothing to plot: the comparison has no finished epochs")
    last = frame.loc[frame.groupby(["variant", "seed"])["epoch"].idxmax()]
    order = list(dict.fromkeys(frame["variant"]))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(order) + 2), 3.6))
    sns.barplot(last, x="variant", y=metric, order=order, errorbar=None, ax=ax, color="C0", alpha=0.6)
    sns.stripplot(last, x="variant", y=metric, order=order, ax=ax, color="k", size=5)
    for i, name in enumerate(order):
        mean = last.loc[last["variant"] == name, metric].mean()
        ax.annotate(f"{mean:.3f}", (i, mean), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 3), textcoords="offset points")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=20)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or f"final {metric}")
    return _finish(fig, show)


def plot_step_losses(losses: Mapping[str, Sequence[float]] | Sequence[float], title: str = "",
                     log: bool = True, smooth: int = 1, show: bool = True):
    """Training loss at every step, per run; ``smooth`` > 1 adds a moving average over that many steps."""
    import matplotlib.pyplot as plt

    if not isinstance(losses, Mapping):
        losses = {"training loss": losses}
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, (name, values) in enumerate(losses.items()):
        values = [float(v) for v in values]
        steps = range(1, len(values) + 1)
        if smooth > 1 and len(values) >= smooth:
            ax.plot(steps, values, color=f"C{i}", alpha=0.25, lw=0.8)
            kernel = torch.ones(smooth) / smooth
            avg = torch.nn.functional.conv1d(torch.tensor(values).view(1, 1, -1), kernel.view(1, 1, -1))
            ax.plot(range(smooth, len(values) + 1), avg.flatten().tolist(), color=f"C{i}", lw=1.8,
                    label=f"{name} (mean of {smooth} steps)")
        else:
            ax.plot(steps, values, color=f"C{i}", lw=1.8, label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy loss")
    integer_axis(ax)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or "training loss per step")
    return _finish(fig, show)


def plot_lr_schedules(names: Sequence[str] | None = None, lr: float = 0.1, total_steps: int = 1000,
                      warmup_steps: int = 50, show: bool = True):
    """Learning rate against training step for each named schedule, from torch's own schedulers.

    Named schedules all get ``warmup_steps`` of warm-up; the default overview of every
    schedule warms up only ``warmup_cosine``, so the others show their own shape.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name in names or SCHEDULES:
        warm = warmup_steps if names or name == "warmup_cosine" else 0
        ax.plot(lr_curve(name, lr, total_steps, warmup_steps=warm), label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("learning rate")
    integer_axis(ax)
    ax.set_title(f"learning-rate schedules over {total_steps} steps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, show)


def _png(fig) -> bytes:
    """A figure as PNG bytes for an ipywidgets.Image: redraws work in any kernel, no output capture needed."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def lr_schedule_explorer(total_steps: int = 1000):
    """Controls for schedule, starting rate and warm-up; the curve redraws as they move."""
    import ipywidgets as w

    name = w.Dropdown(options=SCHEDULES, value="warmup_cosine", description="schedule")
    lr = w.FloatLogSlider(value=0.1, base=10, min=-4, max=0, step=0.1, description="start lr")
    warmup = w.IntSlider(value=total_steps // 20, min=0, max=total_steps // 2, description="warm-up")
    picture = w.Image(format="png")

    def redraw(_=None):
        fig = plot_lr_schedules([name.value], lr.value, total_steps, warmup.value, show=False)
        picture.value = _png(fig)

    for control in (name, lr, warmup):
        control.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([name, lr, warmup]), picture])


def feature_browser(model: torch.nn.Module, data, n: int = 16):
    """Pick an image of ``data`` (an ImageSet) and a conv layer; see that layer's first ``n`` feature maps."""
    import ipywidgets as w

    modules = dict(model.named_modules())
    convs = {short: modules[full] for full, short in paper_names(model).items() if short.startswith("conv")}
    if not convs:
        raise ValueError("the model has no Conv2d layers to browse")
    layer = w.Dropdown(options=list(convs), description="layer")
    index = w.IntSlider(value=0, min=0, max=len(data) - 1, description="image")
    # width set, height free: a widget Image stretched to its box turns a photo into a sliver
    image = w.Image(format="png", layout=w.Layout(width="240px", height="auto", object_fit="contain"))
    maps = w.Image(format="png", layout=w.Layout(width="auto", height="auto", object_fit="contain"))
    device = next(model.parameters()).device

    def activation(i: int, name: str) -> torch.Tensor:
        captured = {}
        hook = convs[name].register_forward_hook(lambda m, inp, out: captured.setdefault("a", out.detach()))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(data.normalise(data.images[i:i + 1]).to(device))
        finally:
            hook.remove()
            model.train(was_training)
        return captured["a"][0].cpu()

    def redraw(_=None):
        i = index.value
        image.value = _png(show_images(data.images[i:i + 1], n=1, show=False,
                                       title=f"image {i} ({data.classes[int(data.labels[i])]})"))
        maps.value = _png(feature_maps(activation(i, layer.value), n=n, show=False,
                                       title=f"{layer.value} feature maps"))

    for control in (layer, index):
        control.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([layer, index]), w.HBox([image, maps])])
