"""Orchestration on Ray: start or join a cluster, then run a Plan's trials with Ray Tune into a results dir.

Every trial's spec goes to Tune in one grid (a trial per (variant, seed)); the study's datasets are
put into Ray's object store once and handed to every trial; a killed study is restored from Tune's
experiment state. No statistics and no console output here (runner.progress prints as trials end).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import warnings
from pathlib import Path

from runner import checkpoints, storage
from runner.driver import recover
from runner.errors import GONE, STORAGE_FAULT, ConfigError, StorageFault, first_line, gone_line, storage_fault
from runner.results import files
from runner.results.records import PRUNED_FILE, trial_dir_name
from runner.study.plan import TrialSpec
from runner.study.resources import TRIAL_DRIVER_CPU, Cluster

log = logging.getLogger(__name__)

# Ray Train settings that cut a worker group's fixed cost (README, Performance); a user's own values win.
TRAIN_ENV = {
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # we add Tune's CSV/JSON loggers ourselves; its TBX one would duplicate our tags
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000",
    "RAY_DEDUP_LOGS": "1",
}


DRIVER_ENV = "RUNNER_DRIVER_PID"  # marks the processes of a local Ray cluster that a runner study started


def reap_orphans() -> int:
    """Kill what a runner study's local Ray left behind when its driver was killed (kill -9 skips Ray's
    shutdown; the per-node agents then outlive the raylet). Only processes marked with a dead driver's
    pid are touched, never another program's Ray. Linux only; returns how many were stopped."""
    return _kill_marked(lambda driver: driver != os.getpid() and not Path(f"/proc/{driver}").exists())


def stop_local_cluster() -> int:
    """Kill the local Ray this process started (its processes are marked with this pid), at once: for a driver about
    to exit with every file written (ray.shutdown() spent ~1.1 s of its ~1.4 s waiting for them to end one process
    type after another). Returns how many were stopped; 0 when this process joined a cluster (--address)."""
    return _kill_marked(lambda driver: driver == os.getpid())


def _kill_marked(match) -> int:
    """SIGKILL every process whose DRIVER_ENV names a driver pid ``match`` accepts, and every process under them
    (Ray's per-node agents do not inherit the mark), never this process; returns how many."""
    parents, marked = {}, set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            pid = int(proc.name)
            parents[pid] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = dict(
                kv.split("=", 1)
                for kv in (proc / "environ").read_bytes().decode(errors="replace").split("\0")
                if "=" in kv
            )
            driver = int(env.get(DRIVER_ENV, "0"))
            if driver and match(driver):
                marked.add(pid)
        except (OSError, ValueError, IndexError):
            continue
    while True:  # their descendants, found before any is killed (a killed process's children move to init)
        more = {pid for pid, parent in parents.items() if parent in marked and pid not in marked}
        if not more:
            break
        marked |= more
    marked.discard(os.getpid())
    stopped = 0
    for pid in marked:
        try:
            os.kill(pid, signal.SIGKILL)
            stopped += 1
        except OSError:
            continue
    return stopped


def _check_reachable(address: str, named: str) -> None:
    """Fail in seconds on a HOST:PORT nobody listens on (ray.init retries an unreachable GCS for ~14 minutes)."""
    import socket

    if address == "auto" or "://" in address or ":" not in address:
        return  # auto-discovery and ray:// client addresses are Ray's to resolve
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{named}: cannot connect to a Ray cluster ({getattr(e, 'strerror', None) or e}); "
            "start one with `ray start --head` or `ray up cluster.yaml`, or check HOST:PORT"
        ) from None


def init_ray(address: str | None, named: str, verbose: bool, log_file: Path | None = None) -> Cluster:
    """Start a local Ray (all this machine's cores) or join ``address`` (``named`` in errors: where it came from);
    return what the cluster has. Unless ``verbose``, Ray's and Tune's own log records (a failed trial's traceback
    among them) go to ``log_file``."""
    for k, v in TRAIN_ENV.items():
        os.environ.setdefault(k, v)
    import ray

    if not verbose:  # the CLI reports trial failures itself, in one line each
        logging.getLogger("ray").setLevel(logging.CRITICAL)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
    kwargs = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR)
    if address:
        _check_reachable(address, named)
        try:  # a cluster's processes get TRAIN_ENV through the job's runtime env
            ray.init(address=address, runtime_env={"env_vars": {k: os.environ[k] for k in TRAIN_ENV}}, **kwargs)
        except Exception as e:  # noqa: BLE001 - connection, version and auth failures all mean "cannot join"
            hint = (
                "set RAY_AUTH_MODE (and the token) as the cluster's nodes have them"
                if "auth" in str(e).lower()
                else "start one with `ray start --head` or `ray up cluster.yaml`"
            )
            raise ConfigError(f"{named}: cannot join the Ray cluster ({first_line(e)}); {hint}") from None
    else:
        if reap_orphans():
            log.warning("stopped Ray processes left behind by an earlier study whose driver was killed")
        os.environ[DRIVER_ENV] = str(os.getpid())  # inherited by the local cluster's processes, as TRAIN_ENV is
        os.environ.pop("RAY_ADDRESS", None)  # blank: ray.init would take it for a cluster to join
        # No runtime env, so the local cluster's processes get TRAIN_ENV from this one's environment. No worker
        # processes started ahead: nothing would use them (Tune gives its trial actors a runtime env of its own,
        # so each trial process is started for it), and they took CPU from Ray's own start.
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False,
                 _system_config={"prestart_worker_first_driver": False}, **kwargs)  # fmt: skip
    if log_file is not None and not verbose:
        _ray_logs_to(log_file)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    res = [n.get("Resources", {}) for n in nodes]
    return Cluster(
        cpus=sum(r.get("CPU", 0) for r in res),
        gpus=sum(r.get("GPU", 0) for r in res),
        node_cpus=max(r.get("CPU", 0) for r in res),
        node_gpus=max(r.get("GPU", 0) for r in res),
        nodes=len(nodes),
        hosts=len({n.get("NodeManagerAddress") for n in nodes}),
    )


def _ray_logs_to(path: Path) -> None:
    """Ray's log records go to ``path`` instead of the console (ray.init set up its own console handler)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ray_log = logging.getLogger("ray")
    for h in list(ray_log.handlers):
        ray_log.removeHandler(h)
    ray_log.addHandler(handler)
    ray_log.setLevel(logging.WARNING)
    ray_log.propagate = False


NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smbfs", "smb3", "lustre", "gpfs", "beegfs", "glusterfs", "ceph", "fuse.")


def check_shared_storage(location: str, cluster: Cluster) -> None:
    """On a cluster of several machines every trial writes into STORAGE/NAME: it must be shared storage
    (a network filesystem, or a URI such as s3://, which every node reaches)."""
    if cluster.hosts <= 1 or storage.is_uri(location):
        return
    fstype = _filesystem(Path(location))
    if not fstype.startswith(NETWORK_FILESYSTEMS):
        raise ConfigError(
            f"--storage {location}: a node-local {fstype or 'local'} directory, but the cluster spans {cluster.hosts} "
            "machines whose trials write there; pass a path every node mounts (NFS/EFS/...) or an s3:// / gs:// URI"
        )


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; '' where unknown)."""
    best, fstype = "", ""
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1].rstrip("/") + "/") and len(parts[1]) > len(best):
                best, fstype = parts[1], parts[2]
    except OSError:
        pass
    return fstype


MAX_TRIAL_RESTARTS = 2  # a trial whose process dies (OOM, node lost, kill -9) restarts from its last checkpoint


def run_trials(params: list[dict], concurrent: int, datasets: dict, results: str, printer, resume: bool = False,
               asha=None, reference: str | None = None):  # fmt: skip
    """Run one phase of a study: the trials ``params`` (``TrialSpec.to_param()`` each) with Ray Tune into
    ``results`` (STORAGE/NAME, a directory or URI), ``concurrent`` at once; returns Tune's ResultGrid.
    ``datasets[data_key]`` -> {"train", "val"(, "test")} Ray Datasets. A study that grows runs each new
    batch of trials as a phase of its own in the same dir.

    With ``resume``, restore the newest Tune experiment in ``results`` (the last phase, whose trials
    ``params`` must be): finished trials stay as they are, unfinished and errored ones carry on from their
    last checkpoint. ``asha`` (a runner.config.ASHA): Tune's ASHAScheduler stops trials that fall behind on
    val accuracy (never the ``reference`` variant's); each gets a pruned.json in its dir (runner.results reads it as
    status ``pruned``).
    """
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from runner.trial.trainable import run_trial

    trainable = tune.with_resources(tune.with_parameters(run_trial, datasets=datasets), _resources)
    param_space = {"spec": tune.grid_search(list(params)), "results_dir": results}
    watch = StorageWatch(results)
    callbacks = [CarryOver(), files.callback(), CSVLoggerCallback(), JsonLoggerCallback(), printer, watch, Preload()]
    if resume:
        tuner = tune.Tuner.restore(
            results, trainable, resume_unfinished=True, resume_errored=True, param_space=param_space
        )
        # Tune restores the callbacks pickled with the experiment; this run's console needs its own printer.
        tuner._local_tuner.get_run_config().callbacks = callbacks
        return watch.fit(tuner)
    tune_config = tune.TuneConfig(
        scheduler=_scheduler(asha, params, reference, results),
        max_concurrent_trials=concurrent,
        # a trial ASHA stopped leaves its actor unusable (Tune's reset fails while the stopped function's thread
        # winds down, and the next trial on it errors): with a scheduler every trial gets a fresh actor
        reuse_actors=asha is None,
        trial_name_creator=_trial_name,
        trial_dirname_creator=_trial_name,
    )
    run_config = tune.RunConfig(
        name=storage.name(results),
        storage_path=storage.parent(results),
        verbose=0,
        callbacks=callbacks,
        failure_config=tune.FailureConfig(max_failures=MAX_TRIAL_RESTARTS),
        checkpoint_config=checkpoints.ray_config(tune.CheckpointConfig),
    )
    return watch.fit(tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config))


def _scheduler(asha, params: list[dict], reference: str | None, results: str):
    """Tune's ASHA on each epoch's val accuracy, up to the phase's longest trial; None without ``asha``. The
    reference's trials set the bar at each rung but are never stopped: every comparison keeps its pairs. A trial
    it stops is marked pruned in its dir as it decides (not when the trial ends, which a Ctrl-C also does)."""
    if asha is None:
        return None
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class Pruning(ASHAScheduler):
        def on_trial_result(self, tune_controller, trial, result):
            action = super().on_trial_result(tune_controller, trial, result)
            if trial.config["spec"]["variant"] == reference:
                return TrialScheduler.CONTINUE
            if action == TrialScheduler.STOP and result.get("status") == "running":  # not at its last epoch
                _mark_pruned(results, trial, result)
            return action

    max_t = max(TrialSpec.from_param(p).config.train.epochs for p in params)
    return Pruning(time_attr="epoch", metric="val_accuracy", mode="max", max_t=max_t,
                   grace_period=min(asha.grace_epochs, max_t), reduction_factor=asha.reduction_factor)  # fmt: skip


def _mark_pruned(results: str, trial, result: dict) -> None:
    """pruned.json in the trial's dir (the epoch it reached), so its record says ``pruned``, and its TensorBoard
    HParams session, which the stopped trial never writes."""
    where = storage.join(results, _trial_name(trial))
    try:
        if not storage.exists(where):
            return  # the results dir is gone (a storage fault): never make it again
        marker = {"epoch": result.get("epoch"), "val_accuracy": result.get("val_accuracy")}
        storage.write_text(storage.join(where, PRUNED_FILE), json.dumps(marker))
        if not storage.is_uri(where):
            from runner.trial.board import pruned_session

            spec = TrialSpec.from_param(trial.config["spec"])
            pruned_session(where, spec.variant, spec.config, result.get("best_val_accuracy", 0.0),
                           result.get("best_epoch", 0))  # fmt: skip
    except Exception as e:  # noqa: BLE001 - the study goes on; the trial then reads as interrupted
        log.warning("%s: could not mark the trial pruned (%s)", _trial_name(trial), first_line(e))


def _storage_watch_class():
    from ray.tune import Callback

    class Watch(Callback):
        """Stops the study like Ctrl-C when a trial reports that its storage failed or the results dir vanishes
        (deleted or moved: Ray would quietly make a new one of its own files), and turns a storage failure of
        Tune's own (writing its state, a trial's error file) into a StorageFault instead of a traceback. The
        ballast it holds in the results dir while trials run is freed at the fault, so Tune can save its state."""

        def __init__(self, results: str):
            self.fault: str | None = None
            self.results = results
            self.identity = storage.identity(results)  # None for a URI: not watched
            self.checked = 0.0

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if result.get("status") == STORAGE_FAULT and self.fault is None:
                spec = trial.config["spec"]
                self._stop(f"{result.get('error', 'storage failed')} (in trial {spec['variant']} seed {spec['seed']})")

        def on_step(self, iteration, trials, **info):
            if self.identity is None or self.fault is not None or time.monotonic() - self.checked < WATCH_EVERY_S:
                return
            self.checked = time.monotonic()
            if storage.identity(self.results) != self.identity:
                self._stop(gone_line(self.results))

        def _stop(self, line: str) -> None:
            self.fault = line
            storage.release_ballast(self.results)
            os.kill(os.getpid(), signal.SIGINT)  # Tune saves its state and stops every trial, resumable

        def fit(self, tuner):
            storage.reserve_ballast(self.results)
            try:
                grid = tuner.fit()
            except Exception as e:  # noqa: BLE001 - Tune's driver failed; a storage fault is said as one line
                fault = self.fault or storage_fault(e, None if self.identity is None else self.results)
                if fault is None:
                    raise
                raise StorageFault(self._after(fault)) from None
            finally:
                storage.release_ballast(self.results)
            if self.fault is None and self.identity is not None and storage.identity(self.results) != self.identity:
                self.fault = gone_line(self.results)  # it vanished as the last trials ended (they fail in Ray's setup)
            if self.fault:
                raise StorageFault(self._after(self.fault))
            return grid

        def _after(self, fault: str) -> str:
            """The fault's line; a vanished dir that Ray made again, holding only Ray's files, is removed."""
            if fault.startswith(GONE) and self.identity is not None:
                remove_remake(self.results)
            return fault

    return Watch


WATCH_EVERY_S = 1.0  # how often the driver checks that the results dir is still there


def StorageWatch(results: str):  # noqa: N802 - a class made on first use, so importing this module needs no Ray
    return _storage_watch_class()(results)


def remove_remake(results: str) -> None:
    """After the results dir vanished mid-study, Ray's syncs make a new one (its state, trial dirs, whatever a last
    sync carried); remove it when it is not a study's (no study.json or audit.json: the study wrote those first), so
    the path says what happened: the dir is gone. A dir moved back or restored has them and is left alone."""
    import shutil

    from runner.results import studyfile

    path = storage.local_path(results)
    quiet = 0
    for _ in range(20):  # Tune's last sync of the trial dirs runs on a thread of its own: until it stays gone
        now = storage.identity(results)  # the same (device, inode) can be a new dir: the inode number is reused
        if now is not None and any((path / n).exists() for n in (studyfile.NAME, "audit.json")):
            return  # the dir came back (moved back, restored), or a study's dir is there again
        if now is None:
            quiet += 1
            if quiet >= 3:
                return
        else:
            quiet = 0
            shutil.rmtree(path, ignore_errors=True)
        time.sleep(0.2)


def _carry_over_class():
    from ray.tune import Callback

    class CarryOver(Callback):
        """A trial of a phase rebuilt from its trial dirs (runner.rebuild) goes on in its old dir: before Tune's
        loggers open its result.json and progress.csv, they get the rows up to the epoch it carries on from."""

        def on_trial_start(self, iteration, trials, trial, **info):
            carry = trial.config["spec"].get(recover.KEY)
            if carry and trial.local_path and not storage.is_uri(trial.config["results_dir"]):
                recover.stage_rows(trial.config["results_dir"], carry, Path(trial.local_path))

    return CarryOver


def CarryOver():  # noqa: N802 - as StorageWatch
    return _carry_over_class()()


def _preload_class():
    from ray.tune import Callback

    class Preload(Callback):
        """At the first epoch a trial reports, the driver imports what the study's end needs (report.preload) on a
        thread, while the trials train (the trial processes' own start-up imports are over by then)."""

        started = False

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if not self.started:
                self.started = True
                threading.Thread(target=_preload, name="runner-preload", daemon=True).start()

    return Preload


def _preload() -> None:
    from runner.results.report import preload

    try:
        preload()
    except Exception:  # noqa: BLE001, S110 - the end imports them again and says what failed
        pass


def Preload():  # noqa: N802 - as StorageWatch
    return _preload_class()()


def _resources(config: dict) -> dict:
    """What a trial holds: an in-process trial its worker's CPUs/GPUs; a worker-group trial a token CPU
    (Ray Train reserves its workers in a placement group of their own)."""
    s = TrialSpec.from_param(config["spec"])
    if s.in_process:
        return {"cpu": s.fit.trial_cpus, "gpu": s.config.resources.gpus_per_worker}
    return {"cpu": TRIAL_DRIVER_CPU}


def _trial_name(trial) -> str:
    """VARIANT_seedN_TRIALID; a trial of a rebuilt phase keeps its old dir."""
    spec = trial.config["spec"]
    return spec.get(recover.KEY, {}).get("dir") or trial_dir_name(spec["variant"], spec["seed"], trial.trial_id)
