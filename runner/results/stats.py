"""Statistics over seeds: mean with a 95 % confidence interval, paired tests against the reference, Holm.

Pure functions over plain sequences (scipy.stats); no Ray, no files.

- ``mean_ci``: mean and the half-width of its t-distribution confidence interval (None for n < 2).
- ``compare``: a variant against the reference over the seeds both have: paired t-test
  (``scipy.stats.ttest_rel``) for fewer than ``WILCOXON_MIN`` shared seeds, Wilcoxon signed-rank
  (``scipy.stats.wilcoxon``) from ``WILCOXON_MIN`` on, where it has the power to say something
  without assuming normal differences.
- ``holm``: Holm-Bonferroni adjusted p-values over the family of variants compared.
- ``verdict``: "better" / "worse" / "no detectable difference" at ``ALPHA`` on the adjusted p,
  "reference" for the reference itself, "too few seeds" below 2 shared seeds.

Degenerate differences. Differences are rounded to ``DECIMALS`` places first, so float noise in
accuracies (0.7 - 0.6 vs 0.8 - 0.7) neither breaks ties nor fakes a spread. When every difference
is the same value the t statistic is 0/0 or x/0 and says nothing: all zero -> p = 1 (nothing
differs); all equal and non-zero -> the exact two-sided sign test (``scipy.stats.binomtest`` of n
successes in n at 1/2, i.e. p = 2 * 0.5**n: every one of n seeds moved the same way). Accuracies on
a small val set are coarse (1/180 steps), so equal differences happen; 2 such seeds give p = 0.5,
not proof, and 6 give p = 0.031.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from runner.results.verdict import Verdict

ALPHA = 0.05  # significance level, applied to Holm-adjusted p-values
CONFIDENCE = 0.95  # two-sided confidence level of mean_ci
WILCOXON_MIN = 6  # shared seeds from which the Wilcoxon signed-rank test replaces the paired t-test
DECIMALS = 12  # differences are rounded to this many places before testing

PAIRED_T, WILCOXON, NO_SPREAD = "paired t", "wilcoxon", "sign test"  # NO_SPREAD: every difference equal


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """(mean, half-width of the t-interval); half-width None for one value, both None for none."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return None, None
    mean = float(x.mean())
    if len(x) < 2:
        return mean, None
    sem = x.std(ddof=1) / math.sqrt(len(x))
    # quantile x sem, not t.interval(loc=mean, scale=sem): that is NaN for sem = 0 and its upper - mean loses bits
    return mean, float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * sem)


def compare(reference: Mapping[int, float], variant: Mapping[int, float]) -> dict:
    """A variant vs the reference, paired by seed ({seed: value} each).

    Returns {"n": shared seeds, "mean_diff": mean of variant - reference, "test": name or None,
    "p": two-sided p or None}; no test below 2 shared seeds.
    """
    seeds = sorted(set(reference) & set(variant))
    ref = np.array([reference[s] for s in seeds], dtype=float)
    var = np.array([variant[s] for s in seeds], dtype=float)
    d = np.round(var - ref, DECIMALS)
    out = {"n": len(seeds), "mean_diff": float(d.mean()) if len(d) else None, "test": None, "p": None}
    if len(d) < 2:
        return out
    from scipy import stats

    if np.all(d == d[0]):  # no spread: see the module docstring
        p = 1.0 if d[0] == 0 else float(stats.binomtest(len(d), len(d), 0.5).pvalue)
        return {**out, "test": NO_SPREAD, "p": p}
    if len(d) >= WILCOXON_MIN:
        return {**out, "test": WILCOXON, "p": float(stats.wilcoxon(d).pvalue)}
    return {**out, "test": PAIRED_T, "p": float(stats.ttest_rel(var, ref).pvalue)}


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in the input's order; None entries are not tests and stay None.

    The k-th smallest of m p-values is multiplied by (m - k + 1); adjusted values never decrease
    along that order (a running maximum) and are capped at 1.
    """
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for k, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - k) * p))
        out[i] = running
    return out


def verdict(comparison: dict | None, p_adjusted: float | None, alpha: float = ALPHA) -> str:
    """The word for one variant; ``comparison`` None means the variant is the reference."""
    if comparison is None:
        return Verdict.REFERENCE
    if p_adjusted is None:
        return Verdict.TOO_FEW_SEEDS
    if p_adjusted < alpha and comparison["mean_diff"] != 0:
        return Verdict.BETTER if comparison["mean_diff"] > 0 else Verdict.WORSE
    return Verdict.NO_DIFFERENCE


def compare_all(by_variant: Mapping[str, Mapping[int, float]], reference: str, alpha: float = ALPHA) -> dict[str, dict]:
    """Every variant vs ``reference`` ({variant: {seed: value}}), Holm-corrected over the non-reference variants.

    Returns {variant: {"n", "mean_diff", "test", "p", "p_holm", "verdict"}}.
    """
    ref = by_variant.get(reference, {})
    others = [v for v in by_variant if v != reference]
    comps = {v: compare(ref, by_variant[v]) for v in others}
    adjusted = dict(zip(others, holm([comps[v]["p"] for v in others])))
    out = {}
    for v in by_variant:
        if v == reference:
            out[v] = {
                "n": len(ref),
                "mean_diff": None,
                "test": None,
                "p": None,
                "p_holm": None,
                "verdict": Verdict.REFERENCE,
            }
        else:
            out[v] = {**comps[v], "p_holm": adjusted[v], "verdict": verdict(comps[v], adjusted[v], alpha)}
    return out


# --------------------------------------------------------------------------- effect sizes and power

POWER = 0.80  # the power at which the smallest detectable difference and the seeds needed are stated
MAX_SEEDS_NEEDED = 1000  # past this, "seeds needed" is reported as not reachable


def power(delta: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test at ``alpha`` to detect a true mean difference ``delta`` over ``n``
    seeds whose differences have standard deviation ``sd`` (noncentral t)."""

    if n < 2:
        return 0.0
    if sd <= 0:
        return 1.0 if delta else alpha
    return _power_nc(abs(delta) / sd * math.sqrt(n), n - 1, alpha)


def _power_nc(nc: float, df: int, alpha: float) -> float:
    from scipy import stats

    if nc > 60:  # past any power below 1 - 1e-12
        return 1.0
    crit = stats.t.ppf(1 - alpha / 2, df)
    upper, lower = stats.nct.sf(crit, df, nc), stats.nct.cdf(-crit, df, nc)
    # scipy's noncentral t can return NaN far in a tail, where the true value is ~0
    return float(np.nan_to_num(upper) + np.nan_to_num(lower))


def detectable(sd: float, n: int, alpha: float = ALPHA, target: float = POWER) -> float | None:
    """The smallest |difference| that ``n`` seeds detect with power ``target`` (None below 2 seeds)."""
    from scipy.optimize import brentq

    if n < 2 or not math.isfinite(sd):
        return None
    if sd <= 0:
        return 0.0
    nc = brentq(lambda c: _power_nc(c, n - 1, alpha) - target, 1e-9, 60)
    return float(nc * sd / math.sqrt(n))


def seeds_needed(delta: float, sd: float, alpha: float = ALPHA, target: float = POWER) -> int | None:
    """About how many seeds detect a true difference ``delta`` with power ``target`` (None: not within
    MAX_SEEDS_NEEDED, e.g. for no difference at all)."""
    if not delta or not math.isfinite(sd):
        return None
    lo, hi = 2, MAX_SEEDS_NEEDED
    if power(delta, sd, hi, alpha) < target:
        return None
    while lo < hi:  # power grows with n: the first n that reaches the target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power(delta, sd, mid, alpha) < target else (lo, mid)
    return lo


def effect(reference: Mapping[int, float], variant: Mapping[int, float], confidence: float = CONFIDENCE) -> dict:
    """How large a variant's difference from the reference is, over their shared seeds (paired).

    Returns {"n", "delta": mean difference, "ci": half-width of its t-interval, "sd" of the differences,
    "p_better": probability that the variant beats the reference on a new seed (the t predictive
    distribution of one more difference), "detectable": the smallest difference these n seeds detect at
    POWER, "seeds_needed": about how many seeds would detect ``delta`` at POWER}; None where n is too small.
    """
    from scipy import stats

    seeds = sorted(set(reference) & set(variant))
    d = np.round(np.array([variant[s] - reference[s] for s in seeds], dtype=float), DECIMALS)
    out = {"n": len(d), "delta": float(d.mean()) if len(d) else None, "ci": None, "sd": None, "p_better": None,
           "detectable": None, "seeds_needed": None}  # fmt: skip
    if len(d) < 2:
        return out
    sd, n, delta = float(d.std(ddof=1)), len(d), float(d.mean())
    if sd == 0:
        p_better = 1.0 if delta > 0 else 0.0 if delta < 0 else 0.5
    else:
        p_better = float(stats.t.cdf(delta / (sd * math.sqrt(1 + 1 / n)), n - 1))
    return {
        **out,
        "ci": float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)),
        "sd": sd,
        "p_better": p_better,
        "detectable": detectable(sd, n),
        "seeds_needed": seeds_needed(delta, sd) if sd > 0 else None,
    }
