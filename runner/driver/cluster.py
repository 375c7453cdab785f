"""Ray for one CLI call, started or joined and stopped in one place: ``RayCluster``.

A local Ray gets every core of this machine and marks its processes with the driver's pid, so that the processes
of one whose driver was killed (kill -9 skips Ray's shutdown) are found and stopped by the next study, and so that
a study that ran to its end can stop its own at once. A cluster given by --address or RAY_ADDRESS is joined and
left as it is.
"""

from __future__ import annotations

import logging
import os
import signal
import warnings
from pathlib import Path

from runner import storage
from runner.errors import ConfigError, first_line
from runner.study.resources import Cluster

log = logging.getLogger(__name__)

# Settings for Ray's and the trials' processes that cut a trial's fixed cost (docs/performance.md); a user's own
# values win.
TRAIN_ENV = {
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # we add Tune's CSV/JSON loggers ourselves; its TBX one would duplicate our tags
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000",
    "RAY_DEDUP_LOGS": "1",
    # Tune reuses a trial's process for the next trial once the last one's thread has ended, and fails the next trial
    # when that takes longer than this (2 s by default; a stopped trial ends at its next batch, a loaded machine is slow)
    "TUNE_FUNCTION_THREAD_TIMEOUT_S": "60",
    # PyTorch's CPU allocator asks for transparent huge pages for tensors of 2 MiB and more: a new trial's weights,
    # gradients and optimizer state take 512x fewer page faults, which a short trial (ASHA prunes most) pays most
    "THP_MEM_ALLOC_ENABLE": "1",
}


DRIVER_ENV = "RUNNER_DRIVER_PID"  # marks the processes of a local Ray cluster that a runner study started


def reap_orphans() -> int:
    """Kill what a runner study's local Ray left behind when its driver was killed (kill -9 skips Ray's
    shutdown; the per-node agents then outlive the raylet). Only processes marked with a dead driver's
    pid are touched, never another program's Ray. Linux only; returns how many were stopped."""
    return _kill_marked(lambda driver: driver != os.getpid() and not Path(f"/proc/{driver}").exists())


def stop_local_cluster() -> int:
    """Kill the local Ray this process started (its processes are marked with this pid), at once: for a driver about
    to exit with every file written (ray.shutdown() waits for them to end one process
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


class RayCluster:
    """``with RayCluster(address, named, verbose, log_file) as ray:`` starts a local Ray (``address`` None) or
    joins one (``named``: where the address came from, for errors); ``ray.cluster`` is what the cluster has. At the end Ray
    is shut down gracefully, so nothing a trial or Tune still writes is cut short; ``finish()`` instead says that
    every file is written and the process exits next: a local Ray is then killed at once (ray.shutdown() waits for
    its processes to end one type after another)."""

    def __init__(self, address: str | None, named: str, verbose: bool, log_file: Path | None = None):
        self.address, self.named, self.verbose, self.log_file = address, named, verbose, log_file
        self.finished = False

    def __enter__(self) -> RayCluster:
        self.cluster = init_ray(self.address, self.named, self.verbose, self.log_file)
        # SIGTERM stops the study like Ctrl-C (Tune saves its state, the partial summary is written); set after
        # ray.init, which installs a handler of its own that would end the process at once.
        signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
        return self

    def finish(self) -> None:
        """Every file is written and the process exits right after: stop a local Ray at once."""
        self.finished = True

    def __exit__(self, *exc) -> None:
        if self.finished and os.environ.get(DRIVER_ENV) == str(os.getpid()):
            stop_local_cluster()
        else:
            shutdown()


def shutdown() -> None:
    """Ray shut down gracefully, when this process started or joined one."""
    import sys

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
