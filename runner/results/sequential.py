"""Sequential seeds: add seeds to the undecided variants until each is decided or has ``max_seeds``, with the
chance of any false "better" / "worse" held at ALPHA over every look and every variant.

Method: alpha spending (Lan & DeMets 1983, "Discrete sequential boundaries for clinical trials",
Biometrika 70:659) with the Pocock-type spending function of Kim & DeMets (1987),
alpha(t) = ALPHA * ln(1 + (e - 1) t), over the information fraction t = n / max_seeds. The look at n seeds
may spend alpha(n / N) - alpha((n - 1) / N) (the first look, at the study's own seeds, alpha(n0 / N)).
Within a look, Holm's step-down over all the study's compared variants (those decided earlier count as
rejected) holds the family-wise error at that look's level; the looks are combined by the union
(Bonferroni) bound, so P(any false verdict) <= sum of the levels = alpha(1) = ALPHA whatever the
correlation between looks: valid, and conservative against exact group-sequential boundaries. Each look
is a paired t-test of the variant against the reference over the first n seeds (all differences equal:
the exact sign test, as in runner.results.stats). tests/test_sequential.py checks the error rate by simulation.

Pure functions: the runner replays the looks from the per-seed values, so the summary of a study run in
pieces, killed and resumed, gives the same verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from runner.results.stats import ALPHA, DECIMALS, NO_SPREAD, PAIRED_T
from runner.results.verdict import Verdict


def spent(t: float, alpha: float = ALPHA) -> float:
    """The error rate spent by information fraction ``t`` (0..1): Pocock-type, alpha * ln(1 + (e - 1) t)."""
    return alpha * math.log(1 + (math.e - 1) * min(max(t, 0.0), 1.0))


def level(n: int, first: int, max_seeds: int, alpha: float = ALPHA) -> float:
    """The level of the look at ``n`` seeds, the first look being at ``first`` seeds."""
    if n == first:
        return spent(n / max_seeds, alpha)
    return spent(n / max_seeds, alpha) - spent((n - 1) / max_seeds, alpha)


def paired_p(reference: Sequence[float], variant: Sequence[float]) -> tuple[float, float, str]:
    """(two-sided p, mean difference, test name) of a paired comparison; the t-test, or the exact sign
    test when every difference is the same."""
    from scipy import stats

    d = np.round(np.asarray(variant, dtype=float) - np.asarray(reference, dtype=float), DECIMALS)
    if np.all(d == d[0]):
        return (1.0 if d[0] == 0 else float(stats.binomtest(len(d), len(d), 0.5).pvalue)), float(d.mean()), NO_SPREAD
    return float(stats.ttest_1samp(d, 0.0).pvalue), float(d.mean()), PAIRED_T


def decide(
    by_variant: Mapping[str, Mapping[int, float]],
    reference: str,
    seeds: Sequence[int],
    first: int,
    max_seeds: int,
    alpha: float = ALPHA,
) -> dict[str, dict]:
    """Replay the looks over ``seeds`` in order (the study's seeds, then the added ones).

    Returns {variant: {"verdict": better | worse | no detectable difference | undecided, "n": seeds at the
    decision (or so far), "p": the last look's p, "level": that look's Holm threshold, "test"}}; a variant
    stays undecided while it has seeds to go and lacks the next one.
    """
    ref = by_variant.get(reference, {})
    others = [v for v in by_variant if v != reference]
    out = {v: {"verdict": Verdict.UNDECIDED, "n": 0, "p": None, "level": None, "test": None} for v in others}
    rejected = 0
    for n in range(first, max_seeds + 1):
        look = seeds[:n]
        ready = [v for v in others if out[v]["verdict"] == Verdict.UNDECIDED and _has(ref, by_variant[v], look, n)]
        if not ready:
            break
        tested = {v: paired_p([ref[s] for s in look], [by_variant[v][s] for s in look]) for v in ready}
        a = level(n, first, max_seeds, alpha)
        rejected += _holm_step(tested, a, len(others), rejected, out, n)
        for v in ready:
            if out[v]["verdict"] == Verdict.UNDECIDED and n == max_seeds:
                out[v]["verdict"] = Verdict.NO_DIFFERENCE
    return out


def _has(ref: Mapping[int, float], var: Mapping[int, float], look: Sequence[int], n: int) -> bool:
    return len(look) == n and all(s in ref and s in var for s in look)


def _holm_step(tested: dict, a: float, m: int, rejected: int, out: dict, n: int) -> int:
    """Holm's step-down at level ``a`` over ``m`` hypotheses, ``rejected`` of them already rejected earlier;
    records each tested variant's look in ``out``; returns how many this look rejects."""
    order = sorted(tested, key=lambda v: tested[v][0])
    now = 0
    for j, v in enumerate(order):
        p, diff, test = tested[v]
        threshold = a / (m - rejected - j)
        out[v].update(n=n, p=p, level=threshold, test=test)
        if p <= threshold and diff != 0 and now == j:  # step-down: stops at the first p above its threshold
            out[v]["verdict"] = Verdict.BETTER if diff > 0 else Verdict.WORSE
            now += 1
    return now


def next_seed(decisions: Mapping[str, dict], seeds: Sequence[int], first: int, max_seeds: int) -> int | None:
    """The seed every undecided variant (and the reference) runs next; None when each variant is decided or
    has ``max_seeds``, or while the study's own seeds are not all in (finish those first)."""
    looked = [d["n"] for d in decisions.values() if d["verdict"] == Verdict.UNDECIDED]
    if not looked or min(looked) < first:
        return None
    n = min(looked) + 1
    return extend(seeds, max_seeds)[n - 1] if n <= max_seeds else None


@dataclass(frozen=True)
class Schedule:
    """A study's looks: the seeds it may run, in order (its own, then the added ones), and where looks begin."""

    seeds: tuple[int, ...]
    first: int  # the study's own seeds: the first look
    max_seeds: int

    @classmethod
    def of(cls, seeds: Sequence[int], max_seeds: int) -> Schedule:
        return cls(tuple(extend(seeds, max_seeds)), len(seeds), max_seeds)

    def decide(self, by_variant: Mapping[str, Mapping[int, float]], reference: str) -> dict[str, dict]:
        return decide(by_variant, reference, self.seeds, self.first, self.max_seeds)

    def next_seed(self, decisions: Mapping[str, dict]) -> int | None:
        return next_seed(decisions, self.seeds[: self.first], self.first, self.max_seeds)


def extend(seeds: Sequence[int], max_seeds: int) -> list[int]:
    """The study's seeds followed by the next integers after the largest, up to ``max_seeds`` in all."""
    out = list(seeds)
    nxt = max(seeds) + 1
    while len(out) < max_seeds:
        out.append(nxt)
        nxt += 1
    return out
