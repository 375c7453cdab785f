"""A trial: the Tune function that builds a TorchTrainer, and the loop each Train worker runs.

``resources.workers_per_trial = 0`` runs the loop inside the Tune trial's own process (Ray Train's
local mode: no extra processes, the fastest choice for small trials on one node); N >= 1 starts a
worker group of N DDP processes (gloo on CPU, nccl on GPU), each fed its shard of the train set.
The only Ray calls of the loop live in ``_RaySession``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import random
import re
import shutil
import tempfile
import time
import traceback
import zlib
from pathlib import Path

import numpy as np
import torch

from runner import storage
from runner.config import TrialConfig
from runner.data.augment import Augment
from runner.data.ray_data import read_all
from runner.engine import EarlyStopping, build_optimizer, evaluate, train_epoch
from runner.metrics import classification_report, confusion
from runner.model import build_model

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "model.pt"
MAX_WORKER_RESTARTS = 2  # a worker group that loses a process restarts from its last checkpoint this often


def run_trial(config: dict, datasets: dict) -> None:
    """Tune function trainable: one (variant, seed) of the study as a Ray Train TorchTrainer.

    An exception in the training code ends the trial with status ``error`` (its traceback in the trial
    dir's error.txt) and is not retried: it would fail again. A lost process is retried from the last
    checkpoint: a worker by Ray Train, the trial process itself by Tune.
    """
    import ray.train
    import ray.tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    entered = time.time()  # the trial's fixed cost is measured from here to its first training step
    cfg = TrialConfig.from_dict(config["spec"]["trial"])
    res = cfg.resources
    local = res.workers_per_trial == 0
    # The trial's dir in the results dir, a path or URI (Tune's get_trial_dir() is a staging dir that
    # reused actors do not sync).
    trial_dir = storage.join(config["results_dir"], ray.tune.get_context().get_trial_name())
    loop_config = {**config["spec"], "classes": config["classes"], "logdir": trial_dir, "local": local,
                   "cpus": config["cpus_per_worker"], "trial_entered": entered}
    use_gpu = res.gpus_per_worker > 0
    scaling = ray.train.ScalingConfig(
        num_workers=res.workers_per_trial, use_gpu=use_gpu,
        resources_per_worker={"CPU": config["cpus_per_worker"], **({"GPU": res.gpus_per_worker} if use_gpu else {})},
        placement_strategy=config.get("placement_strategy", "PACK"),
    )
    if local:  # the loop runs here; it reads the datasets directly and reports to Tune itself
        trainer = TorchTrainer(functools.partial(train_loop, datasets=datasets), train_loop_config=loop_config,
                               scaling_config=scaling)
    else:  # a worker group: Train shards the train set per worker; metrics reach Tune via the callback
        trainer = TorchTrainer(
            train_loop, train_loop_config=loop_config, scaling_config=scaling, datasets=datasets,
            dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
            run_config=ray.train.RunConfig(
                name="train", storage_path=trial_dir, callbacks=[TuneReportCallback()],
                checkpoint_config=checkpoint_config(ray.train.CheckpointConfig),
                failure_config=ray.train.FailureConfig(max_failures=MAX_WORKER_RESTARTS),
            ),
        )
    try:
        trainer.fit()
        if not local:
            _drain_reports_to_tune()
    except Exception as e:  # noqa: BLE001 - the study goes on; this trial records why it stopped
        message = _error_line(e)
        # The traceback, then the one line the summary shows (it reads the last line).
        storage.write_text(storage.join(trial_dir, "error.txt"), "".join(traceback.format_exception(e)) + "\n" + message + "\n")
        ray.tune.report({"status": "error", "error": message})
    finally:
        _release_memory()


def _drain_reports_to_tune(timeout_s: float = 30.0) -> None:
    """Wait until Tune has taken every metric a worker group reported, before the trial function returns.

    Works around a deadlock in Ray 2.60's function-trainable session (seen in a two-node test, py-spy
    on the stuck trial: Tune's main thread blocked in Queue.put in _TrainSession.report): when the last
    TuneReportCallback item is still in the inter-actor queue as the function returns, the training
    thread's end-of-run result fills the size-1 result queue first and the main thread, which is that
    queue's only consumer, blocks forever putting the last report into it.
    """
    from ray.train._internal.session import get_session

    queue = getattr(get_session(), "_inter_actor_queue", None)
    if queue is None:
        return
    deadline = time.time() + timeout_s
    while not queue.empty() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let the main thread move the item it just took into the result queue


def _release_memory() -> None:
    """Hand this trial's freed memory back to the OS before Tune reuses the process for the next trial.

    Measured: without this a reused trial process grew by 100-200 MiB per trial (glibc keeps freed
    heap pages of the model, optimizer and checkpoint buffers), 0.7 -> 1.4 GiB over 6 trials.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def checkpoint_config(config_cls):
    """Keep the best checkpoint (by val accuracy) and the latest one (Ray always keeps the latest)."""
    return config_cls(num_to_keep=1, checkpoint_score_attribute="val_accuracy", checkpoint_score_order="max")


def train_loop(config: dict, datasets: dict | None = None, session=None) -> None:
    """Each worker: config -> seed -> data -> model -> optimizer -> epochs {train, validate, report, stop?}."""
    t_start = time.time()
    cfg = TrialConfig.from_dict(config["trial"])
    session = session or _RaySession(config["local"], datasets)  # every Ray call of this loop goes through it
    rank, world = session.rank, session.world
    torch.set_num_threads(max(1, round(config["cpus"])))
    seed = _seed(cfg.train.seed, config["variant"], rank)
    device = session.device

    # Data: this worker's shard of train (uint8, in memory), the whole val set.
    train_x, train_y = session.shard("train")
    val_x, val_y = session.shard("val")
    train_x, train_y = session.equalize(train_x, train_y)  # every rank runs the same number of steps
    classes = config["classes"]
    augment = Augment(cfg.augment, cfg.data.image_size, seed)
    batch = max(1, cfg.train.batch_size // world)  # train.batch_size is global

    torch.manual_seed(cfg.train.seed)  # the same initial weights on every rank
    model = session.prepare(build_model(cfg.model, int(np.prod(train_x.shape[1:])), len(classes)).to(device))
    opt = build_optimizer(cfg.optim, model.parameters())
    stopper = EarlyStopping(cfg.train.patience)
    first_epoch, best_preds, history = 1, None, []
    state = session.restored_state()
    if state is not None:  # a retried worker group or trial: carry on after the last finished epoch
        first_epoch, best_preds, history = _restore(state, model, opt, stopper)
    files = storage.TrialFiles(config["logdir"]) if rank == 0 else None  # staged and uploaded for a URI
    first_step = time.time()
    setup_seconds = first_step - config.get("trial_entered", t_start)  # trial entered -> first training step
    tb = _TBLogger(str(files.dir), purge_step=first_epoch) if rank == 0 else None
    workers = session.workers()
    try:
        for epoch in range(first_epoch, cfg.train.epochs + 1):
            t0 = time.perf_counter()
            rng = _seed_epoch(seed, epoch, augment)  # per-epoch seeds: a resumed trial draws what an unbroken one would
            tr = session.all_reduce(train_epoch(model, opt, train_x, train_y, batch, augment, cfg.augment, rng, device,
                                                amp=cfg.train.amp))
            train_seconds = time.perf_counter() - t0
            va, preds = evaluate(model, val_x, val_y, cfg.augment, device)
            va = session.broadcast(va)  # rank 0's view decides, so every rank stops together
            train_loss, train_acc, n_train = tr[0].item() / tr[2].item(), tr[1].item() / tr[2].item(), tr[2].item()
            val_loss, val_acc = va[0].item() / va[2].item(), va[1].item() / va[2].item()
            improved = stopper.update(val_acc, epoch)
            if improved:
                best_preds = preds
            diverged = not (math.isfinite(train_loss) and math.isfinite(val_loss))
            last = diverged or epoch == cfg.train.epochs or stopper.should_stop
            status = "running"
            if diverged:
                status = "diverged"
            elif stopper.should_stop and epoch < cfg.train.epochs:
                status = "early_stopped"
            elif last:
                status = "completed"
            metrics = {
                "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss,
                "val_accuracy": val_acc, "best_val_accuracy": stopper.best, "best_epoch": stopper.best_epoch,
                "epoch_seconds": time.perf_counter() - t0, "images_per_second": n_train / train_seconds,
                "setup_seconds": setup_seconds, "trial_start": t_start, "first_step_time": first_step, "time": time.time(),
                "status": status, "workers": workers, "memory_mib": _rss_mib(),
                "resumed_from_epoch": first_epoch - 1,
            }
            history.append({k: metrics[k] for k in ("epoch", "train_accuracy", "val_accuracy", "val_loss")})
            if tb:  # before the checkpoint: a crash in between redoes this epoch, and purge_step hides the first copy
                tb.epoch(epoch, metrics, model)
                if last:  # every file of the trial is written before its final status is reported
                    tb.finish(config, cfg, stopper, val_x, val_y, best_preds, classes)
                files.sync()  # a URI's copy is as far as the checkpoint below
            # Every checkpoint_every epochs, and always the best model and the end: evaluate/predict use the best.
            save = rank == 0 and (epoch % cfg.train.checkpoint_every == 0 or improved or last)
            ckpt_dir = _save_checkpoint(model, opt, stopper, cfg, classes, epoch, val_acc, best_preds, history) if save else None
            session.report(metrics, ckpt_dir)  # Ray copies the checkpoint into the trial dir before returning
            if ckpt_dir:
                shutil.rmtree(ckpt_dir, ignore_errors=True)
            if last:
                break
    finally:
        if files:  # a URI's staged files are uploaded, also when the trial fails
            files.close()


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


def _save_checkpoint(model, opt, stopper: EarlyStopping, cfg: TrialConfig, classes: list[str], epoch: int,
                     val_acc: float, best_preds, history: list[dict]) -> str:
    """Everything a retried trial needs to carry on, plus what `evaluate`/`predict` need to use the model."""
    d = tempfile.mkdtemp(prefix="runner-ckpt-")
    state = {
        "model": getattr(model, "module", model).state_dict(), "optimizer": opt.state_dict(),
        "config": cfg.to_dict(), "classes": classes, "epoch": epoch, "val_accuracy": val_acc,
        "stopper": dataclasses.asdict(stopper), "history": history,
        # a list, not an array: numpy objects would stop `torch.load(weights_only=True)` (evaluate, predict)
        "best_preds": None if best_preds is None else np.asarray(best_preds).tolist(),
    }
    torch.save(state, os.path.join(d, CHECKPOINT_FILE))
    (Path(d) / "meta.json").write_text(json.dumps({"epoch": epoch, "val_accuracy": val_acc}))
    return d


def read_checkpoint(path) -> dict:
    """A model.pt ``_save_checkpoint`` wrote, loaded on the CPU without running pickled code. Checkpoints
    written before best_preds became a list hold a numpy array: exactly numpy's array types are allowed."""
    with torch.serialization.safe_globals([np._core.multiarray._reconstruct, np.ndarray, np.dtype,
                                           type(np.dtype(np.int64))]):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_state(checkpoint_dir: str) -> dict | None:
    """The checkpoint a trial wrote, or None when the dir holds none."""
    path = os.path.join(checkpoint_dir, CHECKPOINT_FILE)
    return read_checkpoint(path) if os.path.exists(path) else None


def _restore(state: dict, model, opt, stopper: EarlyStopping):
    getattr(model, "module", model).load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    for k, v in state["stopper"].items():
        setattr(stopper, k, v)
    log.info("resuming after epoch %d", state["epoch"])
    preds = state["best_preds"]
    return state["epoch"] + 1, None if preds is None else np.asarray(preds, dtype=np.int64), state["history"]


def _rss_mib() -> float:
    """This process's resident memory, MiB (Linux; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _error_line(e: BaseException) -> str:
    """The line that names the real exception, also when Ray wraps a worker's traceback in its own."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    named = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt)\b", ln)]
    return (named[-1] if named else (lines[-1] if lines else type(e).__name__))[:500]


class _RaySession:
    """Every place the loop touches Ray: rank, data shards, DDP, collectives, reporting."""

    def __init__(self, local: bool, datasets: dict | None):
        self.local, self.datasets = local, datasets
        if local:
            self.rank, self.world = 0, 1
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            import ray.train
            import ray.train.torch

            ctx = ray.train.get_context()
            self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
            self.device = ray.train.torch.get_device()

    def restored_state(self) -> dict | None:
        """The last reported checkpoint's state when this trial is being retried, else None."""
        if self.local:
            import ray.tune

            ckpt = ray.tune.get_checkpoint()
        else:
            import ray.train

            ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:  # the dir itself for local storage; a download, deleted on exit, for a URI
            return load_state(d)

    def workers(self) -> str:
        """'NODE@ip:pid' of every rank, in rank order (NODE: the Ray node id's first 8 hex digits; two
        raylets on one host share an ip), so results say where a trial ran."""
        import ray

        me = f"{ray.get_runtime_context().get_node_id()[:8]}@{ray.util.get_node_ip_address()}:{os.getpid()}"
        if self.world == 1:
            return me
        everyone = [None] * self.world
        torch.distributed.all_gather_object(everyone, me)
        return ",".join(everyone)

    def shard(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if self.local:
            return read_all(self.datasets[name])
        import ray.train

        return read_all(ray.train.get_dataset_shard(name))

    def equalize(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.world == 1:
            return x, y
        n = torch.tensor([len(y)], dtype=torch.int64)
        torch.distributed.all_reduce(n, op=torch.distributed.ReduceOp.MIN)
        return x[: n.item()], y[: n.item()]

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return model
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t

    def broadcast(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.broadcast(t, src=0)
        return t

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        from ray.train import Checkpoint

        ckpt = Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        if self.local:
            import ray.tune

            ray.tune.report(metrics, checkpoint=ckpt)
        else:
            import ray.train

            ray.train.report(metrics, checkpoint=ckpt)


class _TBLogger:
    """Rank 0's TensorBoard run for the trial, written into the trial's directory."""

    def __init__(self, logdir: str, purge_step: int):
        from runner.tblog import TrialLogger

        self.dir = Path(logdir)  # made by TrialFiles
        self.log = TrialLogger(logdir, purge_step=purge_step)

    def epoch(self, epoch: int, metrics: dict, model) -> None:
        self.log.epoch(epoch, {
            "train/loss": metrics["train_loss"], "train/accuracy": metrics["train_accuracy"],
            "val/loss": metrics["val_loss"], "val/accuracy": metrics["val_accuracy"],
            "time/epoch_seconds": metrics["epoch_seconds"], "time/images_per_second": metrics["images_per_second"],
        })
        self.log.histograms(getattr(model, "module", model), epoch)

    def finish(self, config: dict, cfg: TrialConfig, stopper: EarlyStopping, val_x, val_y, best_preds, classes) -> None:
        if best_preds is not None:
            cm = confusion(val_y, best_preds, len(classes))
            report = classification_report(val_y, best_preds, classes)
            self.log.best(stopper.best_epoch, cm, report, val_x, val_y, best_preds, classes)
            # The same, as files beside the events: per-class metrics at the best epoch.
            (self.dir / "confusion_matrix.json").write_text(json.dumps(
                {"epoch": stopper.best_epoch, "classes": classes, "matrix": cm.tolist()}))
            (self.dir / "classification_report.txt").write_text(f"best epoch {stopper.best_epoch}\n\n{report}")
        self.log.hparams(hparams(config["variant"], cfg), {"best/val_accuracy": max(stopper.best, 0.0),
                                                           "best/epoch": stopper.best_epoch})
        self.log.close()


def hparams(variant: str, cfg: TrialConfig) -> dict:
    """The trial's hyper-parameters as TensorBoard HParams values (numbers, strings, bools)."""
    m, o, t = cfg.model, cfg.optim, cfg.train
    return {
        "variant": variant, "seed": t.seed, "hidden": "-".join(map(str, m.hidden)), "dropout": m.dropout,
        "batchnorm": m.batchnorm, "init": m.init, "optimizer": o.name, "lr": o.lr, "weight_decay": o.weight_decay,
        "batch_size": t.batch_size, "epochs": t.epochs, "patience": t.patience,
        "augment": ",".join(str(a.get("name")) for a in cfg.augment.train) or "none",
    }
