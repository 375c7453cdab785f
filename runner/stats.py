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
        return "reference"
    if p_adjusted is None:
        return "too few seeds"
    if p_adjusted < alpha and comparison["mean_diff"] != 0:
        return "better" if comparison["mean_diff"] > 0 else "worse"
    return "no detectable difference"


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
            out[v] = {"n": len(ref), "mean_diff": None, "test": None, "p": None, "p_holm": None, "verdict": "reference"}
        else:
            out[v] = {**comps[v], "p_holm": adjusted[v], "verdict": verdict(comps[v], adjusted[v], alpha)}
    return out
