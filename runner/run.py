"""Orchestration: start or join Ray, hand the study's datasets to Ray Tune, run one trial per (variant, seed)."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from runner import storage
from runner.config import ConfigError, TrialConfig, apply_overrides
from runner.resources import TRIAL_DRIVER_CPU, Cluster, Fit, fit_trial, max_concurrent

log = logging.getLogger(__name__)

# Ray Train settings that cut a worker group's fixed cost (DESIGN §4); a user's own values win.
TRAIN_ENV = {
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # we add Tune's CSV/JSON loggers ourselves; its TBX one would duplicate our tags
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000",
    "RAY_DEDUP_LOGS": "1",
}


@dataclass
class TrialSpec:
    variant: str
    seed: int
    config: TrialConfig
    data_key: str  # which of the study's datasets this trial reads
    fit: Fit
    order: int  # the variant's position in the study, for tables

    def to_param(self) -> dict:
        return {"variant": self.variant, "seed": self.seed, "data": self.data_key, "order": self.order,
                "trial": self.config.to_dict()}


DRIVER_ENV = "RUNNER_DRIVER_PID"  # marks the processes of a local Ray cluster that a runner study started


def reap_orphans() -> int:
    """Kill what a runner study's local Ray left behind when its driver was killed (kill -9 skips Ray's
    shutdown; the per-node agents then outlive the raylet). Only processes marked with a dead driver's
    pid are touched, never another program's Ray. Linux only; returns how many were stopped."""
    import signal

    stopped = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            env = dict(kv.split("=", 1) for kv in (proc / "environ").read_bytes().decode(errors="replace").split("\0") if "=" in kv)
            driver = int(env.get(DRIVER_ENV, "0"))
            if not driver or driver == os.getpid() or Path(f"/proc/{driver}").exists():
                continue
            os.kill(int(proc.name), signal.SIGKILL)
            stopped += 1
        except (OSError, ValueError):
            continue
    return stopped


def _check_reachable(address: str) -> None:
    """Fail in seconds on a HOST:PORT nobody listens on (ray.init retries an unreachable GCS for ~14 minutes)."""
    import socket

    if address == "auto" or "://" in address or ":" not in address:
        return  # auto-discovery and ray:// client addresses are Ray's to resolve
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise ConfigError(f"--address {address}: cannot connect to a Ray cluster ({getattr(e, 'strerror', None) or e}); "
                          "start one with `ray start --head` or `ray up cluster.yaml`, or check HOST:PORT") from None


def init_ray(address: str | None, verbose: bool) -> Cluster:
    """Start a local Ray (all this machine's cores) or join ``address``; return what the cluster has."""
    for k, v in TRAIN_ENV.items():
        os.environ.setdefault(k, v)
    import ray

    if not verbose:  # the CLI reports trial failures itself, in one line each
        logging.getLogger("ray").setLevel(logging.CRITICAL)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
    kwargs = dict(
        log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR,
        runtime_env={"env_vars": {k: os.environ[k] for k in TRAIN_ENV}},
    )
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **kwargs)
        except Exception as e:  # noqa: BLE001 - connection, version and auth failures all mean "cannot join"
            text = str(e)
            first = text.strip().splitlines()[0][:300] if text.strip() else type(e).__name__
            hint = ("set RAY_AUTH_MODE (and the token) as the cluster's nodes have them" if "auth" in text.lower()
                    else "start one with `ray start --head` or `ray up cluster.yaml`")
            raise ConfigError(f"--address {address}: cannot join the Ray cluster ({first}); {hint}") from None
    else:
        if reap_orphans():
            log.warning("stopped Ray processes left behind by an earlier study whose driver was killed")
        os.environ[DRIVER_ENV] = str(os.getpid())  # inherited by the local cluster's processes
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, **kwargs)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    res = [n.get("Resources", {}) for n in nodes]
    return Cluster(
        cpus=sum(r.get("CPU", 0) for r in res), gpus=sum(r.get("GPU", 0) for r in res),
        node_cpus=max(r.get("CPU", 0) for r in res), node_gpus=max(r.get("GPU", 0) for r in res), nodes=len(nodes),
        hosts=len({n.get("NodeManagerAddress") for n in nodes}),
    )


NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smbfs", "smb3", "lustre", "gpfs", "beegfs", "glusterfs", "ceph", "fuse.")


def check_shared_storage(location: str, cluster: Cluster) -> None:
    """On a cluster of several machines every trial writes into STORAGE/NAME: it must be shared storage
    (a network filesystem, or a URI such as s3://, which every node reaches)."""
    if cluster.hosts <= 1 or storage.is_uri(location):
        return
    fstype = _filesystem(Path(location))
    if not fstype.startswith(NETWORK_FILESYSTEMS):
        raise ConfigError(f"--storage {location}: a node-local {fstype or 'local'} directory, but the cluster spans {cluster.hosts} "
                          "machines whose trials write there; pass a path every node mounts (NFS/EFS/...) or an s3:// / gs:// URI")


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


def plan(trials: list[tuple[str, int, TrialConfig]], data_keys: list[str], cluster: Cluster,
         user_limit: int | None) -> tuple[list[TrialSpec], int, list[str]]:
    """Fit every trial to the cluster; returns (specs, trials at once, notes for the console)."""
    specs, notes = [], []
    order = {v: i for i, v in enumerate(dict.fromkeys(t[0] for t in trials))}
    for (variant, seed, cfg), key in zip(trials, data_keys):
        f = fit_trial(cfg.resources, cluster)
        if f.note:
            notes.append(f.note)
            cfg = apply_overrides(cfg, {"resources.cpus_per_worker": f.cpus_per_worker})
        specs.append(TrialSpec(variant, seed, cfg, key, f, order[variant]))
    return specs, max_concurrent([s.fit for s in specs], cluster, len(specs), user_limit), list(dict.fromkeys(notes))


MAX_TRIAL_RESTARTS = 2  # a trial whose process dies (OOM, node lost, kill -9) restarts from its last checkpoint


def run_study(specs: list[TrialSpec], datasets: dict, classes: dict, results: str, concurrent: int,
              printer, spread: bool = False, resume: bool = False):
    """Run every trial with Ray Tune into ``results`` (STORAGE/NAME, a directory or URI); returns Tune's
    ResultGrid. ``datasets[data_key]`` -> {"train", "val"}.

    With ``resume``, restore the experiment in ``results``: finished trials stay as they are, unfinished
    and errored ones carry on from their last checkpoint.
    """
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from runner.trial import checkpoint_config, run_trial

    def trial_fn(config: dict, datasets: dict) -> None:
        spec = config["spec"]
        run_trial({**config, "classes": config["classes"][spec["data"]], "cpus_per_worker": spec["trial"]["resources"]["cpus_per_worker"]},
                  datasets[spec["data"]])

    by_id = {f"{s.variant}/{s.seed}": s for s in specs}

    def resources(config: dict) -> dict:
        s = by_id[f"{config['spec']['variant']}/{config['spec']['seed']}"]
        # In-process trials hold their worker's CPUs; a worker-group trial holds a token CPU and Ray Train
        # reserves its workers in a placement group of their own.
        return {"cpu": s.fit.trial_cpus, "gpu": s.config.resources.gpus_per_worker} if s.config.resources.workers_per_trial == 0 \
            else {"cpu": TRIAL_DRIVER_CPU}

    trainable = tune.with_resources(tune.with_parameters(trial_fn, datasets=datasets), resources)
    param_space = {
        "spec": tune.grid_search([s.to_param() for s in specs]),
        "classes": classes,
        "placement_strategy": "SPREAD" if spread else "PACK",
        "results_dir": results,
    }
    if resume:
        tuner = tune.Tuner.restore(results, trainable, resume_unfinished=True, resume_errored=True,
                                   param_space=param_space)
        # Tune restores the callbacks pickled with the experiment; this run's console needs its own printer.
        tuner._local_tuner.get_run_config().callbacks = [CSVLoggerCallback(), JsonLoggerCallback(), printer]
        return tuner.fit()
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=storage.name(results), storage_path=storage.parent(results), verbose=0,
            callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), printer],
            failure_config=tune.FailureConfig(max_failures=MAX_TRIAL_RESTARTS),
            checkpoint_config=checkpoint_config(tune.CheckpointConfig),
        ),
    )
    return tuner.fit()


def _trial_name(trial) -> str:
    spec = trial.config["spec"]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec["variant"])
    return f"{safe}_seed{spec['seed']}_{trial.trial_id}"


def make_printer(total: int, out=sys.stdout):
    """A Tune callback that prints one fixed-column line as each trial ends."""
    from ray.tune import Callback

    class Printer(Callback):
        HEARTBEAT_S = 30  # with nothing else printed for this long, say what is running

        def __init__(self):
            self.done = 0
            self.t0 = self.last_print = time.time()
            self.last: dict[str, dict] = {}

        def on_step_end(self, iteration, trials, **info):
            if time.time() - self.last_print < self.HEARTBEAT_S:
                return
            running = [t for t in trials if t.status == "RUNNING"]
            epochs = ", ".join(f"{t.config['spec']['variant']}/{t.config['spec']['seed']} epoch {self.last.get(t.trial_id, {}).get('epoch', 0)}"
                               for t in running[:4])
            out.write(f"        {time.time() - self.t0:6.0f}s  {self.done}/{total} done, {len(running)} running: {epochs}\n")
            out.flush()
            self.last_print = time.time()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.last[trial.trial_id] = result

        def _line(self, trial, status: str) -> None:
            self.done += 1
            spec = trial.config["spec"]
            r = self.last.get(trial.trial_id, {})
            acc = r.get("best_val_accuracy")
            acc_s = f"{acc:6.3f}" if isinstance(acc, float) else "     -"
            ep = f"{r.get('best_epoch', '-')}/{r.get('epoch', '-')}"
            out.write(f"[{self.done:>{len(str(total))}}/{total}] {time.time() - self.t0:6.0f}s  {spec['variant'][:28]:<28} "
                      f"seed {spec['seed']:<4} {status:<13} best val acc {acc_s}  epoch {ep}\n")
            out.flush()
            self.last_print = time.time()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._line(trial, self.last.get(trial.trial_id, {}).get("status", "completed"))

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trial, "error")

    return Printer()
