"""A trial on Ray: the Tune function that builds a TorchTrainer running ``runner.trial.session.worker``.

``resources.workers_per_trial = 0`` runs the loop (runner.trial.loop) inside the Tune trial's own process
(Ray Train's local mode: no extra processes, the fastest choice for small trials on one node); N >= 1
starts a worker group of N DDP processes (gloo on CPU, nccl on GPU), each fed its shard of the train
set. Importing this module imports no torch: the driver hands ``run_trial`` to Tune, and only trial
processes load torch.
"""

from __future__ import annotations

import functools
import time
import traceback

from runner import checkpoints, storage
from runner.errors import first_line, storage_fault
from runner.results import files
from runner.results.status import Status
from runner.study.plan import CARRY_ON, CHECKPOINT_AT, TrialSpec
from runner.trial.async_report import trim_heap

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
        carry_from = config["spec"].get(CARRY_ON, {}).get("checkpoint", "")
        at = tuple(config["spec"].get(CHECKPOINT_AT, ()))
        _trainer(spec, datasets[spec.data_key], trial_dir, entered, carry_from, at).fit()
        if not spec.in_process:
            _drain_reports_to_tune()
    except Exception as e:  # noqa: BLE001 - the study goes on; this trial records why it stopped
        fault = storage_fault(e, config["results_dir"])
        message = fault or first_line(e, 500)
        try:  # the traceback, then the one line the summary shows; a failed disk may not take it
            text = "".join(traceback.format_exception(e)) + "\n" + message + "\n"
            storage.write_text(storage.join(trial_dir, files.ERROR), text)
        except OSError:
            pass
        ray.tune.report({"status": str(Status.STORAGE_FAULT if fault else Status.ERROR), "error": message})
        if fault:  # every trial would fail the same way: the driver stops the study; this one resumes later
            _wait_to_be_stopped()
            raise
    finally:
        _release_memory()


def _wait_to_be_stopped(timeout_s: float = 60.0) -> None:
    """Give the driver the time to stop the study (like Ctrl-C, so this trial stays unfinished and resumable)
    before the trial fails on its own."""
    time.sleep(timeout_s)


def _trainer(spec: TrialSpec, datasets: dict, trial_dir: str, entered: float, carry_from: str = "",
             checkpoint_at: tuple[int, ...] = ()):  # fmt: skip
    """The TorchTrainer: the loop in this process (local mode), or in a worker group that reports to Tune.
    ``carry_from``: the checkpoint a trial of a rebuilt phase carries on from (runner.driver.recover), when Ray has none;
    ``checkpoint_at``: epochs that checkpoint (ASHA's rungs)."""
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from runner.trial.session import worker

    res = spec.config.resources
    use_gpu = res.gpus_per_worker > 0
    scaling = ray.train.ScalingConfig(
        num_workers=res.workers_per_trial,
        use_gpu=use_gpu,
        resources_per_worker={"CPU": res.cpus_per_worker, **({"GPU": res.gpus_per_worker} if use_gpu else {})},
    )
    loop_config = {"spec": spec, "trial_dir": trial_dir, "entered": entered, "splits": tuple(datasets),
                   "carry_from": carry_from, "checkpoint_at": checkpoint_at}  # fmt: skip
    if spec.in_process:  # the loop reads the datasets directly and reports to Tune itself
        return TorchTrainer(
            functools.partial(worker, datasets=datasets), train_loop_config=loop_config, scaling_config=scaling
        )
    return TorchTrainer(  # Train shards the train set per worker; metrics reach Tune via the callback
        worker,
        train_loop_config=loop_config,
        scaling_config=scaling,
        datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
        run_config=ray.train.RunConfig(
            name="train",
            storage_path=trial_dir,
            callbacks=[TuneReportCallback()],
            checkpoint_config=checkpoints.ray_config(ray.train.CheckpointConfig),
            failure_config=ray.train.FailureConfig(max_failures=MAX_WORKER_RESTARTS),
        ),
    )


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
    process would grow with every trial (docs/performance.md)."""
    import gc

    gc.collect()
    # What outlives a trial (modules, Ray's and torch's caches) is set aside from the collector for good: a full
    # collection scanned all of it after every trial (the trial process's largest cost outside training, on tiny
    # trials); the next one scans only the next trial's objects.
    gc.freeze()
    trim_heap()
