"""How big a run is: one place decides, so a notebook scales from CI to a GPU."""

from __future__ import annotations

__all__ = [
    "ENV_VAR", "PROFILES", "RunProfile", "run_profile", "default_profile_name",
]

import os
from dataclasses import dataclass

ENV_VAR = "ALEXNET_PROFILE"


@dataclass(frozen=True)
class RunProfile:
    """Run sizes every experiment reads; ``None`` sample counts mean the whole dataset."""

    name: str
    epochs: int
    train_samples: int | None
    val_samples: int | None
    batch_size: int
    seeds: int
    model_width: float  # scales mini_alexnet's channels and units: small in smoke, full size on a GPU
    offline: bool
    summary: str

    def pick(self, smoke, quick, full):
        """This profile's one of three values: ``EPOCHS = P.pick(smoke=2, quick=5, full=30)``.

        A notebook sizes its own experiments with it instead of a per-profile table.
        """
        return {"smoke": smoke, "quick": quick, "full": full}[self.name]

    def limit(self, n: int, split: str = "train") -> int:
        """How many of ``n`` available samples this profile uses for ``split``."""
        cap = self.train_samples if split == "train" else self.val_samples
        return n if cap is None else min(n, cap)


PROFILES = {
    "smoke": RunProfile("smoke", epochs=2, train_samples=512, val_samples=256, batch_size=64, seeds=1,
                        model_width=0.25,
                        offline=True, summary="seconds per notebook on offline stand-in data, for tests, CI "
                                              "and autograding"),
    "quick": RunProfile("quick", epochs=5, train_samples=10_000, val_samples=2_000, batch_size=128, seeds=2,
                        model_width=0.5,
                        offline=False, summary="minutes per notebook on a laptop CPU, real data"),
    "full": RunProfile("full", epochs=30, train_samples=None, val_samples=None, batch_size=256, seeds=3,
                       model_width=1.0,
                       offline=False, summary="the real experiment, meant for a GPU"),
}


def default_profile_name() -> str:
    """``ALEXNET_PROFILE`` if set, else ``full`` with CUDA, else ``quick``."""
    chosen = os.environ.get(ENV_VAR, "").strip().lower()
    if chosen:
        return chosen
    import torch

    return "full" if torch.cuda.is_available() else "quick"


def run_profile(name: str | None = None) -> RunProfile:
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
