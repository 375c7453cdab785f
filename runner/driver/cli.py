"""CLI: ``python -m runner.tune CONFIG [--set KEY=VALUE ...] [--storage DIR|URI] [--name NAME] [--address ADDR]
[--max-concurrent N] [--dry-run] [--resume [DIR]] [--verbose]`` (also ``runner tune ...``).

Two steps: ``prepare`` (the study file, --set, validation, the data decoded and audited, the storage
checked) and ``execute`` (Ray started, the plan fitted to the cluster, the trials run, the tables
written). ``--dry-run`` prints the plan ``prepare`` leads to on this machine and starts nothing. Exit
codes: 0 every trial finished (diverged trials are results), 1 some trial failed (named on the
console), 2 a problem with the input (one line saying what, where and how to fix it), 74 the results storage
failed mid-study (one line; --resume once fixed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner import cli, storage
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
from runner.errors import GONE, STORAGE_EXIT, StorageFault, storage_fix
from runner.study.plan import Plan, make_plan
from runner.study.resources import Cluster

if TYPE_CHECKING:
    from runner.data.source import StudyData

DEFAULT_STORAGE = "~/ray_results"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="study file defining `study = Study(...)`, e.g. configs/init_study.py")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a trial setting for every trial, e.g. --set train.epochs=3 --set data.path=~/images",
    )
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        help="where results dirs go: a directory (shared by every node of "
        f"a cluster) or an s3:// / gs:// URI (default {DEFAULT_STORAGE})",
    )
    p.add_argument("--name", help="results dir name under --storage (default: the study's name, numbered if taken)")
    p.add_argument("--seeds", metavar="SEEDS", help="the study's seeds instead of the file's, e.g. 0-5 or 0,1,2,7; "
                   "with --resume, runs only the trials the results dir lacks")  # fmt: skip
    p.add_argument("--address", help="join a running Ray cluster (e.g. auto, or HEAD_IP:6379) instead of starting one "
                   "(default: $RAY_ADDRESS when set, as for ray.init and `ray job submit`)")  # fmt: skip
    p.add_argument(
        "--max-concurrent", type=int, metavar="N", help="run at most N trials at once (default: as many as fit)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the trial plan, resources and data summary; start nothing"
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="RESULTS_DIR",
        help="finish an interrupted study: its unfinished trials only (default: the study's latest results dir)",
    )
    p.add_argument("--verbose", action="store_true", help="show Ray's own logs")


def main(argv: list[str] | None = None, exiting: bool = False) -> int:
    """``exiting``: the process ends with ``exit_process`` right after, which stops a local Ray at once."""
    p = cli.parser("python -m runner.tune", "Run a study: every variant x seed as a Ray Tune trial.")
    add_arguments(p)
    return run(p.parse_args(argv), exiting)


def _address(args: argparse.Namespace) -> tuple[str | None, str]:
    """The cluster to join (None: start a local one) and how to name it in an error: --address, else RAY_ADDRESS,
    which Ray sets for a `ray job submit` entrypoint and ray.init would join."""
    if args.address:
        return args.address, f"--address {args.address}"
    env = os.environ.get("RAY_ADDRESS", "").strip()
    return (env, f"RAY_ADDRESS={env}") if env else (None, "")


def run(args: argparse.Namespace, exiting: bool = False) -> int:
    """prepare -> (dry run: print the plan | execute); errors the user can fix are one line, exit 2. Ray is shut
    down at the end, unless ``exiting`` after a study that ran to its end on a local Ray (exit_process kills it)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logging.getLogger("runner").addHandler(handler)
    logging.getLogger("runner").setLevel(logging.WARNING)
    ended = None  # execute's exit code: 0 or 1 when every trial ran to its end
    try:
        t0 = time.time()
        prepared = prepare(args)
        if args.dry_run:
            return dry_run(prepared, args)
        ended = execute(prepared, args, t0)
        return ended
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StorageFault as fault:
        print(f"error: {fault.line}", file=sys.stderr)
        return STORAGE_EXIT
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        from runner.driver.tuner import DRIVER_ENV

        # A study that ran to its end has written every file: exit_process kills its local Ray. One that stopped
        # (Ctrl-C, a fault) shuts Ray down gracefully, so nothing a trial or Tune still writes is cut short.
        if not (exiting and ended in (0, 1) and os.environ.get(DRIVER_ENV) == str(os.getpid())):
            _shutdown_ray()


def _shutdown_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


# --------------------------------------------------------------------------- prepare


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
        """About how many bytes the study's trials write (runner.plan.storage_needed)."""
        from runner.study.plan import storage_needed

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
    trials = check_study(study, where=args.config)
    if study.search is not None:
        study, trials = _first_samples(study, args.config)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent {args.max_concurrent}: must be >= 1")
    data = _load_data(trials)
    _check_metric(study, data.images)
    prepared = Prepared(study, trials, data, storage.check_storage(args.storage, create=not args.dry_run))
    if args.resume is None and not args.dry_run:
        _check_space(prepared.storage, prepared)
    return prepared


def _first_samples(study: Study, where: str) -> tuple[Study, list]:
    """The study with its search's first batch of samples as variants (all of them unless the algorithm learns)."""
    from runner.driver.search import Sampler, batches

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
    from runner.data.source import StudyData

    data = StudyData()
    data.for_trials(trials)
    for c in {(repr(c.augment), c.data.image_size, c.data.channels): c for _, _, c in trials}.values():
        check_augment(c.augment, c.data.image_size, c.data.channels)
    shown = set()
    for (d, seed), key in data.keys.items():
        if d not in shown:
            shown.add(d)
            print(_data_line(data.images[key].summary()) + (", val split per seed" if seed is not None else ""))
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


def dry_run(prepared: Prepared, args: argparse.Namespace) -> int:
    """The plan on this machine (a cluster given by --address is not contacted); nothing is created."""
    cpus = float(os.cpu_count() or 1)
    plan = prepared.plan(Cluster(cpus=cpus, gpus=0.0, node_cpus=cpus, node_gpus=0.0), args.max_concurrent)
    address, _ = _address(args)
    where = "this machine" if not address else f"this machine (the cluster at {address} is not contacted in a dry run)"
    print(f"{_study_line(plan)}, {plan.concurrent} at a time on {where} ({cpus:g} CPUs)")
    print(f"output {storage.join(prepared.storage, plan.study)}")
    _print_search(prepared.study)
    print(f"disk   about {_gib(prepared.storage_needed())} of checkpoints, events and results")
    print()
    w = max(7, *(len(s.variant) for s in plan.specs))
    print(f"{'variant':<{w}}  seed  epochs  batch  workers  cpus/worker  gpus/worker  changes")
    for s in plan.specs:
        cfg = s.config
        changes = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in prepared.study.variants[s.variant].items()) or "(base)"  # fmt: skip
        print(
            f"{s.variant:<{w}}  {s.seed:>4}  {cfg.train.epochs:>6}  {cfg.train.batch_size:>5}  "
            f"{cfg.resources.workers_per_trial:>7}  {s.fit.cpus_per_worker:>11g}  {cfg.resources.gpus_per_worker:>11g}  {changes}"
        )
    print("\ndry run: nothing started")
    return 0


# --------------------------------------------------------------------------- execute


def execute(prepared: Prepared, args: argparse.Namespace, t0: float) -> int:
    """Start or join Ray, fit the plan, run its trials into the results dir (runner.phases), write the tables."""
    from runner.storage import Results

    resuming = args.resume is not None
    study = prepared.study
    results = Results(
        storage.resume_dir(prepared.storage, study.name, args.resume)
        if resuming
        else storage.new_results_dir(prepared.storage, study.name, explicit=bool(args.name))
    )
    log_file = Path(tempfile.mkstemp(prefix="runner-", suffix=".log")[1])  # Ray's logs; kept with the results
    identity = None
    try:
        with storage.Lock(results.uri):
            identity = storage.identity(results.uri)
            return _execute(prepared, args, t0, results, resuming, log_file)
    except StorageFault as fault:
        gone = fault.line.startswith(GONE)
        if gone and identity is not None:  # a local dir (a URI has no identity)
            from runner.driver.tuner import remove_remake

            _shutdown_ray()  # a trial's last sync, still on its way, would make the vanished dir again
            remove_remake(results.uri)
        kept = _keep_log(log_file, results, gone=gone)
        if not gone:  # a dir that is gone has nothing to sum up, and writing the tables would make it again
            _write_partial_summary(results)
        raise StorageFault(
            f"{results}: the study stopped: {fault.line}; {storage_fix(fault.line)}, then finish it "
            f"with {_command(args, results)} (details in {kept})"
        ) from None
    finally:
        if _keep_log(log_file, results).parent == results.local and results.remote:
            try:
                results.push()  # a URI's runner.log goes with its tables
            except OSError:
                pass
        results.close()


def _keep_log(log_file: Path, results, gone: bool = False) -> Path:
    """Ray's log of this run, appended to the results dir's runner.log (beside the dir when it is gone, also when
    a last sync of Ray's made it again; left where it is when neither can be written)."""
    if not log_file.exists():
        return results.local / "runner.log"
    if log_file.stat().st_size == 0:  # Ray said nothing (or never started): no file to keep
        log_file.unlink()
        return results.local / "runner.log"
    beside = results.local.parent / f"{results.local.name}.runner.log"
    for target in (beside,) if gone else (results.local / "runner.log", beside):
        try:
            if target.parent.is_dir():
                with open(target, "ab") as out:
                    out.write(log_file.read_bytes())
                log_file.unlink()
                return target
        except OSError:
            continue
    return log_file


def _write_partial_summary(results) -> None:
    """The tables of what finished, if the storage takes them now. Quietly: files the full disk left empty
    read as damaged rows, and the one line about the fault already says why."""
    from runner.results import summary

    quiet = logging.getLogger("runner")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        summary.write(results.local, partial=True)
        results.push()
    except Exception:  # noqa: BLE001 - the storage just failed; the tables are rebuilt by runner summary
        pass
    finally:
        quiet.setLevel(level)


def _execute(prepared: Prepared, args: argparse.Namespace, t0: float, results, resuming: bool, log_file: Path) -> int:
    from runner.driver import phases, tuner
    from runner.driver.trial_progress import make_printer
    from runner.study.resources import amp_note

    cluster = tuner.init_ray(*_address(args), args.verbose, log_file)
    tuner.check_shared_storage(prepared.storage, cluster)
    # SIGTERM stops the study like Ctrl-C (Tune saves its state, the partial summary is written); set after
    # ray.init, which installs a handler of its own that would end the process at once.
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    plan = prepared.plan(cluster, args.max_concurrent)
    if resuming:
        _check_resumable(results, prepared.study, args.config)

    _print_plan(plan, results, resuming)
    _print_search(prepared.study)
    if note := amp_note(any(c.train.amp for _, _, c in prepared.trials), cluster.gpus > 0):
        print(f"note   {note}")
    _write_study_files(results, prepared, plan, args.config, resuming)
    run = phases.Run(prepared, plan, results, make_printer, print, args.max_concurrent)
    t_fit = time.time()
    if resuming:
        phases.resume(run, f"--resume {results}: {args.config} (with its --set values)")
    else:
        run.phase(plan.specs, record=False)  # study.json holds them as its first phase
    phases.search_batches(run)
    phases.sequential_seeds(run)
    _write_hparams(results, run.prepared)  # the variants a search or sequential seeds added
    fit_seconds = time.time() - t_fit
    return _finish(args, results, _write_tables(results), time.time() - t0, fit_seconds)


def _check_space(location: str, prepared: Prepared) -> None:
    """Refuse a study that cannot fit on its storage's disk, before anything starts (a dir; a URI is not checked)."""
    import shutil

    if storage.is_uri(location):
        return
    need, free = prepared.storage_needed(), shutil.disk_usage(location).free
    if need > free:
        raise ConfigError(f"--storage {location}: the study writes about {_gib(need)} ({len(prepared.trials)} trials, two "
                          f"checkpoints each), and {_gib(free)} is free there; free some space or pass --storage with "
                          "room (a study that runs out of space stops)")  # fmt: skip


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def _check_resumable(results, study: Study, config: str) -> None:
    """--resume needs the dir's study.json, of this study (its name or its study file's)."""
    from runner.results import studyfile

    results.pull()
    found = studyfile.read(results.local)
    if found is None:
        raise ConfigError(f"--resume {results}: no study.json there, so its plan is unknown; give the results dir "
                          "the study printed as 'output', or start the study without --resume")  # fmt: skip
    their_file = Path(found.doc.get("config_file", "")).name
    if found.name != study.name and their_file != Path(config).name:
        raise ConfigError(f"--resume {results}: holds study {found.name!r} (from {their_file or 'another file'}), not "
                          f"{study.name!r} of {config}; resume it with its own study file")  # fmt: skip


def _print_plan(plan: Plan, results, resuming: bool) -> None:
    for n in plan.notes:
        print(f"note   {n}")
    c = plan.cluster
    print(
        f"{_study_line(plan)}, {plan.concurrent} at a time on {c.cpus:g} CPUs"
        + (f" / {c.gpus:g} GPUs" if c.gpus else "")
        + f" ({c.nodes} node{'s' if c.nodes > 1 else ''})"
    )
    print(f"output {results}" + ("  (resuming: finished trials are kept)" if resuming else ""))


def _write_study_files(results, prepared: Prepared, plan: Plan, config: str, resuming: bool) -> None:
    """audit.json, and study.json for a new study; a URI holds both before any trial starts, so --resume
    works from any machine."""
    from runner.driver import search
    from runner.results import studyfile

    results.local.mkdir(parents=True, exist_ok=True)
    images = prepared.data.images
    audit = json.dumps({k: im.audit for k, im in images.items()}, indent=2) + "\n"
    storage.write_atomic(results.local / "audit.json", audit)
    if not resuming:
        studyfile.write(
            results.local,
            study=plan.study,
            reference=plan.reference,
            metric=plan.metric,
            seeds=list(plan.seeds),
            variants={v: dict(prepared.study.variants[v]) for v in plan.variants},
            max_seeds=prepared.study.max_seeds,
            search=search.record(prepared.study),
            trials=[s.to_param() for s in plan.specs],
            phases=[[s.to_param() for s in plan.specs]],
            data={k: im.summary() for k, im in images.items()},
            cluster=dataclasses.asdict(plan.cluster),
            max_concurrent=plan.concurrent,
            config_file=str(Path(config).resolve()),
        )
    _write_hparams(results, prepared)


def _write_hparams(results, prepared: Prepared) -> None:
    """TensorBoard's one HParams experiment config at the results root: every hyper-parameter with its domain
    (the variants, the values the variants set, the sampled ranges) and the metrics."""
    from runner.trial import board

    study = prepared.study
    test = any("test_images" in im.summary() for im in prepared.data.images.values())
    space = study.search.space if study.search is not None else {}
    domains = board.experiment_domains(study.variants, space, study.base)
    board.write_experiment(results.local, domains, board.experiment_metrics(test))
    results.push()


def _write_tables(results) -> tuple:
    """The study's tables and report from what is in the results dir: (records planned, variants, unfinished records,
    report path or None)."""
    from runner.errors import first_line
    from runner.results import summary

    try:
        results.pull()
        records, variants = summary.write(results.local)
        records = [r for r in records if r.planned]
        unfinished = [r for r in records if r.status.unfinished]
        if unfinished:  # stopped by Ctrl-C / SIGTERM: the tables cover what finished
            summary.write(results.local, partial=True)
        report = _write_report(results.local)
        results.push()
    except OSError as e:  # the trials' results are kept where they are; only the tables are missing
        raise ConfigError(
            f"{results}: the trials ran, but their summary could not be written ({first_line(e)}); "
            f"write it with python -m runner.summary {shlex.quote(results.uri)}"
        ) from None
    return records, variants, unfinished, report


def _finish(args, results, written: tuple, seconds: float, fit_seconds: float) -> int:
    """The console's last lines from the tables written (``_write_tables``); the exit code."""
    from runner.results import render, studyfile, summary

    records, variants, unfinished, report = written
    print()
    print(render.console_table(variants))
    found = summary.search_found(records, studyfile.read(results.local))
    if found:
        print("\n".join(["", *render.search_console(*found)]))
    print()
    print(f"{'stopped' if unfinished else 'done'} after {seconds:.0f} s ({fit_seconds:.0f} s running trials)")
    _print_where(results, report)
    if unfinished:
        print(f"interrupted: {len(unfinished)} of {len(records)} trials unfinished (summary marked partial); finish "
              f"them with\n  {_command(args, results)}", file=sys.stderr)  # fmt: skip
        return 130
    failed = [r for r in records if not r.status.finished]
    if failed:
        print(
            "failed trials: " + ", ".join(f"{r.variant} seed {r.seed} ({r.status}: {r.error[:120]})" for r in failed),
            file=sys.stderr,
        )
        return 1
    _advise(args, results, variants)
    return 0


def _command(args, results, seeds: str | None = None) -> str:
    """The command that resumes (or, with ``seeds``, grows) this study, as the user ran it."""
    words = [args.config, *(f"--set={v}" for v in args.set)]
    if seeds:
        words.append(f"--seeds={seeds}")
    if args.storage != DEFAULT_STORAGE:
        words.append(f"--storage={args.storage}")
    return f"python -m runner.tune {shlex.join(words)} --resume {shlex.quote(results.uri)}"


def _advise(args, results, variants) -> None:
    """When variants are undecided with a fixed number of seeds: the command that adds seeds, and how many."""
    from runner.results import sequential

    undecided = [
        v for v in variants if v.verdict in ("no detectable difference", "too few seeds") and not (v.pruned and v.n < 2)
    ]  # fmt: skip - a sample ASHA pruned is decided enough
    if not undecided or any(v.decided_at is not None for v in variants):
        return  # all decided, or sequential seeds already went as far as max_seeds
    seeds = _seeds_run(results)
    needed = [v.effect.get("seeds_needed") for v in undecided if v.effect.get("seeds_needed")]
    target = max(len(seeds) + 1, min(max(needed, default=2 * len(seeds)), max(2 * len(seeds), 10)))
    more = sequential.extend(seeds, target)
    added = more[len(seeds) :]
    names = ", ".join(v.variant for v in undecided[:6]) + (
        f" and {len(undecided) - 6} more" if len(undecided) > 6 else ""
    )
    print(f"undecided: {names} (with {_n(len(seeds), 'seed')}); to run "
          f"{'seeds' if len(added) > 1 else 'seed'} {_seed_spec(added)} too (only the new trials run), use\n"
          f"  {_command(args, results, _seed_spec(more))}")  # fmt: skip


def _seeds_run(results) -> list[int]:
    from runner.results import studyfile

    found = studyfile.read(results.local)
    return list(found.seeds) if found and found.seeds else sorted({p["seed"] for p in found.trials})


def _seed_spec(seeds: list[int]) -> str:
    """[0, 1, 2, 3, 7] -> '0-3,7'."""
    parts, start = [], None
    for i, s in enumerate(seeds):
        if start is None:
            start = s
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            parts.append(f"{start}-{s}" if s > start else str(s))
            start = None
    return ",".join(parts)


def _print_where(results, report) -> None:
    print(f"results     {results}")
    print(f"summary     {results.join('summary.md')}")
    if report:
        print(f"report      {results.join('report.html')}")
    print(f"tensorboard {storage.tensorboard_command(results.uri)}")


def _write_report(results_dir: Path) -> Path | None:
    """The HTML report; a plotting failure must not fail a finished study (the tables are already written)."""
    from runner.results.report import write_report

    try:
        return write_report(results_dir)
    except Exception as e:  # noqa: BLE001
        logging.getLogger("runner").warning(
            "could not write report.html (%s: %s); rebuild it with python -m runner.report %s",
            type(e).__name__,
            e,
            results_dir,
        )
        return None


def _print_search(study: Study) -> None:
    """What a search samples and how, and the scheduler, in a line each."""
    from runner.driver.search import batches
    from runner.space import describe

    s = study.search
    if s is not None:
        space = ", ".join(f"{k} ~ {describe(d)}" for k, d in s.space.items())
        later = f" ({batches(s)[0]} now, the rest as results come in)" if len(batches(s)) > 1 else ""
        print(f"search {s.samples} {s.algorithm} samples{later}, seed {s.seed}: {space}")
    if study.scheduler is not None:
        a = study.scheduler
        print(f"asha   trials behind on val accuracy stop at epoch {a.grace_epochs}, {a.grace_epochs * a.reduction_factor:g}"
              f", ... (keeping the top 1/{a.reduction_factor:g}); they count as pruned; the reference runs every epoch")  # fmt: skip


def _study_line(plan: Plan) -> str:
    return (
        f"study  {plan.study}: {_n(len(plan.variants), 'variant')} x {_n(len(plan.seeds), 'seed')} = "
        f"{len(plan.specs)} trials"
    )


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _data_line(s: dict) -> str:
    when = "from cache" if s["from_cache"] else f"loaded in {s['load_seconds']:.1f} s"
    splits = " / ".join(f"{s[f'{name}_images']} {name}" for name in ("train", "val", "test") if f"{name}_images" in s)
    gray = " grayscale" if s.get("channels") == 1 else ""
    line = (
        f"data   {s['source']}: {splits} images, {len(s['classes'])} classes, "
        f"{s['image_size']}x{s['image_size']}{gray}, {when}"
    )
    if s["skipped_files"]:
        line += f", {len(s['skipped_files'])} unreadable files skipped"
    if s["ignored_files"]:
        line += f", {_n(s['ignored_files'], 'non-image file')} ignored"
    return line


def exit_process(code: int) -> None:
    """End the process now that every file is written: the local Ray this process started is killed (its processes
    have nothing left to write; ray.shutdown() took ~1.2 s), and Python's teardown of the modules a study loaded
    (torch, Ray, matplotlib, scikit-learn) is skipped (~1.3 s)."""
    from runner.driver.tuner import stop_local_cluster

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    stop_local_cluster()
    os._exit(code)
