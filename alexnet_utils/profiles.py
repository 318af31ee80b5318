"""How big a run is: one place decides, so a notebook scales from CI to a GPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV_VAR = "ALEXNET_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Run sizes every experiment reads; ``None`` sample counts mean the whole dataset."""

    name: str
    epochs: int
    train_samples: int | None
    val_samples: int | None
    batch_size: int
    offline: bool
    summary: str

    def limit(self, n: int, split: str = "train") -> int:
        """How many of ``n`` available samples this profile uses for ``split``."""
        cap = self.train_samples if split == "train" else self.val_samples
        return n if cap is None else min(n, cap)


PROFILES = {
    "smoke": Profile("smoke", epochs=2, train_samples=512, val_samples=256, batch_size=64,
                     offline=True,
                     summary="seconds per notebook, offline stand-in data (tests, CI, autograding)"),
    "quick": Profile("quick", epochs=5, train_samples=10_000, val_samples=2_000, batch_size=128,
                     offline=False,
                     summary="minutes per notebook on a laptop CPU, real data"),
    "full": Profile("full", epochs=30, train_samples=None, val_samples=None, batch_size=256,
                    offline=False,
                    summary="the real experiment, meant for a GPU"),
}


def default_profile_name() -> str:
    """``ALEXNET_PROFILE`` if set, else ``full`` with CUDA, else ``quick``."""
    chosen = os.environ.get(ENV_VAR, "").strip().lower()
    if chosen:
        return chosen
    import torch

    return "full" if torch.cuda.is_available() else "quick"


def profile(name: str | None = None) -> Profile:
    """The active run profile (or the named one); unknown names list the valid ones."""
    key = (name or default_profile_name()).strip().lower()
    try:
        return PROFILES[key]
    except KeyError:
        source = f"{ENV_VAR}={key!r}" if name is None else repr(name)
        raise ValueError(
            f"unknown run profile {source}; choose one of {', '.join(PROFILES)} "
            f"(e.g. export {ENV_VAR}=quick)"
        ) from None
