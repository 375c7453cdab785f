"""The training loop of one trial, without Ray: spec -> seed -> data -> model -> optimizer -> epochs
{train, validate, report, stop?}.

Every place the loop touches the outside goes through a ``Session``: its rank in the trial's worker
group, its data shard, the collectives, reporting each epoch with its checkpoint, and the state to
resume from. ``runner.trial.session.RaySession`` is Ray's (local mode and worker groups alike); the tests run a
trial in their own process behind a fake of the same protocol. Rank 0 writes the trial's
own files: TensorBoard events and the best epoch's confusion matrix and classification report.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
import zlib
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from runner import checkpoints, storage
from runner.data.augment import Augment
from runner.results import files as trial_files
from runner.results.status import Status
from runner.study.plan import TrialSpec
from runner.trial.async_report import Reporter, snapshot
from runner.trial.engine import EarlyStopping, build_optimizer, evaluate, train_epoch
from runner.trial.metrics import classification_report, confusion
from runner.trial.model import build_model


class Session(Protocol):
    """What the loop needs from whatever runs it."""

    rank: int  # this worker's rank in the trial's group (0 writes files and checkpoints)
    world: int  # workers in the group
    device: torch.device

    def shard(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """This worker's (uint8 images, labels) of split ``name``; every rank gets as many train images."""
        ...

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model ready for the group (DDP-wrapped when there are several workers)."""
        ...

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over the workers."""
        ...

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        """Rank 0's value on every worker."""
        ...

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        """Hand an epoch's metrics (and its checkpoint dir, copied before this returns) to whoever runs the trial."""
        ...

    def restored_state(self) -> dict | None:
        """The last reported checkpoint's state when the trial is being retried or resumed, else None."""
        ...

    def workers(self) -> str:
        """Where the group's workers run, in rank order, for the results."""
        ...


@dataclasses.dataclass
class TrainingState:
    """What an epoch carries on to the next, and what a checkpoint saves to resume from."""

    stopper: EarlyStopping
    first_epoch: int = 1
    best_preds: np.ndarray | None = None  # val predictions at the best epoch
    history: list = dataclasses.field(default_factory=list)  # per epoch: accuracies and val loss
    # The best epoch's model on the test split, taken when that epoch is the best on val (never looked at to
    # decide anything): {"accuracy", "loss", "preds"}; None without a test split.
    best_test: dict | None = None
    # rank 0: the best epoch's weights (CPU copies, never changed in place) while that epoch has no checkpoint of
    # its own, so the checkpoints written after it hold them; None when it has one (or there is no best yet)
    best_model: dict | None = None
    checkpointed_at: float | None = None  # time.monotonic() of the last checkpoint handed to the reporter


@dataclasses.dataclass
class _Trial:
    """One trial's working set, built once: what every epoch reads and updates."""

    spec: TrialSpec
    session: Session
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    augment: Augment
    train: tuple[np.ndarray, np.ndarray]  # this worker's shard, uint8 images and labels
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]  # empty without a test split
    seed: int  # this worker's seed (study seed, variant, rank)
    progress: TrainingState
    checkpoint_at: tuple[int, ...] = ()  # ASHA's rungs, which set when the trial checkpoints (_checkpoint_due)
    started: float = dataclasses.field(default_factory=time.monotonic)  # built just before its first epoch

    @property
    def checkpoint_kind(self) -> tuple[int, str]:
        """What a checkpoint's writing time depends on: the model's size and the optimizer's state."""
        return sum(p.numel() for p in self.model.parameters()), type(self.opt).__name__


def train(spec: TrialSpec, session: Session, trial_dir: str, entered: float | None = None,
          checkpoint_at: tuple[int, ...] = ()) -> None:  # fmt: skip
    """Run ``spec``'s epochs (from its last checkpoint when resumed), reporting each through ``session``.

    ``trial_dir``: the trial's dir in the results dir (a path or URI); ``entered``: when the trial
    started, so the result says what it cost before its first step; ``checkpoint_at``: the epochs the study's
    scheduler may stop the trial at (ASHA's rungs), which set when it checkpoints (``_checkpoint_due``).
    """
    t_start = time.time()
    run = _setup(spec, session)
    run.checkpoint_at = tuple(checkpoint_at)
    files = storage.TrialFiles(trial_dir) if session.rank == 0 else None  # staged and uploaded for a URI
    times = {"trial_start": t_start, "first_step_time": time.time(), "entered": entered or t_start}
    board = _board(files, run.progress.first_epoch)
    workers = session.workers()
    reporter = Reporter(session.report)
    try:
        for epoch in range(run.progress.first_epoch, spec.config.train.epochs + 1):
            metrics = _epoch(run, epoch, reporter)
            metrics.update(_bookkeeping(times, workers, run.progress.first_epoch))
            last = metrics["status"] != Status.RUNNING
            # Files before the checkpoint: a crash in between redoes this epoch, and purge_step hides the first copy.
            if board:
                _write_files(run, board, files, metrics, last)
            _report(run, reporter, metrics)
            if last:
                break
        reporter.wait()  # the final status goes out after every file and every earlier epoch
    except BaseException:
        _quietly(reporter.wait)
        raise
    finally:
        if files:  # a URI's staged files are uploaded, also when the trial fails
            files.close()


def _quietly(wait) -> None:
    """Let an epoch already handed over finish reporting while the loop fails (the loop's error is the one raised)."""
    try:
        wait()
    except BaseException:  # noqa: BLE001, S110 - the loop's own exception is already on its way
        pass


def _setup(spec: TrialSpec, session: Session) -> _Trial:
    """seed -> data -> model -> optimizer -> the state to resume from."""
    cfg = spec.config
    torch.set_num_threads(max(1, round(cfg.resources.cpus_per_worker)))
    seed = _seed(cfg.train.seed, spec.variant, session.rank)
    train_x, train_y = session.shard("train")  # uint8, in memory; every rank runs the same number of steps
    val, test = session.shard("val"), session.shard("test")
    augment = Augment(cfg.augment, cfg.data.image_size, seed)
    torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
    in_features = int(np.prod(train_x.shape[1:]))
    model = session.prepare(build_model(cfg.model, in_features, len(spec.classes)).to(session.device))
    opt = build_optimizer(cfg.optim, model.parameters())
    progress = TrainingState(EarlyStopping(cfg.train.patience))
    state = session.restored_state()
    if state is not None:  # a retried worker group or trial: carry on after the last finished epoch
        progress = _restore(state, model, opt, progress.stopper)
    return _Trial(spec, session, model, opt, augment, (train_x, train_y), val, test, seed, progress)


def _epoch(run: _Trial, epoch: int, reporter: Reporter) -> dict:
    """Train and validate one epoch; returns its metrics with a status. An in-process trial that Tune stops (ASHA)
    stops at the next batch, so Tune can reuse its process at once (a worker group's processes are stopped by Ray
    Train: one rank alone must not leave DDP's collective calls)."""
    cfg, session = run.spec.config, run.session
    t0 = time.perf_counter()
    rng = _seed_epoch(run.seed, epoch, run.augment)  # per-epoch seeds: a resumed trial draws what an unbroken one would
    batch = max(1, cfg.train.batch_size // session.world)  # train.batch_size is global
    alone = run.spec.in_process
    sums = train_epoch(run.model, run.opt, *run.train, batch, run.augment, cfg.augment, rng, session.device,
                       amp=cfg.train.amp, stop=reporter.failed if alone else None)  # fmt: skip
    if alone and reporter.failed():
        reporter.wait()  # raises what stopped reporting, before this cut-short epoch is validated or written
    tr = session.all_reduce(sums)
    train_seconds = time.perf_counter() - t0
    va, preds = evaluate(run.model, *run.val, cfg.augment, session.device)
    va = session.broadcast(va)  # rank 0's view decides, so every rank stops together
    train_loss, train_acc, n_train = tr[0].item() / tr[2].item(), tr[1].item() / tr[2].item(), tr[2].item()
    val_loss, val_acc = va[0].item() / va[2].item(), va[1].item() / va[2].item()
    stopper = run.progress.stopper
    improved = stopper.update(val_acc, epoch)
    if improved:
        run.progress.best_preds = preds
        run.progress.best_test = _test(run)
    diverged = not (math.isfinite(train_loss) and math.isfinite(val_loss))
    metrics = {
        "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss,
        "val_accuracy": val_acc, "best_val_accuracy": stopper.best, "best_epoch": stopper.best_epoch,
        "epoch_seconds": time.perf_counter() - t0, "images_per_second": n_train / train_seconds,
        "status": _status(diverged, stopper, epoch, cfg.train.epochs),
    }  # fmt: skip
    run.progress.history.append({k: metrics[k] for k in ("epoch", "train_accuracy", "val_accuracy", "val_loss")})
    if metrics["status"] != Status.RUNNING and run.progress.best_test:  # the trial's end: its test numbers
        metrics["test_accuracy"] = run.progress.best_test["accuracy"]
        metrics["test_loss"] = run.progress.best_test["loss"]
    return metrics


def _test(run: _Trial) -> dict | None:
    """The model, now the best on val, on the test split: loss, accuracy and predictions (None without one)."""
    if not len(run.test[1]):
        return None
    sums, preds = evaluate(run.model, *run.test, run.spec.config.augment, run.session.device)
    return {"loss": sums[0].item() / sums[2].item(), "accuracy": sums[1].item() / sums[2].item(), "preds": preds}


def _status(diverged: bool, stopper: EarlyStopping, epoch: int, epochs: int) -> Status:
    if diverged:
        return Status.DIVERGED
    if stopper.should_stop and epoch < epochs:
        return Status.EARLY_STOPPED
    return Status.COMPLETED if epoch == epochs or stopper.should_stop else Status.RUNNING


def _bookkeeping(times: dict, workers: str, first_epoch: int) -> dict:
    """The result fields that say what the trial cost and where it ran."""
    return {
        "setup_seconds": times["first_step_time"] - times["entered"],  # trial entered -> first training step
        "trial_start": times["trial_start"],
        "first_step_time": times["first_step_time"],
        "time": time.time(),
        "workers": workers,
        "memory_mib": _rss_mib(),
        "resumed_from_epoch": first_epoch - 1,
    }


CHECKPOINT_SHARE = 0.05  # train.checkpoint_every = 0 (auto): checkpoints take at most this share of a trial's time
# What the last checkpoint of each kind (_Trial.checkpoint_kind) took to write and report in this process: a reused
# trial process's next trials space their first checkpoint by it instead of writing one early to measure it.
_CHECKPOINT_COST: dict[tuple[int, str], float] = {}


def _report(run: _Trial, reporter: Reporter, metrics: dict) -> None:
    """Hand the epoch to the reporter (written and reported while the next epoch trains), with a checkpoint from
    rank 0 when one is due (``_checkpoint_due``). The best epoch's weights are always in a kept checkpoint: its
    own, or, when it had none, every checkpoint after it (``best_model``), so evaluate and predict use the best
    model; Ray keeps the checkpoint with the best CHECKPOINT_SCORE and the latest."""
    state = frozen = None
    reporter.wait()  # the epoch before is reported (submit waits for it anyway): what its checkpoint cost is known
    if run.session.rank == 0:
        progress, epoch = run.progress, metrics["epoch"]
        best_now = progress.stopper.best_epoch == epoch
        if _checkpoint_due(run, reporter, metrics):
            if best_now:
                progress.best_model = None  # this checkpoint is the best epoch's own
            elif progress.best_model is not None:
                frozen = {
                    checkpoints.BEST_MODEL: progress.best_model,
                    checkpoints.BEST_EPOCH: progress.stopper.best_epoch,
                }
            # the val accuracy of the model evaluate loads from this checkpoint
            score = progress.stopper.best if best_now or frozen else metrics["val_accuracy"]
            state = checkpoint_state(run.spec, run.model, run.opt, progress, epoch, score)
            metrics = {**metrics, checkpoints.CHECKPOINT_SCORE: score}
            progress.checkpointed_at = time.monotonic()
        elif best_now:
            progress.best_model = snapshot(getattr(run.model, "module", run.model).state_dict())
    reporter.submit({**metrics, "status": str(metrics["status"])}, state, frozen)


def _checkpoint_due(run: _Trial, reporter: Reporter, metrics: dict) -> bool:
    """The last epoch always; every ``train.checkpoint_every`` epochs; with 0 (auto), once the time since the last
    checkpoint (or the trial's start) is CHECKPOINT_SHARE^-1 times what writing one takes (a kill redoes at most
    1/CHECKPOINT_SHARE times that), and at the first epoch when this process has not written one of its kind yet (to
    measure it). Under ASHA (``checkpoint_at``: its rungs) also every rung after the first, so a trial pruned there
    carries on from where it stopped when confirmed; and none up to the first rung: most samples stop there, and a
    checkpoint there would delay their stop by its write."""
    every, progress, rungs = run.spec.config.train.checkpoint_every, run.progress, run.checkpoint_at
    if metrics["status"] != Status.RUNNING or metrics["epoch"] in rungs[1:]:
        return True
    if every:
        return metrics["epoch"] % every == 0
    if rungs and metrics["epoch"] <= rungs[0]:
        return False
    kind = run.checkpoint_kind
    if reporter.checkpoint_seconds is not None:
        _CHECKPOINT_COST[kind] = reporter.checkpoint_seconds
    cost = _CHECKPOINT_COST.get(kind)
    if cost is None:  # the first of its kind in this process: writing it measures what one costs
        return True
    since = run.started if progress.checkpointed_at is None else progress.checkpointed_at
    return time.monotonic() - since >= cost / CHECKPOINT_SHARE


def checkpoint_state(spec: TrialSpec, model, opt, progress: TrainingState, epoch: int, score: float) -> dict:
    """Everything a retried trial needs to carry on, plus what evaluate/predict need to use the model. ``score``:
    the val accuracy of the model evaluate loads from it (``best_model`` when the checkpoint has one)."""
    c = checkpoints
    return {
        c.MODEL: getattr(model, "module", model).state_dict(),
        c.OPTIMIZER: opt.state_dict(),
        c.CONFIG: spec.config.to_dict(),
        c.CLASSES: list(spec.classes),
        c.EPOCH: epoch,
        c.SCORE: score,
        c.STOPPER: dataclasses.asdict(progress.stopper),
        c.HISTORY: progress.history,
        # lists, not arrays: numpy objects would stop `torch.load(weights_only=True)` (evaluate, predict)
        c.BEST_PREDS: None if progress.best_preds is None else np.asarray(progress.best_preds).tolist(),
        c.BEST_TEST: None if progress.best_test is None
        else {**progress.best_test, "preds": np.asarray(progress.best_test["preds"]).tolist()},
    }  # fmt: skip


def _restore(state: dict, model, opt, stopper: EarlyStopping) -> TrainingState:
    c = checkpoints
    getattr(model, "module", model).load_state_dict(state[c.MODEL])
    opt.load_state_dict(state[c.OPTIMIZER])
    for k, v in state[c.STOPPER].items():
        setattr(stopper, k, v)
    preds, test = state[c.BEST_PREDS], state.get(c.BEST_TEST)
    best_preds = None if preds is None else np.asarray(preds, dtype=np.int64)
    if test is not None:
        test = {**test, "preds": np.asarray(test["preds"], dtype=np.int64)}
    best_model = state.get(c.BEST_MODEL)  # None: the best epoch has a checkpoint of its own
    return TrainingState(stopper, state[c.EPOCH] + 1, best_preds, state[c.HISTORY], test, best_model)


def _board(files: storage.TrialFiles | None, first_epoch: int):
    """Rank 0's TensorBoard run in the trial dir (None on other ranks)."""
    from runner.trial.board import TrialBoard

    return TrialBoard(str(files.dir), purge_step=first_epoch) if files else None


def _write_files(run: _Trial, board, files: storage.TrialFiles, metrics: dict, last: bool) -> None:
    """The epoch's events; at the end, every file of the trial (before its final status is reported)."""
    board.epoch(metrics, getattr(run.model, "module", run.model))
    if last:
        progress, (val_x, val_y), classes = run.progress, run.val, list(run.spec.classes)
        best_epoch = progress.stopper.best_epoch
        if progress.best_preds is not None:
            cm = confusion(val_y, progress.best_preds, len(classes))
            report = classification_report(val_y, progress.best_preds, classes)
            board.best(best_epoch, cm, report, val_x, val_y, progress.best_preds, classes)
            cm_json = {"epoch": best_epoch, "classes": classes, "matrix": cm.tolist()}
            (files.dir / trial_files.CONFUSION).write_text(json.dumps(cm_json))
            (files.dir / trial_files.CLASS_REPORT).write_text(f"best epoch {best_epoch}\n\n{report}")
        if progress.best_test is not None:
            _write_test_files(files.dir, run, board)
        board.finish(run.spec, progress.stopper, progress.best_test)
    files.sync()  # a URI's copy is as far as the checkpoint that follows


def _write_test_files(d: Path, run: _Trial, board) -> None:
    """The best epoch's model on test: confusion matrix and per-class report, as files and in TensorBoard."""
    test, classes, epoch = run.progress.best_test, list(run.spec.classes), run.progress.stopper.best_epoch
    cm = confusion(run.test[1], test["preds"], len(classes))
    report = classification_report(run.test[1], test["preds"], classes)
    (d / "test_confusion_matrix.json").write_text(
        json.dumps({"epoch": epoch, "classes": classes, "matrix": cm.tolist()})
    )
    (d / "test_classification_report.txt").write_text(f"best epoch {epoch} (picked on val)\n\n{report}")
    board.test(epoch, test, report)


def _seed(study_seed: int, variant: str, rank: int) -> int:
    """A seed per (study seed, variant, worker rank), stable across runs and machines."""
    seed = (study_seed * 1_000_003 + zlib.crc32(variant.encode()) + rank * 7919) % (2**31)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    return seed


def _seed_epoch(seed: int, epoch: int, augment: Augment) -> np.random.Generator:
    """Seed torch (dropout) and the augmentation for one epoch; return the epoch's shuffling generator."""
    epoch_seed = (seed * 10_007 + epoch) % (2**31)
    torch.manual_seed(epoch_seed)
    augment.reseed(epoch_seed)
    return np.random.default_rng(epoch_seed)


def _rss_mib() -> float:
    """This process's resident memory, MiB (Linux; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0
