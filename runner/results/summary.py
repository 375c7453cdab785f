"""A study's summary: its trial records aggregated per variant, with the statistics of runner.results.stats.

``read(results_dir)`` summarizes a results dir once into a ``StudySummary``: per variant, the study's metric over
seeds (n, mean ± 95 % CI, std, min, max), finished trials, median best epoch, the train-val gap (final train
accuracy - final val accuracy, mean over seeds, flagged as overfitting above ``OVERFIT_GAP``), and the comparison
with the reference over shared seeds (paired test, Holm-corrected p, verdict; or the sequential looks); the
secondary measures (test accuracy, val overestimate, epochs to 95 %); a search's samples and importance. Errored
and pruned trials are left out of every statistic. Variant order and the reference are the plan's, from study.json.
Every writer takes that one summary: runner.results.tables, runner.results.report, the driver's console.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

from runner.results import sequential, stats, studyfile
from runner.results.records import TrialRecord, comparable, read_records
from runner.results.records import by_seed as values_of
from runner.results.status import TRAINED, Status
from runner.results.verdict import Verdict

log = logging.getLogger(__name__)

OVERFIT_GAP = 0.20  # train-val accuracy gap (fraction) above which a variant is flagged as overfitting


@dataclass(frozen=True)
class Measure:
    """One number per seed of a variant: mean ± CI over seeds, and the paired comparison with the reference."""

    n: int = 0  # seeds with a value (errored trials left out)
    mean: float | None = None
    ci: float | None = None  # half-width of the 95 % t-interval
    mean_diff: float | None = None  # vs the reference, over shared seeds
    p_holm: float | None = None
    verdict: str = ""


@dataclass(frozen=True)
class VariantSummary:
    variant: str
    trials: int  # planned
    ok: int  # completed or early-stopped
    n: int  # seeds with a value of the study's metric (errored trials left out)
    mean: float | None
    ci: float | None  # half-width of the 95 % t-interval
    std: float | None
    min: float | None
    max: float | None
    best_epoch: float | None  # median over seeds
    train_val_gap: float | None  # mean over seeds
    overfitting: bool
    mean_diff: float | None  # vs the reference, over shared seeds
    test: str | None
    shared_seeds: int
    p: float | None
    p_holm: float | None
    verdict: str
    metric: str = "best_val_accuracy"  # what mean .. verdict are of (runner.config.METRICS)
    effect: dict = field(default_factory=dict)  # stats.effect of the metric vs the reference (empty for it)
    decided_at: int | None = None  # sequential seeds: the seeds at the look that decided (or so far)
    level: float | None = None  # sequential seeds: the Holm threshold of that look
    pruned: int = 0  # trials the scheduler (ASHA) stopped early: counted, kept out of mean .. verdict
    test_accuracy: Measure = Measure()  # the best val epoch's model on the test split
    val_overestimate: Measure = Measure()  # best_val_accuracy - test_accuracy
    epochs_to_95: Measure = Measure()  # convergence speed; its verdict says faster / slower


# What the secondary measures are taken from, and the words of their verdicts ("better" = a larger value).
MEASURES = {
    "test_accuracy": {},
    "val_overestimate": {},
    "epochs_to_95": {Verdict.BETTER: "slower", Verdict.WORSE: "faster"},
}


def for_study(records: list[TrialRecord], study: studyfile.StudyFile | None) -> list[VariantSummary]:
    """The variant rows of a results dir: its planned trials, its reference, metric and sequential seeds."""
    if study is None:
        return summarize(records)
    seq = sequential.Schedule.of(study.seeds, study.max_seeds) if study.max_seeds and study.seeds else None
    compared = study.compared()  # with Search(confirm=k): fixed variants and confirmed samples; the rest is a ranking
    kept = [r for r in records if r.planned and (compared is None or r.variant in compared)]
    return summarize(kept, study.reference, study.metric, seq)


def summarize(
    records: list[TrialRecord],
    reference: str | None = None,
    metric: str = "best_val_accuracy",
    seq: sequential.Schedule | None = None,
) -> list[VariantSummary]:
    """Per variant, in the records' (the plan's) order; ``metric`` compared with ``reference`` (default: the
    first), by one Holm-corrected test, or with ``seq`` by the sequential looks."""
    variants = list(dict.fromkeys(r.variant for r in records))
    reference = reference or (variants[0] if variants else "")
    done = comparable(records)
    by_seed = values_of(done, variants, metric)
    tests = stats.compare_all(by_seed, reference)
    extra = {name: _measures(done, variants, name, reference, words) for name, words in MEASURES.items()}
    rows = [
        _variant(
            v, [r for r in records if r.variant == v], by_seed[v], tests[v], metric, {k: m[v] for k, m in extra.items()}
        )
        for v in variants
    ]
    rows = [replace(r, effect=stats.effect(by_seed[reference], by_seed[r.variant])) if r.variant != reference else r
            for r in rows]  # fmt: skip
    return _sequential_verdicts(rows, by_seed, reference, seq) if seq else rows


def _sequential_verdicts(rows: list[VariantSummary], by_seed: dict, reference: str, seq: sequential.Schedule) -> list:
    """The verdicts of the looks (runner.results.sequential), not of one test at the final seeds."""
    decided = seq.decide(by_seed, reference)
    out = []
    for r in rows:
        d = decided.get(r.variant)
        if d is None:  # the reference
            out.append(r)
            continue
        out.append(replace(r, verdict=d["verdict"], p=d["p"], p_holm=None, test=d["test"], decided_at=d["n"],
                           level=d["level"]))  # fmt: skip
    return out


def _measures(
    records: list[TrialRecord], variants: list[str], field: str, reference: str, words: dict
) -> dict[str, Measure]:
    by_seed = values_of(records, variants, field)
    tests = stats.compare_all(by_seed, reference)
    out = {}
    for v in variants:
        mean, ci = stats.mean_ci(list(by_seed[v].values()))
        t = tests[v]
        out[v] = Measure(len(by_seed[v]), mean, ci, t["mean_diff"], t["p_holm"], words.get(t["verdict"], t["verdict"]))
    return out


def _variant(v: str, records: list[TrialRecord], by_seed: dict[int, float], test: dict, metric: str,
             extra: dict[str, Measure]) -> VariantSummary:  # fmt: skip
    ok = comparable(records)
    values = list(by_seed.values())
    mean, ci = stats.mean_ci(values)
    eps = [r.best_epoch for r in ok if r.best_epoch]
    gaps = [r.train_val_gap for r in ok if r.train_val_gap is not None]
    gap = statistics.fmean(gaps) if gaps else None
    return VariantSummary(
        variant=v,
        trials=len(records),
        ok=sum(r.status in TRAINED for r in records),
        n=len(values),
        mean=mean,
        ci=ci,
        std=statistics.stdev(values) if len(values) > 1 else None,
        min=min(values) if values else None,
        max=max(values) if values else None,
        best_epoch=statistics.median(eps) if eps else None,
        train_val_gap=gap,
        overfitting=gap is not None and gap > OVERFIT_GAP,
        mean_diff=test["mean_diff"],
        test=test["test"],
        shared_seeds=test["n"],
        p=test["p"],
        p_holm=test["p_holm"],
        verdict=test["verdict"],
        metric=metric,
        pruned=sum(r.status == Status.PRUNED for r in records),
        **extra,
    )


def confusion_by_variant(results_dir: Path, records: list[TrialRecord]) -> dict[str, dict]:
    """{variant: {"classes", "matrix", "trials"}}: confusion matrices summed over the variant's trials."""
    out: dict[str, dict] = {}
    for r in records:
        path = Path(results_dir) / r.trial_dir / "confusion_matrix.json"
        if r.status == Status.ERROR or not r.trial_dir or not path.exists():
            continue
        try:
            cm = json.loads(path.read_text())
        except json.JSONDecodeError:
            log.warning("%s: unreadable; left out of the variant's confusion matrix", path)
            continue
        agg = out.setdefault(r.variant, {"classes": cm["classes"], "matrix": None, "trials": 0})
        if cm["classes"] != agg["classes"]:
            log.warning("%s: classes differ from the variant's other trials; left out", path)
            continue
        m = cm["matrix"]
        agg["matrix"] = (
            m if agg["matrix"] is None else [[a + b for a, b in zip(x, y)] for x, y in zip(agg["matrix"], m)]
        )
        agg["trials"] += 1
    return out


def learning_curves(rows: list, key: str) -> dict[str, dict]:
    """{variant: {"epoch", "mean", "lo", "hi", "n"}} of ``key`` per epoch over the variant's seeds: the mean and
    its 95 % confidence band (t-interval; none for one seed).

    A trial that stopped early contributes to the epochs it ran, so ``n`` can shrink with the epoch; an epoch a
    resumed trial reported twice counts once (its last report).
    """
    per_variant: dict[str, dict[int, list[float]]] = {}
    for r in rows:
        if r.status == Status.ERROR:
            continue
        mine = {e["epoch"]: e[key] for e in r.epochs if e.get(key) is not None}
        for epoch, value in mine.items():
            per_variant.setdefault(r.variant, {}).setdefault(epoch, []).append(value)
    out = {}
    for v, by_epoch in per_variant.items():
        epochs = sorted(by_epoch)
        per_epoch = [stats.mean_ci(by_epoch[e]) for e in epochs]
        out[v] = {
            "epoch": epochs,
            "mean": [m for m, _ in per_epoch],
            "lo": [m - (ci or 0.0) for m, ci in per_epoch],
            "hi": [m + (ci or 0.0) for m, ci in per_epoch],
            "n": [len(by_epoch[e]) for e in epochs],
        }
    return out


@dataclass(frozen=True)
class StudySummary:
    """A results dir summarized once: what every writer (tables, report, console, advice) takes."""

    results_dir: Path
    study: studyfile.StudyFile | None  # study.json (None for a dir without one)
    records: list[TrialRecord]  # every trial dir, and the planned trials that never started
    variants: list[VariantSummary]  # a row per variant, in the plan's order
    search: tuple | None  # (samples best first, importance) of a search study; None without a search

    @property
    def planned(self) -> list[TrialRecord]:
        """The trials the study plans now (a grown study's dropped ones stay on disk, out of the tables)."""
        return [r for r in self.records if r.planned]

    @property
    def unfinished(self) -> list[TrialRecord]:
        """Planned trials that --resume runs (stopped by Ctrl-C, SIGTERM, a fault, or never started)."""
        return [r for r in self.planned if r.status.unfinished]


def read(results_dir: Path) -> StudySummary:
    """Summarize what ``results_dir`` holds: its records, the variant rows, and a search's samples and importance
    (which fits a forest: once per study end)."""
    from runner.results import search_summary

    results_dir = Path(results_dir)
    records = read_records(results_dir)
    study = studyfile.read(results_dir)
    planned = [r for r in records if r.planned]
    search = None
    if study is not None and study.search:
        search = search_summary.samples(planned, study), search_summary.importance(planned, study)
    return StudySummary(results_dir, study, records, for_study(records, study), search)
