"""Claims against measurements, with verdicts computed from the numbers, never typed in.

Every notebook ends by putting what the paper and the exercise sheet claim
beside what this run measured. A ``Claim`` decides its own verdict from the
expected value (a number with a tolerance, or a range) and the measurement;
``claims_table`` shows them and writes them as JSON beside the run's cache.
"""

from __future__ import annotations

__all__ = [
    "AGREES", "DISAGREES", "NOISE", "NOT_MEASURABLE", "MIN_REPEATS", "Claim", "ClaimsTable", "claims_table",
]

import json
import math
from dataclasses import asdict, dataclass

from .profiles import run_profile
from .runtime import notebook_dir
from .viz import claims_html

AGREES, DISAGREES, NOT_MEASURABLE = "agrees", "disagrees", "not measurable in this profile"
NOISE = "not distinguishable from noise"
MIN_REPEATS = 3  # a timing from fewer repeats has no spread worth the name


@dataclass(frozen=True)
class Claim:
    """One claim, where it comes from, what it expects, and what this run measured.

    ``expected`` is a number (within ``tolerance``, relative, of ``measured``), a
    ``(low, high)`` range (``None`` leaves a side open), or a string or bool that
    must match exactly. ``measured=None`` or ``measurable=False`` (e.g. a claim
    about ImageNet checked on stand-in data) gives "not measurable in this profile";
    ``note`` says why, or what the figure means.

    The noise rule, so that no notebook has to remember it: a measurement that comes
    from runs with a seed (or repeats of a timing) says how many (``seeds=``,
    ``repeats=``) and how far it scatters (``spread=``: the standard deviation of the
    measured figure, in its own unit). The verdict is "not distinguishable from noise"
    when one seed or fewer than ``MIN_REPEATS`` repeats stand behind it, or when moving
    the measurement by one spread would flip it; the note then says what it would take.
    ``measures_cause=False`` marks a figure that does not measure what the claim is
    about (a speed-up that is not the claimed cause's): it can never "agree".

    ``bound="lower"`` (or ``"upper"``) marks a one-sided figure: the true value is at
    least (at most) ``measured``, as a ratio against a count stuck at its floor. It agrees
    when every value it allows satisfies the claim, disagrees when none does, and is
    "not measurable" otherwise, with the bound in the note.
    """

    claim: str
    source: str
    expected: float | tuple | str | bool
    measured: float | str | bool | None
    tolerance: float = 0.0
    unit: str = ""
    note: str = ""
    measurable: bool = True
    spread: float | None = None
    seeds: int | None = None
    repeats: int | None = None
    measures_cause: bool = True
    bound: str | None = None

    def __post_init__(self):
        if isinstance(self.expected, tuple):
            if len(self.expected) != 2 or self.expected == (None, None):
                raise ValueError(f"{self.claim!r}: a range is (low, high) with at least one bound; "
                                 f"got {self.expected!r}")
        if self.tolerance < 0:
            raise ValueError(f"{self.claim!r}: tolerance must be >= 0; got {self.tolerance}")
        if isinstance(self.measured, float) and math.isnan(self.measured):
            object.__setattr__(self, "measured", None)
        if isinstance(self.spread, float) and math.isnan(self.spread):
            object.__setattr__(self, "spread", None)
        if self.spread is not None and self.spread < 0:
            raise ValueError(f"{self.claim!r}: spread is a standard deviation, >= 0; got {self.spread}")
        if self.bound not in (None, "lower", "upper"):
            raise ValueError(f"{self.claim!r}: bound is 'lower' (the truth is at least measured), 'upper' or None; "
                             f"got {self.bound!r}")
        if self.bound and (isinstance(self.measured, (bool, str)) or isinstance(self.expected, (bool, str))):
            raise ValueError(f"{self.claim!r}: only a number can be a bound; got measured={self.measured!r}")
        for name in ("seeds", "repeats"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{self.claim!r}: {name} counts runs, >= 1; got {value}")

    def _holds(self, measured) -> bool:
        exact = isinstance(self.expected, (bool, str)) or isinstance(measured, (bool, str))
        if exact and not isinstance(self.expected, tuple):
            return self.expected == measured
        low, high = self._accepted()
        return low <= measured <= high

    def _accepted(self) -> tuple[float, float]:
        """The values the claim accepts, as an interval (open sides infinite)."""
        if isinstance(self.expected, tuple):
            low, high = self.expected
            return (-math.inf if low is None else low), (math.inf if high is None else high)
        return self.expected - self.tolerance * abs(self.expected), self.expected + self.tolerance * abs(self.expected)

    def _bound_verdict(self) -> str:
        return self._bound_verdict_at(self.measured)

    def _bound_verdict_at(self, m: float) -> str:
        """A one-sided figure ``m``: agrees when all it allows is accepted, disagrees when none of it is."""
        low, high = self._accepted()
        allowed = (m, math.inf) if self.bound == "lower" else (-math.inf, m)
        if low <= allowed[0] and allowed[1] <= high:
            return AGREES
        if allowed[0] > high or allowed[1] < low:
            return DISAGREES
        return NOT_MEASURABLE

    def _numeric(self) -> bool:
        return not isinstance(self.measured, (bool, str)) and not isinstance(self.expected, (bool, str))

    def noise_reason(self) -> str | None:
        """Why noise decides this comparison, and what would settle it (``None``: it does not)."""
        if self.measured is None or not self.measurable:
            return None
        if self.seeds == 1:
            return "one seed measures no spread: run 2+ seeds (the quick or full profile) to judge it"
        if self.repeats is not None and self.repeats < MIN_REPEATS:
            return (f"a timing from {self.repeats} repeat{'s' * (self.repeats > 1)} has no spread: "
                    f"time {MIN_REPEATS}+ repeats to judge it")
        if self.spread and self._numeric():
            judge = self._bound_verdict_at if self.bound else self._holds
            flips = judge(self.measured) != judge(self.measured - self.spread) or \
                judge(self.measured) != judge(self.measured + self.spread)
            if flips:
                return (f"one spread ({_fmt(self.spread)}) either way would flip the verdict: more seeds or "
                        f"repeats, or a longer run, to shrink it")
        return None

    @property
    def verdict(self) -> str:
        """agrees / disagrees / not distinguishable from noise / not measurable, from the numbers alone."""
        if self.measured is None or not self.measurable:
            return NOT_MEASURABLE
        if self.noise_reason():
            return NOISE
        if self.bound:
            verdict = self._bound_verdict()
            return NOT_MEASURABLE if verdict == AGREES and not self.measures_cause else verdict
        ok = self._holds(self.measured)
        if ok and not self.measures_cause:
            return NOT_MEASURABLE
        return AGREES if ok else DISAGREES

    def full_note(self) -> str:
        """The author's note plus what the noise rule or a figure that misses the cause adds."""
        extra = self.noise_reason()
        if extra is None and self.bound and self.measurable and self.measured is not None \
                and self._bound_verdict() == NOT_MEASURABLE:
            extra = (f"only a bound ({self.measured_text()}): the claim could hold or fail above it"
                     if self.bound == "lower" else
                     f"only a bound ({self.measured_text()}): the claim could hold or fail below it")
        elif extra is None and not self.measures_cause and self.verdict == NOT_MEASURABLE and self.measurable:
            extra = "the figure does not measure the claimed cause, so it cannot confirm it"
        return "; ".join(part for part in (self.note, extra) if part)

    def expected_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if isinstance(self.expected, tuple):
            low, high = self.expected
            if low is None:
                return f"≤ {_fmt(high)}{unit}"
            if high is None:
                return f"≥ {_fmt(low)}{unit}"
            return f"{_fmt(low)} to {_fmt(high)}{unit}"
        within = f" ± {self.tolerance:.0%}" if self.tolerance else ""
        return f"{_fmt(self.expected)}{unit}{within}"

    def measured_text(self) -> str:
        if self.measured is None:
            return "—"
        spread = f" ± {_fmt(self.spread)}" if self.spread is not None and self._numeric() else ""
        side = {"lower": "≥ ", "upper": "≤ "}.get(self.bound, "")
        return f"{side}{_fmt(self.measured)}{spread}{f' {self.unit}' if self.unit else ''}"


def _fmt(value) -> str:
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:.3g}"


class ClaimsTable:
    """The claims as a table: a readable HTML table in Jupyter, ``frame`` for code, ``verdicts`` for tests."""

    def __init__(self, claims: list[Claim], path=None):
        self.claims, self.path = claims, path

    @property
    def verdicts(self) -> dict[str, str]:
        return {c.claim: c.verdict for c in self.claims}

    @property
    def frame(self):
        import pandas as pd

        return pd.DataFrame([{"claim": c.claim, "source": c.source, "expected": c.expected_text(),
                              "measured here": c.measured_text(), "verdict": c.verdict, "note": c.full_note()}
                             for c in self.claims])

    def _repr_html_(self) -> str:
        return claims_html(self.frame)

    def __repr__(self) -> str:
        return self.frame.to_string(index=False)


def claims_table(claims: list[Claim], notebook: str | None = None, save: bool = True) -> ClaimsTable:
    """Show the claims with their verdicts and write them to ``<run cache>/<notebook>/claims.json``."""
    claims = list(claims)
    if not all(isinstance(c, Claim) for c in claims):
        raise TypeError("claims_table takes a list of au.Claim(claim, source, expected, measured, ...)")
    path = None
    if save:
        path = notebook_dir(notebook) / "claims.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{**asdict(c), "verdict": c.verdict, "why": c.full_note(), "profile": run_profile().name}
                for c in claims]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n")
        tmp.replace(path)
    return ClaimsTable(claims, path)
