"""What a study runs after its first trials, read from its results dir: the search's next batch (a search that
learns) and the next look of sequential seeds. Each is planned without writing anything, so a step that cannot join
the running Tune run is planned again, the same, as a phase of its own. ``run``: a runner.driver.phases.Phases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from runner.results import sequential, studyfile
from runner.results.records import read_records, values_by_seed
from runner.results.verdict import Verdict
from runner.study.plan import TrialSpec


@dataclass(frozen=True)
class Step:
    specs: list[TrialSpec]  # its trials
    line: str  # what the console says of them
    record: Callable[[], None] = lambda: None  # what it adds to the study (study.json), before its trials run


def batch(run) -> Step | None:
    """The search's next batch of samples, over the study's seeds: the searcher told each sample's mean over its
    seeds so far (replayed from study.json, as ``--resume`` does). None without one, and when a trial did not finish
    (interrupted or failed: the summary says so, and --resume carries on)."""
    from runner.driver import search
    from runner.results.search_summary import scores

    study = run.prepared.study
    if study.search is None or len(sizes := search.batches(study.search)) == 1:
        return None
    run.results.pull()
    found = studyfile.read(run.results.local)
    recorded = found.search["batches"]
    if len(recorded) >= len(sizes) or (records := _finished(run)) is None:
        return None
    sampler = search.replay(study.search, [{v: found.doc["variants"][v] for v in b} for b in recorded],
                            scores(records, study.metric))  # fmt: skip
    samples = sampler.ask(sizes[len(recorded)])
    study = run.prepared.study = replace(study, variants={**study.variants, **samples})

    def record() -> None:
        studyfile.update(run.results.local, variants={v: dict(c) for v, c in study.variants.items()},
                         search={**found.search, "batches": [*recorded, list(samples)]})  # fmt: skip

    trials = [(v, seed, study.trial_config(v, seed)) for v in samples for seed in study.seeds]
    return Step(run.prepared.plan(run.plan.cluster, run.user_limit, trials).specs,
                f"search {len(samples)} more samples ({', '.join(samples)}), suggested from the results of "
                f"{sampler.asked - len(samples)}", record)  # fmt: skip


def look(run) -> Step | None:
    """The next look of sequential seeds (runner.results.sequential): the next seed for the undecided variants and
    the reference. None when every variant is decided or has max_seeds, and when a trial did not finish."""
    study = run.prepared.study
    if not study.max_seeds:
        return None
    run.results.pull()  # a URI's trials wrote there; the looks read a local copy
    records = _finished(run)
    if records is None:
        return None
    compared = studyfile.read(run.results.local).compared()  # with Search(confirm=k): not the unconfirmed
    looked = [r for r in records if compared is None or r.variant in compared]
    schedule = sequential.Schedule.of(study.seeds, study.max_seeds)
    decisions = schedule.decide(values_by_seed(looked, study.metric), run.plan.reference)
    seed = schedule.next_seed(decisions)
    if seed is None:
        return None
    undecided = [v for v, d in decisions.items() if d["verdict"] == Verdict.UNDECIDED]
    have = {(r.variant, r.seed) for r in records}
    trials = [(v, seed, study.trial_config(v, seed)) for v in [run.plan.reference, *undecided] if (v, seed) not in have]
    return Step(run.prepared.plan(run.plan.cluster, run.user_limit, trials).specs,
                f"seeds  undecided after {decisions[undecided[0]]['n']} seeds: {', '.join(undecided)}; adding seed "
                f"{seed} to them and {run.plan.reference}")  # fmt: skip


def _finished(run) -> list | None:
    """The records of the trials study.json plans, when every one finished; None when one did not."""
    records = [r for r in read_records(run.results.local) if r.planned]
    return None if any(not r.status.finished for r in records) else records
