"""Every Tune callback of a study's driver, in the order a phase's run lists them (runner.driver.tuner).

Tune pickles a run's callbacks with its state; a restored run gets this run's own instead.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ray.tune import Callback

from runner import checkpoints
from runner.driver.results_dir import identity, release_ballast, remove_remake, reserve_ballast
from runner.driver.trial_progress import LinePrinter, LivePrinter, isatty
from runner.errors import GONE, StorageFault, gone_line, storage_fault
from runner.results import files
from runner.results.status import Status
from runner.storage import is_uri
from runner.study.plan import CARRY_ON

WATCH_EVERY_S = 1.0  # how often the driver checks that the results dir is still there


class CarryOver(Callback):
    """A trial of a phase rebuilt from its trial dirs (runner.driver.recover), or a pruned sample confirmed
    (runner.driver.next_trials.confirmation), goes on in its old dir: before Tune's loggers open its result.json and
    progress.csv, they get the rows up to the epoch it carries on from (a confirmation in the same Tune run finds
    them there, and DropRedone cuts those after that epoch)."""

    def on_trial_start(self, iteration, trials, trial, **info):
        carry = trial.config["spec"].get(CARRY_ON)
        if carry and trial.local_path and not is_uri(trial.config["results_dir"]):
            old = Path(trial.config["results_dir"]) / carry["dir"]
            files.unmark_pruned(old)  # a confirmed sample's pruned trial runs on to its last epoch
            files.stage_rows(old, carry["epoch"], Path(trial.local_path))


class DropRedone(Callback):
    """Put before Tune's loggers: a trial's result for an epoch it reported before cuts its files back first
    (runner.results.files.drop_from)."""

    def __init__(self):
        self.last: dict[str, int] = {}  # trial id -> the last epoch its files hold

    def on_trial_result(self, iteration, trials, trial, result, **info):
        epoch = result.get("epoch")
        if epoch is None or not trial.local_path:
            return
        trial_dir = Path(trial.local_path)
        if trial.trial_id not in self.last:
            self.last[trial.trial_id] = files.last_epoch(trial_dir)
        if epoch <= self.last[trial.trial_id]:
            files.drop_from(trial_dir, epoch)
        self.last[trial.trial_id] = epoch


class Retention(Callback):
    """A trial's checkpoints in a results dir on disk: Tune keeps them all (with Ray's own retention Tune saves its
    whole state at every checkpoint, so that its state never names one it deleted: a study's cost grew with the square
    of its trials) and this deletes those below the latest that Tune's state in the results dir names, except the
    best (runner.checkpoints.prune). So ``--resume`` after a kill -9 finds every checkpoint the state names.

    Tune calls ``get_state`` as it saves its state, before uploading it to the results dir: the checkpoints named
    then are acted on at the next save, when that upload is over (``uploads_awaited``), and at the end."""

    def __init__(self, results: str):
        self.results = Path(results)
        self.ran: dict[str, object] = {}  # trial id -> the trial, for those that checkpointed since the last save
        self.named: dict[str, int] = {}  # trial dir -> the latest checkpoint's number in the state being uploaded

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.ran[trial.trial_id] = trial

    def on_trial_start(self, iteration, trials, trial, **info):
        if CARRY_ON in trial.config["spec"]:  # the dir's checkpoints named so far are an earlier trial's, set aside
            self.named.pop(trial.relative_logdir, None)

    def get_state(self) -> None:
        self._prune()
        for trial in self.ran.values():
            n = checkpoints.index(trial.checkpoint.path) if trial.checkpoint else None
            if n is not None and Path(trial.checkpoint.path).parent.name == trial.relative_logdir:
                self.named[trial.relative_logdir] = n
        self.ran.clear()
        return None  # nothing of its own to save

    def on_experiment_end(self, trials, **info):
        self._prune()  # the state Tune saved last

    def _prune(self) -> None:
        for trial_dir, below in self.named.items():
            if (self.results / trial_dir).is_dir():
                checkpoints.prune(self.results / trial_dir, below)
        self.named.clear()


@contextmanager
def uploads_awaited():
    """While a phase runs, each save of Tune's state waits for its upload to the results dir (Tune's own forced saves
    do), so the state that ``Retention`` acts on at the next save is the one there. An upload that fails leaves an
    older state there, which runner.driver.recover tells from the trial dirs."""
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager as Manager

    save = Manager.sync_up_experiment_state

    def awaited(self, save_fn, force=False, wait=False):
        return save(self, save_fn, force=force, wait=True)

    Manager.sync_up_experiment_state = awaited
    try:
        yield
    finally:
        Manager.sync_up_experiment_state = save


@contextmanager
def processes_kept(queue):
    """Between two steps (a search batch, a look of sequential seeds) no trial is pending, so Tune would stop the
    ended trials' processes (it keeps one) and the next step's trials would start new ones, seconds of imports each.
    While ``queue`` (runner.driver.tuner.Queue) waits for its next step, Tune keeps every ended trial's process for
    the trials to come; any the step does not use are stopped as Tune always does (it never holds resources a
    pending trial needs).
    The queue also gets ``save_state``: Tune's state, with the ended trials' rows, saved into the results dir now.
    A trial a step carries on in a pruned trial's dir (a confirmed sample) gets that dir: Tune would give it a new
    one, named with a random suffix, as the run already has a trial there."""
    from ray.tune.execution.tune_controller import TuneController as Controller
    from ray.tune.experiment import trial as tune_trial
    from ray.tune.utils.object_cache import _ObjectCache as Cache

    cache, cleanup, update = Cache.cache_object, Controller._cleanup_cached_actors, Controller._maybe_update_trial_queue
    unique = tune_trial._create_unique_logdir_name

    def unique_logdir_name(root: str, relative_logdir: str) -> str:
        if any(p[CARRY_ON]["dir"] == relative_logdir for p in queue.params if CARRY_ON in p):
            return relative_logdir
        return unique(root, relative_logdir)

    def cache_object(self, key, obj):
        if not queue.waiting:
            return cache(self, key, obj)
        self._cached_objects[key].append(obj)
        self._num_cached_objects += 1
        return True

    def cleanup_cached_actors(self, force_all=False):
        if force_all or not (queue.between_looks and not self._pending_trials):
            cleanup(self, force_all=force_all)

    def maybe_update_trial_queue(self):
        if queue.save_state is None:  # the run's controller, once
            queue.save_state = lambda: self.checkpoint(force=True, wait=True)
        update(self)

    Cache.cache_object, Controller._cleanup_cached_actors = cache_object, cleanup_cached_actors
    Controller._maybe_update_trial_queue = maybe_update_trial_queue
    tune_trial._create_unique_logdir_name = unique_logdir_name
    try:
        yield
    finally:
        Cache.cache_object, Controller._cleanup_cached_actors = cache, cleanup
        Controller._maybe_update_trial_queue = update
        tune_trial._create_unique_logdir_name = unique


class StorageWatch(Callback):
    """Stops the study like Ctrl-C when a trial reports that its storage failed or the results dir vanishes
    (deleted or moved: Ray would quietly make a new one of its own files), and turns a storage failure of
    Tune's own (writing its state, a trial's error file) into a StorageFault instead of a traceback. The
    ballast it holds in the results dir while trials run is freed at the fault, so Tune can save its state."""

    def __init__(self, results: str):
        self.fault: str | None = None
        self.results = results
        self.identity = identity(results)  # None for a URI: not watched
        self.checked = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get("status") == Status.STORAGE_FAULT and self.fault is None:
            spec = trial.config["spec"]
            self._stop(f"{result.get('error', 'storage failed')} (in trial {spec['variant']} seed {spec['seed']})")

    def on_step(self, iteration, trials, **info):
        if self.identity is None or self.fault is not None or time.monotonic() - self.checked < WATCH_EVERY_S:
            return
        self.checked = time.monotonic()
        if identity(self.results) != self.identity:
            self._stop(gone_line(self.results))

    def _stop(self, line: str) -> None:
        self.fault = line
        release_ballast(self.results)
        os.kill(os.getpid(), signal.SIGINT)  # Tune saves its state and stops every trial, resumable

    def fit(self, tuner):
        reserve_ballast(self.results)
        try:
            grid = tuner.fit()
        except Exception as e:  # noqa: BLE001 - Tune's driver failed; a storage fault is said as one line
            fault = self.fault or storage_fault(e, None if self.identity is None else self.results)
            if fault is None:
                raise
            raise StorageFault(self._after(fault)) from None
        finally:
            release_ballast(self.results)
        if self.fault is None and self.identity is not None and identity(self.results) != self.identity:
            self.fault = gone_line(self.results)  # it vanished as the last trials ended (they fail in Ray's setup)
        if self.fault:
            raise StorageFault(self._after(self.fault))
        return grid

    def _after(self, fault: str) -> str:
        """The fault's line; a vanished dir that Ray made again, holding only Ray's files, is removed."""
        if fault.startswith(GONE) and self.identity is not None:
            remove_remake(self.results)
        return fault


class Preload(Callback):
    """At the first epoch a trial reports, the driver imports what the study's end needs (report.preload) on a
    thread, while the trials train (the trial processes' own start-up imports are over by then)."""

    started = False

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not self.started:
            self.started = True
            threading.Thread(target=preload, name="runner-preload", daemon=True).start()


def preload() -> None:
    """Import what the study's end needs (report.preload); a failure is said again at the end."""
    from runner.results.report import preload

    try:
        preload()
    except Exception:  # noqa: BLE001, S110 - the end imports them again and says what failed
        pass


class LinePrinterCallback(LinePrinter, Callback):
    """The console in a log or a file (runner.driver.trial_progress)."""


class LivePrinterCallback(LivePrinter, Callback):
    """The console on a terminal (runner.driver.trial_progress)."""


def printer(total: int, out) -> Callback:
    """The console's callback for a phase of ``total`` trials: live on a terminal, lines otherwise."""
    return (LivePrinterCallback if isatty(out) else LinePrinterCallback)(total, out)
