"""The fast paths give the numbers of the plain ones: fused optimizer kernels, bf16 autocast on CPU, reporting
(and checkpointing) from a background thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from runner import checkpoints
from runner.config import AugmentConfig, ModelConfig, OptimConfig
from runner.data.augment import Augment
from runner.study import resources
from runner.trial.async_report import Reporter, snapshot
from runner.trial.engine import autocast_on, build_optimizer, evaluate, kernel, train_epoch
from runner.trial.model import build_model

CPU = torch.device("cpu")
NO_AUG = AugmentConfig(train=())


def _data(n: int = 200, size: int = 8, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype(np.int64)
    x = np.clip(y[:, None, None, None] * 50 + rng.normal(0, 40, (n, size, size, 3)), 0, 255).astype(np.uint8)
    return x, y


def _epoch(name: str, fused: bool, amp: bool = False, epochs: int = 1):
    """(train sums, val sums, weights) after ``epochs`` epochs of a small MLP with dropout and BatchNorm."""
    x, y = _data()
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(32, 16), dropout=0.1, batchnorm=True), 8 * 8 * 3, 4)
    opt = build_optimizer(OptimConfig(name=name, lr=1e-3, weight_decay=1e-4, momentum=0.9), model.parameters(), fused)
    for e in range(epochs):
        torch.manual_seed(e)
        tr = train_epoch(model, opt, x, y, 16, Augment(NO_AUG, 8, 0), NO_AUG, np.random.default_rng(e), CPU, amp=amp)
    va, _ = evaluate(model, x, y, NO_AUG, CPU)
    return tr, va, torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_kernel_gives_the_unfused_metrics_within_float_tolerance(name):
    """One epoch: the same train loss and accuracy; after it, the same val accuracy and the val loss within 1e-3
    (a step's rounding differs by ~1e-8; 13 steps through ReLU and BatchNorm grow it, most with AdamW)."""
    fused, plain = _epoch(name, fused=True), _epoch(name, fused=False)
    torch.testing.assert_close(fused[0], plain[0], rtol=1e-6, atol=0.0)  # train [loss sum, correct, images]
    assert fused[1][1:].tolist() == plain[1][1:].tolist()  # val correct, images
    torch.testing.assert_close(fused[1][0], plain[1][0], rtol=1e-3, atol=0.0)
    torch.testing.assert_close(fused[2], plain[2], rtol=0.0, atol=1e-2)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_optimizers_are_fused_on_cpu_by_default(name):
    opt = build_optimizer(OptimConfig(name=name), torch.nn.Linear(3, 2).parameters())
    assert opt.param_groups[0]["fused"] is True
    plain = build_optimizer(OptimConfig(name=name), torch.nn.Linear(3, 2).parameters(), fused=False)
    assert not plain.param_groups[0]["fused"]


def test_kernel_is_foreach_where_no_fused_kernel_runs():
    meta = [torch.nn.Parameter(torch.empty(2, device="meta"))]
    assert kernel(meta) == {"foreach": True}
    assert kernel([torch.nn.Parameter(torch.zeros(2))]) == {"fused": True}


def test_a_fused_optimizer_resumes_from_an_unfused_checkpoint():
    """Checkpoints written before fused kernels hold an unfused optimizer's state: they still load and step."""
    model = torch.nn.Linear(3, 2)
    old = build_optimizer(OptimConfig(), model.parameters(), fused=False)
    model(torch.ones(1, 3)).sum().backward()
    old.step()
    new = build_optimizer(OptimConfig(), model.parameters())
    new.load_state_dict(old.state_dict())
    new.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_amp_is_bf16_on_cuda_and_on_a_cpu_with_native_bf16(monkeypatch):
    monkeypatch.setattr(resources, "cpu_bf16", lambda: True)
    assert autocast_on(True, CPU) and autocast_on(True, torch.device("cuda")) and not autocast_on(False, CPU)
    monkeypatch.setattr(resources, "cpu_bf16", lambda: False)
    assert not autocast_on(True, CPU) and autocast_on(True, torch.device("cuda"))


def test_amp_on_a_cpu_without_bf16_trains_in_fp32(monkeypatch):
    monkeypatch.setattr(resources, "cpu_bf16", lambda: False)
    amp, fp32 = _epoch("adam", fused=True, amp=True), _epoch("adam", fused=True)
    assert torch.equal(amp[2], fp32[2])


@pytest.mark.skipif(not resources.cpu_bf16(), reason="this CPU has no native bf16")
def test_amp_on_a_bf16_cpu_trains_in_bf16_and_learns_as_well():
    amp, fp32 = _epoch("adam", fused=True, amp=True, epochs=3), _epoch("adam", fused=True, epochs=3)
    assert not torch.equal(amp[2], fp32[2])  # autocast ran: bf16 rounding changed the weights
    assert amp[2].dtype == torch.float32  # the weights and optimizer state stay fp32
    acc_amp, acc_fp32 = (amp[1][1] / amp[1][2]).item(), (fp32[1][1] / fp32[1][2]).item()
    assert acc_amp > 0.5 and abs(acc_amp - acc_fp32) < 0.1


# --------------------------------------------------------------------------- reporting in the background


def test_reporter_reports_in_order_and_checkpoints_a_copy_of_the_state(tmp_path):
    seen = []

    def report(metrics, ckpt_dir):
        state = checkpoints.read_dir(ckpt_dir) if ckpt_dir else None
        seen.append((metrics["epoch"], None if state is None else state["w"].clone(), threading.current_thread()))

    r, w = Reporter(report), torch.zeros(3)
    for epoch in (1, 2, 3):
        w += 1
        r.submit({"epoch": epoch}, {"w": w, "epoch": epoch, checkpoints.SCORE: 0.5} if epoch != 2 else None)
        w += 100  # the next epoch's steps change the weights while the previous epoch is being written
    r.wait()
    assert [s[0] for s in seen] == [1, 2, 3]
    assert torch.equal(seen[0][1], torch.full((3,), 1.0)) and seen[1][1] is None
    assert torch.equal(seen[2][1], torch.full((3,), 203.0))
    assert all(s[2] is not threading.main_thread() for s in seen)


def test_an_error_while_reporting_is_raised_in_the_loop_at_its_next_call():
    def report(metrics, ckpt_dir):
        if metrics["epoch"] == 2:
            raise KeyboardInterrupt

    r = Reporter(report)
    r.submit({"epoch": 1}, None)
    r.submit({"epoch": 2}, None)
    with pytest.raises(KeyboardInterrupt):
        r.submit({"epoch": 3}, None)
    r.wait()  # raised once


def test_snapshot_reuses_the_previous_copy_and_copies_nested_tensors():
    state = {"model": {"w": torch.ones(4)}, "opt": {"state": {0: {"step": torch.tensor(3.0)}}, "groups": [1, 2]}}
    first = snapshot(state)
    assert first["model"]["w"] is not state["model"]["w"] and first["opt"]["groups"] == [1, 2]
    state["model"]["w"] += 1
    second = snapshot(state, into=first)
    assert second["model"]["w"] is first["model"]["w"]  # the same buffer, overwritten
    assert torch.equal(second["model"]["w"], torch.full((4,), 2.0))
    assert snapshot({"w": torch.ones(5)}, into=first)["w"].shape == (5,)  # a new shape gets a new tensor


def test_amp_note_only_where_amp_is_asked_for_and_cpu_trials_cannot_have_it(monkeypatch):
    monkeypatch.setattr(resources, "cpu_bf16", lambda: False)
    assert "no native bf16" in resources.amp_note(True, gpus=False)
    assert resources.amp_note(False, gpus=False) is None and resources.amp_note(True, gpus=True) is None
    monkeypatch.setattr(resources, "cpu_bf16", lambda: True)
    assert resources.amp_note(True, gpus=False) is None


def test_trial_processes_are_asked_for_huge_pages_unless_the_user_says_otherwise(monkeypatch):
    """A local Ray's processes (the trials among them) inherit the driver's environment, set before Ray starts; a
    user's own value wins."""
    import os

    import ray

    from runner.driver import cluster

    seen = []

    def init(**kwargs):
        seen.append(os.environ.get("THP_MEM_ALLOC_ENABLE"))
        raise RuntimeError("stop here")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(cluster, "reap_orphans", lambda: 0)
    for k in (*cluster.TRAIN_ENV, cluster.DRIVER_ENV, "RAY_ADDRESS"):
        monkeypatch.delenv(k, raising=False)
    for user in (None, "0"):
        if user is not None:
            monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", user)
        with pytest.raises(RuntimeError, match="stop here"):
            cluster.init_ray(None, "test", verbose=False)
    assert seen == ["1", "0"]


HUGE_PAGE_ADVICE = """
import torch
t = torch.ones(2**25, dtype=torch.uint8)  # 32 MiB
p = t.data_ptr()
flags = []
for line in open("/proc/self/smaps"):
    head = line.split()[0]
    if "-" in head and ":" not in head:
        lo, hi = (int(a, 16) for a in head.split("-"))
        inside = lo <= p < hi
    elif inside and head == "VmFlags:":
        flags = line.split()[1:]
print("hg" in flags)
"""


@pytest.mark.e2e
def test_this_torch_advises_huge_pages_for_large_tensors_when_asked():
    """The setting trial processes get is one this torch honours: the memory of a tensor of 2 MiB or more is
    advised for transparent huge pages (MADV_HUGEPAGE: VmFlags "hg" in /proc/self/smaps); with 0, it is not."""
    import os
    import subprocess
    import sys

    from runner.driver import cluster

    advised = [
        subprocess.run([sys.executable, "-c", HUGE_PAGE_ADVICE], env={**os.environ, "THP_MEM_ALLOC_ENABLE": v},
                       capture_output=True, text=True, check=True).stdout.strip()
        for v in (cluster.TRAIN_ENV["THP_MEM_ALLOC_ENABLE"], "0")
    ]  # fmt: skip
    assert advised == ["True", "False"]


@pytest.mark.e2e
def test_the_driver_loads_no_torch(tmp_path):
    """A whole study's driver (the study checked, augmentations included; run_trial handed to Tune; the trials run;
    the tables, report and HParams written) never imports torch; only trial processes load it.
    tests/test_layout.py checks the same statically."""
    import subprocess
    import sys

    code = (
        "import sys, runner.tune as t\n"
        f"assert t.main(['configs/smoke.py', '--set', 'train.epochs=1', '--storage', '{tmp_path}']) == 0\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.e2e
def test_albumentations_is_imported_without_asking_pypi_for_a_newer_release():
    """Its update check made an HTTPS request at every import (driver and each trial process, up to 2 s)."""
    import os
    import subprocess
    import sys

    code = (
        "import urllib.request\n"
        "def refuse(*a, **k): raise SystemExit('albumentations asked the network')\n"
        "urllib.request.OpenerDirector.open = refuse\n"
        "from runner.config import AugmentConfig\n"
        "from runner.data.augment import check_augment\n"
        "check_augment(AugmentConfig(), 64)\n"
        "import albumentations\n"
        "print('ok')"
    )
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr[-2000:]


@pytest.mark.e2e
def test_a_trial_reads_its_datasets_without_starting_ray_datas_executor():
    """read_all takes a materialized Dataset's blocks as they are, in order and whole (an empty split too), and
    starts none of Ray Data's actors: they were two more processes importing Ray Data as the first trials began."""
    import ray

    from runner.data.ray_data import read_all, to_ray_datasets
    from runner.data.source import ImageSet

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8), rng.integers(0, 3, 50)
    images = ImageSet(x, y, x[:0], y[:0], ["a", "b", "c"], "test", [], 0, 0.0)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        before = set(map(str, ray.util.list_named_actors(all_namespaces=True)))
        datasets = to_ray_datasets(images)

        @ray.remote
        def read(ds):
            return read_all(ds["train"]), read_all(ds["val"])

        (tx, ty), (vx, vy) = ray.get(read.remote(datasets))
        after = set(map(str, ray.util.list_named_actors(all_namespaces=True)))
    finally:
        ray.shutdown()
    assert tx.dtype == np.uint8 and ty.dtype == np.int64
    np.testing.assert_array_equal(tx, x)
    np.testing.assert_array_equal(ty, y)
    assert len(vx) == len(vy) == 0
    assert after == before, f"Ray Data started actors: {after - before}"
