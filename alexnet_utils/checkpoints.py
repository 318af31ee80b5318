"""Checkpoints that know what made them, so a changed experiment never gets an old result back.

A checkpoint stores, beside the weights and the optimiser, a record of its run: the
recipe (config or optimiser and scheduler settings), the precision, the data
it saw (loader sizes, augmentation, a probe of the images) and a fingerprint of the
model's behaviour at the start: its initial weights, and its outputs and gradients on
a fixed probe batch. A fixed ``forward``, another initialisation helper or a new
learning rate all change the record; ``fit`` then trains afresh and keeps the old file
apart instead of returning the old curves.
"""

from __future__ import annotations

__all__ = [
    "RECORD_VERSION", "PROBE_SIZE", "code_key", "probe_batch", "run_record", "fingerprint", "record_differences",
    "save", "load", "resume", "set_aside",
]

import copy
import hashlib
import inspect
import os
from pathlib import Path

import torch
from torch import nn

RECORD_VERSION = 1
PROBE_SIZE = 4  # images in the probe batch: enough to see the code, cheap even for AlexNet at 224 px
_RTOL, _ATOL = 1e-3, 1e-6  # thread counts change summation order: compare behaviour, not bits


def probe_batch(train, val) -> tuple[torch.Tensor, torch.Tensor]:
    """The first images of the validation loader (fixed order), else of the training one, RNG untouched."""
    loader = val if val is not None else train
    gen = _loader_generator(loader)
    state = gen.get_state() if gen is not None else None
    with torch.random.fork_rng(devices=[]):
        x, y = next(iter(loader))
    if state is not None:
        gen.set_state(state)
    return x[:PROBE_SIZE], y[:PROBE_SIZE]


def fingerprint(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module) -> dict:
    """What ``model`` computes before training: weights, outputs and gradients on ``(x, y)``.

    Runs on a copy in training mode with a fixed seed (dropout included), so the model, its
    BatchNorm statistics and every random generator are left as they were.
    """
    twin = copy.deepcopy(model).train()
    device = next(twin.parameters()).device
    x, y = x.to(device), y.to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        out = twin(x).float()
        loss_fn(out, y).backward()
    params = list(twin.named_parameters())
    return {
        "structure": hashlib.sha256(repr([(n, tuple(p.shape)) for n, p in params]).encode()).hexdigest()[:16],
        "weights": torch.tensor([[p.detach().double().sum().item(), p.detach().double().norm().item()]
                                 for _, p in params]),
        "output": out.detach().double().cpu(),
        "grads": torch.tensor([0.0 if p.grad is None else p.grad.double().norm().item() for _, p in params]),
    }


def _same_behaviour(a: dict, b: dict) -> bool:
    if a["structure"] != b["structure"]:
        return False
    return all(a[k].shape == b[k].shape and torch.allclose(a[k], b[k], rtol=_RTOL, atol=_ATOL)
               for k in ("weights", "output", "grads"))


def _settings(obj) -> str:
    """An optimiser's or scheduler's settings as text: its class and every plain value it holds."""
    if obj is None:
        return "none"
    if isinstance(obj, torch.optim.Optimizer):
        groups = [{k: v for k, v in g.items() if k != "params"} for g in obj.param_groups]
        return f"{type(obj).__name__} {groups!r}"
    state = {k: v for k, v in obj.state_dict().items()
             if isinstance(v, (int, float, str, bool, list, tuple)) and k not in ("last_epoch", "_step_count")}
    return f"{type(obj).__name__} {sorted(state.items())!r}"


def _data_summary(loader) -> str:
    if loader is None:
        return "none"
    parts = [type(loader).__name__, f"batches={len(loader)}",
             f"batch_size={getattr(loader, 'batch_size', None)}", f"augment={getattr(loader, 'augment', None)}"]
    transform = getattr(loader, "transform", None)
    if transform is not None:
        parts.append(f"transform={hashlib.sha256(code_key(transform).encode()).hexdigest()[:12]}")
    return " ".join(parts)


def code_key(fn) -> str:
    """What identifies a function across kernels: its source when Python can find it, else its name."""
    if fn is None:
        return "none"
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return getattr(fn, "__qualname__", repr(fn))


def run_record(model, train, val, probe: tuple[torch.Tensor, torch.Tensor], *, recipe: str, precision: str, loss_fn,
               optimizer, scheduler, interval: str, extra: str = "") -> dict:
    """Everything that determines a run, to store in its checkpoint and compare on resume.

    Not the number of epochs: a run cut short resumes where it stopped, and a finished run
    asked for more epochs trains afresh (its checkpoint kept no optimiser state; a schedule
    whose shape depends on the length changes the scheduler's settings anyway).
    ``probe``: ``probe_batch(train, val)``, drawn once by the caller.
    """
    x, y = probe
    return {
        "version": RECORD_VERSION,
        "recipe": f"{recipe}\noptimizer: {_settings(optimizer)}\nscheduler: {_settings(scheduler)} per {interval}"
                  f"\nloss: {loss_fn!r}{extra}",
        "precision": precision,
        "data": f"train: {_data_summary(train)}\nval: {_data_summary(val)}\nprobe: "
                + hashlib.sha256(x.detach().float().cpu().contiguous().numpy().tobytes()
                                 + y.cpu().numpy().tobytes()).hexdigest()[:16],
        "model": fingerprint(model, x, y, loss_fn),
    }


def record_differences(stored: dict | None, current: dict) -> list[str]:
    """What differs between a checkpoint's record and this run's, in words (empty: the same run)."""
    if not stored or stored.get("version") != RECORD_VERSION:
        return ["the checkpoint has no record of how it was made"]
    out = []
    if stored["model"]["structure"] != current["model"]["structure"]:
        out.append("the model's layers")
    elif not _same_behaviour(stored["model"], current["model"]):
        out.append("the model's code or initial weights (forward, init or a helper they call)")
    for key, words in (("recipe", "the recipe"), ("precision", "the precision"), ("data", "the data")):
        if stored[key] != current[key]:
            out.append(words)
    return out


def _loader_generator(loader) -> torch.Generator | None:
    gen = getattr(loader, "generator", None)
    return gen if isinstance(gen, torch.Generator) else None


def save(path: Path, *, model, optimizer, scheduler, scaler, history, train, record: dict,
         finished: bool = False) -> None:
    """Write the checkpoint next to its final name, then rename: never half a file.

    A ``finished`` run keeps its weights, curves and record but not what only resuming needs
    (optimiser, scheduler, scaler and RNG states): Adam's moments alone are twice the weights.
    A fine-tuned AlexNet of notebook 04 took 653 MB with them and takes 245 MB without; the
    notebook's fifteen runs, 9.3 GB before.
    """
    gen = _loader_generator(train)
    state = {
        "model": model.state_dict(),
        "history": {"epochs": history.epochs, "steps": history.steps, "step_records": history.step_records},
        "record": record,
        "finished": finished,
    }
    if not finished:
        state |= {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "loader": gen.get_state() if gen is not None else None,
            },
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def set_aside(path: Path) -> Path:
    """Move a checkpoint of another run out of the way (one earlier run kept, never deleted silently)."""
    old = path.with_name(f"{path.stem}.previous{path.suffix}")
    os.replace(path, old)
    return old


def load(path: Path) -> dict | None:
    """The checkpoint's contents, ``None`` when there is none; a damaged file says how to recover."""
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # a save cut short by a dead kernel
        stale.unlink(missing_ok=True)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file
        raise RuntimeError(f"cannot resume from checkpoint {path}: {err}. It is damaged; delete it to "
                           f"train from scratch") from err


def resume(state: dict, path: Path, *, model, optimizer, scheduler, scaler, train) -> dict:
    """Put a checkpoint's model, optimiser, scheduler, scaler and RNG states back; return its history.

    A finished checkpoint has only the weights to put back (see ``save``).
    """
    try:
        model.load_state_dict(state["model"])
    except Exception as err:  # a checkpoint of another model
        raise RuntimeError(f"cannot resume from checkpoint {path}: {err}. It belongs to a different model; "
                           f"delete it to train from scratch") from err
    if state.get("finished"):
        return state["history"]
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
    return state["history"]
