"""A study's results dir as typed trial records: one ``TrialRecord`` per planned trial.

Reads what Ray Tune and the trials leave in ``STORAGE/NAME`` (a directory; a URI is read through a
local copy of its small files): each trial dir's params.json (its ``TrialSpec``) and result.json
(one row per epoch, the last one saying the trial's ``Status``), error.txt when it failed, and its
kept checkpoints; study.json adds the trials the plan holds that never started (``pending``). Also
killed and partial studies: a line cut short by a crash is skipped, a trial whose last row says
``running`` was interrupted. No Ray, no torch.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from runner import checkpoints
from runner.errors import first_line
from runner.results import files, studyfile
from runner.results.status import Status, ended

log = logging.getLogger(__name__)


CONVERGED = 0.95  # epochs_to_95: the share of its best val accuracy at which a trial counts as converged
COLUMNS = [  # summary.csv / summary.parquet, a row per trial (TrialRecord.row)
    "variant",
    "seed",
    "status",
    "best_val_accuracy",
    "best_epoch",
    "epochs_run",
    "final_train_accuracy",
    "final_val_accuracy",
    "final_val_loss",
    "test_accuracy",
    "epochs_to_95",
    "trial_seconds",
    "setup_seconds",
    "images_per_second",
    "checkpoint",
    "trial_dir",
    "error",
]


@dataclass(frozen=True)
class TrialRecord:
    """One trial as its results dir shows it. ``epochs`` are result.json's rows, oldest first."""

    variant: str
    seed: int
    order: int  # the variant's position in the study
    status: Status
    epochs: tuple[dict, ...] = ()
    trial_dir: str = ""  # its dir's name under the results dir ("" for a pending trial)
    checkpoint: str = ""  # the best kept checkpoint, relative to the results dir ("" for none)
    error: str = ""  # the line naming the error of a failed trial
    planned: bool = True  # False: its variant or seed is no longer in the study (kept on disk, out of the tables)

    @property
    def last(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    # from the last epoch's result
    best_val_accuracy = property(lambda self: self.last.get("best_val_accuracy"))
    best_epoch = property(lambda self: self.last.get("best_epoch"))
    epochs_run = property(lambda self: self.last.get("epoch", 0))
    final_val_accuracy = property(lambda self: self.last.get("val_accuracy"))
    # the best val epoch's model on the test split, taken at the trial's end (None without a test split)
    test_accuracy = property(lambda self: self.last.get("test_accuracy"))

    @property
    def val_overestimate(self) -> float | None:
        """best_val_accuracy - test_accuracy: how far the epoch picked on val overstates accuracy on new images."""
        best, test = self.best_val_accuracy, self.test_accuracy
        return None if best is None or test is None else best - test

    @property
    def epochs_to_95(self) -> int | None:
        """Convergence speed: the first epoch whose val accuracy reaches 95 % of the trial's best."""
        best = self.best_val_accuracy
        if best is None:
            return None
        reached = [r["epoch"] for r in self.epochs if r.get("val_accuracy", -1.0) >= CONVERGED * best]
        return min(reached) if reached else None

    @property
    def train_val_gap(self) -> float | None:
        """Final train accuracy - final val accuracy."""
        tr, va = self.last.get("train_accuracy"), self.last.get("val_accuracy")
        return None if tr is None or va is None else tr - va

    @property
    def images_per_second(self) -> float | None:
        """Median train speed over the epochs, the first (warm-up) left out when there are more."""
        ips = [r["images_per_second"] for r in self.epochs[1:]] or [r["images_per_second"] for r in self.epochs]
        return _round(statistics.median(ips), 1) if ips else None

    def row(self) -> dict:
        """The trial's summary.csv row, in COLUMNS order."""
        last = self.last
        return {
            "variant": self.variant,
            "seed": self.seed,
            "status": str(self.status),
            "best_val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "final_train_accuracy": last.get("train_accuracy"),
            "final_val_accuracy": last.get("val_accuracy"),
            "final_val_loss": last.get("val_loss"),
            "test_accuracy": self.test_accuracy,
            "epochs_to_95": self.epochs_to_95,
            "trial_seconds": _round(last.get("time_total_s"), 2),
            "setup_seconds": _round(last.get("setup_seconds"), 2),
            "images_per_second": self.images_per_second,
            "checkpoint": self.checkpoint,
            "trial_dir": self.trial_dir,
            "error": self.error,
        }


def cell(value):
    """A config value as a table cell: numbers and strings as they are, a tuple such as model.hidden as 512-128."""
    return "-".join(map(str, value)) if isinstance(value, list | tuple) else value


def read_records(results_dir: Path) -> list[TrialRecord]:
    """A record per trial dir, plus a ``pending`` one per planned trial that never started; in the
    study's variant order (study.json's, as the study now is), then by seed. A trial whose (variant, seed)
    the study no longer plans (a grown study whose file dropped it) is marked ``planned=False``."""
    results_dir = Path(results_dir)
    records = [_record(p.parent) for p in sorted(results_dir.glob(f"*/{files.PARAMS}"))]
    study = studyfile.read(results_dir)
    if study and study.trials:
        planned = {(p["variant"], p["seed"]): p.get("order", 0) for p in study.trials}
        by_dir_name = {(files.safe(v), seed): v for v, seed in planned}  # a damaged trial knows only its dir's name
        records = [replace(r, variant=by_dir_name.get((r.variant, r.seed), r.variant)) if r.status == Status.DAMAGED
                   else r for r in records]  # fmt: skip
        records = [replace(r, order=planned.get((r.variant, r.seed), r.order), planned=(r.variant, r.seed) in planned)
                   for r in records]  # fmt: skip
        started = {(r.variant, r.seed) for r in records}
        records += [
            TrialRecord(v, s, order, Status.PENDING) for (v, s), order in planned.items() if (v, s) not in started
        ]
    return sorted(records, key=lambda r: (not r.planned, r.order, r.variant, r.seed))


def values_by_seed(records: list[TrialRecord], metric: str, pruned: bool = False) -> dict[str, dict[int, float]]:
    """{variant: {seed: value of ``metric``}} over the trials that did not fail (nor were pruned, unless
    ``pruned``: a searcher learns from a pruned trial's value as ASHA left it), in the records' variant order."""
    keep = [r for r in records if r.status != Status.ERROR] if pruned else comparable(records)
    return by_seed(keep, list(dict.fromkeys(r.variant for r in records)), metric)


def comparable(records: list[TrialRecord]) -> list[TrialRecord]:
    """Trials whose numbers describe their setting: not errored (they describe nothing) and not pruned (they
    stopped at an epoch of the scheduler's choosing, so their best is not comparable with a full run's)."""
    return [r for r in records if r.status not in (Status.ERROR, Status.PRUNED)]


def by_seed(records: list[TrialRecord], variants: list[str], field: str) -> dict[str, dict[int, float]]:
    """{variant: {seed: value}} of a TrialRecord field, where the trial has one."""
    out: dict[str, dict[int, float]] = {v: {} for v in variants}
    for r in records:
        value = getattr(r, field)
        if value is not None:
            out[r.variant][r.seed] = value
    return out


def _record(trial_dir: Path) -> TrialRecord:
    try:
        spec = json.loads((trial_dir / files.PARAMS).read_text())["spec"]
        epochs = tuple(files.read_results(trial_dir / files.RESULT))
    except (OSError, ValueError, KeyError, TypeError) as e:  # empty, cut short or garbled by a fault
        return _damaged(trial_dir, e)
    status = Status(epochs[-1].get("status", Status.PENDING)) if epochs else Status.PENDING
    err = trial_dir / files.ERROR
    error = ""
    if err.exists() and not status.finished:  # error.txt stays behind when a retry later finished the trial
        status, error = Status.ERROR, first_line(err.read_text(errors="replace"))
    else:
        status = ended(status, stopped_by_scheduler=(trial_dir / files.PRUNED).exists())
    return TrialRecord(
        spec["variant"],
        spec["seed"],
        spec.get("order", 0),
        status,
        epochs,
        trial_dir.name,
        checkpoints.best(trial_dir),
        error,
    )


def _damaged(trial_dir: Path, e: Exception) -> TrialRecord:
    """A trial whose files cannot be read: its variant and seed from its dir's name, and why."""
    log.warning("%s: unreadable (%s); its row says damaged", trial_dir, first_line(e))
    variant, seed = files.parse_trial_dir(trial_dir.name) or (trial_dir.name, -1)
    return TrialRecord(variant, seed, 0, Status.DAMAGED, (), trial_dir.name, "", f"unreadable: {first_line(e, 200)}")


def _round(x, n: int) -> float | None:
    return None if x is None else round(float(x), n)
