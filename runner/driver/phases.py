"""A study's runs into its results dir, phase by phase: each phase is one Ray Tune run of some trials.

- A new study: one phase, every trial of the plan.
- ``--resume``: the newest phase restored (its unfinished and errored trials carry on from their last
  checkpoint), then, when the study file now plans trials the dir lacks (more seeds, new variants), one
  new phase with just those. Trials already there are never rerun or rewritten; a changed variant or
  changed data is refused (runner.study.plan.grow).
- ``Study(max_seeds=N)``: after that, look again (runner.results.sequential) and run the next seed for the
  undecided variants and the reference, until every variant is decided or has N seeds. The looks run inside
  one Tune run (``looks=True``): each look's trials are added to the run's phase in study.json and queued as
  the last trials end, in their processes; a learning search's later batches too (runner.driver.next_trials).
  A step that needs data the run lacks (a val split per seed), and the steps after ``--resume``, start a Tune
  run of their own.

study.json records every phase's trials, so the newest one can be restored and the summary covers all.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from runner.config import ConfigError, TrialConfig
from runner.driver import next_trials, recover, tuner
from runner.driver.prepare import Prepared
from runner.results import files, studyfile
from runner.results.records import read_records
from runner.results.status import Status
from runner.storage import Results
from runner.study.plan import CARRY_ON, Plan, TrialSpec, grow


@dataclass
class Phases:
    """What the phases of one CLI call share."""

    prepared: Prepared  # the study, its data, and how to plan more trials
    plan: Plan
    results: Results
    say: Callable[[str], None]  # a line for the console
    user_limit: int | None = None
    datasets: dict | None = None  # data key -> Ray Datasets, made as phases need them
    running: tuple[frozenset[str], int] = (frozenset(), 0)  # the running Tune run's data keys and most epochs

    def phase(self, specs: Iterable[TrialSpec], record: bool = True, looks: bool = False) -> None:
        """Run ``specs`` as a new phase in the results dir, recorded in study.json first; with ``looks``, the
        looks of sequential seeds run in it too."""
        self.phase_params([s.to_param() for s in specs], record, looks)

    def phase_params(self, params: list[dict], record: bool = True, looks: bool = False) -> None:
        """Run the trials ``params`` (TrialSpec params, maybe carrying on in a dir) as a new phase; with ``looks``,
        the search's next batches and the looks of sequential seeds run in its Tune run (``_more``)."""
        if record:
            self._record(params)
        self._run(params, resume=False, more=self._more if looks else None)

    def restore(self, params: list[dict]) -> None:
        """Restore the newest phase (its trials ``params``): unfinished and errored trials carry on."""
        self._run(params, resume=True)

    def rebuild(self, params: list[dict]) -> None:
        """Run the trials of a phase rebuilt from its trial dirs (runner.driver.recover) as a new Tune run."""
        self._run(params, resume=False)

    def _run(self, params: list[dict], resume: bool, more: Callable[[], list[dict]] | None = None) -> None:
        from runner.data.ray_data import to_ray_datasets

        self.datasets = self.datasets or {}
        for p in params:  # data keys are named by content, so a phase recorded earlier names today's datasets
            if (key := self._data_key(p)) not in self.datasets:
                self.datasets[key] = to_ray_datasets(self.prepared.data.images[key])
        self.running = frozenset(self.datasets), max(_epochs(p) for p in params)
        tuner.run_trials(params, self.plan.concurrent, self.datasets, self.results.uri, resume=resume,
                         asha=self.prepared.study.scheduler, samples=self._prunable, more=more)  # fmt: skip

    def _data_key(self, param: dict) -> str:
        return self.prepared.data.key(TrialConfig.from_dict(param["trial"]).data, param["seed"])

    def _more(self) -> list[dict]:
        """The trials to add to the running Tune run as its last trials end (Tune's rows of them are in the results
        dir): the search's next batch, else its confirmation, else (once a search's confirmation ran) the next look of
        sequential seeds; none when there are none, or when they need data the run was not given, or more epochs than
        its ASHA counts to (they then run as a phase of their own)."""
        step = next_trials.batch(self)
        if step is None and self._confirmation_ahead():
            step = next_trials.confirmation(self)
            if step is not None and not step.params:  # the best samples lack nothing: named confirmed, then the looks
                step.record()
                step = None
        if step is None and not self._confirmation_ahead():
            step = next_trials.look(self)
        params = step.params if step else []
        datasets, epochs = self.running
        if not step or any(self._data_key(p) not in datasets or _epochs(p) > epochs for p in params):
            return []
        step.record()
        self.say(step.line)
        found = studyfile.read(self.results.local)
        known = {(p["variant"], p["seed"]) for p in found.trials}  # a carried-on trial is in study.json already
        trials = [*found.trials, *(p for p in params if (p["variant"], p["seed"]) not in known)]
        studyfile.update(self.results.local, trials=trials,
                         phases=[*map(list, found.phases[:-1]), [*found.phases[-1], *params]])  # fmt: skip
        self.results.push()
        return params

    def _confirmation_ahead(self) -> bool:
        """A search that confirms its best samples (``Search(confirm=k)``) that has not chosen them yet."""
        search = self.prepared.study.search
        return bool(search and search.confirm) and not studyfile.read(self.results.local).confirmed

    def _prunable(self) -> frozenset[str]:
        """The variants ASHA may stop: the search's samples, less those confirmed (the reference and fixed variants
        always run every epoch)."""
        found = studyfile.read(self.results.local)
        return frozenset(found.samples) - set(found.confirmed) if found else frozenset()

    def _record(self, params: list[dict]) -> None:
        found = studyfile.read(self.results.local)
        known = {(p["variant"], p["seed"]) for p in found.trials}
        trials = [*found.trials, *(p for p in params if (p["variant"], p["seed"]) not in known)]
        studyfile.update(self.results.local, trials=trials, phases=[*map(list, found.phases), params])
        self.results.push()


def resume(run: Phases, where: str) -> None:
    """Finish the newest phase, then run the trials the study file adds (refusing changed variants or data)."""
    found = studyfile.read(run.results.local)
    _recorded_samples(run, found)
    growth = grow(run.plan, list(found.trials), where)
    looked = {k for k in growth.removed if _by_a_look(run.prepared.study, k)}
    removed = [k for k in growth.removed if k not in looked]
    if removed:
        k = removed[0]
        run.say(f"note   {len(removed)} trials no longer in the study (e.g. {k[0]} seed {k[1]}) are kept on "
                "disk and left out of the tables")  # fmt: skip
    # a phase that confirmed samples in its Tune run lists a pruned trial, then its carrying on: the last one counts
    latest = list({(p["variant"], p["seed"]): p for p in found.phases[-1]}.values()) if found.phases else []
    if any("classes" not in p or "fit" not in p for p in latest):
        raise ConfigError(f"{where}: written by an older runner, whose trials this one cannot carry on; finish it with "
                          "that version, or start a new study (runner summary still reads it)")  # fmt: skip
    records = {(r.variant, r.seed): r for r in read_records(run.results.local)}
    if latest and not recover.started(run.results.local, latest):
        _start(run, latest, records)  # Tune's newest state is the phase before's: restoring it would run nothing
    elif any(not _finished(records.get((p["variant"], p["seed"]))) for p in latest):
        _carry_on(run, latest)
    if growth.new or removed:
        now = {(s.variant, s.seed) for s in run.plan.specs} | looked
        _update_study(run, [p for p in found.trials if (p["variant"], p["seed"]) in now])
    if growth.new:
        variants = ", ".join(dict.fromkeys(s.variant for s in growth.new))
        run.say(f"grow   {len(growth.new)} new trials ({variants}); the {len(records)} trials already there are kept")
        run.phase(growth.new)


def _by_a_look(study, trial: tuple[str, int]) -> bool:
    """Whether a trial study.json has and the study file does not plan was added by a look of sequential seeds:
    a variant of the study, at a seed past its own."""
    variant, seed = trial
    return bool(study.max_seeds) and variant in study.variants and seed not in study.seeds


def _start(run: Phases, latest: list[dict], records: dict) -> None:
    """Run the newest phase, which Tune never saved a state of (the study stopped as it began): what it lacks, a
    trial with a dir carrying on there (a confirmed sample's pruned trial: from where it was pruned)."""
    left = [p for p in latest if not _finished(records.get((p["variant"], p["seed"])))
            or (CARRY_ON in p and records[(p["variant"], p["seed"])].status == Status.PRUNED)]  # fmt: skip
    if not left:
        return
    run.say(f"phase  the newest phase ({len(latest)} trials) never started (the study stopped as it began); "
            f"running its {len(left)} trials now")  # fmt: skip
    _drop_unsaved_dirs(run)
    if run.results.remote:
        run.rebuild(left)
        return
    fresh = recover.plan(run.results.local, [p for p in left if CARRY_ON not in p])
    run.rebuild([*(p for p in left if CARRY_ON in p), *fresh.params])


def _recorded_samples(run: Phases, found: studyfile.StudyFile) -> None:
    """A learning search's later batches are in study.json, not in the study file: plan them as the dir has them
    (search_batches checks they are still what the searcher suggests)."""
    study = run.prepared.study
    if study.search is None or not found.search:
        return
    names = [v for batch in found.search.get("batches", []) for v in batch if v not in study.variants]
    if names:
        study = run.prepared.study = replace(
            study, variants={**study.variants, **{v: found.doc["variants"][v] for v in names}}
        )
        run.plan = run.prepared.plan(run.plan.cluster, run.user_limit, study.trials())


def _carry_on(run: Phases, latest: list[dict]) -> None:
    """Restore the newest phase from Tune's saved state, or, when that state is cut short or behind the trial dirs
    (a storage fault as Tune saved it), rebuild the phase from its trial dirs, saying which trials run again."""
    problem = recover.problem(run.results.local, latest, weights=not run.results.remote)
    if problem is None:
        run.restore(latest)
        _never_queued(run, latest)
        return
    if run.results.remote:
        raise recover.refuse_remote(run.results.uri, problem)
    rebuilt = recover.plan(run.results.local, latest)
    for line in rebuilt.lines(problem):
        run.say(line)
    run.rebuild(rebuilt.params)


def _never_queued(run: Phases, latest: list[dict]) -> None:
    """Run the trials of the restored phase that Tune's saved state never had (a batch or look added to the running
    phase by ``Phases._more`` just before the study was killed), once the rest has finished."""
    run.results.pull()
    records = {(r.variant, r.seed): r for r in read_records(run.results.local)}
    left = [p for p in latest if not getattr(records.get((p["variant"], p["seed"])), "trial_dir", "")]
    if not left or any(not r.status.finished for r in records.values() if r.planned and r.trial_dir):
        return
    run.say(f"phase  {len(left)} trials added to the phase as the study stopped never reached Tune's saved state; "
            "running them now")  # fmt: skip
    _drop_unsaved_dirs(run)
    run.rebuild(left)


def _drop_unsaved_dirs(run: Phases) -> None:
    """Trial dirs without a file of Tune's (params.json, result.json): made for a phase Tune never got going, or by
    a trial that ran before Tune saved anything of it. Such a trial runs again from its first epoch, to the same
    results; its dir goes, so each trial has one dir."""
    if run.results.remote:
        return
    for d in run.results.local.glob("*_seed*_*"):
        if d.is_dir() and not (d / files.RESULT).exists() and not (d / files.PARAMS).exists():
            shutil.rmtree(d)


def _finished(record) -> bool:
    return record is not None and record.status.finished


def _update_study(run: Phases, kept: list[dict]) -> None:
    """study.json as the study file now is: its seeds, variants, reference, and the trials it still plans (a new
    phase adds its own)."""
    from runner.driver import search

    study = run.prepared.study
    searched = {}
    if study.search is not None and study.search.algorithm != "optuna":
        confirmed = studyfile.read(run.results.local).confirmed  # a confirmation stays confirmed
        record = search.record(study)
        searched = {"search": {**record, "confirm": max(record["confirm"], len(confirmed)), "confirmed": confirmed}}
    studyfile.update(run.results.local, seeds=list(study.seeds), max_seeds=study.max_seeds, reference=run.plan.reference,
                     variants={v: dict(c) for v, c in study.variants.items()}, metric=study.metric, trials=kept,
                     **searched)  # fmt: skip
    run.results.push()


def search_batches(run: Phases) -> None:
    """A search that learns (algorithm="optuna"): tell the searcher each sample's mean over its seeds, and run its
    next batch of samples over the study's seeds, until it has asked for every sample. The batches after it run in
    the same Tune run (``Phases._more``)."""
    while (batch := next_trials.batch(run)) is not None:
        batch.record()
        run.say(batch.line)
        run.phase(batch.specs, looks=True)


def confirm(run: Phases) -> None:
    """Confirm the search's best samples (runner.driver.next_trials.confirmation), when the study's first Tune run did
    not (a study resumed or grown, ``--confirm`` raised): a phase with what they lack, the looks after it in its run."""
    search = run.prepared.study.search
    if search is not None and search.confirm and run.results.remote:
        run.say(f"note   confirm={search.confirm}: pruned trials carry on from their checkpoints only in a results "
                "directory; copy the results dir to a disk and --resume it there with --confirm")  # fmt: skip
    if (step := next_trials.confirmation(run)) is None:
        return
    step.record()
    if step.params:
        run.say(step.line)
        run.phase_params(step.params, looks=True)


def sequential_seeds(run: Phases) -> None:
    """Look, and run the next seed for the undecided variants and the reference, until none is left: the looks
    after it in the same Tune run (``Phases._more``)."""
    while (look := next_trials.look(run)) is not None:
        run.say(look.line)
        run.phase(look.specs, looks=True)


def _epochs(param: dict) -> int:
    return param["trial"]["train"]["epochs"]
