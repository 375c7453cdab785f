"""A trial on Ray: the Tune function that builds a TorchTrainer, and ``RaySession``, the loop's door to Ray.

``resources.workers_per_trial = 0`` runs the loop (runner.loop) inside the Tune trial's own process
(Ray Train's local mode: no extra processes, the fastest choice for small trials on one node); N >= 1
starts a worker group of N DDP processes (gloo on CPU, nccl on GPU), each fed its shard of the train
set. Every Ray call the loop makes goes through ``RaySession``.
"""

from __future__ import annotations

import functools
import os
import time
import traceback

import numpy as np
import torch

from runner import checkpoint, loop, rebuild, storage
from runner.data.ray_data import read_all
from runner.data.split import NO_IMAGES
from runner.errors import STORAGE_FAULT, first_line, storage_fault
from runner.plan import TrialSpec
from runner.reporter import trim_heap
from runner.results import Status

MAX_WORKER_RESTARTS = 2  # a worker group that loses a process restarts from its last checkpoint this often


def run_trial(config: dict, datasets: dict) -> None:
    """Tune function trainable: one (variant, seed) of the study as a Ray Train TorchTrainer.

    ``config``: Tune's param dict, {"spec": TrialSpec.to_param(), "results_dir": ...}; ``datasets``:
    {data key: {"train", "val"}}. An exception in the training code ends the trial with status
    ``error`` (its traceback in the trial dir's error.txt) and is not retried: it would fail again. A
    lost process is retried from the last checkpoint: a worker by Ray Train, the trial process by Tune.
    """
    import ray.tune

    entered = time.time()  # the trial's fixed cost is measured from here to its first training step
    spec = TrialSpec.from_param(config["spec"])
    # The trial's dir in the results dir, a path or URI (Tune's get_trial_dir() is a staging dir that
    # reused actors do not sync).
    trial_dir = storage.join(config["results_dir"], ray.tune.get_context().get_trial_name())
    try:
        carry_from = config["spec"].get(rebuild.KEY, {}).get("checkpoint", "")
        _trainer(spec, datasets[spec.data_key], trial_dir, entered, carry_from).fit()
        if not spec.in_process:
            _drain_reports_to_tune()
    except Exception as e:  # noqa: BLE001 - the study goes on; this trial records why it stopped
        fault = storage_fault(e, config["results_dir"])
        message = fault or first_line(e, 500)
        try:  # the traceback, then the one line the summary shows; a failed disk may not take it
            text = "".join(traceback.format_exception(e)) + "\n" + message + "\n"
            storage.write_text(storage.join(trial_dir, "error.txt"), text)
        except OSError:
            pass
        ray.tune.report({"status": STORAGE_FAULT if fault else str(Status.ERROR), "error": message})
        if fault:  # every trial would fail the same way: the driver stops the study; this one resumes later
            _wait_to_be_stopped()
            raise
    finally:
        _release_memory()


def _wait_to_be_stopped(timeout_s: float = 60.0) -> None:
    """Give the driver the time to stop the study (like Ctrl-C, so this trial stays unfinished and resumable)
    before the trial fails on its own."""
    time.sleep(timeout_s)


def _trainer(spec: TrialSpec, datasets: dict, trial_dir: str, entered: float, carry_from: str = ""):
    """The TorchTrainer: the loop in this process (local mode), or in a worker group that reports to Tune.
    ``carry_from``: the checkpoint a trial of a rebuilt phase carries on from (runner.rebuild), when Ray has none."""
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    res = spec.config.resources
    use_gpu = res.gpus_per_worker > 0
    scaling = ray.train.ScalingConfig(
        num_workers=res.workers_per_trial,
        use_gpu=use_gpu,
        resources_per_worker={"CPU": res.cpus_per_worker, **({"GPU": res.gpus_per_worker} if use_gpu else {})},
    )
    loop_config = {"spec": spec, "trial_dir": trial_dir, "entered": entered, "splits": tuple(datasets),
                   "carry_from": carry_from}  # fmt: skip
    if spec.in_process:  # the loop reads the datasets directly and reports to Tune itself
        return TorchTrainer(
            functools.partial(_worker, datasets=datasets), train_loop_config=loop_config, scaling_config=scaling
        )
    return TorchTrainer(  # Train shards the train set per worker; metrics reach Tune via the callback
        _worker,
        train_loop_config=loop_config,
        scaling_config=scaling,
        datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
        run_config=ray.train.RunConfig(
            name="train",
            storage_path=trial_dir,
            callbacks=[TuneReportCallback()],
            checkpoint_config=checkpoint.ray_config(ray.train.CheckpointConfig),
            failure_config=ray.train.FailureConfig(max_failures=MAX_WORKER_RESTARTS),
        ),
    )


def _worker(config: dict, datasets: dict | None = None) -> None:
    """Each Train worker: the loop with Ray's session."""
    spec = config["spec"]
    session = RaySession(spec.in_process, datasets, config["splits"], config.get("carry_from", ""))
    loop.train(spec, session, config["trial_dir"], config["entered"])


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
    """Hand this trial's freed memory back to the OS before Tune reuses the process for the next trial:
    glibc keeps freed heap pages of the model, optimizer and checkpoint buffers, so a reused trial
    process would grow with every trial (README, Performance)."""
    import gc

    gc.collect()
    trim_heap()


class RaySession:
    """Every place the loop touches Ray: rank, data shards, DDP, collectives, reporting."""

    def __init__(self, local: bool, datasets: dict | None, splits: tuple[str, ...] = ("train", "val"),
                 carry_from: str = ""):  # fmt: skip
        self.local, self.datasets, self.splits, self.carry_from = local, datasets, splits, carry_from
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
        """The last reported checkpoint's state when this trial is being retried, else the checkpoint a trial of
        a rebuilt phase carries on from, else None."""
        if self.local:
            import ray.tune

            ckpt = ray.tune.get_checkpoint()
        else:
            import ray.train

            ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return checkpoint.read_dir(self.carry_from) if self.carry_from else None
        with ckpt.as_directory() as d:  # the dir itself for local storage; a download, deleted on exit, for a URI
            return checkpoint.read_dir(d)

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
        if name not in self.splits:  # a split the study does not have (test)
            return NO_IMAGES
        if self.local:
            return read_all(self.datasets[name])
        import ray.train

        x, y = read_all(ray.train.get_dataset_shard(name))
        if name != "train" or self.world == 1:
            return x, y
        n = torch.tensor([len(y)], dtype=torch.int64)  # every rank runs as many steps: the smallest shard's
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
