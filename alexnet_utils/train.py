"""One training loop for the whole course: history, progress bars, mixed precision, resume."""

from __future__ import annotations

__all__ = [
    "PRECISIONS", "OPTIMIZERS", "SCHEDULES", "History", "TrainConfig", "default_device", "autocast_dtype",
    "evaluate", "fit", "run_path", "schedule", "lr_curve",
]

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import checkpoints
from .data import AUGMENT_PRESETS
from .measure import count_flops
from .profiles import run_profile
from .runtime import PRECISIONS, autocast, autocast_dtype, default_device, run_path


@dataclass
class History:
    """What ``fit`` measured: one row per epoch, plus the loss of every step."""

    epochs: list[dict] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    step_records: list[dict] = field(default_factory=list)  # what fit's step_metrics returned, per step

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, column: str) -> list:
        return [row[column] for row in self.epochs]

    def frame(self):
        """The per-epoch table as a pandas DataFrame indexed by epoch."""
        import pandas as pd

        return pd.DataFrame(self.epochs).set_index("epoch") if self.epochs else pd.DataFrame()

    def _repr_html_(self) -> str:
        return self.frame().to_html(float_format=lambda v: f"{v:.4g}")

    def __repr__(self) -> str:
        return f"History({len(self)} epochs)\n{self.frame().to_string()}" if self.epochs else "History(empty)"

    def final(self, column: str = "val_acc"):
        """The last epoch's value of ``column`` (``None`` before the first epoch)."""
        return self.epochs[-1][column] if self.epochs else None

    def best(self, column: str = "val_acc"):
        """The highest value ``column`` reached (``None`` before the first epoch)."""
        return max(self[column]) if self.epochs else None


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def evaluate(model: nn.Module, loader, device=None, precision: str = "fp32",
             loss_fn: nn.Module | None = None) -> dict:
    """Mean loss and accuracy over ``loader`` in eval mode (dropout off, BN frozen)."""
    device = torch.device(device) if device else next(model.parameters()).device
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    dtype = autocast_dtype(precision, device)
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    with torch.inference_mode(), autocast(device, dtype):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            total_loss += loss_fn(out.float(), y) * len(y)
            correct += (out.argmax(1) == y).sum()
            n += len(y)
    model.train(was_training)
    if n == 0:
        raise ValueError("evaluate() got an empty loader: check the dataset size and batch_size")
    return {"loss": total_loss.item() / n, "acc": correct.item() / n}


OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained: every field a fair comparison holds fixed or changes on purpose.

    The defaults are the 2012 paper's recipe (Section 5): SGD with momentum 0.9,
    learning rate 0.01, weight decay 5e-4, random crops and flips. ``epochs`` and
    ``batch_size`` left at ``None`` come from the run profile.

    ``augment`` and ``batch_size`` are the data recipe: the loaders apply them, so only
    ``au.compare`` (which builds the loaders) reads them; left at ``None`` they mean the
    profile's batch size and the paper's crops and flips there. ``fit`` checks a value
    that is set against its loaders and refuses one they do not follow.
    """

    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    augment: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    seed: int = 0
    precision: str = "auto"
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    lr_scale: tuple[tuple[str, float], ...] = ()  # (parameter-name prefix, factor): e.g. (("features", 0.1),)

    def __post_init__(self):
        for field_name, value, valid in (("optimizer", self.optimizer, OPTIMIZERS),
                                         ("schedule", self.schedule, SCHEDULES),
                                         ("augment", self.augment, AUGMENT_PRESETS),
                                         ("precision", self.precision, PRECISIONS)):
            if value not in valid and not (field_name == "augment" and value is None):
                raise ValueError(f"unknown {field_name} {value!r}; choose one of {', '.join(valid)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError(f"need lr > 0, weight_decay >= 0 and warmup_epochs >= 0; got lr={self.lr}, "
                             f"weight_decay={self.weight_decay}, warmup_epochs={self.warmup_epochs}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for the run profile's); got {value}")

    def sized(self, run=None) -> TrainConfig:
        """This config with ``epochs`` and ``batch_size`` from the run profile, ``augment`` the paper's if unset."""
        from dataclasses import replace

        run = run or run_profile()
        return replace(self, epochs=self.epochs or run.epochs, batch_size=self.batch_size or run.batch_size,
                       augment=self.augment or "crop_flip")

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer over the trainable parameters only, one group per ``lr_scale`` factor."""
        groups: dict[float, list] = {}
        for name, param in model.named_parameters():
            if param.requires_grad:
                scale = next((f for prefix, f in self.lr_scale if name.startswith(prefix)), 1.0)
                groups.setdefault(scale, []).append(param)
        if not groups:
            raise ValueError("the model has no trainable parameters (every requires_grad is False)")
        param_groups = [{"params": ps, "lr": self.lr * s, "lr_scale": s} for s, ps in groups.items()]
        if self.optimizer == "sgd":
            return torch.optim.SGD(param_groups, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        kind = torch.optim.Adam if self.optimizer == "adam" else torch.optim.AdamW
        # the fused kernel: same update, about 4x faster on a CPU for AlexNet's 61M parameters
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for ps in groups.values() for p in ps)
        return kind(param_groups, lr=self.lr, weight_decay=self.weight_decay, fused=fused or None)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int | None = None):
        """The learning-rate schedule, stepped once per training step."""
        total = steps_per_epoch * (epochs or self.epochs or run_profile().epochs)
        warmup = min(total - 1, round(self.warmup_epochs * steps_per_epoch))
        return schedule(self.schedule, optimizer, total, warmup_steps=warmup)


@dataclass
class _Plan:
    """What ``fit`` resolved from its arguments before touching the model: one place to read it."""

    epochs: int
    precision: str
    grad_clip: float | None
    loss_fn: nn.Module
    interval: str
    recipe: str


def _check_data_fields(config: TrainConfig, train) -> None:
    """Refuse the data recipe's fields in a config ``fit`` would not apply: the loaders own them.

    A field left at ``None`` is the loaders' business; one that is set must be what the loaders
    say they do (a loader that does not say, like a plain DataLoader's augmentation, fails too).
    """
    for name in ("batch_size", "augment"):
        wanted, got = getattr(config, name), getattr(train, name, None)
        if wanted is not None and wanted != got:
            have = f"these loaders use {got!r}" if got is not None else "these loaders do not say theirs"
            raise ValueError(
                f"TrainConfig.{name}={wanted!r} is part of the data recipe, which the loaders apply, not fit "
                f"({have}). Build the loaders with it (au.loaders(..., {name}={wanted!r}) or "
                f"au.data.make_loaders), or let au.compare build them; in a config passed to fit, leave "
                f"{name} unset (None).")


def _plan(config: TrainConfig | None, optimizer, train, *, epochs, precision, grad_clip, loss_fn,
          scheduler_interval) -> _Plan:
    if config is not None and optimizer is not None:
        raise ValueError("pass config= or optimizer=, not both: the config builds its own optimizer")
    if config is None and optimizer is None:
        raise TypeError("fit() needs an optimizer: pass config=au.TrainConfig(...) (the paper's SGD recipe "
                        "by default) or optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step'; got {scheduler_interval!r}")
    if len(train) == 0:
        raise ValueError("the training loader yields no batches: the batch size is larger than the "
                         "dataset with drop_last=True, or the dataset is empty")
    if config is not None:
        _check_data_fields(config, train)
        grad_clip = grad_clip if grad_clip is not None else config.grad_clip
        if loss_fn is None and config.label_smoothing:
            loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        scheduler_interval = "step"
    epochs = epochs or (config.epochs if config else None) or run_profile().epochs
    return _Plan(epochs=epochs, precision=precision or (config.precision if config else "auto"),
                 grad_clip=grad_clip, loss_fn=loss_fn or nn.CrossEntropyLoss(), interval=scheduler_interval,
                 recipe=repr(config) if config is not None else "own optimizer")


def fit(model: nn.Module, train, val=None, *, config: TrainConfig | None = None, optimizer=None, scheduler=None,
        epochs: int | None = None, device=None, checkpoint: str | os.PathLike | None = None,
        checkpoint_every: float = 60.0,
        loss_fn: nn.Module | None = None, precision: str | None = None, channels_last: bool | None = None,
        compile: bool = False, scheduler_interval: str = "epoch", grad_clip: float | None = None,
        step_metrics=None, progress: bool = True, desc: str = "training") -> History:
    """Train ``model`` and return its History (one row per epoch, every step's loss).

    Args:
        model: the network; moved to ``device`` (channels-last when it has convolutions).
        train, val: iterables of ``(images, labels)`` batches, e.g. ``au.loaders(...)``. The
            loaders own the data recipe (batch size, augmentation): a config that names
            another one is refused rather than silently ignored.
        config: a TrainConfig; builds the optimizer, a per-step schedule, precision,
            gradient clipping and label smoothing. Give either ``config`` or ``optimizer``:
            ``fit`` has no optimizer of its own that a result could silently depend on.
        optimizer, scheduler: your own, instead of ``config``; the scheduler steps once
            per epoch, or per step with ``scheduler_interval="step"``; a ``ReduceLROnPlateau``
            steps per epoch on the validation loss.
        epochs: overrides ``config.epochs``; by default the run profile's.
        checkpoint: a path (``au.run_path(...)``); saved atomically after the last epoch and
            after any epoch that ends ``checkpoint_every`` seconds or more after the previous
            save, so a dead kernel loses at most an epoch or a minute of training; a later
            call resumes, and a finished run is returned from the file without training again
            (a finished file keeps the weights, not the optimiser: asked for more epochs, it
            trains afresh).
            The file records what made the run (recipe, precision, data, and the model's
            behaviour at the start); when any of it changed, the run trains afresh
            and the old file is kept as ``<name>.previous.pt``. ``checkpoint_every=0``: every epoch.
        precision: ``"auto"`` (AMP on CUDA; on a CPU bf16 autocast for networks big enough to
            gain from it, see ``au.runtime.autocast_dtype``), ``"fp32"``, ``"bf16"`` or
            ``"fp16"``; default ``config.precision`` or ``"auto"``.
        step_metrics: ``fn(model) -> dict`` called after each backward pass, before the
            update (gradients are in place); its rows land in ``history.step_records``.
        grad_clip: clip the global gradient norm to this value.
        progress: one progress bar over all steps (a widget in Jupyter).
    """
    plan = _plan(config, optimizer, train, epochs=epochs, precision=precision, grad_clip=grad_clip,
                 loss_fn=loss_fn, scheduler_interval=scheduler_interval)
    device = torch.device(device) if device else default_device()
    model.to(device)
    if channels_last is None:
        channels_last = _has_conv(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if config is not None:
        torch.manual_seed(config.seed)
        optimizer = config.make_optimizer(model)
        scheduler = config.make_scheduler(optimizer, len(train), plan.epochs)
    precision_by_size = plan.precision == "auto" and device.type == "cpu"
    probe = checkpoints.probe_batch(train, val) if precision_by_size or checkpoint is not None else None
    dtype = autocast_dtype(plan.precision, device,
                           mflops=_forward_mflops(model, probe[0].shape[1:]) if precision_by_size else None)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    run = _Run(model, optimizer, scheduler, scaler, train, checkpoint and Path(checkpoint), checkpoint_every)
    history = run.start(val, probe, plan, desc, extra=f"\nstep_metrics: {checkpoints.code_key(step_metrics)}\n"
                                              f"grad_clip: {plan.grad_clip}\nchannels_last: {channels_last}")
    step = _Step(torch.compile(model) if compile else model, optimizer,
                 scheduler if plan.interval == "step" else None, scaler, plan.loss_fn, device, dtype,
                 channels_last, plan.grad_clip, step_metrics)
    from tqdm.auto import tqdm

    bar = tqdm(total=plan.epochs * len(train), initial=len(history) * len(train), desc=desc, unit="step",
               disable=not progress)
    try:
        for epoch in range(len(history), plan.epochs):
            row, losses, records = _train_epoch(step, train, val, epoch, plan, bar, device)
            if scheduler is not None and plan.interval == "epoch":
                _step_per_epoch(scheduler, row)
            history.epochs.append(row)
            history.steps.extend(losses)
            history.step_records.extend(records)
            bar.set_postfix_str(_short_postfix(row), refresh=False)
            run.after_epoch(history, last=epoch + 1 == plan.epochs)
    finally:
        bar.close()
    return history


def _step_per_epoch(scheduler, row: dict) -> None:
    """Step an epoch scheduler; ``ReduceLROnPlateau`` (the 2012 rule: divide when validation stalls) reads the
    epoch's validation loss (the training loss without a validation set)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(row.get("val_loss", row["train_loss"]))
    else:
        scheduler.step()


def _short_postfix(row: dict) -> str:
    """What a finished epoch leaves on the bar: short enough that the bar keeps its width."""
    shown = f"loss {row['train_loss']:.3f}"
    if "val_acc" in row:
        shown += f", val acc {row['val_acc']:.3f}"
    return shown


def _train_epoch(step, train, val, epoch: int, plan: _Plan, bar, device) -> tuple[dict, list, list]:
    """One epoch of steps and its validation: the History row, every step's loss, the step records."""
    step.model.train()
    t0 = time.perf_counter()
    lr = step.optimizer.param_groups[0]["lr"]
    losses, train_acc, records = step.epoch(train, bar, f"{epoch + 1}/{plan.epochs}")
    train_loss = sum(losses) / len(losses)
    if not math.isfinite(train_loss):
        raise FloatingPointError(
            f"the training loss became {train_loss} in epoch {epoch + 1}: the learning rate "
            f"({lr:g}) is probably too high for this model (lower it, add warm-up or "
            f"normalisation, or clip gradients with grad_clip=1.0)")
    row = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc}
    if val is not None:  # validated in the precision training used
        used = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(step.dtype, "fp32")
        metrics = evaluate(step.model, val, device, used, plan.loss_fn)
        row.update(val_loss=metrics["loss"], val_acc=metrics["acc"])
    row.update(lr=lr, time_s=time.perf_counter() - t0)
    return row, losses, records


_MFLOPS: dict[tuple, float | None] = {}


def _forward_mflops(model: nn.Module, image_shape) -> float | None:
    """Forward MFLOPs per image of ``model`` on images of ``image_shape`` (for the CPU precision choice).

    Counted once per architecture and image shape in a process.
    """
    key = (type(model).__qualname__, repr(model), tuple(image_shape))
    if key not in _MFLOPS:
        try:
            twin = copy.deepcopy(model).eval()
            with torch.no_grad():
                _MFLOPS[key] = count_flops(twin, (1, *image_shape)) / 1e6
        except Exception:  # a model the counter cannot run on random input: no opinion
            _MFLOPS[key] = None
    return _MFLOPS[key]


@dataclass
class _Run:
    """The checkpoint hooks of one ``fit``: resume or start afresh, then save as epochs finish."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    scaler: torch.amp.GradScaler
    train: object
    path: Path | None
    every: float
    record: dict | None = None
    last_save: float = 0.0

    def start(self, val, probe, plan: _Plan, desc: str, extra: str) -> History:
        self.last_save = time.perf_counter()
        if self.path is None:
            return History()
        self.record = checkpoints.run_record(self.model, self.train, val, probe, recipe=plan.recipe,
                                             precision=plan.precision, loss_fn=plan.loss_fn,
                                             optimizer=self.optimizer, scheduler=self.scheduler,
                                             interval=plan.interval, extra=extra)
        state = checkpoints.load(self.path)
        if state is None:
            return History()
        changed = checkpoints.record_differences(state.get("record"), self.record)
        if changed:
            old = checkpoints.set_aside(self.path)
            print(f"{desc}: {self.path.name} was made by another run ({'; '.join(changed)} changed): "
                  f"training afresh, the old run kept as {old.name}")
            return History()
        if state.get("finished") and len(state["history"]["epochs"]) < plan.epochs:
            old = checkpoints.set_aside(self.path)
            print(f"{desc}: {self.path.name} finished after {len(state['history']['epochs'])} epochs and kept "
                  f"only its weights, not the optimiser state to go on from: training all {plan.epochs} epochs "
                  f"afresh, the old run kept as {old.name}")
            return History()
        history = History(**checkpoints.resume(state, self.path, model=self.model, optimizer=self.optimizer,
                                               scheduler=self.scheduler, scaler=self.scaler, train=self.train))
        done = "finished run loaded" if len(history) >= plan.epochs else f"resumed after epoch {len(history)}"
        print(f"{desc}: {done} from {self.path}")
        return history

    def after_epoch(self, history: History, last: bool) -> None:
        if self.path is None or not (last or time.perf_counter() - self.last_save >= self.every):
            return
        checkpoints.save(self.path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                         scaler=self.scaler, history=history, train=self.train, record=self.record, finished=last)
        self.last_save = time.perf_counter()


@dataclass
class _Step:
    """One optimisation step, and one epoch of them, with everything ``fit`` decided."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None  # stepped every batch; None when it steps per epoch
    scaler: torch.amp.GradScaler
    loss_fn: nn.Module
    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool
    grad_clip: float | None
    step_metrics: object | None = None  # fn(model) -> dict, read between backward and update
    records: list = field(default_factory=list)

    def epoch(self, train, bar, label: str) -> tuple[list[float], float, list[dict]]:
        """Per-step losses, the accuracy on the training batches and the step records of one epoch."""
        losses, correct, seen = [], torch.zeros((), device=self.device, dtype=torch.long), 0
        self.records = []
        for i, (x, y) in enumerate(train):
            loss, out, y = self(x, y)
            losses.append(loss.detach())
            correct += (out.argmax(1) == y).sum()
            seen += len(y)
            bar.update(1)
            if i % 25 == 0:
                bar.set_postfix_str(f"epoch {label}, loss {loss.item():.3f}", refresh=False)
        return torch.stack(losses).float().cpu().tolist(), correct.item() / seen, self.records

    def __call__(self, x, y):
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            out = self.model(x)
            loss = self.loss_fn(out.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None or self.step_metrics is not None:
            self.scaler.unscale_(self.optimizer)
        if self.step_metrics is not None:
            self.records.append(dict(self.step_metrics(self.model)))
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss, out, y


SCHEDULES = ("constant", "step", "exponential", "cosine", "warmup_cosine")


def schedule(name: str, optimizer: torch.optim.Optimizer, total_steps: int, *, warmup_steps: int = 0,
             step_size: int | None = None, gamma: float = 0.1, final_fraction: float = 0.01):
    """A torch.optim.lr_scheduler for one of the course's schedules, stepped once per step.

    ``step`` divides the rate by 10 (``gamma``) every ``step_size`` steps (default a third of
    the run), as AlexNet's authors did by hand; ``exponential`` reaches ``final_fraction`` of
    the start at the end. With ``warmup_steps`` the rate first ramps up linearly and the
    schedule runs over the remaining steps; ``warmup_cosine`` always warms up (5% of the run
    unless told otherwise).
    """
    from torch.optim import lr_scheduler as sched

    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need total_steps >= 1 and 0 <= warmup_steps < total_steps; "
                         f"got total_steps={total_steps}, warmup_steps={warmup_steps}")
    if name == "warmup_cosine":  # warms up even when not told how long: 5% of the run
        name, warmup_steps = "cosine", warmup_steps or max(1, total_steps // 20)
    steps = total_steps - warmup_steps
    if name == "constant":
        main = sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif name == "step":
        # ceil: two drops, after a third and two thirds (steps // 3 put a third drop at the very end)
        main = sched.StepLR(optimizer, step_size=step_size or max(1, math.ceil(steps / 3)), gamma=gamma)
    elif name == "exponential":
        main = sched.ExponentialLR(optimizer, gamma=final_fraction ** (1 / steps))
    else:
        main = sched.CosineAnnealingLR(optimizer, T_max=steps)
    if not warmup_steps:
        return main
    return sched.SequentialLR(optimizer, [
        sched.LinearLR(optimizer, start_factor=1 / warmup_steps, total_iters=warmup_steps), main,
    ], milestones=[warmup_steps])


def lr_curve(name: str, lr: float, total_steps: int, **kwargs) -> list[float]:
    """The learning rate at every step of a schedule, computed by the real scheduler."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = schedule(name, optimizer, total_steps, **kwargs)
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates
