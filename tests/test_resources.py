"""Fitting trial resource requests to the cluster, and how many trials run at once."""

from __future__ import annotations

import pytest

from runner.config import ConfigError, ResourcesConfig
from runner.study.resources import TRIAL_DRIVER_CPU, Cluster, Fit, fit_trial, max_concurrent

TWO_CPU = Cluster(cpus=2, gpus=0, node_cpus=2, node_gpus=0)


def test_worker_group_lowered_to_fit_two_cpus():
    f = fit_trial(ResourcesConfig(workers_per_trial=2, cpus_per_worker=1.0), TWO_CPU)
    assert f.cpus_per_worker < 1.0
    assert f.cpus_per_worker == pytest.approx(0.99)
    assert f.trial_cpus == pytest.approx(TRIAL_DRIVER_CPU + 2 * f.cpus_per_worker)
    assert f.trial_cpus <= 2 + 1e-9
    assert f.trial_gpus == 0
    assert "lowered from 1 to 0.99" in f.note
    assert max_concurrent([f], TWO_CPU, n_trials=4, user_limit=None) == 1


def test_worker_group_trial_holds_driver_cpu_and_packs_by_it():
    cluster = Cluster(cpus=8, gpus=0, node_cpus=8, node_gpus=0)
    group = fit_trial(ResourcesConfig(workers_per_trial=2, cpus_per_worker=1.0), cluster)
    assert group.cpus_per_worker == 1.0 and group.note == ""
    assert group.trial_cpus == pytest.approx(TRIAL_DRIVER_CPU + 2 * 1.0)
    assert (
        max_concurrent([group], cluster, n_trials=10, user_limit=None) == 3
    )  # 8 / 2.01 = 3.98: the driver token costs a trial
    local = fit_trial(ResourcesConfig(workers_per_trial=0, cpus_per_worker=2.0), cluster)
    assert local.trial_cpus == 2.0  # in-process: no driver on top
    assert max_concurrent([local], cluster, n_trials=10, user_limit=None) == 4
    # a group that fills the node leaves the driver token free: workers are lowered, not the trial refused
    full = fit_trial(ResourcesConfig(workers_per_trial=2, cpus_per_worker=4.0), cluster)
    assert full.cpus_per_worker == 3.99 and full.trial_cpus <= 8 + 1e-9
    assert max_concurrent([full], cluster, n_trials=10, user_limit=None) == 1


def test_one_worker_fits_two_cpus_unchanged():
    f = fit_trial(ResourcesConfig(workers_per_trial=1, cpus_per_worker=1.0), TWO_CPU)
    assert f.cpus_per_worker == 1.0 and f.note == ""
    assert f.trial_cpus == pytest.approx(1.01)
    assert max_concurrent([f], TWO_CPU, n_trials=4, user_limit=None) == 1  # 2 / 1.01


def test_worker_request_never_exceeds_node():
    f = fit_trial(ResourcesConfig(workers_per_trial=1, cpus_per_worker=8.0), TWO_CPU)
    assert f.cpus_per_worker <= 2 - TRIAL_DRIVER_CPU + 1e-9
    assert f.trial_cpus <= 2 + 1e-9
    assert f.note


def test_worker_request_on_multi_node_cluster_is_limited_by_largest_node():
    cluster = Cluster(cpus=16, gpus=0, node_cpus=4, node_gpus=0, nodes=4)
    f = fit_trial(ResourcesConfig(workers_per_trial=2, cpus_per_worker=6.0), cluster)
    assert f.cpus_per_worker == 4.0
    assert f.trial_cpus == pytest.approx(8.01)


def test_too_many_workers_is_config_error():
    with pytest.raises(ConfigError, match="workers_per_trial=500"):
        fit_trial(ResourcesConfig(workers_per_trial=500), TWO_CPU)


def test_local_mode_keeps_one_cpu_on_two_cpu_cluster():
    f = fit_trial(ResourcesConfig(workers_per_trial=0, cpus_per_worker=1.0), TWO_CPU)
    assert f == Fit(cpus_per_worker=1.0, trial_cpus=1.0, trial_gpus=0.0, note="")


def test_local_mode_lowered_to_node_size():
    f = fit_trial(ResourcesConfig(workers_per_trial=0, cpus_per_worker=4.0), TWO_CPU)
    assert f.cpus_per_worker == 2 and f.trial_cpus == 2
    assert "lowered from 4 to 2" in f.note


def test_local_fractional_cpus_kept():
    f = fit_trial(ResourcesConfig(workers_per_trial=0, cpus_per_worker=0.5), TWO_CPU)
    assert f.cpus_per_worker == 0.5 and f.trial_cpus == 0.5 and f.note == ""
    assert max_concurrent([f], TWO_CPU, n_trials=10, user_limit=None) == 4


def test_gpu_request_on_cpu_cluster_is_config_error():
    with pytest.raises(ConfigError, match="no GPU"):
        fit_trial(ResourcesConfig(gpus_per_worker=1.0), TWO_CPU)
    with pytest.raises(ConfigError, match="no GPU"):
        fit_trial(ResourcesConfig(workers_per_trial=2, gpus_per_worker=0.5), TWO_CPU)


def test_gpu_requests_on_gpu_cluster():
    cluster = Cluster(cpus=8, gpus=2, node_cpus=8, node_gpus=2)
    f = fit_trial(ResourcesConfig(workers_per_trial=0, gpus_per_worker=0.25), cluster)
    assert f.trial_gpus == 0.25
    assert max_concurrent([f], cluster, n_trials=20, user_limit=None) == 8  # CPU-bound: 8 x 1 CPU
    f2 = fit_trial(ResourcesConfig(workers_per_trial=2, gpus_per_worker=1.0, cpus_per_worker=1.0), cluster)
    assert f2.trial_gpus == 2.0
    assert max_concurrent([f2], cluster, n_trials=20, user_limit=None) == 1  # GPU-bound
    with pytest.raises(ConfigError, match="no node has more than 2 GPUs"):
        fit_trial(ResourcesConfig(gpus_per_worker=3.0), cluster)
    with pytest.raises(ConfigError, match="needs 3 GPUs"):
        fit_trial(ResourcesConfig(workers_per_trial=3, gpus_per_worker=1.0), cluster)


def test_max_concurrent_two_cpus_one_per_trial():
    f = fit_trial(ResourcesConfig(), TWO_CPU)
    assert max_concurrent([f], TWO_CPU, n_trials=12, user_limit=None) == 2
    assert max_concurrent([f], TWO_CPU, n_trials=12, user_limit=1) == 1
    assert max_concurrent([f], TWO_CPU, n_trials=12, user_limit=5) == 2  # a limit above what fits changes nothing
    assert max_concurrent([f], TWO_CPU, n_trials=1, user_limit=None) == 1


def test_max_concurrent_uses_largest_trial_and_is_at_least_one():
    small = Fit(cpus_per_worker=1, trial_cpus=1, trial_gpus=0)
    big = Fit(cpus_per_worker=3, trial_cpus=3, trial_gpus=0)
    cluster = Cluster(cpus=6, gpus=0, node_cpus=6, node_gpus=0)
    assert max_concurrent([small, big], cluster, n_trials=10, user_limit=None) == 2
    huge = Fit(cpus_per_worker=10, trial_cpus=10, trial_gpus=0)
    assert max_concurrent([huge], cluster, n_trials=10, user_limit=None) == 1


def test_max_concurrent_tolerates_float_rounding():
    # three trials of 1/3 CPU each exactly fill one CPU
    f = Fit(cpus_per_worker=1 / 3, trial_cpus=1 / 3, trial_gpus=0)
    assert max_concurrent([f], Cluster(cpus=1, gpus=0, node_cpus=1, node_gpus=0), n_trials=9, user_limit=None) == 3


@pytest.mark.parametrize("cpus", [0.29, 0.57, 1.15, 2.3])
def test_worker_request_that_fits_is_kept_exactly(cpus):
    big = Cluster(cpus=64, gpus=0, node_cpus=64, node_gpus=0)
    f = fit_trial(ResourcesConfig(workers_per_trial=2, cpus_per_worker=cpus), big)
    assert f.cpus_per_worker == cpus
    assert f.note == ""


@pytest.mark.parametrize("cpus", [0.25, 0.5, 1.0, 2.0])
def test_worker_request_that_fits_is_kept(cpus):
    big = Cluster(cpus=64, gpus=0, node_cpus=64, node_gpus=0)
    f = fit_trial(ResourcesConfig(workers_per_trial=2, cpus_per_worker=cpus), big)
    assert f.cpus_per_worker == cpus and f.note == ""
    assert f.trial_cpus == pytest.approx(TRIAL_DRIVER_CPU + 2 * cpus)


# --------------------------------------------------------------------------- storage on a multi-machine cluster


def test_node_local_storage_is_refused_on_a_cluster_of_several_machines(tmp_path):
    from runner.driver.cluster import check_shared_storage

    with pytest.raises(ConfigError, match=r"--storage .*node-local .*spans 2 machines.*every node mounts"):
        check_shared_storage(tmp_path, Cluster(cpus=4, gpus=0, node_cpus=2, node_gpus=0, nodes=2, hosts=2))
    # several raylets on one machine (and any single machine) share its disk: fine
    check_shared_storage(tmp_path, Cluster(cpus=2, gpus=0, node_cpus=1, node_gpus=0, nodes=2, hosts=1))


def test_network_filesystem_is_accepted(monkeypatch, tmp_path):
    from runner.driver import cluster

    monkeypatch.setattr(cluster, "_filesystem", lambda path: "nfs4")
    cluster.check_shared_storage(tmp_path, Cluster(cpus=4, gpus=0, node_cpus=2, node_gpus=0, nodes=2, hosts=2))
