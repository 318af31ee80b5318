"""The first line of every notebook: seeds, run profile, device, threads and the stand-ins, said out loud.

``start`` also names the notebook, so experiments and claims cache under
``$ALEXNET_DATA/runs/<profile>/<notebook>/`` without each call repeating it.
"""

from __future__ import annotations

__all__ = [
    "start", "seed_everything", "current_notebook", "notebook_dir", "device_summary", "stand_ins",
]

from collections.abc import Mapping, Sequence

import torch

from .data import SOURCES, is_cached
from .profiles import RunProfile, run_profile
from .runtime import (
    BF16_MIN_MFLOPS,
    apply_thread_policy,
    cache_dir,
    cpu_has_bf16,
    current_notebook,
    default_device,
    notebook_dir,
    seed_everything,
    set_notebook,
)


def device_summary(device: torch.device | None = None, threads: str | None = None) -> str:
    """One line on where training runs and what ``precision="auto"`` picks there."""
    device = device or default_device()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return f"cuda ({name}), {dtype} mixed precision"
    precision = (f"precision auto: bf16 autocast for networks of {BF16_MIN_MFLOPS:g}+ MFLOP per image, else fp32"
                 if cpu_has_bf16() else "precision auto: fp32 (no bf16 on this CPU)")
    return f"cpu ({threads or f'{torch.get_num_threads()} threads'}), {precision}"


def stand_ins(data: Sequence[str], run: RunProfile | None = None,
              replaced_by: Mapping[str, str] | None = None) -> list[str]:
    """One line per named dataset: what this profile really uses for it.

    ``replaced_by`` names a notebook's own offline stand-in for a dataset (or the weights)
    where it is not the package's default, e.g. ``{"oxford_pets": "mnist5k digits 5-9"}``.
    """
    run = run or run_profile()
    lines = []
    for name in data:
        if name not in SOURCES:
            lines.append(f"data: {name} (ships with the course, offline)")
            continue
        src = SOURCES[name]
        if run.offline:
            what = (replaced_by or {}).get(name, src.stand_in)
            lines.append(f"stand-in: {what} replaces {src.title} (offline {run.name} profile; "
                         f"results describe the stand-in)")
        else:
            where = "cached" if is_cached(name) else f"not cached yet: fetched on first use, {src.size}"
            lines.append(f"data: {src.title} from {cache_dir()} ({where})")
    return lines


def start(notebook: str, seed: int = 0, data: Sequence[str] = (),
          replaced_by: Mapping[str, str] | None = None) -> RunProfile:
    """Seed everything, name the notebook, print profile, device and stand-ins; return the profile.

    ``replaced_by``: the notebook's own offline stand-ins, by dataset name (see ``stand_ins``).
    """
    run = run_profile()
    set_notebook(notebook)
    seed_everything(seed)
    threads = apply_thread_policy()
    print(f"{notebook}: run profile '{run.name}', {run.summary}")
    print(f"device: {device_summary(threads=threads)}; seed {seed}")
    for line in stand_ins(data, run, replaced_by):
        print(line)
    return run
