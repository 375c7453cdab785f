"""A search's confirmation (``Search(confirm=k)``): the k best samples run every epoch over every seed of the study.

After the search (every batch asked and run), the k samples with the best score (the searcher's: the mean over every
seed with a value, pruned ones as ASHA left them) are recorded in study.json as ``search.confirmed``, and one phase
runs what they lack: a trial ASHA pruned carries on in its own dir from its last checkpoint (the epochs it ran are
kept: resuming is exact), a seed they have no trial for runs as a new trial. ASHA never stops a confirmed sample, so
the confirmed samples end with every epoch of every seed and get the verdicts of fixed variants (runner.results
.summary compares the fixed variants and the confirmed samples, Holm over them; sequential seeds look at them too).

The phase is like the others: study.json records it before it runs, ``--resume`` restores or rebuilds it, and a
study that grows (more seeds, ``--confirm`` raised) confirms again what it then lacks. Samples once confirmed stay
confirmed.

They are confirmed on the seeds they were picked on, not on fresh ones: a pruned trial then carries on instead of
starting over, and the reference needs no new trials. The price is a verdict that is optimistic (the k were picked
for being best on those seeds); the tables say so, and the held-out test split, which no pick saw, is the honest
estimate where the study has one. ``max_seeds`` adds fresh seeds to the confirmed samples and the reference.
"""

from __future__ import annotations

from pathlib import Path

from runner.driver import recover
from runner.driver.phases import Phases
from runner.results import studyfile
from runner.results.records import TrialRecord, read_records
from runner.results.search_summary import top
from runner.results.status import Status
from runner.study.plan import CARRY_ON


def confirm(run: Phases) -> None:
    """Confirm the search's best samples: one phase with what they lack (nothing when they lack nothing)."""
    study = run.prepared.study
    k = study.search.confirm if study.search is not None else 0
    if not k:
        return
    run.results.pull()
    found = studyfile.read(run.results.local)
    records = [r for r in read_records(run.results.local) if r.planned]
    if any(not r.status.finished for r in records):
        return  # interrupted or failed: the summary says so, and --resume carries on
    if run.results.remote:
        run.say(f"note   confirm={k}: pruned trials carry on from their checkpoints only in a results directory; "
                "copy the results dir to a disk and --resume it there with --confirm")  # fmt: skip
        return
    chosen = top(records, found, k, found.confirmed)
    studyfile.update(run.results.local, search={**found.search, "confirm": max(k, len(chosen)), "confirmed": chosen})
    run.results.push()
    params, carried, new = _lacking(run, found, chosen, {(r.variant, r.seed): r for r in records})
    if not params:
        return
    run.say(f"confirm the {len(chosen)} best samples by score ({', '.join(chosen)}) run every epoch over "
            f"{len(study.seeds)} seeds: "
            + _n(carried, "pruned trial carries on from its checkpoint", "pruned trials carry on from their checkpoints")
            + (f" ({', '.join(carried)})" if carried else "")
            + f", {_n(new, 'new trial', 'new trials')}")  # fmt: skip
    run.phase_params(params, looks=True)  # the looks of sequential seeds in its Tune run


def _lacking(run: Phases, found: studyfile.StudyFile, chosen: list[str], records: dict[tuple[str, int], TrialRecord]):
    """The confirmation's trials: each pruned trial of a chosen sample, carrying on (its recorded spec, and where it
    goes on), and each seed of the study it has no trial for (a new spec); with what the console says of them."""
    study = run.prepared.study
    recorded = {(p["variant"], p["seed"]): p for p in found.trials}
    carry, carried, new = [], [], []
    for v in chosen:
        for seed in study.seeds:
            r = records.get((v, seed))
            if r is not None and r.trial_dir and r.status == Status.PRUNED:
                out = recover.Rebuilt()
                where = recover.carry(Path(run.results.local), r, f"{v} seed {seed}", out)
                carry.append({**recorded[(v, seed)], CARRY_ON: where})
                carried.append(f"{v} seed {seed} from epoch {where['epoch']}")
            elif r is None or not r.trial_dir:
                new.append((v, seed, study.trial_config(v, seed)))
    specs = run.prepared.plan(run.plan.cluster, run.user_limit, new).specs if new else []
    return [*carry, *(s.to_param() for s in specs)], carried, [f"{v} seed {s}" for v, s, _ in new]


def _n(items: list, one: str, many: str) -> str:
    return f"{len(items)} {one if len(items) == 1 else many}"
