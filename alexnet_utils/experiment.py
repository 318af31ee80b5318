"""A comparison under one budget: variants that share seed, data, epochs and recipe by construction.

Each notebook from 02 on asks one question of the form "what does X change?".
``compare`` answers it in one call: every variant trains on the same data
with the same seeds, epochs and batch size (a variant may not change them),
each finished run is cached per profile so a restarted kernel reloads it,
and the result is a tidy table with one row per variant, seed and epoch.
"""

from __future__ import annotations

__all__ = [
    "BUDGET", "Variant", "Comparison", "Chance", "Paired", "chance_band", "compare", "differences",
]

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace

import torch
from torch import nn

from .checkpoints import code_key
from .data import ImageSet, load, make_loaders
from .models import AlexNet, AlexNetConfig
from .profiles import RunProfile, run_profile
from .runtime import default_device, notebook_dir, seed_everything
from .train import History, TrainConfig, fit
from .viz import Table, plot_comparison, plot_final

BUDGET = ("epochs", "batch_size", "seed")  # what no variant may change


@dataclass(frozen=True)
class Variant:
    """One arm of a comparison: a model and, when it differs from the base, its training config."""

    model: AlexNetConfig | Callable[[], nn.Module]
    train: TrainConfig | None = None


def differences(a, b) -> dict[str, tuple]:
    """``{field: (a's value, b's value)}`` for every field two configs of one type disagree on."""
    if type(a) is not type(b) or not is_dataclass(a):
        raise TypeError(f"compare two configs of the same dataclass type; got {type(a).__name__} "
                        f"and {type(b).__name__}")
    return {f.name: (getattr(a, f.name), getattr(b, f.name)) for f in fields(a)
            if getattr(a, f.name) != getattr(b, f.name)}


def _as_variant(value) -> Variant:
    if isinstance(value, Variant):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        return Variant(*value)
    if isinstance(value, AlexNetConfig) or callable(value):
        return Variant(value)
    raise TypeError(f"a variant is a Variant, an AlexNetConfig, a model-building function or a "
                    f"(model, TrainConfig) pair; got {type(value).__name__}")


@dataclass
class Comparison:
    """What ``compare`` measured: histories and models per (variant, seed), and tables of them."""

    name: str
    data: str
    train: TrainConfig
    variants: dict[str, Variant]
    seeds: tuple[int, ...]
    baseline: str
    histories: dict[tuple[str, int], History] = field(default_factory=dict)
    models: dict[tuple[str, int], nn.Module] = field(default_factory=dict)
    val_size: int | None = None  # validation images per seed, for the chance band
    num_classes: int | None = None

    def config(self, variant: str) -> TrainConfig:
        """The training config ``variant`` really ran with (budget from the base)."""
        own = self.variants[variant].train
        return self.train if own is None else replace(own, **{k: getattr(self.train, k) for k in BUDGET})

    def changes(self) -> dict[str, list[str]]:
        """For each variant, the model and training fields it changes relative to the baseline."""
        base = self.variants[self.baseline]
        out = {}
        for name, v in self.variants.items():
            changed = [f"train.{k}" for k in differences(self.config(self.baseline), self.config(name))]
            if isinstance(v.model, AlexNetConfig) and isinstance(base.model, AlexNetConfig):
                changed = [f"model.{k}" for k in differences(base.model, v.model)] + changed
            elif v.model is not base.model:
                changed = ["model"] + changed
            out[name] = changed
        return out

    @property
    def frame(self):
        """One row per variant, seed and epoch: the tidy table seaborn plots from."""
        import pandas as pd

        rows = [{"variant": v, "seed": s, **row} for (v, s), h in self.histories.items() for row in h.epochs]
        return pd.DataFrame(rows)

    def steps(self):
        """One row per variant, seed and training step: the loss and whatever ``step_metrics`` recorded."""
        import pandas as pd

        rows = []
        for (v, s), h in self.histories.items():
            records = h.step_records or [{}] * len(h.steps)
            rows += [{"variant": v, "seed": s, "step": i + 1, "loss": loss, **rec}
                     for i, (loss, rec) in enumerate(zip(h.steps, records, strict=False))]
        return pd.DataFrame(rows)

    def final(self, column: str = "val_acc") -> dict[str, list[float]]:
        """The last epoch's ``column`` of every seed, per variant."""
        return {v: [self.histories[v, s].final(column) for s in self.seeds] for v in self.variants}

    def summary(self, target: float | None = None):
        """One row per variant: final accuracies (mean over seeds), their spread, the gap, the time.

        ``val_acc_sd`` is the standard deviation across seeds (NaN with one seed);
        ``vs_baseline`` is the difference in mean validation accuracy. With ``target``,
        also the epochs and seconds each variant needed to reach that validation accuracy.
        """
        import pandas as pd

        rows = []
        base = _mean(self.final()[self.baseline])
        for v in self.variants:
            hs = [self.histories[v, s] for s in self.seeds]
            val = [h.final("val_acc") for h in hs]
            train = [h.final("train_acc") for h in hs]
            row = {"variant": v, "train_acc": _mean(train), "val_acc": _mean(val), "val_acc_sd": _sd(val),
                   "gap": _mean(train) - _mean(val), "vs_baseline": _mean(val) - base,
                   "time_s": _mean([sum(h["time_s"]) for h in hs])}
            if target is not None:
                reached = [_to_target(h, target) for h in hs]
                row["epochs_to_target"] = _mean([r[0] for r in reached])
                row["seconds_to_target"] = _mean([r[1] for r in reached])
            rows.append(row)
        return Table(pd.DataFrame(rows).set_index("variant"))

    def chance(self, level: float | None = None, column: str = "val_acc") -> Chance:
        """Which variants end at chance: within three standard errors of ``level`` (1 / classes by default).

        A run where every variant is at chance cannot rank anything: its numbers only show that
        the code runs. The band is the binomial standard error on the validation set's size.
        """
        if level is None:
            if not self.num_classes:
                raise ValueError("pass level=: this comparison does not know its number of classes")
            level = 1 / self.num_classes
        if not self.val_size:
            raise ValueError("this comparison does not know its validation set's size")
        band = chance_band(level, self.val_size)
        means = {v: _mean(vals) for v, vals in self.final(column).items()}
        return Chance(level, band, self.val_size, [v for v, m in means.items() if abs(m - level) <= band],
                      list(self.variants))

    def paired(self, a: str, b: str, column: str = "val_acc") -> Paired:
        """``a`` minus ``b`` seed by seed (same seed: same data, order and start), with its spread."""
        finals = self.final(column)
        for name in (a, b):
            if name not in finals:
                raise ValueError(f"{name!r} is not one of the variants: {', '.join(finals)}")
        diffs = [x - y for x, y in zip(finals[a], finals[b], strict=True)]
        return Paired(a, b, column, diffs)

    def plot(self, metrics: Sequence[str] = ("train_loss", "val_acc"), title: str = "", show: bool = True):
        """Curves per variant (mean over seeds, a band for their spread)."""
        return plot_comparison(self.frame, metrics, title or f"{self.name} on {self.data}", show=show)

    def plot_final(self, metric: str = "val_acc", title: str = "", show: bool = True):
        """Final ``metric`` per variant as bars, one dot per seed."""
        return plot_final(self.frame, metric, title or f"{self.name}: final {metric}", show=show)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()


def chance_band(level: float, n: int) -> float:
    """How far pure guessing strays from ``level`` on ``n`` images: three binomial standard errors.

    The course's one rule for "at chance" (``Comparison.chance`` and notebooks that train outside
    ``compare`` use it alike).
    """
    if not 0 < level < 1 or n < 1:
        raise ValueError(f"need 0 < level < 1 and n >= 1; got level={level}, n={n}")
    return 3 * math.sqrt(level * (1 - level) / n)


@dataclass(frozen=True)
class Chance:
    """Where chance lies for a comparison, and which of its variants ended there."""

    level: float
    band: float
    val_size: int
    at_chance: list[str]
    variants: list[str]

    @property
    def all(self) -> bool:
        """Every variant at chance: nothing can be ranked."""
        return len(self.at_chance) == len(self.variants)

    def __str__(self) -> str:
        head = (f"chance level: {self.level:.0%} ± {self.band:.1%} (three standard errors on "
                f"{self.val_size:,} validation images)")
        if self.all:
            return head + ("\nevery variant is at chance: this run cannot rank anything; its numbers only show "
                           "that the code runs")
        if self.at_chance:
            return head + f"\nat chance: {', '.join(self.at_chance)}; the others learned something"
        return head + "\nevery variant learned something"

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


@dataclass(frozen=True)
class Paired:
    """The seed-by-seed difference of two variants: what the same start and data make comparable."""

    a: str
    b: str
    column: str
    diffs: list[float]

    @property
    def mean(self) -> float:
        return _mean(self.diffs)

    @property
    def sd(self) -> float:
        """Sample standard deviation of the paired differences (NaN with one seed)."""
        return _sd(self.diffs)

    @property
    def se(self) -> float:
        return self.sd / math.sqrt(len(self.diffs)) if len(self.diffs) > 1 else math.nan

    @property
    def distinguishable(self) -> bool:
        """More than two standard errors from zero (never with one seed)."""
        return len(self.diffs) > 1 and abs(self.mean) > 2 * self.se

    def __str__(self) -> str:
        n = len(self.diffs)
        if n < 2:
            return f"{self.a} - {self.b}: {self.mean:+.3f} on one seed (no spread: not distinguishable from noise)"
        verdict = (f"{self.a if self.mean > 0 else self.b} is ahead beyond two standard errors" if self.distinguishable
                   else "within two standard errors of zero: not distinguishable from noise")
        return (f"{self.a} - {self.b}: {self.mean:+.3f} on average over {n} seeds (sd {self.sd:.3f}, standard "
                f"error {self.se:.3f}); {verdict}")

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _sd(values: Sequence[float]) -> float:
    if len(values) < 2:
        return math.nan
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _to_target(history: History, target: float, column: str = "val_acc") -> tuple[float, float]:
    """(epochs, seconds) until ``column`` first reached ``target``; NaN if it never did."""
    seconds = 0.0
    for row in history.epochs:
        seconds += row["time_s"]
        if row.get(column, -math.inf) >= target:
            return row["epoch"], seconds
    return math.nan, math.nan


def compare(name: str, variants: Mapping[str, Variant | AlexNetConfig | Callable | tuple], *,
            data: str | tuple | Callable = "cifar10", train: TrainConfig = TrainConfig(),
            seeds: Sequence[int] | int | None = None,
            baseline: str | None = None, step_metrics: Callable[[nn.Module], dict] | None = None,
            device=None, run: RunProfile | None = None, progress: bool = True) -> Comparison:
    """Train every variant on ``data`` under one budget and return the Comparison.

    Args:
        name: the experiment's name; runs cache under ``<notebook>/<name>/`` per profile.
        variants: name -> ``Variant(model, train)``, an ``AlexNetConfig``, a function that
            builds a model, or a ``(model, TrainConfig)`` pair. A variant's own TrainConfig may
            change the recipe (optimizer, lr, schedule, augment, ...) but not the budget
            (epochs, batch_size, seed): those come from ``train`` and the profile.
        data: a dataset name for ``au.load`` (its offline stand-in in the smoke profile), or
            your own ``(train, val)`` pair of ``ImageSet``s (a class subset, a label budget), or
            a function ``seed -> (train, val)`` (a different draw per seed). Your own sets are
            part of the cache key by content: changed images retrain, the same ones reload.
        train: the base recipe; ``epochs``/``batch_size`` left at ``None`` come from the profile.
        seeds: the seeds every variant runs with (an int n means 0..n-1); default: the
            profile's number of seeds. A seed fixes the initial weights, the batch order,
            the augmentation and, where the profile caps the samples, the data subset; the
            spread across seeds is what tells real differences from noise.
        baseline: the variant the others are compared with (default: the first).
        step_metrics: passed to ``fit``: ``fn(model) -> dict`` read after each backward pass.
    """
    from tqdm.auto import tqdm

    run = run or run_profile()
    if not variants:
        raise ValueError("compare() needs at least one variant")
    variants = {k: _as_variant(v) for k, v in variants.items()}
    baseline = baseline or next(iter(variants))
    if baseline not in variants:
        raise ValueError(f"baseline {baseline!r} is not one of the variants: {', '.join(variants)}")
    base = train.sized(run)
    for vname, v in variants.items():
        if v.train is None:
            continue
        changed = [k for k in ("epochs", "batch_size") if getattr(v.train, k) not in (None, getattr(base, k))]
        changed += ["seed"] if v.train.seed != train.seed else []
        if changed:
            raise ValueError(f"variant {vname!r} changes the budget ({', '.join(changed)}): every variant "
                             f"trains with the same {', '.join(BUDGET)}; set them on train= instead")
    if seeds is None:
        seeds = run.seeds
    seeds = tuple(range(seeds)) if isinstance(seeds, int) else tuple(seeds)
    device = torch.device(device) if device else default_device()
    result = Comparison(name, data, base, variants, seeds, baseline)
    folder = notebook_dir(run=run) / name
    jobs = [(v, s) for s in seeds for v in variants]
    outer = tqdm(jobs, desc=name, unit="run", disable=not progress or len(jobs) < 2)
    sets: dict[int, tuple] = {}
    data_keys: dict[int, str] = {}
    for vname, seed in outer:
        outer.set_postfix(variant=vname, seed=seed)
        if seed not in sets:
            sets[seed] = _datasets(data, run, seed, announce=not sets)
            data_keys[seed] = _data_key(data, sets[seed])
            result.data = data if isinstance(data, str) else sets[seed][0].name
            result.val_size, result.num_classes = len(sets[seed][1]), len(sets[seed][1].classes)
        config = replace(result.config(vname), seed=seed)
        seed_everything(seed)
        model = _build(variants[vname].model)
        key = hashlib.sha256("\n".join([
            run.name, data_keys[seed], repr(config), _model_key(variants[vname].model, model),
            code_key(step_metrics) if step_metrics else "",
        ]).encode()).hexdigest()[:12]
        path = folder / f"{vname}-seed{seed}-{key}.pt"
        for stale in folder.glob(f"{vname}-seed{seed}-*.pt"):  # an earlier version of this variant
            if stale != path:
                stale.unlink(missing_ok=True)
        train_loader, val_loader = make_loaders(*sets[seed], config.batch_size, config.augment, seed=seed,
                                                device=device)
        result.histories[vname, seed] = fit(model, train_loader, val_loader, config=config, device=device,
                                            checkpoint=path, step_metrics=step_metrics, progress=progress,
                                            desc=f"{vname} (seed {seed})")
        result.models[vname, seed] = model.eval()
    return result


def _datasets(data, run: RunProfile, seed: int, announce: bool) -> tuple:
    """``(train, val)`` ImageSets for one seed, from a dataset name, a pair, or a function of the seed."""
    if isinstance(data, str):
        return load(data, "train", run, seed=seed, announce=announce), load(data, "test", run, seed=seed,
                                                                             announce=False)
    pair = data(seed) if callable(data) else data
    if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(d, ImageSet) for d in pair)):
        raise TypeError(f"data must be a dataset name, a (train, val) pair of ImageSets or a function "
                        f"seed -> (train, val); got {type(pair).__name__}")
    return pair


def _data_key(data, pair: tuple) -> str:
    """A dataset name is its own key; ImageSets are keyed by their content (a hash of images and labels)."""
    if isinstance(data, str):
        return data
    digest = hashlib.sha256()
    for d in pair:
        digest.update(repr((d.name, d.classes, d.mean, d.std, tuple(d.images.shape))).encode())
        digest.update(d.images.contiguous().numpy().tobytes())
        digest.update(d.labels.numpy().tobytes())
    return digest.hexdigest()


def _build(model: AlexNetConfig | Callable[[], nn.Module]) -> nn.Module:
    built = AlexNet(model) if isinstance(model, AlexNetConfig) else model()
    if not isinstance(built, nn.Module):
        raise TypeError(f"a variant's model function must return an nn.Module; got {type(built).__name__}")
    return built


def _model_key(spec, model: nn.Module) -> str:
    """A config is its own key; for a function, its source and the network it built."""
    return repr(spec) if isinstance(spec, AlexNetConfig) else f"{code_key(spec)}\n{model!r}"
