"""Claims against measurements, with verdicts computed from the numbers, never typed in.

Every notebook ends by putting what the paper and the exercise sheet claim
beside what this run measured. A ``Claim`` decides its own verdict from the
expected value (a number with a tolerance, or a range) and the measurement;
``claims_table`` shows them and writes them as JSON beside the run's cache.
"""

from __future__ import annotations

__all__ = [
    "AGREES", "DISAGREES", "NOT_MEASURABLE", "Claim", "ClaimsTable", "claims_table",
]

import json
import math
from dataclasses import asdict, dataclass

AGREES, DISAGREES, NOT_MEASURABLE = "agrees", "disagrees", "not measurable in this profile"


@dataclass(frozen=True)
class Claim:
    """One claim, where it comes from, what it expects, and what this run measured.

    ``expected`` is a number (within ``tolerance``, relative, of ``measured``), a
    ``(low, high)`` range (``None`` leaves a side open), or a string or bool that
    must match exactly. ``measured=None`` or ``measurable=False`` (e.g. a claim
    about ImageNet checked on stand-in data) gives "not measurable in this profile";
    ``note`` says why, or what the figure means.
    """

    claim: str
    source: str
    expected: float | tuple | str | bool
    measured: float | str | bool | None
    tolerance: float = 0.0
    unit: str = ""
    note: str = ""
    measurable: bool = True

    def __post_init__(self):
        if isinstance(self.expected, tuple):
            if len(self.expected) != 2 or self.expected == (None, None):
                raise ValueError(f"{self.claim!r}: a range is (low, high) with at least one bound; "
                                 f"got {self.expected!r}")
        if self.tolerance < 0:
            raise ValueError(f"{self.claim!r}: tolerance must be >= 0; got {self.tolerance}")
        if isinstance(self.measured, float) and math.isnan(self.measured):
            object.__setattr__(self, "measured", None)

    @property
    def verdict(self) -> str:
        """agrees / disagrees / not measurable in this profile, from the numbers alone."""
        if self.measured is None or not self.measurable:
            return NOT_MEASURABLE
        expected, measured = self.expected, self.measured
        if isinstance(expected, tuple):
            low, high = expected
            ok = (low is None or measured >= low) and (high is None or measured <= high)
        elif isinstance(expected, (bool, str)) or isinstance(measured, (bool, str)):
            ok = expected == measured
        else:
            ok = abs(measured - expected) <= self.tolerance * abs(expected)
        return AGREES if ok else DISAGREES

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
        return f"{_fmt(self.measured)}{f' {self.unit}' if self.unit else ''}"


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
                              "measured here": c.measured_text(), "verdict": c.verdict, "note": c.note}
                             for c in self.claims])

    def _repr_html_(self) -> str:
        from .viz import claims_html

        return claims_html(self.frame)

    def __repr__(self) -> str:
        return self.frame.to_string(index=False)


def claims_table(claims: list[Claim], notebook: str | None = None, save: bool = True) -> ClaimsTable:
    """Show the claims with their verdicts and write them to ``<run cache>/<notebook>/claims.json``."""
    from .profiles import run_profile
    from .session import notebook_dir

    claims = list(claims)
    if not all(isinstance(c, Claim) for c in claims):
        raise TypeError("claims_table takes a list of au.Claim(claim, source, expected, measured, ...)")
    path = None
    if save:
        path = notebook_dir(notebook) / "claims.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{**asdict(c), "verdict": c.verdict, "profile": run_profile().name} for c in claims]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n")
        tmp.replace(path)
    return ClaimsTable(claims, path)
