"""A study ready to plan, before Ray starts: the study file loaded with --set and checked, its data decoded and
audited once, its storage and disk space checked (starting Ray while the data decoded made ray.init slower on a
small machine, not faster)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from dataclasses import dataclass

from runner import storage
from runner.config import (
    ConfigError,
    Study,
    TrialConfig,
    check_study,
    load_study,
    parse_seeds,
    parse_set,
    with_overrides,
)
from runner.data.source import StudyData
from runner.driver import console
from runner.driver.results_dir import check_storage
from runner.study.plan import Plan, make_plan, storage_needed
from runner.study.resources import Cluster


@dataclass
class Prepared:
    """A study ready to plan: validated, its data decoded and audited, its storage checked."""

    study: Study
    trials: list[tuple[str, int, TrialConfig]]  # (variant, seed, config) of the study's own seeds
    data: StudyData
    storage: str

    def plan(self, cluster: Cluster, user_limit: int | None, trials: list | None = None) -> Plan:
        """The study's trials (or ``trials``, e.g. the ones a sequential look adds) fitted to ``cluster``."""
        trials = self.trials if trials is None else trials
        return make_plan(self.study, trials, self.data.for_trials(trials), cluster, user_limit)

    def storage_needed(self) -> int:
        """About how many bytes the study's trials write (runner.study.plan.storage_needed)."""
        classes = [len(c) for _, c in self.data.for_trials(self.trials)]
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return storage_needed([(cfg, n) for (_, _, cfg), n in zip(self.trials, classes)], memory)


def prepare(args: argparse.Namespace) -> Prepared:
    """The study loaded and checked, its data decoded and audited, its storage and disk space checked: all before
    Ray starts (starting Ray while the data decoded made ray.init 1-4 s slower on 2 cores, not faster)."""
    study = with_overrides(load_study(args.config), parse_set(args.set))
    if args.name:
        study = dataclasses.replace(study, name=args.name)
    if args.seeds:
        study = dataclasses.replace(study, seeds=parse_seeds(args.seeds))
    if getattr(args, "confirm", None) is not None:
        study = _with_confirm(study, args.confirm, args.config)
    trials = check_study(study, where=args.config)
    if study.search is not None:
        study, trials = _first_samples(study, args.config)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent {args.max_concurrent}: must be >= 1")
    data = _load_data(trials)
    _check_metric(study, data.images)
    prepared = Prepared(study, trials, data, check_storage(args.storage, create=not args.dry_run))
    if args.resume is None and not args.dry_run:
        _check_space(prepared.storage, prepared)
    return prepared


def _with_confirm(study: Study, k: int, where: str) -> Study:
    """--confirm K: the study's Search with confirm=K (checked with the rest of the study)."""
    if study.search is None:
        raise ConfigError(f"--confirm {k}: {where} has no search to confirm (confirm runs a Search's best samples "
                          "over every seed); add search=Search(...) to the study, or drop --confirm")  # fmt: skip
    return dataclasses.replace(study, search=dataclasses.replace(study.search, confirm=k))


def _first_samples(study: Study, where: str) -> tuple[Study, list]:
    """The study with its search's first batch of samples as variants (all of them unless the algorithm learns)."""
    from runner.driver.search import Sampler, batches  # Optuna's import is the searcher's

    samples = Sampler(study.search).ask(batches(study.search)[0])
    study = dataclasses.replace(study, variants={**study.variants, **samples})
    trials = check_study(dataclasses.replace(study, search=None), where=where)  # the samples' values, checked
    longest = max(cfg.train.epochs for _, _, cfg in trials)
    if study.scheduler is not None and study.scheduler.grace_epochs > longest:
        raise ConfigError(f"{where}: ASHA(grace_epochs={study.scheduler.grace_epochs}) is past the longest trial's "
                          f"{longest} epochs; lower grace_epochs or raise train.epochs")  # fmt: skip
    return study, trials


def _load_data(trials: list[tuple[str, int, TrialConfig]]) -> StudyData:
    """Every distinct data config decoded once and audited, the augmentations checked on one image, before any
    trial starts; one data line and audit per data config (its other seeds' splits differ only in val)."""
    from runner.data.audit import format_audit
    from runner.data.augment import check_augment

    data = StudyData()
    data.for_trials(trials)
    for c in {(repr(c.augment), c.data.image_size, c.data.channels): c for _, _, c in trials}.values():
        check_augment(c.augment, c.data.image_size, c.data.channels)
    shown = set()
    for (d, seed), key in data.keys.items():
        if d not in shown:
            shown.add(d)
            print(console.data_line(data.images[key].summary()) + (", val split per seed" if seed is not None else ""))
            print(format_audit(data.images[key].audit))
    return data


def _check_metric(study: Study, images: dict) -> None:
    """metric=test_accuracy needs a test split in every dataset."""
    lacking = sorted({im.source for im in images.values() if not im.has_test})
    if study.metric == "test_accuracy" and lacking:
        raise ConfigError(
            f"metric='test_accuracy': {lacking[0]} has no test split; add ROOT/test/CLASS/ folders or hold one out "
            "with --set data.test_fraction=0.2, or rank by best_val_accuracy"
        )


def _check_space(location: str, prepared: Prepared) -> None:
    """Refuse a study that cannot fit on its storage's disk, before anything starts (a dir; a URI is not checked)."""
    if storage.is_uri(location):
        return
    need, free = prepared.storage_needed(), shutil.disk_usage(location).free
    if need > free:
        raise ConfigError(f"--storage {location}: the study writes about {console.gib(need)} ({len(prepared.trials)} trials, two "
                          f"checkpoints each), and {console.gib(free)} is free there; free some space or pass --storage with "
                          "room (a study that runs out of space stops)")  # fmt: skip
