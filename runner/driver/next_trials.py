"""What a study runs after its first trials, read from its results dir: the search's next batch (a search that
learns), the confirmation of its best samples, and the next look of sequential seeds. Each is planned without writing
anything, so a step that cannot join the running Tune run is planned again, the same, as a phase of its own; its
``record`` writes what it adds to the study. ``run``: a runner.driver.phases.Phases.

The confirmation (``Search(confirm=k)``): once the search is over (every batch asked and run), the k samples with the
best score (the searcher's: the mean over every seed with a value, pruned ones as ASHA left them) are recorded in
study.json as ``search.confirmed``, and they run what they lack: a trial ASHA pruned carries on in its own dir from
its last checkpoint (the epochs it ran are kept: resuming is exact), a seed they have no trial for runs as a new
trial. ASHA never stops a confirmed sample, so the confirmed samples end with every epoch of every seed and get the
verdicts of fixed variants (runner.results.summary compares the fixed variants and the confirmed samples, Holm over
them; sequential seeds look at them too). Samples once confirmed stay confirmed; a study that grows (more seeds,
``--confirm`` raised) confirms again what it then lacks.

They are confirmed on the seeds they were picked on, not on fresh ones: a pruned trial then carries on instead of
starting over, and the reference needs no new trials. The price is a verdict that is optimistic (the k were picked
for being best on those seeds); the tables say so, and the held-out test split, which no pick saw, is the honest
estimate where the study has one. ``max_seeds`` adds fresh seeds to the confirmed samples and the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from runner.driver import recover
from runner.results import sequential, studyfile
from runner.results.records import TrialRecord, read_records, values_by_seed
from runner.results.search_summary import top
from runner.results.status import Status
from runner.results.verdict import Verdict
from runner.study.plan import CARRY_ON, TrialSpec


@dataclass(frozen=True)
class Step:
    specs: list[TrialSpec]  # its trials
    line: str  # what the console says of them
    record: Callable[[], None] = lambda: None  # what it adds to the study (study.json), before its trials run
    carried: list[dict] = field(default_factory=list)  # trials that carry on in a dir (TrialSpec params + CARRY_ON)

    @property
    def params(self) -> list[dict]:
        return [*self.carried, *(s.to_param() for s in self.specs)]


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


def confirmation(run) -> Step | None:
    """The confirmation of the search's best samples: what they lack (maybe nothing: its ``record`` still names them
    confirmed). None without ``Search(confirm=k)``, when a trial did not finish, and for a results dir at a URI (a
    pruned trial carries on only in a directory: runner.driver.phases.confirm says so)."""
    study = run.prepared.study
    k = study.search.confirm if study.search is not None else 0
    if not k or run.results.remote:
        return None
    run.results.pull()
    if (records := _finished(run)) is None:
        return None
    found = studyfile.read(run.results.local)
    chosen = top(records, found, k, found.confirmed)
    carried, specs, lines = _lacking(run, found, chosen, {(r.variant, r.seed): r for r in records})

    def record() -> None:
        for p in carried:
            recover.set_aside(Path(run.results.local) / p[CARRY_ON]["dir"])
        search = {**found.search, "confirm": max(k, len(chosen)), "confirmed": chosen}
        studyfile.update(run.results.local, search=search)
        run.results.push()

    return Step(specs, f"confirm the {len(chosen)} best samples by score ({', '.join(chosen)}) run every epoch over "
                f"{len(study.seeds)} seeds: {lines}", record, carried)  # fmt: skip


def _lacking(run, found: studyfile.StudyFile, chosen: list[str], records: dict[tuple[str, int], TrialRecord]):
    """The confirmation's trials: each pruned trial of a chosen sample, carrying on (its recorded spec, and where it
    goes on), and each seed of the study it has no trial for (a new spec); with what the console says of them."""
    study = run.prepared.study
    recorded = {(p["variant"], p["seed"]): p for p in found.trials}
    carry, carried, new = [], [], []
    for v in chosen:
        for seed in study.seeds:
            r = records.get((v, seed))
            if r is not None and r.trial_dir and r.status == Status.PRUNED:
                where = recover.carry(Path(run.results.local), r, f"{v} seed {seed}", recover.Rebuilt(), move=False)
                carry.append({**recorded[(v, seed)], CARRY_ON: where})
                carried.append(f"{v} seed {seed} from epoch {where['epoch']}")
            elif r is None or not r.trial_dir:
                new.append((v, seed, study.trial_config(v, seed)))
    specs = run.prepared.plan(run.plan.cluster, run.user_limit, new).specs if new else []
    line = (_n(carried, "pruned trial carries on from its checkpoint", "pruned trials carry on from their checkpoints")
            + (f" ({', '.join(carried)})" if carried else "") + f", {_n(new, 'new trial', 'new trials')}")  # fmt: skip
    return carry, specs, line


def _n(items: list, one: str, many: str) -> str:
    return f"{len(items)} {one if len(items) == 1 else many}"


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
