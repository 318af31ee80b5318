"""The machine a notebook runs on: device, precision, threads, seeds and where runs are kept.

One module decides these, so training, timing and the first line of a notebook
agree: ``fit`` and ``compare`` ask here for the device and the autocast dtype,
``au.start`` sets the threads and the seeds, and every cached run lives under
``cache_dir()/runs/<profile>/<notebook>/``.
"""

from __future__ import annotations

__all__ = [
    "CACHE_ENV", "THREADS_ENV", "PRECISIONS", "BF16_MIN_MFLOPS", "default_device", "cpu_has_bf16",
    "autocast_dtype", "autocast", "seed_everything", "usable_cores", "thread_policy", "apply_thread_policy",
    "cache_dir", "current_notebook", "set_notebook", "notebook_dir", "run_path",
]

import contextlib
import os
import random
from pathlib import Path

import numpy as np
import torch

from .profiles import RunProfile, run_profile

CACHE_ENV = "ALEXNET_DATA"
THREADS_ENV = "ALEXNET_THREADS"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# bf16 autocast on a CPU pays a cast per layer: measured on 2 AVX-512-bf16 cores, it lost to fp32 for
# the MLP of notebook 07 (0.5 MFLOP/image) and the width-0.25 mini AlexNet (3 MFLOP/image) and won from
# the width-0.5 one (about 11 MFLOP/image) up. "auto" picks bf16 on a CPU only above this forward cost.
BF16_MIN_MFLOPS = 8.0

_state = {"notebook": "scratch"}


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively (AVX-512 bf16 or AMX); autocast is slow without."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(precision: str, device: torch.device, mflops: float | None = None) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: plain fp32).

    ``"auto"``: bf16 (or fp16 without bf16) on CUDA; on a CPU, bf16 when the CPU has it and the
    model's forward pass costs at least ``BF16_MIN_MFLOPS`` per image (``mflops``; unknown counts
    as large), else fp32, the faster choice for small networks there.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        big_enough = mflops is None or mflops >= BF16_MIN_MFLOPS
        return torch.bfloat16 if cpu_has_bf16() and big_enough else None
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or nothing for plain fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (every device) at once."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_policy() -> tuple[int, str]:
    """How many threads torch should use here, and why.

    ``$ALEXNET_THREADS`` wins (a grading worker pins 1). Otherwise the cores other work
    leaves free (usable cores minus the 1-minute load average, at least 1): several kernels
    on one machine each take a share instead of all of it. Oversubscribed OpenMP threads wait
    for each other at every layer: on 2 shared cores notebook 07's smoke run took 320 s with
    2 threads and 59 s with 1.
    """
    pinned = os.environ.get(THREADS_ENV, "").strip()
    if pinned:
        try:
            n = int(pinned)
        except ValueError:
            raise ValueError(f"{THREADS_ENV}={pinned!r} is not a whole number of threads") from None
        return max(1, n), f"{THREADS_ENV}={pinned}"
    cores = usable_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores, "all usable cores"
    free = max(1, min(cores, int(cores - busy + 0.5)))
    return free, ("all usable cores" if free == cores else f"{cores} cores, load {busy:.1f} from other work")


def apply_thread_policy() -> str:
    """Set torch's thread count from ``thread_policy``; return a phrase for the device line."""
    n, why = thread_policy()
    torch.set_num_threads(n)
    return f"{n} thread{'s' * (n > 1)}: {why}"


def cache_dir() -> Path:
    """Where datasets, weights and runs live: ``$ALEXNET_DATA`` or ``~/.cache/alexnet_utils``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "alexnet_utils").expanduser()


def current_notebook() -> str:
    """The name given to ``au.start`` (``"scratch"`` before it is called)."""
    return _state["notebook"]


def set_notebook(name: str) -> None:
    """Name the notebook whose runs and claims are cached from now on."""
    _state["notebook"] = name


def notebook_dir(notebook: str | None = None, run: RunProfile | None = None) -> Path:
    """Where this notebook's finished runs and claims live, per run profile."""
    return cache_dir() / "runs" / (run or run_profile()).name / (notebook or current_notebook())


def run_path(name: str, run: RunProfile | None = None) -> Path:
    """Where a notebook experiment keeps its checkpoint (per profile, in the course cache).

    Pass it as ``fit(..., checkpoint=au.run_path("02_baseline"))``: a restarted kernel then
    resumes the run, or returns a finished one, instead of retraining; a changed model,
    recipe or data trains afresh (the checkpoint records what made it).
    """
    return cache_dir() / "runs" / (run or run_profile()).name / f"{name}.pt"
