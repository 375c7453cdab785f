"""One phase of a study as one Ray Tune run: every trial's spec in one grid, into the results dir.

The study's datasets are put into Ray's object store once and handed to every trial; a killed phase is restored
from Tune's experiment state. ASHA, when the study has it, stops samples that fall behind. No statistics and no
console output here (runner.driver.callbacks prints as trials end).
"""

from __future__ import annotations

import json
import logging
import pickle
import sys
from collections.abc import Callable
from contextlib import nullcontext

from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher

from runner import checkpoints, storage
from runner.driver import callbacks, moved
from runner.errors import first_line
from runner.results import files
from runner.results.hparams import pruned_session
from runner.results.status import Status
from runner.study.plan import CARRY_ON, CHECKPOINT_AT, TrialSpec
from runner.study.resources import TRIAL_DRIVER_CPU

log = logging.getLogger(__name__)

MAX_TRIAL_RESTARTS = 2  # a trial whose process dies (OOM, node lost, kill -9) restarts from its last checkpoint


def run_trials(params: list[dict], concurrent: int, datasets: dict, results: str, resume: bool = False,
               asha=None, samples: Callable[[], frozenset[str]] = frozenset,
               more: Callable[[], list[dict]] | None = None):  # fmt: skip
    """Run one phase of a study: the trials ``params`` (``TrialSpec.to_param()`` each) with Ray Tune into
    ``results`` (STORAGE/NAME, a directory or URI), ``concurrent`` at once; returns Tune's ResultGrid.
    ``datasets[data_key]`` -> {"train", "val"(, "test")} Ray Datasets.

    With ``resume``, restore the newest Tune experiment in ``results`` (the last phase, whose trials
    ``params`` must be): finished trials stay as they are, unfinished and errored ones carry on from their
    last checkpoint. ``asha`` (a runner.config.ASHA): Tune's ASHAScheduler stops the trials of ``samples()`` (the
    search's samples not confirmed, asked again as trials are added) that fall behind the other samples on val
    accuracy; each gets a pruned.json in its dir (runner.results reads it as status ``pruned``). ``more``: the
    next batch's or look's trials, asked for by the ``Queue``.
    """
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from runner.trial.trainable import run_trial

    trainable = tune.with_resources(tune.with_parameters(run_trial, datasets=datasets), _resources)
    param_space, watch = {"results_dir": results}, callbacks.StorageWatch(results)
    own = [callbacks.CarryOver(), callbacks.DropRedone(), CSVLoggerCallback(), JsonLoggerCallback(),
           printer := callbacks.printer(len(params), sys.stdout), watch, callbacks.Preload(),
           *([] if storage.is_uri(results) else [callbacks.Retention(results)])]  # fmt: skip
    if resume:
        with moved.old_names():  # a phase Tune saved before runner's modules moved
            tuner = _restore(results, trainable, params, param_space)
            # Tune restores the callbacks pickled with the experiment; this run's console needs its own printer.
            tuner._local_tuner.get_run_config().callbacks = own
            return _fit(watch, tuner)
    scheduler = _scheduler(asha, params, samples(), results)
    tune_config = tune.TuneConfig(
        search_alg=(queue := Queue(params, more, _grown(printer, scheduler, samples), rungs(asha, params))),
        num_samples=-1,  # until the queue says it is finished
        scheduler=scheduler,
        max_concurrent_trials=concurrent,
        reuse_actors=True,  # a trial ASHA stops ends at its next batch (runner.trial.loop): its process is reused
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_name,
    )
    run_config = tune.RunConfig(
        name=storage.name(results),
        storage_path=storage.parent(results),
        verbose=0,
        callbacks=own,
        failure_config=tune.FailureConfig(max_failures=MAX_TRIAL_RESTARTS),
        # on disk runner deletes checkpoints (callbacks.Retention); Ray's retention made Tune save its state at each
        checkpoint_config=checkpoints.ray_config(tune.CheckpointConfig, keep_all=not storage.is_uri(results)),
    )
    return _fit(watch, tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config),
                queue)  # fmt: skip


def _fit(watch: callbacks.StorageWatch, tuner, queue: Queue | None = None):
    """Run the phase, each save of Tune's state awaited (callbacks.Retention acts on the one in the results dir);
    with a ``queue`` that adds trials, the ended trials' processes kept for them."""
    kept = callbacks.processes_kept(queue) if queue is not None and queue.more is not None else nullcontext()
    with callbacks.uploads_awaited(), kept:
        return watch.fit(tuner)


def _grown(printer, scheduler: Pruning | None, samples: Callable[[], frozenset[str]]) -> Callable[[int], None]:
    """What follows ``n`` trials added to a run: the console counts them, ASHA may stop the new samples."""

    def grown(n: int) -> None:
        printer.grow(n)
        if scheduler is not None:
            scheduler.samples = samples()

    return grown


class Queue(Searcher):
    """A phase's trials for Tune, one per param, in order. (Tune's grid_search over the params copied the whole list
    for every trial it made: a phase's start grew with the square of its trials, 36 s for 1,000.)

    With ``more``, once every trial handed out has ended, the queue asks it for the next trials (a look of sequential
    seeds), after Tune has saved its state and the trials' rows into the results dir (``save_state``, set by
    callbacks.processes_kept); the run ends when it returns none. ``grow(n)``: the console's count of trials."""

    more = grow = save_state = None  # a queue pickled before it could grow has none of these
    ended, finished, checkpoint_at = 0, False, ()

    def __init__(self, params: list[dict], more: Callable[[], list[dict]] | None = None,
                 grow: Callable[[int], None] | None = None, checkpoint_at: tuple[int, ...] = ()):  # fmt: skip
        super().__init__()
        self.params, self.taken, self.given = list(params), 0, len(params)  # given: in tuner.pkl
        self.more, self.grow, self.ended, self.finished = more, grow, 0, False
        self.save_state: Callable[[], None] | None = None
        self.checkpoint_at = tuple(checkpoint_at)  # ASHA's rungs, for every trial's checkpoints (CHECKPOINT_AT)

    def __getstate__(self):  # Tune pickles the queue in tuner.pkl: its params, not the study behind ``more``
        return {**self.__dict__, "more": None, "grow": None, "save_state": None}

    @property
    def waiting(self) -> bool:
        """Every trial is handed out, and ``more`` may add some."""
        return self.more is not None and not self.finished and self.taken >= len(self.params)

    @property
    def between_looks(self) -> bool:
        """Waiting, and every trial handed out has ended: ``more`` is asked now."""
        return self.waiting and self.ended >= self.taken

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.taken >= len(self.params) and not self._more():
            return Searcher.FINISHED if self.finished else None  # None: trials still run, then ``more`` is asked
        self.taken += 1
        spec = self.params[self.taken - 1]
        return {"spec": {**spec, CHECKPOINT_AT: list(self.checkpoint_at)} if self.checkpoint_at else spec}

    def _more(self) -> bool:
        """Whether ``more`` added trials; it is asked only once every trial handed out has ended."""
        self.finished = self.finished or self.more is None
        if not self.between_looks:
            return False
        if self.save_state is not None:
            self.save_state()  # the ended trials' rows in the results dir, which ``more`` reads
        added = self.more()
        if not added:
            self.finished = True
            return False
        self.params.extend(added)
        if self.grow is not None:
            self.grow(len(added))
        return True

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.ended += 1

    def save(self, checkpoint_path: str) -> None:
        """How far the queue is, and the trials ``more`` added: Tune saves this with its state, often; the params
        it began with are in tuner.pkl once."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"taken": self.taken, "added": self.params[self.given :]}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        given = self.__dict__.get("given", len(self.params))  # a queue pickled before it could grow
        self.params, self.taken = [*self.params[:given], *state.get("added", [])], state["taken"]


def _restore(results: str, trainable, params: list[dict], param_space: dict):
    """Tune's run of the newest phase in ``results``, restored: unfinished and errored trials carry on. Tune wants the
    param space the phase started with: a phase saved before runner queued its trials (``Queue``) had them in a grid."""
    try:
        return tune.Tuner.restore(results, trainable, resume_unfinished=True, resume_errored=True,
                                  param_space=param_space)  # fmt: skip
    except ValueError as e:
        if "param_space" not in str(e):
            raise
    grid = {"spec": tune.grid_search(list(params)), **param_space}
    return tune.Tuner.restore(results, trainable, resume_unfinished=True, resume_errored=True, param_space=grid)


def _scheduler(asha, params: list[dict], samples: frozenset[str], results: str) -> Pruning | None:
    """Tune's ASHA on each epoch's val accuracy, up to the phase's longest trial; None without ``asha``."""
    if asha is None:
        return None
    max_t = max(p["trial"]["train"]["epochs"] for p in params)
    return Pruning(results, samples, time_attr="epoch", metric="val_accuracy", mode="max", max_t=max_t,
                   grace_period=min(asha.grace_epochs, max_t), reduction_factor=asha.reduction_factor)  # fmt: skip


def rungs(asha, params: list[dict]) -> tuple[int, ...]:
    """The epochs ASHA may stop a trial at, as ``_scheduler`` sets it up (none without ``asha``): the grace epochs,
    times the reduction factor again and again, below the phase's longest trial."""
    if asha is None:
        return ()
    max_t = max(p["trial"]["train"]["epochs"] for p in params)
    out, epoch = [], min(asha.grace_epochs, max_t)
    while epoch < max_t:
        out.append(epoch)
        epoch *= asha.reduction_factor
    return tuple(out)


class Pruning(ASHAScheduler):
    """ASHA that cuts samples against samples: only the trials of ``samples`` (a search's samples, less the
    confirmed ones) are stopped, and only their results set a rung's cut-off. The reference and the fixed variants
    run every epoch (every comparison keeps its pairs) without setting the bar, so a strong reference cannot stop
    every sample: the first sample at each rung goes on, and about 1/reduction_factor of the samples pass each rung,
    as ASHA promises. A trial it stops is marked pruned in its dir as it decides (not when the trial ends, which a
    Ctrl-C also does)."""

    def __init__(self, results: str, samples: frozenset[str], **asha):
        super().__init__(**asha)
        self.results, self.samples = results, frozenset(samples)

    def prunable(self, trial) -> bool:
        variant = trial.config["spec"]["variant"]
        if "samples" not in self.__dict__:  # pickled by runner before samples were cut against samples only
            return variant != self.__dict__.get("reference")
        return variant in self.samples

    def on_trial_result(self, tune_controller, trial, result):
        if not self.prunable(trial):
            return TrialScheduler.CONTINUE
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and result.get("status") == Status.RUNNING:  # not at its last epoch
            mark_pruned(self.results, trial, result)
        return action

    def on_trial_complete(self, tune_controller, trial, result):
        if self.prunable(trial):
            super().on_trial_complete(tune_controller, trial, result)
        else:
            self._trial_info.pop(trial.trial_id, None)


def mark_pruned(results: str, trial, result: dict) -> None:
    """pruned.json in the trial's dir (the epoch it reached), so its record says ``pruned``, and its TensorBoard
    HParams session, which the stopped trial never writes."""
    where = storage.join(results, trial_name(trial))
    try:
        if not storage.exists(where):
            return  # the results dir is gone (a storage fault): never make it again
        marker = {"epoch": result.get("epoch"), "val_accuracy": result.get("val_accuracy")}
        storage.write_text(storage.join(where, files.PRUNED), json.dumps(marker))
        if not storage.is_uri(where):
            spec = spec_of(trial.config)
            pruned_session(where, spec.variant, spec.config, result.get("best_val_accuracy", 0.0),
                           result.get("best_epoch", 0))  # fmt: skip
    except Exception as e:  # noqa: BLE001 - the study goes on; the trial then reads as interrupted
        log.warning("%s: could not mark the trial pruned (%s)", trial_name(trial), first_line(e))


def _resources(config: dict) -> dict:
    """What a trial holds: an in-process trial its worker's CPUs/GPUs; a worker-group trial a token CPU
    (Ray Train reserves its workers in a placement group of their own)."""
    s = spec_of(config)
    if s.in_process:
        return {"cpu": s.fit.trial_cpus, "gpu": s.config.resources.gpus_per_worker}
    return {"cpu": TRIAL_DRIVER_CPU}


def trial_name(trial) -> str:
    """VARIANT_seedN_TRIALID; a trial of a rebuilt phase keeps its old dir."""
    spec = trial.config["spec"]
    return spec.get(CARRY_ON, {}).get("dir") or files.trial_dir_name(spec["variant"], spec["seed"], trial.trial_id)


def spec_of(config: dict) -> TrialSpec:
    """The TrialSpec of a Tune trial's config, on the driver."""
    return TrialSpec.from_param(config["spec"])
