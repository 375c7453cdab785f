"""CLI: ``python -m runner.tune CONFIG [--set KEY=VALUE ...] [--storage DIR|URI] [--name NAME] [--address ADDR]
[--seeds SEEDS] [--confirm K] [--max-concurrent N] [--dry-run] [--resume [DIR]] [--verbose]`` (also ``runner tune ...``).

Two steps: ``prepare`` (runner.driver.prepare) (the study file, --set, validation, the data decoded and audited, the storage
checked) and ``run_study`` (runner.driver.flow: Ray started, the plan fitted to the cluster, the trials run, the tables
written). ``--dry-run`` prints the plan ``prepare`` leads to on this machine and starts nothing. Exit
codes: 0 every trial finished (diverged trials are results), 1 some trial failed (named on the
console), 2 a problem with the input (one line saying what, where and how to fix it), 74 the results storage
failed mid-study (one line; --resume once fixed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from runner import cli
from runner.config import ConfigError
from runner.driver.console import DEFAULT_STORAGE
from runner.errors import STORAGE_EXIT, StorageFault
from runner.study.docs import set_help
from runner.study.resources import Cluster


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
    p.add_argument("--confirm", type=int, metavar="K", help="a search's K best samples run every epoch over every seed "
                   "and get verdicts (the file's Search(confirm=K) otherwise); with --resume, confirms a finished "
                   "search")  # fmt: skip
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
    """``exiting``: the process ends right after (``exit_process``), so a study that ran to its end kills its local
    Ray at once instead of shutting it down."""
    p = cli.parser("python -m runner.tune", "Run a study: every variant x seed as a Ray Tune trial.")
    p.epilog = set_help()
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_arguments(p)
    return run(p.parse_args(argv), exiting)


def address(args: argparse.Namespace) -> tuple[str | None, str]:
    """The cluster to join (None: start a local one) and how to name it in an error: --address, else RAY_ADDRESS,
    which Ray sets for a `ray job submit` entrypoint and ray.init would join."""
    if args.address:
        return args.address, f"--address {args.address}"
    env = os.environ.get("RAY_ADDRESS", "").strip()
    return (env, f"RAY_ADDRESS={env}") if env else (None, "")


def run(args: argparse.Namespace, exiting: bool = False) -> int:
    """prepare -> (dry run: print the plan | run the study); errors the user can fix are one line, exit 2."""
    from runner.driver import console, prepare

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logging.getLogger("runner").addHandler(handler)
    logging.getLogger("runner").setLevel(logging.WARNING)
    try:
        t0 = time.time()
        prepared = prepare.prepare(args)
        if args.dry_run:
            cpus = float(os.cpu_count() or 1)
            plan = prepared.plan(Cluster(cpus=cpus, gpus=0.0, node_cpus=cpus, node_gpus=0.0), args.max_concurrent)
            console.dry_run(plan, prepared.study, prepared.storage, prepared.storage_needed(), address(args)[0])
            return 0
        from runner.driver.flow import run_study

        return run_study(prepared, args, address(args), t0, exiting)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StorageFault as fault:
        print(f"error: {fault.line}", file=sys.stderr)
        return STORAGE_EXIT
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def exit_process(code: int) -> None:
    """End the process now that every file is written, skipping Python's teardown of the modules a study loaded
    (torch, Ray, matplotlib, scikit-learn); a local Ray that ran the study to its end is already stopped."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
