"""runner.results.stats against values computed independently: closed forms, exact enumeration, a textbook example."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from runner.results.stats import ALPHA, NO_SPREAD, PAIRED_T, WILCOXON, compare, compare_all, holm, mean_ci, verdict

# Student t quantiles in closed form: df=1 is Cauchy, t = tan(pi (q - 1/2)); df=2 has
# F(t) = 1/2 + t / (2 sqrt(2 + t^2)), so F(t) = 0.975 gives t^2 = 2 c^2 / (1 - c^2) with c = 0.95.
T975_DF1 = math.tan(math.pi * 0.475)  # 12.7062...
T975_DF2 = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))  # 4.3027...


def p_t_df2(t: float) -> float:
    """Two-sided p of a t statistic with 2 degrees of freedom, from the closed-form CDF."""
    return 1 - abs(t) / math.sqrt(2 + t * t)


def p_wilcoxon_exact(d: list[float]) -> float:
    """Two-sided exact signed-rank p by enumerating every sign pattern (no ties, no zeros)."""
    ranks = {v: r for r, v in enumerate(sorted(abs(x) for x in d), start=1)}
    w_plus = sum(ranks[abs(x)] for x in d if x > 0)
    total = len(d) * (len(d) + 1) / 2
    low = min(w_plus, total - w_plus)
    sums = [
        sum(r for r, s in zip(range(1, len(d) + 1), signs) if s) for signs in itertools.product([0, 1], repeat=len(d))
    ]
    return min(1.0, 2 * sum(s <= low for s in sums) / len(sums))


def test_mean_ci_three_values():
    mean, half = mean_ci([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(T975_DF2 * 0.1 / math.sqrt(3), rel=1e-12)  # sd 0.1
    assert half == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)  # t(0.975, 2) = 4.302653 in tables
    assert half == pytest.approx(0.2484138, rel=1e-6)


def test_mean_ci_two_values():
    mean, half = mean_ci([0.4, 0.6])
    assert mean == pytest.approx(0.5)
    assert half == pytest.approx(T975_DF1 * math.sqrt(0.02) / math.sqrt(2), rel=1e-12)
    assert half == pytest.approx(12.706205 * 0.1, rel=1e-6)  # t(0.975, 1) = 12.706205 in tables; sem 0.1


def test_mean_ci_other_confidence_levels():
    # same closed forms as above at 90 %: df=1 -> tan(pi * 0.45); df=2 -> t^2 = 2 c^2 / (1 - c^2) with c = 0.9
    assert mean_ci([0.4, 0.6], 0.90)[1] == pytest.approx(math.tan(math.pi * 0.45) * 0.1, rel=1e-12)
    t90_df2 = math.sqrt(2 * 0.9**2 / (1 - 0.9**2))  # 2.919986
    assert mean_ci([0.5, 0.6, 0.7], 0.90)[1] == pytest.approx(t90_df2 * 0.1 / math.sqrt(3), rel=1e-12)
    assert mean_ci([0.5, 0.6, 0.7], 0.90)[1] < mean_ci([0.5, 0.6, 0.7])[1]  # the default level is the wider 95 %


def test_mean_ci_one_value_has_no_interval():
    assert mean_ci([0.7]) == (0.7, None)
    assert mean_ci([]) == (None, None)


def test_mean_ci_no_spread():
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.0)


def test_paired_t_matches_the_formula():
    ref = {0: 0.50, 1: 0.55, 2: 0.60}
    var = {0: 0.58, 1: 0.60, 2: 0.71}
    d = np.array([0.08, 0.05, 0.11])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    c = compare(ref, var)
    assert c["test"] == PAIRED_T and c["n"] == 3
    assert c["mean_diff"] == pytest.approx(d.mean())
    assert c["p"] == pytest.approx(p_t_df2(t), rel=1e-9)


def test_paired_t_only_on_shared_seeds():
    ref = {0: 0.50, 1: 0.55, 2: 0.60, 7: 0.1}
    var = {0: 0.58, 1: 0.60, 2: 0.71, 9: 0.9}
    assert compare(ref, var)["n"] == 3
    assert compare(ref, var)["p"] == pytest.approx(
        compare({k: ref[k] for k in (0, 1, 2)}, {k: var[k] for k in (0, 1, 2)})["p"]
    )


def test_wilcoxon_from_six_seeds_exact_enumeration():
    d = [0.01, 0.03, -0.02, 0.05, 0.04, 0.06]  # ranks 1, 3, 2-, 5, 4, 6: W- = 2, P(W+ <= 2) = 3/64
    ref = {s: 0.5 for s in range(6)}
    var = {s: 0.5 + x for s, x in enumerate(d)}
    c = compare(ref, var)
    assert c["test"] == WILCOXON and c["n"] == 6
    assert c["p"] == pytest.approx(6 / 64) == pytest.approx(p_wilcoxon_exact(d))


def test_wilcoxon_seven_seeds_significant():
    d = [-0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07]  # only rank 1 negative: P(W+ <= 1) = 2/128
    c = compare({s: 0.4 for s in range(7)}, {s: 0.4 + x for s, x in enumerate(d)})
    assert c["p"] == pytest.approx(4 / 128) == pytest.approx(p_wilcoxon_exact(d))


def test_five_seeds_still_paired_t():
    c = compare({s: 0.5 for s in range(5)}, {s: 0.5 + x for s, x in enumerate([0.01, 0.02, 0.0, 0.03, -0.01])})
    assert c["test"] == PAIRED_T


def test_holm_textbook_example():
    # Holm (1979) as in every textbook: m = 4, alpha = 0.05. Sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03,
    # 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> running max 0.06. H1 and H4 rejected, H2 and H3 kept.
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [p < 0.05 for p in adjusted] == [True, False, False, True]


def test_holm_caps_at_one_and_skips_none():
    out = holm([0.5, None, 0.4])
    assert out[1] is None and out[0] == pytest.approx(0.8) and out[2] == pytest.approx(0.8)
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([]) == [] and holm([None]) == [None]
    assert holm([0.02]) == [0.02]


def test_no_spread_all_zero_is_no_difference():
    c = compare({0: 0.5, 1: 0.6, 2: 0.7}, {0: 0.5, 1: 0.6, 2: 0.7})
    assert c["test"] == NO_SPREAD and c["p"] == 1.0
    assert verdict(c, 1.0) == "no detectable difference"


def test_no_spread_equal_nonzero_is_an_exact_sign_test():
    # 0.7 - 0.6 and 0.8 - 0.7 differ in the last float bit: rounding makes them one value, not a fake spread
    up = compare({0: 0.6, 1: 0.7, 2: 0.5}, {0: 0.7, 1: 0.8, 2: 0.6})
    assert up["test"] == NO_SPREAD and up["p"] == pytest.approx(0.25)  # 2 * (1/2)**3: 3 of 3 seeds went up
    assert verdict(up, up["p"]) == "no detectable difference"  # three seeds cannot show it
    two = compare({0: 0.7, 1: 0.8}, {0: 0.6, 1: 0.7})
    assert two["p"] == pytest.approx(0.5) and verdict(two, two["p"]) == "no detectable difference"
    six_down = compare({s: 0.8 for s in range(6)}, {s: 0.7 for s in range(6)})
    assert six_down["p"] == pytest.approx(2 / 64)  # exact binomial: P(all 6 same sign) two-sided
    assert verdict(six_down, holm([six_down["p"]])[0]) == "worse"


@pytest.mark.parametrize("n", range(2, 31))
@pytest.mark.parametrize("step", [0.01, -1 / 180])
def test_sign_test_is_exactly_two_times_half_to_the_n(n, step):
    c = compare({s: 0.5 for s in range(n)}, {s: 0.5 + step for s in range(n)})
    assert c["test"] == NO_SPREAD and c["n"] == n
    assert c["p"] == 2 * 0.5**n and type(c["p"]) is float  # powers of two: exact, no tolerance


def test_sign_test_known_values():
    def p(n):
        return compare({s: 0.6 for s in range(n)}, {s: 0.7 for s in range(n)})["p"]

    assert (p(2), p(3), p(6), p(7)) == (0.5, 0.25, 0.03125, 0.015625)
    assert p(5) == 0.0625 and verdict({"mean_diff": 0.1}, p(5)) == "no detectable difference"  # 5 seeds cannot show it


def test_too_few_seeds():
    c = compare({0: 0.5, 1: 0.6}, {1: 0.9, 2: 0.9})
    assert c == {"n": 1, "mean_diff": pytest.approx(0.3), "test": None, "p": None}
    assert verdict(c, None) == "too few seeds"
    assert compare({}, {0: 0.5})["n"] == 0


def test_verdicts():
    assert verdict(None, None) == "reference"
    assert verdict({"mean_diff": 0.05}, 0.01) == "better"
    assert verdict({"mean_diff": -0.05}, 0.049) == "worse"
    assert verdict({"mean_diff": 0.05}, ALPHA) == "no detectable difference"  # p must be below alpha


def test_verdict_threshold_is_strictly_below_alpha():
    just_below, just_above = math.nextafter(ALPHA, 0), math.nextafter(ALPHA, 1)
    assert verdict({"mean_diff": 0.05}, just_below) == "better"
    assert verdict({"mean_diff": -0.05}, just_below) == "worse"
    assert verdict({"mean_diff": 0.05}, just_above) == "no detectable difference"
    assert verdict({"mean_diff": 0.0}, 1e-9) == "no detectable difference"  # a tiny p without a difference


def test_verdict_and_compare_all_take_another_alpha():
    assert verdict({"mean_diff": 0.05}, 0.03) == "better"
    assert verdict({"mean_diff": 0.05}, 0.03, alpha=0.01) == "no detectable difference"
    six_up = {"base": {s: 0.6 for s in range(6)}, "up": {s: 0.7 for s in range(6)}}  # sign test p = 1/32
    assert compare_all(six_up, "base")["up"]["verdict"] == "better"
    assert compare_all(six_up, "base", alpha=0.01)["up"]["verdict"] == "no detectable difference"


def test_compare_all_holm_over_the_family():
    ref = {0: 0.50, 1: 0.55, 2: 0.60}
    by_variant = {
        "base": ref,
        "up": {0: 0.60, 1: 0.66, 2: 0.72},  # d = 0.10, 0.11, 0.12: t = 19.05, p = 0.0027
        "same": {0: 0.51, 1: 0.53, 2: 0.61},  # d = 0.01, -0.02, 0.01
        "lonely": {5: 0.9},  # no shared seed: not part of the Holm family
    }
    out = compare_all(by_variant, "base")
    assert out["base"]["verdict"] == "reference" and out["base"]["p_holm"] is None
    assert out["lonely"]["verdict"] == "too few seeds" and out["lonely"]["p_holm"] is None
    raw = {v: out[v]["p"] for v in ("up", "same")}
    lo, hi = sorted(raw, key=raw.get)
    assert out[lo]["p_holm"] == pytest.approx(2 * raw[lo])
    assert out[hi]["p_holm"] == pytest.approx(max(2 * raw[lo], raw[hi]))
    d = np.array([0.10, 0.11, 0.12])
    assert raw["up"] == pytest.approx(p_t_df2(d.mean() / (d.std(ddof=1) / math.sqrt(3))))
    assert out["up"]["p_holm"] < ALPHA and out["up"]["verdict"] == "better"
    assert out["same"]["verdict"] == "no detectable difference"


def test_compare_all_missing_reference():
    out = compare_all({"a": {0: 0.5, 1: 0.6}}, "gone")
    assert out["a"]["verdict"] == "too few seeds"
