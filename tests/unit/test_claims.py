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


# --- the noise rule lives in Claim, not in each notebook
from alexnet_utils.claims import NOISE  # noqa: E402


def test_one_seed_cannot_agree_or_disagree_and_the_note_says_what_it_would_take():
    claim = au.Claim("lower lr for fine-tuning helps", "CS231n", (0.0, None), -0.024, seeds=1, note="lr/10 - lr")
    assert claim.verdict == NOISE
    assert claim.full_note().startswith("lr/10 - lr; ") and "2+ seeds" in claim.full_note()
    assert au.Claim("same claim, two seeds", "s", (0.0, None), -0.024, seeds=2, spread=0.005).verdict == DISAGREES


@pytest.mark.parametrize("measured, spread, verdict", [
    (0.62, 0.05, NOISE),       # 0.62 - 0.05 falls below the bound 0.6: one spread flips it
    (0.62, 0.01, AGREES),
    (0.58, 0.01, DISAGREES),
    (0.58, 0.03, NOISE),
    (0.58, 0.0, DISAGREES),    # no scatter measured: the number decides
])
def test_a_difference_inside_the_spread_is_noise(measured, spread, verdict):
    assert au.Claim("c", "s", (0.6, None), measured, spread=spread, seeds=3).verdict == verdict


def test_a_tolerance_claim_respects_the_spread_too():
    assert au.Claim("c", "s", 10.0, 10.9, tolerance=0.1, spread=0.2).verdict == NOISE
    assert au.Claim("c", "s", 10.0, 10.5, tolerance=0.1, spread=0.2).verdict == AGREES


def test_a_timing_needs_repeats():
    assert au.Claim("3-5x slower", "seed", (3.0, 5.0), 4.1, repeats=1).verdict == NOISE
    assert "3+ repeats" in au.Claim("t", "s", (3.0, 5.0), 4.1, repeats=2).full_note()
    assert au.Claim("3-5x slower", "seed", (3.0, 5.0), 4.1, repeats=5, spread=0.3).verdict == AGREES


def test_a_figure_that_misses_the_cause_never_agrees():
    int8 = au.Claim("INT8 gives faster inference", "seed", (1.0, None), 1.28, repeats=5, spread=0.05,
                    measures_cause=False, note="weight-only int8 computes in fp32")
    assert int8.verdict == NOT_MEASURABLE and "does not measure the claimed cause" in int8.full_note()
    slower = au.Claim("INT8 gives faster inference", "seed", (1.0, None), 0.7, measures_cause=False)
    assert slower.verdict == DISAGREES


def test_noise_is_coloured_and_saved_with_its_reason(cache):
    au.start("claims_noise_nb")
    table = au.claims_table([au.Claim("c", "s", (0.0, None), 0.1, seeds=1)])
    assert table.verdicts == {"c": NOISE}
    assert table.frame.loc[0, "measured here"] == "0.1"
    assert "#9a6700" in table._repr_html_()
    row = json.loads(table.path.read_text())[0]
    assert row["verdict"] == NOISE and "one seed" in row["why"] and row["seeds"] == 1


def test_spread_and_counts_are_checked():
    with pytest.raises(ValueError, match="spread"):
        au.Claim("c", "s", 1.0, 1.0, spread=-0.1)
    with pytest.raises(ValueError, match="seeds"):
        au.Claim("c", "s", 1.0, 1.0, seeds=0)
    assert au.Claim("c", "s", 1.0, 1.0, spread=math.nan).spread is None


@pytest.mark.parametrize("expected, measured, bound, verdict", [
    ((2.0, None), 2.5, "lower", AGREES),            # at least 2.5x: every value it allows is >= 2
    ((2.0, None), 1.5, "lower", NOT_MEASURABLE),    # at least 1.5x: could be 1.8 or 3
    ((3.0, 5.0), 3.1, "lower", NOT_MEASURABLE),     # at least 3.1x: could be 4 or 9
    ((3.0, 5.0), 6.0, "lower", DISAGREES),          # at least 6x: never inside 3-5
    ((3.0, 5.0), 2.0, "upper", DISAGREES),          # at most 2x
    ((None, 0.5), 0.4, "upper", AGREES),            # at most 0.4: halved or better
    (6.0, 4.0, "upper", NOT_MEASURABLE),            # 6x ± 50% is 3 to 9: at most 4 allows 3.5 and 2
    (6.0, 2.5, "upper", DISAGREES),                 # at most 2.5: below 3
])
def test_a_one_sided_figure_agrees_only_when_every_value_it_allows_does(expected, measured, bound, verdict):
    tolerance = 0.5 if not isinstance(expected, tuple) else 0.0
    claim = au.Claim("c", "s", expected, measured, tolerance=tolerance, bound=bound, unit="x")
    assert claim.verdict == verdict
    assert claim.measured_text().startswith("≥ " if bound == "lower" else "≤ ")
    if verdict == NOT_MEASURABLE:
        assert "only a bound" in claim.full_note()


def test_a_bound_still_obeys_the_noise_rule_and_takes_numbers_only():
    assert au.Claim("c", "s", (2.0, None), 2.5, bound="lower", seeds=1).verdict == au.claims.NOISE
    with pytest.raises(ValueError, match="bound"):
        au.Claim("c", "s", (2.0, None), 2.5, bound="above")
    with pytest.raises(ValueError, match="only a number"):
        au.Claim("c", "s", "yes", "yes", bound="lower")
    assert au.Claim("c", "s", (2.0, None), 2.5, bound="lower", measures_cause=False).verdict == NOT_MEASURABLE
