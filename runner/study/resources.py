"""Fit each trial's resource request to the cluster, so a study never waits forever on a small machine.

Pure logic (no Ray): the orchestrator passes in what the cluster has.

Deadlocks this avoids (seen; docs/performance.md): a Tune function trial holding a whole CPU while its
Train workers wait for one; a worker asking for more CPUs than any node has. A trial that runs its
loop in-process (workers_per_trial = 0) reserves the worker's CPUs/GPUs itself; a trial with a
worker group reserves a token 0.01 CPU and its workers reserve the rest.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

from runner.config import ConfigError, ResourcesConfig

TRIAL_DRIVER_CPU = 0.01  # what a trial that only drives a worker group reserves (0 is rejected by Tune)


@dataclass(frozen=True)
class Cluster:
    cpus: float  # total CPUs
    gpus: float  # total GPUs
    node_cpus: float  # CPUs of the largest node
    node_gpus: float  # GPUs of the largest node
    nodes: int = 1
    hosts: int = 1  # distinct machines (several raylets may share one)


@dataclass(frozen=True)
class Fit:
    cpus_per_worker: float  # what each worker reserves (and its torch thread count, rounded)
    trial_cpus: float  # what the whole trial holds: trial process + workers
    trial_gpus: float
    note: str = ""  # set when the request was lowered to fit


def fit_trial(res: ResourcesConfig, cluster: Cluster) -> Fit:
    workers = res.workers_per_trial
    if res.gpus_per_worker > 0 and cluster.gpus == 0:
        raise ConfigError(
            f"resources.gpus_per_worker={res.gpus_per_worker}: the cluster has no GPU; set resources.gpus_per_worker=0 or connect with --address to a cluster with GPUs"
        )
    if res.gpus_per_worker > max(cluster.node_gpus, 0) and cluster.gpus > 0:
        raise ConfigError(
            f"resources.gpus_per_worker={res.gpus_per_worker}: no node has more than {cluster.node_gpus:g} GPUs; lower it"
        )
    if workers * res.gpus_per_worker > cluster.gpus:
        raise ConfigError(
            f"resources.workers_per_trial={workers} x gpus_per_worker={res.gpus_per_worker} needs {workers * res.gpus_per_worker:g} GPUs; the cluster has {cluster.gpus:g}"
        )
    c = res.cpus_per_worker
    if workers == 0:
        fitted = min(c, cluster.node_cpus)
    else:
        room = (cluster.cpus - TRIAL_DRIVER_CPU) / workers
        fitted = min(c, room, cluster.node_cpus - (TRIAL_DRIVER_CPU if cluster.nodes == 1 else 0))
        fitted = math.floor(fitted * 100 + 1e-6) / 100  # down to 0.01 CPU; the epsilon absorbs float error
        if fitted < 0.01:
            raise ConfigError(
                f"resources.workers_per_trial={workers}: the cluster's {cluster.cpus:g} CPUs cannot hold that many workers; lower it"
            )
    note = ""
    if fitted < c:
        note = f"resources.cpus_per_worker lowered from {c:g} to {fitted:g} to fit {cluster.cpus:g} CPUs"
    trial_cpus = fitted if workers == 0 else TRIAL_DRIVER_CPU + workers * fitted
    trial_gpus = res.gpus_per_worker * max(workers, 1)
    return Fit(fitted, trial_cpus, trial_gpus, note)


def max_concurrent(fits: list[Fit], cluster: Cluster, n_trials: int, user_limit: int | None) -> int:
    """How many trials to run at once: as many as the largest trial fits, capped by --max-concurrent."""
    cpu = max(f.trial_cpus for f in fits)
    gpu = max(f.trial_gpus for f in fits)
    n = math.floor(cluster.cpus / cpu + 1e-9)
    if gpu > 0:
        n = min(n, math.floor(cluster.gpus / gpu + 1e-9))
    n = max(1, min(n, n_trials))
    return min(n, user_limit) if user_limit else n


@functools.cache
def cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX): bf16 autocast is then faster than fp32;
    elsewhere it is emulated and slower. Linux reads /proc/cpuinfo; other systems report False."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def amp_note(amp: bool, gpus: bool) -> str | None:
    """The line to show when ``train.amp`` asks for bf16 that this machine's CPU trials cannot have."""
    if not amp or gpus or cpu_bf16():
        return None
    return "train.amp: this CPU has no native bf16 (avx512_bf16 or amx_bf16); CPU trials train in fp32"
