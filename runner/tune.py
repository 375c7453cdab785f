"""CLI: ``python -m runner.tune CONFIG [--set KEY=VALUE ...] [--storage DIR|URI] [--name NAME] [--address ADDR]
[--max-concurrent N] [--dry-run]``.

Runs every (variant, seed) of a study as a Ray Tune trial, then writes the summary tables. Exit
codes: 0 all trials finished, 1 some trial failed (named on the console), 2 a problem with the
input (one line saying what, where and how to fix it), 130 interrupted.
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
import time
from pathlib import Path

from runner import storage
from runner.config import ConfigError, DataConfig, TrialConfig, check_study, load_study, parse_set, with_overrides
from runner.storage import Results

DEFAULT_STORAGE = "~/ray_results"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, like every other input error (argparse prints usage too)
        self.exit(2, f"error: {message} (python -m runner.tune --help lists the flags)\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="python -m runner.tune", description="Run a study: every variant x seed as a Ray Tune trial.")
    p.add_argument("config", help="study file defining `study = Study(...)`, e.g. configs/init_study.py")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a trial setting for every trial, e.g. --set train.epochs=3 --set data.path=~/images")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"where results dirs go: a directory (shared by every node of a cluster) or an s3:// / gs:// URI "
                        f"(default {DEFAULT_STORAGE})")
    p.add_argument("--name", help="results dir name under --storage (default: the study's name, numbered if taken)")
    p.add_argument("--address", help="join a running Ray cluster (e.g. auto, or HEAD_IP:6379) instead of starting one")
    p.add_argument("--max-concurrent", type=int, metavar="N", help="run at most N trials at once (default: as many as fit)")
    p.add_argument("--dry-run", action="store_true", help="print the trial plan, resources and data summary; start nothing")
    p.add_argument("--resume", nargs="?", const="", metavar="RESULTS_DIR",
                   help="finish an interrupted study: its unfinished trials only (default: the study's latest results dir)")
    p.add_argument("--verbose", action="store_true", help="show Ray's own logs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logging.getLogger("runner").addHandler(handler)
    logging.getLogger("runner").setLevel(logging.WARNING)
    try:
        return run(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if "ray" in sys.modules:
            import ray

            if ray.is_initialized():
                ray.shutdown()


def run(args: argparse.Namespace) -> int:
    t0 = time.time()
    study = with_overrides(load_study(args.config), parse_set(args.set))
    if args.name:
        study = dataclasses.replace(study, name=args.name)
    trials = check_study(study, where=args.config)
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise ConfigError(f"--max-concurrent {args.max_concurrent}: must be >= 1")

    # Data: decoded once per distinct data config, shared by every trial that uses it.
    from runner.data.audit import format_audit
    from runner.data.augment import check_augment
    from runner.data.source import load_images

    data_cfgs: dict[DataConfig, str] = {}
    for _, _, cfg in trials:
        data_cfgs.setdefault(cfg.data, f"d{len(data_cfgs)}")
    for aug, size in {(repr(c.augment), c.data.image_size): (c.augment, c.data.image_size) for _, _, c in trials}.values():
        check_augment(aug, size)
    images = {key: load_images(d) for d, key in data_cfgs.items()}
    for im in images.values():
        print(_data_line(im.summary()))
        print(format_audit(im.audit))
    data_keys = [data_cfgs[cfg.data] for _, _, cfg in trials]

    store = _storage(args.storage, create=not args.dry_run)
    if args.dry_run:
        return _dry_run(study, trials, data_keys, args, store)

    from runner import run as orchestrate
    from runner.data.ray_data import to_ray_datasets
    from runner.provenance import write_study_json

    resuming = args.resume is not None
    results = Results(_resume_dir(store, study.name, args.resume) if resuming
                      else _results_dir(store, study.name, explicit=bool(args.name)))
    try:
        cluster = orchestrate.init_ray(args.address, args.verbose)
        orchestrate.check_shared_storage(store, cluster)
        # SIGTERM stops the study like Ctrl-C (Tune saves its state, the partial summary is written); set after
        # ray.init, which installs a handler of its own that would end the process at once.
        signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
        specs, concurrent, notes = orchestrate.plan(trials, data_keys, cluster, args.max_concurrent)
        if resuming:
            _check_same_study(results, [s.to_param() for s in specs], args.config)
        for n in notes:
            print(f"note   {n}")
        print(f"study  {study.name}: {_n(len(study.variants), 'variant')} x {_n(len(study.seeds), 'seed')} = {len(specs)} trials, "
              f"{concurrent} at a time on {cluster.cpus:g} CPUs" + (f" / {cluster.gpus:g} GPUs" if cluster.gpus else "")
              + f" ({cluster.nodes} node{'s' if cluster.nodes > 1 else ''})")
        print(f"output {results}" + ("  (resuming: finished trials are kept)" if resuming else ""))
        datasets = {key: to_ray_datasets(im) for key, im in images.items()}
        classes = {key: im.classes for key, im in images.items()}
        results.local.mkdir(parents=True, exist_ok=True)
        (results.local / "audit.json").write_text(json.dumps({key: im.audit for key, im in images.items()}, indent=2) + "\n")
        if not resuming:
            write_study_json(results.local / "study.json", study=study.name, reference=study.reference_variant,
                             seeds=list(study.seeds), variants={v: dict(c) for v, c in study.variants.items()},
                             trials=[s.to_param() for s in specs], data={k: im.summary() for k, im in images.items()},
                             cluster=dataclasses.asdict(cluster), max_concurrent=concurrent,
                             config_file=str(Path(args.config).resolve()))
        results.push()  # a URI holds study.json before any trial starts: --resume works from any machine
        printer = orchestrate.make_printer(len(specs))
        t_fit = time.time()
        orchestrate.run_study(specs, datasets, classes, results.uri, concurrent, printer, resume=resuming)
        fit_seconds = time.time() - t_fit
        return _finish(args, study, results, len(specs), time.time() - t0, fit_seconds)
    finally:
        results.close()


def _finish(args, study, results: Results, planned: int, seconds: float, fit_seconds: float) -> int:
    """The study's tables and report from what is in the results dir; the console's last lines; the exit code."""
    from runner import summary

    order, reference = list(study.variants), study.reference_variant
    try:
        results.pull()
        rows = summary.write(results.local, order, reference=reference)
        unfinished = planned - sum(r["status"] not in ("interrupted", "pending") for r in rows)
        if unfinished:  # stopped by Ctrl-C / SIGTERM: the tables cover what finished
            summary.write(results.local, order, partial=True, reference=reference)
        report = _write_report(results.local)
        results.push()
    except OSError as e:  # the trials' results are kept where they are; only the tables are missing
        raise ConfigError(f"{results}: the trials ran, but their summary could not be written ({storage.first_line(e)}); "
                          f"write it with python -m runner.summary {shlex.quote(results.uri)}") from None
    print()
    print(summary.console_table(summary.variant_rows(rows, order, reference)))
    print()
    print(f"{'stopped' if unfinished else 'done'} after {seconds:.0f} s ({fit_seconds:.0f} s running trials)")
    print(f"results     {results}")
    print(f"summary     {results.join('summary.md')}")
    if report:
        print(f"report      {results.join('report.html')}")
    print(f"tensorboard {storage.tensorboard_command(results.uri)}")
    # A diverged trial is a result (that setting does not train), not a failure of the study.
    if unfinished:
        print(f"interrupted: {unfinished} of {planned} trials unfinished (summary marked partial); finish them with\n"
              f"  python -m runner.tune {shlex.join([args.config, *(f'--set={v}' for v in args.set)])} "
              f"--resume {shlex.quote(results.uri)}", file=sys.stderr)
        return 130
    failed = [r for r in rows if r["status"] not in ("completed", "early_stopped", "diverged")]
    if failed:
        print("failed trials: " + ", ".join(f"{r['variant']} seed {r['seed']} ({r['status']}: {r['error'][:120]})" for r in failed),
              file=sys.stderr)
        return 1
    return 0


def _write_report(results_dir: Path) -> Path | None:
    """The HTML report; a plotting failure must not fail a finished study (the tables are already written)."""
    from runner.report import write_report

    try:
        return write_report(results_dir)
    except Exception as e:  # noqa: BLE001
        logging.getLogger("runner").warning("could not write report.html (%s: %s); rebuild it with python -m runner.report %s",
                                            type(e).__name__, e, results_dir)
        return None


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _data_line(s: dict) -> str:
    when = "from cache" if s["from_cache"] else f"loaded in {s['load_seconds']:.1f} s"
    line = (f"data   {s['source']}: {s['train_images']} train / {s['val_images']} val images, {len(s['classes'])} classes, "
            f"{s['image_size']}x{s['image_size']}, {when}")
    if s["skipped_files"]:
        line += f", {len(s['skipped_files'])} unreadable files skipped"
    if s["ignored_files"]:
        line += f", {_n(s['ignored_files'], 'non-image file')} ignored"
    return line


def _storage(location: str, create: bool = True) -> str:
    """The storage dir or URI, checked writable; a dry run checks without creating anything or
    contacting a remote store (it only checks that pyarrow understands the URI)."""
    if storage.is_uri(location):
        storage.filesystem(location)
        if create:
            storage.check_writable(location)
        return location
    path = storage.local_path(location)
    if not create:
        existing = next(p for p in [path, *path.parents] if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            why = "Not a directory" if not existing.is_dir() else "Permission denied"
            raise ConfigError(f"--storage {location}: cannot write there ({why}); pass --storage with a writable directory")
        return str(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".runner-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"--storage {location}: cannot write there ({e.strerror}); pass --storage with a writable directory") from None
    return str(path)


def _results_dir(location: str, name: str, explicit: bool) -> str:
    """STORAGE/NAME; a study run again without --name gets NAME-2, NAME-3, ... so no result is overwritten."""
    taken = set(storage.children(location))
    d = storage.join(location, name)
    if name not in taken or not storage.children(d):
        return d
    if explicit:
        raise ConfigError(f"--name {name}: {d} already holds results; pick another --name or remove that directory")
    i = 2
    while f"{name}-{i}" in taken:
        i += 1
    return storage.join(location, f"{name}-{i}")


def _resume_dir(location: str, name: str, given: str) -> str:
    """The results dir to resume: the one given, else the study's latest (NAME, NAME-2, ...)."""
    if given:
        d = given if storage.is_uri(given) else str(storage.local_path(given))
    else:
        def number(n: str) -> int:
            tail = n[len(name) + 1:]
            return int(tail) if tail.isdigit() else 0

        taken = [n for n in storage.children(location) if n == name or (n.startswith(f"{name}-") and number(n))]
        if not taken:
            raise ConfigError(f"--resume: no results of study {name!r} under {location}; start it without --resume")
        d = storage.join(location, max(taken, key=number))  # NAME itself counts as 0
    if not any(n.startswith("experiment_state-") and n.endswith(".json") for n in storage.children(d)):
        raise ConfigError(f"--resume {d}: not a study results dir (no experiment_state-*.json); give the dir the study printed as 'output'")
    return d


def _check_same_study(results: Results, params: list[dict], config: str) -> None:
    study_json = results.join("study.json")
    if not storage.exists(study_json):
        return

    def comparable(trials: list[dict]) -> list[dict]:
        # Through TrialConfig, so a setting added since the study ran compares as its default; resources are
        # fitted to the cluster, which may differ now.
        return [{**t, "trial": {k: v for k, v in TrialConfig.from_dict(t["trial"]).to_dict().items() if k != "resources"}}
                for t in trials]

    before = json.loads(storage.read_text(study_json)).get("trials")
    if before is not None and comparable(json.loads(json.dumps(params))) != comparable(before):
        raise ConfigError(f"--resume {results}: {config} (with its --set values) no longer describes that study; "
                          "resume with the original config and --set values, or start a new study without --resume")


def _dry_run(study, trials, data_keys, args, location: str) -> int:
    from runner.resources import Cluster, fit_trial, max_concurrent

    cpus = float(os.cpu_count() or 1)
    cluster = Cluster(cpus=cpus, gpus=0.0, node_cpus=cpus, node_gpus=0.0)
    where = "this machine" if not args.address else f"this machine (the cluster at {args.address} is not contacted in a dry run)"
    fits = [fit_trial(c.resources, cluster) for _, _, c in trials]
    at_once = max_concurrent(fits, cluster, len(trials), args.max_concurrent)
    print(f"study  {study.name}: {_n(len(study.variants), 'variant')} x {_n(len(study.seeds), 'seed')} = {len(trials)} trials, "
          f"{at_once} at a time on {where} ({cpus:g} CPUs)")
    print(f"output {storage.join(location, study.name)}")
    print()
    w = max(7, *(len(v) for v, _, _ in trials))
    print(f"{'variant':<{w}}  seed  epochs  batch  workers  cpus/worker  gpus/worker  changes")
    for (variant, seed, cfg), f in zip(trials, fits):
        changes = ", ".join(f"{k}={v}" for k, v in study.variants[variant].items()) or "(base)"
        print(f"{variant:<{w}}  {seed:>4}  {cfg.train.epochs:>6}  {cfg.train.batch_size:>5}  {cfg.resources.workers_per_trial:>7}  "
              f"{f.cpus_per_worker:>11g}  {cfg.resources.gpus_per_worker:>11g}  {changes}")
    print("\ndry run: nothing started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
