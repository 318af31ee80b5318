"""One training loop for the whole course: history, progress bars, mixed precision, resume."""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .profiles import profile as active_profile

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class History:
    """What ``fit`` measured: one row per epoch, plus the loss of every step."""

    epochs: list[dict] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)

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
        return self.epochs[-1][column] if self.epochs else None

    def best(self, column: str = "val_acc"):
        return max(self[column]) if self.epochs else None


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: plain fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if _cpu_has_bf16() else None
    return torch.bfloat16 if precision == "bf16" else torch.float16


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


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
    with torch.inference_mode(), _autocast(device, dtype):
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


def fit(model: nn.Module, train, val=None, epochs: int | None = None, optimizer=None, scheduler=None,
        *, device=None, checkpoint: str | os.PathLike | None = None, loss_fn: nn.Module | None = None,
        precision: str = "auto", channels_last: bool | None = None, compile: bool = False,
        scheduler_interval: str = "epoch", grad_clip: float | None = None, progress: bool = True,
        desc: str = "training") -> History:
    """Train ``model`` and return its History.

    With ``checkpoint=PATH`` every epoch is saved atomically and a later call
    resumes from it, so a dead kernel loses at most one epoch; a finished run
    is returned from the file without training again.
    """
    device = torch.device(device) if device else default_device()
    epochs = epochs if epochs is not None else active_profile().epochs
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step'; got {scheduler_interval!r}")
    if len(train) == 0:
        raise ValueError("the training loader yields no batches: the batch size is larger than the "
                         "dataset with drop_last=True, or the dataset is empty")
    model.to(device)
    if channels_last is None:
        channels_last = _has_conv(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    dtype = autocast_dtype(precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step_model = torch.compile(model) if compile else model

    history = History()
    if checkpoint is not None:
        history = _resume(Path(checkpoint), model, optimizer, scheduler, scaler, train)
    start = len(history)
    steps_per_epoch = len(train)
    bar = _progress_bar(progress, total=epochs * steps_per_epoch, initial=start * steps_per_epoch, desc=desc)
    step = _Step(step_model, optimizer, scheduler if scheduler_interval == "step" else None, scaler, loss_fn,
                 device, dtype, channels_last, grad_clip)
    try:
        for epoch in range(start, epochs):
            model.train()
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            step_losses, train_acc = step.epoch(train, bar, f"{epoch + 1}/{epochs}")
            train_loss = sum(step_losses) / len(step_losses)
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"the training loss became {train_loss} in epoch {epoch + 1}: the learning rate "
                    f"({lr:g}) is probably too high for this model (lower it, add warm-up or "
                    f"normalisation, or clip gradients with grad_clip=1.0)")
            if scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            row = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc}
            if val is not None:
                metrics = evaluate(model, val, device, precision, loss_fn)
                row.update(val_loss=metrics["loss"], val_acc=metrics["acc"])
            row.update(lr=lr, time_s=time.perf_counter() - t0)
            history.epochs.append(row)
            history.steps.extend(step_losses)
            bar.set_postfix(epoch=f"{epoch + 1}/{epochs}",
                            **{k: f"{v:.3f}" for k, v in row.items() if k.endswith(("loss", "acc"))})
            if checkpoint is not None:
                _save(Path(checkpoint), model, optimizer, scheduler, scaler, history, train)
    finally:
        bar.close()
    return history


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

    def epoch(self, train, bar, label: str) -> tuple[list[float], float]:
        """Per-step losses and the accuracy on the training batches, read back once per epoch."""
        losses, correct, seen = [], torch.zeros((), device=self.device, dtype=torch.long), 0
        for i, (x, y) in enumerate(train):
            loss, out, y = self(x, y)
            losses.append(loss.detach())
            correct += (out.argmax(1) == y).sum()
            seen += len(y)
            bar.update(1)
            if i % 25 == 0:
                bar.set_postfix(epoch=label, loss=f"{loss.item():.3f}")
        return torch.stack(losses).float().cpu().tolist(), correct.item() / seen

    def __call__(self, x, y):
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(self.device, self.dtype):
            out = self.model(x)
            loss = self.loss_fn(out.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        return loss, out, y


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


def _progress_bar(enabled: bool, **kwargs):
    """One bar over all steps: a widget in Jupyter, text elsewhere."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(unit="step", **kwargs)


def _save(path: Path, model, optimizer, scheduler, scaler, history: History, train) -> None:
    """Write the checkpoint next to its final name, then rename: never half a file."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "history": {"epochs": history.epochs, "steps": history.steps},
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "loader": _loader_generator(train).get_state() if _loader_generator(train) else None,
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _loader_generator(loader) -> torch.Generator | None:
    gen = getattr(loader, "generator", None)
    return gen if isinstance(gen, torch.Generator) else None


def run_path(name: str, run=None) -> Path:
    """Where a notebook experiment keeps its checkpoint (per profile, in the course cache).

    Pass it as ``fit(..., checkpoint=au.train.run_path("02_baseline"))``: a restarted
    kernel then resumes the run, or returns a finished one, instead of retraining.
    """
    from .data import cache_dir

    return cache_dir() / "runs" / (run or active_profile()).name / f"{name}.pt"


def _resume(path: Path, model, optimizer, scheduler, scaler, train) -> History:
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # a save cut short by a dead kernel
        stale.unlink(missing_ok=True)
    if not path.exists():
        return History()
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
    except Exception as err:  # a truncated file or a checkpoint of another model
        raise RuntimeError(
            f"cannot resume from checkpoint {path}: {err}. It is damaged or belongs to a different "
            f"model; delete it to train from scratch") from err
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    gen = _loader_generator(train)
    if gen is not None and rng["loader"] is not None:
        gen.set_state(rng["loader"])
    history = History(**state["history"])
    print(f"resumed from {path} after epoch {len(history)}")
    return history


SCHEDULES = ("constant", "step", "exponential", "cosine", "warmup_cosine")


def schedule(name: str, optimizer: torch.optim.Optimizer, total_steps: int, *, warmup_steps: int = 0,
             step_size: int | None = None, gamma: float = 0.1, final_fraction: float = 0.01):
    """A torch.optim.lr_scheduler for one of the course's schedules, stepped once per step.

    ``step`` divides the rate by 10 (``gamma``) every ``step_size`` steps (default a third of
    the run), as AlexNet's authors did by hand; ``exponential`` reaches ``final_fraction`` of
    the start at the end; ``warmup_cosine`` ramps up linearly for ``warmup_steps`` first.
    """
    from torch.optim import lr_scheduler as sched

    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need total_steps >= 1 and 0 <= warmup_steps < total_steps; "
                         f"got total_steps={total_steps}, warmup_steps={warmup_steps}")
    if name == "constant":
        return sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if name == "step":
        return sched.StepLR(optimizer, step_size=step_size or max(1, total_steps // 3), gamma=gamma)
    if name == "exponential":
        return sched.ExponentialLR(optimizer, gamma=final_fraction ** (1 / total_steps))
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=total_steps)
    warmup = max(1, warmup_steps)
    return sched.SequentialLR(optimizer, [
        sched.LinearLR(optimizer, start_factor=1 / warmup, total_iters=warmup),
        sched.CosineAnnealingLR(optimizer, T_max=total_steps - warmup),
    ], milestones=[warmup])


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
