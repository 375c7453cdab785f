"""What a search found: its samples ranked with their 95 % CIs, and how much each hyper-parameter mattered.

Pure numbers from the records and study.json (no Ray, no torch). The importance is scikit-learn's
permutation importance of a random forest fitted to (sampled values -> each trial's value of the metric);
pruned trials count with the value they had when ASHA stopped them (what the searcher saw), so a
hopeless region still teaches the forest that it is hopeless.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from runner.results import stats
from runner.results.records import TrialRecord, cell
from runner.results.status import Status

MIN_TRIALS = 6  # fewer trials with a value than this: no importance (a forest of 5 points says nothing)


@dataclass(frozen=True)
class Sample:
    name: str  # s000, ...
    values: dict  # dotted key -> sampled value (as a table cell)
    n: int  # seeds that ran to the end
    mean: float | None  # over those seeds
    ci: float | None
    pruned: int  # seeds ASHA stopped
    score: float | None  # mean over every seed with a value, pruned ones as they stopped (what the searcher saw)
    confirmed: bool = False  # run every epoch over every seed after the search (Search(confirm=k))


def scores(records: list[TrialRecord], metric: str) -> dict[str, float | None]:
    """Each variant's mean of ``metric`` over every seed with a value, pruned ones as they stopped (None without
    any): what a learning searcher is told, and the ``score`` column."""
    from runner.results.records import values_by_seed

    return {
        v: statistics.fmean(x.values()) if x else None for v, x in values_by_seed(records, metric, pruned=True).items()
    }


def samples(records: list[TrialRecord], study) -> list[Sample]:
    """The search's samples, best first: by mean over full runs, then (for the pruned) by the searcher's score."""
    if study is None or not study.search:
        return []
    keys = list(study.search["space"])
    names, confirmed = study.samples, set(study.confirmed)
    metric = study.metric
    score = scores([r for r in records if r.planned], metric)
    out = []
    for name in names:
        mine = [r for r in records if r.variant == name and r.planned]
        full = [getattr(r, metric) for r in mine if r.status not in (Status.ERROR, Status.PRUNED)]
        full = [x for x in full if x is not None]
        mean, ci = stats.mean_ci(full)
        values = study.values(name, mine[0].seed) if mine else {}
        pruned = sum(r.status == Status.PRUNED for r in mine)
        out.append(Sample(name, {k: cell(values.get(k)) for k in keys}, len(full), mean, ci, pruned, score.get(name),
                          name in confirmed))  # fmt: skip
    return sorted(out, key=lambda s: (not s.confirmed, s.mean is None, -(s.mean or 0.0), -(s.score or 0.0)))


def top(records: list[TrialRecord], study, k: int, chosen: list[str] = ()) -> list[str]:
    """The ``k`` samples to confirm: ``chosen`` (confirmed before) first, then the best by the searcher's score
    (the mean over every seed with a value, pruned ones as they stopped), samples without one last."""
    score = scores([r for r in records if r.planned], study.metric)
    rest = sorted(
        (v for v in study.samples if v not in chosen), key=lambda v: (score.get(v) is None, -(score.get(v) or 0.0))
    )
    return [*chosen, *rest][: max(k, len(chosen))]


def importance(records: list[TrialRecord], study, seed: int = 0) -> dict[str, float]:
    """{dotted key: share of the permutation importance} (the drop in the forest's R² when the key's values are
    shuffled, over the sum of the drops), largest first; {} with fewer than MIN_TRIALS trials that have a value."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    if study is None or not study.search:
        return {}
    keys = list(study.search["space"])
    log = set(study.search.get("log", []))
    names = set(study.samples)
    rows, y = [], []
    for r in records:
        value = getattr(r, study.metric)
        if r.variant in names and r.planned and r.status != Status.ERROR and value is not None:
            rows.append(study.values(r.variant, r.seed))
            y.append(value)
    if len(y) < MIN_TRIALS:
        return {}
    x = np.array([[_number(row.get(k), k in log, k, rows) for k in keys] for row in rows], dtype=float)
    forest = RandomForestRegressor(n_estimators=200, random_state=seed, min_samples_leaf=2).fit(x, y)
    drops = permutation_importance(forest, x, np.array(y), REPEATS, seed)
    scores = {k: max(float(m), 0.0) for k, m in zip(keys, drops)}
    total = sum(scores.values()) or 1.0
    return {k: v / total for k, v in sorted(scores.items(), key=lambda kv: -kv[1])}


REPEATS = 20  # shuffles of each hyper-parameter's column


def permutation_importance(forest, x, y, repeats: int, seed: int):
    """sklearn.inspection.permutation_importance(forest, x, y, n_repeats=repeats, random_state=seed)'s
    importances_mean, the same shuffles and the same numbers, with the forest predicting every shuffled copy in one
    call: sklearn calls predict once per copy, 200 trees each time (60 calls took 2.7 s of a search study's end)."""
    import numpy as np
    from sklearn.metrics import r2_score

    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    copies = []
    for col in range(x.shape[1]):  # as sklearn: each column's shuffles compound, from the same seed
        rng, shuffled, order = np.random.RandomState(column_seed), x.copy(), np.arange(len(x))
        for _ in range(repeats):
            rng.shuffle(order)
            shuffled[:, col] = shuffled[order, col]
            copies.append(shuffled.copy())
    predicted = forest.predict(np.vstack(copies)).reshape(x.shape[1], repeats, len(x))
    baseline = r2_score(y, forest.predict(x))
    return np.array([baseline - np.mean([r2_score(y, p) for p in column]) for column in predicted])


def _number(value, log: bool, key: str, rows: list[dict]) -> float:
    """A sampled value as a feature: log10 on a log scale; a choice as its position among the values seen."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        seen = sorted({str(cell(r.get(key))) for r in rows})
        return float(seen.index(str(cell(value))))
    return math.log10(value) if log and value > 0 else float(value)
