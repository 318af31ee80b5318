"""Claims decide their verdicts from the numbers and are written beside the run's cache."""

import json
import math

import pytest

import alexnet_utils as au
from alexnet_utils.claims import AGREES, DISAGREES, NOT_MEASURABLE


@pytest.mark.parametrize("expected, measured, tolerance, verdict", [
    (60e6, 60_965_224, 0.05, AGREES),
    (60e6, 66_000_000, 0.05, DISAGREES),
    (0.71, 0.714, 0.0, DISAGREES),          # no tolerance: exact
    ((6.0, None), 6.5, 0, AGREES),          # at least 6x
    ((6.0, None), 2.0, 0, DISAGREES),
    ((None, 0.25), 0.3, 0, DISAGREES),      # at most
    ((3.0, 5.0), 4.0, 0, AGREES),
    ("96×55×55", "96×55×55", 0, AGREES),
    (True, False, 0, DISAGREES),
    (0.5, None, 0, NOT_MEASURABLE),
    (0.5, math.nan, 0, NOT_MEASURABLE),
])
def test_verdict_follows_from_expected_measured_and_tolerance(expected, measured, tolerance, verdict):
    assert au.Claim("c", "s", expected, measured, tolerance=tolerance).verdict == verdict


def test_a_claim_outside_this_profile_is_not_judged_even_with_a_figure():
    claim = au.Claim("6x faster on CIFAR-10", "paper", (6.0, None), 1.2, measurable=False, note="stand-in data")
    assert claim.verdict == NOT_MEASURABLE and claim.measured_text() == "1.2"


def test_bad_ranges_and_tolerances_are_refused():
    with pytest.raises(ValueError, match="range"):
        au.Claim("c", "s", (None, None), 1.0)
    with pytest.raises(ValueError, match="tolerance"):
        au.Claim("c", "s", 1.0, 1.0, tolerance=-1)


def test_claims_table_shows_and_saves_the_verdicts(cache):
    au.start("claims_nb")
    table = au.claims_table([au.Claim("params", "paper", 60e6, 60_965_224, tolerance=0.05),
                             au.Claim("speed-up", "paper", (6.0, None), None, note="smoke")])
    assert table.verdicts == {"params": AGREES, "speed-up": NOT_MEASURABLE}
    assert list(table.frame.columns) == ["claim", "source", "expected", "measured here", "verdict", "note"]
    assert table.frame.loc[0, "expected"] == "60,000,000 ± 5%" and table.frame.loc[0, "measured here"] == "60,965,224"
    html = table._repr_html_()
    assert "text-align:left" in html and "60,965,224" in html and "#1a7f37" in html
    path = cache / "runs" / "smoke" / "claims_nb" / "claims.json"
    assert table.path == path
    rows = json.loads(path.read_text())
    assert [r["verdict"] for r in rows] == [AGREES, NOT_MEASURABLE] and rows[0]["profile"] == "smoke"


def test_claims_table_takes_only_claims(cache):
    with pytest.raises(TypeError, match="au.Claim"):
        au.claims_table([("params", 1, 1)])
