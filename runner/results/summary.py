"""A study's summary: trial records aggregated per variant, with the statistics of runner.stats.

``python -m runner.summary RESULTS_DIR|URI`` (re)writes, from what is in the results dir:

- ``summary.csv`` / ``summary.parquet``: a row per trial (results.COLUMNS), pending and failed ones too.
- ``summary.md``: a row per variant (runner.render): best val accuracy over seeds (n, mean ± 95 % CI,
  std, min, max), finished trials, median best epoch, the train-val gap (final train accuracy - final
  val accuracy, mean over seeds, flagged as overfitting above ``OVERFIT_GAP``), and the comparison with
  the reference over shared seeds (paired test, Holm-corrected p, verdict). Errored trials are left out
  of every statistic. Variant order and the reference are the plan's, from study.json.
- ``confusion_by_variant.json``: {variant: {"classes", "matrix", "trials"}}, the confusion matrices (at
  each trial's best epoch, rows true, columns predicted) summed over the variant's trials; a trial whose
  classes differ from the variant's first is left out.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import statistics
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from runner import cli
from runner.results import render, sequential, stats, studyfile
from runner.results.records import COLUMNS, TRAINED, Status, TrialRecord, cell, read_records
from runner.storage import write_atomic

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
MEASURES = {"test_accuracy": {}, "val_overestimate": {}, "epochs_to_95": {"better": "slower", "worse": "faster"}}


def for_study(records: list[TrialRecord], study: studyfile.StudyFile | None) -> list[VariantSummary]:
    """The variant rows of a results dir: its planned trials, its reference, metric and sequential seeds."""
    if study is None:
        return summarize(records)
    seq = sequential.Schedule.of(study.seeds, study.max_seeds) if study.max_seeds and study.seeds else None
    return summarize([r for r in records if r.planned], study.reference, study.metric, seq)


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
    done = _comparable(records)
    by_seed = _by_seed(done, variants, metric)
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
    """The verdicts of the looks (runner.sequential), not of one test at the final seeds."""
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


def values_by_seed(records: list[TrialRecord], metric: str, pruned: bool = False) -> dict[str, dict[int, float]]:
    """{variant: {seed: value of ``metric``}} over the trials that did not fail (nor were pruned, unless
    ``pruned``: a searcher learns from a pruned trial's value as ASHA left it), in the records' variant order."""
    keep = [r for r in records if r.status != Status.ERROR] if pruned else _comparable(records)
    return _by_seed(keep, list(dict.fromkeys(r.variant for r in records)), metric)


def _comparable(records: list[TrialRecord]) -> list[TrialRecord]:
    """Trials whose numbers describe their setting: not errored (they describe nothing) and not pruned (they
    stopped at an epoch of the scheduler's choosing, so their best is not comparable with a full run's)."""
    return [r for r in records if r.status not in (Status.ERROR, Status.PRUNED)]


def _by_seed(records: list[TrialRecord], variants: list[str], field: str) -> dict[str, dict[int, float]]:
    """{variant: {seed: value}} of a TrialRecord field, where the trial has one."""
    out: dict[str, dict[int, float]] = {v: {} for v in variants}
    for r in records:
        value = getattr(r, field)
        if value is not None:
            out[r.variant][r.seed] = value
    return out


def _measures(
    records: list[TrialRecord], variants: list[str], field: str, reference: str, words: dict
) -> dict[str, Measure]:
    by_seed = _by_seed(records, variants, field)
    tests = stats.compare_all(by_seed, reference)
    out = {}
    for v in variants:
        mean, ci = stats.mean_ci(list(by_seed[v].values()))
        t = tests[v]
        out[v] = Measure(len(by_seed[v]), mean, ci, t["mean_diff"], t["p_holm"], words.get(t["verdict"], t["verdict"]))
    return out


def _variant(v: str, records: list[TrialRecord], by_seed: dict[int, float], test: dict, metric: str,
             extra: dict[str, Measure]) -> VariantSummary:  # fmt: skip
    ok = _comparable(records)
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


def write(results_dir: Path, partial: bool = False) -> tuple[list[TrialRecord], list[VariantSummary]]:
    """Write summary.csv, summary.parquet, summary.md and confusion_by_variant.json into ``results_dir``;
    ``partial`` marks the tables as those of an interrupted study. Returns the records and variant rows."""
    results_dir = Path(results_dir)
    records = read_records(results_dir)
    study = studyfile.read(results_dir)
    variants = for_study(records, study)
    keys = list(study.search.get("space", {})) if study and study.search else []
    rows = [_with_sampled(r.row(), r, study, keys) for r in records if r.planned]
    columns = [*COLUMNS[:2], *keys, *COLUMNS[2:]]
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=columns)
    w.writeheader()
    w.writerows(rows)
    write_atomic(results_dir / "summary.csv", text.getvalue())
    _write_parquet(results_dir / "summary.parquet", rows, columns)
    found = search_found(records, study)
    write_atomic(results_dir / "summary.md", render.markdown(results_dir.name, variants, records, partial, found))
    planned = [r for r in records if r.planned]
    write_atomic(results_dir / "confusion_by_variant.json", json.dumps(confusion_by_variant(results_dir, planned)))
    return records, variants


_found: dict = {}  # search_found's last answer: the tables, the console and the report of one study ask in turn


def search_found(records: list[TrialRecord], study: studyfile.StudyFile | None):
    """(samples best first, importance) of a search study; None for a study without a search. The importance
    fits a forest (~1.4 s for 34 trials), so the same records and study.json reuse the last answer."""
    from runner.results import search_summary

    if study is None or not study.search:
        return None
    planned = [r for r in records if r.planned]
    key = (json.dumps([study.search, study.metric, len(study.trials)], sort_keys=True, default=str),
           tuple((r.variant, r.seed, str(r.status), r.epochs_run, getattr(r, study.metric)) for r in planned))  # fmt: skip
    if key not in _found:
        _found.clear()
        _found[key] = search_summary.samples(planned, study), search_summary.importance(planned, study)
    return _found[key]


def _with_sampled(row: dict, record: TrialRecord, study: studyfile.StudyFile | None, keys: list[str]) -> dict:
    """A trial's row with the values of the searched keys (dotted columns), from its planned config."""
    if not keys:
        return row
    values = study.values(record.variant, record.seed)
    return {**row, **{k: cell(values.get(k)) for k in keys}}


def _write_parquet(path: Path, rows: list[dict], columns: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "variant": pa.string(),
        "seed": pa.int64(),
        "status": pa.string(),
        "best_epoch": pa.int64(),
        "epochs_run": pa.int64(),
        "epochs_to_95": pa.int64(),
        "checkpoint": pa.string(),
        "trial_dir": pa.string(),
        "error": pa.string(),
    }
    for c in columns[2:]:  # sampled columns: numbers stay numbers
        if c not in COLUMNS and c not in types:
            seen = [r[c] for r in rows if r[c] is not None]
            types[c] = pa.string() if any(isinstance(x, str | bool) for x in seen) else pa.float64()
    schema = pa.schema([(c, types.get(c, pa.float64())) for c in columns])
    buf = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    write_atomic(path, buf.getvalue().to_pybytes())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dir", help="the study's results dir (STORAGE/NAME, a directory or s3:// / gs:// URI)")


def run(args: argparse.Namespace) -> int:
    """Rewrite the tables of a results dir (also on a URI) and print the variant table."""
    from runner.storage import Results, is_uri

    if not (is_uri(args.results_dir) or Path(args.results_dir).is_dir()):
        print(f"error: {args.results_dir}: no such results dir; give STORAGE/NAME of a study", file=sys.stderr)
        return 2
    results = Results(args.results_dir)
    try:
        results.pull()
        _, variants = write(results.local)
        results.push()
        print(render.console_table(variants))
    except OSError as e:
        from runner.errors import first_line

        print(f"error: {args.results_dir}: {first_line(e)}", file=sys.stderr)
        return 2
    finally:
        results.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("python -m runner.summary", "Write a study's summary tables from its results dir.")
    add_arguments(p)
    return run(p.parse_args(argv))
